"""SCP-ECG reader (EN 1064 / ISO 11073-91064; files of protocol versions 1.3 and 2.0 tested), numpy only.

No SCP-ECG library is used: the best-known decoder (BioSig) is GPL, which this MIT project may not require,
and ECG Toolkit is C#; the format is small enough to decode here, clean-room from the standard's description.
What the reader does, section by section:

* **Record**: bytes 0-1 CRC-CCITT (polynomial 0x1021, initial 0xFFFF) of bytes 2..end, bytes 2-5 the record
  size. Every section starts with a 16-byte header: CRC of the section from its byte 2, section number, section
  length (header included), versions, 6 reserved bytes (``SCPECG`` in section 0). Record and section CRCs are
  checked; a mismatch is a :class:`~ecglens.exceptions.CorruptRecordError`.
* **Section 0** (pointers): 10 bytes per section (number, length, 1-based byte index); length 0 means absent.
  Each pointed-to section must lie inside the record and carry the same number and length in its header.
* **Section 1** (patient data): tag (1 byte), length (2), value, up to tag 255. Used: 2 patient ID, 4 age (value,
  unit 1 years / 2 months / 3 weeks / 4 days / 5 hours; 0 "unspecified" is ignored), 5 date of birth, 8 sex
  (1 male, 2 female), 25/26 date and time of acquisition (age from dates when tag 4 is missing).
* **Section 2** (Huffman tables, default or custom) and the decoding: :mod:`ecglens.io.scp_huffman`.
* **Section 3** (lead definition): number of leads, flags (bit 0 reference-beat subtraction used, bit 2 leads
  recorded simultaneously), per lead first and last sample number and lead code (:data:`LEAD_CODES`). A first
  sample number 0 (Contec numbers from 0 with an exclusive end) is read as 1.
* **Section 4** (QRS locations): length of reference beat 0 (ms), its fiducial sample, number of QRS complexes,
  per complex its beat type and subtraction zone (start, fiducial, end), then the protected zones.
* **Section 5** (reference beats) and **section 6** (rhythm): amplitude value multiplier (nV per unit), sample
  time interval (us), difference coding (0 none, 1 first, 2 second differences), bimodal-compression flag
  (section 6), the byte length of each lead's data, then the data.
* **Reconstruction**: decode, undo differences, fill in decimated samples outside the protected zones when
  bimodal compression is used (decimation factor = section 6 interval / section 5 interval; linear
  interpolation between the stored block centres), scale to nV, add reference beat 0 over the subtraction zone
  of every type-0 complex when section 3 says it was subtracted, convert to mV.
* **Sections 7-11** (measurements, statements) are located and CRC-checked but not read.

Leads recorded at different times (section 3 sample ranges that do not overlap) are refused; overlapping ranges
are cropped to their common part. Tested on ``toolkit_example.scp`` (ECG Toolkit's example: 12 leads, default
Huffman table, second differences, 500 Hz; the same ECG as its DICOM and HL7 aECG exports) and
``contec_demo.scp`` (a Contec recorder: 8 leads, int16 samples without section 2, 1000 Hz), and on seeded
damaged copies of both.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..ecg import Ecg, check_recorded_fs, check_recorded_signal
from ..exceptions import CorruptRecordError, LeadError, SamplingRateError, UnitError, UnsupportedFormatError
from ._vendor import age_from_dates, age_in_years, standardise_leads, strip_calibration
from .registry import register_reader
from .scp_huffman import decode_values, max_values, parse_tables

__all__ = ["LEAD_CODES", "read_scp", "sniff_scp"]

FORMAT = "SCP-ECG"
_SECTION_HEADER = 16
_RECORD_HEADER = 6
_MAX_DECIMATION = 32  # bimodal compression decimates by 2-8 in practice
#: SCP-ECG lead codes (section 3) -> lead names; others are named ``SCP<code>`` (0, unspecified: ``lead<N>``)
LEAD_CODES: dict[int, str] = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6", 9: "V7", 10: "V2R", 11: "V3R",
    12: "V4R", 13: "V5R", 14: "V6R", 15: "V7R", 16: "X", 17: "Y", 18: "Z", 19: "CC5", 20: "CM5",
    61: "III", 62: "aVR", 63: "aVL", 64: "aVF", 65: "-aVR", 66: "V8", 67: "V9", 68: "V8R", 69: "V9R",
}  # fmt: skip
_AGE_UNITS = {1: "Y", 2: "M", 3: "W", 4: "D", 5: "H"}
_SEX = {1: "M", 2: "F"}


@dataclass(frozen=True)
class _Lead:
    """One lead of section 3: 1-based first and last sample numbers and its name."""

    start: int
    end: int
    name: str


@dataclass(frozen=True)
class _Samples:
    """Section 5 or 6 after its fixed part: nV per unit, us per sample, difference order, bimodal, lead bytes."""

    avm_nv: int
    interval_us: int
    differences: int
    bimodal: bool
    data: tuple[bytes, ...]


def _error(path: Path, problem: str) -> CorruptRecordError:
    return CorruptRecordError(
        f"{path}: {FORMAT} {problem}; the file is damaged or truncated. Export it again."
    )


def sniff_scp(path: Path) -> bool:
    """True when section 0 starts at byte 7 (number 0 in its header) with ``SCPECG`` or the file's exact size."""
    with open(path, "rb") as fh:
        head = fh.read(_RECORD_HEADER + _SECTION_HEADER)
    if len(head) < _RECORD_HEADER + _SECTION_HEADER or head[8:10] != b"\x00\x00":
        return False
    return head[16:22] == b"SCPECG" or struct.unpack_from("<I", head, 2)[0] == Path(path).stat().st_size


@register_reader(
    "scp",
    (".scp",),
    sniff=sniff_scp,
    priority=20,
    description="SCP-ECG (EN 1064 / ISO 11073-91064), own decoder",
)
def read_scp(path: str | Path) -> Ecg:
    """Read an SCP-ECG file.

    Parameters
    ----------
    path : str or Path
        The ``.scp`` file.

    Returns
    -------
    Ecg
        ``signal`` [n_leads, n_samples] in mV in canonical lead order (III, aVR, aVL, aVF derived from I and II
        when not stored; other leads after the 12), ``fs`` in Hz from the rhythm's sample interval, ``age``,
        ``sex``, ``meta`` with ``patient_id``, ``acquisition_datetime``, ``scp_version``.

    Raises
    ------
    UnsupportedFormatError
        Not an SCP-ECG record, no rhythm data (section 6), or leads recorded one after another.
    CorruptRecordError
        Truncated or inconsistent sections, CRC mismatch, undecodable data, a flat rhythm.
    LeadError
        A lead defined twice in section 3.
    UnitError, SamplingRateError
        A zero amplitude multiplier or sample interval.
    """
    path = Path(path)
    data = path.read_bytes()
    sections = _sections(data, path)
    for needed, what in ((3, "lead definition"), (6, "rhythm data")):
        if needed not in sections:
            raise UnsupportedFormatError(
                f"{path}: this {FORMAT} file has no section {needed} ({what}); ecglens reads rhythm ECGs only."
            )
    leads, subtracted = _lead_definition(sections[3], path)
    signal, fs = _rhythm_mv(sections, leads, subtracted, path)
    patient = _patient(sections.get(1, b""), path)
    check_recorded_signal(signal, str(path), FORMAT)
    ecg = Ecg(
        signal=signal,
        fs=check_recorded_fs(fs, str(path), "sample time interval of section 6"),
        leads=tuple(lead.name for lead in leads),
        record_id=path.stem,
        age=patient.pop("age"),
        sex=patient.pop("sex"),
        source=str(path),
        meta={"format": "scp", "scp_version": data[_RECORD_HEADER + 9] / 10, **patient},
    )
    return strip_calibration(standardise_leads(ecg), path, FORMAT)


# ---------------------------------------------------------------------------------------------- container
def _sections(data: bytes, path: Path) -> dict[int, bytes]:
    """Bodies (without header) of the sections 1-11 present, checked against section 0 and their CRCs."""
    if len(data) < _RECORD_HEADER + _SECTION_HEADER:
        raise _error(path, f"record of {len(data)} bytes is shorter than its header and section 0")
    crc, size = struct.unpack_from("<HI", data, 0)
    if size > len(data) or size < _RECORD_HEADER + _SECTION_HEADER:
        raise _error(path, f"record declares {size} bytes but the file holds {len(data)}")
    data = data[:size]
    if binascii.crc_hqx(data[2:], 0xFFFF) != crc:
        raise _error(path, "record CRC does not match its content")
    pointers = _section(data, _RECORD_HEADER + 1, 0, None, path)
    if len(pointers) % 10:
        raise _error(path, f"section 0 has {len(pointers)} bytes of pointers, not a multiple of 10")
    out: dict[int, bytes] = {}
    for pos in range(0, len(pointers), 10):
        number, length, index = struct.unpack_from("<HII", pointers, pos)
        if number == 0 and (length, index) != (len(pointers) + _SECTION_HEADER, _RECORD_HEADER + 1):
            raise _error(path, f"section 0 points to itself at byte {index} with {length} bytes")
        if length == 0 or number == 0 or number > 11:
            continue
        if number in out:
            raise _error(path, f"section 0 points twice to section {number}")
        out[number] = _section(data, index, number, length, path)
    return out


def _section(data: bytes, index: int, number: int, length: int | None, path: Path) -> bytes:
    """Body of the section at 1-based byte ``index``, after checking its header, bounds and CRC."""
    start = index - 1
    if start < _RECORD_HEADER or start + _SECTION_HEADER > len(data):
        raise _error(
            path, f"section {number} starts at byte {index}, outside the record of {len(data)} bytes"
        )
    crc, found, declared = struct.unpack_from("<HHI", data, start)
    if found != number or (length is not None and declared != length):
        raise _error(
            path,
            f"section 0 points to section {number} ({length} bytes) at byte {index}, which holds "
            f"section {found} ({declared} bytes)",
        )
    if declared < _SECTION_HEADER or start + declared > len(data):
        raise _error(path, f"section {number} claims {declared} bytes from byte {index}, beyond the record")
    if binascii.crc_hqx(data[start + 2 : start + declared], 0xFFFF) != crc:
        raise _error(path, f"section {number} CRC does not match its content")
    return data[start + _SECTION_HEADER : start + declared]


def _unpack(fmt: str, body: bytes, pos: int, what: str, path: Path) -> tuple[Any, ...]:
    """``struct.unpack_from`` that raises a CorruptRecordError naming ``what`` when ``body`` is too short."""
    if pos + struct.calcsize(fmt) > len(body):
        raise _error(path, f"{what} ends early ({len(body)} bytes)")
    return struct.unpack_from(fmt, body, pos)


# ---------------------------------------------------------------------------------------------- section 1
def _patient_tags(body: bytes, path: Path) -> dict[int, bytes]:
    """Tag -> value of section 1 (first occurrence), up to the terminator tag 255."""
    tags: dict[int, bytes] = {}
    pos = 0
    while pos + 3 <= len(body):
        tag, length = body[pos], struct.unpack_from("<H", body, pos + 1)[0]
        if pos + 3 + length > len(body):
            raise _error(path, f"section 1 tag {tag} claims {length} bytes, beyond the section")
        if tag == 255:
            break
        tags.setdefault(tag, body[pos + 3 : pos + 3 + length])
        pos += 3 + length
    return tags


def _text(value: bytes | None) -> str | None:
    """A NUL-terminated string of section 1 (``None`` when absent or empty)."""
    text = (value or b"").split(b"\x00", 1)[0].decode("latin-1").strip()
    return text or None


def _date(value: bytes | None) -> str | None:
    """Section 1 date (year uint16, month, day) as ``YYYY-MM-DD``; ``None`` when absent or zero."""
    if value is None or len(value) < 4:
        return None
    year, month, day = struct.unpack_from("<HBB", value, 0)
    return f"{year:04d}-{month:02d}-{day:02d}" if year and month and day else None


def _patient(body: bytes, path: Path) -> dict[str, Any]:
    """``age``, ``sex``, ``patient_id``, ``acquisition_datetime`` (absent ones None or left out)."""
    tags = _patient_tags(body, path)
    age = None
    if len(tags.get(4, b"")) >= 3:
        value, unit = struct.unpack_from("<HB", tags[4], 0)
        age = age_in_years(value, _AGE_UNITS[unit]) if unit in _AGE_UNITS else None
    acquired = _date(tags.get(25))
    if age is None:
        age = age_from_dates(_date(tags.get(5)), acquired)
    time = tags.get(26)
    if acquired and time is not None and len(time) >= 3:
        acquired += f"T{time[0]:02d}:{time[1]:02d}:{time[2]:02d}"
    meta = {"patient_id": _text(tags.get(2)), "acquisition_datetime": acquired}
    sex = _SEX.get(tags[8][0]) if tags.get(8) else None
    return {"age": age, "sex": sex, **{k: v for k, v in meta.items() if v is not None}}


# ---------------------------------------------------------------------------------------------- sections 3-6
def _lead_definition(body: bytes, path: Path) -> tuple[list[_Lead], bool]:
    """Section 3: the leads and whether reference beat 0 was subtracted from the rhythm."""
    n_leads, flags = _unpack("<BB", body, 0, "section 3 (lead definition)", path)
    if n_leads == 0:
        raise _error(path, "section 3 defines no leads")
    leads = []
    for i in range(n_leads):
        start, end, code = _unpack("<IIB", body, 2 + 9 * i, f"section 3 entry of lead {i + 1}", path)
        start = max(start, 1)  # some writers (Contec) number from 0 with an exclusive end
        if not start <= end:
            raise _error(path, f"section 3 gives lead {i + 1} the impossible sample range {start}-{end}")
        leads.append(_Lead(start, end, LEAD_CODES.get(code, f"SCP{code}" if code else f"lead{i + 1}")))
    names = [lead.name for lead in leads]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise LeadError(
            f"{path}: {FORMAT} section 3 defines lead(s) {twice} more than once; the file is inconsistent."
        )
    return leads, bool(flags & 1)


def _samples(body: bytes, n_leads: int, number: int, path: Path) -> _Samples:
    """The fixed part of section 5 or 6 and each lead's encoded bytes."""
    avm, interval, diff, bimodal = _unpack("<HHBB", body, 0, f"section {number}", path)
    lengths = _unpack(f"<{n_leads}H", body, 6, f"section {number} lead lengths", path)
    pos = 6 + 2 * n_leads
    if pos + sum(lengths) > len(body):
        raise _error(
            path, f"section {number} lead data claim {sum(lengths)} bytes, more than the section holds"
        )
    if diff not in (0, 1, 2):
        raise _error(path, f"section {number} difference coding {diff} is not 0, 1 or 2")
    if avm == 0:
        raise UnitError(
            f"{path}: {FORMAT} section {number} has amplitude multiplier 0 nV; the amplitude in mV is "
            "unknown. Export the ECG with calibrated amplitudes."
        )
    if interval == 0:
        raise SamplingRateError(
            f"{path}: {FORMAT} section {number} has sample interval 0 us; the file is damaged."
        )
    offsets = np.concatenate([[pos], pos + np.cumsum(lengths)]).tolist()
    chunks = tuple(body[offsets[i] : offsets[i + 1]] for i in range(n_leads))
    return _Samples(avm, interval, diff, bool(bimodal) if number == 6 else False, chunks)


def _undiff(values: np.ndarray, order: int) -> np.ndarray:
    """Undo first (``x[n] = d[n] + x[n-1]``) or second (``x[n] = d[n] + 2x[n-1] - x[n-2]``) differences."""
    x = values.astype(np.float64)
    if order == 1:
        return np.cumsum(x)
    if order == 2 and x.size > 2:
        steps = np.cumsum(np.concatenate([[x[1] - x[0]], x[2:]]))  # x[n] - x[n-1], n >= 1
        return np.concatenate([[x[0]], x[0] + np.cumsum(steps)])
    return x


def _qrs(
    sections: dict[int, bytes], path: Path
) -> tuple[int, list[tuple[int, int, int, int]], list[tuple[int, int]]]:
    """Section 4: fiducial of reference beat 0, (type, start, fiducial, end) per QRS, protected zones."""
    body = sections.get(4)
    if body is None:
        raise _error(path, "section 4 (QRS locations) is missing but sections 3/6 need it")
    _, fiducial, n_qrs = _unpack("<HHH", body, 0, "section 4", path)
    zones = [_unpack("<HIII", body, 6 + 14 * i, "section 4 QRS list", path) for i in range(n_qrs)]
    base = 6 + 14 * n_qrs
    protected = []
    if base + 8 * n_qrs <= len(body):
        protected = [struct.unpack_from("<II", body, base + 8 * i) for i in range(n_qrs)]
    return fiducial, zones, protected


def _rhythm_mv(
    sections: dict[int, bytes], leads: list[_Lead], subtracted: bool, path: Path
) -> tuple[np.ndarray, float]:
    """The rhythm [n_leads, n_samples] in mV over the leads' common sample range, and fs in Hz."""
    tables = parse_tables(sections[2], f"{path}") if 2 in sections else None
    rhythm = _samples(sections[6], len(leads), 6, path)
    ref = None
    if subtracted or rhythm.bimodal:
        if 5 not in sections:
            raise _error(
                path, "section 5 (reference beats) is missing but section 3/6 say the rhythm needs it"
            )
        ref = _samples(sections[5], len(leads), 5, path)
    interval = ref.interval_us if ref is not None and rhythm.bimodal else rhythm.interval_us
    if ref is not None and subtracted and not rhythm.bimodal and ref.interval_us != rhythm.interval_us:
        raise _error(
            path,
            f"reference beats ({ref.interval_us} us) and rhythm ({rhythm.interval_us} us) differ "
            "in sample interval without bimodal compression",
        )
    factor = _decimation(rhythm, ref, path) if rhythm.bimodal and ref is not None else 1
    for lead, data in zip(leads, rhythm.data, strict=True):
        if lead.end - lead.start + 1 > max_values(len(data), tables) * factor:
            raise _error(
                path,
                f"section 3 gives lead {lead.name} {lead.end - lead.start + 1} samples, more than "
                f"its {len(data)} bytes in section 6 can hold",
            )
    lo, hi = max(lead.start for lead in leads), min(lead.end for lead in leads)
    if lo > hi:
        raise UnsupportedFormatError(
            f"{path}: the leads of this {FORMAT} file were recorded one group after another (section 3 sample "
            "ranges do not overlap); ecglens needs simultaneously recorded leads."
        )
    qrs = _qrs(sections, path) if ref is not None else None
    beats = _reference_beats(sections, ref, tables, leads, path) if subtracted and ref is not None else None
    signal = np.empty((len(leads), hi - lo + 1), dtype=np.float64)
    for i, lead in enumerate(leads):
        where = f"{path}: {FORMAT} section 6, lead {lead.name}"
        full = np.arange(lead.start, lead.end + 1, dtype=np.float64)
        positions = full
        if rhythm.bimodal and ref is not None and qrs is not None:
            positions = _bimodal_positions(lead, qrs[2], factor)
        x = _undiff(decode_values(rhythm.data[i], positions.size, tables, where), rhythm.differences)
        if positions is not full:
            x = np.interp(full, positions, x)
        x = x * rhythm.avm_nv
        if beats is not None and qrs is not None:
            _add_reference(x, lead.start, beats[i], qrs[0], qrs[1], path)
        signal[i] = x[lo - lead.start : hi - lead.start + 1] * 1e-6
    if not np.ptp(signal, axis=1).any():
        raise _error(path, "rhythm decodes to a flat line (constant) on every lead")
    return signal, 1e6 / interval


def _decimation(rhythm: _Samples, ref: _Samples, path: Path) -> int:
    """Bimodal decimation factor: section 6 interval / section 5 interval, a whole number."""
    factor, rest = divmod(rhythm.interval_us, ref.interval_us)
    if not 1 <= factor <= _MAX_DECIMATION or rest:
        raise _error(
            path,
            f"bimodal rhythm interval {rhythm.interval_us} us is no multiple of the reference beat "
            f"interval {ref.interval_us} us (a whole factor of 1-{_MAX_DECIMATION})",
        )
    return factor


def _bimodal_positions(lead: _Lead, protected: list[tuple[int, int]], factor: int) -> np.ndarray:
    """1-based sample numbers of the stored values: every sample in a protected zone, block centres elsewhere."""
    n = lead.end - lead.start + 1
    keep = np.zeros(n, dtype=bool)
    for begin, end in protected:
        keep[max(begin - lead.start, 0) : max(end - lead.start + 1, 0)] = True
    edges = np.flatnonzero(np.diff(keep.astype(np.int8))) + 1
    positions = []
    for a, b in zip(
        np.concatenate([[0], edges]).tolist(), np.concatenate([edges, [n]]).tolist(), strict=True
    ):
        if keep[a]:
            positions.append(np.arange(a, b, dtype=np.float64))
        else:
            blocks = np.arange(a, b, factor, dtype=np.float64)
            positions.append(blocks + (np.minimum(blocks + factor, b) - blocks - 1) / 2)
    return np.concatenate(positions) + lead.start


def _reference_beats(
    sections: dict[int, bytes], ref: _Samples, tables: Any, leads: list[_Lead], path: Path
) -> list[np.ndarray]:
    """Reference beat 0 of every lead in nV (section 5), its length from section 4."""
    length_ms = _unpack("<H", sections.get(4, b""), 0, "section 4", path)[0]
    n = round(length_ms * 1000 / ref.interval_us)
    if n < 1:
        raise _error(path, "section 4 gives reference beat 0 a length of 0 ms")
    beats = []
    for i, lead in enumerate(leads):
        values = decode_values(ref.data[i], n, tables, f"{path}: {FORMAT} section 5, lead {lead.name}")
        beats.append(_undiff(values, ref.differences) * ref.avm_nv)
    return beats


def _add_reference(
    x: np.ndarray, start: int, beat: np.ndarray, fiducial: int, zones: list[tuple[int, ...]], path: Path
) -> None:
    """Add ``beat`` (nV) to the residual ``x`` (nV, first sample number ``start``) over each type-0 zone."""
    for beat_type, begin, centre, end in zones:
        if beat_type != 0:
            continue
        if not begin <= centre <= end:
            raise _error(
                path, f"section 4 subtraction zone {begin}-{end} does not contain its fiducial {centre}"
            )
        n = np.arange(
            max(begin, start, centre - fiducial + 1),
            min(end, start + x.size - 1, centre - fiducial + beat.size) + 1,
        )
        x[n - start] += beat[n - centre + fiducial - 1]
