"""Knowledge distillation from a teacher's predictions: soft labels blended into the training labels.

A teacher (e.g. the shipped ``age-sex`` ensemble) is run once over the training records with
``ecglens evaluate TEACHER CACHE --folds 1-8 --allow-train-folds --out DIR``; its ``DIR/predictions.csv``
(``record_id`` plus one column per output: ``age``, ``p_female``, ...) is the teacher table. For every training
row, each label becomes ``(1 - w) * label + w * teacher`` (``w`` = ``teacher_weight``), in natural units for a
regression target (years) and as a probability for a binary or multilabel target (binary cross-entropy on a
soft label is the usual distillation loss at temperature 1). Validation labels stay the true labels, so the
epoch is still selected on the truth.

Blending the targets of a squared-error or Gaussian likelihood loss equals the weighted sum of the two losses
up to a constant in the mean; it leaves the uncertainty head slightly narrower than the mixture would, which
the calibration step (``ecglens calibrate``) corrects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import ConfigError
from .targets import TaskSpec

__all__ = ["blend_labels", "read_teacher", "teacher_labels"]


def read_teacher(path: str | Path) -> pd.DataFrame:
    """Read a teacher table (``predictions.csv`` of ``ecglens evaluate``) indexed by ``record_id`` (str).

    Raises
    ------
    ConfigError
        The file is missing or has no ``record_id`` column.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"teacher table {p} not found; make it with `ecglens evaluate TEACHER CACHE --folds 1-8 "
            f"--allow-train-folds --out DIR` and give DIR/predictions.csv as data.teacher."
        )
    table = pd.read_csv(p, dtype={"record_id": str})
    if "record_id" not in table.columns:
        raise ConfigError(f"teacher table {p} has no record_id column (columns: {list(table.columns)}).")
    return table.drop_duplicates("record_id").set_index("record_id")


def teacher_labels(task: TaskSpec, meta: pd.DataFrame, teacher: pd.DataFrame) -> np.ndarray:
    """The teacher's predictions as labels ``[N, num_labels]`` (natural units / probabilities), NaN if absent.

    Each target takes the teacher column of its first output name (``age`` for age, ``p_female`` for sex,
    ``p_MI`` ... for a multilabel target's columns).

    Parameters
    ----------
    task : TaskSpec
        The task trained.
    meta : pd.DataFrame
        The cache's meta table (``record_id`` column), one row per cached signal.
    teacher : pd.DataFrame
        :func:`read_teacher` table.

    Raises
    ------
    ConfigError
        The teacher table lacks a column the task needs.
    """
    ids = meta["record_id"].astype(str)
    columns: list[np.ndarray] = []
    for target in task.targets:
        names = list(target.output_names)[: len(target.label_columns)] if target.kind != "regression" \
            else [target.output_names[0]]
        for name in names:
            if name not in teacher.columns:
                raise ConfigError(
                    f"the teacher table has no column {name!r} for target {target.key!r} "
                    f"(columns: {list(teacher.columns)}); was it made with a model of the same task?"
                )
            columns.append(teacher[name].reindex(ids).to_numpy(dtype=np.float64))
    return np.stack(columns, axis=1)


def blend_labels(labels: np.ndarray, soft: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * labels + weight * soft`` where both are known; the true label where the teacher is NaN.

    Parameters
    ----------
    labels, soft : np.ndarray, shape (N, num_labels)
        True labels and teacher labels (natural units; NaN = missing).
    weight : float
        Teacher weight in [0, 1].

    Returns
    -------
    np.ndarray, float32, shape (N, num_labels); NaN exactly where ``labels`` is NaN.
    """
    if not 0.0 <= float(weight) <= 1.0:
        raise ConfigError(f"teacher_weight must be in [0, 1], got {weight!r}.")
    labels = np.asarray(labels, dtype=np.float64)
    soft = np.asarray(soft, dtype=np.float64)
    if labels.shape != soft.shape:
        raise ConfigError(f"teacher labels have shape {soft.shape}, the task's labels {labels.shape}.")
    blended = np.where(np.isnan(soft), labels, (1.0 - weight) * labels + weight * soft)
    return blended.astype(np.float32)
