"""The command line of issue #21 items 5 and 6: ``predict --shard K/N`` + ``merge`` against a plain ``predict``,
output formats by suffix, ``--dask`` and ``--device`` errors as one line (exit code 2, no traceback), and the
device reaching the model of ``predict``, ``evaluate`` and ``serve``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecglens.artifact import save_checkpoint
from ecglens.cli import app
from ecglens.data.targets import task_from_name
from ecglens.examples import example_paths
from ecglens.models import create_model
from ecglens.predict import find_records
from ecglens.predict.shard import read_table, shard_of
from ecglens.signal.transforms import Preprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [60.0, 0.0], [80.0, 1.0]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(8, 16))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model, task=task,
                           preprocess=Preprocess())


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example records in three sub-folders, and a file that is no ECG: 10 inputs."""
    folder = tmp_path_factory.mktemp("records")
    for copy in ("a", "b", "c"):
        (folder / copy).mkdir()
        for hea in example_paths():
            for f in hea.parent.glob(hea.stem + ".*"):
                shutil.copyfile(f, folder / copy / f.name)
    (folder / "broken.xml").write_text("<not an ecg/>")
    return folder


@pytest.fixture
def cpu_only_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _predict(*args: str) -> int:
    return app(["--quiet", "predict", *args, "--workers", "0", "--no-progress"])


def test_shards_then_merge_equal_one_plain_run(checkpoint: Path, records: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shards"
    # record names are the paths as given, so the partition depends on where pytest put the folder: a shard that
    # holds only the broken file fails as a whole (exit 1), as any run in which no record could be predicted
    names = [name for name, _ in find_records(str(records))]
    readable = {shard_of(name, 3) for name in names if not name.endswith("broken.xml")}
    broken_only = {shard_of(name, 3) for name in names} - readable
    for k in (1, 2, 3):
        expect = 1 if k in broken_only else 0
        assert _predict(str(records), "--model", str(checkpoint), "--shard", f"{k}/3", "-o", str(out)) == expect
    assert sorted(p.name for p in out.iterdir()) == [f"shard-0000{k}-of-00003.{s}" for k in (1, 2, 3)
                                                      for s in ("csv", "json")]
    side = json.loads((out / "shard-00001-of-00003.json").read_text())
    assert side["n_inputs"] == 10 and side["model_label"].startswith("tiny") and len(side["model_sha256"]) == 64
    capsys.readouterr()
    assert _predict(str(records), "--model", str(checkpoint), "--shard", "2/3", "-o", str(out)) == 0
    assert "already finished" in capsys.readouterr().out  # a rerun skips
    assert app(["merge", str(out), "-o", str(tmp_path / "merged.csv")]) == 0
    assert "10 records from 3 shards: 9 ok, 1 error" in capsys.readouterr().out
    assert _predict(str(records), "--model", str(checkpoint), "-o", str(tmp_path / "plain.csv")) == 0
    merged = read_table(tmp_path / "merged.csv")
    plain = read_table(tmp_path / "plain.csv").sort_values("record").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, plain)


def test_parquet_output_equals_csv(checkpoint: Path, records: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    assert _predict(str(records / "a"), "--model", str(checkpoint), "-o", str(tmp_path / "p.parquet")) == 0
    assert _predict(str(records / "a"), "--model", str(checkpoint), "-o", str(tmp_path / "p.csv")) == 0
    pd.testing.assert_frame_equal(read_table(tmp_path / "p.parquet"), read_table(tmp_path / "p.csv"))
    out = tmp_path / "pq"
    for k in (1, 2):
        assert _predict(str(records / "a"), "--model", str(checkpoint), "--shard", f"{k}/2", "-o", str(out),
                        "--format", "parquet") == 0
    assert app(["merge", str(out), "-o", str(tmp_path / "m.parquet")]) == 0
    pd.testing.assert_frame_equal(read_table(tmp_path / "m.parquet"),
                                  read_table(tmp_path / "p.csv").sort_values("record").reset_index(drop=True))


@pytest.mark.parametrize("argv, message", [
    (["--shard", "0/4", "-o", "shards"], "shard 0/4 does not exist"),
    (["--shard", "2/4"], "with --shard, --output names the folder"),
    (["--shard", "2/4", "-o", "preds.csv"], "with --shard, --output names the folder"),
    (["-o", "preds.xlsx"], r"name it .csv or .parquet"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--dask", "local:0"], "needs N >= 1"),
    (["-o", "preds.csv", "--format", "parquet"], r"--format applies to --shard; .* follows the --output suffix"),
    (["-o", "preds.csv", "--force"], r"--force applies to --shard"),
])
def test_predict_option_errors_are_one_line(records: Path, argv: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _predict(str(records), *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ecglens predict: error: ") and re.search(message, err) and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_merge_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert app(["merge", str(tmp_path), "-o", str(tmp_path / "m.csv")]) == 2
    assert "no finished shards" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_cuda_on_a_cpu_only_build_is_one_clear_line(command: str, cpu_only_build: None, checkpoint: Path,
                                                     records: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    if command == "serve":
        pytest.importorskip("uvicorn")
        pytest.importorskip("fastapi")
    argv = {"predict": ["predict", str(records), "--model", str(checkpoint), "-o", str(tmp_path / "p.csv")],
            "evaluate": ["evaluate", str(checkpoint), str(tmp_path / "cache"), "--out", str(tmp_path / "eval")],
            "serve": ["serve", "--model", str(checkpoint)]}[command]
    assert app([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ecglens {command}: error: --device cuda needs a CUDA build of torch")
    assert "pip install torch==2.13.0 --index-url" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # checked before anything is written


def test_device_reaches_the_served_model(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda application, **kwargs: served.append(application))
    assert app(["serve", "--model", str(checkpoint), "--device", "cpu"]) == 0
    predictor = served[0].state.ecglens.predictor
    assert predictor.backend.device == torch.device("cpu")


def test_device_with_the_onnx_backend_is_refused(checkpoint: Path, records: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import ecglens.predict.device as device

    monkeypatch.setattr(device, "resolve_device", lambda name: "cuda")  # as on a GPU machine
    assert _predict(str(records), "--model", str(checkpoint), "--backend", "onnx", "--device", "cuda") == 2
    assert "applies to the torch backend" in capsys.readouterr().err


def test_precision_reaches_the_served_model_and_the_shard_identity(
        checkpoint: Path, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--precision bf16`` builds the served backend with it, and a shard written in float32 is not finished
    for a bf16 rerun of the same job (the identity differs), nor the other way round."""
    import warnings

    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda application, **kwargs: served.append(application))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a CPU without bf16 instructions
        assert app(["serve", "--model", str(checkpoint), "--precision", "bf16"]) == 0
        assert served[0].state.ecglens.predictor.backend.precision == "bf16"
        out = tmp_path / "shards"
        k = min(shard_of(name, 2) for name, _ in find_records(str(records)) if not name.endswith("broken.xml"))
        assert _predict(str(records), "--model", str(checkpoint), "--shard", f"{k}/2", "-o", str(out)) == 0
        side = json.loads((out / f"shard-0000{k}-of-00002.json").read_text())
        assert "precision" not in side["options"]  # float32: the identity of shards written before the option
        capsys.readouterr()
        assert _predict(str(records), "--model", str(checkpoint), "--shard", f"{k}/2", "-o", str(out),
                        "--precision", "bf16") == 2
    assert "of another job (its options differ from this run's)" in capsys.readouterr().err
