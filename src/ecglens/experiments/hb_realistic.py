"""A realistic hemoglobin cohort: weak ECG signal, a direct ECG -> risk path, repeated ECGs, death and heart failure.

Issue #24 (item 6): the cohort of :mod:`ecglens.experiments.simulate` makes hemoglobin drive the ECG so strongly that
the best possible estimate reaches r = 0.82 (published ECG models: r = 0.56, anemia AUROC 0.85), risk runs only
through true Hb, and each patient has one ECG and one outcome. This generator works on the ECG *features* (no
waveforms, so a cohort of 4,000 patients takes milliseconds and a coverage study over hundreds of seeds fits in
minutes) and states its ground truth.

Generative model (:class:`RealisticSettings`; years, g/dL, bpm)
----------------------------------------------------------------
Patients
    age ~ Normal(62, 14) clipped to [18, 95]; female with probability 0.5. Baseline Hb as in
    :mod:`~ecglens.experiments.simulate` (Normal(15.0, 1.1) men, Normal(13.4, 1.0) women, -0.02 per year above
    50, an anemic tail with probability ``anemia_fraction`` lowered by Gamma(2, 1.5)), clipped to [4, 19.5].
    A patient-level autonomic tone ``u`` ~ Normal(0, ``tone_sd``) bpm: it raises the heart rate of every ECG of the
    patient AND the hazards (the direct ECG -> risk path that does not run through Hb).
ECGs over time
    1 + Poisson(``extra_ecgs``) ECGs per patient (at most ``max_ecgs``): the baseline (index) ECG at time 0, the
    others at Uniform(0, end of follow-up) years. Hb at an ECG = baseline Hb + Normal(0, ``hb_visit_sd``) (later
    ECGs), so repeated ECGs see a varying Hb. Features of an ECG with ``d = Hb - 13.5`` and signal strength
    ``s = ecg_signal``: heart rate = 68 + 2 female - 3.0 s d + u + Normal(0, 7); log RR-SD = log 40 + 0.10 s d -
    0.01 (age - 60) + Normal(0, 0.3); T scale = 1 + 0.06 s d + Normal(0, 0.12); log QRS scale = -0.105 female +
    Normal(0, 0.15) (carries sex, not Hb). ``s = 1`` is the strength of ``ecglens study simulate``.
The oracle (:func:`fit_oracle`)
    The best linear estimate of Hb from the four features of one ECG (least squares on a large calibration
    sample; fixed afterwards like a trained model): ``hb_est``. Two parameters set what it can reach:
    ``ecg_signal`` its Pearson r with Hb, and ``anemia_fraction`` (the anemic tail) its AUROC for Hb <= 10 g/dL
    at that r (a larger tail, a lower AUROC). :func:`calibrate` bisects them to r = 0.55 and AUROC = 0.85 (the
    published ECG model: r 0.56, AUROC 0.85): ``anemia_fraction`` 0.25, ``ecg_signal`` 0.4297 (the defaults;
    ``ecglens study calibrate`` repeats it).
Outcomes from the baseline ECG (cause-specific proportional hazards, Weibull baselines)
    Prevalent HF at baseline: logistic, -3.3 + 0.5 per 10 years + 0.35 per g/dL below 13.5 (about 7 %).
    Death: rate 0.03/year, shape 1.2; HR per 1 g/dL decrease of true Hb ``hr_death_per_g_dl`` (1.15), per 10 bpm of
    tone ``hr_death_per_10bpm`` (1.3), per 10 years (log 1.8), male (log 1.3), prevalent HF (log 2.0). New HF: rate
    0.02/year, shape 1.2; per 1 g/dL decrease ``hr_hf_per_g_dl`` (1.656: calibrated by
    :func:`~ecglens.experiments.study_coverage.calibrate_hf_effect` so that the HR of ECG-anemia yes/no for new HF
    is 2.47, as published), per 10 bpm ``hr_hf_per_10bpm`` (1.4), per 10 years
    (log 1.6), male (log 1.3). Latent death and HF times are independent given the covariates, so these are the
    cause-specific hazards; HF is observed only before death and censoring (death is a competing risk). Censoring:
    Uniform(2, 8) years administrative, Exponential(0.03/year) loss to follow-up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ConfigError

__all__ = ["FEATURES", "Oracle", "RealisticSettings", "anemia_labels", "calibrate", "calibrate_signal", "fit_oracle",
           "simulate_realistic"]

#: the ECG features the oracle sees (one ECG)
FEATURES: tuple[str, ...] = ("heart_rate", "log_rr_sd", "t_scale", "log_qrs_scale")
#: WHO anemia: Hb < 12 g/dL (women), < 13 g/dL (men)
WHO_CUT = {1.0: 12.0, 0.0: 13.0}


@dataclass(frozen=True)
class RealisticSettings:
    """Every parameter of the realistic generator (module docstring); log hazard ratios as HRs.

    ``ecg_signal`` is calibrated (:func:`calibrate_signal`, docs/clinical.md) so that the oracle reaches r = 0.55.
    """

    anemia_fraction: float = 0.25
    ecg_signal: float = 0.4296875
    tone_sd: float = 6.0
    hb_visit_sd: float = 0.6
    extra_ecgs: float = 1.5
    max_ecgs: int = 6
    prevalent_hf_intercept: float = -3.3
    death_rate: float = 0.03
    hf_rate: float = 0.02
    shape: float = 1.2
    hr_death_per_g_dl: float = 1.15
    hr_death_per_10bpm: float = 1.3
    hr_hf_per_g_dl: float = 1.65625
    hr_hf_per_10bpm: float = 1.4
    hr_death_prevalent_hf: float = 2.0
    followup: tuple[float, float] = (2.0, 8.0)
    censor_rate: float = 0.03

    def __post_init__(self) -> None:
        if self.ecg_signal < 0 or self.tone_sd < 0 or self.hb_visit_sd < 0 or self.extra_ecgs < 0:
            raise ConfigError("ecg_signal, tone_sd, hb_visit_sd and extra_ecgs must be >= 0.")
        if self.max_ecgs < 1 or min(self.death_rate, self.hf_rate, self.shape) <= 0:
            raise ConfigError("need max_ecgs >= 1 and positive death_rate, hf_rate and shape.")


def _hb(n: int, rng: np.random.Generator, age: np.ndarray, female: np.ndarray, anemia_fraction: float) -> np.ndarray:
    hb = np.where(female == 1.0, rng.normal(13.4, 1.0, n), rng.normal(15.0, 1.1, n))
    hb = hb - 0.02 * np.clip(age - 50.0, 0.0, None)
    hb = hb - (rng.random(n) < anemia_fraction) * rng.gamma(2.0, 1.5, n)
    return np.clip(hb, 4.0, 19.5)


def _features(hb: np.ndarray, age: np.ndarray, female: np.ndarray, tone: np.ndarray, s: float,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The four ECG features of ECGs with these Hb / age / sex / tone values (module docstring)."""
    n, d = hb.size, hb - 13.5
    return {"heart_rate": np.clip(68.0 + 2.0 * female - 3.0 * s * d + tone + rng.normal(0.0, 7.0, n), 35.0, 160.0),
            "log_rr_sd": np.log(40.0) + 0.10 * s * d - 0.01 * (age - 60.0) + rng.normal(0.0, 0.3, n),
            "t_scale": 1.0 + 0.06 * s * d + rng.normal(0.0, 0.12, n),
            "log_qrs_scale": np.log(0.9) * female + rng.normal(0.0, 0.15, n)}


def _weibull(rng: np.random.Generator, eta: np.ndarray, rate: float, shape: float) -> np.ndarray:
    return (rng.exponential(1.0, eta.size) * np.exp(-eta)) ** (1.0 / shape) / rate


def simulate_realistic(n_patients: int, seed: int | np.random.Generator = 0,
                       settings: RealisticSettings = RealisticSettings()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate patients with outcomes and their ECGs (features only).

    Parameters
    ----------
    n_patients : int
        Number of patients.
    seed : int or Generator
        Random seed (same arguments, same cohort).
    settings : RealisticSettings
        The generator's parameters.

    Returns
    -------
    patients : pd.DataFrame, shape (n_patients, ...)
        ``patient_id, age, sex (1 = female), hb (baseline, g/dL), tone (bpm), prevalent_hf, time (years of
        follow-up), death (0/1), hf (0/1: new HF observed before death and censoring), hf_time (years to HF, death
        or censoring, whichever first), status (0 censored, 1 HF, 2 death without HF first)``.
    ecgs : pd.DataFrame
        One row per ECG, the baseline first: ``patient_id, ecg_index (0 = baseline), ecg_time (years from
        baseline), hb (g/dL at that ECG)`` and :data:`FEATURES`.
    """
    if n_patients < 1:
        raise ConfigError(f"n_patients must be >= 1, got {n_patients}.")
    st = settings
    rng = np.random.default_rng(seed)
    n = n_patients
    age = np.clip(rng.normal(62.0, 14.0, n), 18.0, 95.0)
    female = (rng.random(n) < 0.5).astype(float)
    hb = _hb(n, rng, age, female, st.anemia_fraction)
    tone = rng.normal(0.0, st.tone_sd, n)
    below = 13.5 - hb
    age10, male = (age - 60.0) / 10.0, 1.0 - female
    p_hf = 1.0 / (1.0 + np.exp(-(st.prevalent_hf_intercept + 0.5 * age10 + 0.35 * below)))
    prevalent = (rng.random(n) < p_hf).astype(int)
    eta_d = (np.log(st.hr_death_per_g_dl) * below + np.log(st.hr_death_per_10bpm) * tone / 10.0
             + np.log(1.8) * age10 + np.log(1.3) * male + np.log(st.hr_death_prevalent_hf) * prevalent)
    eta_h = (np.log(st.hr_hf_per_g_dl) * below + np.log(st.hr_hf_per_10bpm) * tone / 10.0
             + np.log(1.6) * age10 + np.log(1.3) * male)
    t_death = _weibull(rng, eta_d, st.death_rate, st.shape)
    t_hf = _weibull(rng, eta_h, st.hf_rate, st.shape)
    cens = np.minimum(rng.uniform(*st.followup, n),
                      rng.exponential(1.0 / st.censor_rate, n) if st.censor_rate > 0 else np.inf)
    time = np.minimum(t_death, cens)
    hf = ((t_hf < time) & (prevalent == 0)).astype(int)
    status = np.where(hf == 1, 1, np.where(t_death <= cens, 2, 0))
    patients = pd.DataFrame({
        "patient_id": np.arange(n), "age": age, "sex": female, "hb": hb, "tone": tone, "prevalent_hf": prevalent,
        "time": time, "death": (t_death <= cens).astype(int), "hf": hf,
        "hf_time": np.where(hf == 1, t_hf, time), "status": status})
    k = 1 + np.minimum(rng.poisson(st.extra_ecgs, n), st.max_ecgs - 1)
    owner = np.repeat(np.arange(n), k)
    first = np.r_[0, np.cumsum(k)[:-1]]
    index = np.arange(owner.size) - first[owner]
    later = index > 0
    ecg_time = np.where(later, rng.uniform(0.0, 1.0, owner.size) * time[owner], 0.0)
    hb_ecg = np.clip(hb[owner] + later * rng.normal(0.0, st.hb_visit_sd, owner.size), 4.0, 19.5)
    feats = _features(hb_ecg, age[owner] + ecg_time, female[owner], tone[owner], st.ecg_signal, rng)
    ecgs = pd.DataFrame({"patient_id": owner, "ecg_index": index, "ecg_time": ecg_time, "hb": hb_ecg, **feats})
    return patients, ecgs


def anemia_labels(hb: Any, sex: Any, cuts: dict[str, float | None]) -> dict[str, np.ndarray]:
    """0/1 anemia per level: ``None`` = WHO sex-specific (< 12 women, < 13 men), a number = Hb <= it (g/dL)."""
    hb, sex = np.asarray(hb, float), np.asarray(sex, float)
    who = np.where(sex == 1.0, WHO_CUT[1.0], WHO_CUT[0.0])
    return {level: ((hb < who) if cut is None else (hb <= cut)).astype(int) for level, cut in cuts.items()}


@dataclass(frozen=True)
class Oracle:
    """The best linear Hb estimate from one ECG's features (``hb_est = intercept + features @ coef``).

    ``r``: its Pearson r with Hb on the calibration sample; ``auroc``: AUROC of -hb_est for Hb <= 10 g/dL there.
    """

    intercept: float
    coef: tuple[float, ...]
    r: float
    auroc: float

    def predict(self, ecgs: pd.DataFrame) -> np.ndarray:
        """``hb_est`` (g/dL), shape (n,), from the :data:`FEATURES` columns of ``ecgs``."""
        return self.intercept + ecgs[list(FEATURES)].to_numpy(float) @ np.asarray(self.coef)


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def fit_oracle(settings: RealisticSettings, n_patients: int = 100_000, seed: int = 12345) -> Oracle:
    """Least squares of Hb on :data:`FEATURES` over the baseline ECGs of a large calibration cohort."""
    patients, ecgs = simulate_realistic(n_patients, seed, settings)
    base = ecgs[ecgs["ecg_index"] == 0]
    x = np.column_stack([np.ones(len(base)), base[list(FEATURES)].to_numpy(float)])
    beta = np.linalg.lstsq(x, base["hb"].to_numpy(), rcond=None)[0]
    est = x @ beta
    r = float(np.corrcoef(est, base["hb"])[0, 1])
    auroc = _auroc((base["hb"].to_numpy() <= 10.0).astype(int), -est)
    return Oracle(float(beta[0]), tuple(float(b) for b in beta[1:]), r, auroc)


def calibrate_signal(target_r: float = 0.55, settings: RealisticSettings = RealisticSettings(),
                     n_patients: int = 100_000, tol: float = 0.002) -> tuple[float, Oracle, list[dict[str, float]]]:
    """Bisect ``ecg_signal`` in [0, 1] until the oracle's r is within ``tol`` of ``target_r``.

    Returns ``(ecg_signal, oracle, steps)``; each step is ``{"ecg_signal", "r", "auroc"}`` (the calibration log).
    """
    lo, hi, steps = 0.0, 1.0, []
    for _ in range(30):
        mid = (lo + hi) / 2.0
        oracle = fit_oracle(replace(settings, ecg_signal=mid), n_patients)
        steps.append({"ecg_signal": mid, "r": oracle.r, "auroc": oracle.auroc})
        if abs(oracle.r - target_r) <= tol:
            return mid, oracle, steps
        lo, hi = (mid, hi) if oracle.r < target_r else (lo, mid)
    raise ConfigError(f"could not reach oracle r = {target_r} with ecg_signal in [0, 1] (last {steps[-1]}).")


def calibrate(target_r: float = 0.55, target_auroc: float = 0.85, settings: RealisticSettings = RealisticSettings(),
              n_patients: int = 100_000, tol_auroc: float = 0.003) -> tuple[RealisticSettings, Oracle, list[dict]]:
    """Two-level bisection: ``anemia_fraction`` in [0.05, 0.45] for the oracle's AUROC (Hb <= 10), and inside it
    ``ecg_signal`` (:func:`calibrate_signal`) for its r. A larger anemic tail lowers the AUROC at a fixed r.

    Returns ``(settings, oracle, steps)``; each step is ``{"anemia_fraction", "ecg_signal", "r", "auroc"}``.
    """
    lo, hi, steps = 0.05, 0.45, []
    for _ in range(20):
        mid = round((lo + hi) / 2.0, 4)
        cand = replace(settings, anemia_fraction=mid)
        signal, oracle, _ = calibrate_signal(target_r, cand, n_patients)
        steps.append({"anemia_fraction": mid, "ecg_signal": signal, "r": oracle.r, "auroc": oracle.auroc})
        if abs(oracle.auroc - target_auroc) <= tol_auroc:
            return replace(cand, ecg_signal=signal), oracle, steps
        lo, hi = (mid, hi) if oracle.auroc > target_auroc else (lo, mid)
    raise ConfigError(f"could not reach AUROC {target_auroc} at r = {target_r} (last {steps[-1]}).")


def settings_dict(settings: RealisticSettings) -> dict[str, Any]:
    """The settings as a JSON-ready dict."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
