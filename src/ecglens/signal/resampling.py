"""Resampling along the last axis: scipy's polyphase filter, and an equal, faster form for integer decimation.

:func:`resample` resamples with ``scipy.signal.resample_poly`` (its default Kaiser-windowed FIR, odd reflection
at the edges). Decimation by an integer factor (``up == 1``: 200, 500, 1000 Hz -> 100 Hz, the common case) is
computed instead by :func:`_decimate`: the same filter, the same edge extension and the same output samples,
written as one matrix product and ``n_taps / down`` shifted additions, which vectorise, where scipy's
``upfirdn`` runs a scalar loop per output sample. Equal to ``resample_poly`` to the rounding of the input's
precision (on unit-variance noise, float64: <= 3e-15; float32: <= 1e-6; tested). Speed: see
``benchmarks/bench_harmonise_steps.py`` (README, Benchmarks). The product runs on NumPy's BLAS, whose threads
processes started one per core should limit to one (:func:`ecglens._threads.limit_blas_threads`; the reading
workers of ``ecglens predict`` and ``ecglens prepare`` do).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from ..exceptions import SamplingRateError
from ._common import _check_fs, _float_array

__all__ = ["MAX_DENOMINATOR", "MAX_UPSAMPLE_FACTOR", "MIN_SOURCE_FS", "resample", "resample_factors"]

#: Lowest source sampling rate (Hz) :func:`resample` accepts. Below 50 Hz the Nyquist frequency (25 Hz) cuts
#: into the QRS complex (most of its energy lies at 5-40 Hz), so what a model would see is no longer an ECG.
MIN_SOURCE_FS: float = 50.0
#: Largest upsampling factor :func:`resample` accepts (e.g. 100 -> 1000 Hz). Upsampling adds no information;
#: a larger factor almost always means a wrong ``fs`` (e.g. a sampling *interval* given as a rate).
MAX_UPSAMPLE_FACTOR: float = 10.0
#: Largest denominator of the rational approximation ``target_fs / fs = up / down`` used for polyphase
#: resampling (exact for every integer rate up to 1000 Hz: 257, 360, 400, 500, 1000 -> 100 Hz ...).
MAX_DENOMINATOR: int = 1000
#: Most input values :func:`_decimate` handles in one matrix product (its temporary holds ``n_taps / down``, about
#: 4.2 times as many values); larger inputs are taken in blocks of rows, and a single longer row goes to scipy.
_DECIMATE_BLOCK_VALUES: int = 2**20


def resample_factors(fs: float, target_fs: float) -> tuple[int, int]:
    """Integer factors ``(up, down)`` with ``up / down ~= target_fs / fs`` (denominator at most 1000).

    Raises
    ------
    SamplingRateError
        ``fs`` or ``target_fs`` not positive, ``fs`` below :data:`MIN_SOURCE_FS`, or an upsampling factor above
        :data:`MAX_UPSAMPLE_FACTOR`.
    """
    fs = _check_fs(fs)
    target_fs = _check_fs(target_fs, "target_fs")
    if fs < MIN_SOURCE_FS:
        raise SamplingRateError(
            f"cannot resample from {fs:g} Hz: below {MIN_SOURCE_FS:g} Hz an ECG has lost its QRS content. "
            "Check the record's sampling rate (a wrong header?) or use a recording sampled at >= 50 Hz."
        )
    if target_fs / fs > MAX_UPSAMPLE_FACTOR:
        raise SamplingRateError(
            f"upsampling {fs:g} Hz -> {target_fs:g} Hz (x{target_fs / fs:.3g}) exceeds the maximum factor "
            f"{MAX_UPSAMPLE_FACTOR:g}; upsampling adds no information. Check fs, or use a model trained at a "
            "sampling rate closer to the recording's."
        )
    ratio = (Fraction(str(target_fs)) / Fraction(str(fs))).limit_denominator(MAX_DENOMINATOR)
    return ratio.numerator, ratio.denominator


@lru_cache(maxsize=64)
def _polyphase_fir(up: int, down: int) -> np.ndarray:
    """scipy's default anti-aliasing FIR of ``resample_poly`` (Kaiser beta 5), designed once per ratio."""
    max_rate = max(up, down)
    taps = sps.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    taps.setflags(write=False)
    return taps


def resample(x: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """Resample along the last axis with a polyphase anti-aliasing filter.

    Parameters
    ----------
    x : np.ndarray, shape (..., n_samples)
        Signal sampled at ``fs``.
    fs : float
        Source sampling rate in Hz (>= :data:`MIN_SOURCE_FS`).
    target_fs : float
        Wanted sampling rate in Hz (at most :data:`MAX_UPSAMPLE_FACTOR` times ``fs``).

    Returns
    -------
    np.ndarray, shape (..., ceil(n_samples * up / down))
        A new array; ``up / down`` is the rational approximation of ``target_fs / fs`` from
        :func:`resample_factors` (exact for integer rates up to 1000 Hz). Equal rates return a copy (at any
        rate, even below :data:`MIN_SOURCE_FS`).
        Edges are extended by odd reflection about the edge sample (``padtype="antireflect"``), so a DC offset
        causes no edge transient (the edge error on real ECG segments is 0.02 mV at the 90th percentile).
        A single sample extends to a constant and comes back repeated (scipy's ``upfirdn`` stops the process
        with SIGFPE on a one-sample signal in a reflecting mode, scipy 1.17).

    Raises
    ------
    SamplingRateError
        See :func:`resample_factors`.
    """
    arr = _float_array(x)
    if _check_fs(fs) == _check_fs(target_fs, "target_fs"):
        return arr.copy()
    up, down = resample_factors(fs, target_fs)
    if up == down:
        return arr.copy()
    if arr.shape[-1] == 1:
        return np.repeat(arr, math.ceil(up / down), axis=-1)
    if up == 1 and arr.dtype in (np.float32, np.float64) and arr.size:
        y = _decimate(arr, down)
        if y is not None:
            return y
    y = sps.resample_poly(arr, up, down, axis=-1, window=_polyphase_fir(up, down), padtype="antireflect")
    return np.asarray(y, dtype=arr.dtype)


def _decimate(arr: np.ndarray, down: int) -> np.ndarray | None:
    """``resample_poly(arr, 1, down, axis=-1, window=_polyphase_fir(1, down), padtype="antireflect")``, vectorised.

    Parameters
    ----------
    arr : np.ndarray, float32 or float64, shape (..., n)
    down : int
        Decimation factor (>= 2).

    Returns
    -------
    np.ndarray of arr's dtype, shape (..., ceil(n / down)), or None
        None where this form does not apply (a signal shorter than the edge extension, a single row longer than
        :data:`_DECIMATE_BLOCK_VALUES`): the caller then uses scipy.

    Notes
    -----
    With the FIR ``h`` (``n_h = 20 * down + 1`` taps, centred) and the signal extended by odd reflection,
    ``y[i] = sum_k h[k] * ext[i * down + k]``. Cutting ``ext`` into frames of ``down`` samples and ``h`` into
    ``n_t = ceil(n_h / down)`` rows of ``down`` taps (zero-filled), ``Z = H @ frames.T`` holds every partial sum
    and ``y[i] = sum_j Z[j, i + j]``: one BLAS product and ``n_t`` contiguous additions.
    """
    n = arr.shape[-1]
    h = _polyphase_fir(1, down)
    half = (h.size - 1) // 2
    n_out = -(-n // down)
    n_t = -(-h.size // down)
    post = (n_out + n_t - 1) * down - n - half  # samples of right extension the last frame needs
    if n <= max(half, post + 1) or n > _DECIMATE_BLOCK_VALUES:
        return None
    rows = arr.reshape(-1, n)
    taps = np.zeros(n_t * down, dtype=arr.dtype)
    taps[: h.size] = h
    taps = taps.reshape(n_t, down)
    out = np.empty((rows.shape[0], n_out), dtype=arr.dtype)
    step = max(1, _DECIMATE_BLOCK_VALUES // n)
    for start in range(0, rows.shape[0], step):
        x = rows[start:start + step]
        ext = np.concatenate([2 * x[:, :1] - x[:, half:0:-1], x, 2 * x[:, -1:] - x[:, -2:-2 - post:-1]], axis=-1)
        z = (taps @ ext.reshape(-1, down).T).reshape(n_t, x.shape[0], n_out + n_t - 1)
        y = out[start:start + step]
        np.copyto(y, z[0, :, :n_out])
        for j in range(1, n_t):
            y += z[j, :, j:j + n_out]
    return out.reshape(*arr.shape[:-1], n_out)
