"""Checkpoints: one safetensors file that rebuilds the model and carries preprocess, task, config, metrics."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ecglens.artifact import checkpoint as ckpt_mod
from ecglens.artifact import formats as formats_mod
from ecglens.artifact import (
    list_pretrained,
    load_checkpoint,
    read_checkpoint_metadata,
    save_checkpoint,
)
from ecglens.data.targets import task_from_name
from ecglens.exceptions import CheckpointError, LeadError
from ecglens.models import create_model
from ecglens.signal.transforms import Preprocess
from ecglens.train.config import config_to_dict, load_config

KWARGS = {"channels": [8, 16], "kernel_size": 5}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op torch thread


@pytest.fixture
def trained(rng):
    """A tiny model with non-trivial weights (BatchNorm statistics too), its fitted task, a preprocess."""
    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[30.0, 1.0], [70.0, 0.0], [55.0, np.nan]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, **KWARGS)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # move the BatchNorm running statistics away from their initial values
            model(torch.randn(8, 12, 250) * 2 + 0.5)
    model.eval()
    pre = Preprocess(fs=100.0, seconds=2.5, highpass_hz=None)
    x = rng.normal(0, 1, (5, 12, pre.n_samples)).astype(np.float32)
    return model, task, pre, x


def _save(path, model, task, pre, metrics=None):
    config = load_config(
        None, ["model.name=cnn_baseline", "model.kwargs={channels: [8, 16], kernel_size: 5}"]
    )
    return save_checkpoint(
        path,
        model,
        "cnn_baseline",
        KWARGS,
        task,
        pre,
        config,
        metrics if metrics is not None else {"age_mae": 7.5, "n": 3},
    )


def test_round_trip_gives_identical_outputs_and_all_descriptions(tmp_path, trained):
    model, task, pre, x = trained
    path = _save(tmp_path / "m.safetensors", model, task, pre)
    ck = load_checkpoint(path)
    assert not ck.model.training
    with torch.inference_mode():
        expected = task.postprocess(model(torch.from_numpy(x)))
    got, in_pairs = ck.predict(x), ck.predict(x, batch_size=2)
    assert set(got) == {"age", "age_std", "p_female"}
    for name in got:
        np.testing.assert_array_equal(got[name], expected[name])
        np.testing.assert_allclose(in_pairs[name], expected[name], rtol=1e-5)
    for key, value in model.state_dict().items():
        assert torch.equal(ck.model.state_dict()[key], value), key
    assert ck.task.to_dict() == task.to_dict() and ck.task.targets[0].mean == pytest.approx(155 / 3)
    assert ck.preprocess == pre
    assert ck.model_name == "cnn_baseline" and ck.model_kwargs == KWARGS and ck.in_leads == 12
    assert ck.config == config_to_dict(
        load_config(None, ["model.name=cnn_baseline", "model.kwargs={channels: [8, 16], kernel_size: 5}"])
    )
    assert ck.metrics == {"age_mae": 7.5, "n": 3}
    from ecglens import __version__

    assert ck.version == __version__ and ck.created and ck.path == path
    from ecglens._version import source_commit

    assert ck.meta["commit"] == source_commit() and ck.summary()["commit"] == ck.meta["commit"]


def test_file_is_plain_safetensors_with_json_metadata_no_pickle(tmp_path, trained):
    model, task, pre, _ = trained
    path = _save(tmp_path / "m", model, task, pre, metrics={"r": float("nan")})
    assert path.suffix == ".safetensors" and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(
        raw[8 : 8 + header_len]
    )  # safetensors: 8-byte length + JSON header + raw tensor bytes
    assert header["__metadata__"]["format"] == ckpt_mod.FORMAT
    meta = json.loads(header["__metadata__"]["ecglens"])
    assert meta["model"] == {"name": "cnn_baseline", "kwargs": KWARGS, "in_leads": 12, "num_outputs": 3}
    assert meta["preprocess"]["fs"] == 100.0 and meta["task"]["name"] == "age_sex"
    assert meta["metrics"] == {"r": None}  # NaN is stored as null (strict JSON)
    assert read_checkpoint_metadata(path) == meta
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())


def test_predict_checks_leads_and_accepts_a_single_record(tmp_path, trained):
    model, task, pre, x = trained
    ck = load_checkpoint(_save(tmp_path / "m.safetensors", model, task, pre))
    single = ck.predict(x[0])
    assert single["age"].shape == (1,)
    assert single["age"][0] == pytest.approx(ck.predict(x)["age"][0], rel=1e-5)
    with pytest.raises(LeadError, match=r"\[N, 12, n_samples\]"):
        ck.predict(x[:, :8])


def test_bare_names_are_looked_up_in_the_weights_folder(tmp_path, trained, monkeypatch):
    model, task, pre, _ = trained
    _save(tmp_path / "tiny-age-sex.safetensors", model, task, pre)
    monkeypatch.setattr(ckpt_mod, "weights_dir", lambda: tmp_path)
    monkeypatch.setattr(formats_mod, "weights_dir", lambda: tmp_path)
    monkeypatch.chdir(tmp_path.parent)
    assert list_pretrained() == ["tiny-age-sex"]
    ck = load_checkpoint("tiny-age-sex")
    assert ck.path.name == "tiny-age-sex.safetensors"
    with pytest.raises(CheckpointError, match="Unknown model name 'age-sexx'.*tiny-age-sex"):
        load_checkpoint("age-sexx")


def test_an_alias_names_its_shipped_model_only_where_that_model_is_shipped(tmp_path, trained, monkeypatch):
    model, task, pre, _ = trained
    monkeypatch.setattr(ckpt_mod, "weights_dir", lambda: tmp_path)
    monkeypatch.setattr(formats_mod, "weights_dir", lambda: tmp_path)
    monkeypatch.setattr(ckpt_mod, "PRETRAINED_ALIASES", {"tiny": "tiny-age-sex"})
    monkeypatch.chdir(tmp_path.parent)
    assert ckpt_mod.pretrained_aliases() == {}
    with pytest.raises(CheckpointError, match="Unknown model name 'tiny'"):
        load_checkpoint("tiny")
    _save(tmp_path / "tiny-age-sex.safetensors", model, task, pre)
    assert ckpt_mod.pretrained_aliases() == {"tiny": "tiny-age-sex"}
    assert list_pretrained() == ["tiny-age-sex"]  # aliases are not listed as models of their own
    assert load_checkpoint("tiny").path == load_checkpoint("tiny-age-sex").path
    with pytest.raises(CheckpointError, match=r"tiny-age-sex; tiny \(= tiny-age-sex\)"):
        load_checkpoint("tinyy")


def test_bad_files_raise_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an ecglens checkpoint"):
        load_checkpoint(foreign)


def test_weights_that_do_not_fit_the_description_are_refused(tmp_path, trained):
    model, task, pre, _ = trained
    path = _save(tmp_path / "m.safetensors", model, task, pre)
    meta = read_checkpoint_metadata(path)
    meta["model"]["kwargs"] = {"channels": [8, 32], "kernel_size": 5}
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    save_file(tensors, str(path), metadata={"format": ckpt_mod.FORMAT, "ecglens": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)


def test_save_needs_a_model_name_and_a_task(tmp_path, trained):
    model, task, pre, _ = trained
    with pytest.raises(CheckpointError, match="model_name"):
        save_checkpoint(tmp_path / "x.safetensors", torch.nn.Linear(2, 2), task=task)
    # create_model records the name and kwargs, so they may be omitted
    path = save_checkpoint(tmp_path / "y.safetensors", model, task=task, preprocess=pre)
    assert read_checkpoint_metadata(path)["model"]["kwargs"] == KWARGS


def test_calibration_and_metrics_are_stored_and_old_files_still_load(tmp_path, trained):
    from ecglens.artifact.calibration import Calibration
    from ecglens.artifact.checkpoint import update_checkpoint

    model, task, pre, x = trained
    old = _save(tmp_path / "old.safetensors", model, task, pre, metrics={})
    meta = read_checkpoint_metadata(old)
    meta.pop("calibration")  # a file written before calibration existed has no such key
    with safe_open(str(old), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(old), metadata={"format": ckpt_mod.FORMAT, "ecglens": json.dumps(meta)})
    ck_old = load_checkpoint(old)
    assert ck_old.calibration is None and ck_old.metrics == {} and ck_old.summary()["calibration"] is None
    assert "none stored" in ck_old._repr_html_()

    cal = Calibration(age_slope=0.7, age_intercept=18.0, age_std_scale=1.1, temperatures={"p_female": 1.2},
                      folds=[9], n=2183)
    new = update_checkpoint(old, tmp_path / "new", calibration=cal, metrics={"age_mae": 7.1, "folds": [9]},
                            note="test")
    assert new.name == "new.safetensors"
    ck = load_checkpoint(new)
    assert ck.calibration == cal and ck.metrics == {"age_mae": 7.1, "folds": [9]}
    assert ck.meta["history"][0]["note"] == "test" and "fitted on folds [9]" in ck._repr_html_()
    for name, values in ck.predict(x).items():  # same weights
        np.testing.assert_array_equal(values, ck_old.predict(x)[name])
    direct = save_checkpoint(tmp_path / "d.safetensors", model, "cnn_baseline", KWARGS, task, pre, calibration=cal)
    assert load_checkpoint(direct).calibration == cal
