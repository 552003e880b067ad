"""HL7 annotated ECG reader (HL7 v3 aECG, the FDA's XML format for ECGs in clinical trials).

What the reader assumes (HL7 aECG release 1, ``PORT_MT020001``; elements in the ``urn:hl7-org:v3``
namespace, matched by local name)::

    <AnnotatedECG xmlns="urn:hl7-org:v3">
      <id root=".."/>  <effectiveTime><low value="20210314093000"/></effectiveTime>
      <componentOf><timepointEvent><componentOf><subjectAssignment><subject><trialSubject>
        <id extension="SUBJECT-ID"/>
        <subjectDemographicPerson>
          <administrativeGenderCode code="F"/>  <birthTime value="19540101"/>
        </subjectDemographicPerson>
      </trialSubject></subject></subjectAssignment></componentOf></timepointEvent></componentOf>
      <component><series>
        <code code="RHYTHM"/>
        <component><sequenceSet>
          <component><sequence>
            <code code="TIME_ABSOLUTE"/>        (or TIME_RELATIVE)
            <value xsi:type="GLIST_TS"> <head value="20210314093000.000"/> <increment value="0.002" unit="s"/>
            </value>                            (GLIST_PQ for relative time; unit s, ms or us)
          </sequence></component>
          <component><sequence>
            <code code="MDC_ECG_LEAD_I"/>
            <value xsi:type="SLIST_PQ">
              <origin value="0" unit="uV"/> <scale value="5" unit="uV"/> <digits>12 15 19 ...</digits>
            </value>
          </sequence></component>
          ... one sequence per lead
        </sequenceSet></component>
        <derivation><derivedSeries> ... representative beats, same layout ... </derivedSeries></derivation>
      </series></component>
    </AnnotatedECG>

* Amplitude in mV = ``(origin + scale * digit)`` with origin and scale each converted from its own unit
  (``uV``, ``mV``, ``V``, ``nV``) to mV.
* ``fs = 1 / increment`` of the time sequence (converted to seconds).
* Lead codes ``MDC_ECG_LEAD_<X>`` -> ``<X>`` normalised (``AVR`` -> ``aVR``); other sequences are ignored.
  Missing limb leads are derived from I and II; non-standard leads (V3R, ...) are kept after the 12.
* The rhythm series (``series`` with code RHYTHM, else the first) is read by default; ``waveform="median"``
  reads the first ``derivation/derivedSeries`` (representative beats).
* Sex from ``administrativeGenderCode@code`` (F/M) under the trial subject. Age from a vendor ``age`` element in
  ``subjectDemographicPerson`` (any namespace, ``value`` with a UCUM ``unit`` such as ``a``, or text; vendor
  extensions such as Mindray's add one), else in completed years from ``birthTime`` and the ECG's
  ``effectiveTime`` (``<low>`` or ``<center>``). ``meta["patient_id"]`` from ``trialSubject/id@extension``.
* Series coded ``REPRESENTATIVE_BEAT`` / ``MEDIAN`` are median beats, never read as the rhythm, wherever they
  stand in the file. Comments and processing instructions before ``<AnnotatedECG>`` are allowed (sniffing
  skips them within the first 8 KB). The result must be a 12-lead ECG after derivation: a file with fewer
  leads (e.g. the FDA's one-lead minimum example) is refused with :class:`~ecglens.exceptions.LeadError`.
* XML with entity declarations is refused (see :mod:`ecglens.io._vendor`).

Tested on: the real ``aecg_hl7_example.xml`` (FDA example), ``philips_ad4d3d80_104_as_aecg.xml`` (a Philips ECG
converted to aECG) and ``aecg_minimum_one_lead.xml`` (refused), with seeded damaged copies; synthetic aECG files
written by ``tests/io/test_vendor.py`` and ``tests/io/test_vendor_variants.py`` (12 and 8 leads, uV and mV scales
with non-zero origin, GLIST_TS in s and GLIST_PQ in ms, a prefixed ``hl7:`` namespace, a prolog before the root,
a vendor age element, median series before the rhythm), checked sample for sample against the encoded integers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ..ecg import Ecg, check_recorded_fs
from ..exceptions import ConfigError, CorruptRecordError, SamplingRateError, UnitError, UnsupportedFormatError
from ..leads import normalize_lead_name
from ._vendor import (
    SEX_CODES,
    VOLTAGE_TO_MV,
    age_from_dates,
    age_in_years,
    child,
    children,
    finish_twelve_lead,
    has_xml_root,
    local_name,
    names_format,
    parse_xml_safely,
    text_numbers,
)
from .registry import register_reader

__all__ = ["HL7_NAMESPACE", "read_hl7aecg", "sniff_hl7aecg"]

FORMAT = "HL7 aECG XML (<AnnotatedECG xmlns='urn:hl7-org:v3'>)"
HL7_NAMESPACE = "urn:hl7-org:v3"
_LEAD_PREFIX = "MDC_ECG_LEAD_"
#: series codes of representative (median) beats: read only with ``waveform="median"``
_MEDIAN_CODES = frozenset({"REPRESENTATIVE_BEAT", "MEDIAN", "MEDIAN_BEAT"})
_TIME_TO_SECONDS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_SUBJECT_PATH = (
    "componentOf",
    "timepointEvent",
    "componentOf",
    "subjectAssignment",
    "subject",
    "trialSubject",
)


def sniff_hl7aecg(path: Path) -> bool:
    """True when the file's root element is ``AnnotatedECG`` in the HL7 v3 namespace (reads the first 8 KB only)."""
    return has_xml_root(path, "AnnotatedECG", HL7_NAMESPACE, any_namespace=False)


@register_reader(
    "hl7aecg",
    (".xml", ".txt"),
    sniff=sniff_hl7aecg,
    priority=20,
    description="HL7 aECG XML (FDA annotated ECG, <AnnotatedECG> in urn:hl7-org:v3)",
)
@names_format(FORMAT)
def read_hl7aecg(path: str | Path, waveform: str | None = None) -> Ecg:
    """Read an HL7 v3 annotated ECG (FDA aECG XML).

    Parameters
    ----------
    path : str or Path
        The aECG XML file.
    waveform : {None, "rhythm", "median"}
        ``None``/``"rhythm"``: the rhythm series; ``"median"``: the representative beats (derived series).

    Returns
    -------
    Ecg
        ``signal`` [n_leads, n_samples] in mV, canonical lead order (limb leads derived from I and II when
        missing), ``fs`` in Hz, ``sex``, ``age`` (when birth and acquisition dates are present), ``meta`` with
        ``patient_id``, ``effective_time``, ``waveform``, ``series_code``.

    Raises
    ------
    UnsupportedFormatError
        Not an ``AnnotatedECG`` in the HL7 v3 namespace (or XML with entity declarations).
    CorruptRecordError
        Malformed XML, non-numeric digits, leads of different lengths, no lead sequences.
    SamplingRateError, UnitError
        Missing or unusable time increment; unknown amplitude units.
    LeadError
        Not a 12-lead ECG (e.g. a one-lead file).
    """
    path = Path(path)
    root = parse_xml_safely(path, FORMAT)
    if root.tag != f"{{{HL7_NAMESPACE}}}AnnotatedECG":
        raise UnsupportedFormatError(
            f"{path}: the root element is {root.tag!r}, not AnnotatedECG in the {HL7_NAMESPACE!r} namespace, so "
            f"this is not a {FORMAT} file. For GE MUSE use format='muse', or omit format= to detect it."
        )
    kind, series, sequence_set = _select_series(root, waveform, path)
    fs, names, rows, ignored = _decode_sequence_set(sequence_set, path)
    subject = child(root, *_SUBJECT_PATH)
    person = _first_descendant(subject, "subjectDemographicPerson")
    effective = _time_point(child(root, "effectiveTime")) or _time_point(child(series, "effectiveTime"))
    meta: dict[str, Any] = {
        "format": "hl7aecg",
        "waveform": kind,
        "series_code": _attr(child(series, "code"), "code"),
        "patient_id": _attr(child(subject, "id"), "extension") or _attr(child(subject, "id"), "root"),
        "effective_time": effective,
        "aecg_id": _attr(child(root, "id"), "root"),
        "ignored_sequences": ignored,
    }
    ecg = Ecg(
        signal=np.stack(rows),
        fs=fs,
        leads=tuple(names),
        record_id=path.stem,
        age=_age(person, effective),
        sex=SEX_CODES.get(
            (_attr(_first_descendant(subject, "administrativeGenderCode"), "code") or "").upper()
        ),
        source=str(path),
        meta={k: v for k, v in meta.items() if v not in (None, [], "")},
    )
    return finish_twelve_lead(ecg, path, FORMAT)


def _first_descendant(elem: ET.Element | None, name: str) -> ET.Element | None:
    """The first element below ``elem`` (any depth, any namespace) whose local name is ``name``."""
    if elem is None:
        return None
    return next((e for e in elem.iter() if e is not elem and local_name(e.tag) == name), None)


def _time_point(effective_time: ET.Element | None) -> str | None:
    """The start of an ``effectiveTime`` interval: ``<low>``, else ``<center>`` (both are used by real files)."""
    return _attr(child(effective_time, "low"), "value") or _attr(child(effective_time, "center"), "value")


def _age(person: ET.Element | None, effective: str | None) -> float | None:
    """Age in years: a vendor ``age`` element (value + UCUM unit), else from ``birthTime`` and the ECG date."""
    age_elem = _first_descendant(person, "age")
    if age_elem is not None:
        value = _attr(age_elem, "value") or (age_elem.text or "").strip()
        age = age_in_years(value, _attr(age_elem, "unit") or "a")
        if age is not None:
            return age
    return age_from_dates(_attr(child(person, "birthTime"), "value"), effective)


def _attr(elem: ET.Element | None, name: str) -> str | None:
    """Stripped attribute value or ``None``."""
    value = elem.get(name) if elem is not None else None
    return value.strip() if value and value.strip() else None


def _lead_sets(series: ET.Element) -> list[ET.Element]:
    """The ``sequenceSet`` elements of a series that contain at least one lead sequence."""
    out = []
    for comp in children(series, "component"):
        for sset in children(comp, "sequenceSet"):
            codes = (_attr(child(c, "sequence", "code"), "code") or "" for c in children(sset, "component"))
            if any(code.startswith(_LEAD_PREFIX) for code in codes):
                out.append(sset)
    return out


def _select_series(root: ET.Element, waveform: str | None, path: Path) -> tuple[str, ET.Element, ET.Element]:
    """Return ``(kind, series, sequenceSet)`` for ``waveform`` (None/"rhythm" or "median")."""
    key = waveform.lower() if isinstance(waveform, str) else "rhythm"
    series_list = [s for comp in children(root, "component") for s in children(comp, "series")]
    # the rhythm series first (code RHYTHM), then the others in file order; median-beat series are not rhythm
    series_list.sort(key=lambda s: _attr(child(s, "code"), "code") != "RHYTHM")
    is_median = [(_attr(child(s, "code"), "code") or "").upper() in _MEDIAN_CODES for s in series_list]
    derived = [
        d for s in series_list for der in children(s, "derivation") for d in children(der, "derivedSeries")
    ]
    candidates = {
        "rhythm": [s for s, median in zip(series_list, is_median, strict=True) if not median],
        "median": derived + [s for s, median in zip(series_list, is_median, strict=True) if median],
    }
    if key not in candidates:
        raise ConfigError(f"waveform={waveform!r} is not one of None, 'rhythm', 'median'.")
    for series in candidates[key]:
        sets = _lead_sets(series)
        if sets:
            return key, series, sets[0]
    raise CorruptRecordError(
        f"{path}: no {key} series with MDC_ECG_LEAD_* sequences in this {FORMAT} file "
        f"({len(series_list)} series found). "
        + ("Try waveform='median'." if key == "rhythm" else "Read the rhythm series (waveform=None).")
    )


def _decode_sequence_set(
    sset: ET.Element, path: Path
) -> tuple[float, list[str], list[np.ndarray], list[str]]:
    """Decode a ``sequenceSet``: fs from the time sequence, one mV row per lead sequence, ignored codes."""
    fs: float | None = None
    names: list[str] = []
    rows: list[np.ndarray] = []
    ignored: list[str] = []
    for comp in children(sset, "component"):
        seq = child(comp, "sequence")
        code = _attr(child(seq, "code"), "code") or ""
        value = child(seq, "value")
        if code.startswith("TIME_") and fs is None:
            fs = _sampling_rate(value, code, path)
        elif code.startswith(_LEAD_PREFIX):
            names.append(normalize_lead_name(code[len(_LEAD_PREFIX) :]))
            rows.append(_lead_values(value, code, path))
        else:
            ignored.append(code)
    if fs is None:
        raise SamplingRateError(
            f"{path}: the sequenceSet has no TIME_ABSOLUTE / TIME_RELATIVE sequence with an <increment>, so the "
            f"sampling rate is unknown; a {FORMAT} file must have one."
        )
    if len({len(r) for r in rows}) > 1:
        counts = {n: len(r) for n, r in zip(names, rows, strict=True)}
        raise CorruptRecordError(
            f"{path}: lead sequences have different lengths {counts}; the {FORMAT} file is damaged or "
            "truncated. Export it again."
        )
    return fs, names, rows, ignored


def _sampling_rate(value: ET.Element | None, code: str, path: Path) -> float:
    """``1 / increment`` in Hz from a GLIST_TS / GLIST_PQ time sequence."""
    inc = child(value, "increment")
    unit = _attr(inc, "unit") or "s"
    try:
        step = float(_attr(inc, "value") or "nan") * _TIME_TO_SECONDS[unit]
    except (KeyError, ValueError):
        step = float("nan")
    if not step > 0:
        raise SamplingRateError(
            f"{path}: the {code} sequence has no usable <increment> (value {_attr(inc, 'value')!r}, unit "
            f"{unit!r}; units known: {sorted(_TIME_TO_SECONDS)}), so the sampling rate is unknown."
        )
    return check_recorded_fs(round(1.0 / step, 6), str(path), f"1 / <increment> of {code}")


def _quantity_mv(elem: ET.Element | None, what: str, code: str, path: Path, default: float | None) -> float:
    """An ``<origin>`` / ``<scale>`` physical quantity converted to mV."""
    if elem is None:
        if default is not None:
            return default
        raise CorruptRecordError(
            f"{path}: {code} has no <{what}>, so its amplitude in mV is unknown; the {FORMAT} file is incomplete."
        )
    unit = _attr(elem, "unit") or ""
    factor = VOLTAGE_TO_MV.get(unit.upper())
    if factor is None:
        raise UnitError(
            f"{path}: {code} <{what}> has unit {unit!r}; expected a voltage unit (uV, mV, V). Fix the unit in "
            "the file."
        )
    try:
        return float(_attr(elem, "value") or "nan") * factor
    except ValueError as err:
        raise CorruptRecordError(
            f"{path}: {code} <{what}> value is not a number; the file is damaged."
        ) from err


def _lead_values(value: ET.Element | None, code: str, path: Path) -> np.ndarray:
    """SLIST_PQ -> float64 samples in mV: ``origin + scale * digits``."""
    origin = _quantity_mv(child(value, "origin"), "origin", code, path, default=0.0)
    scale = _quantity_mv(child(value, "scale"), "scale", code, path, default=None)
    digits = child(value, "digits")
    try:
        numbers = text_numbers(digits.text if digits is not None else None)
    except ValueError as err:
        raise CorruptRecordError(
            f"{path}: {code} <digits> holds something other than whitespace-separated numbers ({err}); the "
            f"{FORMAT} file is damaged. Export it again."
        ) from err
    if numbers.size == 0 or not np.isfinite(scale) or not np.isfinite(origin):
        raise CorruptRecordError(
            f"{path}: {code} has no <digits> or no finite <scale>/<origin>; cannot compute its amplitude."
        )
    return origin + scale * numbers
