"""DICOM waveform reader (12-lead ECG / General ECG Waveform Storage), through ``pydicom``.

What the reader assumes (DICOM PS3.3 Waveform module, C.10.9):

* The file has the ``DICM`` preamble and a ``WaveformSequence``; each item is a *multiplex group*
  (``MultiplexGroupLabel`` such as "RHYTHM", "MEDIAN BEAT", "12-Lead", "General ECG") with
  ``NumberOfWaveformChannels``, ``NumberOfWaveformSamples``, ``SamplingFrequency`` and interleaved
  ``WaveformData`` (8/16/32/64-bit signed or unsigned integers; mu-law / A-law groups are refused).
* The rhythm group is read by default: the first group that is neither labelled "median" nor
  ``WaveformOriginality`` DERIVED (ties: most recognised ECG leads, then most samples); ``waveform="median"``
  reads the median-beat group and ``group=i`` any group by index.
* Lead names come from each channel's ``ChannelSourceSequence``: the code value (SCP-ECG ``5.6.3-9-N`` or
  MDC ``2:N``; N = 1 I, 2 II, 3-8 V1-V6, 61 III, 62 aVR, 63 aVL, 64 aVF), else the code meaning
  ("Lead I (Einthoven)" -> I), else ``ChannelLabel``.
* Amplitude = ``raw * ChannelSensitivity * ChannelSensitivityCorrectionFactor + ChannelBaseline`` in the unit of
  ``ChannelSensitivityUnitsSequence`` (uV, mV, V; the same formula as pydicom's ``waveform_array``), converted to
  mV. A channel without ``ChannelSensitivity`` holds uncalibrated ADC counts and is refused.
* Checked before use: ``SamplingFrequency`` between 50 Hz and 20 kHz, sensitivities and baselines finite and
  non-zero, decoded amplitudes within +-50 mV and not all zero. Whatever pydicom, ``struct`` or NumPy raise on
  a damaged file becomes a :class:`~ecglens.exceptions.CorruptRecordError` naming the file. The file is read
  into memory first, so a damaged length field cannot make pydicom allocate more than the file's size.
* ``PatientAge`` ("067Y", "006M", "010W", "020D") gives the age, else ``PatientBirthDate`` and the acquisition /
  study date; ``PatientSex`` F/M gives the sex ("O" is unknown). ``PatientID`` goes to ``meta["patient_id"]``.

Tested on: ``waveform_ecg.dcm`` shipped with pydicom (``pydicom.data.get_testdata_file``; 12-lead ECG Waveform
Storage, RHYTHM group 12 x 10000 samples at 1000 Hz and MEDIAN BEAT group 12 x 1200, 1.25 uV per bit, female,
042Y), compared with pydicom's own ``waveform_array`` conversion; copies of it with the units set to mV, a
correction factor and baseline, no sensitivity, or no waveform; a DICOM CT image from pydicom's test data (refused).
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..ecg import Ecg, check_recorded_fs, check_recorded_signal
from ..exceptions import ConfigError, CorruptRecordError, EcglensError, UnitError, UnsupportedFormatError
from ..leads import normalize_lead_name
from ._vendor import SEX_CODES, VOLTAGE_TO_MV, age_from_dates, age_in_years, standardise_leads, strip_calibration
from .registry import register_reader

__all__ = ["ECG_SOP_CLASSES", "read_dicom", "sniff_dicom"]

FORMAT = "DICOM ECG waveform (12-lead / General ECG Waveform Storage)"
#: SOP classes of ECG waveforms
ECG_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.9.1.1": "12-lead ECG Waveform Storage",
    "1.2.840.10008.5.1.4.1.1.9.1.2": "General ECG Waveform Storage",
    "1.2.840.10008.5.1.4.1.1.9.1.3": "Ambulatory ECG Waveform Storage",
    "1.2.840.10008.5.1.4.1.1.9.1.4": "General 32-bit ECG Waveform Storage",
}
#: MDC / SCP-ECG lead code number -> lead name
_LEAD_CODES: dict[int, str] = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
    61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
}  # fmt: skip
_CODE_NUMBER = re.compile(r"^(?:5\.6\.3-9-|2:)(\d+)$")
_UNSUPPORTED_INTERPRETATIONS = {"MB": "mu-law", "AB": "A-law"}
_WAVEFORM_TAG_LE = b"\x00\x54\x00\x01"  # (5400,0100) WaveformSequence, little endian
_SNIFF_BYTES = 65536
#: what pydicom, struct and NumPy raise on a damaged file (translated to CorruptRecordError; pydicom raises
#: NotImplementedError for a value representation it does not know, e.g. a damaged VR field)
_DAMAGED = (OSError, struct.error, TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
            MemoryError, UnicodeError, RecursionError, NotImplementedError)


def sniff_dicom(path: Path) -> bool:
    """True for a DICOM file (``DICM`` at byte 128) of an ECG SOP class or with a WaveformSequence tag."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head[128:132] != b"DICM":
        return False
    return _WAVEFORM_TAG_LE in head or any(uid.encode() in head for uid in ECG_SOP_CLASSES)


@register_reader(
    "dicom",
    (".dcm", ".dicom"),
    sniff=sniff_dicom,
    priority=20,
    description="DICOM ECG waveform (12-lead / General ECG Waveform Storage) via pydicom",
)
def read_dicom(path: str | Path, waveform: str | None = None, group: int | None = None) -> Ecg:
    """Read a DICOM ECG waveform.

    Parameters
    ----------
    path : str or Path
        The DICOM file.
    waveform : {None, "rhythm", "median"}
        Which multiplex group to read (default: the rhythm group). Ignored when ``group`` is given.
    group : int, optional
        Index of the multiplex group in ``WaveformSequence``.

    Returns
    -------
    Ecg
        ``signal`` [n_leads, n_samples] in mV, canonical lead order (limb leads derived from I and II when
        missing), ``fs`` in Hz, ``age``, ``sex``, ``meta`` with ``patient_id``, ``sop_class``, ``group_label``,
        ``waveform``, ``acquisition_datetime``, ``manufacturer``.

    Raises
    ------
    UnsupportedFormatError
        Not DICOM, no ``WaveformSequence``, or a compressed (mu-law / A-law) group.
    CorruptRecordError
        A multiplex group whose data or channel definitions are incomplete.
    UnitError
        Uncalibrated channels or unknown sensitivity units.
    """
    from pydicom.errors import BytesLengthException  # pydicom's own: a value whose length fits no element

    path = Path(path)
    ds = _read_dataset(path)
    try:
        return _dicom_ecg(ds, path, waveform, group)
    except EcglensError:
        raise
    except (*_DAMAGED, BytesLengthException) as err:
        raise CorruptRecordError(
            f"{path}: the {FORMAT} file is damaged ({type(err).__name__}: {str(err)[:200]}). Export it again."
        ) from err


def _read_dataset(path: Path) -> Any:
    """``pydicom.dcmread`` of the file's bytes (held in memory: lengths in the file cannot exceed its size)."""
    import pydicom
    from pydicom.errors import BytesLengthException, InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(path.read_bytes()))
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError) as err:
        raise UnsupportedFormatError(
            f"{path}: not a readable DICOM file ({err}); expected a {FORMAT}."
        ) from err
    except (*_DAMAGED, BytesLengthException) as err:
        raise CorruptRecordError(
            f"{path}: the {FORMAT} file is damaged ({type(err).__name__}: {str(err)[:200]}). Export it again."
        ) from err


def _dicom_ecg(ds: Any, path: Path, waveform: str | None, group: int | None) -> Ecg:
    """The Ecg of the chosen multiplex group of a parsed dataset (see :func:`read_dicom`)."""
    groups = list(ds.get("WaveformSequence") or [])
    if not groups:
        sop = str(ds.get("SOPClassUID", "?"))
        raise UnsupportedFormatError(
            f"{path}: this DICOM file ({getattr(ds.get('SOPClassUID'), 'name', sop)}) has no WaveformSequence; "
            f"expected a {FORMAT}. Export the ECG as DICOM waveform, not as an image or PDF."
        )
    index = _select_group(groups, waveform, group, path)
    fs = check_recorded_fs(groups[index].get("SamplingFrequency"), str(path),
                           f"SamplingFrequency of multiplex group {index}")
    names, signal = _decode_group(ds, index, path)
    check_recorded_signal(signal, str(path), "DICOM")
    ecg = Ecg(
        signal=signal,
        fs=fs,
        leads=tuple(names),
        record_id=path.stem,
        age=_patient_age(ds),
        sex=SEX_CODES.get(str(ds.get("PatientSex") or "").strip().upper()),
        source=str(path),
        meta=_dicom_meta(ds, index),
    )
    return strip_calibration(standardise_leads(ecg), path, FORMAT)


def _acquired(ds: Any) -> str:
    """Acquisition date-time (or date, or study date) as written in the file; ``""`` if none."""
    return str(ds.get("AcquisitionDateTime") or ds.get("AcquisitionDate") or ds.get("StudyDate") or "")


def _patient_age(ds: Any) -> float | None:
    """Age in years from ``PatientAge``, else from ``PatientBirthDate`` and the acquisition date."""
    age = _dicom_age(str(ds.get("PatientAge") or ""))
    return age if age is not None else age_from_dates(str(ds.get("PatientBirthDate") or ""), _acquired(ds))


def _dicom_meta(ds: Any, index: int) -> dict[str, Any]:
    """Identifiers and acquisition details for ``Ecg.meta`` (absent ones left out)."""
    item = ds.WaveformSequence[index]
    sop = str(ds.get("SOPClassUID", ""))
    meta: dict[str, Any] = {
        "format": "dicom",
        "patient_id": str(ds.get("PatientID") or "") or None,
        "sop_class": ECG_SOP_CLASSES.get(sop, sop) or None,
        "group_index": index,
        "group_label": str(item.get("MultiplexGroupLabel") or "") or None,
        "waveform": "median" if _is_median(item) else "rhythm",
        "acquisition_datetime": _acquired(ds) or None,
        "manufacturer": str(ds.get("Manufacturer") or "") or None,
        "model": str(ds.get("ManufacturerModelName") or "") or None,
    }
    return {k: v for k, v in meta.items() if v is not None}


def _dicom_age(value: str) -> float | None:
    """DICOM Age String ``nnnD|W|M|Y`` -> years."""
    match = re.fullmatch(r"\s*(\d{1,3})\s*([DWMY])\s*", value.upper())
    return age_in_years(match.group(1), match.group(2)) if match else None


def _is_median(item: Any) -> bool:
    """A derived / median-beat multiplex group (rather than the rhythm strip)."""
    label = str(item.get("MultiplexGroupLabel") or "").upper()
    return "MEDIAN" in label or str(item.get("WaveformOriginality") or "").upper() == "DERIVED"


def _channel_name(channel: Any, number: int) -> str:
    """Lead name of one ChannelDefinitionSequence item (code value, code meaning, label, or ``ch<N>``)."""
    sources = channel.get("ChannelSourceSequence") or []
    source = sources[0] if sources else None
    code = str(source.get("CodeValue") or "") if source is not None else ""
    match = _CODE_NUMBER.match(code.strip())
    if match and int(match.group(1)) in _LEAD_CODES:
        return _LEAD_CODES[int(match.group(1))]
    meaning = str(source.get("CodeMeaning") or "") if source is not None else ""
    meaning = re.sub(r"\(.*?\)", "", meaning).strip()
    meaning = re.sub(r"^lead\s+", "", meaning, flags=re.IGNORECASE).strip()
    label = str(channel.get("ChannelLabel") or "").strip()
    return normalize_lead_name(meaning or label or f"ch{number}")


def _select_group(groups: list[Any], waveform: str | None, group: int | None, path: Path) -> int:
    """Index of the multiplex group to read."""
    if group is not None:
        if not 0 <= group < len(groups):
            raise ConfigError(f"group={group} is out of range: {path} has {len(groups)} multiplex groups.")
        return group
    key = waveform.lower() if isinstance(waveform, str) else "rhythm"
    wanted = {"rhythm": False, "median": True}
    if key not in wanted:
        raise ConfigError(f"waveform={waveform!r} is not one of None, 'rhythm', 'median'.")

    def score(i: int) -> tuple[int, int]:
        channels = groups[i].get("ChannelDefinitionSequence") or []
        n_leads = sum(_channel_name(ch, j) in _LEAD_CODES.values() for j, ch in enumerate(channels))
        return n_leads, int(groups[i].get("NumberOfWaveformSamples") or 0)

    candidates = [i for i, g in enumerate(groups) if _is_median(g) == wanted[key]]
    if not candidates:
        labels = [str(g.get("MultiplexGroupLabel") or "?") for g in groups]
        raise CorruptRecordError(
            f"{path}: no {key} multiplex group among {labels}; pass group=<index> to read one of them."
        )
    return max(candidates, key=lambda i: (score(i), -i))


def _decode_group(ds: Any, index: int, path: Path) -> tuple[list[str], np.ndarray]:
    """Lead names and the signal [n_channels, n_samples] in mV of multiplex group ``index``."""
    from pydicom.waveforms import multiplex_array

    item = ds.WaveformSequence[index]
    interpretation = str(item.get("WaveformSampleInterpretation") or "")
    if interpretation in _UNSUPPORTED_INTERPRETATIONS:
        raise UnsupportedFormatError(
            f"{path}: multiplex group {index} is {_UNSUPPORTED_INTERPRETATIONS[interpretation]} compressed; only "
            "linear integer samples are supported. Export the ECG uncompressed."
        )
    channels = list(item.get("ChannelDefinitionSequence") or [])
    try:
        raw = multiplex_array(ds, index, as_raw=True)
    except (AttributeError, KeyError, ValueError) as err:
        raise CorruptRecordError(
            f"{path}: multiplex group {index} cannot be decoded ({err}); the {FORMAT} file is incomplete or "
            "truncated. Export it again."
        ) from err
    if len(channels) != raw.shape[1]:
        raise CorruptRecordError(
            f"{path}: multiplex group {index} has {raw.shape[1]} channels of data but {len(channels)} channel "
            "definitions; the file is damaged."
        )
    signal = np.empty((raw.shape[1], raw.shape[0]), dtype=np.float64)
    names = []
    for j, channel in enumerate(channels):
        names.append(_channel_name(channel, j))
        signal[j] = raw[:, j] * _channel_gain_mv(channel, names[-1], path) + _channel_offset_mv(channel, path)
    return names, signal


def _channel_units_mv(channel: Any) -> float | None:
    """Factor from the channel's sensitivity unit (UCUM code value, e.g. ``uV``) to mV; None if unknown."""
    units = channel.get("ChannelSensitivityUnitsSequence") or []
    code = str(units[0].get("CodeValue") or "") if units else ""
    return VOLTAGE_TO_MV.get(code.strip().upper())


def _channel_gain_mv(channel: Any, name: str, path: Path) -> float:
    """mV per raw unit: sensitivity x correction factor x unit."""
    sensitivity = channel.get("ChannelSensitivity")
    factor = _channel_units_mv(channel)
    if sensitivity is None or factor is None:
        units = channel.get("ChannelSensitivityUnitsSequence") or []
        unit = str(units[0].get("CodeValue") or "") if units else None
        raise UnitError(
            f"{path}: channel {name} has "
            + ("no ChannelSensitivity (uncalibrated ADC counts)" if sensitivity is None else f"unit {unit!r}")
            + "; its amplitude in mV is unknown. Export the ECG with calibrated channels in uV or mV."
        )
    correction = channel.get("ChannelSensitivityCorrectionFactor")
    gain = float(sensitivity) * float(1.0 if correction is None else correction) * factor
    if not (np.isfinite(gain) and gain != 0):
        raise UnitError(
            f"{path}: channel {name} has sensitivity {sensitivity!r} x correction {correction!r}, not a finite "
            "non-zero gain; its amplitude in mV is unknown. Fix ChannelSensitivity or export the ECG again."
        )
    return gain


def _channel_offset_mv(channel: Any, path: Path) -> float:
    """ChannelBaseline (in the sensitivity unit) converted to mV; 0 when absent."""
    baseline = float(channel.get("ChannelBaseline") or 0.0) * (_channel_units_mv(channel) or 1.0)
    if not np.isfinite(baseline):
        raise CorruptRecordError(f"{path}: ChannelBaseline {baseline!r} is not finite; the file is damaged. "
                                 "Export it again.")
    return baseline
