"""Tests of the one-ECG HTML report (ecglens.report, ``ecglens report``) and the demo's prediction step.

The model is a tiny random ``cnn_baseline`` checkpoint written in the test; the report must be a single
self-contained file: every image a base64 ``data:`` URI, no external script, style sheet or image.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecglens.artifact import save_checkpoint
from ecglens.cli import app
from ecglens.cli.demo import demo_predictions
from ecglens.data.targets import task_from_name
from ecglens.examples import example_paths
from ecglens.exceptions import ConfigError
from ecglens.models import create_model
from ecglens.predict import Predictor
from ecglens.report import build_report, explained_output_index
from ecglens.signal.transforms import Preprocess

IMG = 'src="data:image/svg+xml;base64,'
PNG = 'src="data:image/png;base64,'


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    task = task_from_name("age_sex").fit(np.array([[45.0, 1.0], [65.0, 0.0]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(8, 16))
    config = {"name": "age_sex", "data": {"cache": "cache/ptbxl100", "train_folds": [1, 2, 3, 4, 5, 6, 7, 8],
                                          "val_folds": [9]}}
    path = tmp_path_factory.mktemp("ckpt") / "tiny-age-sex.safetensors"
    return save_checkpoint(path, model, task=task, preprocess=Preprocess(), config=config,
                           metrics={"age_mae": 8.5, "p_female_auroc": 0.81})


@pytest.fixture(scope="module")
def predictor(checkpoint_path: Path) -> Predictor:
    return Predictor.from_pretrained(checkpoint_path)


@pytest.fixture(scope="module")
def html_8lead(predictor: Predictor) -> str:
    """Report for the shipped 8-lead 250 Hz example (limb leads derived), true age given."""
    pytest.importorskip("captum", reason="attribution maps need the optional dependency captum")
    return build_report(example_paths()[0], predictor=predictor, true_age=63.0, n_steps=8)


def assert_self_contained(text: str, img: str = IMG) -> None:
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert img in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text, re.IGNORECASE)
    assert "<script" not in text.lower() and "<link" not in text.lower() and "url(" not in text.lower()
    srcs = re.findall(r"""src\s*=\s*["']([^"']{0,30})""", text)
    assert srcs and all(s.startswith(img[5:30]) for s in srcs)


def images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/[a-z+]+;base64,([^"]+)"', text)]


def test_report_is_self_contained_with_all_sections(html_8lead: str, predictor: Predictor) -> None:
    assert_self_contained(html_8lead)
    assert html_8lead.count(IMG) == 3  # tracing, attribution overlay, lead importance
    for text in ("ECG-predicted age", "ECG-age gap", "from --true-age", "ECG-predicted sex", "Integrated gradients",
                 "derived:III,aVR,aVL,aVF", "resampled:250-&gt;100", "Lead importance", "cache/ptbxl100",
                 "age_mae", "p_female_auroc", "not a medical device", predictor.preprocess.describe()):
        assert text in html_8lead, text


def test_report_numbers_match_the_predictor(html_8lead: str, predictor: Predictor) -> None:
    pred = predictor.predict_file(example_paths()[0])
    age = pred.outputs["age"]
    assert f"{age:.1f} &plusmn; {pred.outputs['age_std']:.1f} y" in html_8lead
    assert f"{age - 63.0:+.1f} y" in html_8lead


def test_report_true_age_from_header_and_no_attribution(predictor: Predictor) -> None:
    path = example_paths()[2]  # header says Age: 63
    text = build_report(path, predictor=predictor, explain=None)
    assert_self_contained(text)
    assert text.count(IMG) == 1 and "No attribution map" in text
    assert "from the file header" in text


def test_report_saliency_and_bad_output(predictor: Predictor) -> None:
    pytest.importorskip("captum", reason="attribution maps need the optional dependency captum")
    ecg_path = example_paths()[1]  # 15 s: two windows, both on the page
    text = build_report(ecg_path, predictor=predictor, method="saliency", explain="p_female")
    assert "Saliency" in text and text.count(IMG) == 3
    with pytest.raises(ConfigError, match="cannot explain"):
        build_report(ecg_path, predictor=predictor, explain="hemoglobin")


def test_report_figures_are_vector_svg_by_default_or_300_dpi_png(html_8lead: str, predictor: Predictor) -> None:
    """The tracing is drawn as vector paths (no embedded raster image), or as a PNG of at least 300 dpi."""
    from PIL import Image

    tracing = images(html_8lead)[0].decode("utf-8")
    assert tracing.lstrip().startswith("<?xml") and "<svg" in tracing and "<image" not in tracing
    assert tracing.count("<path") > 100  # grid, calibration pulses and 12 leads as paths
    text = build_report(example_paths()[2], predictor=predictor, explain=None, image_format="png")
    assert_self_contained(text, PNG)
    picture = Image.open(io.BytesIO(images(text)[0]))
    assert picture.info["dpi"][0] == pytest.approx(300, abs=1)
    assert picture.size[0] >= 300 * 10  # 10 s at 25 mm/s = 250 mm of trace alone: ~10 inches
    with pytest.raises(ConfigError, match="image_format must be one of"):
        build_report(example_paths()[2], predictor=predictor, explain=None, image_format="pdf")


def test_explained_output_index(predictor: Predictor) -> None:
    task = predictor.checkpoint.task
    age_target = task.targets[0]
    assert explained_output_index(task, "age") == (0, pytest.approx(age_target.std), "years")
    assert explained_output_index(task, "p_female") == (2, 1.0, "logit")
    with pytest.raises(ConfigError):
        explained_output_index(task, "nope")


def test_cli_report(checkpoint_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r" / "report.html"
    code = app(["report", str(example_paths()[2]), "--model", str(checkpoint_path), "--out", str(out),
                "--true-age", "70", "--n-steps", "4"])
    assert code == 0 and out.is_file() and "wrote" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert app(["report", str(example_paths()[2]), "--model", str(checkpoint_path), "--out", str(out),
                "--method", "none", "--format", "png"]) == 0
    assert_self_contained(out.read_text(encoding="utf-8"), PNG)
    assert "70 y, from --true-age" in text


def test_demo_predictions_with_a_model(checkpoint_path: Path, tmp_path: Path, capsys) -> None:
    table = demo_predictions(str(checkpoint_path), tmp_path)
    assert table is not None and (table["status"] == "ok").all() and len(table) == len(example_paths())
    saved = pd.read_csv(tmp_path / "preds.csv")
    assert list(saved.columns) == ["record", "status", "message", "age", "age_std", "p_female", "sex_call",
                                   "age_recorded", "age_gap", "sex_recorded", "patient_id", "exam_id", "n_windows",
                                   "flags"]
    reports = list(tmp_path.glob("report_*.html"))
    assert len(reports) == 1
    assert_self_contained(reports[0].read_text(encoding="utf-8"))
    assert "sim_250hz_8lead" in capsys.readouterr().out


def test_report_of_a_calibrated_model_gives_raw_and_corrected_gap_and_an_uncertain_sex(
        checkpoint_path: Path, tmp_path: Path) -> None:
    from ecglens.artifact.calibration import Calibration
    from ecglens.artifact.checkpoint import update_checkpoint

    raw_pred = Predictor.from_pretrained(checkpoint_path).predict_file(example_paths()[2])
    p = raw_pred.outputs["p_female"]
    # a temperature that brings this record's probability to 0.55: inside the uncertain band
    temperature = float(np.log(p / (1 - p)) / np.log(0.55 / 0.45))
    cal = Calibration(age_slope=0.7, age_intercept=18.0, age_std_scale=1.5, temperatures={"p_female": temperature},
                      folds=[9], n=100)
    path = update_checkpoint(checkpoint_path, tmp_path / "cal.safetensors", calibration=cal,
                             metrics={"age_mae": 7.0, "age_mae_ci": [6.5, 7.5], "calibration_in_sample": True})
    text = build_report(example_paths()[2], predictor=Predictor.from_pretrained(path), true_age=78.0, explain=None)
    age = raw_pred.outputs["age"]
    corrected, expected_gap = age - (0.7 * 78 + 18), 0.7 * 78 + 18 - 78
    assert "ECG-age gap, corrected for age" in text and f"{corrected:+.1f} y" in text
    assert f"Raw gap (predicted minus true age, true age 78 y, from --true-age): {age - 78:+.1f} y" in text
    assert f"the model predicts {expected_gap:+.1f} y on average" in text
    assert f"&plusmn; {1.5 * raw_pred.outputs['age_std']:.1f} y" in text
    assert '<div class="v">uncertain</div>' in text and "does not settle" in text
    assert "fitted on folds [9] (n=100)" in text and "[6.5, 7.5]" in text and "in-sample" in text


def test_report_of_a_model_calibrated_only_by_temperature(checkpoint_path: Path, tmp_path: Path) -> None:
    """A calibration without an age part (e.g. a diagnosis model's temperatures) is shown, not a crash."""
    from ecglens.artifact.calibration import Calibration
    from ecglens.artifact.checkpoint import update_checkpoint

    cal = Calibration(temperatures={"p_female": 1.25}, folds=[9], n=100)
    path = update_checkpoint(checkpoint_path, tmp_path / "temp.safetensors", calibration=cal, metrics={"folds": [9]})
    text = build_report(example_paths()[2], predictor=Predictor.from_pretrained(path), explain=None)
    assert "fitted on folds [9] (n=100): temperature p_female 1.250" in text
    assert "age_std &times;" not in text
