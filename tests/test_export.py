"""Tests of ONNX export (``ecglens.export``, ``ecglens export``) and the ``"onnx"`` prediction backend.

Every model of the zoo (``list_models()``, small widths) is exported from a tiny random checkpoint written with
``save_checkpoint`` and compared with PyTorch by onnxruntime at two input lengths. The ONNX backend of
``Predictor`` is checked against the PyTorch backend on a synthetic WFDB record (25 s, so several windows run in
one batch). Nothing here depends on a shipped model or a hard-coded result.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from small_models import SMALL
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from ecglens.artifact import load_checkpoint, load_onnx_checkpoint, read_onnx_metadata, save_checkpoint
from ecglens.artifact.onnx import onnx_session
from ecglens.data.targets import task_from_name
from ecglens.exceptions import CheckpointError, ConfigError
from ecglens.export import cached_onnx, export_onnx, verify_onnx
from ecglens.models import create_model, list_models
from ecglens.predict.onnx import OnnxBackend
from ecglens.signal.transforms import Preprocess

#: a short contract keeps the export tests fast (4 s at 100 Hz = 400 samples)
PRE = Preprocess(fs=100.0, seconds=4.0)


def fitted_task():
    rng = np.random.default_rng(0)
    labels = np.c_[rng.uniform(20, 90, 64), rng.integers(0, 2, 64)]
    return task_from_name("age_sex").fit(labels)


def make_checkpoint(folder: Path, name: str = "cnn_baseline", pre: Preprocess = PRE, seed: int = 0) -> Path:
    """A random (untrained) checkpoint of ``name`` with the age-sex task."""
    task = fitted_task()
    torch.manual_seed(seed)
    model = create_model(name, num_outputs=task.num_outputs, **SMALL.get(name, {}))
    return save_checkpoint(folder / f"{name}.safetensors", model, task=task, preprocess=pre)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op torch thread


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), pre=Preprocess())


@pytest.fixture(scope="module")
def onnx_path(ckpt_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(ckpt_path, tmp_path_factory.mktemp("onnx") / "model.onnx")


@pytest.fixture(scope="module")
def long_record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic 12-lead WFDB record: 25 s at 250 Hz, mV-scale sinusoids + noise."""
    wfdb = pytest.importorskip("wfdb")
    folder = tmp_path_factory.mktemp("rec")
    fs, n = 250, 250 * 25
    t = np.arange(n) / fs
    rng = np.random.default_rng(3)
    sig = np.stack([0.8 * np.sin(2 * np.pi * 1.2 * t + k) + 0.05 * rng.standard_normal(n) for k in range(12)], 1)
    leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    wfdb.wrsamp("long", fs=fs, units=["mV"] * 12, sig_name=leads, p_signal=sig, fmt=["16"] * 12,
                write_dir=str(folder))
    return folder / "long.hea"


# ---------------------------------------------------------------------------------------------------------
# every zoo model
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_zoo_model_exports_and_matches_torch(name: str, tmp_path: Path) -> None:
    ckpt = load_checkpoint(make_checkpoint(tmp_path, name))
    path = export_onnx(ckpt, tmp_path / f"{name}.onnx")
    info = read_onnx_metadata(path)["onnx"]
    assert info["dynamic_batch"] is True
    assert info["dynamic_length"] is True, info["note"]  # every zoo model is length-generic today
    diff = verify_onnx(ckpt, path, lengths=(PRE.n_samples, 650), batch_size=3)
    assert diff <= 1e-4


# ---------------------------------------------------------------------------------------------------------
# the file
# ---------------------------------------------------------------------------------------------------------


def test_metadata_carries_the_checkpoint_description(ckpt_path: Path, onnx_path: Path) -> None:
    import onnx

    ckpt = load_checkpoint(ckpt_path)
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert {"ecglens", "model_name", "preprocess", "task", "input_contract"} <= set(props)
    assert props["model_name"] == "cnn_baseline"
    doc = read_onnx_metadata(onnx_path)
    assert Preprocess.from_dict(doc["preprocess"]) == ckpt.preprocess
    assert doc["task"] == ckpt.task.to_dict()
    assert doc["model"]["num_outputs"] == 3
    contract = doc["onnx"]["input_contract"]
    assert contract["shape"] == ["batch", 12, "samples"]
    assert contract["fs"] == 100.0 and contract["n_samples"] == 1000
    assert contract["output_names"] == ["age", "age_std", "p_female"]
    graph = onnx.load(str(onnx_path)).graph
    assert [i.name for i in graph.input] == ["ecg"]
    assert [o.name for o in graph.output] == ["raw", "age", "age_std", "p_female"]


def test_weightless_checkpoint_from_onnx(onnx_path: Path, ckpt_path: Path) -> None:
    light = load_onnx_checkpoint(onnx_path)
    ckpt = load_checkpoint(ckpt_path)
    assert light.model is None
    assert light.task.output_names == ckpt.task.output_names
    assert light.preprocess == ckpt.preprocess


def test_not_an_ecglens_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(CheckpointError, match="ONNX"):
        read_onnx_metadata(bad)
    with pytest.raises(CheckpointError, match="not found"):
        read_onnx_metadata(tmp_path / "missing.onnx")


def test_fixed_length_export(ckpt_path: Path, tmp_path: Path) -> None:
    path = export_onnx(ckpt_path, tmp_path / "fixed.onnx", dynamic_length=False, dynamic_batch=False)
    info = read_onnx_metadata(path)["onnx"]
    assert info["fixed_length"] == 1000 and info["dynamic_batch"] is False
    assert verify_onnx(ckpt_path, path) <= 1e-4
    with pytest.raises(ConfigError, match="fixed length of 1000"):
        verify_onnx(ckpt_path, path, lengths=(500,))
    backend = OnnxBackend(path)
    x = np.random.default_rng(0).standard_normal((3, 12, 1000)).astype(np.float32)
    with torch.no_grad():
        ref = load_checkpoint(ckpt_path).model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(backend.run(x), ref, atol=1e-4)  # batch of 3 through a batch-1 graph
    with pytest.raises(ConfigError, match="exactly 1000 samples"):
        backend.run(x[:, :, :500])


def _flatten_model(in_leads: int = 12, num_outputs: int = 1, length: int = 400) -> nn.Module:
    """Test model whose head flattens time, so its graph only works at one length."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_leads * length, num_outputs))


def test_model_that_is_not_length_generic_falls_back_to_fixed_length(tmp_path: Path, monkeypatch) -> None:
    from ecglens.models import _registry

    monkeypatch.setitem(_registry._MODELS, "flatten_test",
                        _registry.ModelSpec("flatten_test", _flatten_model, "test", {"in_leads": 12,
                                                                                     "num_outputs": 1}))
    path = make_checkpoint(tmp_path, "flatten_test")
    with pytest.warns(UserWarning, match="not length-generic"):
        out = export_onnx(path, tmp_path / "flat.onnx")
    info = read_onnx_metadata(out)["onnx"]
    assert info["dynamic_length"] is False and info["fixed_length"] == PRE.n_samples
    assert "fixed length 400" in info["note"]
    assert verify_onnx(path, out) <= 1e-4


# ---------------------------------------------------------------------------------------------------------
# the backend and the CLI
# ---------------------------------------------------------------------------------------------------------


def test_predictor_onnx_backend_equals_torch(ckpt_path: Path, long_record: Path, tmp_path: Path) -> None:
    from ecglens.predict import Predictor

    torch_pred = Predictor.from_pretrained(ckpt_path).predict_file(long_record)
    onnx_pred = Predictor.from_pretrained(ckpt_path, backend="onnx", cache_dir=tmp_path).predict_file(long_record)
    assert torch_pred.n_windows == onnx_pred.n_windows > 1
    assert onnx_pred.flags == torch_pred.flags
    for key, value in torch_pred.outputs.items():
        assert onnx_pred.outputs[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
    assert list(tmp_path.glob("cnn_baseline-*-opset17.onnx"))  # exported on the fly into the cache folder


def test_onnx_backend_shares_cores_with_reading_workers(onnx_path: Path, monkeypatch) -> None:
    """Beside busy readers the backend runs a session with the cores they leave; explicit threads stay."""
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    backend = OnnxBackend(onnx_path)
    own = backend._session
    x = np.random.default_rng(0).standard_normal((2, 12, 1000)).astype(np.float32)
    ref = backend.run(x)
    with backend.sharing_cores(3):
        assert backend._session is not own and backend._session.get_session_options().intra_op_num_threads == 1
        np.testing.assert_allclose(backend.run(x), ref, atol=1e-5)
    assert backend._session is own
    with backend.sharing_cores(0):
        assert backend._session is own
    fixed = OnnxBackend(onnx_path, threads=2)
    with fixed.sharing_cores(3):
        assert fixed._session.get_session_options().intra_op_num_threads == 2


def test_reading_workers_run_an_onnx_model_beside_the_main_process_session(onnx_path: Path, long_record: Path,
                                                                          tmp_path: Path) -> None:
    """Each forked worker opens its own single-thread session and leaves the inherited one alone: while this
    process holds a session with a thread pool (and has predicted with it), a pooled run finishes and gives the
    same table as this process alone. (Replacing the inherited session in a worker hung ``ecglens predict`` with
    the int8 ``age-sex`` file in its destructor; this tiny model does not reproduce that.)"""
    from ecglens.predict import Predictor

    for k in range(4):
        (tmp_path / str(k)).mkdir()
        for suffix in (".hea", ".dat"):
            (tmp_path / str(k) / f"long{suffix}").symlink_to(long_record.with_suffix(suffix))
    predictor = Predictor.from_pretrained(onnx_path)
    predictor.backend._session = onnx_session(onnx_path, threads=2)  # a thread pool, whatever the machine's cores
    alone = predictor.predict_paths(tmp_path, progress=False, workers=0)
    assert predictor.backend.threads is None and callable(predictor.backend.for_worker())
    pooled = predictor.predict_paths(tmp_path, progress=False, workers=2, chunk_size=1, timeout=60)
    assert (pooled["status"] == "ok").all(), pooled["message"].tolist()
    pd.testing.assert_frame_equal(pooled, alone, check_exact=False, rtol=1e-6)
    assert OnnxBackend(onnx_path, threads=1).for_worker() is None  # explicit threads: the model stays here


def test_predictor_with_weightless_onnx_checkpoint(onnx_path: Path, ckpt_path: Path, long_record: Path) -> None:
    from ecglens.predict import Predictor

    ref = Predictor.from_pretrained(ckpt_path).predict_file(long_record).outputs
    got = Predictor(load_onnx_checkpoint(onnx_path), backend="onnx").predict_file(long_record).outputs
    assert got == pytest.approx(ref, rel=1e-5, abs=1e-5)
    by_file = Predictor.from_pretrained(onnx_path)  # the .onnx format runs only with its own backend
    assert by_file.backend_name == "onnx" and by_file.checkpoint.model is None
    assert by_file.predict_file(long_record).outputs == pytest.approx(ref, rel=1e-5, abs=1e-5)


def test_predicting_with_an_onnx_file_never_imports_torch(onnx_path: Path, long_record: Path, tmp_path: Path) -> None:
    """``ecglens predict --model FILE.onnx`` runs on onnxruntime alone: importing torch would add ~1.5 s of start-up,
    the ``onnx`` package (only needed to export) ~0.3 s."""
    import subprocess
    import sys

    out = tmp_path / "pred.csv"
    code = ("import sys\nfrom ecglens.cli import app\n"
            f"rc = app(['predict', {str(long_record)!r}, '--model', {str(onnx_path)!r}, '-o', {str(out)!r}])\n"
            "print(rc, 'torch' in sys.modules, 'onnx' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stdout + done.stderr
    assert out.read_text().count("\n") == 2  # a header and the record


def test_onnx_file_from_another_model_is_refused(onnx_path: Path, tmp_path: Path) -> None:
    from ecglens.predict import Predictor

    other = make_checkpoint(tmp_path, "attia_cnn")
    with pytest.raises(CheckpointError, match="Export the ONNX file from this checkpoint"):
        Predictor.from_pretrained(other, backend="onnx", onnx_path=onnx_path)


def test_cache_reuses_the_export(ckpt_path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ECGLENS_CACHE", str(tmp_path))
    first = cached_onnx(ckpt_path)
    stamp = first.stat().st_mtime_ns
    assert first.parent == tmp_path / "onnx"
    assert cached_onnx(ckpt_path) == first and first.stat().st_mtime_ns == stamp


def test_cli_export_verify(ckpt_path: Path, tmp_path: Path, capsys) -> None:
    from ecglens.cli import app

    out = tmp_path / "cli.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = app(["export", str(ckpt_path), "--onnx", str(out), "--verify"])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "dynamic axes: batch, samples" in text and "verify: max |onnxruntime - torch|" in text
    assert app(["export", str(tmp_path / "nope.safetensors"), "--onnx", str(out)]) == 2


#: run by a plain interpreter: onnxruntime and numpy only (ecglens must not be imported)
_PLAIN_ONNXRUNTIME = """
import json, sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
names = [o.name for o in session.get_outputs()]
values = session.run(names, {"ecg": x})
meta = session.get_modelmeta().custom_metadata_map
assert "ecglens" not in sys.modules
print(json.dumps({"names": names, "contract": json.loads(meta["input_contract"]),
                  "means": {n: float(np.mean(v)) for n, v in zip(names, values) if v.ndim == 1}}))
"""


def test_named_outputs_in_user_units_match_predict_with_plain_onnxruntime(ckpt_path: Path, onnx_path: Path,
                                                                         long_record: Path, tmp_path: Path) -> None:
    """The exported file alone (no ecglens in the subprocess) gives what ``ecglens predict`` / Predictor give:
    the mean over the record's windows of ``age`` (years), ``age_std`` and ``p_female``, within 1e-4."""
    import json
    import subprocess
    import sys

    import pandas as pd

    from ecglens.cli import app
    from ecglens.io import read_ecg
    from ecglens.predict import Predictor

    predictor = Predictor.from_pretrained(ckpt_path)
    prepared = predictor.adapter.prepare(read_ecg(long_record))
    assert prepared.n_windows > 1
    np.save(tmp_path / "x.npy", prepared.windows.astype(np.float32))
    run = subprocess.run([sys.executable, "-c", _PLAIN_ONNXRUNTIME, str(onnx_path), str(tmp_path / "x.npy")],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ""})
    result = json.loads(run.stdout)
    assert result["names"] == ["raw", "age", "age_std", "p_female"]
    assert result["contract"]["graph_outputs"] == result["names"] and result["contract"]["units"] == "mV"
    expected = predictor.predict_file(long_record).outputs
    assert set(expected) == set(result["means"])
    for name, value in expected.items():
        assert result["means"][name] == pytest.approx(value, abs=1e-4), name
    assert app(["--quiet", "predict", str(long_record), "--model", str(ckpt_path),
                "--output", str(tmp_path / "p.csv")]) == 0
    row = pd.read_csv(tmp_path / "p.csv").iloc[0]
    for name in expected:
        assert result["means"][name] == pytest.approx(float(row[name]), abs=1e-4), name
    assert 0 < result["means"]["p_female"] < 1 and result["means"]["age_std"] > 0
