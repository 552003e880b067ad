"""Batch prediction on a Dask cluster: ``ecglens predict INPUTS --dask local:4`` or ``--dask tcp://HOST:8786``.

The records are found here (:func:`~ecglens.predict.records.find_records`), split into partitions of record
paths, and sent to the cluster's workers. Each worker process loads the model once (a worker-cached
:class:`~ecglens.predict.Predictor`, reused by every partition it runs) and predicts its partitions reading the
files itself; the rows come back and are joined, in input order, into the same table as
:meth:`Predictor.predict_paths <ecglens.predict.Predictor.predict_paths>` (same columns, one row per record,
the same ``attrs``). A partition whose worker dies is retried by Dask; one that fails for good becomes
``error`` rows, so every record is still accounted for.

Why Dask (``pip install "ecglens[distributed]"``): ``dask[distributed]`` is pure Python and pip-installable, its
``LocalCluster`` starts in a couple of seconds (so the tests run a real two-worker cluster), and the same code
talks to a scheduler started by ``dask-scheduler`` / ``dask-worker`` on any machines, or by ``dask-jobqueue``
on SLURM / PBS. Ray Data would do the job too but is a much heavier install (a C++ core, its own object store
and dashboard) for what is here an embarrassingly parallel map. Training on several machines stays Lightning's
DDP (``ecglens train --devices N --num-nodes M``).

The paths must be readable on every worker (a shared filesystem); archives are unpacked on the machine that
calls this, so with remote workers unpack them to shared storage first.

>>> from dask.distributed import Client, LocalCluster                   # doctest: +SKIP
>>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
...     table = predict_distributed("age-sex", ["records100/"], client=client)
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from .._optional import require
from .._threads import limit_blas_threads
from ..artifact.calibration import Calibration
from ..exceptions import ConfigError, EcglensError
from .postprocess import apply_calibration, calibration_of
from .records import find_records
from .shard import table_attrs

__all__ = ["dask_client", "predict_distributed"]

#: (model, backend, options) -> (Predictor, lock), per worker process
_PREDICTORS: dict[str, tuple[Any, threading.Lock]] = {}
_CACHE_LOCK = threading.Lock()


def _distributed() -> Any:
    return require("distributed", "distributed prediction (--dask)")


def _worker_predictor(model: str, backend: str, options: Mapping[str, Any]) -> tuple[Any, threading.Lock]:
    """This process's Predictor for ``(model, backend, options)``, loaded on first use."""
    key = repr((model, backend, sorted(options.items())))
    with _CACHE_LOCK:
        if key not in _PREDICTORS:
            from .device import resolve_device
            from .predictor import Predictor

            opts = dict(options)
            if "device" in opts:
                opts["device"] = resolve_device(opts["device"])  # on the worker: its own GPUs
            threads = opts.pop("num_threads", None)
            if threads:
                import torch

                torch.set_num_threads(int(threads))  # the worker's process: one model, its own threads
                limit_blas_threads(int(threads))  # and as many for NumPy's BLAS (resampling)
            _PREDICTORS[key] = (Predictor.from_pretrained(model, backend=backend, **opts), threading.Lock())
        return _PREDICTORS[key]


def _describe(model: str, backend: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Columns, model label and backend of the worker's Predictor (loads it: errors surface here, once)."""
    predictor, _ = _worker_predictor(model, backend, options)
    cal = calibration_of(predictor)
    return {"columns": list(predictor.columns), "model": predictor.model_label, "backend": predictor.backend_name,
            "calibration": None if cal is None else cal.to_dict()}


def _predict_partition(part: Sequence[tuple[str, str]], model: str, backend: str, options: Mapping[str, Any],
                       batch_size: int, read_kwargs: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Rows for one partition, read and predicted in this worker process (no reading pool: workers=0)."""
    predictor, lock = _worker_predictor(model, backend, options)
    records = [(name, Path(path)) for name, path in part]
    with lock:
        return list(predictor.iter_predict(records, progress=False, batch_size=batch_size, workers=0,
                                           read_kwargs=read_kwargs))


def _partitions(records: Sequence[tuple[str, Any]], n: int) -> list[list[tuple[str, str]]]:
    """``records`` cut into ``n`` contiguous, nearly equal parts (paths as strings, for pickling)."""
    n = max(1, min(n, len(records)))
    size, extra = divmod(len(records), n)
    parts, start = [], 0
    for i in range(n):
        stop = start + size + (1 if i < extra else 0)
        parts.append([(name, str(path)) for name, path in records[start:stop]])
        start = stop
    return parts


def predict_distributed(model: str | os.PathLike[str],
                        inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None, *,
                        client: Any = None, partitions: int | None = None,
                        records: Sequence[tuple[str, Any]] | None = None, backend: str = "torch",
                        batch_size: int = 64, read_kwargs: Mapping[str, Any] | None = None,
                        progress: bool = False, **options: Any) -> pd.DataFrame:
    """Predict every record of ``inputs`` on a Dask cluster; the table of :meth:`Predictor.predict_paths`.

    Parameters
    ----------
    model : str or path
        A shipped model name or a model file readable on every worker (each worker loads it once).
    inputs : path or iterable of paths, optional
        Files, folders and archives (:func:`~ecglens.predict.records.find_records`), readable on every worker.
    client : dask.distributed.Client, optional
        The cluster's client (default: the current one, ``distributed.get_client()``).
    partitions : int, optional
        Number of tasks the records are cut into (default: 4 per worker, at most one per record).
    records : sequence of (record name, path), optional
        Already discovered records, instead of ``inputs`` (e.g. one shard's).
    backend : str
        ``"torch"`` or ``"onnx"``.
    batch_size : int
        Model windows per forward pass, in each worker.
    read_kwargs : mapping, optional
        Reader options for raw arrays (``fs``, ``leads``, ``units``).
    progress : bool
        A progress bar of finished records.
    **options
        Predictor options for every worker: ``max_windows``, ``device``, ``num_threads`` (torch threads per
        worker process), ...

    Returns
    -------
    pandas.DataFrame
        Columns ``record, status, message``, one per output, ``n_windows``, ``flags``; one row per record, in
        input order; ``attrs``: ``model``, ``backend``, ``n_ok``, ``n_error``, ``seconds``, ``ecgs_per_s``,
        ``n_workers``, ``n_partitions``.

    Raises
    ------
    EcglensError
        No records; the model cannot be loaded on the workers (its own error, e.g. ``CheckpointError``).
    MissingDependencyError
        ``dask.distributed`` is not installed (the ``distributed`` extra).
    """
    distributed = _distributed()
    start = time.perf_counter()
    if records is None:
        if inputs is None:
            raise ConfigError("predict_distributed needs inputs (files, folders) or records.")
        records = find_records(inputs, with_arrays=bool(read_kwargs and read_kwargs.get("fs")))
        if not records:
            raise EcglensError(f"no ECG records found in {inputs}. Give ECG files or folders.")
    client = client if client is not None else distributed.get_client()
    n_workers = max(1, len(client.nthreads()))
    parts = _partitions(records, partitions or 4 * n_workers)
    model, read_kwargs = os.fspath(model), dict(read_kwargs or {})
    info = client.submit(_describe, model, backend, options, pure=False).result()
    task = partial(_predict_partition, model=model, backend=backend, options=options, batch_size=batch_size,
                   read_kwargs=read_kwargs)  # bound here: Client.map has a batch_size of its own
    futures = client.map(task, parts, pure=False)
    rows = _gather(distributed, futures, parts, info["columns"], progress)
    cal = info.get("calibration")
    table = apply_calibration(pd.DataFrame(rows, columns=info["columns"]),
                              None if cal is None else Calibration.from_dict(cal))
    return table_attrs(table, time.perf_counter() - start, model=info["model"], backend=info["backend"],
                       n_workers=n_workers, n_partitions=len(parts))


def _gather(distributed: Any, futures: list[Any], parts: list[list[tuple[str, str]]], columns: list[str],
            progress: bool) -> list[dict[str, Any]]:
    """The partitions' rows in partition order; a partition that failed for good becomes error rows."""
    from tqdm.auto import tqdm

    index = {f.key: i for i, f in enumerate(futures)}
    done: list[list[dict[str, Any]] | None] = [None] * len(futures)
    with tqdm(total=sum(map(len, parts)), unit="ECG", desc="predict", disable=not progress) as bar:
        for future in distributed.as_completed(futures):
            i = index[future.key]
            try:
                done[i] = future.result()
            except Exception as err:  # noqa: BLE001 - the records get error rows, the job goes on
                outputs = [c for c in columns if c not in ("record", "status", "message", "n_windows", "flags")]
                done[i] = [{"record": name, "status": "error", "n_windows": 0, "flags": "",
                            "message": f"distributed worker failed: {type(err).__name__}: {err}",
                            **{c: float("nan") for c in outputs}} for name, _ in parts[i]]
            bar.update(len(parts[i]))
    return [row for part in done for row in (part or [])]


@contextmanager
def dask_client(spec: str) -> Iterator[Any]:
    """A Dask client for ``--dask SPEC``: ``local:N`` (a LocalCluster of N single-threaded worker processes on
    this machine, closed at the end) or a scheduler address (``tcp://HOST:8786``, or a scheduler file
    ``.json`` written by ``dask scheduler --scheduler-file``)."""
    text = spec.strip()
    match = re.fullmatch(r"local(?::(\d+))?", text)
    n = int(match.group(1) or max(1, min(4, os.cpu_count() or 1))) if match is not None else 0
    if match is not None and n < 1:
        raise ConfigError("--dask local:N needs N >= 1 worker processes, e.g. --dask local:4.")
    distributed = _distributed()
    if match is not None:
        with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    kwargs = {"scheduler_file": text} if text.endswith(".json") and Path(text).is_file() else {"address": text}
    try:
        client = distributed.Client(timeout="30s", **kwargs)
    except (OSError, TimeoutError) as err:
        raise ConfigError(f"cannot reach the Dask scheduler at {text} ({err}). Start one (dask scheduler; dask "
                          "worker ADDRESS on each machine) or use --dask local:N on this machine.") from None
    with client:
        yield client
