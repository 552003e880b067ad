"""Checks and repairs of a decoded WFDB signal, for :func:`ecglens.io.wfdb.read_wfdb`.

:func:`repair_volt_gain` undoes a per-volt gain written as per mV (the repair described in :mod:`ecglens.io.wfdb`);
:func:`check_content` refuses signals that carry no information. Both take the physical signal
``[n_samples, n_leads]`` in mV, as wfdb and the fast path return it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..exceptions import SignalQualityError, UnitError

__all__ = ["check_content", "repair_volt_gain"]

_IMPLAUSIBLE_GAIN_PER_MV = 1e5  # >= this many counts per mV means < 10 nV resolution
_TINY_PEAK_TO_PEAK_MV = 0.05  # a real ECG lead spans more than this
_VOLT_GAIN_FACTOR = 1e3


def _robust_peak_to_peak(signal: np.ndarray) -> float:
    """Median over leads of the 0.5-99.5 percentile range (mV); signal is [n_samples, n_leads]."""
    finite = np.where(np.isfinite(signal), signal, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN lead: its span is NaN, dropped below
        spans = np.nanpercentile(finite, 99.5, axis=0) - np.nanpercentile(finite, 0.5, axis=0)
    spans = spans[np.isfinite(spans)]
    return float(np.median(spans)) if spans.size else float("nan")


def repair_volt_gain(
    signal_mv: np.ndarray, adc_gain: Sequence[float], units: Sequence[str]
) -> tuple[np.ndarray, str | None]:
    """Undo a per-volt gain labelled per mV (the repair described in :mod:`ecglens.io.wfdb`).

    Parameters
    ----------
    signal_mv : np.ndarray, shape (n_samples, n_leads)
        The signal as the header's gains made it, in "mV".
    adc_gain : sequence of float or None
        The header's gain of each signal (counts per unit; None for an absent signal of a multi-segment record).
    units : sequence of str
        The header's unit of each signal.

    Returns
    -------
    signal : np.ndarray, shape (n_samples, n_leads)
        ``signal_mv`` itself, or times 1000 when every gain is >= 1e5 counts per mV, every unit is mV and the
        median lead spans less than 0.05 mV.
    note : str or None
        What was repaired (None when nothing was).
    """
    gains = np.asarray([np.nan if g is None else g for g in adc_gain], dtype=np.float64)
    gains = gains[np.isfinite(gains)]  # an absent signal of a multi-segment record has no gain (None)
    labelled_mv = all((u or "mV").strip().lower() == "mv" for u in units)
    if not labelled_mv or gains.size == 0 or np.min(gains) < _IMPLAUSIBLE_GAIN_PER_MV:
        return signal_mv, None
    span = _robust_peak_to_peak(signal_mv)
    if not (0 < span < _TINY_PEAK_TO_PEAK_MV):
        return signal_mv, None
    note = (
        f"header gain {gains[0]:.0f}/mV read as {gains[0]:.0f}/V (x{_VOLT_GAIN_FACTOR:g}): "
        "literal reading gave "
        f"{span:.2g} mV peak-to-peak"
    )
    return signal_mv * _VOLT_GAIN_FACTOR, note


def check_content(signal: np.ndarray, hea: Path) -> None:
    """Reject signals that carry no information.

    Parameters
    ----------
    signal : np.ndarray, shape (n_samples, n_leads)
        Physical signal in mV (NaN for invalid samples).
    hea : Path
        The header, for the messages.

    Notes
    -----
    A finite signal (the usual case) is checked from its minimum and maximum alone, which NaN would propagate
    into: whole-array reductions, several times faster than per-lead ones along the sample axis.

    Raises
    ------
    SignalQualityError
        No samples, all zero, all NaN, or every lead a flat line.
    UnitError
        Infinite samples (gains and baselines that overflow).
    """
    if signal.size == 0:
        raise SignalQualityError(f"{hea}: the record has 0 samples; nothing to analyse.")
    lo, hi = float(signal.min()), float(signal.max())
    if math.isfinite(lo) and math.isfinite(hi):  # every sample finite: no masked copies needed
        if lo == 0.0 and hi == 0.0:
            raise SignalQualityError(f"{hea}: the signal is all zeros on every lead; the electrodes were off or "
                                     "the export failed. Exclude this record or re-export it.")
        if not np.any(signal != signal[0]):  # every lead constant: each sample equals the first
            raise SignalQualityError(f"{hea}: every lead is a flat line; the record holds no ECG. Exclude it.")
        return
    finite = np.isfinite(signal)
    if np.isinf(signal).any():
        raise UnitError(
            f"{hea}: the gains and baselines in the header turn samples into infinite values; fix the gain "
            "field ('200(0)/mV') or export the record again."
        )
    if not finite.any():
        raise SignalQualityError(
            f"{hea}: every sample is NaN (WFDB's 'invalid sample' value); the recording holds no signal. "
            "Exclude this record or re-export it from the source device."
        )
    values = np.where(finite, signal, 0.0)
    if not np.any(values):
        raise SignalQualityError(
            f"{hea}: the signal is all zeros on every lead; the electrodes were off or the export failed. "
            "Exclude this record or re-export it."
        )
    lo = np.where(finite, signal, np.inf).min(axis=0)
    hi = np.where(finite, signal, -np.inf).max(axis=0)
    if np.all(hi - lo <= 0):
        raise SignalQualityError(f"{hea}: every lead is a flat line; the record holds no ECG. Exclude it.")
