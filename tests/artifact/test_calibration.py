"""Tests of ecglens.artifact.calibration: each fit recovers a known, simulated miscalibration.

The data are simulated with a stated truth (a regression-to-the-mean line, an SD that is too small by a known
factor, logits that are too sharp by a known temperature), so the fitted values are checked against it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from ecglens.artifact.calibration import (
    COVERAGE_LEVELS,
    Calibration,
    binary_label,
    corrected_gap,
    coverage,
    fit_age_bias,
    fit_calibration,
    fit_std_scale,
    fit_temperature,
)
from ecglens.exceptions import ConfigError


def _ages(n: int = 4000, seed: int = 0):
    """True ages, predictions that regress to the mean (slope 0.7, intercept 18) and a 1.5x too small SD."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 95, n)
    sd_true = rng.uniform(4, 10, n)
    pred = 0.7 * age + 18 + rng.normal(0, 1, n) * sd_true
    return age, pred, sd_true / 1.5, sd_true


def test_age_bias_line_is_recovered_and_the_corrected_gap_no_longer_depends_on_age():
    age, pred, _, _ = _ages()
    slope, intercept = fit_age_bias(age, pred)
    assert slope == pytest.approx(0.7, abs=0.02) and intercept == pytest.approx(18, abs=1.5)
    raw = pred - age
    corrected = corrected_gap(pred, age, slope, intercept)
    assert np.corrcoef(raw, age)[0, 1] < -0.5  # the raw gap is biased by age: old people look young
    assert abs(np.corrcoef(corrected, age)[0, 1]) < 1e-6 and abs(corrected.mean()) < 1e-6
    young, old = age < 30, age > 80
    assert raw[young].mean() > 5 and raw[old].mean() < -5
    assert abs(corrected[young].mean()) < 1.5 and abs(corrected[old].mean()) < 1.5


def test_std_scale_restores_nominal_coverage():
    age, pred, sd_small, _ = _ages()
    mu = 0.7 * age + 18  # the model's mean; the errors are Gaussian with sd_true = 1.5 * sd_small
    assert coverage(pred, mu, sd_small, 1.0) < 0.5
    scale = fit_std_scale(pred, mu, sd_small)
    assert scale == pytest.approx(1.5, rel=0.03)
    for z, nominal in COVERAGE_LEVELS.items():
        assert coverage(pred, mu, scale * sd_small, z) == pytest.approx(nominal, abs=0.02)


def test_temperature_of_too_sharp_logits_is_recovered_and_ranking_unchanged():
    rng = np.random.default_rng(1)
    logit = rng.normal(0, 2, 20000)
    y = (rng.random(logit.size) < expit(logit)).astype(float)
    sharp = expit(2.0 * logit)  # over-confident by T = 2
    t = fit_temperature(y, sharp)
    assert t == pytest.approx(2.0, rel=0.08)
    cal = Calibration(temperatures={"p_female": t}).apply({"p_female": sharp})
    assert np.all(np.diff(cal["p_female"][np.argsort(sharp)]) >= 0)  # monotone: the ranking (AUROC) is kept
    np.testing.assert_allclose(cal["p_female"], expit(logit), atol=0.03)
    np.testing.assert_array_equal(cal["p_female_raw"], sharp)


def test_uncertain_band():
    assert [binary_label(p) for p in (0.1, 0.34, 0.35, 0.5, 0.65, 0.66, float("nan"))] == [
        "male", "male", "uncertain", "uncertain", "uncertain", "female", "uncertain"]
    assert binary_label(0.9, "MI", "no MI") == "MI"


def test_fit_calibration_round_trip_and_apply_convention():
    age, pred, sd_small, _ = _ages(2000)
    rng = np.random.default_rng(2)
    sex = rng.integers(0, 2, age.size).astype(float)
    p = np.clip(expit(3 * (sex - 0.5) + rng.normal(0, 1, age.size)), 0, 1)
    outputs = {"age": pred, "age_std": sd_small, "p_female": p}
    cal = fit_calibration(outputs, {"age": age, "sex": sex}, folds=(9,))
    assert cal.folds == [9] and cal.n == age.size and set(cal.temperatures) == {"p_female"}
    again = Calibration.from_dict({**cal.to_dict(), "added_in_a_later_version": 1})
    assert again == cal and Calibration.from_dict(None) is None
    out = cal.apply(outputs, age_recorded=age)
    assert set(out) == {"age", "age_std", "age_std_raw", "p_female", "p_female_raw", "age_gap", "age_gap_corrected"}
    np.testing.assert_array_equal(out["age"], pred)  # the predicted age itself is never changed
    np.testing.assert_allclose(out["age_std"], sd_small * cal.age_std_scale)
    np.testing.assert_allclose(out["age_gap"], pred - age)
    np.testing.assert_allclose(out["age_gap_corrected"], pred - cal.expected_age(age))
    twice = cal.apply(out)
    np.testing.assert_array_equal(twice["age_std"], out["age_std"])  # applying again changes nothing
    one = cal.apply({"age": 70.0, "age_std": 5.0, "p_female": 0.7}, age_recorded=60.0)
    assert all(isinstance(v, float) for v in one.values())  # one record stays plain floats


def test_fit_refuses_too_little_or_unusable_data():
    with pytest.raises(ConfigError, match="at least"):
        fit_age_bias([50, 60], [55, 58])
    with pytest.raises(ConfigError, match="only one class"):
        fit_temperature(np.ones(50), np.full(50, 0.7))
    with pytest.raises(ConfigError, match="nothing to calibrate"):
        fit_calibration({"hemoglobin": np.ones(30)}, {"age": np.ones(30)})
    flat = np.linspace(20, 90, 100)
    with pytest.raises(ConfigError, match="slope"):
        fit_age_bias(flat, np.full(100, 60.0) + np.sin(flat))
