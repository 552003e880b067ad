"""Task specifications: what a model predicts, how it is trained and how it is scored.

A task is declarative and serialisable (it is stored in every checkpoint), so the exact label encoding,
standardisation and loss a model was trained with travel with its weights.

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
  label never contributes to a loss or a metric.
* Sex is coded ``1 = female, 0 = male`` (see :mod:`ecglens.ecg`).

Targets are registered by kind (:func:`register_target`) and named tasks by preset (:func:`register_task`);
``task_from_name("age_sex")`` builds a preset.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.special import expit

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
]

PTBXL_SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
#: smallest variance the Gaussian NLL allows (as ``torch.nn.GaussianNLLLoss``'s default ``eps``)
_NLL_EPS = 1e-6
_LOG_NLL_EPS = math.log(_NLL_EPS)

_TARGET_KINDS: dict[str, type[Target]] = {}


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"Valid: {', '.join(sorted(options))}.{hint}"


def register_target(kind: str) -> Callable[[type[Target]], type[Target]]:
    """Class decorator registering a :class:`Target` subclass under ``kind`` (its ``to_dict()["kind"]``)."""

    def decorate(cls: type[Target]) -> type[Target]:
        cls.kind = kind
        _TARGET_KINDS[kind] = cls
        return cls

    return decorate


def target_from_dict(d: Mapping[str, Any]) -> Target:
    """Rebuild a target from :meth:`Target.to_dict` output (``{"kind": ..., **fields}``)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in _TARGET_KINDS:
        raise ConfigError(f"Unknown target kind {kind!r}. {_suggest(str(kind), list(_TARGET_KINDS))}")
    cls = _TARGET_KINDS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"Unknown field(s) {unknown} for a {kind!r} target. Valid: {sorted(names)}.")
    seqs = {f.name for f in dataclasses.fields(cls) if f.name == "columns"}
    return cls(**{k: tuple(v) if k in seqs else v for k, v in d.items()})


def _to_numpy(raw: Any) -> np.ndarray:
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().cpu().double().numpy()
    raw = np.asarray(raw, dtype=np.float64)
    return raw[:, None] if raw.ndim == 1 else raw


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


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    ok = ~np.isnan(y)
    if len(np.unique(y[ok])) < 2:
        return float("nan")
    return float(roc_auc_score(y[ok], p[ok]))


# ----------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """Base class of one prediction target (see the subclasses)."""

    kind: ClassVar[str] = ""

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Metadata columns this target reads, in order (``num_labels`` of them)."""
        raise NotImplementedError

    @property
    def output_names(self) -> tuple[str, ...]:
        """Keys of :meth:`postprocess` output."""
        raise NotImplementedError

    @property
    def num_outputs(self) -> int:
        """Number of raw model outputs this target uses."""
        raise NotImplementedError

    @property
    def num_labels(self) -> int:
        return len(self.label_columns)

    @property
    def key(self) -> str:
        """Short name of the target, used for its loss in logs (``<key>_loss``)."""
        raise NotImplementedError

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

    def postprocess(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs ``[N, num_outputs]`` -> ``{output name: [N] array in natural units}``."""
        raise NotImplementedError

    def metrics(self, outputs: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
        """Metrics of postprocessed ``outputs`` against labels ``y`` ``[N, num_labels]`` (NaN ignored)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d


def _loss_mse(raw: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (raw[:, 0] - z) ** 2


def _loss_l1(raw: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (raw[:, 0] - z).abs()


def _loss_gaussian_nll(raw: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``0.5 * (log var + (z - mu)^2 / var)``, as ``torch.nn.GaussianNLLLoss(full=False)``, var >= 1e-6."""
    logvar = raw[:, 1].clamp(min=_LOG_NLL_EPS)
    return 0.5 * (logvar + (z - raw[:, 0]) ** 2 * torch.exp(-logvar))


#: regression loss name -> (per-sample loss on standardised labels, number of outputs)
_REGRESSION_LOSSES: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], int]] = {
    "mse": (_loss_mse, 1),
    "l1": (_loss_l1, 1),
    "gaussian_nll": (_loss_gaussian_nll, 2),
}


@register_target("regression")
@dataclass(frozen=True)
class RegressionTarget(Target):
    """A continuous label, standardised with a train-split mean / std.

    Parameters
    ----------
    column : str
        Metadata column (e.g. ``"age"``, years).
    loss : {"mse", "l1", "gaussian_nll"}
        ``gaussian_nll`` uses two outputs (mean, log-variance of the standardised label) and reports
        ``<name>_std`` (the predicted standard deviation, natural units).
    mean, std : float or None
        Standardisation; ``None`` until :meth:`fit` (on the training labels only).
    name : str or None
        Output name (default: ``column``).
    """

    column: str = "age"
    loss: str = "l1"
    mean: float | None = None
    std: float | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.loss not in _REGRESSION_LOSSES:
            raise ConfigError(
                f"Unknown regression loss {self.loss!r}. {_suggest(self.loss, list(_REGRESSION_LOSSES))}"
            )
        if self.std is not None and not self.std > 0:
            raise ConfigError(f"RegressionTarget std must be > 0, got {self.std}; leave it empty to fit it.")

    @property
    def label_columns(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def out_name(self) -> str:
        return self.name or self.column

    @property
    def key(self) -> str:
        return self.out_name

    @property
    def output_names(self) -> tuple[str, ...]:
        extra = (f"{self.out_name}_std",) if self.num_outputs == 2 else ()
        return (self.out_name, *extra)

    @property
    def num_outputs(self) -> int:
        return _REGRESSION_LOSSES[self.loss][1]

    def _stats(self) -> tuple[float, float]:
        if self.mean is None or self.std is None:
            raise ConfigError(
                f"Regression target {self.column!r} has no mean/std yet: call task.fit(train_labels) on the "
                "training split first (or set mean and std explicitly)."
            )
        return float(self.mean), float(self.std)

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
        mean, std = self._stats()
        y0, valid = _label_mask(y[:, 0], None if mask is None else mask[:, 0])
        per_sample = _REGRESSION_LOSSES[self.loss][0](raw, (y0 - mean) / std)
        return _masked_mean(per_sample, valid)

    def postprocess(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        mean, std = self._stats()
        raw = _to_numpy(raw)
        out = {self.out_name: raw[:, 0] * std + mean}
        if self.num_outputs == 2:
            logvar = np.maximum(raw[:, 1], _LOG_NLL_EPS)
            out[f"{self.out_name}_std"] = np.exp(0.5 * logvar) * std
        return out

    def metrics(self, outputs: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
        from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

        truth = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
        pred = np.asarray(outputs[self.out_name], dtype=np.float64)
        ok = ~np.isnan(truth)
        p = f"{self.out_name}_"
        if ok.sum() < 2:
            return {f"{p}{m}": float("nan") for m in ("mae", "rmse", "r", "r2")}
        t, q = truth[ok], pred[ok]
        r = float(np.corrcoef(t, q)[0, 1]) if t.std() > 0 and q.std() > 0 else float("nan")
        return {
            f"{p}mae": float(mean_absolute_error(t, q)),
            f"{p}rmse": float(math.sqrt(mean_squared_error(t, q))),
            f"{p}r": r,
            f"{p}r2": float(r2_score(t, q)),
        }


@register_target("binary")
@dataclass(frozen=True)
class BinaryTarget(Target):
    """A 0/1 label trained with binary cross-entropy on one logit.

    Parameters
    ----------
    column : str
        Metadata column with 0/1/NaN (e.g. ``"sex"``: 1 = female).
    name : str or None
        Output name, the probability of a 1 (default ``"p_<column>"``; ``"p_female"`` for sex).
    pos_weight : float or None
        Weight of positive examples in the loss (``torch`` BCE ``pos_weight``).
    """

    column: str = "sex"
    name: str | None = None
    pos_weight: float | None = None

    @property
    def label_columns(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def out_name(self) -> str:
        return self.name or f"p_{self.column}"

    @property
    def key(self) -> str:
        return self.column

    @property
    def output_names(self) -> tuple[str, ...]:
        return (self.out_name,)

    @property
    def num_outputs(self) -> int:
        return 1

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

    def postprocess(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        raw = _to_numpy(raw)
        return {self.out_name: expit(raw[:, 0])}

    def metrics(self, outputs: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
        from sklearn.metrics import accuracy_score

        truth = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
        prob = np.asarray(outputs[self.out_name], dtype=np.float64)
        ok = ~np.isnan(truth)
        acc = float(accuracy_score(truth[ok], prob[ok] >= 0.5)) if ok.any() else float("nan")
        return {f"{self.column}_auroc": _auroc(truth, prob), f"{self.column}_accuracy": acc}


@register_target("multilabel")
@dataclass(frozen=True)
class MultilabelTarget(Target):
    """Several independent 0/1 labels (one logit each), e.g. the PTB-XL diagnostic superclasses.

    Parameters
    ----------
    columns : tuple of str
        Metadata columns with 0/1/NaN.
    name : str
        Prefix of the summary metric (``<name>_macro_auroc``).
    prefix : str
        Output names are ``prefix + column`` (probabilities).
    """

    columns: tuple[str, ...] = PTBXL_SUPERCLASSES
    name: str = "multilabel"
    prefix: str = "p_"

    def __post_init__(self) -> None:
        if not self.columns:
            raise ConfigError("MultilabelTarget needs at least one column.")
        object.__setattr__(self, "columns", tuple(self.columns))

    @property
    def label_columns(self) -> tuple[str, ...]:
        return self.columns

    @property
    def key(self) -> str:
        return self.name

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}{c}" for c in self.columns)

    @property
    def num_outputs(self) -> int:
        return len(self.columns)

    def labels_from_meta(self, meta: pd.DataFrame) -> np.ndarray:
        return np.stack([_binary_column(meta, c) for c in self.columns], axis=1)

    def compute_loss(
        self, raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        y0, valid = _label_mask(y, mask)
        per_element = F.binary_cross_entropy_with_logits(raw, y0, reduction="none")
        return _masked_mean(per_element, valid)

    def postprocess(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        raw = _to_numpy(raw)
        probs = expit(raw)
        return {name: probs[:, i] for i, name in enumerate(self.output_names)}

    def metrics(self, outputs: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        per = {
            f"{c}_auroc": _auroc(y[:, i], np.asarray(outputs[o]))
            for i, (c, o) in enumerate(zip(self.columns, self.output_names, strict=True))
        }
        valid = [v for v in per.values() if not math.isnan(v)]
        return {**per, f"{self.name}_macro_auroc": float(np.mean(valid)) if valid else float("nan")}


# ----------------------------------------------------------------------------------------------- task spec


@dataclass(frozen=True)
class TaskSpec:
    """One or more targets predicted from one backbone, with loss weights.

    Parameters
    ----------
    targets : sequence of Target
        The targets; the model's outputs are their outputs concatenated in this order.
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

    targets: tuple[Target, ...]
    weights: tuple[float, ...] | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        targets = tuple(self.targets)
        if not targets:
            raise ConfigError("A TaskSpec needs at least one target.")
        weights = tuple(
            float(w) for w in (self.weights if self.weights is not None else [1.0] * len(targets))
        )
        if len(weights) != len(targets) or any(not (w >= 0) for w in weights):
            raise ConfigError(
                f"TaskSpec weights {list(weights)} must be {len(targets)} non-negative numbers, "
                "one per target."
            )
        for what, names in (
            ("Output names", [n for t in targets for n in t.output_names]),
            ("Target keys", [t.key for t in targets]),
        ):
            if len(set(names)) != len(names):
                raise ConfigError(f"{what} {names} repeat; give the targets distinct columns or `name`s.")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "weights", weights)

    # -- shape bookkeeping
    @property
    def num_outputs(self) -> int:
        """Number of raw model outputs (``num_outputs`` for ``create_model``)."""
        return sum(t.num_outputs for t in self.targets)

    @property
    def num_labels(self) -> int:
        """Number of label columns (second dimension of ``labels_from_meta``)."""
        return sum(t.num_labels for t in self.targets)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Keys of :meth:`postprocess` output, in order."""
        return tuple(n for t in self.targets for n in t.output_names)

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(c for t in self.targets for c in t.label_columns)

    def _slices(self) -> list[tuple[Target, slice, slice]]:
        out, o, lab = [], 0, 0
        for t in self.targets:
            out.append((t, slice(o, o + t.num_outputs), slice(lab, lab + t.num_labels)))
            o, lab = o + t.num_outputs, lab + t.num_labels
        return out

    def _check(self, raw: Any, y: Any = None) -> None:
        if raw.ndim != 2 or raw.shape[1] != self.num_outputs:
            raise ConfigError(
                f"Task {self.name!r} expects raw outputs [batch, {self.num_outputs}], "
                f"got {tuple(raw.shape)}: "
                f"build the model with num_outputs=task.num_outputs ({self.num_outputs})."
            )
        if y is not None and (y.ndim != 2 or y.shape[1] != self.num_labels):
            raise ConfigError(
                f"Task {self.name!r} expects labels [batch, {self.num_labels}], got {tuple(y.shape)}."
            )

    # -- labels
    def labels_from_meta(self, meta: pd.DataFrame) -> np.ndarray:
        """Labels ``[N, num_labels]`` float32 in natural units (years, 0/1) from a meta table; NaN missing."""
        return np.concatenate([t.labels_from_meta(meta) for t in self.targets], axis=1).astype(np.float32)

    def fit(self, y: np.ndarray) -> TaskSpec:
        """Fit label statistics (e.g. age mean/std) on the **training** labels ``y`` ``[N, num_labels]``."""
        y = np.asarray(y)
        fitted = tuple(t.fit(y[:, ls]) for t, _, ls in self._slices())
        return dataclasses.replace(self, targets=fitted)

    # -- training
    def loss_components(
        self, raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Unweighted masked loss of each target, keyed by :attr:`Target.key` (``age``, ``sex``, ...)."""
        self._check(raw, y)
        return {
            t.key: t.compute_loss(raw[:, os_], y[:, ls], None if mask is None else mask[:, ls])
            for t, os_, ls in self._slices()
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

    # -- inference and scoring
    def postprocess(self, raw: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs ``[N, num_outputs]`` -> ``{name: [N] array}`` (years, probabilities, ...)."""
        raw = _to_numpy(raw)
        self._check(raw)
        out: dict[str, np.ndarray] = {}
        for t, os_, _ in self._slices():
            out.update(t.postprocess(raw[:, os_]))
        return out

    def metrics(self, outputs: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
        """Metrics of :meth:`postprocess` output against labels ``y`` ``[N, num_labels]`` (NaN ignored).

        Regression: ``<name>_mae``, ``_rmse``, ``_r`` (Pearson), ``_r2``; binary: ``<column>_auroc``,
        ``_accuracy`` (threshold 0.5); multilabel: ``<column>_auroc`` and ``<name>_macro_auroc``.
        """
        y = np.asarray(y, dtype=np.float64)
        y = y[:, None] if y.ndim == 1 else y
        out: dict[str, float] = {}
        for t, _, ls in self._slices():
            out.update(t.metrics(outputs, y[:, ls]))
        return out

    # -- serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "targets": [t.to_dict() for t in self.targets],
            "weights": list(self.weights),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        unknown = sorted(set(d) - {"name", "targets", "weights"})
        if unknown:
            raise ConfigError(f"Unknown task field(s) {unknown}. Valid: name, targets, weights.")
        if "targets" not in d:
            raise ConfigError(
                "A task dict needs 'targets': a list of {kind: regression|binary|multilabel, ...}."
            )
        return cls(
            targets=tuple(target_from_dict(t) for t in d["targets"]),
            weights=d.get("weights"),
            name=d.get("name", "custom"),
        )


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
        raise ConfigError(f"Unknown task {name!r}. {_suggest(key, list(_TASKS))}")
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
