"""``ecglens train --accelerator gpu`` without a usable GPU: a clear ConfigError before the run folder exists,
not Lightning's traceback. torch's CUDA state is simulated, so the tests run the same on any machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from ecglens.cli import app
from ecglens.exceptions import ConfigError
from ecglens.train.accelerator import check_accelerator


@pytest.fixture
def cpu_only_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.mark.parametrize("accelerator", ["cpu", "auto", "tpu-ish"])
def test_non_gpu_accelerators_pass(cpu_only_build: None, accelerator: str) -> None:
    check_accelerator(accelerator, "auto")  # Lightning judges the rest


@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "GPU"])
def test_gpu_on_a_cpu_only_build(cpu_only_build: None, accelerator: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_accelerator(accelerator, 1)
    text = str(info.value)
    assert "CPU-only" in text and "pip install torch==2.13.0 --index-url" in text and "--accelerator cpu" in text


@pytest.mark.parametrize("devices", [2, "2", [0, 1]])
def test_more_gpus_than_the_machine_has(one_gpu: None, devices) -> None:
    with pytest.raises(ConfigError, match=r"GPU 1 does not exist; torch sees 1 GPU"):
        check_accelerator("gpu", devices)


@pytest.mark.parametrize("devices", [1, "1", "auto", -1, [0]])
def test_gpus_that_exist(one_gpu: None, devices) -> None:
    check_accelerator("gpu", devices)


def test_cli_train_gpu_on_cpu_only_build(cpu_only_build: None, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The command prints one line (no traceback), exit code 2, and creates no run folder."""
    config = Path(__file__).resolve().parents[2] / "src/ecglens/configs/quick_synthetic.yaml"
    out = tmp_path / "run"
    code = app(["train", str(config), "--accelerator", "gpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ecglens train: error: --accelerator gpu needs a CUDA build of torch")
    assert "Traceback" not in err and not out.exists()
