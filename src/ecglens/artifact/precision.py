"""Reduced-precision inference: a model's forward pass under ``torch.autocast``.

``"32"`` runs float32 throughout. ``"bf16"`` / ``"16"`` keep the weights and the outputs in float32 and run the
convolutions and matrix products in bfloat16 / float16: faster on GPUs and on CPUs with bfloat16 instructions
(AVX-512 BF16, AMX), numerically close to float32 but not equal, so measure what it costs a model before relying
on it (``ecglens evaluate --precision bf16``, then ``scripts/compare_predictions.py``; docs/scale.md). ``"16"``
needs a GPU. Used by :meth:`ecglens.artifact.Checkpoint.predict` and the torch prediction backend.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..exceptions import ConfigError

__all__ = ["PRECISIONS", "autocast", "check_precision"]

#: accepted precisions: float32, or autocast to bfloat16 / float16
PRECISIONS: tuple[str, ...] = ("32", "bf16", "16")
_WARNED: list[bool] = []  # whether this process has warned of bf16 without bfloat16 instructions


def check_precision(precision: str, device_type: str) -> str:
    """``precision`` (as a string) if it can run on a device of ``device_type`` (``"cpu"``, ``"cuda"``, ...).

    Warns (``RuntimeWarning``, once per process) for bf16 on a CPU without bfloat16 instructions, where it runs
    emulated and slower than float32.

    Raises
    ------
    ConfigError
        An unknown precision, or ``"16"`` on the CPU.
    """
    precision = str(precision)
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)} (32: float32).")
    if precision == "16" and device_type == "cpu":
        raise ConfigError("precision 16 (float16) runs on a GPU only; on a CPU use bf16 (bfloat16), or 32.")
    if precision == "bf16" and device_type == "cpu" and not _WARNED and not _cpu_has_bf16():
        _WARNED.append(True)  # once per process: the command line, the backend and the checkpoint all check
        warnings.warn("this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX): precision bf16 runs emulated "
                      "and slower than 32 here.", RuntimeWarning, stacklevel=3)
    return precision


def autocast(device_type: str, precision: str) -> Any:
    """The ``torch.autocast`` context of ``precision`` on ``device_type`` (disabled for ``"32"``)."""
    import torch

    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(str(precision))
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def _cpu_has_bf16() -> bool:
    """Whether torch finds bfloat16 instructions on this CPU (True where this torch cannot tell)."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    probes = [p for p in probes if callable(p)]
    return not probes or any(bool(p()) for p in probes)
