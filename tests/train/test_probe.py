"""The L-BFGS linear probe (ecglens.train.probe, ``finetune.probe_solver: lbfgs``).

The solver is checked against scikit-learn's logistic regression on the same features (same optimum), on
regression and multi-task losses (beats the predict-the-mean head), on an MLP head, and end to end through
``finetune`` (backbone untouched, one history row per L2 strength, selection by the validation monitor).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from test_finetune import cohort, pretrained, state, train_config  # noqa: F401 (fixtures)

from ecglens.artifact import load_checkpoint, save_checkpoint
from ecglens.data.targets import task_from_name
from ecglens.exceptions import ConfigError
from ecglens.models import create_model
from ecglens.models.layers import linear_head, mlp_head
from ecglens.train.config import apply_overrides
from ecglens.train.finetune import FinetuneConfig, finetune, finetune_settings_from_dict, prepare_model
from ecglens.train.probe import fit_probe_head, window_features

pytestmark = [pytest.mark.filterwarnings("ignore:.*treespec.*"),
              pytest.mark.filterwarnings("ignore:.*module\\(s\\) in eval mode")]


def binary_data(n: int = 300, f: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features on very different scales ``[n, 2 windows, f]`` and a logistic label."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2, f))
    x = z * np.logspace(-2, 2, f) + rng.normal(size=f) * 5
    logit = z.mean(axis=1) @ rng.normal(size=f) * 0.7
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return x.astype(np.float32), y[:, None]


def test_the_probe_reaches_the_logistic_regression_optimum():
    x, y = binary_data()
    task = task_from_name("MI").fit(y)
    head = linear_head(x.shape[-1], 1, dropout=0.5)
    torch.nn.init.zeros_(head[1].weight)
    l2 = 0.05
    fit = fit_probe_head(head, task, x, y, x[:50], y[:50], [l2])
    mean_x = x.mean(axis=1)  # a linear head's window-averaged output is its output for the mean features
    # sklearn: C * sum(loss) + |w|^2 / 2 == n C (mean loss + |w|^2 / (2 n C)), so C = 1 / (n * l2); the
    # probe standardises with the statistics of all training windows
    scaler = StandardScaler().fit(x.reshape(-1, x.shape[-1]))
    ref = LogisticRegression(C=1.0 / (len(y) * l2), tol=1e-10, max_iter=10_000).fit(scaler.transform(mean_x),
                                                                                   y[:, 0])
    new = np.random.default_rng(1).normal(size=(40, x.shape[-1])).astype(np.float32) * 3
    assert head.training  # the probe leaves the head in the mode it found it in (lp_ft trains it next)
    with torch.no_grad():
        mine = torch.sigmoid(head.eval()(torch.from_numpy(new))[:, 0]).numpy()  # raw features: scaling folded in
    np.testing.assert_allclose(mine, ref.predict_proba(scaler.transform(new))[:, 1], atol=2e-4)
    assert fit.l2 == l2 and fit.iterations > 0
    assert head[1].weight.dtype == torch.float32


def test_the_probe_selects_the_l2_strength_by_the_validation_monitor():
    x, y = binary_data(n=120, f=40, seed=2)
    xv, yv = binary_data(n=400, f=40, seed=2)
    task = task_from_name("MI").fit(y)
    strengths = [1e-4, 1e-2, 1.0, 100.0]
    fit = fit_probe_head(linear_head(40, 1, 0.0), task, x, y, xv, yv, strengths, monitor="val_MI_auroc",
                         mode="max")
    table = pd.DataFrame(fit.history)
    assert table["l2"].tolist() == strengths  # one row per strength, ascending
    assert {"iterations", "train_loss", "val_loss", "val_MI_auroc", "train_MI_auroc"} <= set(table.columns)
    assert fit.l2 == table.loc[table["val_MI_auroc"].idxmax(), "l2"]
    assert table["train_loss"].is_monotonic_increasing  # a stronger penalty fits the training ECGs less well
    by_loss = fit_probe_head(linear_head(40, 1, 0.0), task, x, y, xv, yv, strengths)  # default: val_loss, min
    assert by_loss.l2 == pd.DataFrame(by_loss.history).set_index("l2")["val_loss"].idxmin()


@pytest.mark.parametrize("task_name", ["age", "age_sex"])
def test_the_probe_fits_regression_and_multitask_heads(task_name):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 1, 8)).astype(np.float32)
    age = 50 + 10 * x[:, 0, 0] + rng.normal(size=200)
    sex = (x[:, 0, 1] > 0).astype(float)
    y = np.c_[age] if task_name == "age" else np.c_[age, sex]
    task = task_from_name(task_name).fit(y)
    head = linear_head(8, task.num_outputs, 0.1)
    fit = fit_probe_head(head, task, x, y, x, y, [1e-3])
    with torch.no_grad():
        age_hat = task.postprocess(head(torch.from_numpy(x[:, 0])))["age"]
    assert np.mean(np.abs(age_hat - age)) < 0.5 * np.mean(np.abs(age - age.mean()))
    assert fit.history[0]["val_age_mae"] < 2.0


def test_the_probe_fits_an_mlp_head_with_batchnorm():
    x, y = binary_data(n=200, f=16, seed=4)
    task = task_from_name("MI").fit(y)
    torch.manual_seed(0)
    head = mlp_head(16, 1, dropout=0.5, hidden=8)
    zero = float(task.loss(torch.zeros(len(y), 1), torch.from_numpy(y).float()))
    fit = fit_probe_head(head, task, x, y, x, y, [1e-3, 100.0])  # 100 collapses the hidden layer; 1e-3 must not
    assert fit.l2 == 1e-3 and fit.history[0]["train_loss"] < 0.8 * zero < fit.history[1]["train_loss"]
    assert torch.allclose(head[0].running_mean, torch.from_numpy(x.reshape(-1, 16).mean(axis=0)), rtol=1e-4)
    with torch.no_grad():  # the fitted head, on raw features, gives the loss the solver reported
        raw = head.eval()(torch.from_numpy(x.reshape(-1, 16))).reshape(len(x), 2, 1).mean(dim=1)
        loss = float(task.loss(raw, torch.from_numpy(y).float()))
    assert loss == pytest.approx(fit.history[0]["train_loss"], rel=1e-3)


def test_bad_strengths_are_refused():
    x, y = binary_data(n=20, f=3)
    task = task_from_name("MI").fit(y)
    with pytest.raises(ConfigError, match="L2"):
        fit_probe_head(linear_head(3, 1, 0.0), task, x, y, x, y, [-1.0])
    with pytest.raises(ConfigError, match="probe_l2"):
        FinetuneConfig(probe_l2=())
    with pytest.raises(ConfigError, match="monitor"):
        fit_probe_head(linear_head(3, 1, 0.0), task, x, y, x, y, [1.0], monitor="val_age_mae")


def test_window_features_are_per_window(pretrained, cohort):  # noqa: F811
    model = prepare_model(pretrained, 1, "linear_probe")
    rows = np.arange(5)
    whole = window_features(model, cohort.signals, rows, None, batch_size=2)
    windows = window_features(model, cohort.signals, rows, 100, batch_size=2)
    assert whole.shape == (5, 1, model.num_features) and windows.shape[:2] == (5, 3)
    assert model.training  # back in the mode it was in
    first = torch.from_numpy(cohort.signals[rows, :, :100])
    with torch.no_grad():
        reference = model.eval().forward_features(first).numpy()
    np.testing.assert_allclose(windows[:, 0], reference, rtol=1e-5, atol=1e-6)


def test_finetune_lbfgs_probe_writes_a_run_and_keeps_the_backbone(pretrained, cohort, tmp_path):  # noqa: F811
    before = state(prepare_model(pretrained, 1, "linear_probe"))
    settings = FinetuneConfig(strategy="linear_probe", probe_l2=(0.01, 1.0, 100.0))
    config = apply_overrides(train_config(), ["trainer.monitor=val_MI_auroc", "trainer.monitor_mode=max"])
    result = finetune(pretrained, config, settings, out=tmp_path / "probe", cache=cohort)
    metrics = json.loads((tmp_path / "probe" / "metrics.json").read_text())
    history = pd.read_csv(tmp_path / "probe" / "history.csv")
    assert history["l2"].tolist() == [0.01, 1.0, 100.0] and (tmp_path / "probe" / "curves.png").is_file()
    assert metrics["probe_solver"] == "lbfgs" and metrics["probe_l2"] in (0.01, 1.0, 100.0)
    assert metrics["MI_auroc"] == pytest.approx(history.set_index("l2").loc[metrics["probe_l2"], "val_MI_auroc"])
    assert metrics["MI_auroc"] > 0.8  # V2 is shifted by 0.3 mV in MI-positive ECGs
    after = load_checkpoint(result.checkpoint_path).model.state_dict()
    backbone = [k for k in before if not k.startswith("head")]
    assert all(torch.equal(before[k], after[k]) for k in backbone)
    assert not (tmp_path / "probe" / "last.ckpt").exists()
    sgd = finetune(pretrained, train_config(epochs=1), FinetuneConfig(strategy="linear_probe", probe_solver="sgd"),
                   out=tmp_path / "sgd", cache=cohort, curves=False)
    assert "probe_l2" not in sgd.metrics and sgd.metrics["epochs_run"] >= 1


def test_a_hidden_layer_head_gets_a_linear_head_for_the_probe(cohort, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    task = task_from_name("age").fit(cohort.meta[["age"]].to_numpy())
    model = create_model("xresnet1d50", 12, task.num_outputs, width=0.125, head_hidden=16)
    source = save_checkpoint(tmp_path / "x.safetensors", model, task=task, preprocess=cohort.preprocess)
    with pytest.raises(ConfigError, match="head_hidden"):
        create_model("xresnet1d50", 12, 1, head_hidden=-1)
    result = finetune(source, train_config(), FinetuneConfig(strategy="linear_probe", probe_l2=(0.1,)),
                      out=tmp_path / "probe", cache=cohort, curves=False)
    ckpt = load_checkpoint(result.checkpoint_path)
    assert ckpt.model_kwargs["head_hidden"] == 0 and ckpt.config["model"]["kwargs"]["head_hidden"] == 0
    assert [type(m).__name__ for m in ckpt.model.head] == ["Dropout", "Linear"]
    stem = "stem.0.0.weight"
    assert torch.equal(ckpt.model.state_dict()[stem], model.state_dict()[stem])  # backbone kept
    assert ckpt.predict(cohort.signals[:4])["p_MI"].shape == (4,)


def test_lp_ft_starts_fine_tuning_from_the_converged_probe_head(pretrained, cohort, tmp_path):  # noqa: F811
    config = apply_overrides(train_config(epochs=1, lr=1e-9), ["trainer.monitor=val_MI_auroc",
                                                               "trainer.monitor_mode=max"])
    l2s = (0.01, 1.0)
    probe = finetune(pretrained, config, FinetuneConfig(strategy="linear_probe", probe_l2=l2s),
                     out=tmp_path / "probe", cache=cohort, curves=False)
    lp_ft = finetune(pretrained, config, FinetuneConfig(strategy="lp_ft", probe_l2=l2s),
                     out=tmp_path / "lpft", cache=cohort, curves=False)
    info = yaml.safe_load((tmp_path / "lpft" / "finetune.yaml").read_text())["probe_head"]
    assert info["l2"] == probe.metrics["probe_l2"] and info["val_MI_auroc"] > 0.8
    assert lp_ft.metrics["epochs_run"] == 1  # then trained like finetune (here with lr ~ 0: the head stays)
    heads = [load_checkpoint(r.checkpoint_path).model.head[-1] for r in (probe, lp_ft)]
    assert heads[0].weight.abs().max() > 0.01
    torch.testing.assert_close(heads[1].weight, heads[0].weight, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(heads[1].bias, heads[0].bias, atol=1e-5, rtol=1e-4)
    assert finetune_settings_from_dict({}, ["finetune.strategy=lp_ft"]).strategy == "lp_ft"
    with pytest.raises(ConfigError, match="needs a pretrained checkpoint"):
        prepare_model(None, 1, "lp_ft")
