"""Fine-tuning (ecglens.train.finetune and ``ecglens finetune``): strategies, learning rates, fewer leads.

The "pretrained" checkpoint is a tiny ``cnn_baseline`` (channels 8, 16: parameter groups stem, block1 (module
``blocks.0``), head) with
seeded random weights saved with an age + sex task: what matters here is which weights change, not what they
learned. The target is a synthetic MI label that shifts lead V2 by +0.3 mV (100 Hz, 2.5 s, 12 leads).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from ecglens.artifact import load_checkpoint, save_checkpoint
from ecglens.cli import app
from ecglens.data import views
from ecglens.data.dataset import EcgDataModule
from ecglens.data.targets import task_from_name
from ecglens.exceptions import ConfigError, LeadError
from ecglens.leads import CANONICAL_LEADS
from ecglens.models import create_model
from ecglens.signal.transforms import Preprocess
from ecglens.train import loop
from ecglens.train.config import OptimConfig, config_from_dict
from ecglens.train.finetune import (
    STRATEGIES,
    CacheView,
    FinetuneConfig,
    FinetuneModule,
    discriminative_param_groups,
    finetune,
    freeze_frozen_modules,
    load_finetune_config,
    prepare_model,
    set_trainable_groups,
    without_curves,
)

pytestmark = [pytest.mark.filterwarnings("ignore:.*treespec.*")]

REPO = Path(__file__).resolve().parents[2]
FS, SECONDS = 100.0, 2.5
TINY = {"channels": [8, 16], "kernel_size": 5}
EIGHT = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
QUIET = {"accelerator": "cpu", "devices": 1, "precision": "32-true", "num_workers": 0, "num_threads": 1,
         "progress_bar": False, "patience": None, "log_every_n_steps": 1}


def make_cohort(n: int = 80, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame, Preprocess]:
    """12-lead noise with a beat-like bump; MI-positive records have V2 raised by 0.3 mV."""
    rng = np.random.default_rng(seed)
    pre = Preprocess(fs=FS, seconds=SECONDS, highpass_hz=None)
    sig = rng.normal(0.0, 0.1, (n, 12, pre.n_samples)).astype(np.float32)
    sig[:, :, 100:110] += 1.0
    mi = (rng.random(n) < 0.4).astype(float)
    sig[mi == 1, CANONICAL_LEADS.index("V2")] += 0.3
    meta = pd.DataFrame({"record_id": [f"r{i:03d}" for i in range(n)], "age": rng.uniform(20, 80, n),
                         "sex": (rng.random(n) < 0.5).astype(float), "fold": np.arange(n) % 10 + 1,
                         "patient_id": [f"p{i}" for i in range(n)], "MI": mi})
    return sig, meta, pre


@pytest.fixture(scope="module")
def cohort() -> SimpleNamespace:
    sig, meta, pre = make_cohort()
    return SimpleNamespace(signals=sig, meta=meta, preprocess=pre, path="memory")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, cohort) -> Path:
    torch.manual_seed(7)
    task = task_from_name("age_sex").fit(np.c_[cohort.meta["age"], cohort.meta["sex"]])
    model = create_model("cnn_baseline", 12, task.num_outputs, **TINY)
    path = tmp_path_factory.mktemp("pre") / "age_sex.safetensors"
    return save_checkpoint(path, model, task=task, preprocess=cohort.preprocess, metrics={"loss": 1.0})


def train_config(**optim):
    data = {"cache": "memory", "train_folds": [1, 2, 3, 4, 5, 6, 7, 8], "val_folds": [9, 10]}
    optim = {"epochs": 2, "batch_size": 16, "lr": 0.01, "schedule": "constant", **optim}
    return config_from_dict({"name": "ft", "data": data, "task": {"name": "MI"}, "trainer": QUIET,
                             "augment": {"enabled": False}, "optim": optim})


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fit_module(model, cohort, settings: FinetuneConfig, epochs: int = 2) -> tuple[FinetuneModule, L.Trainer]:
    """Train ``model`` with FinetuneModule in a bare Lightning Trainer (no files)."""
    dm = EcgDataModule(cohort, task_from_name("MI"), train_folds=range(1, 9), val_folds=(9, 10),
                       batch_size=16, num_workers=0)
    optim = OptimConfig(lr=0.01, schedule="constant", epochs=epochs)
    module = FinetuneModule(model, dm.task, optim, settings)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return module, trainer


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix) and before[k].dtype.is_floating_point]
    return any(not torch.equal(before[k], after[k]) for k in keys)


# ----------------------------------------------------------------------------------------------- config


def test_strategies_and_settings_are_checked():
    assert set(STRATEGIES) == {"scratch", "linear_probe", "finetune", "gradual_unfreeze", "lp_ft"}
    with pytest.raises(ConfigError, match="lr_decay"):
        FinetuneConfig(lr_decay=0.0)
    with pytest.raises(ConfigError, match="strategy"):
        load_finetune_config(REPO / "configs" / "finetune_mi.yaml", ["finetune.strategy=fine_tune"])
    with pytest.raises(ConfigError, match="lr_dekay"):
        load_finetune_config(REPO / "configs" / "finetune_mi.yaml", ["finetune.lr_dekay=0.3"])


def test_finetune_config_file_and_overrides():
    config, settings = load_finetune_config(REPO / "configs" / "finetune_mi.yaml",
                                            ["finetune.strategy=gradual_unfreeze", "finetune.leads=[I, II]",
                                             "optim.lr=3e-4", "data.max_train=500"])
    assert (settings.strategy, settings.leads, settings.lr_decay) == ("gradual_unfreeze", ("I", "II"), 0.5)
    assert (config.task.name, config.optim.lr, config.data.max_train) == ("MI", 3e-4, 500)
    assert config.trainer.monitor == "val_MI_auroc"


# ------------------------------------------------------------------------------------------- groups / init


def test_discriminative_learning_rates_per_group():
    model = create_model("cnn_baseline", 12, 1, **TINY)
    names = [n for n, _ in model.param_groups()]
    groups = discriminative_param_groups(model, lr=1e-2, lr_decay=0.5, weight_decay=0.01)
    lr_of = {g["name"].removesuffix(".no_decay"): g["lr"] for g in groups}
    n = len(names)
    assert lr_of == {name: pytest.approx(1e-2 * 0.5 ** (n - 1 - i)) for i, name in enumerate(names)}
    assert groups[0]["name"] == "head"  # head first, so the logged "lr" is the head's
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    assert all((g["weight_decay"] == 0.0) == g["name"].endswith(".no_decay") for g in groups)
    assert all(p.ndim < 2 for g in groups if g["name"].endswith(".no_decay") for p in g["params"])


def test_freezing_helpers_put_frozen_layers_in_eval_mode():
    model = create_model("cnn_baseline", 12, 1, **TINY).train()
    assert set_trainable_groups(model, 1) == ["head"]
    switched = freeze_frozen_modules(model)
    assert {"stem", "blocks"} <= set(switched) and not model.stem.training and model.head.training
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert set_trainable_groups(model, 99) == [n for n, _ in model.param_groups()]


def test_scratch_is_random_and_pretrained_starts_from_the_checkpoint(pretrained):
    ckpt = load_checkpoint(pretrained)
    ref = state(ckpt.model)
    torch.manual_seed(1)
    scratch = prepare_model(pretrained, 1, "scratch")
    torch.manual_seed(1)
    again = prepare_model(pretrained, 1, "scratch")
    tuned = prepare_model(pretrained, 1, "finetune")
    assert type(scratch) is type(ckpt.model) and scratch.model_kwargs == ckpt.model_kwargs
    assert not torch.equal(scratch.state_dict()["stem.0.0.weight"], ref["stem.0.0.weight"])
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in scratch.state_dict().items())  # seeded init
    assert all(torch.equal(v, ref[k]) for k, v in tuned.state_dict().items() if not k.startswith("head"))
    assert tuned.num_outputs == 1 and tuned.head[-1].out_features == 1 and tuned.training
    assert not tuned.head[-1].weight.any() and not tuned.head[-1].bias.any()  # head_init="zeros" (default)
    random_head = prepare_model(pretrained, 1, "finetune", head_init="random")
    assert random_head.head[-1].weight.abs().sum() > 0
    with pytest.raises(ConfigError, match="needs a pretrained checkpoint"):
        prepare_model(None, 1, "finetune")


def test_a_zero_head_learns_the_direction_of_the_features_in_a_few_steps(pretrained):
    """The regime of 100 target ECGs: five small optimiser steps on the head alone. From zero, the head moves
    along the correlation of the features with the label, so its ranking is right after a few steps."""
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(0)
    model = prepare_model(pretrained, 1, "linear_probe").eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(64, 12, 250))
    score = feats @ torch.randn(feats.shape[1])  # a label that the features do predict
    y = (score > score.median()).float()
    opt = torch.optim.Adam(model.head.parameters(), lr=1e-3)
    for _ in range(5):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.forward_head(feats)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert roc_auc_score(y.numpy(), model.forward_head(feats)[:, 0].numpy()) > 0.75


def test_fewer_leads_keep_the_pretrained_weights_of_those_leads(pretrained):
    w = load_checkpoint(pretrained).model.state_dict()["stem.0.0.weight"]  # [out, 12, k]
    eight = prepare_model(pretrained, 1, "finetune", leads=EIGHT)
    idx = [CANONICAL_LEADS.index(x) for x in EIGHT]
    assert eight.in_leads == 8 and torch.equal(eight.state_dict()["stem.0.0.weight"], w[:, idx])
    assert eight(torch.zeros(2, 8, 250)).shape == (2, 1)
    one = prepare_model(pretrained, 1, "linear_probe", leads=["ii"])
    assert one.in_leads == 1 and torch.equal(one.state_dict()["stem.0.0.weight"], w[:, [1]])
    mean = prepare_model(pretrained, 1, "finetune", leads=["II"], lead_init="mean")
    assert torch.allclose(mean.state_dict()["stem.0.0.weight"], w.sum(dim=1, keepdim=True))
    with pytest.raises(LeadError, match="V7"):
        prepare_model(pretrained, 1, "finetune", leads=["I", "V7"])


def test_cache_view_selects_leads_without_copying(cohort):
    view = CacheView(cohort, ["V2", "i"])
    assert view.leads == ("V2", "I") and view.signals.shape == (80, 2, 250)
    np.testing.assert_array_equal(view.signals[3], cohort.signals[3][[7, 0]])
    np.testing.assert_array_equal(view.signals[np.array([1, 2])], cohort.signals[[1, 2]][:, [7, 0]])
    assert view.preprocess.leads == ("V2", "I") and view.preprocess.fs == FS
    with pytest.raises(LeadError, match="not in the cache"):
        CacheView(cohort, ["X1"])
    assert CacheView is views.CacheView  # lives in ecglens.data.views; ecglens.train.finetune re-exports it


def test_cache_view_relabels_folds_and_pickles_a_memmap_as_its_file(cohort, tmp_path):
    np.save(tmp_path / "signals.npy", cohort.signals)
    mapped = SimpleNamespace(signals=np.load(tmp_path / "signals.npy", mmap_mode="r"), meta=cohort.meta,
                             preprocess=cohort.preprocess, path=tmp_path)
    folds = np.where(np.arange(80) < 40, 1.0, np.nan)
    view = CacheView(mapped, ["V6", "I"], folds=folds)
    np.testing.assert_array_equal(view.meta["fold"], folds)
    assert len(pickle.dumps(view.signals)) < 2000  # the file name, not 80 x 2 x 250 floats
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(view.signals))[5], cohort.signals[5][[11, 0]])
    with pytest.raises(ConfigError, match="one entry per cache row"):
        CacheView(mapped, folds=folds[:10])


# ----------------------------------------------------------------------------------------------- training


def test_linear_probe_changes_only_the_head(pretrained, cohort):
    torch.manual_seed(0)
    model = prepare_model(pretrained, 1, "linear_probe")
    before = state(model)
    module, trainer = fit_module(model, cohort, FinetuneConfig(strategy="linear_probe"), epochs=1)
    after = state(module.model)
    backbone = [k for k in before if not k.startswith("head")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)  # BN statistics included
    assert changed(before, after, "head")
    optim_params = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert optim_params == {id(p) for p in module.model.head.parameters()}


def test_finetune_trains_all_groups_with_discriminative_rates(pretrained, cohort):
    torch.manual_seed(0)
    model = prepare_model(pretrained, 1, "finetune")
    before = state(model)
    module, trainer = fit_module(model, cohort, FinetuneConfig(strategy="finetune", lr_decay=0.1), epochs=1)
    after = state(module.model)
    assert all(changed(before, after, prefix) for prefix in ("stem", "blocks.0", "head"))
    initial = {g["name"]: g["initial_lr"] for g in trainer.optimizers[0].param_groups}
    assert initial["head"] == pytest.approx(0.01)
    assert initial["block1"] == pytest.approx(0.001) and initial["stem"] == pytest.approx(0.0001)


def test_gradual_unfreezing_unfreezes_from_the_head_backwards(pretrained, cohort):
    torch.manual_seed(0)
    model = prepare_model(pretrained, 1, "gradual_unfreeze")
    before = state(model)
    module, _ = fit_module(model, cohort, FinetuneConfig(strategy="gradual_unfreeze", unfreeze_every=1))
    after = state(module.model)
    assert changed(before, after, "head") and changed(before, after, "blocks.0")  # epoch 0: head, 1: + block1
    assert not changed(before, after, "stem")
    assert module.trainable_groups(0) == 1 and module.trainable_groups(5) == 3


def test_unfrozen_groups_go_back_to_train_mode(pretrained):
    model = prepare_model(pretrained, 1, "gradual_unfreeze")
    settings = FinetuneConfig(strategy="gradual_unfreeze")
    module = FinetuneModule(model, task_from_name("MI"), OptimConfig(), settings)
    assert (model.stem.training, model.blocks.training, model.head.training) == (False, False, True)
    assert module.apply_schedule(1) == ["block1", "head"]
    assert (model.stem.training, model.blocks.training, model.head.training) == (False, True, True)
    module.train()  # what Lightning may call: frozen layers stay in eval mode
    assert not model.stem.training and model.blocks.training


@pytest.mark.parametrize("strategy", ["finetune", "lp_ft", "gradual_unfreeze", "linear_probe"])
def test_modules_that_train_are_in_train_mode_during_every_training_step(pretrained, cohort, tmp_path,
                                                                          monkeypatch, strategy):
    # regression: lp_ft's probe left the whole network in eval mode, so it was fine-tuned with frozen BatchNorm
    # statistics and no dropout
    seen: list[tuple[str, bool, bool]] = []
    original = FinetuneModule.training_step

    def spy(self, batch, batch_idx):
        for name, module in self.model.named_modules():
            own = list(module.parameters(recurse=False))
            if own:
                seen.append((name, any(p.requires_grad for p in own), module.training))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(FinetuneModule, "training_step", spy)
    settings = FinetuneConfig(strategy=strategy, unfreeze_every=1, probe_solver="sgd")
    finetune(pretrained, train_config(epochs=2), settings, out=tmp_path / strategy, cache=cohort, curves=False)
    trained = [(name, training) for name, grad, training in seen if grad]
    assert trained and all(training for _, training in trained), [n for n, t in trained if not t]
    assert all(not training for _, grad, training in seen if not grad)  # freeze_bn: frozen layers in eval
    batchnorms = {name for name, module in create_model("cnn_baseline", 12, 1, **TINY).named_modules()
                  if isinstance(module, torch.nn.BatchNorm1d)}
    if strategy in ("finetune", "lp_ft"):
        assert batchnorms <= {name for name, _ in trained}  # every BatchNorm layer trains, in train mode


def test_finetune_api_one_lead_writes_a_run_folder(pretrained, cohort, tmp_path):
    result = finetune(pretrained, train_config(epochs=1), FinetuneConfig(strategy="finetune", leads=["II"]),
                      out=tmp_path / "one", cache=cohort, curves=False)
    ckpt = load_checkpoint(result.checkpoint_path)
    assert ckpt.in_leads == 1 and ckpt.preprocess.leads == ("II",) and ckpt.task.name == "MI"
    assert ckpt.config["finetune"]["leads"] == ["II"] and ckpt.config["pretrained"]["task"] == "age_sex"
    assert ckpt.predict(np.zeros((3, 1, 250), np.float32))["p_MI"].shape == (3,)
    assert not (tmp_path / "one" / "curves.png").exists() and (tmp_path / "one" / "history.csv").is_file()


def test_without_curves_skips_curves_and_the_checkpoint_records_its_start(pretrained, cohort, tmp_path):
    plot_history = loop.plot_history
    settings = FinetuneConfig(strategy="linear_probe", probe_l2=(0.1, 1.0))  # L-BFGS: no trainer, fast
    with without_curves():
        assert loop.plot_history is plot_history  # a context variable, nothing swapped
        quiet = finetune(pretrained, train_config(), settings, out=tmp_path / "quiet", cache=cohort)
    drawn = finetune(pretrained, train_config(), settings, out=tmp_path / "drawn", cache=cohort)
    assert not (quiet.run_dir / "curves.png").exists() and (quiet.run_dir / "history.csv").is_file()
    assert (drawn.run_dir / "curves.png").is_file()
    ckpt = load_checkpoint(quiet.checkpoint_path)
    assert ckpt.config["finetune"]["strategy"] == "linear_probe"
    assert ckpt.config["leads"] == list(CANONICAL_LEADS)
    assert ckpt.config["pretrained"]["path"] == str(pretrained) and ckpt.metrics["probe_l2"] in (0.1, 1.0)


def write_cache(out: Path, signals: np.ndarray, meta: pd.DataFrame, pre: Preprocess) -> Path:
    """The three files of an ecglens cache folder (what ``open_cache`` reads)."""
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "signals.npy", signals)
    meta.to_csv(out / "meta.csv", index=False)
    manifest = {"format": "ecglens-cache/1", "preprocess": pre.to_dict(), "fs": pre.fs,
                "n_samples": pre.n_samples, "leads": list(pre.leads), "dtype": "float32",
                "shape": list(signals.shape), "n_accepted": len(signals), "n_rejected": 0, "rejected": []}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_cli_finetune_eight_leads_linear_probe(pretrained, tmp_path, capsys):
    cache = write_cache(tmp_path / "cache", *make_cohort())
    config = tmp_path / "ft.yaml"
    config.write_text((REPO / "configs" / "finetune_mi.yaml").read_text())
    out = tmp_path / "run"
    sets = [f"data.cache={cache}", "optim.epochs=1", "optim.batch_size=16", "augment.enabled=false",
            "trainer.accelerator=cpu", "trainer.devices=1", "trainer.num_workers=0",
            "trainer.progress_bar=false"]
    code = app(["finetune", str(pretrained), str(config), "--strategy", "linear_probe",
                "--leads", ",".join(EIGHT), "--out", str(out), *[a for s in sets for a in ("--set", s)]])
    assert code == 0 and "linear_probe" in capsys.readouterr().out
    for name in ("config.yaml", "finetune.yaml", "splits.csv", "model.safetensors", "metrics.json",
                 "history.csv", "curves.png", "val_predictions.csv"):
        assert (out / name).is_file(), name
    ckpt = load_checkpoint(out / "model.safetensors")
    assert ckpt.in_leads == 8 and ckpt.preprocess.leads == tuple(EIGHT) and ckpt.output_names == ("p_MI",)
    assert ckpt.model_name == "cnn_baseline" and ckpt.config["model"]["kwargs"] == TINY
    w = load_checkpoint(pretrained).model.state_dict()["stem.0.0.weight"]
    idx = [CANONICAL_LEADS.index(x) for x in EIGHT]
    assert torch.equal(ckpt.model.state_dict()["stem.0.0.weight"], w[:, idx])  # frozen, kept leads' weights
    assert "MI_auroc" in json.loads((out / "metrics.json").read_text())
