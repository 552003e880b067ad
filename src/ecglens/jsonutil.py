"""One JSON helper: make any value the library produces ready for :func:`json.dumps` (``allow_nan=False``)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["json_ready"]


def json_ready(value: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """A plain-JSON copy of ``value``.

    Mappings -> dicts with string keys; lists, tuples and sets -> lists; numpy arrays -> (nested) lists; numpy
    scalars -> Python scalars; NaN and +/-inf -> ``None``; paths -> strings; dataclass instances -> their
    ``to_dict()`` when they have one, else :func:`dataclasses.asdict`. Anything else is returned unchanged, or
    passed through ``default`` when one is given (e.g. ``default=str`` for a document that must always dump).

    Examples
    --------
    >>> json_ready({"mae": np.float32(2.5), "r": float("nan"), "leads": ("I", "II")})
    {'mae': 2.5, 'r': None, 'leads': ['I', 'II']}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): json_ready(v, default) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_ready(v, default) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist(), default)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if default is not None and not isinstance(value, (str, int, float, bool, type(None))):
        return default(value)
    return value
