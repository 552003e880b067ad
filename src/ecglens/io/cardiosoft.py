"""GE CardioSoft XML reader (``<CardiologyXML>``, the resting-ECG export used by UK Biobank).

What the reader assumes (the CardioSoft 6.x export layout; ISO-8859-1, no namespace)::

    <CardiologyXML>
      <ObservationType>RestECG</ObservationType>
      <ObservationDateTime> <Day>1</Day> <Month>1</Month> <Year>2000</Year> ... </ObservationDateTime>
      <ClinicalInfo><DeviceInfo><Desc>CardioSoft</Desc><SoftwareVer>V6.71</SoftwareVer></DeviceInfo></ClinicalInfo>
      <PatientInfo>
        <PID>..</PID> <Age units="years">63</Age>
        <BirthDateTime> <Day>..</Day> <Month>..</Month> <Year>..</Year> </BirthDateTime>
        <Gender>MALE|FEMALE|UNKNOWN</Gender>
      </PatientInfo>
      <Interpretation><Diagnosis><DiagnosisText>Normal sinus rhythm</DiagnosisText> ..</Diagnosis></Interpretation>
      <RestingECGMeasurements> ...
        <MedianSamples>  (one representative beat, same layout as StripData)  </MedianSamples>
      </RestingECGMeasurements>
      <StripData>
        <NumberOfLeads>12</NumberOfLeads>
        <SampleRate units="Hz">500</SampleRate>
        <ChannelSampleCountTotal>5000</ChannelSampleCountTotal>
        <Resolution units="uVperLsb">5</Resolution>
        <WaveformData lead="I">2,1,-1,-3, ...      (comma-separated integers, wrapped over lines)</WaveformData>
        ... one WaveformData per lead
      </StripData>
    </CardiologyXML>

* The rhythm strip (``StripData``) is read by default; ``waveform="median"`` reads ``MedianSamples``.
* Amplitude in mV = ``integer * Resolution`` with the unit from ``Resolution@units`` (``uVperLsb`` ->
  1e-3; ``mVperLsb`` -> 1; missing means uV, the unit CardioSoft writes).
* ``fs`` from ``SampleRate`` (unit Hz, or kHz). Samples are separated by commas and/or whitespace (CardioSoft
  wraps long lines without a comma); every lead must have ``ChannelSampleCountTotal`` samples, and the number of
  ``WaveformData`` must equal ``NumberOfLeads``.
* Age from ``PatientInfo/Age`` (with its ``units``), else from ``BirthDateTime`` and ``ObservationDateTime``;
  sex from ``Gender``. XML with entity declarations is refused (see :mod:`ecglens.io._vendor`).

Tested on: the real ``cardiosoft_dummy.xml`` (DeepECG_Docker's UK Biobank-format example, CardioSoft V6.71) and
synthetic files written by ``tests/io/test_cardiosoft.py`` from the layout above, checked sample for sample.
"""

from __future__ import annotations

import re
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
    finish_twelve_lead,
    has_xml_root,
    local_name,
    names_format,
    parse_xml_safely,
    text_numbers,
)
from .registry import register_reader

__all__ = ["read_cardiosoft", "sniff_cardiosoft"]

FORMAT = "GE CardioSoft XML (<CardiologyXML>)"
#: ``waveform=`` argument -> the element holding the leads
_WAVEFORMS: dict[str | None, tuple[str, ...]] = {
    None: ("StripData",),
    "rhythm": ("StripData",),
    "median": ("RestingECGMeasurements", "MedianSamples"),
}
_FREQUENCY_TO_HZ: dict[str, float] = {"HZ": 1.0, "KHZ": 1000.0}


def sniff_cardiosoft(path: Path) -> bool:
    """True when the file's root element is ``<CardiologyXML>`` (reads the first 8 KB only)."""
    return has_xml_root(path, "CardiologyXML")


@register_reader(
    "cardiosoft",
    (".xml", ".txt"),
    sniff=sniff_cardiosoft,
    priority=20,
    description="GE CardioSoft XML (<CardiologyXML>, UK Biobank): comma-separated rhythm strips",
)
@names_format(FORMAT)
def read_cardiosoft(path: str | Path, waveform: str | None = None) -> Ecg:
    """Read a GE CardioSoft XML resting ECG.

    Parameters
    ----------
    path : str or Path
        The ``.xml`` export (any suffix; the content decides).
    waveform : {None, "rhythm", "median"}
        ``None``/``"rhythm"``: the 10 s strip (``StripData``); ``"median"``: the median beat (``MedianSamples``).

    Returns
    -------
    Ecg
        ``signal`` [12, n_samples] in mV in canonical lead order, ``fs`` in Hz, ``age`` (years), ``sex``, and
        ``meta`` with ``patient_id``, ``waveform``, ``observation_date``, ``device``, ``diagnosis``.

    Raises
    ------
    UnsupportedFormatError
        The root element is not ``<CardiologyXML>`` (or the XML declares entities).
    CorruptRecordError
        Malformed XML; no strip; non-integer samples; lead or sample counts that disagree with the file's own.
    UnitError
        Unknown resolution or sampling-rate unit.
    LeadError
        Not a 12-lead ECG.
    """
    path = Path(path)
    root = parse_xml_safely(path, FORMAT)
    if local_name(root.tag) != "CardiologyXML":
        raise UnsupportedFormatError(
            f"{path}: the root element is <{local_name(root.tag)}>, not <CardiologyXML>, so this is not a "
            f"{FORMAT} file. Omit format= to detect the format from the content (ecglens.io.list_readers() lists them)."
        )
    key = waveform.lower() if isinstance(waveform, str) else waveform
    if key not in _WAVEFORMS:
        raise ConfigError(f"waveform={waveform!r} is not one of None, 'rhythm', 'median'.")
    strip = child(root, *_WAVEFORMS[key])
    if strip is None:
        raise CorruptRecordError(
            f"{path}: no <{'/'.join(_WAVEFORMS[key])}> in this {FORMAT} file, so it has no "
            f"{key or 'rhythm'} waveform. Export the ECG again with its waveforms."
        )
    fs = _sampling_rate(strip, path)
    names, counts = _leads(strip, path)
    per_count = _resolution_mv(strip, path)
    age, sex, meta = _demographics(root)
    meta.update(waveform=key or "rhythm", resolution_mv=per_count)
    ecg = Ecg(
        signal=counts * per_count,
        fs=fs,
        leads=tuple(names),
        record_id=path.stem,
        age=age,
        sex=sex,
        source=str(path),
        meta={k: v for k, v in meta.items() if v not in (None, [], "")},
    )
    return finish_twelve_lead(ecg, path, FORMAT)


def _number(elem: ET.Element | None, what: str, path: Path) -> float:
    """The positive finite number in ``elem``'s text, or a CorruptRecordError naming it."""
    text = (elem.text or "").strip() if elem is not None else None
    try:
        value = float(text) if text else float("nan")
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise CorruptRecordError(
            f"{path}: <{what}> is {text!r}, not a positive number; a {FORMAT} strip must state it. The file is "
            "damaged or incomplete; export the ECG again."
        )
    return value


def _sampling_rate(strip: ET.Element, path: Path) -> float:
    """``SampleRate`` in Hz."""
    elem = child(strip, "SampleRate")
    unit = (elem.get("units") if elem is not None else None) or "Hz"
    if unit.upper() not in _FREQUENCY_TO_HZ:
        raise UnitError(f"{path}: <SampleRate units={unit!r}> is not Hz or kHz; fix the unit in the file.")
    return check_recorded_fs(_number(elem, "SampleRate", path) * _FREQUENCY_TO_HZ[unit.upper()], str(path),
                             "<SampleRate>")


def _resolution_mv(strip: ET.Element, path: Path) -> float:
    """``Resolution`` in mV per integer step."""
    elem = child(strip, "Resolution")
    unit = (elem.get("units") if elem is not None else None) or "uVperLsb"
    voltage = re.sub(r"(?i)\s*(per\s*lsb|/\s*lsb|/\s*bit|per\s*bit)$", "", unit.strip()).upper()
    if voltage not in VOLTAGE_TO_MV:
        raise UnitError(
            f"{path}: <Resolution units={unit!r}> is not a voltage per step (uVperLsb, mVperLsb); the amplitude "
            "in mV is unknown. Fix the unit in the file."
        )
    return _number(elem, "Resolution", path) * VOLTAGE_TO_MV[voltage]


def _leads(strip: ET.Element, path: Path) -> tuple[list[str], np.ndarray]:
    """Lead names and integer samples, float64 [n_leads, n_samples], checked against the declared counts."""
    names: list[str] = []
    rows: list[np.ndarray] = []
    for data in children(strip, "WaveformData"):
        lead = data.get("lead") or ""
        if not lead.strip():
            raise CorruptRecordError(
                f"{path}: a <WaveformData> has no lead attribute; cannot tell which lead."
            )
        try:  # commas and any whitespace separate samples
            rows.append(text_numbers((data.text or "").replace(",", " "), integers_only=True))
        except ValueError as err:
            raise CorruptRecordError(
                f"{path}: lead {lead}: <WaveformData> holds something other than comma-separated integers "
                f"({err}); the {FORMAT} file is damaged. Export it again."
            ) from err
        names.append(normalize_lead_name(lead))
    declared_leads = child_text(strip, "NumberOfLeads")
    if not names or (declared_leads is not None and declared_leads != str(len(names))):
        raise CorruptRecordError(
            f"{path}: <NumberOfLeads> says {declared_leads} but the strip has {len(names)} <WaveformData>; the "
            f"{FORMAT} file is truncated or inconsistent. Export the ECG again."
        )
    declared = child_text(strip, "ChannelSampleCountTotal")
    lengths = {n: len(r) for n, r in zip(names, rows, strict=True)}
    if len(set(lengths.values())) > 1 or (declared is not None and declared != str(len(rows[0]))):
        raise CorruptRecordError(
            f"{path}: samples per lead {lengths} disagree with each other or with <ChannelSampleCountTotal> "
            f"{declared}; the {FORMAT} file is truncated or damaged. Export it again."
        )
    return names, np.stack(rows)


def _date(elem: ET.Element | None) -> str | None:
    """``<X><Day>d</Day><Month>m</Month><Year>y</Year></X>`` -> ``"YYYY-MM-DD"`` (``None`` when incomplete)."""
    parts = [child_text(elem, k) for k in ("Year", "Month", "Day")]
    if not all(p and p.isdigit() for p in parts):
        return None
    year, month, day = (int(p) for p in parts)  # type: ignore[arg-type]
    return f"{year:04d}-{month:02d}-{day:02d}"


def _demographics(root: ET.Element) -> tuple[float | None, str | None, dict[str, Any]]:
    """Age (years), sex and metadata from ``PatientInfo``, ``ObservationDateTime`` and ``Interpretation``."""
    patient = child(root, "PatientInfo")
    observed = _date(child(root, "ObservationDateTime"))
    age_elem = child(patient, "Age")
    age = age_in_years(
        child_text(patient, "Age"), (age_elem.get("units") if age_elem is not None else None) or "Y"
    )
    if age is None:
        age = age_from_dates(_date(child(patient, "BirthDateTime")), observed)
    diagnosis = child(root, "Interpretation", "Diagnosis")
    meta: dict[str, Any] = {
        "format": "cardiosoft",
        "patient_id": child_text(patient, "PID"),
        "observation_date": observed,
        "device": " ".join(
            filter(None, (child_text(root, "ClinicalInfo", "DeviceInfo", k) for k in ("Desc", "SoftwareVer")))
        ),
        "diagnosis": [
            t
            for d in (children(diagnosis, "DiagnosisText") if diagnosis is not None else ())
            if (t := (d.text or "").strip())
        ],
    }
    return age, SEX_CODES.get((child_text(patient, "Gender") or "").upper()), meta
