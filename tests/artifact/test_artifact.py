"""Tests of ecglens.artifact (model-file formats, contract check, output specs, windows) and ecglens.jsonutil."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import ecglens
from ecglens.artifact import (
    ONNX,
    SAFETENSORS,
    OutputSpec,
    aggregate_records,
    aggregate_windows,
    check_contract,
    list_formats,
    load_model_file,
    model_format,
)
from ecglens.data.targets import RegressionTarget, TaskSpec, task_from_name
from ecglens.exceptions import CheckpointError, ConfigError
from ecglens.jsonutil import json_ready
from ecglens.signal.transforms import Preprocess

#: what ecglens.artifact may import: the floors below it (and itself)
_BELOW_ARTIFACT = ("exceptions", "_version", "jsonutil", "leads", "ecg", "io", "signal", "plot", "models", "artifact")


# ----------------------------------------------------------------------------------------------- json


@dataclass
class _Plain:
    x: float
    where: Path


def test_json_ready_makes_strict_json_of_numpy_paths_and_dataclasses() -> None:
    value = {1: np.float32(2.5), "a": np.arange(3), "nan": float("nan"), "inf": np.float64(np.inf),
             "t": (np.int64(1), {"p": Path("/x/y")}), "s": {"only"}, "d": _Plain(np.nan, Path("f")),
             "pre": Preprocess(fs=100.0, seconds=2.0)}
    out = json_ready(value)
    text = json.dumps(out, allow_nan=False)  # raises on NaN / numpy / Path leftovers
    assert out["1"] == 2.5 and out["a"] == [0, 1, 2] and out["nan"] is None and out["inf"] is None
    assert out["t"] == [1, {"p": "/x/y"}] and out["s"] == ["only"] and out["d"] == {"x": None, "where": "f"}
    assert out["pre"] == json.loads(json.dumps(Preprocess(fs=100.0, seconds=2.0).to_dict())) and text


# ----------------------------------------------------------------------------------------------- formats


def test_model_format_by_suffix_not_by_substring() -> None:
    assert set(list_formats()) >= {"safetensors", "onnx"}
    assert model_format("runs/a/model.safetensors") is SAFETENSORS and model_format("M.ONNX") is ONNX
    assert model_format("age-sex") is None and model_format("onnx.hea") is None
    assert ONNX.backend_only and not SAFETENSORS.backend_only and SAFETENSORS.backend == "torch"


def test_load_model_file_loads_a_shipped_name_and_refuses_an_unknown_one() -> None:
    with pytest.raises(CheckpointError, match="Unknown model name"):
        load_model_file("no-such-model")
    names = ecglens.artifact.list_pretrained()
    if names:
        assert load_model_file(names[0]).path.suffix == SAFETENSORS.suffix


# ----------------------------------------------------------------------------------------------- contract


def test_check_contract_names_each_mismatch_and_the_prepare_options() -> None:
    model = Preprocess(fs=100.0, seconds=4.0, highpass_hz=0.5)
    check_contract(model, Preprocess(fs=100.0, seconds=10.0, highpass_hz=0.5))  # longer records: windows
    check_contract(model, None)
    with pytest.raises(ConfigError, match=r"at c1 .*fs: model 100.0, cache 500.0.*--fs 100.0 --seconds 4.0.*on that"):
        check_contract(model, Preprocess(fs=500.0, seconds=4.0, highpass_hz=0.5), where="at c1", fix=" on that")
    with pytest.raises(ConfigError, match="seconds: model 4.0, cache 2.0"):
        check_contract(model, Preprocess(fs=100.0, seconds=2.0, highpass_hz=0.5))
    check_contract(model, Preprocess(fs=100.0, seconds=4.0, highpass_hz=None), fields=("fs", "seconds"))


# ----------------------------------------------------------------------------------------------- outputs


def test_output_spec_postprocesses_like_the_training_task_and_trains_again() -> None:
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [60.0, 0.0], [80.0, np.nan]]))
    spec = OutputSpec.from_dict(json.loads(json.dumps(task.to_dict())))
    assert type(spec) is OutputSpec and not isinstance(spec.targets[0], RegressionTarget)
    raw = np.array([[0.5, -1.0, 2.0], [-1.0, 0.0, -2.0]])
    for name, values in task.postprocess(raw).items():
        np.testing.assert_array_equal(spec.postprocess(raw)[name], values)
    again = TaskSpec.from_outputs(spec)
    assert again == task and TaskSpec.from_outputs(task) is task
    loss = again.loss(torch.zeros(2, 3), torch.tensor([[60.0, 1.0], [np.nan, 0.0]]))
    assert torch.isfinite(loss)
    with pytest.raises(ConfigError, match="expects raw outputs"):
        spec.postprocess(np.zeros((2, 2)))


# ----------------------------------------------------------------------------------------------- windows


def test_aggregate_windows_mean_and_sample_sd() -> None:
    means, spread = aggregate_windows({"age": np.array([50.0, 54.0]), "p": np.array([0.2])})
    assert means == {"age": 52.0, "p": pytest.approx(0.2)}
    assert spread["age"] == pytest.approx(np.std([50.0, 54.0], ddof=1)) and np.isnan(spread["p"])


def test_aggregate_records_equals_aggregate_windows_per_record() -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 31, size=120)
    per_window = {"age": rng.normal(55, 15, counts.sum()), "p": rng.random(counts.sum())}
    means, spread = aggregate_records(per_window, counts)
    start = 0
    for i, n in enumerate(counts):
        one_means, one_spread = aggregate_windows({k: v[start:start + n] for k, v in per_window.items()})
        start += n
        for k in per_window:  # the same reductions: equal to the last bit
            assert means[k][i] == one_means[k]
            assert spread[k][i] == one_spread[k] or (np.isnan(spread[k][i]) and np.isnan(one_spread[k]))


# ----------------------------------------------------------------------------------------------- layering


def _ecglens_imports(path: Path, package: list[str]) -> set[str]:
    """First component under ``ecglens`` of every import in a file, module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            parts = base + (node.module.split(".") if node.module else [])
            names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            found.update(names if parts[:1] == ["ecglens"] else [])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ecglens."))
    return found


def test_artifact_imports_nothing_above_it() -> None:
    folder = Path(ecglens.artifact.__file__).parent
    for path in folder.glob("*.py"):
        above = _ecglens_imports(path, ["ecglens", "artifact"]) - set(_BELOW_ARTIFACT)
        assert not above, f"{path.name} imports {sorted(above)}, which sit above ecglens.artifact"
