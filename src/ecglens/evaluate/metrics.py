"""Evaluation metrics for regression (age, lab values) and classification (sex, diagnoses).

Every metric is a plain function ``metric(y_true, y_pred) -> float`` computed with scikit-learn (or
numpy where scikit-learn has no such metric, e.g. the mean error "bias"). Conventions:

* **NaN pairs are dropped**: a record whose truth or prediction is NaN does not count (``n`` says how many did).
* **Degenerate inputs give NaN, never an exception**: no pairs, one class only (AUROC, AUPRC, sensitivity,
  specificity), constant truth (R^2, Pearson r). :func:`binary_metrics` / :func:`regression_metrics` return a
  ``note`` saying why a value is NaN.
* Binary truths are ``0``/``1`` (1 = the positive class, e.g. female for sex, present for a diagnosis); scores
  are probabilities of the positive class. Thresholded metrics predict positive when ``score >= threshold``.
* Thresholds are chosen on validation data with :func:`select_threshold` (Youden's J, a target sensitivity or
  specificity) and then applied unchanged to the test data.

Most metrics also carry a ``.batched(w, y_true, y_pred) -> [n_boot]`` attribute: the same metric computed for
many bootstrap resamples at once, each given as integer counts ``w`` [n_boot, n] (how often each pair was
drawn). :mod:`ecglens.evaluate.bootstrap` uses it to make 1000 resamples take milliseconds; the tests check it
against the scikit-learn value on the explicitly resampled arrays.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from ..artifact.outputs import Output, OutputSpec
from ..exceptions import EcglensError

__all__ = [
    "BINARY_METRICS",
    "REGRESSION_METRICS",
    "THRESHOLD_METHODS",
    "THRESHOLD_METRICS",
    "accuracy",
    "age_decade",
    "at_threshold",
    "auprc",
    "auroc",
    "bias",
    "binary_metrics",
    "binary_note",
    "brier",
    "by_decade",
    "calibration",
    "mae",
    "micro_auroc",
    "multilabel_auroc",
    "pearson_r",
    "r2",
    "regression_metrics",
    "rmse",
    "select_threshold",
    "sensitivity",
    "specificity",
    "task_metrics",
    "threshold_for_sensitivity",
    "threshold_for_specificity",
    "threshold_youden",
]

MetricFn = Callable[..., float]


# ------------------------------------------------------------------------------------------------------ helpers
def _pairs(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """1-D float arrays with the pairs where either value is NaN/inf removed."""
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise EcglensError(
            f"y_true has {t.size} values but y_pred has {p.size}; pass one prediction per record, same order."
        )
    keep = np.isfinite(t) & np.isfinite(p)
    return t[keep], p[keep]


def _binary_pairs(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`_pairs`, and check the truths are 0/1."""
    t, s = _pairs(y_true, y_score)
    bad = np.setdiff1d(np.unique(t), [0.0, 1.0])
    if bad.size:
        raise EcglensError(
            f"binary truths must be 0/1, found {bad[:5].tolist()}; recode the label column "
            "(e.g. sex: 1 = female, 0 = male) before evaluating."
        )
    return t.astype(np.int64), s


def _both_classes(t: np.ndarray) -> bool:
    return t.size > 0 and 0 < int(t.sum()) < t.size


def _batched(impl: Callable[..., np.ndarray]) -> Callable[[MetricFn], MetricFn]:
    """Attach a vectorised bootstrap implementation ``impl(w [B, n], y_true, y_pred) -> [B]`` to a metric."""

    def deco(fn: MetricFn) -> MetricFn:
        fn.batched = impl  # type: ignore[attr-defined]
        return fn

    return deco


def _wmean(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Weighted means of ``x`` [n] for each row of weights ``w`` [B, n] (NaN for an all-zero row)."""
    tot = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ x) / tot


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


# --------------------------------------------------------------------------------------------------- regression
def _mae_b(w: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    return _wmean(w, np.abs(p - t))


def _rmse_b(w: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.sqrt(_wmean(w, (p - t) ** 2))


def _bias_b(w: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    return _wmean(w, p - t)


def _wvar(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    x = x - x.mean() if x.size else x  # centre first: fewer rounding errors
    return np.maximum(_wmean(w, x**2) - _wmean(w, x) ** 2, 0.0)


def _r2_b(w: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    var_t = _wvar(w, t)
    return np.where(var_t > 1e-12 * max(1.0, float(np.var(t))), 1.0 - _safe_div(_wmean(w, (p - t) ** 2), var_t),
                    np.nan)


def _pearson_b(w: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    tc, pc = t - (t.mean() if t.size else 0.0), p - (p.mean() if p.size else 0.0)
    cov = _wmean(w, tc * pc) - _wmean(w, tc) * _wmean(w, pc)
    den = np.sqrt(_wvar(w, t) * _wvar(w, p))
    return np.clip(_safe_div(cov, np.where(den > 1e-12, den, 0.0)), -1.0, 1.0)


@_batched(_mae_b)
def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error (units of the target, e.g. years); NaN when no finite pairs."""
    t, p = _pairs(y_true, y_pred)
    return float(mean_absolute_error(t, p)) if t.size else float("nan")


@_batched(_rmse_b)
def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error (units of the target); NaN when no finite pairs."""
    t, p = _pairs(y_true, y_pred)
    return float(np.sqrt(mean_squared_error(t, p))) if t.size else float("nan")


@_batched(_bias_b)
def bias(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean error ``mean(y_pred - y_true)``: positive when the model over-estimates; NaN when no pairs."""
    t, p = _pairs(y_true, y_pred)
    return float(np.mean(p - t)) if t.size else float("nan")


@_batched(_pearson_b)
def pearson_r(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Pearson correlation (``numpy.corrcoef``); NaN with fewer than 2 pairs or a constant input."""
    t, p = _pairs(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(np.clip(np.corrcoef(t, p)[0, 1], -1.0, 1.0))


@_batched(_r2_b)
def r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination R^2 (scikit-learn); NaN with fewer than 2 pairs or a constant truth."""
    t, p = _pairs(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0:
        return float("nan")
    return float(r2_score(t, p))


#: regression metrics by name (all ``fn(y_true, y_pred) -> float``)
REGRESSION_METRICS: dict[str, MetricFn] = {"mae": mae, "rmse": rmse, "bias": bias, "pearson_r": pearson_r,
                                           "r2": r2}


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, Any]:
    """All :data:`REGRESSION_METRICS` plus ``n`` (finite pairs) and a ``note`` when some are undefined."""
    t, p = _pairs(y_true, y_pred)
    out: dict[str, Any] = {"n": int(t.size)}
    out.update({name: fn(t, p) for name, fn in REGRESSION_METRICS.items()})
    if t.size < 2 or np.ptp(t) == 0:
        out["note"] = f"{t.size} finite pairs with {np.unique(t).size} distinct truths: r and R^2 undefined"
    return out


def age_decade(age: ArrayLike, top: int = 90) -> np.ndarray:
    """Decade labels ``"0-9"``, ..., ``"80-89"``, ``"90+"`` of ages in years (``None`` for NaN)."""
    a = np.asarray(age, dtype=np.float64).ravel()
    out = np.full(a.shape, None, dtype=object)
    ok = np.isfinite(a) & (a >= 0)
    lo = (np.floor(a[ok] / 10) * 10).astype(int)
    out[ok] = [f"{top}+" if v >= top else f"{v}-{v + 9}" for v in lo]
    return out


def by_decade(y_true: ArrayLike, y_pred: ArrayLike, top: int = 90) -> pd.DataFrame:
    """Bias and MAE per decade of the true value (age in years).

    Parameters
    ----------
    y_true, y_pred : array-like, shape (n,)
        True and predicted age in years.
    top : int
        Ages ``>= top`` form one last group ``"{top}+"`` (PTB-XL codes every age over 89 as 90).

    Returns
    -------
    pandas.DataFrame
        One row per decade present, in age order: ``decade, n, mean_true, mean_pred, bias, mae``.
    """
    t, p = _pairs(y_true, y_pred)
    frame = pd.DataFrame({"decade": age_decade(t, top), "t": t, "p": p})
    frame["lo"] = np.minimum(np.floor(t / 10) * 10, top)
    rows = []
    for (_, dec), g in frame.groupby(["lo", "decade"], sort=True):
        rows.append({"decade": dec, "n": len(g), "mean_true": g.t.mean(), "mean_pred": g.p.mean(),
                     "bias": bias(g.t, g.p), "mae": mae(g.t, g.p)})
    return pd.DataFrame(rows, columns=["decade", "n", "mean_true", "mean_pred", "bias", "mae"])


# ------------------------------------------------------------------------------------------ binary (batched)
def _tie_groups(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order sorting ``s`` ascending and the start index of each run of equal scores in that order."""
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]]) if ss.size else np.zeros(0, dtype=np.int64)
    return order, starts


def _class_weights_by_score(w: np.ndarray, t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative weight per distinct score (ascending), each [B, n_distinct]."""
    order, starts = _tie_groups(s)
    wo = w[:, order]
    pos = wo * (t[order] == 1)
    neg = wo - pos
    if starts.size == s.size:  # no tied scores: one group per record
        return pos, neg
    ends = np.r_[starts[1:], s.size] - 1  # sums over runs of ties via cumulative sums (faster than reduceat)
    pos = np.diff(np.cumsum(pos, axis=1)[:, ends], axis=1, prepend=0.0)
    neg = np.diff(np.cumsum(neg, axis=1)[:, ends], axis=1, prepend=0.0)
    return pos, neg


def _auroc_b(w: np.ndarray, t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC with ties counted 1/2, for each row of weights (== sklearn with sample_weight)."""
    if t.size == 0:
        return np.full(w.shape[0], np.nan)
    pos, neg = _class_weights_by_score(w, t, s)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    return _safe_div(num, pos.sum(axis=1) * neg.sum(axis=1))


def _auprc_b(w: np.ndarray, t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Average precision (sklearn's step-wise definition), for each row of weights."""
    if t.size == 0:
        return np.full(w.shape[0], np.nan)
    pos, neg = _class_weights_by_score(w, t, s)
    pos, neg = pos[:, ::-1], neg[:, ::-1]  # thresholds from the highest score down
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    precision = _safe_div(tp, tp + fp)
    total_pos = pos.sum(axis=1)
    num = np.nansum(pos * precision, axis=1)
    return np.where(neg.sum(axis=1) > 0, _safe_div(num, total_pos), np.nan)


def _brier_b(w: np.ndarray, t: np.ndarray, s: np.ndarray) -> np.ndarray:
    return _wmean(w, (s - t) ** 2)


def _accuracy_b(w: np.ndarray, t: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    return _wmean(w, ((s >= threshold) == (t == 1)).astype(np.float64))


def _sensitivity_b(w: np.ndarray, t: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    hit = ((s >= threshold) & (t == 1)).astype(np.float64)
    return _safe_div(w @ hit, w @ (t == 1).astype(np.float64))


def _specificity_b(w: np.ndarray, t: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    hit = ((s < threshold) & (t == 0)).astype(np.float64)
    return _safe_div(w @ hit, w @ (t == 0).astype(np.float64))


# ----------------------------------------------------------------------------------------------------- binary
@_batched(_auroc_b)
def auroc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (scikit-learn); NaN unless both classes are present."""
    t, s = _binary_pairs(y_true, y_score)
    return float(roc_auc_score(t, s)) if _both_classes(t) else float("nan")


@_batched(_auprc_b)
def auprc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (scikit-learn); NaN unless both classes."""
    t, s = _binary_pairs(y_true, y_score)
    return float(average_precision_score(t, s)) if _both_classes(t) else float("nan")


@_batched(_brier_b)
def brier(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Brier score, mean squared error of the probabilities (scikit-learn); NaN when no pairs."""
    t, s = _binary_pairs(y_true, y_prob)
    return float(brier_score_loss(t, s, labels=[0, 1])) if t.size else float("nan")


@_batched(_accuracy_b)
def accuracy(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """Accuracy of ``y_score >= threshold`` (scikit-learn); NaN when no pairs."""
    t, s = _binary_pairs(y_true, y_score)
    return float(accuracy_score(t, (s >= threshold).astype(np.int64))) if t.size else float("nan")


@_batched(_sensitivity_b)
def sensitivity(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """Sensitivity (recall of class 1) of ``y_score >= threshold``; NaN when there are no positives."""
    t, s = _binary_pairs(y_true, y_score)
    if not (t == 1).any():
        return float("nan")
    return float(recall_score(t, (s >= threshold).astype(np.int64), pos_label=1))


@_batched(_specificity_b)
def specificity(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """Specificity (recall of class 0) of ``y_score >= threshold``; NaN when there are no negatives."""
    t, s = _binary_pairs(y_true, y_score)
    if not (t == 0).any():
        return float("nan")
    return float(recall_score(t, (s >= threshold).astype(np.int64), pos_label=0))


#: threshold-free binary metrics by name (``fn(y_true, y_score) -> float``)
BINARY_METRICS: dict[str, MetricFn] = {"auroc": auroc, "auprc": auprc, "brier": brier}
#: binary metrics at a decision threshold (``fn(y_true, y_score, threshold) -> float``)
THRESHOLD_METRICS: dict[str, MetricFn] = {"accuracy": accuracy, "sensitivity": sensitivity,
                                          "specificity": specificity}


def at_threshold(fn: MetricFn, threshold: float) -> MetricFn:
    """Bind the decision threshold of a :data:`THRESHOLD_METRICS` function, keeping its ``.batched``."""
    bound = functools.partial(fn, threshold=float(threshold))
    impl = getattr(fn, "batched", None)
    if impl is not None:
        bound.batched = functools.partial(impl, threshold=float(threshold))  # type: ignore[attr-defined]
    return bound  # type: ignore[return-value]


def binary_note(y_true: ArrayLike) -> str | None:
    """Why threshold-free binary metrics are undefined for these truths (``None`` when they are defined)."""
    t = np.asarray(y_true, dtype=np.float64).ravel()
    t = t[np.isfinite(t)]
    if t.size == 0:
        return "no records with a known label: metrics undefined"
    n_pos = int((t == 1).sum())
    if n_pos in (0, t.size):
        return f"only one class present ({n_pos} positive of {t.size}): AUROC/AUPRC and sensitivity or " \
               "specificity undefined"
    return None


def binary_metrics(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> dict[str, Any]:
    """All binary metrics at ``threshold`` plus ``n``, ``n_pos`` and a ``note`` when some are undefined."""
    t, s = _binary_pairs(y_true, y_score)
    out: dict[str, Any] = {"n": int(t.size), "n_pos": int(t.sum()), "threshold": float(threshold)}
    out.update({name: fn(t, s) for name, fn in BINARY_METRICS.items()})
    out.update({name: fn(t, s, threshold=threshold) for name, fn in THRESHOLD_METRICS.items()})
    note = binary_note(t)
    if note:
        out["note"] = note
    return out


# ------------------------------------------------------------------------------------------------- thresholds
def _roc(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, s = _binary_pairs(y_true, y_score)
    if not _both_classes(t):
        raise EcglensError(
            f"cannot choose a threshold: {binary_note(t)}. Choose it on validation data with both classes."
        )
    fpr, tpr, thr = roc_curve(t, s, drop_intermediate=False)
    return fpr[1:], tpr[1:], thr[1:]  # drop sklearn's leading +inf threshold (predicts nothing positive)


def _check_target(target: float) -> None:
    if not 0 < float(target) <= 1:
        raise EcglensError(f"target must be a proportion in (0, 1], e.g. 0.9 for 90 %, got {target!r}.")


def threshold_youden(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1 (ties: the highest threshold)."""
    fpr, tpr, thr = _roc(y_true, y_score)
    return float(thr[int(np.argmax(tpr - fpr))])


def threshold_for_sensitivity(y_true: ArrayLike, y_score: ArrayLike, target: float = 0.9) -> float:
    """Highest threshold whose sensitivity is at least ``target`` (best specificity at that sensitivity)."""
    _check_target(target)
    _, tpr, thr = _roc(y_true, y_score)
    return float(thr[int(np.flatnonzero(tpr >= target)[0])])


def threshold_for_specificity(y_true: ArrayLike, y_score: ArrayLike, target: float = 0.9) -> float:
    """Lowest threshold whose specificity is at least ``target`` (best sensitivity at that specificity)."""
    _check_target(target)
    fpr, _, thr = _roc(y_true, y_score)
    ok = np.flatnonzero(1.0 - fpr >= target)
    return float(thr[int(ok[-1])]) if ok.size else float(np.nextafter(thr[0], np.inf))


#: threshold selection rules by name: ``fn(y_true, y_score, **kw) -> threshold``
THRESHOLD_METHODS: dict[str, Callable[..., float]] = {
    "youden": threshold_youden,
    "sensitivity": threshold_for_sensitivity,
    "specificity": threshold_for_specificity,
}


def select_threshold(y_true: ArrayLike, y_score: ArrayLike, method: str = "youden", **kwargs: Any) -> float:
    """Choose a decision threshold on validation data with one of :data:`THRESHOLD_METHODS`.

    Parameters
    ----------
    y_true, y_score : array-like, shape (n,)
        Validation truths (0/1) and scores. Apply the returned threshold unchanged to the test data.
    method : {"youden", "sensitivity", "specificity"}
        Rule; ``"sensitivity"`` / ``"specificity"`` take ``target=`` (default 0.9).

    Returns
    -------
    float
        The threshold (predict positive when ``score >= threshold``).
    """
    if method not in THRESHOLD_METHODS:
        raise EcglensError(f"unknown threshold method {method!r}; choose one of {sorted(THRESHOLD_METHODS)}.")
    return THRESHOLD_METHODS[method](y_true, y_score, **kwargs)


# ------------------------------------------------------------------------------------------------ calibration
def calibration(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10, strategy: str = "uniform") -> dict[str, Any]:
    """Reliability curve (``sklearn.calibration.calibration_curve``) with bin counts and the ECE.

    Parameters
    ----------
    y_true, y_prob : array-like, shape (n,)
        Truths (0/1) and predicted probabilities in [0, 1].
    n_bins : int
        Number of bins.
    strategy : {"uniform", "quantile"}
        Equal-width bins or bins with equal counts.

    Returns
    -------
    dict
        ``prob_pred`` (mean predicted probability per non-empty bin), ``prob_true`` (observed fraction of
        positives), ``count`` (records per bin), ``ece`` (count-weighted mean |prob_true - prob_pred|), ``n``;
        empty lists and NaN ECE when fewer than 2 records or only one class.
    """
    from sklearn.calibration import calibration_curve  # heavy import: only when needed

    t, p = _binary_pairs(y_true, y_prob)
    if t.size < 2 or not _both_classes(t):
        return {"prob_pred": [], "prob_true": [], "count": [], "ece": float("nan"), "n": int(t.size),
                "note": binary_note(t) or "fewer than 2 records"}
    p = np.clip(p, 0.0, 1.0)
    prob_true, prob_pred = calibration_curve(t, p, n_bins=n_bins, strategy=strategy)
    edges = (np.percentile(p, np.linspace(0, 100, n_bins + 1)) if strategy == "quantile"
             else np.linspace(0.0, 1.0, n_bins + 1))
    counts = np.bincount(np.searchsorted(edges[1:-1], p, side="right"), minlength=n_bins)
    counts = counts[counts > 0]
    if counts.size != prob_true.size:  # quantile edges can merge; fall back to equal shares
        counts = np.full(prob_true.size, t.size / max(prob_true.size, 1))
    ece = float(np.sum(counts * np.abs(prob_true - prob_pred)) / counts.sum())
    return {"prob_pred": prob_pred.tolist(), "prob_true": prob_true.tolist(), "count": counts.tolist(),
            "ece": ece, "n": int(t.size)}


# ------------------------------------------------------------------------------------------------- multilabel
def _multilabel_b(w: np.ndarray, t: np.ndarray, s: np.ndarray, average: str = "macro") -> np.ndarray:
    t, s = np.atleast_2d(t), np.atleast_2d(s)
    valid = np.isfinite(t) & np.isfinite(s)
    tt, ss = np.where(valid, t, 0.0), np.where(valid, s, 0.0)
    if average == "micro":
        wf = (w[:, :, None] * valid[None]).reshape(w.shape[0], -1)
        return _auroc_b(wf, tt.ravel(), ss.ravel())
    cols = [_auroc_b(w * valid[:, j], tt[:, j], ss[:, j]) for j in range(t.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(cols, axis=1), axis=1) if cols else np.full(w.shape[0], np.nan)


def _multilabel_auroc(y_true: ArrayLike, y_score: ArrayLike, average: str = "macro") -> float:
    """Macro (mean of per-label AUROCs, labels with one class skipped) or micro (pooled pairs) AUROC."""
    t = np.atleast_2d(np.asarray(y_true, dtype=np.float64))
    s = np.atleast_2d(np.asarray(y_score, dtype=np.float64))
    if t.shape != s.shape:
        raise EcglensError(f"y_true {t.shape} and y_score {s.shape} must have the same [n, n_labels] shape.")
    if average == "micro":
        return auroc(t.ravel(), s.ravel())
    if average != "macro":
        raise EcglensError(f"average must be 'macro' or 'micro', got {average!r}.")
    per_label = [auroc(t[:, j], s[:, j]) for j in range(t.shape[1])]
    finite = [v for v in per_label if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


@_batched(functools.partial(_multilabel_b, average="macro"))
def multilabel_auroc(y_true: ArrayLike, y_score: ArrayLike, average: str = "macro") -> float:
    """AUROC over several labels, ``y_true``/``y_score`` shaped [n, n_labels] (NaN entries are dropped).

    ``average="macro"`` is the mean of the per-label AUROCs (labels where only one class is present are skipped);
    ``"micro"`` pools every (record, label) pair. The attached ``.batched`` computes the macro average; use
    :func:`micro_auroc` to bootstrap the micro average.
    """
    return _multilabel_auroc(y_true, y_score, average=average)


@_batched(functools.partial(_multilabel_b, average="micro"))
def micro_auroc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Micro-averaged multilabel AUROC (every record-label pair pooled); see :func:`multilabel_auroc`."""
    return _multilabel_auroc(y_true, y_score, average="micro")



# ------------------------------------------------------------------------------------------------ task-level
def _regression_task_metrics(target: Output, outputs: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """``<name>_mae``, ``_rmse``, ``_r`` (Pearson), ``_r2``; all NaN with fewer than 2 labelled records."""
    truth, pred = y[:, 0], np.asarray(outputs[target.out_name], dtype=np.float64)
    p = f"{target.out_name}_"
    if (~np.isnan(truth)).sum() < 2:
        return {f"{p}{m}": float("nan") for m in ("mae", "rmse", "r", "r2")}
    return {f"{p}mae": mae(truth, pred), f"{p}rmse": rmse(truth, pred), f"{p}r": pearson_r(truth, pred),
            f"{p}r2": r2(truth, pred)}


def _binary_task_metrics(target: Output, outputs: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """``<column>_auroc`` and ``<column>_accuracy`` (threshold 0.5)."""
    prob = np.asarray(outputs[target.out_name], dtype=np.float64)
    return {f"{target.column}_auroc": auroc(y[:, 0], prob), f"{target.column}_accuracy": accuracy(y[:, 0], prob)}


def _multilabel_task_metrics(target: Output, outputs: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """``<column>_auroc`` per label and ``<name>_macro_auroc`` (mean of the defined ones)."""
    per = {f"{c}_auroc": auroc(y[:, i], np.asarray(outputs[o], dtype=np.float64))
           for i, (c, o) in enumerate(zip(target.columns, target.output_names, strict=True))}
    valid = [v for v in per.values() if np.isfinite(v)]
    return {**per, f"{target.name}_macro_auroc": float(np.mean(valid)) if valid else float("nan")}


#: target kind -> its task-level metrics ``fn(target, outputs, y [N, target.num_labels]) -> {name: value}``
_TASK_METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "regression": _regression_task_metrics,
    "binary": _binary_task_metrics,
    "multilabel": _multilabel_task_metrics,
}


def task_metrics(task: OutputSpec, outputs: Mapping[str, np.ndarray], y: ArrayLike) -> dict[str, float]:
    """Metrics of a task's postprocessed outputs against its labels, as logged during training.

    Parameters
    ----------
    task : OutputSpec
        The task (:class:`~ecglens.data.targets.TaskSpec` or a loaded checkpoint's ``task``).
    outputs : mapping of str to np.ndarray, each shape (N,)
        ``task.postprocess`` output (natural units: years, probabilities).
    y : np.ndarray, shape (N, task.num_labels) or (N,)
        Labels in natural units; NaN labels are ignored.

    Returns
    -------
    dict of str to float
        Regression: ``<name>_mae``, ``_rmse``, ``_r`` (Pearson), ``_r2``; binary: ``<column>_auroc``,
        ``_accuracy`` (threshold 0.5); multilabel: ``<column>_auroc`` and ``<name>_macro_auroc``. NaN where a
        metric is undefined (too few labels, one class only).
    """
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    out: dict[str, float] = {}
    for target, _, labels in task.target_slices():
        if target.kind not in _TASK_METRICS:
            raise EcglensError(f"no task metrics for target kind {target.kind!r}; known: {sorted(_TASK_METRICS)}.")
        out.update(_TASK_METRICS[target.kind](target, outputs, y[:, labels]))
    return out
