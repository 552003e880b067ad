"""Output specifications: the inference half of a task, as stored in every model file.

What a loaded model needs to turn raw outputs into named values: the output names, the label standardisation
fitted at training time, :meth:`OutputSpec.postprocess`, and ``to_dict`` / ``from_dict``. The training half
(labels from a metadata table, fitting the standardisation, losses) builds on these classes in
:mod:`ecglens.data.targets` (:class:`~ecglens.data.targets.TaskSpec` is an :class:`OutputSpec`); metrics of
postprocessed outputs are :func:`ecglens.evaluate.metrics.task_metrics`.

Conventions
-----------
* ``raw``: the model output, ``[batch, num_outputs]``, in the task's internal units (standardised for
  regression, logits for binary / multilabel).
* Postprocessed outputs are in natural units (years, probabilities), one ``[batch]`` array per output name.
* Sex is coded ``1 = female, 0 = male`` (see :mod:`ecglens.ecg`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.special import expit

from ..exceptions import ConfigError

__all__ = [
    "PTBXL_SUPERCLASSES",
    "REGRESSION_LOSS_OUTPUTS",
    "BinaryOutput",
    "MultilabelOutput",
    "Output",
    "OutputSpec",
    "RegressionOutput",
    "output_from_dict",
    "register_output",
]

PTBXL_SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
#: regression loss name -> number of raw outputs (``gaussian_nll``: mean and log-variance)
REGRESSION_LOSS_OUTPUTS: dict[str, int] = {"mse": 1, "l1": 1, "gaussian_nll": 2}
#: smallest variance the Gaussian NLL allows (as ``torch.nn.GaussianNLLLoss``'s default ``eps``)
NLL_EPS = 1e-6
LOG_NLL_EPS = math.log(NLL_EPS)

_OUTPUT_KINDS: dict[str, type[Output]] = {}


def suggest(name: str, options: Sequence[str]) -> str:
    """``"Valid: a, b. Did you mean 'a'?"`` for an unknown ``name`` among ``options``."""
    close = difflib.get_close_matches(name, list(options), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"Valid: {', '.join(sorted(options))}.{hint}"


def register_output(kind: str) -> Callable[[type[Output]], type[Output]]:
    """Class decorator registering an :class:`Output` subclass under ``kind`` (its ``to_dict()["kind"]``)."""

    def decorate(cls: type[Output]) -> type[Output]:
        cls.kind = kind
        _OUTPUT_KINDS[kind] = cls
        return cls

    return decorate


def build_from_dict(d: Mapping[str, Any], kinds: Mapping[str, type]) -> Any:
    """Rebuild a target of the class ``kinds[d["kind"]]`` from its ``to_dict()`` output."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in kinds:
        raise ConfigError(f"Unknown target kind {kind!r}. {suggest(str(kind), list(kinds))}")
    cls = kinds[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"Unknown field(s) {unknown} for a {kind!r} target. Valid: {sorted(names)}.")
    return cls(**{k: tuple(v) if k == "columns" else v for k, v in d.items()})


def output_from_dict(d: Mapping[str, Any]) -> Output:
    """Rebuild an output from :meth:`Output.to_dict` output (``{"kind": ..., **fields}``)."""
    return build_from_dict(d, _OUTPUT_KINDS)


def as_2d(raw: Any) -> np.ndarray:
    """``raw`` (tensor or array, ``[N]`` or ``[N, K]``) as a float64 numpy array ``[N, K]``."""
    if hasattr(raw, "detach"):  # a torch tensor; torch itself is not needed here
        raw = raw.detach().cpu().double().numpy()
    raw = np.asarray(raw, dtype=np.float64)
    return raw[:, None] if raw.ndim == 1 else raw


# ----------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Output:
    """Base class of one target's outputs (see the subclasses)."""

    kind: ClassVar[str] = ""

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Metadata columns of the labels, in order (``num_labels`` of them)."""
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

    def postprocess(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs ``[N, num_outputs]`` -> ``{output name: [N] array in natural units}``."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d


@register_output("regression")
@dataclass(frozen=True)
class RegressionOutput(Output):
    """A continuous value, predicted standardised with a train-split mean / std.

    Parameters
    ----------
    column : str
        Metadata column of the label (e.g. ``"age"``, years).
    loss : {"mse", "l1", "gaussian_nll"}
        ``gaussian_nll`` uses two outputs (mean, log-variance of the standardised label) and reports
        ``<name>_std`` (the predicted standard deviation, natural units).
    mean, std : float or None
        Standardisation; ``None`` until fitted on the training labels.
    name : str or None
        Output name (default: ``column``).
    """

    column: str = "age"
    loss: str = "l1"
    mean: float | None = None
    std: float | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.loss not in REGRESSION_LOSS_OUTPUTS:
            raise ConfigError(
                f"Unknown regression loss {self.loss!r}. {suggest(self.loss, list(REGRESSION_LOSS_OUTPUTS))}"
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
        return REGRESSION_LOSS_OUTPUTS[self.loss]

    def stats(self) -> tuple[float, float]:
        """The fitted ``(mean, std)`` (natural units); :class:`ConfigError` before fitting."""
        if self.mean is None or self.std is None:
            raise ConfigError(
                f"Regression target {self.column!r} has no mean/std yet: call task.fit(train_labels) on the "
                "training split first (or set mean and std explicitly)."
            )
        return float(self.mean), float(self.std)

    def postprocess(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        mean, std = self.stats()
        raw = as_2d(raw)
        out = {self.out_name: raw[:, 0] * std + mean}
        if self.num_outputs == 2:
            logvar = np.maximum(raw[:, 1], LOG_NLL_EPS)
            out[f"{self.out_name}_std"] = np.exp(0.5 * logvar) * std
        return out


@register_output("binary")
@dataclass(frozen=True)
class BinaryOutput(Output):
    """The probability of a 0/1 label (one logit).

    Parameters
    ----------
    column : str
        Metadata column with 0/1/NaN (e.g. ``"sex"``: 1 = female).
    name : str or None
        Output name, the probability of a 1 (default ``"p_<column>"``; ``"p_female"`` for sex).
    pos_weight : float or None
        Weight of positive examples in the training loss.
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

    def postprocess(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        return {self.out_name: expit(as_2d(raw)[:, 0])}


@register_output("multilabel")
@dataclass(frozen=True)
class MultilabelOutput(Output):
    """Probabilities of several independent 0/1 labels (one logit each), e.g. the PTB-XL superclasses.

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

    def postprocess(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        probs = expit(as_2d(raw))
        return {name: probs[:, i] for i, name in enumerate(self.output_names)}


# ----------------------------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class OutputSpec:
    """The outputs of one model: one or more targets sharing one backbone, with their loss weights.

    Parameters
    ----------
    targets : sequence of Output
        The targets; the model's raw outputs are theirs concatenated in this order.
    weights : sequence of float or None
        Loss weight of each target (default: all 1), kept so that the file describes its training.
    name : str
        A label for reports (the task preset's name).
    """

    targets: tuple[Output, ...]
    weights: tuple[float, ...] | None = None
    name: str = "custom"

    #: the target classes :meth:`from_dict` builds, by kind
    target_kinds: ClassVar[Mapping[str, type]] = _OUTPUT_KINDS

    def __post_init__(self) -> None:
        targets = tuple(self.targets)
        if not targets:
            raise ConfigError("A TaskSpec needs at least one target.")
        weights = tuple(float(w) for w in (self.weights if self.weights is not None else [1.0] * len(targets)))
        if len(weights) != len(targets) or any(not (w >= 0) for w in weights):
            raise ConfigError(
                f"TaskSpec weights {list(weights)} must be {len(targets)} non-negative numbers, one per target."
            )
        for what, names in (("Output names", [n for t in targets for n in t.output_names]),
                            ("Target keys", [t.key for t in targets])):
            if len(set(names)) != len(names):
                raise ConfigError(f"{what} {names} repeat; give the targets distinct columns or `name`s.")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "weights", weights)

    @property
    def num_outputs(self) -> int:
        """Number of raw model outputs (``num_outputs`` for ``create_model``)."""
        return sum(t.num_outputs for t in self.targets)

    @property
    def num_labels(self) -> int:
        """Number of label columns."""
        return sum(t.num_labels for t in self.targets)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Keys of :meth:`postprocess` output, in order."""
        return tuple(n for t in self.targets for n in t.output_names)

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(c for t in self.targets for c in t.label_columns)

    def target_slices(self) -> list[tuple[Output, slice, slice]]:
        """``(target, its columns of the raw outputs, its columns of the labels)`` for each target."""
        out, o, lab = [], 0, 0
        for t in self.targets:
            out.append((t, slice(o, o + t.num_outputs), slice(lab, lab + t.num_labels)))
            o, lab = o + t.num_outputs, lab + t.num_labels
        return out

    def check_shapes(self, raw: Any, y: Any = None) -> None:
        """:class:`ConfigError` unless ``raw`` is ``[batch, num_outputs]`` (and ``y`` ``[batch, num_labels]``)."""
        if raw.ndim != 2 or raw.shape[1] != self.num_outputs:
            raise ConfigError(
                f"Task {self.name!r} expects raw outputs [batch, {self.num_outputs}], got {tuple(raw.shape)}: "
                f"build the model with num_outputs=task.num_outputs ({self.num_outputs})."
            )
        if y is not None and (y.ndim != 2 or y.shape[1] != self.num_labels):
            raise ConfigError(f"Task {self.name!r} expects labels [batch, {self.num_labels}], got {tuple(y.shape)}.")

    def postprocess(self, raw: Any) -> dict[str, np.ndarray]:
        """Raw outputs ``[N, num_outputs]`` (tensor or array) -> ``{name: [N] array}`` (years, probabilities)."""
        raw = as_2d(raw)
        self.check_shapes(raw)
        out: dict[str, np.ndarray] = {}
        for t, os_, _ in self.target_slices():
            out.update(t.postprocess(raw[:, os_]))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "targets": [t.to_dict() for t in self.targets], "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:
        """Rebuild a spec of this class from :meth:`to_dict` output (its targets from :attr:`target_kinds`)."""
        unknown = sorted(set(d) - {"name", "targets", "weights"})
        if unknown:
            raise ConfigError(f"Unknown task field(s) {unknown}. Valid: name, targets, weights.")
        if "targets" not in d:
            raise ConfigError("A task dict needs 'targets': a list of {kind: regression|binary|multilabel, ...}.")
        return cls(targets=tuple(build_from_dict(t, cls.target_kinds) for t in d["targets"]),
                   weights=d.get("weights"), name=d.get("name", "custom"))
