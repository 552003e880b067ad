"""The realistic hemoglobin study and its coverage study over seeds (issue #24, item 6; docs/clinical.md).

:func:`run_realistic_study` simulates one cohort with :func:`~ecglens.experiments.hb_realistic.simulate_realistic`,
estimates Hb from each ECG with the fixed oracle (:func:`~ecglens.experiments.hb_realistic.fit_oracle`, the best
possible estimate), and reports anemia metrics (WHO sex-specific mild anemia, Hb <= 10, Hb <= 8: AUROC, sensitivity,
specificity at cut-offs fixed on the calibration sample), cause-specific Cox models for death and new heart failure
(prevalent HF excluded, death censors HF) and the Aalen-Johansen cumulative incidence of HF with death as the
competing risk. :func:`run_coverage` repeats the Cox part over many seeds on the grid runner
(:mod:`ecglens.experiments.grid`: resumable, shardable, a progress bar) and :func:`coverage_table` summarises bias,
95 % CI coverage and power against the known truth.

Which truth
-----------
The exposures are functions of the ECG estimate, not of true Hb, and the hazards also depend on the autonomic tone
that raises heart rate (a direct ECG -> risk path) and on covariates the Cox model omits. The log hazard ratio that
a Cox model of ECG-estimated Hb converges to is therefore not a generating parameter. The truth of each
estimand is defined as the estimate of the same model on one very large cohort (``truth_patients``, 300,000 by
default, seed ``truth_seed``), i.e. the estimand actually fitted; the generating HRs of true Hb are stated beside it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluate import metrics as M
from ..evaluate.survival import _md_table
from ..exceptions import ConfigError
from ..jsonutil import json_ready
from .grid import GridDefinition, read_results_csv, run_grid
from .hb_realistic import Oracle, RealisticSettings, anemia_labels, fit_oracle, settings_dict, simulate_realistic

__all__ = ["ESTIMANDS", "LEVELS", "CoverageSettings", "coverage_table", "fit_estimands", "prepare_model",
           "run_coverage", "run_realistic_study"]

#: anemia levels: None = WHO sex-specific (< 12 g/dL women, < 13 men), else Hb <= value
LEVELS: dict[str, float | None] = {"mild_who": None, "le10": 10.0, "le8": 8.0}
#: estimand -> (outcome, exposure, rows); exposures are per 1 g/dL DEcrease of ECG-estimated Hb or the ECG flag of
#: Hb <= 10; rows "baseline" = one index ECG per patient, "all" = every ECG an index (robust SEs by patient)
ESTIMANDS: dict[str, tuple[str, str, str]] = {
    "death_per_g_dl": ("death", "hb_decrease", "baseline"),
    "death_ecg_anemia": ("death", "ecg_anemia", "baseline"),
    "hf_per_g_dl": ("hf", "hb_decrease", "baseline"),
    "hf_ecg_anemia": ("hf", "ecg_anemia", "baseline"),
    "death_per_g_dl_all_ecgs": ("death", "hb_decrease", "all"),
}
_DESCRIBE = {"death_per_g_dl": "all-cause death, per 1 g/dL lower ECG-Hb (baseline ECG)",
             "death_ecg_anemia": "all-cause death, ECG-anemia yes/no (baseline ECG)",
             "hf_per_g_dl": "new HF (cause-specific), per 1 g/dL lower ECG-Hb (baseline ECG)",
             "hf_ecg_anemia": "new HF (cause-specific), ECG-anemia yes/no (baseline ECG)",
             "death_per_g_dl_all_ecgs": "all-cause death, per 1 g/dL lower ECG-Hb (every ECG, robust SE)"}


@dataclass(frozen=True)
class CoverageSettings:
    """The study design: cohort size per seed, the truth cohort, the calibration cohort and the generator."""

    n_patients: int = 4000
    truth_patients: int = 300_000
    truth_seed: int = 999_999
    truth_cohorts: int = 4
    calibration_patients: int = 100_000
    calibration_seed: int = 12345
    alpha: float = 0.05
    simulation: RealisticSettings = field(default_factory=RealisticSettings)


@dataclass(frozen=True)
class Model:
    """The fixed 'trained model': the oracle and the flag cut-offs (on hb_est - level cut, Youden, calibration)."""

    oracle: Oracle
    cuts: dict[str, float]

    def flags(self, est: np.ndarray, sex: np.ndarray) -> dict[str, np.ndarray]:
        """Per level: the score (lower = more anemic) and the 0/1 flag."""
        return {level: (s <= self.cuts[level]).astype(int) for level, s in _scores(est, sex).items()}


def _scores(est: np.ndarray, sex: np.ndarray) -> dict[str, np.ndarray]:
    who = np.where(np.asarray(sex) == 1.0, 12.0, 13.0)
    return {level: est - (who if cut is None else cut) for level, cut in LEVELS.items()}


def prepare_model(cs: CoverageSettings) -> Model:
    """Fit the oracle and choose each level's cut-off (Youden's J) on the calibration cohort."""
    oracle = fit_oracle(cs.simulation, cs.calibration_patients, cs.calibration_seed)
    patients, ecgs = simulate_realistic(cs.calibration_patients, cs.calibration_seed + 1, cs.simulation)
    base = ecgs[ecgs["ecg_index"] == 0]
    sex = patients["sex"].to_numpy()
    scores = _scores(oracle.predict(base), sex)
    labels = anemia_labels(base["hb"], sex, LEVELS)
    cuts = {lv: -float(M.select_threshold(labels[lv], -scores[lv], "youden")) for lv in LEVELS}
    return Model(oracle, cuts)


# ---------------------------------------------------------------------------------------------- analyses
def _frames(patients: pd.DataFrame, ecgs: pd.DataFrame, model: Model) -> dict[str, pd.DataFrame]:
    """Analysis rows: ``baseline`` (one per patient) and ``all`` (every ECG, follow-up from that ECG)."""
    e = ecgs.merge(patients[["patient_id", "age", "sex", "time", "death", "hf", "hf_time", "prevalent_hf"]],
                   on="patient_id", suffixes=("_ecg", ""))
    est = model.oracle.predict(e)
    e = e.assign(hb_est=est, hb_decrease=-est, ecg_anemia=model.flags(est, e["sex"].to_numpy())["le10"],
                 age10=(e["age"] + e["ecg_time"] - 60.0) / 10.0)
    base = e[e["ecg_index"] == 0].reset_index(drop=True)
    later = e.assign(time=e["time"] - e["ecg_time"])
    return {"baseline": base, "all": later[later["time"] > 1e-6].reset_index(drop=True)}


def _cox(d: pd.DataFrame, outcome: str, exposure: str, cluster: bool, alpha: float,
         robust: bool = True) -> dict[str, float]:
    from lifelines import CoxPHFitter
    from scipy.stats import norm

    if outcome == "hf":  # cause-specific: prevalent HF excluded, death (and censoring) end follow-up
        d = d[d["prevalent_hf"] == 0]
        cols = {"T": d["hf_time"], "E": d["hf"]}
    else:
        cols = {"T": d["time"], "E": d["death"]}
    df = pd.DataFrame({**cols, "x": d[exposure], "age10": d["age10"], "sex": d["sex"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter(alpha=alpha).fit(df, "T", "E")
        coef, se_model = float(cph.params_["x"]), float(cph.standard_errors_["x"])
        se = se_model
        if robust:  # sandwich (Lin & Wei 1989), by patient where a patient has several rows
            kw = {"cluster_col": "patient_id"} if cluster else {}
            df = df.assign(patient_id=d["patient_id"].to_numpy()) if cluster else df
            se = float(CoxPHFitter(alpha=alpha).fit(df, "T", "E", robust=True, **kw).standard_errors_["x"])
    z = norm.ppf(1 - alpha / 2)
    return {"log_hr": coef, "se": se, "low": coef - z * se, "high": coef + z * se, "se_model": se_model,
            "n": len(df), "events": int(df["E"].sum())}


def fit_estimands(patients: pd.DataFrame, ecgs: pd.DataFrame, model: Model, alpha: float = 0.05,
                  estimands: Sequence[str] = tuple(ESTIMANDS), robust: bool = True) -> dict[str, dict[str, float]]:
    """Every Cox estimand (:data:`ESTIMANDS`, adjusted for age and sex): log HR, SE, Wald CI (log), n, events.

    ``se`` and the CI are robust (sandwich) SEs, clustered by patient for the every-ECG estimand (lifelines
    ``cluster_col``): the Cox models are misspecified (a noisy proxy of Hb, omitted tone, a non-linear truth), so
    the model-based SE (``se_model``, also returned) is too small. ``robust=False`` skips the sandwich (``se`` =
    ``se_model``; same point estimate; the sandwich takes minutes on hundreds of thousands of rows).
    """
    frames = _frames(patients, ecgs, model)
    return {name: _cox(frames[ESTIMANDS[name][2]], ESTIMANDS[name][0], ESTIMANDS[name][1],
                       ESTIMANDS[name][2] == "all", alpha, robust) for name in estimands}


def true_log_hrs(cs: CoverageSettings, model: Model, with_mcse: bool = False) -> Any:
    """The truth of each estimand: the mean of its estimates on ``truth_cohorts`` cohorts of ``truth_patients``
    (seeds ``truth_seed``, ``truth_seed - 1``, ...; module docstring). With ``with_mcse`` also their Monte-Carlo
    SE (SD over the cohorts / sqrt(cohorts); NaN for one cohort)."""
    fits = []
    for k in range(cs.truth_cohorts):
        patients, ecgs = simulate_realistic(cs.truth_patients, cs.truth_seed - k, cs.simulation)
        fits.append({n: v["log_hr"] for n, v in fit_estimands(patients, ecgs, model, cs.alpha, robust=False).items()})
    table = pd.DataFrame(fits)
    truth = {n: float(table[n].mean()) for n in table}
    if not with_mcse:
        return truth
    k = len(table)
    return truth, {n: float(table[n].std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan") for n in table}


def anemia_table(patients: pd.DataFrame, ecgs: pd.DataFrame, model: Model) -> pd.DataFrame:
    """Per level, on the baseline ECGs against true Hb: n, positives, AUROC, sensitivity, specificity."""
    base = ecgs[ecgs["ecg_index"] == 0]
    sex = patients["sex"].to_numpy()
    est = model.oracle.predict(base)
    scores, flags = _scores(est, sex), model.flags(est, sex)
    rows = []
    for level, y in anemia_labels(base["hb"], sex, LEVELS).items():
        f = flags[level]
        rows.append({"level": level, "definition": "WHO: Hb < 12 (women), < 13 (men)" if LEVELS[level] is None
                     else f"Hb <= {LEVELS[level]:g} g/dL", "n": len(y), "n_pos": int(y.sum()),
                     "flag_if_score_le": round(model.cuts[level], 3), "auroc": M.auroc(y, -scores[level]),
                     "sensitivity": float(f[y == 1].mean()), "specificity": float(1 - f[y == 0].mean())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- one study
def _aalen_johansen(base: pd.DataFrame, path: Path) -> dict[str, float]:
    """Cumulative incidence of new HF (death competing) by ECG-anemia; figure to ``path``; 5-year CIFs."""
    from lifelines import AalenJohansenFitter

    from ..evaluate.figures import new_figure

    d = base[base["prevalent_hf"] == 0]
    event = np.where(d["hf"] == 1, 1, np.where(d["death"] == 1, 2, 0))
    fig, ax = new_figure((6.0, 4.2))
    out = {}
    for flag, label in ((0, "ECG-anemia no"), (1, "ECG-anemia yes")):
        m = (d["ecg_anemia"] == flag).to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aj = AalenJohansenFitter(seed=0).fit(d["hf_time"].to_numpy()[m], event[m], event_of_interest=1)
        cif = aj.cumulative_density_
        ax.step(cif.index, cif.iloc[:, 0], where="post", label=f"{label} (n={int(m.sum())})")
        out[f"cif_hf_5y_ecg_anemia_{'yes' if flag else 'no'}"] = float(cif.loc[:5.0].iloc[-1, 0])
    ax.set(xlim=(0, 7), xlabel="years since baseline ECG (to 7: few remain at risk later)",
           ylabel="cumulative incidence of new HF",
           title="Aalen-Johansen (death as competing risk)")
    ax.legend()
    fig.savefig(path)
    return out


def run_realistic_study(cs: CoverageSettings, out: str | Path, seed: int = 0) -> dict[str, Any]:
    """One realistic cohort: oracle numbers, anemia table, Cox estimands with their truths, AJ figure.

    ``out`` (created) receives ``summary.json``, ``study.md``, ``anemia_metrics.csv``, ``cox.csv`` and
    ``cif_hf_by_ecg_anemia.png``. Returns the summary.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = prepare_model(cs)
    truth = true_log_hrs(cs, model)
    patients, ecgs = simulate_realistic(cs.n_patients, seed, cs.simulation)
    anemia = anemia_table(patients, ecgs, model)
    fits = fit_estimands(patients, ecgs, model, cs.alpha)
    cox = pd.DataFrame([{"estimand": k, "description": _DESCRIBE[k], "true_hr": np.exp(truth[k]),
                         "hr": np.exp(v["log_hr"]), "ci_low": np.exp(v["low"]), "ci_high": np.exp(v["high"]),
                         "n": v["n"], "events": v["events"]} for k, v in fits.items()])
    base = _frames(patients, ecgs, model)["baseline"]
    cif = _aalen_johansen(base, out / "cif_hf_by_ecg_anemia.png")
    anemia.to_csv(out / "anemia_metrics.csv", index=False)
    cox.to_csv(out / "cox.csv", index=False)
    sample_r = float(np.corrcoef(base["hb_est"], base["hb"])[0, 1])
    summary = json_ready({
        "seed": seed, "n_patients": cs.n_patients, "n_ecgs": len(ecgs),
        "oracle": {"r_calibration": model.oracle.r, "auroc_le10_calibration": model.oracle.auroc,
                   "r_this_cohort": sample_r, "coef": dict(zip(("intercept", *_feature_names()),
                                                               (model.oracle.intercept, *model.oracle.coef),
                                                               strict=True))},
        "generating_hr": {"death_per_g_dl_true_hb": cs.simulation.hr_death_per_g_dl,
                          "hf_per_g_dl_true_hb": cs.simulation.hr_hf_per_g_dl,
                          "death_per_10bpm_tone": cs.simulation.hr_death_per_10bpm,
                          "hf_per_10bpm_tone": cs.simulation.hr_hf_per_10bpm},
        "prevalent_hf": int(patients["prevalent_hf"].sum()), "deaths": int(patients["death"].sum()),
        "new_hf": int(patients["hf"].sum()), **cif, "anemia": anemia.to_dict(orient="records"),
        "cox": cox.to_dict(orient="records"), "settings": _settings(cs)})
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    lines = ["# Realistic hemoglobin study (simulated)", "",
             f"Oracle (best linear estimate from one ECG's features): r = {model.oracle.r:.3f}, AUROC for Hb <= 10 "
             f"= {model.oracle.auroc:.3f} on the calibration cohort; r = {sample_r:.3f} in this cohort.", "",
             "## anemia (baseline ECG vs true Hb)", "", _md_table(anemia.round(3)), "",
             "## Cox (adjusted for age and sex)", "", _md_table(cox.round(3)), "",
             "Aalen-Johansen 5-year cumulative incidence of new HF (death competing, prevalent HF excluded): "
             f"{100 * cif['cif_hf_5y_ecg_anemia_yes']:.1f} % with ECG-anemia, "
             f"{100 * cif['cif_hf_5y_ecg_anemia_no']:.1f} % without.", "",
             "![cif](cif_hf_by_ecg_anemia.png)", ""]
    (out / "study.md").write_text("\n".join(lines))
    return summary


def _feature_names() -> tuple[str, ...]:
    from .hb_realistic import FEATURES

    return FEATURES


def _settings(cs: CoverageSettings) -> dict[str, Any]:
    plain = asdict(cs)
    plain["simulation"] = settings_dict(cs.simulation)
    return json_ready(plain, default=str)


# ---------------------------------------------------------------------------------------------- coverage grid
@dataclass(frozen=True)
class CoverageRun:
    """One seed: a row of ``results.csv``."""

    seed: int

    @property
    def key(self) -> str:
        """``seed<k>``."""
        return f"seed{self.seed}"


def result_columns() -> tuple[str, ...]:
    """``results.csv``: run_key, seed, oracle r, per estimand log HR, robust SE, its CI (log), model SE, n, events."""
    per = [f"{k}_{c}" for k in ESTIMANDS for c in ("log_hr", "se", "low", "high", "se_model", "n", "events")]
    return ("run_key", "seed", "oracle_r", "oracle_auroc_le10", *per, "finished_at")


_TRUTH_KEYS = ("truth_patients", "truth_seed", "truth_cohorts")


def _open(cs: CoverageSettings, out: Path) -> tuple[Model, dict[str, float]]:
    """The fixed model and the truths, cached in ``out/truth.json`` (recomputed when the truth settings differ)."""
    path = out / "truth.json"
    model = prepare_model(cs)
    wanted = {k: getattr(cs, k) for k in _TRUTH_KEYS}
    if path.is_file() and json.loads(path.read_text()).get("truth_settings") == wanted:
        return model, json.loads(path.read_text())["log_hr"]
    truth, mcse = true_log_hrs(cs, model, with_mcse=True)
    path.write_text(json.dumps({"log_hr": truth, "log_hr_mcse": mcse, "truth_settings": wanted,
                                "oracle": asdict(model.oracle), "cuts": model.cuts}, indent=2) + "\n")
    return model, truth


def _run_seed(cs: CoverageSettings, run: CoverageRun, data: Any, _state: None, _out: Path,
              _digest: str) -> dict[str, Any]:
    model, _ = data
    patients, ecgs = simulate_realistic(cs.n_patients, run.seed, cs.simulation)
    base = ecgs[ecgs["ecg_index"] == 0]
    est = model.oracle.predict(base)
    row: dict[str, Any] = {"run_key": run.key, "seed": run.seed, "oracle_r": float(np.corrcoef(est, base["hb"])[0, 1]),
                           "oracle_auroc_le10": M.auroc((base["hb"] <= 10.0).astype(int).to_numpy(), -est)}
    for name, fit in fit_estimands(patients, ecgs, model, cs.alpha).items():
        row.update({f"{name}_{k}": v for k, v in fit.items()})
    row["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return row


def run_coverage(cs: CoverageSettings, out: str | Path, seeds: Sequence[int], shard: tuple[int, int] = (1, 1),
                 *, progress: bool = True) -> pd.DataFrame:
    """Fit every estimand on one cohort per seed into ``out/results.csv`` (resumable); returns all rows."""
    import functools

    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct and non-empty; got {list(seeds)[:5]}...")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = _settings(cs)
    proto = {k: v for k, v in config.items() if k not in _TRUTH_KEYS}  # the per-seed rows do not use the truth
    grid = GridDefinition(name="coverage", runs=[CoverageRun(int(s)) for s in seeds], protocol=proto,
                          config=config, columns=result_columns(), open_data=functools.partial(_open, cs),
                          run=functools.partial(_run_seed, cs), curves=False)
    run_grid(grid, out, shard, progress=progress)
    _open(cs, out)  # the truth, also when every seed was done already (e.g. after new truth settings)
    return read_results_csv(out, result_columns())


def coverage_table(results: pd.DataFrame, truth: Mapping[str, float], cs: CoverageSettings) -> pd.DataFrame:
    """Per estimand: true HR, mean HR, bias of log HR (and its Monte-Carlo SE), empirical vs model SE, 95 % CI
    coverage (%, with its Monte-Carlo SE), power to exclude HR = 1 (%), mean n and events."""
    rows = []
    gen = {"death_per_g_dl": cs.simulation.hr_death_per_g_dl, "hf_per_g_dl": cs.simulation.hr_hf_per_g_dl}
    for name in ESTIMANDS:
        b, se = results[f"{name}_log_hr"].to_numpy(float), results[f"{name}_se"].to_numpy(float)
        lo, hi = results[f"{name}_low"].to_numpy(float), results[f"{name}_high"].to_numpy(float)
        t = truth[name]
        cover = (lo <= t) & (t <= hi)
        k = len(b)
        se_m = results[f"{name}_se_model"].to_numpy(float)
        z = (hi - b) / se
        cover_model = np.abs(b - t) <= z * se_m
        rows.append({"estimand": name, "description": _DESCRIBE[name], "seeds": k, "true_hr": np.exp(t),
                     "generating_hr_true_hb": gen.get(name.replace("_all_ecgs", ""), np.nan),
                     "mean_hr": float(np.mean(np.exp(b))), "bias_log_hr": float(np.mean(b - t)),
                     "bias_log_hr_mcse": float(np.std(b, ddof=1) / np.sqrt(k)),
                     "bias_hr": float(np.mean(np.exp(b)) - np.exp(t)), "empirical_se": float(np.std(b, ddof=1)),
                     "mean_robust_se": float(np.mean(se)), "coverage_pct": 100 * float(cover.mean()),
                     "coverage_mcse_pct": 100 * float(np.sqrt(cover.mean() * (1 - cover.mean()) / k)),
                     "mean_model_se_naive": float(np.mean(se_m)),
                     "coverage_naive_se_pct": 100 * float(cover_model.mean()),
                     "power_pct": 100 * float(((lo > 0) | (hi < 0)).mean()),
                     "mean_n": float(results[f"{name}_n"].mean()),
                     "mean_events": float(results[f"{name}_events"].mean())})
    return pd.DataFrame(rows)


def write_coverage_tables(out: str | Path, cs: CoverageSettings) -> pd.DataFrame:
    """``out/coverage.csv`` and ``out/coverage.md`` from ``out/results.csv`` and ``out/truth.json``."""
    out = Path(out)
    truth = json.loads((out / "truth.json").read_text())["log_hr"]
    table = coverage_table(read_results_csv(out, result_columns()), truth, cs)
    table.to_csv(out / "coverage.csv", index=False)
    show = table.drop(columns=["description"]).round(
        {"true_hr": 3, "generating_hr_true_hb": 2, "mean_hr": 3, "bias_log_hr": 4, "bias_log_hr_mcse": 4,
         "bias_hr": 4, "empirical_se": 4, "mean_robust_se": 4,
         "mean_model_se_naive": 4, "coverage_naive_se_pct": 1, "coverage_pct": 1, "coverage_mcse_pct": 1,
         "power_pct": 1, "mean_n": 0, "mean_events": 0})
    (out / "coverage.md").write_text(_md_table(show) + "\n")
    return table


def with_overrides(cs: CoverageSettings, n_patients: int | None = None, **sim: Any) -> CoverageSettings:
    """``cs`` with another cohort size and/or simulation parameters."""
    cs = cs if n_patients is None else replace(cs, n_patients=int(n_patients))
    return replace(cs, simulation=replace(cs.simulation, **sim)) if sim else cs


def calibrate_hf_effect(cs: CoverageSettings, target_hr: float = 2.47, n_patients: int = 100_000,
                        tol: float = 0.02) -> tuple[float, list[dict[str, float]]]:
    """Bisect the generating HR of new HF per 1 g/dL lower true Hb (in [1, 4]) until the ECG-anemia HR of new HF
    (estimand ``hf_ecg_anemia``, on ``n_patients`` with the calibration seed) is within ``tol`` of ``target_hr``.

    Returns ``(hr_hf_per_g_dl, steps)``; each step is ``{"hr_hf_per_g_dl", "hf_ecg_anemia_hr"}``.
    """
    model = prepare_model(cs)
    lo, hi, steps = 1.0, 4.0, []
    for _ in range(25):
        mid = (lo + hi) / 2.0
        sim = replace(cs.simulation, hr_hf_per_g_dl=mid)
        patients, ecgs = simulate_realistic(n_patients, cs.calibration_seed + 2, sim)
        fit = fit_estimands(patients, ecgs, model, cs.alpha, ["hf_ecg_anemia"], robust=False)["hf_ecg_anemia"]
        hr = float(np.exp(fit["log_hr"]))
        steps.append({"hr_hf_per_g_dl": mid, "hf_ecg_anemia_hr": hr})
        if abs(hr - target_hr) <= tol:
            return mid, steps
        lo, hi = (mid, hi) if hr < target_hr else (lo, mid)
    raise ConfigError(f"could not reach an ECG-anemia HR of {target_hr} for HF (last {steps[-1]}).")
