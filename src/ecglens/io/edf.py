"""EDF / EDF+ reader (European Data Format, as written by Holter and PC-ECG software), through ``edfio``.

Why ``edfio`` rather than ``pyedflib``: both read EDF and EDF+ correctly and have permissive licences (edfio
Apache-2.0, pyedflib BSD-2; both fine for this MIT project). ``edfio`` is pure Python on numpy (one universal
wheel, no compiled extension per platform and Python version, as pyedflib needs), separates EDF+ annotation
channels from signals, and refuses malformed headers with ``ValueError`` (turned into ecglens errors here). It is
fast enough that speed does not decide: a 12-lead 10-s EDF at 500 Hz reads in about 2 ms, a 1-hour 3-lead Holter
EDF in about 0.5 s (measured on the development machine; pyedflib was not measured).

What the reader does:

* Channels whose label names one of the 12 standard leads are read; others (annotations, respiration, SpO2,
  unnamed "ECG1" channels) are ignored. Labels are matched after removing an ``ECG``/``EKG`` prefix and a
  reference suffix (``-ref``, ``-avg``), e.g. ``"ECG I"``, ``"EKG V1"``, ``"I-ref"``, ``"ECG aVR-REF"``,
  ``"Lead II"``. III, aVR, aVL, aVF are derived from I and II when absent.
* The physical dimension of each lead (``uV``, ``mV``, ``V``, ``nV``) converts its physical values to mV; a
  lead with another or no dimension is refused (:class:`~ecglens.exceptions.UnitError`).
* All ECG leads must share one sampling rate (:class:`~ecglens.exceptions.SamplingRateError` otherwise).
* EDF+D (discontinuous) records are refused; EDF+ patient fields give sex and, with the start date, the age.
"""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..ecg import Ecg, check_recorded_fs, check_recorded_signal
from ..exceptions import CorruptRecordError, LeadError, SamplingRateError, UnitError, UnsupportedFormatError
from ..leads import CANONICAL_LEADS, normalize_lead_name
from ._vendor import VOLTAGE_TO_MV, standardise_leads, strip_calibration
from .registry import register_reader

__all__ = ["edf_lead_name", "read_edf", "sniff_edf"]

FORMAT = "EDF/EDF+"
_PREFIX = re.compile(r"^\s*(?:ECG|EKG)(?:[\s_.:\-]+|(?=[IiVvAa]))", re.IGNORECASE)
_REFERENCE = re.compile(r"[\s_\-]*(?:ref|avg|average)\s*$", re.IGNORECASE)
#: what edfio raises on a malformed header (UnboundLocalError: edfio 0.4.18's signal-header parser on some damaged
#: sampling-rate fields, seen by the fuzzer)
_READ_ERRORS = (ValueError, IndexError, KeyError, TypeError, ArithmeticError, UnicodeDecodeError, struct.error,
                UnboundLocalError)


def sniff_edf(path: Path) -> bool:
    """True when the file starts with the EDF version field ``"0       "``."""
    with open(path, "rb") as fh:
        return fh.read(8) == b"0       "


def edf_lead_name(label: str) -> str | None:
    """The canonical lead named by an EDF channel label, or ``None`` for a channel that is no standard lead.

    ``"ECG I"`` -> ``"I"``, ``"EKG V1"`` -> ``"V1"``, ``"I-ref"`` -> ``"I"``, ``"ECG AVR"`` -> ``"aVR"``,
    ``"Resp"`` -> ``None``.
    """
    name = normalize_lead_name(_REFERENCE.sub("", _PREFIX.sub("", label)))
    return name if name in CANONICAL_LEADS else None


@register_reader(
    "edf",
    (".edf",),
    sniff=sniff_edf,
    priority=20,
    description="EDF / EDF+ (European Data Format) via edfio",
)
def read_edf(path: str | Path) -> Ecg:
    """Read the ECG leads of an EDF or EDF+ file.

    Parameters
    ----------
    path : str or Path
        The ``.edf`` file.

    Returns
    -------
    Ecg
        ``signal`` [n_leads, n_samples] in mV, canonical lead order (limb leads derived from I and II when
        missing), ``fs`` in Hz, ``age`` and ``sex`` from EDF+ patient fields, ``meta`` with ``patient_id``,
        ``start_datetime``, ``channels`` (the EDF label of each lead read).

    Raises
    ------
    CorruptRecordError
        A malformed or truncated file, or ECG channels that are flat on every lead.
    UnsupportedFormatError
        An EDF+D (discontinuous) record.
    LeadError
        No channel labelled as a standard lead, or one lead in two channels.
    UnitError
        A lead without a voltage dimension.
    SamplingRateError
        ECG leads at different sampling rates.
    """
    path = Path(path)
    edf, labels = _load(path)
    channels = _ecg_channels(edf.signals, labels, path)
    rates = {name: float(sig.sampling_frequency) for name, sig in channels.items()}
    if len(set(rates.values())) != 1:
        raise SamplingRateError(
            f"{path}: the ECG leads of this {FORMAT} file have different sampling rates ({rates} Hz); "
            "ecglens needs one rate per record. Resample the leads to one rate when exporting."
        )
    signal = np.stack(
        [np.asarray(sig.data, dtype=np.float64) * _to_mv(sig, name, path) for name, sig in channels.items()]
    )
    meta = _edf_meta(edf, channels)
    if not np.isfinite(signal).all() or not np.ptp(signal, axis=1).any():
        raise CorruptRecordError(
            f"{path}: the ECG channels of this {FORMAT} file are flat (constant on every lead) or not finite; "
            "the recording holds no ECG. Check the export."
        )
    check_recorded_signal(signal, str(path), FORMAT)
    ecg = Ecg(
        signal=signal,
        fs=check_recorded_fs(next(iter(rates.values())), str(path), "samples per data record / record duration"),
        leads=tuple(channels),
        record_id=path.stem,
        age=meta.pop("age"),
        sex=meta.pop("sex"),
        source=str(path),
        meta=meta,
    )
    return strip_calibration(standardise_leads(ecg), path, FORMAT)


def _load(path: Path) -> tuple[Any, list[str]]:
    """The edfio record and its channel labels; refuses malformed, truncated and discontinuous files."""
    import edfio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # edfio warns of a short file; refused below instead
            edf = edfio.read_edf(path, lazy_load_data=False)
        labels = [sig.label for sig in edf.signals]
        with open(path, "rb") as fh:
            declared = int(fh.read(244)[236:244])  # header field "number of data records" (-1: unknown)
    except _READ_ERRORS as err:
        raise CorruptRecordError(
            f"{path}: not a readable {FORMAT} file ({type(err).__name__}: {err}); it is malformed or truncated. "
            "Export it again."
        ) from err
    if declared not in (-1, edf.num_data_records):
        raise CorruptRecordError(
            f"{path}: the {FORMAT} header declares {declared} data records but the file holds "
            f"{edf.num_data_records}; it is truncated. Export it again."
        )
    if edf.reserved.strip().upper().startswith("EDF+D"):
        raise UnsupportedFormatError(
            f"{path}: an EDF+D (discontinuous) record has gaps in time; export it as continuous EDF or EDF+C."
        )
    return edf, labels


def _ecg_channels(signals: Any, labels: list[str], path: Path) -> dict[str, Any]:
    """Lead name -> edfio signal, for the channels that name a standard lead (file order)."""
    found: dict[str, Any] = {}
    for sig, label in zip(signals, labels, strict=True):
        name = edf_lead_name(label)
        if name is None:
            continue
        if name in found:
            raise LeadError(
                f"{path}: {FORMAT} channels {found[name].label!r} and {sig.label!r} both hold lead {name}; keep one of "
                "them (edfio's Edf.drop_signals) and read the file again."
            )
        found[name] = sig
    if not found:
        raise LeadError(
            f"{path}: no channel of this {FORMAT} file is labelled as one of the 12 standard leads (labels: "
            f"{labels}). Rename the ECG channels (e.g. 'ECG I', 'EKG V1', 'II-ref')."
        )
    return found


def _to_mv(sig: Any, name: str, path: Path) -> float:
    """Factor from the channel's physical dimension to mV."""
    unit = str(sig.physical_dimension).strip()
    factor = VOLTAGE_TO_MV.get(unit.upper(), VOLTAGE_TO_MV.get(unit))
    if factor is None:
        raise UnitError(
            f"{path}: {FORMAT} lead {name} (channel {sig.label!r}) has physical dimension {unit!r}, not a voltage; its "
            "amplitude in mV is unknown. Export the ECG with the dimension set to uV, mV or V."
        )
    return factor


def _edf_meta(edf: Any, channels: dict[str, Any]) -> dict[str, Any]:
    """``age``, ``sex`` (None when unknown), ``patient_id``, ``start_datetime``, ``channels``."""
    import edfio

    meta: dict[str, Any] = {
        "format": "edf",
        "age": None,
        "sex": None,
        "channels": {name: sig.label for name, sig in channels.items()},
    }
    try:
        meta["start_datetime"] = edf.startdatetime.isoformat()
    except (edfio.AnonymizedDateError, ValueError):
        pass
    try:
        patient = edf.patient
        meta["sex"] = patient.sex if patient.sex in ("F", "M") else None
        meta["patient_id"] = patient.code if patient.code not in ("", "X") else None
        born, on = patient.birthdate, edf.startdate
        meta["age"] = float(on.year - born.year - ((on.month, on.day) < (born.month, born.day)))
    except (edfio.AnonymizedDateError, ValueError, AttributeError, TypeError):
        pass  # plain EDF or anonymised EDF+: no structured patient field
    return {k: v for k, v in meta.items() if v is not None or k in ("age", "sex")}
