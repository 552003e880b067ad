"""Training: configs, the Lightning module, the fit loop and self-describing checkpoints.

>>> from ecglens.train import load_config, fit, load_checkpoint            # doctest: +SKIP
>>> result = fit(load_config("configs/age_sex.yaml", ["optim.epochs=5"]))  # doctest: +SKIP
>>> ckpt = load_checkpoint(result.checkpoint_path)                         # doctest: +SKIP
>>> ckpt.predict(x)          # x: [N, 12, 1000] preprocessed -> {"age": ..., "age_std": ..., "p_female": ...}

Names are imported lazily, so loading a checkpoint for inference does not import Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Checkpoint",
    "EcgLightningModule",
    "RunResult",
    "TrainConfig",
    "fit",
    "list_pretrained",
    "load_checkpoint",
    "load_config",
    "save_checkpoint",
    "save_config",
]

_WHERE = {
    "TrainConfig": "config",
    "load_config": "config",
    "save_config": "config",
    "fit": "loop",
    "RunResult": "loop",
    "EcgLightningModule": "module",
    "Checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "list_pretrained": "checkpoint",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ecglens.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
