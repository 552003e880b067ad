"""Exported ONNX model files: their metadata and a weightless checkpoint built from it.

An ``.onnx`` file written by :func:`ecglens.export.export_onnx` carries the checkpoint's description in its
``metadata_props`` (entry ``ecglens``: the checkpoint document plus an ``onnx`` block), so it can be read without
PyTorch weights: :func:`read_onnx_metadata` returns that document and :func:`load_onnx_checkpoint` a
:class:`~ecglens.artifact.checkpoint.Checkpoint` with ``model=None`` that the ``"onnx"`` prediction backend runs.
``onnx`` and ``onnxruntime`` are imported only when used (``pip install "ecglens[export]"``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..exceptions import CheckpointError
from ..signal.transforms import Preprocess
from .calibration import Calibration
from .checkpoint import Checkpoint
from .formats import ONNX, register_forward, register_loader
from .outputs import OutputSpec

__all__ = ["INPUT_NAME", "META_KEY", "ONNX_FORMAT", "OUTPUT_NAME", "load_onnx_checkpoint", "onnx_forward",
           "onnx_session", "read_onnx_metadata"]

#: value of the ``format`` entry in the ``onnx`` block of the metadata
ONNX_FORMAT = "ecglens-onnx/1"
#: the graph's input (float32 [batch, in_leads, n_samples], mV) and output (raw model outputs)
INPUT_NAME = "ecg"
OUTPUT_NAME = "raw"
#: the metadata entry holding the checkpoint document
META_KEY = "ecglens"


def onnx_session(path: str | os.PathLike[str], threads: int | None = None, spin: bool | None = None) -> Any:
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


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ecglens description stored in an exported file (the checkpoint's document plus its ``onnx`` block).

    Read through onnxruntime (a session without graph optimisations, ~0.05 s), not the ``onnx`` package,
    whose import alone takes longer than that several times over.

    Raises
    ------
    CheckpointError
        When the file is missing, not ONNX, or not written by :func:`export_onnx`.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX file {path} not found. Export one with `ecglens export CHECKPOINT --onnx FILE`.")
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises InvalidProtobuf, Fail, ... for malformed files
        raise CheckpointError(f"{path} is not a readable ONNX file ({type(err).__name__}).") from None
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise CheckpointError(f"{path} is an ONNX file but has no ecglens metadata; export it with "
                              "ecglens.export.export_onnx so it carries its input contract.")
    try:
        return json.loads(props[META_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: the ecglens metadata is not valid JSON ({err}).") from None


def load_onnx_checkpoint(path: str | os.PathLike[str]) -> Any:
    """A weightless :class:`~ecglens.artifact.checkpoint.Checkpoint` described by an exported ONNX file.

    It carries the task, the input contract and the metadata but no PyTorch model (``model`` is ``None``), so
    ``Predictor(load_onnx_checkpoint("model.onnx"), backend="onnx")`` predicts with onnxruntime alone.
    """
    doc = read_onnx_metadata(path)
    model = doc.get("model") or {}
    return Checkpoint(model=None, model_name=str(model.get("name")), model_kwargs=dict(model.get("kwargs") or {}),
                      in_leads=int(model.get("in_leads", 12)), task=OutputSpec.from_dict(doc["task"]),
                      preprocess=None if doc.get("preprocess") is None else Preprocess.from_dict(doc["preprocess"]),
                      config=doc.get("config"), metrics=dict(doc.get("metrics") or {}),
                      version=str(doc.get("ecglens_version", "")), created=str(doc.get("created", "")),
                      path=Path(path), meta=doc, calibration=Calibration.from_dict(doc.get("calibration")))


def onnx_forward(path: str | os.PathLike[str]) -> Any:
    """``[batch, leads, samples] -> raw [batch, K]`` (CPU float tensors) through onnxruntime: how
    ``Checkpoint.predict`` runs a checkpoint loaded from an exported file. One session per file (and version of
    it), kept for later calls: ``Checkpoint.predict`` asks for the forward once per batch."""
    file = Path(path).resolve()
    return _forward_of(str(file), file.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _forward_of(path: str, mtime_ns: int) -> Any:
    import torch

    session = onnx_session(path)

    def forward(x: Any) -> Any:
        return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])

    return forward


register_loader(ONNX.name, load_onnx_checkpoint)
register_forward(ONNX.name, onnx_forward)
