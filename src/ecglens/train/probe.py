"""Fit the head of a ``linear_probe`` to convergence on frozen features (``finetune.probe_solver: lbfgs``).

With its backbone frozen, a probe's head is a small model of fixed features. Trained like a fine-tuning run
(AdamW for a few epochs of a small target set: 32 optimiser steps for 100 ECGs in the PTB-XL grid) it stops far
from its optimum; on PTB-XL MI with 100 target ECGs such a head reached a test AUROC of 0.60 where a logistic
regression on the same features reached 0.74 (docs/transfer_notebook.md). The ``lbfgs`` solver instead

1. computes the frozen features (``forward_features``, eval mode, no augmentation) of the training and
   validation ECGs once, per window of the model's input window (:mod:`ecglens.artifact.windows`);
2. standardises them with the mean and standard deviation of the training ECGs' windows (folded into the
   head afterwards, so the checkpoint takes raw inputs like any other);
3. for every L2 strength ``l2`` of ``finetune.probe_l2``, each fit starting from the head's initial weights,
   minimises ``task.loss(mean_w head(f_w), y) + l2 / 2 * sum ||W||^2`` (``f_w``:
   the features of window ``w`` of a training ECG, so the loss is that of the window-averaged raw outputs
   as in every validation of ecglens; ``W``: the head's weight matrices) with full-batch L-BFGS and a
   strong-Wolfe line search, in float64, until the gradient vanishes;
4. keeps the strength whose head scores best on the validation split by ``trainer.monitor`` (ties: the
   stronger penalty), predicted per window and averaged as in every validation of ecglens.

For a linear head (``Dropout -> Linear``; ``finetune`` gives the models whose head has a hidden layer,
``xresnet1d*`` and ``inception1d``, a linear one for the probe) and a binary task this is an L2-regularised
logistic regression: a convex problem with one optimum. :func:`fit_probe_head` accepts any head; one with a
hidden layer (``mlp_head``) is fitted the same way from its initialisation, which is not convex, and is slow
and overfits on small targets (on PTB-XL MI with 100 ECGs and 1,024 features: training loss near 0 for
every strength up to 1, a validation AUROC of 0.63–0.66, 30–40 s per strength on one CPU thread).

>>> rows = fit_probe_head(model, task, f_train, y_train, f_val, y_val, [0.01, 0.1, 1.0])   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..artifact import windowed_raw
from ..data.targets import TaskSpec
from ..exceptions import ConfigError
from .module import split_metrics

__all__ = ["ProbeFit", "fit_probe_head", "window_features"]

#: L-BFGS iterations allowed per L2 strength (a logistic regression on a few hundred features needs tens)
MAX_ITER = 1000


def window_features(model: nn.Module, signals: Any, rows: np.ndarray, width: int | None, *,
                    batch_size: int = 256, device: torch.device | str = "cpu",
                    progress: bool = False) -> np.ndarray:
    """Frozen features of some ECGs of a cache, per window.

    Parameters
    ----------
    model : nn.Module
        A zoo model (``forward_features``); in eval mode while the features are computed, then every
        sub-module goes back to the mode it was in.
    signals : array-like, shape (N_cache, leads, T)
        The cache's signals (a memory map is read batch by batch).
    rows : np.ndarray of int, shape (N,)
        The ECGs to embed.
    width : int or None
        Window length in samples (``None``: each ECG whole), as :func:`~ecglens.artifact.windows.windowed_raw`.
    batch_size : int
        ECGs per forward pass.
    device : torch.device or str
        Where the model runs.
    progress : bool
        Show a progress bar.

    Returns
    -------
    np.ndarray, shape (N, W, num_features), float32
    """
    from tqdm.auto import tqdm

    modes = {m: m.training for m in model.modules()}  # restored afterwards: lp_ft trains this model next
    model.eval()
    out = []
    starts = range(0, len(rows), batch_size)
    try:
        with torch.inference_mode():
            for i in tqdm(starts, desc="frozen features", unit="batch", disable=not progress):
                x = torch.from_numpy(np.asarray(signals[rows[i:i + batch_size]], dtype=np.float32)).to(device)
                out.append(windowed_raw(model.forward_features, x, width).float().cpu().numpy())
    finally:
        for module, training in modes.items():
            module.train(training)
    if not out:
        raise ConfigError("No ECGs to compute probe features for: the training or validation split is empty.")
    return np.concatenate(out)


class _Standardise(nn.Module):
    """``(f - mean) / std`` (the training ECGs' statistics), to be folded into the head after fitting."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return (f - self.mean) / self.std


def _first_parametrised(head: nn.Module) -> nn.Module | None:
    for module in head.modules():
        if any(True for _ in module.parameters(recurse=False)):
            return module
    return None


def _standardise(head: nn.Module, features: np.ndarray) -> tuple[nn.Module, bool]:
    """The module to fit (float64): ``head`` behind a standardisation of ``features`` ``[N, F]``.

    A head that starts with ``BatchNorm1d`` gets the statistics as its running mean and variance (in eval mode
    that is the standardisation); one that starts with ``Linear`` gets a :class:`_Standardise` in front, folded
    into that layer by :func:`_fold` (``True`` returned); any other head is fitted on the raw features.
    """
    f = torch.from_numpy(features).double()
    mean, std = f.mean(dim=0), f.std(dim=0, correction=0)
    std = torch.where(std > 1e-6 * float(std.max().clamp_min(1e-12)), std, torch.ones_like(std))
    net = copy.deepcopy(head).double().eval()
    first = _first_parametrised(net)
    if isinstance(first, nn.BatchNorm1d) and first.running_mean is not None:
        with torch.no_grad():
            first.running_mean.copy_(mean)
            first.running_var.copy_((std**2 - first.eps).clamp_min(0.0))
        return net, False
    if isinstance(first, nn.Linear):
        return nn.Sequential(_Standardise(mean, std), net), True
    return net, False


def _fold(net: nn.Sequential) -> nn.Module:
    """The head of ``Sequential(_Standardise, head)`` with the standardisation folded into its first Linear."""
    standardise, head = net[0], net[1]
    first = _first_parametrised(head)
    with torch.no_grad():
        weight = first.weight / standardise.std[None, :]
        if first.bias is not None:
            first.bias -= weight @ standardise.mean
        first.weight.copy_(weight)
    return head


def _fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, task: TaskSpec, l2: float) -> int:
    """Minimise ``task.loss(mean over windows of net(x), y) + l2 / 2 * sum ||W||^2`` (``x``: ``[N, W, F]``)
    over the parameters of ``net`` by L-BFGS; returns the iterations used."""
    params = list(net.parameters())
    for p in params:
        p.requires_grad_(True)
    penalised = [p for p in params if p.ndim >= 2]
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=MAX_ITER, history_size=20, tolerance_grad=1e-7,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = task.loss(_per_window(net, x).mean(dim=1), y)
        if l2 > 0 and penalised:
            loss = loss + 0.5 * l2 * sum((p**2).sum() for p in penalised)
        loss.backward()
        return loss

    optimizer.step(closure)
    return int(optimizer.state[params[0]].get("n_iter", 0)) if params else 0


def _per_window(net: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """``[N, W, F]`` features -> ``[N, W, num_outputs]`` raw outputs."""
    n, w, f = features.shape
    return net(features.reshape(n * w, f)).reshape(n, w, -1)


@dataclass(frozen=True)
class ProbeFit:
    """What :func:`fit_probe_head` found.

    Attributes
    ----------
    l2 : float
        The selected L2 strength.
    iterations : int
        L-BFGS iterations of the selected fit.
    history : list of dict
        One row per strength, ascending: ``l2``, ``iterations``, ``train_*`` and ``val_*`` losses and metrics.
    """

    l2: float
    iterations: int
    history: list[dict[str, float]]


def fit_probe_head(head: nn.Module, task: TaskSpec, train_features: np.ndarray, train_y: np.ndarray,
                   val_features: np.ndarray, val_y: np.ndarray, l2s: Sequence[float], *,
                   monitor: str = "val_loss", mode: str = "min") -> ProbeFit:
    """Fit ``head`` in place: L-BFGS for every L2 strength, keep the best on validation (module docstring).

    Parameters
    ----------
    head : nn.Module
        ``[batch, F] -> [batch, num_outputs]``; its weights are replaced by the selected fit (float32, eval
        mode, taking raw features).
    task : TaskSpec
        The fitted task (loss, postprocessing, metrics).
    train_features, val_features : np.ndarray, shape (N, W, F)
        Frozen features per window (:func:`window_features`).
    train_y, val_y : np.ndarray, shape (N, num_labels)
        Labels in natural units (NaN: missing).
    l2s : sequence of float
        L2 strengths to try (>= 0).
    monitor : str
        ``val_<...>`` or ``train_<...>`` key of :func:`~ecglens.train.module.split_metrics` to select by.
    mode : {"min", "max"}
        Whether a smaller or larger ``monitor`` is better.

    Returns
    -------
    ProbeFit
    """
    if not l2s or any(not (float(v) >= 0.0 and math.isfinite(float(v))) for v in l2s):
        raise ConfigError(f"probe L2 strengths must be a non-empty list of numbers >= 0, got {list(l2s)}.")
    sign = 1.0 if mode == "max" else -1.0
    net, folded = _standardise(head, train_features.reshape(-1, train_features.shape[-1]))
    x_train, y_fit = torch.from_numpy(train_features).double(), torch.from_numpy(np.asarray(train_y)).double()
    x_val, y_val = torch.from_numpy(val_features).double(), torch.from_numpy(np.asarray(val_y)).double()
    best: tuple[float, float, int, dict[str, Any]] | None = None
    rows = []
    start = copy.deepcopy(net.state_dict())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny steps: more threads only add synchronisation
    try:
        for l2 in sorted({float(v) for v in l2s}, reverse=True):
            net.load_state_dict(start)  # every fit from the initial head (a strong penalty's collapsed hidden
            iterations = _fit(net, x_train, y_fit, task, l2)  # layer would be a saddle for the next one)
            with torch.no_grad():
                row = {"l2": l2, "iterations": iterations,
                       **split_metrics(task, _per_window(net, x_train), y_fit, "train"),
                       **split_metrics(task, _per_window(net, x_val), y_val, "val")}
            if monitor not in row:
                raise ConfigError(f"trainer.monitor={monitor!r} is not computed by the probe; choose one of "
                                  f"{', '.join(k for k in row if k.startswith(('val_', 'train_')))}.")
            rows.append(row)
            score = sign * row[monitor]
            if best is None or (math.isfinite(score) and not score <= best[0]):
                best = (score if math.isfinite(score) else -math.inf, l2, iterations,
                        copy.deepcopy(net.state_dict()))
    finally:
        torch.set_num_threads(threads)
    assert best is not None
    net.load_state_dict(best[3])
    fitted = _fold(net) if folded else net
    head.load_state_dict(fitted.float().state_dict())
    return ProbeFit(best[1], best[2], sorted(rows, key=lambda r: r["l2"]))
