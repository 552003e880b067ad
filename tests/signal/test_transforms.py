"""Tests of ecglens.signal.transforms.Preprocess on synthetic Ecg objects (and one real fixture pair)."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
from synthetic_signals import synthetic_ecg

from ecglens.ecg import Ecg
from ecglens.exceptions import ConfigError, LeadError, SignalQualityError, SignalQualityWarning, UnitError
from ecglens.leads import CANONICAL_LEADS
from ecglens.signal import Preprocess, fill_nans


def make_ecg(fs: float = 500, seconds: float = 10.0, leads=CANONICAL_LEADS, seed: int = 0) -> Ecg:
    return Ecg(synthetic_ecg(fs, seconds, len(leads), seed), fs, tuple(leads), record_id=f"syn{seed}")


# ------------------------------------------------------------------------------------------------ the spec
def test_defaults_and_n_samples():
    p = Preprocess()
    assert (p.fs, p.seconds, p.leads, p.n_samples) == (100.0, 10.0, CANONICAL_LEADS, 1000)
    assert Preprocess(fs=257, seconds=7.3).n_samples == round(257 * 7.3)
    assert "100 Hz" in p.describe() and "1000 samples" in p.describe()


def test_to_dict_from_dict_round_trip_through_json():
    p = Preprocess(
        fs=250,
        seconds=8,
        leads=("I", "II", "V1"),
        highpass_hz=None,
        notch_hz=60,
        normalize="zscore",
        crop="random",
        check_units=False,
    )
    d = json.loads(json.dumps(p.to_dict()))
    assert d["leads"] == ["I", "II", "V1"] and d["notch_hz"] == 60
    q = Preprocess.from_dict(d)
    assert q == p and hash(q) == hash(p)
    assert Preprocess.from_dict({}) == Preprocess()


def test_spec_pickles_for_worker_processes():
    p = Preprocess(fs=250, normalize="robust")
    assert pickle.loads(pickle.dumps(p)) == p


def test_from_dict_unknown_key_names_valid_keys():
    with pytest.raises(ConfigError, match="highpass_hz") as err:
        Preprocess.from_dict({"fs": 100, "sampling_rate": 500})
    assert "sampling_rate" in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fs": 0},
        {"seconds": -1},
        {"normalize": "l2"},
        {"crop": "middle"},
        {"leads": ()},
        {"highpass_hz": 80},
        {"notch_hz": "fifty"},
        {"leads": ("I", "i")},
    ],
)
def test_invalid_values_raise_config_errors(kwargs):
    with pytest.raises((ConfigError, LeadError)):
        Preprocess(**kwargs)


def test_lead_aliases_are_normalised():
    assert Preprocess(leads=["i", "AVR", "v1"]).leads == ("I", "aVR", "V1")


# ------------------------------------------------------------------------------------------------ apply
def test_apply_shape_dtype_and_input_untouched():
    ecg = make_ecg(500, 10.0)
    before = ecg.signal.copy()
    x = Preprocess().apply(ecg)
    assert x.shape == (12, 1000) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.array_equal(ecg.signal, before)
    # amplitude survives 500 -> 100 Hz and the 0.5 Hz high-pass (R waves are 10 ms wide: 100 Hz blurs them)
    ratio = np.ptp(x, axis=-1) / np.ptp(before, axis=-1)
    assert np.all((ratio > 0.6) & (ratio < 1.1))


def test_apply_same_rate_is_only_filtered():
    ecg = make_ecg(100, 10.0)
    x = Preprocess(highpass_hz=None).apply(ecg)
    np.testing.assert_array_equal(x, ecg.signal)


def test_reorders_and_derives_limb_leads_from_8_leads():
    names = ("V3", "I", "V1", "V2", "II", "V4", "V6", "V5")  # 8 recorded leads, shuffled
    ecg = make_ecg(500, 10.0, leads=names, seed=3)
    p = Preprocess()
    x = p.apply(ecg)
    assert x.shape == (12, 1000)
    i, ii = x[0], x[1]
    np.testing.assert_allclose(x[2], ii - i, atol=1e-4)  # III = II - I (filters are linear)
    np.testing.assert_allclose(x[3], -(i + ii) / 2, atol=1e-4)  # aVR
    v1_alone = Preprocess(leads=("V1",)).apply(Ecg(ecg.signal[[2]], 500, ("V1",)))
    np.testing.assert_allclose(x[6], v1_alone[0], atol=1e-6)  # V1 row came from the V1 column


def test_missing_leads_that_cannot_be_derived_raise():
    ecg = make_ecg(500, 10.0, leads=("V1", "V2", "V3", "V4", "V5", "V6"))
    with pytest.raises(LeadError, match="missing"):
        Preprocess().apply(ecg)


def test_short_record_is_padded_with_mask():
    ecg = make_ecg(500, 6.0)
    x, mask = Preprocess().apply_with_mask(ecg)
    assert x.shape == (12, 1000) and mask.sum() == 600
    assert mask.tolist() == [False] * 200 + [True] * 600 + [False] * 200
    assert not x[:, ~mask].any()
    _, full = Preprocess().apply_with_mask(make_ecg(500, 10.0))
    assert full.all()


def test_zscore_uses_real_samples_only():
    x, mask = Preprocess(normalize="zscore").apply_with_mask(make_ecg(500, 6.0))
    np.testing.assert_allclose(x[:, mask].mean(-1), 0, atol=1e-4)
    np.testing.assert_allclose(x[:, mask].std(-1), 1, atol=1e-3)
    assert not x[:, ~mask].any()


def test_random_crop_is_reproducible_with_a_seed():
    ecg = make_ecg(500, 20.0)
    p = Preprocess(crop="random")
    a = p.apply(ecg, rng=np.random.default_rng(7))
    b = p.apply(ecg, rng=np.random.default_rng(7))
    assert np.array_equal(a, b)
    others = [p.apply(ecg, rng=np.random.default_rng(s)) for s in range(5)]
    assert any(not np.array_equal(a, o) for o in others)


def test_high_pass_runs_at_the_lower_of_the_two_rates():
    from ecglens.signal import functional as F

    down, up = make_ecg(500, 10.0), make_ecg(50, 10.0)
    x, y = down.signal.astype(np.float64), up.signal.astype(np.float64)
    # downsampled: resample, then the 0.5 Hz high-pass at the model's 100 Hz (a fifth of the samples to filter)
    np.testing.assert_allclose(Preprocess().apply(down), F.highpass(F.resample(x, 500, 100), 100, 0.5), atol=1e-5)
    # upsampled: the high-pass at the native 50 Hz, then resample
    np.testing.assert_allclose(Preprocess().apply(up), F.resample(F.highpass(y, 50, 0.5), 50, 100), atol=1e-5)
    # the other order differs by little: < 2 uV after the first and before the last second, < 50 uV at the edges
    other = F.resample(F.highpass(x, 500, 0.5), 500, 100)
    diff = np.abs(Preprocess().apply(down) - other)
    assert diff[:, 100:-100].max() < 0.002 and diff.max() < 0.05


def test_notch_is_applied_at_native_rate_and_skipped_when_impossible():
    fs = 500
    t = np.arange(fs * 10) / fs
    hum = 0.3 * np.sin(2 * np.pi * 50 * t)
    ecg = make_ecg(fs, 10.0)
    noisy = ecg.replace(signal=ecg.signal + hum)
    p = Preprocess(fs=500, notch_hz=50)
    np.testing.assert_allclose(p.apply(noisy), Preprocess(fs=500).apply(ecg), atol=0.03)
    # 50 Hz notch on a 100 Hz record: nothing to remove at that rate, so skipped rather than an error
    x = Preprocess(notch_hz=50).apply(make_ecg(100, 10.0))
    assert x.shape == (12, 1000)


# ------------------------------------------------------------------------------------------------ bad input
def test_a_few_nans_are_interpolated_with_a_warning():
    sig = synthetic_ecg(500, 10.0)
    sig[1, 100:110] = np.nan
    with pytest.warns(SignalQualityWarning, match="interpolated in II"):  # readers repair, an Ecg is finite
        x = Preprocess().apply(Ecg(fill_nans(sig, CANONICAL_LEADS), 500, CANONICAL_LEADS))
    assert np.isfinite(x).all()


def test_all_nan_lead_becomes_zeros_with_a_warning():
    sig = synthetic_ecg(500, 10.0)
    sig[7] = np.nan
    with pytest.warns(SignalQualityWarning, match="V2"):
        x = Preprocess(highpass_hz=None).apply(Ecg(fill_nans(sig, CANONICAL_LEADS), 500, CANONICAL_LEADS))
    assert not x[7].any() and np.isfinite(x).all() and x[6].any()


@pytest.mark.parametrize("fill", [np.nan, 0.0])
def test_all_nan_or_all_zero_record_raises(fill):
    with pytest.raises(SignalQualityError, match="'bad'"):  # an all-NaN Ecg cannot even be built
        Preprocess().apply(Ecg(np.full((12, 5000), fill), 500, CANONICAL_LEADS, record_id="bad"))


def test_units_are_checked():
    ecg = make_ecg(500, 10.0)
    with pytest.raises(UnitError, match="divide by 1000"):
        Preprocess().apply(ecg.replace(signal=ecg.signal * 1000))
    with pytest.raises(UnitError, match="multiply by 1000"):
        Preprocess().apply(ecg.replace(signal=ecg.signal / 1000))
    x = Preprocess(check_units=False).apply(ecg.replace(signal=ecg.signal * 1000))
    assert np.ptp(x) > 100


def test_flat_record_raises():
    with pytest.raises(SignalQualityError, match="flat"):
        Preprocess().apply(Ecg(np.full((12, 1000), 0.3), 100, CANONICAL_LEADS))


def test_apply_refuses_non_ecg():
    with pytest.raises(TypeError, match="Ecg"):
        Preprocess().apply(np.zeros((12, 1000)))


# ------------------------------------------------------------------------------------------------ windows
def test_windows_on_a_38_second_record():
    ecg = make_ecg(500, 38.0)
    p = Preprocess()
    w = p.windows(ecg)
    assert w.shape == (3, 12, 1000) and w.dtype == np.float32  # 0-10, 10-20, 20-30 s; 8 s remainder dropped
    first = Preprocess(crop="start").apply(ecg)
    np.testing.assert_allclose(w[0], first, atol=1e-6)
    assert p.windows(ecg, hop_seconds=5).shape == (6, 12, 1000)  # starts 0, 5, ..., 25 s
    assert p.windows(ecg, max_windows=2).shape == (2, 12, 1000)
    with pytest.raises(ConfigError):
        p.windows(ecg, hop_seconds=0)


def test_windows_on_a_short_record_gives_one_padded_window():
    ecg = make_ecg(500, 7.0)
    w = Preprocess().windows(ecg)
    assert w.shape == (1, 12, 1000)
    np.testing.assert_array_equal(w[0], Preprocess().apply(ecg))


# ------------------------------------------------------------------------------------------------ real data
def test_ptbxl_100_and_500_hz_versions_agree(fixtures_dir):
    """The 100 Hz and 500 Hz files of one PTB-XL record must give nearly the same model input."""
    wfdb = pytest.importorskip("wfdb")
    base = fixtures_dir / "ptbxl_official"
    lr = wfdb.rdrecord(str(base / "records100" / "00000" / "00001_lr"))
    hr = wfdb.rdrecord(str(base / "records500" / "00000" / "00001_hr"))
    p = Preprocess()
    x_lr = p.apply(Ecg(lr.p_signal.T, lr.fs, lr.sig_name))
    x_hr = p.apply(Ecg(hr.p_signal.T, hr.fs, hr.sig_name))
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(x_lr, x_hr, strict=True)]
    assert min(corr) > 0.95, corr


def test_no_warning_on_clean_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Preprocess(normalize="robust").apply(make_ecg(400, 10.0))
