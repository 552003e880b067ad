"""Survival analysis: Cox wrapper against lifelines directly, HR recovery, C-index sign, KM figure, CLI.

Oracle: lifelines ``CoxPHFitter`` fitted by hand on the Rossi recidivism data that lifelines ships
(``lifelines.datasets.load_rossi``: 432 released prisoners, ``week`` of re-arrest, ``arrest`` event).
"""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi
from lifelines.statistics import proportional_hazard_test
from lifelines.utils import concordance_index

from ecglens.cli import app
from ecglens.data.outcomes import ecg_age_gap, gap_category, read_outcomes
from ecglens.evaluate.survival import CoxAnalysis, c_index, format_p, plot_km
from ecglens.exceptions import ConfigError
from ecglens.experiments.simulate import simulate_outcomes

COVS = ["fin", "age", "race", "wexp", "mar", "paro"]


@pytest.fixture(scope="module")
def rossi() -> pd.DataFrame:
    return load_rossi()


def _hr_ci(cph, term):
    s = cph.summary.loc[term]
    return np.array([s["exp(coef)"], s["exp(coef) lower 95%"], s["exp(coef) upper 95%"], s["p"]])


def test_cox_matches_lifelines_on_rossi(rossi):
    cox = CoxAnalysis("week", "arrest").fit(rossi, "prio", adjust=COVS)
    direct_adj = CoxPHFitter().fit(rossi, "week", "arrest")
    direct_unadj = CoxPHFitter().fit(rossi[["week", "arrest", "prio"]], "week", "arrest")
    s = cox.summary_.set_index(["model", "term"])
    for model, direct in (("adjusted", direct_adj), ("unadjusted", direct_unadj)):
        for term in direct.params_.index:
            got = s.loc[(model, term), ["hr", "ci_lower", "ci_upper", "p"]].to_numpy(float)
            np.testing.assert_allclose(got, _hr_ci(direct, term), rtol=1e-6)
    assert cox.c_index_["adjusted"] == pytest.approx(direct_adj.concordance_index_, abs=1e-9)
    assert cox.c_index_["unadjusted"] == pytest.approx(direct_unadj.concordance_index_, abs=1e-9)
    assert cox.n_ == 432 and cox.n_events_ == 114 and cox.n_dropped_ == 0


def test_ph_test_matches_lifelines(rossi):
    cox = CoxAnalysis("week", "arrest").fit(rossi, "prio", adjust=COVS)
    ref = proportional_hazard_test(
        CoxPHFitter().fit(rossi, "week", "arrest"), rossi, time_transform="rank"
    ).summary
    got = cox.ph_test_[cox.ph_test_["model"] == "adjusted"].set_index("term")
    np.testing.assert_allclose(got.loc[ref.index, "p"], ref["p"], rtol=1e-6)
    assert set(got.index[got["violated"]]) == {"age", "wexp"}  # the known PH violations in Rossi


def test_per_units_and_per_sd_rescale_exactly(rossi):
    one = CoxAnalysis("week", "arrest").fit(rossi, "prio").exposure_summary().iloc[0]
    ten = CoxAnalysis("week", "arrest").fit(rossi, "prio", per=10).exposure_summary().iloc[0]
    sd = CoxAnalysis("week", "arrest").fit(rossi, "prio", per="sd").exposure_summary().iloc[0]
    np.testing.assert_allclose(
        [ten.hr, ten.ci_lower, ten.ci_upper], np.array([one.hr, one.ci_lower, one.ci_upper]) ** 10, rtol=1e-5
    )
    assert ten.p == pytest.approx(one.p, rel=1e-6)
    assert sd.hr == pytest.approx(one.hr ** rossi["prio"].std(), rel=1e-5)
    assert ten.contrast == "per 10 units" and sd.contrast.startswith("per SD")


def test_categorical_exposure_with_reference(rossi):
    df = rossi.assign(
        prio_group=pd.cut(rossi["prio"], [-1, 0, 3, 100], labels=["none", "few", "many"]).astype(str)
    )
    cox = CoxAnalysis("week", "arrest").fit(df, "prio_group", reference="none", adjust=["age"])
    manual = pd.DataFrame(
        {
            "week": df.week,
            "arrest": df.arrest,
            "few": (df.prio_group == "few").astype(float),
            "many": (df.prio_group == "many").astype(float),
            "age": df.age,
        }
    )
    direct = CoxPHFitter().fit(manual, "week", "arrest")
    exp = cox.exposure_summary().set_index(["model", "term"])
    for level in ("few", "many"):
        np.testing.assert_allclose(
            exp.loc[("adjusted", f"prio_group[{level}]"), ["hr", "ci_lower", "ci_upper"]].to_numpy(float),
            _hr_ci(direct, level)[:3],
            rtol=1e-6,
        )
    assert set(exp["contrast"]) == {"few vs none", "many vs none"}
    with pytest.raises(ConfigError, match="reference level 'lots' not found"):
        CoxAnalysis("week", "arrest").fit(df, "prio_group", reference="lots")


def test_missing_rows_dropped_and_counted(rossi):
    df = rossi.copy()
    df.loc[:9, "prio"] = np.nan
    df.loc[10:14, "age"] = np.nan
    cox = CoxAnalysis("week", "arrest").fit(df, "prio", adjust=["age"])
    assert cox.n_dropped_ == 15 and cox.n_ == 417
    assert set(cox.summary_["n"]) == {417}  # unadjusted and adjusted models use the same rows
    with pytest.raises(ConfigError, match="not in the table"):
        CoxAnalysis("week", "arrest").fit(df, "nope")
    with pytest.raises(ConfigError, match="not fitted"):
        CoxAnalysis().to_markdown()


def test_c_index_sign_convention():
    rng = np.random.default_rng(3)
    risk = rng.normal(size=3000)
    surv = simulate_outcomes(risk, np.log(3.0), seed=4)  # higher risk -> hazard x3 per unit
    c = c_index(surv["time"], risk, surv["event"])
    assert c > 0.65
    assert concordance_index(surv["time"], risk, surv["event"]) == pytest.approx(
        1 - c, abs=1e-9
    )  # the pitfall
    cox = CoxAnalysis().fit(surv.assign(risk=risk), "risk")
    assert cox.exposure_summary()["hr"].iloc[0] > 2.5 and cox.c_index_["unadjusted"] == pytest.approx(
        c, abs=1e-9
    )


def test_recovers_known_hazard_ratio_over_seeds():
    """True HR 2 for a binary exposure (prevalence 0.3), n = 1500 per seed, 10 seeds.

    Tolerance: each log-HR estimate within 0.4 of the truth (about 3.5 standard errors with ~300 events),
    their mean within 0.1, and the true HR inside the 95 % CI for at least 8 of 10 seeds.
    """
    true = np.log(2.0)
    est, covered = [], 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        x = (rng.random(1500) < 0.3).astype(float)
        surv = simulate_outcomes(x, true, seed=rng)
        row = CoxAnalysis().fit(surv.assign(x=x), "x").exposure_summary().iloc[0]
        est.append(np.log(row.hr))
        covered += row.ci_lower <= 2.0 <= row.ci_upper
    est = np.asarray(est)
    assert np.all(np.abs(est - true) < 0.4), est
    assert abs(est.mean() - true) < 0.1, est.mean()
    assert covered >= 8, covered


def test_km_figure_with_at_risk_table(tmp_path, rossi):
    df = rossi.assign(g=np.where(rossi["fin"] == 1, "aid", "no aid"))
    res = plot_km(df, "week", "arrest", "g", tmp_path / "km.png", order=["no aid", "aid"])
    bare = plot_km(df, "week", "arrest", "g", tmp_path / "km_bare.png", at_risk=False)
    assert res.path.is_file() and res.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(res.at_risk.index) == ["no aid", "aid"]
    assert res.at_risk[0.0].tolist() == [216, 216]  # everyone at risk at time 0
    assert (res.at_risk.diff(axis=1).iloc[:, 1:] <= 0).all().all()  # never increasing
    # the table below the axes makes the saved (tight) image taller than the same plot without it
    assert mpimg.imread(res.path).shape[0] > mpimg.imread(bare.path).shape[0] + 20
    assert 0.0 < res.logrank_p < 0.1


def test_cox_km_markdown_and_dict(tmp_path, rossi):
    df = rossi.assign(prio_high=np.where(rossi["prio"] > 3, "high", "low"))
    cox = CoxAnalysis("week", "arrest").fit(df, "prio_high", reference="low", adjust=["age"])
    md = cox.to_markdown()
    row = cox.exposure_summary().query("model == 'adjusted'").iloc[0]
    assert (
        f"| adjusted | prio_high[high] | high vs low | {row.hr:.2f} | {row.ci_lower:.2f}-{row.ci_upper:.2f} |"
        in md
    )
    assert "C-index" in md and "Proportional-hazards" in md
    assert json.loads(json.dumps(cox.to_dict()))["n_events"] == 114
    km = cox.plot_km(tmp_path / "km.png")
    assert list(km.at_risk.index) == ["low", "high"] and km.path.is_file()
    assert format_p(0.0004) == "<0.001" and format_p(0.0123) == "0.012" and format_p(0.0042) == "0.0042"


def test_outcomes_code15_preset_and_age_gap():
    exams = pd.DataFrame(
        {
            "exam_id": [1, 2, 3, 4],
            "patient_id": [10, 10, 11, 12],
            "age": [50, 51, 70, 40],
            "is_male": [True, True, False, True],
            "nn_predicted_age": [61.0, 60.0, 65.0, 40.0],
            "death": [False, None, True, "False"],
            "timey": [3.2, None, 1.5, 6.0],
        }
    )
    with pytest.warns(UserWarning, match="dropped 1 row"):
        out = read_outcomes(exams, preset="code15")
    assert list(out["exam_id"]) == [1, 3, 4] and list(out["event"]) == [0, 1, 0]
    assert list(out["time"]) == [3.2, 1.5, 6.0] and list(out["sex"]) == [0.0, 1.0, 0.0]
    gap = ecg_age_gap(out["nn_predicted_age"], out["age"])
    assert list(gap) == [11.0, -5.0, 0.0]
    cat = gap_category(pd.Series([8.0, 8.5, -8.0, -9.0, np.nan]))
    assert cat.tolist()[:4] == ["normal", "ECG-age > +8", "normal", "ECG-age < -8"] and pd.isna(cat.iloc[4])
    assert list(cat.cat.categories) == ["normal", "ECG-age > +8", "ECG-age < -8"]
    with pytest.raises(ConfigError, match="not 1/0"):
        read_outcomes(pd.DataFrame({"patient_id": [1], "time": [1.0], "event": ["dead"]}))


def test_cli_survival_end_to_end(tmp_path):
    rng = np.random.default_rng(7)
    n = 600
    age = rng.uniform(30, 80, n)
    gap = rng.normal(0, 8, n)
    surv = simulate_outcomes(np.column_stack([gap / 10, (age - 60) / 10]), [np.log(1.8), np.log(1.5)], seed=8)
    ids = [f"e{i}" for i in range(n)]
    pd.DataFrame({"record_id": ids, "age_pred": age + gap}).to_csv(tmp_path / "preds.csv", index=False)
    pd.DataFrame(
        {
            "record_id": ids,
            "fu": surv["time"],
            "dead": surv["event"],
            "age": age,
            "sex": rng.integers(0, 2, n),
        }
    ).to_csv(tmp_path / "out.csv", index=False)
    out = tmp_path / "res"
    code = app(
        [
            "survival",
            str(tmp_path / "preds.csv"),
            str(tmp_path / "out.csv"),
            "--time-col",
            "fu",
            "--event-col",
            "dead",
            "--age-gap",
            "age_pred,age",
            "--exposure",
            "ecg_age_gap",
            "--per",
            "10",
            "--categorical",
            "ecg_age_gap_category",
            "--reference",
            "normal",
            "--adjust",
            "age,sex",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    for name in (
        "survival.md",
        "cox_summary.csv",
        "ph_test.csv",
        "survival.json",
        "km_continuous.png",
        "km_categorical.png",
    ):
        assert (out / name).is_file(), name
    res = json.loads((out / "survival.json").read_text())
    assert res["inputs"]["n_joined"] == n
    summary = pd.read_csv(out / "cox_summary.csv")
    adj = summary.query("analysis == 'continuous' and model == 'adjusted' and term == 'ecg_age_gap'").iloc[0]
    assert adj.ci_lower < 1.8 < adj.ci_upper  # true HR per 10 years of gap
    assert "ECG-age > +8 vs normal" in set(summary["contrast"])
    assert (
        app(
            [
                "survival",
                str(tmp_path / "preds.csv"),
                str(tmp_path / "out.csv"),
                "--exposure",
                "x",
                "--out",
                str(out),
            ]
        )
        == 2
    )  # no time/event mapping -> clean error, exit 2


def test_survival_joins_predict_output_on_record_without_on(tmp_path, capsys):
    """`ecglens predict` tables are keyed by ``record``; outcome tables by record_id / exam_id / patient_id."""
    from ecglens.cli.survival import choose_join_key

    preds = pd.DataFrame({"record": ["a", "b", "c"], "exam_id": [1, 2, 3], "patient_id": [7, 7, 8]})
    assert choose_join_key(preds, pd.DataFrame({"record_id": ["a", "b"], "exam_id": [1, 2]})) == ("record",
                                                                                                  "record_id")
    assert choose_join_key(preds, pd.DataFrame({"record_id": ["x"], "exam_id": [2]})) == ("exam_id", "exam_id")
    assert choose_join_key(preds, pd.DataFrame({"patient_id": [7]})) == ("patient_id", "patient_id")
    with pytest.raises(ConfigError, match="--on"):
        choose_join_key(preds, pd.DataFrame({"other": [1]}))

    rng = np.random.default_rng(3)
    n = 400
    age = rng.uniform(30, 80, n)
    gap = rng.normal(0, 8, n)
    surv = simulate_outcomes(np.column_stack([gap / 10]), [np.log(1.8)], seed=4)
    ids = [f"rec{i}" for i in range(n)]
    status = ["ok"] * (n - 1) + ["error"]
    pd.DataFrame({"record": ids, "status": status, "age": age + gap, "age_recorded": age}).to_csv(
        tmp_path / "preds.csv", index=False)
    pd.DataFrame({"record_id": ids, "fu": surv["time"], "dead": surv["event"]}).to_csv(tmp_path / "out.csv",
                                                                                       index=False)
    code = app(["survival", str(tmp_path / "preds.csv"), str(tmp_path / "out.csv"), "--time-col", "fu",
                "--event-col", "dead", "--exposure", "age_gap", "--per", "10", "--out", str(tmp_path / "res")])
    assert code == 0 and "joining predictions.record = outcomes.record_id" in capsys.readouterr().out
    res = json.loads((tmp_path / "res" / "survival.json").read_text())
    assert res["inputs"]["n_joined"] == n - 1 and res["inputs"]["joined_on"] == "record=record_id"
