"""The training-ready cache: many ECG records -> one memory-mapped array + one metadata table.

``prepare_cache`` reads every record of a catalogue (a DataFrame with at least a ``path`` column, as returned by
:func:`ecglens.io.ptbxl.ptbxl_catalogue` or :func:`ecglens.io.wfdb.wfdb_catalogue`), brings it to one input
contract with a :class:`~ecglens.signal.transforms.Preprocess` (resample to ``fs``, crop/pad to ``n_samples``,
filter, normalise) and writes a folder::

    OUT/
      signals.npy     float32 (or float16) [n_accepted, n_leads, n_samples], opened with mmap_mode="r"
      meta.csv        row i <-> signals[i]: the catalogue's columns + record_id, source, path, age, sex, fold,
                      patient_id, fs_native, n_samples_native, n_valid, derived_leads, quality flags, warnings
      rejected.csv    the records that could not be prepared, with the reason (also in the manifest)
      manifest.json   ecglens version, created, preprocess spec, source, fingerprint, counts, rejected, timing

The folder is built in a sibling ``OUT.tmp-<pid>`` and moved into place with :func:`os.replace` only when every
file is written, so a crash (even ``kill -9``) never leaves a folder that looks complete: ``is_cache`` is false
for a leftover ``OUT.tmp-<pid>``, ``open_cache`` refuses it, and the next run removes it. Running again with the
same catalogue and preprocessing does no work ("up to date"); a different catalogue or preprocessing is refused
unless ``force=True``.

Bad records never stop the job and are never dropped silently: each one is listed in ``manifest["rejected"]``
with the reason (the message of the :class:`~ecglens.exceptions.EcglensError`, or the type and message of an
unexpected exception).

``open_cache(path)`` returns a :class:`PreparedCache` (signals opened read-only as a memory map).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._threads import limit_blas_threads
from .._version import __version__
from ..ecg import sex_to_code
from ..exceptions import ConfigError, CorruptRecordError, EcglensError
from ..io import read_ecg
from ..io.ptbxl import parse_folds
from ..jsonutil import json_ready
from ..signal.quality import assess_quality
from ..signal.transforms import Preprocess
from ._atomic import clean_leftovers, leftover_of, move_into_place, shrink_npy, temp_path

log = logging.getLogger(__name__)

__all__ = ["CACHE_FILES", "PreparedCache", "catalogue_fingerprint", "is_cache", "open_cache", "prepare_cache",
           "write_cache"]

#: the files every complete cache folder holds
CACHE_FILES: tuple[str, ...] = ("signals.npy", "meta.csv", "manifest.json")
#: supported storage dtypes of ``signals.npy``
_DTYPES: dict[str, np.dtype] = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}
#: columns every ``meta.csv`` has (NaN where unknown)
_BASE_COLUMNS: tuple[str, ...] = ("record_id", "source", "path", "age", "sex", "fold", "patient_id")
#: columns added by ``prepare`` (per record, from the read ECG)
_INFO_COLUMNS: tuple[str, ...] = ("fs_native", "n_samples_native", "n_leads_native", "n_valid", "derived_leads",
                                  "quality_flags", "warnings")
_STRING_COLUMNS: tuple[str, ...] = ("record_id", "source", "path", "patient_id", "exam_id", "derived_leads",
                                    "quality_flags", "warnings")


# ---------------------------------------------------------------------------------------------- the cache object
@dataclass(frozen=True, eq=False)
class PreparedCache:
    """A complete cache folder, opened.

    Attributes
    ----------
    path : Path
        The cache folder.
    signals : np.memmap, shape (n_records, n_leads, n_samples)
        Preprocessed signals (float32 or float16), read-only memory map; row ``i`` belongs to ``meta.iloc[i]``.
    meta : pandas.DataFrame
        One row per signal (``record_id``, ``source``, ``path``, ``age``, ``sex`` (1 female / 0 male / NaN),
        ``fold``, ``patient_id``, label columns, ``fs_native``, ``n_samples_native``, ``n_valid``, ...).
    manifest : dict
        The content of ``manifest.json`` (preprocess spec, counts, rejected records, timing).
    preprocess : Preprocess
        The preprocessing the signals went through (``Preprocess.from_dict(manifest["preprocess"])``).
    """

    path: Path
    signals: np.ndarray = field(repr=False)
    meta: pd.DataFrame = field(repr=False)
    manifest: dict[str, Any] = field(repr=False)
    preprocess: Preprocess = field(repr=False)

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    def __repr__(self) -> str:
        return (f"PreparedCache(path={str(self.path)!r}, signals={self.signals.dtype}{list(self.signals.shape)}, "
                f"source={self.manifest.get('source', '')!r}, rejected={self.manifest.get('n_rejected', 0)})")

    @property
    def fs(self) -> float:
        """Sampling rate of the cached signals in Hz."""
        return float(self.manifest["fs"])

    @property
    def leads(self) -> tuple[str, ...]:
        """Lead names, one per row of ``signals[i]``."""
        return tuple(self.manifest["leads"])

    def indices(
        self,
        folds: int | str | Iterable[int] | None = None,
        query: Mapping[str, Any] | Callable[[pd.DataFrame], Any] | None = None,
    ) -> np.ndarray:
        """Row indices (sorted, int64) of the records in ``folds`` that match ``query``.

        Parameters
        ----------
        folds : int, str or iterable of int, optional
            Keep rows whose ``fold`` is one of these (``9``, ``[1, 2, 3]``, ``"1-8"``, ``"1-8,10"``).
            ``None`` keeps every fold (and rows without a fold).
        query : mapping or callable, optional
            ``{column: value}`` or ``{column: [values]}`` to keep rows whose column equals (one of) the value(s),
            or ``fn(meta) -> boolean mask``.

        Returns
        -------
        np.ndarray of int64
            Indices into ``signals`` / ``meta``.
        """
        keep = np.ones(len(self.meta), dtype=bool)
        if folds is not None:
            if "fold" not in self.meta or self.meta["fold"].isna().all():
                raise ConfigError(f"the cache at {self.path} has no folds; select rows with query= instead.")
            keep &= self.meta["fold"].isin(parse_folds(folds)).to_numpy()
        if query is not None:
            keep &= _query_mask(self.meta, query)
        return np.flatnonzero(keep).astype(np.int64)

    def summary(self) -> dict[str, Any]:
        """A short description for ``ecglens info`` (counts, shape, preprocessing, folds, labels)."""
        return cache_summary(self)


def _query_mask(meta: pd.DataFrame, query: Mapping[str, Any] | Callable[[pd.DataFrame], Any]) -> np.ndarray:
    """Boolean mask of the rows of ``meta`` that match ``query`` (a mapping or a callable)."""
    if callable(query):
        mask = np.asarray(query(meta), dtype=bool)
        if mask.shape != (len(meta),):
            raise ConfigError(f"query(meta) must return one boolean per row ({len(meta)}), got {mask.shape}.")
        return mask
    mask = np.ones(len(meta), dtype=bool)
    for column, value in query.items():
        if column not in meta:
            raise ConfigError(f"no column {column!r} in the cache metadata; columns are {list(meta.columns)}.")
        values = list(value) if isinstance(value, (list, tuple, set, np.ndarray)) else [value]
        mask &= meta[column].isin(values).to_numpy()
    return mask


# ---------------------------------------------------------------------------------------------- fingerprint
def catalogue_fingerprint(catalogue: pd.DataFrame, preprocess_spec: Mapping[str, Any], dtype: str = "float32",
                          source: str = "") -> str:
    """SHA-256 of the records (ids + paths + every catalogue column), the preprocessing spec and the dtype.

    Two runs with the same fingerprint produce the same cache, so the second can be skipped.
    """
    h = hashlib.sha256()
    spec = json.dumps({"preprocess": dict(preprocess_spec), "dtype": dtype, "source": source}, sort_keys=True,
                      default=str)
    h.update(spec.encode())
    h.update(json.dumps(list(map(str, catalogue.columns))).encode())
    for rid, path in zip(_record_ids(catalogue), catalogue["path"].astype(str), strict=True):
        h.update(f"{rid}\x1f{path}\x1e".encode())
    h.update(pd.util.hash_pandas_object(catalogue.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()


def _record_ids(catalogue: pd.DataFrame) -> list[str]:
    """``record_id`` column as strings, or the file stems when the catalogue has none."""
    if "record_id" in catalogue:
        return catalogue["record_id"].astype(str).tolist()
    return [Path(str(p)).stem for p in catalogue["path"]]


# ---------------------------------------------------------------------------------------------- the worker
@dataclass
class _Chunk:
    """What a worker returns for one chunk of records (arrays batched: one pickle per chunk)."""

    start: int
    accepted: list[int]
    signals: np.ndarray  # [k, n_leads, n_samples] in the storage dtype
    info: list[dict[str, Any]]
    rejected: list[tuple[int, str, str]]  # (position, error type, reason)


_STATE: dict[str, Any] = {}


def _init_worker(preprocess: Preprocess, dtype: str) -> None:
    """Pool initializer: keep the preprocessing and the dtype in the worker (sent once, not per record); one BLAS
    thread (one worker per core already)."""
    limit_blas_threads(1)
    _STATE["preprocess"] = preprocess
    _STATE["dtype"] = _DTYPES[dtype]


def _quality_flags(ecg: Any) -> str:
    """The quality findings of ``ecg`` at its native fs (``"flat:V3;noisy:II"``; empty when clean)."""
    return ";".join(assess_quality(ecg).flags)


def _prepare_one(path: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Read and preprocess one record; returns (signal [n_leads, n_samples], info). Raises on bad input."""
    preprocess, dtype = _STATE["preprocess"], _STATE["dtype"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ecg = read_ecg(path)
        x, mask = preprocess.apply_with_mask(ecg)
        flags = _quality_flags(ecg)
    x = np.asarray(x)
    expected = (len(preprocess.leads), int(preprocess.n_samples))
    if x.shape != expected:
        raise EcglensError(f"preprocessing returned shape {x.shape}, expected {expected}; this is a bug in the "
                           "Preprocess chain, please report it with this record.")
    x = x.astype(dtype, copy=False)
    if not np.isfinite(x).all():
        raise EcglensError("non-finite values (NaN/inf) after preprocessing"
                           + (" (too large for float16; prepare with dtype='float32')" if dtype == np.float16
                              else "") + "; inspect the record with `ecglens info`.")
    mask = np.asarray(mask, dtype=bool)
    n_valid = int(mask.any(axis=0).sum()) if mask.ndim == 2 else int(mask.sum())
    info = {
        "fs_native": ecg.fs, "n_samples_native": ecg.n_samples, "n_leads_native": ecg.n_leads,
        "n_valid": n_valid, "derived_leads": ",".join(ecg.derived_leads), "quality_flags": flags,
        "warnings": "; ".join(dict.fromkeys(str(w.message) for w in caught)),
        "_age": ecg.age, "_sex": sex_to_code(ecg.sex),
    }
    return x, info


def _process_chunk(task: tuple[int, list[str]]) -> _Chunk:
    """Worker: read + preprocess every record of one chunk; never raises for a bad record."""
    start, paths = task
    accepted: list[int] = []
    arrays: list[np.ndarray] = []
    info: list[dict[str, Any]] = []
    rejected: list[tuple[int, str, str]] = []
    for i, path in enumerate(paths):
        try:
            x, rec_info = _prepare_one(path)
        except EcglensError as err:
            rejected.append((start + i, type(err).__name__, str(err)))
            continue
        except Exception as err:  # noqa: BLE001 - a batch job reports unexpected errors and goes on
            rejected.append((start + i, type(err).__name__, f"unexpected {type(err).__name__}: {err}"))
            continue
        accepted.append(start + i)
        arrays.append(x)
        info.append(rec_info)
    shape = (len(_STATE["preprocess"].leads), int(_STATE["preprocess"].n_samples))
    stacked = np.stack(arrays) if arrays else np.empty((0, *shape), dtype=_STATE["dtype"])
    return _Chunk(start, accepted, stacked, info, rejected)


@contextmanager
def _chunk_stream(tasks: list[tuple[int, list[str]]], preprocess: Preprocess, dtype: str,
                  workers: int) -> Iterator[Iterator[_Chunk]]:
    """Context giving the processed chunks in order, computed on ``workers`` processes.

    With ``workers <= 1`` (or a single chunk) the chunks are computed lazily in this process. The pool is
    started on entering the context, before any progress-bar thread exists.
    """
    if workers <= 1 or len(tasks) <= 1:
        _init_worker(preprocess, dtype)
        yield (_process_chunk(task) for task in tasks)
        return
    # fork on Linux: workers start in milliseconds with ecglens already imported; spawn elsewhere (macOS)
    ctx = mp.get_context("fork") if sys.platform.startswith("linux") else mp.get_context("spawn")
    with ctx.Pool(processes=workers, initializer=_init_worker, initargs=(preprocess, dtype)) as pool:
        yield pool.imap(_process_chunk, tasks, chunksize=1)


# ---------------------------------------------------------------------------------------------- prepare
def prepare_cache(
    catalogue: pd.DataFrame,
    out: str | os.PathLike[str],
    preprocess: Preprocess,
    workers: int = 2,
    source: str = "",
    progress: bool = True,
    force: bool = False,
    dtype: str = "float32",
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """Read, preprocess and store every record of ``catalogue`` in a cache folder ``out``.

    Parameters
    ----------
    catalogue : pandas.DataFrame
        One row per record; needs ``path`` (anything :func:`ecglens.io.read_ecg` reads), usually also
        ``record_id``, ``source``, ``age`` (years), ``sex`` (1 female / 0 male / NaN), ``fold``, ``patient_id``
        and label columns, all copied to ``meta.csv``.
    out : path
        The cache folder to create (its parent is created when missing).
    preprocess : Preprocess
        The preprocessing chain (``fs``, ``seconds``, filters, ...): every stored signal is
        ``preprocess.apply(read_ecg(path))``, shape ``[len(preprocess.leads), preprocess.n_samples]``.
    workers : int
        Worker processes (``1``: in this process).
    source : str
        Dataset name stored in the manifest and used for rows whose catalogue ``source`` is empty.
    progress : bool
        Show a progress bar (on stderr). "Up to date" (nothing to do) is logged at INFO level.
    force : bool
        Rebuild ``out`` even when it holds a cache: one built from a different catalogue or preprocessing
        (refused otherwise), or an up-to-date one (e.g. after the files changed on disk under the same paths).
    dtype : {"float32", "float16"}
        Storage type of ``signals.npy``.
    chunk_size : int, optional
        Records per worker task (default: up to 64, smaller for small catalogues).

    Returns
    -------
    dict
        The manifest (also in ``out/manifest.json``): counts, rejected records with reasons, timing. When the
        cache was already up to date, the existing manifest with ``"up_to_date": True`` added.

    Raises
    ------
    ConfigError
        Bad arguments, an empty catalogue, or ``out`` holding a different cache (without ``force``) or
        something that is not a cache.
    EcglensError
        When not a single record could be prepared (the message gives the first reasons).
    """
    out = Path(out)
    catalogue = _check_catalogue(catalogue)
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}.")
    spec = preprocess.to_dict()
    fingerprint = catalogue_fingerprint(catalogue, spec, dtype, source)
    clean_leftovers(out)
    existing = _existing_manifest(out)
    if not force and existing is not None and existing.get("fingerprint") == fingerprint and is_cache(out):
        log.info("%s: up to date (%d records); nothing to do.", out, existing["n_accepted"])
        return {**existing, "up_to_date": True}
    if existing is not None and not force:
        raise ConfigError(f"{out} holds a cache built from a different catalogue or preprocessing, or an "
                          f"incomplete one (created {existing.get('created', '?')}); pass force=True (--force) "
                          "to rebuild it, or choose another output folder.")
    tmp = temp_path(out)
    try:
        manifest = _build(catalogue, tmp, preprocess, spec, fingerprint, workers, source, progress, dtype,
                          chunk_size)
        move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _check_catalogue(catalogue: pd.DataFrame) -> pd.DataFrame:
    """Validate the catalogue; returns it with a fresh 0..n-1 index and string ``path``/``record_id``."""
    if not isinstance(catalogue, pd.DataFrame) or "path" not in catalogue:
        raise ConfigError("the catalogue must be a pandas DataFrame with a 'path' column (one row per record); "
                          "build one with ecglens.io.ptbxl.ptbxl_catalogue or ecglens.io.wfdb.wfdb_catalogue.")
    if len(catalogue) == 0:
        raise ConfigError("the catalogue is empty: no records to prepare. Check the data folder and the folds.")
    catalogue = catalogue.reset_index(drop=True).copy()
    catalogue["path"] = catalogue["path"].astype(str)
    catalogue["record_id"] = _record_ids(catalogue)
    return catalogue


def _existing_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of the cache at ``out``; None when ``out`` does not exist or is an empty folder."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder; choose another output path.")
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            return {"fingerprint": None, "created": "unreadable manifest"}
    if any(out.iterdir()):
        raise ConfigError(f"{out} exists, is not empty and is not an ecglens cache (no manifest.json); "
                          "choose another output folder or delete it.")
    return None


def _default_chunk_size(n: int, workers: int) -> int:
    """Up to 64 records per task, and at least ~4 tasks per worker for small catalogues."""
    return int(max(1, min(64, math.ceil(n / max(1, 4 * workers)))))


def _build(catalogue: pd.DataFrame, tmp: Path, preprocess: Preprocess, spec: dict[str, Any], fingerprint: str,
           workers: int, source: str, progress: bool, dtype: str, chunk_size: int | None) -> dict[str, Any]:
    """Write signals.npy, meta.csv, rejected.csv and manifest.json into ``tmp``; returns the manifest."""
    from tqdm.auto import tqdm

    started = time.perf_counter()
    tmp.mkdir(parents=True, exist_ok=False)
    n = len(catalogue)
    shape = (n, len(preprocess.leads), int(preprocess.n_samples))
    signals = np.lib.format.open_memmap(tmp / "signals.npy", mode="w+", dtype=_DTYPES[dtype], shape=shape)
    size = chunk_size or _default_chunk_size(n, workers)
    paths = catalogue["path"].tolist()
    tasks = [(s, paths[s:s + size]) for s in range(0, n, size)]
    accepted: list[int] = []
    info: list[dict[str, Any]] = []
    rejected: list[tuple[int, str, str]] = []
    with _chunk_stream(tasks, preprocess, dtype, workers) as chunks, \
            tqdm(total=n, unit="rec", desc=f"prepare {source or 'records'}", disable=not progress) as bar:
        for chunk in chunks:
            k = len(chunk.accepted)
            signals[len(accepted):len(accepted) + k] = chunk.signals
            accepted.extend(chunk.accepted)
            info.extend(chunk.info)
            rejected.extend(chunk.rejected)
            bar.update(len(chunk.accepted) + len(chunk.rejected))
            bar.set_postfix(rejected=len(rejected), refresh=False)
    signals.flush()
    del signals
    if not accepted:
        raise EcglensError(_nothing_accepted_message(catalogue, rejected))
    if len(accepted) < n:
        shrink_npy(tmp / "signals.npy", len(accepted))
    rejected_rows = _rejected_rows(catalogue, rejected)
    manifest = _manifest(spec, fingerprint, source, preprocess, dtype, n, len(accepted), rejected_rows,
                         time.perf_counter() - started, workers)
    return _write_tables(tmp, _meta_table(catalogue, accepted, info, source), manifest)


def _write_tables(tmp: Path, meta: pd.DataFrame, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``meta.csv``, ``rejected.csv`` (from ``manifest["rejected"]``) and ``manifest.json`` into ``tmp``."""
    meta.to_csv(tmp / "meta.csv", index=False)
    pd.DataFrame(manifest["rejected"], columns=["record", "path", "error", "reason"]).to_csv(
        tmp / "rejected.csv", index=False)
    (tmp / "manifest.json").write_text(json.dumps(json_ready(manifest, default=str), indent=2, allow_nan=False))
    return manifest


def write_cache(out: str | os.PathLike[str], signals: np.ndarray, meta: pd.DataFrame, preprocess: Preprocess,
                *, source: str = "", extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write signals already in memory (simulated, or prepared elsewhere) as a cache folder, atomically.

    Parameters
    ----------
    out : path
        The cache folder; an existing cache there is replaced (a folder that is not a cache is refused).
    signals : numpy.ndarray
        float [n_records, n_leads, n_samples], already at the contract of ``preprocess`` (``preprocess.fs``
        Hz, ``preprocess.n_samples`` samples, the leads of ``preprocess.leads``); stored as float32.
    meta : pandas.DataFrame
        One row per record (row i <-> ``signals[i]``) with a ``record_id`` column; missing base columns
        (``source, path, age, sex, fold, patient_id``) are added empty.
    preprocess : Preprocess
        The preprocessing the signals went through (stored in the manifest, as by :func:`prepare_cache`).
    source : str
        Dataset name stored in the manifest.
    extra : mapping, optional
        More manifest entries (e.g. ``{"synthetic": spec}`` to recognise the cache later).

    Returns
    -------
    dict
        The manifest (also ``out/manifest.json``), read back by :func:`open_cache`.
    """
    out, started = Path(out), time.perf_counter()
    signals = np.ascontiguousarray(signals, dtype=np.float32)
    if signals.ndim != 3 or signals.shape[1:] != (len(preprocess.leads), int(preprocess.n_samples)) \
            or len(meta) != len(signals) or "record_id" not in meta:
        raise ConfigError(f"write_cache needs signals [n, {len(preprocess.leads)} leads, {preprocess.n_samples} "
                          f"samples] and a meta table of n rows with a record_id column; got signals "
                          f"{signals.shape} and {len(meta)} rows. Bring the signals to the Preprocess contract.")
    meta = meta.reset_index(drop=True).assign(**{c: np.nan for c in _BASE_COLUMNS if c not in meta})
    spec = preprocess.to_dict()
    digest = hashlib.sha256(catalogue_fingerprint(meta, spec, "float32", source).encode() + signals.tobytes())
    clean_leftovers(out)
    _existing_manifest(out)  # refuses a folder that is not a cache
    tmp = temp_path(out)
    try:
        tmp.mkdir(parents=True)
        np.save(tmp / "signals.npy", signals)
        manifest = _manifest(spec, digest.hexdigest(), source, preprocess, "float32", len(meta), len(meta), [],
                             time.perf_counter() - started, 1)
        _write_tables(tmp, meta, {**manifest, **dict(extra or {})})
        move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**manifest, **dict(extra or {})}


def _nothing_accepted_message(catalogue: pd.DataFrame, rejected: list[tuple[int, str, str]]) -> str:
    """The error text when every record was rejected: counts plus the first reasons."""
    first = "; ".join(f"{catalogue['record_id'].iat[i]}: {reason}" for i, _, reason in rejected[:3])
    return (f"none of the {len(catalogue)} records could be prepared, so no cache was written. First reasons: "
            f"{first}. Check that the folder holds readable ECG records (`ecglens info FILE` shows what one "
            "record looks like).")


def _rejected_rows(catalogue: pd.DataFrame, rejected: list[tuple[int, str, str]]) -> list[dict[str, str]]:
    """``[{record, path, error, reason}]`` for the manifest and ``rejected.csv``."""
    return [{"record": str(catalogue["record_id"].iat[i]), "path": str(catalogue["path"].iat[i]), "error": kind,
             "reason": reason} for i, kind, reason in sorted(rejected)]


def _meta_table(catalogue: pd.DataFrame, accepted: list[int], info: list[dict[str, Any]],
                source: str) -> pd.DataFrame:
    """Row i of the result describes signals[i]: catalogue columns + base columns + per-record info."""
    meta = catalogue.iloc[accepted].reset_index(drop=True)
    extra = pd.DataFrame(info, index=meta.index)
    for column in _BASE_COLUMNS:
        if column not in meta:
            meta[column] = np.nan
    if source:
        meta["source"] = meta["source"].where(meta["source"].notna() & (meta["source"].astype(str) != ""), source)
    meta["age"] = pd.to_numeric(meta["age"], errors="coerce").fillna(extra["_age"].astype(float))
    meta["sex"] = pd.to_numeric(meta["sex"], errors="coerce").fillna(extra["_sex"].astype(float))
    for column in _INFO_COLUMNS:
        meta[column] = extra[column]
    front = [c for c in _BASE_COLUMNS] + [c for c in catalogue.columns if c not in _BASE_COLUMNS]
    return meta[front + [c for c in _INFO_COLUMNS if c not in front]]


def _manifest(spec: dict[str, Any], fingerprint: str, source: str, preprocess: Preprocess, dtype: str, n: int,
              n_accepted: int, rejected: list[dict[str, str]], elapsed: float, workers: int) -> dict[str, Any]:
    """The content of ``manifest.json``."""

    return {
        "format": "ecglens-cache/1",
        "ecglens_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "fingerprint": fingerprint,
        "preprocess": spec,
        "fs": float(preprocess.fs),
        "n_samples": int(preprocess.n_samples),
        "leads": list(preprocess.leads),
        "dtype": dtype,
        "shape": [n_accepted, len(preprocess.leads), int(preprocess.n_samples)],
        "n_records": n,
        "n_accepted": n_accepted,
        "n_rejected": len(rejected),
        "rejected": rejected,
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(n / elapsed, 1) if elapsed > 0 else None,
        "workers": workers,
        "files": list(CACHE_FILES) + ["rejected.csv"],
    }


# ---------------------------------------------------------------------------------------------- open
def is_cache(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding every file of a cache (``signals.npy``, ``meta.csv``, manifest)
    and is not the leftover ``OUT.tmp-<pid>`` / ``OUT.old-<pid>`` folder of an interrupted build."""
    path = Path(path)
    return path.is_dir() and leftover_of(path) is None and all((path / name).is_file() for name in CACHE_FILES)


def open_cache(path: str | os.PathLike[str]) -> PreparedCache:
    """Open a cache folder written by :func:`prepare_cache`.

    Parameters
    ----------
    path : path
        The cache folder.

    Returns
    -------
    PreparedCache
        ``signals`` as a read-only memory map ``[n, n_leads, n_samples]``, ``meta``, ``manifest``,
        ``preprocess``.

    Raises
    ------
    ConfigError
        ``path`` does not exist.
    CorruptRecordError
        ``path`` is not a complete cache (a file is missing, unreadable, or the files disagree), or is the
        leftover ``OUT.tmp-<pid>`` folder of an interrupted build.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no cache at {path}; create one with `ecglens prepare ptbxl|wfdb DIR --out {path}`.")
    leftover = leftover_of(path)
    if leftover is not None:
        raise CorruptRecordError(
            f"{path} is the temporary folder of an interrupted cache build (process {leftover[1]}), not a cache. "
            f"Open {path.parent / leftover[0]} instead, or run the same `ecglens prepare ... --out "
            f"{path.parent / leftover[0]}` again: it finishes the cache and removes this folder.")
    missing = [name for name in CACHE_FILES if not (path / name).is_file()]
    if missing:
        raise CorruptRecordError(f"{path} is not a complete ecglens cache (missing {', '.join(missing)}); "
                                 "prepare it again with `ecglens prepare ... --out` (add --force to overwrite).")
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        signals = np.load(path / "signals.npy", mmap_mode="r")
        meta = pd.read_csv(path / "meta.csv", dtype={c: str for c in _STRING_COLUMNS}, low_memory=False)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise CorruptRecordError(f"{path}: cannot read the cache ({err}); prepare it again with --force.") from err
    for column in ("derived_leads", "quality_flags", "warnings"):
        if column in meta:
            meta[column] = meta[column].fillna("")
    _check_consistent(path, signals, meta, manifest)
    return PreparedCache(path=path, signals=signals, meta=meta, manifest=manifest,
                         preprocess=Preprocess.from_dict(dict(manifest["preprocess"])))


def _check_consistent(path: Path, signals: np.ndarray, meta: pd.DataFrame, manifest: dict[str, Any]) -> None:
    """Raise CorruptRecordError when signals, meta and manifest disagree."""
    expected = tuple(manifest.get("shape", ()))
    problems = []
    if signals.ndim != 3:
        problems.append(f"signals.npy has shape {signals.shape}, expected 3 dimensions")
    if expected and tuple(signals.shape) != expected:
        problems.append(f"signals.npy has shape {signals.shape}, the manifest says {expected}")
    if len(meta) != signals.shape[0]:
        problems.append(f"meta.csv has {len(meta)} rows for {signals.shape[0]} signals")
    if "preprocess" not in manifest:
        problems.append("manifest.json has no preprocess spec")
    if problems:
        raise CorruptRecordError(f"{path} is not a consistent ecglens cache: {'; '.join(problems)}. Prepare it "
                                 "again with --force.")


# ---------------------------------------------------------------------------------------------- summary
def _label_columns(meta: pd.DataFrame) -> list[str]:
    """Columns holding 0/1 labels (not the bookkeeping columns)."""
    skip = set(_BASE_COLUMNS) | set(_INFO_COLUMNS)
    out = []
    for column in meta.columns:
        if column in skip or not pd.api.types.is_numeric_dtype(meta[column]):
            continue
        values = set(meta[column].dropna().unique().tolist())
        if values and values <= {0, 1} and len(values) == 2:
            out.append(column)
    return out


def cache_summary(cache: PreparedCache) -> dict[str, Any]:
    """A flat summary of a cache: counts, shape, dtype, size, preprocessing, folds, ages, sexes, labels."""
    meta, man = cache.meta, cache.manifest
    folds: Sequence[Any] = sorted(meta["fold"].dropna().unique().tolist()) if "fold" in meta else []
    labels = {c: round(float(meta[c].mean()), 4) for c in _label_columns(meta)}
    age = pd.to_numeric(meta.get("age"), errors="coerce") if "age" in meta else pd.Series(dtype=float)
    sex = pd.to_numeric(meta.get("sex"), errors="coerce") if "sex" in meta else pd.Series(dtype=float)
    return {
        "cache": str(cache.path),
        "source": man.get("source", ""),
        "created": man.get("created", ""),
        "ecglens_version": man.get("ecglens_version", ""),
        "n_accepted": man.get("n_accepted", len(cache)),
        "n_rejected": man.get("n_rejected", 0),
        "shape": list(cache.signals.shape),
        "dtype": str(cache.signals.dtype),
        "size_mb": round((cache.path / "signals.npy").stat().st_size / 1e6, 1),
        "fs_hz": man.get("fs"),
        "n_samples": man.get("n_samples"),
        "leads": ",".join(cache.leads),
        "preprocess": man.get("preprocess"),
        "preprocess_text": cache.preprocess.describe() if hasattr(cache.preprocess, "describe") else "",
        "folds": {str(int(f)) if float(f).is_integer() else str(f): int((meta["fold"] == f).sum()) for f in folds},
        "age_mean": round(float(age.mean()), 2) if age.notna().any() else None,
        "age_known": int(age.notna().sum()),
        "female_fraction": round(float(sex.mean()), 4) if sex.notna().any() else None,
        "labels_prevalence": labels,
        "elapsed_s": man.get("elapsed_s"),
        "records_per_s": man.get("records_per_s"),
    }
