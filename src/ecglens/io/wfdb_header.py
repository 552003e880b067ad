"""WFDB headers: parsed for the checks that run before a record is read (:mod:`ecglens.io.wfdb`).

:func:`header_facts` parses a header's record and signal lines (no wfdb; cheap); :func:`fast_facts` takes the same
facts from the NumPy fast path's one parse (:func:`ecglens.io.wfdb_fast.parse_header`) of a header that path
reads. The checks refuse what wfdb would misread or what would size an array from a header's word alone: more than
:data:`MAX_SIGNALS` signals, a sampling rate not written as a plain number of Hz in range, gains outside 1e-3 to 1e9
counts per unit or baselines that are not integers, file names with a folder part, missing or truncated signal
files, and multi-segment records whose segments do not hold what they announce. Each raises a specific
:mod:`ecglens.exceptions` error naming the file and what to do.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..ecg import MAX_FS, MIN_FS
from ..exceptions import CorruptRecordError, SamplingRateError, UnitError
from .wfdb_fast import FastRecord, parse_header

__all__ = ["MAX_SIGNALS", "HeaderFacts", "check_header", "check_signal_files", "fast_facts", "gain_field",
           "header_bytes", "header_facts", "is_plain_file_name", "malformed", "read_header", "written_fs"]

#: bytes per sample of the fixed-size WFDB formats (FLAC formats 508/516/524 are compressed: not checked)
_BYTES_PER_SAMPLE: dict[str, float] = {
    "8": 1,
    "16": 2,
    "61": 2,
    "80": 1,
    "160": 2,
    "24": 3,
    "32": 4,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}

#: most signals a header may declare (12-lead ECGs have 12-15; polysomnography records a few dozen)
MAX_SIGNALS: int = 256
_PLAIN_FS = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(?:/.*)?$")  # FS[/COUNTER_FREQ[(BASE)]]
_GAIN_FIELD = re.compile(r"^(?P<gain>[^(/]*)(?:\((?P<base>[^)]*)\))?(?:/(?P<unit>.*))?$")
_GAIN_RANGE = (1e-3, 1e9)  # counts per unit: beyond either end the physical values are meaningless
_MAX_SAMPLES_PER_BYTE = 16  # no codec stores an ECG sample in less than half a bit

_MALFORMED_HINT = (
    "The first line must read 'NAME N_SIGNALS FS N_SAMPLES' and each signal line 'FILE FORMAT GAIN/UNIT ... "
    "LEAD'; re-export the record or fix the header."
)
_RECORD_LINE = re.compile(
    r"^(?P<name>[^\s/]+)(?:/(?P<nseg>\d+))?\s+(?P<nsig>\d+)(?:\s+(?P<fs>\S+))?(?:\s+(?P<len>\d+))?"
)
_SIGNAL_LINE = re.compile(
    r"^(?P<file>\S+)\s+(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::\d+)?(?:\+(?P<offset>\d+))?(?:\s|$)"
)


@dataclass(frozen=True)
class HeaderFacts:
    """What the pre-read checks need from a header, parsed from its text (by :func:`header_facts`, or taken from
    the fast path's one parse, :func:`fast_facts`; wfdb parses it again where it reads the record).

    ``signals``: one ``(file, fmt, samples_per_frame, byte_offset)`` per signal line; ``segments``: the
    segment names of a multi-segment record (empty otherwise); ``fs_field``: the sampling-rate field as
    written; ``gain_fields``: the ``GAIN(BASELINE)/UNIT`` field of each signal line as written (``None`` when
    absent); ``raw``: the header file's bytes (single-segment records; read once).
    """

    n_sig: int
    fs_field: str | None
    sig_len: int | None
    signals: tuple[tuple[str, str, int, int], ...]
    segments: tuple[str, ...]
    gain_fields: tuple[str | None, ...] = ()
    segment_lengths: tuple[int, ...] = ()
    raw: bytes = dataclasses.field(default=b"", repr=False)  # the header's bytes (single-segment records)


def malformed(hea: Path, what: str) -> CorruptRecordError:
    """The error for a header whose text cannot be parsed: ``what`` says which part, the hint how to fix it."""
    return CorruptRecordError(f"{hea}: malformed WFDB header ({what}). {_MALFORMED_HINT}")


def header_bytes(hea: Path) -> bytes:
    """The header file's bytes, or :class:`CorruptRecordError` saying it is missing."""
    if not hea.is_file():
        raise CorruptRecordError(
            f"{hea}: header file missing. A WFDB record needs its .hea header beside the signal file; "
            "copy the header into the same folder (same record name)."
        )
    return hea.read_bytes()


def fast_facts(raw: bytes) -> tuple[HeaderFacts, FastRecord] | None:
    """The facts of a header the fast path takes, from its one parse (:func:`~ecglens.io.wfdb_fast.parse_header`).

    Only for ASCII headers (their text then decodes the same for both parsers) of at most :data:`MAX_SIGNALS`
    signals; None otherwise, and :func:`header_facts` decides. For a header the fast path takes, the facts equal
    :func:`header_facts`' (tested on every fixture).
    """
    if not raw.isascii():
        return None
    rec = parse_header(raw.decode("ascii"))
    if rec is None or rec.n_sig > MAX_SIGNALS:
        return None
    signals = tuple((name, fmt, 1, offset) for name, fmt, offset in zip(rec.file_name, rec.fmt, rec.byte_offset,
                                                                        strict=True))
    return HeaderFacts(rec.n_sig, rec.fs_field, rec.sig_len, signals, (), tuple(rec.gain_fields), raw=raw), rec


def header_facts(hea: Path, raw: bytes | None = None) -> HeaderFacts:
    """Parse the record and signal lines of ``hea`` (no wfdb; cheap) or raise :class:`CorruptRecordError`.

    ``raw``: the header's bytes when already read.
    """
    if raw is None:
        raw = header_bytes(hea)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    record = _RECORD_LINE.match(lines[0]) if lines else None
    if record is None:
        raise malformed(
            hea, "no record line 'NAME N_SIGNALS ...'" if not lines else f"record line {lines[0]!r}"
        )
    n_sig, sig_len = int(record.group("nsig")), record.group("len")
    if n_sig > MAX_SIGNALS:
        raise malformed(hea, f"the record line declares {n_sig} signals, more than the {MAX_SIGNALS} a "
                              "recording has")
    if record.group("nseg"):
        seg_lines = [ln.split() for ln in lines[1 : 1 + int(record.group("nseg"))]]
        segments = tuple(parts[0] for parts in seg_lines)
        for seg in segments:
            _check_file_name(seg, "segment", hea)
        lengths = tuple(int(p[1]) if len(p) > 1 and p[1].isdigit() else 0 for p in seg_lines)
        return HeaderFacts(n_sig, record.group("fs"), int(sig_len) if sig_len else None, (), segments,
                            segment_lengths=lengths)
    if len(lines) - 1 < n_sig:
        raise malformed(
            hea, f"the record line declares {n_sig} signals but {len(lines) - 1} signal lines follow"
        )
    signals, gains = [], []
    for line in lines[1 : 1 + n_sig]:
        match = _SIGNAL_LINE.match(line)
        if match is None:
            raise malformed(hea, f"signal line {line!r}")
        _check_file_name(match.group("file"), "signal file", hea)
        signals.append(
            (
                match.group("file"),
                match.group("fmt"),
                int(match.group("spf") or 1),
                int(match.group("offset") or 0),
            )
        )
        fields = line.split()
        gains.append(fields[2] if len(fields) > 2 else None)
    return HeaderFacts(
        n_sig, record.group("fs"), int(sig_len) if sig_len else None, tuple(signals), (), tuple(gains), raw=raw
    )


def is_plain_file_name(name: str) -> bool:
    """True when ``name`` names a file in the header's own folder: no folder part, not absolute, not ``..``.

    WFDB signal files and segment headers live beside their header; a header naming any other path (e.g.
    ``/etc/passwd`` or ``../x.dat``) is refused, so that reading a record never opens a file elsewhere.
    """
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name and ":" not in name


def _check_file_name(name: str, what: str, hea: Path) -> None:
    if name != "~" and not is_plain_file_name(name):
        raise CorruptRecordError(
            f"{hea}: the header names the {what} {name!r}, which is not a file name in the header's folder. "
            f"A WFDB record's {what}s must sit beside its header; fix the header to give the bare file name."
        )


def written_fs(facts: HeaderFacts, hea: Path) -> float | None:
    """The sampling rate as written (None when the header leaves it out: WFDB's default, 250 Hz).

    Checked on the text: wfdb silently falls back to 250 Hz on ``-500`` or ``+400`` and reads ``4e2`` as 4 Hz.
    """
    if facts.fs_field is None:
        return None
    match = _PLAIN_FS.match(facts.fs_field)
    fs = float(match.group(1)) if match else float("nan")
    if not MIN_FS <= fs <= MAX_FS:
        raise SamplingRateError(
            f"{hea}: sampling rate field {facts.fs_field!r} in the header is not a plain number of Hz between "
            f"{MIN_FS:g} and {MAX_FS:g}. Set the third field of the first header line to the real sampling "
            "rate in Hz (e.g. 500)."
        )
    return fs


@lru_cache(maxsize=4096)
def gain_field(field: str) -> tuple[bool, str | None]:
    """Whether one ``GAIN(BASELINE)/UNIT`` field as written is usable (gain within :data:`_GAIN_RANGE`, baseline an
    integer; a field the pattern does not take is left to wfdb), and its unit as written (None when absent).

    Cached: an archive's records repeat a handful of such fields.
    """
    match = _GAIN_FIELD.match(field)
    if match is None:
        return True, None
    gain, base = match.group("gain"), match.group("base")
    try:
        value = float(gain) if gain else 200.0  # WFDB's default gain
    except ValueError:
        value = float("nan")
    integer_base = base is None or re.fullmatch(r"[+-]?\d{1,10}", base) is not None
    return _GAIN_RANGE[0] <= value <= _GAIN_RANGE[1] and integer_base, match.group("unit")


def _check_gain_field(field: str | None, hea: Path) -> None:
    """Check one ``GAIN(BASELINE)/UNIT`` field: gain within :data:`_GAIN_RANGE`, baseline an integer."""
    if field is not None and not gain_field(field)[0]:
        raise UnitError(
            f"{hea}: signal gain field {field!r} is not a positive finite gain with an integer baseline (a gain "
            "of 0 means uncalibrated samples). Write the ADC gain in counts per unit, e.g. '200(0)/mV'."
        )


def check_header(facts: HeaderFacts, hea: Path) -> float | None:
    """Sampling rate written plainly and plausible, signals > 0, gains and baselines usable.

    Returns the written sampling rate in Hz (:func:`written_fs`; None when the header leaves it out).
    """
    fs = written_fs(facts, hea)
    if not facts.n_sig:
        raise CorruptRecordError(f"{hea}: header declares 0 signals; this record holds no ECG to read.")
    for field in facts.gain_fields:
        _check_gain_field(field, hea)
    return fs


def _expected_sizes(facts: HeaderFacts) -> dict[str, int]:
    """Minimum byte size of each signal file, from the header (files in compressed formats omitted)."""
    if not facts.sig_len:
        return {}
    unchecked = {f for f, fmt, _, _ in facts.signals if fmt not in _BYTES_PER_SAMPLE or f == "~"}
    per_file: dict[str, list[float]] = {}
    for name, fmt, spf, offset in facts.signals:
        if name not in unchecked:
            per_file.setdefault(name, [offset, 0.0])[1] += facts.sig_len * spf * _BYTES_PER_SAMPLE[fmt]
    return {name: int(off) + math.floor(n) for name, (off, n) in per_file.items()}


def _check_segments(facts: HeaderFacts, hea: Path) -> None:
    """Each segment is a single-segment record whose files hold what it announces, and the lengths the
    multi-segment header states (gaps ``~`` included: wfdb fills them, sized by the header) are at most twice
    the samples the segments hold: no allocation from a header's word alone."""
    stored = 0
    for seg, length in zip(facts.segments, facts.segment_lengths, strict=True):
        if seg == "~":
            continue
        seg_hea = hea.parent / f"{seg}.hea"
        seg_facts = header_facts(seg_hea)
        if seg_facts.segments:  # WFDB segments are single-segment records; this also ends self-references
            raise CorruptRecordError(
                f"{hea}: segment {seg!r} is itself a multi-segment record. WFDB segments must be "
                "single-segment records; re-export the record."
            )
        check_header(seg_facts, seg_hea)
        check_signal_files(seg_facts, seg_hea)
        if seg_facts.sig_len is None or length > seg_facts.sig_len:
            raise malformed(hea, f"segment {seg!r} is listed with {length} samples but its header states "
                                  f"{seg_facts.sig_len}")
        stored += length
    declared = max(facts.sig_len or 0, sum(facts.segment_lengths))
    if declared > 2 * stored:
        raise malformed(hea, f"it declares {declared} samples but its segments hold {stored}; gap "
                              "segments ('~') may not make up most of a record")


def check_signal_files(facts: HeaderFacts, hea: Path) -> None:
    """Every signal file exists and holds at least the bytes the header announces (per segment when
    the record is multi-segment)."""
    if facts.segments:
        _check_segments(facts, hea)
    names = [n for n in dict.fromkeys(f for f, *_ in facts.signals) if n != "~"]
    missing = [n for n in names if not (hea.parent / n).is_file()]
    if missing:
        raise CorruptRecordError(
            f"{hea}: signal file {missing[0]!r} is missing (expected at {hea.parent / missing[0]}). "
            "Copy the .dat/.mat file that belongs to this header into the same folder."
        )
    for name, fmt, spf, _ in facts.signals:
        if name != "~" and fmt not in _BYTES_PER_SAMPLE and facts.sig_len:  # compressed (FLAC): bound the ratio
            size = (hea.parent / name).stat().st_size
            if facts.sig_len * spf > _MAX_SAMPLES_PER_BYTE * size:
                raise malformed(hea, f"{facts.sig_len} samples of format {fmt} cannot fit in the {size} bytes "
                                      f"of {name!r}")
    for name, expected in _expected_sizes(facts).items():
        actual = (hea.parent / name).stat().st_size
        if actual < expected:
            raise CorruptRecordError(
                f"{hea.parent / name}: truncated signal file ({actual} bytes, the header announces "
                f"{facts.sig_len} samples x {facts.n_sig} signals = {expected} bytes). "
                "The download or copy was probably interrupted; fetch the record again."
            )


def read_header(hea: Path) -> Any:
    """``wfdb.rdheader`` (after the text checks) with its failures turned into ecglens errors."""
    import wfdb

    check_header(header_facts(hea), hea)
    try:
        return wfdb.rdheader(str(hea)[: -len(".hea")])
    except Exception as err:  # wfdb raises many kinds on malformed text
        raise malformed(hea, f"{type(err).__name__}: {err}") from err
