"""Tests of ecglens.signal.quality (flags on synthetic bad leads) and ecglens.signal.augment."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_signals import synthetic_ecg

from ecglens.ecg import Ecg
from ecglens.exceptions import ConfigError, SignalQualityError
from ecglens.signal import assess_quality, check_usable
from ecglens.signal import augment as A
from ecglens.signal.quality import calibration_span, noise_fraction


# ------------------------------------------------------------------------------------------------ quality
@pytest.mark.parametrize("fs", [100, 500])
def test_clean_signal_has_no_flags(fs):
    report = assess_quality(synthetic_ecg(fs), fs)
    assert report.ok and report.flags == () and report.nan_fraction == 0.0
    assert report.summary() == "ok"


def test_flat_noisy_saturated_and_nan_leads_are_flagged(rng):
    fs = 500
    x = synthetic_ecg(fs).astype(np.float64)
    x[8] = 0.002 * rng.standard_normal(x.shape[1])  # V3: disconnected electrode, a few microvolts
    x[1] += rng.normal(0, 1.0, x.shape[1])  # II: broadband noise stronger than the ECG
    x[6] = np.clip(x[6] + np.linspace(0, 3, x.shape[1]), None, 1.2)  # V1: drifts into the amplifier rail
    x[4, 1000:1100] = np.nan  # aVL: 100 NaN samples
    report = assess_quality(x, fs)
    assert report.flat_leads == ("V3",)
    assert report.noisy_leads == ("II",)
    assert report.saturated_leads == ("V1",)
    assert report.nan_leads == ("aVL",)
    assert set(report.flags) == {"flat:V3", "noisy:II", "saturated:V1", "nan:aVL"}
    assert report.nan_fraction == pytest.approx(100 / x.size)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["flat_leads"] == ["V3"] and not report.ok


def test_finite_fast_path_equals_the_general_path(rng):
    from ecglens.signal.quality import _lead_mean_std, _saturated

    x = rng.normal(0, 0.3, (12, 5000))
    x[3, 1000:1600] = x[3].max()  # a saturated stretch
    x[5] = 0.0  # a flat lead
    mean, std = _lead_mean_std(x, None)
    mean_g, std_g = _lead_mean_std(x, np.zeros(x.shape, dtype=bool))
    np.testing.assert_allclose(mean, mean_g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(std, std_g, rtol=1e-12, atol=1e-15)
    flat = std < 0.005
    assert np.array_equal(_saturated(x, 500.0, flat, has_nan=False), _saturated(x, 500.0, flat, has_nan=True))
    with_nan = x.copy()
    with_nan[0, 10] = np.nan  # the general path, same findings apart from the NaN lead itself
    a, b = assess_quality(x, 500.0), assess_quality(with_nan, 500.0)
    assert a.saturated_leads == b.saturated_leads == ("aVR",) and a.flat_leads == b.flat_leads == ("aVF",)
    assert b.nan_leads == ("I",) and not a.nan_leads


def test_assess_finite_rows_equals_assess_quality(rng):
    from ecglens.signal.quality import assess_finite_rows

    fs = 500
    x = synthetic_ecg(fs).astype(np.float64)
    x[8] = 0.002 * rng.standard_normal(x.shape[1])  # flat
    x[1] += rng.normal(0, 1.0, x.shape[1])  # noisy
    x[6] = np.clip(x[6] + np.linspace(0, 3, x.shape[1]), None, 1.2)  # saturated
    names = [f"row{i}" for i in range(12)]
    fast, general = assess_finite_rows(x, fs, names, x.std(axis=-1)), assess_quality(x, fs, names)
    assert fast == general and set(fast.flags) == {"flat:row8", "noisy:row1", "saturated:row6"}


def test_noise_fraction_is_the_noise_share_of_power(rng):
    fs = 500
    white = rng.standard_normal((1, 5000))
    assert noise_fraction(white, fs)[0] == pytest.approx(1.0, abs=0.1)
    assert noise_fraction(synthetic_ecg(fs, n_leads=1), fs)[0] < 0.05
    assert not noise_fraction(white, 60).any()  # fs too low for a band above 40 Hz: never noisy


@pytest.mark.parametrize(("fs", "n"), [(500, 5000), (100, 1000), (250, 1251), (1000, 37)])
def test_noise_fraction_equals_the_band_power_ratio_of_the_mean_free_signal(rng, fs, n):
    x = synthetic_ecg(fs, n / fs, n_leads=3).astype(np.float64) + 0.3 + rng.normal(0, 0.05, (3, n))
    power = np.abs(np.fft.rfft(x - x.mean(axis=-1, keepdims=True), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / fs)
    expect = power[:, freqs >= 40].mean(axis=-1) / power[:, freqs >= 0.5].mean(axis=-1)
    np.testing.assert_allclose(noise_fraction(x, fs), expect, rtol=1e-10)


def test_assess_quality_uses_ecg_lead_names_and_fs():
    sig = synthetic_ecg(500, n_leads=3)
    sig[2] = 0.0
    report = assess_quality(Ecg(sig, 500, ("I", "II", "V5")))
    assert report.flags == ("flat:V5",)
    assert assess_quality(sig, 500).flags == ("flat:lead2",)
    assert assess_quality(sig, 500, leads=["a", "b", "c"]).flat_leads == ("c",)
    with pytest.raises(ValueError, match="fs"):
        assess_quality(sig)


def _with_pulse(x: np.ndarray, fs: float, level: float = 1.0, width_s: float = 0.2, at_end: bool = True,
                jitter: bool = False, seed: int = 0) -> np.ndarray:
    """``x`` followed (or preceded) by 0.17 s of zeros, a pulse of ``level`` mV on every lead, 0.1 s of zeros;
    ``jitter``: steps of up to +-10 uV on them, as in a file converted from another format."""
    pulse = np.zeros((x.shape[0], round(0.17 * fs) + round(width_s * fs) + round(0.1 * fs)), dtype=np.float32)
    pulse[:, round(0.17 * fs):round(0.17 * fs) + round(width_s * fs)] = level
    if jitter:
        pulse += np.random.default_rng(seed).choice(np.float32([-0.01, -0.005, 0.0, 0.005, 0.01]), pulse.shape)
    return np.concatenate([x, pulse] if at_end else [pulse[:, ::-1], x], axis=1)


def _noisy_ecg(fs: float, seed: int = 0) -> np.ndarray:
    """A synthetic 10-s ECG with 10 uV of noise (a real baseline is never exactly zero)."""
    return synthetic_ecg(fs, 10.0) + np.random.default_rng(seed).normal(0, 0.01, (12, round(10 * fs)))


@pytest.mark.parametrize("fs", [250.0, 500.0, 1000.0])
def test_calibration_span_finds_a_cart_calibration_pulse(fs):
    ecg = _noisy_ecg(fs)
    n = ecg.shape[1]
    assert calibration_span(ecg, fs) == (0, n)  # an ECG alone: nothing to cut
    extra = _with_pulse(ecg, fs).shape[1] - n

    def cut_near(span: tuple[int, int], start: int, stop: int) -> bool:
        """The cut takes the pulse and its zeros, and at most 20 ms of the ECG's quietest baseline with them."""
        return start <= span[0] <= start + 0.02 * fs and stop - 0.02 * fs <= span[1] <= stop

    assert cut_near(calibration_span(_with_pulse(ecg, fs), fs), 0, n)  # at the end (Philips PageWriter)
    assert cut_near(calibration_span(_with_pulse(ecg, fs, at_end=False), fs), extra, extra + n)  # at the start
    assert cut_near(calibration_span(_with_pulse(ecg, fs, jitter=True), fs), 0, n)  # a converted file's jitter
    assert cut_near(calibration_span(_with_pulse(ecg, fs, level=2.0, width_s=0.1), fs), 0, n)


def test_calibration_span_leaves_what_is_not_a_pulse():
    fs = 500.0
    ecg = _noisy_ecg(fs)
    full = _with_pulse(ecg, fs)
    for x in (_with_pulse(ecg, fs, level=0.2),              # too low for a calibration
              _with_pulse(ecg, fs, width_s=1.0),             # a 1-s plateau is not a pulse
              _with_pulse(ecg, fs, width_s=0.02),            # nor is a 20-ms step
              np.concatenate([full, ecg[:, :500]], axis=1)):  # ECG after it: a pulse in the middle is kept
        assert calibration_span(x, fs) == (0, x.shape[1])
    one_lead_off = full.copy()
    one_lead_off[3, ecg.shape[1] + 85:ecg.shape[1] + 185] = 0.4  # the pulse's span: every lead must hold one level
    assert calibration_span(one_lead_off, fs) == (0, full.shape[1])
    only_pulse = full[:, ecg.shape[1]:]                      # nothing but the pulse: nothing left to keep
    assert calibration_span(only_pulse, fs) == (0, only_pulse.shape[1])
    with_nan = full.copy()
    with_nan[0, 10] = np.nan                                 # far from the pulse: it is still found
    assert calibration_span(with_nan, fs)[1] <= ecg.shape[1]
    with_nan[0, -150] = np.nan                               # in the searched last 1.5 s: nothing is cut
    assert calibration_span(with_nan, fs) == (0, full.shape[1])
    assert calibration_span(full[:1], fs) == (0, full.shape[1])  # one lead says nothing
    with pytest.raises(ValueError, match="n_leads, n_samples"):
        calibration_span(full[0], fs)


def test_no_real_wfdb_record_has_a_calibration_pulse(fixtures_dir, ludb_dir):
    """Real recordings without a pulse keep every sample: LUDB (197 at 500 Hz) and the WFDB fixtures."""
    from ecglens.io import read_ecg

    heads = sorted(ludb_dir.glob("*.hea")) + sorted(fixtures_dir.rglob("*.hea"))
    assert len(heads) > 200
    for head in heads:
        ecg = read_ecg(head)  # the reader would have cut a pulse and said so
        assert "calibration_removed_s" not in ecg.meta, head


@pytest.mark.parametrize(
    "signal, match",
    [
        (np.zeros((12, 1000)), "all zeros"),
        (np.full((12, 1000), np.nan), "all NaN"),
        (np.full((12, 1000), 0.7), "flat on every lead"),
        (np.zeros((12, 0)), "no samples"),
    ],
)
def test_check_usable_rejects_useless_signals(signal, match):
    with pytest.raises(SignalQualityError, match=match):
        check_usable(signal, record="r1")


def test_check_usable_accepts_real_looking_and_partly_bad_signals():
    x = synthetic_ecg(100).astype(np.float64)
    check_usable(x)
    x[:11] = np.nan  # one good lead is enough to be usable
    check_usable(x)  # an array: an Ecg holds finite samples only
    with pytest.raises(SignalQualityError, match="multiply them by 1000"):
        check_usable(synthetic_ecg(100) / 1000)  # volts passed as mV look flat


# ------------------------------------------------------------------------------------------------ augment
FS = 100.0


def _all_functions(rng):
    return {
        "noise": lambda x: A.gaussian_noise(x, rng, 0.05),
        "wander": lambda x: A.baseline_wander(x, FS, rng, 0.2),
        "scale": lambda x: A.amplitude_scale(x, rng, 0.5, 2.0, per_lead=True),
        "shift": lambda x: A.time_shift(x, FS, rng, 1.0),
        "crop": lambda x: A.random_crop(x, 500, rng),
        "dropout": lambda x: A.lead_dropout(x, rng, 3),
    }


@pytest.mark.parametrize("name", ["noise", "wander", "scale", "shift", "crop", "dropout"])
def test_augmentations_never_modify_input_and_are_reproducible(name):
    x = synthetic_ecg(FS)
    before = x.copy()
    out1 = _all_functions(np.random.default_rng(5))[name](x)
    out2 = _all_functions(np.random.default_rng(5))[name](x)
    assert np.array_equal(x, before)
    assert out1.dtype == np.float32 and out1 is not x
    assert np.array_equal(out1, out2)
    others = [_all_functions(np.random.default_rng(s))[name](x) for s in range(6, 12)]
    assert any(not np.array_equal(out1, o) for o in others)


def test_gaussian_noise_has_the_requested_std(rng):
    x = np.zeros((12, 5000), dtype=np.float32)
    assert A.gaussian_noise(x, rng, 0.05).std() == pytest.approx(0.05, rel=0.05)


def test_baseline_wander_is_low_frequency(rng):
    x = np.zeros((12, 1000), dtype=np.float32)
    w = A.baseline_wander(x, FS, rng, amplitude_mv=0.2, max_freq_hz=0.5)
    spec = np.abs(np.fft.rfft(w, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(1000, 1 / FS)
    assert spec[:, freqs > 1.0].sum() < 0.05 * spec.sum() and np.abs(w).max() > 0.01


def test_amplitude_scale_within_range(rng):
    x = synthetic_ecg(FS)
    y = A.amplitude_scale(x, rng, 0.8, 1.2)
    ratio = y[np.abs(x) > 0.1] / x[np.abs(x) > 0.1]
    assert np.allclose(ratio, ratio[0], rtol=1e-5) and 0.8 <= ratio[0] <= 1.2


def test_time_shift_moves_samples_and_zero_fills(rng):
    x = np.tile(np.arange(1, 101, dtype=np.float32), (2, 1))
    y = A.time_shift(x, FS, rng, max_shift_s=0.2)
    shift = int(np.argmax(y[0] == 1)) if y[0, 0] == 0 else -int(y[0, 0] - 1)
    assert y.shape == x.shape and abs(shift) <= 20
    assert np.count_nonzero(y[0] == 0) == abs(shift)


def test_random_crop_and_lead_dropout(rng):
    x = synthetic_ecg(FS, seconds=20.0)
    y = A.random_crop(x, 1000, rng)
    assert y.shape == (12, 1000)
    assert any(np.array_equal(y, x[:, s : s + 1000]) for s in range(1001))  # a contiguous window of x
    for seed in range(10):
        z = A.lead_dropout(x, np.random.default_rng(seed), max_leads=3)
        zeroed = int((~z.any(axis=-1)).sum())
        assert 1 <= zeroed <= 3
    one = A.lead_dropout(x[:1], rng, max_leads=3)  # a single lead is never dropped
    assert np.array_equal(one, x[:1])


def test_augment_spec_off_by_default_and_default_preset():
    x = synthetic_ecg(FS)
    off = A.Augment()
    assert off.is_identity
    y = off(x, FS, np.random.default_rng(0))
    assert y is not x and np.array_equal(y, x)
    preset = A.Augment.default()
    assert not preset.is_identity
    outs = [preset(x, FS, np.random.default_rng(s)) for s in range(8)]
    assert any(not np.allclose(o, x) for o in outs)
    assert np.array_equal(outs[0], preset(x, FS, np.random.default_rng(0)))  # seeded -> reproducible


def test_augment_spec_round_trip_and_validation():
    spec = A.Augment(crop_seconds=5.0, noise_p=1.0, noise_std_mv=0.1, dropout_p=0.5)
    d = json.loads(json.dumps(spec.to_dict()))
    assert A.Augment.from_dict(d) == spec
    y = spec(synthetic_ecg(FS, seconds=10.0), FS, np.random.default_rng(1))
    assert y.shape == (12, 500) and y.dtype == np.float32
    with pytest.raises(ConfigError, match="valid keys"):
        A.Augment.from_dict({"noise": 0.5})
    with pytest.raises(ConfigError, match="probability"):
        A.Augment(noise_p=1.5)
    with pytest.raises(ConfigError):
        A.Augment(scale_low=1.2, scale_high=0.8)
