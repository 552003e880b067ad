"""ECG features (heart rate, HRV, intervals, T amplitude) and their associations with model outputs.

The synthetic ECG is built here from Gaussian waves at exactly known beat times: a QRS (R 1.2 mV, 12 ms wide)
every 0.8 s (75 bpm, so the R-R SD is 0) and a T wave of 0.35 mV 0.28 s after each R peak, on a flat baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecglens.evaluate.features import (
    FEATURE_COLUMNS,
    extract_features,
    feature_associations,
    plot_associations,
    record_features,
)
from ecglens.exceptions import ConfigError


def synthetic_lead(fs: float = 250.0, seconds: float = 10.0, rr: float | np.ndarray = 0.8,
                   t_amp: float = 0.35, seed: int = 0) -> np.ndarray:
    """One lead in mV: P, Q, R, S, T Gaussians per beat; ``rr`` (s) constant or one value per beat."""
    t = np.arange(round(fs * seconds)) / fs
    rrs = np.resize(np.asarray(rr, dtype=float), int(seconds / np.min(rr)) + 2)
    beats = 0.4 + np.concatenate([[0.0], np.cumsum(rrs)])
    beats = beats[beats < seconds - 0.3]
    waves = [(-0.16, 0.02, 0.12), (-0.03, 0.008, -0.1), (0.0, 0.012, 1.2), (0.03, 0.01, -0.25),
             (0.28, 0.045, t_amp)]
    x = np.zeros_like(t)
    for b in beats:
        for offset, width, amp in waves:
            x += amp * np.exp(-0.5 * ((t - b - offset) / width) ** 2)
    return x + np.random.default_rng(seed).normal(0, 0.005, t.size)


@pytest.mark.parametrize("method", ["peaks", "dwt"])
def test_known_heart_rate_and_t_amplitude(method):
    f = record_features(synthetic_lead(), fs=250.0, method=method)
    assert f["feature_error"] == ""
    assert f["heart_rate"] == pytest.approx(75.0, abs=0.5)
    assert f["rr_mean_ms"] == pytest.approx(800.0, abs=5)
    assert f["sdnn_ms"] < 5.0 and f["rmssd_ms"] < 5.0  # a perfectly regular rhythm
    assert f["t_amplitude_mv"] == pytest.approx(0.35, abs=0.06)
    assert f["n_beats"] >= 11
    if method == "dwt":  # delineation: plausible intervals; QTc = QT / sqrt(0.8 s)
        assert 60 <= f["pr_ms"] <= 250 and 40 <= f["qrs_ms"] <= 160 and 250 <= f["qt_ms"] <= 500
        assert f["qtc_ms"] == pytest.approx(f["qt_ms"] / np.sqrt(f["rr_mean_ms"] / 1000), rel=1e-9)
    else:
        assert np.isnan(f["qt_ms"]) and np.isnan(f["qtc_ms"])


def test_hrv_follows_rr_variability_and_inverted_t_is_negative():
    rr = 0.8 + 0.06 * np.tile([1.0, -1.0], 10)  # alternating R-R: SD 60 ms, successive differences 120 ms
    f = record_features(synthetic_lead(rr=rr, t_amp=-0.3), fs=250.0, method="peaks")
    assert f["sdnn_ms"] == pytest.approx(60.0, abs=8)
    assert f["rmssd_ms"] == pytest.approx(120.0, abs=12)
    assert f["t_amplitude_mv"] < -0.2


@pytest.mark.parametrize("signal,reason", [
    (np.zeros(2500), "flat"),
    (np.full(2500, np.nan), "NaN"),
    (np.ones(200), "only"),
])
def test_bad_signals_give_nan_and_a_reason_never_an_error(signal, reason):
    f = record_features(signal, fs=250.0)
    assert reason in f["feature_error"]
    assert all(np.isnan(f[c]) for c in FEATURE_COLUMNS)


def test_extract_features_counts_failures_and_parallel_matches_serial():
    good = np.stack([synthetic_lead(fs=100.0, seed=i) for i in range(4)])
    signals = np.zeros((5, 12, 1000), dtype=np.float32)
    signals[:4, 1] = good  # lead II; record 4 is flat
    serial = extract_features(signals, 100.0, method="peaks", progress=False, record_ids=list("abcde"))
    parallel = extract_features(signals, 100.0, method="peaks", workers=2, chunk_size=2, progress=False)
    assert list(serial["record_id"]) == list("abcde")
    assert serial.attrs["extract_features"]["n_failed"] == 1
    assert serial.attrs["extract_features"]["lead"] == "II"
    assert serial["heart_rate"].iloc[:4].between(74, 76).all() and np.isnan(serial["heart_rate"].iloc[4])
    pd.testing.assert_frame_equal(serial.drop(columns="record_id"), parallel, check_like=True)
    by_alias = extract_features(signals[:1], 100.0, lead="ii", method="peaks", progress=False)
    assert by_alias["heart_rate"].iloc[0] == pytest.approx(serial["heart_rate"].iloc[0])
    with pytest.raises(ConfigError, match="not among the leads"):
        extract_features(signals, 100.0, lead="V7", progress=False)
    with pytest.raises(ConfigError, match="unknown feature method"):
        extract_features(signals, 100.0, method="magic", progress=False)


def test_feature_associations_table(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    features = pd.DataFrame({"record_id": np.arange(200), "heart_rate": x, "qt_ms": np.where(x > 1, np.nan, -x),
                             "flat": np.ones(200)})
    outputs = pd.DataFrame({"record_id": np.arange(200)[::-1], "hb_pred": (2 * x + rng.normal(0, 0.1, 200))[::-1]})
    table = feature_associations(features, outputs, on="record_id")
    assert list(table.columns) == ["feature", "output", "n", "pearson_r", "pearson_p", "spearman_r", "spearman_p"]
    row = table.set_index("feature").loc["heart_rate"]
    assert row["pearson_r"] > 0.99 and row["spearman_r"] > 0.99 and row["pearson_p"] < 1e-10 and row["n"] == 200
    qt = table.set_index("feature").loc["qt_ms"]
    assert qt["n"] == int((x <= 1).sum()) and qt["pearson_r"] < -0.99  # pairwise complete, sign kept
    assert np.isnan(table.set_index("feature").loc["flat", "spearman_r"])  # constant column: undefined, no error
    by_position = feature_associations(features.drop(columns="record_id"),
                                       outputs.drop(columns="record_id").iloc[::-1])
    assert by_position.set_index("feature").loc["heart_rate", "pearson_r"] == pytest.approx(row["pearson_r"])
    with pytest.raises(ConfigError, match="rows"):
        feature_associations(features, outputs.iloc[:10])
    fig = plot_associations(table, tmp_path / "assoc.png")
    assert (tmp_path / "assoc.png").stat().st_size > 1000 and fig.axes
