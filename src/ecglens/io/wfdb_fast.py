"""A fast path for the common single-segment WFDB records: header parsed without pandas, samples read with NumPy.

:func:`read_fast` reads what it fully understands and returns ``None`` for anything else, so that the caller
(:func:`ecglens.io.wfdb.read_wfdb`) falls back to the ``wfdb`` package: it never gives a different answer.
Understood: one segment; formats 8 (first differences), 16, 24, 32, 80 (offset binary) and 212 (packed 12-bit);
one sample per frame, no skew; signals sharing a file in consecutive header lines with one format and byte
offset; every signal line with all fields up to the description (``FILE FMT[x1][+OFFSET] GAIN[(BASE)][/UNIT]
RES ZERO INIT CHECKSUM BLOCKSIZE DESCRIPTION``); a record line ``NAME N_SIG FS N_SAMPLES ...``.

What it returns matches ``wfdb.rdrecord(name, physical=True)`` exactly: the same digital samples, WFDB's invalid
sample value of each format as NaN, and ``(digital - baseline) / gain`` in float64, the arithmetic wfdb does
(``tests/io/test_wfdb_fast.py`` checks it sample for sample on every fixture and on records of each format).
The header is decoded as wfdb decodes it (ASCII, other bytes dropped); comments are ``# ...`` lines stripped of
spaces, tabs and ``#``.

The safety checks (bare file names, sizes, gains, fs, content) stay in :mod:`ecglens.io.wfdb`, which runs them
before either path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["FAST_FORMATS", "FastRecord", "parse_header", "read_fast", "read_parsed", "read_samples"]

#: formats the fast path reads: bytes per sample
FAST_FORMATS: dict[str, float] = {"8": 1, "16": 2, "24": 3, "32": 4, "80": 1, "212": 1.5}
#: WFDB's invalid-sample value per format (read as NaN; format 8 has none), as in wfdb
_INVALID: dict[str, int | None] = {"8": None, "16": -(2**15), "24": -(2**23), "32": -(2**31), "80": -(2**7),
                                   "212": -(2**11)}
_NAME = re.compile(r"^[-\w]+$")
_FS = re.compile(r"^\d+(?:\.\d*)?$")
#: a whole signal line the fast path takes, in one match: ``FILE FMT[x1][+OFFSET] GAIN[(BASE)][/UNIT] RES ZERO
#: INIT CHECKSUM BLOCKSIZE DESCRIPTION``; the file name as wfdb's own pattern has it (no folder part possible)
_SIGNAL = re.compile(
    r"(?P<file>[-\w]+(?:\.\w*)?)\s+"
    r"(?P<fmt>\d+)(?:x1)?(?:\+(?P<offset>\d+))?\s+"
    r"(?P<gain_field>(?P<gain>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)(?:\((?P<base>-?\d+)\))?(?:/(?P<unit>[^\s()/]+))?)\s+"
    r"\d+\s+(?P<zero>-?\d+)\s+(?P<init>-?\d+)\s+-?\d+\s+\d+\s+"
    r"(?P<desc>\S.*)"
)


@dataclass
class FastRecord:
    """A record as the fast path read it; the attributes ``read_wfdb`` uses, named as on ``wfdb.Record``.

    ``p_signal`` float64 [sig_len, n_sig] in the header's units (NaN for invalid samples); ``adc_gain``,
    ``baseline`` per signal; ``units`` as wfdb would give them (the reader re-reads the written ones);
    ``fs_field`` and ``gain_fields``: the sampling-rate field and each ``GAIN(BASE)/UNIT`` field as written.
    """

    record_name: str
    n_sig: int
    fs: float
    sig_len: int
    file_name: list[str]
    fmt: list[str]
    byte_offset: list[int]
    adc_gain: list[float]
    baseline: list[int]
    units: list[str]
    init_value: list[int]
    sig_name: list[str]
    comments: list[str]
    p_signal: np.ndarray | None = None
    fs_field: str = ""
    gain_fields: list[str] = field(default_factory=list)


def parse_header(text: str) -> FastRecord | None:
    """Parse a header's text (decoded as wfdb decodes it) or return None when the fast path cannot take it.

    Parameters
    ----------
    text : str
        The whole ``.hea`` text.

    Returns
    -------
    FastRecord or None
        Without ``p_signal``; None for a multi-segment header, an unsupported format or any field the fast path
        does not parse with certainty.
    """
    lines, comments = [], []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            comments.append(line.strip(" \t#"))
        elif line:
            if "#" in line or "\t" in line:  # inline comments, tabs: wfdb's regexes decide, not us
                return None
            lines.append(line)
    if not lines:
        return None
    head = lines[0].split()
    if len(head) < 4 or not _NAME.match(head[0]) or not head[1].isdigit() or not _FS.match(head[2]):
        return None
    if not head[3].isdigit():  # base time and date (any spelling) follow; they do not change the samples
        return None
    n_sig, sig_len = int(head[1]), int(head[3])
    if n_sig < 1 or sig_len < 1 or len(lines) != 1 + n_sig:
        return None
    rec = FastRecord(head[0], n_sig, float(head[2]), sig_len, [], [], [], [], [], [], [], [], comments,
                     fs_field=head[2])
    for line in lines[1:]:
        if not _signal_line(line, rec):
            return None
    return rec if _files_consistent(rec) else None


def _signal_line(line: str, rec: FastRecord) -> bool:
    """Append one signal line's fields to ``rec``; False when the fast path does not take it."""
    match = _SIGNAL.fullmatch(line)
    if match is None or match["fmt"] not in FAST_FORMATS:
        return False
    gain_value = float(match["gain"])
    if not gain_value > 0 or not math.isfinite(gain_value):
        return False
    base = match["base"]
    rec.file_name.append(match["file"])
    rec.fmt.append(match["fmt"])
    rec.byte_offset.append(int(match["offset"] or 0))
    rec.adc_gain.append(gain_value)
    rec.baseline.append(int(base if base is not None else match["zero"]))
    rec.units.append(match["unit"] or "mV")
    rec.init_value.append(int(match["init"]))
    rec.sig_name.append(match["desc"])
    rec.gain_fields.append(match["gain_field"])
    return True


def _files_consistent(rec: FastRecord) -> bool:
    """Each file's signals on consecutive lines, with one format and one byte offset."""
    seen: set[str] = set()
    previous = None
    for i, name in enumerate(rec.file_name):
        if name != previous:
            if name in seen:
                return False
            seen.add(name)
            previous, fmt, offset = name, rec.fmt[i], rec.byte_offset[i]
        elif rec.fmt[i] != fmt or rec.byte_offset[i] != offset:
            return False
    return True


def _groups(rec: FastRecord) -> list[tuple[str, str, int, slice]]:
    """(file, format, byte offset, slice of signals) per signal file, in header order."""
    out, start = [], 0
    for i in range(1, rec.n_sig + 1):
        if i == rec.n_sig or rec.file_name[i] != rec.file_name[start]:
            out.append((rec.file_name[start], rec.fmt[start], rec.byte_offset[start], slice(start, i)))
            start = i
    return out


def _decode(raw: np.ndarray, fmt: str, n_samples: int) -> np.ndarray:
    """Digital samples (int32, interleaved) from the bytes of one file."""
    if fmt == "16":
        return raw.view("<i2").astype(np.int32)
    if fmt == "32":
        return raw.view("<i4").astype(np.int32)
    if fmt == "80":
        return raw.astype(np.int32) - 128
    if fmt == "8":
        return raw.view(np.int8).astype(np.int32)
    if fmt == "24":
        b = raw.reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return value - ((value & 0x800000) << 1)
    # 212: two 12-bit samples in three bytes
    padded = np.zeros(3 * ((n_samples + 1) // 2), dtype=np.int32)
    padded[: raw.size] = raw
    b = padded.reshape(-1, 3)
    out = np.empty(2 * b.shape[0], dtype=np.int32)
    out[0::2] = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
    out[1::2] = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
    out = out[:n_samples]
    return out - ((out & 0x800) << 1)


def read_samples(rec: FastRecord, folder: Path) -> np.ndarray | None:
    """Physical samples float64 [sig_len, n_sig] of a parsed header, or None when a file is too short.

    The array is a transposed view of a ``[n_sig, sig_len]`` C-contiguous one (Fortran order): each signal's
    samples lie together, as :class:`~ecglens.ecg.Ecg` holds them, and the per-signal arithmetic runs along them.

    Parameters
    ----------
    rec : FastRecord
        From :func:`parse_header`.
    folder : Path
        The header's folder (signal files are bare names beside it).
    """
    physical = np.empty((rec.n_sig, rec.sig_len), dtype=np.float64)  # signal-major: [n_sig, sig_len]
    invalid: list[np.ndarray] = []
    for name, fmt, offset, sl in _groups(rec):
        n_ch = sl.stop - sl.start
        n_samples = rec.sig_len * n_ch
        n_bytes = int(np.ceil(n_samples * FAST_FORMATS[fmt]))
        with open(folder / name, "rb") as fh:
            fh.seek(offset)
            raw = np.frombuffer(fh.read(n_bytes), dtype=np.uint8)
        if raw.size < n_bytes:
            return None
        samples = _decode(raw, fmt, n_samples).reshape(rec.sig_len, n_ch)
        if fmt == "8":
            samples = np.cumsum(samples, axis=0, dtype=np.int32) + np.asarray(rec.init_value[sl], dtype=np.int32)
        physical[sl] = samples.T
        if _INVALID[fmt] is not None:
            mask = samples == _INVALID[fmt]
            if mask.any():
                invalid.append(np.zeros_like(physical, dtype=bool))
                invalid[-1][sl] = mask.T
    # (digital - baseline) / gain, in place: the same arithmetic as wfdb, sample by sample
    physical -= np.asarray(rec.baseline, dtype=np.float64)[:, None]
    physical /= np.asarray(rec.adc_gain, dtype=np.float64)[:, None]
    for mask in invalid:
        physical[mask] = np.nan
    return physical.T


def read_fast(hea: str | Path, text: str | None = None) -> FastRecord | None:
    """Read a record by the fast path, or None when it must go through ``wfdb`` (see the module docstring).

    Parameters
    ----------
    hea : str or Path
        The ``.hea`` file.
    text : str, optional
        Its text, when already read (decoded as wfdb decodes it: ``bytes.decode("ascii", "ignore")``).

    Returns
    -------
    FastRecord or None
        With ``p_signal`` float64 [sig_len, n_sig] in the header's units.
    """
    hea = Path(hea)
    if text is None:
        text = hea.read_bytes().decode("ascii", "ignore")
    rec = parse_header(text)
    return None if rec is None else read_parsed(rec, hea)


def read_parsed(rec: FastRecord, hea: str | Path) -> FastRecord | None:
    """:func:`read_fast` for a header already parsed by :func:`parse_header`: ``rec`` with ``p_signal`` filled,
    or None when a signal file cannot be read or is too short."""
    try:
        rec.p_signal = read_samples(rec, Path(hea).parent)
    except OSError:
        return None
    return rec if rec.p_signal is not None else None
