"""Harmonisation: bring any :class:`~ecglens.ecg.Ecg` to a model's input contract (see :mod:`ecglens.predict`).

Refused before any filtering or resampling: a sampling rate outside 50 Hz - 20 kHz, and (when the contract
checks units) any single lead beyond +-50 mV after unit conversion, even when the median lead looks like mV.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..artifact.windows import DEFAULT_MAX_WINDOWS, plan_windows
from ..ecg import MAX_ABS_MV, MAX_FS, MIN_FS, Ecg
from ..exceptions import ConfigError, SamplingRateError, UnitError

__all__ = ["InputAdapter", "PreparedEcg"]


@dataclass(frozen=True, eq=False)
class PreparedEcg:
    """One record brought to a model's input contract.

    Attributes
    ----------
    record : str
        The record's name (path or id).
    windows : np.ndarray, float32, shape (n_windows, L, T)
        Model inputs.
    starts : tuple of int
        Start of each window in samples (at the model's fs) of the resampled record; negative when the window
        begins with padding.
    n_resampled : int
        Length of the whole record at the model's fs.
    flags : tuple of str
        What was done or found (``resampled:500->100``, ``derived:...``, ``unit_converted:uV->mV``, ``padded``,
        ``cropped``, ``flat:V3``, ...).
    warnings : tuple of str
        Messages of data-repair warnings (e.g. NaN samples interpolated).
    ecg : Ecg or None
        The record as the model saw it before filtering and resampling: contract leads, mV, native fs.
    """

    record: str
    windows: np.ndarray
    starts: tuple[int, ...]
    n_resampled: int
    flags: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    ecg: Ecg | None = None

    @property
    def n_windows(self) -> int:
        return int(self.windows.shape[0])


_UNIT_NAMES: dict[float, str] = {1e-3: "uV->mV", 1e3: "V->mV"}


def _check_each_lead(ecg: Ecg, record: str) -> None:
    """Refuse a record in which any one lead is not plausible mV (the unit guess looks at the median lead).

    Every sample of every lead must stay within ``MAX_ABS_MV`` (50 mV; real leads with noise reach about 25 mV).
    ecg.signal: [n_leads, n_samples] in mV (after any unit conversion).
    """
    peaks = np.abs(ecg.signal).max(axis=-1, initial=0.0)
    bad = [(name, peak) for name, peak in zip(ecg.leads, peaks, strict=True) if peak > MAX_ABS_MV]
    if bad:
        shown = ", ".join(f"{name} ({peak:.3g} mV)" for name, peak in bad[:4])
        raise UnitError(
            f"{record}: lead(s) {shown} reach beyond the +-{MAX_ABS_MV:g} mV any ECG lead stays within, while "
            "the other leads look like millivolts. Check that lead's gain and unit in the file, or exclude the "
            "record."
        )


def _resampled_length(n: int, fs: float, target_fs: float) -> int:
    """Samples after :func:`ecglens.signal.functional.resample` (polyphase, ``ceil(n * up / down)``)."""
    from ..signal.functional import resample_factors

    up, down = resample_factors(fs, target_fs)
    return n if up == down else math.ceil(n * up / down)


@dataclass(frozen=True)
class InputAdapter:
    """Brings any :class:`~ecglens.ecg.Ecg` to a model's input contract (see the module docstring).

    Parameters
    ----------
    preprocess : Preprocess
        The checkpoint's input contract.
    max_windows : int or None
        Most windows per record (default :data:`DEFAULT_MAX_WINDOWS`).
    convert_units : bool
        Convert unambiguous microvolts / volts to mV (flagged); when False such records are refused.
    quality : bool
        Run :func:`~ecglens.signal.quality.assess_quality` and add its flags.
    """

    preprocess: Any
    max_windows: int | None = DEFAULT_MAX_WINDOWS
    convert_units: bool = True
    quality: bool = True

    def __post_init__(self) -> None:
        if self.max_windows is not None and int(self.max_windows) < 1:
            raise ConfigError(f"max_windows must be at least 1 (or None), got {self.max_windows!r}.")
        if self.preprocess.crop == "random":  # prediction is deterministic: centre crops
            object.__setattr__(self, "preprocess", dataclasses.replace(self.preprocess, crop="center"))

    @cached_property
    def _chain(self) -> Any:
        """The contract's chain without its unit check (done, with conversion, by :meth:`harmonise`)."""
        return dataclasses.replace(self.preprocess, check_units=False)

    def harmonise(self, ecg: Ecg) -> tuple[Ecg, list[str]]:
        """Contract leads and mV: returns the adjusted record (native fs) and the flags so far.

        Raises
        ------
        LeadError
            A needed lead is missing and cannot be derived.
        UnitError
            Amplitudes are not plausible mV and cannot be converted unambiguously (or ``convert_units`` is off),
            or any one lead reaches beyond 50 mV after conversion.
        SamplingRateError
            fs outside 50 Hz - 20 kHz.
        """
        from ..signal.functional import check_amplitude, guess_unit_scale

        pre = self.preprocess
        if not MIN_FS <= ecg.fs <= MAX_FS:
            raise SamplingRateError(
                f"{ecg.record_id or 'record'}: sampling rate {ecg.fs:g} Hz is outside {MIN_FS:g}-{MAX_FS:g} Hz, "
                "the range an ECG recording is read and resampled from. Check the rate stated in the file."
            )
        std = ecg.to_standard_leads(pre.leads, derive=True)
        flags: list[str] = []
        derived = [lead for lead in pre.leads if lead in std.derived_leads]
        if derived:
            flags.append("derived:" + ",".join(derived))
        factor = guess_unit_scale(std.signal)
        if factor != 1.0 and (factor is None or not self.convert_units):
            if pre.check_units:
                check_amplitude(std.signal)  # raises UnitError saying what the amplitudes look like
        elif factor != 1.0:
            std = std.replace(signal=std.signal * np.float32(factor))
            flags.append(f"unit_converted:{_UNIT_NAMES[factor]}")
        if pre.check_units:
            _check_each_lead(std, ecg.record_id or ecg.source or "record")
        if abs(std.fs - pre.fs) > 1e-9:
            flags.append(f"resampled:{std.fs:g}->{pre.fs:g}")
        return std, flags

    def prepare(self, ecg: Ecg, record: str | None = None, keep_ecg: bool = False) -> PreparedEcg:
        """Model inputs and flags of one record.

        Parameters
        ----------
        ecg : Ecg
            Any recording (any fs >= 50 Hz, any length, any lead order/subset from which the contract's leads
            can be made, mV or unambiguous uV / V).
        record : str, optional
            Name used in the result (default ``ecg.record_id``).
        keep_ecg : bool
            Keep the harmonised record in the result (for reports; costs memory in batch jobs).

        Returns
        -------
        PreparedEcg

        Raises
        ------
        EcglensError
            (LeadError, UnitError, SamplingRateError, SignalQualityError) when the record cannot be brought to
            the contract; the message says why and how to fix it.
        """
        from ..exceptions import SignalQualityWarning

        pre = self.preprocess
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SignalQualityWarning)
            std, flags = self.harmonise(ecg)
            n_total = _resampled_length(std.n_samples, std.fs, pre.fs)
            starts, cropped = plan_windows(n_total, pre.n_samples, self.max_windows, pre.crop)
            chain = self._chain
            if len(starts) == 1:
                windows = chain.apply(std)[None]
            else:
                windows = chain.windows(std, hop_seconds=(starts[1] - starts[0]) / pre.fs, max_windows=len(starts))
            if self.quality:
                from ..signal.quality import assess_quality

                flags.extend(assess_quality(std).flags)
        flags.extend(name for name, hit in (("padded", n_total < pre.n_samples), ("cropped", cropped)) if hit)
        notes = tuple(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, SignalQualityWarning)))
        return PreparedEcg(record=ecg.record_id if record is None else record, windows=windows,
                           starts=tuple(starts[: windows.shape[0]]), n_resampled=n_total, flags=tuple(flags),
                           warnings=notes, ecg=std if keep_ecg else None)
