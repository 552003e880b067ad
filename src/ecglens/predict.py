"""Prediction on any ECG: checkpoint -> bring the input to the model's contract -> predictions.

A checkpoint declares its input contract (:class:`~ecglens.signal.transforms.Preprocess`: fs, duration, leads,
filters, normalisation). :class:`Predictor` brings any recording to it, and says what it did in ``flags``:

* **leads** — reordered; III, aVR, aVL, aVF derived from I and II when missing (``derived:III,aVR,aVL,aVF``);
  a record lacking other needed leads is refused (:class:`LeadError`);
* **units** — plain microvolts (or raw counts at 1000 counts/mV: the same numbers) or volts are converted to mV
  (``unit_converted:uV->mV``); amplitudes no power of ten makes plausible are refused (:class:`UnitError`);
* **sampling rate** — resampled from any rate >= 50 Hz (``resampled:500->100``);
* **length** — a short record is padded (``padded``); a long one is cut into windows covering it evenly
  (overlapping when its length is not a multiple of the window), predicted window by window and averaged, with
  the SD across windows as ``window_spread``; parts no window covers are reported as ``cropped``;
* **quality** — flat, noisy, saturated and NaN-containing leads are flagged (``flat:V3``), not refused.

Batch prediction (:meth:`Predictor.predict_paths`) reads and harmonises records in a pool of worker processes
(chunked, a bounded number of chunks in flight) and runs the model in the parent on batches, so signals are
streamed, never all held. A bad file gives an ``error`` row with its reason; it never stops the job.

The model runs through a pluggable :class:`Backend` (``run(x [N, L, T] float32) -> raw outputs``), chosen by
name from a registry (:func:`register_backend`): ``"torch"`` here; ``"onnx"`` is provided by
:mod:`ecglens.export`, imported on first use.

>>> p = Predictor.from_pretrained("age-sex")                     # doctest: +SKIP
>>> p.predict_file("rec.hea").outputs                            # doctest: +SKIP
{'age': 57.3, 'age_std': 8.1, 'p_female': 0.82}
>>> table = p.predict_paths(["folder_of_ecgs/"], workers=2)      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import multiprocessing as mp
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .ecg import Ecg
from .exceptions import CheckpointError, ConfigError, EcglensError

__all__ = ["BASE_COLUMNS", "DEFAULT_MAX_WINDOWS", "Backend", "InputAdapter", "Prediction", "Predictor",
           "PreparedEcg", "TorchBackend", "cores_left", "create_backend", "demo_predictions", "find_records", "list_backends",
           "plan_windows", "read_record", "register_backend"]

#: first columns of every :meth:`Predictor.predict_paths` table (then one per output, ``n_windows``, ``flags``)
BASE_COLUMNS: tuple[str, ...] = ("record", "status", "message")
#: a record longer than ``k`` windows by less than this fraction of a window is centre-cropped to ``k`` windows
WINDOW_TOLERANCE: float = 0.1
#: most windows predicted per record by default (5 minutes of 10 s windows); longer records are sampled evenly
DEFAULT_MAX_WINDOWS: int = 30


# ============================================================================================ backends
@runtime_checkable
class Backend(Protocol):
    """What runs the model: raw outputs from model inputs.

    ``run(x)`` takes ``x`` float32 ``[N, L, T]`` (already in the checkpoint's input contract) and returns the
    raw model outputs ``[N, num_outputs]`` as a numpy array (before ``task.postprocess``).
    """

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        ...


#: factory(checkpoint, **options) -> Backend
BackendFactory = Callable[..., Backend]
_BACKENDS: dict[str, BackendFactory] = {}
#: backends provided by other modules, imported (so they register themselves) on first use
_BACKEND_MODULES: dict[str, str] = {"onnx": "ecglens.export"}


def register_backend(name: str, factory: BackendFactory, overwrite: bool = False) -> BackendFactory:
    """Register ``factory(checkpoint, **options) -> Backend`` under ``name`` (e.g. ``"onnx"``).

    Returns the factory, so it can be used as ``register_backend("onnx", OnnxBackend)`` at module level.
    """
    if name in _BACKENDS and not overwrite and _BACKENDS[name] is not factory:
        raise ConfigError(f"a prediction backend named {name!r} is already registered; pass overwrite=True.")
    _BACKENDS[name] = factory
    return factory


def list_backends() -> list[str]:
    """Names of the registered backends plus those that load on first use."""
    return sorted(set(_BACKENDS) | set(_BACKEND_MODULES))


def create_backend(name: str, checkpoint: Any, **options: Any) -> Backend:
    """Build the backend ``name`` for ``checkpoint`` (importing its module on first use)."""
    if name not in _BACKENDS and name in _BACKEND_MODULES:
        try:
            importlib.import_module(_BACKEND_MODULES[name])
        except ImportError as err:
            raise ConfigError(f"backend {name!r} needs {_BACKEND_MODULES[name]}, which failed to import ({err}). "
                              "Install ecglens with its optional dependencies.") from None
    if name not in _BACKENDS:
        raise ConfigError(f"unknown prediction backend {name!r}; available: {list_backends()}.")
    return _BACKENDS[name](checkpoint, **options)


def cores_left(n_busy: int) -> int:
    """CPU cores not taken by ``n_busy`` busy reading processes (at least one): what a backend should use."""
    return max(1, (os.cpu_count() or 1) - int(n_busy))


class TorchBackend:
    """Run ``checkpoint.model`` with PyTorch under ``torch.inference_mode``.

    Parameters
    ----------
    checkpoint : Checkpoint
        A loaded checkpoint (its ``model`` is put in eval mode on ``device``).
    device : str
        Torch device (default ``"cpu"``).
    num_threads : int, optional
        Intra-op threads (``torch.set_num_threads``, process-wide); default: leave torch's setting.
    """

    def __init__(self, checkpoint: Any, device: str = "cpu", num_threads: int | None = None) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.model = checkpoint.model.to(self.device).eval()
        self.num_threads = int(num_threads) if num_threads else None
        if self.num_threads:
            torch.set_num_threads(self.num_threads)

    @contextmanager
    def sharing_cores(self, n_busy: int) -> Iterator[None]:
        """Use the cores left by ``n_busy`` busy reading processes (at least one) while the context is open.

        Intra-op threads that compete with the readers for the same cores mostly spin: on 2 cores with 2 reading
        workers, one torch thread predicts as fast as two with a third less CPU. Threads set explicitly
        (``num_threads``) or a GPU device are left alone; the previous setting is restored on exit.
        """
        torch = self._torch
        before = torch.get_num_threads()
        share = self.num_threads is None and self.device.type == "cpu" and n_busy > 0
        if share:
            torch.set_num_threads(min(before, cores_left(n_busy)))
        try:
            yield
        finally:
            if share:
                torch.set_num_threads(before)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs ``[N, num_outputs]`` of ``x`` float32 ``[N, L, T]``."""
        torch = self._torch
        batch = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            return self.model(batch).float().cpu().numpy()


register_backend("torch", TorchBackend)


# ============================================================================================ harmonisation
@dataclass(frozen=True, eq=False)
class PreparedEcg:
    """One record brought to a model's input contract.

    Attributes
    ----------
    record : str
        The record's name (path or id).
    windows : np.ndarray, float32, shape (n_windows, L, T)
        Model inputs.
    starts : tuple of int
        Start of each window in samples (at the model's fs) of the resampled record; negative when the window
        begins with padding.
    n_resampled : int
        Length of the whole record at the model's fs.
    flags : tuple of str
        What was done or found (``resampled:500->100``, ``derived:...``, ``unit_converted:uV->mV``, ``padded``,
        ``cropped``, ``flat:V3``, ...).
    warnings : tuple of str
        Messages of data-repair warnings (e.g. NaN samples interpolated).
    ecg : Ecg or None
        The record as the model saw it before filtering and resampling: contract leads, mV, native fs.
    """

    record: str
    windows: np.ndarray
    starts: tuple[int, ...]
    n_resampled: int
    flags: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    ecg: Ecg | None = None

    @property
    def n_windows(self) -> int:
        return int(self.windows.shape[0])


_UNIT_NAMES: dict[float, str] = {1e-3: "uV->mV", 1e3: "V->mV"}
#: where a single window sits in a longer (crop) or shorter (pad) record, by crop mode: excess -> offset
_SINGLE_OFFSET: dict[str, Callable[[int], int]] = {"center": lambda excess: excess // 2, "start": lambda excess: 0}


def _resampled_length(n: int, fs: float, target_fs: float) -> int:
    """Samples after :func:`ecglens.signal.functional.resample` (polyphase, ``ceil(n * up / down)``)."""
    from .signal.functional import resample_factors

    up, down = resample_factors(fs, target_fs)
    return n if up == down else math.ceil(n * up / down)


def plan_windows(n_total: int, width: int, max_windows: int | None = DEFAULT_MAX_WINDOWS,
                 crop: str = "center") -> tuple[list[int], bool]:
    """Where the model windows go on a record of ``n_total`` samples (all at the model's fs).

    Parameters
    ----------
    n_total : int
        Record length.
    width : int
        Window length (``Preprocess.n_samples``).
    max_windows : int or None
        Most windows; longer records get this many windows spread evenly (with gaps).
    crop : {"center", "start"}
        Where a single window sits in a record shorter than 1 + :data:`WINDOW_TOLERANCE` windows.

    Returns
    -------
    starts : list of int
        Window starts (negative: padding before the record's first sample).
    cropped : bool
        True when some samples of the record are in no window.
    """
    n_win = max(1, math.ceil(n_total / width - WINDOW_TOLERANCE))
    if n_win == 1:
        return [_SINGLE_OFFSET[crop](n_total - width) if n_total >= width
                else -_SINGLE_OFFSET[crop](width - n_total)], n_total > width
    capped = max_windows is not None and n_win > int(max_windows)
    n_win = int(max_windows) if capped else n_win
    if n_win == 1:
        return [_SINGLE_OFFSET[crop](n_total - width)], True
    hop = (n_total - width) // (n_win - 1)
    return [k * hop for k in range(n_win)], capped and hop > width


@dataclass(frozen=True)
class InputAdapter:
    """Brings any :class:`~ecglens.ecg.Ecg` to a model's input contract (see the module docstring).

    Parameters
    ----------
    preprocess : Preprocess
        The checkpoint's input contract.
    max_windows : int or None
        Most windows per record (default :data:`DEFAULT_MAX_WINDOWS`).
    convert_units : bool
        Convert unambiguous microvolts / volts to mV (flagged); when False such records are refused.
    quality : bool
        Run :func:`~ecglens.signal.quality.assess_quality` and add its flags.
    """

    preprocess: Any
    max_windows: int | None = DEFAULT_MAX_WINDOWS
    convert_units: bool = True
    quality: bool = True

    def __post_init__(self) -> None:
        if self.max_windows is not None and int(self.max_windows) < 1:
            raise ConfigError(f"max_windows must be at least 1 (or None), got {self.max_windows!r}.")
        if self.preprocess.crop == "random":  # prediction is deterministic: centre crops
            object.__setattr__(self, "preprocess", dataclasses.replace(self.preprocess, crop="center"))

    @cached_property
    def _chain(self) -> Any:
        """The contract's chain without its unit check (done, with conversion, by :meth:`harmonise`)."""
        return dataclasses.replace(self.preprocess, check_units=False)

    def harmonise(self, ecg: Ecg) -> tuple[Ecg, list[str]]:
        """Contract leads and mV: returns the adjusted record (native fs) and the flags so far.

        Raises
        ------
        LeadError
            A needed lead is missing and cannot be derived.
        UnitError
            Amplitudes are not plausible mV and cannot be converted unambiguously (or ``convert_units`` is off).
        """
        from .signal.functional import check_amplitude, guess_unit_scale

        pre = self.preprocess
        std = ecg.to_standard_leads(pre.leads, derive=True)
        flags: list[str] = []
        derived = [lead for lead in pre.leads if lead in std.derived_leads]
        if derived:
            flags.append("derived:" + ",".join(derived))
        factor = guess_unit_scale(std.signal)
        if factor != 1.0 and (factor is None or not self.convert_units):
            if pre.check_units:
                check_amplitude(std.signal)  # raises UnitError saying what the amplitudes look like
        elif factor != 1.0:
            std = std.replace(signal=std.signal * np.float32(factor))
            flags.append(f"unit_converted:{_UNIT_NAMES[factor]}")
        if abs(std.fs - pre.fs) > 1e-9:
            flags.append(f"resampled:{std.fs:g}->{pre.fs:g}")
        return std, flags

    def prepare(self, ecg: Ecg, record: str | None = None, keep_ecg: bool = False) -> PreparedEcg:
        """Model inputs and flags of one record.

        Parameters
        ----------
        ecg : Ecg
            Any recording (any fs >= 50 Hz, any length, any lead order/subset from which the contract's leads
            can be made, mV or unambiguous uV / V).
        record : str, optional
            Name used in the result (default ``ecg.record_id``).
        keep_ecg : bool
            Keep the harmonised record in the result (for reports; costs memory in batch jobs).

        Returns
        -------
        PreparedEcg

        Raises
        ------
        EcglensError
            (LeadError, UnitError, SamplingRateError, SignalQualityError) when the record cannot be brought to
            the contract; the message says why and how to fix it.
        """
        from .exceptions import SignalQualityWarning

        pre = self.preprocess
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SignalQualityWarning)
            std, flags = self.harmonise(ecg)
            n_total = _resampled_length(std.n_samples, std.fs, pre.fs)
            starts, cropped = plan_windows(n_total, pre.n_samples, self.max_windows, pre.crop)
            chain = self._chain
            if len(starts) == 1:
                windows = chain.apply(std)[None]
            else:
                windows = chain.windows(std, hop_seconds=(starts[1] - starts[0]) / pre.fs, max_windows=len(starts))
            if self.quality:
                from .signal.quality import assess_quality

                flags.extend(assess_quality(std).flags)
        flags.extend(name for name, hit in (("padded", n_total < pre.n_samples), ("cropped", cropped)) if hit)
        notes = tuple(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, SignalQualityWarning)))
        return PreparedEcg(record=ecg.record_id if record is None else record, windows=windows,
                           starts=tuple(starts[: windows.shape[0]]), n_resampled=n_total, flags=tuple(flags),
                           warnings=notes, ecg=std if keep_ecg else None)


# ============================================================================================ predictions
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
    """

    record: str
    outputs: Mapping[str, float]
    window_spread: Mapping[str, float]
    n_windows: int
    flags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=(), repr=False)

    def to_row(self) -> dict[str, Any]:
        """One ``ok`` row of the :meth:`Predictor.predict_paths` table."""
        return {"record": self.record, "status": "ok", "message": "; ".join(self.warnings), **self.outputs,
                "n_windows": self.n_windows, "flags": ";".join(self.flags)}


def _aggregate(per_window: Mapping[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and SD (ddof=1; NaN for one window) of each output over the windows of one record."""
    means = {k: float(np.mean(v)) for k, v in per_window.items()}
    spread = {k: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan") for k, v in per_window.items()}
    return means, spread


# ============================================================================================ input discovery
_WFDB_SUFFIXES = frozenset({".hea", ".dat", ".mat"})
#: suffixes picked up when searching folders (besides WFDB); raw arrays only when ``fs`` is given
_FOLDER_SUFFIXES = frozenset({".xml", ".dcm", ".dicom"})
_ARRAY_SUFFIXES = frozenset({".npy", ".npz", ".csv", ".tsv"})


def _record_key(path: Path) -> tuple[str, Path]:
    """(record name, file to read): a WFDB record is named by its path without suffix and read by its .hea."""
    if path.suffix.lower() in _WFDB_SUFFIXES:
        hea = path.with_suffix(".hea")
        if hea.exists():
            return str(path.with_suffix("")), hea
    return str(path), path


def _folder_files(folder: Path, with_arrays: bool) -> list[Path]:
    """Record files under ``folder``: WFDB headers (one per record), orphan .dat/.mat, vendor files, arrays."""
    from .io.paths import walk_files
    from .io.wfdb import signal_records

    suffixes = _FOLDER_SUFFIXES | (_ARRAY_SUFFIXES if with_arrays else frozenset())
    files = walk_files(folder)  # the tree is walked once
    all_headers = [h for h in files if h.suffix.lower() == ".hea"]
    headers = signal_records(all_headers)
    # segment and layout headers (not records themselves) still own their .dat files
    covered = {h.with_suffix("") for h in all_headers}
    others = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix in suffixes or (suffix in {".dat", ".mat"} and path.with_suffix("") not in covered):
            others.append(path)
    return sorted(headers + others)


def find_records(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                 with_arrays: bool = False) -> list[tuple[str, Path]]:
    """Expand files and folders into records, each once.

    Parameters
    ----------
    inputs : path or iterable of paths
        Files (any supported format; a WFDB record as ``rec``, ``rec.hea``, ``rec.dat`` or ``rec.mat``) and
        folders, searched recursively for WFDB records (``.hea``; a ``.dat``/``.mat`` without header is kept so
        that its error is reported), ``.xml``, ``.dcm``/``.dicom`` files, and, with ``with_arrays``, ``.npy``,
        ``.npz``, ``.csv``, ``.tsv`` arrays. Other files in folders are ignored.
    with_arrays : bool
        Also collect raw arrays from folders (they need ``fs=`` to be read).

    Returns
    -------
    list of (record name, path to read)
        In input order (sorted within a folder), duplicates removed. Missing files are kept (their error is
        reported when read).
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    seen: dict[str, Path] = {}
    for item in items:
        path = Path(item).expanduser()
        files = _folder_files(path, with_arrays) if path.is_dir() else [path]
        for file in files:
            name, target = _record_key(file)
            seen.setdefault(name, target)
    return list(seen.items())


_READ_PARAMS: dict[str, tuple[set[str], bool]] = {}


def read_record(path: str | os.PathLike[str], read_kwargs: Mapping[str, Any] | None = None) -> Ecg:
    """``read_ecg(path)`` passing only the ``read_kwargs`` the detected reader accepts.

    So ``fs=`` / ``leads=`` / ``units=`` given for raw arrays do not break the WFDB or XML readers of a mixed
    folder.
    """
    from .io import detect_format, get_reader, read_ecg

    if not read_kwargs:
        return read_ecg(path)
    fmt, real = detect_format(path)
    if fmt not in _READ_PARAMS:
        params = inspect.signature(get_reader(fmt).read).parameters
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        _READ_PARAMS[fmt] = (set(params), var_kw)
    names, var_kw = _READ_PARAMS[fmt]
    kwargs = {k: v for k, v in read_kwargs.items() if var_kw or k in names}
    return read_ecg(real, format=fmt, **kwargs)


# ============================================================================================ worker side
_WORKER: dict[str, Any] = {}


@dataclass
class _Item:
    """A record on its way through the pipeline (no signal)."""

    index: int
    record: str
    error: str | None = None
    n_windows: int = 0
    flags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _init_worker(adapter: InputAdapter, read_kwargs: Mapping[str, Any] | None) -> None:
    _WORKER["adapter"] = adapter
    _WORKER["read_kwargs"] = dict(read_kwargs or {})


def _error_text(err: BaseException) -> str:
    return str(err) if isinstance(err, EcglensError) else f"{type(err).__name__}: {err}"


def _prepare_chunk(chunk: Sequence[tuple[int, str, str]]) -> tuple[list[_Item], np.ndarray | None]:
    """Worker: read + harmonise a chunk of records; never raises for a bad record."""
    adapter: InputAdapter = _WORKER["adapter"]
    items, arrays = [], []
    for index, record, path in chunk:
        try:
            prepared = adapter.prepare(read_record(path, _WORKER["read_kwargs"]), record=record)
        except Exception as err:  # noqa: BLE001 - a batch job reports every failure as a row and goes on
            items.append(_Item(index, record, error=_error_text(err)))
            continue
        items.append(_Item(index, record, None, prepared.n_windows, prepared.flags, prepared.warnings))
        arrays.append(prepared.windows)
    return items, (np.concatenate(arrays) if arrays else None)


@contextmanager
def _chunk_stream(chunks: list[list[tuple[int, str, str]]], adapter: InputAdapter,
                  read_kwargs: Mapping[str, Any] | None, workers: int,
                  timeout: float) -> Iterator[Iterator[tuple[list[_Item], np.ndarray | None]]]:
    """Context giving the prepared chunks in order, computed by ``workers`` processes.

    The pool is started on entering the context (before any progress-bar thread exists); with ``workers <= 1``
    (or one chunk) the chunks are prepared lazily in this process.
    """
    if workers <= 1 or len(chunks) <= 1:
        _init_worker(adapter, read_kwargs)
        yield (_prepare_chunk(c) for c in chunks)
        return
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(processes=workers, initializer=_init_worker, initargs=(adapter, read_kwargs)) as pool:
        yield _ordered_results(pool, chunks, 2 * workers + 1, timeout)


def _ordered_results(pool: Any, chunks: list[list[tuple[int, str, str]]], in_flight: int,
                     timeout: float) -> Iterator[tuple[list[_Item], np.ndarray | None]]:
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
            yield [_Item(i, r, error=f"no answer from the reading worker within {timeout:g} s (it may have "
                                     "crashed on this file); read it alone with `ecglens info`.")
                   for i, r, _ in chunk], None


# ============================================================================================ the predictor
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
    **backend_options
        Passed to the backend factory (e.g. ``device="cuda"``, ``num_threads=1``).
    """

    def __init__(self, checkpoint: Any, backend: str | Backend = "torch", *,
                 max_windows: int | None = DEFAULT_MAX_WINDOWS, convert_units: bool = True, quality: bool = True,
                 **backend_options: Any) -> None:
        if isinstance(checkpoint, (str, os.PathLike)):
            from .train.checkpoint import load_checkpoint

            checkpoint = load_checkpoint(checkpoint)
        if getattr(checkpoint, "preprocess", None) is None:
            raise CheckpointError(f"checkpoint {getattr(checkpoint, 'path', '')} declares no input contract "
                                  "(preprocess); save it with save_checkpoint(..., preprocess=Preprocess(...)).")
        self.checkpoint = checkpoint
        self.adapter = InputAdapter(checkpoint.preprocess, max_windows, convert_units, quality)
        self.backend_name = backend if isinstance(backend, str) else type(backend).__name__
        self.backend: Backend = (create_backend(backend, checkpoint, **backend_options) if isinstance(backend, str)
                                 else backend)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], backend: str | Backend = "torch",
                        **kwargs: Any) -> Predictor:
        """Load a shipped model by name (``"age-sex"``) or a checkpoint file, ready to predict."""
        from .train.checkpoint import load_checkpoint

        return cls(load_checkpoint(name_or_path), backend=backend, **kwargs)

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
        return [*BASE_COLUMNS, *self.output_names, "n_windows", "flags"]

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
        x = np.asarray(windows, dtype=np.float32)
        step = max(1, int(batch_size))
        raw = np.concatenate([np.asarray(self.backend.run(x[i:i + step])) for i in range(0, len(x), step)])
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.checkpoint.task.postprocess(raw).items()}

    def predict_prepared(self, prepared: PreparedEcg, batch_size: int = 64) -> Prediction:
        """Prediction for a record already brought to the contract (:meth:`InputAdapter.prepare`)."""
        means, spread = _aggregate(self.run_windows(prepared.windows, batch_size))
        return Prediction(prepared.record, means, spread, prepared.n_windows, prepared.flags, prepared.warnings)

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
        name, target = _record_key(Path(path).expanduser())
        return self.predict_ecg(read_record(target, read_kwargs), record=name)

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
            Reading processes (default: ``min(4, cpu_count)``; 0 or 1 reads in this process).
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
            warnings of an ok row), one column per output, ``n_windows``, ``flags`` (``;``-joined). One row per
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
        table = pd.DataFrame(rows, columns=self.columns)
        seconds = time.perf_counter() - start
        n_ok = int((table["status"] == "ok").sum())
        table.attrs.update({"model": self.model_label, "backend": self.backend_name, "n_ok": n_ok,
                            "n_error": len(table) - n_ok, "seconds": seconds,
                            "ecgs_per_s": len(table) / seconds if seconds > 0 else float("nan")})
        return table

    def iter_predict(self, records: Sequence[tuple[str, Path]], progress: bool = True, batch_size: int = 64,
                     workers: int | None = None, read_kwargs: Mapping[str, Any] | None = None,
                     chunk_size: int | None = None, timeout: float = 600.0) -> Iterator[dict[str, Any]]:
        """Stream table rows (dicts, :attr:`columns`) for ``(record name, path)`` pairs, in order.

        Reading and harmonisation run in ``workers`` processes; the model runs here on batches of about
        ``batch_size`` windows. Only the chunks in flight and one batch are held in memory.
        """
        from tqdm.auto import tqdm

        n_workers = _default_workers() if workers is None else max(0, int(workers))
        size = chunk_size or max(1, min(32, math.ceil(len(records) / max(1, 4 * n_workers))))
        tasks = [(i, name, str(path)) for i, (name, path) in enumerate(records)]
        chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        batcher = _Batcher(self, batch_size)
        pooled = n_workers if n_workers > 1 and len(chunks) > 1 else 0  # _chunk_stream's rule for a pool
        share = getattr(self.backend, "sharing_cores", None)
        with _chunk_stream(chunks, self.adapter, read_kwargs, n_workers, timeout) as stream, \
                share(pooled) if share is not None else nullcontext(), \
                tqdm(total=len(tasks), unit="ECG", desc="predict", disable=not progress) as bar:
            for items, windows in stream:
                rows = batcher.add(items, windows)
                bar.update(len(rows))
                yield from rows
            rows = batcher.flush()
            bar.update(len(rows))
            yield from rows


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _describe_inputs(inputs: Any) -> str:
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    shown = ", ".join(str(i) for i in items[:3]) + (f" (and {len(items) - 3} more)" if len(items) > 3 else "")
    return shown or "the (empty) list of inputs"


class _Batcher:
    """Collects prepared records in input order; runs the model once enough windows are waiting."""

    def __init__(self, predictor: Predictor, batch_size: int) -> None:
        self.predictor = predictor
        self.batch_size = max(1, int(batch_size))
        self.items: list[_Item] = []
        self.arrays: list[np.ndarray] = []
        self.n_windows = 0

    def add(self, items: list[_Item], windows: np.ndarray | None) -> list[dict[str, Any]]:
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

    def _rows(self, items: list[_Item], outputs: Mapping[str, np.ndarray], failure: str | None) -> list[dict]:
        rows, pos = [], 0
        names = self.predictor.output_names
        for item in items:
            if item.error is not None or failure is not None:
                rows.append({"record": item.record, "status": "error", "message": item.error or failure,
                             **{k: np.nan for k in names}, "n_windows": 0,
                             "flags": ";".join(item.flags)})
                pos += item.n_windows
                continue
            per_window = {k: v[pos:pos + item.n_windows] for k, v in outputs.items()}
            pos += item.n_windows
            means, spread = _aggregate(per_window)
            rows.append(Prediction(item.record, means, spread, item.n_windows, item.flags, item.warnings).to_row())
        return rows


# ============================================================================================ demo
def demo_predictions(model_name: str, out_dir: str | os.PathLike[str]) -> pd.DataFrame | None:
    """Predict for the shipped example ECGs, print the table, write ``preds.csv`` and one HTML report.

    Used by ``ecglens demo``. When ``model_name`` is not installed (unknown name / missing file), prints a
    one-line note and returns ``None``.
    """
    from .examples import example_paths

    out = Path(out_dir)
    try:
        predictor = Predictor.from_pretrained(model_name)
    except CheckpointError:
        print(f"\n(model {model_name!r} is not installed: skipping predictions. Train one with `ecglens train "
              "configs/age_sex.yaml`, or pass --model CHECKPOINT.)")
        return None
    paths = example_paths()
    table = predictor.predict_paths(paths, progress=False, workers=1)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "preds.csv", index=False)
    shown = table.assign(record=[Path(r).name for r in table["record"]])
    shown = shown.drop(columns=["message"]) if not shown["message"].astype(bool).any() else shown
    print(f"\nPredictions of {predictor.model_label} for the example ECGs:\n")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nwrote {out / 'preds.csv'}")
    if paths:
        from .report import write_report

        html = write_report(paths[0], out / f"report_{paths[0].stem}.html", predictor=predictor)
        print(f"wrote {html}")
    return table
