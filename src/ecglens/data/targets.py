"""Task specifications for training: labels from metadata, label statistics and losses.

A task is declarative and serialisable (it is stored in every checkpoint), so the exact label encoding,
standardisation and loss a model was trained with travel with its weights. What inference needs of a task
(output names, the stored standardisation, postprocessing, serialisation) is
:mod:`ecglens.artifact.outputs`; the classes here extend those with what training needs. Metrics of
postprocessed outputs are :func:`ecglens.evaluate.metrics.task_metrics`.

* :class:`RegressionTarget` — one continuous label (e.g. age in years). Labels are standardised with a mean
  and standard deviation fitted on the **training split** (:meth:`TaskSpec.fit`) and stored; losses
  ``"mse"``, ``"l1"`` or ``"gaussian_nll"`` (two outputs: mean and log-variance, so the model also reports an
  uncertainty, ``<name>_std`` in years).
* :class:`BinaryTarget` — one 0/1 label (e.g. sex, 1 = female), binary cross-entropy, output a probability.
* :class:`MultilabelTarget` — several 0/1 labels (e.g. the PTB-XL diagnostic superclasses).
* :class:`TaskSpec` — one or more targets sharing one backbone, with loss weights (multi-task).

Conventions
-----------
* ``raw``: the model output, ``[batch, task.num_outputs]``, in the task's internal units (standardised for
  regression, logits for binary / multilabel).
* ``y``: labels in natural units (years, 0/1), ``[batch, task.num_labels]``, ``NaN`` where unknown. A missing
  label never contributes to a loss.
* Sex is coded ``1 = female, 0 = male`` (see :mod:`ecglens.ecg`).

Targets are registered by kind (:func:`register_target`) and named tasks by preset (:func:`register_task`);
``task_from_name("age_sex")`` builds a preset.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..artifact.outputs import (
    LOG_NLL_EPS,
    PTBXL_SUPERCLASSES,
    BinaryOutput,
    MultilabelOutput,
    Output,
    OutputSpec,
    RegressionOutput,
    build_from_dict,
    suggest,
)
from ..exceptions import ConfigError

__all__ = [
    "PTBXL_SUPERCLASSES",
    "BinaryTarget",
    "MultilabelTarget",
    "RegressionTarget",
    "Target",
    "TaskSpec",
    "list_tasks",
    "register_target",
    "register_task",
    "target_from_dict",
    "task_from_name",
    "ACUTE_MI_CODES",
    "DERIVED_LABELS",
    "acute_mi_codes",
    "statement_labels",
]

_TARGET_KINDS: dict[str, type[Target]] = {}


def register_target(kind: str) -> Callable[[type[Target]], type[Target]]:
    """Class decorator registering a :class:`Target` subclass under ``kind`` (its ``to_dict()["kind"]``)."""

    def decorate(cls: type[Target]) -> type[Target]:
        cls.kind = kind
        _TARGET_KINDS[kind] = cls
        return cls

    return decorate


def target_from_dict(d: Mapping[str, Any]) -> Target:
    """Rebuild a target from :meth:`Target.to_dict` output (``{"kind": ..., **fields}``)."""
    return build_from_dict(d, _TARGET_KINDS)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask``; zero (still attached to the graph) when nothing is labelled."""
    weight = mask.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


def _label_mask(y: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y with NaN replaced by 0, boolean mask of usable labels)``."""
    valid = ~torch.isnan(y)
    if mask is not None:
        valid = valid & mask.to(torch.bool)
    return torch.where(valid, y, torch.zeros_like(y)), valid


def _column(meta: pd.DataFrame, column: str) -> np.ndarray:
    if column not in meta.columns and column in DERIVED_LABELS and "statements" in meta.columns:
        return DERIVED_LABELS[column](meta)
    if column not in meta.columns:
        raise ConfigError(
            f"Label column {column!r} is not in the cache metadata "
            f"(columns: {', '.join(map(str, meta.columns))}). Choose a task whose labels the cache has, "
            "or rebuild the cache from a catalogue with that column."
        )
    return pd.to_numeric(meta[column], errors="coerce").to_numpy(dtype=np.float64)


def _binary_column(meta: pd.DataFrame, column: str) -> np.ndarray:
    values = _column(meta, column)
    bad = ~np.isnan(values) & ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise ConfigError(
            f"Binary label column {column!r} has values other than 0/1/NaN "
            f"(e.g. {values[bad][:3].tolist()}). "
            "Encode it as 0/1 (sex: 1 = female, 0 = male) with NaN for unknown."
        )
    return values


# ----------------------------------------------------------------------------------------------- targets


class Target(Output):
    """Base class of one trainable target: an :class:`~ecglens.artifact.outputs.Output` with labels and a loss."""

    kind: ClassVar[str] = ""

    def labels_from_meta(self, meta: pd.DataFrame) -> np.ndarray:
        """Labels ``[N, num_labels]`` float64 in natural units, NaN where missing."""
        return np.stack([_column(meta, c) for c in self.label_columns], axis=1)

    def fit(self, y: np.ndarray) -> Target:
        """A copy with statistics fitted on training labels ``y`` ``[N, num_labels]`` (default: self)."""
        return self

    def compute_loss(
        self, raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Masked mean loss (scalar) of ``raw`` ``[B, num_outputs]`` against ``y`` ``[B, num_labels]``."""
        raise NotImplementedError


def _loss_mse(raw: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (raw[:, 0] - z) ** 2


def _loss_l1(raw: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (raw[:, 0] - z).abs()


def _loss_gaussian_nll(raw: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``0.5 * (log var + (z - mu)^2 / var)``, as ``torch.nn.GaussianNLLLoss(full=False)``, var >= 1e-6."""
    logvar = raw[:, 1].clamp(min=LOG_NLL_EPS)
    return 0.5 * (logvar + (z - raw[:, 0]) ** 2 * torch.exp(-logvar))


#: regression loss name -> per-sample loss on standardised labels (names as ``REGRESSION_LOSS_OUTPUTS``)
_REGRESSION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": _loss_mse,
    "l1": _loss_l1,
    "gaussian_nll": _loss_gaussian_nll,
}


@register_target("regression")
@dataclass(frozen=True)
class RegressionTarget(Target, RegressionOutput):
    """A continuous label, standardised with a train-split mean / std (fields: :class:`RegressionOutput`)."""

    def fit(self, y: np.ndarray) -> RegressionTarget:
        if self.mean is not None and self.std is not None:
            return self
        values = np.asarray(y, dtype=np.float64).reshape(-1)
        values = values[~np.isnan(values)]
        if values.size == 0:
            raise ConfigError(f"No training labels for {self.column!r}: every value is missing.")
        std = float(values.std())
        return dataclasses.replace(self, mean=float(values.mean()), std=std if std > 0 else 1.0)

    def compute_loss(
        self, raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        mean, std = self.stats()
        y0, valid = _label_mask(y[:, 0], None if mask is None else mask[:, 0])
        per_sample = _REGRESSION_LOSSES[self.loss](raw, (y0 - mean) / std)
        return _masked_mean(per_sample, valid)


@register_target("binary")
@dataclass(frozen=True)
class BinaryTarget(Target, BinaryOutput):
    """A 0/1 label trained with binary cross-entropy on one logit (fields: :class:`BinaryOutput`)."""

    def labels_from_meta(self, meta: pd.DataFrame) -> np.ndarray:
        return _binary_column(meta, self.column)[:, None]

    def compute_loss(
        self, raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        y0, valid = _label_mask(y[:, 0], None if mask is None else mask[:, 0])
        pw = None if self.pos_weight is None else torch.tensor(float(self.pos_weight), device=raw.device,
                                                                     dtype=raw.dtype)
        per_sample = F.binary_cross_entropy_with_logits(raw[:, 0], y0, pos_weight=pw, reduction="none")
        return _masked_mean(per_sample, valid)


@register_target("multilabel")
@dataclass(frozen=True)
class MultilabelTarget(Target, MultilabelOutput):
    """Several independent 0/1 labels, one logit each (fields: :class:`MultilabelOutput`)."""

    def labels_from_meta(self, meta: pd.DataFrame) -> np.ndarray:
        return np.stack([_binary_column(meta, c) for c in self.columns], axis=1)

    def compute_loss(
        self, raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        y0, valid = _label_mask(y, mask)
        per_element = F.binary_cross_entropy_with_logits(raw, y0, reduction="none")
        return _masked_mean(per_element, valid)


# ----------------------------------------------------------------------------------------------- task spec


@dataclass(frozen=True)
class TaskSpec(OutputSpec):
    """One or more targets predicted from one backbone, with loss weights (an :class:`OutputSpec` that trains).

    Parameters
    ----------
    targets : sequence of Target
        The targets; the model's outputs are their outputs concatenated in this order. Plain
        :class:`~ecglens.artifact.outputs.Output` objects (e.g. of a loaded checkpoint's task) become the
        matching :class:`Target`.
    weights : sequence of float or None
        Loss weight of each target (default: all 1). The task loss is ``sum_i weight_i * loss_i``.
    name : str
        A label for reports (the preset name when built by :func:`task_from_name`).

    Examples
    --------
    >>> task = task_from_name("age_sex")
    >>> task.output_names
    ('age', 'age_std', 'p_female')
    """

    target_kinds: ClassVar[Mapping[str, type]] = _TARGET_KINDS

    def __post_init__(self) -> None:
        targets = tuple(t if isinstance(t, Target) else target_from_dict(t.to_dict()) for t in self.targets)
        object.__setattr__(self, "targets", targets)
        super().__post_init__()

    @classmethod
    def from_outputs(cls, spec: OutputSpec) -> TaskSpec:
        """The trainable task of an output spec (e.g. ``checkpoint.task``); ``spec`` itself when it is one."""
        return spec if isinstance(spec, TaskSpec) else cls(spec.targets, spec.weights, spec.name)

    # -- labels
    def labels_from_meta(self, meta: pd.DataFrame) -> np.ndarray:
        """Labels ``[N, num_labels]`` float32 in natural units (years, 0/1) from a meta table; NaN missing."""
        return np.concatenate([t.labels_from_meta(meta) for t in self.targets], axis=1).astype(np.float32)

    def fit(self, y: np.ndarray) -> TaskSpec:
        """Fit label statistics (e.g. age mean/std) on the **training** labels ``y`` ``[N, num_labels]``."""
        y = np.asarray(y)
        fitted = tuple(t.fit(y[:, ls]) for t, _, ls in self.target_slices())
        return dataclasses.replace(self, targets=fitted)

    # -- training
    def loss_components(
        self, raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Unweighted masked loss of each target, keyed by :attr:`Target.key` (``age``, ``sex``, ...)."""
        self.check_shapes(raw, y)
        return {
            t.key: t.compute_loss(raw[:, os_], y[:, ls], None if mask is None else mask[:, ls])
            for t, os_, ls in self.target_slices()
        }

    def loss(self, raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Weighted task loss (scalar).

        Parameters
        ----------
        raw : torch.Tensor, shape (batch, num_outputs)
        y : torch.Tensor, shape (batch, num_labels)
            Natural units; NaN labels are ignored.
        mask : torch.Tensor of bool, shape (batch, num_labels), optional
            Extra mask (False = ignore), combined with the NaN mask.
        """
        parts = self.loss_components(raw, y, mask)
        return sum(w * v for w, v in zip(self.weights, parts.values(), strict=True))


# ----------------------------------------------------------------------------------------------- presets

_TASKS: dict[str, Callable[..., TaskSpec]] = {}


def register_task(name: str) -> Callable[[Callable[..., TaskSpec]], Callable[..., TaskSpec]]:
    """Decorator registering a task factory under ``name`` (its keyword arguments are the options)."""

    def decorate(factory: Callable[..., TaskSpec]) -> Callable[..., TaskSpec]:
        _TASKS[name] = factory
        return factory

    return decorate


def list_tasks() -> list[str]:
    """Names of the registered task presets."""
    return sorted(_TASKS)


def task_from_name(name: str, **options: Any) -> TaskSpec:
    """Build a named task preset (``"age"``, ``"sex"``, ``"age_sex"``, ``"ptbxl_superclasses"``, ``"MI"``...).

    ``options`` are the preset's keyword arguments (e.g. ``age_loss="l1"``); unknown names or options raise
    :class:`~ecglens.exceptions.ConfigError` listing the valid ones.
    """
    key = name.replace("-", "_")
    if key not in _TASKS:
        raise ConfigError(f"Unknown task {name!r}. {suggest(key, list(_TASKS))}")
    factory = _TASKS[key]
    valid = list(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"Unknown option(s) {unknown} for task {key!r}. Valid options: {valid}.")
    return factory(**options)


@register_task("age")
def _age_task(loss: str = "gaussian_nll", mean: float | None = None, std: float | None = None) -> TaskSpec:
    """Age in years (regression; ``gaussian_nll`` also predicts ``age_std``)."""
    return TaskSpec((RegressionTarget("age", loss=loss, mean=mean, std=std),), name="age")


@register_task("sex")
def _sex_task(pos_weight: float | None = None) -> TaskSpec:
    """Sex as the probability of female (``p_female``; labels 1 = female, 0 = male)."""
    return TaskSpec((BinaryTarget("sex", name="p_female", pos_weight=pos_weight),), name="sex")


@register_task("age_sex")
def _age_sex_task(
    age_loss: str = "gaussian_nll", weights: Sequence[float] = (1.0, 1.0), pos_weight: float | None = None
) -> TaskSpec:
    """Age (years) and sex (``p_female``) from one backbone, losses weighted by ``weights``."""
    targets = (
        RegressionTarget("age", loss=age_loss),
        BinaryTarget("sex", name="p_female", pos_weight=pos_weight),
    )
    return TaskSpec(targets, weights=tuple(weights), name="age_sex")


@register_task("ptbxl_superclasses")
def _superclass_task(columns: Sequence[str] = PTBXL_SUPERCLASSES) -> TaskSpec:
    """The PTB-XL diagnostic superclasses as a multilabel task (``p_NORM``, ``p_MI``, ...)."""
    return TaskSpec((MultilabelTarget(tuple(columns), name="superclass"),), name="ptbxl_superclasses")


def _make_label_task(column: str) -> Callable[..., TaskSpec]:
    def factory(pos_weight: float | None = None) -> TaskSpec:
        return TaskSpec((BinaryTarget(column, name=f"p_{column}", pos_weight=pos_weight),), name=column)

    factory.__doc__ = f"Binary {column} (``p_{column}``) from the cache's {column} label column."
    return factory


for _label in PTBXL_SUPERCLASSES:
    register_task(_label)(_make_label_task(_label))


# ----------------------------------------------------------------------------------------------- acute MI

#: the PTB-XL SCP codes of the ``acute_mi`` task, as :func:`acute_mi_codes` derives them from PTB-XL v1.0.3's
#: ``scp_statements.csv``: the five "subendocardial injury in <territory> leads" statements (INJAL, INJAS,
#: INJIL, INJIN, INJLA), the only MI-class statements whose category is "ischemic ST-T changes compatible with
#: subendocardial injury" (the other nine MI statements, IMI, ASMI, ..., are "Myocardial Infarction" of any age,
#: mostly old infarcts; no MI statement's description says "acute")
ACUTE_MI_CODES: tuple[str, ...] = ("INJAL", "INJAS", "INJIL", "INJIN", "INJLA")


def acute_mi_codes(statements: pd.DataFrame) -> tuple[str, ...]:
    """The SCP codes of an acute-MI / injury target, from PTB-XL's ``scp_statements.csv`` table.

    A code counts when its ``diagnostic_class`` is ``MI`` and its ``Statement Category`` or ``description``
    mentions "injury" or "acute" (current ischaemic injury rather than an infarct of unknown age).

    Parameters
    ----------
    statements : pandas.DataFrame
        ``scp_statements.csv`` read with the SCP code as index.

    Returns
    -------
    tuple of str
        Sorted codes (:data:`ACUTE_MI_CODES` for PTB-XL v1.0.3).
    """
    missing = {"diagnostic_class", "description"} - set(statements.columns)
    if missing:
        raise ConfigError(f"scp_statements table lacks column(s) {sorted(missing)}; read PTB-XL's "
                          "scp_statements.csv with index_col=0.")
    category = statements.get("Statement Category", pd.Series("", index=statements.index)).fillna("")
    text = (category.astype(str) + " " + statements["description"].fillna("").astype(str)).str.lower()
    marks = text.str.contains("injury") | text.str.contains("acute")
    return tuple(sorted(map(str, statements.index[(statements["diagnostic_class"] == "MI") & marks])))


def statement_labels(meta: pd.DataFrame, codes: Sequence[str], column: str = "statements") -> np.ndarray:
    """1.0 where a record's ``;``-separated SCP codes (``meta[column]``) include one of ``codes``, else 0.0.

    Returns
    -------
    np.ndarray, shape (N,), float64
        NaN where the record has no statements entry.
    """
    if column not in meta.columns:
        raise ConfigError(f"No {column!r} column in the cache metadata to derive SCP-code labels from; prepare "
                          "the cache from PTB-XL (`ecglens prepare ptbxl ...`), whose catalogue has it.")
    wanted = set(codes)
    text = meta[column]
    out = np.array([float(bool(wanted & set(str(t).split(";")))) if isinstance(t, str) else np.nan
                    for t in text], dtype=np.float64)
    return out


#: label columns a cache may lack but that follow from its other columns: name -> ``f(meta) -> labels [N]``
DERIVED_LABELS: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "acute_mi": lambda meta: statement_labels(meta, ACUTE_MI_CODES),
}


@register_task("acute_mi")
def _acute_mi_task(pos_weight: float | None = None) -> TaskSpec:
    """Acute MI / injury (``p_acute_mi``): the cache's ``acute_mi`` column, or PTB-XL's subendocardial-injury
    statements (:data:`ACUTE_MI_CODES`) among its ``statements`` (:data:`DERIVED_LABELS`)."""
    return TaskSpec((BinaryTarget("acute_mi", name="p_acute_mi", pos_weight=pos_weight),), name="acute_mi")
