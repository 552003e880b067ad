"""End-to-end tests of ``ecglens prepare ptbxl|wfdb`` and ``ecglens info`` through ``ecglens.cli.app``.

Synthetic records come from ``test_cache.write_record`` (WFDB written with ``wfdb.wrsamp``); the real-format
fixtures (``../shared/data/fixtures``) are used through the ``fixtures_dir`` fixture (skipped when absent).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("wfdb")

from test_cache import BROKEN, GOOD, make_broken, write_record

from ecglens.cli import app
from ecglens.data.cache import is_cache, open_cache
from ecglens.io import read_ecg
from ecglens.signal.transforms import Preprocess


@pytest.fixture(scope="module")
def wfdb_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good records with different fs/lengths in nested folders, plus the broken ones."""
    root = tmp_path_factory.mktemp("tree")
    for i, (name, fs, seconds, age, sex) in enumerate(GOOD):
        write_record(root / f"site{i % 2}" / "sub", name, fs, seconds, age, sex, seed=i)
    make_broken(root / "broken")
    return root


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = app([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------------------ prepare wfdb
def test_prepare_wfdb_mixed_folder(wfdb_tree, tmp_path, capsys):
    out = tmp_path / "cache"
    code, stdout, _ = run(capsys, "prepare", "wfdb", wfdb_tree, "--out", out, "--fs", "100", "--seconds", "10",
                          "--workers", "2", "--quiet")
    assert code == 0
    assert f"accepted   {len(GOOD)} of {len(GOOD) + len(BROKEN)}" in stdout
    assert f"rejected   {len(BROKEN)}" in stdout and "rejected.csv" in stdout
    for name in BROKEN:
        assert f"- {name}: " in stdout  # each reason is shown (4 <= the 5 shown)
    assert "rec/s" in stdout
    cache = open_cache(out)
    assert sorted(cache.meta["record_id"]) == sorted(g[0] for g in GOOD)
    assert cache.signals.shape == (len(GOOD), 12, 1000)
    # defaults of the command = the Preprocess defaults for everything not given
    assert cache.preprocess == Preprocess(fs=100, seconds=10)
    i = int(np.flatnonzero(cache.meta["record_id"] == "rec500")[0])
    expected = cache.preprocess.apply(read_ecg(cache.meta["path"].iat[i]))
    np.testing.assert_allclose(cache.signals[i], expected, atol=1e-6)
    row = cache.meta.iloc[i]
    assert (row["age"], row["sex"], row["fs_native"]) == (77, 1.0, 500)


def test_prepare_wfdb_follows_linked_folders(wfdb_tree, tmp_path, capsys):
    """A data folder assembled from symbolic links is read like the real one (and a link loop ends)."""
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "site0").symlink_to(wfdb_tree / "site0", target_is_directory=True)
    (linked / "site1").symlink_to(wfdb_tree / "site1", target_is_directory=True)
    (linked / "loop").symlink_to(linked, target_is_directory=True)
    out = tmp_path / "cache"
    code, stdout, _ = run(capsys, "prepare", "wfdb", linked, "--out", out, "--workers", "1", "--quiet")
    assert code == 0
    assert f"accepted   {len(GOOD)} of {len(GOOD)}" in stdout
    assert sorted(open_cache(out).meta["record_id"]) == sorted(g[0] for g in GOOD)


def test_prepare_options_reach_preprocess(wfdb_tree, tmp_path, capsys):
    out = tmp_path / "c"
    code, _, _ = run(capsys, "prepare", "wfdb", wfdb_tree / "site0", "--out", out, "--fs", "50", "--seconds",
                     "4", "--highpass", "0", "--notch", "50", "--normalize", "zscore", "--dtype", "float16",
                     "--workers", "1", "--quiet")
    assert code == 0
    cache = open_cache(out)
    assert cache.preprocess == Preprocess(fs=50, seconds=4, highpass_hz=None, notch_hz=50, normalize="zscore")
    assert cache.signals.shape[1:] == (12, 200) and cache.signals.dtype == np.float16


def test_second_run_up_to_date_and_force(wfdb_tree, tmp_path, capsys):
    out = tmp_path / "c"
    args = ["prepare", "wfdb", wfdb_tree / "site1", "--out", out, "--workers", "1", "--quiet"]
    assert run(capsys, *args)[0] == 0
    created = json.loads((out / "manifest.json").read_text())["created"]
    code, stdout, stderr = run(capsys, *args)
    assert code == 0 and "up to date" in stdout
    assert json.loads((out / "manifest.json").read_text())["created"] == created
    code, _, stderr = run(capsys, *args, "--seconds", "5")
    assert code == 2 and "--force" in stderr
    code, _, _ = run(capsys, *args, "--seconds", "5", "--force")
    assert code == 0 and open_cache(out).signals.shape[-1] == 500


def test_nothing_accepted_exits_nonzero(wfdb_tree, tmp_path, capsys):
    out = tmp_path / "c"
    code, _, stderr = run(capsys, "prepare", "wfdb", wfdb_tree / "broken", "--out", out, "--workers", "1",
                          "--quiet")
    assert code != 0
    assert "none of the 4 records" in stderr
    assert not out.exists()


def test_missing_folder_is_a_clean_error(tmp_path, capsys):
    code, _, stderr = run(capsys, "prepare", "wfdb", tmp_path / "nope", "--out", tmp_path / "c", "--quiet")
    assert code == 2 and "no such folder" in stderr


# ------------------------------------------------------------------------------------------------ prepare ptbxl
def make_ptbxl(root: Path, n: int = 6) -> pd.DataFrame:
    """A PTB-XL-like folder: labels.csv (project schema) + records100/00000/NNNNN_lr at 100 Hz."""
    rows = []
    for i in range(1, n + 1):
        write_record(root / "records100" / "00000", f"{i:05d}_lr", 100, 10.0, seed=i)
        rows.append({"ecg_id": i, "age": 300 if i == 1 else 40 + i, "sex": i % 2, "strat_fold": 1 + i % 3,
                     "filename_lr": f"records100/00000/{i:05d}_lr", "statements": "NORM;SR",
                     "diagnostic_superclass_NORM": 1, "diagnostic_superclass_MI": i % 2,
                     "diagnostic_superclass_STTC": 0, "diagnostic_superclass_CD": 0,
                     "diagnostic_superclass_HYP": 0})
    table = pd.DataFrame(rows)
    table.to_csv(root / "labels.csv", index=False)
    return table


def test_prepare_ptbxl_synthetic_folds(tmp_path, capsys):
    table = make_ptbxl(tmp_path / "ptbxl")
    out = tmp_path / "c"
    code, stdout, _ = run(capsys, "prepare", "ptbxl", tmp_path / "ptbxl", "--out", out, "--folds", "1-2",
                          "--highpass", "0.5", "--workers", "2", "--quiet")
    assert code == 0
    wanted = table[table["strat_fold"].isin([1, 2])]
    cache = open_cache(out)
    assert list(cache.meta["record_id"]) == [str(i) for i in wanted["ecg_id"]]
    assert set(cache.meta["fold"]) == {1, 2}
    assert f"accepted   {len(wanted)} of {len(wanted)}" in stdout
    for column in ("NORM", "MI", "STTC", "CD", "HYP", "statements", "patient_id"):
        assert column in cache.meta
    ages = dict(zip(cache.meta["record_id"], cache.meta["age"], strict=True))
    assert ages.get("1", 90.0) == 90.0  # PTB-XL's 300 is stored as 90
    assert cache.manifest["source"] == "ptbxl"
    np.testing.assert_array_equal(cache.indices(folds=2), np.flatnonzero(cache.meta["fold"] == 2))


def test_prepare_ptbxl_official_fixture(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "c"
    code, _, _ = run(capsys, "prepare", "ptbxl", fixtures_dir / "ptbxl_official", "--out", out,
                          "--folds", "1-9", "--workers", "2", "--quiet")
    assert code == 0
    cache = open_cache(out)
    assert len(cache) == 40 and cache.manifest["n_rejected"] == 0
    assert cache.meta["patient_id"].notna().all()
    assert set(cache.meta["fs_native"]) == {100.0}


# ------------------------------------------------------------------------------------------------ fixtures
def mirror(src: Path, dst: Path) -> int:
    """Mirror ``src`` into ``dst`` with one symlink per file (folders are real); returns the number of .hea."""
    n_hea = 0
    for path in src.rglob("*"):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, target)
            n_hea += path.suffix == ".hea"
    return n_hea


def test_prepare_wfdb_all_fixtures_plus_broken(fixtures_dir, tmp_path, capsys):
    """Every real record of every fixture folder is accepted; every broken file is rejected with a reason."""
    root = tmp_path / "all"
    n_real = sum(mirror(folder, root / folder.name) for folder in sorted(fixtures_dir.iterdir())
                 if folder.is_dir())
    broken = make_broken(root / "zz_broken")
    out = tmp_path / "c"
    code, _, _ = run(capsys, "prepare", "wfdb", root, "--out", out, "--workers", "2", "--quiet")
    assert code == 0
    cache = open_cache(out)
    manifest = cache.manifest
    assert manifest["n_accepted"] == n_real, manifest["rejected"]
    assert manifest["n_rejected"] == len(broken)
    rejected = {Path(row["path"]).name: row["reason"] for row in manifest["rejected"]}
    assert set(rejected) == set(broken)
    assert all(reason for reason in rejected.values())
    folders = {Path(p).relative_to(root).parts[0] for p in cache.meta["path"]}
    assert folders == {f.name for f in fixtures_dir.iterdir() if f.is_dir() and any(f.rglob("*.hea"))}
    assert set(cache.meta["fs_native"]) >= {100.0, 400.0, 500.0, 1000.0}
    assert np.isfinite(cache.signals).all()


# ------------------------------------------------------------------------------------------------ info
def test_info_record_and_cache(wfdb_tree, tmp_path, capsys):
    hea = next(wfdb_tree.rglob("rec250.hea"))
    code, stdout, _ = run(capsys, "info", hea)
    assert code == 0 and "rec250" in stdout and "250" in stdout
    code, stdout, _ = run(capsys, "info", hea, "--json")
    info = json.loads(stdout)
    assert info["fs_hz"] == 250 and info["n_samples"] == 2000 and info["sex"] == "M" and info["age"] == 41
    assert info["quality"] == "ok" and info["quality_report"]["flags"] == []

    out = tmp_path / "c"
    assert run(capsys, "prepare", "wfdb", wfdb_tree, "--out", out, "--workers", "1", "--quiet")[0] == 0
    code, stdout, _ = run(capsys, "info", out, "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["n_accepted"] == len(GOOD) and summary["n_rejected"] == len(BROKEN)
    assert summary["shape"] == [len(GOOD), 12, 1000]
    code, stdout, _ = run(capsys, "info", out)
    assert code == 0 and "n_accepted" in stdout


def test_info_errors(wfdb_tree, tmp_path, capsys):
    code, _, stderr = run(capsys, "info", wfdb_tree)
    assert code == 2 and "not an ecglens cache" in stderr
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "manifest.json").write_text("{}")
    code, _, stderr = run(capsys, "info", partial)
    assert code == 2 and "not a complete ecglens cache" in stderr
    assert not is_cache(partial)
    code, _, stderr = run(capsys, "info", next(wfdb_tree.rglob("nodat.hea")))
    assert code == 2 and "missing" in stderr


def test_info_checkpoint(tmp_path, capsys):
    """`ecglens info` on a checkpoint prints its model, outputs and input contract (and a short repr)."""
    import torch

    from ecglens.artifact import load_checkpoint, save_checkpoint
    from ecglens.data.targets import task_from_name
    from ecglens.models import create_model

    task = task_from_name("age_sex").fit(np.c_[np.linspace(20, 80, 16), np.arange(16) % 2])
    torch.manual_seed(0)
    model = create_model("cnn_baseline", num_outputs=task.num_outputs, channels=(4, 8))
    path = save_checkpoint(tmp_path / "tiny.safetensors", model, task=task, preprocess=Preprocess(fs=100, seconds=4))
    code, stdout, _ = run(capsys, "info", path, "--json")
    info = json.loads(stdout)
    n_params = sum(p.numel() for p in model.parameters())
    assert code == 0 and info["model"] == "cnn_baseline" and info["parameters"] == n_params
    assert info["outputs"] == list(task.output_names) and "p_female" in info["outputs"]
    assert info["preprocess"]["fs"] == 100 and info["preprocess"]["seconds"] == 4
    code, stdout, _ = run(capsys, "info", path)
    assert code == 0 and "100 Hz x 4 s" in stdout
    text = repr(load_checkpoint(path))
    assert "cnn_baseline" in text and f"{n_params:,} parameters" in text and len(text) < 400


def test_prepare_wfdb_accounts_for_special_headers(tmp_path, capsys):
    # issue #22 item 3: headers without stored signal, naming themselves or each other are rejected, not dropped
    root = tmp_path / "data"
    hea = write_record(root / "good", "ok1", 500, 10, 50, "F", seed=0).with_suffix(".hea")
    text = hea.read_text().splitlines()
    (root / "tilde").mkdir()
    (root / "tilde" / "t.hea").write_text("\n".join(["t" + text[0][3:]] + [
        " ".join(["~", *line.split()[1:]]) for line in text[1:13]]) + "\n")
    (root / "self").mkdir()
    (root / "self" / "me.hea").write_text("me/2 12 500 2000\nme 1000\nme 1000\n")
    (root / "cycle").mkdir()
    (root / "cycle" / "a.hea").write_text("a/1 12 500 2000\nb 2000\n")
    (root / "cycle" / "b.hea").write_text("b/1 12 500 2000\na 2000\n")
    out = tmp_path / "cache"
    code, stdout, _ = run(capsys, "prepare", "wfdb", root, "--out", out, "--workers", "1", "--quiet")
    assert code == 0
    assert "4 records in" in stdout and "records    4 = 1 accepted + 3 rejected" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_accepted"] + manifest["n_rejected"] == manifest["n_records"] == 4
    assert sorted(Path(r["record"]).name for r in manifest["rejected"]) == ["a", "me", "t"]
