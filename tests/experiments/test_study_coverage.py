"""The realistic hemoglobin simulation (``ecglens.experiments.hb_realistic``) and its coverage study
(``ecglens.experiments.study_coverage``, ``ecglens study realistic / coverage``), on small cohorts."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ecglens.cli import app
from ecglens.exceptions import ConfigError
from ecglens.experiments.hb_realistic import FEATURES, RealisticSettings, anemia_labels, fit_oracle, simulate_realistic
from ecglens.experiments.study_coverage import (
    ESTIMANDS,
    CoverageSettings,
    coverage_table,
    fit_estimands,
    prepare_model,
    result_columns,
    run_coverage,
    run_realistic_study,
    write_coverage_tables,
)

SMALL = CoverageSettings(n_patients=800, truth_patients=6000, truth_cohorts=2, calibration_patients=6000)


def test_simulation_is_seeded_and_has_several_ecgs_per_patient_baseline_first():
    p1, e1 = simulate_realistic(500, 3)
    p2, e2 = simulate_realistic(500, 3)
    pd.testing.assert_frame_equal(p1, p2)
    pd.testing.assert_frame_equal(e1, e2)
    assert len(p1) == 500 and len(e1) > 600  # 1 + Poisson(1.5) ECGs each
    first = e1.groupby("patient_id")["ecg_index"].min()
    assert (first == 0).all() and (e1.loc[e1["ecg_index"] == 0, "ecg_time"] == 0).all()
    later = e1.merge(p1[["patient_id", "time"]], on="patient_id")
    assert (later["ecg_time"] <= later["time"]).all()  # no ECG after death or censoring
    assert set(FEATURES) <= set(e1.columns)


def test_outcomes_exclude_prevalent_hf_and_treat_death_as_competing():
    p, _ = simulate_realistic(20000, 1)
    assert 0.03 < p["prevalent_hf"].mean() < 0.12
    assert p.loc[p["prevalent_hf"] == 1, "hf"].eq(0).all()  # prevalent HF never counts as new HF
    assert (p["hf_time"] <= p["time"] + 1e-12).all()  # HF is observed only before death / censoring
    assert set(p["status"]) == {0, 1, 2}
    assert p["death"].sum() > 1000 and p["hf"].sum() > 500


def test_the_calibrated_oracle_reaches_the_published_r_and_auroc():
    oracle = fit_oracle(RealisticSettings(), n_patients=40000, seed=7)  # another seed than the calibration's
    assert oracle.r == pytest.approx(0.55, abs=0.015)
    assert oracle.auroc == pytest.approx(0.85, abs=0.015)
    stronger = fit_oracle(replace(RealisticSettings(), ecg_signal=1.0), n_patients=40000, seed=7)
    assert stronger.r > 0.75  # ecg_signal = 1 is the (too strong) signal of `study simulate`


def test_who_anemia_is_sex_specific():
    labels = anemia_labels([11.9, 12.5, 12.5, 13.2, 10.0], [1, 1, 0, 0, 0], {"who": None, "le10": 10.0})
    assert labels["who"].tolist() == [1, 0, 1, 0, 1]
    assert labels["le10"].tolist() == [0, 0, 0, 0, 1]


def test_estimands_are_finite_and_the_every_ecg_model_is_clustered():
    model = prepare_model(SMALL)
    p, e = simulate_realistic(1500, 0, SMALL.simulation)
    fits = fit_estimands(p, e, model)
    assert set(fits) == set(ESTIMANDS)
    for fit in fits.values():
        assert np.isfinite([fit["log_hr"], fit["se"]]).all() and fit["low"] < fit["log_hr"] < fit["high"]
    assert fits["hf_per_g_dl"]["n"] == int((p["prevalent_hf"] == 0).sum())
    assert fits["death_per_g_dl_all_ecgs"]["n"] > len(p)
    naive = fit_estimands(p, e, model, robust=False)["death_per_g_dl_all_ecgs"]
    assert naive["log_hr"] == pytest.approx(fits["death_per_g_dl_all_ecgs"]["log_hr"])
    assert naive["se"] == naive["se_model"] == pytest.approx(fits["death_per_g_dl_all_ecgs"]["se_model"])
    assert naive["se"] != pytest.approx(fits["death_per_g_dl_all_ecgs"]["se"])  # the sandwich SE differs


def test_coverage_grid_is_resumable_and_summarised(tmp_path):
    out = tmp_path / "cov"
    rows = run_coverage(SMALL, out, [0, 1, 2], progress=False)
    assert len(rows) == 3 and tuple(rows.columns) == result_columns()
    truth = json.loads((out / "truth.json").read_text())["log_hr"]
    assert set(truth) == set(ESTIMANDS)
    again = run_coverage(SMALL, out, [0, 1, 2, 3], progress=False)  # only seed 3 is new
    assert len(again) == 4 and again["seed"].tolist() == [0, 1, 2, 3]
    table = write_coverage_tables(out, SMALL)
    assert (out / "coverage.md").read_text().startswith("|")
    assert set(table["estimand"]) == set(ESTIMANDS) and (table["seeds"] == 4).all()
    assert table["coverage_pct"].between(0, 100).all() and table["power_pct"].between(0, 100).all()
    one = run_coverage(replace(SMALL, truth_cohorts=1), out, [0, 1, 2, 3], progress=False)  # a new truth only
    assert len(one) == 4 and json.loads((out / "truth.json").read_text())["truth_settings"]["truth_cohorts"] == 1
    with pytest.raises(ConfigError):  # other settings, same folder: refused
        run_coverage(replace(SMALL, n_patients=900), out, [4], progress=False)


def test_coverage_table_counts_cis_that_hold_the_truth():
    res = pd.DataFrame({f"{k}_{c}": v for k in ESTIMANDS for c, v in
                        (("log_hr", [0.1, 0.2, 0.5, 0.3]), ("se", [0.1] * 4), ("low", [0.0, 0.05, 0.35, -0.1]),
                         ("high", [0.2, 0.35, 0.65, 0.7]), ("se_model", [0.1] * 4), ("n", [100] * 4),
                         ("events", [10] * 4))})
    table = coverage_table(res, {k: 0.25 for k in ESTIMANDS}, CoverageSettings()).set_index("estimand")
    row = table.loc["death_per_g_dl"]
    assert row["coverage_pct"] == pytest.approx(50.0)  # [0, .2] misses, [.05, .35] holds, [.35, .65] misses
    assert row["power_pct"] == pytest.approx(50.0)  # [.05, .35] and [.35, .65] exclude log HR 0
    assert row["bias_log_hr"] == pytest.approx(np.mean([0.1, 0.2, 0.5, 0.3]) - 0.25)
    assert row["generating_hr_true_hb"] == pytest.approx(1.15)


def test_realistic_study_writes_oracle_anemia_cox_and_cif(tmp_path):
    s = run_realistic_study(SMALL, tmp_path / "one", seed=0)
    assert 0.4 < s["oracle"]["r_calibration"] < 0.7
    assert {row["level"] for row in s["anemia"]} == {"mild_who", "le10", "le8"}
    assert all(0 <= row["sensitivity"] <= 1 and 0 <= row["specificity"] <= 1 for row in s["anemia"])
    assert {row["estimand"] for row in s["cox"]} == set(ESTIMANDS)
    assert 0 <= s["cif_hf_5y_ecg_anemia_no"] < s["cif_hf_5y_ecg_anemia_yes"] < 1
    assert (tmp_path / "one" / "cif_hf_by_ecg_anemia.png").stat().st_size > 1000


def test_cli_realistic_and_coverage(tmp_path, capsys, monkeypatch):
    import ecglens.experiments.study_coverage as sc

    monkeypatch.setattr(sc, "CoverageSettings", lambda: SMALL)
    assert app(["study", "realistic", "--out", str(tmp_path / "r"), "--n-patients", "600"]) == 0
    assert "oracle: r = " in capsys.readouterr().out
    assert app(["study", "coverage", "--seeds", "2", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    assert "coverage_pct" in capsys.readouterr().out
    assert (tmp_path / "c" / "coverage.csv").is_file()
    assert app(["study", "coverage", "--seeds", "0", "--out", str(tmp_path / "d")]) != 0
    assert "--seeds must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("study", ["realistic", "coverage", "calibrate"])
def test_cli_help_of_the_realistic_studies(study, capsys):
    with pytest.raises(SystemExit) as exit_info:
        app(["study", study, "--help"])
    assert exit_info.value.code == 0 and "--n-patients" in capsys.readouterr().out
