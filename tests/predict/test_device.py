"""``--device`` checks (issue #21 item 6): every way CUDA can be missing gives a ConfigError that says how to fix
it; ``cpu`` and ``auto`` on a machine without a GPU resolve to the CPU. torch's CUDA state is simulated with
monkeypatch, so these run the same on a CPU-only build and on a GPU machine."""

from __future__ import annotations

import pytest
import torch

from ecglens.exceptions import ConfigError
from ecglens.predict.device import CUDA_INSTALL, cuda_problem, resolve_device


@pytest.fixture
def cpu_only_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def cuda_build_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.parametrize("name", [None, "", "cpu", "CPU", " cpu "])
def test_cpu(name: str | None) -> None:
    assert resolve_device(name) == "cpu"


def test_auto_without_gpu_is_cpu(cpu_only_build: None, monkeypatch: pytest.MonkeyPatch) -> None:
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"


def test_auto_with_gpu_is_cuda(two_gpus: None) -> None:
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_on_a_cpu_only_build_says_how_to_install_one(cpu_only_build: None, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device(name)
    text = str(info.value)
    assert f"--device {name} needs a CUDA build of torch" in text and "CPU-only" in text
    assert CUDA_INSTALL in text and "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/" in text
    assert "--device cpu" in text


def test_cuda_build_without_a_visible_gpu(cuda_build_without_gpu: None) -> None:
    with pytest.raises(ConfigError, match=r"sees no GPU .*nvidia-smi.*CUDA_VISIBLE_DEVICES"):
        resolve_device("cuda")


def test_gpu_index_must_exist(two_gpus: None) -> None:
    assert resolve_device("cuda") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match=r"GPU 2 does not exist; torch sees 2 GPU\(s\), numbered 0 to 1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", "cuda:-1"])
def test_unknown_names(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(name)


def test_mps_where_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="Apple silicon"):
        resolve_device("mps")


def test_cuda_problem_names_the_cpu_option(cpu_only_build: None) -> None:
    assert "(--accelerator cpu)" in cuda_problem("--accelerator gpu", cpu_option="--accelerator cpu")


def test_predictor_on_cpu(tmp_path) -> None:
    """The device plumbing: ``device="cpu"`` reaches the torch backend, the model's parameters are there."""
    import numpy as np

    from ecglens.artifact import save_checkpoint
    from ecglens.data.targets import task_from_name
    from ecglens.models import create_model
    from ecglens.predict import Predictor
    from ecglens.signal.transforms import Preprocess

    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [60.0, 0.0]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(8, 16))
    path = save_checkpoint(tmp_path / "tiny.safetensors", model, task=task, preprocess=Preprocess())
    predictor = Predictor.from_pretrained(path, device=resolve_device("cpu"))
    assert predictor.backend.device == torch.device("cpu")
    assert {p.device.type for p in predictor.backend.model.parameters()} == {"cpu"}
