"""Tests of ecglens.evaluate.runner, ecglens.evaluate.figures and the ``ecglens evaluate`` command.

Most tests use a fake checkpoint and a fake cache whose predictions are known exactly (the signal of record i is
filled with i, and the fake model looks the prediction up by that index), so the expected metrics are worked out
by hand. One end-to-end test prepares a real cache from the PTB-XL fixtures and evaluates a real (untrained)
checkpoint through the command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ecglens.data.targets import task_from_name
from ecglens.evaluate import figures as F
from ecglens.evaluate import metrics as M
from ecglens.evaluate.runner import (
    evaluate_checkpoint,
    evaluate_predictions,
    format_results,
    health_subsets,
    map_outputs,
    predictions_table,
    write_report,
)
from ecglens.exceptions import ConfigError, EcglensError

SUPER = ["NORM", "MI", "STTC", "CD", "HYP"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cohort(n: int = 120, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Metadata with known health groups and predictions with a known error per group.

    Records cycle through: healthy (NORM only), NORM + MI (non-healthy), STTC only (non-healthy), no label at all
    (in neither subset). Age error: +1 healthy, -3 non-healthy, +10 unlabelled.
    """
    rng = np.random.default_rng(seed)
    kind = np.arange(n) % 4
    labels = {c: np.zeros(n, dtype=int) for c in SUPER}
    labels["NORM"][(kind == 0) | (kind == 1)] = 1
    labels["MI"][kind == 1] = 1
    labels["STTC"][kind == 2] = 1
    age = rng.uniform(20, 95, n).round()
    sex = (np.arange(n) % 2).astype(float)
    meta = pd.DataFrame({"record_id": [f"r{i:03d}" for i in range(n)], "age": age, "sex": sex,
                         "fold": np.where(np.arange(n) < n // 2, 9, 10), **labels})
    error = np.select([kind == 0, kind == 3], [1.0, 10.0], default=-3.0)
    p_female = np.clip(0.7 * sex + 0.3 * rng.random(n), 0, 1)
    outputs = {"age": age + error, "age_std": np.full(n, 5.0), "p_female": p_female,
               **{f"p_{c}": np.clip(0.6 * labels[c] + 0.4 * rng.random(n), 0, 1) for c in SUPER}}
    return meta, outputs


# ------------------------------------------------------------------------------------------------ mapping
def test_health_subsets_follow_the_ptbxl_definition():
    meta, _ = _cohort(8)
    masks = health_subsets(meta)
    assert masks["healthy"].tolist() == [True, False, False, False] * 2
    assert masks["non_healthy"].tolist() == [False, True, True, False] * 2
    assert health_subsets(meta.drop(columns=["HYP"])) == {}


def test_map_outputs_from_task_and_from_the_table():
    meta, outputs = _cohort(8)
    targets, notes = map_outputs(list(outputs), meta, task_from_name("age_sex"))
    pairs = {t.output: (t.column, t.kind) for t in targets}
    assert pairs["age"] == ("age", "regression") and pairs["p_female"] == ("sex", "binary")
    assert pairs["p_MI"] == ("MI", "binary") and "age_std" not in pairs and notes == []
    meta2 = meta.assign(hemoglobin=13.5).drop(columns=["sex"])
    targets2, notes2 = map_outputs(["hemoglobin", "p_female", "p_XYZ", "weird"], meta2)
    assert [(t.output, t.column, t.kind) for t in targets2] == [("hemoglobin", "hemoglobin", "regression")]
    assert any("'sex'" in n for n in notes2) and any("'XYZ'" in n for n in notes2)
    assert any("'weird'" in n for n in notes2)


# --------------------------------------------------------------------------------------------- evaluation
def test_evaluate_predictions_regression_subsets_and_decades():
    meta, outputs = _cohort()
    res = evaluate_predictions(outputs, meta, task=task_from_name("age_sex"), n_boot=200, seed=0)
    age = res["outputs"]["age"]
    assert age["target"] == "age" and age["kind"] == "regression"
    subsets = age["subsets"]
    assert subsets["all"]["n"] == 120 and subsets["healthy"]["n"] == 30 and subsets["non_healthy"]["n"] == 60
    assert subsets["healthy"]["metrics"]["bias"]["value"] == pytest.approx(1.0)
    assert subsets["non_healthy"]["metrics"]["bias"]["value"] == pytest.approx(-3.0)
    assert subsets["non_healthy"]["metrics"]["mae"]["value"] == pytest.approx(3.0)
    assert subsets["all"]["metrics"]["bias"]["value"] == pytest.approx((30 * 1 - 60 * 3 + 30 * 10) / 120)
    ci = subsets["all"]["metrics"]["mae"]
    assert ci["ci_low"] <= ci["value"] <= ci["ci_high"] and ci["n_boot"] == 200
    decades = subsets["all"]["by_decade"]
    assert sum(row["n"] for row in decades) == 120
    table = M.by_decade(meta.age, outputs["age"])
    assert [row["decade"] for row in decades] == table["decade"].tolist()
    np.testing.assert_allclose([row["bias"] for row in decades], table["bias"])
    assert all(row["bias_ci_low"] <= row["bias"] <= row["bias_ci_high"] for row in decades)
    assert "age_std" not in res["outputs"] and res["resampling"] == "record"
    assert res["task"]["name"] == "age_sex" and res["n_records"] == 120


def test_evaluate_predictions_binary_thresholds_and_multilabel():
    meta, outputs = _cohort()
    res = evaluate_predictions(outputs, meta, n_boot=100, seed=1, thresholds={"p_female": 0.6})
    sex = res["outputs"]["p_female"]
    assert sex["target"] == "sex" and sex["threshold"] == 0.6 and sex["threshold_source"] == "given"
    m = sex["subsets"]["all"]["metrics"]
    assert m["auroc"]["value"] == pytest.approx(M.auroc(meta.sex, outputs["p_female"]))
    assert m["sensitivity"]["value"] == pytest.approx(M.sensitivity(meta.sex, outputs["p_female"], 0.6))
    assert sex["subsets"]["all"]["n_pos"] == 60 and sex["subsets"]["all"]["calibration"]["n"] == 120
    assert "default" in res["outputs"]["p_MI"]["threshold_source"]
    labels = res["multilabel"]["labels"]
    assert labels["labels"] == SUPER
    y = meta[SUPER].to_numpy(float)
    s = np.stack([outputs[f"p_{c}"] for c in SUPER], axis=1)
    assert labels["macro_auroc"]["value"] == pytest.approx(M.multilabel_auroc(y, s))
    assert labels["micro_auroc"]["value"] == pytest.approx(M.micro_auroc(y, s))


def test_patient_level_resampling_and_degenerate_labels():
    meta, outputs = _cohort(40)
    meta["patient_id"] = [f"p{i // 4}" for i in range(40)]
    meta["HYP"] = 0  # no positive: HYP metrics are NaN with a note, the rest still works
    res = evaluate_predictions(outputs, meta, n_boot=50)
    assert res["resampling"] == "patient"
    assert res["outputs"]["age"]["subsets"]["all"]["metrics"]["mae"]["n_groups"] == 10
    hyp = res["outputs"]["p_HYP"]["subsets"]["all"]
    assert np.isnan(hyp["metrics"]["auroc"]["value"]) and "only one class" in hyp["note"]
    assert res["multilabel"]["labels"]["macro_auroc"]["n_boot"] == 50
    text = format_results(res)
    assert "p_HYP" in text and "nan" in text and "macro_auroc" in text


def test_bad_output_length_raises():
    meta, outputs = _cohort(8)
    with pytest.raises(EcglensError, match="one value per row"):
        evaluate_predictions({"age": outputs["age"][:5]}, meta, n_boot=10)
    res = evaluate_predictions({"nothing": np.zeros(8)}, meta, n_boot=10)
    assert res["outputs"] == {} and any("nothing was scored" in n for n in res["notes"])


# ------------------------------------------------------------------------------------------------- report
def test_write_report_writes_json_and_figures(tmp_path):
    meta, outputs = _cohort(60)
    meta.loc[0, "sex"] = np.nan
    res = evaluate_predictions(outputs, meta, n_boot=50)
    paths = write_report(res, tmp_path / "rep", outputs, meta)
    data = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert data["outputs"]["age"]["subsets"]["healthy"]["metrics"]["mae"]["value"] == pytest.approx(1.0)
    assert data["outputs"]["p_female"]["subsets"]["all"]["n"] == 59
    expected = {"age_scatter.png", "age_bland_altman.png", "age_decade_bias.png", "p_female_roc.png",
                "p_female_calibration.png", "p_MI_roc.png", "labels_roc.png"}
    assert expected <= set(data["figures"])
    for name in expected:
        assert (tmp_path / "rep" / name).read_bytes()[:8] == PNG_MAGIC
    assert paths["metrics"] == tmp_path / "rep" / "metrics.json"
    table = predictions_table(outputs, meta)
    assert list(table.columns[:5]) == ["record_id", "fold", "true_age", "true_sex", "true_NORM"]
    assert "age_std" in table and len(table) == 60


def test_figures_are_drawn(tmp_path, rng):
    t = rng.normal(60, 12, 300)
    p = t + rng.normal(0, 6, 300)
    y = rng.integers(0, 2, 300)
    s = np.clip(0.4 * y + 0.6 * rng.random(300), 0, 1)
    figs = {"scatter": F.plot_scatter(t, p, label="age", units="years"),
            "ba": F.plot_bland_altman(t, p, label="age", units="years"),
            "roc": F.plot_roc(y, s, label="sex"), "cal": F.plot_calibration(y, s),
            "decade": F.plot_decade_bias(M.by_decade(t, p))}
    for name, fig in figs.items():
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000
    ax = figs["roc"].axes[0]
    F.plot_roc(y, 1 - s, label="inverted", ax=ax)
    assert len(ax.lines) == 3 and "AUROC = " in ax.get_legend().get_texts()[0].get_text()
    ba = figs["ba"].axes[0]
    levels = sorted(line.get_ydata()[0] for line in ba.lines if line.get_color() == "#b22222")
    d = p - t
    np.testing.assert_allclose(levels, [d.mean() - 1.96 * d.std(ddof=1), d.mean(), d.mean() + 1.96 * d.std(ddof=1)])
    one = F.plot_roc(np.ones(5), np.linspace(0, 1, 5))  # one class: no curve, a legend saying why
    assert "undefined" in one.axes[0].get_legend().get_texts()[0].get_text()
    assert F.plot_decade_bias(pd.DataFrame()).axes[0].texts[0].get_text() == "no data"


# ------------------------------------------------------------------------------------- checkpoint (fakes)
@dataclass
class FakePreprocess:
    spec: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.spec)


@dataclass
class FakeCache:
    """Looks like ecglens.data.cache.PreparedCache: signals[i] is filled with i."""

    meta: pd.DataFrame
    preprocess: Any = None
    path: Path = Path("fake-cache")
    manifest: dict = field(default_factory=lambda: {"n_rejected": 2})

    def __post_init__(self) -> None:
        self.signals = np.broadcast_to(np.arange(len(self.meta), dtype=np.float32)[:, None, None],
                                       (len(self.meta), 2, 5))

    def indices(self, folds: Any = None) -> np.ndarray:
        if folds is None:
            return np.arange(len(self.meta))
        folds = [folds] if isinstance(folds, int) else list(folds)
        return np.flatnonzero(self.meta["fold"].isin(folds).to_numpy())


@dataclass
class FakeCheckpoint:
    """Looks like ecglens.artifact.Checkpoint: predictions looked up by the record index in x."""

    outputs: dict[str, np.ndarray]
    task: Any = None
    preprocess: Any = None
    path: Path = Path("fake.safetensors")
    model_name: str = "fake"
    calls: list = field(default_factory=list)
    config: dict | None = None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        idx = x[:, 0, 0].astype(int)
        self.calls.append(len(idx))
        return {k: v[idx] for k, v in self.outputs.items()}


def test_evaluate_checkpoint_with_fakes(tmp_path):
    meta, outputs = _cohort()
    ckpt = FakeCheckpoint(outputs, task=task_from_name("age_sex"))
    res = evaluate_checkpoint(ckpt, FakeCache(meta), folds=[10], out_dir=tmp_path / "ev", n_boot=50,
                              batch_size=16, threshold_folds=9, progress=False)
    assert ckpt.calls[:4] == [16, 16, 16, 12]  # fold 9 (threshold selection), in batches of 16
    assert res["provenance"]["n_evaluated"] == 60 and res["provenance"]["n_rejected_in_cache"] == 2
    val = meta["fold"] == 9
    thr = M.threshold_youden(meta.sex[val], outputs["p_female"][val])
    assert res["outputs"]["p_female"]["threshold"] == pytest.approx(thr)
    test = (meta["fold"] == 10).to_numpy()
    assert res["outputs"]["age"]["subsets"]["all"]["metrics"]["mae"]["value"] == pytest.approx(
        M.mae(meta.age[test], outputs["age"][test]))
    preds = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    assert preds["record_id"].tolist() == meta.record_id[test].tolist()
    np.testing.assert_allclose(preds["age"], outputs["age"][test])
    np.testing.assert_allclose(preds["true_age"], meta.age[test])
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["provenance"]["folds"] == [10]
    with pytest.raises(ConfigError, match="overlap"):
        evaluate_checkpoint(ckpt, FakeCache(meta), folds=[9, 10], threshold_folds=9, n_boot=10, progress=False)
    with pytest.raises(ConfigError, match="no records"):
        evaluate_checkpoint(ckpt, FakeCache(meta), folds=[3], n_boot=10, progress=False)


def test_evaluate_checkpoint_refuses_a_cache_with_other_preprocessing():
    meta, outputs = _cohort(8)
    spec = {"fs": 100.0, "seconds": 10.0, "leads": ["I", "II"], "highpass_hz": 0.5, "notch_hz": None,
            "normalize": "none", "crop": "center"}
    ckpt = FakeCheckpoint(outputs, preprocess=FakePreprocess(spec))
    other = FakeCache(meta, preprocess=FakePreprocess({**spec, "fs": 500.0, "crop": "start"}))
    with pytest.raises(ConfigError, match=r"fs: model 100.0, cache 500.0.*--fs 100.0"):
        evaluate_checkpoint(ckpt, other, n_boot=10, progress=False)
    same = FakeCache(meta, preprocess=FakePreprocess({**spec, "crop": "start"}))  # crop does not matter
    assert evaluate_checkpoint(ckpt, same, n_boot=10, progress=False)["n_records"] == 8


def test_records_of_the_training_folds_are_refused_unless_allowed(tmp_path):
    """Folds 9 and 10 in the cache; the checkpoint trained on fold 9 (its config) -> fold 9 or all refused."""
    meta, outputs = _cohort(40)
    ckpt = FakeCheckpoint(outputs, task=task_from_name("age_sex"), config={"data": {"train_folds": [1, 9]}})
    for folds in (None, [9], [9, 10]):
        with pytest.raises(ConfigError, match=r"20 of (20|40) evaluated records overlap.*folds \[9\].*"
                                              r"--allow-train-folds"):
            evaluate_checkpoint(ckpt, FakeCache(meta), folds=folds, n_boot=10, progress=False)
    assert evaluate_checkpoint(ckpt, FakeCache(meta), folds=[10], n_boot=10, progress=False)["warnings"] == []
    with pytest.warns(UserWarning, match="EVALUATED ON TRAINING DATA"):
        res = evaluate_checkpoint(ckpt, FakeCache(meta), out_dir=tmp_path / "ev", n_boot=10, progress=False,
                                  allow_train_folds=True)
    stored = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert stored["warnings"] == res["warnings"] and "20 of 40" in stored["warnings"][0]


def test_training_records_from_splits_csv_and_ensemble_members_are_refused(tmp_path):
    meta, outputs = _cohort(40)
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    pd.DataFrame({"record_id": ["r030", "r031", "r001"], "fold": [10, 10, 9],
                  "split": ["train", "train", "val"]}).to_csv(run / "splits.csv", index=False)
    ckpt = FakeCheckpoint(outputs, path=run / "model.safetensors")
    with pytest.raises(ConfigError, match=r"2 of 20 .*2 are training records listed in the run's splits.csv"):
        evaluate_checkpoint(ckpt, FakeCache(meta), folds=[10], n_boot=10, progress=False)
    assert evaluate_checkpoint(ckpt, FakeCache(meta), folds=[9], n_boot=10, progress=False)["n_records"] == 20
    member = {"source": str(run / "model.safetensors"), "config": {"data": {"train_folds": [9]}}}
    ens = FakeCheckpoint(outputs, config={"name": "ensemble", "data": None, "ensemble": {"members": [member]}})
    with pytest.raises(ConfigError, match=r"22 of 40 .*20 are in folds \[9\].*2 are training records"):
        evaluate_checkpoint(ens, FakeCache(meta), n_boot=10, progress=False)


# ------------------------------------------------------------------------------------ real modules (e2e)
def test_cli_end_to_end_on_ptbxl_fixtures(fixtures_dir, tmp_path, capsys):
    """prepare a real cache (40 PTB-XL fixture records), save an untrained tiny checkpoint, run the command."""
    from ecglens.artifact import save_checkpoint
    from ecglens.cli import app
    from ecglens.data.cache import prepare_cache
    from ecglens.io.ptbxl import ptbxl_catalogue
    from ecglens.models import create_model
    from ecglens.signal.transforms import Preprocess

    catalogue = ptbxl_catalogue(fixtures_dir / "ptbxl_official")
    preprocess = Preprocess(fs=100, seconds=10)
    prepare_cache(catalogue, tmp_path / "cache", preprocess, workers=1, source="ptbxl", progress=False)
    task = task_from_name("age_sex")
    task = task.fit(task.labels_from_meta(catalogue))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(4, 8))
    ckpt = save_checkpoint(tmp_path / "tiny", model, model_name="cnn_baseline", model_kwargs={"channels": [4, 8]},
                           task=task, preprocess=preprocess)
    out = tmp_path / "eval"
    code = app(["evaluate", str(ckpt), str(tmp_path / "cache"), "--folds", "9", "--threshold-folds", "1-8",
                "--n-boot", "30", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "age" in printed and "p_female" in printed and "mae" in printed and "healthy" in printed
    data = json.loads((out / "metrics.json").read_text())
    assert data["provenance"]["n_evaluated"] == int((catalogue.fold == 9).sum()) == 12
    assert data["resampling"] == "patient" and data["provenance"]["threshold_folds"] == [1, 2, 3, 4, 5, 6, 7, 8]
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 12 and {"true_age", "true_sex", "age", "age_std", "p_female"} <= set(preds.columns)
    assert (out / "age_scatter.png").is_file() and (out / "p_female_roc.png").is_file()
    # a missing cache is a clean error (exit code 2), not a traceback
    assert app(["evaluate", str(ckpt), str(tmp_path / "nope"), "--quiet"]) == 2
    # an existing output folder is never overwritten without --force
    capsys.readouterr()
    assert app(["evaluate", str(ckpt), str(tmp_path / "cache"), "--folds", "9", "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    args = ["evaluate", str(ckpt), str(tmp_path / "cache"), "--n-boot", "10", "--quiet"]
    assert app([*args, "--folds", "9", "--out", str(out), "--force"]) == 0


def test_cli_refuses_the_training_folds_and_names_its_folder_after_the_folds(fixtures_dir, tmp_path, capsys,
                                                                             monkeypatch):
    from ecglens.artifact import save_checkpoint
    from ecglens.cli import app
    from ecglens.data.cache import prepare_cache
    from ecglens.io.ptbxl import ptbxl_catalogue
    from ecglens.models import create_model
    from ecglens.signal.transforms import Preprocess

    catalogue = ptbxl_catalogue(fixtures_dir / "ptbxl_official")
    preprocess = Preprocess(fs=100, seconds=10)
    prepare_cache(catalogue, tmp_path / "cache", preprocess, workers=1, source="ptbxl", progress=False)
    task = task_from_name("age").fit(catalogue[["age"]].to_numpy(dtype=float))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(4, 8))
    ckpt = save_checkpoint(tmp_path / "runs" / "tiny" / "model", model, task=task, preprocess=preprocess,
                           config={"data": {"train_folds": list(range(1, 9)), "val_folds": [9]}})
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", str(ckpt), str(tmp_path / "cache"), "--n-boot", "10", "--quiet"]
    assert app(args) == 2
    err = capsys.readouterr().err
    assert "of 40 evaluated records overlap the training data" in err and "--allow-train-folds" in err
    assert app([*args, "--folds", "9"]) == 0
    assert (tmp_path / "eval_model_cache_fold9" / "metrics.json").is_file()
    assert app([*args, "--allow-train-folds"]) == 0
    assert "WARNING: EVALUATED ON TRAINING DATA" in capsys.readouterr().err
    stored = json.loads((tmp_path / "eval_model_cache_all" / "metrics.json").read_text())
    assert "overlap the training data" in stored["warnings"][0]


def test_the_same_record_number_from_another_source_is_not_a_training_record():
    # LUDB's records 101-300 share their numbers with PTB-XL records: a splits.csv that names each row's source
    # (written since 2026-12-05) tells them apart; one that does not, or a cache without sources, compares ids
    from ecglens.evaluate.overlap import _id_hits

    meta = pd.DataFrame({"record_id": ["101", "102", "103", "104"], "source": ["wfdb", "ptbxl", "", "wfdb"]})
    records = pd.DataFrame({"record_id": ["101", "102", "103", "104"], "source": ["ptbxl", "ptbxl", "ptbxl", ""]})
    assert _id_hits(meta, records).tolist() == [False, True, True, True]
    assert _id_hits(meta.drop(columns="source"), records).tolist() == [True, True, True, True]
