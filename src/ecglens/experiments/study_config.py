"""The settings of the clinical studies (:mod:`ecglens.experiments.study`) and their config file.

:func:`load_study_config` reads ``study_simulate.yaml`` (shipped with the package; see :func:`default_config`)
or your own copy, applies a profile (``quick``) and ``section.key=value`` overrides with the experiment grids'
helpers (:mod:`ecglens.experiments.grid`), and checks every key and type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..configs import find_config
from ..evaluate import metrics as M
from ..exceptions import ConfigError
from ..train.config import config_from_dict, dataclass_from_dict, parse_override
from .grid import apply_profile, apply_raw_overrides

__all__ = ["ExternalSettings", "FeatureSettings", "SimulationSettings", "StudySettings", "default_config",
           "load_study_config"]


# ---------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class FeatureSettings:
    """ECG features (:func:`~ecglens.evaluate.features.extract_features`) of up to ``max_records`` ECGs."""

    method: str = "dwt"
    max_records: int | None = 400
    workers: int = 2


@dataclass(frozen=True)
class StudySettings:
    """The ``study`` section of the config (each key is explained in ``configs/study_simulate.yaml``)."""

    seed: int = 0
    split: tuple[float, ...] = (0.5, 0.15, 0.35)
    link_window_days: tuple[float, ...] = (-7.0, 7.0)
    anemia_thresholds: dict[str, float] = field(default_factory=lambda: {"moderate": 10.0, "severe": 8.0})
    low_hb_level: str = "moderate"
    who_mild_anemia: bool = True
    threshold_method: str = "youden"
    n_boot: int = 1000
    alpha: float = 0.05
    adjust: tuple[str, ...] = ("age", "sex")
    preprocess: dict[str, Any] = field(default_factory=dict)
    prepare_workers: int = 2
    features: FeatureSettings = field(default_factory=FeatureSettings)


@dataclass(frozen=True)
class SimulationSettings:
    """The ``simulation`` section: the internal simulated cohort (:func:`~.simulate.simulate_cohort`)."""

    n_patients: int = 3000
    fs: float = 100.0
    seconds: float = 10.0
    true_hr_low_hb: float = 2.0
    anemia_fraction: float = 0.15


@dataclass(frozen=True)
class ExternalSettings:
    """The ``external`` section: a shifted second cohort (other seed, older, noisier device, more anemia)."""

    n_patients: int = 1500
    seed_offset: int = 1000
    older_per_year: float = 0.04
    white_noise_mv: float = 0.03
    anemia_fraction: float = 0.25


_SECTIONS: dict[str, type] = {"study": StudySettings, "simulation": SimulationSettings,
                              "external": ExternalSettings}


def _check_override(item: str) -> str:
    """``item`` when its key starts with a config section, else a :class:`ConfigError`."""
    if parse_override(item)[0][0] not in (*_SECTIONS, "train"):
        raise ConfigError(f"override {item!r} must start with one of {[*_SECTIONS, 'train']}, e.g. study.n_boot=200.")
    return item


def default_config() -> Path:
    """The shipped study config: package data ``ecglens/configs/study_simulate.yaml``."""
    return find_config("study_simulate")


def load_study_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                      profile: str | None = None) -> dict[str, Any]:
    """Read a study YAML (default :func:`default_config`), apply a profile and ``section.key=value`` overrides.

    Returns ``{"study": StudySettings, "simulation": ..., "external": ..., "train": TrainConfig}``, every key
    and type checked (unknown keys raise :class:`~ecglens.exceptions.ConfigError` naming the valid ones).
    """
    source = find_config(path) if path is not None else default_config()
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(data) - {*_SECTIONS, "train", "profiles"})
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown} in {source}; valid: {[*_SECTIONS, 'train', 'profiles']}.")
    if profile is not None:
        data = apply_profile(data, profile, {})
    data = apply_raw_overrides(data, [_check_override(item) for item in overrides])
    cfg: dict[str, Any] = {name: dataclass_from_dict(cls, data.get(name) or {}, f"{name}.")
                           for name, cls in _SECTIONS.items()}
    cfg["train"] = config_from_dict(data.get("train") or {})
    s = cfg["study"]
    if len(s.split) != 3 or min(s.split) <= 0:
        raise ConfigError(f"study.split must be three positive shares (train, validation, test), got {s.split}.")
    if s.low_hb_level not in s.anemia_thresholds:
        raise ConfigError(f"study.low_hb_level {s.low_hb_level!r} is not a key of study.anemia_thresholds "
                          f"{sorted(s.anemia_thresholds)}.")
    M.select_threshold([0, 1], [0.0, 1.0], s.threshold_method)  # raises on an unknown method
    return cfg
