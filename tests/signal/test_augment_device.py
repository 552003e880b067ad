"""Device / site augmentations: low-pass, resampling round trip, mains, lead swaps, per-lead gains."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.signal import welch

from ecglens.exceptions import ConfigError
from ecglens.signal import augment as A

FS = 100.0


def _signal(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(1000) / FS
    slow = np.sin(2 * np.pi * 1.0 * t)
    fast = 0.5 * np.sin(2 * np.pi * 40.0 * t)
    gains = np.arange(1, 13, dtype=float)[:, None] / 6
    return (gains * (slow + fast) + rng.normal(0, 0.001, (12, 1000))).astype(np.float32)


def _power_at(x: np.ndarray, hz: float) -> float:
    f, p = welch(x, fs=FS, nperseg=256)
    return float(p[np.argmin(np.abs(f - hz))])


def test_lowpass_removes_high_frequencies_keeps_low_ones(rng):
    x = _signal(rng)
    y = A.lowpass(x, FS, rng, low_hz=20.0, high_hz=20.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert _power_at(y[0], 40.0) < 0.05 * _power_at(x[0], 40.0)
    assert _power_at(y[0], 1.0) == pytest.approx(_power_at(x[0], 1.0), rel=0.05)
    # a cut-off at or above 0.45 fs leaves the signal as it is
    np.testing.assert_array_equal(A.lowpass(x, FS, rng, 46.0, 49.0), x)


def test_resample_roundtrip_keeps_length_and_slow_content(rng):
    x = _signal(rng)
    y = A.resample_roundtrip(x, FS, rng, rates=(50.0,))
    assert y.shape == x.shape and y.dtype == np.float32
    assert _power_at(y[0], 40.0) < 0.05 * _power_at(x[0], 40.0)  # 40 Hz is above 50 Hz's Nyquist
    slow = np.sin(2 * np.pi * 1.0 * np.arange(1000) / FS)
    assert np.corrcoef(y[0, 100:-100], slow[100:-100])[0, 1] > 0.99
    np.testing.assert_array_equal(A.resample_roundtrip(x, FS, rng, rates=(200.0,)), x)  # nothing below fs


def test_powerline_adds_a_bounded_mains_tone(rng):
    x = np.zeros((12, 1000), np.float32)
    y = A.powerline(x, 500.0, rng, amplitude_mv=0.05)
    assert 0 < np.abs(y).max() <= 0.05 + 1e-6
    f, p = welch(y[np.argmax(np.abs(y).max(axis=1))], fs=500.0, nperseg=500)
    assert f[np.argmax(p)] in (50.0, 60.0)


def test_limb_lead_swap_is_the_arm_reversal_and_an_involution():
    x = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    y = A.limb_lead_swap(x)
    np.testing.assert_array_equal(y[0], -x[0])
    np.testing.assert_array_equal(y[1], x[2])
    np.testing.assert_array_equal(y[2], x[1])
    np.testing.assert_array_equal(y[3], x[4])
    np.testing.assert_array_equal(y[4], x[3])
    np.testing.assert_array_equal(y[5:], x[5:])
    np.testing.assert_array_equal(A.limb_lead_swap(y), x)
    np.testing.assert_array_equal(A.limb_lead_swap(x[:8]), x[:8])  # not 12 leads: unchanged


def test_precordial_swap_exchanges_two_neighbouring_chest_leads(rng):
    x = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    y = A.precordial_swap(x, rng)
    changed = [i for i in range(12) if not np.array_equal(x[i], y[i])]
    assert len(changed) == 2 and changed[1] == changed[0] + 1 and changed[0] >= 6
    np.testing.assert_array_equal(np.sort(y, axis=0), np.sort(x, axis=0))


def test_chest_gain_scales_v1_to_v6_together_and_leaves_the_limb_leads(rng):
    x = np.random.default_rng(1).normal(size=(12, 50)).astype(np.float32)
    gains = []
    for _ in range(200):
        y = A.chest_gain(x, rng, 0.4, 2.5)
        np.testing.assert_array_equal(y[:6], x[:6])
        ratio = y[6:] / x[6:]
        np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-5)
        gains.append(ratio[0, 0])
    assert 0.4 <= min(gains) and max(gains) <= 2.5
    assert abs(np.median(np.log(gains))) < 0.2            # log-uniform: as many gains below 1 as above
    three = np.ones((3, 10), np.float32)
    np.testing.assert_array_equal(A.chest_gain(three, rng), three)   # not a 12-lead record: unchanged
    with pytest.raises(ConfigError, match="chest_gain_low must be positive"):
        A.Augment(chest_gain_low=0.0)
    with pytest.raises(ConfigError, match="chest_gain_low <= chest_gain_high"):
        A.Augment(chest_gain_low=2.0, chest_gain_high=1.0)


def test_a_zero_probability_step_draws_nothing_so_old_specs_augment_as_before(rng):
    x = np.random.default_rng(2).normal(size=(12, 400)).astype(np.float32)
    old = A.Augment.robust()
    a = old(x, FS, np.random.default_rng(5))
    b = dataclasses.replace(old, chest_gain_low=0.5)(x, FS, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    with_gain = dataclasses.replace(old, chest_gain_p=1.0)(x, FS, np.random.default_rng(5))
    assert not np.array_equal(a[6:], with_gain[6:])


def test_robust_preset_round_trips_validates_and_keeps_shapes(rng):
    aug = A.Augment.robust()
    assert not aug.is_identity and aug.lowpass_p > 0 and aug.limb_swap_p > 0
    assert A.Augment.from_dict(aug.to_dict()) == aug
    x = _signal(rng)
    for _ in range(50):
        y = aug(x, FS, rng)
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert A.Augment(lowpass_p=0.5).is_identity is False
    with pytest.raises(ConfigError, match="lowpass_low_hz <= lowpass_high_hz"):
        A.Augment(lowpass_low_hz=40, lowpass_high_hz=20)
    with pytest.raises(ConfigError, match="probability"):
        A.Augment(powerline_p=1.5)
