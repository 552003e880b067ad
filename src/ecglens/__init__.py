"""ecglens: deep learning on resting 12-lead ECGs.

The public API is what this module exports; everything else is an implementation detail. Heavy parts (torch,
Lightning) are imported lazily, so ``import ecglens`` stays fast for reading ECGs.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .ecg import Ecg
from .exceptions import EcglensError
from .io import list_readers, read_ecg
from .leads import CANONICAL_LEADS

__all__ = [
    "CANONICAL_LEADS",
    "Ecg",
    "EcglensError",
    "Predictor",
    "Preprocess",
    "__version__",
    "create_model",
    "list_models",
    "list_readers",
    "load_checkpoint",
    "read_ecg",
]

_LAZY = {
    "Preprocess": ("ecglens.signal.transforms", "Preprocess"),
    "create_model": ("ecglens.artifact", "create_model"),
    "list_models": ("ecglens.models", "list_models"),
    "load_checkpoint": ("ecglens.artifact", "load_checkpoint"),
    "Predictor": ("ecglens.predict", "Predictor"),
}


def __dir__() -> list[str]:
    """The public API (lazily loaded names included) and the subpackages, not the module's helpers."""
    import pkgutil

    subpackages = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted({*__all__, *subpackages})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ecglens' has no attribute {name!r}")
