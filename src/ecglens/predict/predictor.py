"""The :class:`Predictor`: a model file -> its input contract -> predictions for records, files and folders.

No prediction is ``ok`` unless its outputs are plausible (:meth:`Predictor.implausible_outputs`): every output
finite, ages within 0-120 years, standard deviations above 0, probabilities within [0, 1]. Otherwise
:meth:`Predictor.predict_ecg` raises :class:`~ecglens.exceptions.EcglensError` and a batch table gets an
``error`` row saying which outputs were absurd.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact.formats import load_model_file, model_format
from ..artifact.windows import DEFAULT_MAX_WINDOWS, aggregate_records, aggregate_windows
from ..ecg import Ecg
from ..exceptions import CheckpointError, ConfigError, EcglensError
from .backends import Backend, create_backend, usable_cores
from .harmonise import RECORDED_COLUMNS, InputAdapter, PreparedEcg, recorded_fields
from .postprocess import apply_calibration
from .records import find_records, read_record, record_key
from .site import SiteGain, as_site_gain, estimate_site_gain, lead_rms
from .workers import ChunkOutputs, PipelineItem, WorkerModel, chunk_stream, workers_can_predict

__all__ = ["BASE_COLUMNS", "Prediction", "Predictor"]

#: first columns of every :meth:`Predictor.predict_paths` table (then one per output, the
#: :data:`~ecglens.predict.harmonise.RECORDED_COLUMNS`, ``n_windows``, ``flags``)
BASE_COLUMNS: tuple[str, ...] = ("record", "status", "message")
_AGE_RANGE = (0.0, 120.0)  # years: an age output outside it means the input was not a valid ECG


@dataclass(frozen=True)
class Prediction:
    """The prediction for one record.

    Attributes
    ----------
    record : str
        Record name (path or id).
    outputs : dict of str to float
        Mean over windows of each model output, e.g. ``{"age": 57.3, "age_std": 8.1, "p_female": 0.82}``
        (years, probabilities, as ``task.postprocess`` gives them).
    window_spread : dict of str to float
        Standard deviation (ddof=1) of each output across windows; NaN with one window.
    n_windows : int
        Number of model windows the record was cut into.
    flags : tuple of str
        What harmonisation did and what the quality checks found (see the module docstring).
    recorded : dict
        What the file states: ``age_recorded`` (years, NaN unknown), ``sex_recorded`` (``"F"``/``"M"``/``""``),
        ``patient_id``, ``exam_id`` (``""`` unknown).
    """

    record: str
    outputs: Mapping[str, float]
    window_spread: Mapping[str, float]
    n_windows: int
    flags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=(), repr=False)
    recorded: Mapping[str, Any] = field(default_factory=lambda: recorded_fields(None), repr=False)

    def to_row(self) -> dict[str, Any]:
        """One ``ok`` row of the :meth:`Predictor.predict_paths` table."""
        return {"record": self.record, "status": "ok", "message": "; ".join(self.warnings), **self.outputs,
                **self.recorded, "n_windows": self.n_windows, "flags": ";".join(self.flags)}


class Predictor:
    """Predict with a checkpoint on any ECG, file or folder.

    Parameters
    ----------
    checkpoint : Checkpoint or str or path
        A loaded checkpoint, or a checkpoint path / shipped model name (loaded with ``load_checkpoint``).
    backend : str or Backend
        A registered backend name (``"torch"``, ``"onnx"``) or an object with ``run(x) -> raw outputs``.
    max_windows : int or None
        Most windows per record (default :data:`DEFAULT_MAX_WINDOWS`).
    convert_units : bool
        Convert unambiguous uV / V amplitudes to mV (flagged) instead of refusing them.
    quality : bool
        Add signal-quality flags.
    site_gain : SiteGain or dict or path, optional
        Per-lead amplitude factors of the site the records come from (:mod:`ecglens.predict.site`; estimate one
        with :meth:`estimate_site_gain`), applied to every model input; predicted rows get the flag
        ``site_gain``.
    **backend_options
        Passed to the backend factory (e.g. ``device="cuda"``, ``num_threads=1``, ``precision="bf16"``).
    """

    def __init__(self, checkpoint: Any, backend: str | Backend = "torch", *,
                 max_windows: int | None = DEFAULT_MAX_WINDOWS, convert_units: bool = True, quality: bool = True,
                 site_gain: Any = None, **backend_options: Any) -> None:
        if isinstance(checkpoint, (str, os.PathLike)):
            checkpoint = load_model_file(checkpoint)
        if getattr(checkpoint, "preprocess", None) is None:
            raise CheckpointError(f"checkpoint {getattr(checkpoint, 'path', '')} declares no input contract "
                                  "(preprocess); save it with save_checkpoint(..., preprocess=Preprocess(...)).")
        self.checkpoint = checkpoint
        self.adapter = InputAdapter(checkpoint.preprocess, max_windows, convert_units, quality)
        self.backend_name = backend if isinstance(backend, str) else type(backend).__name__
        self.backend: Backend = (create_backend(backend, checkpoint, **backend_options) if isinstance(backend, str)
                                 else backend)
        self.site_gain = site_gain

    @property
    def site_gain(self) -> SiteGain | None:
        """The :class:`~ecglens.predict.site.SiteGain` applied to every model input (``None``: none)."""
        return self._site_gain

    @site_gain.setter
    def site_gain(self, value: Any) -> None:
        if isinstance(value, str) and value == "auto":
            raise ConfigError("site_gain='auto' needs the site's records: estimate it first, "
                              "predictor.site_gain = predictor.estimate_site_gain(FOLDER).")
        gain = as_site_gain(value)
        if gain is not None:
            gain.check_leads(self.preprocess.leads)
        self._site_gain = gain

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], backend: str | Backend = "torch",
                        **kwargs: Any) -> Predictor:
        """Load a shipped model by name (``"age-sex"``) or a model file, ready to predict.

        A file that runs only with its own backend (an exported ``.onnx``, see :mod:`ecglens.artifact.formats`)
        uses that backend whatever ``backend`` says.
        """
        fmt = model_format(name_or_path)
        if fmt is not None and fmt.backend_only:
            backend = fmt.backend
        return cls(load_model_file(name_or_path), backend=backend, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def preprocess(self) -> Any:
        """The input contract (:class:`~ecglens.signal.transforms.Preprocess`)."""
        return self.adapter.preprocess

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs (``task.output_names``), e.g. ``("age", "age_std", "p_female")``."""
        return tuple(self.checkpoint.task.output_names)

    @property
    def columns(self) -> list[str]:
        """Columns of the :meth:`predict_paths` table."""
        return [*BASE_COLUMNS, *self.output_names, *RECORDED_COLUMNS, "n_windows", "flags"]

    @property
    def model_label(self) -> str:
        """Checkpoint file name and architecture, for tables and reports."""
        path = getattr(self.checkpoint, "path", None)
        return f"{Path(path).stem if path else 'checkpoint'} ({self.checkpoint.model_name})"

    def __repr__(self) -> str:
        return f"Predictor({self.model_label}, backend={self.backend_name!r}, outputs={list(self.output_names)})"

    # ------------------------------------------------------------------ one record
    def run_windows(self, windows: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Postprocessed outputs ``{name: [N]}`` of model inputs ``[N, L, T]`` (in batches of ``batch_size``)."""
        x = np.asarray(windows, dtype=np.float32) if self._site_gain is None else self._site_gain.apply(windows)
        step = max(1, int(batch_size))
        raw = np.concatenate([np.asarray(self.backend.run(x[i:i + step])) for i in range(0, len(x), step)])
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.checkpoint.task.postprocess(raw).items()}

    def predict_prepared(self, prepared: PreparedEcg, batch_size: int = 64) -> Prediction:
        """Prediction for a record already brought to the contract (:meth:`InputAdapter.prepare`).

        Raises
        ------
        EcglensError
            When an output is non-finite or outside its plausible range (see :meth:`implausible_outputs`).
        """
        means, spread = aggregate_windows(self.run_windows(prepared.windows, batch_size))
        problem = self.implausible_outputs(means)
        if problem:
            raise EcglensError(f"{prepared.record}: {problem}")
        return Prediction(prepared.record, means, spread, prepared.n_windows, self.row_flags(prepared.flags),
                          prepared.warnings, prepared.recorded)

    def row_flags(self, flags: tuple[str, ...]) -> tuple[str, ...]:
        """A predicted record's flags, with ``site_gain`` when one was applied."""
        return flags if self._site_gain is None else (*flags, "site_gain")

    def _out_of_range(self, name: str, values: Any) -> np.ndarray:
        """Where output ``name`` (a value or an array of them) is implausible (see :meth:`implausible_outputs`)."""
        low, high = _output_range(self.checkpoint.task, name)
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            wrong = ~(np.isfinite(values) & (values >= low) & (values <= high))
            if name.endswith("_std"):
                wrong |= ~(values > 0)
        return wrong

    def implausible_mask(self, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """For outputs of many records (``{name: [N]}``), which records :meth:`implausible_outputs` rejects:
        bool [N]."""
        bad = np.zeros(len(next(iter(outputs.values()), ())), dtype=bool)
        for name, values in outputs.items():
            bad |= self._out_of_range(name, values)
        return bad

    def implausible_outputs(self, outputs: Mapping[str, float]) -> str | None:
        """Why a record's outputs cannot be a prediction for an ECG, or None when they are plausible.

        Every output must be finite; ages within 0-120 years, standard deviations (``*_std``) above 0 and
        probabilities (binary / multilabel outputs) within [0, 1].
        """
        bad = [f"{name}={value:.4g}" for name, value in outputs.items() if self._out_of_range(name, value)]
        if not bad:
            return None
        return (f"implausible model outputs ({', '.join(bad)}): the input is probably not an ECG in mV at its "
                "stated sampling rate. Check the record's gain, unit and sampling rate; no prediction is given.")

    def predict_ecg(self, ecg: Ecg, record: str | None = None) -> Prediction:
        """Predict for one :class:`~ecglens.ecg.Ecg` (any fs, length, lead order; see the module docstring).

        Raises
        ------
        EcglensError
            When the record cannot be brought to the model's contract (the message says why).
        """
        return self.predict_prepared(self.adapter.prepare(ecg, record=record))

    def predict_file(self, path: str | os.PathLike[str], **read_kwargs: Any) -> Prediction:
        """Read one file (any supported format; ``fs=``, ``leads=``, ``units=`` for raw arrays) and predict."""
        if Path(path).is_dir():
            raise EcglensError(f"{path} is a folder; predict_file takes one record. Use predict_paths for folders.")
        name, target = record_key(Path(path).expanduser())
        return self.predict_ecg(read_record(target, read_kwargs), record=name)

    def predict(self, ecgs: Ecg | np.ndarray | Iterable[Ecg | np.ndarray], fs: float | None = None,
                leads: Sequence[str] | None = None, batch_size: int = 64) -> pd.DataFrame:
        """Predict for in-memory ECGs: one row per input, bad inputs as ``error`` rows (like files).

        Parameters
        ----------
        ecgs : Ecg, np.ndarray or iterable of them
            :class:`~ecglens.ecg.Ecg` objects, arrays ``[n_leads, n_samples]`` or one array
            ``[N, n_leads, n_samples]`` (N records), in mV (unambiguous uV / V are converted).
        fs : float, optional
            Sampling rate in Hz of the arrays (required with arrays; ignored for ``Ecg`` inputs).
        leads : sequence of str, optional
            Lead names of the arrays' rows (required with arrays), e.g. :data:`~ecglens.leads.CANONICAL_LEADS`.
        batch_size : int
            Model windows per forward pass.

        Returns
        -------
        pandas.DataFrame
            Columns :attr:`columns` as :meth:`predict_paths`; ``record`` is the ``Ecg.record_id`` or the input's
            position (``"0"``, ``"1"``, ...). ``df.attrs`` holds ``model``, ``backend``, ``n_ok``, ``n_error``.

        Raises
        ------
        EcglensError
            When arrays are given without ``fs`` and ``leads``.
        """
        items = list(ecgs) if isinstance(ecgs, np.ndarray) and ecgs.ndim == 3 else (
            [ecgs] if isinstance(ecgs, (Ecg, np.ndarray)) else list(ecgs))
        if (fs is None or leads is None) and not all(isinstance(item, Ecg) for item in items):
            raise EcglensError("arrays need their sampling rate and lead names: predict(x, fs=500, "
                               "leads=ecglens.CANONICAL_LEADS), or pass ecglens.Ecg objects.")
        batcher, rows = _Batcher(self, batch_size), []
        for index, item in enumerate(items):
            record, windows = getattr(item, "record_id", "") or str(index), None
            recorded = recorded_fields(item if isinstance(item, Ecg) else None)
            try:
                if not isinstance(item, (Ecg, np.ndarray)):
                    raise EcglensError(f"{type(item).__name__} is not an Ecg or an array; read files with "
                                       "ecglens.read_ecg or predict them with predict_paths.")
                ecg = item if isinstance(item, Ecg) else Ecg(item, fs, tuple(leads or ()), record_id=record)
                prepared = self.adapter.prepare(ecg, record=record)
            except Exception as err:  # noqa: BLE001 - like a batch of files: every bad input is a row
                reason = str(err) if isinstance(err, EcglensError) else f"{type(err).__name__}: {err}"
                pipeline_item = PipelineItem(index, record, error=reason, recorded=recorded)
            else:
                pipeline_item = PipelineItem(index, record, None, prepared.n_windows, prepared.flags,
                                             prepared.warnings, prepared.recorded)
                windows = prepared.windows
            rows.extend(batcher.add([pipeline_item], windows))
        table = self.rows_table([*rows, *batcher.flush()])
        n_ok = int((table["status"] == "ok").sum())
        table.attrs.update({"model": self.model_label, "backend": self.backend_name, "n_ok": n_ok,
                            "n_error": len(table) - n_ok})
        return table

    # ------------------------------------------------------------------ many records
    def predict_paths(self, inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                      progress: bool = True, batch_size: int = 64, workers: int | None = None,
                      read_kwargs: Mapping[str, Any] | None = None, chunk_size: int | None = None,
                      timeout: float = 600.0) -> pd.DataFrame:
        """Predict for every record in files and folders; bad files become ``error`` rows.

        Parameters
        ----------
        inputs : path or iterable of paths
            Files and folders (see :func:`find_records`).
        progress : bool
            Show a progress bar.
        batch_size : int
            Model windows per forward pass.
        workers : int, optional
            Reading processes (default: one per usable core, at most 16 when they run the model (CPU backends),
            else at most 4; 0 or 1 reads in this process).
        read_kwargs : mapping, optional
            Reader options (``fs``, ``leads``, ``units`` for raw arrays; each reader gets those it accepts).
        chunk_size : int, optional
            Records per worker task (default up to 32).
        timeout : float
            Seconds to wait for one chunk before reporting its records as errors.

        Returns
        -------
        pandas.DataFrame
            Columns :attr:`columns`: ``record, status ("ok"/"error"), message`` (the reason of an error, repair
            warnings of an ok row), one column per output, what the file states (``age_recorded`` in years, NaN
            unknown; ``sex_recorded`` ``"F"``/``"M"``/``""``; ``patient_id``, ``exam_id``, ``""`` unknown),
            ``n_windows``, ``flags`` (``;``-joined). One row per
            record in input order. ``df.attrs`` holds ``model``, ``n_ok``, ``n_error``, ``seconds``,
            ``ecgs_per_s``.

        Raises
        ------
        EcglensError
            When the inputs hold no record at all.
        """
        start = time.perf_counter()
        records = find_records(inputs, with_arrays=bool(read_kwargs and read_kwargs.get("fs")))
        if not records:
            raise EcglensError(f"no ECG records found in {_describe_inputs(inputs)}. Give ECG files or folders "
                               "holding .hea/.dat, .mat, .xml or .dcm records (raw arrays need --fs).")
        rows = list(self.iter_predict(records, progress, batch_size, workers, read_kwargs, chunk_size, timeout))
        table = self.rows_table(rows)
        seconds = time.perf_counter() - start
        n_ok = int((table["status"] == "ok").sum())
        table.attrs.update({"model": self.model_label, "backend": self.backend_name, "n_ok": n_ok,
                            "n_error": len(table) - n_ok, "seconds": seconds,
                            "ecgs_per_s": len(table) / seconds if seconds > 0 else float("nan")})
        return table

    def rows_table(self, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
        """The predictions table of rows from :meth:`iter_predict`: columns :attr:`columns`, then the checkpoint's
        calibration and the derived columns applied (:func:`~ecglens.predict.postprocess.apply_calibration`)."""
        return apply_calibration(pd.DataFrame(list(rows), columns=self.columns), self.checkpoint)

    def estimate_site_gain(self, records: Any, sample: int = 1000, workers: int | None = None,
                           read_kwargs: Mapping[str, Any] | None = None, progress: bool = True) -> SiteGain:
        """Measure the site gain of ``records`` (:mod:`ecglens.predict.site`) on an evenly spaced sample of them.

        >>> pred.site_gain = pred.estimate_site_gain("other_hospital/")      # doctest: +SKIP

        Parameters
        ----------
        records : path, sequence of paths, or sequence of (name, path)
            The site's files / folders / archives (as for :meth:`predict_paths`), or its records as
            :func:`~ecglens.predict.records.find_records` lists them.
        sample : int
            Most records read (evenly spaced over ``records``, so the same inputs give the same gain).
        workers, read_kwargs, progress
            As for :meth:`iter_predict`.

        Returns
        -------
        SiteGain
            Not applied: set :attr:`site_gain` (or pass it to the constructor) to use it.

        Raises
        ------
        ConfigError
            When the checkpoint has no reference amplitudes, or fewer than
            :data:`~ecglens.predict.site.MIN_SITE_RECORDS` records could be brought to the contract.
        """
        from tqdm.auto import tqdm

        reference = getattr(getattr(self.checkpoint, "calibration", None), "lead_rms_mv", None)
        if isinstance(records, (str, os.PathLike)) or not all(isinstance(r, tuple) for r in records):
            records = find_records(records, with_arrays=bool(read_kwargs and read_kwargs.get("fs")))
        picked = [records[int(i)] for i in np.unique(np.linspace(0, len(records) - 1, min(sample, len(records)))
                                                      .round().astype(int))] if records else []
        n_workers = _default_workers() if workers is None else max(0, int(workers))
        tasks = [(i, name, str(path)) for i, (name, path) in enumerate(picked)]
        size = max(1, min(32, math.ceil(len(tasks) / max(1, 4 * n_workers))))
        chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        rms = []
        with chunk_stream(chunks, self.adapter, read_kwargs, n_workers, 600.0) as stream, \
                tqdm(total=len(tasks), unit="ECG", desc="site gain", disable=not progress) as bar:
            for items, windows in stream:
                pos = 0
                for item in items:
                    if item.error is None:
                        rms.append(lead_rms(windows[pos:pos + item.n_windows]))
                        pos += item.n_windows
                bar.update(len(items))
        leads = self.preprocess.leads
        return estimate_site_gain(np.array(rms).reshape(-1, len(leads)), reference, leads)

    def _worker_model(self, batch_size: int) -> WorkerModel | None:
        """The model for forked reading workers to run, or None when it stays in this process (no fork, or a
        backend without ``for_worker``, or one that declines, e.g. on a GPU)."""
        for_worker = getattr(self.backend, "for_worker", None)
        factory = for_worker() if for_worker is not None and workers_can_predict() else None
        return None if factory is None else WorkerModel(self, factory, max(1, int(batch_size)))

    def iter_predict(self, records: Sequence[tuple[str, Path]], progress: bool = True, batch_size: int = 64,
                     workers: int | None = None, read_kwargs: Mapping[str, Any] | None = None,
                     chunk_size: int | None = None, timeout: float = 600.0) -> Iterator[dict[str, Any]]:
        """Stream table rows (dicts, :attr:`columns`) for ``(record name, path)`` pairs, in order.

        Reading and harmonisation run in ``workers`` processes. With two or more of them (forked) and a backend
        that can run there (CPU: :meth:`~ecglens.predict.backends.TorchBackend.for_worker`), each worker also runs
        the model on its chunk and this process only writes rows; otherwise (one worker, a GPU, a custom backend)
        the model runs here on batches of about ``batch_size`` windows. Only the chunks in flight and one batch
        are held in memory.
        """
        from tqdm.auto import tqdm

        model = self._worker_model(batch_size)
        n_workers = _default_workers(model is not None) if workers is None else max(0, int(workers))
        size = chunk_size or max(1, min(32, math.ceil(len(records) / max(1, 4 * n_workers))))
        tasks = [(i, name, str(path)) for i, (name, path) in enumerate(records)]
        chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        batcher = _Batcher(self, batch_size)
        pooled = n_workers if n_workers > 1 and len(chunks) > 1 else 0  # chunk_stream's rule for a pool
        model = model if pooled else None
        share = getattr(self.backend, "sharing_cores", None) if model is None else None
        with chunk_stream(chunks, self.adapter, read_kwargs, n_workers, timeout, model) as stream, \
                share(pooled) if share is not None else nullcontext(), \
                tqdm(total=len(tasks), unit="ECG", desc="predict", disable=not progress) as bar:
            for items, windows in stream:
                rows = batcher.add(items, windows)
                bar.update(len(rows))
                yield from rows
            rows = batcher.flush()
            bar.update(len(rows))
            yield from rows


def _output_range(task: Any, name: str) -> tuple[float, float]:
    """Plausible closed range of one output: probabilities [0, 1], ages [0, 120], anything else finite."""
    for target in getattr(task, "targets", None) or (task,):
        if name not in getattr(target, "output_names", ()):
            continue
        if getattr(target, "kind", "") in ("binary", "multilabel"):
            return 0.0, 1.0
        if getattr(target, "column", None) == "age" and not name.endswith("_std"):
            return _AGE_RANGE
    return -math.inf, math.inf


#: default reading workers: at most this many when they only read and harmonise (the model then runs in the main
#: process on the other cores), at most :data:`MAX_PREDICTING_WORKERS` when each also runs the model
MAX_READING_WORKERS = 4
MAX_PREDICTING_WORKERS = 16


def _default_workers(predicting: bool = False) -> int:
    """One worker per usable core, up to :data:`MAX_PREDICTING_WORKERS` when the workers run the model (then
    they are all the compute), else up to :data:`MAX_READING_WORKERS`."""
    return max(1, min(MAX_PREDICTING_WORKERS if predicting else MAX_READING_WORKERS, usable_cores()))


def _describe_inputs(inputs: Any) -> str:
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    shown = ", ".join(str(i) for i in items[:3]) + (f" (and {len(items) - 3} more)" if len(items) > 3 else "")
    return shown or "the (empty) list of inputs"


class _Batcher:
    """Collects prepared records in input order; runs the model once enough windows are waiting."""

    def __init__(self, predictor: Predictor, batch_size: int) -> None:
        self.predictor = predictor
        self.batch_size = max(1, int(batch_size))
        self.items: list[PipelineItem] = []
        self.arrays: list[np.ndarray] = []
        self.n_windows = 0

    def add(self, items: list[PipelineItem], windows: np.ndarray | ChunkOutputs | None) -> list[dict[str, Any]]:
        if isinstance(windows, ChunkOutputs):  # a reading worker ran the model: rows now, after any held ones
            return self.flush() + self._rows(items, windows.outputs, windows.failure)
        self.items.extend(items)
        if windows is not None:
            self.arrays.append(windows)
            self.n_windows += len(windows)
        return self.flush() if self.n_windows >= self.batch_size else []

    def flush(self) -> list[dict[str, Any]]:
        items, arrays = self.items, self.arrays
        self.items, self.arrays, self.n_windows = [], [], 0
        outputs: dict[str, np.ndarray] = {}
        failure = None
        if arrays:
            try:
                outputs = self.predictor.run_windows(np.concatenate(arrays), self.batch_size)
            except Exception as err:  # noqa: BLE001 - report the batch's records as errors, keep going
                failure = f"model inference failed: {type(err).__name__}: {err}"
        return self._rows(items, outputs, failure)

    def _rows(self, items: list[PipelineItem], outputs: Mapping[str, np.ndarray], failure: str | None) -> list[dict]:
        """Table rows of ``items`` in order; ``outputs`` holds the windows of the items without error, in order
        (an item with an error has no windows)."""
        predictor = self.predictor
        ok = [item for item in items if item.error is None] if failure is None else []
        values: dict[str, list[float]] = {}
        bad = np.zeros(0, dtype=bool)
        if ok:  # every record of the batch reduced at once (aggregate_records), its plausibility checked at once
            means, _ = aggregate_records(outputs, [item.n_windows for item in ok])
            bad = predictor.implausible_mask(means)
            values = {k: v.tolist() for k, v in means.items()}
        nan_outputs = dict.fromkeys(predictor.output_names, np.nan)
        rows, row = [], 0
        for item in items:
            recorded = item.recorded or recorded_fields(None)
            if item.error is not None or failure is not None:
                rows.append({"record": item.record, "status": "error", "message": item.error or failure,
                             **nan_outputs, **recorded, "n_windows": 0, "flags": ";".join(item.flags)})
                continue
            record_means = {k: v[row] for k, v in values.items()}
            if bad[row]:
                rows.append({"record": item.record, "status": "error",
                             "message": predictor.implausible_outputs(record_means), **nan_outputs,
                             **recorded, "n_windows": item.n_windows, "flags": ";".join(item.flags)})
            else:
                rows.append(Prediction(item.record, record_means, {}, item.n_windows,  # no spread column in tables
                                       predictor.row_flags(item.flags), item.warnings, recorded).to_row())
            row += 1
        return rows
