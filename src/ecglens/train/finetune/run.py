"""``finetune()``: run a fine-tuning strategy from a pretrained checkpoint and write a run folder.

The run uses the same public steps as ``ecglens train`` (:func:`~ecglens.train.loop.start_run`,
:func:`~ecglens.train.loop.build_trainer`, :func:`~ecglens.train.loop.finish_run`, ...); the L-BFGS probe
(``linear_probe`` with ``probe_solver="lbfgs"``, and the first stage of ``lp_ft``) fits the head on the frozen
features with :mod:`ecglens.train.probe` instead of a trainer.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from ...artifact import check_contract
from ...data.cache import open_cache
from ...data.views import CacheView, cache_leads
from ...exceptions import ConfigError
from ...jsonutil import json_ready
from ..config import ModelConfig, TrainConfig
from ..loop import (
    RunResult,
    build_datamodule,
    build_trainer,
    check_monitor,
    finish_run,
    input_window,
    run_trainer,
    save_run_inputs,
    start_run,
    uses_gpu,
    write_run_outputs,
)
from ..probe import ProbeFit, fit_probe_head, window_features
from .module import FinetuneModule
from .settings import FinetuneConfig
from .strategies import get_strategy
from .surgery import checkpoint_leads, load_pretrained, make_head_linear, prepare_model

__all__ = ["finetune"]


def finetune(checkpoint: Any, config: TrainConfig, settings: FinetuneConfig | None = None, *,
             out: str | os.PathLike[str] | None = None, cache: Any = None, curves: bool = True) -> RunResult:
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
        Draw ``curves.png`` (see :func:`~ecglens.train.loop.without_curves`).

    Returns
    -------
    ecglens.train.loop.RunResult
        ``run_dir``, ``checkpoint_path`` (``model.safetensors`` with the new task) and validation metrics.
    """
    settings = settings or FinetuneConfig()
    ckpt = load_pretrained(checkpoint) if checkpoint is not None else None
    config = _resolve_config(config, ckpt)
    with start_run(config, out) as run_dir:
        return _finetune(ckpt, config, settings, run_dir, cache, curves)


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


def _target_view(config: TrainConfig, settings: FinetuneConfig, ckpt: Any, cache: Any) -> Any:
    """The target cache (checked against the checkpoint's contract), seen through the run's leads."""
    base = cache if cache is not None else open_cache(config.data.cache)
    check_contract(getattr(ckpt, "preprocess", None), getattr(base, "preprocess", None),
                   fields=("fs", "seconds", "highpass_hz", "notch_hz", "normalize"),
                   where=f"at {getattr(base, 'path', config.data.cache)}", fix=" or use strategy scratch")
    leads = settings.leads
    if leads is None and ckpt is not None:
        leads = checkpoint_leads(ckpt)
    return base if leads is None else CacheView(base, leads)


def _finetune(ckpt: Any, config: TrainConfig, settings: FinetuneConfig, run_dir: Path, cache: Any,
              curves: bool) -> RunResult:
    data = _target_view(config, settings, ckpt, cache)
    dm = build_datamodule(config, data)
    check_monitor(config, dm.task)
    leads = cache_leads(data)
    model = prepare_model(ckpt, dm.task.num_outputs, settings.strategy, leads=leads,
                          lead_init=settings.lead_init, head_init=settings.head_init,
                          model_config=config.model)
    probe = settings.strategy == "linear_probe" and settings.probe_solver == "lbfgs"
    lp_ft = get_strategy(settings.strategy).probe_head
    if (probe or lp_ft) and make_head_linear(model, dm.task.num_outputs, settings.head_init):
        kwargs = {**config.model.kwargs, "head_hidden": 0}
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, kwargs=kwargs))
    module = FinetuneModule(model, dm.task, config.optim, settings, window=input_window(config, dm.cache))
    extra = {"finetune": settings.to_dict(), "pretrained": _pretrained_info(ckpt), "leads": list(leads)}
    if lp_ft:  # the head fitted on the frozen features first, before any trainer touches the model
        extra["probe_head"] = _probe_summary(_fit_probe(config, settings, module, dm))
    n_batches = len(dm.train_indices) // dm.batch_size
    trainer = None if probe else build_trainer(config, run_dir, n_batches=n_batches)
    if trainer is None or trainer.is_global_zero:
        save_run_inputs(config, run_dir, dm)
        text = yaml.safe_dump(json_ready(extra), sort_keys=False)
        (run_dir / "finetune.yaml").write_text(text, encoding="utf-8")
    if probe:
        return _probe(config, settings, run_dir, module, dm, json_ready(extra), curves)
    module.train()  # every strategy starts training in train mode (frozen groups go to eval: freeze_bn)
    run_trainer(trainer, module, dm)
    return finish_run(config, run_dir, trainer, module, dm, extra=json_ready(extra), curves=curves)


def _probe(config: TrainConfig, settings: FinetuneConfig, run_dir: Path, module: FinetuneModule, dm: Any,
           extra: Mapping[str, Any], curves: bool) -> RunResult:
    """The ``lbfgs`` linear probe: fit the head on frozen features (:mod:`ecglens.train.probe`); write the
    run folder."""
    fit = _fit_probe(config, settings, module, dm)
    module.history = fit.history
    info = {"best_epoch": None, "epochs_run": None, "probe_solver": "lbfgs", "probe_l2": fit.l2,
            "probe_iterations": fit.iterations}
    return write_run_outputs(config, run_dir, module, dm, info, extra=extra, curves=curves)


def _fit_probe(config: TrainConfig, settings: FinetuneConfig, module: FinetuneModule, dm: Any) -> ProbeFit:
    """Fit ``module.model.head`` in place on the frozen features of the training / validation ECGs;
    returns the :class:`~ecglens.train.probe.ProbeFit` (``linear_probe`` and ``lp_ft``)."""
    if config.trainer.num_nodes > 1:
        raise ConfigError("The L-BFGS probe head (linear_probe, lp_ft) is fitted in one process; use "
                          "--num-nodes 1 (or, for linear_probe, finetune.probe_solver=sgd).")
    device = torch.device("cuda" if uses_gpu(config.trainer.accelerator) else "cpu")
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


def _probe_summary(fit: ProbeFit) -> dict[str, Any]:
    """The ``probe_head`` entry of ``lp_ft``'s ``finetune.yaml``: the chosen L2 strength, its val metrics."""
    chosen = next(row for row in fit.history if row["l2"] == fit.l2)
    return {"l2": fit.l2, "iterations": fit.iterations,
            **{k: v for k, v in chosen.items() if k.startswith("val_")}}
