"""The self-describing model file and everything inference needs from it.

Below every consumer (predict, serve, export, evaluate, train); it imports none of them.

* :mod:`~ecglens.artifact.checkpoint` — save / load / list shipped / read the description of a model file.
* :mod:`~ecglens.artifact.outputs` — output names, stored label standardisation, postprocessing.
* :mod:`~ecglens.artifact.contract` — does data prepared one way fit a model's input contract?
* :mod:`~ecglens.artifact.windows` — windows on long records, windowed inference, averaging.
* :mod:`~ecglens.artifact.formats` — model-file formats (``.safetensors``, ``.onnx``) by suffix.
* :mod:`~ecglens.artifact.onnx` — an exported ``.onnx`` file's metadata and its weightless checkpoint.
* :mod:`~ecglens.artifact.pretrained` — ``create_model(name, pretrained=True)`` over the shipped weights.
"""

from __future__ import annotations

from .checkpoint import (
    FORMAT,
    Checkpoint,
    list_pretrained,
    load_checkpoint,
    pretrained_aliases,
    read_checkpoint_metadata,
    resolve_checkpoint,
    save_checkpoint,
)
from .contract import check_contract
from .formats import (
    ONNX,
    SAFETENSORS,
    ModelFormat,
    list_formats,
    list_shipped_exports,
    load_model_file,
    model_format,
    register_loader,
    shipped_export,
)
from .onnx import load_onnx_checkpoint, read_onnx_metadata
from .outputs import BinaryOutput, MultilabelOutput, Output, OutputSpec, RegressionOutput
from .pretrained import create_model, pretrained_architectures
from .windows import (
    DEFAULT_MAX_WINDOWS,
    WINDOW_TOLERANCE,
    aggregate_records,
    aggregate_windows,
    inference_window,
    mean_over_windows,
    plan_windows,
    window_starts,
    windowed_raw,
)

__all__ = [
    "DEFAULT_MAX_WINDOWS",
    "FORMAT",
    "ONNX",
    "SAFETENSORS",
    "WINDOW_TOLERANCE",
    "BinaryOutput",
    "Checkpoint",
    "ModelFormat",
    "MultilabelOutput",
    "Output",
    "OutputSpec",
    "RegressionOutput",
    "aggregate_records",
    "aggregate_windows",
    "check_contract",
    "create_model",
    "inference_window",
    "list_formats",
    "list_pretrained",
    "list_shipped_exports",
    "load_checkpoint",
    "load_model_file",
    "load_onnx_checkpoint",
    "mean_over_windows",
    "model_format",
    "plan_windows",
    "pretrained_aliases",
    "pretrained_architectures",
    "read_onnx_metadata",
    "read_checkpoint_metadata",
    "register_loader",
    "resolve_checkpoint",
    "save_checkpoint",
    "shipped_export",
    "window_starts",
    "windowed_raw",
]
