"""Model surgery for fine-tuning: load the pretrained model, adapt its first layer to other leads, give it a
new head (zero-initialised, or linear for the L-BFGS probe).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...artifact import load_checkpoint
from ...exceptions import CheckpointError, ConfigError, LeadError
from ...leads import CANONICAL_LEADS, normalize_lead_name
from ...models import adapt_input_leads, create_model
from ..config import ModelConfig
from .strategies import get_strategy

__all__ = ["checkpoint_leads", "load_pretrained", "make_head_linear", "prepare_model"]


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
        First-layer adaptation (see :class:`~ecglens.train.finetune.FinetuneConfig`).
    model_config : ModelConfig, optional
        Architecture for ``scratch`` without a checkpoint.
    head_init : {"zeros", "random"}
        The new head of a pretrained start (see :class:`~ecglens.train.finetune.FinetuneConfig`).

    Returns
    -------
    nn.Module
        ``[batch, len(leads), n_samples] -> [batch, num_outputs]``.
    """
    plan = get_strategy(strategy)
    ckpt = load_pretrained(checkpoint) if checkpoint is not None else None
    if ckpt is None and (plan.pretrained or model_config is None):
        raise ConfigError(f"Strategy {strategy!r} needs a pretrained checkpoint"
                          + ("" if plan.pretrained else " or a model config (model.name)") + ".")
    source_leads = checkpoint_leads(ckpt) if ckpt is not None else None
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
    keep = None
    if lead_init == "keep":
        missing = [x for x in wanted if x not in source_leads]
        if missing:
            raise LeadError(f"Lead(s) {missing} were not inputs of the pretrained model (its leads: "
                            f"{', '.join(source_leads)}); use lead_init=mean or leads it was trained on.")
        keep = list(wanted)
    adapt_input_leads(model, len(wanted), keep=keep, source_leads=source_leads)


def load_pretrained(checkpoint: Any) -> Any:
    """A loaded checkpoint; a :class:`Checkpoint` passed in is copied, so fine-tuning never changes it.

    Parameters
    ----------
    checkpoint : Checkpoint, path or str
        A loaded checkpoint, a ``.safetensors`` file or a shipped model name.
    """
    if hasattr(checkpoint, "model") and hasattr(checkpoint, "model_name"):
        return dataclasses.replace(checkpoint, model=copy.deepcopy(checkpoint.model))
    return load_checkpoint(checkpoint)


def checkpoint_leads(ckpt: Any) -> tuple[str, ...]:
    """The input leads of a loaded checkpoint, in its input order (its preprocess, or the 12 canonical leads).

    Raises
    ------
    CheckpointError
        Fewer than 12 input leads and no preprocess spec naming them.
    """
    pre = getattr(ckpt, "preprocess", None)
    if pre is not None and len(pre.leads) == ckpt.in_leads:
        return tuple(pre.leads)
    if ckpt.in_leads == len(CANONICAL_LEADS):
        return tuple(CANONICAL_LEADS)
    raise CheckpointError(f"{getattr(ckpt, 'path', 'the checkpoint')} has {ckpt.in_leads} input leads but no "
                          "preprocess spec naming them; fine-tune with finetune.leads=null on a cache with "
                          "the same leads, or re-save it with its preprocess.")


def make_head_linear(model: nn.Module, num_outputs: int, head_init: str = "zeros") -> bool:
    """Replace a head with a hidden layer (``head_hidden > 0``: ``xresnet1d*``, ``inception1d``) by a linear
    one.

    The L-BFGS probe fits a linear head; a model whose head is linear already is left as it is.

    Parameters
    ----------
    model : nn.Module
        A zoo model; its ``head_hidden`` is set to 0 and its head rebuilt for ``num_outputs``.
    num_outputs : int
        Outputs of the new head.
    head_init : {"zeros", "random"}
        Initialisation of the new head (see :class:`~ecglens.train.finetune.FinetuneConfig`).

    Returns
    -------
    bool
        True if the head was replaced (the run's ``model.kwargs.head_hidden`` must then be 0).
    """
    if not getattr(model, "head_hidden", 0):
        return False
    model.head_hidden = 0
    model.reset_head(num_outputs)
    if head_init == "zeros":
        _zero_last_linear(model.head)
    return True
