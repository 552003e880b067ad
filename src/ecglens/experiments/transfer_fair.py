"""The fair protocol of the transfer experiment: tuning on an inner validation split, a fixed step budget.

With a ``tuning:`` section in a transfer config (see ``configs/transfer_fair.yaml``) every target run, scratch
and every pretrained strategy alike, is tuned the same way (issue #23, item 2):

1. **Inner split.** The run's target ECGs are drawn (seeded by the run's seed, whole patients) from the target
   training folds; ``val_fraction`` of them (whole patients, stratified by label) become the inner validation
   split. The test folds are not touched until step 3.
2. **Selection.** Each candidate (every ``lr``; for discriminative strategies also every ``lr_decay``) trains
   for a fixed optimiser-step budget (``max_steps``, rounded up to whole epochs) with early stopping
   (``patience_steps``) on the inner validation split; the candidate with the best inner-validation metric
   (``select_metric``: AUROC, AUPRC for ``acute_mi``) is kept. The L-BFGS linear probe has one candidate (its L2
   strength is chosen on the same split).
3. **Test.** Only the chosen candidate is scored on the test folds, once.

``candidates.csv`` in each run folder lists every candidate and its inner-validation value; the results row
records the chosen ``lr`` / ``lr_decay``, the best step and whether it was the budget's last epoch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import load_checkpoint
from ..data.targets import TaskSpec
from ..data.views import CacheView
from ..evaluate.bootstrap import bootstrap_metrics
from ..evaluate.metrics import auprc, auroc
from ..evaluate.runner import predict_cache
from ..exceptions import ConfigError
from ..train.config import TrainConfig
from ..train.finetune import STRATEGIES, finetune, finetune_settings_from_dict
from ..train.loop import RunResult
from .grid import drop_checkpoints

__all__ = ["INNER_TRAIN", "INNER_VAL", "METRICS", "PRIMARY_METRIC", "TUNING_COLUMNS", "Candidate", "TuningSpec",
           "candidates", "chosen_dir", "epochs_for_steps", "inner_split_folds", "split_scores", "tuned_finetune",
           "write_test_predictions"]

#: fold codes of the inner training / validation rows in a run's cache view (never PTB-XL fold numbers)
INNER_TRAIN, INNER_VAL = 101, 102
#: selection / report metrics by name
METRICS = {"auroc": auroc, "auprc": auprc}
#: the primary (selection) metric of a target task when ``tuning.select_metric`` does not name one
PRIMARY_METRIC: dict[str, str] = {"acute_mi": "auprc"}
#: the extra ``results.csv`` columns of a tuned grid
TUNING_COLUMNS: tuple[str, ...] = ("lr", "lr_decay", "n_candidates", "select_metric", "select_value",
                                   "steps_per_epoch", "max_steps", "best_step", "best_is_last", "control_C")


@dataclass(frozen=True)
class TuningSpec:
    """The fair protocol's tuning (module docstring).

    Attributes
    ----------
    lr : tuple of float
        Learning rates tried (the head's, for discriminative strategies).
    lr_decay : tuple of float
        ``lr_decay`` values tried by discriminative strategies (``finetune``, ``lp_ft``, ``gradual_unfreeze``).
    max_steps : int
        Optimiser-step budget of every candidate (rounded up to whole epochs).
    patience_steps : int or None
        Early stopping after this many steps without improvement of ``trainer.monitor`` (rounded up to epochs).
    val_fraction : float
        Share of a run's target ECGs (whole patients) held out as its inner validation split.
    select_metric : dict
        ``{target task: auroc | auprc}``; default :data:`PRIMARY_METRIC`, else ``auroc``.
    case_fraction : dict
        ``{target task: fraction}``: a case-control draw for a rare target. Each run draws whole patients with a
        positive ECG until at least ``fraction`` x size of its ECGs are positive, and patients without until the
        size is reached; tasks not listed are drawn at their prevalence. The test folds keep theirs.
    """

    lr: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)
    lr_decay: tuple[float, ...] = (1.0, 0.5)
    max_steps: int = 1000
    patience_steps: int | None = 200
    val_fraction: float = 0.25
    select_metric: dict[str, str] = field(default_factory=dict)
    case_fraction: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.lr or any(not float(v) > 0 for v in self.lr):
            raise ConfigError(f"tuning.lr must be a non-empty list of positive rates, got {list(self.lr)}.")
        if not self.lr_decay or any(not 0 < float(v) <= 1 for v in self.lr_decay):
            raise ConfigError(f"tuning.lr_decay must be values in (0, 1], got {list(self.lr_decay)}; e.g. [1, 0.5].")
        if self.max_steps < 1 or (self.patience_steps is not None and self.patience_steps < 1):
            raise ConfigError("tuning.max_steps and tuning.patience_steps must be >= 1 (patience_steps may be "
                              "null: no early stopping).")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"tuning.val_fraction must be in (0, 1), got {self.val_fraction}; e.g. 0.25.")
        bad = {k: v for k, v in self.select_metric.items() if v not in METRICS}
        if bad:
            raise ConfigError(f"tuning.select_metric: {bad} not in {sorted(METRICS)}.")
        bad = {k: v for k, v in self.case_fraction.items() if not 0 < float(v) < 1}
        if bad:
            raise ConfigError(f"tuning.case_fraction: {bad}; each must be a share of positive ECGs in (0, 1), "
                              "e.g. {acute_mi: 0.25}.")

    def metric_for(self, task: str) -> str:
        """The selection metric of target task ``task``."""
        return self.select_metric.get(task) or PRIMARY_METRIC.get(task, "auroc")


@dataclass(frozen=True)
class Candidate:
    """One setting tried by a tuned run."""

    lr: float
    lr_decay: float

    @property
    def name(self) -> str:
        return f"lr{self.lr:g}_decay{self.lr_decay:g}"


def candidates(spec: TuningSpec, strategy: str, probe_solver: str = "lbfgs") -> list[Candidate]:
    """The settings a run of ``strategy`` tries: ``lr`` (x ``lr_decay`` when discriminative); one for the
    L-BFGS probe (it has no learning rate)."""
    if strategy == "linear_probe" and probe_solver == "lbfgs":
        return [Candidate(float(spec.lr[0]), 1.0)]
    decays = spec.lr_decay if STRATEGIES[strategy].discriminative else (1.0,)
    return [Candidate(float(lr), float(d)) for lr in spec.lr for d in decays]


def epochs_for_steps(steps: int, n_train: int, batch_size: int) -> tuple[int, int]:
    """``(epochs, steps_per_epoch)`` covering ``steps`` optimiser steps (the loader drops a last partial batch
    when there is more than one batch)."""
    per_epoch = max(1, n_train // max(1, batch_size))
    return max(1, math.ceil(steps / per_epoch)), per_epoch


def _patients(meta: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Patient id of each row (the row itself where the cache has none)."""
    if "patient_id" in meta.columns:
        pid = meta["patient_id"].to_numpy()[rows]
        return np.array([p if pd.notna(p) else f"row{r}" for p, r in zip(pid, rows, strict=True)], dtype=object)
    return np.array([f"row{r}" for r in rows], dtype=object)


def _draw_patients(pid: np.ndarray, size: int, rng: np.random.Generator,
                   counted: np.ndarray | None = None) -> np.ndarray:
    """Whole patients in a seeded random order until they hold at least ``size`` of the ECGs ``pid`` lists
    (of those ``counted`` marks, when given)."""
    order = rng.permutation(pd.unique(pid))
    weight = np.ones(len(pid)) if counted is None else counted.astype(np.float64)
    counts = pd.Series(weight).groupby(pid).sum().reindex(order).to_numpy()
    return order[: int(np.searchsorted(np.cumsum(counts), int(size)) + 1)]


def inner_split_folds(meta: pd.DataFrame, y: np.ndarray, pool_folds: tuple[int, ...],
                      test_folds: tuple[int, ...], size: int | str, val_fraction: float, seed: int,
                      case_fraction: float | None = None) -> np.ndarray:
    """Fold codes of one tuned run: its inner training / validation ECGs and the untouched test folds.

    Parameters
    ----------
    meta : pandas.DataFrame
        The cache's metadata (``fold``, optional ``patient_id``), N rows.
    y : np.ndarray, shape (N,)
        The target label (NaN: unlabelled, never drawn).
    pool_folds, test_folds : tuple of int
        Folds the target ECGs are drawn from; folds scored once after selection.
    size : int or "all"
        Target ECGs of the run (whole patients are drawn until at least ``size`` ECGs).
    val_fraction : float
        Share of the drawn patients (per label, so both classes are in it) held out for validation.
    seed : int
        Seed of both draws.
    case_fraction : float, optional
        Case-control draw: patients with a positive ECG until at least ``case_fraction * size`` positive ECGs,
        then patients without one until ``size`` ECGs (:class:`TuningSpec`); ``None``: patients at random.

    Returns
    -------
    np.ndarray, shape (N,), float64
        :data:`INNER_TRAIN`, :data:`INNER_VAL`, the test fold number, or NaN (not used by the run).
    """
    fold = meta["fold"].to_numpy(dtype=np.float64)
    pool = np.flatnonzero(np.isin(fold, pool_folds) & ~np.isnan(y))
    rng = np.random.default_rng(seed)
    pid = _patients(meta, pool)
    if size == "all":
        order = rng.permutation(pd.unique(pid))  # drawn all the same: the inner split's draws follow it
    elif case_fraction is None:
        order = _draw_patients(pid, int(size), rng)
    else:
        is_pos = y[pool] == 1
        positive = pd.Series(is_pos).groupby(pid).transform("max").to_numpy(dtype=bool)  # patients with a case
        need = int(np.ceil(case_fraction * int(size)))
        if int(is_pos.sum()) < need:
            raise ConfigError(f"A case-control draw of {size} ECGs with {case_fraction:.0%} positives needs "
                              f"{need} positive ECGs; the pool (folds {list(pool_folds)}) holds {int(is_pos.sum())}:"
                              " lower tuning.case_fraction or the target size.")
        cases = _draw_patients(pid[positive], need, rng, counted=is_pos[positive])
        rest = int(size) - int(np.isin(pid, cases).sum())
        order = np.concatenate([cases, _draw_patients(pid[~positive], rest, rng) if rest > 0 else []])
    drawn = pool[np.isin(pid, order)]
    by_patient = pd.DataFrame({"pid": _patients(meta, drawn), "y": y[drawn]}).groupby("pid")["y"].max()
    val_ids: list[Any] = []
    for _, ids in by_patient.groupby(by_patient):
        ids = rng.permutation(ids.index.to_numpy())
        n_val = int(round(val_fraction * len(ids)))
        val_ids += list(ids[: max(n_val, 1) if len(ids) >= 2 else n_val])  # both classes in both splits
    out = np.full(fold.shape, np.nan)
    out[drawn] = INNER_TRAIN
    out[drawn[np.isin(_patients(meta, drawn), val_ids)]] = INNER_VAL
    test = np.isin(fold, test_folds)
    out[test] = fold[test]
    return out


def _val_value(checkpoint: Path, view: CacheView, y: np.ndarray, metric: str) -> float:
    """``metric`` of a candidate's checkpoint on the inner validation rows of ``view``."""
    ckpt = load_checkpoint(checkpoint)
    data = CacheView(view, ckpt.preprocess.leads) if ckpt.preprocess is not None else view
    rows = np.flatnonzero(data.meta["fold"].to_numpy(dtype=np.float64) == INNER_VAL)
    p = predict_cache(ckpt, data.signals, rows, progress=False)[ckpt.task.output_names[0]]
    return float(METRICS[metric](y[rows], p))


def _candidate_config(config: TrainConfig, spec: TuningSpec, cand: Candidate, n_train: int) -> TrainConfig:
    """``config`` with the candidate's learning rate, the step budget as epochs and the patience in epochs."""
    epochs, per_epoch = epochs_for_steps(spec.max_steps, n_train, config.optim.batch_size)
    patience = None if spec.patience_steps is None else math.ceil(spec.patience_steps / per_epoch)
    optim = dataclasses.replace(config.optim, lr=cand.lr, epochs=epochs)
    data = dataclasses.replace(config.data, train_folds=(INNER_TRAIN,), val_folds=(INNER_VAL,), max_train=None)
    return dataclasses.replace(config, optim=optim, data=data,
                               trainer=dataclasses.replace(config.trainer, patience=patience))


def tuned_finetune(pretrained: Path | None, config: TrainConfig, strategy: str, finetune_options: Mapping[str, Any],
                   spec: TuningSpec, view: CacheView, task: TaskSpec, task_name: str,
                   folder: Path) -> tuple[RunResult, dict[str, Any]]:
    """Train every candidate of a run on its inner split, keep the best on the inner validation split.

    Parameters
    ----------
    pretrained : Path or None
        The pretrained checkpoint (``None``: scratch).
    config : TrainConfig
        The run's training config (its ``optim.lr`` / ``epochs`` / folds are replaced per candidate).
    strategy : str
        A fine-tuning strategy (``scratch`` included).
    finetune_options : mapping
        The experiment's ``finetune`` section (``lr_decay`` is replaced per candidate).
    spec : TuningSpec
        The tuning.
    view : CacheView
        The cache with the run's fold codes (:func:`inner_split_folds`).
    task, task_name : TaskSpec, str
        The target task (labels) and its name (selection metric).
    folder : Path
        The run folder: one sub-folder per candidate, ``candidates.csv`` and ``selection.json``.

    Returns
    -------
    (RunResult, dict)
        The chosen candidate's run and the tuning columns of the results row.
    """
    y = task.labels_from_meta(view.meta)[:, 0]
    n_train = int(np.sum(view.meta["fold"].to_numpy(dtype=np.float64) == INNER_TRAIN))
    metric, rows, results = spec.metric_for(task_name), [], []
    for cand in candidates(spec, strategy, str(finetune_options.get("probe_solver", "lbfgs"))):
        cfg = _candidate_config(config, spec, cand, n_train)
        settings = finetune_settings_from_dict({**finetune_options, "strategy": strategy, "lr_decay": cand.lr_decay})
        result = finetune(pretrained, cfg, settings, out=folder / cand.name, cache=view)
        value = _val_value(result.checkpoint_path, view, y, metric)
        rows.append({"candidate": cand.name, "lr": cand.lr, "lr_decay": cand.lr_decay, f"val_{metric}": value,
                     "best_epoch": result.metrics.get("best_epoch"), "epochs_run": result.metrics.get("epochs_run")})
        results.append(result)
    values = np.array([r[f"val_{metric}"] for r in rows], dtype=np.float64)
    best = int(np.nanargmax(values)) if np.isfinite(values).any() else 0
    for k, result in enumerate(results):
        if k != best:
            drop_checkpoints(result.run_dir, keep_model=False)
    pd.DataFrame(rows).assign(chosen=[k == best for k in range(len(rows))]).to_csv(folder / "candidates.csv",
                                                                                   index=False)
    (folder / "selection.json").write_text(json.dumps({"chosen": rows[best]["candidate"]}, indent=2))
    chosen = rows[best]
    epochs, per_epoch = epochs_for_steps(spec.max_steps, n_train, config.optim.batch_size)
    best_epoch, epochs_run = chosen["best_epoch"], chosen["epochs_run"]
    trained = best_epoch is not None and epochs_run is not None
    probe = strategy == "linear_probe" and finetune_options.get("probe_solver", "lbfgs") == "lbfgs"
    return results[best], {
        "lr": None if probe else chosen["lr"], "lr_decay": None if probe else chosen["lr_decay"],
        "n_candidates": len(rows), "select_metric": metric,
        "select_value": chosen[f"val_{metric}"], "steps_per_epoch": per_epoch, "max_steps": epochs * per_epoch,
        "best_step": (int(best_epoch) + 1) * per_epoch if trained else None,
        "best_is_last": bool(int(best_epoch) >= int(epochs_run) - 1) if trained else None,
    }


def split_scores(spec: Any, split: str, y: np.ndarray, p: np.ndarray,
                  groups: np.ndarray | None) -> dict[str, Any]:
    """``<split>_auroc`` / ``_auprc`` with their bootstrap CIs (``spec``: the experiment's ``eval`` section:
    ``n_boot``, ``alpha``, ``seed``; ``groups``: patient ids) and the split's counts."""
    stats = bootstrap_metrics({"auroc": auroc, "auprc": auprc}, y, p, n_boot=spec.n_boot, alpha=spec.alpha,
                              seed=spec.seed, groups=groups)
    out: dict[str, Any] = {f"n_{split}": int(y.size), f"n_{split}_pos": int(np.nansum(y))}
    for metric, st in stats.items():
        out.update({f"{split}_{metric}": st["value"], f"{split}_{metric}_low": st["ci_low"],
                    f"{split}_{metric}_high": st["ci_high"]})
    return out


def write_test_predictions(folder: Path, meta: pd.DataFrame, rows: np.ndarray, name: str, p: np.ndarray,
                            y: np.ndarray) -> None:
    """``test_predictions.csv``: record (and patient) id, prediction and label of every test ECG."""
    table = {"record_id": meta["record_id"].to_numpy()[rows], name: p, "label": y}
    if "patient_id" in meta.columns:
        table["patient_id"] = meta["patient_id"].to_numpy()[rows]
    pd.DataFrame(table).to_csv(folder / "test_predictions.csv", index=False)


def chosen_dir(folder: Path) -> Path:
    """The folder of a run's kept model: its chosen candidate (tuned runs) or the run folder itself."""
    selection = folder / "selection.json"
    if selection.is_file():
        return folder / json.loads(selection.read_text())["chosen"]
    return folder
