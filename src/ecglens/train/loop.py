"""``fit(config)``: train a model on a prepared cache and write a self-describing run folder.

A run folder holds::

    RUN_DIR/
      config.yaml        the resolved config (defaults filled in, overrides applied)
      splits.csv         record_id, fold, split (train / val), source of every row used
      last.ckpt          Lightning checkpoint of the last epoch (for --resume; loaded with weights_only=True)
      best.ckpt          Lightning checkpoint of the best epoch (by trainer.monitor; none with monitor null,
                         which keeps the last epoch)
      model.safetensors  the best weights + preprocess + task + config + metrics (ecglens.load_checkpoint);
                         trained on random crops, its preprocess (input contract) has the crop's duration
                         and longer inputs are predicted in windows (ecglens.artifact.windows)
      metrics.json       validation metrics of the best weights (recomputed on the whole validation split)
      val_predictions.csv  record_id + predictions + labels on the validation split
      history.csv        one row per epoch: train / val loss and metrics, learning rate
      curves.png         training curves
      logs/              Lightning CSVLogger output (one version per start / resume)

``fit(config, resume=RUN_DIR)`` continues from ``RUN_DIR/last.ckpt``: the epoch counter, optimiser, schedule
and history carry on (to ``optim.epochs`` of the given config, which may be larger than before).

Fine-tuning (:mod:`ecglens.train.finetune`) writes the same run folder through the same public steps::

    with start_run(config, out) as run_dir:          # run folder, seed, torch threads
        dm = build_datamodule(config, cache)
        check_monitor(config, dm.task)
        trainer = build_trainer(config, run_dir, n_batches=...)
        save_run_inputs(config, run_dir, dm)          # config.yaml, splits.csv
        run_trainer(trainer, module, dm)
        result = finish_run(config, run_dir, trainer, module, dm, curves=...)
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

from ..artifact import inference_window, mean_over_windows, save_checkpoint
from ..data.dataset import EcgDataModule
from ..data.targets import TaskSpec, task_from_name
from ..evaluate.metrics import task_metrics
from ..exceptions import CheckpointError, ConfigError
from ..models import create_model
from ..signal.augment import Augment
from .accelerator import check_accelerator
from .config import TrainConfig, config_to_dict, save_config
from .module import EcgLightningModule

__all__ = ["RunResult", "build_augment", "build_datamodule", "build_task", "build_trainer", "check_monitor",
           "finish_run", "fit", "input_window", "model_contract", "monitor_names", "plot_history",
           "run_trainer", "save_run_inputs", "start_run", "uses_gpu", "without_curves", "write_run_outputs"]


@dataclass(frozen=True)
class RunResult:
    """What :func:`fit` produced: the run folder, the checkpoint file and the best validation metrics."""

    run_dir: Path
    checkpoint_path: Path
    metrics: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- builders


def build_task(config: TrainConfig) -> TaskSpec:
    """The (unfitted) task of a config: ``task.spec`` when given, else the preset ``task.name`` + options."""
    if config.task.spec is not None:
        return TaskSpec.from_dict(config.task.spec)
    return task_from_name(config.task.name, **config.task.options)


def build_augment(config: TrainConfig) -> Any:
    """The config's ``ecglens.signal.augment.Augment`` (``Augment.default()`` if no ``spec``) or None."""
    if not config.augment.enabled:
        return None
    return Augment.from_dict(config.augment.spec) if config.augment.spec else Augment.default()


def input_window(config: TrainConfig, cache: Any) -> int | None:
    """Samples of the trained model's input window: the training crop (``augment.spec.crop_seconds``) when it
    is shorter than the cached inputs, else ``None`` (inputs used whole). See :mod:`ecglens.artifact.windows`."""
    pre = getattr(cache, "preprocess", None)
    fs = getattr(cache, "fs", None) or getattr(pre, "fs", None)
    return inference_window(getattr(build_augment(config), "crop_seconds", None), fs, cache.signals.shape[-1])


def model_contract(config: TrainConfig, cache: Any) -> Any:
    """The input contract stored in the checkpoint: the cache's ``Preprocess``, with ``seconds`` set to the
    training crop when the model was trained on crops (:func:`input_window`); ``None`` if the cache has none."""
    pre = getattr(cache, "preprocess", None)
    if pre is None or input_window(config, cache) is None:
        return pre
    return dataclasses.replace(pre, seconds=float(build_augment(config).crop_seconds))


def build_datamodule(config: TrainConfig, cache: Any = None) -> EcgDataModule:
    """The data module of a config (``cache``: an opened cache to use instead of ``config.data.cache``)."""
    d = config.data
    return EcgDataModule(
        cache if cache is not None else d.cache,
        build_task(config),
        train_folds=d.train_folds,
        val_folds=d.val_folds,
        train_fraction=d.train_fraction,
        max_train=d.max_train,
        subsample_seed=d.subsample_seed,
        augment=build_augment(config),
        batch_size=config.optim.batch_size,
        num_workers=config.trainer.num_workers,
        seed=config.trainer.seed,
        teacher=d.teacher,
        teacher_weight=d.teacher_weight,
    )


def uses_gpu(accelerator: str) -> bool:
    """Whether ``trainer.accelerator`` means a GPU (``gpu``, ``cuda``, or ``auto`` with CUDA available)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def _precision(config: TrainConfig) -> str:
    """``auto`` -> 16-mixed on GPU, 32-true on CPU; 16-mixed on CPU falls back to 32-true (with a warning)."""
    wanted, gpu = config.trainer.precision, uses_gpu(config.trainer.accelerator)
    if wanted == "auto":
        return "16-mixed" if gpu else "32-true"
    if wanted == "16-mixed" and not gpu:
        warnings.warn("precision 16-mixed needs a GPU; training in 32-true on CPU.", stacklevel=3)
        return "32-true"
    return wanted


def _set_threads(config: TrainConfig) -> None:
    if config.trainer.num_threads is not None:
        torch.set_num_threads(max(1, config.trainer.num_threads))
    elif not uses_gpu(config.trainer.accelerator):
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - config.trainer.num_workers))


@contextmanager
def start_run(
    config: TrainConfig,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
) -> Iterator[Path]:
    """Set up a training run: its folder, the seeds and torch's CPU threads (restored when the block ends).

    Parameters
    ----------
    config : TrainConfig
        ``trainer.seed``, ``trainer.num_threads`` / ``num_workers`` / ``accelerator``, ``trainer.out_dir``.
    out : path, optional
        Run folder (default ``<trainer.out_dir>/<name>-<timestamp>``); must be new or empty.
    resume : path, optional
        A run folder holding ``last.ckpt`` to continue (``out`` is then ignored).

    Yields
    ------
    Path
        The run folder (created).
    """
    check_accelerator(config.trainer.accelerator, config.trainer.devices)  # a clear error, before the folder
    run_dir = _run_dir(config, out, resume)
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    threads = torch.get_num_threads()
    _set_threads(config)
    try:
        yield run_dir
    finally:
        torch.set_num_threads(threads)


def _run_dir(
    config: TrainConfig, out: str | os.PathLike[str] | None, resume: str | os.PathLike[str] | None
) -> Path:
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "last.ckpt").is_file():
            raise CheckpointError(
                f"Cannot resume: {run_dir / 'last.ckpt'} not found. Pass the folder of a run "
                "started by `ecglens train` (it writes last.ckpt after every epoch)."
            )
        return run_dir
    if not _is_rank_zero():  # a DDP worker process: use the folder rank 0 chose and checked
        run_dir = Path(os.environ.get(_RUN_DIR_ENV) or out or "")
        if not str(run_dir):
            raise ConfigError(
                "Multi-node training needs the same run folder on every node: pass --out RUN_DIR."
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    if out is None:
        if config.trainer.num_nodes > 1:
            raise ConfigError(
                "Multi-node training needs the same run folder on every node: pass --out RUN_DIR."
            )
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(config.trainer.out_dir) / f"{config.name}-{stamp}"
    run_dir = Path(out)
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(
            f"Run folder {run_dir} exists and is not empty. Choose another --out, or continue that "
            f"run with --resume {run_dir}."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ[_RUN_DIR_ENV] = str(run_dir.resolve())  # inherited by the DDP processes Lightning launches
    return run_dir


#: environment variable through which rank 0 tells the DDP processes it launches where the run folder is
_RUN_DIR_ENV = "ECGLENS_RUN_DIR"


def _is_rank_zero() -> bool:
    """False in a process that a distributed launcher (Lightning, torchrun, SLURM) started as rank > 0."""
    return all(int(os.environ.get(k) or 0) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def monitor_names(task: TaskSpec) -> list[str]:
    """Metric names a run logs each epoch (valid values of ``trainer.monitor``)."""
    raw, task = np.zeros((2, task.num_outputs)), task.fit(np.ones((2, task.num_labels)))  # names only
    metrics = task_metrics(task, task.postprocess(raw), np.full((2, task.num_labels), np.nan))
    parts = [f"{t.key}_loss" for t in task.targets] if len(task.targets) > 1 else []
    return [f"{split}_{name}" for split in ("val", "train") for name in ["loss", *parts, *metrics]]


def check_monitor(config: TrainConfig, task: TaskSpec) -> None:
    """Refuse a ``trainer.monitor`` that ``task`` does not log (:class:`ConfigError` naming valid ones).

    ``None`` (keep the last epoch) is valid without early stopping only.
    """
    if config.trainer.monitor is None:
        if config.trainer.patience is not None:
            raise ConfigError(
                "trainer.monitor=null keeps the last epoch, so there is nothing for early stopping to watch: "
                "set trainer.patience=null too, or name a metric to monitor."
            )
        return
    valid = monitor_names(task)
    if config.trainer.monitor not in valid:
        raise ConfigError(
            f"trainer.monitor={config.trainer.monitor!r} is not logged by task {task.name!r}. "
            f"Choose one of: {', '.join(valid)}."
        )


def _callbacks(config: TrainConfig, run_dir: Path) -> list[Any]:
    t = config.trainer
    callbacks: list[Any] = [] if t.monitor is None else [
        # first: trainer.checkpoint_callback, whose best_model_path finish_run loads (monitor None: last.ckpt)
        ModelCheckpoint(
            dirpath=run_dir,
            filename="best",
            monitor=t.monitor,
            mode=t.monitor_mode,
            save_top_k=1,
            enable_version_counter=False,
        ),
    ]
    callbacks += [
        # every epoch, for --resume. Not save_last=True on the callback above: since Lightning 2.6 that writes
        # last.ckpt only in epochs that improved the monitor, so a resume would repeat the epochs after the best.
        ModelCheckpoint(
            dirpath=run_dir,
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        ),
    ]
    if t.patience is not None:
        callbacks.append(EarlyStopping(monitor=t.monitor, mode=t.monitor_mode, patience=t.patience))
    if t.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    if config.optim.ema_decay is not None:
        from lightning.pytorch.callbacks import EMAWeightAveraging

        callbacks.append(EMAWeightAveraging(decay=config.optim.ema_decay))
    return callbacks


def build_trainer(config: TrainConfig, run_dir: Path, n_batches: int) -> Any:
    """The Lightning ``Trainer`` of a run (``ecglens train`` and ``ecglens finetune`` alike).

    Parameters
    ----------
    config : TrainConfig
        ``trainer`` (devices, precision, monitor, patience, ...) and ``optim`` (epochs, grad_clip, ema_decay).
    run_dir : Path
        Run folder: ``best.ckpt`` / ``last.ckpt`` and the CSV logs (``logs/``) go there.
    n_batches : int
        Training batches per epoch (caps ``log_every_n_steps`` so that short epochs still log).

    Returns
    -------
    lightning.Trainer
        With the callbacks of a run: best / last checkpoints, early stopping, progress bar, EMA weights.
    """
    t = config.trainer
    per_node = t.devices if isinstance(t.devices, int) and t.devices > 0 else 1  # "auto" / -1: unknown here
    world = max(1, per_node * t.num_nodes)
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=_precision(config),
        max_epochs=config.optim.epochs,
        max_time=t.max_time,
        logger=CSVLogger(str(run_dir), name="logs"),
        callbacks=_callbacks(config, run_dir),
        default_root_dir=str(run_dir),
        log_every_n_steps=max(1, min(t.log_every_n_steps, n_batches // world)),
        gradient_clip_val=config.optim.grad_clip,
        deterministic=t.deterministic,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=t.progress_bar,
    )


# ----------------------------------------------------------------------------------------------- fit


def fit(
    config: TrainConfig,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    cache: Any = None,
    curves: bool = True,
) -> RunResult:
    """Train ``config`` and write the run folder (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
        The resolved config (``load_config``).
    out : path, optional
        Run folder (default ``<trainer.out_dir>/<name>-<timestamp>``); must be new or empty.
    resume : path, optional
        A run folder to continue from its ``last.ckpt`` (``out`` is then ignored).
    cache : PreparedCache, optional
        An opened cache to use instead of opening ``config.data.cache``.
    curves : bool
        Draw ``curves.png`` (False skips it, about a second per run; ``history.csv`` is always written).

    Returns
    -------
    RunResult
        ``run_dir``, ``checkpoint_path`` (``model.safetensors``) and the best epoch's validation metrics.
    """
    with start_run(config, out, resume) as run_dir:
        dm = build_datamodule(config, cache)
        check_monitor(config, dm.task)
        model = create_model(
            config.model.name, in_leads=dm.in_leads, num_outputs=dm.task.num_outputs, **config.model.kwargs
        )
        module = EcgLightningModule(model, dm.task, config.optim, window=input_window(config, dm.cache))
        trainer = build_trainer(config, run_dir, n_batches=len(dm.train_indices) // dm.batch_size)
        if trainer.is_global_zero:
            save_run_inputs(config, run_dir, dm)
        run_trainer(trainer, module, dm, ckpt_path=run_dir / "last.ckpt" if resume is not None else None)
        return finish_run(config, run_dir, trainer, module, dm, curves=curves)


def save_run_inputs(config: TrainConfig, run_dir: Path, dm: EcgDataModule) -> None:
    """Write what a run starts from: ``config.yaml`` (resolved config) and ``splits.csv`` (every row used)."""
    save_config(config, run_dir / "config.yaml")
    dm.splits_table().to_csv(run_dir / "splits.csv", index=False)


def run_trainer(trainer: Any, module: EcgLightningModule, dm: EcgDataModule, *,
                ckpt_path: Path | None = None) -> None:
    """``trainer.fit(module, dm)``, resuming from ``ckpt_path`` (a Lightning checkpoint) when given.

    The checkpoint is loaded with ``weights_only=True``; one that holds other Python objects is refused with a
    :class:`CheckpointError` instead of being unpickled.
    """
    with warnings.catch_warnings():  # the run folder holds config.yaml, splits.csv (resuming: checkpoints)
        warnings.filterwarnings("ignore", message=r".*exists and is not empty")
        with refuse_unsafe_checkpoint(ckpt_path):
            trainer.fit(module, datamodule=dm, ckpt_path=None if ckpt_path is None else str(ckpt_path),
                        weights_only=True)


def _load_best(trainer: Any, module: EcgLightningModule, run_dir: Path) -> int:
    """Load the best epoch's weights into ``module`` (our own Lightning checkpoint); return that epoch."""
    best = Path(getattr(trainer.checkpoint_callback, "best_model_path", "") or run_dir / "last.ckpt")
    # A resumed run folder may come from someone else, and the best path is restored from its last.ckpt:
    # never unpickle it (weights_only=True admits tensors, containers and primitives only).
    with refuse_unsafe_checkpoint(best):
        state = torch.load(best, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    return int(state.get("epoch", -1))


@contextmanager
def refuse_unsafe_checkpoint(path: Path | None) -> Iterator[None]:
    """Turn torch's refusal to unpickle objects from a Lightning checkpoint into a :class:`CheckpointError`.

    Checkpoints are always loaded with ``weights_only=True``; a file that needs more (a crafted pickle, or a
    checkpoint written by other code) is refused instead of executed.
    """
    try:
        yield
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load this checkpoint: it holds Python objects other than tensors and plain "
            f"values, and loading it would run code ({str(err).splitlines()[0]}). ecglens never unpickles "
            "checkpoints; resume only run folders written by ecglens, or start a new run."
        ) from None


def finish_run(config: TrainConfig, run_dir: Path, trainer: Any, module: EcgLightningModule,
               dm: EcgDataModule, *, extra: Mapping[str, Any] | None = None,
               curves: bool = True) -> RunResult:
    """Load the best epoch's weights into ``module``, evaluate them and write the run folder's outputs.

    Parameters
    ----------
    config, run_dir, trainer, module, dm
        The run, after :func:`run_trainer`.
    extra : mapping, optional
        Entries added to the config stored in ``model.safetensors`` (see :func:`write_run_outputs`).
    curves : bool
        Draw ``curves.png``.

    Returns
    -------
    RunResult
        On a distributed worker (rank > 0) only the paths: rank 0 writes the outputs.
    """
    if not trainer.is_global_zero:
        return RunResult(run_dir, run_dir / "model.safetensors", {})
    best_epoch = _load_best(trainer, module, run_dir)
    return write_run_outputs(config, run_dir, module, dm,
                             {"best_epoch": best_epoch, "epochs_run": int(trainer.current_epoch)},
                             extra=extra, curves=curves)


#: False inside :func:`without_curves`: runs finished there draw no ``curves.png``
_DRAW_CURVES: ContextVar[bool] = ContextVar("ecglens_draw_curves", default=True)


@contextmanager
def without_curves() -> Iterator[None]:
    """Skip drawing ``curves.png`` in runs finished inside this block (``history.csv`` is still written).

    Drawing the curves costs about a second per run, which adds up over an experiment grid of small runs; the
    same as passing ``curves=False`` to :func:`fit` / :func:`~ecglens.train.finetune.finetune` (a context
    variable, so other threads and tasks are not affected).
    """
    token = _DRAW_CURVES.set(False)
    try:
        yield
    finally:
        _DRAW_CURVES.reset(token)


def write_run_outputs(config: TrainConfig, run_dir: Path, module: EcgLightningModule, dm: EcgDataModule,
                      info: dict[str, Any], *, extra: Mapping[str, Any] | None = None,
                      curves: bool = True) -> RunResult:
    """Evaluate ``module`` on the validation split and write the run folder's outputs.

    Writes ``metrics.json`` (``split``, ``folds``, ``n``, then ``info``, then the metrics of the whole validation
    split, predicted in windows of the input contract), ``val_predictions.csv``, ``model.safetensors`` (its
    stored config: the resolved config, the ``split`` used, then ``extra``, e.g. fine-tuning provenance),
    ``history.csv`` (``module.history``) and, if ``curves`` (and not inside :func:`without_curves`),
    ``curves.png``.
    """
    loader = torch.utils.data.DataLoader(dm.val_dataset(), batch_size=dm.batch_size, shuffle=False)
    raw, y = module.predict_raw(loader)
    outputs = mean_over_windows(dm.task, raw)
    val = task_metrics(dm.task, outputs, y)
    val["loss"] = float(dm.task.loss(torch.from_numpy(raw).mean(dim=1), torch.from_numpy(y)))
    metrics = {
        "split": "val",
        "folds": list(config.data.val_folds),
        "n": len(y),
        **info,
        **{k: float(v) for k, v in val.items()},
    }
    (run_dir / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2))
    _write_predictions(run_dir / "val_predictions.csv", dm, outputs, y)
    module.cpu()
    path = save_checkpoint(
        run_dir / "model.safetensors",
        module.model,
        config.model.name,
        dict(config.model.kwargs),
        dm.task,
        model_contract(config, dm.cache),
        {**_with_split(config, dm), **dict(extra or {})},
        metrics,
        in_leads=dm.in_leads,
    )
    history = pd.DataFrame(module.history)
    history.to_csv(run_dir / "history.csv", index=False)
    if len(history) and curves and _DRAW_CURVES.get():
        plot_history(
            history, run_dir / "curves.png", title=f"{config.name}: {config.model.name}, {dm.task.name}"
        )
    return RunResult(run_dir, path, metrics)


def _with_split(config: TrainConfig, dm: EcgDataModule) -> dict[str, Any]:
    """The resolved config plus the split actually used (counts, subsampling) for the checkpoint."""
    return {**config_to_dict(config), "split": dm.split_info}


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def _write_predictions(path: Path, dm: EcgDataModule, outputs: dict[str, np.ndarray], y: np.ndarray) -> None:
    ids = dm.splits_table().query("split == 'val'")["record_id"].to_numpy()
    table = pd.DataFrame({"record_id": ids, **outputs})
    for i, column in enumerate(dm.task.label_columns):
        table[f"label_{column}"] = y[:, i]
    table.to_csv(path, index=False)


def plot_history(history: pd.DataFrame, path: str | os.PathLike[str], title: str = "") -> Path:
    """Plot loss and each validation metric per epoch (train and val where both exist) to ``path``.

    A history with an ``l2`` column and no ``epoch`` column (the L-BFGS ``linear_probe``, one row per L2
    strength, :mod:`ecglens.train.probe`) is plotted against the L2 strength on a log axis instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    by_l2 = "l2" in history.columns and "epoch" not in history.columns
    keys = ("_mae", "_r", "_auroc")  # the headline metric(s) of each target; the rest is in history.csv
    names = ["loss"] + sorted({c[4:] for c in history.columns if c.startswith("val_") and c.endswith(keys)})
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for split, style in (("train", "--"), ("val", "-")):
            column = f"{split}_{name}"
            if column in history and history[column].notna().any():
                x = history["l2"] if by_l2 else history["epoch"] + 1
                ax.plot(x, history[column], style, marker="o", ms=3, label=split)
        ax.set_title(name)
        if by_l2:
            ax.set_xscale("symlog", linthresh=min([v for v in history["l2"] if v > 0] or [1e-4]))
            ax.set_xlabel("L2 strength")
        else:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:  # a metric logged for no split draws nothing to label
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
