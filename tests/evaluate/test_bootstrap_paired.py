"""Paired bootstrap of a metric difference and Holm's correction (ecglens.evaluate.bootstrap).

Oracles: a predictor that ranks every positive above every negative (AUROC 1) against a constant one (AUROC 0.5,
all ties) differs by exactly 0.5 on every resample; a predictor compared with itself differs by exactly 0; Holm's
adjusted p-values worked by hand from the definition (sorted p-values times m, m - 1, ..., then a running max).
"""

from __future__ import annotations

import numpy as np
import pytest

from ecglens.evaluate.bootstrap import bootstrap_ci, holm_adjust, paired_bootstrap_diff
from ecglens.evaluate.metrics import auprc, auroc
from ecglens.exceptions import EcglensError


def test_known_difference_perfect_against_constant_predictor_is_exactly_one_half():
    y = np.array([0, 1] * 30, dtype=float)
    perfect, constant = y + 0.1, np.full(y.size, 0.3)
    d = paired_bootstrap_diff(auroc, y, perfect, constant, n_boot=200, seed=1)
    assert d["value_a"] == 1.0 and d["value_b"] == 0.5
    assert d["diff"] == pytest.approx(0.5) and d["ci_low"] == pytest.approx(0.5) and d["ci_high"] == pytest.approx(0.5)
    assert d["p_value"] == pytest.approx(2 / 201)  # no resample on the other side of 0: the +1 correction


def test_a_predictor_against_itself_differs_by_zero_with_p_one(rng):
    y = rng.integers(0, 2, 120).astype(float)
    p = rng.random(120)
    d = paired_bootstrap_diff(auprc, y, p, p, n_boot=100)
    assert d["diff"] == 0.0 and d["ci_low"] == 0.0 and d["ci_high"] == 0.0 and d["p_value"] == 1.0


def test_pairing_gives_a_narrower_interval_than_unpaired_intervals(rng):
    y = rng.integers(0, 2, 300).astype(float)
    base = y + rng.normal(0, 1.0, 300)
    better = base + 0.3 * y  # the same noise plus a little more signal: highly correlated predictors
    d = paired_bootstrap_diff(auroc, y, better, base, n_boot=300, seed=0)
    a, b = bootstrap_ci(auroc, y, better, n_boot=300), bootstrap_ci(auroc, y, base, n_boot=300)
    assert d["diff"] == pytest.approx(a["value"] - b["value"])
    assert d["ci_low"] > 0 and (d["ci_high"] - d["ci_low"]) < (a["ci_high"] - a["ci_low"])
    assert d["p_value"] < 0.05


def test_patient_level_resampling_counts_patients_and_is_seeded(rng):
    y = np.repeat(rng.integers(0, 2, 40), 3).astype(float)
    a, b = y + rng.normal(0, 1, y.size), rng.random(y.size)
    groups = np.repeat(np.arange(40), 3)
    one = paired_bootstrap_diff(auroc, y, a, b, groups=groups, n_boot=100, seed=3)
    two = paired_bootstrap_diff(auroc, y, a, b, groups=groups, n_boot=100, seed=3)
    assert one == two and one["n_groups"] == 40 and one["n"] == 120


def test_matched_runs_give_the_mean_of_the_per_run_differences_on_shared_resamples(rng):
    y = rng.integers(0, 2, 200).astype(float)
    a = np.column_stack([y + rng.normal(0, s, 200) for s in (0.5, 1.0, 2.0)])
    b = np.column_stack([y + rng.normal(0, 1.5, 200) for _ in range(3)])
    d = paired_bootstrap_diff(auroc, y, a, b, n_boot=150, seed=2)
    per_run = [paired_bootstrap_diff(auroc, y, a[:, j], b[:, j], n_boot=150, seed=2) for j in range(3)]
    assert d["diff"] == pytest.approx(np.mean([r["diff"] for r in per_run]))
    assert d["value_a"] == pytest.approx(np.mean([auroc(y, a[:, j]) for j in range(3)]))
    one = paired_bootstrap_diff(auroc, y, a[:, :1], b[:, :1], n_boot=150, seed=2)
    assert one == per_run[0]  # one column is the one-dimensional case, resample for resample
    # one perfect run and one constant run in each arm: every resample differs by exactly 0.25
    mixed = paired_bootstrap_diff(auroc, y, np.column_stack([y, y]), np.column_stack([y, np.full(200, 0.3)]),
                                  n_boot=50)
    assert mixed["diff"] == pytest.approx(0.25) and mixed["ci_low"] == pytest.approx(0.25)


def test_matched_runs_need_equal_shapes(rng):
    y = rng.integers(0, 2, 50).astype(float)
    with pytest.raises(EcglensError, match=r"\(n,\) or \(n, k\)"):
        paired_bootstrap_diff(auroc, y, rng.random((50, 3)), rng.random((50, 2)))


def test_holm_adjustment_matches_the_hand_worked_definition():
    # sorted: 0.01 (x4) = 0.04, 0.02 (x3) = 0.06, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04 -> running max 0.06
    p = [0.03, 0.01, 0.04, 0.02, np.nan]
    np.testing.assert_allclose(holm_adjust(p), [0.06, 0.04, 0.06, 0.06, np.nan])
    assert holm_adjust([0.5, 0.9])[1] == 1.0  # capped at 1
