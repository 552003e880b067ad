"""The transfer-learning experiment: does pretraining on age, sex or both help a small clinical target (MI)?

A reproduction on PTB-XL of the study design of Nyström et al., "Transfer learning for predicting acute
myocardial infarction using electrocardiograms": for each model of the zoo, pretrain on a *source* task (age,
sex, age + sex) with a given number of source ECGs, fine-tune on a *target* task (the ``MI`` diagnostic
superclass) with a given number of target ECGs, and compare with the same architecture trained from scratch.

The grid is {model} x {pretraining task: none (= from scratch), age, sex, age_sex} x {source size} x {target
size} x {strategy} x {seed}, source and target patient-disjoint (PTB-XL folds). A pretraining run (model x
task x source size x seed) is done once and reused by every target run that needs it. Each target run appends
one row to ``OUT/results.csv`` (settings, seeds, sizes, times, validation / test AUROC and AUPRC with
bootstrap CIs); runs already there are skipped (resume). ``shard=(i, n)`` runs the i-th of n deterministic
parts (whole pretraining groups) for several processes or machines writing into one folder (appends are
file-locked). See docs/transfer.md.

The fair protocol (issue #23; ``configs/transfer_fair.yaml``): with a ``tuning`` section every arm is tuned on an
inner validation split of its target ECGs under one optimiser-step budget
(:mod:`~ecglens.experiments.transfer_fair`); ``grid.controls`` adds demographic control arms
(:mod:`~ecglens.experiments.transfer_controls`); ``grid.target_tasks`` several targets (``MI``, ``acute_mi``);
``source.share_target_ecgs`` lets pretraining use the target folds' age / sex (never their target labels); and
``paired.csv`` / ``paired.md`` compare every arm with scratch and each control on the same test ECGs
(:mod:`~ecglens.experiments.transfer_paired`). The config sections are :mod:`~ecglens.experiments.transfer_config`.

Output folder: ``experiment.yaml`` (resolved config, protocol fingerprint), ``results.csv``, ``failures.csv``,
``pretrain/<key>/`` and ``runs/<key>/`` (run folders; tuned runs hold one folder per candidate,
``candidates.csv`` and ``selection.json``), ``paired.csv`` / ``paired.md``, ``figures/``
(:mod:`ecglens.experiments.figures`) and, for the ``quick`` profile, ``synthetic_cache/``.

>>> cfg = load_transfer_config("configs/transfer_ptbxl.yaml", profile="quick")   # doctest: +SKIP
>>> summary = run_transfer(cfg, out="runs/transfer_quick")                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import load_checkpoint
from ..data.cache import open_cache
from ..data.targets import task_from_name
from ..data.views import CacheView
from ..evaluate.runner import predict_cache
from ..exceptions import ConfigError
from ..jsonutil import json_ready
from ..models import get_model_spec
from ..signal.transforms import contract_mismatches
from ..train.config import TrainConfig, apply_overrides, config_from_dict
from ..train.finetune import STRATEGIES, finetune, finetune_settings_from_dict
from ..train.loop import build_task, fit, monitor_names
from .figures import plot_main_differences, plot_paired_differences, write_transfer_figures
from .grid import (
    GridDefinition,
    GridOutcome,
    device_of,
    drop_checkpoints,
    folds_text,
    load_grid_config,
    open_grid_cache,
    protocol_train_section,
    read_results_csv,
    run_grid,
    shard_runs,
    short_hash,
)
from .transfer_config import (
    ALL,
    NO_PRETRAINING,
    PROFILES,
    REPLACED_BY_PROFILE,
    TransferConfig,
)
from .transfer_controls import CONTROLS, fit_control
from .transfer_fair import (
    INNER_TRAIN,
    INNER_VAL,
    TUNING_COLUMNS,
    chosen_dir,
    inner_split_folds,
    split_scores,
    tuned_finetune,
    write_test_predictions,
)
from .transfer_paired import write_paired

__all__ = ["ALL", "NO_PRETRAINING", "PROFILES", "RESULT_COLUMNS", "PretrainRun", "TargetRun",
           "TransferConfig", "TransferSummary", "grid_definition", "load_transfer_config", "mi_labels",
           "plan_grid", "pretrain_config", "protocol", "read_results", "run_transfer", "target_config",
           "write_summaries"]

def load_transfer_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = (),
                         profile: str | None = None) -> TransferConfig:
    """Read a transfer YAML, apply a profile (``quick``) and ``key.sub=value`` overrides, and check it."""
    cfg = load_grid_config(TransferConfig, path, overrides, profile, PROFILES, "configs/transfer_ptbxl.yaml",
                           REPLACED_BY_PROFILE)
    _validate(cfg)
    return cfg


def _size_value(size: int | str) -> float:
    return math.inf if size == ALL else float(size)


def _check_sizes(sizes: Sequence[int | str], where: str) -> None:
    bad = [s for s in sizes if not (s == ALL or (isinstance(s, int) and s >= 1))]
    if bad or not sizes:
        raise ConfigError(f"{where} must be a non-empty list of positive record counts or 'all', got "
                          f"{list(sizes)}.")


def _validate(cfg: TransferConfig) -> None:

    _check_sizes(cfg.source.sizes, "source.sizes")
    _check_sizes(cfg.target.sizes, "target.sizes")
    # one data set: its folds keep patients apart; a separate target cache only needs its own folds disjoint
    src = set() if cfg.target.cache else set(cfg.source.folds) | set(cfg.source.val_folds)
    tgt = set(cfg.target.folds) | set(cfg.target.val_folds)
    shared = set() if not cfg.source.share_target_ecgs else src & tgt
    if (src & (tgt | set(cfg.target.test_folds))) - shared or set(cfg.target.test_folds) & tgt:
        raise ConfigError("source folds, target train/val folds and target test folds must be disjoint "
                          f"(folds keep patients apart): source {sorted(src)}, target {sorted(tgt)}, test "
                          f"{list(cfg.target.test_folds)}.")
    for name in cfg.target_tasks:
        target = task_from_name(name, **cfg.target.task_options)
        if target.num_labels != 1 or target.targets[0].kind != "binary":
            raise ConfigError(f"target task {name!r} must be a binary task (AUROC / AUPRC are reported), e.g. "
                              "MI or acute_mi.")
    check_label_separation(cfg)
    _check_fair(cfg)
    for name in cfg.grid.strategies:
        if name not in STRATEGIES or name == "scratch":
            raise ConfigError(f"grid.strategies: {name!r} is not a fine-tuning strategy; use "
                              f"{', '.join(s for s in STRATEGIES if s != 'scratch')} (scratch is pretrain "
                              "task none).")
    if not cfg.grid.models or not cfg.grid.seeds or not cfg.grid.pretrain_tasks:
        raise ConfigError("grid.models, grid.seeds and grid.pretrain_tasks must not be empty.")
    for name in cfg.grid.models:
        options = set(get_model_spec(name).defaults) - {"in_leads", "num_outputs"}
        if set(cfg.model_entry(name).kwargs) - options:
            raise ConfigError(f"grid.models.{name}.kwargs: unknown option(s) "
                              f"{sorted(set(cfg.model_entry(name).kwargs) - options)}; valid: "
                              f"{sorted(options)}.")
    _seed_limits(cfg)
    for section in ("source_train", "target_train"):
        clash = sorted({"data", "model", "task", "name"} & set(getattr(cfg, section)))
        if clash:
            raise ConfigError(f"{section} must not set {clash}: the protocol sets them (cache, folds, model, "
                              "task).")
    _check_train_sections(cfg)


def check_label_separation(cfg: TransferConfig) -> None:
    """Pretraining never reads a label column of a target task (nor the SCP statements targets derive from).

    Raises
    ------
    ConfigError
        When a pretraining task shares a label column with a target task.
    """
    target_columns = {"statements"}
    for name in cfg.target_tasks:
        target_columns |= set(task_from_name(name, **cfg.target.task_options).label_columns)
    for task in set(cfg.grid.pretrain_tasks) - {NO_PRETRAINING}:
        spec = task_from_name(task, **dict(cfg.source.task_options.get(task) or {}))
        clash = sorted(set(spec.label_columns) & target_columns)
        if clash:
            raise ConfigError(f"Pretraining task {task!r} reads the target's label column(s) {clash}: the target "
                              "labels must never be seen in pretraining. Pretrain on age / sex (or drop the task).")


def _check_fair(cfg: TransferConfig) -> None:
    """The fair protocol's own rules: its validation split comes from the training folds; controls need it."""
    unknown = sorted(set(cfg.grid.controls) - set(CONTROLS))
    if unknown:
        raise ConfigError(f"grid.controls: unknown {unknown}; choose from {', '.join(CONTROLS)}.")
    if cfg.tuning is None:
        if cfg.grid.controls:
            raise ConfigError("grid.controls need a tuning section (their inner validation split); see "
                              "configs/transfer_fair.yaml.")
        return
    if cfg.target.val_folds or cfg.target.val_size is not None:
        raise ConfigError("With a tuning section the validation split is carved from the target training folds "
                          "(tuning.val_fraction); set target.val_folds: [] and target.val_size: null.")


def _check_train_sections(cfg: TransferConfig) -> None:
    """Build a pretraining and a target config per model and task now: a typo fails before the grid runs."""

    first = {(r.model, r.pretrain_task): r for r in reversed(plan_grid(cfg))}
    for run in first.values():
        configs = [target_config(cfg, run, cfg.target.cache or cfg.cache)]
        if run.pretrain is not None:
            configs.append(pretrain_config(cfg, run.pretrain, cfg.cache))
        for config in configs:
            valid = monitor_names(build_task(config))
            if config.trainer.monitor not in valid:
                raise ConfigError(f"trainer.monitor={config.trainer.monitor!r} is not logged by task "
                                  f"{config.task.name!r} ({config.name}); choose one of {', '.join(valid)}.")


def _seed_limits(cfg: TransferConfig) -> list[tuple[float, int]]:
    """``grid.seed_limits`` as sorted ``(target size threshold, number of seeds)``."""
    try:
        items = cfg.grid.seed_limits.items()
        out = sorted((_size_value(ALL if str(k) == ALL else int(k)), int(v)) for k, v in items)
    except (TypeError, ValueError):
        out = [(0.0, 0)]
    if any(n < 1 for _, n in out):
        raise ConfigError("grid.seed_limits must map target sizes (or 'all') to a number of seeds >= 1, e.g. "
                          f"{{1000: 2, all: 1}}; got {cfg.grid.seed_limits}.")
    return out


# ----------------------------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class PretrainRun:
    """One pretraining run (shared by every target run with the same model, task, source size and seed)."""

    model: str
    model_tag: str
    task: str
    source_size: int | str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.model_tag}_{self.task}_src{self.source_size}_s{self.seed}"


@dataclass(frozen=True)
class TargetRun:
    """One target run: a row of ``results.csv``."""

    model: str
    model_tag: str
    pretrain_task: str
    source_size: int | str | None
    strategy: str
    target_size: int | str
    seed: int
    target_task: str | None = None

    @property
    def pretrain(self) -> PretrainRun | None:
        if self.pretrain_task == NO_PRETRAINING:
            return None
        return PretrainRun(self.model, self.model_tag, self.pretrain_task, self.source_size, self.seed)

    @property
    def group(self) -> str:
        """Runs of one group share a pretraining run (or, from scratch, a model and seed)."""
        pre = self.pretrain
        return pre.key if pre is not None else f"{self.model_tag}_{NO_PRETRAINING}_s{self.seed}"

    @property
    def key(self) -> str:
        src = "-" if self.source_size is None else self.source_size
        task = "" if self.target_task is None else f"_{self.target_task}"
        return (f"{self.model_tag}_{self.pretrain_task}_src{src}_{self.strategy}_tgt{self.target_size}"
                f"_s{self.seed}{task}")


def _model_tag(cfg: TransferConfig, name: str) -> str:
    entry = cfg.model_entry(name)
    return f"{name}-{short_hash({'kwargs': entry.kwargs, 'overrides': list(entry.overrides)})}"


def _seeds_for(cfg: TransferConfig, target_size: int | str) -> tuple[int, ...]:
    n = len(cfg.grid.seeds)
    for threshold, limit in _seed_limits(cfg):
        if _size_value(target_size) >= threshold:
            n = min(n, limit)
    return cfg.grid.seeds[:n]


def plan_grid(cfg: TransferConfig) -> list[TargetRun]:
    """Every target run of the grid, grouped by pretraining run (model, task, source size, seed).

    From scratch, the controls (``grid.controls``) follow the ``scratch`` run of their cell. With
    ``grid.target_tasks`` every run is repeated per target task (its key then ends in ``_<task>``).
    """
    runs: list[TargetRun] = []
    tasks = list(cfg.grid.target_tasks) or [None]
    for model in cfg.grid.models:
        tag = _model_tag(cfg, model)
        for task in cfg.grid.pretrain_tasks:
            scratch = task == NO_PRETRAINING
            arms = ["scratch", *cfg.grid.controls] if scratch else cfg.grid.strategies
            for source_size in [None] if scratch else cfg.source.sizes:
                for seed in cfg.grid.seeds:
                    runs += [TargetRun(model, tag, task, source_size, arm, size, seed, target)
                             for size in cfg.target.sizes if seed in _seeds_for(cfg, size)
                             for target in tasks for arm in arms]
    return runs


# ----------------------------------------------------------------------------------------------- data


def mi_labels(patients: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``MI`` (0/1) drawn with ``logit = -1.2 - 5 (t_scale - 1) + 0.03 (age - 60) + 0.3 male``; ``NORM = 1 - MI``.

    So MI shows in the ECG through the T-wave amplitude and, weakly, through age (synthetic cohorts,
    :func:`~ecglens.experiments.grid.write_synthetic_cache`).
    """
    p = patients
    logit = -1.2 - 5.0 * (p["t_scale"] - 1.0) + 0.03 * (p["age"] - 60.0) + 0.3 * (1.0 - p["sex"])
    mi = (rng.random(len(p)) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return {"MI": mi, "NORM": 1 - mi}


def mi_acute_labels(patients: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """:func:`mi_labels` plus ``acute_mi``: a third of the MI cases (about 8 % of the cohort), drawn after MI."""
    labels = mi_labels(patients, rng)
    return {**labels, "acute_mi": labels["MI"] * (rng.random(len(patients)) < 1.0 / 3.0).astype(int)}


@dataclass(frozen=True)
class _Data:
    """The opened caches: the source (pretraining) one and the target one (the same object unless
    ``target.cache`` is set)."""

    source: Any
    source_path: str
    target: Any
    target_path: str


def _open_data(cfg: TransferConfig, out: Path) -> _Data:

    demographic = set(cfg.grid.pretrain_tasks) - {NO_PRETRAINING} or cfg.grid.controls
    need = {"fold"} | ({"age", "sex"} if demographic else set())
    labels = mi_acute_labels if "acute_mi" in cfg.target_tasks else mi_labels
    cache, path = open_grid_cache(cfg.synthetic, cfg.cache, out, labels, need)
    if not cfg.target.cache:
        return _Data(cache, path, cache, path)
    target = open_cache(cfg.target.cache)
    if "fold" not in target.meta.columns:
        raise ConfigError(f"The target cache {cfg.target.cache} has no 'fold' column; give its records folds "
                          "when preparing it (target.folds / val_folds / test_folds refer to them).")
    if set(cfg.grid.pretrain_tasks) - {NO_PRETRAINING} and cache.preprocess is not None:
        # checked per run too (fine-tuning); here so that a mismatch stops the grid before any pretraining
        fields = ("fs", "highpass_hz", "notch_hz", "normalize")
        bad = contract_mismatches(cache.preprocess.to_dict(), target.preprocess.to_dict(), fields)
        if bad:
            diff = "; ".join(f"{k}: source {a!r}, target {b!r}" for k, (a, b) in bad.items())
            raise ConfigError(f"The target cache {cfg.target.cache} was prepared differently from the source "
                              f"cache {path} ({diff}); prepare it with the source's settings "
                              "(`ecglens prepare ... --fs/--highpass/--normalize` as listed).")
    return _Data(cache, path, target, str(cfg.target.cache))


def _target_view(cfg: TransferConfig, cache: Any, seed: int, run: TargetRun | None = None) -> CacheView:
    """The cache with only the seeded ``val_size`` part of the validation folds kept as validation rows; with
    ``tuning``, the run's inner training / validation split of its target ECGs
    (:func:`~ecglens.experiments.transfer_fair.inner_split_folds`)."""

    task = task_from_name(_task_of(cfg, run), **cfg.target.task_options)
    if cfg.tuning is not None and run is not None:
        folds = inner_split_folds(cache.meta, task.labels_from_meta(cache.meta)[:, 0], cfg.target.folds,
                                  cfg.target.test_folds, run.target_size, cfg.tuning.val_fraction, seed,
                                  cfg.tuning.case_fraction.get(_task_of(cfg, run)))
        return CacheView(cache, folds=folds)
    folds = cache.meta["fold"].to_numpy(dtype=np.float64).copy()
    if cfg.target.val_size is not None:
        labelled = ~np.isnan(task.labels_from_meta(cache.meta)[:, 0])
        val = np.flatnonzero(np.isin(folds, cfg.target.val_folds) & labelled)
        if cfg.target.val_size < val.size:
            keep = np.random.default_rng(seed).choice(val, size=cfg.target.val_size, replace=False)
            folds[np.setdiff1d(val, keep)] = np.nan
    return CacheView(cache, folds=folds)


# ----------------------------------------------------------------------------------------------- configs


def _task_of(cfg: TransferConfig, run: TargetRun | None) -> str:
    return run.target_task if run is not None and run.target_task else cfg.target.task


def _train_config(cfg: TransferConfig, section: Mapping[str, Any], model: str, cache_path: str,
                  data: Mapping[str, Any], task: Mapping[str, Any], seed: int, name: str) -> TrainConfig:
    entry = cfg.model_entry(model)
    merged = {**json.loads(json.dumps(section)), "name": name, "data": {"cache": cache_path, **data},
              "model": {"name": model, "kwargs": entry.kwargs}, "task": dict(task)}
    merged["trainer"] = {**merged.get("trainer", {}), "seed": seed}
    return apply_overrides(config_from_dict(merged), list(entry.overrides))


def pretrain_config(cfg: TransferConfig, run: PretrainRun, cache_path: str) -> TrainConfig:
    """The training config of a pretraining run (source folds, ``max_train`` = source size, seeded)."""
    data = {"train_folds": list(cfg.source.folds), "val_folds": list(cfg.source.val_folds),
            "max_train": None if run.source_size == ALL else run.source_size, "subsample_seed": run.seed}
    task = {"name": run.task, "options": dict(cfg.source.task_options.get(run.task) or {})}
    return _train_config(cfg, cfg.source_train, run.model, cache_path, data, task, run.seed,
                         f"{cfg.name}-pretrain-{run.key}")


def target_config(cfg: TransferConfig, run: TargetRun, cache_path: str) -> TrainConfig:
    """The training config of a target run (target folds, ``max_train`` = target size, seeded)."""
    data = {"train_folds": list(cfg.target.folds), "val_folds": list(cfg.target.val_folds),
            "max_train": None if run.target_size == ALL else run.target_size, "subsample_seed": run.seed}
    task = {"name": _task_of(cfg, run), "options": dict(cfg.target.task_options)}
    return _train_config(cfg, cfg.target_train, run.model, cache_path, data, task, run.seed,
                         f"{cfg.name}-target-{run.key}")


def protocol(cfg: TransferConfig) -> dict[str, Any]:
    """What results of one output folder must share (data, splits, budgets, evaluation), not the grid axes."""
    d = dataclasses.asdict(cfg)
    # resolved, defaults included, so that a changed default (e.g. the probe's solver) is a new protocol
    settings = {k: v for k, v in finetune_settings_from_dict(cfg.finetune).to_dict().items() if k != "strategy"}
    # target.cache enters only when set, so folders made before the option keep their protocol hash
    target_data = {"target_data": d["target"]["cache"]} if d["target"]["cache"] else {}
    # the fair protocol's entries enter only when set (earlier folders keep their hash)
    fair = {k: d[k] for k in ("tuning",) if d[k] is not None}
    if "tuning" in fair and not fair["tuning"]["case_fraction"]:  # enters only when set (earlier folders' hash)
        del fair["tuning"]["case_fraction"]
    fair.update({k: d["grid"][k] for k in ("target_tasks", "controls") if d["grid"][k]})
    if cfg.source.share_target_ecgs:
        fair["share_target_ecgs"] = True
    return json.loads(json.dumps({
        "data": d["synthetic"] or d["cache"], **target_data, **fair,
        "source": {k: v for k, v in d["source"].items() if k not in ("sizes", "share_target_ecgs")},
        "target": {k: v for k, v in d["target"].items() if k not in ("sizes", "cache")},
        "eval": d["eval"], "finetune": settings,
        "source_train": protocol_train_section(cfg.source_train),
        "target_train": protocol_train_section(cfg.target_train),
    }, default=str))


# ----------------------------------------------------------------------------------------------- results

#: columns of ``results.csv``, in order (sizes are record counts or "all"; folds are space-separated)
RESULT_COLUMNS: tuple[str, ...] = (
    "run_key", "experiment", "model", "model_tag", "model_kwargs", "pretrain_task", "strategy",
    "source_size", "n_source", "target_task", "target_size", "n_target", "n_target_pos", "seed",
    "subsample_seed", "val_seed", "n_val", "n_val_pos", "n_test", "n_test_pos",
    "source_folds", "source_val_folds", "target_folds", "val_folds", "test_folds", "leads",
    "epochs_run", "best_epoch", "train_time_s", "pretrain_time_s", "pretrain_val_loss",
    "val_auroc", "val_auroc_low", "val_auroc_high", "val_auprc", "val_auprc_low", "val_auprc_high",
    "test_auroc", "test_auroc_low", "test_auroc_high", "test_auprc", "test_auprc_low", "test_auprc_high",
    "n_boot", "ci_level", "device", "protocol_hash", "run_dir", "pretrain_dir", "finished_at",
)


def read_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``results.csv`` of an output folder (or the file itself), one row per ``run_key`` (the last kept)."""
    return read_results_csv(path, RESULT_COLUMNS, dtype={"source_size": str, "target_size": str, "model_kwargs": str})


# ----------------------------------------------------------------------------------------------- running


def _start_group(cfg: TransferConfig, first: TargetRun, data: _Data,
                 out: Path) -> tuple[Path, dict[str, Any]] | None:
    """The group's pretrained checkpoint and info (``None`` from scratch), training it first unless it is done."""

    run = first.pretrain
    if run is None:
        return None
    folder = out / "pretrain" / run.key
    info_path, model_path = folder / "pretrain.json", folder / "model.safetensors"
    if info_path.is_file() and model_path.is_file():
        return model_path, json.loads(info_path.read_text())
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished earlier attempt
    start = time.perf_counter()
    result = fit(pretrain_config(cfg, run, data.source_path), out=folder, cache=data.source)
    splits = pd.read_csv(folder / "splits.csv")
    info = {"key": run.key, "model": run.model, "task": run.task, "source_size": str(run.source_size),
            "seed": run.seed, "n_source": int((splits["split"] == "train").sum()),
            "time_s": round(time.perf_counter() - start, 3), "metrics": result.metrics,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    drop_checkpoints(folder, keep_model=True)
    info_path.write_text(json.dumps(json_ready(info, default=str), indent=2, allow_nan=False))
    return model_path, info


def _groups(cfg: TransferConfig, meta: pd.DataFrame) -> np.ndarray | None:
    return meta["patient_id"].to_numpy() if cfg.eval.by_patient and "patient_id" in meta else None


def _score(cfg: TransferConfig, run: TargetRun, checkpoint_path: Path, view: CacheView,
           folder: Path) -> dict[str, Any]:
    """Validation and test AUROC / AUPRC with bootstrap CIs and the split counts of a finished target run."""

    ckpt = load_checkpoint(checkpoint_path)
    data = CacheView(view, ckpt.preprocess.leads) if ckpt.preprocess is not None else view
    y_all = task_from_name(_task_of(cfg, run), **cfg.target.task_options).labels_from_meta(data.meta)[:, 0]
    splits = pd.read_csv(folder / "splits.csv")
    fold = data.meta["fold"].to_numpy(dtype=np.float64)
    rows = {"val": splits.loc[splits["split"] == "val", "row"].to_numpy(),
            "test": np.flatnonzero(np.isin(fold, cfg.target.test_folds) & ~np.isnan(y_all))}
    train = splits.loc[splits["split"] == "train", "row"].to_numpy()
    if cfg.tuning is not None:  # the run's target ECGs: its inner training and validation split
        train = np.flatnonzero(np.isin(fold, (INNER_TRAIN, INNER_VAL)))
    pid = _groups(cfg, data.meta)
    out: dict[str, Any] = {"n_target": int(train.size), "n_target_pos": int(np.nansum(y_all[train])),
                           "leads": ",".join(data.leads)}
    name = ckpt.task.output_names[0]
    for split, idx in rows.items():
        p, y = predict_cache(ckpt, data.signals, idx, progress=False)[name], y_all[idx]
        out.update(split_scores(cfg.eval, split, y, p, None if pid is None else pid[idx]))
        if split == "test":
            write_test_predictions(folder, data.meta, idx, name, p, y)
    return out


def _run_control(cfg: TransferConfig, run: TargetRun, view: CacheView, folder: Path,
                 out: Path) -> dict[str, Any]:
    """A demographic control (:mod:`~ecglens.experiments.transfer_controls`): its scores and tuning columns."""
    task = _task_of(cfg, run)
    y = task_from_name(task, **cfg.target.task_options).labels_from_meta(view.meta)[:, 0]
    scratch = chosen_dir(out / "runs" / dataclasses.replace(run, strategy="scratch").key) / "model.safetensors"
    test, p, info = fit_control(run.strategy, view, y, cfg.tuning.metric_for(task), cfg.target.test_folds, scratch)
    folder.mkdir(parents=True, exist_ok=True)
    write_test_predictions(folder, view.meta, test, f"p_{task}", p, y[test])
    train = np.flatnonzero(np.isin(view.meta["fold"].to_numpy(dtype=np.float64), (INNER_TRAIN, INNER_VAL)))
    pid = _groups(cfg, view.meta)
    return {**info, **split_scores(cfg.eval, "test", y[test], p, None if pid is None else pid[test]),
            "n_target": int(train.size), "n_target_pos": int(np.nansum(y[train])), "leads": ""}


def _train_target(cfg: TransferConfig, run: TargetRun, view: CacheView, pretrained: Path | None,
                  data_path: str, folder: Path) -> tuple[Any, dict[str, Any], TrainConfig]:
    """Train one target run (tuned on its inner split with ``tuning``); the result, tuning columns, config."""
    config = target_config(cfg, run, data_path)
    if cfg.tuning is None:
        settings = finetune_settings_from_dict({**cfg.finetune, "strategy": run.strategy})
        return finetune(pretrained, config, settings, out=folder, cache=view), {}, config
    task = _task_of(cfg, run)
    folder.mkdir(parents=True)
    result, tuning = tuned_finetune(pretrained, config, run.strategy, cfg.finetune, cfg.tuning, view,
                                    task_from_name(task, **cfg.target.task_options), task, folder)
    return result, tuning, config


def _run_target(cfg: TransferConfig, run: TargetRun, data: _Data, pretrained: tuple[Path, dict[str, Any]] | None,
                out: Path, digest: str) -> dict[str, Any]:
    """Fine-tune (or train from scratch, or fit a control) one target run, score it, return its row."""

    folder = out / "runs" / run.key
    shutil.rmtree(folder, ignore_errors=True)
    view = _target_view(cfg, data.target, run.seed, run)
    start = time.perf_counter()
    config = target_config(cfg, run, data.target_path)
    if run.strategy in CONTROLS:
        scores, metrics = _run_control(cfg, run, view, folder, out), {}
    else:
        result, tuning, config = _train_target(cfg, run, view, None if pretrained is None else pretrained[0],
                                               data.target_path, folder)
        scores = {**tuning, **_score(cfg, run, result.checkpoint_path, view, result.run_dir)}
        metrics = result.metrics
        keep = cfg.keep_checkpoints or (run.strategy == "scratch" and "scratch_demographics" in cfg.grid.controls)
        drop_checkpoints(result.run_dir, keep_model=keep)
    train_time = time.perf_counter() - start
    info = pretrained[1] if pretrained is not None else {}
    t, s = cfg.target, cfg.source
    return {
        "run_key": run.key, "experiment": cfg.name, "model": run.model, "model_tag": run.model_tag,
        "model_kwargs": json.dumps(cfg.model_entry(run.model).kwargs, sort_keys=True),
        "pretrain_task": run.pretrain_task, "strategy": run.strategy,
        "source_size": "" if run.source_size is None else str(run.source_size),
        "n_source": info.get("n_source", 0), "target_task": _task_of(cfg, run), "target_size": str(run.target_size),
        "seed": run.seed, "subsample_seed": run.seed,
        "val_seed": run.seed if t.val_size is not None or cfg.tuning is not None else None,
        "source_folds": folds_text(s.folds), "source_val_folds": folds_text(s.val_folds),
        "target_folds": folds_text(t.folds), "val_folds": folds_text(t.val_folds),
        "test_folds": folds_text(t.test_folds), "epochs_run": metrics.get("epochs_run"),
        "best_epoch": metrics.get("best_epoch"), "train_time_s": round(train_time, 3),
        "pretrain_time_s": info.get("time_s"), "pretrain_val_loss": (info.get("metrics") or {}).get("loss"),
        "n_boot": cfg.eval.n_boot, "ci_level": 1.0 - cfg.eval.alpha, "device": device_of(config),
        "protocol_hash": digest, "run_dir": str(chosen_dir(folder).relative_to(out)),
        "pretrain_dir": "" if pretrained is None else str(pretrained[0].parent.relative_to(out)),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **scores,
    }


@dataclass(frozen=True)
class TransferSummary(GridOutcome):
    """What :func:`run_transfer` did: the runner's counts, the pretraining runs trained now and the figures."""

    n_pretrained: int = 0
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def runs(self) -> tuple[TargetRun, ...]:
        """The target runs of the shard that were still to do (those listed by a dry run)."""
        return self.todo


def grid_definition(cfg: TransferConfig) -> GridDefinition:
    """The transfer experiment as a grid for :func:`~ecglens.experiments.grid.run_grid`: target runs grouped by
    their pretraining run (trained once per group, before its target runs)."""
    columns = RESULT_COLUMNS + (TUNING_COLUMNS if cfg.tuning is not None else ())
    return GridDefinition(name="transfer", runs=plan_grid(cfg), protocol=protocol(cfg),
                          config=dataclasses.asdict(cfg), columns=columns,
                          open_data=functools.partial(_open_data, cfg), run=functools.partial(_run_target, cfg),
                          start_group=functools.partial(_start_group, cfg), curves=cfg.curves,
                          group_label="pretraining")


def run_transfer(cfg: TransferConfig, out: str | os.PathLike[str] | None = None, *,
                 shard: tuple[int, int] = (1, 1), dry_run: bool = False, figures: bool = True,
                 progress: bool = True, fail_fast: bool = False,
                 targets: Sequence[str] | str | None = None) -> TransferSummary:
    """Run (the shard ``(i, n)`` of) the grid of ``cfg`` into ``out`` (default ``cfg.out_dir``).

    Finished runs (their ``run_key`` in ``results.csv``) are skipped; ``dry_run`` only plans. A run that
    raises is written to ``failures.csv`` and the grid goes on (``fail_fast``: re-raise). Figures are drawn
    from every row of ``results.csv`` (all shards so far) unless ``figures=False``. ``targets`` (a list or
    ``"MI,acute_mi"``) runs only the runs of those target tasks of ``grid.target_tasks``; the protocol, the
    run keys and the shards of the others do not change.
    """
    out = Path(out if out is not None else cfg.out_dir)
    grid = grid_definition(cfg)
    if targets is not None:
        wanted = [t.strip() for t in targets.split(",")] if isinstance(targets, str) else [str(t) for t in targets]
        unknown = sorted(set(wanted) - set(cfg.target_tasks))
        if unknown:
            raise ConfigError(f"--targets {unknown} not among the config's target tasks: "
                              f"{', '.join(cfg.target_tasks)}.")
        grid = dataclasses.replace(grid, runs=[r for r in grid.runs if (r.target_task or cfg.target.task) in wanted])
    untrained = {r.pretrain.key for r in shard_runs(grid.runs, shard) if r.pretrain is not None
                 and not (out / "pretrain" / r.pretrain.key / "pretrain.json").is_file()}
    done = run_grid(grid, out, shard, dry_run=dry_run, progress=progress, fail_fast=fail_fast)
    counts = {f.name: getattr(done, f.name) for f in dataclasses.fields(done)}
    if dry_run:
        return TransferSummary(**counts)
    trained = sum((out / "pretrain" / key / "pretrain.json").is_file() for key in untrained)
    table = read_results(out) if figures else None
    if table is None or not len(table):
        return TransferSummary(**counts, n_pretrained=trained)
    return TransferSummary(**counts, n_pretrained=trained, figures=write_summaries(cfg, table, out))


def write_summaries(cfg: TransferConfig, table: pd.DataFrame, out: Path) -> dict[str, Path]:
    """The figures and summary tables of ``results.csv`` (per target task when there are several; without the
    controls, which are in the paired tables) and the paired comparisons (``paired.csv``, ``paired.md``,
    ``figures/paired_differences.png``)."""
    tasks = table["target_task"].astype(str).unique()
    paths: dict[str, Path] = {}
    for task in tasks:
        folder = out / "figures" if len(tasks) == 1 else out / "figures" / task
        rows = table[(table["target_task"].astype(str) == task) & ~table["strategy"].isin(list(CONTROLS))]
        drawn = write_transfer_figures(rows, folder)
        paths.update(drawn if len(tasks) == 1 else {f"{task}_{k}": v for k, v in drawn.items()})
    e = cfg.eval
    paired = write_paired(table, out, n_boot=e.n_boot, alpha=e.alpha, seed=e.seed, controls=tuple(cfg.grid.controls))
    if paired:
        paths.update(paired)
        table_paired = pd.read_csv(paired["paired_csv"])
        paths["paired_differences"] = plot_paired_differences(table_paired, out / "figures" / "paired_differences.png")
        paths["main_differences"] = plot_main_differences(table_paired, pd.read_csv(paired["paired_runs_csv"]),
                                                          out / "figures" / "main_differences.png")
    return paths
