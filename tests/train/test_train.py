"""Training: configs (YAML, overrides, errors), schedules, the dataset / data module, fit, resume and the CLI.

The end-to-end tests train a tiny CNN for a few seconds on a synthetic cohort whose age effect is known: every
beat's amplitude is ``0.3 + 0.02 * (age - 20)`` mV (times a per-lead gain in 0.8-1.2), and lead V1 is twice as
large in women and half as large in men; white noise of 0.05 mV is added. A model that learns anything must
beat the predict-the-training-mean baseline on the validation folds.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ecglens.cli import app
from ecglens.data.dataset import CacheDataset, EcgDataModule, split_by_folds, subsample_indices
from ecglens.data.targets import task_from_name
from ecglens.exceptions import CheckpointError, ConfigError
from ecglens.signal.transforms import Preprocess
from ecglens.train.config import (
    SCHEDULES,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    save_config,
)

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "configs" / "quick_synthetic.yaml"
FS, SECONDS = 100.0, 2.5


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op torch thread


def synthetic_cohort(n: int = 120, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame, Preprocess]:
    """Signals ``[n, 12, 250]`` (mV, 100 Hz, 2.5 s) whose amplitude grows with age and V1 depends on sex."""
    rng = np.random.default_rng(seed)
    pre = Preprocess(fs=FS, seconds=SECONDS, highpass_hz=None)
    t = np.arange(pre.n_samples) / FS
    age = rng.uniform(20, 80, n)
    sex = (rng.random(n) < 0.5).astype(float)
    hr = rng.normal(60, 3, n)[:, None]
    beats = np.exp(-(((((t[None] * hr / 60) + rng.uniform(0, 1, (n, 1))) % 1) - 0.5) ** 2) / 0.002)
    sig = (0.3 + 0.02 * (age - 20))[:, None, None] * beats[:, None, :] * rng.uniform(0.8, 1.2, (n, 12, 1))
    sig[:, 6] *= np.where(sex == 1, 2.0, 0.5)[:, None]
    sig = (sig + rng.normal(0, 0.05, sig.shape)).astype(np.float32)
    age[3], sex[5] = np.nan, np.nan
    meta = pd.DataFrame(
        {
            "record_id": [f"r{i:03d}" for i in range(n)],
            "source": "synthetic",
            "path": "",
            "age": age,
            "sex": sex,
            "fold": np.arange(n) % 10 + 1,
            "patient_id": [f"p{i}" for i in range(n)],
        }
    )
    return sig, meta, pre


def write_cache(out: Path, signals: np.ndarray, meta: pd.DataFrame, pre: Preprocess) -> Path:
    """Write the three files of an ecglens cache folder (what ``open_cache`` reads)."""
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "signals.npy", signals)
    meta.to_csv(out / "meta.csv", index=False)
    manifest = {
        "format": "ecglens-cache/1",
        "preprocess": pre.to_dict(),
        "fs": pre.fs,
        "n_samples": pre.n_samples,
        "leads": list(pre.leads),
        "dtype": "float32",
        "shape": list(signals.shape),
        "n_accepted": len(signals),
        "n_rejected": 0,
        "rejected": [],
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return write_cache(tmp_path_factory.mktemp("cache") / "synthetic", *synthetic_cohort())


@pytest.fixture
def memory_cache():
    sig, meta, pre = synthetic_cohort(n=60)
    return SimpleNamespace(signals=sig, meta=meta, preprocess=pre)


# ----------------------------------------------------------------------------------------------- config


def test_config_yaml_round_trip_and_typed_overrides(tmp_path):
    cfg = load_config(
        QUICK,
        [
            "optim.lr=3e-4",
            "trainer.devices=2",
            "model.kwargs.dropout=0.1",
            "data.val_folds=[9]",
            "trainer.max_time='00:00:05:00'",
            "trainer.patience=null",
        ],
    )
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.trainer.devices == 2 and cfg.trainer.max_time == "00:00:05:00" and cfg.trainer.patience is None
    assert cfg.model.kwargs == {"channels": [8, 16], "kernel_size": 5, "dropout": 0.1}
    assert cfg.data.val_folds == (9,)
    again = load_config(save_config(cfg, tmp_path / "c.yaml"))
    assert again == cfg and config_to_dict(again) == config_to_dict(cfg)
    assert load_config(None) == TrainConfig()


def test_unknown_keys_and_bad_values_name_what_is_valid():
    with pytest.raises(ConfigError, match=r"'optim.lrr'.*Did you mean 'lr'.*weight_decay"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"Valid keys: name, data, model"):
        load_config(None, ["optimizer.lr=1"])
    with pytest.raises(ConfigError, match=r"optim.epochs: expected int, got 'ten'"):
        load_config(None, ["optim.epochs=ten"])
    with pytest.raises(
        ConfigError, match=r"optim.schedule: 'linear' is not one of onecycle, cosine, constant"
    ):
        load_config(None, ["optim.schedule=linear"])
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="is a float, not a section"):
        load_config(None, ["optim.lr.max=1"])
    with pytest.raises(ConfigError, match="trainer.seed: expected int, got 1.5"):
        load_config(None, ["trainer.seed=1.5"])


def test_bad_yaml_file_reports_the_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("data:\n  cach: x\n")
    with pytest.raises(ConfigError, match=r"'data.cach'.*Did you mean 'cache'"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


TRAIN_CONFIGS = ("age_sex.yaml", "age.yaml", "sex.yaml", "quick_synthetic.yaml")  # `ecglens train` configs


@pytest.mark.parametrize("path", [REPO / "configs" / n for n in TRAIN_CONFIGS], ids=lambda p: p.name)
def test_shipped_configs_load_and_name_real_models_and_tasks(path):
    from ecglens.models import create_model
    from ecglens.train.loop import build_augment, build_task, monitor_names

    cfg = load_config(path)
    task = build_task(cfg)
    model = create_model(cfg.model.name, in_leads=12, num_outputs=task.num_outputs, **cfg.model.kwargs)
    assert model.eval()(torch.zeros(1, 12, 256)).shape == (1, task.num_outputs)
    assert cfg.trainer.monitor in monitor_names(task)
    assert (build_augment(cfg) is None) == (not cfg.augment.enabled)
    if path.name != "quick_synthetic.yaml":  # the PTB-XL configs keep fold 10 out and validate on fold 9
        assert cfg.data.train_folds == tuple(range(1, 9)) and cfg.data.val_folds == (9,)


# ----------------------------------------------------------------------------------------------- schedules


def test_schedules_are_the_configured_ones_and_have_their_shape():
    from ecglens.train.module import _SCHEDULES, lr_lambda

    assert set(_SCHEDULES) == set(SCHEDULES)
    one = lr_lambda(OptimConfig(schedule="onecycle", warmup_fraction=0.25), 100)
    assert (
        one(0) == pytest.approx(1 / 25) and one(25) == pytest.approx(1.0) and one(100) == pytest.approx(1e-4)
    )
    assert all(one(i) <= one(i - 1) for i in range(26, 101)) and all(
        one(i) > one(i - 1) for i in range(1, 26)
    )
    cos = lr_lambda(OptimConfig(schedule="cosine"), 100)
    assert (
        cos(0) == pytest.approx(1.0)
        and cos(50) == pytest.approx(0.5, abs=1e-3)
        and cos(100) == pytest.approx(1e-4)
    )
    assert lr_lambda(OptimConfig(schedule="constant"), 10)(7) == 1.0


# ----------------------------------------------------------------------------------------------- data


def test_cache_dataset_items_and_train_only_augmentation(memory_cache):
    labels = task_from_name("age_sex").labels_from_meta(memory_cache.meta)
    calls = []

    def augment(x, fs, rng):
        calls.append(fs)
        return x + rng.normal(0, 1, x.shape)

    ds = CacheDataset(memory_cache.signals, labels, [4, 9], augment=augment, fs=FS, seed=1)
    x, y = ds[1]
    assert x.dtype == torch.float32 and x.shape == (12, 250) and len(ds) == 2
    assert not np.allclose(x.numpy(), memory_cache.signals[9]) and calls == [FS]
    np.testing.assert_array_equal(y.numpy(), labels[9])
    plain = CacheDataset(memory_cache.signals, labels, [9])
    np.testing.assert_array_equal(plain[0][0].numpy(), memory_cache.signals[9])
    again = CacheDataset(memory_cache.signals, labels, [4, 9], augment=augment, fs=FS, seed=1)
    np.testing.assert_array_equal(again[1][0].numpy(), x.numpy())  # seeded augmentation is reproducible


def test_memmapped_dataset_pickles_its_file_not_its_data(cache_dir):
    import pickle

    sig = np.load(cache_dir / "signals.npy", mmap_mode="r")
    ds = CacheDataset(sig, np.zeros((len(sig), 1)), [0, 5])
    blob = pickle.dumps(ds)
    assert len(blob) < sig.nbytes / 10
    np.testing.assert_array_equal(pickle.loads(blob)[1][0].numpy(), sig[5])


def test_datamodule_splits_by_fold_fits_on_train_and_augments_train_only(memory_cache):
    def aug(x, fs, rng):
        return x

    dm = EcgDataModule(memory_cache, task_from_name("age_sex"), augment=aug, batch_size=8, num_workers=0)
    folds = memory_cache.meta["fold"].to_numpy()
    assert set(folds[dm.train_indices]) == set(range(1, 9)) and set(folds[dm.val_indices]) == {9}
    train_ages = memory_cache.meta["age"].to_numpy()[dm.train_indices]
    assert dm.task.targets[0].mean == pytest.approx(np.nanmean(train_ages))
    assert dm.train_dataset().augment is aug and dm.val_dataset().augment is None
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 12, 250) and y.shape == (8, 2)
    table = dm.splits_table()
    assert (table["split"] == "val").sum() == dm.split_info["n_val"] == len(dm.val_indices)


def test_subsampling_is_seeded_and_recorded(memory_cache):
    kw = {"train_fraction": 0.5, "subsample_seed": 3, "num_workers": 0}
    a = EcgDataModule(memory_cache, task_from_name("age"), **kw)
    b = EcgDataModule(memory_cache, task_from_name("age"), **kw)
    np.testing.assert_array_equal(a.train_indices, b.train_indices)
    assert a.split_info["n_train"] == len(a.train_indices) == a.split_info["n_train_available"] // 2
    assert len(subsample_indices(np.arange(100), 1.0, max_n=7, seed=0)) == 7
    with pytest.raises(ConfigError, match="train_fraction"):
        subsample_indices(np.arange(10), 0.0)


def test_unlabelled_rows_are_dropped_and_bad_splits_refused(memory_cache):
    dm = EcgDataModule(memory_cache, task_from_name("age"), num_workers=0)
    assert 3 not in dm.train_indices and 3 not in dm.val_indices  # row 3 has no age
    with pytest.raises(ConfigError, match="both train_folds and val_folds"):
        split_by_folds(np.arange(10), [1, 2], [2])
    with pytest.raises(ConfigError, match=r"validation split is empty.*folds present"):
        EcgDataModule(memory_cache, task_from_name("age"), val_folds=[11], num_workers=0)
    shared = memory_cache.meta.copy()
    shared.loc[shared["fold"] == 9, "patient_id"] = "p0"
    leaky = SimpleNamespace(signals=memory_cache.signals, meta=shared, preprocess=memory_cache.preprocess)
    with pytest.raises(ConfigError, match="patient-disjoint"):
        EcgDataModule(leaky, task_from_name("age"), num_workers=0)


# ----------------------------------------------------------------------------------------------- fit


def test_cli_training_beats_the_mean_baseline_and_writes_a_complete_run(cache_dir, tmp_path, capsys):
    from ecglens.artifact import load_checkpoint

    run = tmp_path / "run"
    code = app(
        ["train", str(QUICK), "--set", f"data.cache={cache_dir}", "--out", str(run), "--accelerator", "cpu"]
    )
    assert code == 0 and "validation metrics" in capsys.readouterr().out
    for name in (
        "config.yaml",
        "model.safetensors",
        "metrics.json",
        "history.csv",
        "curves.png",
        "last.ckpt",
        "best.ckpt",
        "splits.csv",
        "val_predictions.csv",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    preds = pd.read_csv(run / "val_predictions.csv")
    meta = pd.read_csv(cache_dir / "meta.csv")
    splits = pd.read_csv(run / "splits.csv")
    train_mean = meta["age"].iloc[splits.loc[splits["split"] == "train", "row"]].mean()
    baseline = np.nanmean(np.abs(preds["label_age"] - train_mean))
    assert metrics["age_mae"] < 0.8 * baseline, (metrics["age_mae"], baseline)
    assert metrics["age_mae"] == pytest.approx(np.nanmean(np.abs(preds["label_age"] - preds["age"])))
    assert set(meta["fold"].iloc[splits.loc[splits["split"] == "val", "row"]]) == {9, 10}
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == list(range(8)) and history["val_loss"].notna().all()
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    ck = load_checkpoint(run / "model.safetensors")
    assert ck.metrics["age_mae"] == pytest.approx(metrics["age_mae"])
    assert ck.config["data"]["cache"] == str(cache_dir) and ck.config["split"]["n_val"] == len(preds)
    assert ck.preprocess.n_samples == 250 and ck.task.targets[0].mean == pytest.approx(train_mean)
    val_rows = splits.loc[splits["split"] == "val", "row"].to_numpy()
    out = ck.predict(np.load(cache_dir / "signals.npy")[val_rows])
    np.testing.assert_allclose(out["age"], preds["age"], rtol=1e-4)
    assert load_config(run / "config.yaml").data.cache == str(cache_dir)


def test_resume_continues_the_epoch_counter_and_the_history(cache_dir, tmp_path):
    from ecglens.train.loop import fit

    cfg = load_config(QUICK, [f"data.cache={cache_dir}", "optim.epochs=1", "augment.enabled=false"])
    run = tmp_path / "run"
    first = fit(cfg, out=run)
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [0]
    with pytest.raises(ConfigError, match="--resume"):
        fit(cfg, out=run)  # never overwrite a run by accident
    second = fit(apply_overrides(cfg, ["optim.epochs=2"]), resume=run)
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1] and history["step"].iloc[1] == 2 * history["step"].iloc[0]
    best = second.metrics["best_epoch"]
    assert history["val_loss"].iloc[best] == pytest.approx(second.metrics["loss"], rel=1e-4)
    assert history["val_loss"].iloc[best] == history["val_loss"].min()
    assert second.metrics["epochs_run"] == 2 and first.metrics["epochs_run"] == 1
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["version_0", "version_1"]
    with pytest.raises(CheckpointError, match="last.ckpt"):
        fit(cfg, resume=tmp_path / "elsewhere")


def test_last_checkpoint_is_the_last_epoch_even_when_the_monitor_did_not_improve(cache_dir, tmp_path):
    # a resume must continue after the last finished epoch, not after the best one (the monitor here is
    # train_loss with mode max, so the best epoch is the first: training lowers the loss)
    from ecglens.train.loop import fit

    cfg = load_config(QUICK, [f"data.cache={cache_dir}", "optim.epochs=3", "augment.enabled=false",
                              "trainer.monitor=train_loss", "trainer.monitor_mode=max"])
    run = tmp_path / "run"
    result = fit(cfg, out=run, curves=False)
    history = pd.read_csv(run / "history.csv")
    assert result.metrics["best_epoch"] == 0 == int(history["train_loss"].idxmax())  # the case this is about
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == 2
    assert torch.load(run / "best.ckpt", weights_only=True)["epoch"] == 0
    assert not (run / "curves.png").exists()
    fit(apply_overrides(cfg, ["optim.epochs=4"]), resume=run)
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [0, 1, 2, 3]  # no epoch repeated
    assert (run / "curves.png").is_file()


def test_monitor_null_keeps_the_last_epoch_and_selects_nothing(cache_dir, tmp_path):
    # trainer.monitor=null: the weights of the last epoch are kept (no selection on the validation split)
    from ecglens.artifact import load_checkpoint
    from ecglens.train.loop import fit

    cfg = load_config(QUICK, [f"data.cache={cache_dir}", "optim.epochs=3", "augment.enabled=false",
                              "trainer.monitor=null", "trainer.patience=null"])
    run = tmp_path / "run"
    result = fit(cfg, out=run, curves=False)
    assert result.metrics["best_epoch"] == 2 == result.metrics["epochs_run"] - 1
    assert not (run / "best.ckpt").exists()
    last = torch.load(run / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2
    stored = load_checkpoint(run / "model.safetensors").model.state_dict()
    for key, value in stored.items():
        assert torch.equal(value, last["state_dict"]["model." + key]), key
    with pytest.raises(ConfigError, match="trainer.patience=null"):
        fit(apply_overrides(cfg, ["trainer.patience=2"]), out=tmp_path / "run2")


class _Payload:
    """Unpickling this writes a marker file: a stand-in for code a crafted checkpoint would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("crafted", ["last.ckpt", "best.ckpt"])
def test_resume_refuses_a_crafted_checkpoint_without_running_it(cache_dir, tmp_path, crafted):
    # a run folder received from someone else: nothing in it may be unpickled (issue: code execution on --resume)
    from ecglens.train.loop import fit

    cfg = load_config(QUICK, [f"data.cache={cache_dir}", "optim.epochs=1", "augment.enabled=false",
                              "trainer.monitor=train_loss", "trainer.monitor_mode=max"])
    run = tmp_path / "run"
    fit(cfg, out=run)
    marker = tmp_path / "pwned"
    state = torch.load(run / crafted, weights_only=True)
    state["payload"] = _Payload(marker)
    torch.save(state, run / crafted)
    with pytest.raises(CheckpointError, match=f"{crafted}: refused to load"):
        fit(apply_overrides(cfg, ["optim.epochs=2"]), resume=run)  # best stays epoch 0: its file is loaded
    assert not marker.exists()


def test_monitor_must_be_a_logged_metric(cache_dir, tmp_path):
    from ecglens.train.loop import fit

    cfg = load_config(QUICK, [f"data.cache={cache_dir}", "trainer.monitor=val_age_mea"])
    with pytest.raises(ConfigError, match="val_age_mae"):
        fit(cfg, out=tmp_path / "run")


def test_train_modules_use_no_private_name_of_another_module():
    # training and fine-tuning share one public trainer setup: no `loop._trainer(...)`, no `from .x import _y`
    import ast

    root = REPO / "src" / "ecglens" / "train"
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom | ast.Import) for a in n.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                found += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id in imported and node.attr[:1] == "_" and node.attr[:2] != "__"):
                found.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert not found, found


def test_precision_is_mixed_only_on_gpu():
    from ecglens.train.loop import _precision

    cpu = load_config(None, ["trainer.accelerator=cpu"])
    assert _precision(cpu) == "32-true"
    with pytest.warns(UserWarning, match="needs a GPU"):
        assert _precision(apply_overrides(cpu, ["trainer.precision=16-mixed"])) == "32-true"
    gpu = load_config(None, ["trainer.accelerator=gpu"])
    assert _precision(gpu) == "16-mixed"


def test_ema_weights_are_validated_selected_saved_and_resumed(cache_dir, tmp_path):
    from ecglens.artifact import load_checkpoint
    from ecglens.train.loop import fit

    with pytest.raises(ConfigError, match="ema_decay"):
        load_config(QUICK, ["optim.ema_decay=1.5"])
    cfg = load_config(QUICK, [f"data.cache={cache_dir}", "optim.epochs=1", "optim.ema_decay=0.5",
                              "augment.enabled=false"])
    run = tmp_path / "run"
    fit(cfg, out=run)
    second = fit(apply_overrides(cfg, ["optim.epochs=2"]), resume=run)
    last = torch.load(run / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1 and "current_model_state" in last  # the raw weights travel for the resume
    averaged, raw = last["state_dict"], last["current_model_state"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged if averaged[k].is_floating_point())
    best = torch.load(run / "best.ckpt", weights_only=True)
    shipped = load_checkpoint(run / "model.safetensors").model.state_dict()
    for key, value in shipped.items():  # the saved model is the average of the selected epoch
        torch.testing.assert_close(value, best["state_dict"][f"model.{key}"])
    history = pd.read_csv(run / "history.csv")
    assert history["val_loss"].iloc[second.metrics["best_epoch"]] == pytest.approx(second.metrics["loss"], rel=1e-4)


def test_windows_cover_the_input_and_average_postprocessed_outputs():
    from ecglens.artifact.windows import inference_window, mean_over_windows, window_starts, windowed_raw

    assert window_starts(1000, None) is None and window_starts(400, 400) is None
    assert window_starts(1000, 400) == [0, 300, 600]
    assert inference_window(4.0, 100.0, 1000) == 400
    assert inference_window(None, 100.0, 1000) is None and inference_window(10.0, 100.0, 1000) is None
    seen = []

    def forward(x):
        seen.append(tuple(x.shape))
        return x.mean(dim=(1, 2))[:, None].repeat(1, 3)  # "raw" = the window's mean

    x = torch.arange(2 * 1 * 1000, dtype=torch.float32).reshape(2, 1, 1000)
    raw = windowed_raw(forward, x, 400)
    assert seen == [(6, 1, 400)] and raw.shape == (2, 3, 3)  # one batch of all windows
    for w, start in enumerate([0, 300, 600]):
        torch.testing.assert_close(raw[:, w, 0], x[:, 0, start:start + 400].mean(dim=1))
    assert windowed_raw(forward, x, None).shape == (2, 1, 3)
    task = task_from_name("age_sex", age_loss="gaussian_nll").fit(np.array([[30.0, 0.0], [70.0, 1.0]]))
    r = torch.randn(5, 3, task.num_outputs)
    outs = mean_over_windows(task, r)
    expected = np.mean([task.postprocess(r[:, w])["p_female"] for w in range(3)], axis=0)
    np.testing.assert_allclose(outs["p_female"], expected, rtol=1e-6)


def test_contract_allows_longer_data_but_not_shorter_or_different():
    from ecglens.signal.transforms import contract_mismatches

    model = Preprocess(fs=100, seconds=4).to_dict()
    assert contract_mismatches(model, Preprocess(fs=100, seconds=10).to_dict()) == {}
    assert contract_mismatches(model, Preprocess(fs=100, seconds=2).to_dict()) == {"seconds": (4.0, 2.0)}
    assert set(contract_mismatches(model, Preprocess(fs=500, seconds=10).to_dict())) == {"fs"}


def test_a_model_trained_on_crops_keeps_the_crop_as_its_window(cache_dir, tmp_path):
    """Crops of 1.5 s from 2.5 s records: the checkpoint's contract is 1.5 s, and the run's validation metrics,
    Checkpoint.predict and `ecglens evaluate` all predict the 2.5 s records in windows (0-1.5 s, 1-2.5 s)."""
    from ecglens.artifact import load_checkpoint
    from ecglens.evaluate.runner import evaluate_checkpoint
    from ecglens.train.loop import fit

    cfg = load_config(QUICK, [f"data.cache={cache_dir}", "optim.epochs=2", "augment.spec.crop_seconds=1.5"])
    result = fit(cfg, out=tmp_path / "run")
    ck = load_checkpoint(result.checkpoint_path)
    assert ck.preprocess.seconds == 1.5 and ck.preprocess.n_samples == 150
    signals = np.load(cache_dir / "signals.npy")
    splits = pd.read_csv(result.run_dir / "splits.csv")
    val_rows = splits.loc[splits["split"] == "val", "row"].to_numpy()
    whole = ck.predict(signals[val_rows])
    windows = [ck.predict(signals[val_rows][:, :, s:s + 150]) for s in (0, 100)]
    np.testing.assert_allclose(whole["age"], (windows[0]["age"] + windows[1]["age"]) / 2, rtol=1e-5)
    preds = pd.read_csv(result.run_dir / "val_predictions.csv")
    np.testing.assert_allclose(preds["age"], whole["age"], rtol=1e-4)
    evaluated = evaluate_checkpoint(ck, cache_dir, folds=[9, 10], n_boot=10, progress=False)
    assert evaluated["n_records"] == len(val_rows)
    age_mae = evaluated["outputs"]["age"]["subsets"]["all"]["metrics"]["mae"]["value"]
    assert age_mae == pytest.approx(result.metrics["age_mae"], rel=1e-4)
    history = pd.read_csv(result.run_dir / "history.csv")
    assert history["val_age_mae"].iloc[result.metrics["best_epoch"]] == pytest.approx(result.metrics["age_mae"],
                                                                                        rel=1e-4)
