"""Tests of ecglens.evaluate.metrics and ecglens.evaluate.bootstrap.

Expected values come from scikit-learn / numpy on the same arrays (an independent oracle) or are worked out by
hand in the comments.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from ecglens.evaluate import bootstrap as B
from ecglens.evaluate import metrics as M
from ecglens.exceptions import EcglensError

T = np.array([1.0, 2.0, 3.0, 4.0])
P = np.array([1.5, 2.0, 2.0, 5.0])
Y = np.array([0, 0, 1, 1])
S = np.array([0.1, 0.4, 0.35, 0.8])


# ------------------------------------------------------------------------------------------------ regression
def test_regression_metrics_known_values():
    # errors p - t = [0.5, 0, -1, 1]
    assert M.mae(T, P) == pytest.approx(0.625)
    assert M.rmse(T, P) == pytest.approx(np.sqrt(2.25 / 4))
    assert M.bias(T, P) == pytest.approx(0.125)
    assert M.r2(T, P) == pytest.approx(r2_score(T, P))
    assert M.pearson_r(T, P) == pytest.approx(np.corrcoef(T, P)[0, 1])
    out = M.regression_metrics(T, P)
    assert out["n"] == 4 and "note" not in out
    assert set(M.REGRESSION_METRICS) <= set(out)


def test_regression_against_sklearn_random(rng):
    t = rng.normal(50, 15, 500)
    p = t + rng.normal(2, 7, 500)
    assert M.mae(t, p) == pytest.approx(mean_absolute_error(t, p))
    assert M.rmse(t, p) == pytest.approx(np.sqrt(mean_squared_error(t, p)))
    assert M.r2(t, p) == pytest.approx(r2_score(t, p))
    assert M.bias(t, p) == pytest.approx(np.mean(p - t))


def test_nan_pairs_are_dropped():
    t = np.array([1.0, np.nan, 2.0, 3.0, 4.0, 7.0])
    p = np.array([1.5, 9.0, 2.0, 2.0, 5.0, np.nan])
    for fn in M.REGRESSION_METRICS.values():
        assert fn(t, p) == pytest.approx(fn(T, P))
    assert M.regression_metrics(t, p)["n"] == 4
    y = np.array([0, 0, np.nan, 1, 1])
    s = np.array([0.1, 0.4, 0.9, 0.35, 0.8])
    assert M.auroc(y, s) == pytest.approx(0.75)


def test_regression_degenerate_inputs_give_nan():
    assert np.isnan(M.mae([], []))
    assert np.isnan(M.mae([np.nan], [1.0]))
    assert np.isnan(M.r2([5.0, 5.0, 5.0], [4.0, 5.0, 6.0]))
    assert np.isnan(M.pearson_r([5.0, 5.0, 5.0], [4.0, 5.0, 6.0]))
    assert np.isnan(M.pearson_r([1.0], [1.0]))
    out = M.regression_metrics([5.0, 5.0], [4.0, 6.0])
    assert out["mae"] == 1.0 and np.isnan(out["r2"]) and "undefined" in out["note"]
    with pytest.raises(EcglensError, match="one prediction per record"):
        M.mae([1, 2, 3], [1, 2])


def test_by_decade_groups_and_top_group():
    t = np.array([25, 29, 31, 90, 95, np.nan])
    p = np.array([27, 30, 31, 80, 97, 50])
    table = M.by_decade(t, p)
    assert table["decade"].tolist() == ["20-29", "30-39", "90+"]
    assert table["n"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(table["bias"], [1.5, 0.0, -4.0])
    np.testing.assert_allclose(table["mae"], [1.5, 0.0, 6.0])
    assert M.age_decade([0, 9.9, 89.5, 300, -1, np.nan]).tolist() == ["0-9", "0-9", "80-89", "90+", None, None]


# --------------------------------------------------------------------------------------------------- binary
def test_binary_metrics_known_values():
    # the scikit-learn documentation example: AUROC 0.75, average precision 0.8333
    assert M.auroc(Y, S) == pytest.approx(0.75)
    assert M.auprc(Y, S) == pytest.approx(average_precision_score(Y, S))
    assert M.auprc(Y, S) == pytest.approx(5 / 6)
    assert M.brier(Y, S) == pytest.approx(brier_score_loss(Y, S))
    # at 0.5 only 0.8 is positive: predictions [0, 0, 0, 1]
    assert M.accuracy(Y, S) == pytest.approx(0.75)
    assert M.sensitivity(Y, S) == pytest.approx(0.5)
    assert M.specificity(Y, S) == pytest.approx(1.0)
    # at 0.3: predictions [0, 1, 1, 1]
    assert M.sensitivity(Y, S, threshold=0.3) == 1.0 and M.specificity(Y, S, threshold=0.3) == 0.5
    out = M.binary_metrics(Y, S, threshold=0.3)
    assert out["n"] == 4 and out["n_pos"] == 2 and out["threshold"] == 0.3 and "note" not in out
    assert out["accuracy"] == pytest.approx(0.75)


def test_one_class_gives_nan_with_note_never_a_crash():
    y = np.ones(5)
    s = np.linspace(0.1, 0.9, 5)
    assert np.isnan(M.auroc(y, s)) and np.isnan(M.auprc(y, s)) and np.isnan(M.specificity(y, s))
    assert M.sensitivity(y, s) == pytest.approx(0.6)
    out = M.binary_metrics(y, s)
    assert "only one class" in out["note"]
    assert np.isnan(out["auroc"]) and out["brier"] == pytest.approx(brier_score_loss(y, s, labels=[0, 1]))
    assert "no records" in M.binary_note([np.nan, np.nan])
    assert M.binary_note(Y) is None
    cal = M.calibration(y, s)
    assert cal["prob_true"] == [] and np.isnan(cal["ece"]) and "note" in cal


def test_binary_truths_must_be_0_1():
    with pytest.raises(EcglensError, match="0/1"):
        M.auroc([0, 1, 2], [0.1, 0.2, 0.3])


def test_threshold_selection(rng):
    y = rng.integers(0, 2, 400)
    s = np.clip(0.35 * y + rng.random(400) * 0.65, 0, 1)
    thr = M.threshold_youden(y, s)
    j = M.sensitivity(y, s, thr) + M.specificity(y, s, thr) - 1
    grid = np.unique(s)  # oracle: sensitivity / specificity at every candidate threshold, with numpy
    sens = (s[y == 1][None, :] >= grid[:, None]).mean(axis=1)
    spec = (s[y == 0][None, :] < grid[:, None]).mean(axis=1)
    assert j == pytest.approx((sens + spec - 1).max())
    thr90 = M.threshold_for_sensitivity(y, s, target=0.9)
    assert M.sensitivity(y, s, thr90) >= 0.9
    assert thr90 == grid[sens >= 0.9].max()  # the highest such threshold
    thr_sp = M.threshold_for_specificity(y, s, target=0.95)
    assert M.specificity(y, s, thr_sp) >= 0.95
    assert M.select_threshold(y, s, "sensitivity", target=0.9) == thr90
    with pytest.raises(EcglensError, match="unknown threshold method"):
        M.select_threshold(y, s, "magic")
    with pytest.raises(EcglensError, match="proportion"):
        M.threshold_for_sensitivity(y, s, target=90)
    with pytest.raises(EcglensError, match="cannot choose a threshold"):
        M.select_threshold(np.zeros(5), s[:5])


def test_calibration_matches_sklearn(rng):
    p = rng.random(3000)
    y = (rng.random(3000) < p).astype(int)  # calibrated by construction
    cal = M.calibration(y, p, n_bins=10)
    ref_true, ref_pred = calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose(cal["prob_true"], ref_true)
    np.testing.assert_allclose(cal["prob_pred"], ref_pred)
    assert sum(cal["count"]) == 3000 and len(cal["count"]) == len(ref_true)
    assert cal["ece"] < 0.05
    bad = M.calibration(y, np.clip(p + 0.3, 0, 1))
    assert bad["ece"] > 0.15
    q = M.calibration(y, p, n_bins=5, strategy="quantile")
    assert len(q["prob_true"]) == 5 and sum(q["count"]) == 3000


def test_multilabel_auroc(rng):
    y = rng.integers(0, 2, (300, 4)).astype(float)
    s = np.clip(0.3 * y + rng.random((300, 4)) * 0.7, 0, 1)
    macro = np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(4)])
    assert M.multilabel_auroc(y, s) == pytest.approx(macro)
    assert M.multilabel_auroc(y, s, average="micro") == pytest.approx(roc_auc_score(y, s, average="micro"))
    assert M.micro_auroc(y, s) == pytest.approx(roc_auc_score(y, s, average="micro"))
    y2 = y.copy()
    y2[:, 3] = 1.0  # one class only: skipped by the macro average
    assert M.multilabel_auroc(y2, s) == pytest.approx(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(3)]))
    y3 = y.copy()
    y3[:50, 0] = np.nan  # unknown labels are dropped per label
    expected = np.mean([roc_auc_score(y[50:, 0], s[50:, 0])] + [roc_auc_score(y[:, j], s[:, j]) for j in (1, 2, 3)])
    assert M.multilabel_auroc(y3, s) == pytest.approx(expected)
    with pytest.raises(EcglensError, match="macro"):
        M.multilabel_auroc(y, s, average="weighted")


# ------------------------------------------------------------------------------------------ batched == sklearn
def _loop(fn, counts, *arrays):
    rows = np.arange(counts.shape[1])
    return np.array([fn(*(a[np.repeat(rows, w.astype(int))] for a in arrays)) for w in counts])


def test_batched_implementations_match_sklearn(rng):
    n = 300
    t = rng.normal(50, 10, n)
    p = t + rng.normal(0, 5, n)
    y = rng.integers(0, 2, n).astype(float)
    s = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 1)  # many tied scores
    counts = next(B.resample_counts(n, 20, seed=3)).astype(float)
    for fn in M.REGRESSION_METRICS.values():
        np.testing.assert_allclose(fn.batched(counts, t, p), _loop(fn, counts, t, p), rtol=1e-9, atol=1e-12)
    for fn in M.BINARY_METRICS.values():
        np.testing.assert_allclose(fn.batched(counts, y, s), _loop(fn, counts, y, s), rtol=1e-9, atol=1e-12)
    for fn in M.THRESHOLD_METRICS.values():
        bound = M.at_threshold(fn, 0.4)
        np.testing.assert_allclose(bound.batched(counts, y, s), _loop(bound, counts, y, s), rtol=1e-9)
    ym = rng.integers(0, 2, (n, 3)).astype(float)
    sm = np.clip(0.3 * ym + rng.random((n, 3)) * 0.7, 0, 1)
    ym[:30, 1] = np.nan
    for fn in (M.multilabel_auroc, M.micro_auroc):
        np.testing.assert_allclose(fn.batched(counts, ym, sm), _loop(fn, counts, ym, sm), rtol=1e-9)
    # a resample with one class only gives NaN in both paths
    one = np.zeros((1, n))
    one[0, np.flatnonzero(y == 1)[:5]] = 1
    assert np.isnan(M.auroc.batched(one, y, s)[0]) and np.isnan(M.auprc.batched(one, y, s)[0])


# ------------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_is_seeded_and_returns_the_contract(rng):
    t = rng.normal(50, 10, 500)
    p = t + rng.normal(1, 5, 500)
    a = B.bootstrap_ci(M.mae, t, p, n_boot=300, seed=1)
    b = B.bootstrap_ci(M.mae, t, p, n_boot=300, seed=1)
    c = B.bootstrap_ci(M.mae, t, p, n_boot=300, seed=2)
    assert a == b and a != c
    assert {"value", "ci_low", "ci_high", "n"} <= set(a)
    assert a["value"] == pytest.approx(M.mae(t, p)) and a["n"] == 500 and a["n_boot"] == 300
    assert a["ci_low"] < a["value"] < a["ci_high"]


def test_batched_and_loop_paths_agree(rng):
    t = rng.normal(50, 10, 400)
    p = t + rng.normal(1, 5, 400)
    fast = B.bootstrap_ci(M.rmse, t, p, n_boot=200, seed=5)
    slow = B.bootstrap_ci(lambda a, b: M.rmse(a, b), t, p, n_boot=200, seed=5)  # no .batched: loop
    for key in ("value", "ci_low", "ci_high"):
        assert fast[key] == pytest.approx(slow[key], rel=1e-9)


def test_resampling_does_not_depend_on_chunking(monkeypatch):
    whole = np.concatenate(list(B.resample_counts(1001, 40, seed=3)))
    monkeypatch.setattr(B, "_CHUNK_ELEMENTS", 1001 * 7)
    chunked = list(B.resample_counts(1001, 40, seed=3))
    assert len(chunked) == 6
    np.testing.assert_array_equal(whole, np.concatenate(chunked))
    assert (whole.sum(axis=1) == 1001).all()


def test_ci_covers_the_true_value_for_a_large_sample():
    rng = np.random.default_rng(123)
    n = 4000
    truth = np.zeros(n)
    pred = rng.normal(1.5, 4.0, n)  # true bias 1.5, SD 4
    ci = B.bootstrap_ci(M.bias, truth, pred, n_boot=1000, seed=0)
    assert ci["ci_low"] < 1.5 < ci["ci_high"]
    expected_width = 2 * 1.96 * 4.0 / np.sqrt(n)
    assert ci["ci_high"] - ci["ci_low"] == pytest.approx(expected_width, rel=0.15)
    ci90 = B.bootstrap_ci(M.bias, truth, pred, n_boot=1000, seed=0, alpha=0.1)
    assert ci90["ci_high"] - ci90["ci_low"] < ci["ci_high"] - ci["ci_low"]


def test_patient_level_resampling_widens_the_ci():
    rng = np.random.default_rng(7)
    n_patients, per_patient = 200, 10
    err = np.repeat(rng.normal(0, 5, n_patients), per_patient)  # records of a patient share their error
    groups = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    truth = np.zeros_like(err)
    by_record = B.bootstrap_ci(M.bias, truth, err, n_boot=500, seed=0)
    by_patient = B.bootstrap_ci(M.bias, truth, err, n_boot=500, seed=0, groups=groups)
    w_rec = by_record["ci_high"] - by_record["ci_low"]
    w_pat = by_patient["ci_high"] - by_patient["ci_low"]
    assert w_pat / w_rec == pytest.approx(np.sqrt(per_patient), rel=0.3)
    assert by_patient["n_groups"] == n_patients and by_patient["n"] == n_patients * per_patient
    # an unknown patient id counts as a patient of its own
    groups_nan = groups.astype(object)
    groups_nan[:10] = None
    assert B.bootstrap_ci(M.bias, truth, err, n_boot=50, groups=groups_nan)["n_groups"] == n_patients - 1 + 10


def test_bootstrap_degenerate_inputs():
    one_class = B.bootstrap_ci(M.auroc, np.ones(50), np.linspace(0, 1, 50), n_boot=100)
    assert np.isnan(one_class["value"]) and np.isnan(one_class["ci_low"]) and "undefined" in one_class["note"]
    # 1 positive among 30: many resamples miss it, the CI comes from the rest
    y = np.zeros(30)
    y[0] = 1
    rare = B.bootstrap_ci(M.auroc, y, np.linspace(0, 1, 30), n_boot=200, seed=0)
    assert 0 < rare["n_boot"] < 200 and "resamples" in rare["note"]
    empty = B.bootstrap_ci(M.mae, [np.nan, np.nan], [1.0, 2.0], n_boot=10)
    assert empty["n"] == 0 and np.isnan(empty["value"])
    nan_rows = B.bootstrap_ci(M.mae, [1.0, np.nan, 3.0], [1.0, 2.0, 4.0], n_boot=10)
    assert nan_rows["n"] == 2 and nan_rows["value"] == pytest.approx(0.5)
    with pytest.raises(EcglensError, match="different lengths"):
        B.bootstrap_ci(M.mae, [1, 2, 3], [1, 2])
    with pytest.raises(EcglensError, match="n_boot"):
        B.bootstrap_ci(M.mae, [1, 2], [1, 2], n_boot=0)
    with pytest.raises(EcglensError, match="alpha"):
        B.bootstrap_ci(M.mae, [1, 2], [1, 2], alpha=1.5)


def test_bootstrap_metrics_share_resamples(rng):
    y = rng.integers(0, 2, 500).astype(float)
    s = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    both = B.bootstrap_metrics({"auroc": M.auroc, "brier": M.brier}, y, s, n_boot=200, seed=4)
    alone = B.bootstrap_ci(M.brier, y, s, n_boot=200, seed=4)
    assert both["brier"] == alone
    assert both["auroc"]["value"] == pytest.approx(roc_auc_score(y, s))


def test_bootstrap_is_fast():
    rng = np.random.default_rng(0)
    t = rng.normal(60, 15, 2000)
    p = t + rng.normal(0, 8, 2000)
    start = time.perf_counter()
    B.bootstrap_ci(M.mae, t, p, n_boot=1000, seed=0)
    assert time.perf_counter() - start < 1.0


def test_metrics_accept_pandas_series():
    frame = pd.DataFrame({"t": T, "p": P})
    assert M.mae(frame.t, frame.p) == pytest.approx(0.625)
