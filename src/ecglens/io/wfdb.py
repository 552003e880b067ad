"""WFDB records (``.hea`` + ``.dat``) and PhysioNet-challenge records (``.hea`` + ``.mat``).

Reading goes through the `wfdb <https://github.com/MIT-LCP/wfdb-python>`_ package
(``wfdb.rdrecord(..., physical=True)``), or for common single-segment records (formats 8, 16, 24, 32, 80, 212)
through :mod:`ecglens.io.wfdb_fast`, which gives the same samples several times faster: formats, per-lead gains
and baselines are applied exactly as wfdb applies them. This module adds what a deep-learning pipeline needs on top:

* **Paths.** A record may be given as ``rec``, ``rec.hea``, ``rec.dat`` or ``rec.mat``; every form resolves to
  ``rec.hea``.
* **Units.** Each channel is converted from its header unit (``mV``, ``uV``/``μV``, ``V``, ``nV``) to mV.
* **Leads.** Names are normalised (LUDB ``i, ii, avr, v1``; CODE ``AVR``) and put in the canonical order
  ``I, II, III, aVR, aVL, aVF, V1-V6``. A record with only the 8 independent leads (I, II, V1-V6) gets III,
  aVR, aVL and aVF derived, listed in ``Ecg.derived_leads``. Records whose leads cannot make the 12 standard
  leads (e.g. a 2-lead Holter) keep their own leads, normalised.
* **Demographics.** Age, sex, patient/exam id and ``Dx`` codes come from the header comments
  (:mod:`ecglens.io.metadata`).
* **Checks before reading.** Header present and parseable; at most :data:`MAX_SIGNALS` signals; the sampling
  rate written as a plain decimal number of Hz between :data:`~ecglens.ecg.MIN_FS` and
  :data:`~ecglens.ecg.MAX_FS` (wfdb would read ``+400`` as 250 Hz and ``4e2`` as 4 Hz); gains finite, between
  1e-3 and 1e9 counts per unit, baselines integers, units known voltages read from the header text (wfdb drops
  the non-ASCII ``µ`` of ``µV``, which would make it volts); every signal file present and at least as large as
  the header says (no array is sized from a header's word alone). After reading: the fs wfdb used is the one
  written, no infinite value, missing samples (WFDB's invalid-sample value) interpolated with a
  :class:`~ecglens.exceptions.SignalQualityWarning`, and the signal neither all zero / all NaN / flat nor beyond
  +-50 mV (:func:`~ecglens.ecg.check_recorded_signal`). Each failure raises a specific
  :mod:`ecglens.exceptions` error naming the file and what to do. A header the fast path takes (ASCII, one
  segment) is read and parsed once: the checks see the facts of that parse, equal to their own parser's.

Gains written per volt but labelled ``/mV`` (PhysioNet/CinC 2020 PTB records)
-------------------------------------------------------------------------------
The CinC 2020 conversion of the PTB Diagnostic ECG Database (``S0001.hea``...) declares ``2000000/mV``. Read
literally, the signal's peak-to-peak amplitudes are 0.0003-0.0013 mV, a thousand times below any ECG. The
original PTB Diagnostic database stores 16-bit samples at 0.5 uV resolution, i.e. a gain of ``2000/mV`` =
``2000000/V``; the challenge files keep those same ADC counts (``S0001``: QRS peak-to-peak 600-2600 counts),
so the header's gain is the per-*volt* gain with the unit written as mV. With 2000/mV the 12 leads of
``S0001`` span 0.3-1.3 mV peak-to-peak, a normal ECG. The reader therefore treats a header whose every gain is
>= 1e5 counts/mV (a resolution below 10 nV, which no ECG front end has) *and* whose signal read literally is
below 0.05 mV peak-to-peak as a per-volt gain, multiplies the amplitudes by 1000, and records
``meta["gain_correction"]``. ``fix_volt_gain=False`` turns this off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..ecg import Ecg, check_recorded_signal, sex_to_code
from ..exceptions import (
    CorruptRecordError,
    EcglensError,
    LeadError,
    SamplingRateError,
    UnitError,
    UnsupportedFormatError,
)
from ..signal.transforms import fill_nans
from ._vendor import strip_calibration
from .metadata import parse_header_comments
from .paths import walk_files
from .registry import register_reader
from .wfdb_content import check_content, repair_volt_gain
from .wfdb_fast import read_fast, read_parsed
from .wfdb_header import (
    MAX_SIGNALS,
    HeaderFacts,
    check_header,
    check_signal_files,
    fast_facts,
    gain_field,
    header_bytes,
    header_facts,
    malformed,
    read_header,
)

__all__ = ["MAX_SIGNALS", "UNIT_TO_MV", "find_wfdb_records", "read_wfdb", "resolve_header", "signal_records",
           "wfdb_catalogue"]

#: header unit (lower case) -> factor to mV
UNIT_TO_MV: dict[str, float] = {
    "mv": 1.0,
    "millivolt": 1.0,
    "millivolts": 1.0,
    "uv": 1e-3,
    "\u00b5v": 1e-3,  # micro sign
    "\u03bcv": 1e-3,  # greek mu
    "microvolt": 1e-3,
    "microvolts": 1e-3,
    "v": 1e3,
    "volt": 1e3,
    "volts": 1e3,
    "nv": 1e-6,
}

_WFDB_SUFFIXES = (".hea", ".dat", ".mat")


# --------------------------------------------------------------------------- paths and sniffing
def resolve_header(path: str | Path) -> Path:
    """Return the ``.hea`` of a record given as ``rec``, ``rec.hea``, ``rec.dat`` or ``rec.mat``."""
    path = Path(path)
    if path.suffix.lower() in _WFDB_SUFFIXES:
        return path.with_suffix(".hea")
    return path.with_name(path.name + ".hea")


def _looks_like_text(path: Path, n_bytes: int = 2048) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(n_bytes)
    return b"\x00" not in head


def _is_challenge_mat(path: Path) -> bool:
    """True for a MATLAB v4 file holding the ``val`` matrix of the PhysioNet challenges."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    return len(head) >= 24 and b"val\x00" in head[:32]


def _sniff(path: Path) -> bool:
    """``.hea``: any text file (a malformed one is then reported as corrupt, not as unknown).
    ``.dat``: always claimed (WFDB's signal-file suffix). ``.mat``: claimed when its ``.hea`` exists or it is
    a challenge ``val`` matrix (a lone MATLAB file of another kind is left to other readers)."""
    suffix = path.suffix.lower()
    if suffix == ".hea":
        return path.is_file() and _looks_like_text(path)
    if suffix == ".mat":
        return resolve_header(path).is_file() or (path.is_file() and _is_challenge_mat(path))
    return path.is_file() or resolve_header(path).is_file()


# --------------------------------------------------------------------------- signal conversion
def _unit_factors(units: Sequence[str | None], hea: Path) -> np.ndarray:
    """Per-channel factor to mV from the header units (missing unit = WFDB default, mV)."""
    factors = []
    for unit in units:
        key = (unit or "mV").strip().lower()
        if key not in UNIT_TO_MV:
            raise UnitError(
                f"{hea}: unit {unit!r} is not a voltage ecglens knows ({sorted(UNIT_TO_MV)}). "
                "Fix the unit after the gain in the header ('200/mV', '1000/uV') or convert the record to mV."
            )
        factors.append(UNIT_TO_MV[key])
    return np.asarray(factors, dtype=np.float64)


def _read_physical(hea: Path) -> Any:
    """``wfdb.rdrecord(physical=True)``; any wfdb failure becomes :class:`CorruptRecordError`."""
    import wfdb

    try:
        return wfdb.rdrecord(str(hea)[: -len(".hea")], physical=True, m2s=True)
    except Exception as err:
        if "HeaderSyntax" in type(err).__name__:
            raise malformed(hea, f"{type(err).__name__}: {err}") from err
        raise CorruptRecordError(
            f"{hea}: wfdb could not read the record ({type(err).__name__}: {err}). "
            "Check that the header matches its signal file (format, number of signals and samples)."
        ) from err


def _physical_signal(record: Any, facts: HeaderFacts, fs: float | None, hea: Path) -> np.ndarray:
    """wfdb's physical signal [n_samples, n_leads], checked against what the header states (``fs``: the
    written sampling rate, from :func:`~ecglens.io.wfdb_header.check_header`)."""
    if fs is not None and float(record.fs) != fs:
        raise SamplingRateError(
            f"{hea}: the header states {facts.fs_field!r} Hz but wfdb read {record.fs!r} Hz. Write the sampling "
            "rate as a plain number of Hz (e.g. 500)."
        )
    signal = np.asarray(record.p_signal if record.p_signal is not None else [], dtype=np.float64)
    names = list(record.sig_name or [])
    if signal.ndim != 2 or signal.shape[1] != len(names) or signal.shape[1] != (record.n_sig or 0):
        raise CorruptRecordError(
            f"{hea}: the signal read has shape {signal.shape} for {len(names)} named signals; the header does "
            "not match its signal file. Re-export the record."
        )
    return signal


def _written_units(facts: HeaderFacts, record: Any) -> list[str]:
    """Each channel's unit from the header text (``µV`` stays microvolts); wfdb's units for multi-segment
    records, whose units live in the segment headers."""
    if facts.segments or len(facts.gain_fields) != (record.n_sig or 0):
        return list(record.units or ["mV"] * record.n_sig)
    units = (gain_field(field or "")[1] for field in facts.gain_fields)
    return ["mV" if unit is None else unit for unit in units]


def _standardise(ecg: Ecg) -> Ecg:
    """Canonical 12-lead order (deriving limb leads from I and II) when the record allows it."""
    try:
        return ecg.to_standard_leads()
    except LeadError:
        return ecg


# --------------------------------------------------------------------------- the reader
@register_reader(
    "wfdb",
    suffixes=_WFDB_SUFFIXES,
    sniff=_sniff,
    priority=0,
    description="WFDB .hea + .dat and PhysioNet-challenge .hea + .mat (via the wfdb package)",
    companions=(".dat", ".mat"),
)
def read_wfdb(path: str | Path, *, standard_leads: bool = True, fix_volt_gain: bool = True, fast: bool = True) -> Ecg:
    """Read a WFDB or PhysioNet-challenge record as an :class:`~ecglens.ecg.Ecg` in mV.

    Parameters
    ----------
    path : str or Path
        ``rec``, ``rec.hea``, ``rec.dat`` or ``rec.mat``.
    standard_leads : bool
        Reorder to ``I, II, III, aVR, aVL, aVF, V1-V6`` and derive missing limb leads from I and II, when the
        record has the leads for it (otherwise its own leads are kept, normalised).
    fix_volt_gain : bool
        Repair headers whose gain is per volt but labelled per mV (see the module docstring).
    fast : bool
        Read common single-segment records with :func:`ecglens.io.wfdb_fast.read_fast` (the same samples as
        wfdb, several times faster); False, or any record it does not take, goes through ``wfdb.rdrecord``.

    Returns
    -------
    Ecg
        ``signal`` float32 [n_leads, n_samples] in mV at the header's fs; ``record_id`` the record name;
        ``age``/``sex`` from the comments; ``meta`` with ``patient_id``, ``exam_id``, ``dx``, ``comments``,
        ``header_units`` (and ``gain_correction`` when applied). A calibration pulse stored with the ECG (as in
        a conversion of a Philips PageWriter file) is cut, as by the vendor readers
        (:func:`ecglens.io._vendor.strip_calibration`, ``meta["calibration_removed_s"]``).

    Raises
    ------
    CorruptRecordError
        Header missing or malformed, signal file missing or truncated, or any other wfdb read failure.
    SamplingRateError
        fs not written as a plain number of Hz in 50-20,000.
    UnitError
        A channel unit that is not a voltage, a gain outside 1e-3..1e9, a baseline that is not an integer, or
        a decoded sample beyond +-50 mV.
    SignalQualityError
        All-zero, all-NaN or flat signal.
    """
    hea = resolve_header(path)
    raw = header_bytes(hea)
    parsed = fast_facts(raw) if fast else None
    facts = parsed[0] if parsed is not None else header_facts(hea, raw)
    fs = check_header(facts, hea)
    check_signal_files(facts, hea)
    record = None
    if parsed is not None:
        record = read_parsed(parsed[1], hea)
    elif fast and facts.raw:  # a non-ASCII header: the fast path decodes it as wfdb does
        record = read_fast(hea, text=facts.raw.decode("ascii", "ignore"))
    record = record or _read_physical(hea)
    signal = _physical_signal(record, facts, fs, hea)
    units = _written_units(facts, record)
    factors = _unit_factors(units, hea)
    if not np.all(factors == 1.0):  # x * 1.0 is x: millivolt records skip the pass
        signal = signal * factors
    correction = None
    if fix_volt_gain:
        signal, correction = repair_volt_gain(signal, record.adc_gain, units)
    check_content(signal, hea)
    signal = fill_nans(signal.T, tuple(map(str, record.sig_name or ())), str(hea)).T
    check_recorded_signal(signal.T, str(hea), "WFDB")
    info = parse_header_comments(record.comments or [])
    meta: dict[str, Any] = {"format": "wfdb", **info.to_meta(), "header_units": units}
    if correction:
        meta["gain_correction"] = correction
    ecg = Ecg(
        signal=signal.T,
        fs=float(record.fs),
        leads=tuple(record.sig_name),
        record_id=str(record.record_name or hea.stem),
        age=info.age,
        sex=info.sex,
        source=str(path),
        meta=meta,
    )
    ecg = strip_calibration(ecg, hea, "WFDB")
    return _standardise(ecg) if standard_leads else ecg


# --------------------------------------------------------------------------- folders and catalogues
def _segment_names(hea: Path) -> tuple[str, ...]:
    """The segment names of a multi-segment header; () for any other header, or one that cannot be read.

    Listing needs only this. The record line decides it (``NAME/NSEG ...``), so a single-segment header is
    settled from its first line without parsing its signal lines; a multi-segment one is parsed in full.
    """
    try:
        raw = _head_bytes(hea)
    except OSError:
        return ()  # listed, so that reading it reports why
    lines = raw.splitlines()
    for i, line in enumerate(lines):
        line = line.split(b"#", 1)[0].strip()
        if line:
            if len(raw) == _HEAD_BYTES and i == len(lines) - 1:  # the line may go on past the bytes read
                break
            if b"/" not in line.split(None, 1)[0]:
                return ()
            break
    else:
        if len(raw) < _HEAD_BYTES:
            return ()
    try:
        return header_facts(hea).segments
    except (EcglensError, OSError):
        return ()  # malformed: listed, so that reading it reports why


#: bytes of a header that listing reads first (a 12-lead header has about 1,000); a record line not settled
#: within them is decided by parsing the whole header
_HEAD_BYTES = 4096


def _head_bytes(hea: Path) -> bytes:
    """The first :data:`_HEAD_BYTES` bytes of a file (fewer when it is shorter), with two system calls."""
    fd = os.open(hea, os.O_RDONLY)
    try:
        return os.read(fd, _HEAD_BYTES)
    finally:
        os.close(fd)


def find_wfdb_records(folder: str | Path) -> list[Path]:
    """All signal records under ``folder`` (recursive), as paths to their ``.hea`` files, sorted.

    A multi-segment record is listed once, by its top-level header (its segment and layout headers are not
    listed). Malformed headers, headers that declare no stored signal and headers that name themselves *are*
    listed, so that reading them reports the problem instead of dropping them (:func:`signal_records`).

    Parameters
    ----------
    folder : str or Path
        A folder (or a single ``.hea`` file).
    """
    folder = Path(folder)
    if folder.is_file():
        return [folder] if folder.suffix.lower() == ".hea" else []
    if not folder.is_dir():
        raise UnsupportedFormatError(f"{folder}: no such folder. Give the folder that holds the .hea files.")
    return signal_records(walk_files(folder, {".hea"}))


def signal_records(headers: Iterable[Path]) -> list[Path]:
    """The headers among ``headers`` that are records, in their order (the rule of :func:`find_wfdb_records`,
    for a list of ``.hea`` files already found).

    A header named as a segment by another listed multi-segment header is read through that record and not
    listed; every other header is, even one that declares no stored signal (``~``) or names itself, so that
    reading it reports the problem. Of headers that only name each other in a cycle, the first is listed.
    """
    segments = {hea: _segment_names(hea) for hea in headers}
    children = {hea: {hea.parent / f"{seg}.hea" for seg in segs} - {hea} for hea, segs in segments.items() if segs}
    named = set().union(*children.values())
    listed = [hea for hea in segments if hea not in named]
    covered = _reachable(listed, children)
    for hea in segments:
        if hea not in covered:  # on a cycle of multi-segment headers that no listed header reaches
            listed.append(hea)
            covered |= _reachable([hea], children)
    keep = set(listed)
    return [hea for hea in segments if hea in keep]


def _reachable(start: Iterable[Path], children: dict[Path, set[Path]]) -> set[Path]:
    """``start`` and every header reached from it through segment names."""
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        hea = todo.pop()
        if hea not in seen:
            seen.add(hea)
            todo.extend(children.get(hea, ()))
    return seen


def _catalogue_row(hea: Path) -> dict[str, Any]:
    header = read_header(hea)
    info = parse_header_comments(header.comments or [])
    return {
        "record_id": str(header.record_name or hea.stem),
        "path": str(hea.absolute().with_suffix("")),
        "source": "wfdb",
        "age": np.nan if info.age is None else info.age,
        "sex": sex_to_code(info.sex),
        "patient_id": info.patient_id if info.patient_id is not None else np.nan,
        "exam_id": info.exam_id if info.exam_id is not None else np.nan,
        "fs": float(header.fs) if header.fs else np.nan,
        "n_samples": header.sig_len,
        "n_leads": header.n_sig,
        "dx": ";".join(info.dx),
        "error": "",
    }


def wfdb_catalogue(folder: str | Path, progress: bool = False) -> pd.DataFrame:
    """Index every WFDB record under ``folder`` from its header alone (no signal is read).

    Parameters
    ----------
    folder : str or Path
        Folder searched recursively (see :func:`find_wfdb_records`).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per record: ``record_id, path`` (record path without suffix, readable by ``read_ecg``),
        ``source="wfdb", age`` (years, NaN unknown), ``sex`` (1 female, 0 male, NaN unknown),
        ``patient_id, exam_id`` (str or NaN), ``fs, n_samples, n_leads, dx`` (";"-joined codes) and ``error``
        (empty, or why the header could not be parsed: such records are kept, not dropped).
    """
    from tqdm.auto import tqdm

    rows = []
    for hea in tqdm(find_wfdb_records(folder), desc="headers", disable=not progress, unit="rec"):
        try:
            rows.append(_catalogue_row(hea))
        except EcglensError as err:
            rows.append(
                {
                    "record_id": hea.stem,
                    "path": str(hea.absolute().with_suffix("")),
                    "source": "wfdb",
                    "error": str(err),
                }
            )
    columns = ["record_id", "path", "source", "age", "sex", "patient_id", "exam_id", "fs", "n_samples", "n_leads",
               "dx", "error"]
    return pd.DataFrame(rows, columns=columns)
