"""Lab tables: unit conversion, ECG <-> lab linkage (never across patients) and anemia labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecglens.data.labs import MMOL_L_TO_G_DL, anemia_labels, convert_units, link_labs, read_labs
from ecglens.exceptions import ConfigError, UnitError

# ------------------------------------------------------------------------------------------------------------
# units


def test_mmol_factor_from_monomer_molar_mass():
    # 64,458 g/mol tetramer / 4 = 16,114.5 g/mol -> 1 mmol/L = 16.1145 g/L = 1.61145 g/dL (clinically "1.611")
    assert MMOL_L_TO_G_DL == pytest.approx(1.61145)
    assert round(MMOL_L_TO_G_DL, 3) == 1.611


def test_convert_units_mixed_spellings():
    got = convert_units([13.5, 135, 8.4, 10.0, 12.0], ["g/dL", "g/L", "mmol/L", " G/DL ", "g/100 mL"])
    np.testing.assert_allclose(got, [13.5, 13.5, 8.4 * 1.61145, 10.0, 12.0])
    assert convert_units([140.0], "g/l")[0] == pytest.approx(14.0)


def test_convert_units_unknown_unit_raises_with_fix():
    with pytest.raises(UnitError, match=r"unknown hemoglobin unit.*'mg/L'.*known"):
        convert_units([1.0, 13.0], ["mg/L", "g/dL"])


def test_read_labs_column_mapping_dates_and_units(tmp_path):
    path = tmp_path / "labs.csv"
    pd.DataFrame(
        {
            "mrn": ["a", "a", "b"],
            "drawn": ["2020-01-01 08:00", "2020-01-03 09:30", "2020-02-01"],
            "hgb": [13.0, 120.0, 7.0],
            "hgb_unit": ["g/dL", "g/L", "mmol/L"],
        }
    ).to_csv(path, index=False)
    labs = read_labs(path, columns={"patient_id": "mrn", "time": "drawn", "value": "hgb", "unit": "hgb_unit"})
    assert pd.api.types.is_datetime64_any_dtype(labs["time"])
    np.testing.assert_allclose(labs["value"], [13.0, 12.0, 7.0 * MMOL_L_TO_G_DL])
    assert set(labs["unit"]) == {"g/dL"}
    assert list(labs["unit_raw"]) == ["g/dL", "g/L", "mmol/L"]
    assert labs.attrs["read_labs"]["n_rows"] == 3


def test_read_labs_unit_argument_and_missing_unit():
    df = pd.DataFrame({"patient_id": [1, 2], "time": [0.0, 3.0], "value": [130.0, 90.0]})
    with pytest.raises(UnitError, match="unit="):
        read_labs(df)
    assert list(read_labs(df, unit="g/L")["value"]) == [13.0, 9.0]
    assert pd.api.types.is_float_dtype(read_labs(df, unit="g/L")["time"])


def test_read_labs_implausible_values_flagged_and_systematic_error_refused():
    df = pd.DataFrame(
        {"patient_id": [1, 2, 3, 4], "time": [0.0] * 4, "value": [13.0, 12.0, 140.0, 11.0], "unit": "g/dL"}
    )
    with pytest.warns(UserWarning, match="1 hemoglobin value"):
        labs = read_labs(df)
    assert np.isnan(labs["value"].iloc[2]) and labs.attrs["read_labs"]["n_implausible"] == 1
    g_l_labelled_g_dl = df.assign(value=[130.0, 120.0, 140.0, 110.0])
    with pytest.raises(UnitError, match="probably wrong"):
        read_labs(g_l_labelled_g_dl)
    assert read_labs(g_l_labelled_g_dl, plausible=None)["value"].notna().all()


# ------------------------------------------------------------------------------------------------------------
# linkage


def _labs(rows):
    return pd.DataFrame(rows, columns=["patient_id", "time", "value"]).assign(unit="g/dL")


def test_link_never_uses_another_patients_draw():
    """Adversarial: patient B's draw is at the exact ECG time of A; A's own draw is 5 days away."""
    ecgs = pd.DataFrame({"patient_id": ["A", "B", "C"], "time": [10.0, 30.0, 10.0]})
    labs = _labs([("B", 10.0, 7.0), ("A", 15.0, 13.0), ("B", 31.0, 9.0), ("A", 10.5, np.nan)])
    out = link_labs(ecgs, labs, window=(-7, 7))
    assert out["hb"].iloc[0] == 13.0 and out["lab_time_delta"].iloc[0] == 5.0
    assert out["hb"].iloc[1] == 9.0 and out["lab_time_delta"].iloc[1] == 1.0
    assert np.isnan(out["hb"].iloc[2]), "C has no draws; B's draw at the same time must not be used"
    assert out.attrs["link_labs"] == {
        "n_ecgs": 3,
        "n_matched": 2,
        "n_unmatched": 1,
        "window": [-7.0, 7.0],
        "how": "nearest",
    }


def test_link_window_edges_inclusive_and_asymmetric():
    ecgs = pd.DataFrame({"patient_id": [1, 2, 3, 4], "time": [100.0] * 4})
    labs = _labs([(1, 93.0, 11.0), (2, 107.0, 12.0), (3, 92.99, 13.0), (4, 107.01, 14.0)])
    out = link_labs(ecgs, labs, window=(-7, 7))
    assert list(out["hb"].iloc[:2]) == [11.0, 12.0]
    assert out["hb"].iloc[2:].isna().all()
    out = link_labs(ecgs, _labs([(1, 97.0, 11.0), (2, 102.0, 12.0), (3, 101.0, 13.0)]), window=(-3, 1))
    assert out["hb"].iloc[0] == 11.0 and np.isnan(out["hb"].iloc[1]) and out["hb"].iloc[2] == 13.0


def test_link_ties_and_duplicates_are_deterministic():
    ecgs = pd.DataFrame({"patient_id": ["x", "y"], "time": [50.0, 50.0]})
    labs = _labs([("x", 52.0, 12.0), ("x", 48.0, 10.0), ("y", 49.0, 8.0), ("y", 49.0, 9.0)])
    for _ in range(3):
        out = link_labs(ecgs, labs.sample(frac=1.0, random_state=_), window=(-7, 7))
        assert out["hb"].iloc[0] == 10.0 and out["lab_time_delta"].iloc[0] == -2.0  # tie -> earlier draw
        assert out["hb"].iloc[1] == 8.5  # two draws at the same time are averaged


def test_link_before_after_and_order_preserved():
    ecgs = pd.DataFrame({"patient_id": [1, 1, 2], "time": [20.0, 5.0, 8.0]}, index=[7, 3, 9])
    labs = _labs([(1, 4.0, 10.0), (1, 6.5, 11.0), (1, 21.0, 12.0), (1, 18.0, 13.0), (2, 9.0, 14.0)])
    near = link_labs(ecgs, labs, window=(-5, 5))
    assert list(near.index) == [7, 3, 9]
    assert list(near["hb"]) == [12.0, 10.0, 14.0]
    before = link_labs(ecgs, labs, window=(-5, 5), how="before")
    assert before["hb"].iloc[0] == 13.0 and before["hb"].iloc[1] == 10.0 and np.isnan(before["hb"].iloc[2])
    after = link_labs(ecgs, labs, window=(-5, 5), how="after")
    assert list(after["hb"]) == [12.0, 11.0, 14.0]


def test_link_datetimes_units_and_errors():
    t0 = pd.Timestamp("2021-05-01 12:00")
    ecgs = pd.DataFrame({"patient_id": ["p"], "time": [t0]})
    labs = pd.DataFrame(
        {
            "patient_id": ["p", "p"],
            "time": [t0 - pd.Timedelta(hours=36), t0 + pd.Timedelta(days=3)],
            "value": [125.0, 11.0],
            "unit": ["g/L", "g/dL"],
        }
    )
    out = link_labs(ecgs, labs, window=(-2, 2))
    assert out["hb"].iloc[0] == pytest.approx(12.5) and out["lab_time_delta"].iloc[0] == pytest.approx(-1.5)
    with pytest.raises(ConfigError, match="datetime"):
        link_labs(ecgs.assign(time=[3.0]), labs)
    with pytest.raises(ConfigError, match="different types"):
        link_labs(pd.DataFrame({"patient_id": [1], "time": [t0]}), labs)
    with pytest.raises(ConfigError, match="contain 0"):
        link_labs(ecgs, labs, window=(1, 5))
    with pytest.raises(ConfigError, match="how"):
        link_labs(ecgs, labs, how="closest")


def _naive_link(ecgs, labs, low, high):
    """Independent oracle: loop over ECGs, filter the same patient's draws in the window, take the nearest."""
    out = []
    for pid, t in zip(ecgs["patient_id"], ecgs["time"], strict=True):
        mine = labs[(labs["patient_id"] == pid)].groupby("time", as_index=False)["value"].mean()
        delta = mine["time"] - t
        mine = mine[(delta >= low) & (delta <= high)].assign(d=delta)
        if mine.empty:
            out.append(np.nan)
            continue
        mine = mine.assign(a=mine["d"].abs()).sort_values(["a", "d"])  # ties -> the negative (earlier) delta
        out.append(mine["value"].iloc[0])
    return np.array(out)


def test_link_matches_bruteforce_oracle(rng):
    n_pat = 40
    ecgs = pd.DataFrame(
        {"patient_id": rng.integers(0, n_pat, 120), "time": rng.integers(0, 60, 120).astype(float)}
    )
    labs = _labs(
        list(
            zip(
                rng.integers(0, n_pat + 5, 300),
                rng.integers(0, 70, 300).astype(float),
                np.round(rng.uniform(6, 17, 300), 1), strict=True,
            )
        )
    )
    got = link_labs(ecgs, labs, window=(-6, 4))["hb"].to_numpy()
    np.testing.assert_allclose(got, _naive_link(ecgs, labs, -6, 4), equal_nan=True)


# ------------------------------------------------------------------------------------------------------------
# anemia labels


def test_anemia_thresholds_inclusive():
    hb = pd.Series([7.9, 8.0, 8.01, 10.0, 10.01, np.nan], index=list("abcdef"))
    lab = anemia_labels(hb)
    assert list(lab.index) == list("abcdef")
    np.testing.assert_array_equal(lab["severe"], [1, 1, 0, 0, 0, np.nan])
    np.testing.assert_array_equal(lab["moderate"], [1, 1, 1, 1, 0, np.nan])
    custom = anemia_labels([11.0, 11.5], thresholds={"mild": 11.0})
    assert list(custom.columns) == ["mild"] and list(custom["mild"]) == [1.0, 0.0]


def test_anemia_who_sex_specific():
    hb = [12.99, 13.0, 11.99, 12.0, 12.5, 12.5, 12.5]
    sex = [0, 0, 1, 1, "M", "F", np.nan]
    lab = anemia_labels(hb, thresholds={}, sex=sex, who=True)
    np.testing.assert_array_equal(lab["who_anemia"], [1, 0, 1, 0, 1, 0, np.nan])
    with pytest.raises(ConfigError, match="sex"):
        anemia_labels(hb, who=True)
    with pytest.raises(ConfigError, match="1/0"):
        anemia_labels([12.0], sex=[2], who=True)
