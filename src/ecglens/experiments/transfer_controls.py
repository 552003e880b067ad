"""Demographic controls of the transfer experiment (issue #23, item 4): how much of a gain is age and sex?

Two arms of the grid (``grid.controls``), scored on the same test ECGs as every other arm:

``demographics_logreg``
    A logistic regression on age and sex only (age in years, 300 = "over 89" read as 90, and sex 1 = female,
    both standardised on the training ECGs), fitted on the run's inner training ECGs; its L2 strength ``C`` is
    chosen on the run's inner validation split by the selection metric (scikit-learn).
``scratch_demographics``
    The from-scratch network of the same model, target size and seed (the ``scratch`` run of the grid, whose
    chosen model is kept), with age and sex given to its head: the pooled features of the network
    (``forward_features``, whole ECG) concatenated with standardised age and sex, and a logistic-regression head
    refitted on that vector on the inner training ECGs (``C`` chosen on the inner validation split). The network
    is the one chosen for ``scratch``; only the head sees age and sex, so its gain over ``scratch`` is what the
    demographics add to the same features.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import load_checkpoint
from ..data.views import CacheView
from ..exceptions import ConfigError
from ..train.probe import window_features
from .transfer_fair import INNER_TRAIN, INNER_VAL, METRICS

__all__ = ["CONTROLS", "C_GRID", "demographics", "demographics_logreg", "fit_control", "scratch_demographics"]

#: L2 strengths (scikit-learn's inverse ``C``) tried on the inner validation split
C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
#: PTB-XL v1.0.3 codes ages over 89 as 300
_AGE_CAP = 90.0


def demographics(meta: Any, rows: np.ndarray) -> np.ndarray:
    """Age (years, capped at 90: PTB-XL's 300 = "over 89") and sex (1 = female) of ``rows``, shape (N, 2)."""
    missing = {"age", "sex"} - set(meta.columns)
    if missing:
        raise ConfigError(f"The demographic controls need the cache columns {sorted(missing)}; prepare the cache "
                          "from a catalogue with age and sex, or drop grid.controls.")
    age = np.minimum(meta["age"].to_numpy(dtype=np.float64)[rows], _AGE_CAP)
    return np.stack([age, meta["sex"].to_numpy(dtype=np.float64)[rows]], axis=1)


def _fit_select(x: np.ndarray, y: np.ndarray, fold: np.ndarray, metric: str) -> tuple[Any, float, float]:
    """A standardised logistic regression per ``C`` of :data:`C_GRID` on the inner training rows, the best by
    ``metric`` on the inner validation rows: ``(model, C, validation value)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, val = fold == INNER_TRAIN, fold == INNER_VAL
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    if np.unique(y[train & ok]).size < 2:
        raise ConfigError("The inner training ECGs of this run hold one class only; a logistic regression needs "
                          "both (use a larger target size).")
    best: tuple[Any, float, float] | None = None
    for c in C_GRID:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        model.fit(x[train & ok], y[train & ok])
        value = float(METRICS[metric](y[val & ok], model.predict_proba(x[val & ok])[:, 1]))
        if best is None or (np.isfinite(value) and not value <= best[2]):
            best = (model, c, value)
    return best


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x).all(axis=1)
    p = np.full(len(x), np.nan)
    p[ok] = model.predict_proba(x[ok])[:, 1]
    return p


def _run(features: Callable[[np.ndarray], np.ndarray], view: CacheView, y: np.ndarray, metric: str,
         test_folds: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    fold = view.meta["fold"].to_numpy(dtype=np.float64)
    rows = np.flatnonzero(np.isin(fold, (INNER_TRAIN, INNER_VAL)))
    test = np.flatnonzero(np.isin(fold, test_folds) & ~np.isnan(y))
    model, c, value = _fit_select(features(rows), y[rows], fold[rows], metric)
    info = {"select_metric": metric, "select_value": value, "n_candidates": len(C_GRID), "lr": None,
            "lr_decay": None, "control_C": c}
    return test, _predict(model, features(test)), info


def demographics_logreg(view: CacheView, y: np.ndarray, metric: str,
                        test_folds: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The age + sex logistic regression of a run.

    Parameters
    ----------
    view : CacheView
        The cache with the run's fold codes (inner training / validation, test folds).
    y : np.ndarray, shape (N,)
        The target label of every cache row.
    metric : {"auroc", "auprc"}
        Selection metric of ``C`` on the inner validation rows.
    test_folds : tuple of int
        The folds scored.

    Returns
    -------
    (np.ndarray, np.ndarray, dict)
        Test rows, their predicted probabilities, and the chosen ``C`` with its validation value.
    """
    return _run(lambda rows: demographics(view.meta, rows), view, y, metric, test_folds)


def scratch_demographics(checkpoint: Path, view: CacheView, y: np.ndarray, metric: str,
                         test_folds: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The scratch network's pooled features + age and sex, with a refitted logistic-regression head.

    Parameters are those of :func:`demographics_logreg`, with ``checkpoint`` the scratch run's kept model.
    """
    ckpt = load_checkpoint(checkpoint)
    data = CacheView(view, ckpt.preprocess.leads) if ckpt.preprocess is not None else view

    def features(rows: np.ndarray) -> np.ndarray:
        pooled = window_features(ckpt.model, data.signals, rows, None).mean(axis=1)
        return np.concatenate([pooled.astype(np.float64), demographics(view.meta, rows)], axis=1)

    return _run(features, view, y, metric, test_folds)


#: control name -> what it fits (a dispatch table; ``needs_scratch``: it reuses the scratch run's model)
CONTROLS: dict[str, dict[str, Any]] = {
    "demographics_logreg": {"fit": demographics_logreg, "needs_scratch": False},
    "scratch_demographics": {"fit": scratch_demographics, "needs_scratch": True},
}


def fit_control(name: str, view: CacheView, y: np.ndarray, metric: str, test_folds: tuple[int, ...],
                scratch_model: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fit the control ``name`` of :data:`CONTROLS` (``scratch_model``: the scratch run's kept model, used by the
    controls that need it); arguments and result as :func:`demographics_logreg`."""
    control = CONTROLS[name]
    if not control["needs_scratch"]:
        return control["fit"](view, y, metric, tuple(test_folds))
    if not Path(scratch_model).is_file():
        raise ConfigError(f"{name} needs the kept model of the scratch run of its cell ({scratch_model}); the "
                          "grid plans scratch before the controls: re-run the grid (it resumes).")
    return control["fit"](scratch_model, view, y, metric, tuple(test_folds))
