"""Seeds, variants and separate test folds in the model comparison (``ecglens.experiments.compare`` +
``compare_seeds``), for issue #23 item 7 (architectures to convergence over seeds, an augmentation ablation).

End to end on ``configs/compare_quick.yaml``'s synthetic cohort: one tiny model, the age_sex task, seeds 0 and 1,
two variants (the default: the budget's crop only; ``noisy``: plus Gaussian noise on every sample), trained on folds
1-7, the epoch selected on fold 8 and the metrics computed on fold 9. The numbers mean nothing; the tests check
the bookkeeping: one row per seed x variant with the right seeds and overrides in its training config, the
summary over seeds, and the paired differences recomputed by hand from the runs' predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecglens.evaluate.metrics import auroc, mae
from ecglens.exceptions import ConfigError
from ecglens.experiments.compare import (
    load_compare_config,
    plan_grid,
    protocol,
    read_results,
    run_comparison,
    train_config,
)
from ecglens.experiments.compare_seeds import paired_differences, seed_summary
from ecglens.experiments.grid import append_row

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "configs" / "compare_quick.yaml"
PTBXL = REPO / "configs" / "compare_ptbxl.yaml"
OVERRIDES = ["seeds=[0, 1]", "train_folds=[1, 2, 3, 4, 5, 6, 7]", "val_folds=[8]", "test_folds=[9]",
             "variants={noisy: {overrides: [augment.spec.noise_p=1.0]}}", "eval.figures=true"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare_seeds") / "quick"
    cfg = load_compare_config(QUICK, OVERRIDES)
    table = run_comparison(cfg, out, models="cnn_baseline", tasks="age_sex", progress=False)
    return {"cfg": cfg, "out": out, "table": table}


def test_one_run_per_seed_and_variant_with_its_own_training_config(grid):
    cfg, table = grid["cfg"], grid["table"]
    runs = plan_grid(cfg, models="cnn_baseline", tasks="age_sex")
    assert [(r.seed, r.variant) for r in runs] == [(0, ""), (0, "noisy"), (1, ""), (1, "noisy")]
    assert runs[0].key == f"{runs[0].model_tag}_{runs[0].task_tag}_s0"  # the default run has no variant tag
    assert runs[1].key == f"{runs[1].model_tag}_{runs[1].task_tag}_{runs[1].variant_tag}_s0"
    assert sorted(table["run_key"]) == sorted(r.key for r in runs) and len({r.key for r in runs}) == 4
    for run in runs:
        tc = train_config(cfg, run, "cache")
        assert tc.trainer.seed == run.seed and tc.data.subsample_seed == run.seed
        assert tc.augment.spec["crop_seconds"] == 2.0  # the budget's crop in every variant
        assert tc.augment.spec.get("noise_p", 0.0) == (1.0 if run.variant == "noisy" else 0.0)
        assert tc.data.train_folds == (1, 2, 3, 4, 5, 6, 7) and tc.data.val_folds == (8,)
    meta = pd.read_csv(grid["out"] / "synthetic_cache" / "meta.csv")
    assert set(table["test_folds"].astype(str)) == {"9"} and set(table["val_folds"].astype(str)) == {"8"}
    assert (table["n_test"] == int((meta["fold"] == 9).sum())).all()
    assert (table["n_val"] == int((meta["fold"] == 8).sum())).all()
    assert set(table["variant"].fillna("")) == {"", "noisy"}
    assert set(table.loc[table["variant"] == "noisy", "variant_overrides"]) == {'["augment.spec.noise_p=1.0"]'}


def test_report_over_seeds_and_paired_differences_written(grid):
    out = grid["out"]
    text = (out / "seeds.md").read_text()
    assert "## Over seeds" in text and "## Paired differences" in text and "figures/seeds.png" in text
    assert (out / "figures" / "seeds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "metrics are on folds 9" in (out / "comparison.md").read_text()
    assert "## Paired differences of single runs" in text
    paired = pd.read_csv(out / "paired.csv")
    assert sorted(paired["metric"]) == ["age_mae", "age_mae", "sex_auroc", "sex_auroc"]
    assert sorted(paired["pairing"]) == ["seed_mean", "seed_mean", "single_runs", "single_runs"]
    assert set(paired["arm"]) == {"noisy"} and set(paired["reference"]) == {"default"}
    assert set(paired["seeds"].astype(str)) == {"0 1"} and (paired["family_size"] == 1).all()


def test_single_run_pairing_averages_the_per_seed_differences(grid):
    out, table = grid["out"], read_results(grid["out"])
    paired = paired_differences(table, out, axis="variant", n_boot=100, pairing="single_runs")
    runs = table.assign(variant=table["variant"].fillna("")).set_index(["variant", "seed"])
    # each run's own metric (results.csv, computed on the same evaluated ECGs) averaged over the two seeds
    age = paired[paired["metric"] == "age_mae"].iloc[0]
    noisy, base = runs.loc["noisy", "age_mae"], runs.loc["", "age_mae"]
    assert age["value_arm"] == pytest.approx(noisy.mean(), abs=1e-4)
    assert age["diff"] == pytest.approx((noisy - base).mean(), abs=1e-4)
    sex = paired[paired["metric"] == "sex_auroc"].iloc[0]
    assert sex["value_reference"] == pytest.approx(runs.loc["", "sex_auroc"].mean(), abs=1e-4)
    assert sex["ci_low"] <= sex["diff"] <= sex["ci_high"]
    with pytest.raises(ConfigError, match="pairing"):
        paired_differences(table, out, pairing="by_patient")


def test_summary_over_seeds_is_the_mean_and_sd_of_the_runs(grid):
    table = grid["table"]
    summary = seed_summary(table)
    assert len(summary) == 2 and (summary["n_seeds"] == 2).all()
    for _, row in summary.iterrows():
        runs = table[table["variant"].fillna("").replace("", "default") == row["variant"]]
        assert row["age_mae_mean"] == pytest.approx(runs["age_mae"].mean())
        assert row["sex_auroc_sd"] == pytest.approx(runs["sex_auroc"].std(ddof=1))
        assert row["age_mae_min"] <= row["age_mae_mean"] <= row["age_mae_max"]


def test_paired_difference_is_recomputed_from_the_seed_averaged_predictions(grid):
    out, table = grid["out"], read_results(grid["out"])
    paired = paired_differences(table, out, axis="variant", n_boot=200)  # reference: the default runs

    def averaged(variant: str) -> pd.DataFrame:
        runs = table[table["variant"].fillna("") == variant]
        frames = [pd.read_csv(out / d / "eval" / "predictions.csv", dtype={"record_id": str}) for d in runs["run_dir"]]
        return pd.concat(frames).groupby("record_id").mean(numeric_only=True).sort_index()

    noisy, base = averaged("noisy"), averaged("")
    age = paired[paired["metric"] == "age_mae"].iloc[0]
    assert age["value_arm"] == pytest.approx(mae(noisy["true_age"], noisy["age"]))
    assert age["diff"] == pytest.approx(mae(noisy["true_age"], noisy["age"]) - mae(base["true_age"], base["age"]))
    sex = paired[paired["metric"] == "sex_auroc"].iloc[0]
    assert sex["value_reference"] == pytest.approx(auroc(base["true_sex"], base["p_female"]))
    for _, r in paired.iterrows():
        assert r["ci_low"] <= r["diff"] + 1e-9 and r["diff"] <= r["ci_high"] + 1e-9
        assert 0 < r["p_value"] <= 1 and r["p_holm"] >= r["p_value"] - 1e-12
        assert r["n_records"] == int(table["n_test"].iloc[0])
    with pytest.raises(ConfigError, match="reference 'nope' is not a variant"):
        paired_differences(table, out, reference="nope")


def test_seeds_and_variants_are_grid_axes_not_protocol():
    two = protocol(load_compare_config(QUICK, ["seeds=[0, 1]"]))
    three = protocol(load_compare_config(QUICK, ["seeds=[0, 1, 2]", "variants={a: {}}"]))
    assert two == three and two["seed"] == "per run"
    plain = protocol(load_compare_config(PTBXL))  # an existing single-seed config keeps its fingerprint keys
    assert plain["seed"] == 0 and "test_folds" not in plain
    assert protocol(load_compare_config(QUICK, ["test_folds=[10]"]))["test_folds"] == [10]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["test_folds=[8]"], "test_folds .* overlap"),
        (["train_folds=[1, 2]", "val_folds=[8]", "test_folds=[8]"], "test_folds .* overlap"),
        (["seeds=[0, 0]"], "distinct"),
        (["variants={a: {kwargs: {x: 1}}}"], "only `overrides`"),
        (["variants={a: {overrides: [optim.epochs=9]}}"], "change the budget"),
        (["variants={a: {overrides: [trainer.seed=3]}}"], "change the budget"),
        (["variants={default: {}}"], "not 'default'"),
        (["variants={a: {models: [s4]}}"], "not in the config's models"),
        (["models.cnn_baseline.models=[cnn_baseline]"], "only a variant"),
    ],
)
def test_bad_seed_variant_and_fold_settings_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_compare_config(QUICK, overrides)


def test_a_results_file_of_another_version_is_not_appended_to(tmp_path):
    path = tmp_path / "results.csv"
    append_row(path, {"a": 1, "b": 2}, ["a", "b"])
    append_row(path, {"a": 3, "b": 4}, ["a", "b"])
    with pytest.raises(ConfigError, match="another version"):
        append_row(path, {"a": 5, "b": 6, "c": 7}, ["a", "b", "c"])
    assert np.array_equal(pd.read_csv(path).to_numpy(), [[1, 2], [3, 4]])


def test_a_variant_restricted_to_one_model_runs_only_for_it():
    cfg = load_compare_config(QUICK, ["variants={no_crop_noise: {overrides: [augment.spec.noise_p=0.5], "
                                      "models: [attia_cnn]}}"])
    runs = plan_grid(cfg, tasks="sex")
    assert [(r.model, r.variant) for r in runs] == [("cnn_baseline", ""), ("attia_cnn", ""),
                                                    ("attia_cnn", "no_crop_noise")]


def test_without_predictions_the_report_says_why_it_has_no_paired_differences(grid, tmp_path):
    table = read_results(grid["out"])
    from ecglens.experiments.compare_seeds import write_seed_report

    files = write_seed_report(table, tmp_path)  # tmp_path holds none of the runs' predictions
    text = files["markdown"].read_text()
    assert "## Over seeds" in text and "Not computed: 4 run(s) have no eval/predictions.csv" in text
    assert "eval.figures: true" in text and pd.read_csv(files["paired"]).empty


def test_state_script_carries_a_comparison_to_a_fresh_folder(grid, tmp_path):
    import importlib.util

    from ecglens.experiments.compare_seeds import write_seed_report

    spec = importlib.util.spec_from_file_location("compare_state", REPO / "scripts" / "compare_state.py")
    state = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(state)
    out, packed, fresh = grid["out"], tmp_path / "state", tmp_path / "fresh"
    assert state.main(["pack", str(out), str(packed)]) == 0
    assert state.pack(out, packed) == 0 and len(list((packed / "predictions").glob("part-*.parquet"))) == 1
    assert state.restore(packed, fresh) == 4 and state.restore(packed, fresh) == 0  # idempotent
    table = read_results(out)
    for run_dir in table["run_dir"]:
        a, b = (pd.read_csv(d / run_dir / "eval" / "predictions.csv", dtype={"record_id": str}) for d in (out, fresh))
        pd.testing.assert_frame_equal(a, b)
    # the restored folder resumes with nothing left to run, and gives the same paired differences
    plan = run_comparison(grid["cfg"], fresh, models="cnn_baseline", tasks="age_sex", dry_run=True)
    assert plan["done"].all() and len(plan) == 4
    p = pd.read_csv(write_seed_report(read_results(fresh), fresh, n_boot=50)["paired"])
    q = paired_differences(table, out, n_boot=50)
    p = p[p["pairing"] == "seed_mean"]
    np.testing.assert_allclose(p["diff"], q["diff"])
    np.testing.assert_allclose(p["ci_low"], q["ci_low"])
