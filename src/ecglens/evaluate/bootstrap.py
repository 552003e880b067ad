"""Bootstrap confidence intervals (seeded, percentile, optionally resampling patients instead of records).

Each resample draws ``n`` records (or, with ``groups``, as many patients as there are, keeping all records of a
drawn patient) with replacement. A resample is represented by integer counts ``w`` [n] (how often each record
was drawn), so metrics with a vectorised ``.batched(w, *arrays)`` implementation (see
:mod:`ecglens.evaluate.metrics`) evaluate hundreds of resamples in one array operation; any other function is
called on the explicitly resampled arrays. Both paths see the same resamples for the same ``seed``.

The interval is the percentile interval ``[q(alpha/2), q(1 - alpha/2)]`` of the resampled metric values.
Resamples where the metric is undefined (NaN, e.g. one class only) are left out and counted in ``n_boot``.

:func:`paired_bootstrap_diff` compares two predictors on the *same* records: each resample evaluates both on the
same drawn records (or patients), so the interval of the difference reflects the pairing; :func:`holm_adjust`
corrects its p-values for the number of comparisons.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..exceptions import EcglensError

__all__ = ["bootstrap_ci", "bootstrap_metrics", "holm_adjust", "paired_bootstrap_diff", "resample_counts"]

#: cap on elements of one chunk of resample counts (n_boot_chunk * n), bounding memory (~8 bytes each)
_CHUNK_ELEMENTS = 2_000_000


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: ArrayLike = None,
) -> dict[str, Any]:
    """Percentile bootstrap confidence interval of one metric.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*arrays) -> float``, e.g. :func:`ecglens.evaluate.metrics.mae`.
    *arrays : array-like, each with first dimension n
        The metric's inputs, row i of each belonging to record i (e.g. ``y_true, y_pred``).
        Rows where a 1-D numeric array is NaN/inf are dropped first.
    n_boot : int
        Number of resamples.
    alpha : float
        1 - confidence level (0.05 gives a 95 % interval).
    seed : int
        Seed of the resampling (same seed, same interval).
    groups : array-like, shape (n,), optional
        Patient (or other cluster) id per record: resample patients, keeping all their records.

    Returns
    -------
    dict
        ``value`` (metric on all records), ``ci_low``, ``ci_high``, ``n`` (records used), ``n_boot`` (resamples
        where the metric was defined), ``n_groups`` when ``groups`` is given, and ``note`` when the value or some
        resamples are undefined.
    """
    return bootstrap_metrics({"metric": metric_fn}, *arrays, n_boot=n_boot, alpha=alpha, seed=seed,
                             groups=groups)["metric"]


def bootstrap_metrics(
    metrics: Mapping[str, Callable[..., float]],
    *arrays: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: ArrayLike = None,
) -> dict[str, dict[str, Any]]:
    """Bootstrap several metrics of the same arrays on the same resamples.

    Parameters are those of :func:`bootstrap_ci`, with ``metrics`` a mapping ``name -> metric_fn``.

    Returns
    -------
    dict of str to dict
        ``name -> {"value", "ci_low", "ci_high", "n", "n_boot", ...}`` as returned by :func:`bootstrap_ci`.
    """
    _check_options(n_boot, alpha)
    arrays, codes = _clean(arrays, groups)
    n = len(arrays[0]) if arrays else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = {name: _as_float(fn(*arrays)) if n else float("nan") for name, fn in metrics.items()}
        boots: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
        if n:
            width = max((a.shape[1] if a.ndim == 2 else 1) for a in arrays)
            for counts in resample_counts(n, n_boot, seed, codes, width=width):
                for name, fn in metrics.items():
                    boots[name].append(_evaluate(fn, counts, arrays))
    out = {}
    for name in metrics:
        vals = np.concatenate(boots[name]) if boots[name] else np.zeros(0)
        out[name] = _summary(values[name], vals, n, n_boot, alpha)
        if codes is not None:
            out[name]["n_groups"] = int(np.unique(codes).size)
    return out


def resample_counts(n: int, n_boot: int, seed: int = 0, codes: np.ndarray | None = None,
                    width: int = 1) -> Iterator[np.ndarray]:
    """Yield bootstrap resamples as counts, in chunks of shape [n_chunk, n] (int64), ``n_boot`` rows in all.

    Parameters
    ----------
    n : int
        Number of records.
    n_boot : int
        Number of resamples.
    seed : int
        Seed of ``numpy.random.default_rng``.
    codes : np.ndarray of int, shape (n,), optional
        Group code (0..n_groups-1) of each record: groups are drawn with replacement and every record of a drawn
        group counts once per draw.
    width : int
        Values per record the metric reads (columns of a 2-D input): smaller chunks for wider inputs.
        Chunking does not change the resamples.
    """
    rng = np.random.default_rng(seed)
    n_units = n if codes is None else int(codes.max()) + 1
    per_chunk = max(1, _CHUNK_ELEMENTS // (max(n, n_units) * max(1, int(width))))
    done = 0
    while done < n_boot:
        b = min(per_chunk, n_boot - done)
        draws = rng.integers(0, n_units, size=(b, n_units))
        offsets = (np.arange(b) * n_units)[:, None]
        unit_counts = np.bincount((draws + offsets).ravel(), minlength=b * n_units).reshape(b, n_units)
        yield unit_counts if codes is None else unit_counts[:, codes]
        done += b


def paired_bootstrap_diff(
    metric_fn: Callable[..., float],
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: ArrayLike = None,
) -> dict[str, Any]:
    """Paired bootstrap of ``metric(y, pred_a) - metric(y, pred_b)`` on the same records.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(y_true, pred) -> float``, e.g. :func:`ecglens.evaluate.metrics.auroc`.
    y_true : array-like, shape (n,)
        Labels of the records both predictors scored.
    pred_a, pred_b : array-like, shape (n,) or (n, k)
        The two predictors' outputs for the same records (e.g. a pretrained arm and scratch, each averaged over
        seeds per record first). With ``k`` columns, column ``j`` of each is one of ``k`` matched pairs of runs
        (e.g. seed ``j`` of each arm, trained on the same data): every metric is computed per column and the
        difference is the mean over columns of ``metric(a_j) - metric(b_j)``, the expected gain of one run,
        bootstrapped on the same resamples for every column. Records where anything is NaN are dropped.
    n_boot, alpha, seed, groups
        As for :func:`bootstrap_ci`; with ``groups`` (patient ids) patients are resampled.

    Returns
    -------
    dict
        ``diff`` (on all records), ``ci_low``, ``ci_high`` (percentile interval of the resampled differences),
        ``p_value`` (two-sided bootstrap p-value of "no difference": ``2 (k + 1) / (B + 1)``, at most 1, with
        ``k`` the resampled differences on the smaller side of 0 and ``B`` the defined resamples), ``value_a``,
        ``value_b``, ``n``, ``n_boot`` (resamples where both metrics were defined) and ``n_groups`` when
        ``groups`` is given.
    """
    _check_options(n_boot, alpha)
    y, a, b = (np.asarray(v, dtype=np.float64) for v in (y_true, pred_a, pred_b))
    a, b = (v[:, None] if v.ndim == 1 else v for v in (a, b))
    if a.ndim != 2 or a.shape != b.shape or len(a) != len(y):
        raise EcglensError(f"paired predictions need shapes (n,) or (n, k), equal for both, with n = {len(y)} "
                           f"labels; got {np.shape(pred_a)} and {np.shape(pred_b)}.")
    finite = np.isfinite(y) & np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    kept_groups = None if groups is None else np.asarray(groups)[finite]
    (y, a, b), codes = _clean((y[finite], a[finite], b[finite]), kept_groups)
    n, k = len(y), a.shape[1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value_a, value_b = (float(np.mean([_as_float(metric_fn(y, v[:, j])) for j in range(k)])) if n
                            else float("nan") for v in (a, b))
        diffs = [np.mean([_evaluate(metric_fn, c, (y, a[:, j])) - _evaluate(metric_fn, c, (y, b[:, j]))
                          for j in range(k)], axis=0)
                 for c in (resample_counts(n, n_boot, seed, codes) if n else ())]
    boots = np.concatenate(diffs) if diffs else np.zeros(0)
    out = _summary(value_a - value_b, boots, n, n_boot, alpha)
    finite = boots[np.isfinite(boots)]
    tail = min(np.sum(finite <= 0.0), np.sum(finite >= 0.0))
    p = 2.0 * (tail + 1) / (finite.size + 1) if finite.size else float("nan")
    out = {"diff": out.pop("value"), **out, "p_value": float(min(1.0, p)), "value_a": value_a,
           "value_b": value_b}
    if codes is not None:
        out["n_groups"] = int(np.unique(codes).size)
    return out


def holm_adjust(p_values: Any) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control over the comparisons given).

    Parameters
    ----------
    p_values : array-like, shape (m,)
        Unadjusted p-values of the m comparisons of one family; NaN entries are left NaN and not counted.

    Returns
    -------
    np.ndarray, shape (m,)
        ``min(1, max_{j <= i} (m - j + 1) p_(j))`` in the input order: reject where it is below alpha.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(1.0, adjusted)
    return out


# ---------------------------------------------------------------------------------------------------- internals
def _check_options(n_boot: int, alpha: float) -> None:
    if int(n_boot) < 1:
        raise EcglensError(f"n_boot must be a positive number of resamples (e.g. 1000), got {n_boot}.")
    if not 0 < alpha < 1:
        raise EcglensError(f"alpha must be in (0, 1) (0.05 gives a 95 % interval), got {alpha}.")


def _clean(arrays: tuple[Any, ...], groups: ArrayLike) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
    """Arrays as numpy, rows with NaN in a 1-D numeric array dropped; groups as integer codes."""
    arrs = tuple(np.asarray(a) for a in arrays)
    lengths = {len(a) for a in arrs}
    if groups is not None:
        groups = np.asarray(groups)
        lengths.add(len(groups))
    if len(lengths) > 1:
        raise EcglensError(f"bootstrap arrays have different lengths {sorted(lengths)}; give one row per record.")
    if not arrs:
        raise EcglensError("bootstrap needs at least one array of metric inputs.")
    keep = np.ones(len(arrs[0]), dtype=bool)
    for a in arrs:
        if a.ndim == 1 and np.issubdtype(a.dtype, np.number):
            keep &= np.isfinite(a.astype(np.float64))
    arrs = tuple(a[keep] for a in arrs)
    if groups is None:
        return arrs, None
    codes, _ = pd.factorize(pd.Series(groups[keep]), use_na_sentinel=True)
    missing = codes < 0  # unknown patient: each record is its own group
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return arrs, codes.astype(np.int64)


def _evaluate(fn: Callable[..., float], counts: np.ndarray, arrays: tuple[np.ndarray, ...]) -> np.ndarray:
    """Metric values [n_chunk] for a chunk of resample counts, vectorised when ``fn.batched`` exists."""
    batched = getattr(fn, "batched", None)
    if batched is not None:
        return np.asarray(batched(counts.astype(np.float64), *arrays), dtype=np.float64)
    rows = np.arange(counts.shape[1])
    out = np.empty(counts.shape[0])
    for b, w in enumerate(counts):
        idx = np.repeat(rows, w)
        out[b] = _as_float(fn(*(a[idx] for a in arrays)))
    return out


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _summary(value: float, boots: np.ndarray, n: int, n_boot: int, alpha: float) -> dict[str, Any]:
    finite = boots[np.isfinite(boots)]
    if finite.size and np.isfinite(value):
        lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    else:
        lo = hi = float("nan")
    out: dict[str, Any] = {"value": value, "ci_low": float(lo), "ci_high": float(hi), "n": int(n),
                           "n_boot": int(finite.size)}
    if not np.isfinite(value):
        out["note"] = "metric undefined on these records (no pairs, one class only, or constant values)"
    elif finite.size < n_boot:
        out["note"] = f"metric undefined in {n_boot - finite.size} of {n_boot} resamples; CI from the rest"
    return out
