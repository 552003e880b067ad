"""The ``finetune:`` section of a fine-tuning config (:class:`FinetuneConfig`) and the config file reader.

A fine-tuning YAML is a training config (``data``, ``task``, ``optim``, ``trainer``, ...; the model comes from
the checkpoint) plus a ``finetune:`` section (see ``configs/finetune_mi.yaml``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from ...configs import find_config
from ...exceptions import ConfigError
from ..config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dataclass_from_dict,
    parse_override,
)
from .strategies import STRATEGIES

__all__ = ["FinetuneConfig", "finetune_settings_from_dict", "load_finetune_config", "read_yaml_mapping"]


@dataclass(frozen=True)
class FinetuneConfig:
    """The ``finetune:`` section of a fine-tuning config (the other sections are a :class:`TrainConfig`).

    Attributes
    ----------
    strategy : str
        One of :data:`STRATEGIES`.
    lr_decay : float
        Discriminative learning-rate factor per parameter group, in (0, 1] (``finetune``,
        ``gradual_unfreeze``): the head trains at ``optim.lr``, the group before it at ``lr * lr_decay``, and
        so on to the input.
    unfreeze_every : int
        Epochs between unfreezing one more group (``gradual_unfreeze``).
    leads : list of str or None
        Leads to fine-tune on (a subset of the cache's and, for pretrained starts, the checkpoint's leads,
        e.g. the 8 independent leads ``[I, II, V1, V2, V3, V4, V5, V6]`` or one lead ``[II]``); ``None``: the
        checkpoint's leads.
    lead_init : {"keep", "mean"}
        How the first layer is adapted to ``leads``: keep the pretrained weights of those leads, or give every
        new lead the summed weights divided by the number of leads (see ``adapt_input_leads``).
    freeze_bn : bool
        Keep frozen layers in eval mode (BatchNorm running statistics and dropout fixed).
    head_init : {"zeros", "random"}
        The new head of a pretrained start: ``zeros`` sets its last linear layer to zero, so the first updates
        follow the correlation of the pretrained features with the new labels instead of a random projection
        of them (with few optimiser steps, e.g. 100 target ECGs, a random head barely moves and its AUROC is that
        of a random direction); ``random`` keeps the architecture's default initialisation. ``scratch`` always
        starts random; ``lp_ft`` fits its head before training (the init is where that fit starts).
    probe_solver : {"lbfgs", "sgd"}
        How ``linear_probe`` trains its head (``lp_ft`` always fits its first head by L-BFGS). ``lbfgs``: the
        frozen features of the training and validation ECGs are computed once (no augmentation; per window of
        the input contract) and the head is fitted to convergence by full-batch L-BFGS on the task's loss (of
        the window-averaged outputs) plus an L2 penalty, once for every strength in ``probe_l2``; the strength
        with the best ``trainer.monitor`` on the validation split is kept (:mod:`ecglens.train.probe`).
        ``sgd``: the head is trained like ``finetune`` trains the whole network (AdamW, ``optim`` schedule and
        epochs, augmentations), which rarely converges on small targets.
    probe_l2 : list of float
        L2 strengths tried by the ``lbfgs`` probe (and the first stage of ``lp_ft``), each ``>= 0``: the penalty
        is ``l2 / 2 * ||W||^2`` on the head's weight matrices (not its biases) with the loss a mean over ECGs and
        the features standardised on the training ECGs' windows.
    """

    strategy: str = field(default="finetune", metadata={"choices": tuple(STRATEGIES)})
    lr_decay: float = 0.5
    unfreeze_every: int = 1
    leads: tuple[str, ...] | None = None
    lead_init: str = field(default="keep", metadata={"choices": ("keep", "mean")})
    freeze_bn: bool = True
    head_init: str = field(default="zeros", metadata={"choices": ("zeros", "random")})
    probe_solver: str = field(default="lbfgs", metadata={"choices": ("lbfgs", "sgd")})
    probe_l2: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)

    def __post_init__(self) -> None:
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"finetune.lr_decay must be in (0, 1], got {self.lr_decay}. Use e.g. 0.5 "
                              "(1 gives every layer the same learning rate).")
        if self.unfreeze_every < 1:
            raise ConfigError(f"finetune.unfreeze_every must be >= 1 epoch, got {self.unfreeze_every}.")
        if self.leads is not None and not self.leads:
            raise ConfigError("finetune.leads must name at least one lead (or be null for the checkpoint's).")
        if not self.probe_l2 or any(not (float(v) >= 0.0 and np.isfinite(float(v))) for v in self.probe_l2):
            raise ConfigError(f"finetune.probe_l2 must be a non-empty list of L2 strengths >= 0, got "
                              f"{list(self.probe_l2)}; e.g. [0.001, 0.01, 0.1, 1].")

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML / JSON-safe dict."""
        return config_to_dict(self)


def finetune_settings_from_dict(data: Mapping[str, Any] | None,
                                overrides: Sequence[str] = ()) -> FinetuneConfig:
    """A :class:`FinetuneConfig` from a ``finetune:`` mapping and ``["finetune.key=value"]`` overrides."""
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError("The finetune section must be a mapping (strategy: ..., lr_decay: ...).")
    for item in overrides:
        path, value = parse_override(item)
        if path[0] == "finetune":
            path = path[1:]
        if len(path) != 1:
            raise ConfigError(f"Override {item!r}: finetune options are flat keys, e.g. "
                              "finetune.lr_decay=0.3.")
        data[path[0]] = value
    return dataclass_from_dict(FinetuneConfig, data, "finetune.")


def read_yaml_mapping(path: str | os.PathLike[str] | None, example: str) -> dict[str, Any]:
    """The mapping in a YAML config file or shipped config (``{}`` for ``None``; names as
    :func:`ecglens.configs.find_config`); a :class:`ConfigError` citing ``example``."""
    if path is None:
        return {}
    path = find_config(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a mapping of sections (see {example}), not "
                          f"{type(data).__name__}.")
    return dict(data)


def load_finetune_config(path: str | os.PathLike[str] | None = None,
                         overrides: Sequence[str] = ()) -> tuple[TrainConfig, FinetuneConfig]:
    """Read a fine-tuning YAML: a training config (``data``, ``task``, ``optim``, ...) + ``finetune`` section.

    ``overrides`` starting with ``finetune.`` go to the :class:`FinetuneConfig`; all others to the
    :class:`TrainConfig` (``optim.lr=3e-4``, ...). ``model`` is taken from the checkpoint at run time.
    """
    data = read_yaml_mapping(path, "configs/finetune_mi.yaml")
    data = dict(data)
    section = data.pop("finetune", None)
    mine = [o for o in overrides if o.strip().startswith("finetune.")]
    rest = [o for o in overrides if not o.strip().startswith("finetune.")]
    return apply_overrides(config_from_dict(data), rest), finetune_settings_from_dict(section, mine)
