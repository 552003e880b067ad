"""Pure signal functions on ECG arrays.

Every function takes a numpy array whose **last axis is time** (any leading dims, typically
``[n_leads, n_samples]`` or ``[batch, n_leads, n_samples]``), the sampling rate ``fs`` in Hz when it needs one
(always explicit, never a default), and returns a **new** array; inputs are never modified. Amplitudes are in
millivolts (mV). Floating inputs keep their dtype (float32 stays float32); integer inputs come back as float64.

Filters are zero-phase (forward-backward, ``sosfiltfilt``) so that waves are not shifted in time. Their
coefficients (and the polyphase anti-aliasing FIR of :func:`resample`) are designed once per parameter set and
cached (:func:`functools.lru_cache`), so per-record work is filtering only. :func:`resample` and its limits live
in :mod:`.resampling` and are re-exported here.

Thresholds (documented where they are defined):

* :data:`MIN_SOURCE_FS` / :data:`MAX_UPSAMPLE_FACTOR` bound what :func:`resample` accepts.
* :data:`MAX_PEAK_TO_PEAK_MV` / :data:`MIN_PEAK_TO_PEAK_MV` bound plausible millivolt amplitudes in
  :func:`check_amplitude` and :func:`guess_unit_scale`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from ..exceptions import ConfigError, SamplingRateError, UnitError
from ._common import _check_fs, _float_array
from .resampling import MAX_DENOMINATOR, MAX_UPSAMPLE_FACTOR, MIN_SOURCE_FS, resample, resample_factors

__all__ = [
    "CROP_MODES",
    "MAX_DENOMINATOR",
    "MAX_PEAK_TO_PEAK_MV",
    "MAX_UPSAMPLE_FACTOR",
    "MIN_PEAK_TO_PEAK_MV",
    "MIN_SOURCE_FS",
    "NORMALIZE_METHODS",
    "bandpass",
    "check_amplitude",
    "crop_or_pad",
    "guess_unit_scale",
    "highpass",
    "lowpass",
    "normalize",
    "notch",
    "resample",
    "resample_factors",
    "robust_peak_to_peak",
    "robust_peak_to_peak_batch",
    "row_percentiles",
]


#: Upper bound (mV) of the per-record amplitude statistic of :func:`robust_peak_to_peak` (median over leads of
#: the 1st-99th percentile range). On 3,000 random PTB-XL records it spans 0.31-3.74 mV, and the real-format
#: fixtures (CODE-15, LUDB, CPSC, Georgia, Chapman, PTB-XL at 500 Hz) 0.65-2.2 mV; microvolts passed as mV give
#: 300-3,700 and raw ADC counts (200-1,000 counts/mV, the usual gains) 60-3,700, so 20 mV separates them from
#: real millivolts with a margin of 5x on the ECG side and 3x on the counts side.
MAX_PEAK_TO_PEAK_MV: float = 20.0
#: Lower bound (mV) of the same statistic: volts passed as mV give 0.0003-0.004, real ECGs at least ~0.3 (15x
#: margin above this bound, 5x below it for volts). Real case: the PhysioNet/CinC 2020 copies of the PTB
#: Diagnostic records declare a gain of 2,000,000 counts/mV (1000x too large) and read as 0.00045.
MIN_PEAK_TO_PEAK_MV: float = 0.02
#: Range (mV) the statistic must fall in after a power-of-ten conversion for :func:`guess_unit_scale` to
#: propose it: the bulk (>99.9 %) of real 12-lead records.
_TYPICAL_PEAK_TO_PEAK_MV: tuple[float, float] = (0.2, 5.0)
#: Power-of-ten factors :func:`guess_unit_scale` tries, with the unit each one converts from.
_UNIT_FACTORS: dict[float, str] = {
    1e-3: "microvolts (uV) or raw ADC counts at 1000 counts/mV",
    1e3: "volts (V)",
}


# ---------------------------------------------------------------------------------------------- helpers
def _check_cutoff(freq_hz: float, fs: float, what: str) -> float:
    """Validate a filter frequency: 0 < freq_hz < fs / 2."""
    freq = float(freq_hz)
    if not math.isfinite(freq) or freq <= 0:
        raise ConfigError(f"{what} frequency must be a positive number of Hz, got {freq_hz!r}.")
    if freq >= fs / 2:
        raise SamplingRateError(
            f"{what} frequency {freq:g} Hz is not below the Nyquist frequency {fs / 2:g} Hz of a signal sampled "
            f"at {fs:g} Hz. Use a frequency below {fs / 2:g} Hz, or skip this filter at this sampling rate."
        )
    return freq


def _padlen(n_samples: int, wanted: int) -> int:
    """Edge padding for ``sosfiltfilt``: ``wanted`` samples, but fewer than the signal length."""
    return max(0, min(int(wanted), n_samples - 1))


# ---------------------------------------------------------------------------------------------- crop / pad
def _offset_center(excess: int, rng: np.random.Generator | None) -> int:
    return excess // 2


def _offset_start(excess: int, rng: np.random.Generator | None) -> int:
    return 0


def _offset_random(excess: int, rng: np.random.Generator | None) -> int:
    generator = rng if rng is not None else np.random.default_rng()
    return int(generator.integers(0, excess + 1))


#: crop/pad placement: where the kept window starts (crop) or where the signal is placed (pad)
_CROP_OFFSETS: dict[str, Callable[[int, np.random.Generator | None], int]] = {
    "center": _offset_center,
    "random": _offset_random,
    "start": _offset_start,
}
CROP_MODES: tuple[str, ...] = tuple(_CROP_OFFSETS)


def crop_or_pad(
    x: np.ndarray,
    n_samples: int,
    mode: str = "center",
    rng: np.random.Generator | None = None,
    pad_value: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Bring the last axis to exactly ``n_samples`` by cropping or padding.

    Parameters
    ----------
    x : np.ndarray, shape (..., n_in)
        Signal (any leading dims).
    n_samples : int
        Wanted length (> 0).
    mode : {"center", "random", "start"}
        ``"center"``: keep the middle / pad equally on both sides (extra sample at the end);
        ``"start"``: keep the first ``n_samples`` / pad at the end; ``"random"``: a uniformly random window /
        placement drawn from ``rng``.
    rng : np.random.Generator, optional
        Used by ``"random"`` only; a fresh unseeded generator when omitted (not reproducible).
    pad_value : float
        Value of the padded samples (mV).

    Returns
    -------
    y : np.ndarray, shape (..., n_samples)
        A new array with the dtype of ``x`` (float64 for integer input).
    mask : np.ndarray of bool, shape (n_samples,)
        ``True`` where ``y`` holds real samples of ``x``, ``False`` on padding.
    """
    if mode not in _CROP_OFFSETS:
        raise ConfigError(f"unknown crop mode {mode!r}; choose one of {list(CROP_MODES)}.")
    n_out = int(n_samples)
    if n_out <= 0:
        raise ConfigError(f"n_samples must be a positive number of samples, got {n_samples!r}.")
    arr = _float_array(x)
    n_in = arr.shape[-1]
    offset = _CROP_OFFSETS[mode](abs(n_in - n_out), rng)
    if n_in >= n_out:
        return arr[..., offset : offset + n_out].copy(), np.ones(n_out, dtype=bool)
    y = np.full(arr.shape[:-1] + (n_out,), pad_value, dtype=arr.dtype)
    y[..., offset : offset + n_in] = arr
    mask = np.zeros(n_out, dtype=bool)
    mask[offset : offset + n_in] = True
    return y, mask


# ---------------------------------------------------------------------------------------------- filters
@lru_cache(maxsize=128)
def _butter_sos(order: int, cutoff: tuple[float, ...], btype: str, fs: float) -> np.ndarray:
    """Butterworth second-order sections, designed once per (order, cutoff, type, fs)."""
    wn = cutoff[0] if len(cutoff) == 1 else list(cutoff)
    return sps.butter(int(order), wn, btype=btype, fs=fs, output="sos")


@lru_cache(maxsize=64)
def _notch_sos(freq_hz: float, quality: float, fs: float) -> np.ndarray:
    """Second-order IIR notch as second-order sections, designed once per (freq, Q, fs)."""
    b, a = sps.iirnotch(freq_hz, quality, fs=fs)
    return sps.tf2sos(b, a)


def _zero_phase(x: np.ndarray, sos: np.ndarray, padlen: int) -> np.ndarray:
    """Forward-backward filtering along the last axis; returns a new array of ``x``'s float dtype."""
    arr = _float_array(x)
    if arr.shape[-1] < 2:
        return arr.copy()
    # scipy's sosfilt needs a writable coefficient array; the cached one is passed as a copy (a few floats)
    y = sps.sosfiltfilt(sos.copy(), arr, axis=-1, padtype="even", padlen=_padlen(arr.shape[-1], padlen))
    return np.asarray(y, dtype=arr.dtype)


def _check_order(order: int) -> int:
    if int(order) != order or not 1 <= int(order) <= 8:
        raise ConfigError(f"filter order must be an integer from 1 to 8, got {order!r}.")
    return int(order)


def highpass(x: np.ndarray, fs: float, cutoff_hz: float = 0.5, order: int = 2) -> np.ndarray:
    """Remove baseline wander with a zero-phase Butterworth high-pass filter.

    Parameters
    ----------
    x : np.ndarray, shape (..., n_samples)
        Signal in mV sampled at ``fs``.
    fs : float
        Sampling rate in Hz.
    cutoff_hz : float
        -3 dB frequency of each pass (-6 dB overall, zero-phase). 0.5 Hz removes respiration and electrode
        drift while keeping the ST segment; use 0.05 Hz for strict ST-level fidelity (AHA diagnostic band).
    order : int
        Butterworth order of each pass (2: -80 dB/decade overall after forward-backward filtering; a 0.1 Hz
        drift is attenuated ~600x at the default cutoff).

    Returns
    -------
    np.ndarray, shape (..., n_samples)
        Filtered copy.

    Notes
    -----
    Edges are padded by mirror (even) reflection over ``fs / cutoff_hz`` samples (one period of the cutoff).
    Odd reflection, scipy's default, puts the pad at ``2 * x[0] - x[k]``: when a record starts on an R wave this
    is a step of twice its height, which the filter turns into a slow edge transient. Measured on 5 s segments
    cut from real 500 Hz records (against filtering the whole record), the largest per-lead edge error is
    0.065 mV (90th percentile; 0.22 max) with mirror padding, 0.68 mV (5.1 max) with scipy's default.
    """
    fs = _check_fs(fs)
    cutoff = _check_cutoff(cutoff_hz, fs, "high-pass cutoff")
    sos = _butter_sos(_check_order(order), (cutoff,), "highpass", fs)
    return _zero_phase(x, sos, math.ceil(fs / cutoff))


def lowpass(x: np.ndarray, fs: float, cutoff_hz: float = 40.0, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass filter (removes EMG / high-frequency noise).

    Parameters
    ----------
    x : np.ndarray, shape (..., n_samples)
        Signal in mV sampled at ``fs``.
    fs : float
        Sampling rate in Hz.
    cutoff_hz : float
        -3 dB frequency of each pass; must be below ``fs / 2``.
    order : int
        Butterworth order of each pass.

    Returns
    -------
    np.ndarray, shape (..., n_samples)
        Filtered copy.
    """
    fs = _check_fs(fs)
    cutoff = _check_cutoff(cutoff_hz, fs, "low-pass cutoff")
    sos = _butter_sos(_check_order(order), (cutoff,), "lowpass", fs)
    return _zero_phase(x, sos, math.ceil(3 * fs / cutoff))


def bandpass(
    x: np.ndarray, fs: float, low_hz: float = 0.5, high_hz: float = 40.0, order: int = 2
) -> np.ndarray:
    """Zero-phase Butterworth band-pass filter (``low_hz`` < f < ``high_hz``).

    Parameters
    ----------
    x : np.ndarray, shape (..., n_samples)
        Signal in mV sampled at ``fs``.
    fs : float
        Sampling rate in Hz.
    low_hz, high_hz : float
        Band edges in Hz, ``0 < low_hz < high_hz < fs / 2``.
    order : int
        Butterworth order of each pass (per band edge).

    Returns
    -------
    np.ndarray, shape (..., n_samples)
        Filtered copy.
    """
    fs = _check_fs(fs)
    low = _check_cutoff(low_hz, fs, "band-pass low edge")
    high = _check_cutoff(high_hz, fs, "band-pass high edge")
    if low >= high:
        raise ConfigError(f"band-pass needs low_hz < high_hz, got {low:g} >= {high:g} Hz.")
    sos = _butter_sos(_check_order(order), (low, high), "bandpass", fs)
    return _zero_phase(x, sos, math.ceil(fs / low))


def _tone(coef: np.ndarray, t: np.ndarray, freq: float) -> np.ndarray:
    """``a cos(2 pi f t) + b sin(2 pi f t)`` for coefficients ``coef[..., (a, b)]``; shape (..., len(t))."""
    arg = 2 * np.pi * freq * t
    return coef[..., :1] * np.cos(arg) + coef[..., 1:] * np.sin(arg)


def _fit_tone(seg: np.ndarray, t: np.ndarray, freq: float) -> np.ndarray:
    """Least-squares amplitude of the ``freq`` cosine and sine in ``seg`` (..., len(t)) -> (..., 2)."""
    basis = np.stack([np.cos(2 * np.pi * freq * t), np.sin(2 * np.pi * freq * t)], axis=1)
    coef = np.linalg.lstsq(basis, seg.reshape(-1, seg.shape[-1]).T, rcond=None)[0]
    return coef.T.reshape(seg.shape[:-1] + (2,))


def _edge_extension(x: np.ndarray, fs: float, freq: float, pad: int, front: bool) -> np.ndarray:
    """``pad`` samples before (``front``) or after the signal: the mains tone fitted on the nearest
    ``pad + 1`` samples and continued in phase, plus the mirror reflection of what remains."""
    n = x.shape[-1]
    w = min(n, max(pad + 1, math.ceil(4 * fs / freq)))
    if front:
        t = np.arange(-pad, w) / fs
        hum = _tone(_fit_tone(x[..., :w], t[pad:], freq), t, freq)
        rest = x[..., :w] - hum[..., pad:]
        return rest[..., pad:0:-1] + hum[..., :pad]
    t = np.arange(n - w, n + pad) / fs
    hum = _tone(_fit_tone(x[..., n - w :], t[:w], freq), t, freq)
    rest = x[..., n - w :] - hum[..., :w]
    return rest[..., -2 : -pad - 2 : -1] + hum[..., w:]


def notch(x: np.ndarray, fs: float, freq_hz: float = 50.0, quality: float = 30.0) -> np.ndarray:
    """Remove power-line interference with a zero-phase IIR notch.

    Parameters
    ----------
    x : np.ndarray, shape (..., n_samples)
        Signal in mV sampled at ``fs``.
    fs : float
        Sampling rate in Hz; must exceed ``2 * freq_hz``.
    freq_hz : float
        Mains frequency: 50 Hz (Europe, Asia, Africa, Australia) or 60 Hz (Americas, parts of Asia).
    quality : float
        Quality factor Q = ``freq_hz`` / bandwidth (30 at 50 Hz: a 1.7 Hz wide notch).

    Returns
    -------
    np.ndarray, shape (..., n_samples)
        Filtered copy.

    Notes
    -----
    A narrow notch rings for about ``Q / (pi * freq_hz)`` s (0.2 s at 50 Hz, Q 30), so plain reflection padding
    leaves the hum almost untouched in the first and last ~0.5 s. Here each edge is padded with the hum
    *continued in phase* (a tone fitted on the nearest ``fs * Q / freq_hz`` samples) plus the mirror reflection
    of the rest. This cuts the edge residual of a stable 0.3 mV mains tone from ~0.3 to 0.006 mV (0.03 mV when
    the mains is 0.05 Hz off, 0.1 mV when 0.2 Hz off); on real 500 Hz ECGs without hum the edge error stays
    near 0.01 mV (90th percentile), like plain mirror padding.

    Raises
    ------
    SamplingRateError
        When ``freq_hz >= fs / 2`` (the interference cannot be represented; e.g. 50 Hz at 100 Hz sampling).
    """
    fs = _check_fs(fs)
    freq = _check_cutoff(freq_hz, fs, "notch")
    if not math.isfinite(float(quality)) or float(quality) <= 0:
        raise ConfigError(f"notch quality factor must be positive, got {quality!r}.")
    arr = _float_array(x)
    n = arr.shape[-1]
    pad = min(math.ceil(fs * float(quality) / freq), n - 1)
    if pad < 1:
        return arr.copy()
    work = arr.astype(np.float64)
    ext = np.concatenate(
        [_edge_extension(work, fs, freq, pad, True), work, _edge_extension(work, fs, freq, pad, False)],
        axis=-1,
    )
    y = sps.sosfiltfilt(_notch_sos(freq, float(quality), fs).copy(), ext, axis=-1, padlen=0)
    return np.asarray(y[..., pad : pad + n], dtype=arr.dtype)


# ---------------------------------------------------------------------------------------------- normalisation
#: spreads below this (mV) count as flat: the lead is centred and left at zero, never divided by ~0
_EPS = 1e-8


def _safe_scale(spread: np.ndarray) -> np.ndarray:
    return np.where(spread > _EPS, spread, 1.0)


def _norm_none(x: np.ndarray) -> np.ndarray:
    return x.copy()


def _norm_zscore(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    return (x - mean) / _safe_scale(x.std(axis=-1, keepdims=True))


def _norm_robust(x: np.ndarray) -> np.ndarray:
    q25, q50, q75 = np.percentile(x, [25, 50, 75], axis=-1, keepdims=True)
    return (x - q50) / _safe_scale(q75 - q25)


def _norm_minmax(x: np.ndarray) -> np.ndarray:
    low = x.min(axis=-1, keepdims=True)
    high = x.max(axis=-1, keepdims=True)
    spread = high - low
    return np.where(spread > _EPS, 2.0 * (x - low) / _safe_scale(spread) - 1.0, 0.0)


_NORMALIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": _norm_none,
    "zscore": _norm_zscore,
    "robust": _norm_robust,
    "minmax": _norm_minmax,
}
NORMALIZE_METHODS: tuple[str, ...] = tuple(_NORMALIZERS)


def normalize(x: np.ndarray, method: str = "none") -> np.ndarray:
    """Normalise each lead (each row of the last axis) independently.

    Parameters
    ----------
    x : np.ndarray, shape (..., n_samples)
        Finite signal (mV).
    method : {"none", "zscore", "robust", "minmax"}
        ``"none"``: unchanged copy (amplitudes stay in mV, which age/sex models use);
        ``"zscore"``: zero mean, unit standard deviation; ``"robust"``: minus the median, divided by the
        interquartile range; ``"minmax"``: scaled to [-1, 1]. A flat lead (spread below 1e-8) becomes all zeros
        instead of being divided by zero.

    Returns
    -------
    np.ndarray, shape (..., n_samples)
        A new array with ``x``'s float dtype.
    """
    if method not in _NORMALIZERS:
        raise ConfigError(f"unknown normalisation {method!r}; choose one of {list(NORMALIZE_METHODS)}.")
    arr = _float_array(x)
    return np.asarray(_NORMALIZERS[method](arr), dtype=arr.dtype)


# ---------------------------------------------------------------------------------------------- units
#: float32 rows up to this long (10 s at 500 Hz) are sorted by :func:`row_percentiles` (see its notes)
SORT_PERCENTILE_MAX_SAMPLES: int = 5000


def row_percentiles(rows: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """``np.percentile(rows, q, axis=-1)`` (its default linear interpolation) of NaN-free rows.

    Parameters
    ----------
    rows : np.ndarray, shape (..., n)
        Finite values; each row of the last axis separately.
    q : sequence of float
        Percentiles, 0-100.

    Returns
    -------
    np.ndarray, float64, shape (len(q), ...)

    Notes
    -----
    For float32 rows of up to :data:`SORT_PERCENTILE_MAX_SAMPLES` samples a contiguous (SIMD) sort is faster than
    NumPy's partition along a strided axis; the values are interpolated as NumPy does (equal to rounding, tested).
    How much faster depends on the CPU's vector unit (``benchmarks/bench_harmonise_steps.py``, 1st/99th
    percentiles of twelve 10-s leads): on the AVX2 machine of 2026-12-06, 0.082 against 0.190 ms at 100 Hz and
    level at 500 Hz; on an AVX-512 machine (2026-12-07) 0.03 against 0.17 ms at 100 Hz and 0.13 against 0.72 ms
    at 500 Hz. Longer rows and float64 rows go to ``np.percentile``.
    """
    n = rows.shape[-1]
    if rows.dtype != np.float32 or n > SORT_PERCENTILE_MAX_SAMPLES or n == 0:
        return np.asarray(np.percentile(rows, q, axis=-1), dtype=np.float64)
    ordered = np.sort(rows, axis=-1)
    position = (n - 1) * (np.asarray(q, dtype=np.float64) / 100.0)
    below = np.clip(np.floor(position).astype(np.intp), 0, n - 1)
    above = np.minimum(below + 1, n - 1)
    weight = (position - below).reshape(-1, *([1] * (ordered.ndim - 1)))
    low, high = np.moveaxis(ordered[..., below], -1, 0), np.moveaxis(ordered[..., above], -1, 0)
    step = high - low  # in the input's precision, as numpy's lerp computes it
    return np.where(weight >= 0.5, high - step * (1.0 - weight), low + step * weight).astype(np.float64)


def robust_peak_to_peak(x: np.ndarray) -> float:
    """Typical amplitude of a record: median over leads of the 1st-99th percentile range (mV if in mV).

    Constant leads (range exactly 0, e.g. an absent lead filled with zeros) and all-NaN leads are ignored;
    NaNs elsewhere are skipped. Returns 0.0 when no lead varies.

    Parameters
    ----------
    x : np.ndarray, shape (..., n_samples)
        Signal; every row of the last axis counts as a lead.
    """
    rows = _float_array(x).reshape(-1, np.shape(x)[-1])
    if rows.size == 0:
        return 0.0
    if np.isnan(rows).any():
        rows = rows[~np.isnan(rows).all(axis=-1)]
        if rows.size == 0:
            return 0.0
        low, high = np.nanpercentile(rows, [1, 99], axis=-1)
    else:
        low, high = row_percentiles(rows, [1, 99])
    spread = high - low
    spread = spread[np.isfinite(spread) & (spread > 0)]
    return float(np.median(spread)) if spread.size else 0.0


def robust_peak_to_peak_batch(x: np.ndarray, *, assume_finite: bool = False) -> np.ndarray:
    """:func:`robust_peak_to_peak` of each record of a batch, in one percentile call.

    Parameters
    ----------
    x : np.ndarray, shape (B, n_leads, n_samples)
        B records (each row of the last axis a lead), any NaNs included.
    assume_finite : bool
        The caller knows that ``x`` holds no NaN (skips a pass over it looking for one).

    Returns
    -------
    np.ndarray, float64, shape (B,)
        Equal to ``[robust_peak_to_peak(r) for r in x]``.
    """
    arr = _float_array(x)
    if arr.ndim != 3:
        raise ValueError(f"robust_peak_to_peak_batch expects [B, n_leads, n_samples], got shape {arr.shape}.")
    if arr.size == 0 or (not assume_finite and np.isnan(arr).any()):
        return np.array([robust_peak_to_peak(r) for r in arr], dtype=np.float64)
    low, high = row_percentiles(arr.reshape(-1, arr.shape[-1]), [1, 99])
    spread = (high - low).reshape(arr.shape[:2])
    valid = np.isfinite(spread) & (spread > 0)
    out = np.median(spread, axis=-1).astype(np.float64)  # the usual case: every lead varies, one call for all
    for i in np.flatnonzero(~valid.all(axis=-1)):  # records with a constant lead: the median of the others
        out[i] = float(np.median(spread[i][valid[i]])) if valid[i].any() else 0.0
    return out


def guess_unit_scale(
    x: np.ndarray,
    max_abs_mv: float = MAX_PEAK_TO_PEAK_MV,
    min_peak_mv: float = MIN_PEAK_TO_PEAK_MV,
) -> float | None:
    """Suggest the factor that converts ``x`` to millivolts.

    Parameters
    ----------
    x : np.ndarray, shape (..., n_samples)
        Signal claimed to be in mV.
    max_abs_mv, min_peak_mv : float
        Plausible range of :func:`robust_peak_to_peak` for mV (see :data:`MAX_PEAK_TO_PEAK_MV`).

    Returns
    -------
    float or None
        ``1.0`` when the amplitudes are plausible mV (or the signal has no varying lead: a quality problem,
        not a unit problem); ``1e-3`` when they look like microvolts or raw ADC counts at 1000 counts/mV (the
        two cannot be told apart, and the factor is the same); ``1e3`` when they look like volts; ``None`` when
        they are implausible and no power of ten brings them to typical ECG amplitudes (e.g. raw counts at an
        unknown gain): the caller should refuse the record. Counts at other gains (e.g. 200 counts/mV) may be
        mistaken for microvolts; pass calibrated signals when you can.
    """
    amp = robust_peak_to_peak(x)
    if amp == 0.0 or min_peak_mv <= amp <= max_abs_mv:
        return 1.0
    low, high = _TYPICAL_PEAK_TO_PEAK_MV
    for factor in _UNIT_FACTORS:
        if low <= amp * factor <= high:
            return factor
    return None


def check_amplitude(
    x: np.ndarray,
    max_abs_mv: float = MAX_PEAK_TO_PEAK_MV,
    min_peak_mv: float = MIN_PEAK_TO_PEAK_MV,
) -> float:
    """Check that ``x`` looks like millivolts; raise :class:`UnitError` saying what it looks like otherwise.

    The statistic is :func:`robust_peak_to_peak` (median over leads of the 1st-99th percentile range), which
    a single noisy lead or a few spikes cannot move. See :data:`MAX_PEAK_TO_PEAK_MV` for how the bounds were
    chosen (PTB-XL: 0.31-3.74 mV; microvolts: hundreds to thousands; volts: thousandths).

    Parameters
    ----------
    x : np.ndarray, shape (..., n_samples)
        Signal claimed to be in mV.
    max_abs_mv : float
        Largest plausible statistic in mV (default 20).
    min_peak_mv : float
        Smallest plausible statistic in mV (default 0.02).

    Returns
    -------
    float
        The statistic (mV), when plausible. A signal with no varying lead passes (0.0): that is a quality
        problem for :func:`ecglens.signal.quality.check_usable`.

    Raises
    ------
    UnitError
        With the unit the amplitudes look like and the factor that fixes them.
    """
    amp = robust_peak_to_peak(x)
    if amp == 0.0 or min_peak_mv <= amp <= max_abs_mv:
        return amp
    factor = guess_unit_scale(x, max_abs_mv, min_peak_mv)
    where = "large" if amp > max_abs_mv else "small"
    head = (
        f"amplitudes are implausibly {where} for millivolts: typical peak-to-peak {amp:.4g} per lead, but real "
        f"ECGs span about 0.3-4 mV (accepted: {min_peak_mv:g}-{max_abs_mv:g})."
    )
    if factor is None:
        raise UnitError(
            f"{head} They look like raw ADC counts at an unknown gain. Convert to mV with the gain from the "
            "record header (physical = (digital - baseline) / gain), or read the file with its reader."
        )
    fix = f"divide by {1 / factor:g}" if factor < 1 else f"multiply by {factor:g}"
    raise UnitError(f"{head} They look like {_UNIT_FACTORS[factor]}: {fix} to get mV.")
