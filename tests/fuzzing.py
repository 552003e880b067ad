"""A seeded mutator over the real-format fixtures, and a runner that classifies what ``read_ecg`` does with each
mutated file (used by ``tests/test_fuzz.py`` and ``benchmarks/fuzz_readers.py``).

A case is ``(seed, index)``: the index picks the source fixture (round robin over :func:`sources`), the seed and
index pick the mutation family and its details, so every case can be rebuilt from its two numbers. Each case is
built and read in a worker process (in its own temporary folder) with a time limit and an address-space limit.

Outcome classes (:data:`OUTCOMES`):

* ``ok``: an :class:`~ecglens.ecg.Ecg` that is finite, plausible and at the sampling rate written in the file;
* ``error``: an :mod:`ecglens.exceptions` error (the reader refused the file with a message);
* ``foreign``: any other exception (a defect);
* ``hang``: no answer within the time limit (a defect);
* ``garbage``: an ``Ecg`` with non-finite samples, a sample above :data:`GARBAGE_PEAK_MV`, no non-zero sample,
  a sampling rate outside 50 Hz - 20 kHz or other than the one written in the mutated field (a defect).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

OUTCOMES = ("ok", "error", "foreign", "hang", "garbage")
DEFECTS = ("foreign", "hang", "garbage")
GARBAGE_PEAK_MV = 50.0
#: values written into numeric fields (sampling rates, gains, baselines, counts, attributes)
SPECIAL = ("0", "-1", "-500", "1e-308", "1e308", "NaN", "nan", "inf", "-inf", "+400", "4e2", "1_000", "1e9",
           "99999999999", "0.5", "abc", "")
#: sampling-rate texts and whether they are a plain decimal number (which must be read exactly)
FS_TEXTS = ("0", "-500", "1e-308", "1e308", "NaN", "inf", "+400", "4e2", "1_000", "1e9", "10", "25000",
            "400.0", "1000", "250", "0x1F4", "500/2")
UNITS = ("µV", "μV", "uV", "V", "nV", "mmHg", "", "°C", "furlong", "mv", "1/mV")
_PLAIN_NUMBER = re.compile(r"(\d+(?:\.\d+)?)(?:/\d+)?")  # FS[/COUNTER_FREQ]: a valid WFDB field


@dataclass(frozen=True)
class Source:
    """A fixture to mutate: ``files`` copied into the case folder, ``entry`` the one given to ``read_ecg``."""

    label: str
    kind: str
    files: tuple[Path, ...]
    entry: str
    read_kwargs: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Case:
    """One mutated copy of a source; ``expect_fs`` is the sampling rate the file now states (None: unchanged)
    or ``-1.0`` when the written rate is not a plain number and must be refused."""

    index: int
    seed: int
    label: str
    family: str
    entry: Path
    expect_fs: float | None = None


# ------------------------------------------------------------------------------------------------ sources
def _synthetic_sources(cache: Path) -> list[Source]:
    """An EDF file (through edfio) and a one-exam CODE-15% HDF5 file, written once into ``cache``."""
    out = []
    t = np.arange(5000) / 500.0
    mv = np.stack([np.sin(2 * np.pi * 1.2 * t + k) * (0.5 + 0.1 * k) for k in range(12)])
    names = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    try:
        import edfio

        edf = cache / "synthetic.edf"
        if not edf.exists():
            signals = [edfio.EdfSignal(mv[i] * 1000, 500, label=f"ECG {n}", physical_dimension="uV",
                                       physical_range=(-5000, 5000)) for i, n in enumerate(names)]
            edfio.Edf(signals).write(edf)
        out.append(Source("edf", "edf", (edf,), edf.name))
    except ImportError:
        pass
    import h5py

    out += _raw_sources(cache, mv, names)
    hdf = cache / "exams_part0.hdf5"
    if not hdf.exists():
        with h5py.File(hdf, "w") as f:
            tr = np.zeros((1, 4096, 12), dtype=np.float32)
            tr[0, 48:4048] = mv[:, :4000].T
            f["tracings"] = tr
            f["exam_id"] = np.array([7])
    out.append(Source("code15-hdf5", "binary", (hdf,), hdf.name))
    return out


def _raw_sources(cache: Path, mv: np.ndarray, names: tuple[str, ...]) -> list[Source]:
    """Raw arrays as a user passes them (``fs=`` stated by the caller): ``.npy``, ``.npz`` and a CSV with a header
    row of lead names, each [12, 5000] at 500 Hz in mV."""
    npy, npz, csv = cache / "raw.npy", cache / "raw.npz", cache / "raw.csv"
    if not npy.exists():
        np.save(npy, mv.astype(np.float32))
        np.savez(npz, ecg=mv.astype(np.float32))
        rows = "\n".join(",".join(f"{v:.4f}" for v in col) for col in mv.T[:2500])
        csv.write_text(",".join(names) + "\n" + rows + "\n")
    kwargs = (("fs", 500.0),)
    return [Source("numpy", "binary", (npy,), npy.name, kwargs),
            Source("numpy-npz", "binary", (npz,), npz.name, kwargs),
            Source("csv", "text", (csv,), csv.name, kwargs)]


def sources(fixtures: Path, cache: Path) -> list[Source]:
    """The fixtures the mutator starts from (those present), plus the synthetic EDF and HDF5 files."""
    wfdb = {"wfdb": "code15/100003", "wfdb-ptbxl": "ptbxl_official/records100/00000/00001_lr",
            "wfdb-mat": "georgia/E07500", "wfdb-mat-ptb": "ptb/S0001", "wfdb-ludb": "ludb/1"}
    out = []
    for label, rec in wfdb.items():
        base = fixtures / rec
        files = tuple(p for p in base.parent.glob(base.name + ".*") if p.is_file())
        if files:
            out.append(Source(label, "wfdb", files, base.name + ".hea"))
    for path in sorted((fixtures / "vendor").glob("*")):
        kind = {".xml": "xml", ".dcm": "dicom", ".scp": "scp"}.get(path.suffix)
        if kind:
            label = {"dicom": "dicom", "scp": "scp"}.get(kind) or path.stem.split("_")[0]
            out.append(Source(label if kind != "xml" else f"xml-{label}", kind, (path,), path.name))
    cache.mkdir(parents=True, exist_ok=True)
    return out + _synthetic_sources(cache)


# ------------------------------------------------------------------------------------------------ byte families
def byte_flip(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    for pos in rng.integers(0, max(1, len(buf)), size=int(rng.integers(1, 9))):
        if buf:
            buf[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, max(1, len(data))))]


def zero_range(data: bytes, rng: np.random.Generator) -> bytes:
    start = int(rng.integers(0, max(1, len(data))))
    stop = min(len(data), start + int(rng.integers(1, 4096)))
    return data[:start] + bytes(stop - start) + data[stop:]


def int_field(data: bytes, rng: np.random.Generator) -> bytes:
    """Overwrite 2 or 4 bytes in the first KiB (where binary headers keep their counts) with extreme values."""
    width = int(rng.choice([2, 4]))
    value = int(rng.choice([0, 1, 2**(8 * width - 1) - 1, 2**(8 * width) - 1, 2**(8 * width - 1)]))
    pos = int(rng.integers(0, max(1, min(len(data), 1024) - width)))
    return data[:pos] + value.to_bytes(width, "little") + data[pos + width:]


def _text_numbers(text: str, rng: np.random.Generator) -> str:
    """Replace one numeric token (attribute value or element text) with a special value."""
    matches = list(re.finditer(r'(?<=[">\s=])-?\d+(?:\.\d+)?(?=["<\s])', text))
    if not matches:
        return text
    m = matches[int(rng.integers(0, len(matches)))]
    return text[: m.start()] + str(rng.choice(SPECIAL)) + text[m.end():]


def broken_base64(text: str, rng: np.random.Generator) -> str:
    """Damage one long Base64 run: a bad character, an odd length, or a chunk replaced."""
    runs = list(re.finditer(r"[A-Za-z0-9+/=\s]{200,}", text))
    if not runs:
        return text
    m = runs[int(rng.integers(0, len(runs)))]
    run = m.group(0)
    cut = int(rng.integers(1, len(run)))
    how = int(rng.integers(0, 4))
    run = (run[:cut] + "!*" + run[cut:], run[:cut], run[:cut] + "A" * int(rng.integers(1, 4)),
           run[:cut] + "////" * 64)[how]
    return text[: m.start()] + run + text[m.end():]


def line_edit(text: str, rng: np.random.Generator) -> str:
    """Delete or duplicate a run of lines (wrong lead counts, missing elements)."""
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        return text
    start = int(rng.integers(0, len(lines)))
    stop = min(len(lines), start + int(rng.integers(1, 40)))
    if rng.random() < 0.5:
        return "".join(lines[:start] + lines[stop:])
    return "".join(lines[:stop] + lines[start:stop] * int(rng.integers(1, 4)) + lines[stop:])


# ------------------------------------------------------------------------------------------------ WFDB families
def _wfdb_fields(hea: Path) -> tuple[list[str], list[int]]:
    lines = hea.read_text(encoding="latin-1").splitlines()
    sig = [i for i, ln in enumerate(lines[1:], 1) if ln.strip() and not ln.startswith("#")]
    return lines, sig


def _write_lines(hea: Path, lines: list[str]) -> None:
    hea.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def _signal_field(hea: Path, rng: np.random.Generator, field: str) -> None:
    lines, sig = _wfdb_fields(hea)
    targets = sig if rng.random() < 0.3 else [sig[int(rng.integers(0, len(sig)))]]
    for i in targets:
        parts = lines[i].split()
        m = re.match(r"^([^(/]*)(\(([^)]*)\))?(/(.*))?$", parts[2]) if len(parts) > 2 else None
        if m is None:
            continue
        gain, base, unit = m.group(1), m.group(3), m.group(5)
        if field == "gain":
            gain = str(rng.choice(SPECIAL))
        elif field == "baseline":
            base = str(rng.choice(("1e308", "-99999999999", "nan", "40000", "-1e9", "x")))
        elif field == "unit":
            unit = str(rng.choice(UNITS))
        elif field == "fmt":
            parts[1] = str(rng.choice(("80", "212", "8", "24", "32", "310", "311", "999", "0", "61", "160")))
        elif field == "file":
            parts[0] = str(rng.choice(("~", "", "missing.dat", "../x.dat", "/etc/hostname", ".")))
        elif field == "lead":
            parts[-1] = str(rng.choice(("", "zz", "I", "V7", "ii", "µ")))
        parts[2] = gain + (f"({base})" if base is not None else "") + (f"/{unit}" if unit is not None else "")
        lines[i] = " ".join(p for p in parts if p != "" or field == "file")
        if field == "file" and parts[0] == "":
            lines[i] = " " + lines[i]
    _write_lines(hea, lines)


def _record_field(hea: Path, rng: np.random.Generator, position: int) -> float | None:
    """Set field ``position`` (1 n_sig, 2 fs, 3 sig_len) of the record line; return the expected fs."""
    lines, _ = _wfdb_fields(hea)
    parts = lines[0].split()
    text = str(rng.choice(FS_TEXTS if position == 2 else SPECIAL))
    while len(parts) <= position:
        parts.append("0")
    parts[position] = text
    lines[0] = " ".join(parts)
    _write_lines(hea, lines)
    if position != 2:
        return None
    plain = _PLAIN_NUMBER.fullmatch(text)
    return float(plain.group(1)) if plain else -1.0


def _many_signals(hea: Path, rng: np.random.Generator) -> None:
    lines, sig = _wfdb_fields(hea)
    n = int(rng.choice([20_000, 5_000, 100_000]))
    parts = lines[0].split()
    parts[1] = str(n)
    lines = [" ".join(parts)] + [lines[sig[k % len(sig)]] for k in range(n if rng.random() < 0.7 else 12)]
    _write_lines(hea, lines)


def _multi_segment(hea: Path, rng: np.random.Generator) -> None:
    """A multi-segment header naming itself, a chain of nested multi-segment headers, a missing segment, or a
    real segment followed by a gap (``~``) of a billion samples."""
    name = hea.stem
    how = int(rng.integers(0, 4))
    if how == 0:
        hea.write_text(f"{name}/2 12 500 2000\n{name} 1000\n{name} 1000\n")
    elif how == 1:
        depth = int(rng.integers(2, 60))
        for d in range(depth):
            child = f"{name}_n{d + 1}" if d + 1 < depth else name
            (hea.parent / (f"{name}_n{d}.hea" if d else hea.name)).write_text(
                f"{name}_n{d}/1 12 500 2000\n{child} 2000\n")
    elif how == 2:
        hea.write_text(f"{name}/2 12 500 2000\nnothere 1000\n~ 1000\n")
    else:
        first = hea.read_text(encoding="latin-1").split()
        hea.rename(hea.with_name(f"{name}_s1.hea"))
        n = int(first[3]) if len(first) > 3 and first[3].isdigit() else 1000
        hea.write_text(f"{name}/2 {first[1]} {first[2]} {n + 10**9}\n{name}_s1 {n}\n~ {10**9}\n")


WFDB_FAMILIES: dict[str, Callable[[Path, np.random.Generator], float | None]] = {
    "hea_byte_flip": lambda h, r: h.write_bytes(byte_flip(h.read_bytes(), r)),
    "hea_truncate": lambda h, r: h.write_bytes(truncate(h.read_bytes(), r)),
    "dat_byte_flip": lambda h, r: _mutate_signal_file(h, r, byte_flip),
    "dat_truncate": lambda h, r: _mutate_signal_file(h, r, truncate),
    "dat_zero_range": lambda h, r: _mutate_signal_file(h, r, zero_range),
    "n_sig": lambda h, r: _record_field(h, r, 1),
    "fs": lambda h, r: _record_field(h, r, 2),
    "sig_len": lambda h, r: _record_field(h, r, 3),
    "gain": lambda h, r: _signal_field(h, r, "gain"),
    "baseline": lambda h, r: _signal_field(h, r, "baseline"),
    "unit": lambda h, r: _signal_field(h, r, "unit"),
    "format": lambda h, r: _signal_field(h, r, "fmt"),
    "signal_file_name": lambda h, r: _signal_field(h, r, "file"),
    "lead_name": lambda h, r: _signal_field(h, r, "lead"),
    "many_signals": _many_signals,
    "multi_segment": _multi_segment,
    "hea_lines": lambda h, r: h.write_text(line_edit(h.read_text(encoding="latin-1"), r)),
}


def _mutate_signal_file(hea: Path, rng: np.random.Generator, fn: Callable[[bytes, np.random.Generator], bytes]) -> None:
    files = [p for p in hea.parent.iterdir() if p.suffix != ".hea"]
    if files:
        target = files[int(rng.integers(0, len(files)))]
        target.write_bytes(fn(target.read_bytes(), rng))


# ------------------------------------------------------------------------------------------------ other formats
def _dicom_field(path: Path, rng: np.random.Generator) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    group = ds.WaveformSequence[0]
    channel = group.ChannelDefinitionSequence[int(rng.integers(0, len(group.ChannelDefinitionSequence)))]
    targets = [(group, "SamplingFrequency"), (group, "NumberOfWaveformSamples"),
               (group, "NumberOfWaveformChannels"), (channel, "ChannelSensitivity"), (channel, "ChannelBaseline"),
               (channel, "ChannelSensitivityCorrectionFactor"), (group, "WaveformBitsAllocated")]
    item, key = targets[int(rng.integers(0, len(targets)))]
    value = str(rng.choice(("0", "-1", "1e-308", "1e308", "NaN", "inf", "65535", "4294967295", "1e9", "3")))
    buffer = io.BytesIO()
    try:
        setattr(item, key, value if key[0] in "SC" else int(float(value)))
        ds.save_as(buffer)
    except Exception:  # noqa: BLE001 - pydicom refuses to write some values: truncate the waveform instead
        ds = pydicom.dcmread(path)
        data = ds.WaveformSequence[0].WaveformData
        ds.WaveformSequence[0].WaveformData = bytes(data)[: int(rng.integers(0, len(data)))]
        buffer = io.BytesIO()
        ds.save_as(buffer)
    path.write_bytes(buffer.getvalue())


def _hdf5_field(path: Path, rng: np.random.Generator) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        tr = np.asarray(f["tracings"])
        how = int(rng.integers(0, 5))
        lead = int(rng.integers(0, 12))
        if how == 0:
            tr[0, int(rng.integers(0, 4096)), lead] = float(rng.choice([np.nan, np.inf, 1e30]))
        elif how == 1:
            tr *= float(rng.choice([0.0, 1e6, 1e-9, -1e12]))
        elif how == 2:
            tr[0, :, lead] = 1e5
        del f["tracings"]
        f["tracings"] = tr if how < 3 else (tr[:, :, :int(rng.integers(0, 12))] if how == 3 else tr[:, :10])


def scp_with_crcs(data: bytes, rng: np.random.Generator) -> bytes:
    """Flip bytes or overwrite a count in an SCP-ECG record, then rewrite every section CRC and the record CRC,
    so that the damage reaches the decoder instead of the CRC check."""
    import binascii
    import struct

    buf = bytearray(byte_flip(data, rng) if rng.random() < 0.5 else int_field(data, rng))
    pos = 6
    while pos + 8 <= len(buf):
        length = struct.unpack_from("<I", buf, pos + 4)[0]
        if length < 16 or pos + length > len(buf):
            break
        struct.pack_into("<H", buf, pos, binascii.crc_hqx(bytes(buf[pos + 2: pos + length]), 0xFFFF))
        pos += length
    struct.pack_into("<H", buf, 0, binascii.crc_hqx(bytes(buf[2:]), 0xFFFF))
    return bytes(buf)


BINARY_FAMILIES = {"byte_flip": byte_flip, "truncate": truncate, "zero_range": zero_range, "int_field": int_field}
XML_FAMILIES = {"byte_flip": byte_flip, "truncate": truncate, "numeric_field": _text_numbers,
                "broken_base64": broken_base64, "line_edit": line_edit}


def _families(kind: str) -> list[str]:
    if kind == "wfdb":
        return list(WFDB_FAMILIES)
    if kind in ("xml", "text"):
        return list(XML_FAMILIES)
    extra = {"dicom": ["dicom_field"] * 3, "edf": ["edf_field"] * 3, "scp": ["scp_crc_fixed"] * 4}.get(kind, [])
    return list(BINARY_FAMILIES) + extra


def _edf_field(data: bytes, rng: np.random.Generator) -> bytes:
    """Replace one ASCII field of the EDF header (counts, durations, physical/digital ranges) by a special
    value padded to the field's width."""
    n_sig = int(data[252:256].strip() or 0) if len(data) >= 256 else 0
    head = data[: 256 * (1 + n_sig)].decode("latin-1")
    tokens = list(re.finditer(r"-?\d+(?:\.\d+)?\s*", head))
    if not tokens:
        return data
    m = tokens[int(rng.integers(0, len(tokens)))]
    width = m.end() - m.start()
    value = str(rng.choice(SPECIAL))[:width].ljust(width)
    return (head[: m.start()] + value + head[m.end():]).encode("latin-1") + data[len(head):]


def build_case(src: Source, index: int, seed: int, folder: Path) -> Case:
    """Copy ``src`` into ``folder`` and apply the mutation chosen by ``(seed, index)``."""
    rng = np.random.default_rng([seed, index])
    for f in src.files:
        shutil.copyfile(f, folder / f.name)
        (folder / f.name).chmod(0o644)
    entry = folder / src.entry
    families = _families(src.kind)
    family = families[int(rng.integers(0, len(families)))]
    expect = None
    if src.kind == "wfdb":
        expect = WFDB_FAMILIES[family](entry, rng)
    elif src.kind in ("xml", "text"):
        fn = XML_FAMILIES[family]
        data = entry.read_bytes()
        entry.write_bytes(fn(data, rng) if family in ("byte_flip", "truncate")
                          else fn(data.decode("utf-8", "replace"), rng).encode("utf-8"))
    elif family == "dicom_field":
        _dicom_field(entry, rng)
    elif family == "scp_crc_fixed":
        entry.write_bytes(scp_with_crcs(entry.read_bytes(), rng))
    elif family == "edf_field":
        entry.write_bytes(_edf_field(entry.read_bytes(), rng))
    elif family == "int_field" and src.label == "code15-hdf5":
        family = "hdf5_field"
        _hdf5_field(entry, rng)
    else:
        entry.write_bytes(BINARY_FAMILIES[family](entry.read_bytes(), rng))
    return Case(index, seed, src.label, family, entry, expect if isinstance(expect, float) else None)


# ------------------------------------------------------------------------------------------------ classification
def garbage_reason(ecg: object, expect_fs: float | None) -> str | None:
    """Why an ``Ecg`` read from a mutated file is garbage, or None when it is finite and plausible."""
    x = np.asarray(ecg.signal)  # type: ignore[attr-defined]
    if not np.isfinite(x).all():
        return "non-finite samples"
    if x.size == 0 or not x.any():
        return "all-zero signal"
    peak = float(np.abs(x).max())
    if peak > GARBAGE_PEAK_MV:
        return f"peak {peak:.3g} mV"
    fs = float(ecg.fs)  # type: ignore[attr-defined]
    if not 50.0 <= fs <= 20_000.0:
        return f"fs {fs:g} Hz outside 50-20000 Hz"
    if expect_fs is not None and (expect_fs < 0 or abs(fs - expect_fs) > 1e-9 * expect_fs):
        return f"fs {fs:g} Hz read from a field that " + ("must be refused" if expect_fs < 0 else f"says {expect_fs:g}")
    return None


#: the words of read_ecg's last-resort guard (a reader failed in a way it did not translate itself)
_LAST_RESORT = "reader could not read this file"


def run_case(src: Source, index: int, seed: int, workdir: Path) -> tuple[str, str, str, str]:
    """Build and read one case: ``(label, family, outcome, detail)`` (outcome in :data:`OUTCOMES`)."""
    from ecglens.exceptions import EcglensError
    from ecglens.io import read_ecg

    folder = Path(tempfile.mkdtemp(dir=workdir))
    try:
        case = build_case(src, index, seed, folder)
        try:
            ecg = read_ecg(case.entry, **dict(src.read_kwargs))
        except EcglensError as err:
            if _LAST_RESORT in str(err) and not isinstance(err.__cause__, EcglensError):
                # read_ecg's last-resort guard caught what the reader itself did not expect: still a defect
                cause = err.__cause__
                return case.label, case.family, "foreign", f"{type(cause).__name__} (behind read_ecg's guard): {cause}"
            return case.label, case.family, "error", f"{type(err).__name__}: {str(err)[:200]}"
        except BaseException as err:  # noqa: BLE001 - a foreign exception is what the fuzzer looks for
            tb = traceback.extract_tb(err.__traceback__)[-1]
            where = f"{Path(tb.filename).name}:{tb.lineno}"
            return case.label, case.family, "foreign", f"{type(err).__name__} at {where}: {str(err)[:160]}"
        reason = garbage_reason(ecg, case.expect_fs)
        return case.label, case.family, ("garbage" if reason else "ok"), reason or ""
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ the runner
def _address_space_bytes() -> int:  # pragma: no cover - runs in the worker
    """This process's virtual address space now (Linux ``VmSize``), 0 where ``/proc`` is absent."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _worker(conn, srcs: list[Source], seed: int, workdir: Path, mem_bytes: int) -> None:  # pragma: no cover
    import resource
    import warnings

    warnings.simplefilter("ignore")
    # The cap is on address space the case may add: a forked worker inherits its parent's mappings (torch, its
    # thread stacks, pytest's earlier tests), which alone can approach a fixed cap and make any mmap fail.
    limit = _address_space_bytes() + mem_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        index = conn.recv()
        if index is None:
            return
        src = srcs[index % len(srcs)]
        try:
            conn.send(run_case(src, index, seed, workdir))
        except BaseException as err:  # noqa: BLE001 - failure while building the case: report, keep going
            conn.send((src.label, "build", "foreign", f"{type(err).__name__}: {err}"))


def run_cases(srcs: list[Source], indices: Iterable[int], seed: int = 0, workers: int = 2, timeout: float = 10.0,
              mem_gib: float = 3.0) -> Iterator[tuple[int, str, str, str, str, float]]:
    """Run cases in ``workers`` processes; yields ``(index, label, family, outcome, detail, seconds)`` as they
    finish (seconds: wall time from handing the case to a worker to its answer).

    A case that takes longer than ``timeout`` seconds is a ``hang``: its worker is killed and replaced.
    """
    ctx = get_context("fork")
    pending = list(indices)[::-1]
    with tempfile.TemporaryDirectory(prefix="ecglens-fuzz-") as tmp:
        workdir = Path(tmp)

        def start():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, srcs, seed, workdir, int(mem_gib * 2**30)), daemon=True)
            proc.start()
            return [proc, parent, None, 0.0]

        pool = [start() for _ in range(max(1, workers))]
        try:
            while pending or any(w[2] is not None for w in pool):
                for w in pool:
                    if w[2] is None and pending:
                        w[2], w[3] = pending.pop(), time.monotonic()
                        w[1].send(w[2])
                busy = [w for w in pool if w[2] is not None]
                ready = wait([w[1] for w in busy], timeout=0.2)
                for k, w in enumerate(pool):
                    if w[2] is None:
                        continue
                    src = srcs[w[2] % len(srcs)]
                    seconds = time.monotonic() - w[3]
                    if w[1] in ready:
                        try:
                            yield (w[2], *w[1].recv(), seconds)
                        except EOFError:  # the worker died (e.g. killed by the memory limit)
                            yield w[2], src.label, "?", "foreign", "worker process died", seconds
                            w[0].kill()
                            pool[k] = start()
                            continue
                        w[2] = None
                    elif seconds > timeout:
                        yield w[2], src.label, "?", "hang", f"no answer in {timeout:g} s", seconds
                        w[0].kill()
                        w[0].join()
                        pool[k] = start()
        finally:
            for w in pool:
                if w[0].is_alive():
                    w[1].send(None)
                    w[0].join(timeout=2)
                    if w[0].is_alive():
                        w[0].kill()


def tally(rows: Iterable[tuple]) -> dict[str, dict[str, int]]:
    """Counts per source label and outcome class (rows as :func:`run_cases` yields them)."""
    out: dict[str, dict[str, int]] = {}
    for _, label, _, outcome, *_ in rows:
        out.setdefault(label, dict.fromkeys(OUTCOMES, 0))[outcome] += 1
    return out


def default_cache() -> Path:
    """Folder for the synthetic EDF / HDF5 sources."""
    return Path(os.environ.get("ECGLENS_FUZZ_CACHE", Path(tempfile.gettempdir()) / "ecglens-fuzz-sources"))
