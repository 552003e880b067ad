"""Argument helpers shared by the signal functions (:mod:`.functional`, :mod:`.resampling`)."""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import SamplingRateError


def _float_array(x: np.ndarray) -> np.ndarray:
    """``x`` as a floating array (float64 for integer or boolean input), without copying floats."""
    arr = np.asarray(x)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def _check_fs(fs: float, name: str = "fs") -> float:
    """Validate a sampling rate in Hz and return it as float."""
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise SamplingRateError(f"{name} must be a sampling rate in Hz, got {fs!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise SamplingRateError(
            f"{name} must be a positive, finite sampling rate in Hz, got {fs!r}. "
            "Check the record header (or pass fs=... explicitly)."
        )
    return value
