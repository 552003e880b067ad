"""Site gain: match the per-lead amplitudes of another hospital's ECGs to those a model was trained on.

Devices and sites scale leads differently: on LUDB (Russia, 500 Hz) the median RMS of the precordial leads, once
brought to the shipped models' contract, is about half of PTB-XL's, while the limb leads match. A model that
learned amplitudes from PTB-XL (voltage carries sex and age information) then reads every LUDB ECG as a small one.

A **site gain** is one factor per lead, the same for every record of a site: the model's reference amplitude (the
median per-lead RMS of its inputs on its calibration records, stored by ``ecglens calibrate`` in the checkpoint's
calibration as ``lead_rms_mv``) divided by the site's median per-lead RMS over many of its records. It uses no
labels, only the site's own ECGs, and keeps every difference *between* the site's records (a record twice as large
as the site's median stays twice as large); what it removes is the site's overall scale per lead. It assumes the
site's population is not very different in amplitude from the training population, so a site of, e.g., only
patients with left-ventricular hypertrophy is a bad place to estimate it; estimate it on a broad sample.

``ecglens predict ... --site-gain auto`` estimates it from (a sample of) the inputs and writes it next to the
output as JSON; ``--site-gain FILE`` reuses a file (the same gain for every shard of a job). Rows predicted with
a gain carry the flag ``site_gain``. ``ecglens evaluate ... --site-gain auto`` does the same on a prepared cache.

Measured (docs/results.md, "Other hospitals"): on LUDB the shipped ``age-sex`` model goes from sex AUROC 0.697 to
0.822 and age MAE 8.22 to 7.93 y (``age-sex-ensemble``: 0.729 to 0.831, 8.53 to 8.08 y) with a site gain estimated
on LUDB's own 197 ECGs (unlabelled), and a gain estimated on one half of LUDB does as well on the other half.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import ConfigError

__all__ = ["GAIN_RANGE", "MIN_LEAD_RMS_MV", "MIN_SITE_RECORDS", "SiteGain", "as_site_gain", "estimate_site_gain",
           "lead_rms", "reference_rms", "signals_rms"]

#: fewest records (with that lead present) from which a site's median amplitude is taken
MIN_SITE_RECORDS = 20
#: a lead whose RMS is below this (mV) counts as absent (flat, zero-filled) and is left out of the medians
MIN_LEAD_RMS_MV = 0.005
#: gains are clipped to this range: a larger correction means a unit or lead problem, not a site difference
GAIN_RANGE = (0.2, 5.0)


def lead_rms(x: np.ndarray) -> np.ndarray:
    """Root mean square of each lead over time (and over windows), in the signal's unit.

    Parameters
    ----------
    x : np.ndarray, shape (L, T) or (W, L, T)
        One record's model inputs: leads x samples, or its W windows (high-pass filtered, so about zero-mean).

    Returns
    -------
    np.ndarray, float64, shape (L,)
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"lead_rms expects [L, T] or [W, L, T], got shape {arr.shape}.")
    return np.sqrt(np.mean(arr * arr, axis=(0, 2)))


def signals_rms(signals: np.ndarray, indices: Sequence[int] | np.ndarray | None = None,
                chunk: int = 512) -> np.ndarray:
    """:func:`lead_rms` of many records of a prepared cache, read in chunks (a memory map is never loaded whole).

    Parameters
    ----------
    signals : np.ndarray, shape (N, L, T)
        Model inputs, e.g. ``open_cache(...).signals``.
    indices : sequence of int, optional
        The records to measure (default all).

    Returns
    -------
    np.ndarray, float64, shape (len(indices), L)
    """
    idx = np.arange(len(signals)) if indices is None else np.asarray(indices, dtype=np.int64)
    parts = []
    for start in range(0, idx.size, chunk):
        x = np.asarray(signals[np.sort(idx[start:start + chunk])], dtype=np.float64)
        order = np.argsort(np.argsort(idx[start:start + chunk]))
        parts.append(np.sqrt(np.mean(x * x, axis=-1))[order])
    return np.concatenate(parts) if parts else np.zeros((0, signals.shape[1]))


def _median_present(rms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead median of ``rms`` [N, L] over records where the lead is present, and how many those are."""
    present = np.isfinite(rms) & (rms >= MIN_LEAD_RMS_MV)
    counts = present.sum(axis=0)
    masked = np.where(present, rms, np.nan)
    with np.errstate(all="ignore"):
        medians = np.array([np.nanmedian(masked[:, i]) if counts[i] else np.nan for i in range(rms.shape[1])])
    return medians, counts


def reference_rms(rms: np.ndarray, leads: Sequence[str]) -> dict[str, float]:
    """A model's reference amplitudes: the per-lead median RMS (mV) of its inputs on many records.

    Parameters
    ----------
    rms : np.ndarray, shape (N, L)
        :func:`lead_rms` of N records (e.g. a calibration split), leads in ``leads`` order.
    leads : sequence of str
        The model's leads.

    Returns
    -------
    dict of str to float
        Lead -> median RMS in mV (leads present in fewer than :data:`MIN_SITE_RECORDS` records left out).
    """
    rms = np.asarray(rms, dtype=np.float64)
    medians, counts = _median_present(rms)
    return {lead: round(float(m), 6) for lead, m, n in zip(leads, medians, counts, strict=True)
            if n >= MIN_SITE_RECORDS}


@dataclass(frozen=True)
class SiteGain:
    """One amplitude factor per lead for the records of one site (see the module docstring).

    Attributes
    ----------
    leads : tuple of str
        The model's leads, in its input order.
    gains : tuple of float
        Factor applied to each lead of the model inputs (1.0 where a lead had no estimate).
    n_records : int
        Records the site's amplitudes were measured on.
    site_rms_mv, reference_rms_mv : tuple of float
        The site's and the model's median per-lead RMS (mV; NaN where unknown).
    """

    leads: tuple[str, ...]
    gains: tuple[float, ...]
    n_records: int
    site_rms_mv: tuple[float, ...]
    reference_rms_mv: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.leads) == len(self.gains) == len(self.site_rms_mv) == len(self.reference_rms_mv):
            raise ConfigError("a site gain needs one gain, site RMS and reference RMS per lead.")
        if not all(math.isfinite(g) and g > 0 for g in self.gains):
            raise ConfigError(f"site gains must be finite and positive, got {list(self.gains)}.")

    def apply(self, windows: np.ndarray) -> np.ndarray:
        """``windows`` [..., L, T] with each lead multiplied by its gain (a new float32 array)."""
        gains = np.asarray(self.gains, dtype=np.float32)[:, None]
        return np.asarray(windows, dtype=np.float32) * gains

    def describe(self) -> str:
        """One line, e.g. ``site gain from 197 records: I x0.98, ..., V2 x2.20, ...``."""
        parts = ", ".join(f"{lead} x{g:.2f}" for lead, g in zip(self.leads, self.gains, strict=True))
        return f"site gain from {self.n_records} records: {parts}"

    def to_dict(self) -> dict[str, Any]:
        def clean(values: Sequence[float]) -> list[float | None]:
            return [None if not math.isfinite(v) else round(float(v), 6) for v in values]

        return {"leads": list(self.leads), "gains": clean(self.gains), "n_records": self.n_records,
                "site_rms_mv": clean(self.site_rms_mv), "reference_rms_mv": clean(self.reference_rms_mv)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SiteGain:
        try:
            def nums(key: str) -> tuple[float, ...]:
                return tuple(math.nan if v is None else float(v) for v in d[key])

            return cls(tuple(str(x) for x in d["leads"]), nums("gains"), int(d["n_records"]), nums("site_rms_mv"),
                       nums("reference_rms_mv"))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"not a site gain ({type(err).__name__}: {err}); write one with "
                              "`ecglens predict ... --site-gain auto`.") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON file that ``--site-gain FILE`` reads."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SiteGain:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read the site gain {path}: {err}") from None

    def check_leads(self, leads: Sequence[str]) -> None:
        """Refuse a gain made for other leads than the model's (``leads``, in input order)."""
        if tuple(leads) != self.leads:
            raise ConfigError(f"this site gain is for the leads {list(self.leads)}, the model takes {list(leads)}; "
                              "estimate one for this model with --site-gain auto.")


def estimate_site_gain(rms: np.ndarray, reference: Mapping[str, float] | None, leads: Sequence[str]) -> SiteGain:
    """The site gain of a site whose records have per-lead RMS ``rms``.

    Parameters
    ----------
    rms : np.ndarray, shape (N, L)
        :func:`lead_rms` of N of the site's records (model inputs), leads in ``leads`` order.
    reference : mapping of str to float
        The model's reference RMS per lead (mV): its calibration's ``lead_rms_mv``.
    leads : sequence of str
        The model's leads.

    Returns
    -------
    SiteGain
        ``reference / site median`` per lead, clipped to :data:`GAIN_RANGE`; 1.0 for a lead without a reference
        or present in fewer than :data:`MIN_SITE_RECORDS` records.

    Raises
    ------
    ConfigError
        Without a reference (a checkpoint calibrated before site gains existed: re-run ``ecglens calibrate``) or
        with fewer than :data:`MIN_SITE_RECORDS` records.
    """
    if not reference:
        raise ConfigError("this model stores no reference amplitudes (its calibration has no lead_rms_mv); "
                          "re-run `ecglens calibrate` on its validation data to add them.")
    rms = np.asarray(rms, dtype=np.float64)
    if rms.ndim != 2 or rms.shape[1] != len(leads):
        raise ValueError(f"rms must be [N, {len(leads)}], got shape {rms.shape}.")
    if rms.shape[0] < MIN_SITE_RECORDS:
        raise ConfigError(f"a site gain needs the amplitudes of at least {MIN_SITE_RECORDS} of the site's records, "
                          f"got {rms.shape[0]}; give more records (a broad sample of the site).")
    site, counts = _median_present(rms)
    ref = np.array([reference.get(lead, math.nan) for lead in leads], dtype=np.float64)
    ok = np.isfinite(ref) & np.isfinite(site) & (counts >= MIN_SITE_RECORDS)
    with np.errstate(all="ignore"):
        gains = np.where(ok, np.clip(ref / site, *GAIN_RANGE), 1.0)
    return SiteGain(tuple(leads), tuple(float(g) for g in gains), int(rms.shape[0]), tuple(float(s) for s in site),
                    tuple(float(r) for r in ref))


def as_site_gain(value: SiteGain | Mapping[str, Any] | str | os.PathLike[str] | None) -> SiteGain | None:
    """A :class:`SiteGain` from itself, its dict or its JSON file (``None`` stays ``None``)."""
    if value is None or isinstance(value, SiteGain):
        return value
    if isinstance(value, Mapping):
        return SiteGain.from_dict(value)
    return SiteGain.load(value)
