"""``Preprocess``: the exact, serialisable chain that turns an :class:`~ecglens.ecg.Ecg` into model input.

The same spec is used when a cache is prepared, when a model is trained, and when it predicts; it is stored in
every checkpoint (``to_dict`` / ``from_dict``), so a model always sees its inputs the way it was trained.

Order of the steps (each one a pure function of :mod:`ecglens.signal.functional`):

1. reorder to ``leads``, deriving III, aVR, aVL, aVF from I and II when missing;
2. NaN handling: a lead with a few NaNs is linearly interpolated, a lead with more than half NaN (or all NaN)
   becomes zeros, both with a :class:`~ecglens.exceptions.SignalQualityWarning`; an all-NaN or all-zero record
   raises :class:`~ecglens.exceptions.SignalQualityError`;
3. unit check (``check_units``): :func:`~ecglens.signal.functional.check_amplitude` raises
   :class:`~ecglens.exceptions.UnitError` for microvolts / counts / volts passed as mV; then a record flat on
   every lead raises :class:`~ecglens.exceptions.SignalQualityError`;
4. notch (mains) at the **native** sampling rate, skipped at or above the native Nyquist frequency (the
   interference cannot be present); high-pass (baseline wander) at the lower of the native rate and ``fs``:
   before resampling when the record is upsampled, after it when downsampled (the same 0.5 Hz filter, at a
   fifth of the cost for a 500 Hz record; the two orders differ by < 1 uV away from the first and last
   second, at most ~15 uV at the edges);
5. resample to ``fs`` (for a downsampled record, then the high-pass of step 4);
6. crop or pad to ``n_samples`` (``crop`` mode; padding is zeros and is reported by the mask);
7. normalise each lead over its real (unpadded) samples.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ecg import Ecg
from ..exceptions import ConfigError, SignalQualityError, SignalQualityWarning, UnitError
from ..leads import CANONICAL_LEADS, normalize_lead_names
from . import functional as F
from .quality import check_usable

__all__ = ["CONTRACT_FIELDS", "MAX_INTERP_NAN_FRACTION", "Preprocess", "contract_mismatches", "fill_nans"]

#: a lead with more than this fraction of NaN samples is treated as missing (zeros), not interpolated
MAX_INTERP_NAN_FRACTION: float = 0.5


#: the Preprocess fields that data must share with a model's input contract
CONTRACT_FIELDS: tuple[str, ...] = ("fs", "seconds", "leads", "highpass_hz", "notch_hz", "normalize")


def contract_mismatches(model: Mapping[str, Any], data: Mapping[str, Any],
                        fields: Sequence[str] = CONTRACT_FIELDS) -> dict[str, tuple[Any, Any]]:
    """Where data prepared with the spec ``data`` cannot feed a model whose input contract is ``model``.

    Parameters
    ----------
    model, data : mapping
        :meth:`Preprocess.to_dict` of the model's contract and of the data's preprocessing.
    fields : sequence of str
        The fields to compare. All must agree, except ``seconds``: data at least as long as the model's window
        is fine (longer records are predicted in windows of the model's length, see
        :mod:`ecglens.artifact.windows`).

    Returns
    -------
    dict of str to (model value, data value)
        Empty when the data fits.
    """
    out = {}
    for key in fields:
        a, b = model.get(key), data.get(key)
        if key == "seconds" and a is not None and b is not None:
            if float(b) < float(a):
                out[key] = (a, b)
        elif a != b:
            out[key] = (a, b)
    return out


def _interp_lead(lead: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN samples (edge NaNs take the nearest valid value)."""
    idx = np.arange(lead.size)
    out = lead.copy()
    out[bad] = np.interp(idx[bad], idx[~bad], lead[~bad])
    return out


def fill_nans(x: np.ndarray, leads: tuple[str, ...], record: str = "") -> np.ndarray:
    """Replace NaN (and infinite) samples per lead, warning about each repair.

    Parameters
    ----------
    x : np.ndarray, shape (n_leads, n_samples)
        Signal in mV (not modified).
    leads : tuple of str
        Lead names for the warnings.
    record : str
        Record name for the messages.

    Returns
    -------
    np.ndarray, shape (n_leads, n_samples)
        ``x`` itself when it has no NaN, else a copy with NaNs linearly interpolated (a lead with at most
        :data:`MAX_INTERP_NAN_FRACTION` NaNs) or the whole lead set to zeros (more NaNs than that).

    Raises
    ------
    SignalQualityError
        When every sample is NaN.
    """
    if x.size and math.isfinite(float(x.min())) and math.isfinite(float(x.max())):  # NaN and inf show in the bounds
        return x
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    what = f"record {record!r}" if record else "the signal"
    if bad.all():
        raise SignalQualityError(
            f"{what} is all NaN (no valid sample); check the file or exclude the record."
        )
    out = np.array(x, dtype=np.float64)
    fractions = bad.mean(axis=-1)
    zeroed, filled = [], []
    for i in np.flatnonzero(fractions):
        if fractions[i] > MAX_INTERP_NAN_FRACTION:
            out[i] = 0.0
            zeroed.append(leads[i])
        else:
            out[i] = _interp_lead(out[i], bad[i])
            filled.append(f"{leads[i]} ({fractions[i]:.1%})")
    if filled:
        warnings.warn(
            f"{what}: NaN/inf samples linearly interpolated in {', '.join(filled)}.",
            SignalQualityWarning,
            stacklevel=3,
        )
    if zeroed:
        warnings.warn(
            f"{what}: lead(s) {zeroed} are mostly or entirely NaN and were set to zeros; predictions rely on the "
            "other leads.",
            SignalQualityWarning,
            stacklevel=3,
        )
    return out


@dataclass(frozen=True)
class Preprocess:
    """The preprocessing a model is trained with (see the module docstring for the order of the steps).

    Parameters
    ----------
    fs : float
        Sampling rate (Hz) of the model input.
    seconds : float
        Duration (s) of the model input; ``n_samples = round(fs * seconds)``.
    leads : tuple of str
        Leads of the model input, in order (any alias spelling; stored canonical).
    highpass_hz : float or None
        High-pass cutoff (Hz) against baseline wander, applied at the native rate; ``None`` for none.
    notch_hz : float or None
        Mains frequency to notch out (50 or 60 Hz) at the native rate; ``None`` for none.
    normalize : {"none", "zscore", "robust", "minmax"}
        Per-lead normalisation (``"none"`` keeps mV).
    crop : {"center", "random", "start"}
        Where a longer recording is cropped / a shorter one placed in the padded window.
    check_units : bool
        Refuse amplitudes that are not plausible millivolts (:class:`~ecglens.exceptions.UnitError`).
    """

    fs: float = 100.0
    seconds: float = 10.0
    leads: tuple[str, ...] = CANONICAL_LEADS
    highpass_hz: float | None = 0.5
    notch_hz: float | None = None
    normalize: str = "none"
    crop: str = "center"
    check_units: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "fs", self._positive("fs", self.fs))
        set_(self, "seconds", self._positive("seconds", self.seconds))
        if isinstance(self.leads, str) or not self.leads:
            raise ConfigError(f"leads must be a non-empty list of lead names, got {self.leads!r}.")
        set_(self, "leads", normalize_lead_names(self.leads))
        for name in ("highpass_hz", "notch_hz"):
            value = getattr(self, name)
            set_(self, name, None if value is None else self._positive(name, value))
        if self.highpass_hz is not None and self.highpass_hz >= self.fs / 2:
            raise ConfigError(f"highpass_hz={self.highpass_hz:g} must be below fs/2 = {self.fs / 2:g} Hz.")
        if self.normalize not in F.NORMALIZE_METHODS:
            raise ConfigError(
                f"normalize={self.normalize!r} is unknown; choose one of {list(F.NORMALIZE_METHODS)}."
            )
        if self.crop not in F.CROP_MODES:
            raise ConfigError(f"crop={self.crop!r} is unknown; choose one of {list(F.CROP_MODES)}.")
        if not isinstance(self.check_units, (bool, np.bool_)):
            raise ConfigError(f"check_units must be true or false, got {self.check_units!r}.")
        set_(self, "check_units", bool(self.check_units))
        if self.n_samples < 1:
            raise ConfigError(f"fs * seconds = {self.fs * self.seconds:g} gives no sample; increase seconds.")

    @staticmethod
    def _positive(name: str, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}.") from None
        if not math.isfinite(number) or number <= 0:
            raise ConfigError(f"{name} must be a positive number, got {value!r}.")
        return number

    # ------------------------------------------------------------------ serialisation
    @property
    def n_samples(self) -> int:
        """Samples per lead of the model input: ``round(fs * seconds)``."""
        return round(self.fs * self.seconds)

    @property
    def n_leads(self) -> int:
        """Number of leads of the model input."""
        return len(self.leads)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the fields (``leads`` as a list); inverse of :meth:`from_dict`."""
        out = dataclasses.asdict(self)
        out["leads"] = list(self.leads)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocess:
        """Build from a dict written by :meth:`to_dict` (missing keys take their defaults).

        Raises
        ------
        ConfigError
            On unknown keys (naming the valid ones) or invalid values.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"a preprocess spec must be a mapping, got {type(d).__name__}.")
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ConfigError(f"unknown preprocess key(s) {unknown}; valid keys are {valid}.")
        kwargs = dict(d)
        if "leads" in kwargs and not isinstance(kwargs["leads"], str):
            kwargs["leads"] = tuple(kwargs["leads"])
        return cls(**kwargs)

    def describe(self) -> str:
        """One line of text, e.g. for model cards and logs."""
        hp = f"high-pass {self.highpass_hz:g} Hz" if self.highpass_hz else "no high-pass"
        nt = f"notch {self.notch_hz:g} Hz" if self.notch_hz else "no notch"
        units = "units checked" if self.check_units else "units not checked"
        return (
            f"{self.n_leads} leads ({','.join(self.leads)}) at {self.fs:g} Hz x {self.seconds:g} s "
            f"({self.n_samples} samples); {hp}; {nt}; normalize {self.normalize}; crop {self.crop}; {units}"
        )

    # ------------------------------------------------------------------ processing
    def _harmonise(self, ecg: Ecg) -> np.ndarray:
        """Steps 1-5: leads, NaNs, units, filters at native fs, resampling. Returns [n_leads, T] at ``fs``."""
        if not isinstance(ecg, Ecg):
            raise TypeError(
                f"Preprocess expects an ecglens.Ecg, got {type(ecg).__name__}; wrap arrays in Ecg(...)."
            )
        std = ecg.to_standard_leads(self.leads, derive=True)
        x = fill_nans(std.signal, std.leads, ecg.record_id)
        if not x.any():
            raise SignalQualityError(
                f"record {ecg.record_id!r} is all zeros: no lead was recorded. Exclude it, or check the reader."
            )
        if self.check_units:
            try:
                F.check_amplitude(x)
            except UnitError as err:
                raise UnitError(f"record {ecg.record_id!r}: {err}") from None
        check_usable(x, record=ecg.record_id)
        return self.filter_and_resample(x, ecg.fs)

    def filter_and_resample(self, x: np.ndarray, fs: float) -> np.ndarray:
        """Steps 4-5 on a checked array: notch at ``fs``, high-pass at ``min(fs, self.fs)``, resampling.

        Parameters
        ----------
        x : np.ndarray, shape (..., n)
            Signal in mV at ``fs`` Hz (any leading axes, e.g. [B, L, n] for a batch).
        fs : float
            Its sampling rate in Hz.

        Returns
        -------
        np.ndarray, shape (..., round(n * self.fs / fs))
            At ``self.fs`` Hz.
        """
        late = self.highpass_hz is not None and fs > self.fs  # downsampled: filter at the lower rate
        if self.highpass_hz is not None and not late:
            x = F.highpass(x, fs, self.highpass_hz)
        if self.notch_hz is not None and self.notch_hz < fs / 2:
            x = F.notch(x, fs, self.notch_hz)
        x = F.resample(x, fs, self.fs)
        return F.highpass(x, self.fs, self.highpass_hz) if late else x

    def _finish(
        self, x: np.ndarray, mode: str, rng: np.random.Generator | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Steps 6-7 on a harmonised array."""
        y, mask = F.crop_or_pad(x, self.n_samples, mode=mode, rng=rng)
        if self.normalize != "none":
            y[..., mask] = F.normalize(y[..., mask], self.normalize)
        return y.astype(np.float32, copy=False), mask

    def apply_with_mask(
        self, ecg: Ecg, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`apply`, also returning which samples are real.

        Returns
        -------
        x : np.ndarray, float32, shape (n_leads, n_samples)
        mask : np.ndarray of bool, shape (n_samples,)
            ``True`` on real samples, ``False`` on padding (recordings shorter than ``seconds``).
        """
        return self._finish(self._harmonise(ecg), self.crop, rng)

    def apply(self, ecg: Ecg, rng: np.random.Generator | None = None) -> np.ndarray:
        """Turn an ECG into model input.

        Parameters
        ----------
        ecg : Ecg
            Any recording (any lead order / subset from which ``leads`` can be made, any fs >= 50 Hz, mV).
        rng : np.random.Generator, optional
            Used only when ``crop == "random"`` (unseeded when omitted).

        Returns
        -------
        np.ndarray, float32, shape (n_leads, n_samples)
            At ``fs`` Hz, leads in ``self.leads`` order, mV unless ``normalize`` says otherwise.

        Raises
        ------
        LeadError, SamplingRateError, UnitError, SignalQualityError
            When the record cannot be brought to this spec (each message says how to fix it).
        """
        return self.apply_with_mask(ecg, rng)[0]

    def __call__(self, ecg: Ecg, rng: np.random.Generator | None = None) -> np.ndarray:
        """``pre(ecg)`` is :meth:`apply` (as torchvision-style transforms are called).

        Returns
        -------
        np.ndarray, float32, shape (n_leads, n_samples)
            At ``fs`` Hz, leads in ``self.leads`` order.
        """
        return self.apply(ecg, rng)

    def windows(
        self, ecg: Ecg, hop_seconds: float | None = None, max_windows: int | None = None
    ) -> np.ndarray:
        """Split a long recording into consecutive model inputs.

        Parameters
        ----------
        ecg : Ecg
            Recording of any length.
        hop_seconds : float, optional
            Step between window starts (default ``seconds``: non-overlapping windows).
        max_windows : int, optional
            Keep at most this many windows (the first ones).

        Returns
        -------
        np.ndarray, float32, shape (n_windows, n_leads, n_samples)
            Windows starting at 0, hop, 2*hop, ...; a last partial window is dropped unless it is the only one,
            in which case the recording is padded as in :meth:`apply` (a random crop mode pads centred).
        """
        hop = (
            self.n_samples
            if hop_seconds is None
            else round(self._positive("hop_seconds", hop_seconds) * self.fs)
        )
        if hop < 1:
            raise ConfigError(f"hop_seconds={hop_seconds!r} is shorter than one sample at {self.fs:g} Hz.")
        if max_windows is not None and int(max_windows) < 1:
            raise ConfigError(f"max_windows must be at least 1, got {max_windows!r}.")
        x = self._harmonise(ecg)
        mode = "center" if self.crop == "random" else self.crop
        if x.shape[-1] <= self.n_samples:
            return self._finish(x, mode, None)[0][None]
        starts = range(0, x.shape[-1] - self.n_samples + 1, hop)
        if max_windows is not None:
            starts = starts[: int(max_windows)]
        return np.stack([self._finish(x[:, s : s + self.n_samples], mode, None)[0] for s in starts])
