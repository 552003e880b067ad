"""ONNX export of ecglens checkpoints and its numerical verification.

:func:`export_onnx` writes one self-describing ``.onnx`` file: the graph takes ``ecg`` (float32
``[batch, in_leads, n_samples]``, mV at the checkpoint's ``fs``) and returns, besides ``raw`` (float32
``[batch, num_outputs]``, the model's raw outputs before ``task.postprocess``), one output per name that
``ecglens predict`` writes, in user units and computed in the graph (float32 ``[batch]``): ``age`` in years and
``age_std`` (a regression target: ``raw * std + mean`` with the training label statistics; its predicted SD),
``p_female``, ``p_MI``, ... (probabilities: the sigmoid of the logit). So a user outside Python reads
predictions with plain onnxruntime. They are the outputs of one window of the contract's ``n_samples``; for a
longer record ``ecglens predict`` averages the outputs of windows of that length (:mod:`ecglens.artifact.windows`).
Its ``metadata_props`` carry the checkpoint's description, so the file alone says what it expects and what it
returns:

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

:func:`verify_onnx` compares onnxruntime with PyTorch on random mV-scale input at one or more lengths;
:func:`cached_onnx` exports a checkpoint once into a cache folder (``$ECGLENS_CACHE/onnx`` or
``~/.cache/ecglens/onnx``, keyed by the checkpoint's content hash and the opset), which the ``"onnx"`` prediction
backend (:mod:`ecglens.predict.onnx`) uses for a ``.safetensors`` model. Reading an exported file (its metadata, a
weightless checkpoint) is :mod:`ecglens.artifact.onnx`.
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

from .artifact import load_checkpoint
from .artifact.checkpoint import Checkpoint, CheckpointLike
from .artifact.onnx import INPUT_NAME, META_KEY, ONNX_FORMAT, OUTPUT_NAME, onnx_session, read_onnx_metadata
from .artifact.outputs import LOG_NLL_EPS
from .exceptions import CheckpointError, ConfigError
from .jsonutil import json_ready

__all__ = [
    "INPUT_NAME",
    "ONNX_FORMAT",
    "OUTPUT_NAME",
    "POSTPROCESS_GRAPHS",
    "WithOutputs",
    "cached_onnx",
    "export_onnx",
    "onnx_cache_dir",
    "read_onnx_metadata",
    "verify_onnx",
]

#: default model input length when a checkpoint has no preprocess spec (100 Hz x 10 s)
_DEFAULT_SAMPLES = 1000
#: agreement required by the dynamic-length probe (absolute + relative to the output scale)
_PROBE_ATOL = 1e-3


def _load(checkpoint: CheckpointLike) -> Any:
    """A :class:`~ecglens.artifact.checkpoint.Checkpoint` from itself, a path or a shipped name."""
    return checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)


def _n_samples(ckpt: Checkpoint) -> int:
    """Input length of the checkpoint's contract (1000 when it declares none)."""
    return int(ckpt.preprocess.n_samples) if ckpt.preprocess is not None else _DEFAULT_SAMPLES


def _cpu_model(ckpt: Checkpoint) -> torch.nn.Module:
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


def _regression_graph(target: Any, raw: torch.Tensor) -> list[torch.Tensor]:
    """``raw * std + mean`` (and ``exp(logvar / 2) * std``), as ``RegressionOutput.postprocess``."""
    mean, std = target.stats()
    out = [raw[:, 0] * std + mean]
    if target.num_outputs == 2:
        out.append(torch.exp(0.5 * torch.clamp(raw[:, 1], min=LOG_NLL_EPS)) * std)
    return out


def _probability_graph(target: Any, raw: torch.Tensor) -> list[torch.Tensor]:
    """The sigmoid of each logit, as ``BinaryOutput`` / ``MultilabelOutput.postprocess``."""
    return [torch.sigmoid(raw[:, i]) for i in range(target.num_outputs)]


#: output kind (``Output.to_dict()["kind"]``) -> its postprocessing as torch operations (exported into the graph)
POSTPROCESS_GRAPHS = {"regression": _regression_graph, "binary": _probability_graph,
                      "multilabel": _probability_graph}


class WithOutputs(torch.nn.Module):
    """A model that returns ``(raw, *named outputs in user units)``: ``task.postprocess`` in the graph.

    Parameters
    ----------
    model : torch.nn.Module
        ``[batch, leads, samples] -> raw [batch, num_outputs]``.
    task : OutputSpec
        Its fitted outputs; every target's kind must be in :data:`POSTPROCESS_GRAPHS`.
    """

    def __init__(self, model: torch.nn.Module, task: Any) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raw = self.model(x)
        named = []
        for target, cols, _ in self.task.target_slices():
            named += POSTPROCESS_GRAPHS[target.to_dict()["kind"]](target, raw[:, cols])
        return (raw, *named)


def _named_outputs(ckpt: Checkpoint) -> list[str]:
    """The outputs exported besides ``raw``: the task's output names (empty for kinds without a graph)."""
    kinds = [t.to_dict().get("kind") for t in ckpt.task.targets]
    if not all(kind in POSTPROCESS_GRAPHS for kind in kinds):
        return []
    names = list(ckpt.task.output_names)
    clash = {INPUT_NAME, OUTPUT_NAME} & set(names)
    if clash:
        raise CheckpointError(f"the task's outputs {sorted(clash)} clash with the graph's own names "
                              f"({INPUT_NAME!r}, {OUTPUT_NAME!r}); rename them in the task and retrain.")
    return names


def _torch_export(model: torch.nn.Module, x: torch.Tensor, path: Path, opset: int,
                  dynamic_batch: bool, dynamic_length: bool, named: Sequence[str] = ()) -> None:
    """Run ``torch.onnx.export`` (TorchScript-based exporter; it needs no ``onnxscript``)."""
    outputs = [OUTPUT_NAME, *named]
    axes: dict[str, dict[int, str]] = {name: {} for name in (INPUT_NAME, *outputs)}
    if dynamic_batch:
        for name in (INPUT_NAME, *outputs):
            axes[name][0] = "batch"
    if dynamic_length:
        axes[INPUT_NAME][2] = "samples"
    kwargs: dict[str, Any] = {"opset_version": int(opset), "input_names": [INPUT_NAME],
                              "output_names": outputs, "dynamic_axes": {k: v for k, v in axes.items() if v}}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    with _quiet_export(), torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(model, (x,), str(path), **kwargs)


def _torch_raw(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    return (out[0] if isinstance(out, tuple) else out).float().numpy()


def _probe_length(model: torch.nn.Module, path: Path, leads: int, length: int, batch: int) -> str | None:
    """Run the exported graph at a second length; ``None`` when it matches PyTorch, else the reason."""
    x = _random_input(batch, leads, length, seed=1)
    try:
        got = onnx_session(path, threads=1).run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own error types for shape failures
        return f"onnxruntime failed at length {length} ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
    ref = _torch_raw(model, x)
    diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    if got.shape != ref.shape or not diff <= _PROBE_ATOL * (1.0 + float(np.max(np.abs(ref)))):
        return f"at length {length} the graph differs from PyTorch (max abs diff {diff:.3g})"
    return None


def _contract(ckpt: Checkpoint, length: int | None, dynamic_batch: bool, named: Sequence[str]) -> dict[str, Any]:
    """The input contract stated in the file (what the ``ecg`` input must be, what comes out)."""
    pre = ckpt.preprocess
    return {
        "input": INPUT_NAME, "output": OUTPUT_NAME, "dtype": "float32", "units": "mV",
        "shape": ["batch" if dynamic_batch else 1, int(ckpt.in_leads), "samples" if length is None else length],
        "fs": None if pre is None else float(pre.fs),
        "n_samples": _n_samples(ckpt),
        "leads": None if pre is None else list(pre.leads),
        "output_names": list(ckpt.task.output_names),
        "graph_outputs": [OUTPUT_NAME, *named],
        "raw_outputs": int(ckpt.task.num_outputs),
        "postprocess": ("outputs other than 'raw' are in user units (regression in the label's units, e.g. age "
                        "in years; p_* probabilities), computed in the graph for one window of n_samples; 'raw' "
                        "is in the task's internal units (TaskSpec.from_dict(task).postprocess)"),
    }


def _document(ckpt: Checkpoint) -> dict[str, Any]:
    """The checkpoint's JSON description (from the file it was loaded from, completed from its attributes)."""
    doc = json_ready(ckpt.meta or {}, default=str)
    doc.setdefault("model", {"name": ckpt.model_name, "kwargs": dict(ckpt.model_kwargs),
                             "in_leads": int(ckpt.in_leads), "num_outputs": int(ckpt.task.num_outputs)})
    doc.setdefault("preprocess", None if ckpt.preprocess is None else ckpt.preprocess.to_dict())
    doc.setdefault("task", ckpt.task.to_dict())
    return json_ready(doc, default=str)


def _onnx_block(ckpt: Checkpoint, opset: int, dynamic_batch: bool, dynamic_length: bool,
                note: str | None, named: Sequence[str]) -> dict[str, Any]:
    """The ``onnx`` part of the stored description: axes, names, versions, contract, notes."""
    n = _n_samples(ckpt)
    return {"format": ONNX_FORMAT, "opset": int(opset), "dynamic_batch": bool(dynamic_batch),
            "dynamic_length": bool(dynamic_length), "fixed_length": None if dynamic_length else n,
            "input_name": INPUT_NAME, "output_name": OUTPUT_NAME, "named_outputs": list(named),
            "torch_version": torch.__version__,
            "source": ckpt.path.name if getattr(ckpt, "path", None) else None,
            "note": None if note is None else f"fixed length {n}: {note}",
            "input_contract": _contract(ckpt, None if dynamic_length else n, dynamic_batch, named)}


def _write_metadata(path: Path, ckpt: Checkpoint, onnx_block: dict[str, Any]) -> None:
    """Store the checkpoint's description in the file's ``metadata_props`` (rewrites the file)."""
    import onnx

    proto = onnx.load(str(path))
    document = _document(ckpt)
    document["onnx"] = onnx_block
    entries = {
        META_KEY: document,
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
                        f"[batch, {ckpt.task.num_outputs}] raw outputs; "
                        f"{onnx_block['named_outputs'] or 'no'} [batch] outputs in user units")
    onnx.save(proto, str(path))


def export_onnx(checkpoint: CheckpointLike, path: str | os.PathLike[str], opset: int = 17, dynamic_batch: bool = True,
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
        outputs ``raw``: float32 ``[batch, num_outputs]``, and one float32 ``[batch]`` output per name of
        ``task.output_names`` in user units (``age`` years, ``age_std``, ``p_female``, ...).

    Raises
    ------
    CheckpointError
        When the checkpoint cannot be loaded or the exporter fails (the message names the model).
    """
    ckpt = _load(checkpoint)
    model, n, named = _cpu_model(ckpt), _n_samples(ckpt), _named_outputs(ckpt)
    graph = WithOutputs(model, ckpt.task).eval() if named else model
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    batch = 2 if dynamic_batch else 1
    x = torch.from_numpy(_random_input(batch, int(ckpt.in_leads), n, seed=0))
    note = None
    try:
        try:
            _torch_export(graph, x, tmp, opset, dynamic_batch, dynamic_length, named)
            if dynamic_length:
                note = _probe_length(model, tmp, int(ckpt.in_leads), n + n // 2 + 1, batch)
            if note is not None:
                warnings.warn(f"{ckpt.model_name}: the ONNX graph is not length-generic ({note}); exported with a "
                              f"fixed length of {n} samples instead.", UserWarning, stacklevel=2)
                _torch_export(graph, x, tmp, opset, dynamic_batch, False, named)
                dynamic_length = False
        except (RuntimeError, TypeError, ValueError, torch.onnx.errors.OnnxExporterError) as err:
            raise CheckpointError(f"ONNX export of model {ckpt.model_name!r} failed at opset {opset} ({err}). "
                                  "Try a newer opset (--opset 18) or use the PyTorch backend.") from err
        _write_metadata(tmp, ckpt, _onnx_block(ckpt, opset, dynamic_batch, dynamic_length, note, named))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def verify_onnx(checkpoint: CheckpointLike, path: str | os.PathLike[str], lengths: Sequence[int] | None = None,
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
    session, model = onnx_session(path, threads=1), _cpu_model(ckpt)
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


#: how ecglens writes graphs; part of :func:`cached_onnx`'s key. 2 (2026-12-07): ``resnet1d_ribeiro`` as 2-D
#: channels-last convolutions with folded batch norms (:mod:`ecglens.models._layout`)
GRAPH_VERSION = 2


def cached_onnx(checkpoint: CheckpointLike, cache_dir: str | os.PathLike[str] | None = None, opset: int = 17) -> Path:
    """The ONNX export of a checkpoint, written on first use into a cache folder.

    The cache key is the checkpoint file's SHA-256 (first 16 hex digits), the opset, the torch version and
    :data:`GRAPH_VERSION`, so a retrained checkpoint under the same name, or a graph that ecglens now exports
    differently, is exported afresh.

    Returns
    -------
    Path
        ``<cache_dir>/<model_name>-<digest>-opset<opset>.onnx``.
    """
    ckpt = _load(checkpoint)
    folder = Path(cache_dir) if cache_dir is not None else onnx_cache_dir()
    key = f"{_file_digest(Path(ckpt.path))}:{torch.__version__}:{GRAPH_VERSION}"
    tag = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = folder / f"{ckpt.model_name}-{tag}-opset{int(opset)}.onnx"
    if not target.is_file():
        export_onnx(ckpt, target, opset=opset)
    return target


# ----------------------------------------------------------------------------------------------- backend
