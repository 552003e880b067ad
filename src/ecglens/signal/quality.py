"""Signal-quality heuristics: flat, noisy, saturated and missing (NaN) leads.

All functions take a signal ``[n_leads, n_samples]`` in mV with its sampling rate ``fs`` in Hz and never modify
it. The thresholds below were checked against real data so that clean recordings are not flagged:

* **flat** — standard deviation below :data:`FLAT_STD_MV` (0.01 mV). The least variable lead of 24,000 PTB-XL
  leads (2,000 records) has 0.02 mV; a disconnected electrode shows a few microvolts.
* **noisy** — estimated broadband-noise fraction above :data:`NOISY_FRACTION` (0.5). The fraction is the power
  spectral density at >= :data:`NOISE_BAND_HZ` (40 Hz, above nearly all QRS energy) relative to the mean
  density of the whole band above 0.5 Hz; for white noise added to an ECG it equals the share of the power
  that is noise, so 0.5 means noise as strong as the ECG (SNR 0 dB). On PTB-XL (100 Hz) the 99.9th percentile
  is 0.25, on the 500 Hz fixtures at most 0.12. Needs ``fs >= 90`` Hz (a 5 Hz wide band above 40 Hz); at lower
  rates no lead is called noisy.
* **saturated** — the lead stays at its own maximum or minimum for at least :data:`SATURATION_MIN_S`
  (0.2 s, and at least 3 samples): the plateau of an amplifier or ADC at its rail. Real waves do not plateau at
  their extreme for that long (the longest such run in PTB-XL at 100 Hz is 0.1 s; at 500 Hz 0.12 s, a constant
  tail at the end of a record).
* **nan** — any NaN (or infinite) sample in the lead.

:func:`calibration_span` finds the calibration pulse some carts append to the recording (Philips PageWriter:
0.2 s at 1 mV on every lead between stretches of zeros, in the 11th second): what the vendor readers remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..ecg import Ecg
from ..exceptions import SamplingRateError, SignalQualityError
from ..leads import CANONICAL_LEADS

__all__ = [
    "FLAT_STD_MV",
    "NOISE_BAND_HZ",
    "NOISY_FRACTION",
    "SATURATION_MIN_S",
    "QualityReport",
    "assess_finite_rows",
    "assess_quality",
    "calibration_span",
    "check_usable",
    "noise_fraction",
]

#: standard deviation (mV) below which a lead is flat
FLAT_STD_MV: float = 0.01
#: estimated broadband-noise share of the power above which a lead is noisy
NOISY_FRACTION: float = 0.5
#: lower edge (Hz) of the band whose power is taken as noise
NOISE_BAND_HZ: float = 40.0
#: lowest frequency (Hz) counted in the total power (below it: baseline wander, not noise nor ECG)
_TOTAL_BAND_HZ: float = 0.5
#: minimal width (Hz) of the noise band: fs must be at least 2 * (40 + 5) = 90 Hz
_MIN_NOISE_BAND_WIDTH_HZ: float = 5.0
#: shortest plateau (s) at a lead's extreme value that counts as saturation
SATURATION_MIN_S: float = 0.2
_SATURATION_MIN_SAMPLES: int = 3
#: a calibration pulse: every recorded lead at one value (within _CAL_TOL_MV) of 0.5-2 mV for 0.08-0.5 s, with only
#: zeros (within _CAL_TOL_MV: a converted file jitters by a few 5 uV steps) between it and the record's end (or
#: start), within the last (first) 1.5 s
_CAL_TOL_MV: float = 0.02
_CAL_LEVEL_MV: tuple[float, float] = (0.5, 2.0)
_CAL_WIDTH_S: tuple[float, float] = (0.08, 0.5)
_CAL_MAX_SPAN_S: float = 1.5


@dataclass(frozen=True)
class QualityReport:
    """What :func:`assess_quality` found.

    Attributes
    ----------
    flat_leads, noisy_leads, saturated_leads, nan_leads : tuple of str
        Names of the leads with each problem.
    nan_fraction : float
        Fraction of all samples that are NaN (0 to 1).
    flags : tuple of str
        One ``"problem:lead"`` string per finding, e.g. ``("flat:V3", "noisy:II")``, in lead order.
    """

    flat_leads: tuple[str, ...] = ()
    noisy_leads: tuple[str, ...] = ()
    saturated_leads: tuple[str, ...] = ()
    nan_leads: tuple[str, ...] = ()
    nan_fraction: float = 0.0
    flags: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing was flagged."""
        return not self.flags

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def summary(self) -> str:
        """One line: ``"ok"`` or the flags joined by commas."""
        return "ok" if self.ok else ", ".join(self.flags)


def _lead_names(n_leads: int, leads: Sequence[str] | None) -> tuple[str, ...]:
    if leads is not None:
        names = tuple(str(n) for n in leads)
        if len(names) != n_leads:
            raise ValueError(f"{len(names)} lead names for {n_leads} leads; give one name per row.")
        return names
    if n_leads == len(CANONICAL_LEADS):
        return CANONICAL_LEADS
    return tuple(f"lead{i}" for i in range(n_leads))


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D boolean array."""
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def noise_fraction(x: np.ndarray, fs: float) -> np.ndarray:
    """Estimated share of each lead's power that is broadband noise (see module docstring).

    Parameters
    ----------
    x : np.ndarray, shape (n_leads, n_samples)
        Finite signal in mV sampled at ``fs`` Hz.
    fs : float
        Sampling rate in Hz.

    Returns
    -------
    np.ndarray, shape (n_leads,)
        Ratio of the mean power density at >= 40 Hz to the mean density above 0.5 Hz (about 0 for a clean
        ECG, about 1 for white noise); all zeros when ``fs < 90`` Hz or a lead has no power above 0.5 Hz.
    """
    x = np.asarray(x, dtype=np.float64)
    if fs / 2 - NOISE_BAND_HZ < _MIN_NOISE_BAND_WIDTH_HZ or x.shape[-1] < 4:
        return np.zeros(x.shape[0])
    # no mean to remove: it changes only the 0-Hz bin, which lies in neither band
    spectrum = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / fs)  # increasing: each band is a tail of the spectrum
    total = _mean_power(spectrum[:, int(np.searchsorted(freqs, _TOTAL_BAND_HZ)):])
    noise = _mean_power(spectrum[:, int(np.searchsorted(freqs, NOISE_BAND_HZ)):])
    return np.where(total > 0, noise / np.where(total > 0, total, 1.0), 0.0)


def _mean_power(spectrum: np.ndarray) -> np.ndarray:
    """Mean of ``|X|^2`` over the last axis of a complex [rows, bins] array, without a [rows, bins] temporary
    (at 500 Hz the temporaries cost twice the FFT)."""
    re, im = spectrum.real, spectrum.imag
    return (np.einsum("ij,ij->i", re, re) + np.einsum("ij,ij->i", im, im)) / max(spectrum.shape[-1], 1)


def _lead_mean_std(x: np.ndarray, nan: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and standard deviation over the non-NaN samples (0 for an all-NaN lead), no warnings;
    ``nan=None``: the signal has no NaN."""
    if nan is None:
        mean = x.mean(axis=-1)
        return mean, x.std(axis=-1)
    counts = np.maximum((~nan).sum(axis=-1), 1)
    mean = np.where(nan, 0.0, x).sum(axis=-1) / counts
    std = np.sqrt((np.where(nan, 0.0, x - mean[:, None]) ** 2).sum(axis=-1) / counts)
    return mean, std


def _saturated(x: np.ndarray, fs: float, flat: np.ndarray, has_nan: bool = True,
               extremes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Leads that stay at their own maximum or minimum for at least SATURATION_MIN_S (NaNs ignored);
    ``extremes``: each row's maximum and minimum [rows] when known (``x`` then has no NaN)."""
    min_run = max(_SATURATION_MIN_SAMPLES, int(np.ceil(SATURATION_MIN_S * fs)))
    out = np.zeros(x.shape[0], dtype=bool)
    if x.shape[-1] < min_run:
        return out
    if extremes is not None:
        at_max, at_min = x == extremes[0][:, None], x == extremes[1][:, None]
    elif not has_nan:
        at_max = x == x.max(axis=-1, keepdims=True)
        at_min = x == x.min(axis=-1, keepdims=True)
    else:
        with np.errstate(invalid="ignore"):
            at_max = x == np.where(np.isnan(x), -np.inf, x).max(axis=-1, keepdims=True)
            at_min = x == np.where(np.isnan(x), np.inf, x).min(axis=-1, keepdims=True)
    # a run of min_run samples needs at least min_run samples at the extreme: test those leads only
    candidates = ((at_max.sum(-1) >= min_run) | (at_min.sum(-1) >= min_run)) & ~flat
    for i in np.flatnonzero(candidates):
        out[i] = max(_longest_run(at_max[i]), _longest_run(at_min[i])) >= min_run
    return out


def assess_quality(
    signal: np.ndarray | Ecg, fs: float | None = None, leads: Sequence[str] | None = None
) -> QualityReport:
    """Flag flat, noisy, saturated and NaN-containing leads.

    Parameters
    ----------
    signal : np.ndarray, shape (n_leads, n_samples), or Ecg
        Signal in mV. An :class:`~ecglens.ecg.Ecg` brings its own ``fs`` and lead names.
    fs : float
        Sampling rate in Hz (required for arrays; ignored for an ``Ecg``).
    leads : sequence of str, optional
        Lead names for the flags; default the 12 canonical names for 12 rows, else ``lead0``, ``lead1``, ...

    Returns
    -------
    QualityReport
        See the module docstring for the heuristics and their thresholds.
    """
    if isinstance(signal, Ecg):
        fs, leads, signal = signal.fs, signal.leads, signal.signal
    if fs is None or not float(fs) > 0:
        raise SamplingRateError(f"assess_quality needs the sampling rate fs in Hz (> 0), got {fs!r}.")
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"assess_quality expects [n_leads, n_samples], got shape {x.shape}.")
    return _report(x, float(fs), _lead_names(x.shape[0], leads))


def assess_finite_rows(x: np.ndarray, fs: float, leads: Sequence[str], std: np.ndarray,
                       extremes: tuple[np.ndarray, np.ndarray] | None = None) -> QualityReport:
    """:func:`assess_quality` of a finite float64 array whose per-row standard deviation is already known.

    For callers that have computed ``x.std(axis=-1)`` anyway (the batched harmonising of
    :meth:`ecglens.predict.InputAdapter.prepare_many`): the report equals ``assess_quality(x, fs, leads)``.

    Parameters
    ----------
    x : np.ndarray, float64, shape (n_rows, n_samples)
        Finite signal in mV at ``fs`` Hz (not checked: the caller knows it).
    fs : float
        Sampling rate in Hz.
    leads : sequence of str
        One name per row.
    std : np.ndarray, shape (n_rows,)
        ``x.std(axis=-1)``.
    extremes : (np.ndarray, np.ndarray), optional
        ``(x.max(axis=-1), x.min(axis=-1))``, each shape (n_rows,), when known (computed otherwise).

    Returns
    -------
    QualityReport
    """
    return _report(x, float(fs), _lead_names(x.shape[0], leads), std=std, extremes=extremes)


def _report(x: np.ndarray, fs: float, names: tuple[str, ...], std: np.ndarray | None = None,
            extremes: tuple[np.ndarray, np.ndarray] | None = None) -> QualityReport:
    """The checks of :func:`assess_quality` on float64 ``x`` [n_leads, n_samples]; ``std``: its per-row
    standard deviation when known (``x`` then has no NaN), ``extremes`` its per-row maximum and minimum."""
    nan = None if std is not None else ~np.isfinite(x)  # infinite samples count as missing, like NaN
    nan_leads = np.zeros(x.shape[0], dtype=bool) if nan is None else nan.any(axis=-1)
    if nan is not None and nan_leads.any():
        x = np.where(nan, np.nan, x)
        mean, std = _lead_mean_std(x, nan)
        clean = np.where(nan, mean[:, None], x)
    else:  # the common case: no copies
        if std is None:
            std = x.std(axis=-1)
        clean = x
    flat = std < FLAT_STD_MV
    noisy = (noise_fraction(clean, fs) > NOISY_FRACTION) & ~flat
    saturated = _saturated(x, fs, flat, has_nan=bool(nan_leads.any()), extremes=extremes)
    findings = {"flat": flat, "noisy": noisy, "saturated": saturated, "nan": nan_leads}
    flags = tuple(f"{kind}:{names[i]}" for i in range(len(names)) for kind, hit in findings.items() if hit[i])
    return QualityReport(
        flat_leads=tuple(n for n, hit in zip(names, flat, strict=True) if hit),
        noisy_leads=tuple(n for n, hit in zip(names, noisy, strict=True) if hit),
        saturated_leads=tuple(n for n, hit in zip(names, saturated, strict=True) if hit),
        nan_leads=tuple(n for n, hit in zip(names, nan_leads, strict=True) if hit),
        nan_fraction=float(nan.mean()) if nan is not None and nan.size else 0.0,
        flags=flags,
    )


def check_usable(signal: np.ndarray | Ecg, record: str = "") -> None:
    """Raise :class:`SignalQualityError` when a signal carries no usable information.

    Parameters
    ----------
    signal : np.ndarray, shape (n_leads, n_samples), or Ecg
        Signal in mV.
    record : str
        Record name for the message (taken from an ``Ecg`` when empty).

    Raises
    ------
    SignalQualityError
        When the signal is empty, all NaN, all zero, or flat (std < 0.01 mV) on every lead.
    """
    if isinstance(signal, Ecg):
        record = record or signal.record_id
        signal = signal.signal
    x = np.asarray(signal, dtype=np.float64)
    what = f"record {record!r}" if record else "the signal"
    if x.size == 0:
        raise SignalQualityError(f"{what} has no samples; check that the file is complete.")
    finite = np.isfinite(x)
    if not finite.any():
        raise SignalQualityError(
            f"{what} is all NaN (no valid sample); check the file or exclude the record."
        )
    if not np.any(x[finite]):
        raise SignalQualityError(
            f"{what} is all zeros: no lead was recorded. Exclude it, or check the reader / channel mapping."
        )
    rows = x.reshape(-1, x.shape[-1])
    if finite.all():
        std = rows.std(axis=-1)
    else:
        bad = ~finite.reshape(rows.shape)
        std = _lead_mean_std(np.where(bad, 0.0, rows), bad)[1]
    if np.all(std < FLAT_STD_MV):
        raise SignalQualityError(
            f"{what} is flat on every lead (std < {FLAT_STD_MV} mV). Exclude it; if the amplitudes are in "
            "volts rather than millivolts, multiply them by 1000."
        )


def _trailing_calibration(x: np.ndarray, fs: float) -> int:
    """Samples at the end of ``x`` [n_leads, n] taken by zeros + one calibration pulse + zeros (0 if none)."""
    n = x.shape[-1]
    tail = x[:, n - min(n, int(np.ceil(_CAL_MAX_SPAN_S * fs))):]
    # cheap necessary condition first (a real ECG nearly always fails it): a sample where the first lead is near
    # a pulse's level and the second and last leads are within twice the tolerance of it
    first, near = tail[0], 2 * _CAL_TOL_MV
    if not ((first >= _CAL_LEVEL_MV[0] - _CAL_TOL_MV) & (np.abs(first - tail[1]) <= near)
            & (np.abs(first - tail[-1]) <= near)).any():
        return 0
    tail = np.asarray(tail, dtype=np.float64)
    if not np.isfinite(tail).all():
        return 0
    zero = (np.abs(tail) <= _CAL_TOL_MV).all(axis=0)
    level = np.median(tail, axis=0)
    pulse = (np.abs(tail - level) <= _CAL_TOL_MV).all(axis=0) & (level >= _CAL_LEVEL_MV[0]) & (
        level <= _CAL_LEVEL_MV[1])
    kind = np.where(zero, 0, np.where(pulse, 1, 2))[::-1]  # read from the record's end
    after = int(np.argmax(kind != 0)) if (kind != 0).any() else kind.size
    width = int(np.argmax(kind[after:] != 1)) if (kind[after:] != 1).any() else kind.size - after
    rest = kind[after + width:]
    before = int(np.argmax(rest != 0)) if (rest != 0).any() else rest.size
    if not _CAL_WIDTH_S[0] * fs <= width <= _CAL_WIDTH_S[1] * fs or after + width + before >= n:
        return 0
    return after + width + before


def calibration_span(x: np.ndarray, fs: float) -> tuple[int, int]:
    """The part of a recording that is not a device's calibration pulse.

    Some carts add a rectangular calibration pulse to the stored waveform: Philips PageWriter files hold 11 s per
    lead whose last second is zeros, 0.2 s at exactly 1 mV on every lead, and zeros again. A pulse counts when
    every given lead sits at the same level (within 0.02 mV) of 0.5-2 mV for 0.08-0.5 s and only zeros (within
    0.02 mV on every lead) lie between it and the end (or the start) of the record, all within the last (first)
    1.5 s; the pulse and the zeros around it are cut (with them any baseline that is within 0.02 mV of zero on
    every lead right before the pulse). No heart does this: with recorded limb leads, III = II - I cannot equal I and
    II at 1 mV. None of the 19,601 PTB-XL records, the 197 LUDB records or the WFDB fixtures has such a pulse; the
    three Philips fixtures have one.

    Parameters
    ----------
    x : np.ndarray, shape (n_leads, n_samples)
        The recorded leads in mV at ``fs`` (leave out leads computed from others: a derived III or aVR does not
        carry the pulse). At least two leads.
    fs : float
        Sampling rate in Hz.

    Returns
    -------
    tuple of int
        ``(start, stop)``: keep ``x[:, start:stop]``; ``(0, n_samples)`` when there is no pulse (or NaN / infinite
        samples in the searched 1.5 s). Only the first and last 1.5 s are looked at.

    Raises
    ------
    ValueError
        ``x`` is not two-dimensional.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"calibration_span expects [n_leads, n_samples], got shape {x.shape}.")
    n = x.shape[-1]
    if x.shape[0] < 2 or n == 0:
        return 0, n
    stop = n - _trailing_calibration(x, float(fs))
    start = _trailing_calibration(x[:, :stop][:, ::-1], float(fs))
    return start, stop
