"""Parameter groups of a zoo model for fine-tuning: per-group learning rates, freezing, eval mode.

Groups are the model contract's ``param_groups()``, from the input (``i = 0``) to the head (``i = n - 1``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ...exceptions import ConfigError
from ..module import is_decayed

__all__ = ["discriminative_param_groups", "freeze_frozen_modules", "named_groups", "set_trainable_groups"]


def named_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """``model.param_groups()``: ``(name, parameters)`` from the input to the head (the model contract).

    Raises
    ------
    ConfigError
        ``model`` is not an ecglens zoo model (it has no ``param_groups()``).
    """
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
    groups = named_groups(model)
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
    groups = named_groups(model)
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
