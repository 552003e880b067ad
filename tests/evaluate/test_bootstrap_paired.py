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


def test_holm_adjustment_matches_the_hand_worked_definition():
    # sorted: 0.01 (x4) = 0.04, 0.02 (x3) = 0.06, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04 -> running max 0.06
    p = [0.03, 0.01, 0.04, 0.02, np.nan]
    np.testing.assert_allclose(holm_adjust(p), [0.06, 0.04, 0.06, 0.06, np.nan])
    assert holm_adjust([0.5, 0.9])[1] == 1.0  # capped at 1
