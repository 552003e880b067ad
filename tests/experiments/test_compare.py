"""The model-comparison experiment (``ecglens.experiments.compare``).

End to end: ``configs/compare_quick.yaml`` (a seeded synthetic cohort of 240 2.5-s ECGs written to the output
folder, two tiny CNNs, one epoch, 50 bootstrap resamples) restricted to the tasks age and sex, run as two shards
into one folder and then once more unsharded (which must skip every finished run). The numbers mean nothing;
the tests check the bookkeeping: one row per run with the right metrics present / absent per task, CIs that
bracket their estimates, shards that partition the grid, resume, the protocol check, the Markdown table and the
figure. The table formatting is checked on a hand-made results table with known values.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from ecglens.cli import app
from ecglens.exceptions import ConfigError
from ecglens.experiments.compare import (
    RESULT_COLUMNS,
    load_compare_config,
    plan_grid,
    read_results,
    run_comparison,
    train_config,
    write_comparison_markdown,
)
from ecglens.experiments.grid import shard_runs

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "configs" / "compare_quick.yaml"
PTBXL = REPO / "configs" / "compare_ptbxl.yaml"
TASKS = ["age", "sex"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op torch thread


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """The quick grid (2 models x age, sex) run as shard 1/2, then 2/2, then unsharded, into one folder."""
    out = tmp_path_factory.mktemp("compare") / "quick"
    first = run_comparison(QUICK, out, shard="1/2", tasks=TASKS, progress=False, report=False)
    second = run_comparison(QUICK, out, shard=(2, 2), tasks=TASKS, progress=False, report=False)
    before = (out / "results.csv").read_text()
    again = run_comparison(QUICK, out, tasks=TASKS, progress=False)
    return {"out": out, "first": first, "second": second, "again": again, "csv_before": before}


# ----------------------------------------------------------------------------------------------- end to end


def test_one_row_per_run_with_the_metrics_of_its_task(sharded):
    table = sharded["again"]
    cfg = load_compare_config(QUICK)
    assert sorted(table["run_key"]) == sorted(r.key for r in plan_grid(cfg, tasks=TASKS))
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert set(table["model"]) == {"cnn_baseline", "attia_cnn"} and set(table["task"]) == set(TASKS)
    assert (table["params"] > 0).all() and (table["epochs_run"] == 1).all()
    assert (table["stopped_by"] == "epochs").all() and (table["train_time_s"] > 0).all()
    assert (table["n_val"] > 0).all() and (table["n_train"] > table["n_val"]).all()
    assert set(table["val_folds"].astype(str)) == {"9"} and (table["n_boot"] == 50).all()
    age, sex = table[table["task"] == "age"], table[table["task"] == "sex"]
    for column in ("age_mae", "age_mae_healthy", "age_mae_non_healthy", "age_r"):
        assert age[column].notna().all() and sex[column].isna().all()
        assert (age[f"{column}_low"] <= age[column] + 1e-9).all()
        assert (age[column] <= age[f"{column}_high"] + 1e-9).all()
    assert (age["n_healthy"] + age["n_non_healthy"] == age["n_age"]).all()  # every synthetic record has one class
    for column in ("sex_auroc", "sex_accuracy"):
        assert sex[column].between(0, 1).all() and age[column].isna().all()
        assert (sex[f"{column}_low"] <= sex[column] + 1e-9).all()
        assert (sex[column] <= sex[f"{column}_high"] + 1e-9).all()
    # the same model has the same parameter count whatever the (single-output) task
    assert table.groupby("model")["params"].nunique().eq(1).all()


def test_shards_partition_the_grid_and_a_rerun_skips_finished_runs(sharded):
    first, second = set(sharded["first"]["run_key"]), set(sharded["second"]["run_key"])
    assert len(first) == 2 and len(second) == 4  # each call returns every row so far
    assert (sharded["out"] / "results.csv").read_text() == sharded["csv_before"]  # nothing trained again
    assert len(read_results(sharded["out"])) == 4
    assert not (sharded["out"] / "failures.csv").exists()


def test_run_folders_and_evaluation_written(sharded):
    out = sharded["out"]
    for run_dir in read_results(out)["run_dir"]:
        folder = out / run_dir
        assert (folder / "config.yaml").is_file() and (folder / "eval" / "metrics.json").is_file()
        assert not (folder / "last.ckpt").exists()  # Lightning checkpoints dropped; compare_quick keeps no weights
    assert (out / "experiment.yaml").is_file() and (out / "synthetic_cache" / "manifest.json").is_file()


def test_markdown_table_and_figure_written(sharded):
    out = sharded["out"]
    text = (out / "comparison.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 4  # one per model x task
    assert "figures/comparison.png" in text and "<= 1 epoch, 2 s random crops, batch 16" in text
    age_row = next(r for r in rows if r.startswith("| `cnn_baseline` | age |"))
    mae = sharded["again"].query("model == 'cnn_baseline' and task == 'age'").iloc[0]
    assert f"{mae['age_mae']:.1f} [{mae['age_mae_low']:.1f}, {mae['age_mae_high']:.1f}]" in age_row
    png = out / "figures" / "comparison.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_different_protocol_is_refused_in_the_same_folder(sharded):
    with pytest.raises(ConfigError, match=r"different protocol.*budget"):
        run_comparison(QUICK, sharded["out"], tasks=TASKS, progress=False, overrides=["budget.epochs=2"])


# ----------------------------------------------------------------------------------------------- grid + config


def test_shards_are_a_partition_for_any_n():
    runs = plan_grid(load_compare_config(PTBXL))
    assert len(runs) == 30 and len({r.key for r in runs}) == 30  # 10 models x 3 tasks
    for n in (1, 2, 3, 4, 7):
        parts = [shard_runs(runs, (i, n)) for i in range(1, n + 1)]
        keys = [r.key for part in parts for r in part]
        assert sorted(keys) == sorted(r.key for r in runs) and len(keys) == len(set(keys))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_ptbxl_config_covers_the_zoo_and_applies_one_budget():
    from ecglens.models import list_models

    cfg = load_compare_config(PTBXL)
    assert sorted(cfg.models) == list_models(composite=False) and list(cfg.tasks) == ["age", "sex", "age_sex"]
    assert cfg.train_folds == (1, 2, 3, 4, 5, 6, 7, 8) and cfg.val_folds == (9,) and cfg.cache == "cache/ptbxl100"
    for run in plan_grid(cfg, models="resnet1d_ribeiro,cnn_baseline", tasks=["sex"]):
        tc = train_config(cfg, run, "cache/ptbxl100")
        assert (tc.optim.epochs, tc.optim.batch_size, tc.trainer.max_time) == (6, 128, "00:00:30:00")
        assert tc.augment.enabled and tc.augment.spec["crop_seconds"] == 4.0 and tc.augment.spec["noise_p"] == 0.5
        assert tc.data.val_folds == (9,) and tc.task.name == "sex"
        assert tc.model.kwargs == cfg.model_entry(run.model).kwargs


def test_quick_profile_replaces_the_model_list():
    cfg = load_compare_config(PTBXL, profile="quick")
    assert sorted(cfg.models) == ["attia_cnn", "cnn_baseline"] and cfg.synthetic is not None
    assert cfg.budget.epochs == 1 and cfg.eval.n_boot == 50


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["train.optim.epochs=50"], "train must not set"),
        (["models.cnn_baseline.overrides=[optim.batch_size=8]"], "change the budget"),
        (["models.cnn_baseline.overrides=['augment.spec={crop_seconds: 9}']"], "change the budget"),
        (["val_folds=[8]"], "overlap"),
        (["budget.max_time=30min"], "DD:HH:MM:SS"),
        (["models.nope={}"], "unknown model"),
        (["tasks.age.options={los: l1}"], "Unknown option"),
    ],
)
def test_bad_configs_are_refused_with_a_fix(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_compare_config(QUICK, overrides)


def test_unknown_model_filter_names_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="not in the config's models: cnn_baseline, attia_cnn"):
        run_comparison(QUICK, tmp_path, models="resnet1d_ribeiro", dry_run=True)
    with pytest.raises(ConfigError, match="i/n"):
        run_comparison(QUICK, tmp_path, shard="2of3", dry_run=True)


# ----------------------------------------------------------------------------------------------- report + CLI


def _row(model: str, task: str, **values: float) -> dict:
    row = {"model": model, "task": task, "params": 190_147, "epochs_run": 6, "stopped_by": "epochs",
           "train_time_s": 612.0, "budget": "B", "train_folds": "1 2", "val_folds": "9", "n_val": 2183,
           "n_boot": 1000, "ci_level": 0.95, "resampling": "patient"}
    for name, (value, low, high) in values.items():
        row.update({name: value, f"{name}_low": low, f"{name}_high": high})
    return row


def test_markdown_formats_estimates_with_their_intervals(tmp_path):
    table = pd.DataFrame([
        _row("s4", "sex", sex_auroc=(0.9123, 0.9, 0.925), sex_accuracy=(0.83, 0.81, 0.85)),
        _row("s4", "age", age_mae=(6.94, 6.71, 7.08), age_r=(0.61, 0.58, 0.64), age_mae_healthy=(7.3, math.nan, 8)),
        {**_row("cnn_baseline", "age_sex", age_mae=(7.25, 7.0, 7.5)), "stopped_by": "max_time", "params": 2.2e6},
    ])
    path = write_comparison_markdown(table, tmp_path / "docs" / "compare.md")
    lines = path.read_text().splitlines()
    rows = [line for line in lines if line.startswith("| `")]
    assert [r.split(" | ")[:2] for r in rows] == [["| `s4`", "age"], ["| `s4`", "sex"], ["| `cnn_baseline`", "age_sex"]]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[2:7] == ["190 k", "6", "10.2 min", "6.9 [6.7, 7.1]", "7.3"]  # a CI bound missing: the value alone
    assert cells[8] == "0.61 [0.58, 0.64]" and cells[9] == "—"
    assert "0.912 [0.900, 0.925]" in rows[1] and "0.830 [0.810, 0.850]" in rows[1]
    assert "6 (max time)" in rows[2] and "2.2 M" in rows[2]
    assert any("Budget per run: B" in line and "95 % CI" in line and "1000 resamples" in line for line in lines)
    with pytest.raises(ConfigError, match="run the comparison first"):
        write_comparison_markdown(table.iloc[:0], tmp_path / "empty.md")


def test_compare_subcommand_parses_and_dry_runs(tmp_path, capsys):
    code = app(["experiment", "compare", str(QUICK), "--out", str(tmp_path), "--shard", "2/2", "--models",
                "attia_cnn", "--tasks", "age,sex", "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and "shard 2/2: 1 runs" in printed and "attia_cnn" in printed and "cnn_baseline" not in printed
    assert app(["experiment", "compare", str(QUICK), "--out", str(tmp_path), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("todo") == 6  # 2 models x 3 tasks of compare_quick.yaml
    # nothing to report yet: a clean error
    assert app(["experiment", "compare", str(QUICK), "--out", str(tmp_path), "--report-only"]) == 2
    assert "run the grid first" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing
