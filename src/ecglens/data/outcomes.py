"""Outcome (follow-up) tables for survival analysis, and the ECG-age gap.

An outcome table has one row per patient (or per index ECG): an id, a follow-up ``time`` (from the index ECG
to the event or to censoring), an ``event`` indicator (1 = event observed, 0 = censored) and optional
covariates. :func:`read_outcomes` maps a file's own column names onto these, either with ``columns=`` or with
a named preset.

The ``"code15"`` preset reads the CODE-15% ``exams.csv`` catalogue (Ribeiro et al. 2021; Lima et al., Nature
Communications 12, 5117, 2021): ``death`` (bool) -> ``event``, ``timey`` (years from the exam to death or the
end of follow-up) -> ``time``, ``is_male`` -> ``sex`` (library coding 1 = female, 0 = male), ``age`` and
``nn_predicted_age`` (the published ECG-age) kept as covariates. CODE-15% gives follow-up only on each
patient's *first* exam; the other exams have it empty and are dropped (counted) by :func:`read_outcomes`.

The ECG-age gap (Lima et al.) is ``predicted age - chronological age``; a gap above +8 years ("ECG-age > +8")
was associated with higher mortality than a gap within +/- 8 years ("normal").
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ConfigError

__all__ = [
    "OUTCOME_PRESETS",
    "OutcomePreset",
    "ecg_age_gap",
    "gap_category",
    "gap_levels",
    "read_outcomes",
]

_EVENT_STRINGS = {
    "1": 1.0,
    "0": 0.0,
    "true": 1.0,
    "false": 0.0,
    "yes": 1.0,
    "no": 0.0,
    "1.0": 1.0,
    "0.0": 0.0,
}


def _code15_prepare(df: pd.DataFrame) -> pd.DataFrame:
    """CODE-15% exams.csv: ``is_male`` -> library ``sex`` (1 = female) when no ``sex`` column exists yet."""
    if "sex" not in df.columns and "is_male" in df.columns:
        is_male = df["is_male"].map(lambda v: _EVENT_STRINGS.get(str(v).strip().lower(), np.nan))
        df["sex"] = 1.0 - is_male
    return df


@dataclass(frozen=True)
class OutcomePreset:
    """How one data set spells the outcome columns.

    Attributes
    ----------
    columns : mapping
        Canonical name (``patient_id``, ``time``, ``event``) -> the data set's column name.
    covariates : tuple of str
        Canonical covariate columns kept by default (when present).
    prepare : callable
        DataFrame -> DataFrame run before renaming (derive library codings, e.g. sex).
    """

    columns: Mapping[str, str]
    covariates: tuple[str, ...] = ()
    prepare: Callable[[pd.DataFrame], pd.DataFrame] = field(default=lambda df: df)


OUTCOME_PRESETS: dict[str, OutcomePreset] = {
    "default": OutcomePreset({"patient_id": "patient_id", "time": "time", "event": "event"}),
    "code15": OutcomePreset(
        {"patient_id": "patient_id", "time": "timey", "event": "death"},
        covariates=("exam_id", "age", "sex", "nn_predicted_age"),
        prepare=_code15_prepare,
    ),
}


def _parse_event(series: pd.Series) -> pd.Series:
    """bool / 0-1 / 'True'-'False' / 'yes'-'no' -> float 1/0 (NaN when missing); anything else is an error."""
    missing = series.isna()
    parsed = series.map(lambda v: _EVENT_STRINGS.get(str(v).strip().lower(), np.nan))
    bad = parsed.isna() & ~missing
    if bad.any():
        raise ConfigError(
            f"event column has values {sorted(set(series[bad].astype(str)))[:5]} that are not 1/0, "
            "True/False or yes/no; recode it (1 = event observed, 0 = censored)."
        )
    return parsed.astype(np.float64)


def read_outcomes(
    source: str | Path | pd.DataFrame,
    *,
    preset: str = "default",
    columns: Mapping[str, str] | None = None,
    covariates: Sequence[str] | None = None,
    time_scale: float = 1.0,
) -> pd.DataFrame:
    """Read an outcome table into ``time, event`` (+ ``patient_id`` and covariates).

    Parameters
    ----------
    source : path or DataFrame
        CSV file or table.
    preset : str
        Key of :data:`OUTCOME_PRESETS` (``"default"``, ``"code15"``).
    columns : mapping, optional
        Canonical name -> your column name; overrides the preset's mapping for the names given.
    covariates : sequence of str, optional
        Extra columns to keep (all other columns are kept too; this only checks they exist). Default: the
        preset's covariates, where present.
    time_scale : float
        Multiplies the follow-up time (e.g. ``365.25`` for years -> days).

    Returns
    -------
    pd.DataFrame
        ``time`` (float, >= 0), ``event`` (int 0/1), ``patient_id`` when the table has one (an id is needed
        only to join predictions; any per-ECG id such as ``exam_id`` works too) and the other columns. Rows
        with a missing or negative time or a missing event are dropped; ``attrs["read_outcomes"]`` counts them
        and a warning says so.

    Raises
    ------
    ConfigError
        Unknown preset, missing columns, unparseable events.
    """
    spec = OUTCOME_PRESETS.get(preset)
    if spec is None:
        raise ConfigError(f"unknown outcome preset {preset!r}; choose one of {sorted(OUTCOME_PRESETS)}.")
    df = source.copy() if isinstance(source, pd.DataFrame) else _read_csv(source)
    df = spec.prepare(df)
    mapping = {**spec.columns, **(columns or {})}
    renamed = {src: dst for dst, src in mapping.items() if src != dst}
    renamed = {src: dst for src, dst in renamed.items() if src in df.columns}
    df = df.drop(columns=[c for c in renamed.values() if c in df.columns and c not in renamed]).rename(
        columns=renamed
    )
    wanted = list(covariates) if covariates is not None else []
    missing = [c for c in ("time", "event", *wanted) if c not in df.columns]
    if missing:
        raise ConfigError(
            f"outcome table lacks column(s) {missing}; it has {list(df.columns)[:20]}. Map them with "
            f"columns={{'{missing[0]}': 'your_column'}} or choose a preset ({sorted(OUTCOME_PRESETS)})."
        )
    df["time"] = pd.to_numeric(df["time"], errors="coerce") * float(time_scale)
    df["event"] = _parse_event(df["event"])
    return _drop_incomplete(df)


def _read_csv(source: str | Path) -> pd.DataFrame:
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"outcome table {path} not found; pass a CSV path or a pandas DataFrame.")
    return pd.read_csv(path)


def _drop_incomplete(df: pd.DataFrame) -> pd.DataFrame:
    no_follow_up = df["time"].isna() | df["event"].isna()
    negative = df["time"] < 0
    keep = ~(no_follow_up | negative)
    n_missing, n_negative = int(no_follow_up.sum()), int((negative & ~no_follow_up).sum())
    if n_missing or n_negative:
        warnings.warn(
            f"read_outcomes: dropped {n_missing} row(s) without follow-up time/event and {n_negative} with a "
            f"negative time; {int(keep.sum())} row(s) remain.",
            UserWarning,
            stacklevel=3,
        )
    out = df.loc[keep].copy()
    out["event"] = out["event"].astype(int)
    out.attrs["read_outcomes"] = {
        "n_rows": len(df),
        "n_kept": int(keep.sum()),
        "n_missing_follow_up": n_missing,
        "n_negative_time": n_negative,
    }
    return out


def ecg_age_gap(pred_age: Any, true_age: Any) -> Any:
    """ECG-age gap: predicted (ECG) age minus chronological age, in years.

    Parameters
    ----------
    pred_age, true_age : array-like of float, shape (n,)
        Years. A Series input returns a Series with its index.

    Returns
    -------
    np.ndarray or pd.Series, shape (n,)
        Positive = the ECG looks older than the patient.
    """
    if isinstance(pred_age, pd.Series):
        return (pred_age.astype(np.float64) - np.asarray(true_age, dtype=np.float64)).rename("ecg_age_gap")
    return np.asarray(pred_age, dtype=np.float64) - np.asarray(true_age, dtype=np.float64)


def gap_levels(threshold: float = 8.0) -> tuple[str, str, str]:
    """Level names of :func:`gap_category`, reference first: ``normal``, ``ECG-age > +8``, ``< -8``."""
    return ("normal", f"ECG-age > +{threshold:g}", f"ECG-age < -{threshold:g}")


def gap_category(gap: Any, threshold: float = 8.0) -> pd.Series:
    """Categorise the ECG-age gap as in Lima et al. (2021).

    Parameters
    ----------
    gap : array-like of float, shape (n,)
        ECG-age gap in years (:func:`ecg_age_gap`).
    threshold : float
        Years; ``gap > threshold`` -> ``"ECG-age > +8"``, ``gap < -threshold`` -> ``"ECG-age < -8"``,
        otherwise (edges included) ``"normal"``; NaN stays missing.

    Returns
    -------
    pd.Series of category dtype, shape (n,)
        Categories ordered as :func:`gap_levels` (``"normal"`` first, the usual reference level).
    """
    if threshold < 0:
        raise ConfigError(f"threshold must be >= 0 years, got {threshold}.")
    index = gap.index if isinstance(gap, pd.Series) else None
    values = np.asarray(gap, dtype=np.float64).reshape(-1)
    normal, older, younger = gap_levels(threshold)
    labels = np.select(
        [values > threshold, values < -threshold, ~np.isnan(values)], [older, younger, normal], default=None
    )
    cat = pd.Categorical(labels, categories=[normal, older, younger])
    return pd.Series(cat, index=index, name="ecg_age_gap_category")
