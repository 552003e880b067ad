"""ONNX export of ecglens checkpoints, numerical verification, and an onnxruntime inference backend.

:func:`export_onnx` writes one self-describing ``.onnx`` file: the graph takes ``ecg`` (float32
``[batch, in_leads, n_samples]``, mV at the checkpoint's ``fs``) and returns ``raw`` (float32
``[batch, num_outputs]``, the model's raw outputs before ``task.postprocess``). Its ``metadata_props`` carry the
checkpoint's description, so the file alone says what it expects and what it returns:

* ``ecglens``: the full JSON document of the checkpoint (model name / kwargs, ``preprocess``, ``task``,
  ``config``, ``metrics``, versions) plus an ``onnx`` block (opset, dynamic axes, input / output names, notes);
* ``model_name``, ``preprocess``, ``task``, ``input_contract`` as separate entries for generic viewers (Netron,
  ``onnx.load(...).metadata_props``).

Dynamic axes: every model of the zoo follows the contract "any input length" (global pooling), and all of them
export with a dynamic batch and a dynamic length under opset 17 with the TorchScript-based exporter (checked by
``tests/test_export.py`` for every ``list_models()`` entry; S4 switches its FFT convolution to an equivalent DFT
matrix product while exporting). Because a trace can silently bake a length into a graph, the export is
*probed*: the ONNX graph is run at a second length and compared with PyTorch. A model that fails the probe is
re-exported with a fixed length and the file says so (``onnx.dynamic_length = false`` plus a ``note``), and a
:class:`UserWarning` tells the user.

:func:`verify_onnx` compares onnxruntime with PyTorch on random mV-scale input at one or more lengths.
:class:`OnnxBackend` runs an exported file with onnxruntime on CPU; it is registered with the predictor's backend
registry as ``"onnx"`` so ``Predictor.from_pretrained(name, backend="onnx")`` works: the checkpoint is exported
on the fly into a cache folder (``$ECGLENS_CACHE/onnx`` or ``~/.cache/ecglens/onnx``, keyed by the checkpoint's
content hash and the opset) unless an ``.onnx`` file is given.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .artifact import ONNX, Checkpoint, OutputSpec, load_checkpoint, model_format, register_loader
from .exceptions import CheckpointError, ConfigError, LeadError
from .predict import register_backend

__all__ = [
    "INPUT_NAME",
    "ONNX_FORMAT",
    "OUTPUT_NAME",
    "OnnxBackend",
    "cached_onnx",
    "export_onnx",
    "load_onnx_checkpoint",
    "onnx_backend",
    "onnx_cache_dir",
    "read_onnx_metadata",
    "verify_onnx",
]

#: value of the ``format`` entry in the ``onnx`` block of the metadata
ONNX_FORMAT = "ecglens-onnx/1"
INPUT_NAME = "ecg"
OUTPUT_NAME = "raw"
_META_KEY = "ecglens"
#: default model input length when a checkpoint has no preprocess spec (100 Hz x 10 s)
_DEFAULT_SAMPLES = 1000
#: agreement required by the dynamic-length probe (absolute + relative to the output scale)
_PROBE_ATOL = 1e-3


def _load(checkpoint: Any) -> Any:
    """A :class:`~ecglens.artifact.checkpoint.Checkpoint` from itself, a path or a shipped name."""
    return checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)


def _n_samples(ckpt: Any) -> int:
    """Input length of the checkpoint's contract (1000 when it declares none)."""
    return int(ckpt.preprocess.n_samples) if ckpt.preprocess is not None else _DEFAULT_SAMPLES


def _cpu_model(ckpt: Any) -> torch.nn.Module:
    """The checkpoint's model in eval mode on CPU (a copy when it lives elsewhere)."""
    model = ckpt.model
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    return model.eval()


def _random_input(batch: int, leads: int, length: int, seed: int) -> np.ndarray:
    """Seeded mV-scale noise, float32 ``[batch, leads, length]``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, leads, length)) * 0.5).astype(np.float32)


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporter's tracer / deprecation chatter (correctness is checked numerically instead)."""
    with warnings.catch_warnings():
        for category in (torch.jit.TracerWarning, DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


def _torch_export(model: torch.nn.Module, x: torch.Tensor, path: Path, opset: int,
                  dynamic_batch: bool, dynamic_length: bool) -> None:
    """Run ``torch.onnx.export`` (TorchScript-based exporter; it needs no ``onnxscript``)."""
    axes: dict[str, dict[int, str]] = {INPUT_NAME: {}, OUTPUT_NAME: {}}
    if dynamic_batch:
        axes[INPUT_NAME][0] = axes[OUTPUT_NAME][0] = "batch"
    if dynamic_length:
        axes[INPUT_NAME][2] = "samples"
    kwargs: dict[str, Any] = {"opset_version": int(opset), "input_names": [INPUT_NAME],
                              "output_names": [OUTPUT_NAME], "dynamic_axes": {k: v for k, v in axes.items() if v}}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    with _quiet_export(), torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(model, (x,), str(path), **kwargs)


def _session(path: str | os.PathLike[str], threads: int | None = None, spin: bool | None = None) -> Any:
    """An onnxruntime CPU session.

    ``threads`` intra-op threads (default: onnxruntime's choice); ``spin`` whether idle threads spin-wait
    (default: onnxruntime's, which spins, except with a single explicit thread; not spinning is friendlier on a
    shared CPU).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if spin is False or (spin is None and threads and int(threads) == 1):
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _torch_raw(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).float().numpy()


def _probe_length(model: torch.nn.Module, path: Path, leads: int, length: int, batch: int) -> str | None:
    """Run the exported graph at a second length; ``None`` when it matches PyTorch, else the reason."""
    x = _random_input(batch, leads, length, seed=1)
    try:
        got = _session(path, threads=1).run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own error types for shape failures
        return f"onnxruntime failed at length {length} ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
    ref = _torch_raw(model, x)
    diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    if got.shape != ref.shape or not diff <= _PROBE_ATOL * (1.0 + float(np.max(np.abs(ref)))):
        return f"at length {length} the graph differs from PyTorch (max abs diff {diff:.3g})"
    return None


def _contract(ckpt: Any, length: int | None, dynamic_batch: bool) -> dict[str, Any]:
    """The input contract stated in the file (what the ``ecg`` input must be)."""
    pre = ckpt.preprocess
    return {
        "input": INPUT_NAME, "output": OUTPUT_NAME, "dtype": "float32", "units": "mV",
        "shape": ["batch" if dynamic_batch else 1, int(ckpt.in_leads), "samples" if length is None else length],
        "fs": None if pre is None else float(pre.fs),
        "n_samples": _n_samples(ckpt),
        "leads": None if pre is None else list(pre.leads),
        "output_names": list(ckpt.task.output_names),
        "raw_outputs": int(ckpt.task.num_outputs),
        "postprocess": "raw outputs are in the task's internal units; apply TaskSpec.from_dict(task).postprocess",
    }


def _document(ckpt: Any) -> dict[str, Any]:
    """The checkpoint's JSON description (from the file it was loaded from, completed from its attributes)."""
    doc = json.loads(json.dumps(ckpt.meta or {}, default=str))
    doc.setdefault("model", {"name": ckpt.model_name, "kwargs": dict(ckpt.model_kwargs),
                             "in_leads": int(ckpt.in_leads), "num_outputs": int(ckpt.task.num_outputs)})
    doc.setdefault("preprocess", None if ckpt.preprocess is None else ckpt.preprocess.to_dict())
    doc.setdefault("task", ckpt.task.to_dict())
    return json.loads(json.dumps(doc, default=str))


def _onnx_block(ckpt: Any, opset: int, dynamic_batch: bool, dynamic_length: bool,
                note: str | None) -> dict[str, Any]:
    """The ``onnx`` part of the stored description: axes, names, versions, contract, notes."""
    n = _n_samples(ckpt)
    return {"format": ONNX_FORMAT, "opset": int(opset), "dynamic_batch": bool(dynamic_batch),
            "dynamic_length": bool(dynamic_length), "fixed_length": None if dynamic_length else n,
            "input_name": INPUT_NAME, "output_name": OUTPUT_NAME, "torch_version": torch.__version__,
            "source": ckpt.path.name if getattr(ckpt, "path", None) else None,
            "note": None if note is None else f"fixed length {n}: {note}",
            "input_contract": _contract(ckpt, None if dynamic_length else n, dynamic_batch)}


def _write_metadata(path: Path, ckpt: Any, onnx_block: dict[str, Any]) -> None:
    """Store the checkpoint's description in the file's ``metadata_props`` (rewrites the file)."""
    import onnx

    proto = onnx.load(str(path))
    document = _document(ckpt)
    document["onnx"] = onnx_block
    entries = {
        _META_KEY: document,
        "model_name": ckpt.model_name,
        "preprocess": document.get("preprocess"),
        "task": document.get("task"),
        "input_contract": onnx_block["input_contract"],
    }
    del proto.metadata_props[:]
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key = key
        prop.value = value if isinstance(value, str) else json.dumps(value)
    proto.doc_string = (f"ecglens {ckpt.model_name} ({ckpt.task.name}): input '{INPUT_NAME}' "
                        f"[batch, {ckpt.in_leads}, samples] float32 mV -> '{OUTPUT_NAME}' "
                        f"[batch, {ckpt.task.num_outputs}] raw outputs {list(ckpt.task.output_names)}")
    onnx.save(proto, str(path))


def export_onnx(checkpoint: Any, path: str | os.PathLike[str], opset: int = 17, dynamic_batch: bool = True,
                dynamic_length: bool = True) -> Path:
    """Export a checkpoint to one self-describing ONNX file.

    Parameters
    ----------
    checkpoint : Checkpoint or str or path
        A loaded checkpoint, a ``.safetensors`` path or a shipped model's name (``"age-sex"``).
    path : path
        Output ``.onnx`` file (written atomically; parent folders are created).
    opset : int
        ONNX opset (17 or newer recommended).
    dynamic_batch : bool
        Leave the batch axis free (else the graph takes exactly one record per call).
    dynamic_length : bool
        Leave the samples axis free. Checked by running the graph at a second length; a model whose graph does
        not generalise is re-exported at the checkpoint's ``n_samples`` with a warning and a note in the file.

    Returns
    -------
    Path
        The written file. Input ``ecg``: float32 ``[batch, in_leads, samples]`` in mV at the checkpoint's fs;
        output ``raw``: float32 ``[batch, num_outputs]``.

    Raises
    ------
    CheckpointError
        When the checkpoint cannot be loaded or the exporter fails (the message names the model).
    """
    ckpt = _load(checkpoint)
    model, n = _cpu_model(ckpt), _n_samples(ckpt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    batch = 2 if dynamic_batch else 1
    x = torch.from_numpy(_random_input(batch, int(ckpt.in_leads), n, seed=0))
    note = None
    try:
        try:
            _torch_export(model, x, tmp, opset, dynamic_batch, dynamic_length)
            if dynamic_length:
                note = _probe_length(model, tmp, int(ckpt.in_leads), n + n // 2 + 1, batch)
            if note is not None:
                warnings.warn(f"{ckpt.model_name}: the ONNX graph is not length-generic ({note}); exported with a "
                              f"fixed length of {n} samples instead.", UserWarning, stacklevel=2)
                _torch_export(model, x, tmp, opset, dynamic_batch, False)
                dynamic_length = False
        except (RuntimeError, TypeError, ValueError, torch.onnx.errors.OnnxExporterError) as err:
            raise CheckpointError(f"ONNX export of model {ckpt.model_name!r} failed at opset {opset} ({err}). "
                                  "Try a newer opset (--opset 18) or use the PyTorch backend.") from err
        _write_metadata(tmp, ckpt, _onnx_block(ckpt, opset, dynamic_batch, dynamic_length, note))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ecglens description stored in an exported file (the checkpoint's document plus its ``onnx`` block).

    Raises
    ------
    CheckpointError
        When the file is missing, not ONNX, or not written by :func:`export_onnx`.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX file {path} not found. Export one with `ecglens export CHECKPOINT --onnx FILE`.")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - onnx raises DecodeError and friends for malformed files
        raise CheckpointError(f"{path} is not a readable ONNX file ({type(err).__name__}).") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if _META_KEY not in props:
        raise CheckpointError(f"{path} is an ONNX file but has no ecglens metadata; export it with "
                              "ecglens.export.export_onnx so it carries its input contract.")
    try:
        return json.loads(props[_META_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: the ecglens metadata is not valid JSON ({err}).") from None


def verify_onnx(checkpoint: Any, path: str | os.PathLike[str], lengths: Sequence[int] | None = None,
                batch_size: int = 2, seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime and PyTorch raw outputs on random input.

    Parameters
    ----------
    checkpoint : Checkpoint or str or path
        The checkpoint the file was exported from.
    path : path
        The ``.onnx`` file.
    lengths : sequence of int, optional
        Input lengths (samples) to test; default the checkpoint's ``n_samples`` and, for a length-dynamic file,
        also ``1.5 x n_samples``.
    batch_size : int
        Records per test batch (1 is used for a fixed-batch file).
    seed : int
        Seed of the random mV-scale input.

    Returns
    -------
    float
        ``max |onnx - torch|`` over all lengths, batch items and outputs (raw output units).

    Raises
    ------
    ConfigError
        A length other than the fixed one for a fixed-length file.
    """
    ckpt = _load(checkpoint)
    info = read_onnx_metadata(path)["onnx"]
    n = _n_samples(ckpt)
    lengths = list(lengths) if lengths is not None else ([n, n + n // 2] if info["dynamic_length"] else [n])
    fixed = info.get("fixed_length")
    bad = [int(length) for length in lengths if fixed is not None and int(length) != int(fixed)]
    if bad:
        raise ConfigError(f"{path} was exported with a fixed length of {fixed} samples; cannot verify lengths "
                          f"{bad}. Verify at {fixed} or re-export with dynamic_length=True.")
    batch = int(batch_size) if info["dynamic_batch"] else 1
    session, model = _session(path, threads=1), _cpu_model(ckpt)
    worst = 0.0
    for i, length in enumerate(lengths):
        x = _random_input(batch, int(ckpt.in_leads), int(length), seed=seed + i)
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        worst = max(worst, float(np.max(np.abs(got - _torch_raw(model, x)))))
    return worst


# ----------------------------------------------------------------------------------------------- caching


def onnx_cache_dir() -> Path:
    """Where on-the-fly exports are kept: ``$ECGLENS_CACHE/onnx``, else ``~/.cache/ecglens/onnx``."""
    root = os.environ.get("ECGLENS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "ecglens") / "onnx"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def cached_onnx(checkpoint: Any, cache_dir: str | os.PathLike[str] | None = None, opset: int = 17) -> Path:
    """The ONNX export of a checkpoint, written on first use into a cache folder.

    The cache key is the checkpoint file's SHA-256 (first 16 hex digits), the opset and the torch version, so a
    retrained checkpoint under the same name is exported afresh.

    Returns
    -------
    Path
        ``<cache_dir>/<model_name>-<digest>-opset<opset>.onnx``.
    """
    ckpt = _load(checkpoint)
    folder = Path(cache_dir) if cache_dir is not None else onnx_cache_dir()
    tag = hashlib.sha256(f"{_file_digest(Path(ckpt.path))}:{torch.__version__}".encode()).hexdigest()[:16]
    target = folder / f"{ckpt.model_name}-{tag}-opset{int(opset)}.onnx"
    if not target.is_file():
        export_onnx(ckpt, target, opset=opset)
    return target


# ----------------------------------------------------------------------------------------------- backend


class OnnxBackend:
    """Run an exported ecglens model with onnxruntime on CPU.

    Parameters
    ----------
    path : path
        An ``.onnx`` file written by :func:`export_onnx`.
    threads : int, optional
        onnxruntime intra-op threads (default: onnxruntime's choice, all cores).

    Attributes
    ----------
    metadata : dict
        The checkpoint document stored in the file (``model``, ``preprocess``, ``task``, ``onnx``, ...).
    in_leads : int
        Leads of the input.
    fixed_length : int or None
        The only accepted length for a fixed-length export, else ``None``.
    """

    name = "onnx"

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        self.path = Path(path)
        self.metadata = read_onnx_metadata(self.path)
        info = self.metadata["onnx"]
        self.in_leads = int(self.metadata["model"]["in_leads"])
        self.fixed_length = info.get("fixed_length")
        self.dynamic_batch = bool(info["dynamic_batch"])
        self.threads = int(threads) if threads else None
        self._session = _session(self.path, threads)
        self._shared: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"OnnxBackend({str(self.path)!r})"

    @contextlib.contextmanager
    def sharing_cores(self, n_busy: int) -> Iterator[None]:
        """Run on the cores left by ``n_busy`` busy reading processes while the context is open.

        onnxruntime's default pool has one thread per core and spin-waits between operators; beside busy readers
        those threads mostly spin. Inside the context a second session with ``cpu_count - n_busy`` threads (at
        least one) and no spinning is used; explicitly set ``threads`` are left alone.
        """
        if self.threads is not None or n_busy <= 0:
            yield
            return
        from .predict import cores_left

        n = cores_left(n_busy)
        if n not in self._shared:
            self._shared[n] = _session(self.path, n, spin=False)
        own, self._session = self._session, self._shared[n]
        try:
            yield
        finally:
            self._session = own

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw model outputs.

        Parameters
        ----------
        x : np.ndarray, shape (N, in_leads, n_samples)
            Model input (already brought to the checkpoint's contract), mV.

        Returns
        -------
        np.ndarray, float32, shape (N, num_outputs)
            Raw outputs, as the PyTorch model returns them.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != self.in_leads:
            raise LeadError(f"{self.path.name} expects input [N, {self.in_leads}, samples], got {x.shape}; bring "
                            "records to the model's contract first (ecglens.Predictor does).")
        if self.fixed_length is not None and x.shape[2] != int(self.fixed_length):
            raise ConfigError(f"{self.path.name} was exported for exactly {self.fixed_length} samples, got "
                              f"{x.shape[2]}. Crop / pad to that length or re-export with dynamic_length=True.")
        if not self.dynamic_batch:
            parts = [self._session.run([OUTPUT_NAME], {INPUT_NAME: x[i:i + 1]})[0] for i in range(len(x))]
            return np.concatenate(parts) if parts else np.zeros((0, self.metadata["model"]["num_outputs"]),
                                                                np.float32)
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def load_onnx_checkpoint(path: str | os.PathLike[str]) -> Any:
    """A weightless :class:`~ecglens.artifact.checkpoint.Checkpoint` described by an exported ONNX file.

    It carries the task, the input contract and the metadata but no PyTorch model (``model`` is ``None``), so
    ``Predictor(load_onnx_checkpoint("model.onnx"), backend="onnx")`` predicts with onnxruntime alone.
    """
    from .signal.transforms import Preprocess

    doc = read_onnx_metadata(path)
    model = doc.get("model") or {}
    return Checkpoint(model=None, model_name=str(model.get("name")), model_kwargs=dict(model.get("kwargs") or {}),
                      in_leads=int(model.get("in_leads", 12)), task=OutputSpec.from_dict(doc["task"]),
                      preprocess=None if doc.get("preprocess") is None else Preprocess.from_dict(doc["preprocess"]),
                      config=doc.get("config"), metrics=dict(doc.get("metrics") or {}),
                      version=str(doc.get("ecglens_version", "")), created=str(doc.get("created", "")),
                      path=Path(path), meta=doc)


def _check_match(ckpt: Any, backend: OnnxBackend) -> None:
    """Refuse an ONNX file exported from a different model than ``ckpt``."""
    model = backend.metadata.get("model") or {}
    ours = (ckpt.model_name, int(ckpt.in_leads), int(ckpt.task.num_outputs))
    theirs = (model.get("name"), int(model.get("in_leads", -1)), int(model.get("num_outputs", -1)))
    if ours != theirs:
        raise CheckpointError(f"{backend.path.name} holds model {theirs[0]!r} ({theirs[1]} leads, {theirs[2]} "
                              f"outputs) but the checkpoint is {ours[0]!r} ({ours[1]} leads, {ours[2]} outputs). "
                              "Export the ONNX file from this checkpoint (`ecglens export`).")


def onnx_backend(checkpoint: Any, onnx_path: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, opset: int = 17,
                 num_threads: int | None = None) -> OnnxBackend:
    """Backend factory registered as ``"onnx"`` with :func:`ecglens.predict.register_backend`.

    Parameters
    ----------
    checkpoint : Checkpoint
        The checkpoint to run (a weightless one from :func:`load_onnx_checkpoint` brings its own file).
    onnx_path : path, optional
        An exported file to use (checked against the checkpoint); default: the checkpoint's own ``.onnx`` path,
        else an on-the-fly export cached by :func:`cached_onnx`.
    cache_dir : path, optional
        Cache folder of on-the-fly exports (default :func:`onnx_cache_dir`).
    opset : int
        Opset of on-the-fly exports.
    num_threads : int, optional
        onnxruntime intra-op threads (the same option name as the torch backend's).
    """
    own = Path(getattr(checkpoint, "path", "") or "")
    if onnx_path is None and model_format(own) is ONNX:
        onnx_path = own
    path = Path(onnx_path) if onnx_path is not None else cached_onnx(checkpoint, cache_dir, opset)
    backend = OnnxBackend(path, threads=num_threads)
    _check_match(checkpoint, backend)
    return backend


register_backend("onnx", onnx_backend, overwrite=True)
register_loader(ONNX.name, load_onnx_checkpoint)
