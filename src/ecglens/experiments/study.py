"""End-to-end clinical studies: ECG-derived hemoglobin -> anemia -> survival, and the PTB-XL ECG-age gap.

:func:`run_hb_study` is the hemoglobin study on tables a hospital can export (ECG catalogue, lab draws,
outcomes): link each ECG to the nearest draw of the same patient (:func:`~ecglens.data.labs.link_labs`), split
by patient (train / validation / internal test), prepare a cache (:func:`~ecglens.data.cache.prepare_cache`),
train an Hb regression model (:func:`ecglens.train.loop.fit`, selected on validation), evaluate it on the
internal test split and an external cohort (Hb MAE, Pearson r, predict-the-training-mean baseline; anemia
AUROC / sensitivity / specificity at a threshold chosen on validation only), correlate classic ECG features
with the estimate (:mod:`ecglens.evaluate.features`) and relate ECG-derived Hb to outcomes with Cox models and
Kaplan-Meier curves (:class:`~ecglens.evaluate.survival.CoxAnalysis`). Every CI is a patient-level percentile
bootstrap. :func:`run_simulation_study` runs it on simulated cohorts whose true hazard ratio is known;
:func:`run_ptbxl_age_study` is the ECG-age analogue on a prepared PTB-XL cache (no outcomes).

Which hazard ratio is compared with the truth
---------------------------------------------
The simulation's true HR is that of *true* Hb <= 10 g/dL vs > 10, conditional on age and sex. An ECG does not
observe Hb, so the comparable estimate uses **regression calibration** (Prentice 1982; Rosner, Spiegelman &
Willett 1990): on the validation split a logistic model gives P(lab Hb <= 10 | ECG-derived Hb, age, sex); the
adjusted Cox HR per 1.0 of this probability (from 0 to 1) estimates the same low-vs-not-low HR. Its CI ignores
the calibration model's own uncertainty (slightly too narrow). The naive contrast (ECG-flagged low Hb vs not)
is reported too; misclassification biases it towards 1. See docs/clinical.md.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import load_checkpoint
from ..data.cache import open_cache, prepare_cache
from ..data.labs import link_labs, read_labs
from ..data.outcomes import ecg_age_gap, gap_category, gap_levels, read_outcomes
from ..data.splits import patient_folds
from ..evaluate import metrics as M
from ..evaluate.bootstrap import bootstrap_ci, bootstrap_metrics
from ..evaluate.features import association_grid, extract_features, feature_associations, plot_associations
from ..evaluate.figures import new_figure, plot_bland_altman, plot_roc, plot_scatter
from ..evaluate.runner import evaluate_checkpoint, health_subsets, predict_cache
from ..evaluate.survival import _md_table, format_p
from ..exceptions import ConfigError, EcglensError
from ..io.wfdb_write import write_wfdb_records
from ..jsonutil import json_ready
from ..signal.transforms import Preprocess
from ..train.config import TrainConfig
from ..train.loop import fit
from .simulate import simulate_cohort, simulate_ecgs
from .study_config import FeatureSettings, SimulationSettings, StudySettings, load_study_config
from .study_survival import WHO_MILD_CUTS, anemia_label, headline, survival_analyses, who_anemia_label, who_score

# the config API is part of this module's documented interface (docs/clinical.md)
__all__ = ["CohortInputs", "FeatureSettings", "load_study_config", "run_hb_study", "run_ptbxl_age_study",
           "run_simulation_study", "simulate_inputs"]

#: fold numbers written to the caches: internal train / validation / test, and the external cohort
FOLDS: dict[str, int] = {"train": 1, "validation": 2, "test": 3, "external": 4}


# ---------------------------------------------------------------------------------------------- simulated inputs
@dataclass
class CohortInputs:
    """One cohort as a hospital exports it (or as simulated); column names and units: docs/clinical.md.

    ``ecgs``: one row per ECG (``record_id, path, patient_id, time, age, sex``; sex 1 = female, 0 = male; extra
    columns are kept, the simulation adds ``hb_true`` and ``low_hb_true``). ``labs``: hemoglobin draws
    (``patient_id, time, value, unit``). ``outcomes``: one row per patient (``patient_id, time`` in years from
    the index ECG, ``event`` 1 = event), optional. ``name``: ``"internal"`` or ``"external"``.
    """

    name: str
    ecgs: pd.DataFrame
    labs: pd.DataFrame
    outcomes: pd.DataFrame | None = None


def _subset_cohort(cohort: Any, rows: np.ndarray, prefix: str) -> Any:
    """Rows (patients, one ECG each) of a SimulatedCohort, ids re-prefixed so they cannot clash."""
    pid = cohort.patients["patient_id"].iloc[rows]
    rename = dict(zip(pid, prefix + pid.str.slice(1), strict=True))

    def fix(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(patient_id=df["patient_id"].map(rename)).reset_index(drop=True)

    ecgs = fix(cohort.ecg_table.iloc[rows]).assign(record_id=[f"{prefix.lower()}{i:06d}" for i in range(len(rows))])
    return dataclasses.replace(cohort, patients=fix(cohort.patients.iloc[rows]), ecg_table=ecgs,
                               signals=cohort.signals[rows], outcomes=fix(cohort.outcomes.iloc[rows]),
                               labs=fix(cohort.labs[cohort.labs["patient_id"].isin(rename)]))


def _simulate(sim: SimulationSettings, n: int, seed: int, anemia_fraction: float, low_hb: float) -> Any:

    return simulate_cohort(n, seed=seed, fs=sim.fs, seconds=sim.seconds, anemia_fraction=anemia_fraction,
                           hr_low_hb=sim.true_hr_low_hb, low_hb_threshold=low_hb)


def _external_cohort(cfg: dict[str, Any]) -> Any:
    """A shifted cohort: oversample, keep older patients preferentially, re-record with a noisier device."""

    study, sim, ext = cfg["study"], cfg["simulation"], cfg["external"]
    seed = study.seed + ext.seed_offset
    pool = _simulate(sim, 2 * ext.n_patients, seed, ext.anemia_fraction, study.anemia_thresholds[study.low_hb_level])
    rng = np.random.default_rng(seed)
    weight = np.exp(ext.older_per_year * (pool.patients["age"].to_numpy() - 60.0))
    rows = np.sort(rng.choice(len(weight), size=ext.n_patients, replace=False, p=weight / weight.sum()))
    cohort = _subset_cohort(pool, rows, "X")
    cohort.signals = simulate_ecgs(cohort.patients, fs=sim.fs, seconds=sim.seconds, seed=rng,
                                   white_noise_mv=ext.white_noise_mv)
    return cohort


def _inputs_from_cohort(cohort: Any, name: str, folder: Path, progress: bool) -> CohortInputs:
    """Write the cohort's ECGs as WFDB records and its tables as the CSVs a hospital would export."""
    t = cohort.ecg_table
    paths = write_wfdb_records(cohort.signals, cohort.fs, t["record_id"].tolist(), folder / "records" / name,
                               ages=t["age"].to_numpy(), sexes=t["sex"].to_numpy(), progress=progress)
    ecgs = t.assign(path=paths, hb_true=cohort.patients["hb"].to_numpy(),
                    low_hb_true=cohort.patients["low_hb"].to_numpy())
    outcomes = cohort.outcomes[["patient_id", "time", "event"]]
    for table, stem in ((ecgs, "ecgs"), (cohort.labs, "labs"), (outcomes, "outcomes")):
        table.to_csv(folder / "inputs" / f"{name}_{stem}.csv", index=False)
    return CohortInputs(name, ecgs, cohort.labs, outcomes)


def simulate_inputs(cfg: dict[str, Any], out: str | Path, progress: bool = False) -> tuple[Any, ...]:
    """Simulate the internal and external cohorts; write ``out/records/`` (WFDB) and ``out/inputs/*.csv``.

    Returns ``(internal, external, true_log_hr)``: two :class:`CohortInputs` and the simulation's true log
    hazard ratios (``low_hb``, ``age_per_10y``, ``male``).
    """
    out = Path(out)
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    study, sim = cfg["study"], cfg["simulation"]
    internal = _simulate(sim, sim.n_patients, study.seed, sim.anemia_fraction,
                         study.anemia_thresholds[study.low_hb_level])
    return (_inputs_from_cohort(internal, "internal", out, progress),
            _inputs_from_cohort(_external_cohort(cfg), "external", out, progress), dict(internal.true_log_hr))


# ---------------------------------------------------------------------------------------------- cohort -> cache
@dataclass
class _Arm:
    name: str
    table: pd.DataFrame
    cache: Any
    info: dict[str, Any]
    outcomes: pd.DataFrame | None


def _prepare_arm(inputs: CohortInputs, study: StudySettings, out: Path, progress: bool) -> _Arm:
    """Link labs, assign folds, prepare the cache of one cohort."""

    labs = read_labs(inputs.labs)
    table = link_labs(inputs.ecgs, labs, window=tuple(study.link_window_days), out_col="hb")
    table = table.rename(columns={"time": "ecg_time"}).assign(patient_id=lambda d: d["patient_id"].astype(str))
    if "sex" in table and pd.to_numeric(table["sex"], errors="coerce").isna().gt(table["sex"].isna()).any():
        raise ConfigError("the ECG table's sex column must be 1 (female) / 0 (male) / empty; recode it first.")
    table["fold"] = (FOLDS["external"] if inputs.name == "external" else
                     patient_folds(table["patient_id"], study.split, study.seed,
                                   (FOLDS["train"], FOLDS["validation"], FOLDS["test"])))
    columns = [c for c in ("record_id", "path", "patient_id", "age", "sex", "fold", "hb") if c in table.columns]
    cache_dir = out / "cache" / inputs.name
    manifest = prepare_cache(table[columns].assign(source=inputs.name), cache_dir,
                             Preprocess.from_dict(study.preprocess), workers=study.prepare_workers,
                             source=inputs.name, progress=progress)
    outcomes = None
    if inputs.outcomes is not None:
        outcomes = read_outcomes(inputs.outcomes)[["patient_id", "time", "event"]]
        outcomes["patient_id"] = outcomes["patient_id"].astype(str)
    info = {"labs": labs.attrs.get("read_labs"), "linkage": table.attrs.get("link_labs"), "n_ecgs": len(table),
            "n_patients": int(table["patient_id"].nunique()), "age_mean": float(table["age"].mean()),
            "hb_mean": float(table["hb"].mean()), "cache": str(cache_dir), "n_rejected": manifest.get("n_rejected", 0)}
    return _Arm(inputs.name, table, open_cache(cache_dir), info, outcomes)


def _train(train_cfg: TrainConfig, arm: _Arm, out: Path) -> Any:

    data = dataclasses.replace(train_cfg.data, cache=str(arm.cache.path), train_folds=(FOLDS["train"],),
                               val_folds=(FOLDS["validation"],))
    return fit(dataclasses.replace(train_cfg, data=data), out=out / "train", cache=arm.cache)


def _predict(checkpoint: Any, arm: _Arm) -> None:
    """Add ``hb_pred`` (g/dL) to ``arm.table`` for every non-training ECG in the cache."""

    name = checkpoint.task.targets[0].out_name
    idx = arm.cache.indices(query=lambda m: m["fold"] != FOLDS["train"])
    pred = predict_cache(checkpoint, arm.cache.signals, idx, progress=False)[name]
    ids = arm.cache.meta["record_id"].astype(str).iloc[idx]
    arm.table["hb_pred"] = arm.table["record_id"].astype(str).map(pd.Series(pred, index=ids.to_numpy()))


# ---------------------------------------------------------------------------------------------- Hb + anemia
def _boot(study: StudySettings, metrics: Mapping[str, Callable[..., float]], *arrays: Any, groups: Any):
    return bootstrap_metrics(metrics, *arrays, n_boot=study.n_boot, alpha=study.alpha, seed=study.seed,
                             groups=groups)


def _hb_row(df: pd.DataFrame, split: str, train_mean: float, study: StudySettings) -> dict[str, Any]:
    """Hb regression metrics with CIs, and the predict-the-training-mean baseline on the same records."""
    d = df[df["hb"].notna() & df["hb_pred"].notna()]
    y, p, g = d["hb"].to_numpy(), d["hb_pred"].to_numpy(), d["patient_id"].to_numpy()
    base = np.full_like(y, train_mean)
    res = _boot(study, {"mae": M.mae, "rmse": M.rmse, "pearson_r": M.pearson_r, "bias": M.bias}, y, p, groups=g)
    res["mae_baseline"] = _boot(study, {"m": M.mae}, y, base, groups=g)["m"]
    res["mae_gain"] = bootstrap_ci(lambda t, q, b: M.mae(t, b) - M.mae(t, q), y, p, base, n_boot=study.n_boot,
                                   alpha=study.alpha, seed=study.seed, groups=g)
    row: dict[str, Any] = {"split": split, "n": len(d), "n_patients": int(d["patient_id"].nunique())}
    for key, r in res.items():
        row.update({key: r["value"], f"{key}_ci_low": r["ci_low"], f"{key}_ci_high": r["ci_high"]})
    return row


def _choose_thresholds(val: pd.DataFrame, study: StudySettings) -> dict[str, dict[str, Any]]:
    """Per anemia level: a cut-off on predicted Hb (flag when pred <= it), chosen on validation only."""
    chosen = {}
    for level, cut in study.anemia_thresholds.items():
        try:
            thr = -M.select_threshold(anemia_label(val, cut), -val["hb_pred"].to_numpy(), study.threshold_method)
            how = f"validation ({study.threshold_method})"
        except EcglensError as err:
            thr, how = float(cut), f"nominal {cut:g} g/dL (validation: {err})"
        chosen[level] = {"cut_g_dl": float(cut), "threshold_g_dl": float(thr), "chosen_on": how}
    return chosen


def _choose_who(val: pd.DataFrame, study: StudySettings) -> dict[str, Any]:
    """WHO mild anemia (sex-specific): flag when predicted Hb - WHO cut <= an offset chosen on validation."""
    y, s = who_anemia_label(val), who_score(val)
    try:
        offset, how = -M.select_threshold(y, -s, study.threshold_method), f"validation ({study.threshold_method})"
    except EcglensError as err:
        offset, how = 0.0, f"nominal WHO cuts (validation: {err})"
    return {"cut_g_dl": float("nan"), "threshold_g_dl": WHO_MILD_CUTS[0] + float(offset),
            "threshold_women_g_dl": WHO_MILD_CUTS[1] + float(offset), "offset_g_dl": float(offset), "chosen_on": how}


def _anemia_row(df: pd.DataFrame, split: str, level: str, spec: dict[str, Any], study: StudySettings) -> dict:
    """AUROC, sensitivity, specificity of one level (``offset_g_dl`` in ``spec``: WHO, sex-specific) with CIs."""
    if "offset_g_dl" in spec:
        y, s, thr = who_anemia_label(df), -who_score(df), -spec["offset_g_dl"]
    else:
        y, s, thr = anemia_label(df, spec["cut_g_dl"]), -df["hb_pred"].to_numpy(), -spec["threshold_g_dl"]
    fns = {"auroc": M.auroc, "sensitivity": M.at_threshold(M.sensitivity, thr),
           "specificity": M.at_threshold(M.specificity, thr)}
    res = _boot(study, fns, y, s, groups=df["patient_id"].to_numpy())
    ok = np.isfinite(y) & np.isfinite(s)
    row = {"split": split, "level": level, "anemia_if_hb_le": spec["cut_g_dl"],
           "flag_if_pred_le": round(spec["threshold_g_dl"], 3), "n": int(ok.sum()), "n_pos": int(np.nansum(y[ok]))}
    if "offset_g_dl" in spec:  # flag_if_pred_le: men's cut-off
        row["flag_if_pred_le_women"] = round(spec["threshold_women_g_dl"], 3)
    for key, r in res.items():
        row.update({key: r["value"], f"{key}_ci_low": r["ci_low"], f"{key}_ci_high": r["ci_high"]})
    return row


# ---------------------------------------------------------------------------------------------- features
def _features(arm: _Arm, rows: pd.DataFrame, outputs: Sequence[str], fs_cfg: FeatureSettings, seed: int,
              out: Path, stem: str, title: str, progress: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Features of (up to ``max_records``) rows' ECGs from the cache, their associations and the heatmap."""

    if fs_cfg.max_records is not None and len(rows) > fs_cfg.max_records:
        rows = rows.sample(fs_cfg.max_records, random_state=seed).sort_index()
    pos = pd.Series(np.arange(len(arm.cache.meta)), index=arm.cache.meta["record_id"].astype(str))
    idx = pos.loc[rows["record_id"].astype(str)].to_numpy()
    order = np.argsort(idx)
    feats = extract_features(arm.cache.signals[idx[order]], arm.cache.fs, leads=arm.cache.leads,
                             method=fs_cfg.method, workers=fs_cfg.workers, progress=progress,
                             record_ids=rows["record_id"].to_numpy()[order])
    assoc = feature_associations(feats.drop(columns=["feature_error"]), rows.iloc[order][list(outputs)],
                                 features=[c for c in feats.columns if c not in ("record_id", "feature_error")])
    feats.to_csv(out / "tables" / f"{stem}_features.csv", index=False)
    _write_table(assoc, out / "tables" / f"{stem}_feature_associations", association_grid(assoc))
    plot_associations(assoc, out / "figures" / f"{stem}_feature_associations.png", title=title)
    return assoc, {**feats.attrs["extract_features"], "records": "subsample" if len(rows) < len(arm.table) else "all"}


# ---------------------------------------------------------------------------------------------- outputs
def _write_table(df: pd.DataFrame, stem: Path, md: pd.DataFrame | None = None) -> str:
    """CSV of the full table and Markdown of ``md`` (a formatted view; default the table rounded)."""
    df.to_csv(stem.with_suffix(".csv"), index=False)
    text = _md_table(md if md is not None else df.round(3))
    stem.with_suffix(".md").write_text(text + "\n")
    return text


def _ci(df: pd.DataFrame, key: str, digits: int = 2) -> list[str]:
    """``value (low-high)`` strings of ``key``, ``key_ci_low``, ``key_ci_high`` columns."""
    cols = [df[key], df[f"{key}_ci_low"], df[f"{key}_ci_high"]]
    return ["NA" if not np.isfinite(v) else f"{v:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"
            for v, lo, hi in zip(*cols, strict=True)]


def _hb_md(hb: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"split": hb["split"], "n": hb["n"], "MAE g/dL (95% CI)": _ci(hb, "mae"),
                         "predict-the-mean MAE": _ci(hb, "mae_baseline"), "MAE gain": _ci(hb, "mae_gain"),
                         "RMSE": _ci(hb, "rmse"), "Pearson r": _ci(hb, "pearson_r"), "bias": _ci(hb, "bias")})


def _anemia_md(an: pd.DataFrame) -> pd.DataFrame:
    women = an["flag_if_pred_le_women"] if "flag_if_pred_le_women" in an else pd.Series(np.nan, index=an.index)
    return pd.DataFrame({"split": an["split"], "anemia": ["WHO mild: Hb < 12 (F) / < 13 (M)" if np.isnan(c) else
                                                          f"Hb <= {c:g}" for c in an["anemia_if_hb_le"]],
                         "flag if predicted Hb <=": [f"{t:.2f}" if np.isnan(w) else f"{w:.2f} (F) / {t:.2f} (M)"
                                                     for t, w in zip(an["flag_if_pred_le"], women, strict=True)],
                         "n (anemic)": [f"{n} ({k})" for n, k in zip(an["n"], an["n_pos"], strict=True)],
                         "AUROC": _ci(an, "auroc", 3), "sensitivity": _ci(an, "sensitivity"),
                         "specificity": _ci(an, "specificity")})


def _cox_md(cox: pd.DataFrame) -> pd.DataFrame:
    hr = [f"{h:.2f} ({lo:.2f}-{hi:.2f})" for h, lo, hi in zip(cox["hr"], cox["ci_lower"], cox["ci_upper"], strict=True)]
    return pd.DataFrame({"split": cox["split"], "analysis": cox["analysis"], "model": cox["model"],
                         "contrast": cox["contrast"], "HR (95% CI)": hr, "p": cox["p"].map(format_p),
                         "n (events)": [f"{n} ({e})" for n, e in zip(cox["n"], cox["n_events"], strict=True)],
                         "C-index": cox["c_index"].round(3)})


def _hb_figures(sets: dict[str, pd.DataFrame], thresholds: dict, figures: Path) -> None:

    for split, df in sets.items():
        if split == "validation":
            continue
        d = df.dropna(subset=["hb", "hb_pred"])
        plot_scatter(d["hb"], d["hb_pred"], "Hb", "g/dL", f"ECG-derived vs lab Hb ({split})").savefig(
            figures / f"hb_scatter_{split}.png")
        plot_bland_altman(d["hb"], d["hb_pred"], "Hb", "g/dL", f"Bland-Altman, Hb ({split})").savefig(
            figures / f"hb_bland_altman_{split}.png")
    fig, ax = new_figure((5.5, 5.5))
    for split, df in ((k, v) for k, v in sets.items() if k != "validation"):
        for spec in thresholds.values():
            plot_roc(anemia_label(df, spec["cut_g_dl"]), -df["hb_pred"].to_numpy(),
                     f"{split}, Hb <= {spec['cut_g_dl']:g}", "Anemia from ECG-derived Hb", ax=ax)
    fig.savefig(figures / "roc_anemia.png")


def _prepare_out(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"output folder {out} exists and is not empty; choose a new --out (nothing is "
                          "overwritten).")
    for sub in ("tables", "figures", "inputs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    return out


# ---------------------------------------------------------------------------------------------- the Hb study
def _eval_sets(arms: dict[str, _Arm]) -> dict[str, pd.DataFrame]:
    internal = arms["internal"].table
    sets = {split: internal[internal["fold"] == FOLDS[split]] for split in ("validation", "test")}
    if "external" in arms:
        sets["external"] = arms["external"].table
    return {k: v[v["hb_pred"].notna()].reset_index(drop=True) for k, v in sets.items()}


def _evaluate(arms: dict[str, _Arm], checkpoint: Any, study: StudySettings, out: Path,
              progress: bool) -> dict[str, Any]:
    """Hb, anemia, features and survival of every evaluation split; writes the tables and figures."""
    sets, tab = _eval_sets(arms), out / "tables"
    train_mean = float(checkpoint.task.targets[0].mean)
    hb = pd.DataFrame([_hb_row(df, split, train_mean, study) for split, df in sets.items()])
    thresholds = _choose_thresholds(sets["validation"], study)
    levels = {**({"mild_who": _choose_who(sets["validation"], study)} if study.who_mild_anemia else {}), **thresholds}
    anemia = pd.DataFrame([_anemia_row(df, split, level, spec, study) for split, df in sets.items()
                           if split != "validation" for level, spec in levels.items()])
    tables = {"hb_metrics": _write_table(hb, tab / "hb_metrics", _hb_md(hb)),
              "anemia_metrics": _write_table(anemia, tab / "anemia_metrics", _anemia_md(anemia))}
    _hb_figures(sets, thresholds, out / "figures")
    assoc, feat_info = _features(arms["internal"], sets["test"].assign(hb_lab=lambda d: d["hb"]),
                                 ["hb_pred", "hb_lab", "age"], study.features, study.seed, out, "test",
                                 "ECG features vs ECG-derived and lab Hb (test)", progress)
    tables["feature_associations"] = _md_table(association_grid(assoc))
    survival = {split: survival_analyses(sets[split], arms[a].outcomes, sets["validation"], thresholds, split, study,
                                 out / "figures")
                for split, a in (("test", "internal"), ("external", "external"))
                if a in arms and arms[a].outcomes is not None}
    cox = pd.concat([s["summary"] for s in survival.values()], ignore_index=True) if survival else pd.DataFrame()
    if len(cox):
        tables["survival"] = _write_table(cox, tab / "cox_summary", _cox_md(cox))
        (tab / "cox_models.md").write_text("\n".join(m for v in survival.values() for m in v["markdown"]))
    for split, df in sets.items():
        keep = [c for c in ("record_id", "patient_id", "fold", "age", "sex", "hb", "hb_pred", "hb_true") if c in df]
        df[keep].to_csv(tab / f"predictions_{split}.csv", index=False)
    return {"hb": hb, "anemia": anemia, "thresholds": thresholds, "features": feat_info, "survival": survival,
            "tables": tables}


def _split_summary(ev: dict[str, Any], split: str, level: str) -> dict[str, Any]:
    hb = ev["hb"].set_index("split").loc[split]
    an = ev["anemia"].query("split == @split and level == @level").iloc[0]
    out = {"hb_n": hb["n"], "anemia_sensitivity": an["sensitivity"], "anemia_specificity": an["specificity"],
           "anemia_n_pos": an["n_pos"]}
    for key, row, col in (("hb_mae", hb, "mae"), ("hb_mae_baseline", hb, "mae_baseline"),
                          ("hb_pearson_r", hb, "pearson_r"), ("anemia_auroc", an, "auroc")):
        out.update({key: row[col], f"{key}_ci": [row[f"{col}_ci_low"], row[f"{col}_ci_high"]]})
    surv = ev["survival"].get(split)
    if surv is not None:
        head = headline(surv)
        out.update({k: head[k] for k in ("hazard_ratio", "hazard_ratio_ci", "c_index")},
                   hazard_ratio_analysis=head["analysis"], c_index_ecg_hb_only=surv["c_index_ecg_hb_only"],
                   survival_n=surv["n"], survival_events=surv["n_events"])
    return out


def _hr_table(surv: dict[str, Any]) -> dict[str, Any]:
    s = surv["summary"]
    return {f"{r.analysis}/{r.model}/{r.term}": {"hr": r.hr, "ci": [r.ci_lower, r.ci_upper], "p": r.p}
            for r in s.itertuples()} if len(s) else {}


def _summary(ev: dict[str, Any], cfg: dict[str, Any], arms: dict[str, _Arm], run: Any,
             truth: Mapping[str, float] | None) -> dict[str, Any]:
    study = cfg["study"]
    level, cut, adj = study.low_hb_level, study.anemia_thresholds[study.low_hb_level], ", ".join(study.adjust)
    kind = headline(ev["survival"]["test"]).get("kind") if "test" in ev["survival"] else None
    contrast = {"calibrated": f"low Hb (<= {cut:g} g/dL) vs not, estimated from the ECG by regression calibration: "
                              f"P(lab Hb <= {cut:g} | ECG-derived Hb, {adj}) fitted on validation, Cox HR per 1.0 "
                              f"of that probability adjusted for {adj}; internal test split",
                "flag": f"ECG-flagged low Hb (predicted Hb <= the validation threshold for Hb <= {cut:g}) vs not, "
                        f"adjusted for {adj}; calibration was impossible (see notes), so biased towards 1"}
    summary = {
        "true_hazard_ratio": float(np.exp(truth["low_hb"])) if truth else None,
        "true_hazard_ratio_contrast": (f"simulated: true Hb <= {cut:g} g/dL vs > {cut:g}, conditional on age and "
                                       "sex (the generating Cox model)") if truth else None,
        "hazard_ratio_contrast": contrast.get(kind), **_split_summary(ev, "test", level),
        "c_index_model": "Harrell's C of the headline (adjusted) Cox model's partial hazard, > 0.5 = higher risk "
                         "dies earlier; c_index_ecg_hb_only: C of ECG-derived Hb alone (lower Hb = higher risk)",
        "anemia_level": f"{level} (lab Hb <= {cut:g} g/dL)", "thresholds": ev["thresholds"],
        "external": _split_summary(ev, "external", level) if "external" in arms else None,
        "hazard_ratios": {s: _hr_table(v) for s, v in ev["survival"].items()},
        "cohorts": {name: arm.info for name, arm in arms.items()},
        "training": {"run_dir": str(run.run_dir), "checkpoint": str(run.checkpoint_path),
                     "validation_metrics": run.metrics},
        "features": ev["features"], "notes": [n for s in ev["survival"].values() for n in s["notes"]],
        "settings": {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in cfg.items()},
    }
    return json_ready(summary)


def _report(summary: dict[str, Any], ev: dict[str, Any], out: Path) -> None:
    def f(key: str, d: int = 2) -> str:
        return "NA" if summary.get(key) is None else f"{summary[key]:.{d}f}"

    lead = (f"Internal test: Hb MAE {f('hb_mae')} g/dL (predict-the-mean {f('hb_mae_baseline')}), Pearson r "
            f"{f('hb_pearson_r')}, anemia AUROC {f('anemia_auroc', 3)}.")
    lines = ["# ECG-derived hemoglobin study", "", lead, ""]
    if summary.get("hazard_ratio") is not None:
        lo, hi = summary["hazard_ratio_ci"]
        lines += [(f"Hazard ratio {f('hazard_ratio')} (95% CI {lo:.2f}-{hi:.2f}): {summary['hazard_ratio_contrast']}."
                   f" True hazard ratio: {summary['true_hazard_ratio']}."), ""]
    for name in ("hb_metrics", "anemia_metrics", "feature_associations", "survival"):
        if name in ev["tables"]:
            lines += [f"## {name.replace('_', ' ')}", "", ev["tables"][name], ""]
    if "survival" in ev["tables"]:
        lines += ["Every Cox model in full (all terms, proportional-hazards checks): tables/cox_models.md.", ""]
    lines += ["## figures", "", *[f"![{p.name}](figures/{p.name})" for p in sorted((out / "figures").glob("*.png"))]]
    lines += ["", "## notes", "", *[f"- {n}" for n in summary["notes"]], ""] if summary.get("notes") else [""]
    (out / "study.md").write_text("\n".join(lines))


def run_hb_study(internal: CohortInputs, external: CohortInputs | None, cfg: dict[str, Any], out: str | Path,
                 *, truth: Mapping[str, float] | None = None, progress: bool = True) -> dict[str, Any]:
    """The whole hemoglobin study (module docstring) into ``out``; returns the content of ``summary.json``.

    ``internal`` is split by patient into train / validation / test, ``external`` (optional) is evaluated
    whole; ``cfg`` comes from :func:`load_study_config`; ``truth`` (a simulation's true log hazard ratios,
    ``low_hb``) is reported next to the estimates. ``out`` receives ``summary.json``, ``study.md``,
    ``tables/`` (CSV + Markdown), ``figures/`` (PNG), ``train/`` (run folder and checkpoint) and ``cache/``.
    """

    start = time.perf_counter()
    out = Path(out)
    for sub in ("tables", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    arms = {a.name: _prepare_arm(a, cfg["study"], out, progress) for a in (internal, external) if a is not None}
    timings = {"link_and_prepare_cache": time.perf_counter() - start}
    run = _train(cfg["train"], arms["internal"], out)
    timings["train"] = time.perf_counter() - start - sum(timings.values())
    checkpoint = load_checkpoint(run.checkpoint_path)
    for arm in arms.values():
        _predict(checkpoint, arm)
    ev = _evaluate(arms, checkpoint, cfg["study"], out, progress)
    timings["evaluate"] = time.perf_counter() - start - sum(timings.values())
    summary = {**_summary(ev, cfg, arms, run, truth), "seconds": round(time.perf_counter() - start, 1),
               "timings_s": {k: round(v, 1) for k, v in timings.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    _report(summary, ev, out)
    return summary


def run_simulation_study(cfg: dict[str, Any], out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Simulate two cohorts (:func:`simulate_inputs`) and run :func:`run_hb_study` on them into a new ``out``."""
    start = time.perf_counter()
    out = _prepare_out(out)
    internal, external, true_log_hr = simulate_inputs(cfg, out, progress)
    simulate_s = time.perf_counter() - start
    summary = run_hb_study(internal, external, cfg, out, truth=true_log_hr, progress=progress)
    summary["timings_s"] = {"simulate_and_write_records": round(simulate_s, 1), **summary["timings_s"]}
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary


# ---------------------------------------------------------------------------------------------- PTB-XL ECG-age
def _gap_table(df: pd.DataFrame, subsets: Mapping[str, np.ndarray], threshold: float) -> pd.DataFrame:

    rows = []
    for name, mask in subsets.items():
        d = df[mask & df["ecg_age_gap"].notna().to_numpy()]
        row = {"subset": name, "n": len(d), "age_mae": d["ecg_age_gap"].abs().mean(),
               "gap_mean": d["ecg_age_gap"].mean(), "gap_sd": d["ecg_age_gap"].std()}
        for level in gap_levels(threshold):
            k = int((d["ecg_age_gap_category"] == level).sum())
            row.update({f"n {level}": k, f"% {level}": 100.0 * k / len(d) if len(d) else np.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def _gap_figure(df: pd.DataFrame, subsets: Mapping[str, np.ndarray], threshold: float, path: Path) -> None:

    fig, ax = new_figure((6.5, 4.2))
    for name, mask in subsets.items():
        gap = df.loc[mask, "ecg_age_gap"].dropna()
        ax.hist(np.clip(gap, -40, 40), bins=np.arange(-40, 41, 2.0), histtype="step", lw=1.5, density=True,
                label=f"{name} (n={len(gap)}, mean {gap.mean():+.1f})")
    for x in (-threshold, threshold):
        ax.axvline(x, color="grey", ls="--", lw=1)
    ax.set(xlabel="ECG-age gap = predicted - chronological age (years)", ylabel="density",
           title=f"ECG-age gap (categories at +-{threshold:g} years)")
    ax.legend(fontsize=8)
    fig.savefig(path)


def _age_predictions(ck: Any, cache: Any, folds: Any, out: Path, n_boot: int, seed: int, threshold: float,
                     progress: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``ecglens evaluate`` into ``out/evaluation`` and the analysed rows with ``age_pred`` and the gap."""

    if "age" not in ck.output_names:
        raise ConfigError(f"checkpoint {getattr(ck, 'path', '')} has outputs {list(ck.output_names)}, no 'age'; "
                          "use a model trained on age (task age or age_sex).")
    res = evaluate_checkpoint(ck, cache, folds, out_dir=out / "evaluation", n_boot=n_boot, seed=seed,
                              progress=progress)
    df = cache.meta.iloc[cache.indices(folds)].reset_index(drop=True)
    df["age_pred"] = pd.read_csv(res["files"]["predictions"])["age"].to_numpy()
    df["ecg_age_gap"] = ecg_age_gap(df["age_pred"], df["age"])
    df["ecg_age_gap_category"] = gap_category(df["ecg_age_gap"], threshold)
    return df, res


def run_ptbxl_age_study(checkpoint: Any, cache: Any, out: str | Path, folds: Any = None, *, n_boot: int = 1000,
                        seed: int = 0, gap_threshold: float = 8.0, features: FeatureSettings | None = None,
                        progress: bool = True) -> dict[str, Any]:
    """ECG-age study on a prepared cache: metrics, gap table by health subset, figures, feature associations.

    ``checkpoint`` (path, shipped name or loaded) must have an ``age`` output; ``cache`` (path or opened) must
    be prepared with its preprocessing and have ``age``, ``fold`` and, for the healthy / non-healthy subsets,
    the PTB-XL superclass columns. ``folds`` (e.g. ``[9]``; default all) are analysed; the gap categories are
    > +``gap_threshold`` / < -``gap_threshold`` years (Lima et al. 2021). ``out`` (new) receives
    ``evaluation/`` (``ecglens evaluate`` output), ``tables/``, ``figures/``, ``summary.json``, ``study.md``.
    Returns the content of ``summary.json``.
    """

    out = _prepare_out(out)
    ck = checkpoint if hasattr(checkpoint, "predict") else load_checkpoint(checkpoint)
    cache = cache if hasattr(cache, "signals") else open_cache(cache)
    df, res = _age_predictions(ck, cache, folds, out, n_boot, seed, gap_threshold, progress)
    subsets = {"all": np.ones(len(df), dtype=bool), **health_subsets(df)}
    gaps = _gap_table(df, subsets, gap_threshold)
    gap_md = _write_table(gaps, out / "tables" / "ecg_age_gap", gaps.round(2))
    _gap_figure(df, subsets, gap_threshold, out / "figures" / "ecg_age_gap.png")
    keep = [c for c in ("record_id", "patient_id", "fold", "age", "sex", "age_pred", "ecg_age_gap",
                        "ecg_age_gap_category") if c in df]
    df[keep].to_csv(out / "tables" / "predictions.csv", index=False)
    assoc, feat_info = _features(_Arm("ptbxl", df, cache, {}, None), df, ["age_pred", "age", "ecg_age_gap"],
                                 features or FeatureSettings(), seed, out, "age",
                                 "ECG features vs ECG-age, age and the gap", progress)
    summary = json_ready({"checkpoint": str(ck.path), "cache": str(cache.path), "folds": folds, "n": len(df),
                          "gap_threshold": gap_threshold, "metrics": res.get("outputs"), "features": feat_info,
                          "gap_table": gaps.to_dict(orient="records"), "normalize": cache.preprocess.normalize})
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    note = ("" if cache.preprocess.normalize == "none" else
            f"Note: the cache is normalised ({cache.preprocess.normalize}): amplitudes are not in mV.\n")
    where = f"{ck.path} on {cache.path}, folds {folds if folds is not None else 'all'}: {len(df)} ECGs."
    (out / "study.md").write_text("\n".join([
        "# ECG-age study", "", where, note, "## ECG-age gap", "", gap_md, "", "## feature associations", "",
        _md_table(association_grid(assoc)), "", "![gap](figures/ecg_age_gap.png)",
        "![features](figures/age_feature_associations.png)", ""]))
    return summary
