"""Tests of the models shipped in the package (``ecglens/weights/``), parametrised over ``list_pretrained()``.

Each shipped model must: load by its bare name; carry a complete input contract; stay under the 20 MB limit;
have a model card beside it; give finite, plausible outputs on the package's example ECGs and, where the shared
fixtures exist, on real records from several countries and devices; and export to ONNX with onnxruntime matching
PyTorch to 1e-4. The plausibility bounds are wide on purpose (any adult age, probabilities in [0, 1]): they catch
a broken contract (wrong units, rate or lead order give absurd ages), not accuracy, which the model cards report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecglens.artifact import (
    ONNX,
    list_pretrained,
    list_shipped_exports,
    load_checkpoint,
    load_model_file,
    model_format,
    pretrained_aliases,
    resolve_checkpoint,
    shipped_export,
)
from ecglens.exceptions import CheckpointError
from ecglens.predict import Predictor

SHIPPED = list_pretrained()
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "ecglens" / "examples"

pytestmark = pytest.mark.skipif(not SHIPPED, reason="no model is shipped in src/ecglens/weights/")


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_with_contract_card_and_size(name: str) -> None:
    path = resolve_checkpoint(name)
    assert path.stat().st_size <= 20 * 1024 * 1024, f"{name} is over the 20 MB limit"
    card = path.with_suffix(".md")
    assert card.is_file(), f"{name} has no model card ({card.name})"
    text = card.read_text()
    for section in ("## Input contract", "## Metrics", "## How it was made"):
        assert section in text, f"model card of {name} lacks {section!r}"
    ckpt = load_checkpoint(name)
    pre = ckpt.preprocess
    assert pre.fs > 0 and pre.seconds > 0 and len(pre.leads) == ckpt.in_leads
    assert ckpt.task.output_names, f"{name} declares no outputs"
    assert name not in ("age-sex", "age-sex-fast") or {"age", "p_female"} <= set(ckpt.task.output_names)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_plausible_on_examples(name: str) -> None:
    table = Predictor.from_pretrained(name).predict_paths([EXAMPLES], progress=False, workers=0)
    assert len(table) >= 3 and (table["status"] == "ok").all(), table[["record", "status", "message"]]
    if "age" in table:
        assert table["age"].between(10, 100).all(), table["age"]
    for column in (c for c in table if c.startswith("p_") and not c.endswith("_raw")):
        assert table[column].between(0, 1).all(), column


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"shared fixtures not found at {FIXTURES}")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_on_real_fixtures(name: str) -> None:
    """Brazil 400 Hz, Russia/China/USA 500 Hz, Germany 1000 Hz and PTB-XL 100 Hz: every record gets a row."""
    folders = [FIXTURES / d for d in ("code15", "code15b", "ludb", "cpsc", "chapman", "georgia", "ptb")]
    table = Predictor.from_pretrained(name).predict_paths([f for f in folders if f.is_dir()], progress=False,
                                                          workers=0)
    assert len(table) >= 10
    ok = table[table["status"] == "ok"]
    assert len(ok) == len(table), table[table["status"] != "ok"][["record", "message"]]
    if "age" in ok:
        assert ok["age"].between(10, 100).all(), ok[["record", "age"]]
    if "age_std" in ok:
        assert (np.isfinite(ok["age_std"]) & (ok["age_std"] > 0)).all()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_onnx_matches_torch(name: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from ecglens.export import export_onnx, verify_onnx

    path = export_onnx(name, tmp_path / f"{name}.onnx")
    assert verify_onnx(name, path) <= 1e-4


@pytest.mark.skipif("mi" not in pretrained_aliases(), reason="the superclass model (alias `mi`) is not shipped")
def test_predict_model_mi_gives_p_mi(tmp_path: Path) -> None:
    """`ecglens predict --model mi`: the shipped superclass model under its alias, one p_ column per superclass."""
    from ecglens.cli import app

    out = tmp_path / "mi.csv"
    assert app(["--quiet", "predict", str(EXAMPLES), "--model", "mi", "--workers", "0", "--no-progress",
                "-o", str(out)]) == 0

    table = pd.read_csv(out)
    assert (table["status"] == "ok").all()
    assert {"p_NORM", "p_MI", "p_STTC", "p_CD", "p_HYP"} <= set(table)
    assert table["p_MI"].between(0, 1).all()


@pytest.mark.skipif("mi" not in pretrained_aliases(), reason="the superclass model (alias `mi`) is not shipped")
def test_report_of_the_mi_model_has_a_card_per_diagnosis() -> None:
    from ecglens.report import build_report

    text = build_report(sorted(EXAMPLES.glob("*.hea"))[0], "mi", explain=None)
    for what in ("normal ECG", "myocardial infarction", "ST/T change", "conduction disturbance", "hypertrophy"):
        assert f'<div class="k">{what}</div>' in text
    assert "Validation AUROC of this output" in text and "age_std" not in text.split("<h2>Model card</h2>")[0]


EXPORTS = list_shipped_exports()


@pytest.mark.skipif(not EXPORTS, reason="no exported file is shipped in src/ecglens/weights/")
@pytest.mark.parametrize("name", EXPORTS)
def test_shipped_int8_file_has_its_own_metrics_card_and_predicts_like_its_float_model(name: str) -> None:
    """`age-sex-int8` & co.: found by bare name, described by its own fold-9 metrics (not the float model's), with
    a card; on the examples within 2 years of age and 0.07 of probability of the float model it was made from (on
    PTB-XL fold 9 the shipped `age-sex-int8` differs from `age-sex` by 0.67 y on average, 1.9 y at the 95th
    percentile, and 0.016 / 0.06 of `p_female`: quantization moves single records by about a year)."""
    pytest.importorskip("onnxruntime")
    path = shipped_export(name)
    assert model_format(name) is ONNX and path is not None and path.stat().st_size <= 20 * 1024 * 1024
    text = path.with_suffix(".md").read_text()
    for section in ("## Input contract", "## Metrics", "## How it was made"):
        assert section in text, f"model card of {name} lacks {section!r}"
    ckpt = load_model_file(name)
    assert ckpt.model is None and ckpt.path == path
    assert ckpt.metrics != ckpt.meta["float_metrics"] and "own" in ckpt.meta["onnx"]["int8"]["metrics_note"]
    float_name = name.removesuffix("-int8")
    assert ckpt.task.output_names == load_checkpoint(float_name).task.output_names
    with pytest.raises(CheckpointError, match="no PyTorch weights"):
        resolve_checkpoint(name)
    int8 = Predictor.from_pretrained(name).predict_paths([EXAMPLES], progress=False, workers=0)
    ref = Predictor.from_pretrained(float_name).predict_paths([EXAMPLES], progress=False, workers=0)
    assert (int8["status"] == "ok").all() and list(int8["record"]) == list(ref["record"])
    for column in ckpt.task.output_names:
        tolerance = 0.07 if column.startswith("p_") else 2.0
        assert np.abs(int8[column] - ref[column]).max() <= tolerance, column


@pytest.mark.skipif("age-sex-int8" not in EXPORTS, reason="age-sex-int8 is not shipped")
def test_predict_by_the_name_of_a_shipped_int8_file_never_imports_torch(tmp_path: Path) -> None:
    """`ecglens predict --model age-sex-int8` runs on onnxruntime alone, as with the file's path."""
    import subprocess
    import sys

    pytest.importorskip("onnxruntime")
    record, out = next(EXAMPLES.glob("*.hea")), tmp_path / "pred.csv"
    code = ("import sys\nfrom ecglens.cli import app\n"
            f"rc = app(['predict', {str(record)!r}, '--model', 'age-sex-int8', '-o', {str(out)!r}])\n"
            "print(rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["0", "False"], done.stdout + done.stderr
    assert out.read_text().count("\n") == 2  # a header and the record


def test_a_large_cpu_job_on_a_float_model_is_told_about_its_int8_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`ecglens predict --model age-sex` on many records names `age-sex-int8`; small jobs, a checkpoint path, a
    GPU and the onnx backend are not told (the threshold is lowered here to the example folder's size)."""
    from ecglens.artifact.formats import list_shipped_exports
    from ecglens.cli import app
    from ecglens.cli import predict as cli_predict

    if "age-sex-int8" not in list_shipped_exports():
        pytest.skip("age-sex-int8 is not shipped")
    n = len(Predictor.from_pretrained("age-sex").predict_paths([EXAMPLES], progress=False, workers=0))
    monkeypatch.setattr(cli_predict, "INT8_TIP_RECORDS", n)
    assert app(["--quiet", "predict", str(EXAMPLES), "--model", "age-sex", "--workers", "0", "--no-progress",
                "-o", str(tmp_path / "p.csv")]) == 0
    assert "--model age-sex-int8" in capsys.readouterr().err

    def tip(n_records: int, **changes: str) -> str | None:
        args = {"model": "age-sex", "backend": "torch", "device": "cpu", **changes}
        return cli_predict._int8_tip(argparse.Namespace(**args), n_records)

    assert tip(n) is not None and tip(n - 1) is None
    assert tip(n, device="cuda") is None and tip(n, backend="onnx") is None
    assert tip(n, model="age-sex-int8") is None and tip(n, model="runs/x/model.safetensors") is None
