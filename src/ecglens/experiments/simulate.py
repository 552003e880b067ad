"""A synthetic cohort for validating the hemoglobin + anemia + survival pipeline (no public Hb data exists).

:func:`simulate_cohort` draws, for each patient, an age, a sex and a true hemoglobin; one 12-lead ECG whose
features depend on hemoglobin in a stated way; a lab table with realistic timing noise and mixed units; and
follow-up outcomes from a Cox model with a KNOWN hazard ratio for low hemoglobin. Everything is seeded:
the same arguments give the same cohort, bit for bit. :func:`simulate_outcomes` is the outcome generator
alone.

Generative model (defaults; every number is an argument)
--------------------------------------------------------
Patients
    age ~ Normal(60, 14) years clipped to [18, 95]; sex female with probability 0.5 (1 = female, 0 = male).
    Hb (g/dL) ~ Normal(15.0, 1.1) for men, Normal(13.4, 1.0) for women, minus 0.02 g/dL per year of age above
    50 (so age confounds Hb and outcome); an anemic tail: with probability ``anemia_fraction`` (0.15) Hb is
    further lowered by a Gamma(shape 2, scale 1.5) g/dL amount (mean 3). Clipped to [4, 19.5]. About 2 % end
    <= 8 g/dL.
ECG features (:class:`HbEffects`; ``d = Hb - 13.5`` g/dL)
    - heart rate = 68 + 2 (female) - 3.0 d + Normal(0, 7) bpm, clipped to [40, 150]: lower Hb -> faster;
    - RR SD (HRV) = 40 ms * exp(0.10 d - 0.01 (age - 60)) * LogNormal(0, 0.3): lower Hb -> lower HRV;
    - T-wave amplitude scale = 1 + 0.06 d + Normal(0, 0.12), clipped to [0.2, 1.8]: lower Hb -> flatter T;
    - QRS amplitude scale = LogNormal(0, 0.15), x 0.9 for women (unrelated to Hb).
ECG waveform (our own vectorised beat model; ``neurokit2.ecg_simulate(method="multileads")`` took 1.7 s per
    10-s record here, about an hour for 2,000, so it is not used)
    A heart dipole is the sum, over beats, of Gaussian waves P, Q, R (early anterior and main), S and T, each
    with its own 3-D direction (x left, y inferior, z anterior), timing relative to the R peak and width; T
    peaks at 0.26 s * sqrt(RR) after R (Bazett-like QT). Beat times follow the RR series (mean 60/HR, a
    0.25-Hz respiratory sinus component and white jitter, scaled to the RR SD). The frontal axis is rotated
    per patient (Normal(0, 15) degrees). Leads I, II and V1-V6 are projections on standard lead directions
    (precordial gain 1.4, per-electrode gain LogNormal(0, 0.1)); each gets white noise (0.015 mV) and baseline
    wander (< 0.5 Hz); III, aVR, aVL and aVF are derived from I and II (Einthoven / Goldberger), so the 12
    leads are consistent. Output: float32 mV, shape [n, 12, fs * seconds], canonical lead order. 2,000 records
    take a few seconds.
Labs
    Per patient 0, 1, 2 or 3 draws (probabilities 0.10, 0.55, 0.25, 0.10). A draw is near the ECG with
    probability 0.8 (offset Normal(0, 2.5) days) or far (10-90 days before or after), so some patients have no
    draw inside a +/- 7-day window. Value = true Hb + Normal(0, 0.3) g/dL, reported in g/dL (75 %, 1 decimal),
    g/L (20 %, integer) or mmol/L (5 %, 1 decimal; factor 1.61145 g/dL per mmol/L).
Outcomes (:func:`simulate_outcomes`)
    Proportional hazards h(t | x) = h0(t) exp(x . beta) with a Weibull baseline, cumulative hazard
    H0(t) = (rate t)^shape (rate 0.04 / year, shape 1.3; shape 1 = exponential). Exposure: low Hb
    (Hb <= 10 g/dL) with hazard ratio ``hr_low_hb`` (2.0); also age (HR 1.5 per 10 years) and male sex (HR
    1.3). Event times by inversion: T = (E exp(-x . beta))^(1/shape) / rate, E ~ Exp(1). Censoring:
    administrative at the end of a staggered accrual, C_admin ~ Uniform(2, 8) years, and random loss to
    follow-up, C_loss ~ Exponential(rate 0.03 / year). time = min(T, C_admin, C_loss), event = 1 if T came
    first. Years.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data.labs import MMOL_L_TO_G_DL
from ..ecg import Ecg, code_to_sex
from ..exceptions import ConfigError
from ..leads import CANONICAL_LEADS

__all__ = ["HbEffects", "SimulatedCohort", "simulate_cohort", "simulate_ecgs", "simulate_outcomes"]


# ------------------------------------------------------------------------------------------------------------
# outcomes


def _weibull_inverse(e: np.ndarray, eta: np.ndarray, rate: float, shape: float) -> np.ndarray:
    return (e * np.exp(-eta)) ** (1.0 / shape) / rate


#: baseline name -> function(E ~ Exp(1), linear predictor, rate, shape) -> event time
_BASELINES = {
    "weibull": _weibull_inverse,
    "exponential": lambda e, eta, rate, shape: _weibull_inverse(e, eta, rate, 1.0),
}


def simulate_outcomes(
    covariate: Any,
    log_hr: Any,
    *,
    baseline: str = "weibull",
    rate: float = 0.04,
    shape: float = 1.3,
    followup: tuple[float, float] = (2.0, 8.0),
    censor_rate: float = 0.03,
    seed: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Survival times from a Cox model with known log hazard ratios.

    Parameters
    ----------
    covariate : array-like of float, shape (n,) or (n, p)
        Covariate values (0/1 for a binary exposure).
    log_hr : float or array-like, shape (p,)
        True log hazard ratio(s) per unit of each covariate.
    baseline : {"weibull", "exponential"}
        Baseline hazard family; cumulative hazard ``(rate * t) ** shape`` (exponential: shape 1).
    rate : float
        Baseline rate, per time unit (years by default).
    shape : float
        Weibull shape (> 1: hazard rising with time).
    followup : (float, float)
        Administrative censoring time ~ Uniform(low, high) (staggered accrual, common study end); equal values
        give one fixed follow-up.
    censor_rate : float
        Rate of random loss to follow-up (exponential; 0 = none).
    seed : int or Generator
        Random seed.

    Returns
    -------
    pd.DataFrame, shape (n, 3)
        ``time`` (float, > 0), ``event`` (int, 1 = event observed), ``true_time`` (the uncensored event time).
    """
    inverse = _BASELINES.get(baseline)
    if inverse is None:
        raise ConfigError(f"unknown baseline {baseline!r}; choose one of {sorted(_BASELINES)}.")
    if rate <= 0 or shape <= 0 or censor_rate < 0 or not 0 < followup[0] <= followup[1]:
        raise ConfigError("need rate > 0, shape > 0, censor_rate >= 0 and 0 < followup[0] <= followup[1].")
    x = np.asarray(covariate, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    beta = np.atleast_1d(np.asarray(log_hr, dtype=np.float64))
    if beta.shape != (x.shape[1],):
        raise ConfigError(
            f"log_hr has shape {beta.shape} but covariate has {x.shape[1]} column(s); give one per column."
        )
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    t_event = inverse(rng.exponential(1.0, n), x @ beta, rate, shape)
    c_admin = rng.uniform(followup[0], followup[1], n)
    c_loss = rng.exponential(1.0 / censor_rate, n) if censor_rate > 0 else np.full(n, np.inf)
    time = np.minimum(t_event, np.minimum(c_admin, c_loss))
    return pd.DataFrame({"time": time, "event": (t_event <= time).astype(int), "true_time": t_event})


# ------------------------------------------------------------------------------------------------------------
# patients and ECG features


@dataclass(frozen=True)
class HbEffects:
    """How hemoglobin (and age/sex) shape the simulated ECG; ``d = Hb - hb_ref`` in g/dL.

    Attributes
    ----------
    hb_ref : float
        Reference hemoglobin (g/dL).
    hr_base, hr_female, hr_per_g_dl, hr_sd : float
        Heart rate (bpm) = hr_base + hr_female * female + hr_per_g_dl * d + Normal(0, hr_sd).
    rr_sd_ms, hrv_log_per_g_dl, hrv_log_per_year, hrv_log_sd : float
        RR SD (ms) = rr_sd_ms * exp(hrv_log_per_g_dl * d + hrv_log_per_year * (age - 60)) * LogNormal(0,
        hrv_log_sd).
    t_per_g_dl, t_sd : float
        T-wave amplitude scale = 1 + t_per_g_dl * d + Normal(0, t_sd).
    """

    hb_ref: float = 13.5
    hr_base: float = 68.0
    hr_female: float = 2.0
    hr_per_g_dl: float = -3.0
    hr_sd: float = 7.0
    rr_sd_ms: float = 40.0
    hrv_log_per_g_dl: float = 0.10
    hrv_log_per_year: float = -0.01
    hrv_log_sd: float = 0.3
    t_per_g_dl: float = 0.06
    t_sd: float = 0.12


def _simulate_patients(
    n: int, rng: np.random.Generator, anemia_fraction: float, effects: HbEffects
) -> pd.DataFrame:
    age = np.clip(rng.normal(60.0, 14.0, n), 18.0, 95.0)
    female = (rng.random(n) < 0.5).astype(np.float64)
    hb = np.where(female == 1.0, rng.normal(13.4, 1.0, n), rng.normal(15.0, 1.1, n))
    hb = hb - 0.02 * np.clip(age - 50.0, 0.0, None)
    hb = hb - (rng.random(n) < anemia_fraction) * rng.gamma(2.0, 1.5, n)
    hb = np.clip(hb, 4.0, 19.5)
    d = hb - effects.hb_ref
    hr = (
        effects.hr_base
        + effects.hr_female * female
        + effects.hr_per_g_dl * d
        + rng.normal(0, effects.hr_sd, n)
    )
    rr_sd = effects.rr_sd_ms * np.exp(
        effects.hrv_log_per_g_dl * d
        + effects.hrv_log_per_year * (age - 60.0)
        + rng.normal(0, effects.hrv_log_sd, n)
    )
    t_scale = np.clip(1.0 + effects.t_per_g_dl * d + rng.normal(0, effects.t_sd, n), 0.2, 1.8)
    qrs_scale = rng.lognormal(0.0, 0.15, n) * np.where(female == 1.0, 0.9, 1.0)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:06d}" for i in range(n)],
            "age": np.round(age, 1),
            "sex": female,
            "hb": np.round(hb, 2),
            "heart_rate": np.clip(hr, 40.0, 150.0),
            "rr_sd_ms": rr_sd,
            "t_scale": t_scale,
            "qrs_scale": qrs_scale,
            "axis_deg": rng.normal(0.0, 15.0, n),
        }
    )


# ------------------------------------------------------------------------------------------------------------
# ECG waveforms

#: wave -> (offset from R peak s, width sigma s, amplitude mV, direction (x left, y inferior, z anterior))
_WAVES: dict[str, tuple[float, float, float, tuple[float, float, float]]] = {
    "P": (-0.16, 0.022, 0.14, (0.55, 0.75, 0.1)),
    "Q": (-0.035, 0.009, 0.12, (-0.6, 0.2, 0.6)),
    "R1": (-0.015, 0.011, 0.45, (0.15, 0.2, 0.95)),
    "R": (0.0, 0.012, 1.25, (0.5, 0.75, -0.45)),
    "S": (0.03, 0.012, 0.45, (-0.35, -0.35, -0.85)),
    "T": (np.nan, 0.055, 0.38, (0.6, 0.6, 0.5)),  # offset: 0.26 s * sqrt(RR)
}
_PRECORDIAL_DEG = {"V1": 115.0, "V2": 95.0, "V3": 75.0, "V4": 55.0, "V5": 30.0, "V6": 5.0}
_PRECORDIAL_GAIN = 1.4
#: recorded "electrode" leads (the rest are derived from I and II)
_RECORDED = ("I", "II", *_PRECORDIAL_DEG)


def _lead_matrix() -> np.ndarray:
    """Directions of I, II, V1-V6 in (x left, y inferior, z anterior), shape (8, 3)."""
    rows = [(1.0, 0.0, 0.0), (0.5, np.sqrt(3) / 2, 0.0)]
    for deg in _PRECORDIAL_DEG.values():
        a = np.deg2rad(deg)
        rows.append((_PRECORDIAL_GAIN * np.cos(a), 0.15, _PRECORDIAL_GAIN * np.sin(a)))
    return np.asarray(rows)


def _beat_times(p: pd.DataFrame, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """R-peak times (s), shape (n, max_beats), NaN-padded; covers [-1 s, seconds + 1 s]."""
    rr_mean = 60.0 / p["heart_rate"].to_numpy()
    rr_sd = p["rr_sd_ms"].to_numpy() / 1000.0
    k = int(np.ceil((seconds + 2.0) / (60.0 / 150.0))) + 2
    n = len(p)
    beat_idx = np.arange(k)
    resp = np.sin(2 * np.pi * 0.25 * beat_idx[None, :] * rr_mean[:, None] + rng.uniform(0, 2 * np.pi, (n, 1)))
    rr = rr_mean[:, None] + rr_sd[:, None] * (0.7 * np.sqrt(2) * resp + 0.7 * rng.standard_normal((n, k)))
    rr = np.clip(rr, 0.25, 2.0)
    start = -1.0 + rng.uniform(0.0, 1.0, (n, 1)) * rr_mean[:, None]
    times = start + np.concatenate([np.zeros((n, 1)), np.cumsum(rr[:, :-1], axis=1)], axis=1)
    return np.where(times <= seconds + 1.0, times, np.nan)


def _render(centres: np.ndarray, width: float, amp: np.ndarray, fs: float, n_samples: int) -> np.ndarray:
    """Sum of Gaussians ``amp * exp(-(t - centre)^2 / (2 width^2))`` per row, evaluated only within 4 widths.

    ``centres`` (n, k) in s (NaN = no beat), ``amp`` (n,) -> (n, n_samples) float32; no dense (n, k, T) array.
    """
    n = centres.shape[0]
    half = int(np.ceil(4.0 * width * fs))
    base = np.floor(np.nan_to_num(centres, nan=-1e6) * fs).astype(np.int64)
    idx = base[:, :, None] + np.arange(-half, half + 1)[None, None, :]
    value = np.exp(-0.5 * ((idx / fs - centres[:, :, None]) / width) ** 2) * amp[:, None, None]
    ok = (idx >= 0) & (idx < n_samples) & np.isfinite(value)
    flat = (np.arange(n)[:, None, None] * n_samples + idx)[ok]
    return (
        np.bincount(flat, weights=value[ok], minlength=n * n_samples).reshape(n, n_samples).astype(np.float32)
    )


def _dipole(p: pd.DataFrame, beats: np.ndarray, fs: float, n_samples: int) -> np.ndarray:
    """Heart dipole, shape (n, 3, n_samples), mV."""
    rr = np.diff(beats, axis=1, append=np.nan)
    rr = np.where(np.isnan(rr), np.nanmean(rr, axis=1, keepdims=True), rr)
    axis = np.deg2rad(p["axis_deg"].to_numpy())
    cos, sin = np.cos(axis), np.sin(axis)
    out = np.zeros((len(p), 3, n_samples), dtype=np.float32)
    scale = {"T": p["t_scale"].to_numpy(), "P": np.ones(len(p))}
    for name, (offset, width, amp, direction) in _WAVES.items():
        off = 0.26 * np.sqrt(rr) if name == "T" else offset
        wave = _render(beats + off, width, amp * scale.get(name, p["qrs_scale"].to_numpy()), fs, n_samples)
        dx, dy, dz = direction
        vec = np.stack(
            [cos * dx - sin * dy, sin * dx + cos * dy, np.full_like(cos, dz)], axis=1
        )  # frontal rotation
        out += vec[:, :, None].astype(np.float32) * wave[:, None, :]
    return out


def _noise(n: int, n_leads: int, t: np.ndarray, rng: np.random.Generator, white_mv: float) -> np.ndarray:
    """White noise plus baseline wander (three sinusoids below 0.5 Hz), shape (n, n_leads, n_samples), mV.

    The wander is evaluated on a 0.1-s grid and linearly interpolated (it is far below 5 Hz), which keeps this
    fast.
    """
    grid = np.arange(0.0, t[-1] + 0.2, 0.1)
    freq = rng.uniform(0.05, 0.5, (n, n_leads, 3, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, n_leads, 3, 1))
    amp = rng.uniform(0.0, 0.04, (n, n_leads, 3, 1))
    coarse = (amp * np.sin(2 * np.pi * freq * grid + phase)).sum(axis=2)
    pos = t / 0.1
    i0 = np.minimum(np.floor(pos).astype(np.int64), grid.size - 2)
    frac = (pos - i0).astype(np.float32)
    wander = coarse[..., i0] * (1 - frac) + coarse[..., i0 + 1] * frac
    white = rng.standard_normal((n, n_leads, t.size), dtype=np.float32) * np.float32(white_mv)
    return (wander + white).astype(np.float32)


def simulate_ecgs(
    patients: pd.DataFrame,
    fs: float = 100.0,
    seconds: float = 10.0,
    seed: int | np.random.Generator | None = 0,
    *,
    white_noise_mv: float = 0.015,
    chunk: int = 512,
) -> np.ndarray:
    """12-lead ECGs from per-patient features (see the module docstring for the model).

    Parameters
    ----------
    patients : pd.DataFrame
        Columns ``heart_rate`` (bpm), ``rr_sd_ms``, ``t_scale``, ``qrs_scale``, ``axis_deg``.
    fs : float
        Sampling rate, Hz.
    seconds : float
        Duration, s.
    seed : int or Generator
        Random seed.
    white_noise_mv : float
        SD of the white measurement noise, mV.
    chunk : int
        Patients per vectorised block.

    Returns
    -------
    np.ndarray, float32, shape (n, 12, round(fs * seconds))
        mV, leads in :data:`ecglens.leads.CANONICAL_LEADS` order.
    """
    if fs <= 0 or seconds <= 0:
        raise ConfigError(f"fs and seconds must be positive, got fs={fs}, seconds={seconds}.")
    rng = np.random.default_rng(seed)
    t = np.arange(round(fs * seconds)) / fs
    lead_mat = _lead_matrix().astype(np.float32)
    out = np.empty((len(patients), len(CANONICAL_LEADS), t.size), dtype=np.float32)
    for start in range(0, len(patients), chunk):
        p = patients.iloc[start : start + chunk]
        beats = _beat_times(p, seconds, rng)
        rec = np.einsum("lc,nct->nlt", lead_mat, _dipole(p, beats, fs, t.size))
        gains = rng.lognormal(0.0, 0.1, (len(p), len(_RECORDED), 1)).astype(np.float32)
        rec = rec * gains + _noise(len(p), len(_RECORDED), t, rng, white_noise_mv)
        lead_i, lead_ii = rec[:, 0], rec[:, 1]
        derived = {
            "III": lead_ii - lead_i,
            "aVR": -(lead_i + lead_ii) / 2,
            "aVL": lead_i - lead_ii / 2,
            "aVF": lead_ii - lead_i / 2,
        }
        recorded = dict(zip(_RECORDED, np.moveaxis(rec, 1, 0), strict=True))
        out[start : start + len(p)] = np.stack(
            [{**recorded, **derived}[name] for name in CANONICAL_LEADS], axis=1
        )
    return out


# ------------------------------------------------------------------------------------------------------------
# labs


def _simulate_labs(
    patients: pd.DataFrame,
    ecg_time: pd.Series,
    rng: np.random.Generator,
    draw_probs: Sequence[float],
    near_fraction: float,
    unit_mix: Mapping[str, float],
    noise_sd: float,
) -> pd.DataFrame:
    n = len(patients)
    n_draws = rng.choice(len(draw_probs), size=n, p=np.asarray(draw_probs) / np.sum(draw_probs))
    owner = np.repeat(np.arange(n), n_draws)
    m = owner.size
    near = rng.random(m) < near_fraction
    far = rng.uniform(10.0, 90.0, m) * rng.choice([-1.0, 1.0], m)
    offset = np.where(near, rng.normal(0.0, 2.5, m), far)
    hb = patients["hb"].to_numpy()[owner] + rng.normal(0.0, noise_sd, m)
    units = np.asarray(list(unit_mix))
    unit = units[
        rng.choice(len(units), size=m, p=np.asarray(list(unit_mix.values())) / sum(unit_mix.values()))
    ]
    report = {
        "g/dL": lambda v: np.round(v, 1),
        "g/L": lambda v: np.round(v * 10.0),
        "mmol/L": lambda v: np.round(v / MMOL_L_TO_G_DL, 1),
    }
    unknown = set(unit) - set(report)
    if unknown:
        raise ConfigError(
            f"unit_mix has units {sorted(unknown)} the simulator cannot write; use {sorted(report)}."
        )
    value = np.empty(m)
    for u, fn in report.items():
        value[unit == u] = fn(hb[unit == u])
    labs = pd.DataFrame(
        {
            "patient_id": patients["patient_id"].to_numpy()[owner],
            "time": ecg_time.to_numpy()[owner] + pd.to_timedelta(offset, unit="D"),
            "value": value,
            "unit": unit,
        }
    )
    return labs.sort_values(["time", "patient_id"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------------------
# cohort


@dataclass
class SimulatedCohort:
    """A simulated cohort (see :func:`simulate_cohort`).

    Attributes
    ----------
    patients : pd.DataFrame
        One row per patient: ``patient_id, age, sex (1 = female), hb (true, g/dL), heart_rate (bpm), rr_sd_ms,
        t_scale, qrs_scale, axis_deg, low_hb``.
    ecg_table : pd.DataFrame
        One row per ECG, row i <-> ``signals[i]``: ``record_id, patient_id, time (datetime), age, sex``.
    signals : np.ndarray, float32, shape (n, 12, n_samples)
        mV at ``fs``, canonical lead order.
    fs : float
        Sampling rate (Hz).
    labs : pd.DataFrame
        Draws: ``patient_id, time (datetime), value, unit`` (mixed units, as a lab system exports them).
    outcomes : pd.DataFrame
        ``patient_id, time (years), event, true_time, age, sex, hb, low_hb``.
    true_log_hr : dict
        The log hazard ratios used: ``low_hb``, ``age_per_10y``, ``male``.
    params : dict
        Every setting (JSON-ready).
    """

    patients: pd.DataFrame
    ecg_table: pd.DataFrame
    signals: np.ndarray
    fs: float
    labs: pd.DataFrame
    outcomes: pd.DataFrame
    true_log_hr: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    leads: tuple[str, ...] = CANONICAL_LEADS

    def __len__(self) -> int:
        return len(self.ecg_table)

    def ecg(self, i: int) -> Ecg:
        """The i-th ECG as an :class:`~ecglens.ecg.Ecg` (with age, sex and patient id)."""
        row = self.ecg_table.iloc[i]
        return Ecg(
            signal=self.signals[i],
            fs=self.fs,
            leads=self.leads,
            record_id=str(row["record_id"]),
            age=float(row["age"]),
            sex=code_to_sex(row["sex"]),
            source="simulated",
            meta={"patient_id": row["patient_id"]},
        )


def _ecg_table(patients: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One ECG per patient (``record_id, patient_id, time, age, sex``), dated uniformly over 2016-2018."""
    ecg_time = pd.Timestamp("2016-01-01") + pd.to_timedelta(rng.uniform(0.0, 3 * 365.0, len(patients)), unit="D")
    return pd.DataFrame({"record_id": [f"sim{i:06d}" for i in range(len(patients))],
                         "patient_id": patients["patient_id"], "time": ecg_time.round("min"),
                         "age": patients["age"], "sex": patients["sex"]})


def simulate_cohort(
    n_patients: int = 2000,
    seed: int = 0,
    fs: float = 100.0,
    seconds: float = 10.0,
    *,
    anemia_fraction: float = 0.15,
    effects: HbEffects = HbEffects(),
    hr_low_hb: float = 2.0,
    low_hb_threshold: float = 10.0,
    hr_age_per_10y: float = 1.5,
    hr_male: float = 1.3,
    outcome_kw: Mapping[str, Any] | None = None,
    draw_probs: Sequence[float] = (0.10, 0.55, 0.25, 0.10),
    near_fraction: float = 0.8,
    unit_mix: Mapping[str, float] | None = None,
    lab_noise_sd: float = 0.3,
) -> SimulatedCohort:
    """Simulate patients, one 12-lead ECG each, a lab table and outcomes with a known hazard ratio.

    Parameters
    ----------
    n_patients : int
        Number of patients (= ECGs).
    seed : int
        Master seed; patients, ECGs, labs and outcomes use independent child streams.
    fs, seconds : float
        ECG sampling rate (Hz) and duration (s).
    anemia_fraction : float
        Share of patients in the anemic tail.
    effects : HbEffects
        Hb -> ECG feature relation.
    hr_low_hb : float
        True hazard ratio of ``hb <= low_hb_threshold`` (g/dL).
    hr_age_per_10y, hr_male : float
        True hazard ratios of age (per 10 years) and male sex.
    outcome_kw : mapping, optional
        Passed to :func:`simulate_outcomes` (baseline, rate, shape, followup, censor_rate).
    draw_probs : sequence of float
        Probability of 0, 1, 2, ... lab draws per patient.
    near_fraction : float
        Share of draws within a few days of the ECG.
    unit_mix : mapping unit -> share, optional
        Default ``{"g/dL": 0.75, "g/L": 0.20, "mmol/L": 0.05}``.
    lab_noise_sd : float
        Analytical + biological variation of a draw, g/dL.

    Returns
    -------
    SimulatedCohort
    """
    if n_patients < 1:
        raise ConfigError(f"n_patients must be >= 1, got {n_patients}.")
    unit_mix = dict(unit_mix or {"g/dL": 0.75, "g/L": 0.20, "mmol/L": 0.05})
    s_pat, s_ecg, s_lab, s_out = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    patients = _simulate_patients(n_patients, s_pat, anemia_fraction, effects)
    patients["low_hb"] = (patients["hb"] <= low_hb_threshold).astype(int)
    ecg_table = _ecg_table(patients, s_pat)
    signals = simulate_ecgs(patients, fs=fs, seconds=seconds, seed=s_ecg)
    labs = _simulate_labs(
        patients, ecg_table["time"], s_lab, draw_probs, near_fraction, unit_mix, lab_noise_sd
    )
    true_log_hr = {
        "low_hb": float(np.log(hr_low_hb)),
        "age_per_10y": float(np.log(hr_age_per_10y)),
        "male": float(np.log(hr_male)),
    }
    x = np.column_stack([patients["low_hb"], (patients["age"] - 60.0) / 10.0, 1.0 - patients["sex"]])
    surv = simulate_outcomes(x, list(true_log_hr.values()), seed=s_out, **dict(outcome_kw or {}))
    outcomes = pd.concat([patients[["patient_id"]], surv, patients[["age", "sex", "hb", "low_hb"]]], axis=1)
    params = {
        "n_patients": n_patients,
        "seed": seed,
        "fs": fs,
        "seconds": seconds,
        "anemia_fraction": anemia_fraction,
        "effects": asdict(effects),
        "hr_low_hb": hr_low_hb,
        "low_hb_threshold": low_hb_threshold,
        "hr_age_per_10y": hr_age_per_10y,
        "hr_male": hr_male,
        "outcome_kw": dict(outcome_kw or {}),
        "draw_probs": list(draw_probs),
        "near_fraction": near_fraction,
        "unit_mix": unit_mix,
        "lab_noise_sd": lab_noise_sd,
    }
    return SimulatedCohort(
        patients=patients,
        ecg_table=ecg_table,
        signals=signals,
        fs=float(fs),
        labs=labs,
        outcomes=outcomes,
        true_log_hr=true_log_hr,
        params=params,
    )
