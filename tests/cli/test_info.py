"""``ecglens info`` on a checkpoint shows the stored metrics (with CIs) and the calibration, or says there is none."""

from __future__ import annotations

import json

import numpy as np
import torch

from ecglens.artifact import save_checkpoint
from ecglens.artifact.calibration import Calibration
from ecglens.artifact.checkpoint import update_checkpoint
from ecglens.cli import app
from ecglens.data.targets import task_from_name
from ecglens.models import create_model
from ecglens.signal.transforms import Preprocess


def test_info_shows_metrics_and_calibration(tmp_path, capsys):
    task = task_from_name("age_sex").fit(np.c_[np.linspace(20, 80, 16), np.arange(16) % 2])
    torch.manual_seed(0)
    model = create_model("cnn_baseline", num_outputs=task.num_outputs, channels=(4, 8))
    plain = save_checkpoint(tmp_path / "tiny.safetensors", model, task=task, preprocess=Preprocess(fs=100, seconds=4))
    assert app(["info", str(plain)]) == 0
    out = capsys.readouterr().out
    assert "calibration      none (outputs are the model's own" in out and "metrics          -" in out

    cal = Calibration(age_slope=0.7356, age_intercept=16.05, age_std_scale=1.0743, temperatures={"p_female": 1.17},
                      folds=[9], n=2183)
    path = update_checkpoint(plain, tmp_path / "cal.safetensors", calibration=cal,
                             metrics={"folds": [9], "age_mae": 7.0123456, "age_mae_ci": [6.75, 7.24]})
    assert app(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "age_mae=7.0123 [6.75, 7.24]" in out and "folds=[9]" in out
    assert "fitted on folds [9] (n=2183): age_std x 1.074; temperature p_female 1.170" in out
    assert "0.736 x age + 16.05 y" in out

    probs = Calibration(temperatures={"p_MI": 1.36}, folds=[9], n=2183)  # no age part: a diagnosis model
    only_p = update_checkpoint(plain, tmp_path / "probs.safetensors", calibration=probs, metrics={"folds": [9]})
    assert app(["info", str(only_p)]) == 0
    assert "calibration      fitted on folds [9] (n=2183): temperature p_MI 1.360\n" in capsys.readouterr().out
    assert app(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metrics"]["age_mae_ci"] == [6.75, 7.24] and info["calibration"]["temperatures"] == {"p_female": 1.17}



def test_info_of_a_record_shows_short_list_metadata(monkeypatch):
    import ecglens.io
    from ecglens import Ecg
    from ecglens.cli.info import record_info
    from ecglens.leads import CANONICAL_LEADS

    signal = np.random.default_rng(0).normal(0, 0.3, (12, 1000)).astype(np.float32)
    meta = {"calibration_removed_s": [0.0, 0.472], "matrix": [[1, 2]], "long": list(range(9)), "device": "X"}
    ecg = Ecg(signal, 100.0, CANONICAL_LEADS, record_id="r", meta=meta)  # as a reader that cut a pulse returns it
    monkeypatch.setattr(ecglens.io, "read_ecg", lambda path, format=None: ecg)
    shown = record_info("r.xml")
    assert shown["meta_calibration_removed_s"] == [0.0, 0.472] and shown["meta_device"] == "X"
    assert "meta_matrix" not in shown and "meta_long" not in shown  # nested or long lists stay out
