"""Ensembles: ``combine_models``, ``ensemble_checkpoints`` and ``ecglens ensemble``.

The model contract itself (forward on any length, backward, ``reset_head``, ``param_groups``, adapting the
leads) is tested for ``ensemble`` with every other model in tests/test_models.py; here: the combined model's
output is exactly the (weighted) mean of its members', through files and the command line, and mismatched
members are refused with a reason.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecglens.artifact import load_checkpoint, save_checkpoint
from ecglens.cli import app
from ecglens.data.targets import task_from_name
from ecglens.exceptions import CheckpointError, ConfigError
from ecglens.models import create_model
from ecglens.models.ensemble import combine_models
from ecglens.signal.transforms import Preprocess
from ecglens.train.ensemble import ensemble_checkpoints

MEMBERS = [("cnn_baseline", {"channels": [8, 16]}),
           ("resnet1d_ribeiro", {"filters": [8, 16, 16, 24, 24]}),
           ("xresnet1d50", {"width": 0.125, "head_hidden": 16})]  # a head with a hidden layer


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op torch thread


def _trained(name: str, kwargs: dict, seed: int, num_outputs: int = 3):
    """A small model with non-default weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = create_model(name, num_outputs=num_outputs, **kwargs).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 12, 200) + 0.3)
        for p in model.head.parameters():  # a head that is not at its initial values
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _x(n: int = 4, samples: int = 250) -> torch.Tensor:
    return torch.randn(n, 12, samples, generator=torch.Generator().manual_seed(7)) * 0.5


@pytest.mark.parametrize("weights", [None, [3.0, 1.0, 0.0]])
def test_combined_output_is_the_weighted_mean_of_the_members(weights) -> None:
    models = [_trained(name, kw, seed) for seed, (name, kw) in enumerate(MEMBERS)]
    ens = combine_models(models, weights)
    w = np.array(weights if weights is not None else [1.0, 1.0, 1.0])
    w = w / w.sum()
    x = _x()
    with torch.no_grad():
        expected = sum(float(wi) * m(x) for wi, m in zip(w, models, strict=True))
        got = ens(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert ens.model_name == "ensemble"
    assert [m["name"] for m in ens.model_kwargs["members"]] == [n for n, _ in MEMBERS]
    # the members were copied, not moved: the originals still have their own heads
    assert all(isinstance(m.head[-1], torch.nn.Linear) for m in models)


def test_ensemble_checkpoint_round_trip_and_predictions(tmp_path) -> None:
    task = task_from_name("age_sex").fit(np.array([[30.0, 1.0], [70.0, 0.0], [55.0, 1.0]]))
    pre = Preprocess(fs=100.0, seconds=2.5, highpass_hz=None)
    paths = []
    for seed, (name, kw) in enumerate(MEMBERS[:2]):
        model = _trained(name, kw, seed, num_outputs=task.num_outputs)
        paths.append(save_checkpoint(tmp_path / f"m{seed}.safetensors", model, task=task, preprocess=pre,
                                     config={"data": {"train_folds": [1, 2]}}))
    out = ensemble_checkpoints(paths, tmp_path / "ens.safetensors")
    ens = load_checkpoint(out)
    members = [load_checkpoint(p) for p in paths]
    x = _x(5, pre.n_samples).numpy()
    pred = ens.predict(x)
    parts = [m.predict(x) for m in members]
    np.testing.assert_allclose(pred["age"], np.mean([p["age"] for p in parts], axis=0), rtol=1e-5, atol=1e-4)
    logit = np.mean([np.log(p["p_female"] / (1 - p["p_female"])) for p in parts], axis=0)
    np.testing.assert_allclose(pred["p_female"], 1 / (1 + np.exp(-logit)), rtol=1e-4, atol=1e-5)
    assert ens.preprocess.to_dict() == pre.to_dict() and ens.task.to_dict() == task.to_dict()
    record = ens.config["ensemble"]["members"]
    assert [r["source"] for r in record] == [str(p) for p in paths]
    assert ens.config["data"] == {"train_folds": [1, 2]}


def test_mismatched_members_are_refused(tmp_path) -> None:
    task_a = task_from_name("age_sex").fit(np.array([[30.0, 1.0], [70.0, 0.0]]))
    task_b = task_from_name("age_sex").fit(np.array([[20.0, 1.0], [80.0, 0.0]]))  # other label statistics
    pre = Preprocess(fs=100.0, seconds=2.5, highpass_hz=None)
    name, kw = MEMBERS[0]
    a = save_checkpoint(tmp_path / "a", _trained(name, kw, 0), task=task_a, preprocess=pre)
    b = save_checkpoint(tmp_path / "b", _trained(name, kw, 1), task=task_b, preprocess=pre)
    c = save_checkpoint(tmp_path / "c", _trained(name, kw, 2), task=task_a,
                        preprocess=Preprocess(fs=100.0, seconds=4.0, highpass_hz=None))
    with pytest.raises(CheckpointError, match="differ in their task.*training folds"):
        ensemble_checkpoints([a, b], tmp_path / "e1")
    with pytest.raises(CheckpointError, match="differ in their input contract"):
        ensemble_checkpoints([a, c], tmp_path / "e2")
    with pytest.raises(CheckpointError, match="at least two"):
        ensemble_checkpoints([a], tmp_path / "e3")
    with pytest.raises(ConfigError, match="share in_leads and num_outputs"):
        combine_models([_trained(name, kw, 0, num_outputs=2), _trained(name, kw, 1, num_outputs=3)])
    with pytest.raises(ConfigError, match="weights must be 2 non-negative"):
        combine_models([_trained(name, kw, 0), _trained(name, kw, 1)], [1.0, -1.0])


@pytest.mark.parametrize(("members", "match"), [
    ("cnn_baseline", "at least two member models"),
    ([{"name": "cnn_baseline"}], "at least two member models"),
    ([{"name": "cnn_baseline"}, {"model": "s4"}], "member 1 must be"),
    ([{"name": "cnn_baseline"}, {"name": "ensemble"}], "itself an ensemble"),
    ([{"name": "cnn_baseline"}, {"name": "cnn_baseline", "kwargs": [1]}], "kwargs must be a mapping"),
    ([{"name": "cnn_baseline"}, {"name": "cnn_baselin"}], "Did you mean 'cnn_baseline'"),
])
def test_bad_member_specs_are_config_errors(members, match) -> None:
    with pytest.raises(ConfigError, match=match):
        create_model("ensemble", members=members)


def test_cli_writes_an_ensemble(tmp_path, capsys) -> None:
    task = task_from_name("age").fit(np.array([[30.0], [70.0]]))
    pre = Preprocess(fs=100.0, seconds=2.5, highpass_hz=None)
    name, kw = MEMBERS[0]
    paths = [str(save_checkpoint(tmp_path / f"m{s}", _trained(name, kw, s, num_outputs=task.num_outputs),
                                 task=task, preprocess=pre)) for s in range(2)]
    out = tmp_path / "ens.safetensors"
    assert app(["ensemble", *paths, "--weights", "1,3", "--out", str(out)]) == 0
    assert "ensemble of 2 (cnn_baseline, cnn_baseline)" in capsys.readouterr().out
    ens, members = load_checkpoint(out), [load_checkpoint(p) for p in paths]
    x = _x(3, pre.n_samples).numpy()
    expected = 0.25 * members[0].predict(x)["age"] + 0.75 * members[1].predict(x)["age"]
    np.testing.assert_allclose(ens.predict(x)["age"], expected, rtol=1e-5, atol=1e-4)
    assert ens.config["ensemble"]["weights"] == [1.0, 3.0]
    assert app(["ensemble", *paths, "--weights", "1", "--out", str(out)]) == 2
    assert "one per checkpoint" in capsys.readouterr().err


def test_members_are_named_by_run_folder_and_duplicates_refused(tmp_path, capsys) -> None:
    task_a = task_from_name("age").fit(np.array([[30.0], [70.0]]))
    task_b = task_from_name("age").fit(np.array([[20.0], [80.0]]))
    pre = Preprocess(fs=100.0, seconds=2.5, highpass_hz=None)
    name, kw = MEMBERS[0]
    a = save_checkpoint(tmp_path / "runs" / "a" / "model",
                        _trained(name, kw, 0, task_a.num_outputs), task=task_a, preprocess=pre)
    b = save_checkpoint(tmp_path / "runs" / "b" / "model",
                        _trained(name, kw, 1, task_b.num_outputs), task=task_b, preprocess=pre)
    copy = tmp_path / "runs" / "a_copy" / "model.safetensors"
    copy.parent.mkdir()
    copy.write_bytes(a.read_bytes())
    with pytest.raises(CheckpointError, match=r"members 'b' and 'a' differ in their task"):
        ensemble_checkpoints([a, b], tmp_path / "e1")
    with pytest.raises(CheckpointError, match=r"'a/model.safetensors' is given twice.*the same file"):
        ensemble_checkpoints([a, a], tmp_path / "e2")
    with pytest.raises(CheckpointError, match=r"'a' and 'a_copy'.*identical weights"):
        ensemble_checkpoints([a, copy], tmp_path / "e3")
    assert app(["ensemble", str(a), str(tmp_path / "runs" / "a" / ".." / "a" / "model.safetensors"),
                "--out", str(tmp_path / "e4.safetensors")]) != 0
    assert "same checkpoint" in capsys.readouterr().err
    c = save_checkpoint(tmp_path / "runs" / "c" / "model",
                        _trained(name, kw, 2, task_a.num_outputs), task=task_a, preprocess=pre)
    assert app(["ensemble", str(a), str(c), "--out", str(tmp_path / "e5.safetensors")]) == 0
    assert "members a, c" in capsys.readouterr().out
    assert [m["label"] for m in load_checkpoint(tmp_path / "e5.safetensors").config["ensemble"]["members"]] == [
        "a", "c"]
