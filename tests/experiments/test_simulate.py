"""The synthetic Hb cohort: determinism, shapes, the stated Hb -> ECG relation, labs, outcomes, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy.signal import find_peaks
from scipy.stats import spearmanr

from ecglens.data.labs import anemia_labels, link_labs, read_labs
from ecglens.ecg import Ecg
from ecglens.evaluate.survival import CoxAnalysis
from ecglens.exceptions import ConfigError
from ecglens.experiments.simulate import simulate_cohort, simulate_outcomes
from ecglens.leads import CANONICAL_LEADS


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(400, seed=3)


def _measured_features(sig: np.ndarray, fs: float) -> tuple[float, float, float]:
    """Heart rate (bpm), RR SD (ms) from R peaks in lead II, and median T amplitude in V5 (mV above pre-P)."""
    lead_ii, v5 = sig[CANONICAL_LEADS.index("II")], sig[CANONICAL_LEADS.index("V5")]
    peaks, _ = find_peaks(lead_ii, height=0.4 * lead_ii.max(), distance=int(0.3 * fs))
    rr = np.diff(peaks) / fs
    t_peak = (peaks[:-1] + np.round(0.26 * np.sqrt(rr) * fs)).astype(int)
    baseline = np.clip(peaks[:-1] - int(0.25 * fs), 0, None)
    return 60.0 / np.median(rr), 1000.0 * rr.std(), float(np.median(v5[t_peak] - v5[baseline]))


def test_deterministic_and_seed_dependent():
    a, b, c = simulate_cohort(30, seed=11), simulate_cohort(30, seed=11), simulate_cohort(30, seed=12)
    np.testing.assert_array_equal(a.signals, b.signals)
    pd.testing.assert_frame_equal(a.labs, b.labs)
    pd.testing.assert_frame_equal(a.outcomes, b.outcomes)
    assert not np.array_equal(a.signals, c.signals)
    assert not np.allclose(a.patients["hb"], c.patients["hb"])


def test_shapes_units_and_lead_identities(cohort):
    assert cohort.signals.shape == (400, 12, 1000) and cohort.signals.dtype == np.float32
    assert len(cohort) == 400 and cohort.ecg_table["patient_id"].is_unique
    s = {name: cohort.signals[:, i] for i, name in enumerate(CANONICAL_LEADS)}
    np.testing.assert_allclose(s["III"], s["II"] - s["I"], atol=1e-5)
    np.testing.assert_allclose(s["aVR"], -(s["I"] + s["II"]) / 2, atol=1e-5)
    np.testing.assert_allclose(s["aVF"], s["II"] - s["I"] / 2, atol=1e-5)
    r_amp = np.abs(cohort.signals).max(axis=2)
    assert 0.3 < np.median(r_amp) < 3.0  # plausible millivolts
    ecg = cohort.ecg(5)
    assert isinstance(ecg, Ecg) and ecg.leads == CANONICAL_LEADS and ecg.fs == 100.0
    assert ecg.sex in ("F", "M") and ecg.meta["patient_id"] == cohort.ecg_table["patient_id"].iloc[5]
    other = simulate_cohort(3, seed=0, fs=250, seconds=8)
    assert other.signals.shape == (3, 12, 2000)


def test_hb_distribution_realistic():
    p = simulate_cohort(3000, seed=5, fs=50, seconds=2).patients
    men, women = p.loc[p["sex"] == 0, "hb"], p.loc[p["sex"] == 1, "hb"]
    assert 14.0 < men.median() < 15.5 and 12.5 < women.median() < 14.0
    assert 0.005 < (p["hb"] <= 8).mean() < 0.05 and 0.02 < (p["hb"] <= 10).mean() < 0.12
    assert p["hb"].between(4.0, 19.5).all()


def test_hb_to_ecg_relation_measured_from_signal(cohort):
    """The stated relation holds in features measured from the waveforms, not only in the patient table."""
    feats = np.array([_measured_features(sig, cohort.fs) for sig in cohort.signals])
    hb = cohort.patients["hb"].to_numpy()
    assert np.corrcoef(feats[:, 0], cohort.patients["heart_rate"])[0, 1] > 0.95  # HR is really in the signal
    assert spearmanr(feats[:, 0], hb).statistic < -0.4  # lower Hb -> faster heart rate
    assert spearmanr(feats[:, 1], hb).statistic > 0.2  # lower Hb -> lower HRV
    assert spearmanr(feats[:, 2], hb).statistic > 0.2  # lower Hb -> flatter T waves


def test_labs_timing_units_and_linkage(cohort):
    labs = cohort.labs
    assert {"g/dL", "g/L"} <= set(labs["unit"])
    counts = labs.groupby("patient_id").size().reindex(cohort.patients["patient_id"], fill_value=0)
    assert (counts == 0).any() and (counts >= 2).any()
    canon = read_labs(labs)
    linked = link_labs(cohort.ecg_table, canon, window=(-7, 7))
    info = linked.attrs["link_labs"]
    assert 0.5 < info["n_matched"] / info["n_ecgs"] < 0.95 and info["n_unmatched"] > 0
    truth = cohort.patients.set_index("patient_id")["hb"].reindex(linked["patient_id"]).to_numpy()
    ok = linked["hb"].notna().to_numpy()
    assert np.abs(linked["hb"].to_numpy()[ok] - truth[ok]).max() < 2.0  # draw noise 0.3 g/dL + rounding
    assert np.corrcoef(linked["hb"].to_numpy()[ok], truth[ok])[0, 1] > 0.9
    assert linked["lab_time_delta"].abs().max() <= 7.0
    labels = anemia_labels(linked["hb"], sex=linked["sex"], who=True)
    assert labels.loc[ok, "who_anemia"].mean() > labels.loc[ok, "moderate"].mean() > 0


def test_outcomes_recover_known_hr():
    """Adjusted for age and sex, the low-Hb HR (true 2.0) lies in the 95 % CI and within 35 % of the truth."""
    c = simulate_cohort(4000, seed=21, hr_low_hb=2.0, anemia_fraction=0.25, fs=50, seconds=2)
    out = c.outcomes
    assert out["time"].max() <= 8.0 and 0.05 < out["event"].mean() < 0.5
    assert (out["event"] == (out["true_time"] <= out["time"])).all()
    row = CoxAnalysis().fit(out, "low_hb", adjust=["age", "sex"]).summary_.query("model == 'adjusted'")
    low = row[row["term"] == "low_hb"].iloc[0]
    assert low.ci_lower < 2.0 < low.ci_upper and abs(low.hr / 2.0 - 1) < 0.35
    assert c.true_log_hr["low_hb"] == pytest.approx(np.log(2.0))


def test_simulate_outcomes_options_and_errors():
    x = np.zeros(5000)
    exp = simulate_outcomes(
        x, 0.0, baseline="exponential", rate=0.1, followup=(50.0, 50.0), censor_rate=0.0, seed=1
    )
    assert exp["event"].mean() > 0.99  # 50 time units at rate 0.1: almost everyone has the event
    assert exp["true_time"].mean() == pytest.approx(10.0, rel=0.05)  # exponential mean 1 / rate
    admin = simulate_outcomes(x, 0.0, followup=(1.0, 1.0), censor_rate=0.0, seed=1)
    assert admin["time"].max() <= 1.0 and (admin.loc[admin["event"] == 0, "time"] == 1.0).all()
    two = simulate_outcomes(np.ones((10, 2)), [0.1, 0.2], seed=0)
    assert list(two.columns) == ["time", "event", "true_time"] and len(two) == 10
    with pytest.raises(ConfigError, match="one per column"):
        simulate_outcomes(np.ones((10, 2)), 0.1)
    with pytest.raises(ConfigError, match="baseline"):
        simulate_outcomes(x, 0.1, baseline="gompertz")


def test_two_thousand_ecgs_fast():
    start = time.perf_counter()
    c = simulate_cohort(2000, seed=0)
    elapsed = time.perf_counter() - start
    assert c.signals.shape == (2000, 12, 1000)
    assert elapsed < 20.0, f"simulating 2,000 ECGs took {elapsed:.1f} s (about 1-3 s expected)"
