"""The reading side of batch prediction: worker processes read and harmonise chunks of records, in order.

Each worker holds the :class:`~ecglens.predict.harmonise.InputAdapter` (set once by the pool initialiser);
a chunk comes back as its records' :class:`PipelineItem` (errors included) and their windows stacked
``[n_windows, L, T]``. A bad file never raises: it becomes an item with an error.

Where the backend allows it (CPU; see :class:`WorkerModel`) and workers are forked, each worker also runs the
model on its chunk and sends back :class:`ChunkOutputs` (a few numbers per window) instead of the windows: every
core then reads, harmonises and predicts, and the main process only writes rows. On 2 cores, 10,000 PTB-XL
records at 100 Hz, against the model in the main process (2026-12-07): ``age-sex`` 215 -> 300 ECG/s, its int8 file
0.89x the wall time (median of seven pairs), ``age-sex-fast`` int8 0.85x; identical tables (README, Benchmarks).
"""

from __future__ import annotations

import copy
import ctypes
import multiprocessing as mp
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from .._threads import limit_blas_threads
from ..exceptions import EcglensError
from .harmonise import InputAdapter, recorded_fields
from .records import archive_names, read_record

__all__ = ["ChunkOutputs", "PipelineItem", "WorkerModel", "chunk_stream", "keep_freed_memory", "workers_can_predict"]


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


@dataclass
class ChunkOutputs:
    """What a worker that runs the model returns instead of a chunk's windows: the postprocessed outputs of
    those windows (``{name: [n_windows]}``, float64, in window order), or why the model failed on them."""

    outputs: dict[str, np.ndarray]
    failure: str | None = None


@dataclass
class WorkerModel:
    """The model as a forked reading worker runs it.

    Parameters
    ----------
    predictor : Predictor
        Inherited by the fork (never pickled); a shallow copy of it, with the backend that ``factory`` builds
        in the worker, runs :meth:`~ecglens.predict.Predictor.run_windows` (site gain, backend, postprocess).
    factory : callable
        ``factory() -> Backend``, called once in the worker (a backend's ``for_worker()``: one intra-op thread).
    batch_size : int
        Windows per forward pass.

    Notes
    -----
    The inherited backend stays referenced, never replaced: destroying a forked copy of an onnxruntime session
    with a thread pool can hang (seen with the int8 ``age-sex`` file: the worker stopped in the destructor).
    """

    predictor: Any
    factory: Callable[[], Any]
    batch_size: int
    _own: Any = field(default=None, init=False, repr=False, compare=False)

    def __call__(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        if self._own is None:
            own = copy.copy(self.predictor)
            own.backend = self.factory()
            self._own = own
        return self._own.run_windows(windows, self.batch_size)


def workers_can_predict() -> bool:
    """Whether reading workers can run the model: they must be forked, so that they inherit it unpickled."""
    return "fork" in mp.get_all_start_methods()


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


def _init_worker(adapter: InputAdapter, read_kwargs: Mapping[str, Any] | None, pooled: bool = False,
                 model: WorkerModel | None = None) -> None:
    if pooled:
        keep_freed_memory()
        limit_blas_threads(1)  # one process per core already
    _WORKER["adapter"] = adapter
    _WORKER["read_kwargs"] = dict(read_kwargs or {})
    _WORKER["model"] = model


def _error_text(err: BaseException) -> str:
    """The reason of a failed record, naming files in archives by their archive path."""
    return archive_names(str(err) if isinstance(err, EcglensError) else f"{type(err).__name__}: {err}")


def _prepare_chunk(chunk: Sequence[tuple[int, str, str]]
                   ) -> tuple[list[PipelineItem], np.ndarray | ChunkOutputs | None]:
    """Worker: read a chunk of records, then harmonise them together (:meth:`InputAdapter.prepare_many`);
    never raises for a bad record. With a :class:`WorkerModel` the model runs here too (:class:`ChunkOutputs`)."""
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
    windows = np.concatenate(arrays) if arrays else None
    model: WorkerModel | None = _WORKER.get("model")
    if model is None:
        return items, windows
    if windows is None:
        return items, ChunkOutputs({})
    try:
        return items, ChunkOutputs(model(windows))
    except Exception as err:  # noqa: BLE001 - the chunk's records become error rows, the job goes on
        return items, ChunkOutputs({}, f"model inference failed: {type(err).__name__}: {err}")


#: chunks submitted and not yet consumed, per reading worker. Where the model runs in the main process it runs in
#: bursts; with too few chunks queued the readers wait for it. 10,000 PTB-XL records, ``age-sex-fast`` int8, 2
#: workers on 2 cores, model in the main process (2026-12-06, beside a training run): 5 in flight (the earlier 2 per
#: worker + 1) 14.9-15.1 s, 8 13.3-14.3 s, 16 13.3-14.3 s, 32 14.0-14.5 s. Memory: a chunk of 32 records of three
#: 4-s windows is 1.8 MB.
IN_FLIGHT_PER_WORKER = 8


@contextmanager
def chunk_stream(chunks: list[list[tuple[int, str, str]]], adapter: InputAdapter,
                  read_kwargs: Mapping[str, Any] | None, workers: int, timeout: float,
                  model: WorkerModel | None = None
                  ) -> Iterator[Iterator[tuple[list[PipelineItem], np.ndarray | ChunkOutputs | None]]]:
    """Context giving the prepared chunks in order, computed by ``workers`` processes.

    The pool is started on entering the context (before any progress-bar thread exists); with ``workers <= 1``
    (or one chunk) the chunks are prepared lazily in this process and ``model`` is not used (the caller runs
    the model on the windows). With a pool and a ``model`` (forked workers only, :func:`workers_can_predict`)
    the workers run it and chunks come with :class:`ChunkOutputs`.
    """
    if workers <= 1 or len(chunks) <= 1:
        _init_worker(adapter, read_kwargs)
        yield (_prepare_chunk(c) for c in chunks)
        return
    fork = workers_can_predict()
    ctx = mp.get_context("fork") if fork else mp.get_context()
    initargs = (adapter, read_kwargs, True, model if fork else None)
    with ctx.Pool(processes=workers, initializer=_init_worker, initargs=initargs) as pool:
        yield _ordered_results(pool, chunks, IN_FLIGHT_PER_WORKER * workers, timeout)


def _ordered_results(pool: Any, chunks: list[list[tuple[int, str, str]]], in_flight: int,
                     timeout: float) -> Iterator[tuple[list[PipelineItem], np.ndarray | ChunkOutputs | None]]:
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
