"""The fair transfer protocol (issue #23): ``configs/transfer_fair.yaml --profile quick`` end to end, and its parts.

The quick profile runs the protocol on a seeded synthetic cohort (400 ECGs, 2.5 s at 100 Hz, tiny CNN, a 6-step
budget): pretraining on age and age+sex, scratch, fine-tuning and the linear probe, both demographic controls,
the MI and acute_mi targets, 2 seeds; every run tuned on its inner validation split; paired comparisons at the
end. Its numbers mean nothing; the tests check the bookkeeping of the protocol.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecglens.cli import app
from ecglens.data.targets import task_from_name
from ecglens.exceptions import ConfigError
from ecglens.experiments.transfer import (
    NO_PRETRAINING,
    load_transfer_config,
    plan_grid,
    pretrain_config,
    protocol,
)
from ecglens.experiments.transfer_fair import (
    INNER_TRAIN,
    INNER_VAL,
    TUNING_COLUMNS,
    candidates,
    epochs_for_steps,
    inner_split_folds,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec.*")

REPO = Path(__file__).resolve().parents[2]
FAIR = REPO / "configs" / "transfer_fair.yaml"
PTBXL = REPO / "configs" / "transfer_ptbxl.yaml"
ARMS = {"scratch", "finetune", "linear_probe", "demographics_logreg", "scratch_demographics"}


@pytest.fixture(scope="module")
def fair_run(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("fair") / "quick"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = app(["experiment", "transfer", str(FAIR), "--profile", "quick", "--out", str(out), "--quiet"])
    assert code == 0, buffer.getvalue()
    return out, pd.read_csv(out / "results.csv", dtype={"source_size": str, "target_size": str})


def test_quick_profile_runs_every_arm_control_and_target(fair_run):
    out, table = fair_run
    assert not (out / "failures.csv").exists()
    assert set(table["strategy"]) == ARMS and set(table["target_task"]) == {"MI", "acute_mi"}
    assert set(table["pretrain_task"]) == {NO_PRETRAINING, "age", "age_sex"}
    assert len(table) == len(plan_grid(load_transfer_config(FAIR, profile="quick"))) == 28
    # every arm of a cell is scored on the same test ECGs
    assert table.groupby(["target_task", "seed"])["n_test"].nunique().eq(1).all()


def test_every_trained_run_records_its_tuning_and_best_step(fair_run):
    out, table = fair_run
    assert set(TUNING_COLUMNS) <= set(table.columns)
    trained = table[table["strategy"].isin(["scratch", "finetune"])]
    assert trained["lr"].notna().all() and trained["best_step"].between(1, trained["max_steps"].max()).all()
    assert trained["best_is_last"].isin([True, False]).all()
    assert (table.loc[table["strategy"] == "finetune", "n_candidates"] == 2).all()  # lr x lr_decay {1, 0.5}
    assert (table.loc[table["strategy"] == "scratch", "n_candidates"] == 1).all()  # lr only
    row = table[table["strategy"] == "finetune"].iloc[0]
    tried = pd.read_csv(out / Path(row["run_dir"]).parent / "candidates.csv")
    assert tried["chosen"].sum() == 1 and set(tried["lr_decay"]) == {1.0, 0.5}
    assert tried.loc[tried["chosen"], "lr_decay"].item() == row["lr_decay"]


def test_summary_holds_paired_differences_with_cis_and_holm(fair_run):
    out, _ = fair_run
    paired = pd.read_csv(out / "paired.csv")
    assert {"scratch", "demographics_logreg", "scratch_demographics"} == set(paired["reference"])
    assert set(paired["metric"]) == {"auroc", "auprc"} and (paired["n_seeds_arm"] == 2).all()
    ok = paired.dropna(subset=["diff"])
    assert ((ok["ci_low"] <= ok["diff"] + 1e-12) & (ok["diff"] <= ok["ci_high"] + 1e-12)).all()
    assert (ok["p_holm"] >= ok["p_value"] - 1e-12).all()
    primary = paired[paired["primary"]]
    assert set(primary.loc[primary["target_task"] == "acute_mi", "metric"]) == {"auprc"}
    assert set(primary.loc[primary["target_task"] == "MI", "metric"]) == {"auroc"}
    assert "Holm" in (out / "paired.md").read_text()
    assert (out / "figures" / "paired_differences.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "figures" / "main_differences.png").read_bytes().startswith(b"\x89PNG")


def test_main_table_lists_every_arm_against_scratch_and_the_controls(fair_run):
    out, table = fair_run
    text = (out / "paired.md").read_text()
    assert text.startswith("## Main table") and "## Every comparison" in text
    main = text.split("## Every comparison")[0]
    assert "**cnn_baseline, MI (AUROC, fold 9; seeds averaged per ECG)**" in main
    assert "**cnn_baseline, acute_mi (AUPRC, fold 9; seeds averaged per ECG)**" in main
    assert "| size | arm | AUROC | vs scratch | vs scratch + age, sex | vs age + sex LR |" in main
    paired = pd.read_csv(out / "paired.csv")
    r = paired[(paired["arm"] == "age/srcall/finetune") & (paired["reference"] == "scratch")
               & (paired["target_task"] == "MI") & paired["primary"]].iloc[0]
    row = next(line for line in main.splitlines() if line.startswith(f"| {r['target_size']} | `age/srcall/finetune` |")
               and "AUROC" not in line)
    assert f"{r['value_arm']:.3f}" in row and f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" in row
    n_sizes = table.loc[table["target_task"] == "MI", "target_size"].nunique()
    assert main.split("**cnn_baseline, acute_mi")[0].count("| `") == 7 * n_sizes  # 3 from scratch + 4 pretrained


def test_single_run_comparisons_pair_seeds_and_average_the_runs_metrics(fair_run):
    out, table = fair_run
    runs = pd.read_csv(out / "paired_runs.csv", dtype={"target_size": str})
    assert set(runs["reference"]) == {"scratch", "scratch_demographics"} and (runs["n_seeds_arm"] == 2).all()
    r = runs[(runs["arm"] == "age/srcall/finetune") & (runs["reference"] == "scratch") & (runs["metric"] == "auroc")
             & (runs["target_task"] == "MI")].iloc[0]
    rows = table[(table["target_task"] == "MI") & (table["target_size"] == r["target_size"])]
    arm = rows[(rows["pretrain_task"] == "age") & (rows["strategy"] == "finetune")]["test_auroc"].mean()
    scratch = rows[rows["strategy"] == "scratch"]["test_auroc"].mean()
    # the runs' own test AUROCs (results.csv) averaged over seeds are the single-run values and their difference
    assert r["value_arm"] == pytest.approx(arm, abs=1e-9) and r["value_reference"] == pytest.approx(scratch, abs=1e-9)
    assert r["diff"] == pytest.approx(arm - scratch, abs=1e-9) and r["ci_low"] <= r["diff"] <= r["ci_high"]
    text = (out / "paired.md").read_text()
    assert "## Single runs" in text and "**cnn_baseline, MI (AUROC, fold 9; mean of single runs)**" in text


def test_inner_split_is_seeded_patient_disjoint_and_leaves_the_test_fold_alone(rng):
    n = 400
    meta = pd.DataFrame({"fold": rng.integers(1, 10, n), "patient_id": rng.integers(0, 250, n)})
    y = rng.integers(0, 2, n).astype(float)
    y[:10] = np.nan
    a = inner_split_folds(meta, y, tuple(range(1, 9)), (9,), 100, 0.25, seed=3)
    assert np.array_equal(a, inner_split_folds(meta, y, tuple(range(1, 9)), (9,), 100, 0.25, seed=3), equal_nan=True)
    assert not np.array_equal(a, inner_split_folds(meta, y, tuple(range(1, 9)), (9,), 100, 0.25, seed=4),
                              equal_nan=True)
    train, val = meta["patient_id"][a == INNER_TRAIN], meta["patient_id"][a == INNER_VAL]
    assert not set(train) & set(val) and 100 <= (a == INNER_TRAIN).sum() + (a == INNER_VAL).sum() < 110
    assert set(y[a == INNER_VAL]) == {0.0, 1.0} and not np.isnan(y[np.isin(a, (INNER_TRAIN, INNER_VAL))]).any()
    assert np.array_equal(a == 9, meta["fold"].to_numpy() == 9)  # every test ECG, none drawn


def test_case_control_draw_enriches_a_rare_target_with_whole_patients(rng):
    n = 3000
    meta = pd.DataFrame({"fold": rng.integers(1, 10, n), "patient_id": rng.integers(0, 1800, n)})
    y = (rng.random(n) < 0.02).astype(float)  # ~2 % prevalence: a random draw of 100 holds about 2 positives
    pool = tuple(range(1, 9))
    a = inner_split_folds(meta, y, pool, (9,), 100, 0.25, seed=1, case_fraction=0.25)
    drawn = np.isin(a, (INNER_TRAIN, INNER_VAL))
    assert np.array_equal(a, inner_split_folds(meta, y, pool, (9,), 100, 0.25, seed=1, case_fraction=0.25),
                          equal_nan=True)
    assert 25 <= y[drawn].sum() <= 28 and 100 <= drawn.sum() < 106  # 25 % cases; whole patients overshoot a little
    inside = set(meta["patient_id"][drawn])
    assert drawn.sum() == np.isin(meta["patient_id"], list(inside)).sum() - (
        np.isin(meta["patient_id"], list(inside)) & ~np.isin(meta["fold"], pool)).sum()  # all pool ECGs of them
    assert set(y[a == INNER_VAL]) == {0.0, 1.0}
    assert np.array_equal(a == 9, meta["fold"].to_numpy() == 9)  # the test fold keeps its prevalence
    plain = inner_split_folds(meta, y, pool, (9,), 100, 0.25, seed=1)
    assert y[np.isin(plain, (INNER_TRAIN, INNER_VAL))].sum() < 10
    with pytest.raises(ConfigError, match="case_fraction"):
        inner_split_folds(meta, y, pool, (9,), 3000, 0.25, seed=1, case_fraction=0.5)
    with pytest.raises(ConfigError, match="case_fraction"):
        load_transfer_config(FAIR, overrides=["tuning.case_fraction={acute_mi: 1.5}"])


def test_acute_config_is_the_fair_protocol_with_a_case_control_draw():
    acute, fair = load_transfer_config(REPO / "configs" / "transfer_fair_acute.yaml"), load_transfer_config(FAIR)
    assert acute.tuning.case_fraction == {"acute_mi": 0.25} and acute.grid.target_tasks == ("acute_mi",)
    a, f = protocol(acute), protocol(fair)
    assert "case_fraction" not in f["tuning"]  # the MI grid's protocol hash is unchanged by the new option
    for d in (a, f):
        d["tuning"].pop("case_fraction", None), d["tuning"].pop("select_metric"), d.pop("target_tasks")
        d["target"].pop("task")
    assert a == f  # everything else -- data, splits, budgets, tuning, evaluation -- is the MI grid's


def test_candidates_and_step_budget():
    spec = load_transfer_config(FAIR).tuning
    assert len(candidates(spec, "scratch")) == 3 and len(candidates(spec, "finetune")) == 6
    assert len(candidates(spec, "lp_ft")) == 6 and len(candidates(spec, "linear_probe")) == 1
    assert epochs_for_steps(1500, 75, 32) == (750, 2)  # 100 ECGs, 25 % held out: 2 steps per epoch
    assert epochs_for_steps(10, 10, 32) == (10, 1)


def test_pretraining_never_reads_a_target_label():
    cfg = load_transfer_config(FAIR)
    target = {"statements"} | {c for t in cfg.target_tasks for c in task_from_name(t).label_columns}
    for run in {r.pretrain for r in plan_grid(cfg) if r.pretrain is not None}:
        config = pretrain_config(cfg, run, cfg.cache)
        assert not set(task_from_name(config.task.name, **config.task.options).label_columns) & target
    with pytest.raises(ConfigError, match="never be seen in pretraining"):
        load_transfer_config(FAIR, ["grid.pretrain_tasks=[none, MI]"])


def test_fair_rules_and_protocol_hash():
    with pytest.raises(ConfigError, match="val_folds"):
        load_transfer_config(FAIR, ["target.val_folds=[8]"])
    with pytest.raises(ConfigError, match="tuning section"):
        load_transfer_config(PTBXL, ["grid.controls=[demographics_logreg]"])
    with pytest.raises(ConfigError, match="disjoint"):
        load_transfer_config(FAIR, ["source.share_target_ecgs=false"])
    fair = protocol(load_transfer_config(FAIR))
    assert {"tuning", "target_tasks", "controls", "share_target_ecgs"} <= set(fair)
    assert fair != protocol(load_transfer_config(FAIR, ["tuning.max_steps=2000"]))
    assert not {"tuning", "target_tasks", "controls", "share_target_ecgs"} & set(protocol(load_transfer_config(PTBXL)))


def test_transfer_summary_script_pairs_arms_across_result_files(fair_run, tmp_path):
    import importlib.util

    out, table = fair_run
    spec = importlib.util.spec_from_file_location("transfer_summary", REPO / "scripts" / "transfer_summary.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(out / "results.csv"), "--out", str(tmp_path / "all"), "--n-boot", "20"]) == 0
    paired = pd.read_csv(tmp_path / "all" / "paired.csv")
    assert set(paired["reference"]) == {"scratch", "demographics_logreg", "scratch_demographics"}
    assert (paired["n_boot"] <= 20).all()


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_state_script_carries_a_grid_to_a_fresh_folder_and_resumes_it(fair_run, tmp_path):
    out, table = fair_run
    state = _script("transfer_fair_state")
    assert state.main(["pack", str(out), str(tmp_path / "state")]) == 0
    assert state.pack(out, tmp_path / "state") == (0, None)  # nothing new: no second part
    assert len(list((tmp_path / "state" / "predictions").glob("part-*.parquet"))) == 1
    fresh = tmp_path / "fresh"
    assert state.restore(tmp_path / "state", fresh) == len(table)
    assert state.restore(tmp_path / "state", fresh) == 0  # idempotent
    restored = pd.read_csv(fresh / "results.csv", dtype={"source_size": str, "target_size": str})
    assert sorted(restored["run_key"]) == sorted(table["run_key"])
    for run_dir in table["run_dir"]:
        a = pd.read_csv(out / run_dir / "test_predictions.csv", dtype={"record_id": str})
        b = pd.read_csv(fresh / run_dir / "test_predictions.csv", dtype={"record_id": str})
        assert list(a.columns) == list(b.columns) and (a["record_id"] == b["record_id"]).all()
        np.testing.assert_allclose(a.iloc[:, 1], b.iloc[:, 1], rtol=1e-6)
        np.testing.assert_array_equal(a["label"], b["label"])
    # the restored folder resumes (nothing left to run) and its paired tables match the original's
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = app(["experiment", "transfer", str(FAIR), "--profile", "quick", "--out", str(fresh), "--dry-run"])
    assert code == 0 and "already done 28" in buffer.getvalue()
    summary = _script("transfer_summary")
    assert summary.main([str(fresh / "results.csv"), "--out", str(tmp_path / "p"), "--n-boot", "20"]) == 0
    assert summary.main([str(out / "results.csv"), "--out", str(tmp_path / "q"), "--n-boot", "20"]) == 0
    p, q = (pd.read_csv(tmp_path / d / "paired.csv") for d in ("p", "q"))
    np.testing.assert_allclose(p["diff"], q["diff"], atol=1e-6)


def test_targets_filter_runs_part_of_the_grid_under_the_same_protocol(fair_run, capsys):
    out, table = fair_run
    fresh = out.parent / "targets"
    assert app(["experiment", "transfer", str(FAIR), "--profile", "quick", "--out", str(fresh), "--dry-run",
                "--targets", "MI"]) == 0
    printed = capsys.readouterr().out
    keys = [line.strip() for line in printed.splitlines() if line.startswith("  ")]
    assert "grid: 14 target runs" in printed and len(keys) == 14  # half of the quick grid's 28
    assert sorted(keys) == sorted(table.loc[table["target_task"] == "MI", "run_key"])
    # in the finished folder: the same protocol, so every MI run counts as done
    assert app(["experiment", "transfer", str(FAIR), "--profile", "quick", "--out", str(out), "--dry-run",
                "--targets", "MI"]) == 0
    assert "already done 14" in capsys.readouterr().out
    assert app(["experiment", "transfer", str(FAIR), "--profile", "quick", "--out", str(fresh), "--dry-run",
                "--targets", "MI,AMI"]) == 2
    assert "--targets ['AMI'] not among the config's target tasks: MI, acute_mi" in capsys.readouterr().err


def test_paper_table_script_puts_both_analyses_side_by_side(fair_run, tmp_path, capsys):
    out, table = fair_run
    summary = _script("transfer_summary")
    assert summary.main([str(out / "results.csv"), "--out", str(tmp_path), "--n-boot", "20"]) == 0
    capsys.readouterr()
    paper = _script("transfer_paper_table")
    assert paper.main([str(tmp_path), "--target", "MI", "--metric", "auroc"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    averaged = pd.read_csv(tmp_path / "paired.csv", dtype={"target_size": str})
    single = pd.read_csv(tmp_path / "paired_runs.csv", dtype={"target_size": str})
    mi = averaged[(averaged["target_task"] == "MI") & (averaged["metric"] == "auroc")]
    arms = set(mi["arm"]) | {"scratch"}
    assert len(lines) == 2 + len(arms) * mi["target_size"].nunique()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[1] for r in rows[:3]] == ["`scratch`", "`demographics_logreg`", "`scratch_demographics`"]
    # every pretrained arm's cell is the CSV's difference, CI and Holm star, in both analyses
    for r in rows:
        arm = r[1].strip("`")
        if arm in ("scratch", "demographics_logreg", "scratch_demographics"):
            assert r[4] == "" and r[7] == ""
            continue
        for frame, col in ((averaged, 3), (single, 6)):
            hit = frame[(frame["arm"] == arm) & (frame["reference"] == "scratch") & (frame["metric"] == "auroc")
                        & (frame["target_task"] == "MI") & (frame["target_size"] == r[0])].iloc[0]
            star = " *" if hit["significant"] else ""
            assert r[col] == f"{hit['diff']:+.3f} [{hit['ci_low']:+.3f}, {hit['ci_high']:+.3f}]{star}"
            assert r[col - 1] == f"{hit['value_arm']:.3f}"
    with pytest.raises(SystemExit):
        paper.main([str(tmp_path / "nothing"), "--target", "MI"])
