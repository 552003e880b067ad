"""Training: configs, the Lightning module, the fit loop, fine-tuning and ensembles.

Training writes self-describing model files through :mod:`ecglens.artifact` (which inference reads; it never
imports this package).

>>> from ecglens.train import load_config, fit                             # doctest: +SKIP
>>> from ecglens.artifact import load_checkpoint                           # doctest: +SKIP
>>> result = fit(load_config("age_sex", ["optim.epochs=5"]))               # doctest: +SKIP
>>> ckpt = load_checkpoint(result.checkpoint_path)                         # doctest: +SKIP
>>> ckpt.predict(x)          # x: [N, 12, 1000] preprocessed -> {"age": ..., "age_std": ..., "p_female": ...}

Names are imported lazily, so reading a config does not import Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "EcgLightningModule",
    "RunResult",
    "TrainConfig",
    "fit",
    "load_config",
    "save_config",
]

_WHERE = {
    "TrainConfig": "config",
    "load_config": "config",
    "save_config": "config",
    "fit": "loop",
    "RunResult": "loop",
    "EcgLightningModule": "module",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ecglens.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
