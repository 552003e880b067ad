"""The LightningModule: a model of the zoo, a task (loss, metrics) and the optimiser.

Per epoch it logs ``train_loss`` / ``val_loss`` and the task's metrics (``val_age_mae``,
``val_sex_auroc``, ...), each computed on the **whole** split at epoch end (predictions gathered across
processes under DDP), and keeps a ``history`` (one dict per epoch) that is stored in Lightning checkpoints
so a resumed run continues it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from ..artifact.windows import mean_over_windows, windowed_raw
from ..data.targets import TaskSpec
from ..evaluate.metrics import task_metrics
from .config import OptimConfig

__all__ = ["EcgLightningModule", "is_decayed", "lr_lambda", "split_metrics"]

#: where the history lives inside a Lightning checkpoint
HISTORY_KEY = "ecglens_history"


def _onecycle(total: int, cfg: OptimConfig) -> Callable[[int], float]:
    """Linear warm-up from lr/25 to lr over ``warmup_fraction`` of the steps, then cosine down to lr/1e4."""
    warm = max(1, round(total * cfg.warmup_fraction))
    start, final = 1.0 / 25.0, 1e-4

    def factor(step: int) -> float:
        if step < warm:
            return start + (1.0 - start) * step / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _cosine(total: int, cfg: OptimConfig) -> Callable[[int], float]:
    """Cosine decay from lr to lr/1e4 over all steps."""

    def factor(step: int) -> float:
        progress = min(1.0, step / max(1, total))
        return 1e-4 + (1.0 - 1e-4) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _constant(total: int, cfg: OptimConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        return 1.0

    return factor


_SCHEDULES: dict[str, Callable[[int, OptimConfig], Callable[[int], float]]] = {
    "onecycle": _onecycle,
    "cosine": _cosine,
    "constant": _constant,
}


def lr_lambda(cfg: OptimConfig, total_steps: int) -> Callable[[int], float]:
    """The learning-rate multiplier ``f(step)`` of ``cfg.schedule`` for a run of ``total_steps`` steps.

    It is a plain function (not an object with state), so ``LambdaLR`` checkpoints only the step count: a run
    resumed with more epochs continues on the schedule stretched to the new length.
    """
    return _SCHEDULES[cfg.schedule](max(1, int(total_steps)), cfg)


def is_decayed(model: nn.Module) -> Callable[[nn.Parameter], bool]:
    """Which parameters of ``model`` get weight decay: weight matrices / kernels (``ndim >= 2``), not biases and
    normalisation parameters, and not those the model names in ``no_weight_decay()`` (e.g. the state-space
    parameters of ``s4``)."""
    names = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    exempt = {id(p) for n, p in model.named_parameters() if n in names}
    return lambda p: p.ndim >= 2 and id(p) not in exempt


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay only where :func:`is_decayed` says so."""
    decayed = is_decayed(model)
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if decayed(p) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def split_metrics(task: TaskSpec, raw_windows: torch.Tensor, y: torch.Tensor, split: str) -> dict[str, float]:
    """Loss, per-target losses and task metrics of one split's predictions, keys prefixed ``"<split>_"``.

    Parameters
    ----------
    task : TaskSpec
        The fitted task.
    raw_windows : torch.Tensor, shape (N, W, num_outputs)
        Raw outputs per window (``W = 1`` when inputs are used whole).
    y : torch.Tensor, shape (N, num_labels)
        Labels (NaN: missing).
    split : str
        Prefix, e.g. ``"val"``.

    Returns
    -------
    dict of str to float
        ``<split>_loss`` (weighted, of the window-averaged raw outputs), ``<split>_<target>_loss`` for
        multi-target tasks, and the task's metrics of the window-averaged postprocessed outputs.
    """
    raw_windows, y = raw_windows.float(), y.float()
    parts = task.loss_components(raw_windows.mean(dim=1), y)
    out = {f"{split}_loss": float(sum(w * v for w, v in zip(task.weights, parts.values(), strict=True)))}
    if len(parts) > 1:
        out.update({f"{split}_{name}_loss": float(v) for name, v in parts.items()})
    metrics = task_metrics(task, mean_over_windows(task, raw_windows.cpu()), hard_labels(task, y.cpu().numpy()))
    out.update({f"{split}_{k}": float(v) for k, v in metrics.items()})
    return out


def hard_labels(task: TaskSpec, y: np.ndarray) -> np.ndarray:
    """``y`` with the binary / multilabel columns rounded to 0/1 (NaN kept) for the metrics.

    Training labels are soft (probabilities) under knowledge distillation (``ecglens.data.distill``); the loss
    uses them as they are, the metrics score against the nearer class.
    """
    out = np.array(y, dtype=np.float64, copy=True)
    for target, _, label_slice in task.target_slices():
        if target.kind in ("binary", "multilabel"):
            part = out[:, label_slice]
            out[:, label_slice] = np.where(np.isnan(part), np.nan, np.round(part))
    return out


class EcgLightningModule(L.LightningModule):
    """Train ``model`` on ``task`` with AdamW and the schedule of ``optim_cfg``.

    Parameters
    ----------
    model : nn.Module
        Maps ``[batch, leads, samples]`` to ``[batch, task.num_outputs]``.
    task : TaskSpec
        A *fitted* task (label statistics from the training split).
    optim_cfg : OptimConfig
        Learning rate, weight decay, schedule.
    window : int, optional
        Samples of the model's input window (the training crop): longer validation inputs are predicted over
        windows of this length and averaged (:mod:`ecglens.artifact.windows`); ``None``: inputs are used whole.
    """

    def __init__(self, model: nn.Module, task: TaskSpec, optim_cfg: OptimConfig | None = None, *,
                 window: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.optim_cfg = optim_cfg or OptimConfig()
        self.window = window
        self.save_hyperparameters({"task": task.to_dict(), "optim": dataclasses.asdict(self.optim_cfg)})
        self.history: list[dict[str, float]] = []
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"train": [], "val": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        raw = self.model(x).float()
        loss = self.task.loss(raw, y)
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(x))
        self._outputs["train"].append((raw.detach()[:, None], y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._outputs["val"].append((windowed_raw(self.model, x, self.window).float(), y))

    def _gathered(self, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        pairs, self._outputs[split] = self._outputs[split], []
        if not pairs:
            return None
        raw, y = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        if self.trainer.world_size > 1:
            raw, y = self.all_gather(raw).flatten(0, 1), self.all_gather(y).flatten(0, 1)
        return raw.float(), y.float()

    def epoch_metrics(self, split: str) -> dict[str, float]:
        """Loss, per-target losses and task metrics of the predictions collected for ``split`` (cleared);
        see :func:`split_metrics`."""
        gathered = self._gathered(split)
        if gathered is None:
            return {}
        raw_windows, y = gathered
        return split_metrics(self.task, raw_windows, y, split)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._outputs["val"] = []
            return
        row: dict[str, float] = {"epoch": self.current_epoch, "step": self.global_step}
        row.update(self.epoch_metrics("train"))
        row.update(self.epoch_metrics("val"))
        if self.trainer.optimizers:
            row["lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        logged = {k: v for k, v in row.items() if k not in ("epoch", "step") and math.isfinite(v)}
        headline = ("_mae", "_auroc")
        bar = {k for k in logged if k == "val_loss" or (k.startswith("val_") and k.endswith(headline))}
        # values are already gathered over processes: every rank logs the same numbers (so does their mean)
        sync = self.trainer.world_size > 1
        self.log_dict({k: v for k, v in logged.items() if k in bar}, prog_bar=True, sync_dist=sync)
        self.log_dict({k: v for k, v in logged.items() if k not in bar}, prog_bar=False, sync_dist=sync)
        if self.trainer.state.fn == "fit":
            self.history.append(row)

    def on_train_epoch_start(self) -> None:
        self._outputs["train"] = []

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        optimizer = torch.optim.AdamW(_param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[HISTORY_KEY] = [dict(r) for r in self.history]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = [dict(r) for r in checkpoint.get(HISTORY_KEY, [])]

    @torch.inference_mode()
    def predict_raw(self, loader: Any) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs ``[N, W, num_outputs]`` (``W`` windows per record, see ``window``) and labels
        ``[N, num_labels]`` of a data loader (eval mode)."""
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        raws, ys = [], []
        for x, y in loader:
            raws.append(windowed_raw(self.model, x.to(device), self.window).float().cpu())
            ys.append(y)
        self.model.train(was_training)
        return torch.cat(raws).numpy(), torch.cat(ys).numpy()
