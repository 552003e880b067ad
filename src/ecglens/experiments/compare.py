"""The model-comparison experiment: every model of the zoo trained for age, sex and age + sex under one budget.

The grid is {model} x {task: age, sex, age_sex} [x {variant}] [x {seed}]. Every run trains with
:func:`ecglens.train.loop.fit` on the same data (``train_folds``; PTB-XL ``strat_fold`` 1-8), under the same
**budget** (epochs, random-crop length, batch size, training-set cap, wall-clock cap per run), then its best
checkpoint (selected on ``val_folds`` by the training config's ``trainer.monitor``) is evaluated on ``test_folds``
(default: ``val_folds``) with :func:`ecglens.evaluate.runner.evaluate_checkpoint`: age MAE (all records, PTB-XL
healthy and non-healthy subsets), Pearson r, sex AUROC and accuracy, each with a percentile-bootstrap 95 % CI (by
patient when the cache has ``patient_id``). Models differ only by their ``kwargs`` (width, depth; stated in the
config) and optional per-model training overrides that may not touch the budget.

Two optional axes make a careful comparison: ``seeds`` (one run per seed: initialisation, data order,
augmentation draws) and ``variants`` (named training-config overrides, e.g. one augmentation family switched
off: an ablation). With ``test_folds`` the best epoch is chosen on ``val_folds`` and the metrics are computed on
``test_folds`` (e.g. train 1-7, select on 8, report 9), so selection and reporting use different records;
:mod:`ecglens.experiments.compare_seeds` summarises seeds and compares variants or models with paired bootstrap
differences on the same ECGs.

Each finished run appends one row to ``OUT/results.csv`` (:data:`RESULT_COLUMNS`); a run whose ``run_key`` is
already there is skipped, so an interrupted grid continues where it stopped (an unfinished run is restarted from
scratch). ``shard=(i, n)`` runs every n-th run starting at the i-th, for several processes or machines writing
into one output folder (appends are file-locked). The grid runs on :func:`ecglens.experiments.grid.run_grid`,
like :mod:`ecglens.experiments.transfer`; the command is ``ecglens experiment compare`` (:mod:`ecglens.cli.experiment`).

Output folder::

    OUT/experiment.yaml        resolved config and protocol fingerprint (a re-run into OUT must match it)
    OUT/results.csv            one row per finished run
    OUT/failures.csv           runs that raised, with the error (retried on the next start)
    OUT/runs/<run_key>/        the fit run folder (config, history, model.safetensors) + eval/ (metrics.json,
                               predictions.csv when ``eval.figures``)
    OUT/seeds.md, paired.csv   with several seeds or variants: the summary over seeds and the paired differences
                               (:func:`~ecglens.experiments.compare_seeds.write_seed_report`)
    OUT/comparison.md          the comparison table (:func:`write_comparison_markdown`, for docs/results.md)
    OUT/figures/comparison.png age MAE and sex AUROC per model with CI error bars
    OUT/synthetic_cache/       the synthetic cohort, when the config asks for one (profile ``quick``)

>>> table = run_comparison("configs/compare_ptbxl.yaml", "runs/compare_ptbxl", shard="1/3")   # doctest: +SKIP
>>> write_comparison_markdown(table, "docs/results_compare.md")                             # doctest: +SKIP
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
from ..data.targets import task_from_name
from ..evaluate.runner import evaluate_checkpoint
from ..exceptions import ConfigError
from ..jsonutil import json_ready
from ..models import get_model_spec
from ..signal.augment import Augment
from ..train.config import TrainConfig, apply_overrides, config_from_dict, dataclass_from_dict, parse_override
from ..train.loop import fit
from .compare_report import TASKS, plot_comparison, write_comparison_markdown, write_report
from .grid import (
    QUIET_TRAINER,
    GridDefinition,
    SyntheticSpec,
    device_of,
    drop_checkpoints,
    folds_text,
    load_grid_config,
    open_grid_cache,
    parse_shard,
    protocol_train_section,
    read_results_csv,
    run_grid,
    shard_runs,
    short_hash,
)

__all__ = [
    "METRIC_COLUMNS",
    "PROFILES",
    "RESULT_COLUMNS",
    "TASKS",
    "Budget",
    "CompareConfig",
    "CompareRun",
    "grid_definition",
    "load_compare_config",
    "plan_grid",
    "plot_comparison",
    "protocol",
    "read_results",
    "run_comparison",
    "superclass_labels",
    "train_config",
    "write_comparison_markdown",
    "write_report",
]

# ----------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Budget:
    """What every run of the grid gets, whatever the model.

    ``epochs``: maximum epochs (early stopping, ``train.trainer.patience``, may end a run sooner);
    ``crop_seconds``: training samples are random crops of this many seconds of the cached window (validation
    and evaluation predict windows of this length covering the record and average them, see
    :mod:`ecglens.artifact.windows`; ``null``: no crop, whole windows); ``batch_size``; ``max_train``: a seeded
    subsample of the training folds (``null``: all); ``max_time``: wall-clock cap of the training of one run,
    ``"DD:HH:MM:SS"``.
    """

    epochs: int = 10
    crop_seconds: float | None = 4.0
    batch_size: int = 128
    max_train: int | None = None
    max_time: str | None = "00:00:20:00"

    def describe(self) -> str:
        """One line, e.g. ``"<= 10 epochs, 4 s random crops, batch 128, all training records, <= 20 min"``."""
        crop = "full window" if self.crop_seconds is None else f"{self.crop_seconds:g} s random crops"
        n = "all training records" if self.max_train is None else f"<= {self.max_train} training records"
        cap = "no time cap" if self.max_time is None else f"<= {_minutes(self.max_time):g} min"
        epochs = f"{self.epochs} epoch" + ("s" if self.epochs != 1 else "")
        return f"<= {epochs}, {crop}, batch {self.batch_size}, {n}, {cap} per run"


@dataclass(frozen=True)
class GridEntry:
    """A model (``kwargs`` for ``create_model``) or a task (``options`` for ``task_from_name``) of the grid, with
    training-config overrides (``["optim.lr=3e-4"]``) that may not change the budget, data, model or task."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # variants only: the models the variant is run for (default: all)


@dataclass(frozen=True)
class EvalSpec:
    """Bootstrap of the validation metrics (95 % percentile CIs); ``figures``: per-run evaluation figures."""

    n_boot: int = 1000
    seed: int = 0
    figures: bool = True


@dataclass(frozen=True)
class CompareConfig:
    """A model-comparison experiment (see ``configs/compare_ptbxl.yaml``).

    ``train`` holds the training-config sections (``optim``, ``augment``, ``trainer``) shared by every run; the
    budget, data, model and task parts are set by the experiment. ``keep_checkpoints``: keep each run's
    ``model.safetensors``; ``curves``: draw each run's ``curves.png``. ``test_folds``: where the metrics are
    computed (default: ``val_folds``, which also select the epoch). ``seeds``: one run per seed (default: the
    single ``seed``). ``variants``: ``{name: {overrides: ["augment.spec.noise_p=0"], models: [cnn_baseline]}}``,
    each one more run of every model x task (or of the ``models`` listed) with those training overrides, beside
    the run without overrides (the ``default`` variant, the reference of an ablation).
    """

    name: str = "compare"
    cache: str = "cache/ptbxl100"
    synthetic: SyntheticSpec | None = None
    out_dir: str = "runs/compare"
    train_folds: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    val_folds: tuple[int, ...] = (9,)
    test_folds: tuple[int, ...] | None = None
    seed: int = 0
    seeds: tuple[int, ...] | None = None
    budget: Budget = field(default_factory=Budget)
    models: dict[str, Any] = field(default_factory=lambda: {"cnn_baseline": {}})
    tasks: dict[str, Any] = field(default_factory=lambda: {t: {} for t in TASKS})
    variants: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    eval: EvalSpec = field(default_factory=EvalSpec)
    keep_checkpoints: bool = True
    curves: bool = True
    profiles: dict[str, Any] = field(default_factory=dict)

    def model_entry(self, name: str) -> GridEntry:
        return dataclass_from_dict(GridEntry, self.models.get(name) or {}, f"models.{name}.")

    def task_entry(self, name: str) -> GridEntry:
        return dataclass_from_dict(GridEntry, self.tasks.get(name) or {}, f"tasks.{name}.")

    def variant_entry(self, name: str) -> GridEntry:
        return dataclass_from_dict(GridEntry, self.variants.get(name) or {}, f"variants.{name}.")

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """The seeds of the grid: ``seeds``, else ``(seed,)``."""
        return tuple(int(s) for s in self.seeds) if self.seeds is not None else (int(self.seed),)

    @property
    def eval_folds(self) -> tuple[int, ...]:
        """The folds the metrics are computed on: ``test_folds``, else ``val_folds``."""
        return tuple(self.test_folds) if self.test_folds is not None else tuple(self.val_folds)


_TINY_MODELS = {"cnn_baseline": {"kwargs": {"channels": [8, 16], "kernel_size": 5}},
                "attia_cnn": {"kwargs": {"filters": [8, 8, 16], "kernels": [5, 5, 3], "pools": [2, 2, 1],
                                         "spatial_filters": 16, "hidden": [16]}}}

#: built-in profiles merged into a config by ``--profile NAME`` (a config's ``profiles`` section can extend them).
#: ``quick``: the whole pipeline on a small synthetic cohort with two tiny models in seconds (numbers mean nothing).
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "synthetic": {"n_records": 240, "seed": 0, "fs": 100.0, "seconds": 2.5},
        "budget": {"epochs": 1, "crop_seconds": 2.0, "batch_size": 16, "max_train": None, "max_time": "00:00:02:00"},
        "models": _TINY_MODELS,
        "train": {"optim": {"lr": 0.003, "schedule": "constant"}, "augment": {"enabled": False},
                  "trainer": QUIET_TRAINER},
        "eval": {"n_boot": 50, "figures": False},
        "curves": False,
    },
}

#: paths whose mapping a profile replaces instead of merging into (a profile's model list is the model list)
_REPLACED_BY_PROFILE = frozenset({("models",), ("tasks",)})
#: training-config keys the budget / protocol sets; ``train`` and grid overrides may not set them
_PROTECTED = ("name", "data", "model", "task", "optim.epochs", "optim.batch_size", "trainer.max_time",
              "trainer.seed", "augment.spec.crop_seconds")


def load_compare_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = (),
                        profile: str | None = None) -> CompareConfig:
    """Read a comparison YAML, apply a profile (``quick``) and ``key.sub=value`` overrides, and check it."""
    cfg = load_grid_config(CompareConfig, path, overrides, profile, PROFILES, "configs/compare_ptbxl.yaml",
                           _REPLACED_BY_PROFILE)
    _validate(cfg)
    return cfg


def _touches(key: str) -> str | None:
    """The protected key (``_PROTECTED``) that the dotted leaf ``key`` is or lies under, if any."""
    return next((p for p in _PROTECTED if key == p or key.startswith(p + ".")), None)


def _flat_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of the leaves of nested mappings (``{"a": {"b": 1}}`` -> ``["a.b"]``)."""
    keys = []
    for key, value in data.items():
        full = f"{prefix}{key}"
        keys += _flat_keys(value, full + ".") if isinstance(value, Mapping) and value else [full]
    return keys


def _override_keys(item: str) -> list[str]:
    """Leaf keys an override ``"a.b=VALUE"`` sets (a mapping VALUE sets each of its leaves)."""
    path, value = parse_override(item)
    key = ".".join(path)
    return _flat_keys(value, key + ".") if isinstance(value, Mapping) and value else [key]


def _validate(cfg: CompareConfig) -> None:

    if not cfg.models or not cfg.tasks:
        raise ConfigError("models and tasks must not be empty (e.g. tasks: {age: {}, sex: {}, age_sex: {}}).")
    if set(cfg.train_folds) & set(cfg.val_folds):
        raise ConfigError(f"train_folds {list(cfg.train_folds)} and val_folds {list(cfg.val_folds)} overlap; folds "
                          "keep patients apart, so use disjoint folds (PTB-XL: 1-8 train, 9 validation).")
    if cfg.test_folds is not None and set(cfg.test_folds) & (set(cfg.train_folds) | set(cfg.val_folds)):
        raise ConfigError(f"test_folds {list(cfg.test_folds)} overlap train_folds {list(cfg.train_folds)} or val_folds "
                          f"{list(cfg.val_folds)}; the reported folds must be neither trained on nor used to select "
                          "(e.g. train 1-7, val 8, test 9), or leave test_folds out to report val_folds.")
    if cfg.seeds is not None and (not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds)):
        raise ConfigError(f"seeds must be a non-empty list of distinct integers, got {cfg.seeds}.")
    b = cfg.budget
    if b.epochs < 1 or b.batch_size < 1 or (b.max_train is not None and b.max_train < 1):
        raise ConfigError(f"budget: epochs, batch_size and max_train must be >= 1, got {dataclasses.asdict(b)}.")
    if b.crop_seconds is not None and b.crop_seconds <= 0:
        raise ConfigError(f"budget.crop_seconds must be positive or null, got {b.crop_seconds}.")
    if b.max_time is not None:
        _minutes(b.max_time)
    clash = [k for k in _flat_keys(cfg.train) if _touches(k)]
    if clash:
        raise ConfigError(f"train must not set {clash}: the budget and the grid set them (budget: epochs, "
                          "batch_size, crop_seconds, max_time; data / model / task: the grid).")
    for name in cfg.models:
        get_model_spec(name)
    for name in cfg.tasks:
        entry = cfg.task_entry(name)
        task_from_name(name, **entry.options)
    getters = {"models": cfg.model_entry, "tasks": cfg.task_entry, "variants": cfg.variant_entry}
    for name in cfg.variants:
        entry = cfg.variant_entry(name)
        if entry.kwargs or entry.options or not str(name).replace("_", "").isalnum() or name == "default":
            raise ConfigError(f"variants.{name}: a variant is a name of letters, digits and _ (not 'default', the "
                              "run without overrides) with only `overrides` (training-config keys, e.g. "
                              "[augment.spec.noise_p=0]) and optionally `models` (the models it is run for).")
        unknown = sorted(set(entry.models) - set(cfg.models))
        if unknown:
            raise ConfigError(f"variants.{name}.models {unknown} are not in the config's models: "
                              f"{', '.join(cfg.models)}.")
    for kind, names in (("models", cfg.models), ("tasks", cfg.tasks), ("variants", cfg.variants)):
        for name in names:
            entry = getters[kind](name)
            if entry.models and kind != "variants":
                raise ConfigError(f"{kind}.{name}.models: only a variant lists the models it is run for.")
            bad = [o for o in entry.overrides if any(_touches(k) for k in _override_keys(o))]
            if bad:
                raise ConfigError(f"{kind}.{name}.overrides {bad} change the budget, data, model or task; every run "
                                  "must get the same budget. Use kwargs (models) or options (tasks) instead.")


def _minutes(max_time: str) -> float:
    """``"DD:HH:MM:SS"`` -> minutes."""
    try:
        d, h, m, s = (int(x) for x in str(max_time).split(":"))
    except ValueError:
        raise ConfigError(f"budget.max_time must be 'DD:HH:MM:SS' (quoted in YAML), got {max_time!r}.") from None
    return d * 1440 + h * 60 + m + s / 60


# ----------------------------------------------------------------------------------------------- the grid


def _tag(name: str, entry: GridEntry) -> str:
    fields = dataclasses.asdict(entry)
    if not fields["models"]:
        del fields["models"]  # the tags of configs written before variants existed stay the same
    return f"{name}-{short_hash(fields)}"


@dataclass(frozen=True)
class CompareRun:
    """One run of the grid: a row of ``results.csv``."""

    model: str
    model_tag: str
    task: str
    task_tag: str
    seed: int
    variant: str = ""
    variant_tag: str = ""

    @property
    def key(self) -> str:
        """``<model tag>_<task tag>[_<variant tag>]_s<seed>``: the row's ``run_key``."""
        variant = f"_{self.variant_tag}" if self.variant_tag else ""
        return f"{self.model_tag}_{self.task_tag}{variant}_s{self.seed}"


def _pick(names: Sequence[str] | str | None, available: Sequence[str], what: str) -> list[str]:
    """The config's names in config order, restricted to ``names`` (a list or ``"a,b"``)."""
    if names is None:
        return list(available)
    wanted = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n) for n in names]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise ConfigError(f"--{what} {unknown} not in the config's {what}: {', '.join(available)}. Add them to the "
                          f"config's `{what}:` section or choose from those.")
    return [n for n in available if n in wanted]


def plan_grid(cfg: CompareConfig, models: Sequence[str] | str | None = None,
              tasks: Sequence[str] | str | None = None) -> list[CompareRun]:
    """Every run of the grid (seed-major, then model, task, variant in config order), optionally restricted to
    some models / tasks: the first seed of every model comes before the second, so a grid cut short has whole
    seeds. Each model x task has its run without a variant (``variant == ""``, the default) and one per variant
    that lists the model (or lists none)."""
    variants = [(v, _tag(v, cfg.variant_entry(v)), set(cfg.variant_entry(v).models)) for v in cfg.variants]
    runs = []
    for seed in cfg.run_seeds:
        for model in _pick(models, list(cfg.models), "models"):
            for task in _pick(tasks, list(cfg.tasks), "tasks"):
                mine = [("", "")] + [(v, tag) for v, tag, only in variants if not only or model in only]
                for variant, variant_tag in mine:
                    runs.append(CompareRun(model, _tag(model, cfg.model_entry(model)), task,
                                           _tag(task, cfg.task_entry(task)), seed, variant, variant_tag))
    return runs


# ----------------------------------------------------------------------------------------------- configs


def _with_crop(augment: Mapping[str, Any], crop_seconds: float | None) -> dict[str, Any]:
    """The ``augment`` section with the budget's random crop added (augmentation enabled for the crop only, if
    it was off; the default augmentations kept, if it was on with no spec)."""
    if crop_seconds is None:
        return dict(augment)

    enabled, spec = augment.get("enabled", True), dict(augment.get("spec") or {})
    if not enabled:
        spec = {}
    elif not spec:
        spec = Augment.default().to_dict()
    return {"enabled": True, "spec": {**spec, "crop_seconds": float(crop_seconds)}}


def train_config(cfg: CompareConfig, run: CompareRun, cache_path: str) -> TrainConfig:
    """The training config of one run: ``cfg.train`` + the budget + data + model + task + the grid overrides."""
    base, b = json.loads(json.dumps(cfg.train)), cfg.budget
    model, task = cfg.model_entry(run.model), cfg.task_entry(run.task)
    variant = cfg.variant_entry(run.variant) if run.variant else GridEntry()
    merged = {**base, "name": f"{cfg.name}-{run.key}",
              "data": {"cache": cache_path, "train_folds": list(cfg.train_folds), "val_folds": list(cfg.val_folds),
                       "max_train": b.max_train, "subsample_seed": run.seed},
              "model": {"name": run.model, "kwargs": model.kwargs},
              "task": {"name": run.task, "options": task.options},
              "optim": {**base.get("optim", {}), "epochs": b.epochs, "batch_size": b.batch_size},
              "trainer": {**base.get("trainer", {}), "seed": run.seed, "max_time": b.max_time},
              "augment": _with_crop(base.get("augment", {}), b.crop_seconds)}
    return apply_overrides(config_from_dict(merged), [*task.overrides, *model.overrides, *variant.overrides])


def protocol(cfg: CompareConfig) -> dict[str, Any]:
    """What the results of one output folder must share (data, splits, seed, budget, training, evaluation).

    Seeds (with ``seeds``) and variants are grid axes, like models and tasks: adding one later keeps the
    protocol; ``test_folds`` is part of it when set.
    """
    train = protocol_train_section(cfg.train)
    d = dataclasses.asdict(cfg)
    fingerprint = {
        "data": d["synthetic"] or d["cache"], "train_folds": d["train_folds"], "val_folds": d["val_folds"],
        "seed": cfg.seed if cfg.seeds is None else "per run", "budget": d["budget"], "train": train,
        "eval": {k: v for k, v in d["eval"].items() if k != "figures"},
    }
    if cfg.test_folds is not None:
        fingerprint["test_folds"] = d["test_folds"]
    return json.loads(json.dumps(fingerprint, default=str))


# ----------------------------------------------------------------------------------------------- data


#: PTB-XL diagnostic superclasses given to the synthetic records (shares), so healthy subsets exist
_SYNTHETIC_CLASSES = {"NORM": 0.45, "MI": 0.15, "STTC": 0.15, "CD": 0.15, "HYP": 0.10}


def superclass_labels(patients: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One PTB-XL superclass per synthetic record (0/1 columns), drawn with :data:`_SYNTHETIC_CLASSES` shares.

    Unrelated to the ECG (sex shows in QRS amplitude and heart rate, age weakly in heart-rate variability); only
    so that the healthy / non-healthy subsets exist.
    """
    labels = rng.choice(len(_SYNTHETIC_CLASSES), size=len(patients), p=list(_SYNTHETIC_CLASSES.values()))
    return {c: (labels == k).astype(int) for k, c in enumerate(_SYNTHETIC_CLASSES)}


def _open_data(cfg: CompareConfig, out: Path) -> tuple[Any, str]:
    """The grid's cache and its path; its window must hold the budget's crop."""
    cache, path = open_grid_cache(cfg.synthetic, cfg.cache, out, superclass_labels, {"fold", "age", "sex"})
    seconds = cache.signals.shape[-1] / float(cache.preprocess.fs)
    crop = cfg.budget.crop_seconds
    if crop is not None and crop > seconds + 1e-9:
        raise ConfigError(f"budget.crop_seconds={crop:g} is longer than the cached window ({seconds:g} s) of "
                          f"{path}; choose a crop <= {seconds:g} s (or null).")
    return cache, path


# ----------------------------------------------------------------------------------------------- results

#: results.csv column -> (output, subset, metric) in ``evaluate_checkpoint`` results; each also has _low / _high
METRIC_COLUMNS: dict[str, tuple[str, str, str]] = {
    "age_mae": ("age", "all", "mae"),
    "age_mae_healthy": ("age", "healthy", "mae"),
    "age_mae_non_healthy": ("age", "non_healthy", "mae"),
    "age_r": ("age", "all", "pearson_r"),
    "age_bias": ("age", "all", "bias"),
    "sex_auroc": ("p_female", "all", "auroc"),
    "sex_accuracy": ("p_female", "all", "accuracy"),
}
#: subset sizes reported: column -> (output, subset)
_COUNT_COLUMNS: dict[str, tuple[str, str]] = {"n_age": ("age", "all"), "n_healthy": ("age", "healthy"),
                                              "n_non_healthy": ("age", "non_healthy"), "n_sex": ("p_female", "all")}

#: columns of ``results.csv``, in order (folds are space-separated)
RESULT_COLUMNS: tuple[str, ...] = (
    "run_key", "experiment", "model", "model_tag", "model_kwargs", "task", "task_tag", "task_options", "params",
    "seed", "train_folds", "val_folds", "n_train", "n_val",
    "budget", "budget_epochs", "crop_seconds", "batch_size", "max_train", "max_time",
    "epochs_run", "best_epoch", "stopped_by", "train_time_s", "eval_time_s", "val_loss",
    *(c for name in METRIC_COLUMNS for c in (name, f"{name}_low", f"{name}_high")), *_COUNT_COLUMNS,
    "n_boot", "ci_level", "resampling", "device", "protocol_hash", "run_dir", "finished_at",
    "variant", "variant_overrides", "test_folds", "n_test",
)


def read_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``results.csv`` of an output folder (or the file itself), one row per ``run_key`` (the last one kept)."""
    return read_results_csv(path, RESULT_COLUMNS, dtype={"model_kwargs": str, "task_options": str, "max_time": str,
                                                         "variant": str, "variant_overrides": str})


# ----------------------------------------------------------------------------------------------- running


def _evaluate(cfg: CompareConfig, checkpoint: Any, cache: Any, folder: Path) -> dict[str, Any]:
    """Validation metrics of the run's best checkpoint, with bootstrap CIs (figures when ``eval.figures``)."""

    eval_dir = folder / "eval"
    results = evaluate_checkpoint(checkpoint, cache, folds=list(cfg.eval_folds),
                                  out_dir=eval_dir if cfg.eval.figures else None, n_boot=cfg.eval.n_boot,
                                  seed=cfg.eval.seed, progress=False)
    if not cfg.eval.figures:
        eval_dir.mkdir(parents=True, exist_ok=True)
        (eval_dir / "metrics.json").write_text(json.dumps(json_ready(results), indent=2) + "\n")
    return results


def _metric_values(results: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`METRIC_COLUMNS` (value, _low, _high) and subset counts of an evaluation (NaN where absent)."""
    outputs, row = results.get("outputs", {}), {}
    for column, (output, subset, metric) in METRIC_COLUMNS.items():
        entry = outputs.get(output, {}).get("subsets", {}).get(subset, {}).get("metrics", {}).get(metric, {})
        for suffix, key in (("", "value"), ("_low", "ci_low"), ("_high", "ci_high")):
            value = entry.get(key)
            row[column + suffix] = math.nan if value is None else float(value)
    for column, (output, subset) in _COUNT_COLUMNS.items():
        row[column] = outputs.get(output, {}).get("subsets", {}).get(subset, {}).get("n", 0)
    return row


def _stopped_by(cfg: CompareConfig, epochs_run: int, train_time: float) -> str:
    b = cfg.budget
    if epochs_run >= b.epochs:
        return "epochs"
    if b.max_time is not None and train_time >= 0.95 * 60 * _minutes(b.max_time):
        return "max_time"
    return "early_stopping"


def _run_one(cfg: CompareConfig, run: CompareRun, data: tuple[Any, str], _: None, out: Path,
             digest: str) -> dict[str, Any]:
    """Train one run, evaluate its best checkpoint on the validation folds; return its ``results.csv`` row."""

    cache, cache_path = data
    folder = out / "runs" / run.key
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished earlier attempt
    config = train_config(cfg, run, cache_path)
    start = time.perf_counter()
    result = fit(config, out=folder, cache=cache)
    train_time = time.perf_counter() - start
    checkpoint = load_checkpoint(result.checkpoint_path)
    start = time.perf_counter()
    results = _evaluate(cfg, checkpoint, cache, folder)
    eval_time = time.perf_counter() - start
    splits = pd.read_csv(folder / "splits.csv")
    drop_checkpoints(folder, keep_model=cfg.keep_checkpoints)
    b, m = cfg.budget, result.metrics
    variant_overrides = cfg.variant_entry(run.variant).overrides if run.variant else ()
    epochs_run = int(m.get("epochs_run") or 0)
    return {
        "run_key": run.key, "experiment": cfg.name, "model": run.model, "model_tag": run.model_tag,
        "model_kwargs": json.dumps(cfg.model_entry(run.model).kwargs, sort_keys=True), "task": run.task,
        "task_tag": run.task_tag, "task_options": json.dumps(cfg.task_entry(run.task).options, sort_keys=True),
        "params": int(sum(p.numel() for p in checkpoint.model.parameters())), "seed": run.seed,
        "train_folds": folds_text(cfg.train_folds), "val_folds": folds_text(cfg.val_folds),
        "n_train": int((splits["split"] == "train").sum()), "n_val": int((splits["split"] == "val").sum()),
        "budget": b.describe(), "budget_epochs": b.epochs, "crop_seconds": b.crop_seconds,
        "batch_size": b.batch_size, "max_train": b.max_train, "max_time": b.max_time,
        "epochs_run": epochs_run, "best_epoch": m.get("best_epoch"),
        "stopped_by": _stopped_by(cfg, epochs_run, train_time), "train_time_s": round(train_time, 2),
        "eval_time_s": round(eval_time, 2), "val_loss": m.get("loss"), **_metric_values(results),
        "n_boot": cfg.eval.n_boot, "ci_level": 1.0 - float(results.get("alpha", 0.05)),
        "resampling": results.get("resampling"), "device": device_of(config), "protocol_hash": digest,
        "run_dir": str(folder.relative_to(out)),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "variant": run.variant, "variant_overrides": json.dumps(list(variant_overrides)),
        "test_folds": folds_text(cfg.eval_folds), "n_test": int(results.get("n_records", 0)),
    }


def _summary_line(row: Mapping[str, Any]) -> str:
    """The progress line of a finished run: model, task, size, time, headline metric."""
    variant = f" [{row['variant']}]" if row.get("variant") else ""
    head = (f"{row['model']:<22} {row['task']:<8}{variant} s{row['seed']} {row['params']:>10,d} params "
            f"{row['train_time_s']:>8.1f} s {row['epochs_run']} ep ({row['stopped_by']})")
    parts = [head]
    for label, column, fmt in (("age MAE", "age_mae", ".2f"), ("sex AUROC", "sex_auroc", ".3f")):
        if np.isfinite(row[column]):
            parts.append(f"{label} {row[column]:{fmt}}")
    return "  ".join(parts)


def grid_definition(cfg: CompareConfig, models: Sequence[str] | str | None = None,
                    tasks: Sequence[str] | str | None = None) -> GridDefinition:
    """The comparison as a grid for :func:`~ecglens.experiments.grid.run_grid` (runs, protocol, per-run function)."""
    return GridDefinition(
        name="compare", runs=plan_grid(cfg, models, tasks), protocol=protocol(cfg), config=dataclasses.asdict(cfg),
        columns=RESULT_COLUMNS, open_data=functools.partial(_open_data, cfg), run=functools.partial(_run_one, cfg),
        curves=cfg.curves, describe=_summary_line)


def _load(config: str | os.PathLike[str] | CompareConfig, profile: str | None,
          overrides: Sequence[str]) -> CompareConfig:
    if isinstance(config, CompareConfig):
        if profile or overrides:
            raise ConfigError("profile / overrides apply to a config file; pass the file path instead.")
        return config
    return load_compare_config(config, overrides, profile=profile)


def run_comparison(config_path: str | os.PathLike[str] | CompareConfig, out_dir: str | os.PathLike[str] | None = None,
                   profile: str | None = None, shard: str | tuple[int, int] | None = None,
                   models: Sequence[str] | str | None = None, tasks: Sequence[str] | str | None = None,
                   progress: bool = True, *, overrides: Sequence[str] = (), dry_run: bool = False,
                   report: bool = True, fail_fast: bool = False) -> pd.DataFrame:
    """Run (the shard of) the comparison grid into ``out_dir``; see the module docstring.

    Parameters
    ----------
    config_path : path or CompareConfig
        A comparison YAML (``configs/compare_ptbxl.yaml``) or a loaded config.
    out_dir : path, optional
        Output folder (default: the config's ``out_dir``).
    profile : str, optional
        A profile of overrides (``"quick"``: synthetic cohort, tiny models, seconds).
    shard : "i/n" or (i, n), optional
        Run only every n-th run from the i-th (default: all).
    models, tasks : list of str or "a,b", optional
        Restrict the grid to these models / tasks of the config (run keys do not change).
    progress : bool
        Progress bar and one line per finished run.
    overrides : list of str
        ``"key.sub=value"`` overrides of the comparison config (``"budget.epochs=3"``).
    dry_run : bool
        Plan only: return the runs of the shard with a ``done`` column, train nothing.
    report : bool
        Write ``comparison.md`` and ``figures/comparison.png`` from all rows of ``results.csv`` at the end.
    fail_fast : bool
        Re-raise the first error instead of recording it in ``failures.csv`` and going on.

    Returns
    -------
    pandas.DataFrame
        Every row of ``results.csv`` (all shards so far; :data:`RESULT_COLUMNS`); with ``dry_run``, the planned
        runs (``run_key, model, task, seed, done``).
    """
    cfg = _load(config_path, profile, overrides)
    out = Path(out_dir if out_dir is not None else cfg.out_dir)
    shard = shard if isinstance(shard, tuple) else parse_shard(shard)
    grid = grid_definition(cfg, models, tasks)
    if dry_run:
        mine = shard_runs(grid.runs, shard)
        finished = set(read_results(out)["run_key"].astype(str))
        return pd.DataFrame([{"run_key": r.key, "model": r.model, "task": r.task, "seed": r.seed,
                              "done": r.key in finished} for r in mine],
                            columns=["run_key", "model", "task", "seed", "done"])
    run_grid(grid, out, shard, progress=progress, fail_fast=fail_fast)
    table = read_results(out)
    if report and len(table):
        write_report(table, out)
    return table
