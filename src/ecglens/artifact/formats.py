"""Model-file formats, by suffix: what a file is, which backend runs it and which function loads it.

* ``safetensors`` — the ecglens checkpoint (:mod:`ecglens.artifact.checkpoint`): PyTorch weights and their
  description; runs with any backend (``torch`` by default, ``onnx`` through an on-the-fly export).
* ``onnx`` — an exported graph with the same description (:mod:`ecglens.artifact.onnx`); runs only with ``onnx``.

Code that takes "a model file" asks :func:`model_format` what it is (never the suffix itself) and
:func:`load_model_file` to load it. Both also take the bare name of a shipped export (an ``.onnx`` file in the
package's ``weights`` folder, e.g. ``"age-sex-int8"``: :func:`list_shipped_exports`), as they take the name of a
shipped checkpoint (``"age-sex"``). Each format's module in this package registers its loader
(:func:`register_loader`) and imports its optional dependencies (onnx, onnxruntime) only when a file is read;
``ecglens.artifact`` imports them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..exceptions import CheckpointError

__all__ = ["ONNX", "SAFETENSORS", "ModelFormat", "file_forward", "list_formats", "list_shipped_exports",
           "load_model_file", "model_format", "register_format", "register_forward", "register_loader",
           "shipped_export", "shipped_names", "weights_dir"]


@dataclass(frozen=True)
class ModelFormat:
    """One kind of model file.

    Attributes
    ----------
    name : str
        Registry name (``"safetensors"``, ``"onnx"``).
    suffix : str
        File suffix, lower case with the dot (``".safetensors"``).
    backend : str
        Default prediction backend (see :func:`ecglens.predict.list_backends`).
    backend_only : bool
        True when the file holds no PyTorch weights, so it runs only with :attr:`backend`.
    """

    name: str
    suffix: str
    backend: str
    backend_only: bool


_FORMATS: dict[str, ModelFormat] = {}
_LOADERS: dict[str, Callable[[str | os.PathLike[str]], Any]] = {}
_FORWARDS: dict[str, Callable[[str | os.PathLike[str]], Callable[[Any], Any]]] = {}


def register_format(fmt: ModelFormat) -> ModelFormat:
    """Register ``fmt`` (by name; its suffix must be new) and return it."""
    clash = [f.name for f in _FORMATS.values() if f.suffix == fmt.suffix and f.name != fmt.name]
    if clash:
        raise CheckpointError(f"suffix {fmt.suffix!r} already belongs to the model format {clash[0]!r}.")
    _FORMATS[fmt.name] = fmt
    return fmt


def register_loader(name: str, loader: Callable[[str | os.PathLike[str]], Any]) -> None:
    """Register ``loader(path) -> Checkpoint`` for the format ``name``."""
    if name not in _FORMATS:
        raise CheckpointError(f"unknown model format {name!r}; register it first (known: {list_formats()}).")
    _LOADERS[name] = loader


def register_forward(name: str, factory: Callable[[str | os.PathLike[str]], Callable[[Any], Any]]) -> None:
    """Register ``factory(path) -> forward`` for the format ``name``: ``forward`` maps a CPU float tensor
    ``[batch, leads, samples]`` to the raw outputs ``[batch, K]``, for checkpoints loaded without a PyTorch
    model (``Checkpoint.predict`` of an exported file)."""
    if name not in _FORMATS:
        raise CheckpointError(f"unknown model format {name!r}; register it first (known: {list_formats()}).")
    _FORWARDS[name] = factory


def file_forward(path: str | os.PathLike[str]) -> Callable[[Any], Any] | None:
    """The forward function of a model file that runs without PyTorch weights (:func:`register_forward`), or
    ``None`` when its format registered none."""
    fmt = model_format(path)
    factory = _FORWARDS.get(fmt.name) if fmt is not None else None
    return None if factory is None else factory(path)


def list_formats() -> list[str]:
    """Names of the registered model-file formats."""
    return sorted(_FORMATS)


SAFETENSORS = register_format(ModelFormat("safetensors", ".safetensors", "torch", False))
ONNX = register_format(ModelFormat("onnx", ".onnx", "onnx", True))



#: suffix of the exported files shipped in the package's ``weights`` folder
_EXPORT_SUFFIX = ".onnx"


def weights_dir() -> Any:
    """The package's ``weights`` folder (an importlib resource), where shipped checkpoints and exports live."""
    return resources.files("ecglens") / "weights"


def shipped_names(suffix: str) -> list[str]:
    """Sorted names of the files ending in ``suffix`` in the package's ``weights`` folder, the suffix removed
    (``[]`` when there is no such folder)."""
    folder = weights_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix))


def list_shipped_exports() -> list[str]:
    """Names of the exported model files shipped in the package (``ecglens/weights/<name>.onnx``, e.g.
    ``"age-sex-int8"``); the shipped checkpoints are :func:`~ecglens.artifact.list_pretrained`."""
    return shipped_names(_EXPORT_SUFFIX)


def shipped_export(path_or_name: str | os.PathLike[str]) -> Path | None:
    """The file of a shipped export named bare (``"age-sex-int8"``), or ``None`` for anything else (a path, an
    existing file, a shipped checkpoint's name, an unknown name)."""
    text = os.fspath(path_or_name)
    if not text or "/" in text or os.sep in text or Path(text).suffix.lower() in {f.suffix for f in _FORMATS.values()}:
        return None
    candidate = weights_dir() / f"{text}{_EXPORT_SUFFIX}"
    if Path(text).exists() or not candidate.is_file():
        return None
    with resources.as_file(candidate) as real:
        return Path(real)


def model_format(path_or_name: str | os.PathLike[str]) -> ModelFormat | None:
    """The format of a model file by its suffix (case-insensitive), or of a shipped export named bare
    (:func:`shipped_export`); ``None`` for anything else.

    A shipped checkpoint's bare name (``"age-sex"``) has no format of its own: it names a ``safetensors`` file.
    """
    export = shipped_export(path_or_name)
    suffix = (export or Path(os.fspath(path_or_name))).suffix.lower()
    return next((f for f in _FORMATS.values() if f.suffix == suffix), None)


def load_model_file(path_or_name: str | os.PathLike[str]) -> Any:
    """Load any registered model file, or a shipped checkpoint or export by name, as a ``Checkpoint``.

    Raises
    ------
    CheckpointError
        When no loader is registered for the format, or the file is missing or bad.
    """
    path_or_name = shipped_export(path_or_name) or path_or_name
    fmt = model_format(path_or_name) or SAFETENSORS
    if fmt.name not in _LOADERS:
        raise CheckpointError(f"no loader is registered for {fmt.suffix} model files (format {fmt.name!r}); "
                              "register one with ecglens.artifact.formats.register_loader.")
    return _LOADERS[fmt.name](path_or_name)
