"""Training configuration: frozen dataclasses <-> YAML, with type-checked ``key.sub=value`` overrides.

A config file has the sections ``data``, ``model``, ``task``, ``optim``, ``augment`` and ``trainer`` (all
optional; missing keys take the defaults below) and an optional ``name``. Every key is checked: an unknown key
or a value of the wrong type raises :class:`~ecglens.exceptions.ConfigError` naming the valid keys. The
*resolved* config (defaults filled in, overrides applied) is written to every run folder and stored in every
checkpoint.

Example
-------
.. code-block:: yaml

    name: age_sex
    data: {cache: cache/ptbxl100, train_folds: [1, 2, 3, 4, 5, 6, 7, 8], val_folds: [9]}
    model: {name: resnet1d_ribeiro, kwargs: {}}
    task: {name: age_sex, options: {age_loss: gaussian_nll}}
    optim: {lr: 0.001, epochs: 20, batch_size: 64}

>>> cfg = load_config("configs/age_sex.yaml", overrides=["optim.lr=3e-4", "trainer.devices=2"])
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from ..configs import find_config
from ..exceptions import ConfigError
from ..jsonutil import json_ready

__all__ = [
    "SCHEDULES",
    "AugmentConfig",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TaskConfig",
    "TrainConfig",
    "TrainerConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "dataclass_from_dict",
    "load_config",
    "parse_override",
    "save_config",
]

#: learning-rate schedules understood by :class:`ecglens.train.module.EcgLightningModule`
SCHEDULES: tuple[str, ...] = ("onecycle", "cosine", "constant")


def _choices(*values: str) -> dict[str, tuple[str, ...]]:
    return {"choices": tuple(values)}


@dataclass(frozen=True)
class DataConfig:
    """Which prepared cache to train on and how to split it.

    ``train_folds`` / ``val_folds`` select rows by the cache's ``fold`` column (PTB-XL ``strat_fold``, which
    is patient-disjoint). ``train_fraction`` and ``max_train`` subsample the training rows (seeded by
    ``subsample_seed``) for learning-curve / data-efficiency experiments. ``teacher`` (a teacher's
    ``predictions.csv``) and ``teacher_weight`` turn on knowledge distillation (``ecglens.data.distill``).
    """

    cache: str = "cache/ptbxl100"
    train_folds: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    val_folds: tuple[int, ...] = (9,)
    train_fraction: float = 1.0
    max_train: int | None = None
    subsample_seed: int = 0
    teacher: str | None = None
    teacher_weight: float = 0.5


@dataclass(frozen=True)
class ModelConfig:
    """An architecture of the zoo (``ecglens.models.list_models()``) and its keyword arguments."""

    name: str = "resnet1d_ribeiro"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskConfig:
    """A task preset (``ecglens.data.targets.list_tasks()``) with its options, or a full task ``spec`` dict
    (``TaskSpec.to_dict()`` form) that takes precedence when given."""

    name: str = "age_sex"
    options: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] | None = None


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the learning-rate schedule.

    ``onecycle``: linear warm-up from ``lr / 25`` to ``lr`` over ``warmup_fraction`` of the steps, then cosine
    decay to ``lr / 1e4``. ``cosine``: the same without the warm-up (unless ``warmup_fraction`` > 0 is set and
    the schedule is ``onecycle``). ``constant``: no schedule. Weight decay is not applied to biases and norms.

    ``ema_decay`` (e.g. ``0.999``; ``null``: off) keeps an exponential moving average of the weights, updated
    after every optimiser step (Lightning's ``EMAWeightAveraging``); validation, model selection and the saved
    weights then use the average, and a resumed run continues both the average and the raw weights.
    """

    lr: float = 1e-3
    weight_decay: float = 1e-2
    schedule: str = field(default="onecycle", metadata=_choices(*SCHEDULES))
    epochs: int = 20
    batch_size: int = 64
    warmup_fraction: float = 0.3
    grad_clip: float | None = 1.0
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(
                f"optim.ema_decay must be between 0 and 1 (e.g. 0.999), or null to switch it off; "
                f"got {self.ema_decay!r}."
            )


@dataclass(frozen=True)
class AugmentConfig:
    """Train-only augmentation: ``spec`` is passed to ``ecglens.signal.augment.Augment.from_dict`` (empty: the
    defaults)."""

    enabled: bool = True
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainerConfig:
    """Lightning Trainer settings (passed through, so multi-GPU / multi-node DDP works as in Lightning).

    ``precision="auto"`` means ``16-mixed`` on a GPU and ``32-true`` on CPU; ``16-mixed`` asked for on a CPU
    falls back to ``32-true``; ``bf16-mixed`` on a CPU with bfloat16 instructions trains in about 0.6x the time
    per epoch (docs/results.md, "Training in bfloat16 on the CPU"). ``max_time`` is ``"DD:HH:MM:SS"`` (quote it
    in YAML). ``patience`` epochs without improvement of ``monitor`` stop training (``null`` disables early
    stopping). ``monitor`` also picks the epoch whose weights the run keeps; ``monitor: null`` keeps the last
    epoch instead (no selection on the validation split, which is then only reported; needs ``patience: null``).
    ``num_threads``: torch CPU threads (default: the CPU count minus the data-loader workers, at least 1).
    """

    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = field(
        default="auto", metadata=_choices("auto", "32-true", "32", "16-mixed", "bf16-mixed")
    )
    seed: int = 0
    patience: int | None = 10
    max_time: str | None = None
    num_workers: int = 2
    num_threads: int | None = None
    out_dir: str = "runs"
    monitor: str | None = "val_loss"
    monitor_mode: str = field(default="min", metadata=_choices("min", "max"))
    log_every_n_steps: int = 20
    progress_bar: bool = True
    deterministic: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """A full training configuration (see the module docstring)."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


# ----------------------------------------------------------------------------------------------- coercion


def _describe(tp: Any) -> str:
    args = typing.get_args(tp)
    if _is_union(tp):
        return " or ".join(_describe(a) for a in args)
    if typing.get_origin(tp) is tuple:
        return f"list of {_describe(args[0])}"
    if typing.get_origin(tp) is dict or tp is dict:
        return "mapping"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _fail(key: str, tp: Any, value: Any) -> ConfigError:
    hint = (
        " (quote strings that look like numbers or times in YAML)"
        if str in typing.get_args(tp) + (tp,)
        else ""
    )
    return ConfigError(
        f"{key}: expected {_describe(tp)}, got {value!r}{hint}. Fix it in the YAML file or "
        f"with --set {key}=VALUE."
    )


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (int, str)):
        return int(value)
    raise TypeError


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, (int, float, str)):
        return float(value)
    raise TypeError


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError


def _to_dict(value: Any) -> dict:
    if isinstance(value, Mapping):
        return json_ready(value)
    raise TypeError


_SCALARS = {int: _to_int, float: _to_float, bool: _to_bool, str: _to_str, dict: _to_dict}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check / convert ``value`` to the annotation ``tp`` (raising :class:`ConfigError` naming ``key``)."""
    if tp is Any:
        return json_ready(value)
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _fail(key, tp, value)
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise _fail(key, tp, value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _fail(key, tp, value)
        return dataclass_from_dict(tp, value, key + ".")
    origin = typing.get_origin(tp)
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(_coerce(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(items))
    try:
        return _SCALARS[origin or tp](value)
    except (TypeError, ValueError):
        raise _fail(key, tp, value) from None


def _unknown_key(key: str, valid: Sequence[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(valid), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"Unknown config key {where + key!r}.{hint} Valid keys{' of ' + where[:-1] if where else ''}: "
        f"{', '.join(valid)}."
    )


def dataclass_from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown_key(str(key), list(fields), prefix)
        full = prefix + key
        kwargs[key] = _coerce(value, hints[key], full)
        choices = fields[key].metadata.get("choices")
        if choices and kwargs[key] not in choices:
            raise ConfigError(f"{full}: {kwargs[key]!r} is not one of {', '.join(choices)}.")
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested mappings (YAML data), checking every key and type."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"A config must be a mapping of sections (data, model, ...), got {type(data).__name__}."
        )
    return dataclass_from_dict(TrainConfig, data)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict (lists, not tuples) of a config dataclass; YAML / JSON safe."""
    return json_ready(dataclasses.asdict(config))


# ----------------------------------------------------------------------------------------------- overrides


def _leaf_type(path: list[str]) -> tuple[Any, int]:
    """Annotation reached by ``path`` in :class:`TrainConfig` and how many parts were dataclass fields."""
    tp: Any = TrainConfig
    for depth, part in enumerate(path):
        if not dataclasses.is_dataclass(tp):
            return tp, depth
        names = [f.name for f in dataclasses.fields(tp)]
        if part not in names:
            raise _unknown_key(part, names, "".join(p + "." for p in path[:depth]))
        tp = typing.get_type_hints(tp)[part]
    return tp, len(path)


def _is_mapping_type(tp: Any) -> bool:
    candidates = typing.get_args(tp) if _is_union(tp) else (tp,)
    return any(t is dict or typing.get_origin(t) is dict for t in candidates)


def parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"Override {item!r} is not KEY=VALUE (e.g. optim.lr=3e-4 or model.kwargs.width=32)."
        )
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else None


def apply_overrides(config: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """Apply ``["section.key=value", ...]`` overrides (values parsed as YAML, then type-checked).

    Keys inside free-form mappings (``model.kwargs``, ``task.options``, ``augment.spec``) may be new; every
    other key must exist.
    """
    data = config_to_dict(config)
    for item in overrides:
        path, value = parse_override(item)
        tp, depth = _leaf_type(path)
        if depth < len(path) and not _is_mapping_type(tp):
            raise ConfigError(
                f"Override {item!r}: {'.'.join(path[:depth])} is a {_describe(tp)}, not a section."
            )
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return config_from_dict(data)


# ----------------------------------------------------------------------------------------------- files


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (``None``: all defaults) and apply ``overrides`` (``"optim.lr=3e-4"``, ...).

    ``path`` is a YAML file or the name of a shipped config (``"age_sex"``: :func:`ecglens.configs.find_config`).
    """
    data: Any = {}
    if path is not None:
        path = find_config(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"Config file {path} is not valid YAML: {err}") from None
    return apply_overrides(config_from_dict(data), list(overrides))


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (loadable with :func:`load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
    return path
