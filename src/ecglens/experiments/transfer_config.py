"""The configuration of the transfer experiment (:mod:`ecglens.experiments.transfer`): sections and profiles.

``load_transfer_config`` (in :mod:`~ecglens.experiments.transfer`) reads a YAML file into :class:`TransferConfig`
and checks it; ``configs/transfer_ptbxl.yaml`` (fixed settings) and ``configs/transfer_fair.yaml`` (the fair
protocol: :class:`~ecglens.experiments.transfer_fair.TuningSpec`) are the shipped examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..train.config import dataclass_from_dict
from .grid import QUIET_TRAINER, SyntheticSpec
from .transfer_fair import TuningSpec

__all__ = ["ALL", "NO_PRETRAINING", "PROFILES", "REPLACED_BY_PROFILE", "EvalSpec", "GridSpec", "ModelEntry",
           "SourceSpec", "TargetSpec", "TransferConfig"]

#: the "use every available record" size
ALL = "all"
#: the pretraining task of the from-scratch baseline
NO_PRETRAINING = "none"

# ----------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SourceSpec:
    """Pretraining data: folds, options of the tasks (``{age: {loss: l1}}``), sizes (records, or ``all``).

    ``share_target_ecgs``: the source folds may hold the target's training ECGs (age / sex labels are free, the
    target's labels are never read in pretraining: checked); they stay disjoint from the test folds."""

    folds: tuple[int, ...] = (1, 2, 3)
    val_folds: tuple[int, ...] = (4,)
    task_options: dict[str, Any] = field(default_factory=dict)
    sizes: tuple[int | str, ...] = (ALL,)
    share_target_ecgs: bool = False


@dataclass(frozen=True)
class TargetSpec:
    """Target data: a binary task, train folds (subsampled to ``sizes``), validation (``val_size``: a seeded
    subsample of them, per seed) and test folds. ``cache``: another prepared cache for the target task (e.g. an
    external data set, prepared at the source's sampling rate and length; its own folds); ``None``: the source
    cache, whose target folds must then be disjoint from the source folds."""

    task: str = "MI"
    cache: str | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    folds: tuple[int, ...] = (5, 6, 7)
    val_folds: tuple[int, ...] = (8,)
    val_size: int | None = None
    test_folds: tuple[int, ...] = (9,)
    sizes: tuple[int | str, ...] = (100, 250, 500, 1000, 2500, ALL)


@dataclass(frozen=True)
class ModelEntry:
    """A model of the grid: ``create_model`` keyword arguments and training-config overrides for it."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class GridSpec:
    """The axes. ``seed_limits``: ``{target size: n}`` -- from that size on use only the first n seeds.

    ``target_tasks``: several binary target tasks (default: ``target.task`` alone); ``controls``: demographic
    control arms (:data:`~ecglens.experiments.transfer_controls.CONTROLS`; need a ``tuning`` section)."""

    models: dict[str, Any] = field(default_factory=lambda: {"cnn_baseline": {}})
    pretrain_tasks: tuple[str, ...] = (NO_PRETRAINING, "age", "sex", "age_sex")
    strategies: tuple[str, ...] = ("finetune", "linear_probe")
    seeds: tuple[int, ...] = (0, 1, 2)
    seed_limits: dict[str, Any] = field(default_factory=dict)
    target_tasks: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalSpec:
    """Bootstrap of the validation / test metrics (seeded, by patient when the cache has ``patient_id``)."""

    n_boot: int = 1000
    alpha: float = 0.05
    seed: int = 0
    by_patient: bool = True


@dataclass(frozen=True)
class TransferConfig:
    """A transfer-learning experiment (see ``configs/transfer_ptbxl.yaml`` and ``docs/transfer.md``).

    ``source_train`` / ``target_train`` are training-config sections (``optim``, ``augment``, ``trainer``) for
    the pretraining and target runs; ``finetune`` holds :class:`~ecglens.train.finetune.FinetuneConfig`
    options (the strategy comes from the grid). ``tuning``: the fair protocol
    (:class:`~ecglens.experiments.transfer_fair.TuningSpec`; ``None``: fixed settings).
    ``keep_checkpoints``: keep the target runs' weights;
    ``curves``: draw every run's ``curves.png`` (about a second per run).
    """

    name: str = "transfer"
    cache: str = "cache/ptbxl100"
    synthetic: SyntheticSpec | None = None
    out_dir: str = "runs/transfer"
    source: SourceSpec = field(default_factory=SourceSpec)
    target: TargetSpec = field(default_factory=TargetSpec)
    grid: GridSpec = field(default_factory=GridSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    source_train: dict[str, Any] = field(default_factory=dict)
    target_train: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    tuning: TuningSpec | None = None
    keep_checkpoints: bool = False
    curves: bool = True
    profiles: dict[str, Any] = field(default_factory=dict)

    def model_entry(self, name: str) -> ModelEntry:
        return dataclass_from_dict(ModelEntry, self.grid.models.get(name) or {}, f"grid.models.{name}.")

    @property
    def target_tasks(self) -> tuple[str, ...]:
        """The target tasks of the grid (``grid.target_tasks``, else ``target.task``)."""
        return tuple(self.grid.target_tasks) or (self.target.task,)


_QUICK_TRAIN = {"optim": {"epochs": 1, "batch_size": 16, "lr": 0.003, "schedule": "constant"},
                "augment": {"enabled": False}, "trainer": QUIET_TRAINER}

#: built-in profiles: overrides merged into a config by ``--profile NAME`` (a config's own ``profiles``
#: section can extend them). ``quick`` runs the whole pipeline on a small synthetic cohort in seconds.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "synthetic": {"n_records": 300, "seed": 0, "fs": 100.0, "seconds": 2.5},
        "source": {"sizes": [ALL]},
        "target": {"sizes": [20, ALL], "val_size": None},
        "grid": {"models": {"cnn_baseline": {"kwargs": {"channels": [8, 16], "kernel_size": 5}}},
                 "seeds": [0], "seed_limits": {}},
        "eval": {"n_boot": 50},
        "curves": False,
        "source_train": _QUICK_TRAIN,
        "target_train": _QUICK_TRAIN,
    },
}

#: paths whose mapping a profile replaces instead of merging into (a profile's model list is the model list)
REPLACED_BY_PROFILE = frozenset({("grid", "models")})
