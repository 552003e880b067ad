"""CODE-15% (Ribeiro et al.) in its HDF5 release layout: catalogue, exam reader and iterator.

Layout of the release (Zenodo record 4916206)
---------------------------------------------
* ``exams.csv``: one row per exam, ``exam_id, age, is_male, nn_predicted_age, 1dAVb, RBBB, LBBB, SB, ST, AF,
  patient_id, death, timey, normal_ecg, trace_file`` (``trace_file``: the ``exams_partN.hdf5`` holding it).
* ``exams_part0.hdf5`` ... ``exams_part17.hdf5``, each with the datasets ``tracings`` float32
  ``[N, 4096, 12]`` (exam, sample, lead) and ``exam_id`` ``[N]``. Row *i* of ``tracings`` is exam
  ``exam_id[i]``; a row whose exam id is 0 is not an exam (the release pads parts with such rows) and is
  skipped.

Signal conventions, and why
---------------------------
* **fs = 400 Hz, 4096 samples.** Exams last about 7.3 s (2,934 samples) or 10.2 s (4,096); shorter exams are
  zero-padded *on both ends* to 4096. The reader strips all-zero rows (all 12 leads exactly 0) at both ends
  and records ``meta["pad_start"]``, ``meta["pad_end"]`` and ``meta["n_samples_stored"]``
  (``strip_padding=False`` keeps them).
* **Lead order** ``DI, DII, DIII, AVR, AVL, AVF, V1-V6``, i.e. the canonical order. (One version of the
  authors' README lists ``AVL, AVF, AVR``; the data themselves say otherwise: in the CODE-15% fixtures the 4th
  column satisfies aVR = -(I + II)/2, the 5th aVL = I - II/2 and the 6th aVF = II - I/2 to within 0.3-8 % of
  the signal level, while the 4th column against aVL is off by 100-600 %.)
* **Amplitude unit: mV (scale 1.0), a documented default, not a certainty.** The authors' text reads "All
  signal are represented as 32 bits floating point numbers at the scale 1e-4V: so if the signal is in V it
  should be multiplied by 1000 before feeding it to the neural network". The two halves disagree: a 1e-4 V
  scale would mean stored value x 0.1 = mV, whereas "V x 1000" means the stored value *is* mV. The second
  reading is the one the authors' own models and the PhysioNet Challenge 2025 conversion of this very release
  (``prepare_code15_data.py``: ``units="mV"``, gain 1000 applied to the stored floats) use, and it gives
  physiological amplitudes (the 99th percentile of |x| of the CODE-15% fixtures is 1.3-2.5 mV, typical
  of 12-lead QRS complexes); the 1e-4 V reading would give 0.13-0.25 mV, too small for a QRS. So the stored
  value is taken as mV: ``signal_mV = stored * scale_mv`` with ``scale_mv=1.0``. CODE amplitudes run somewhat
  larger than those of other mV sources; pass ``scale_mv=0.1`` to follow the literal "1e-4 V" reading.

Reference scheme (how a catalogue row names one exam)
-----------------------------------------------------
The reader registry routes a path by its suffix, and ``"exams_part0.hdf5::12345"`` has the suffix
``".hdf5::12345"``, which no reader can claim. A catalogue therefore names an exam as a *member path* of its
HDF5 file with the suffix ``.code15``::

    /data/code15/exams_part0.hdf5/12345.code15     ->  exam 12345 inside /data/code15/exams_part0.hdf5

(a virtual path: the parent is the HDF5 file, the stem the exam id). ``read_ecg(ref)`` routes it to the
``code15`` reader. A whole file can be read too: ``read_ecg("exams_part0.hdf5", exam_id=12345)`` or
``index=0``. Age and sex come from ``exams.csv`` in the HDF5 file's folder, when present.

Cite Ribeiro et al., Nat Commun 11, 1760 (2020) and the CODE-15% Zenodo record when using the data.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..ecg import Ecg, check_recorded_signal
from ..exceptions import (
    ConfigError,
    CorruptRecordError,
    EcglensError,
    SignalQualityError,
    SignalQualityWarning,
    UnsupportedFormatError,
)
from ..leads import CANONICAL_LEADS
from .metadata import parse_age, parse_bool, parse_id
from .registry import register_reader

__all__ = [
    "CODE15_FS",
    "CODE15_LEADS",
    "DEFAULT_SCALE_MV",
    "LABEL_COLUMNS",
    "REFERENCE_SUFFIX",
    "code15_catalogue",
    "exam_reference",
    "iter_code15_hdf5",
    "parse_exam_reference",
    "read_code15_exam",
]

CODE15_FS = 400.0
#: lead order of the ``tracings`` last axis (DI, DII, DIII, AVR, AVL, AVF, V1-V6)
CODE15_LEADS: tuple[str, ...] = CANONICAL_LEADS
#: stored value x DEFAULT_SCALE_MV = mV (see the module docstring)
DEFAULT_SCALE_MV = 1.0
#: the six abnormalities annotated in exams.csv
LABEL_COLUMNS: tuple[str, ...] = ("1dAVb", "RBBB", "LBBB", "SB", "ST", "AF")
REFERENCE_SUFFIX = ".code15"
_EXTRA_COLUMNS = ("normal_ecg", "death", "timey", "nn_predicted_age")
_HDF5_SUFFIXES = (".hdf5", ".h5")


# --------------------------------------------------------------------------- references
def exam_reference(hdf5_path: str | Path, exam_id: int) -> str:
    """The path-like reference of one exam: ``"<hdf5_path>/<exam_id>.code15"``."""
    return f"{Path(hdf5_path)}/{int(exam_id)}{REFERENCE_SUFFIX}"


def parse_exam_reference(ref: str | Path) -> tuple[Path, int]:
    """Split ``"<file.hdf5>/<exam_id>.code15"`` into the HDF5 path and the exam id."""
    ref = Path(ref)
    if ref.suffix.lower() != REFERENCE_SUFFIX or not ref.stem.isdigit():
        raise UnsupportedFormatError(
            f"{ref}: not a CODE-15% exam reference; write it as "
            f"'<exams_partN.hdf5>/<exam_id>{REFERENCE_SUFFIX}'."
        )
    return ref.parent, int(ref.stem)


def _is_tracings_file(path: Path) -> bool:
    import h5py

    if not path.is_file() or not h5py.is_hdf5(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            return "tracings" in f
    except (OSError, RuntimeError, KeyError, ValueError):
        return True  # an HDF5 file that does not open: claimed, so that reading it reports the damage


def _sniff(path: Path) -> bool:
    if path.suffix.lower() == REFERENCE_SUFFIX:
        return path.stem.isdigit() and _is_tracings_file(path.parent)
    return _is_tracings_file(path)


# --------------------------------------------------------------------------- cached look-ups
def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=64)
def _exam_index(key: tuple[str, int, int]) -> dict[int, int]:
    """exam_id -> row of one HDF5 file (cached per file version)."""
    import h5py

    with h5py.File(key[0], "r") as f:
        if "exam_id" not in f:
            return {}
        ids = np.asarray(f["exam_id"][:], dtype=np.int64)
    return {int(e): i for i, e in enumerate(ids)}


@functools.lru_cache(maxsize=4)
def _exams_table(key: tuple[str, int, int]) -> pd.DataFrame:
    """exams.csv indexed by exam_id (cached per file version)."""
    table = pd.read_csv(key[0])
    if "exam_id" not in table.columns:
        raise CorruptRecordError(f"{key[0]}: no exam_id column; use the exams.csv of the CODE-15% release.")
    return table.drop_duplicates("exam_id").set_index("exam_id")


def _exam_metadata(hdf5_path: Path, exam_id: int) -> dict[str, Any]:
    """The exams.csv row of an exam (empty when there is no exams.csv beside the file)."""
    csv = hdf5_path.parent / "exams.csv"
    if not csv.is_file():
        return {}
    table = _exams_table(_file_key(csv))
    if exam_id not in table.index:
        return {}
    return {
        k: (v.item() if isinstance(v, np.generic) else v) for k, v in table.loc[exam_id].to_dict().items()
    }


def _sex_from_is_male(value: Any) -> str | None:
    is_male = parse_bool(value)
    return None if is_male is None else ("M" if is_male else "F")


# --------------------------------------------------------------------------- reading
def _strip_padding(x: np.ndarray, ref: str) -> tuple[np.ndarray, int, int]:
    """Remove all-zero samples at both ends. x: [n_samples, n_leads]; returns (x, pad_start, pad_end)."""
    nonzero = np.flatnonzero(np.any(x != 0, axis=1))
    if nonzero.size == 0:
        raise SignalQualityError(f"{ref}: the tracing is all zeros (no recorded signal). Exclude this exam.")
    start, stop = int(nonzero[0]), int(nonzero[-1]) + 1
    return x[start:stop], start, x.shape[0] - stop


def _make_ecg(
    x: np.ndarray, hdf5_path: Path, exam_id: int, index: int, scale_mv: float, strip_padding: bool
) -> Ecg:
    """Build the Ecg of one ``tracings`` row x [n_samples, 12] (stored units)."""
    ref = exam_reference(hdf5_path, exam_id)
    if x.ndim != 2 or x.shape[1] != len(CODE15_LEADS):
        raise CorruptRecordError(f"{ref}: tracing has shape {x.shape}, expected [n_samples, 12].")
    if not np.isfinite(x).any():
        raise SignalQualityError(f"{ref}: the tracing is all NaN. Exclude this exam.")
    n_stored = x.shape[0]
    pad_start = pad_end = 0
    if strip_padding:
        x, pad_start, pad_end = _strip_padding(x, ref)
    elif not np.any(np.nan_to_num(x)):
        raise SignalQualityError(f"{ref}: the tracing is all zeros (no recorded signal). Exclude this exam.")
    row = _exam_metadata(hdf5_path, exam_id)
    meta: dict[str, Any] = {
        "format": "code15",
        "exam_id": str(exam_id),
        "patient_id": parse_id(row.get("patient_id")),
        "hdf5": str(hdf5_path),
        "index": int(index),
        "pad_start": pad_start,
        "pad_end": pad_end,
        "n_samples_stored": n_stored,
        "scale_mv": float(scale_mv),
        "labels": {c: parse_bool(row[c]) for c in LABEL_COLUMNS if c in row},
    }
    meta.update({c: row[c] for c in _EXTRA_COLUMNS if c in row})
    signal = (x.astype(np.float64) * scale_mv).T
    if not np.isfinite(signal).all():
        raise CorruptRecordError(f"{ref}: the tracing holds NaN or infinite samples; the file is damaged. "
                                 "Download it again or exclude this exam.")
    check_recorded_signal(signal, ref, "CODE-15%")
    return Ecg(
        signal=signal,
        fs=CODE15_FS,
        leads=CODE15_LEADS,
        record_id=str(exam_id),
        age=parse_age(row.get("age")),
        sex=_sex_from_is_male(row.get("is_male")),
        source=ref,
        meta=meta,
    )


def _locate(hdf5_path: Path, exam_id: int | None, index: int | None) -> tuple[int, int]:
    """Resolve (exam_id, row index) from either."""
    import h5py

    if (exam_id is None) == (index is None):
        raise ConfigError(f"{hdf5_path}: give exactly one of exam_id= or index= to pick an exam of the file.")
    if exam_id is not None:
        rows = _exam_index(_file_key(hdf5_path))
        if int(exam_id) not in rows:
            raise CorruptRecordError(
                f"{hdf5_path}: exam {exam_id} is not in this file ({len(rows)} exams). Check the trace_file "
                "column of exams.csv, or rebuild the catalogue with code15_catalogue()."
            )
        return int(exam_id), rows[int(exam_id)]
    with h5py.File(hdf5_path, "r") as f:
        n = f["tracings"].shape[0]
        if not -n <= int(index) < n:
            raise ConfigError(f"{hdf5_path}: index {index} out of range; the file has {n} exams.")
        ids = f.get("exam_id")
        row = int(index) % n
        return (int(ids[row]) if ids is not None else row), row


def read_code15_exam(
    hdf5_path: str | Path,
    exam_id: int | None = None,
    *,
    index: int | None = None,
    scale_mv: float = DEFAULT_SCALE_MV,
    strip_padding: bool = True,
) -> Ecg:
    """Read one exam of a CODE-15% HDF5 file.

    Parameters
    ----------
    hdf5_path : str or Path
        An ``exams_partN.hdf5`` file (datasets ``tracings`` [N, 4096, 12] and ``exam_id`` [N]).
    exam_id : int, optional
        The exam to read (looked up in the file's ``exam_id`` dataset) ...
    index : int, optional
        ... or its row number in ``tracings``. Give exactly one of the two.
    scale_mv : float
        mV per stored unit (default 1.0: stored values are mV; see the module docstring).
    strip_padding : bool
        Remove the zero padding at both ends (recorded in ``meta``).

    Returns
    -------
    Ecg
        ``signal`` float32 [12, n_samples] in mV at 400 Hz, canonical leads; ``age``/``sex`` and the labels
        (``meta["labels"]``) from ``exams.csv`` when it lies beside the file.
    """
    import h5py

    hdf5_path = Path(hdf5_path)
    if not _is_tracings_file(hdf5_path):
        raise UnsupportedFormatError(
            f"{hdf5_path}: not a CODE-15% HDF5 file (needs a 'tracings' dataset [N, 4096, 12]). "
            "Give one of the exams_partN.hdf5 files of the release."
        )
    exam, row = _locate(hdf5_path, exam_id, index)
    try:
        with h5py.File(hdf5_path, "r") as f:
            x = np.asarray(f["tracings"][row], dtype=np.float32)
    except (OSError, KeyError) as err:
        raise CorruptRecordError(
            f"{hdf5_path}: cannot read exam {exam} ({err}). Download the file again."
        ) from err
    return _make_ecg(x, hdf5_path, exam, row, scale_mv, strip_padding)


@register_reader(
    "code15",
    suffixes=(REFERENCE_SUFFIX, *_HDF5_SUFFIXES),
    sniff=_sniff,
    priority=5,
    description="CODE-15% HDF5 exams ('exams_partN.hdf5/<exam_id>.code15', or the .hdf5 with exam_id=)",
)
def read_code15(
    path: str | Path,
    *,
    exam_id: int | None = None,
    index: int | None = None,
    scale_mv: float = DEFAULT_SCALE_MV,
    strip_padding: bool = True,
) -> Ecg:
    """Read a CODE-15% exam from a reference ``<file.hdf5>/<exam_id>.code15`` or from a file + ``exam_id``.

    Whatever h5py raises on a damaged file becomes a :class:`~ecglens.exceptions.CorruptRecordError`.
    """
    try:
        return _read_code15(Path(path), exam_id, index, scale_mv, strip_padding)
    except EcglensError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, OverflowError) as err:
        raise CorruptRecordError(
            f"{path}: the CODE-15% HDF5 file is damaged ({type(err).__name__}: {str(err)[:200]}). "
            "Download it again."
        ) from err


def _read_code15(path: Path, exam_id: int | None, index: int | None, scale_mv: float, strip_padding: bool) -> Ecg:
    if path.suffix.lower() == REFERENCE_SUFFIX:
        hdf5_path, exam_id = parse_exam_reference(path)
        return read_code15_exam(hdf5_path, exam_id, scale_mv=scale_mv, strip_padding=strip_padding)
    if exam_id is None and index is None:
        index = _single_exam_index(path)
    return read_code15_exam(path, exam_id, index=index, scale_mv=scale_mv, strip_padding=strip_padding)


def _single_exam_index(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        n = f["tracings"].shape[0]
    if n != 1:
        raise ConfigError(
            f"{path}: holds {n} exams; choose one with read_ecg(path, exam_id=...) or index=..., or use the "
            f"reference '{path}/<exam_id>{REFERENCE_SUFFIX}' that code15_catalogue() lists."
        )
    return 0


# --------------------------------------------------------------------------- folders
def _hdf5_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted(p for s in _HDF5_SUFFIXES for p in root.glob(f"*{s}") if _is_tracings_file(p))
    if not files:
        raise UnsupportedFormatError(
            f"{root}: no CODE-15% HDF5 files (exams_partN.hdf5 with a 'tracings' dataset) found. "
            "Point root to the folder of the unpacked release."
        )
    return files


def iter_code15_hdf5(
    root: str | Path,
    *,
    scale_mv: float = DEFAULT_SCALE_MV,
    strip_padding: bool = True,
    chunk_size: int = 256,
    progress: bool = False,
    on_error: str = "warn",
) -> Iterator[Ecg]:
    """Yield every exam of every CODE-15% HDF5 file under ``root`` (or of one file), in file order.

    Parameters
    ----------
    root : str or Path
        The release folder (all ``*.hdf5`` with a ``tracings`` dataset) or one HDF5 file.
    scale_mv, strip_padding
        As in :func:`read_code15_exam`.
    chunk_size : int
        Exams read from disk at once.
    progress : bool
        Show a tqdm progress bar.
    on_error : {"warn", "raise"}
        An unusable exam (all zeros / NaN) is skipped with a :class:`SignalQualityWarning` naming it, or
        raises.

    Yields
    ------
    Ecg
        As returned by :func:`read_code15_exam`. Rows with exam id 0 (padding of the release) are skipped.
    """
    import h5py
    from tqdm.auto import tqdm

    if on_error not in {"warn", "raise"}:
        raise ConfigError(f"on_error={on_error!r}: use 'warn' or 'raise'.")
    for path in _hdf5_files(Path(root)):
        with h5py.File(path, "r") as f:
            n = f["tracings"].shape[0]
            ids = np.asarray(f["exam_id"][:], dtype=np.int64) if "exam_id" in f else np.arange(n)
            for start in tqdm(range(0, n, chunk_size), desc=path.name, disable=not progress, unit="chunk"):
                block = np.asarray(f["tracings"][start : start + chunk_size], dtype=np.float32)
                for offset, x in enumerate(block):
                    row = start + offset
                    if ids[row] == 0 and "exam_id" in f:
                        continue
                    try:
                        yield _make_ecg(x, path, int(ids[row]), row, scale_mv, strip_padding)
                    except EcglensError as err:
                        if on_error == "raise":
                            raise
                        warnings.warn(f"skipped: {err}", SignalQualityWarning, stacklevel=2)


def _trace_files_from_hdf5(root: Path) -> pd.Series:
    """exam_id -> trace_file, from the HDF5 files themselves (when exams.csv has no trace_file column)."""
    mapping = {}
    for path in _hdf5_files(root):
        for exam in _exam_index(_file_key(path)):
            if exam != 0:
                mapping.setdefault(exam, path.name)
    return pd.Series(mapping, dtype=object)


def _bool_column(values: pd.Series) -> pd.Series:
    """True/False/"True"/1/... -> 1.0/0.0/NaN."""
    return values.map(lambda v: {True: 1.0, False: 0.0}.get(parse_bool(v), np.nan)).astype(float)


def code15_catalogue(root: str | Path, only_available: bool = True) -> pd.DataFrame:
    """Index the exams of a CODE-15% release folder from ``exams.csv`` (no signal is read).

    Parameters
    ----------
    root : str or Path
        The folder holding ``exams.csv`` and the ``exams_partN.hdf5`` files (or the csv itself).
    only_available : bool
        Keep only exams whose HDF5 file is present (a partial download); how many were left out is reported
        in a warning, never silently.

    Returns
    -------
    pandas.DataFrame
        ``record_id`` (exam_id as str), ``path`` (``<root>/<trace_file>/<exam_id>.code15``, readable by
        ``read_ecg``), ``source="code15"``, ``age`` (years), ``sex`` (1 female, 0 male, from ``is_male``),
        ``patient_id`` (str), ``trace_file``, the labels ``1dAVb, RBBB, LBBB, SB, ST, AF, normal_ecg``
        (1.0/0.0/NaN), ``death`` (1.0/0.0/NaN), ``timey`` (years of follow-up) and ``nn_predicted_age``.
    """
    root = Path(root)
    csv = root if root.is_file() else root / "exams.csv"
    if not csv.is_file():
        raise UnsupportedFormatError(
            f"{csv}: not found. Point root to the unpacked CODE-15% folder that holds exams.csv and the "
            "exams_partN.hdf5 files."
        )
    folder = csv.parent.resolve()
    table = _exams_table(_file_key(csv)).reset_index()
    if "trace_file" not in table.columns:
        table["trace_file"] = table["exam_id"].map(_trace_files_from_hdf5(folder))
    out = pd.DataFrame(
        {
            "record_id": table["exam_id"].astype("int64").astype(str),
            "path": [
                exam_reference(folder / str(t), e) for t, e in zip(table["trace_file"], table["exam_id"], strict=True)
            ],
            "source": "code15",
            "age": table["age"].map(parse_age).astype(float) if "age" in table else np.nan,
            "sex": 1.0 - _bool_column(table["is_male"]) if "is_male" in table else np.nan,
            "patient_id": table["patient_id"].map(lambda v: parse_id(v) or np.nan)
            if "patient_id" in table
            else np.nan,
            "trace_file": table["trace_file"],
        }
    )
    for col in (*LABEL_COLUMNS, "normal_ecg", "death"):
        out[col] = _bool_column(table[col]) if col in table else np.nan
    for col in ("timey", "nn_predicted_age"):
        out[col] = pd.to_numeric(table[col], errors="coerce") if col in table else np.nan
    if only_available:
        present = out["trace_file"].map(lambda t: isinstance(t, str) and (folder / t).is_file())
        if not present.all():
            warnings.warn(
                f"{csv}: {int((~present).sum())} of {len(out)} exams left out because their HDF5 file "
                "is not in "
                f"{folder} (missing: {sorted(set(out.loc[~present, 'trace_file'].astype(str)))[:5]}...). "
                "Download those parts or pass only_available=False.",
                stacklevel=2,
            )
        out = out[present]
    return out.reset_index(drop=True)
