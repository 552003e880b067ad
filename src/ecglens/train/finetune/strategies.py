"""Fine-tuning strategies: how a run initialises the model and which parameter groups train in each epoch.

A :class:`Strategy` is data: add an entry to :data:`STRATEGIES` to add one. The schedules
(:func:`train_all`, :func:`train_head`, :func:`unfreeze_gradually`) count parameter groups
(``model.param_groups()``, input first, head last) from the head backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...exceptions import ConfigError

__all__ = ["STRATEGIES", "Strategy", "get_strategy", "train_all", "train_head", "unfreeze_gradually"]


def train_all(n_groups: int, epoch: int, every: int) -> int:
    """Every group trains in every epoch."""
    return n_groups


def train_head(n_groups: int, epoch: int, every: int) -> int:
    """Only the head (the last group) trains."""
    return 1


def unfreeze_gradually(n_groups: int, epoch: int, every: int) -> int:
    """The head alone for ``every`` epochs, then one more group every ``every`` epochs (ULMFiT)."""
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
        Strategy("scratch", False, False, train_all, "same architecture, random init, all layers, one lr"),
        Strategy("linear_probe", True, False, train_head,
                 "frozen pretrained backbone (eval mode), new head (fitted by L-BFGS unless probe_solver=sgd)"),
        Strategy("finetune", True, True, train_all, "all layers, discriminative lrs (lr_decay per group)"),
        Strategy("gradual_unfreeze", True, True, unfreeze_gradually,
                 "head first, then one more group every unfreeze_every epochs; discriminative lrs"),
        Strategy("lp_ft", True, True, train_all,
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
