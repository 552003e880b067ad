"""The reading side of batch prediction: worker processes read and harmonise chunks of records, in order.

Each worker holds the :class:`~ecglens.predict.harmonise.InputAdapter` (set once by the pool initialiser);
a chunk comes back as its records' :class:`PipelineItem` (errors included) and their windows stacked
``[n_windows, L, T]``. A bad file never raises: it becomes an item with an error.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from ..exceptions import EcglensError
from .harmonise import InputAdapter, recorded_fields
from .records import archive_names, read_record

__all__ = ["PipelineItem", "chunk_stream", "keep_freed_memory"]


_WORKER: dict[str, Any] = {}


@dataclass
class PipelineItem:
    """A record on its way through the batch pipeline (no signal): its name, its error or its windows' flags."""

    index: int
    record: str
    error: str | None = None
    n_windows: int = 0
    flags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    recorded: dict[str, Any] | None = None


#: glibc ``mallopt`` parameters and the values a reading worker sets (bytes)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_WORKER_MMAP_THRESHOLD = 256 * 2**20
_WORKER_TRIM_THRESHOLD = 512 * 2**20


def keep_freed_memory() -> bool:
    """In this process (glibc only), serve arrays up to 256 MB from the heap and keep freed memory for reuse.

    By default glibc maps each large block (a record's float64 copies, a chunk's stacked windows) afresh with
    ``mmap`` and unmaps it when freed, so every array costs page faults: on 2 cores that was a fifth of the
    batch job's CPU (2.8 s of system time for 2,000 PTB-XL records; 0.7 s with this). Meant for the
    short-lived reading workers, whose memory is returned when they exit. Returns whether it was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _WORKER_MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _WORKER_TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, ...): leave the allocator alone
        return False


def _init_worker(adapter: InputAdapter, read_kwargs: Mapping[str, Any] | None, pooled: bool = False) -> None:
    if pooled:
        keep_freed_memory()
    _WORKER["adapter"] = adapter
    _WORKER["read_kwargs"] = dict(read_kwargs or {})


def _error_text(err: BaseException) -> str:
    """The reason of a failed record, naming files in archives by their archive path."""
    return archive_names(str(err) if isinstance(err, EcglensError) else f"{type(err).__name__}: {err}")


def _prepare_chunk(chunk: Sequence[tuple[int, str, str]]) -> tuple[list[PipelineItem], np.ndarray | None]:
    """Worker: read a chunk of records, then harmonise them together (:meth:`InputAdapter.prepare_many`);
    never raises for a bad record."""
    adapter: InputAdapter = _WORKER["adapter"]
    read: list[tuple[int, str, Any]] = []
    for index, record, path in chunk:
        try:
            read.append((index, record, read_record(path, _WORKER["read_kwargs"])))
        except Exception as err:  # noqa: BLE001 - a batch job reports every failure as a row and goes on
            read.append((index, record, err))
    ecgs = [(i, ecg) for i, (_, _, ecg) in enumerate(read) if not isinstance(ecg, Exception)]
    prepared = dict(zip((i for i, _ in ecgs), adapter.prepare_many([e for _, e in ecgs],
                                                                   [read[i][1] for i, _ in ecgs]), strict=True))
    items, arrays = [], []
    for pos, (index, record, ecg) in enumerate(read):
        result = prepared.get(pos, ecg)
        if isinstance(result, Exception):
            recorded = recorded_fields(None if isinstance(ecg, Exception) else ecg)
            items.append(PipelineItem(index, record, error=_error_text(result), recorded=recorded))
            continue
        items.append(PipelineItem(index, record, None, result.n_windows, result.flags, result.warnings,
                                  result.recorded))
        arrays.append(result.windows)
    return items, (np.concatenate(arrays) if arrays else None)


#: chunks submitted and not yet consumed, per reading worker. The model runs in bursts in the main process; with
#: too few chunks queued the readers wait for it. 10,000 PTB-XL records, ``age-sex-fast`` int8, 2 workers on 2 cores
#: (2026-12-06, beside a training run): 5 in flight (the earlier 2 per worker + 1) 14.9-15.1 s, 8 13.3-14.3 s,
#: 16 13.3-14.3 s, 32 14.0-14.5 s. Memory: a chunk of 32 records of three 4-s windows is 1.8 MB.
IN_FLIGHT_PER_WORKER = 8


@contextmanager
def chunk_stream(chunks: list[list[tuple[int, str, str]]], adapter: InputAdapter,
                  read_kwargs: Mapping[str, Any] | None, workers: int,
                  timeout: float) -> Iterator[Iterator[tuple[list[PipelineItem], np.ndarray | None]]]:
    """Context giving the prepared chunks in order, computed by ``workers`` processes.

    The pool is started on entering the context (before any progress-bar thread exists); with ``workers <= 1``
    (or one chunk) the chunks are prepared lazily in this process.
    """
    if workers <= 1 or len(chunks) <= 1:
        _init_worker(adapter, read_kwargs)
        yield (_prepare_chunk(c) for c in chunks)
        return
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(processes=workers, initializer=_init_worker, initargs=(adapter, read_kwargs, True)) as pool:
        yield _ordered_results(pool, chunks, IN_FLIGHT_PER_WORKER * workers, timeout)


def _ordered_results(pool: Any, chunks: list[list[tuple[int, str, str]]], in_flight: int,
                     timeout: float) -> Iterator[tuple[list[PipelineItem], np.ndarray | None]]:
    """Chunk results in submission order, with at most ``in_flight`` chunks submitted and not yet consumed."""
    todo = iter(chunks)
    pending = deque((c, pool.apply_async(_prepare_chunk, (c,))) for c in islice(todo, in_flight))
    while pending:
        chunk, job = pending.popleft()
        nxt = next(todo, None)
        if nxt is not None:
            pending.append((nxt, pool.apply_async(_prepare_chunk, (nxt,))))
        try:
            yield job.get(timeout=timeout)
        except mp.TimeoutError:
            yield [PipelineItem(i, r, error=f"no answer from the reading worker within {timeout:g} s (it may have "
                                     "crashed on this file); read it alone with `ecglens info`.")
                   for i, r, _ in chunk], None
