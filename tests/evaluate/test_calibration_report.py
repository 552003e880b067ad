"""Tests of ecglens.evaluate.calibration_report, of the calibration parts of the runner and of ``ecglens calibrate``.

The cohort is simulated with a known miscalibration: predicted age regresses to the mean (slope 0.7), the
predicted SD is 1.4x too small and the sex probabilities are too sharp (temperature 2), so the expected coverage,
ECE direction and per-decade gaps are known before and after calibration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from ecglens.artifact.calibration import Calibration, fit_calibration
from ecglens.data.targets import task_from_name
from ecglens.evaluate.calibration_report import checkpoint_metrics, gap_by_decade, in_sample_note
from ecglens.evaluate.runner import calibrated_outputs, evaluate_checkpoint, evaluate_predictions, format_results


def _cohort(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Age ~ N(60, 15); the ECG measures it with noise SD s_i (7-13 y); the model predicts the posterior mean,
    which regresses to 60 (slope w_i = 225 / (225 + s_i**2), about 0.7), with the posterior SD divided by 1.4."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 15, n)
    noise = rng.uniform(7, 13, n)
    w = 225 / (225 + noise**2)
    pred = 60 + w * (age + rng.normal(0, 1, n) * noise - 60)
    sex = rng.integers(0, 2, n).astype(float)
    logit = 2.5 * (sex - 0.5) + rng.normal(0, 1.2, n)
    meta = pd.DataFrame({"record_id": [f"r{i}" for i in range(n)], "age": age, "sex": sex,
                         "fold": np.where(np.arange(n) % 2 == 0, 9, 10), "patient_id": np.arange(n)})
    outputs = {"age": pred, "age_std": np.sqrt(225 * noise**2 / (225 + noise**2)) / 1.4,
               "p_female": expit(2.0 * logit)}
    return meta, outputs


def test_gap_by_decade_before_and_after_and_the_in_sample_note():
    meta, out = _cohort()
    cal = fit_calibration(out, meta)
    rows = gap_by_decade(meta["age"], out["age"], cal)
    by = {r["decade"]: r for r in rows}
    assert by["30-39"]["gap"] > 5 and by["80-89"]["gap"] < -5  # regression to the mean
    assert abs(by["30-39"]["gap_corrected"]) < 2 and abs(by["80-89"]["gap_corrected"]) < 2
    assert sum(r["n"] for r in rows) == len(meta)
    assert "gap_corrected" not in gap_by_decade(meta["age"], out["age"], None)[0]
    fitted = Calibration(age_slope=1.0, age_intercept=0.0, folds=[9])
    assert "IN-SAMPLE" in in_sample_note(fitted, [9, 10]) and "IN-SAMPLE" in in_sample_note(fitted, "1-9")
    assert in_sample_note(fitted, [10]) is None and in_sample_note(None, [9]) is None


def test_evaluate_reports_coverage_ece_and_gaps_raw_and_calibrated():
    meta, out = _cohort()
    val, test = (meta["fold"] == 9).to_numpy(), (meta["fold"] == 10).to_numpy()
    cal = fit_calibration({k: v[val] for k, v in out.items()}, meta[val].reset_index(drop=True), folds=[9])
    calibrated = calibrated_outputs({k: v[test] for k, v in out.items()}, cal)
    res = evaluate_predictions(calibrated, meta[test].reset_index(drop=True), task=task_from_name("age_sex"),
                               n_boot=20, calibration=cal)
    assert set(res["outputs"]) == {"age", "p_female"} and not any("_raw" in n for n in res["notes"])
    unc = res["outputs"]["age"]["uncertainty"]
    assert unc["coverage_raw"]["1"]["observed"] < 0.6  # the SD was 1.4x too small
    for level in unc["coverage"].values():  # out of sample (fitted on fold 9, checked on fold 10)
        assert level["observed"] == pytest.approx(level["nominal"], abs=0.03)
    sex = res["outputs"]["p_female"]
    assert sex["ece"] < sex["ece_raw"] and sex["ece"] == sex["subsets"]["all"]["calibration"]["ece"]
    assert res["calibration"]["folds"] == [9]
    text = format_results(res)
    assert "coverage of age_std (raw SD)" in text and "coverage of age_std (calibrated SD)" in text
    assert "expected calibration error" in text and "raw -> bias-corrected" in text
    flat = checkpoint_metrics({**res, "provenance": {"folds": [10]}})
    assert flat["folds"] == [10] and flat["age_mae"] == res["outputs"]["age"]["subsets"]["all"]["metrics"]["mae"][
        "value"]
    assert {"age_r", "age_mae_ci", "sex_auroc", "p_female_ece", "p_female_ece_raw", "age_std_coverage_1sd",
            "age_std_coverage_1.96sd", "age_std_coverage_1sd_raw"} <= set(flat)
    json.dumps(flat)  # storable as checkpoint metadata


@dataclass
class _Cache:
    meta: pd.DataFrame
    preprocess: Any = None
    path: Path = Path("fake-cache")
    manifest: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signals = np.broadcast_to(np.arange(len(self.meta), dtype=np.float32)[:, None, None],
                                       (len(self.meta), 2, 5))

    def indices(self, folds: Any = None) -> np.ndarray:
        folds = [folds] if isinstance(folds, int) else list(folds)
        return np.flatnonzero(self.meta["fold"].isin(folds).to_numpy())


@dataclass
class _Checkpoint:
    outputs: dict[str, np.ndarray]
    path: Path
    calibration: Any = None
    task: Any = field(default_factory=lambda: task_from_name("age_sex"))
    preprocess: Any = None
    model_name: str = "fake"
    config: dict | None = None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        idx = x[:, 0, 0].astype(int)
        return {k: v[idx] for k, v in self.outputs.items()}


def test_evaluate_checkpoint_applies_the_stored_calibration(tmp_path):
    meta, out = _cohort(400)
    cal = fit_calibration(out, meta, folds=[9])
    ck = _Checkpoint(out, Path("x.safetensors"), calibration=cal)
    res = evaluate_checkpoint(ck, _Cache(meta), folds=[9], out_dir=tmp_path / "ev", n_boot=10, progress=False)
    assert any("IN-SAMPLE" in n for n in res["notes"])
    assert res["outputs"]["age"]["uncertainty"]["coverage_raw"]["1"]["observed"] < 0.6
    preds = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    assert {"age_std_raw", "p_female_raw", "age_gap", "age_gap_corrected"} <= set(preds.columns)
    np.testing.assert_allclose(preds["age_gap"], preds["age"] - preds["true_age"])
    for name in ("age_coverage.png", "age_gap_by_decade.png", "p_female_calibration.png"):
        assert (tmp_path / "ev" / name).read_bytes()[:4] == b"\x89PNG", name


def test_cli_calibrate_writes_a_checkpoint_with_calibration_and_metrics(tmp_path, monkeypatch, capsys, trained_file):
    import ecglens.artifact as artifact
    import ecglens.data.cache as cache_mod
    from ecglens.artifact import load_checkpoint
    from ecglens.cli import app

    meta, out = _cohort(400)
    two_leads = SimpleNamespace(leads=("I", "II"))
    monkeypatch.setattr(artifact, "load_checkpoint",
                        lambda _path: _Checkpoint(out, trained_file, preprocess=two_leads))
    monkeypatch.setattr(cache_mod, "open_cache", lambda _path: _Cache(meta))
    target = tmp_path / "cal.safetensors"
    args = ["calibrate", str(trained_file), "cache", "--folds", "9", "--out", str(target), "--n-boot", "10",
            "--quiet"]
    assert app([*args, "--eval-folds", "10"]) == 0
    printed = capsys.readouterr().out
    assert "age_std coverage, raw" in printed and "ECE: raw" in printed and "corrected" in printed
    monkeypatch.undo()
    ck = load_checkpoint(target)
    assert ck.calibration.folds == [9] and ck.calibration.age_std_scale == pytest.approx(1.4, rel=0.1)
    assert ck.metrics["folds"] == [10] and ck.metrics["calibration_in_sample"] is False
    assert ck.metrics["age_std_coverage_1sd"] == pytest.approx(0.683, abs=0.05)
    assert "ecglens calibrate" in ck.meta["history"][-1]["note"]
    # the reference amplitudes of site gains: the fake signals' RMS is the record's index, per lead
    fold9 = np.flatnonzero(meta["fold"].to_numpy() == 9)
    assert ck.calibration.lead_rms_mv == pytest.approx({"I": np.median(fold9[fold9 > 0]),
                                                        "II": np.median(fold9[fold9 > 0])})
    assert app(args) == 2  # never overwrites without --force
    assert "already exists" in capsys.readouterr().err


@pytest.fixture
def trained_file(tmp_path):
    """A real (untrained, tiny) checkpoint file for update_checkpoint to copy."""
    from ecglens.artifact import save_checkpoint
    from ecglens.models import create_model

    task = task_from_name("age_sex").fit(np.array([[30.0, 1.0], [70.0, 0.0]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(4, 8))
    return save_checkpoint(tmp_path / "tiny", model, "cnn_baseline", {"channels": [4, 8]}, task)
