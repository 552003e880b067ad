"""Int8 ONNX files (``ecglens.quantize``, ``ecglens export --int8``) and predicting / evaluating ``.onnx`` files.

Oracles: the int8 file keeps the source's metadata (contract, task) plus an ``int8`` entry and runs through
``Predictor`` and ``Checkpoint.predict`` like the float file; its outputs stay close to the float model's on
inputs like the calibration data (a loose bound: quantization changes outputs, by design); calibration and
check records are disjoint; the CLI writes the file from a prepared cache and reports the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from ecglens import CANONICAL_LEADS  # noqa: E402
from ecglens.artifact import load_onnx_checkpoint, read_onnx_metadata, save_checkpoint  # noqa: E402
from ecglens.data.targets import task_from_name  # noqa: E402
from ecglens.exceptions import ConfigError  # noqa: E402
from ecglens.export import export_onnx  # noqa: E402
from ecglens.models import create_model  # noqa: E402
from ecglens.predict import Predictor  # noqa: E402
from ecglens.quantize import calibration_windows, quantize_onnx, split_records  # noqa: E402
from ecglens.signal.transforms import Preprocess  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PRE = Preprocess(fs=100.0, seconds=4.0)


def _beats(n: int, length: int, seed: int) -> np.ndarray:
    """ECG-like inputs [n, 12, length] in mV: spiky beat trains with per-lead gains and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 100.0
    phase = rng.uniform(0, 6, (n, 1, 1))
    beat = np.sin(2 * np.pi * 1.2 * t + phase) ** 15
    return (beat * rng.uniform(0.3, 1.5, (n, 12, 1)) + rng.normal(0, 0.03, (n, 12, length))).astype(np.float32)


@dataclass
class _Cache:
    """Looks like a PreparedCache: 10-s records, folds 1-10."""

    n: int = 80
    preprocess: Preprocess = Preprocess(fs=100.0, seconds=10.0)

    def __post_init__(self) -> None:
        self.signals = _beats(self.n, 1000, seed=1)
        self.meta = pd.DataFrame({"fold": np.arange(self.n) % 10 + 1})

    def indices(self, folds=None) -> np.ndarray:
        return np.arange(self.n) if folds is None else np.flatnonzero(self.meta["fold"].isin(folds).to_numpy())


@pytest.fixture(scope="module")
def float_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    task = task_from_name("age_sex").fit(np.array([[30.0, 1.0], [70.0, 0.0], [50.0, 1.0]]))
    torch.manual_seed(0)
    model = create_model("resnet1d_ribeiro", num_outputs=task.num_outputs, filters=(8, 16, 16), downsample=(4, 4),
                         kernel_size=9)
    folder = tmp_path_factory.mktemp("q")
    ckpt = save_checkpoint(folder / "tiny.safetensors", model, task=task, preprocess=PRE)
    return export_onnx(ckpt, folder / "tiny.onnx")


def test_calibration_and_check_records_are_disjoint_and_cut_like_predict():
    cache = _Cache()
    calib, check = split_records(cache, folds=[1, 2, 3, 4, 5, 6, 7, 8], n_records=20)
    assert len(calib) == 20 and len(check) == 20 and not set(calib) & set(check)
    assert set(cache.meta["fold"].iloc[np.r_[calib, check]]) <= set(range(1, 9))
    windows = calibration_windows(cache, 400, records=calib)
    assert windows.shape == (3 * 20, 12, 400) and windows.dtype == np.float32  # 10 s -> three 4-s windows
    with pytest.raises(ConfigError, match="no records"):
        split_records(cache, folds=[11])
    with pytest.raises(ConfigError, match="fewer than the model"):
        calibration_windows(cache, 2000)


def test_int8_file_keeps_the_metadata_and_predicts_close_to_the_float_model(float_onnx, tmp_path):
    windows = calibration_windows(_Cache(), 400, records=np.arange(40))
    path = quantize_onnx(float_onnx, tmp_path / "int8.onnx", windows, "40 synthetic records")
    meta = read_onnx_metadata(path)
    assert meta["preprocess"] == read_onnx_metadata(float_onnx)["preprocess"]
    assert meta["onnx"]["int8"]["calibration"] == "40 synthetic records"
    assert meta["onnx"]["int8"]["n_windows"] == 64  # one full batch of the 120
    import onnx

    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # it really is quantized
    x = _beats(30, 400, seed=7)
    ref = load_onnx_checkpoint(float_onnx).predict(x)
    got = load_onnx_checkpoint(path).predict(x)  # Checkpoint.predict through onnxruntime
    from ecglens.artifact.onnx import onnx_forward

    assert onnx_forward(path) is onnx_forward(path)  # one session per file, not one per batch
    assert np.isfinite(got["age"]).all()
    assert np.mean(np.abs(got["age"] - ref["age"])) < 0.1 * np.std(ref["age"]) + 0.5
    assert np.mean(np.abs(got["p_female"] - ref["p_female"])) < 0.05
    long = load_onnx_checkpoint(path).predict(_beats(4, 1000, seed=8))  # 10-s inputs: predicted in windows
    assert long["age"].shape == (4,)
    table = Predictor.from_pretrained(path).predict(_beats(3, 1000, seed=9), fs=100.0, leads=CANONICAL_LEADS)
    assert (table["status"] == "ok").all()
    with pytest.raises(ConfigError, match="at least 16"):
        quantize_onnx(float_onnx, tmp_path / "x.onnx", windows[:4])


def test_cli_export_int8_and_evaluate_the_onnx_file(float_onnx, tmp_path, monkeypatch, capsys):
    import ecglens.data.cache as cache_mod
    from ecglens.cli import app

    ckpt = float_onnx.with_suffix(".safetensors")
    monkeypatch.setattr(cache_mod, "open_cache", lambda _path: _Cache(preprocess=PRE))
    out = tmp_path / "int8.onnx"
    assert app(["export", str(ckpt), "--onnx", str(out), "--int8", "cache", "--int8-folds", "1-8",
                "--int8-records", "16", "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "int8, calibrated on 16 records of folds [1, 2, 3, 4, 5, 6, 7, 8]" in printed
    assert "mean |diff|" in printed and "Percentile" not in printed
    assert read_onnx_metadata(out)["onnx"]["int8"]["n_windows"] == 48  # 16 records x three 4-s windows


def test_info_and_repr_of_an_int8_file(float_onnx, tmp_path, capsys):
    from ecglens.cli import app

    path = quantize_onnx(float_onnx, tmp_path / "int8.onnx", calibration_windows(_Cache(), 400), "synthetic")
    assert "no PyTorch parameters" in repr(load_onnx_checkpoint(path))
    assert app(["info", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "int8" in printed and "calibrated on synthetic" in printed and "the float model's" in printed
