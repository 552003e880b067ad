"""GE MUSE XML reader (``<RestingECG>`` exports of GE MUSE / MAC resting ECGs).

What the reader assumes (the published GE MUSE XML layout, as exported by MUSE 7-9 and MAC 5500)::

    <?xml version="1.0" encoding="ISO-8859-1"?>
    <!DOCTYPE RestingECG SYSTEM "restecg.dtd">
    <RestingECG>
      <PatientDemographics>
        <PatientID>..</PatientID> <PatientAge>67</PatientAge> <AgeUnits>YEARS</AgeUnits>
        <DateofBirth>MM-DD-YYYY</DateofBirth> <Gender>FEMALE</Gender>
      </PatientDemographics>
      <TestDemographics> <AcquisitionDevice>MAC55</AcquisitionDevice> <AcquisitionDate>MM-DD-YYYY</..> ..
      <Diagnosis> <DiagnosisStatement> <StmtText>Normal sinus rhythm</StmtText> ..
      <Waveform>
        <WaveformType>Median</WaveformType>  (a representative beat, ~600 samples)  ... </Waveform>
      <Waveform>
        <WaveformType>Rhythm</WaveformType>
        <SampleBase>500</SampleBase> <SampleExponent>0</SampleExponent>
        <HighPassFilter>..</HighPassFilter> <LowPassFilter>..</LowPassFilter> <ACFilter>..</ACFilter>
        <LeadData>
          <LeadSampleCountTotal>5000</LeadSampleCountTotal>
          <LeadAmplitudeUnitsPerBit>4.88</LeadAmplitudeUnitsPerBit>
          <LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits>
          <LeadID>I</LeadID>
          <LeadSampleSize>2</LeadSampleSize>
          <WaveFormData>base64 of little-endian int16 samples</WaveFormData>
        </LeadData>
        ... one LeadData per lead: usually 8 (I, II, V1-V6), sometimes all 12
      </Waveform>
    </RestingECG>

* The ``Rhythm`` waveform is preferred (the full 10 s strip); ``Median`` is used when there is no rhythm strip or
  when ``waveform="median"`` is asked for.
* Amplitude in mV = ``int16 sample * LeadAmplitudeUnitsPerBit * unit`` (``LeadAmplitudeUnits`` MICROVOLTS ->
  1e-3, MILLIVOLTS -> 1; missing means MICROVOLTS, the only unit MUSE writes). A lead without
  ``LeadAmplitudeUnitsPerBit`` is refused unless ``units_per_bit=`` is passed (no silent 4.88 default).
* ``fs = SampleBase * 10**SampleExponent``. ``LeadSampleCountTotal``, when present, must not exceed the decoded
  samples (extra decoded samples are dropped). ``FirstSampleBaseline`` is informational and not applied.
* Missing limb leads (III, aVR, aVL, aVF) are derived from I and II (``Ecg.derived_leads`` names them).
* Elements are matched by local name, so a namespace on the root does not matter; the root must be
  ``RestingECG``. XML with entity declarations is refused (see :mod:`ecglens.io._vendor`).
* ``NumberofLeads``, when present, must equal the number of ``<LeadData>`` of the waveform read. The result must
  be a 12-lead ECG (after derivation) with a finite, non-zero signal
  (see :func:`~ecglens.io._vendor.finish_twelve_lead`).

Tested on: the real export ``muse_phi1.xml`` (8 stored leads, median before rhythm) and seeded damaged copies of
it (``tests/io/test_vendor_variants.py``); synthetic MUSE files written by ``tests/io/test_vendor.py`` following
the layout above (8-lead and 12-lead rhythm strips with a median beat before them, MICROVOLTS and MILLIVOLTS,
ISO-8859-1 with the DOCTYPE line, base64 with line breaks, 500, 250 and 240 Hz), checked sample for sample
against the encoded integers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ..ecg import Ecg, check_recorded_fs
from ..exceptions import ConfigError, CorruptRecordError, UnitError, UnsupportedFormatError
from ..leads import normalize_lead_name
from ._vendor import (
    SEX_CODES,
    VOLTAGE_TO_MV,
    age_from_dates,
    age_in_years,
    child,
    child_text,
    children,
    decode_base64,
    finish_twelve_lead,
    has_xml_root,
    local_name,
    names_format,
    parse_xml_safely,
)
from .registry import register_reader

__all__ = ["read_muse", "sniff_muse"]

FORMAT = "GE MUSE XML (<RestingECG>)"
#: ``waveform=`` argument -> the WaveformType values to try, in order
_WAVEFORM_CHOICES: dict[str | None, tuple[str, ...]] = {
    None: ("RHYTHM", "MEDIAN"),
    "rhythm": ("RHYTHM",),
    "median": ("MEDIAN",),
}
#: LeadSampleSize (bytes) -> numpy dtype of the decoded samples
_SAMPLE_DTYPES: dict[int, str] = {2: "<i2"}


def sniff_muse(path: Path) -> bool:
    """True when the file's root element is ``<RestingECG>`` (reads the first 8 KB only)."""
    return has_xml_root(path, "RestingECG")


@register_reader(
    "muse",
    (".xml", ".txt"),
    sniff=sniff_muse,
    priority=20,
    description="GE MUSE XML (<RestingECG>): rhythm or median waveform, base64 int16, 8 or 12 leads",
)
@names_format(FORMAT)
def read_muse(path: str | Path, waveform: str | None = None, units_per_bit: float | None = None) -> Ecg:
    """Read a GE MUSE XML resting ECG.

    Parameters
    ----------
    path : str or Path
        The ``.xml`` export (any suffix; the content decides).
    waveform : {None, "rhythm", "median"}
        Which ``<Waveform>`` to read. Default: the rhythm strip, else the median beat.
    units_per_bit : float, optional
        Amplitude resolution in ``LeadAmplitudeUnits`` per bit, used only for leads whose file lacks
        ``LeadAmplitudeUnitsPerBit`` (GE's usual value is 4.88 uV/bit).

    Returns
    -------
    Ecg
        ``signal`` [n_leads, n_samples] in mV (12 canonical leads when I, II, V1-V6 are present; limb leads
        derived from I and II when missing), ``fs`` in Hz, ``age`` (years), ``sex``, and ``meta`` with
        ``patient_id``, ``waveform``, ``acquisition_date``, ``device``, ``diagnosis``, filters.

    Raises
    ------
    UnsupportedFormatError
        The file is not a MUSE ``<RestingECG>`` (or declares XML entities).
    CorruptRecordError
        Malformed XML or base64, missing sampling rate, sample counts that disagree.
    UnitError
        Unknown ``LeadAmplitudeUnits``.
    LeadError
        Not a 12-lead ECG (a standard lead missing and not derivable).
    """
    path = Path(path)
    root = parse_xml_safely(path, FORMAT)
    if local_name(root.tag) != "RestingECG":
        raise UnsupportedFormatError(
            f"{path}: the root element is <{local_name(root.tag)}>, not <RestingECG>, so this is not a {FORMAT} "
            "file. For HL7 aECG use format='hl7aecg', or omit format= to detect it."
        )
    kind, wave = _select_waveform(root, waveform, path)
    fs = _sampling_rate(wave, path)
    names, rows, per_bit = _decode_leads(wave, path, units_per_bit)
    demo = child(root, "PatientDemographics")
    test = child(root, "TestDemographics")
    age = age_in_years(child_text(demo, "PatientAge"), child_text(demo, "AgeUnits") or "YEARS")
    if age is None:
        age = age_from_dates(child_text(demo, "DateofBirth"), child_text(test, "AcquisitionDate"))
    meta: dict[str, Any] = {
        "format": "muse",
        "waveform": kind.lower(),
        "units_per_bit": per_bit,
        "patient_id": child_text(demo, "PatientID"),
        "acquisition_date": child_text(test, "AcquisitionDate"),
        "acquisition_time": child_text(test, "AcquisitionTime"),
        "device": child_text(test, "AcquisitionDevice"),
        "diagnosis": _statements(root),
        "highpass_hz": child_text(wave, "HighPassFilter"),
        "lowpass_hz": child_text(wave, "LowPassFilter"),
        "ac_filter_hz": child_text(wave, "ACFilter"),
    }
    ecg = Ecg(
        signal=np.stack(rows),
        fs=fs,
        leads=tuple(names),
        record_id=path.stem,
        age=age,
        sex=SEX_CODES.get((child_text(demo, "Gender") or "").upper()),
        source=str(path),
        meta={k: v for k, v in meta.items() if v not in (None, [], "")},
    )
    return finish_twelve_lead(ecg, path, FORMAT)


def _select_waveform(root: ET.Element, waveform: str | None, path: Path) -> tuple[str, ET.Element]:
    """Return ``(WaveformType upper-case, <Waveform>)`` following the preference of ``waveform``."""
    key = waveform.lower() if isinstance(waveform, str) else waveform
    if key not in _WAVEFORM_CHOICES:
        raise ConfigError(f"waveform={waveform!r} is not one of None, 'rhythm', 'median'.")
    found: dict[str, ET.Element] = {}
    for wave in children(root, "Waveform"):
        kind = (child_text(wave, "WaveformType") or "").upper()
        if kind and kind not in found and next(children(wave, "LeadData"), None) is not None:
            found[kind] = wave
    for kind in _WAVEFORM_CHOICES[key]:
        if kind in found:
            return kind, found[kind]
    raise CorruptRecordError(
        f"{path}: no <Waveform> of type {' or '.join(_WAVEFORM_CHOICES[key])} with <LeadData> in this {FORMAT} "
        f"file (found: {sorted(found) or 'none'}). "
        + ("Try waveform='median'." if "MEDIAN" in found else "Export the ECG again with its waveforms.")
    )


def _sampling_rate(wave: ET.Element, path: Path) -> float:
    """``SampleBase * 10**SampleExponent`` in Hz."""
    base, exponent = child_text(wave, "SampleBase"), child_text(wave, "SampleExponent") or "0"
    try:
        fs = float(base) * 10.0 ** int(exponent)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an exponent beyond the float range
        fs = float("nan")
    if not fs > 0:
        raise CorruptRecordError(
            f"{path}: the <Waveform> has no valid <SampleBase> (got {base!r}, exponent {exponent!r}), so the "
            f"sampling rate is unknown; a {FORMAT} file must state it. Export the ECG again."
        )
    return check_recorded_fs(fs, str(path), "<SampleBase> x 10^<SampleExponent>")


def _decode_leads(
    wave: ET.Element, path: Path, units_per_bit: float | None
) -> tuple[list[str], list[np.ndarray], float]:
    """Decode every ``<LeadData>`` to mV; return lead names, rows and the (first) resolution in units/bit."""
    names: list[str] = []
    rows: list[np.ndarray] = []
    resolutions: list[float] = []
    for lead in children(wave, "LeadData"):
        name, mv, per_bit = _decode_lead(lead, path, units_per_bit)
        names.append(name)
        rows.append(mv)
        resolutions.append(per_bit)
    declared = child_text(wave, "NumberofLeads")
    if declared is not None and _as_int(declared, "NumberofLeads", path) != len(names):
        raise CorruptRecordError(
            f"{path}: <NumberofLeads> says {declared} but the {FORMAT} waveform has {len(names)} <LeadData> "
            f"({names}); the file is truncated or inconsistent. Export the ECG again."
        )
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        counts = {n: len(r) for n, r in zip(names, rows, strict=True)}
        raise CorruptRecordError(
            f"{path}: leads have different numbers of samples {counts}; a {FORMAT} waveform must have the same "
            "count on every lead. The file is probably truncated; export it again."
        )
    return names, rows, resolutions[0]


def _decode_lead(lead: ET.Element, path: Path, units_per_bit: float | None) -> tuple[str, np.ndarray, float]:
    """One ``<LeadData>`` -> (canonical lead name, samples in mV float64, units per bit)."""
    lead_id = child_text(lead, "LeadID")
    if lead_id is None:
        raise CorruptRecordError(f"{path}: a <LeadData> has no <LeadID>; cannot tell which lead it is.")
    size = _as_int(child_text(lead, "LeadSampleSize") or "2", f"lead {lead_id} LeadSampleSize", path)
    if size not in _SAMPLE_DTYPES:
        raise UnsupportedFormatError(
            f"{path}: lead {lead_id} has LeadSampleSize {size} bytes; only {sorted(_SAMPLE_DTYPES)} "
            "(16-bit samples, what MUSE writes) are supported."
        )
    raw = decode_base64(child_text(lead, "WaveFormData"), path, FORMAT, f"lead {lead_id} <WaveFormData>")
    if len(raw) % size:
        raise CorruptRecordError(
            f"{path}: lead {lead_id}: <WaveFormData> decodes to {len(raw)} bytes, not a positive multiple of "
            f"the {size}-byte sample size; the file is damaged. Export the ECG again."
        )
    samples = np.frombuffer(raw, dtype=_SAMPLE_DTYPES[size])
    declared_text = child_text(lead, "LeadSampleCountTotal")
    if declared_text is not None:
        declared = _as_int(declared_text, f"lead {lead_id} LeadSampleCountTotal", path)
        if declared > samples.size:
            raise CorruptRecordError(
                f"{path}: lead {lead_id}: LeadSampleCountTotal says {declared} samples but <WaveFormData> holds "
                f"{samples.size}; the waveform is truncated. Export the ECG again."
            )
        samples = samples[:declared]
    per_bit = _units_per_bit(lead, lead_id, path, units_per_bit)
    unit = (child_text(lead, "LeadAmplitudeUnits") or "MICROVOLTS").upper()
    if unit not in VOLTAGE_TO_MV:
        raise UnitError(
            f"{path}: lead {lead_id}: unknown LeadAmplitudeUnits {unit!r}; known: MICROVOLTS, MILLIVOLTS, "
            "VOLTS. Fix the unit in the file."
        )
    return normalize_lead_name(lead_id), samples * (per_bit * VOLTAGE_TO_MV[unit]), per_bit


def _as_int(text: str, what: str, path: Path) -> int:
    """Parse an integer field or raise :class:`CorruptRecordError` naming it."""
    try:
        return int(text)
    except ValueError as err:
        raise CorruptRecordError(
            f"{path}: {what} is {text!r}, not an integer; the {FORMAT} file is damaged. Export it again."
        ) from err


def _units_per_bit(lead: ET.Element, lead_id: str, path: Path, fallback: float | None) -> float:
    """``LeadAmplitudeUnitsPerBit`` of a lead, else ``fallback``; refuse when neither is known."""
    text = child_text(lead, "LeadAmplitudeUnitsPerBit")
    try:
        value = float(text) if text is not None else fallback
    except ValueError:
        value = None
    if value is None or not np.isfinite(value) or value <= 0:
        raise CorruptRecordError(
            f"{path}: lead {lead_id} has no valid <LeadAmplitudeUnitsPerBit> (got {text!r}), so its amplitude "
            "in mV is unknown. If you know the resolution pass it, e.g. read_ecg(path, units_per_bit=4.88) "
            "for GE's usual 4.88 uV per bit."
        )
    return float(value)


def _statements(root: ET.Element) -> list[str]:
    """The interpretation statements (``Diagnosis/DiagnosisStatement/StmtText``)."""
    diagnosis = child(root, "Diagnosis")
    if diagnosis is None:
        return []
    texts = (child_text(stmt, "StmtText") for stmt in children(diagnosis, "DiagnosisStatement"))
    return [t for t in texts if t]
