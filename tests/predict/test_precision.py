"""``--precision`` (bf16 / 16 autocast; issue #21 items 4 and 6): the torch backend, ``Checkpoint.predict``,
``ecglens evaluate`` and ``predict`` run the network under autocast when asked, refuse what cannot run (float16 on
a CPU, an exported file) with a ConfigError that says what to do, and stay within bfloat16's precision of float32
on a tiny model."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ecglens.artifact import precision as P
from ecglens.artifact import save_checkpoint
from ecglens.data.targets import task_from_name
from ecglens.exceptions import ConfigError
from ecglens.models import create_model
from ecglens.predict import Predictor
from ecglens.signal.transforms import Preprocess


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [60.0, 0.0]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(8, 16))
    return save_checkpoint(tmp_path / "tiny.safetensors", model, task=task, preprocess=Preprocess())


def _inputs(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.3, (n, 12, Preprocess().n_samples)).astype(np.float32)


def test_bf16_on_the_cpu_is_close_to_float32_and_not_equal(tiny: Path) -> None:
    x = _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a CPU without bf16 instructions: slower, same numbers
        half = Predictor.from_pretrained(tiny, precision="bf16")
    full = Predictor.from_pretrained(tiny)
    assert half.backend.precision == "bf16" and full.backend.precision == "32"
    a, b = half.backend.run(x), full.backend.run(x)
    assert a.dtype == np.float32 and a.shape == b.shape
    assert not np.array_equal(a, b)  # autocast did run: bfloat16 keeps 8 bits of mantissa
    assert np.allclose(a, b, rtol=0.05, atol=0.05 * np.abs(b).max())


def test_checkpoint_predict_takes_the_precision(tiny: Path) -> None:
    from ecglens.artifact import load_checkpoint

    ck, x = load_checkpoint(tiny), _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        half = ck.predict(x, precision="bf16")
    full = ck.predict(x)
    assert set(half) == set(full)
    assert not np.array_equal(half["age"], full["age"])
    assert np.allclose(half["p_female"], full["p_female"], atol=0.05)


@pytest.mark.parametrize(("precision", "device", "match"), [
    ("16", "cpu", "GPU only; on a CPU use bf16"),
    ("8", "cpu", "unknown precision '8'"),
    ("fp32", "cuda", "unknown precision"),
])
def test_what_cannot_run_is_refused(precision: str, device: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        P.check_precision(precision, device)


def test_float16_and_bf16_pass_on_a_gpu_device_type() -> None:
    assert P.check_precision("16", "cuda") == "16" and P.check_precision("bf16", "cuda") == "bf16"


def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "_cpu_has_bf16", lambda: False)
    monkeypatch.setattr(P, "_WARNED", [])
    with pytest.warns(RuntimeWarning, match="no bfloat16 instructions"):
        P.check_precision("bf16", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: the backend's check after the CLI's says nothing
        P.check_precision("bf16", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P.check_precision("32", "cpu")


def test_the_onnx_backend_refuses_reduced_precision(tiny: Path) -> None:
    pytest.importorskip("onnxruntime")
    from ecglens.artifact import load_checkpoint
    from ecglens.predict.onnx import onnx_backend

    with pytest.raises(ConfigError, match="applies to the torch backend"):
        onnx_backend(load_checkpoint(tiny), precision="bf16")


def test_cli_options(tiny: Path) -> None:
    from ecglens.cli.predict import device_options

    def args(**changes: str) -> argparse.Namespace:
        return argparse.Namespace(**{"device": "cpu", "precision": "32", "model": str(tiny), "backend": "torch",
                                     **changes})

    assert device_options(args()) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert device_options(args(precision="bf16")) == {"precision": "bf16"}
    with pytest.raises(ConfigError, match="--precision bf16 applies to the torch backend"):
        device_options(args(precision="bf16", backend="onnx"))
    with pytest.raises(ConfigError, match="GPU only"):
        device_options(args(precision="16"))


def test_evaluate_stores_the_precision(tiny: Path, tmp_path: Path) -> None:
    from ecglens.evaluate.runner import evaluate_checkpoint

    cache = _tiny_cache(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        half = evaluate_checkpoint(tiny, cache, n_boot=10, progress=False, precision="bf16")
    full = evaluate_checkpoint(tiny, cache, n_boot=10, progress=False)
    assert half["provenance"]["precision"] == "bf16" and "precision" not in full["provenance"]


def _tiny_cache(tmp_path: Path) -> Path:
    """A prepared cache of 8 synthetic records with age and sex."""
    import pandas as pd

    from ecglens.data.cache import write_cache

    n, pre = 8, Preprocess()
    signals = _inputs(n)
    meta = pd.DataFrame({"record_id": [f"r{i}" for i in range(n)], "age": np.linspace(30, 80, n),
                         "sex": ["F", "M"] * (n // 2), "fold": [1] * n})
    write_cache(tmp_path / "cache", signals, meta, pre)
    return tmp_path / "cache"
