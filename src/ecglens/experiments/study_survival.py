"""Survival analyses of the hemoglobin study (:mod:`ecglens.experiments.study`): ECG-derived Hb -> outcomes.

Per evaluation split: the index ECG of each patient, exposures from ECG-derived Hb (flag at the validation
threshold, categories, per g/dL, and the regression-calibrated probability of low Hb; see the module docstring of
:mod:`ecglens.experiments.study`), Cox models (:class:`~ecglens.evaluate.survival.CoxAnalysis`) unadjusted and
adjusted, a Kaplan-Meier figure by ECG-Hb category and the headline hazard ratio.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluate.survival import CoxAnalysis, c_index
from ..exceptions import EcglensError
from .study_config import StudySettings

__all__ = ["WHO_MILD_CUTS", "anemia_label", "headline", "survival_analyses", "who_anemia_label", "who_score"]

#: WHO anemia in adults: Hb < 12 g/dL (women, sex 1), < 13 g/dL (men, sex 0)
WHO_MILD_CUTS: dict[int, float] = {1: 12.0, 0: 13.0}

#: ECG-derived Hb categories, the first is the reference
_CATEGORIES = ("normal", "low", "severely low")
_NOT_AVAILABLE = "not available"  # an exposure the data lacks (no simulated truth, calibration impossible)


def anemia_label(df: pd.DataFrame, cut: float) -> np.ndarray:
    """1.0 where lab Hb (``df["hb"]``, g/dL) <= ``cut``, 0.0 above, NaN where unknown."""
    return np.where(df["hb"].isna(), np.nan, (df["hb"] <= cut).astype(float))


def _who_cut(df: pd.DataFrame) -> np.ndarray:
    sex = pd.to_numeric(df["sex"], errors="coerce") if "sex" in df else pd.Series(np.nan, index=df.index)
    return np.select([sex == 1, sex == 0], [WHO_MILD_CUTS[1], WHO_MILD_CUTS[0]], np.nan)


def who_anemia_label(df: pd.DataFrame) -> np.ndarray:
    """1.0 where lab Hb is below the WHO cut of the patient's sex (< 12 g/dL women, < 13 men), 0.0 at or above,
    NaN where Hb or sex is unknown."""
    cut = _who_cut(df)
    return np.where(df["hb"].isna() | np.isnan(cut), np.nan, (df["hb"] < cut).astype(float))


def who_score(df: pd.DataFrame) -> np.ndarray:
    """Predicted Hb minus the WHO cut of the patient's sex (g/dL; NaN without sex): lower = more anemic."""
    return df["hb_pred"].to_numpy(float) - _who_cut(df)


def _calibrate(val: pd.DataFrame, cut: float, covariates: Sequence[str]) -> tuple[Any, str]:
    """Logistic P(lab Hb <= cut | hb_pred, covariates) on validation (regression calibration), or None."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cols = ["hb_pred", *covariates]
    d = val.dropna(subset=["hb", *cols])
    y = (d["hb"] <= cut).astype(int)
    if y.sum() < 3 or (1 - y).sum() < 3:
        return None, f"calibration needs >= 3 validation ECGs with and without Hb <= {cut:g} (has {int(y.sum())})"
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1e4, max_iter=2000))
    return model.fit(d[cols].to_numpy(float), y.to_numpy()), ""


def _survival_frame(df: pd.DataFrame, val: pd.DataFrame, thresholds: dict, study: StudySettings) -> tuple:
    """Index ECG per patient + outcomes + every exposure column; returns (frame, notes)."""
    d = df.dropna(subset=["hb_pred"]).sort_values("ecg_time").drop_duplicates("patient_id")
    level = study.low_hb_level
    low = thresholds[level]
    lower = sorted((v for v in thresholds.values() if v["cut_g_dl"] < low["cut_g_dl"]), key=lambda v: v["cut_g_dl"])
    t_low = low["threshold_g_dl"]
    t_sev = min(lower[0]["threshold_g_dl"], t_low) if lower else -np.inf  # categories must nest
    d["ecg_low_hb"] = (d["hb_pred"] <= t_low).astype(int)
    cat = np.select([d["hb_pred"] <= t_sev, d["hb_pred"] <= t_low], ["severely low", "low"], "normal")
    d["ecg_hb_category"] = pd.Categorical(cat, categories=list(_CATEGORIES))
    d["lab_low_hb"] = anemia_label(d, thresholds[level]["cut_g_dl"])
    notes = []
    for col, covs in (("p_low_hb", ()), ("p_low_hb_adj", tuple(study.adjust))):
        model, note = _calibrate(val, thresholds[level]["cut_g_dl"], covs)
        ok = d[["hb_pred", *covs]].notna().all(axis=1)
        d[col] = np.nan
        if model is not None:
            d.loc[ok, col] = model.predict_proba(d.loc[ok, ["hb_pred", *covs]].to_numpy(float))[:, 1]
        elif note not in notes:
            notes.append(note)
    return d, notes


#: analysis -> (exposure column, CoxAnalysis.fit options, contrast label; ``{cut}`` = low-Hb cut-off in g/dL).
#: The two calibrated analyses use calibration models with the Cox model's own covariates (none / ``adjust``).
_ANALYSES: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "ecg_low_hb_calibrated": ("p_low_hb", {}, "Hb <= {cut} vs not, from the ECG (regression calibration)"),
    "ecg_low_hb_calibrated_adj": ("p_low_hb_adj", {}, "Hb <= {cut} vs not, from the ECG (regression calibration)"),
    "ecg_low_hb_flag": ("ecg_low_hb", {}, "ECG-flagged low Hb vs not (threshold from validation)"),
    "ecg_hb_per_g_dl": ("hb_pred", {"per": 1.0}, "per +1 g/dL of ECG-derived Hb"),
    "ecg_hb_category": ("ecg_hb_category", {"categorical": True, "reference": "normal"}, None),
    "lab_low_hb": ("lab_low_hb", {}, "lab Hb <= {cut} vs > {cut} (linked draw)"),
    "true_low_hb": ("low_hb_true", {}, "true Hb <= {cut} vs > {cut} (simulation only)"),
}
#: (analysis, model) rows of the calibrated fits that are reported
_CALIBRATED = {("ecg_low_hb_calibrated", "unadjusted"), ("ecg_low_hb_calibrated_adj", "adjusted")}


def _fit_cox(d: pd.DataFrame, exposure: str, kw: dict[str, Any], study: StudySettings) -> tuple[Any, str]:

    if exposure not in d.columns or d[exposure].notna().sum() == 0:
        return None, _NOT_AVAILABLE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            cox = CoxAnalysis(alpha=study.alpha).fit(d, exposure, adjust=list(study.adjust), **kw)
    except (EcglensError, ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
        return None, f"not estimable ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    rows = cox.exposure_summary()
    if not np.isfinite(rows[["ci_lower", "ci_upper"]].to_numpy()).all() or (rows["coef"].abs() > 10).any():
        return None, "not estimable (infinite CI or |log HR| > 10: no events in a group, or a constant exposure)"
    return cox, ""


def _report_rows(cox: Any, name: str, split: str, cut: float) -> pd.DataFrame:
    rows = cox.exposure_summary().assign(analysis=name, split=split)
    rows["c_index"] = rows["model"].map(cox.c_index_)
    if _ANALYSES[name][2]:
        rows["contrast"] = _ANALYSES[name][2].format(cut=f"{cut:g}")
    if name.startswith("ecg_low_hb_calibrated"):
        rows = rows[[(name, m) in _CALIBRATED for m in rows["model"]]].assign(analysis="ecg_low_hb_calibrated")
    return rows


def survival_analyses(arm_df: pd.DataFrame, outcomes: pd.DataFrame, val: pd.DataFrame, thresholds: dict, split: str,
              study: StudySettings, figures: Path) -> dict[str, Any]:
    """Every Cox analysis of one split, a KM figure by ECG-Hb category, and the headline numbers."""

    d, notes = _survival_frame(arm_df, val, thresholds, study)
    d = d.merge(outcomes, on="patient_id", how="inner")
    fits, rows, markdown = {}, [], []
    for name, (exposure, kw, _) in _ANALYSES.items():
        cox, note = _fit_cox(d, exposure, {"categorical": False, **kw}, study)
        if cox is None:
            notes += [f"{split}, {name}: {note}"] if note != _NOT_AVAILABLE else []
            continue
        fits[name] = cox
        rows.append(_report_rows(cox, name, split, thresholds[study.low_hb_level]["cut_g_dl"]))
        markdown.append(cox.to_markdown().replace("### Cox", f"### {split}, {name}: Cox", 1))
    km = {}
    if "ecg_hb_category" in fits:
        km["ecg_hb_category"] = fits["ecg_hb_category"].plot_km(
            figures / f"km_ecg_hb_category_{split}.png", xlabel="years since ECG",
            title=f"Kaplan-Meier by ECG-derived Hb category ({split})").path.name
    c_ecg = c_index(d["time"], -d["hb_pred"], d["event"]) if len(d) and d["event"].sum() else float("nan")
    return {"frame": d, "fits": fits, "summary": pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(),
            "markdown": markdown, "notes": notes, "km": km, "n": len(d), "n_events": int(d["event"].sum()),
            "c_index_ecg_hb_only": c_ecg}


def headline(surv: dict[str, Any]) -> dict[str, Any]:
    """The HR comparable with the simulated truth: adjusted regression-calibrated low-Hb HR (else the flag)."""
    for name, contrast in (("ecg_low_hb_calibrated_adj", "calibrated"), ("ecg_low_hb_flag", "flag")):
        cox = surv["fits"].get(name)
        if cox is None:
            continue
        model = "adjusted" if "adjusted" in cox.models_ else "unadjusted"
        row = cox.exposure_summary().query("model == @model").iloc[0]
        return {"analysis": name, "model": model, "kind": contrast, "hazard_ratio": float(row["hr"]),
                "hazard_ratio_ci": [float(row["ci_lower"]), float(row["ci_upper"])], "p": float(row["p"]),
                "c_index": float(cox.c_index_[model]), "n": int(row["n"]), "n_events": int(row["n_events"])}
    return {"analysis": None, "hazard_ratio": float("nan"), "hazard_ratio_ci": [float("nan")] * 2,
            "c_index": float("nan")}
