"""Tests of ecglens.predict.postprocess.apply_calibration: the column convention of a predictions table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ecglens.artifact.calibration import Calibration
from ecglens.predict.postprocess import apply_calibration, calibration_of

CAL = Calibration(age_slope=0.8, age_intercept=12.0, age_std_scale=1.25, temperatures={"p_female": 2.0},
                  folds=[9], n=100)


def _table() -> pd.DataFrame:
    table = pd.DataFrame({"record": ["a", "b", "c", "bad"], "status": ["ok", "ok", "ok", "error"],
                          "age": [52.0, 76.0, 30.0, np.nan], "age_std": [4.0, 8.0, 6.0, np.nan],
                          "p_female": [0.9, 0.5, 0.2, np.nan], "age_recorded": [60.0, 70.0, np.nan, 50.0],
                          "n_windows": [3, 3, 3, 0]})
    table.attrs["model"] = "m"
    return table


def test_calibrated_columns_raw_kept_and_gaps_from_the_recorded_age():
    out = apply_calibration(_table(), SimpleNamespace(calibration=CAL))
    assert list(out.columns) == ["record", "status", "age", "age_std", "age_std_raw", "p_female", "p_female_raw",
                                 "sex_call", "age_recorded", "age_gap", "age_gap_corrected", "n_windows"]
    np.testing.assert_array_equal(out["age"], _table()["age"])  # never changed
    np.testing.assert_allclose(out["age_std"], [5.0, 10.0, 7.5, np.nan])
    np.testing.assert_allclose(out["p_female"][:3], [0.75, 0.5, 1 / 3], rtol=1e-4)  # sigmoid(logit(p) / 2)
    np.testing.assert_allclose(out["age_gap"], [-8.0, 6.0, np.nan, np.nan])
    # expected predicted age at 60 / 70 y: 0.8 * 60 + 12 = 60, 0.8 * 70 + 12 = 68; corrected = age - expected
    np.testing.assert_allclose(out["age_gap_corrected"], [-8.0, 8.0, np.nan, np.nan])
    assert out["sex_call"].tolist() == ["female", "uncertain", "male", ""]
    assert out.attrs["model"] == "m" and "folds [9]" in out.attrs["calibration"]
    again = apply_calibration(out, CAL)
    pd.testing.assert_frame_equal(again, out)  # applying twice changes nothing


def test_without_a_calibration_only_derived_columns():
    out = apply_calibration(_table().drop(columns=["age_recorded"]), SimpleNamespace(calibration=None))
    assert "age_std_raw" not in out and "age_gap" not in out and "age_gap_corrected" not in out
    assert out["sex_call"].tolist() == ["female", "uncertain", "male", ""]
    assert out.attrs["calibration"] == "none stored in the checkpoint"
    gap_only = apply_calibration(_table(), None)
    assert "age_gap" in gap_only and "age_gap_corrected" not in gap_only


@pytest.mark.parametrize("holder", [CAL, SimpleNamespace(calibration=CAL),
                                    SimpleNamespace(checkpoint=SimpleNamespace(calibration=CAL))])
def test_calibration_found_on_a_checkpoint_a_predictor_or_given(holder):
    assert calibration_of(holder) is CAL


def test_calibration_of_an_onnx_checkpoint_comes_from_its_stored_description():
    onnx_like = SimpleNamespace(calibration=None, meta={"calibration": CAL.to_dict()})
    assert calibration_of(onnx_like) == CAL
    assert calibration_of(SimpleNamespace(calibration=None, meta={})) is None
