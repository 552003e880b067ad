"""Honest evaluation: metrics (scikit-learn underneath), seeded bootstrap CIs, figures and the evaluation runner.

* :mod:`~ecglens.evaluate.metrics` — MAE, RMSE, Pearson r, R^2, bias, per-decade errors; AUROC, AUPRC, Brier,
  accuracy / sensitivity / specificity at a threshold, threshold selection, calibration, multilabel AUROC.
* :mod:`~ecglens.evaluate.bootstrap` — :func:`bootstrap_ci` (percentile, seeded, optionally by patient).
* :mod:`~ecglens.evaluate.figures` — scatter, Bland-Altman, ROC, calibration, bias per decade.
* :mod:`~ecglens.evaluate.runner` — :func:`evaluate_predictions`, :func:`write_report`,
  :func:`evaluate_checkpoint` (``ecglens evaluate``).

Submodules with heavier dependencies (``survival``, ``explain``, ``report``) are imported explicitly.
"""

from __future__ import annotations

from .bootstrap import bootstrap_ci, bootstrap_metrics
from .metrics import (
    accuracy,
    auprc,
    auroc,
    bias,
    binary_metrics,
    brier,
    by_decade,
    calibration,
    mae,
    multilabel_auroc,
    pearson_r,
    r2,
    regression_metrics,
    rmse,
    select_threshold,
    sensitivity,
    specificity,
)
from .runner import evaluate_checkpoint, evaluate_predictions, write_report

__all__ = [
    "accuracy",
    "auprc",
    "auroc",
    "bias",
    "binary_metrics",
    "bootstrap_ci",
    "bootstrap_metrics",
    "brier",
    "by_decade",
    "calibration",
    "evaluate_checkpoint",
    "evaluate_predictions",
    "mae",
    "multilabel_auroc",
    "pearson_r",
    "r2",
    "regression_metrics",
    "rmse",
    "select_threshold",
    "sensitivity",
    "specificity",
    "write_report",
]
