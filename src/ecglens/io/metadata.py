"""Age, sex and identifiers from WFDB header comments, in every spelling seen in the wild.

Header comments carry the demographics of PhysioNet records, each data set in its own spelling::

    # Age: 51            # Sex: Male           (CODE-15% / SaMi-Trop in PhysioNet-2025 form, CinC 2021)
    #Age: 74             #Sex: female          (CinC 2020: CPSC, PTB)
    #<age>: 51           #<sex>: F             (LUDB)
    # Exam ID: 2508934   # Patient ID: 82907   (CODE-15%, SaMi-Trop)
    # Dx: 426177001,...                        (CinC 2020/2021: SNOMED CT codes)
    # Chagas label: True                       (PhysioNet 2025)
    #<diagnoses>:                              (LUDB: the following free-text lines are the diagnoses)

:func:`parse_header_comments` maps all of them to one convention:

* ``age``: float years; ``None`` when unknown (``Unknown``, ``NaN``, empty, negative or > 130). PTB-XL's code
  ``300`` ("over 89") and the spellings ``>89`` / ``89+`` become ``90.0``.
* ``sex``: ``"F"`` / ``"M"`` / ``None`` (numeric tables use 1 = female, 0 = male, see :mod:`ecglens.ecg`).
* ``patient_id``, ``exam_id``: strings (``"82907"``) or ``None``.
* ``dx``: list of code strings (``["426177001", "427084000"]``), empty when absent.

Parsing is table-driven: a key alias table maps the normalised key (``"exam id"``, ``"<sex>"``...) to a field,
and a parser table maps each field to its value parser. Add a spelling by adding one entry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AGE_OVER_89",
    "HeaderInfo",
    "parse_age",
    "parse_bool",
    "parse_codes",
    "parse_header_comments",
    "parse_id",
    "parse_sex",
    "read_header_comments",
]

#: age stored for PTB-XL's "300" (over 89 years)
AGE_OVER_89 = 90.0
_AGE_CODES_OVER_89 = {300.0}
_AGE_MAX = 130.0

#: values meaning "unknown", compared lower-case
_UNKNOWN = {"", "unknown", "unk", "nan", "none", "null", "na", "n/a", "-", "?", "not available"}

_SEX_WORDS: dict[str, str] = {
    "f": "F",
    "female": "F",
    "woman": "F",
    "w": "F",
    "m": "M",
    "male": "M",
    "man": "M",
}

_BOOL_WORDS: dict[str, bool] = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_OVER_89 = re.compile(r"^(?:>\s*89|89\s*\+|>=\s*90|90\s*\+)$")
# "# Age: 51", "#Age: 74", "#<age>: 51", "# Exam ID: 7", "  Sex : F" -> key, value
_KEY_VALUE = re.compile(r"^\s*#*\s*<?\s*(?P<key>[A-Za-z][A-Za-z0-9 _\-/]*?)\s*>?\s*:\s*(?P<value>.*?)\s*$")


def _is_unknown(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value).strip().lower() in _UNKNOWN


def parse_age(value: Any) -> float | None:
    """Parse an age in years.

    Parameters
    ----------
    value : str or number
        ``"51"``, ``51``, ``"51.0"``, ``"51 years"``, ``"300"`` (PTB-XL: over 89), ``">89"``, ``"Unknown"``...

    Returns
    -------
    float or None
        Years; ``90.0`` for the over-89 codes; ``None`` when unknown or implausible (< 0 or > 130).
    """
    if _is_unknown(value):
        return None
    text = str(value).strip()
    if _OVER_89.match(text):
        return AGE_OVER_89
    match = _NUMBER.search(text)
    if match is None:
        return None
    age = float(match.group().replace(",", "."))
    if age in _AGE_CODES_OVER_89:
        return AGE_OVER_89
    if not math.isfinite(age) or age < 0 or age > _AGE_MAX:
        return None
    return age


def parse_sex(value: Any) -> str | None:
    """Parse a sex: ``"Male"``, ``"female"``, ``"F"``, ``"M"`` -> ``"F"``/``"M"``; anything else -> ``None``.

    Numbers are *not* interpreted (their coding differs between data sets); convert those with
    :func:`ecglens.ecg.code_to_sex` once the coding is known.
    """
    if _is_unknown(value):
        return None
    return _SEX_WORDS.get(str(value).strip().lower())


def parse_id(value: Any) -> str | None:
    """Parse an identifier: stripped string, ``"82907.0"`` -> ``"82907"``; unknown -> ``None``."""
    if _is_unknown(value):
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    return text


def parse_codes(value: Any) -> list[str]:
    """Parse a code list (``"426177001,427084000"``, ``;`` or whitespace also separate) -> list of str."""
    if _is_unknown(value):
        return []
    return [c for c in re.split(r"[,;\s]+", str(value).strip()) if c and c.lower() not in _UNKNOWN]


def parse_bool(value: Any) -> bool | None:
    """Parse ``True``/``False``/``yes``/``no``/``1``/``0`` -> bool; anything else -> ``None``."""
    if _is_unknown(value):
        return None
    return _BOOL_WORDS.get(str(value).strip().lower())


def _parse_text(value: Any) -> str | None:
    return None if _is_unknown(value) else str(value).strip()


#: normalised key (lower case, ``_``/``-`` as space) -> field name
_KEY_ALIASES: dict[str, str] = {
    "age": "age",
    "sex": "sex",
    "gender": "sex",
    "exam id": "exam_id",
    "examid": "exam_id",
    "exam": "exam_id",
    "patient id": "patient_id",
    "patientid": "patient_id",
    "patient": "patient_id",
    "subject id": "patient_id",
    "dx": "dx",
    "chagas label": "chagas",
    "chagas": "chagas",
    "diagnoses": "diagnoses",
    "source": "dataset",
}

#: field -> value parser
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "age": parse_age,
    "sex": parse_sex,
    "exam_id": parse_id,
    "patient_id": parse_id,
    "dx": parse_codes,
    "chagas": parse_bool,
    "dataset": _parse_text,
}

#: fields whose empty value opens a section: the following unkeyed / unknown-key lines belong to it
_SECTIONS = {"diagnoses"}


@dataclass
class HeaderInfo:
    """What the comments of one header say, in ecglens's conventions.

    Attributes
    ----------
    age : float or None
        Years (90.0 for "over 89"); ``None`` unknown.
    sex : {"F", "M", None}
    patient_id, exam_id : str or None
    dx : list of str
        Diagnosis codes (SNOMED CT in the PhysioNet challenges).
    chagas : bool or None
        The PhysioNet-2025 Chagas label, when present.
    dataset : str or None
        The ``# Source:`` line (e.g. ``"CODE-15%"``).
    diagnoses : list of str
        Free-text diagnosis lines (LUDB's ``#<diagnoses>:`` section).
    extra : dict of str to str
        Other ``key: value`` comments, keys as written (``"Rx"``, ``"Hx"``...).
    comments : list of str
        All comment lines, without the leading ``#``.
    """

    age: float | None = None
    sex: str | None = None
    patient_id: str | None = None
    exam_id: str | None = None
    dx: list[str] = field(default_factory=list)
    chagas: bool | None = None
    dataset: str | None = None
    diagnoses: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    def to_meta(self) -> dict[str, Any]:
        """Everything but age and sex, as a plain dict for :attr:`ecglens.ecg.Ecg.meta`."""
        out: dict[str, Any] = {
            "patient_id": self.patient_id,
            "exam_id": self.exam_id,
            "dx": list(self.dx),
            "comments": list(self.comments),
        }
        optional = {"chagas": self.chagas, "dataset": self.dataset, "diagnoses": self.diagnoses}
        out.update({k: v for k, v in optional.items() if v not in (None, [])})
        if self.extra:
            out["header_fields"] = dict(self.extra)
        return out


def _normalise_key(key: str) -> str:
    return " ".join(key.replace("_", " ").replace("-", " ").lower().split())


def parse_header_comments(lines: Iterable[str]) -> HeaderInfo:
    """Parse WFDB header comment lines (with or without the leading ``#``) into a :class:`HeaderInfo`.

    Parameters
    ----------
    lines : iterable of str
        E.g. ``wfdb.rdheader(rec).comments`` or the ``#`` lines of a ``.hea`` file.

    Returns
    -------
    HeaderInfo
        The first occurrence of a field wins; unparseable values become ``None``.
    """
    info = HeaderInfo()
    section: str | None = None
    seen: set[str] = set()
    for raw in lines:
        text = str(raw).strip().lstrip("#").strip()
        if not text:
            continue
        info.comments.append(text)
        match = _KEY_VALUE.match(text)
        name = _KEY_ALIASES.get(_normalise_key(match.group("key"))) if match else None
        if name is None:
            if section is not None:
                getattr(info, section).append(text)
            elif match:
                info.extra.setdefault(match.group("key").strip(), match.group("value"))
            continue
        value = match.group("value")  # type: ignore[union-attr]
        if name in _SECTIONS:
            section = name
            if value:
                getattr(info, name).append(value)
            continue
        section = None
        if name not in seen:
            seen.add(name)
            setattr(info, name, _PARSERS[name](value))
    return info


def read_header_comments(header: str | Path) -> HeaderInfo:
    """Read and parse the ``#`` comment lines of a ``.hea`` file (no signal is read).

    Parameters
    ----------
    header : str or Path
        Path to a WFDB header file.
    """
    with open(header, encoding="latin-1") as fh:
        return parse_header_comments(line for line in fh if line.lstrip().startswith("#"))
