"""Harmonisation: bring any :class:`~ecglens.ecg.Ecg` to a model's input contract (see :mod:`ecglens.predict`).

Refused before any filtering or resampling: a sampling rate outside 50 Hz - 20 kHz, and (when the contract
checks units) any single lead beyond +-50 mV after unit conversion, even when the median lead looks like mV.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..artifact.windows import DEFAULT_MAX_WINDOWS, plan_windows
from ..ecg import MAX_ABS_MV, MAX_FS, MIN_FS, Ecg
from ..exceptions import ConfigError, SamplingRateError, UnitError

__all__ = ["RECORDED_COLUMNS", "InputAdapter", "PreparedEcg", "recorded_fields"]

#: table columns with what the file itself states about the patient (after the model outputs)
RECORDED_COLUMNS: tuple[str, ...] = ("age_recorded", "sex_recorded", "patient_id", "exam_id")


def recorded_fields(ecg: Ecg | None) -> dict[str, Any]:
    """Age (years, NaN unknown), sex (``"F"``/``"M"``/``""``) and ids (``""`` unknown) the reader found in a file.

    From ``Ecg.age``, ``Ecg.sex`` and ``Ecg.meta["patient_id"]`` / ``["exam_id"]`` (how every reader fills them);
    all unknown for ``None`` (a file that could not be read).
    """
    if ecg is None:
        return {"age_recorded": math.nan, "sex_recorded": "", "patient_id": "", "exam_id": ""}
    meta = ecg.meta or {}
    ids = {k: "" if meta.get(k) is None or meta.get(k) != meta.get(k) else str(meta[k])
           for k in ("patient_id", "exam_id")}
    age = math.nan if ecg.age is None else float(ecg.age)
    return {"age_recorded": age, "sex_recorded": ecg.sex if ecg.sex in ("F", "M") else "", **ids}


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
        What was done or found (``calibration_removed``: the reader cut a calibration pulse the cart stored,
        ``resampled:500->100``, ``derived:...``, ``unit_converted:uV->mV``, ``padded``, ``cropped``, ``flat:V3``,
        ...).
    warnings : tuple of str
        Messages of data-repair warnings (e.g. NaN samples interpolated).
    ecg : Ecg or None
        The record as the model saw it before filtering and resampling: contract leads, mV, native fs.
    recorded : dict
        What the file states about the patient (:func:`recorded_fields`: the :data:`RECORDED_COLUMNS`).
    """

    record: str
    windows: np.ndarray
    starts: tuple[int, ...]
    n_resampled: int
    flags: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    ecg: Ecg | None = None
    recorded: dict[str, Any] = dataclasses.field(default_factory=lambda: recorded_fields(None))

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
        flags: list[str] = list(_reader_flags(ecg))
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
                           warnings=notes, ecg=std if keep_ecg else None, recorded=recorded_fields(ecg))

    # ------------------------------------------------------------------ many records at once
    def prepare_many(self, ecgs: Sequence[Ecg], records: Sequence[str | None] | None = None
                     ) -> list[PreparedEcg | Exception]:
        """:meth:`prepare` for many records, each record's exception returned in its place instead of raised.

        Records that share fs, length and lead names, need one window and are plainly usable (finite, mV, not
        flat, every lead within 50 mV) are filtered, resampled, cropped and quality-checked together as one
        ``[B, L, T]`` array: the same NumPy/SciPy calls along the last axis, so the result equals :meth:`prepare`
        (tested), with the per-record overhead paid once. Every other record goes through :meth:`prepare`.

        Parameters
        ----------
        ecgs : sequence of Ecg
        records : sequence of str or None, optional
            Names for the results (default each ``ecg.record_id``).

        Returns
        -------
        list of PreparedEcg or Exception
            In input order.
        """
        names = list(records) if records is not None else [None] * len(ecgs)
        out: list[PreparedEcg | Exception | None] = [None] * len(ecgs)
        groups: dict[tuple, list[int]] = {}
        for i, ecg in enumerate(ecgs):
            key = self._batch_key(ecg)
            if key is None:
                out[i] = self._prepare_one(ecg, names[i])
            else:
                groups.setdefault(key, []).append(i)
        for members in groups.values():
            for idx in _cache_sized(members):
                try:
                    done = (self._prepare_group([ecgs[i] for i in idx], [names[i] for i in idx])
                            if len(idx) > 1 else {})
                except Exception:  # noqa: BLE001 - e.g. leads that cannot be made: each record then says why alone
                    done = {}
                for pos, i in enumerate(idx):
                    out[i] = done[pos] if pos in done else self._prepare_one(ecgs[i], names[i])
        return out  # type: ignore[return-value]

    def _prepare_one(self, ecg: Ecg, record: str | None) -> PreparedEcg | Exception:
        try:
            return self.prepare(ecg, record=record)
        except Exception as err:  # noqa: BLE001 - returned, for the caller to report per record
            return err

    def _batch_key(self, ecg: Ecg) -> tuple | None:
        """Records with equal keys can be prepared as one array; None: prepare this one alone."""
        pre = self.preprocess
        if pre.normalize != "none" or not MIN_FS <= ecg.fs <= MAX_FS or ecg.signal.ndim != 2:
            return None
        if pre.notch_hz is not None and pre.notch_hz < ecg.fs / 2:
            return None
        return ecg.fs, ecg.n_samples, tuple(ecg.leads), ecg.signal.dtype.str

    def _prepare_group(self, ecgs: list[Ecg], names: list[str | None]) -> dict[int, PreparedEcg]:
        """Prepared records of a group sharing :meth:`_batch_key`, by position; those left out go alone."""
        from ..exceptions import SignalQualityWarning
        from ..signal import functional as F
        from ..signal.quality import FLAT_STD_MV

        pre = self.preprocess
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SignalQualityWarning)
            stds = [ecg.to_standard_leads(pre.leads, derive=True) for ecg in ecgs]
            x = np.stack([std.signal for std in stds])  # [B, L, n], native fs, mV
            top, bottom = x.max(axis=-1), x.min(axis=-1)  # [B, L]: NaN or inf where a lead is not finite
            finite = (np.isfinite(top) & np.isfinite(bottom)).all(axis=-1)
            amp = F.robust_peak_to_peak_batch(x, assume_finite=bool(finite.all()))
            unit_ok = (amp == 0.0) | ((amp >= F.MIN_PEAK_TO_PEAK_MV) & (amp <= F.MAX_PEAK_TO_PEAK_MV))
            peaks_ok = (np.maximum(top, -bottom) <= MAX_ABS_MV).all(axis=-1) if pre.check_units else True
            x64 = x.astype(np.float64)  # the flat check and the quality checks share it and its std
            lead_std = x64.std(axis=-1)  # [B, L]; NaN for a lead with NaN (then not kept)
            usable = (lead_std >= FLAT_STD_MV).any(axis=-1)
            keep = np.flatnonzero(finite & unit_ok & peaks_ok & usable)
            if keep.size < 2:
                return {}
            fs, xs = stds[0].fs, x[keep]
            n_total = _resampled_length(xs.shape[-1], fs, pre.fs)
            starts, cropped = plan_windows(n_total, pre.n_samples, self.max_windows, pre.crop)
            windows = _cut_windows(pre.filter_and_resample(xs, fs), starts, pre)  # [B, W, L, T]
            quality = (_quality_flags(x64[keep], fs, stds[0].leads, lead_std[keep], (top[keep], bottom[keep]))
                       if self.quality else None)
        if caught:  # a repair warning cannot be told apart per record: let each record say its own
            return {}
        derived = [lead for lead in pre.leads if lead in stds[0].derived_leads]
        head = (["derived:" + ",".join(derived)] if derived else []) + (
            [f"resampled:{fs:g}->{pre.fs:g}"] if abs(fs - pre.fs) > 1e-9 else [])
        tail = [name for name, hit in (("padded", n_total < pre.n_samples), ("cropped", cropped)) if hit]
        out = {}
        for row, pos in enumerate(keep):
            ecg = ecgs[pos]
            flags = (*_reader_flags(ecg), *head, *(quality[row] if quality is not None else ()), *tail)
            out[int(pos)] = PreparedEcg(record=ecg.record_id if names[pos] is None else names[pos],
                                        windows=windows[row], starts=tuple(starts[:windows.shape[1]]),
                                        n_resampled=n_total,
                                        flags=flags, recorded=recorded_fields(ecg))
        return out


#: records per group of :meth:`InputAdapter.prepare_many` (each filter and check pass then works on a few MB).
#: Measured with ``benchmarks/bench_harmonise.py`` (2026-12-05, chunks of 32 PTB-XL records, median of 9 repeats):
#: groups of 8 took 0.68x the time per record of one group of 32 at 100 Hz and 0.81x at 500 Hz, the best or
#: within 0.01 of the best of 2, 4, 8 and 16 at both rates; records alone (no group) took 1.32x / 0.94x.
GROUP_RECORDS = 8


def _cache_sized(members: list[int], size: int | None = None) -> list[list[int]]:
    """``members`` (indices of records sharing a batch key) in consecutive groups of :data:`GROUP_RECORDS`
    (or ``size``) records, none of a single record (a lone record goes through ``prepare``)."""
    size = max(2, GROUP_RECORDS if size is None else int(size))
    groups = [members[i:i + size] for i in range(0, len(members), size)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        groups[-2].extend(groups.pop())
    return groups


def _cut_windows(y: np.ndarray, starts: list[int], pre: Any) -> np.ndarray:
    """Model windows [B, W, L, T] float32 of records ``y`` [B, L, N] at the model's fs, cut as
    :meth:`InputAdapter.prepare` cuts one record (``Preprocess.apply`` for one window, else
    ``Preprocess.windows`` with the planned hop)."""
    from ..signal import functional as F

    width = pre.n_samples
    if len(starts) == 1 or y.shape[-1] <= width:
        return F.crop_or_pad(y, width, mode=pre.crop)[0].astype(np.float32, copy=False)[:, None]
    hop = round((starts[1] - starts[0]) / pre.fs * pre.fs)
    cuts = range(0, y.shape[-1] - width + 1, hop)[: len(starts)]
    return np.stack([y[..., s:s + width] for s in cuts], axis=1).astype(np.float32)


def _reader_flags(ecg: Ecg) -> tuple[str, ...]:
    """Flags for what the reader did to the file's waveform (``calibration_removed``)."""
    return ("calibration_removed",) if ecg.meta.get("calibration_removed_s") else ()


def _quality_flags(x: np.ndarray, fs: float, leads: Sequence[str], std: np.ndarray,
                   extremes: tuple[np.ndarray, np.ndarray]) -> list[tuple[str, ...]]:
    """Quality flags of each record of ``x`` [B, L, n] (finite, float64; ``std`` [B, L] its per-lead standard
    deviation, ``extremes`` its per-lead maximum and minimum [B, L]): one quality assessment over all B x L rows
    (each of its checks is per row, the same as :func:`~ecglens.signal.quality.assess_quality` of each record),
    its flags split back by record."""
    from ..signal.quality import assess_finite_rows

    b, n_leads = x.shape[0], x.shape[1]
    rows = tuple(np.asarray(e, dtype=np.float64).reshape(-1) for e in extremes)
    report = assess_finite_rows(x.reshape(b * n_leads, x.shape[-1]), fs,
                                [f"{i}\t{lead}" for i in range(b) for lead in leads], std.reshape(-1),
                                (rows[0], rows[1]))
    out: list[list[str]] = [[] for _ in range(b)]
    for flag in report.flags:
        kind, name = flag.split(":", 1)
        index, lead = name.split("\t", 1)
        out[int(index)].append(f"{kind}:{lead}")
    return [tuple(f) for f in out]
