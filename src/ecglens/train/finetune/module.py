"""The LightningModule of a fine-tuning run: a strategy's freezing schedule and per-group learning rates."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...exceptions import ConfigError
from ..module import EcgLightningModule, lr_lambda
from .groups import discriminative_param_groups, freeze_frozen_modules, named_groups, set_trainable_groups
from .settings import FinetuneConfig
from .strategies import get_strategy, train_head, unfreeze_gradually

__all__ = ["FinetuneModule"]


class FinetuneModule(EcgLightningModule):
    """:class:`EcgLightningModule` with a fine-tuning strategy: a freezing schedule, per-group learning rates.

    Parameters
    ----------
    model : nn.Module
        From :func:`~ecglens.train.finetune.prepare_model`.
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
        n = len(named_groups(self.model))
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
        if self.trainer.world_size > 1 and self.strategy.trainable is unfreeze_gradually:
            raise ConfigError("gradual_unfreeze cannot run on several devices (DDP fixes the trainable "
                              "parameters when it starts); use --devices 1, or strategy finetune / "
                              "linear_probe.")

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.apply_schedule(self.current_epoch)

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        decay = self.settings.lr_decay if self.strategy.discriminative else 1.0
        only_trainable = self.strategy.trainable is train_head
        groups = discriminative_param_groups(self.model, cfg.lr, decay, cfg.weight_decay, only_trainable)
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
