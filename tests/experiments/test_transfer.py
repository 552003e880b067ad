"""The transfer-learning experiment runner (ecglens.experiments.transfer, ``ecglens experiment transfer``).

End to end: ``configs/transfer_ptbxl.yaml --profile quick`` runs the whole grid on a seeded synthetic cohort
(300 ECGs, 2.5 s at 100 Hz; tiny CNN; 1 epoch): 4 pretraining tasks (none, age, sex, age_sex) x 2 strategies x
2 target sizes = 14 target runs and 3 shared pretraining runs. The numbers mean nothing; the tests check the
bookkeeping: rows, sizes, seeds, shared pretraining, resume, sharding, the protocol check and the figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecglens.cli import app
from ecglens.exceptions import ConfigError
from ecglens.experiments.grid import SyntheticSpec, parse_shard, shard_runs, write_synthetic_cache
from ecglens.experiments.transfer import (
    ALL,
    RESULT_COLUMNS,
    _target_view,
    load_transfer_config,
    mi_labels,
    plan_grid,
    protocol,
    read_results,
    run_transfer,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec.*")

REPO = Path(__file__).resolve().parents[2]
PTBXL = REPO / "configs" / "transfer_ptbxl.yaml"
QUICK = REPO / "configs" / "transfer_quick.yaml"
PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, pd.DataFrame, str]:
    out = tmp_path_factory.mktemp("transfer") / "quick"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = app(["experiment", "transfer", str(PTBXL), "--profile", "quick", "--out", str(out), "--quiet"])
    assert code == 0, buffer.getvalue()
    table = pd.read_csv(out / "results.csv", dtype={"source_size": str, "target_size": str})
    return out, table, buffer.getvalue()


# ------------------------------------------------------------------------------------------- config / plan


def test_quick_profile_turns_the_ptbxl_protocol_into_a_synthetic_smoke_test():
    full = load_transfer_config(PTBXL)
    quick = load_transfer_config(PTBXL, profile="quick")
    assert full.synthetic is None and full.cache == "cache/ptbxl100"
    wanted = {"cnn_baseline", "resnet1d_ribeiro", "xresnet1d50", "resnet_se_gustafsson", "s4"}
    assert wanted <= set(full.grid.models)
    assert full.target.task == "MI" and full.source.folds == (1, 2, 3) and full.target.test_folds == (9,)
    assert len(full.grid.seeds) >= 3 and full.target.sizes[0] <= 100 and full.target.sizes[-1] == ALL
    assert quick.synthetic is not None and list(quick.grid.models) == ["cnn_baseline"]  # models replaced
    assert quick.source_train["optim"]["epochs"] == 1
    assert quick.target.folds == full.target.folds  # the protocol is kept
    assert len(plan_grid(quick)) == 14
    with pytest.raises(ConfigError, match="Unknown profile"):
        load_transfer_config(PTBXL, profile="slow")


def test_plan_seed_limits_and_keys():
    cfg = load_transfer_config(QUICK)
    runs = plan_grid(cfg)
    # none: 2 seeds at size 20 + 1 at "all"; pretrained: 3 tasks x 2 source sizes x 3 (size, seed) x 2
    # strategies
    assert len(runs) == 3 + 3 * 2 * 3 * 2 and len({r.key for r in runs}) == len(runs)
    assert {r.seed for r in runs if r.target_size == ALL} == {0}  # seed_limits {all: 1}
    assert {r.seed for r in runs if r.target_size == 20} == {0, 1}
    assert {r.strategy for r in runs if r.pretrain_task == "none"} == {"scratch"}
    assert all(r.source_size is None for r in runs if r.pretrain_task == "none")
    shared = {r.pretrain.key for r in runs if r.pretrain is not None}
    assert len(shared) == 3 * 2 * 2  # tasks x source sizes x seeds: one pretraining run each


@pytest.mark.parametrize("override, message", [
    ("target.folds=[3, 5]", "disjoint"),
    ("target.task=age", "binary"),
    ("grid.strategies=[scratch]", "not a fine-tuning strategy"),
    ("grid.pretrain_tasks=[none, agee]", "Unknown task"),
    ("target.sizes=[0, 10]", "positive record counts"),
    ("grid.models.resnet99={}", "unknown model"),
    ("source_train.model={name: s4}", "protocol sets them"),
])
def test_bad_configs_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_transfer_config(QUICK, [override])


def test_sharding_partitions_the_grid_by_pretraining_group():
    runs = plan_grid(load_transfer_config(QUICK))
    for n in (1, 2, 3, 5):
        shards = [shard_runs(runs, (i, n)) for i in range(1, n + 1)]
        keys = [r.key for s in shards for r in s]
        assert sorted(keys) == sorted(r.key for r in runs)  # a partition: everything once
        groups = [{r.group for r in s} for s in shards]
        assert sum(len(g) for g in groups) == len(set().union(*groups))  # no group split over shards
        assert shards == [shard_runs(runs, (i, n)) for i in range(1, n + 1)]  # deterministic
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) == (1, 1)
    for bad in ("0/2", "3/2", "x", "1-2"):
        with pytest.raises(ConfigError, match="shard"):
            parse_shard(bad)


def test_dry_run_lists_only_the_shard(tmp_path, capsys):
    code = app(["experiment", "transfer", str(QUICK), "--out", str(tmp_path / "d"), "--shard", "2/3",
                "--dry-run"])
    printed = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    expected = [r.key for r in shard_runs(plan_grid(load_transfer_config(QUICK)), (2, 3))]
    assert code == 0 and printed == expected and not (tmp_path / "d").exists()


def test_synthetic_cache_and_seeded_validation_subsample(tmp_path):
    spec = SyntheticSpec(n_records=120, seed=3, seconds=2.5)
    path = write_synthetic_cache(spec, tmp_path / "syn", mi_labels)
    stamp = (path / "signals.npy").stat().st_mtime_ns
    assert write_synthetic_cache(spec, tmp_path / "syn", mi_labels) == path  # reused, not rewritten:
    assert (path / "signals.npy").stat().st_mtime_ns == stamp
    from ecglens.data.cache import open_cache

    cache = open_cache(path)
    assert cache.signals.shape == (120, 12, 250) and set(cache.meta["MI"].unique()) == {0, 1}
    assert set(cache.meta["fold"]) == set(range(1, 11)) and cache.meta["patient_id"].is_unique
    cfg = load_transfer_config(QUICK, ["target.val_size=5"])
    views = [_target_view(cfg, cache, seed) for seed in (0, 0, 1)]
    kept = [set(np.flatnonzero(v.meta["fold"].to_numpy() == 8)) for v in views]
    assert len(kept[0]) == 5 and kept[0] == kept[1] and kept[0] != kept[2]  # seeded per seed
    assert (views[0].meta["fold"] == 9).sum() == (cache.meta["fold"] == 9).sum()  # test fold untouched


# ----------------------------------------------------------------------------------------------- end to end


def test_results_have_one_tidy_row_per_target_run(quick_run):
    out, table, printed = quick_run
    cfg = load_transfer_config(PTBXL, profile="quick")
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert sorted(table["run_key"]) == sorted(r.key for r in plan_grid(cfg))
    assert "done now: 14 (pretraining runs trained: 3), failed: 0" in printed
    assert not (out / "failures.csv").exists()
    assert table.groupby("pretrain_task")["strategy"].agg(set).to_dict() == {
        "none": {"scratch"}, "age": {"finetune", "linear_probe"}, "sex": {"finetune", "linear_probe"},
        "age_sex": {"finetune", "linear_probe"}}
    for split in ("val", "test"):
        for metric in ("auroc", "auprc"):
            value, low, high = (table[f"{split}_{metric}{s}"] for s in ("", "_low", "_high"))
            assert value.between(0, 1).all()
            assert (low <= value + 1e-12).all() and (value <= high + 1e-12).all()
    cache = pd.read_csv(out / "synthetic_cache" / "meta.csv")
    available = int(cache["fold"].isin([5, 6, 7]).sum())
    assert set(table.loc[table["target_size"] == "20", "n_target"]) == {20}
    assert set(table.loc[table["target_size"] == "all", "n_target"]) == {available}
    assert set(table["n_test"]) == {int((cache["fold"] == 9).sum())}
    assert set(table["test_folds"].astype(str)) == {"9"}
    assert (table["train_time_s"] > 0).all() and table["protocol_hash"].nunique() == 1
    assert set(table["seed"]) == {0} and set(table["subsample_seed"]) == {0}


def test_pretraining_runs_are_shared(quick_run):
    out, table, _ = quick_run
    pre = table[table["pretrain_task"] != "none"]
    assert pre.groupby("pretrain_dir").size().tolist() == [4, 4, 4]  # 2 strategies x 2 target sizes each
    folders = sorted(pre["pretrain_dir"].str.split("/").str[-1].unique())
    assert sorted(p.name for p in (out / "pretrain").iterdir()) == folders
    for folder in pre["pretrain_dir"].unique():
        assert (out / folder / "model.safetensors").is_file() and not (out / folder / "last.ckpt").exists()
    source = int(pd.read_csv(out / "synthetic_cache" / "meta.csv")["fold"].isin([1, 2, 3]).sum())
    assert (pre["n_source"] == source).all()
    assert table.loc[table["pretrain_task"] == "none", "n_source"].eq(0).all()
    run = out / table["run_dir"].iloc[0]
    assert (run / "test_predictions.csv").is_file() and not (run / "model.safetensors").exists()


def test_figures_are_written(quick_run):
    out, _, _ = quick_run
    for name in ("test_auroc_vs_target_size", "test_auroc_gain_vs_source_size",
                 "test_auroc_pretraining_tasks", "test_auroc_gain_by_arm", "test_auprc_vs_target_size"):
        path = out / "figures" / f"{name}.png"
        assert path.is_file() and path.read_bytes()[:4] == PNG and path.stat().st_size > 5000
    summary = pd.read_csv(out / "figures" / "summary.csv")
    assert set(summary["metric"]) == {"test_auroc", "test_auprc"} and len(summary) == 2 * 14
    text = (out / "figures" / "summary.md").read_text()
    assert "AUROC (test)" in text and "from scratch" in text and "Gain over from scratch" in text


def test_resume_skips_finished_runs_and_reuses_pretraining(quick_run):
    out, table, _ = quick_run
    cfg = load_transfer_config(PTBXL, profile="quick")
    again = run_transfer(cfg, out, progress=False, figures=False)
    assert (again.n_skipped, again.n_done, again.n_pretrained) == (14, 0, 0)
    dropped = table[table["pretrain_task"] == "sex"].head(2)
    table[~table["run_key"].isin(dropped["run_key"])].to_csv(out / "results.csv", index=False)
    redo = run_transfer(cfg, out, progress=False, figures=False)
    assert (redo.n_done, redo.n_failed, redo.n_pretrained) == (2, 0, 0)  # the pretraining run was reused
    assert {r.key for r in redo.runs} == set(dropped["run_key"])
    assert sorted(read_results(out)["run_key"]) == sorted(table["run_key"])


def test_a_changed_protocol_is_refused(quick_run, capsys):
    out, _, _ = quick_run
    code = app(["experiment", "transfer", str(PTBXL), "--profile", "quick", "--out", str(out),
                "--set", "target.val_folds=[4]", "--set", "source.val_folds=[8]", "--quiet"])
    assert code == 2 and "different protocol" in capsys.readouterr().err


def test_a_separate_target_cache_takes_the_target_runs(tmp_path):
    # PTB-XL -> external: pretrain on the (synthetic) source cohort, fine-tune and test on another cache
    target = write_synthetic_cache(SyntheticSpec(n_records=160, seed=7, seconds=2.5), tmp_path / "external",
                                   mi_labels)
    from ecglens.data.cache import open_cache

    meta = open_cache(target).meta
    sets = ["--set", f"target.cache={target}", "--set", "grid.pretrain_tasks=[none, age]",
            "--set", "grid.strategies=[finetune]", "--set", "target.sizes=[20]", "--set", "grid.seeds=[0]",
            "--set", "target.folds=[1, 2, 3, 4, 5, 6, 7]"]  # overlaps the source folds: another data set
    out = tmp_path / "ext_run"
    code = app(["experiment", "transfer", str(PTBXL), "--profile", "quick", "--out", str(out), "--quiet",
                "--no-figures", *sets])
    assert code == 0
    table = read_results(out)
    assert sorted(table["pretrain_task"]) == ["age", "none"]
    assert set(table["n_test"]) == {int((meta["fold"] == 9).sum())}  # the test fold of the target cache
    assert set(table["n_val"]) == {int((meta["fold"] == 8).sum())}
    source_meta = open_cache(out / "synthetic_cache").meta
    assert int((source_meta["fold"] == 9).sum()) != int((meta["fold"] == 9).sum())  # so the check means something
    assert (out / "pretrain").is_dir() and "target_data" in (out / "experiment.yaml").read_text()
    # without target.cache the protocol (and so the hash of existing folders) has no trace of the option
    plain = protocol(load_transfer_config(QUICK))
    assert "target_data" not in plain and "cache" not in plain["target"]
    with pytest.raises(ConfigError, match="disjoint"):
        load_transfer_config(QUICK, [f"target.cache={target}", "target.test_folds=[7]"])
    # a target cache at another sampling rate is refused before any pretraining, with the reason
    slow = write_synthetic_cache(SyntheticSpec(n_records=60, seed=8, fs=50.0, seconds=2.5), tmp_path / "at50hz",
                                 mi_labels)
    cfg = load_transfer_config(PTBXL, [f"target.cache={slow}"], profile="quick")
    with pytest.raises(ConfigError, match=r"prepared differently.*fs: source 100\.0, target 50\.0"):
        run_transfer(cfg, tmp_path / "refused", progress=False, figures=False)
    assert not (tmp_path / "refused" / "pretrain").exists()


def test_summary_and_paired_gains_numbers():
    from scipy import stats

    from ecglens.experiments.figures import gain_summary, paired_gains, summarize, summary_markdown

    rows = []
    for seed, (scratch, tuned) in enumerate([(0.60, 0.70), (0.62, 0.66), (0.58, 0.71)]):
        common = {"model": "m", "target_size": "100", "n_target": 100, "seed": seed}
        rows.append({**common, "pretrain_task": "none", "strategy": "scratch", "source_size": "",
                     "n_source": 0, "test_auroc": scratch, "test_auroc_low": scratch - 0.1,
                     "test_auroc_high": scratch + 0.1})
        rows.append({**common, "pretrain_task": "age", "strategy": "finetune", "source_size": "all",
                     "n_source": 900, "test_auroc": tuned, "test_auroc_low": 0.0, "test_auroc_high": 1.0})
    table = pd.DataFrame(rows)
    summary = summarize(table).set_index("pretrain_task")
    values = np.array([0.60, 0.62, 0.58])
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert summary.loc["none", "mean"] == pytest.approx(0.60) and summary.loc["none", "n_seeds"] == 3
    assert summary.loc["none", "ci_low"] == pytest.approx(0.60 - half)
    one = summarize(table[table["seed"] == 0]).set_index("pretrain_task")  # one seed: the bootstrap CI
    assert (one.loc["none", "ci_low"], one.loc["none", "ci_high"]) == pytest.approx((0.50, 0.70))
    gains = paired_gains(table).sort_values("seed")["gain"].to_numpy()
    np.testing.assert_allclose(gains, [0.10, 0.04, 0.13])
    arm = gain_summary(table).iloc[0]                       # the one pretrained arm: t interval of its gains
    g_half = stats.t.ppf(0.975, 2) * np.std([0.10, 0.04, 0.13], ddof=1) / np.sqrt(3)
    assert (arm["pretrain_task"], arm["strategy"], arm["n_pairs"]) == ("age", "finetune", 3)
    assert (arm["mean"], arm["ci_low"], arm["ci_high"]) == pytest.approx((0.09, 0.09 - g_half, 0.09 + g_half))

    text = summary_markdown(table)
    assert f"| 100 | 0.600 [{0.60 - half:.3f}, {0.60 + half:.3f}] | " in text      # 3 seeds: t interval
    assert "| 100 | +0.090 (3) |" in text                                          # mean paired gain, 3 pairs
    two = summary_markdown(table[table["seed"] < 2])
    assert "| 100 | 0.610 (0.600, 0.620) | 0.680 (0.700, 0.660) |" in two           # 2 seeds: both runs


def test_experiment_command_builds_each_parser_when_it_runs(capsys):
    with pytest.raises(SystemExit) as done:
        app(["experiment", "--help"])
    listing = capsys.readouterr().out
    assert done.value.code == 0 and "transfer" in listing and "compare" in listing
    for name in ("transfer", "compare"):
        with pytest.raises(SystemExit) as done:
            app(["experiment", name, "--help"])  # --help reaches the experiment's own parser
        assert done.value.code == 0 and f"ecglens experiment {name}" in capsys.readouterr().out
    assert app(["experiment"]) == 2
