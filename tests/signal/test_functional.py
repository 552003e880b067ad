"""Tests of ecglens.signal.functional on synthetic signals (sines and Gaussian-wave ECGs).

Expected values come from the signals' construction: a resampled or filtered sine must keep its frequency
(FFT peak) and amplitude; a filter must remove the component it targets.
"""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_signals import sine, synthetic_ecg

from ecglens.exceptions import ConfigError, SamplingRateError, UnitError
from ecglens.signal import functional as F


def peak_freq(y: np.ndarray, fs: float) -> float:
    spec = np.abs(np.fft.rfft(y - y.mean()))
    return float(np.fft.rfftfreq(y.size, 1.0 / fs)[spec.argmax()])


def amplitude_at(y: np.ndarray, fs: float, freq: float) -> float:
    """Amplitude of the ``freq`` component by projection on sin/cos (exact for whole numbers of periods)."""
    t = np.arange(y.size) / fs
    c = 2 * np.mean(y * np.cos(2 * np.pi * freq * t))
    s = 2 * np.mean(y * np.sin(2 * np.pi * freq * t))
    return float(np.hypot(c, s))


# ------------------------------------------------------------------------------------------------ resample
@pytest.mark.parametrize(
    "fs, target", [(500, 100), (400, 100), (257, 100), (1000, 100), (100, 500), (360, 100)]
)
def test_resample_keeps_frequency_and_amplitude(fs, target):
    x = sine(fs, 10.0, 5.0, amp=1.5)
    y = F.resample(x, fs, target)
    assert y.shape == (int(10 * target),)
    assert peak_freq(y, target) == pytest.approx(5.0, abs=0.1)
    assert amplitude_at(y, target, 5.0) == pytest.approx(1.5, rel=0.02)
    # no edge transient either (odd-reflection padding)
    assert np.abs(y).max() == pytest.approx(1.5, rel=0.02)


def test_resample_equal_rates_returns_a_copy_and_keeps_dtype():
    x = synthetic_ecg(100, 2.0)
    y = F.resample(x, 100, 100.0)
    assert y is not x and np.array_equal(x, y)
    assert F.resample(x, 100, 50).dtype == np.float32
    assert np.array_equal(F.resample(x, 40, 40), x)  # equal rates: a no-op even below MIN_SOURCE_FS


def test_resample_leading_dims_and_factors():
    x = np.stack([synthetic_ecg(500, 2.0, n_leads=3, seed=s) for s in range(2)])  # [2, 3, 1000]
    y = F.resample(x, 500, 100)
    assert y.shape == (2, 3, 200)
    np.testing.assert_allclose(y[1], F.resample(x[1], 500, 100), atol=1e-6)
    assert F.resample_factors(257, 100) == (100, 257)
    assert F.resample_factors(500, 100) == (1, 5)


@pytest.mark.parametrize(
    "fs, target, match",
    [
        (0, 100, "positive"),
        (-5, 100, "positive"),
        (float("nan"), 100, "positive"),
        (20, 100, "below 50"),
        (100, 2000, "maximum factor"),
        (500, 0, "positive"),
    ],
)
def test_resample_rejects_bad_rates(fs, target, match):
    with pytest.raises(SamplingRateError, match=match):
        F.resample(np.zeros(100), fs, target)


# ------------------------------------------------------------------------------------------------ crop / pad
def test_crop_center_start_random():
    x = np.arange(10.0)[None].repeat(2, axis=0)
    y, mask = F.crop_or_pad(x, 4, mode="center")
    assert y.tolist()[0] == [3, 4, 5, 6] and mask.all() and mask.shape == (4,)
    y, _ = F.crop_or_pad(x, 4, mode="start")
    assert y[0].tolist() == [0, 1, 2, 3]
    a, _ = F.crop_or_pad(x, 4, mode="random", rng=np.random.default_rng(1))
    b, _ = F.crop_or_pad(x, 4, mode="random", rng=np.random.default_rng(1))
    assert np.array_equal(a, b)  # reproducible with a seed
    assert np.array_equal(np.diff(a[0]), np.ones(3))  # a contiguous window of x
    starts = {F.crop_or_pad(x, 4, "random", np.random.default_rng(s))[0][0, 0] for s in range(40)}
    assert starts <= set(range(7)) and len(starts) > 3


def test_pad_center_start_random_and_masks():
    x = np.ones((3, 4), dtype=np.float32)
    y, mask = F.crop_or_pad(x, 10, mode="center")
    assert y.shape == (3, 10) and y.dtype == np.float32
    assert mask.tolist() == [False] * 3 + [True] * 4 + [False] * 3
    assert np.array_equal(y[:, mask], x) and not y[:, ~mask].any()
    y, mask = F.crop_or_pad(x, 10, mode="start", pad_value=-1.0)
    assert mask[:4].all() and not mask[4:].any() and (y[:, 4:] == -1).all()
    y, mask = F.crop_or_pad(x, 10, mode="random", rng=np.random.default_rng(0))
    assert mask.sum() == 4 and np.array_equal(y[:, mask], x)
    same, mask = F.crop_or_pad(x, 4)
    assert mask.all() and same is not x and np.array_equal(same, x)


def test_crop_or_pad_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="center"):
        F.crop_or_pad(np.zeros(5), 3, mode="middle")
    with pytest.raises(ConfigError):
        F.crop_or_pad(np.zeros(5), 0)


# ------------------------------------------------------------------------------------------------ filters
def test_highpass_removes_drift_and_keeps_qrs_band():
    fs = 500
    drift = sine(fs, 10.0, 0.1, amp=1.0) + 0.7  # baseline wander plus a DC offset
    tone = sine(fs, 10.0, 10.0, amp=0.5)
    y = F.highpass(np.stack([drift + tone, tone]), fs, cutoff_hz=0.5)
    inner = slice(fs, -fs)  # away from the edges
    residual = y[0, inner] - tone[inner]
    assert np.abs(residual).max() < 0.03  # drift of 1 mV (+0.7 mV offset) down to < 0.03 mV
    assert amplitude_at(y[1], fs, 10.0) == pytest.approx(0.5, rel=0.02)


def test_highpass_keeps_dtype_does_not_modify_input_and_validates():
    x = synthetic_ecg(100, 10.0)
    before = x.copy()
    y = F.highpass(x, 100)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.array_equal(x, before)
    with pytest.raises(SamplingRateError, match="Nyquist"):
        F.highpass(x, 100, cutoff_hz=60)
    with pytest.raises(ConfigError):
        F.highpass(x, 100, cutoff_hz=-1)


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_notch_removes_mains_and_keeps_the_rest(mains):
    fs = 500
    tone = sine(fs, 10.0, 10.0, amp=1.0)
    x = tone + sine(fs, 10.0, mains, amp=0.3)
    y = F.notch(x, fs, freq_hz=mains)
    assert amplitude_at(y, fs, mains) < 0.3 * 0.02
    assert amplitude_at(y, fs, 10.0) == pytest.approx(1.0, rel=0.02)


def test_notch_refuses_frequency_at_or_above_nyquist():
    with pytest.raises(SamplingRateError, match="Nyquist"):
        F.notch(np.zeros(1000), 100, freq_hz=50)


def test_bandpass_and_lowpass():
    fs = 500
    low, mid, high = sine(fs, 10, 0.1), sine(fs, 10, 10.0), sine(fs, 10, 100.0)
    y = F.bandpass(low + mid + high, fs, 0.5, 40.0)
    assert amplitude_at(y, fs, 10.0) == pytest.approx(1.0, rel=0.03)
    assert amplitude_at(y, fs, 100.0) < 0.02 and amplitude_at(y[fs:-fs], fs, 0.1) < 0.05
    assert amplitude_at(F.lowpass(mid + high, fs, 40.0), fs, 100.0) < 0.01
    with pytest.raises(ConfigError):
        F.bandpass(mid, fs, 40.0, 0.5)


# ------------------------------------------------------------------------------------------------ normalize
def test_normalize_methods_per_lead():
    x = synthetic_ecg(100, 10.0, n_leads=3) * np.array([[1.0], [5.0], [0.2]], dtype=np.float32) + 3.0
    z = F.normalize(x, "zscore")
    np.testing.assert_allclose(z.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(-1), 1, atol=1e-4)
    r = F.normalize(x, "robust")
    q25, q50, q75 = np.percentile(r, [25, 50, 75], axis=-1)
    np.testing.assert_allclose(q50, 0, atol=1e-5)
    np.testing.assert_allclose(q75 - q25, 1, atol=1e-4)
    m = F.normalize(x, "minmax")
    np.testing.assert_allclose(m.min(-1), -1, atol=1e-6)
    np.testing.assert_allclose(m.max(-1), 1, atol=1e-6)
    n = F.normalize(x, "none")
    assert n is not x and np.array_equal(n, x) and z.dtype == np.float32


@pytest.mark.parametrize("method", ["zscore", "robust", "minmax"])
def test_normalize_flat_lead_gives_zeros_not_nan(method):
    x = np.vstack([np.full(100, 2.5), sine(100, 1.0, 3.0)])
    with np.errstate(all="raise"):
        y = F.normalize(x, method)
    assert np.isfinite(y).all() and not y[0].any() and y[1].std() > 0


def test_normalize_unknown_method_names_valid_ones():
    with pytest.raises(ConfigError, match="zscore"):
        F.normalize(np.zeros((2, 10)), "l2")


# ------------------------------------------------------------------------------------------------ units
def test_check_amplitude_passes_real_millivolts():
    x = synthetic_ecg(500, 10.0)
    amp = F.check_amplitude(x)
    assert 0.3 < amp < 4.0
    assert F.guess_unit_scale(x) == 1.0
    # one huge artefact lead does not change the verdict (median over leads)
    x[3] *= 50
    assert F.check_amplitude(x) < 4.0


def test_check_amplitude_catches_microvolts():
    x = synthetic_ecg(500, 10.0) * 1000
    with pytest.raises(UnitError, match="divide by 1000"):
        F.check_amplitude(x)
    assert F.guess_unit_scale(x) == pytest.approx(1e-3)


def test_check_amplitude_catches_raw_counts_at_unknown_gain():
    # counts at 200 counts/mV (GE MUSE 4.88 uV/LSB) with a small ECG: no power of ten explains it
    x = np.round(synthetic_ecg(500, 10.0) * 0.2 * 200)
    with pytest.raises(UnitError, match="ADC counts"):
        F.check_amplitude(x)
    assert F.guess_unit_scale(x) is None


def test_check_amplitude_catches_volts():
    x = synthetic_ecg(500, 10.0) / 1000
    with pytest.raises(UnitError, match="multiply by 1000"):
        F.check_amplitude(x)
    assert F.guess_unit_scale(x) == pytest.approx(1e3)


def test_check_amplitude_ignores_nan_and_constant_leads():
    x = synthetic_ecg(500, 10.0)
    x[:6] = 0.0
    x[6, :100] = np.nan
    assert 0.3 < F.check_amplitude(x) < 4.0
    assert F.check_amplitude(np.zeros((12, 100))) == 0.0  # no varying lead: a quality problem, not units


def test_check_amplitude_on_a_real_record_with_a_wrong_gain(fixtures_dir):
    """The CinC-2020 copy of PTB record S0001 declares 2,000,000 counts/mV (1000x too large): reads as volts."""
    wfdb = pytest.importorskip("wfdb")
    record = wfdb.rdrecord(str(fixtures_dir / "ptb" / "S0001"))
    x = record.p_signal.T
    with pytest.raises(UnitError, match="multiply by 1000"):
        F.check_amplitude(x)
    assert F.guess_unit_scale(x) == pytest.approx(1e3)
    assert 0.3 < F.check_amplitude(x * 1000) < 4.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 11, 1000, 5000, 5001])
def test_row_percentiles_equal_numpy_percentile(dtype, n):
    rng = np.random.default_rng(n)
    rows = rng.normal(0, 1, size=(4, 3, n)).astype(dtype)
    rows[0, 0, : n // 2] = 0.0  # ties
    q = [0, 1, 25, 50, 99, 99.9, 100]
    got = F.row_percentiles(rows, q)
    assert got.shape == (len(q), 4, 3) and got.dtype == np.float64
    np.testing.assert_allclose(got, np.percentile(rows, q, axis=-1), rtol=1e-12, atol=0)
