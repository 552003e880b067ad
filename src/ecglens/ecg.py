"""The one ECG object of ecglens.

Conventions (hold everywhere in the library):

* ``signal``: float32 array ``[n_leads, n_samples]`` in **millivolts**, C-contiguous (each lead's samples
  adjacent in memory, whatever layout the reader had: the signal functions work along time).
* ``fs``: sampling rate in Hz.
* ``leads``: canonical names (see :mod:`ecglens.leads`), one per row of ``signal``.
* ``age``: years as float; PTB-XL's "300" (over 89) is stored as 90.0; unknown is ``None``.
* ``sex``: ``"F"`` or ``"M"``; unknown is ``None``. Numeric tables use ``1 = female, 0 = male`` (PTB-XL's
  coding), and models output ``p_female``.

The invariant every ``Ecg`` keeps: its samples are finite (a reader fills or refuses missing samples before it
builds one). What a *recording* can hold is stricter, and every file reader checks it with
:func:`check_recorded_signal`: no sample beyond :data:`MAX_ABS_MV` and not zero everywhere. An ``Ecg`` built
from an array may still hold microvolts or volts (the predictor converts or refuses them).
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .exceptions import LeadError, SamplingRateError, SignalQualityError, UnitError
from .leads import CANONICAL_LEADS, normalize_lead_names, to_canonical_order

__all__ = ["MAX_ABS_MV", "MAX_FS", "MIN_FS", "Ecg", "check_recorded_fs", "check_recorded_signal", "code_to_sex",
           "sex_to_code"]

#: largest absolute amplitude (mV) a recorded ECG sample can have: ECG front ends saturate at a few tens of
#: mV (16-bit samples at 1000 counts/mV span +-32.8 mV); more means a wrong gain, unit or a damaged file
MAX_ABS_MV: float = 50.0
#: sampling rates (Hz) a file may state for an ECG recording; anything else is a damaged or misread field
MIN_FS: float = 50.0
MAX_FS: float = 20_000.0
#: voltage unit -> factor to mV, for arrays that name their unit (``wfdb.Record.units``)
_TO_MV: dict[str, float] = {"mV": 1.0, "uV": 1e-3, "µV": 1e-3, "V": 1e3}


def sex_to_code(sex: str | None) -> float:
    """Map ``"F"``/``"M"``/``None`` to the numeric coding ``1.0``/``0.0``/``nan`` (1 = female)."""
    return {"F": 1.0, "M": 0.0}.get(sex or "", float("nan"))


def code_to_sex(code: float | None) -> str | None:
    """Map ``1``/``0``/``nan`` (1 = female) to ``"F"``/``"M"``/``None``."""
    if code is None or (isinstance(code, float) and np.isnan(code)):
        return None
    return "F" if int(code) == 1 else "M"


def check_recorded_fs(fs: object, where: str, field: str) -> float:
    """The sampling rate a file states, as a float, when it is a finite number of Hz in [MIN_FS, MAX_FS].

    Parameters
    ----------
    fs : object
        The value as the reader parsed it (a number, or a string of digits).
    where : str
        The file (for the message).
    field : str
        The name of the field in the file (for the message).

    Raises
    ------
    SamplingRateError
        Naming the field and the value found.
    """
    try:
        value = float(fs)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        value = float("nan")
    if not MIN_FS <= value <= MAX_FS:
        raise SamplingRateError(
            f"{where}: sampling rate {fs!r} in the field {field} is not a number of Hz between {MIN_FS:g} and "
            f"{MAX_FS:g}; the file is damaged or the field misread. Fix {field} or export the record again."
        )
    return value


def check_recorded_signal(signal: np.ndarray, where: str, fmt: str) -> None:
    """Refuse a decoded recording that no ECG can be: a sample beyond :data:`MAX_ABS_MV`, or zero everywhere.

    Parameters
    ----------
    signal : np.ndarray, shape (n_leads, n_samples)
        Finite amplitudes in mV, as a reader decoded them.
    where : str
        The file (for the message).
    fmt : str
        Human name of the format (for the message).

    Raises
    ------
    UnitError
        A sample beyond +-50 mV (a wrong gain, baseline or unit in the file, or damaged sample data).
    SignalQualityError
        No sample differs from zero.
    """
    x = np.asarray(signal)
    if x.size:  # the usual case from the whole array's bounds (NaN propagates into them): no per-lead pass
        lo, hi = float(x.min()), float(x.max())
        if math.isfinite(lo) and math.isfinite(hi) and max(hi, -lo) <= MAX_ABS_MV and (lo != 0.0 or hi != 0.0):
            return
    peak = np.abs(x).max(axis=-1, initial=0.0) if x.size else np.zeros(1)
    if not np.all(peak <= MAX_ABS_MV):  # also catches NaN
        lead = int(np.nanargmax(np.where(np.isfinite(peak), peak, np.inf)))
        raise UnitError(
            f"{where}: the {fmt} record decodes to {float(peak[lead]):.3g} mV in signal {lead}, beyond the "
            f"+-{MAX_ABS_MV:g} mV any ECG stays within: the gain, baseline or unit in the file is wrong or the "
            "sample data are damaged. Fix the calibration fields or export the record again."
        )
    if not x.any():
        raise SignalQualityError(
            f"{where}: the {fmt} record is zero on every lead and sample: no ECG was recorded or the data did "
            "not decode. Exclude it or export it again."
        )


@dataclass(frozen=True, eq=False)
class Ecg:
    """A resting ECG: signal in mV with its sampling rate, lead names and metadata.

    Parameters
    ----------
    signal : np.ndarray, shape (n_leads, n_samples)
        Amplitudes in mV; converted to float32.
    fs : float
        Sampling rate in Hz.
    leads : tuple of str
        Lead names, normalised to canonical spelling (``avr`` -> ``aVR``).
    record_id : str
        An identifier (file stem, exam id, ...).
    age : float or None
        Age in years (``None`` unknown).
    sex : {"F", "M", None}
        Sex (``None`` unknown).
    derived_leads : tuple of str
        Leads computed from I and II rather than recorded.
    source : str
        Where it came from (a path, a dataset name).
    meta : mapping
        Anything else read from the file (patient id, diagnoses, device, ...).
    """

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    record_id: str = ""
    age: float | None = None
    sex: str | None = None
    derived_leads: tuple[str, ...] = ()
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        with np.errstate(over="ignore"):  # values beyond float32 become inf: refused below with the reason
            sig = np.ascontiguousarray(self.signal, dtype=np.float32)  # [leads, samples], time contiguous
        if sig.ndim != 2:
            raise LeadError(f"Ecg.signal must be 2-D [n_leads, n_samples], got shape {sig.shape}.")
        if not np.isfinite(sig).all():
            raise SignalQualityError(
                f"{self.source or f'record {self.record_id!r}'}: {int((~np.isfinite(sig)).sum())} NaN or infinite "
                "samples (or values beyond float32); an Ecg holds finite mV only. Fill missing samples first "
                "(ecglens.signal.fill_nans) or exclude the record."
            )
        leads = normalize_lead_names(self.leads)
        if len(leads) != sig.shape[0]:
            raise LeadError(
                f"{len(leads)} lead names for a signal with {sig.shape[0]} rows; give one name per row."
            )
        fs = float(self.fs)
        if not np.isfinite(fs) or fs <= 0:
            raise SamplingRateError(f"sampling rate must be a positive number of Hz, got {self.fs!r}.")
        if self.sex not in (None, "F", "M"):
            raise ValueError(f"sex must be 'F', 'M' or None, got {self.sex!r}")
        object.__setattr__(self, "signal", sig)
        object.__setattr__(self, "leads", leads)
        object.__setattr__(self, "fs", fs)
        object.__setattr__(self, "derived_leads", tuple(self.derived_leads))
        if self.age is not None:
            age = float(self.age)
            object.__setattr__(self, "age", None if np.isnan(age) else age)

    # ------------------------------------------------------------------ properties
    @property
    def n_leads(self) -> int:
        """Number of leads (rows of ``signal``)."""
        return int(self.signal.shape[0])

    @property
    def n_samples(self) -> int:
        """Number of samples per lead."""
        return int(self.signal.shape[1])

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        """Return one lead's samples (mV), by any spelling of its name."""
        (key,) = normalize_lead_names([name])
        if key not in self.leads:
            raise LeadError(f"lead {name!r} not in this ECG (it has {list(self.leads)}).")
        return self.signal[self.leads.index(key)]

    # ------------------------------------------------------------------ transformations
    def replace(self, **changes: Any) -> Ecg:
        """Return a copy with some fields replaced (``signal``, ``fs``, ``meta``, ...)."""
        return dataclasses.replace(self, **changes)

    def to_standard_leads(self, leads: tuple[str, ...] = CANONICAL_LEADS, derive: bool = True) -> Ecg:
        """Reorder to ``leads`` (default the 12 standard leads), deriving III/aVR/aVL/aVF when missing."""
        if self.leads == tuple(leads):
            return self
        signal, names, derived = to_canonical_order(self.signal, self.leads, leads, derive=derive)
        return self.replace(
            signal=signal, leads=names, derived_leads=tuple(dict.fromkeys(self.derived_leads + derived))
        )

    def summary(self) -> dict[str, Any]:
        """A one-line-per-field summary (for ``ecglens info`` and tables)."""
        finite = np.isfinite(self.signal)
        peak = float(np.nanmax(np.abs(self.signal))) if finite.any() else float("nan")
        return {
            "record": self.record_id,
            "fs_hz": self.fs,
            "n_leads": self.n_leads,
            "n_samples": self.n_samples,
            "duration_s": round(self.duration, 3),
            "leads": ",".join(self.leads),
            "derived_leads": ",".join(self.derived_leads),
            "age": self.age,
            "sex": self.sex,
            "peak_abs_mv": round(peak, 3),
            "source": self.source,
        }

    # ------------------------------------------------------------------ interoperability
    @classmethod
    def from_wfdb(cls, record: Any, standard_leads: bool = True) -> Ecg:
        """An ``Ecg`` from a ``wfdb.Record`` read in physical units (``wfdb.rdrecord(name, physical=True)``).

        Parameters
        ----------
        record : wfdb.Record
            With ``p_signal`` [n_samples, n_sig] in the units of ``record.units`` (mV, uV or V), ``fs`` in Hz and
            ``sig_name``; age / sex / ids are parsed from ``record.comments`` as :func:`ecglens.read_ecg` does.
        standard_leads : bool
            Reorder to the 12 standard leads (deriving III, aVR, aVL, aVF from I and II) when possible.

        Returns
        -------
        Ecg
            ``signal`` float32 [n_leads, n_samples] in mV at ``record.fs``.

        Raises
        ------
        UnitError
            No physical signal (read with ``physical=False``), a unit that is not a voltage, or samples beyond
            +-50 mV; SamplingRateError for an implausible ``fs``.
        """
        name = str(getattr(record, "record_name", "") or "")
        where = f"wfdb record {name!r}"
        if getattr(record, "p_signal", None) is None:
            raise UnitError(f"{where} has no physical signal; read it with wfdb.rdrecord(..., physical=True).")
        units = list(record.units or ["mV"] * record.n_sig)
        unknown = sorted({u for u in units if u not in _TO_MV})
        if unknown:
            raise UnitError(f"{where}: units {unknown} are not voltages ({sorted(_TO_MV)}); fix record.units.")
        signal = np.asarray(record.p_signal, dtype=np.float64).T * np.array([_TO_MV[u] for u in units])[:, None]
        check_recorded_signal(np.nan_to_num(signal), where, "WFDB")
        # the one exception to the floors (declared in .importlinter): a convenience method of the bottom object,
        # importing the header-comment parser when called
        from .io.metadata import parse_header_comments

        info = parse_header_comments(record.comments or [])
        ecg = cls(signal, check_recorded_fs(record.fs, where, "fs"), tuple(record.sig_name), record_id=name,
                  age=info.age, sex=info.sex, source=where, meta={"format": "wfdb", **info.to_meta()})
        try:
            return ecg.to_standard_leads() if standard_leads else ecg
        except LeadError:  # not the leads for the 12 standard ones: keep its own
            return ecg

    def to_dataframe(self) -> Any:
        """The signal as a ``pandas.DataFrame``: time in s as index (``time_s``), one column per lead, mV."""
        import pandas as pd

        index = pd.Index(np.arange(self.n_samples) / self.fs, name="time_s")
        return pd.DataFrame(self.signal.T, index=index, columns=list(self.leads))

    def plot(self, **kwargs: Any) -> Any:
        """Draw on ECG paper with :func:`ecglens.plot.plot_ecg` (25 mm/s, 10 mm/mV, 3x4 + rhythm strip).

        Parameters
        ----------
        **kwargs
            Passed to :func:`~ecglens.plot.plot_ecg` (``path``, ``title``, ``rhythm_lead``, ``dpi``, ``seconds``,
            ``start``, ``overlay``, ...).

        Returns
        -------
        matplotlib.figure.Figure
        """
        from .plot import plot_ecg  # declared exception to the floors (.importlinter): imported when called

        return plot_ecg(self, **kwargs)

    def _repr_html_(self) -> str:
        """Jupyter: a small table of the recording and its leads (no plot; ``ecg.plot()`` draws it)."""
        fields = {"record": self.record_id or "-", "fs": f"{self.fs:g} Hz", "duration": f"{self.duration:.3g} s",
                  "leads": f"{self.n_leads}: {', '.join(self.leads)}", "derived": ", ".join(self.derived_leads) or "-",
                  "age": "unknown" if self.age is None else f"{self.age:g} y", "sex": self.sex or "unknown"}
        head = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in fields.items())
        span = self.signal.max(axis=1) - self.signal.min(axis=1) if self.n_samples else np.zeros(self.n_leads)
        cells = "".join(f"<td>{html.escape(lead)}<br>{p:.2f}</td>" for lead, p in zip(self.leads, span, strict=True))
        return (f"<div><b>Ecg</b><table>{head}</table><table><tr><th>peak-to-peak (mV)</th>{cells}</tr>"
                "</table></div>")

    def __repr__(self) -> str:  # short: never print the whole array
        return (
            f"Ecg(record_id={self.record_id!r}, fs={self.fs:g}, leads={len(self.leads)}, "
            f"n_samples={self.n_samples}, age={self.age}, sex={self.sex})"
        )
