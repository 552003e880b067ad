"""Transfer learning: start from a pretrained checkpoint, put a new head on it and train it on a new task.

Every model of the zoo works the same way, through the model contract (``reset_head``, ``param_groups()`` from
input to head, ``first_conv`` + :func:`~ecglens.models.adapt_input_leads`). Strategies (:data:`STRATEGIES`):

``scratch``
    The checkpoint's architecture (same name and keyword arguments), randomly initialised; every layer trained
    with the same learning rate. The baseline a pretrained model must beat. Needs no checkpoint when
    ``config.model`` names the architecture.
``linear_probe``
    The pretrained backbone is frozen (``requires_grad=False``) and kept in eval mode (BatchNorm statistics
    and dropout fixed, ``freeze_bn``); only the new head is trained. By default (``probe_solver="lbfgs"``)
    the head is fitted to convergence on the frozen features by L-BFGS, with its L2 strength chosen on the
    validation split (:mod:`ecglens.train.probe`; no epochs, no augmentation, no Lightning checkpoints; the
    run's ``history.csv`` has one row per strength); a head with a hidden layer (``head_hidden``) is replaced
    by a linear one (``head_hidden=0`` in the new checkpoint's model kwargs), so the probe is linear for every
    model. ``probe_solver="sgd"`` trains the model's own head like ``finetune``.
``finetune``
    Every layer is trained, with discriminative learning rates: group ``i`` of ``n`` (``param_groups()``,
    input first, head last) gets ``lr * lr_decay ** (n - 1 - i)`` (``lr_decay=1`` gives one learning rate).
``gradual_unfreeze``
    ``finetune`` with ULMFiT-style gradual unfreezing: the head alone in the first ``unfreeze_every`` epochs,
    then one more group (from the head backwards) every ``unfreeze_every`` epochs; frozen groups are in eval
    mode.
``lp_ft``
    Linear probe, then fine-tune (Kumar et al. 2022, "Fine-tuning can distort pretrained features and
    underperform out-of-distribution"): the new head is first fitted to convergence on the frozen features
    exactly as the L-BFGS ``linear_probe`` fits it (a linear head, L2 strength from ``probe_l2`` chosen on the
    validation split), then every layer is trained as in ``finetune``, starting from that head instead of a zero
    one, so the first updates of the backbone follow a head that already fits the new task. ``finetune.yaml``
    records the probe's L2 strength and validation metrics (``probe_head``).

The new head of a pretrained start has its last linear layer at zero (``head_init="zeros"``, the default), so
that even a few optimiser steps (100 target ECGs) move it along the correlation of the pretrained features with
the new labels rather than leaving it near a random projection of them; ``"random"`` keeps the default init.

Fewer leads: ``leads=["I", "II", "V1", ..., "V6"]`` (or ``["II"]``) selects those leads from the cache and
rebuilds the model's first layer for them, keeping the pretrained weights of the kept leads
(``lead_init="keep"``) or spreading the summed weights evenly over the new leads (``"mean"``). The checkpoint
written then declares those leads in its input contract.

A fine-tuning run writes the same run folder as ``ecglens train`` (``config.yaml``, ``splits.csv``,
``model.safetensors`` with the new task, ``metrics.json``, ``history.csv``, ``curves.png``,
``val_predictions.csv``) plus ``finetune.yaml`` (strategy, options, the pretrained checkpoint and where it
came from); the checkpoint's stored config has ``finetune`` and ``pretrained`` entries too.

>>> from ecglens.train.finetune import finetune, load_finetune_config         # doctest: +SKIP
>>> config, settings = load_finetune_config("configs/finetune_mi.yaml", ["optim.lr=3e-4"])  # doctest: +SKIP
>>> result = finetune("runs/age_sex/model.safetensors", config, settings)     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from ..exceptions import CheckpointError, ConfigError, LeadError
from ..leads import normalize_lead_name
from ..signal.transforms import contract_mismatches
from .config import (
    ModelConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dataclass_from_dict,
    parse_override,
    save_config,
)
from .module import EcgLightningModule, is_decayed, lr_lambda

__all__ = ["STRATEGIES", "CacheView", "FinetuneConfig", "FinetuneModule", "LeadSubset", "Strategy",
           "discriminative_param_groups", "finetune", "finetune_settings_from_dict", "freeze_frozen_modules",
           "load_finetune_config", "prepare_model", "read_yaml_mapping", "set_trainable_groups",
           "without_curves"]


# ----------------------------------------------------------------------------------------------- strategies


def _all_groups(n_groups: int, epoch: int, every: int) -> int:
    return n_groups


def _head_only(n_groups: int, epoch: int, every: int) -> int:
    return 1


def _gradual(n_groups: int, epoch: int, every: int) -> int:
    return min(n_groups, 1 + max(0, epoch) // max(1, every))


@dataclass(frozen=True)
class Strategy:
    """How a fine-tuning run initialises and trains the model.

    Attributes
    ----------
    name : str
        Key in :data:`STRATEGIES`.
    pretrained : bool
        Start from the checkpoint's weights (False: random init of the same architecture).
    discriminative : bool
        Use ``lr * lr_decay ** (n - 1 - i)`` for parameter group ``i`` (False: one learning rate).
    trainable : callable ``(n_groups, epoch, unfreeze_every) -> int``
        How many groups, counted from the head backwards, train in ``epoch``.
    description : str
        One line for ``--help`` and the docs.
    probe_head : bool
        Fit the new head on the frozen features (the L-BFGS probe) before training (``lp_ft``).
    """

    name: str
    pretrained: bool
    discriminative: bool
    trainable: Callable[[int, int, int], int]
    description: str
    probe_head: bool = False


#: strategy name -> :class:`Strategy` (dispatch table; add an entry to add a strategy)
STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("scratch", False, False, _all_groups, "same architecture, random init, all layers, one lr"),
        Strategy("linear_probe", True, False, _head_only,
                 "frozen pretrained backbone (eval mode), new head (fitted by L-BFGS unless probe_solver=sgd)"),
        Strategy("finetune", True, True, _all_groups, "all layers, discriminative lrs (lr_decay per group)"),
        Strategy("gradual_unfreeze", True, True, _gradual,
                 "head first, then one more group every unfreeze_every epochs; discriminative lrs"),
        Strategy("lp_ft", True, True, _all_groups,
                 "linear probe, then fine-tune: head fitted by L-BFGS on frozen features, then finetune from it",
                 probe_head=True),
    )
}


def get_strategy(name: str) -> Strategy:
    """The :class:`Strategy` called ``name``; unknown names raise :class:`ConfigError` naming valid ones."""
    if name not in STRATEGIES:
        raise ConfigError(f"Unknown fine-tuning strategy {name!r}. Choose one of: {', '.join(STRATEGIES)} "
                          "(--strategy NAME or finetune.strategy=NAME).")
    return STRATEGIES[name]


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
    """The mapping in a YAML config file (``{}`` for ``None``); a :class:`ConfigError` citing ``example``."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} not found. Pass an existing YAML file (see {example}).")
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


# ----------------------------------------------------------------------------------------------- cache views


class LeadSubset:
    """Read-only view of a signal array ``[N, L, T]`` keeping some leads: ``view[i] -> [len(idx), T]``.

    Nothing is copied until a row is read, so a memory-mapped cache stays on disk.
    """

    def __init__(self, signals: Any, lead_index: Sequence[int]) -> None:
        self.base = signals
        self.lead_index = np.asarray(lead_index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.base.shape[0]), int(self.lead_index.size), int(self.base.shape[2]))

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return int(self.base.shape[0])

    def __getitem__(self, rows: Any) -> np.ndarray:
        return np.take(np.asarray(self.base[rows]), self.lead_index, axis=-2)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    # a memory map would be pickled as a full copy (spawned data-loader workers): send its file instead
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        sig = self.base
        if isinstance(sig, np.memmap) and sig.filename and sig.flags.c_contiguous:
            state["base"] = ("memmap", str(sig.filename), sig.dtype.str, tuple(sig.shape), int(sig.offset))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        base = state["base"]
        if isinstance(base, tuple) and base and base[0] == "memmap":
            _, filename, dtype, shape, offset = base
            state["base"] = np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=shape, offset=offset)
        self.__dict__.update(state)


def _cache_leads(cache: Any) -> tuple[str, ...]:
    leads = getattr(cache, "leads", None) or getattr(getattr(cache, "preprocess", None), "leads", None)
    if not leads:
        raise ConfigError("The cache declares no lead names (manifest 'leads' / preprocess.leads); prepare "
                          "it with `ecglens prepare` so the leads are recorded.")
    return tuple(normalize_lead_name(x) for x in leads)


class CacheView:
    """A prepared cache seen through a lead selection and / or other fold labels; nothing is copied.

    Parameters
    ----------
    cache : PreparedCache or similar
        Anything with ``signals`` ``[N, L, T]``, ``meta`` (with ``fold``), ``preprocess`` (and ``leads``).
    leads : sequence of str, optional
        Leads to keep, in this order (any alias spelling); ``None`` keeps all.
    folds : array-like, shape (N,), optional
        Replacement ``fold`` column (NaN: the row is in no split), e.g. to hold out a seeded part of a fold.

    Attributes
    ----------
    signals, meta, preprocess, manifest, path, fs, leads
        As on :class:`~ecglens.data.cache.PreparedCache`; ``preprocess.leads`` is the kept leads.
    """

    def __init__(self, cache: Any, leads: Sequence[str] | None = None, folds: Any = None) -> None:
        self.base = cache
        all_leads = _cache_leads(cache)
        wanted = all_leads if leads is None else tuple(normalize_lead_name(x) for x in leads)
        missing = [x for x in wanted if x not in all_leads]
        if missing:
            raise LeadError(f"Lead(s) {missing} are not in the cache (its leads: {', '.join(all_leads)}). "
                            "Choose leads the cache has, or prepare a cache with them.")
        index = [all_leads.index(x) for x in wanted]
        same = index == list(range(len(all_leads)))
        self.signals = cache.signals if same else LeadSubset(cache.signals, index)
        meta = cache.meta
        if folds is not None:
            folds = np.asarray(folds, dtype=np.float64)
            if folds.shape != (len(meta),):
                raise ConfigError(f"folds must have one entry per cache row ({len(meta)}), got shape "
                                  f"{folds.shape}.")
            meta = meta.assign(fold=folds)
        self.meta = meta
        pre = getattr(cache, "preprocess", None)
        self.preprocess = None if pre is None else dataclasses.replace(pre, leads=wanted)
        self.manifest = {**dict(getattr(cache, "manifest", {}) or {}), "leads": list(wanted)}
        self.path = getattr(cache, "path", None)
        self.leads = wanted
        self.lead_index = tuple(index)

    @property
    def fs(self) -> float:
        fs = getattr(self.base, "fs", None) or getattr(self.preprocess, "fs", None)
        return float(fs or 100.0)

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    def __repr__(self) -> str:
        return f"CacheView({self.path!s}, leads={','.join(self.leads)}, n={len(self)})"


# ----------------------------------------------------------------------------------------------- the model


def _check_contract(pre_ckpt: Any, pre_cache: Any, where: str) -> None:
    """Refuse a cache prepared differently from the checkpoint (fs, filters, normalisation, or records shorter
    than the checkpoint's input window)."""
    if pre_ckpt is None or pre_cache is None:
        return
    fields = ("fs", "seconds", "highpass_hz", "notch_hz", "normalize")
    mismatches = contract_mismatches(pre_ckpt.to_dict(), pre_cache.to_dict(), fields)
    diff = [f"{k}: checkpoint {a!r}, cache {b!r}" for k, (a, b) in mismatches.items()]
    if diff:
        raise ConfigError(f"The cache {where} was prepared differently from the pretrained model's input "
                          f"contract ({'; '.join(diff)}). Prepare the target data with the checkpoint's "
                          "preprocessing (`ecglens prepare ... --fs/--seconds/--highpass/--normalize` as "
                          "listed) or use strategy scratch.")


def prepare_model(checkpoint: Any, num_outputs: int, strategy: str = "finetune", *,
                  leads: Sequence[str] | None = None, lead_init: str = "keep",
                  model_config: ModelConfig | None = None, head_init: str = "zeros") -> nn.Module:
    """The model a fine-tuning run starts from, in training mode, with a new head of ``num_outputs``.

    Parameters
    ----------
    checkpoint : Checkpoint or path or None
        The pretrained checkpoint (``load_checkpoint`` result, a file or a shipped name). ``None`` only for
        ``scratch`` with ``model_config``.
    num_outputs : int
        Outputs of the new task's head.
    strategy : str
        ``scratch`` builds the architecture with random weights (seed torch first for a reproducible init);
        the others load the pretrained weights.
    leads : sequence of str, optional
        Input leads of the new model (default: the checkpoint's); the first layer is adapted when they differ.
    lead_init : {"keep", "mean"}
        First-layer adaptation (see :class:`FinetuneConfig`).
    model_config : ModelConfig, optional
        Architecture for ``scratch`` without a checkpoint.
    head_init : {"zeros", "random"}
        The new head of a pretrained start (see :class:`FinetuneConfig`).

    Returns
    -------
    nn.Module
        ``[batch, len(leads), n_samples] -> [batch, num_outputs]``.
    """
    from ..models import create_model

    plan = get_strategy(strategy)
    ckpt = _load(checkpoint) if checkpoint is not None else None
    if ckpt is None and (plan.pretrained or model_config is None):
        raise ConfigError(f"Strategy {strategy!r} needs a pretrained checkpoint"
                          + ("" if plan.pretrained else " or a model config (model.name)") + ".")
    source_leads = _checkpoint_leads(ckpt) if ckpt is not None else None
    wanted = tuple(normalize_lead_name(x) for x in leads) if leads is not None else source_leads
    if not plan.pretrained:
        name = ckpt.model_name if ckpt is not None else model_config.name
        kwargs = dict(ckpt.model_kwargs if ckpt is not None else model_config.kwargs)
        n_in = len(wanted) if wanted is not None else (ckpt.in_leads if ckpt is not None else 12)
        return create_model(name, in_leads=n_in, num_outputs=num_outputs, **kwargs).train()
    model = ckpt.model.train()
    if wanted is not None and tuple(wanted) != tuple(source_leads):
        _adapt_leads(model, wanted, source_leads, lead_init)
    model.reset_head(num_outputs)
    if head_init == "zeros":
        _zero_last_linear(model.head)
    elif head_init != "random":
        raise ConfigError(f"head_init must be 'zeros' or 'random', got {head_init!r}.")
    return model


def _zero_last_linear(head: nn.Module) -> None:
    """Zero the weights and bias of the last ``nn.Linear`` of ``head`` (earlier layers keep their init, so an
    MLP head still passes gradients)."""
    last = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ConfigError(f"head_init='zeros' needs a linear layer in the head, found none in {head}; "
                          "use finetune.head_init=random.")
    with torch.no_grad():
        last[-1].weight.zero_()
        if last[-1].bias is not None:
            last[-1].bias.zero_()


def _adapt_leads(model: nn.Module, wanted: Sequence[str], source_leads: Sequence[str],
                 lead_init: str) -> None:
    """Rebuild the first layer for ``wanted`` leads (``keep``: their pretrained weights; ``mean``: spread)."""
    from ..models import adapt_input_leads

    keep = None
    if lead_init == "keep":
        missing = [x for x in wanted if x not in source_leads]
        if missing:
            raise LeadError(f"Lead(s) {missing} were not inputs of the pretrained model (its leads: "
                            f"{', '.join(source_leads)}); use lead_init=mean or leads it was trained on.")
        keep = list(wanted)
    adapt_input_leads(model, len(wanted), keep=keep, source_leads=source_leads)


def _load(checkpoint: Any) -> Any:
    """A loaded checkpoint; a :class:`Checkpoint` passed in is copied, so fine-tuning never changes it."""
    if hasattr(checkpoint, "model") and hasattr(checkpoint, "model_name"):
        return dataclasses.replace(checkpoint, model=copy.deepcopy(checkpoint.model))
    from .checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)


def _checkpoint_leads(ckpt: Any) -> tuple[str, ...]:
    pre = getattr(ckpt, "preprocess", None)
    if pre is not None and len(pre.leads) == ckpt.in_leads:
        return tuple(pre.leads)
    from ..leads import CANONICAL_LEADS

    if ckpt.in_leads == len(CANONICAL_LEADS):
        return tuple(CANONICAL_LEADS)
    raise CheckpointError(f"{getattr(ckpt, 'path', 'the checkpoint')} has {ckpt.in_leads} input leads but no "
                          "preprocess spec naming them; fine-tune with finetune.leads=null on a cache with "
                          "the same leads, or re-save it with its preprocess.")


# ----------------------------------------------------------------------------------------------- groups


def _named_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    if not hasattr(model, "param_groups"):
        raise ConfigError(f"{type(model).__name__} has no param_groups(); fine-tuning needs an ecglens zoo "
                          "model.")
    return model.param_groups()


def discriminative_param_groups(model: nn.Module, lr: float, lr_decay: float = 1.0, weight_decay: float = 0.0,
                                only_trainable: bool = False) -> list[dict[str, Any]]:
    """Optimizer parameter groups with one learning rate per model group, head first.

    Group ``i`` of the model's ``n`` groups (input ``i = 0`` ... head ``i = n - 1``) gets
    ``lr * lr_decay ** (n - 1 - i)``. Each is split in a weight-decayed part and a part without weight decay
    (biases, norms, the model's ``no_weight_decay()``), as ``ecglens train`` does
    (:func:`ecglens.train.module.is_decayed`). Frozen parameters are included
    (the optimizer skips them while their ``grad`` is None) unless ``only_trainable``, so groups unfrozen
    later train at their own rate.

    Returns
    -------
    list of dict
        ``{"params", "lr", "weight_decay", "name"}`` per non-empty part; ``name`` is ``"<group>"`` or
        ``"<group>.no_decay"``.
    """
    groups = _named_groups(model)
    decayed = is_decayed(model)
    n = len(groups)
    out: list[dict[str, Any]] = []
    for i, (name, params) in reversed(list(enumerate(groups))):
        params = [p for p in params if p.requires_grad] if only_trainable else list(params)
        group_lr = float(lr) * float(lr_decay) ** (n - 1 - i)
        decay = [p for p in params if decayed(p)]
        no_decay = [p for p in params if not decayed(p)]
        for suffix, part, wd in (("", decay, weight_decay), (".no_decay", no_decay, 0.0)):
            if part:
                out.append({"params": part, "lr": group_lr, "weight_decay": wd, "name": name + suffix})
    return out


def set_trainable_groups(model: nn.Module, n_trainable: int) -> list[str]:
    """Let the last ``n_trainable`` groups of ``model.param_groups()`` train and freeze the others.

    Returns the names of the trainable groups (head last).
    """
    groups = _named_groups(model)
    n_trainable = max(1, min(len(groups), int(n_trainable)))
    for i, (_, params) in enumerate(groups):
        for p in params:
            p.requires_grad_(i >= len(groups) - n_trainable)
    return [name for name, _ in groups[len(groups) - n_trainable:]]


def freeze_frozen_modules(model: nn.Module) -> list[str]:
    """Put every sub-module whose parameters are all frozen in eval mode (BatchNorm statistics and dropout
    fixed).

    Returns the names of the modules switched to eval (outermost only).
    """
    switched: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(s + ".") for s in switched):
            continue
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
            switched.append(name)
    return switched


# ----------------------------------------------------------------------------------------------- lightning


class FinetuneModule(EcgLightningModule):
    """:class:`EcgLightningModule` with a fine-tuning strategy: a freezing schedule, per-group learning rates.

    Parameters
    ----------
    model : nn.Module
        From :func:`prepare_model`.
    task : TaskSpec
        The fitted target task.
    optim_cfg : OptimConfig
        ``lr`` is the head's learning rate.
    settings : FinetuneConfig
        Strategy and its options.
    window : int, optional
        As for :class:`EcgLightningModule` (the target run's training crop).
    """

    def __init__(self, model: nn.Module, task: Any, optim_cfg: Any = None,
                 settings: FinetuneConfig | None = None, *, window: int | None = None) -> None:
        super().__init__(model, task, optim_cfg, window=window)
        self.settings = settings or FinetuneConfig()
        self.strategy = get_strategy(self.settings.strategy)
        self.apply_schedule(0)

    def trainable_groups(self, epoch: int) -> int:
        """Groups (from the head backwards) that train in ``epoch``."""
        n = len(_named_groups(self.model))
        return self.strategy.trainable(n, epoch, self.settings.unfreeze_every)

    def apply_schedule(self, epoch: int) -> list[str]:
        """Freeze / unfreeze for ``epoch``; while training, groups unfrozen now go back to train mode and
        frozen ones stay in eval mode (``freeze_bn``). Returns the trainable groups (head last)."""
        names = set_trainable_groups(self.model, self.trainable_groups(epoch))
        if self.model.training:
            self.model.train()
            if self.settings.freeze_bn:
                freeze_frozen_modules(self.model)
        return names

    def train(self, mode: bool = True) -> FinetuneModule:
        super().train(mode)
        settings = getattr(self, "settings", None)  # None while the parent constructor runs
        if mode and settings is not None and settings.freeze_bn:
            freeze_frozen_modules(self.model)
        return self

    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1 and self.strategy.trainable is _gradual:
            raise ConfigError("gradual_unfreeze cannot run on several devices (DDP fixes the trainable "
                              "parameters when it starts); use --devices 1, or strategy finetune / "
                              "linear_probe.")

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.apply_schedule(self.current_epoch)

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        decay = self.settings.lr_decay if self.strategy.discriminative else 1.0
        only_trainable = self.strategy.trainable is _head_only
        groups = discriminative_param_groups(self.model, cfg.lr, decay, cfg.weight_decay, only_trainable)
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


# ----------------------------------------------------------------------------------------------- the run


def _resolve_config(config: TrainConfig, ckpt: Any) -> TrainConfig:
    """``config`` with ``model`` set to the checkpoint's architecture (what the run really trains)."""
    if ckpt is None:
        return config
    model = ModelConfig(name=ckpt.model_name, kwargs=dict(ckpt.model_kwargs))
    if config.model.name != model.name and config.model != ModelConfig():
        warnings.warn(f"model.name={config.model.name!r} in the config is ignored: fine-tuning keeps the "
                      f"checkpoint's architecture {model.name!r}.", stacklevel=3)
    return dataclasses.replace(config, model=model)


def _pretrained_info(ckpt: Any) -> dict[str, Any] | None:
    if ckpt is None:
        return None
    return {"path": str(getattr(ckpt, "path", "")), "model": ckpt.model_name, "task": ckpt.task.name,
            "in_leads": int(ckpt.in_leads), "created": getattr(ckpt, "created", ""),
            "version": getattr(ckpt, "version", ""), "metrics": dict(getattr(ckpt, "metrics", {}) or {})}


@contextlib.contextmanager
def without_curves() -> Iterator[None]:
    """Skip drawing ``curves.png`` in runs finished inside this block (``history.csv`` is still written).

    Drawing the curves costs about a second per run, which adds up over an experiment grid of small runs. This
    swaps ``ecglens.train.loop.plot_history`` for a no-op while the block runs (single-threaded use only).
    """
    from . import loop

    original = loop.plot_history
    loop.plot_history = lambda history, path, title="": Path(path)
    try:
        yield
    finally:
        loop.plot_history = original


def finetune(checkpoint: Any, config: TrainConfig, settings: FinetuneConfig | None = None, *,
             out: str | os.PathLike[str] | None = None, cache: Any = None, curves: bool = True) -> Any:
    """Fine-tune a pretrained checkpoint on the task and data of ``config``; write a run folder.

    Parameters
    ----------
    checkpoint : path, shipped name, Checkpoint or None
        The pretrained model (``None`` only for ``strategy="scratch"``, which then builds ``config.model``).
    config : TrainConfig
        Data (cache, folds, subsampling), task, optimiser, trainer. ``optim.lr`` is the head's learning rate.
        ``model`` is replaced by the checkpoint's architecture.
    settings : FinetuneConfig, optional
        Strategy and options (default: ``finetune`` with ``lr_decay=0.5``).
    out : path, optional
        Run folder (default ``<trainer.out_dir>/<name>-<timestamp>``); must be new or empty.
    cache : PreparedCache or CacheView, optional
        An opened cache to use instead of ``config.data.cache``.
    curves : bool
        Draw ``curves.png`` (False: see :func:`without_curves`).

    Returns
    -------
    ecglens.train.loop.RunResult
        ``run_dir``, ``checkpoint_path`` (``model.safetensors`` with the new task) and validation metrics.
    """
    import lightning as L

    from . import loop

    settings = settings or FinetuneConfig()
    ckpt = _load(checkpoint) if checkpoint is not None else None
    config = _resolve_config(config, ckpt)
    run_dir = loop._run_dir(config, out, None)
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    threads = torch.get_num_threads()
    loop._set_threads(config)
    try:
        with contextlib.nullcontext() if curves else without_curves():
            return _finetune(ckpt, config, settings, run_dir, cache)
    finally:
        torch.set_num_threads(threads)


def _target_view(config: TrainConfig, settings: FinetuneConfig, ckpt: Any, cache: Any) -> Any:
    from ..data.cache import open_cache

    base = cache if cache is not None else open_cache(config.data.cache)
    _check_contract(getattr(ckpt, "preprocess", None), getattr(base, "preprocess", None),
                    str(getattr(base, "path", config.data.cache)))
    leads = settings.leads
    if leads is None and ckpt is not None:
        leads = _checkpoint_leads(ckpt)
    return base if leads is None else CacheView(base, leads)


def _finetune(ckpt: Any, config: TrainConfig, settings: FinetuneConfig, run_dir: Path, cache: Any) -> Any:
    from . import loop

    data = _target_view(config, settings, ckpt, cache)
    dm = loop.build_datamodule(config, data)
    loop._check_monitor(config, dm.task)
    leads = _cache_leads(data)
    model = prepare_model(ckpt, dm.task.num_outputs, settings.strategy, leads=leads,
                          lead_init=settings.lead_init, head_init=settings.head_init, model_config=config.model)
    probe = settings.strategy == "linear_probe" and settings.probe_solver == "lbfgs"
    lp_ft = get_strategy(settings.strategy).probe_head
    if probe or lp_ft:
        config = _linear_head(model, config, dm.task.num_outputs, settings.head_init)
    module = FinetuneModule(model, dm.task, config.optim, settings, window=loop.input_window(config, dm.cache))
    extra = {"finetune": settings.to_dict(), "pretrained": _pretrained_info(ckpt), "leads": list(leads)}
    if lp_ft:  # the head fitted on the frozen features first, before any trainer touches the model
        fit = _fit_probe(config, settings, module, dm)
        chosen = next(row for row in fit.history if row["l2"] == fit.l2)
        extra["probe_head"] = {"l2": fit.l2, "iterations": fit.iterations,
                               **{k: v for k, v in chosen.items() if k.startswith("val_")}}
    trainer = None if probe else loop._trainer(config, run_dir, n_batches=len(dm.train_indices) // dm.batch_size)
    if trainer is None or trainer.is_global_zero:
        save_config(config, run_dir / "config.yaml")
        text = yaml.safe_dump(_plain(extra), sort_keys=False)
        (run_dir / "finetune.yaml").write_text(text, encoding="utf-8")
        dm.splits_table().to_csv(run_dir / "splits.csv", index=False)
    if probe:
        result = _probe(config, settings, run_dir, module, dm)
        _resave_with_provenance(result, module, config, dm, extra)
        return result
    module.train()  # every strategy starts training in train mode (frozen groups go to eval: freeze_bn)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*exists and is not empty")
        trainer.fit(module, datamodule=dm)
    if not trainer.is_global_zero:
        return loop.RunResult(run_dir, run_dir / "model.safetensors", {})
    result = loop._finish(config, run_dir, trainer, module, dm)
    _resave_with_provenance(result, module, config, dm, extra)
    return result


def _linear_head(model: nn.Module, config: TrainConfig, num_outputs: int, head_init: str) -> TrainConfig:
    """Give a model whose head has a hidden layer (``head_hidden > 0``: ``xresnet1d*``, ``inception1d``) a
    linear head for the L-BFGS probe; returns ``config`` with ``model.kwargs.head_hidden = 0`` to match."""
    if not getattr(model, "head_hidden", 0):
        return config
    model.head_hidden = 0
    model.reset_head(num_outputs)
    if head_init == "zeros":
        _zero_last_linear(model.head)
    kwargs = {**config.model.kwargs, "head_hidden": 0}
    return dataclasses.replace(config, model=dataclasses.replace(config.model, kwargs=kwargs))


def _probe(config: TrainConfig, settings: FinetuneConfig, run_dir: Path, module: FinetuneModule,
           dm: Any) -> Any:
    """The ``lbfgs`` linear probe: fit the head on frozen features (:mod:`ecglens.train.probe`), write the run."""
    from . import loop

    fit = _fit_probe(config, settings, module, dm)
    module.history = fit.history
    info = {"best_epoch": None, "epochs_run": None, "probe_solver": "lbfgs", "probe_l2": fit.l2,
            "probe_iterations": fit.iterations}
    return loop.write_run_outputs(config, run_dir, module, dm, info)


def _fit_probe(config: TrainConfig, settings: FinetuneConfig, module: FinetuneModule, dm: Any) -> Any:
    """Fit ``module.model.head`` in place on the frozen features of the training / validation ECGs;
    returns the :class:`~ecglens.train.probe.ProbeFit` (``linear_probe`` and ``lp_ft``)."""
    from . import loop
    from .probe import fit_probe_head, window_features

    if config.trainer.num_nodes > 1:
        raise ConfigError("The L-BFGS probe head (linear_probe, lp_ft) is fitted in one process; use "
                          "--num-nodes 1 (or, for linear_probe, finetune.probe_solver=sgd).")
    device = torch.device("cuda" if loop._uses_gpu(config.trainer.accelerator) else "cpu")
    model = module.model.to(device)
    show = bool(config.trainer.progress_bar)
    batch = max(1, config.optim.batch_size)
    feats = {name: window_features(model, dm.cache.signals, rows, module.window, batch_size=batch,
                                   device=device, progress=show)
             for name, rows in (("train", dm.train_indices), ("val", dm.val_indices))}
    model.cpu()
    return fit_probe_head(model.head, dm.task, feats["train"], dm.labels[dm.train_indices], feats["val"],
                          dm.labels[dm.val_indices], settings.probe_l2, monitor=config.trainer.monitor,
                          mode=config.trainer.monitor_mode)


def _plain(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(_json_ready(value)))


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _resave_with_provenance(result: Any, module: FinetuneModule, config: TrainConfig, dm: Any,
                            extra: dict[str, Any]) -> None:
    """Write the checkpoint again with ``finetune`` / ``pretrained`` entries in its stored config."""
    from . import loop
    from .checkpoint import save_checkpoint

    stored = {**config_to_dict(config), "split": dm.split_info, **_json_ready(extra)}
    save_checkpoint(result.checkpoint_path, module.model.cpu(), config.model.name, dict(config.model.kwargs),
                    dm.task, loop.model_contract(config, dm.cache), stored, result.metrics,
                    in_leads=dm.in_leads)
