"""End-to-end studies: ``ecglens study simulate --quick`` (Hb -> anemia -> survival on a simulated cohort with a
known hazard ratio), ``ecglens study ptbxl-age`` on a tiny fake cache with a tiny checkpoint, and the pieces
(config loading, WFDB writing, patient-level folds)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ecglens.cli import app
from ecglens.data.splits import patient_folds
from ecglens.exceptions import ConfigError
from ecglens.experiments.study_config import default_config, load_study_config
from ecglens.io.wfdb_write import write_wfdb_records

SUMMARY_KEYS = ("true_hazard_ratio", "hazard_ratio", "hazard_ratio_ci", "c_index", "hb_mae", "hb_mae_baseline",
                "hb_pearson_r", "anemia_auroc", "hazard_ratio_contrast", "true_hazard_ratio_contrast", "external")


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "quick"
    assert app(["study", "simulate", "--out", str(out), "--quick", "--quiet"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_quick_simulation_writes_summary_tables_and_figures(quick_study):
    out, summary = quick_study
    assert all(k in summary for k in SUMMARY_KEYS)
    assert summary["true_hazard_ratio"] == pytest.approx(2.0)
    for name in ("hb_metrics", "anemia_metrics", "cox_summary", "test_feature_associations"):
        assert (out / "tables" / f"{name}.csv").is_file() and (out / "tables" / f"{name}.md").is_file()
    for name in ("hb_scatter_test", "hb_scatter_external", "roc_anemia", "test_feature_associations"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert (out / "train" / "model.safetensors").is_file() and (out / "study.md").is_file()
    for table in ("ecgs", "labs", "outcomes"):  # the inputs a hospital would export, as CSV
        assert (out / "inputs" / f"internal_{table}.csv").is_file()


def test_quick_simulation_model_beats_the_mean_and_recovers_the_hazard_ratio(quick_study):
    out, summary = quick_study
    assert summary["hb_mae"] < summary["hb_mae_baseline"]
    assert summary["hb_pearson_r"] > 0.3 and summary["anemia_auroc"] > 0.7
    low, high = summary["hazard_ratio_ci"]
    assert low <= summary["hazard_ratio"] <= high
    assert low / 1.5 <= summary["true_hazard_ratio"] <= high * 1.5  # inside or near the 95 % CI
    assert 0.0 <= summary["c_index"] <= 1.0
    hb = pd.read_csv(out / "tables" / "hb_metrics.csv").set_index("split")
    assert set(hb.index) == {"validation", "test", "external"}
    assert (hb["mae_ci_low"] <= hb["mae"]).all() and (hb["mae"] <= hb["mae_ci_high"]).all()
    anemia = pd.read_csv(out / "tables" / "anemia_metrics.csv")
    assert set(anemia["split"]) == {"test", "external"}  # the threshold comes from validation, never tested there
    assert anemia.groupby("level")["flag_if_pred_le"].nunique().eq(1).all()  # one threshold for both test sets


def test_quick_simulation_splits_are_patient_disjoint(quick_study):
    out, _ = quick_study
    splits = pd.read_csv(out / "train" / "splits.csv")
    meta = pd.read_csv(out / "cache" / "internal" / "meta.csv").set_index("record_id")
    test = pd.read_csv(out / "tables" / "predictions_test.csv")
    train_patients = set(meta.loc[splits.query("split == 'train'")["record_id"], "patient_id"])
    assert train_patients and not train_patients & set(test["patient_id"])


def test_hb_study_on_exported_tables(quick_study, tmp_path):
    """`ecglens study hb` on CSV files as a hospital would export them (here: a small part of the simulation)."""
    src, _ = quick_study
    args = []
    for cohort, n, prefix in (("internal", 200, ""), ("external", 80, "external-")):
        ecgs = pd.read_csv(src / "inputs" / f"{cohort}_ecgs.csv").iloc[:n].drop(columns=["hb_true", "low_hb_true"])
        for name, table in (("ecgs", ecgs), ("labs", pd.read_csv(src / "inputs" / f"{cohort}_labs.csv")),
                            ("outcomes", pd.read_csv(src / "inputs" / f"{cohort}_outcomes.csv"))):
            keep = table[table["patient_id"].isin(ecgs["patient_id"])]
            keep.to_csv(tmp_path / f"{cohort}_{name}.csv", index=False)
            args += [f"--{prefix}{name}", str(tmp_path / f"{cohort}_{name}.csv")]
    out = tmp_path / "hb"
    assert app(["study", "hb", *args, "--out", str(out), "--quick", "--epochs", "1", "--quiet",
                "--set", "study.n_boot=50", "--set", "study.features.max_records=30"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["true_hazard_ratio"] is None and summary["cohorts"]["internal"]["n_ecgs"] == 200
    assert summary["cohorts"]["internal"]["linkage"]["n_matched"] > 100
    assert summary["external"]["hb_n"] > 40 and np.isfinite(summary["hb_mae"])
    cox = pd.read_csv(out / "tables" / "cox_summary.csv")
    assert "true_low_hb" not in set(cox["analysis"])  # no simulated truth in real tables


def test_load_study_config_checks_keys_profiles_and_overrides():
    cfg = load_study_config(overrides=["study.n_boot=7", "train.optim.epochs=2"], profile="quick")
    assert cfg["study"].n_boot == 7 and cfg["train"].optim.epochs == 2
    assert cfg["study"].features.method == "peaks"  # from the quick profile
    with pytest.raises(ConfigError, match="n_bot"):
        load_study_config(overrides=["study.n_bot=7"])
    with pytest.raises(ConfigError, match="profile"):
        load_study_config(profile="nope")
    with pytest.raises(ConfigError, match="must start with"):
        load_study_config(overrides=["n_boot=7"])


def test_write_wfdb_records_round_trip(tmp_path):
    from ecglens import read_ecg

    x = np.random.default_rng(0).normal(0, 0.5, (2, 12, 500)).astype(np.float32)
    paths = write_wfdb_records(x, 100.0, ["a", "b"], tmp_path, ages=[61.0, 40.0], sexes=[1.0, 0.0])
    ecg = read_ecg(paths[1])
    assert ecg.fs == 100.0 and ecg.age == 40.0 and ecg.sex == "M"
    np.testing.assert_allclose(ecg.signal, x[1], atol=6e-4)  # 1 uV resolution


def test_patient_folds_keep_patients_together():
    pid = pd.Series(np.repeat([f"p{i}" for i in range(100)], 3))
    folds = patient_folds(pid, (0.5, 0.2, 0.3), seed=1)
    per_patient = pd.Series(folds).groupby(pid.to_numpy()).nunique()
    assert (per_patient == 1).all()
    assert np.bincount(folds)[1:].tolist() == [150, 60, 90]
    assert (patient_folds(pid, (0.5, 0.2, 0.3), seed=1) == folds).all()  # seeded
    other = patient_folds(pid, (1, 1), seed=2, folds=(7, 9))
    assert set(other) == {7, 9} and (pd.Series(other).groupby(pid.to_numpy()).nunique() == 1).all()
    with pytest.raises(ConfigError, match="one positive share per fold"):
        patient_folds(pid, (0.5, 0.5), seed=1)


def test_default_config_is_the_shipped_study_config():
    path = default_config()
    assert path.is_file() and path.name == "study_simulate.yaml"
    assert load_study_config()["simulation"].n_patients >= 1


# ------------------------------------------------------------------------------------------ ptbxl-age
@pytest.fixture()
def tiny_age_setup(tmp_path):
    """A 40-record cache (folds 8/9, PTB-XL-like superclass labels) and an untrained tiny age checkpoint."""
    from ecglens.artifact import save_checkpoint
    from ecglens.data.cache import open_cache, prepare_cache
    from ecglens.data.targets import task_from_name
    from ecglens.experiments.simulate import simulate_cohort
    from ecglens.models import create_model
    from ecglens.signal.transforms import Preprocess

    cohort = simulate_cohort(40, seed=3)
    paths = write_wfdb_records(cohort.signals, cohort.fs, cohort.ecg_table["record_id"].tolist(), tmp_path / "rec")
    rng = np.random.default_rng(0)
    norm = (rng.random(40) < 0.5).astype(float)
    catalogue = cohort.ecg_table.drop(columns="time").assign(
        path=paths, fold=np.where(np.arange(40) < 10, 8, 9), NORM=norm, MI=1 - norm, STTC=0.0, CD=0.0, HYP=0.0)
    prepare_cache(catalogue, tmp_path / "cache", Preprocess(), workers=1, progress=False)
    cache = open_cache(tmp_path / "cache")
    task = task_from_name("age").fit(cache.meta[["age"]].to_numpy())
    model = create_model("cnn_baseline", num_outputs=task.num_outputs, channels=[4, 8], kernel_size=5)
    ckpt = save_checkpoint(tmp_path / "age.safetensors", model, "cnn_baseline", {"channels": [4, 8], "kernel_size": 5},
                           task, cache.preprocess)
    return ckpt, tmp_path / "cache"


def test_ptbxl_age_study_on_a_tiny_cache(tiny_age_setup, tmp_path):
    ckpt, cache = tiny_age_setup
    out = tmp_path / "age_study"
    rc = app(["study", "ptbxl-age", str(ckpt), str(cache), "--folds", "9", "--out", str(out), "--n-boot", "50",
              "--feature-method", "peaks", "--workers", "1", "--quiet"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    gaps = pd.read_csv(out / "tables" / "ecg_age_gap.csv").set_index("subset")
    assert summary["n"] == 30 and gaps.loc["all", "n"] == 30
    assert gaps.loc["healthy", "n"] + gaps.loc["non_healthy", "n"] == 30
    counts = gaps.filter(like="n ECG-age").sum(axis=1) + gaps["n normal"]
    assert (counts == gaps["n"]).all()  # every record in exactly one gap category
    preds = pd.read_csv(out / "tables" / "predictions.csv")
    np.testing.assert_allclose(preds["ecg_age_gap"], preds["age_pred"] - preds["age"])
    assert (out / "figures" / "ecg_age_gap.png").is_file() and (out / "evaluation" / "metrics.json").is_file()
    assoc = pd.read_csv(out / "tables" / "age_feature_associations.csv")
    assert set(assoc["output"]) == {"age_pred", "age", "ecg_age_gap"} and assoc["n"].max() == 30
    with pytest.raises(ConfigError, match="not empty"):
        from ecglens.experiments.study import run_ptbxl_age_study

        run_ptbxl_age_study(ckpt, cache, out)


def test_simulation_study_as_a_resumable_grid_over_seeds(tmp_path, capsys):
    out = tmp_path / "seeds"
    small = ["--quick", "--quiet", "--set", "simulation.n_patients=240", "--set", "external.n_patients=120"]
    assert app(["study", "simulate", "--out", str(out), "--seeds", "3,4", "--shard", "1/2", *small]) == 0
    table = pd.read_csv(out / "results.csv")
    assert list(table["run_key"]) == ["seed3"] and table["run_dir"].iloc[0] == "runs/seed3"  # shard 1/2: seed 3
    row = table.iloc[0]
    assert row["hazard_ratio_low"] <= row["hazard_ratio"] <= row["hazard_ratio_high"]
    assert row["covers_truth"] == (row["hazard_ratio_low"] <= row["true_hazard_ratio"] <= row["hazard_ratio_high"])
    settings = json.loads((out / "runs" / "seed3" / "summary.json").read_text())["settings"]
    assert settings["study"]["seed"] == 3 and settings["train"]["trainer"]["seed"] == 3  # the run's own seed
    assert app(["study", "simulate", "--out", str(out), "--seeds", "3", *small]) == 0  # finished: nothing to run
    assert len(pd.read_csv(out / "results.csv")) == 1
    capsys.readouterr()
    assert app(["study", "simulate", "--out", str(out), "--seeds", "3", *small, "--set", "study.n_boot=7"]) == 2
    assert "different protocol" in capsys.readouterr().err
    assert app(["study", "simulate", "--out", str(tmp_path / "x"), "--shard", "1/2", *small]) == 2  # needs --seeds


def test_quick_simulation_reports_who_mild_anemia_beside_the_fixed_cuts(quick_study):
    out, _ = quick_study
    anemia = pd.read_csv(out / "tables" / "anemia_metrics.csv")
    assert set(anemia["level"]) == {"mild_who", "moderate", "severe"}
    who = anemia[anemia["level"] == "mild_who"]
    assert who["anemia_if_hb_le"].isna().all()  # sex-specific, no single cut
    assert (who["flag_if_pred_le"] - who["flag_if_pred_le_women"]).round(6).eq(1.0).all()  # 13 vs 12 g/dL + offset
    assert (who["n_pos"] > anemia[anemia["level"] == "moderate"]["n_pos"].to_numpy()).all()  # mild is commoner
    assert "WHO mild" in (out / "tables" / "anemia_metrics.md").read_text()


def test_who_anemia_label_is_sex_specific_and_nan_without_sex():
    from ecglens.experiments.study_survival import who_anemia_label, who_score

    df = pd.DataFrame({"hb": [11.9, 12.5, 12.5, np.nan, 12.0], "sex": [1, 1, 0, 0, np.nan],
                       "hb_pred": [12.0, 13.0, 12.0, 14.0, 12.0]})
    y = who_anemia_label(df)
    assert y[:3].tolist() == [1.0, 0.0, 1.0] and np.isnan(y[3]) and np.isnan(y[4])
    assert who_score(df)[:4].tolist() == [0.0, 1.0, -1.0, 1.0]
