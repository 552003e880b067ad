"""Several seeds and variants of a model comparison (:mod:`ecglens.experiments.compare`): how much each number
moves between seeds, and every difference as a paired bootstrap on the same ECGs.

Two tables, from ``results.csv`` and the runs' ``eval/predictions.csv``:

- :func:`seed_summary`: one row per model x task x variant: the number of seeds, the mean, SD and range over
  seeds of each metric (what one training run gives), the epochs run and where the best epoch was.
- :func:`paired_differences`: each arm against a reference on the same evaluated ECGs, along one axis
  (``"variant"``: an ablation, each variant against the run without overrides, ``default``, per model;
  ``"model"``: each model against a reference model, per variant). An arm's prediction for an ECG is the mean
  of its seeds' predictions (only the seeds both arms ran), and the difference of age MAE (years) or sex AUROC
  is bootstrapped over the ECGs (patients, where the predictions carry ``patient_id``;
  :func:`~ecglens.evaluate.bootstrap.paired_bootstrap_diff`). Within a family (task, metric, reference, the
  other axis's value) the p-values are Holm-adjusted over the arms; the CI is the unadjusted percentile
  interval. With ``pairing="single_runs"`` seed ``j`` of the arm is paired with seed ``j`` of the reference
  instead, and the difference is the mean over seeds of the per-seed difference (the expected effect on one
  training run; averaging seeds first measures the effect on a seed ensemble, which can differ).

:func:`write_seed_report` writes ``OUT/seeds.md``, ``OUT/paired.csv`` (both pairings, column ``pairing``) and
``OUT/figures/seeds.png`` (every seed's value as a dot, the mean as a bar).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluate.bootstrap import holm_adjust, paired_bootstrap_diff
from ..evaluate.metrics import auroc, mae
from ..exceptions import ConfigError
from .figures import save_figure

__all__ = ["DEFAULT_VARIANT", "PAIRED_COLUMNS", "SUMMARY_METRICS", "paired_differences", "plot_seeds", "seed_summary",
           "write_seed_report"]

#: results.csv metric -> (label, number format, lower is better)
SUMMARY_METRICS: dict[str, tuple[str, str, bool]] = {
    "age_mae": ("Age MAE (y)", ".2f", True),
    "age_mae_healthy": ("MAE healthy", ".2f", True),
    "age_mae_non_healthy": ("MAE non-healthy", ".2f", True),
    "sex_auroc": ("Sex AUROC", ".3f", False),
    "sex_accuracy": ("Sex accuracy", ".3f", False),
}
#: paired metric -> (truth column, prediction column, metric function) of ``eval/predictions.csv``
_PAIRED: dict[str, tuple[str, str, Callable[..., float]]] = {
    "age_mae": ("true_age", "age", mae),
    "sex_auroc": ("true_sex", "p_female", auroc),
}
#: columns of ``paired.csv``
PAIRED_COLUMNS: tuple[str, ...] = (
    "axis", "pairing", "task", "fixed", "metric", "arm", "reference", "seeds", "n_records", "value_arm",
    "value_reference",
    "diff", "ci_low", "ci_high", "ci_level", "p_value", "p_holm", "family_size", "significant", "n_boot",
)
_GROUP = ("model", "task", "variant")


#: the name of the run without a variant's overrides in the tables (``variant`` is empty in results.csv)
DEFAULT_VARIANT = "default"


def _with_variant(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with ``variant`` filled: :data:`DEFAULT_VARIANT` for the runs without a variant."""
    df = results.copy()
    if "variant" not in df:
        df["variant"] = ""
    df["variant"] = df["variant"].fillna("").astype(str).replace("", DEFAULT_VARIANT)
    return df


def seed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per model x task x variant: ``n_seeds``, ``seeds``, each metric's ``_mean``, ``_sd``, ``_min``, ``_max``
    over seeds, ``epochs_run_mean``, ``best_epochs`` and ``stopped_by`` (counts).

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of ``results.csv`` (:func:`ecglens.experiments.compare.read_results`).
    """
    if results is None or len(results) == 0:
        raise ConfigError("No results to summarise; run the comparison first (results.csv is empty).")
    df = _with_variant(results)
    rows = []
    for key, group in df.groupby(list(_GROUP), sort=False):
        group = group.sort_values("seed")
        row: dict[str, Any] = dict(zip(_GROUP, key, strict=True))
        row["n_seeds"] = len(group)
        row["seeds"] = " ".join(str(int(s)) for s in group["seed"])
        for column in SUMMARY_METRICS:
            values = pd.to_numeric(group.get(column), errors="coerce").dropna().to_numpy(float) \
                if column in group else np.array([])
            row[f"{column}_mean"] = float(values.mean()) if values.size else math.nan
            row[f"{column}_sd"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
            row[f"{column}_min"] = float(values.min()) if values.size else math.nan
            row[f"{column}_max"] = float(values.max()) if values.size else math.nan
        row["epochs_run_mean"] = float(pd.to_numeric(group["epochs_run"], errors="coerce").mean())
        row["best_epochs"] = " ".join(str(int(e)) for e in pd.to_numeric(group["best_epoch"], errors="coerce")
                                      .dropna())
        row["stopped_by"] = ", ".join(f"{k} {v}" for k, v in group["stopped_by"].value_counts().items())
        rows.append(row)
    return pd.DataFrame(rows)


def _predictions(out: Path, run_dir: str) -> pd.DataFrame:
    path = out / run_dir / "eval" / "predictions.csv"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: paired differences need every run's predictions; run the comparison "
                          "with eval.figures: true (it writes eval/predictions.csv).")
    return pd.read_csv(path, dtype={"record_id": str, "patient_id": str})


def _seed_mean(out: Path, runs: pd.DataFrame, column: str, truth: str) -> pd.DataFrame:
    """``record_id``, ``y``, ``p`` (mean over the runs' predictions) and ``patient_id`` when present."""
    tables = []
    for run_dir in runs["run_dir"]:
        table = _predictions(out, str(run_dir))
        if column not in table or truth not in table:
            return pd.DataFrame()
        keep = ["record_id", truth, column] + (["patient_id"] if "patient_id" in table else [])
        tables.append(table[keep])
    stacked = pd.concat(tables, ignore_index=True)
    first = {truth: "first"} | ({"patient_id": "first"} if "patient_id" in stacked else {})
    averaged = stacked.groupby("record_id", sort=True).agg({column: "mean", **first}).reset_index()
    return averaged.rename(columns={column: "p", truth: "y"})


def _seed_columns(out: Path, runs: pd.DataFrame, column: str, truth: str) -> pd.DataFrame:
    """``record_id``, ``y``, ``patient_id`` when present and one prediction column ``p<seed>`` per run."""
    wide = pd.DataFrame()
    for _, run in runs.sort_values("seed").iterrows():
        table = _predictions(out, str(run["run_dir"]))
        if column not in table or truth not in table:
            return pd.DataFrame()
        name = f"p{int(run['seed'])}"
        if wide.empty:
            ids = ["record_id", truth] + (["patient_id"] if "patient_id" in table else [])
            wide = table[ids + [column]].rename(columns={truth: "y", column: name})
        else:
            wide = wide.merge(table[["record_id", column]].rename(columns={column: name}), on="record_id")
    return wide


def _paired_arrays(out: Path, arm_runs: pd.DataFrame, ref_runs: pd.DataFrame, column: str, truth: str,
                   pairing: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The records both arms scored with their prediction columns (one per arm, or one per seed and arm)."""
    if pairing == "seed_mean":
        a, b = _seed_mean(out, arm_runs, column, truth), _seed_mean(out, ref_runs, column, truth)
        names = ["p"]
    else:
        a, b = _seed_columns(out, arm_runs, column, truth), _seed_columns(out, ref_runs, column, truth)
        names = [f"p{int(s)}" for s in sorted(arm_runs["seed"])]
    cols_a, cols_b = [f"{c}_arm" for c in names], [f"{c}_ref" for c in names]
    if a.empty or b.empty:
        return pd.DataFrame(), cols_a, cols_b
    both = a.merge(b[["record_id", *names]], on="record_id", suffixes=("_arm", "_ref"))
    return both, cols_a, cols_b


def paired_differences(results: pd.DataFrame, out: str | os.PathLike[str], *, axis: str = "variant",
                       reference: str | None = None, n_boot: int = 1000, alpha: float = 0.05,
                       seed: int = 0, pairing: str = "seed_mean") -> pd.DataFrame:
    """Each arm against ``reference`` along ``axis`` on the same ECGs (see the module docstring).

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of ``results.csv``; ``run_dir`` relative to ``out``.
    out : path
        The comparison's output folder (holds ``runs/<run_key>/eval/predictions.csv``).
    axis : {"variant", "model"}
        What differs between the arms compared; the other of model / variant is held fixed per family.
    reference : str, optional
        The reference arm (default: ``"default"``, the runs without a variant, along ``"variant"``; the first
        model in ``results`` along ``"model"``).
    n_boot, alpha, seed
        Bootstrap resamples, 1 - CI level (and the level the Holm-adjusted p-values are tested at), seed.
    pairing : {"seed_mean", "single_runs"}
        Average each arm's seeds per ECG first, or pair seed ``j`` with seed ``j`` and average the per-seed
        differences (module docstring).

    Returns
    -------
    pandas.DataFrame
        :data:`PAIRED_COLUMNS`; ``diff`` is arm - reference (for age MAE, negative: the arm is better).
    """
    if axis not in ("variant", "model"):
        raise ConfigError(f"axis must be 'variant' or 'model', got {axis!r}.")
    if pairing not in ("seed_mean", "single_runs"):
        raise ConfigError(f"pairing must be 'seed_mean' or 'single_runs', got {pairing!r}.")
    out = Path(out)
    df = _with_variant(results)
    fixed_axis = "model" if axis == "variant" else "variant"
    arms = list(dict.fromkeys(df[axis]))
    if reference is None:
        reference = DEFAULT_VARIANT if axis == "variant" and DEFAULT_VARIANT in arms else arms[0]
    if reference not in arms:
        raise ConfigError(f"reference {reference!r} is not a {axis} of the results: {', '.join(map(str, arms))}.")
    rows = []
    for (task, fixed), cell in df.groupby(["task", fixed_axis], sort=False):
        ref_runs = cell[cell[axis] == reference]
        for metric, (truth, column, fn) in _PAIRED.items():
            family = []
            for arm in [a for a in arms if a != reference and a in set(cell[axis])]:
                arm_runs = cell[cell[axis] == arm]
                seeds = sorted(set(arm_runs["seed"]) & set(ref_runs["seed"]))
                if not seeds:
                    continue
                both, cols_a, cols_b = _paired_arrays(out, arm_runs[arm_runs["seed"].isin(seeds)],
                                                      ref_runs[ref_runs["seed"].isin(seeds)], column, truth, pairing)
                if both.empty:
                    continue
                groups = both["patient_id"] if "patient_id" in both else None
                r = paired_bootstrap_diff(fn, both["y"], both[cols_a].to_numpy(np.float64),
                                          both[cols_b].to_numpy(np.float64), n_boot=n_boot, alpha=alpha,
                                          seed=seed, groups=groups)
                family.append({
                    "axis": axis, "pairing": pairing, "task": task, "fixed": fixed, "metric": metric, "arm": arm,
                    "reference": reference,
                    "seeds": " ".join(str(int(s)) for s in seeds), "n_records": r["n"], "value_arm": r["value_a"],
                    "value_reference": r["value_b"], "diff": r["diff"], "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"], "ci_level": 1.0 - alpha, "p_value": r["p_value"],
                    "n_boot": r["n_boot"]})
            if family:
                adjusted = holm_adjust([f["p_value"] for f in family])
                for f, p in zip(family, adjusted, strict=True):
                    f.update(p_holm=float(p), family_size=len(family), significant=bool(p < alpha))
                rows += family
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


def _mean_sd(row: pd.Series, column: str, fmt: str) -> str:
    mean, sd = row.get(f"{column}_mean", math.nan), row.get(f"{column}_sd", math.nan)
    if not np.isfinite(mean):
        return "—"
    return f"{mean:{fmt}}" + (f" ± {sd:{fmt}}" if np.isfinite(sd) else "")


def _summary_markdown(summary: pd.DataFrame) -> list[str]:
    header = ["Model", "Task", "Variant", "Seeds", *(label for label, _, _ in SUMMARY_METRICS.values()),
              "Epochs (mean)", "Best epochs", "Stopped by"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 4 + ["---:"] * (len(header) - 4)) + "|"]
    for _, row in summary.iterrows():
        cells = [f"`{row['model']}`", str(row["task"]), str(row["variant"]), str(row["n_seeds"])]
        cells += [_mean_sd(row, column, fmt) for column, (_, fmt, _) in SUMMARY_METRICS.items()]
        cells += [f"{row['epochs_run_mean']:.1f}", str(row["best_epochs"]), str(row["stopped_by"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paired_markdown(paired: pd.DataFrame) -> list[str]:
    header = ["Task", "Fixed", "Metric", "Arm", "Reference", "Seeds", "Arm value", "Reference value",
              "Difference [95 % CI]", "p (Holm)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 6 + ["---:"] * 4) + "|"]
    for _, r in paired.iterrows():
        fmt = ".2f" if r["metric"] == "age_mae" else ".3f"
        mark = " *" if r["significant"] else ""
        lines.append(f"| {r['task']} | {r['fixed'] or '—'} | {r['metric']} | {r['arm']} | {r['reference']} | "
                     f"{r['seeds']} | {r['value_arm']:{fmt}} | {r['value_reference']:{fmt}} | "
                     f"{r['diff']:+{fmt}} [{r['ci_low']:+{fmt}}, {r['ci_high']:+{fmt}}]{mark} | {r['p_holm']:.3g} |")
    return lines


def plot_seeds(results: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Age MAE and sex AUROC per model x task x variant: each seed a dot, the mean a bar; saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = _with_variant(results)
    labels = [" / ".join(str(k) for k in key if k != DEFAULT_VARIANT)
              for key in dict.fromkeys(map(tuple, df[list(_GROUP)].values))]
    panels = [("age_mae", "age MAE (years), lower is better"), ("sex_auroc", "sex AUROC, higher is better")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.4 * len(labels) + 1.8), sharey=True)
    for ax, (column, xlabel) in zip(axes, panels, strict=True):
        for i, key in enumerate(dict.fromkeys(map(tuple, df[list(_GROUP)].values))):
            group = df[(df["model"] == key[0]) & (df["task"] == key[1]) & (df["variant"] == key[2])]
            values = pd.to_numeric(group[column], errors="coerce").dropna().to_numpy(float)
            if values.size:
                ax.plot([values.mean()] * 2, [i - 0.3, i + 0.3], color="0.2", lw=2)
                ax.scatter(values, np.full(values.size, i), s=18, color="tab:blue", alpha=0.8, zorder=3)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=8)
    axes[0].set_ylim(len(labels) - 0.5, -0.5)
    return save_figure(fig, path, "Per seed (dots) and mean over seeds (bar), evaluated folds", fontsize=10)


def write_seed_report(results: pd.DataFrame, out: str | os.PathLike[str], *, axes: Sequence[str] = ("variant",
                      "model"), references: dict[str, str] | None = None, n_boot: int = 1000, alpha: float = 0.05,
                      seed: int = 0) -> dict[str, Path]:
    """``OUT/seeds.md`` (summary over seeds + paired differences), ``OUT/paired.csv``, ``OUT/figures/seeds.png``.

    An axis with a single value (one variant, one model) is skipped. ``references``: the reference per axis
    (default: ``default`` along variants, the first model along models). Without every run's
    ``eval/predictions.csv`` (``eval.figures: false``) the paired differences are left out, and ``seeds.md`` says
    so.
    """
    out = Path(out)
    summary = seed_summary(results)
    df = _with_variant(results)
    missing = [d for d in df["run_dir"] if not (out / str(d) / "eval" / "predictions.csv").is_file()]
    paired = [] if missing else [
        paired_differences(df, out, axis=a, reference=(references or {}).get(a), n_boot=n_boot, alpha=alpha,
                           seed=seed, pairing=pairing) for pairing in ("seed_mean", "single_runs")
        for a in axes if df[a].nunique() > 1]
    table = pd.concat(paired, ignore_index=True) if paired else pd.DataFrame(columns=list(PAIRED_COLUMNS))
    table.to_csv(out / "paired.csv", index=False)
    figure = plot_seeds(df, out / "figures" / "seeds.png")
    folds = "; ".join(dict.fromkeys(df["test_folds"].dropna().astype(str))) if "test_folds" in df else "?"
    lines = ["## Over seeds", "",
             f"Evaluated folds: {folds}. Mean ± SD over seeds of each run's metric (what one training run gives); "
             "best epochs per seed; stopped by: why each run ended (early_stopping = converged by the patience rule).",
             "", *_summary_markdown(summary), "", "![Per seed and mean](figures/seeds.png)", ""]
    if missing:
        lines += ["## Paired differences", "", f"Not computed: {len(missing)} run(s) have no eval/predictions.csv "
                  f"(e.g. {missing[0]}); run the comparison with eval.figures: true to write them.", ""]
    elif len(table):
        lines += ["## Paired differences", "",
                  "Arm minus reference on the same ECGs, each arm's predictions averaged over the seeds both ran; "
                  f"percentile bootstrap over ECGs ({n_boot} resamples), p-values Holm-adjusted within each task x "
                  "metric x reference family; * adjusted p < "
                  f"{alpha:g}. Age MAE: negative = the arm is better; AUROC: positive = better.", "",
                  *_paired_markdown(table[table["pairing"] == "seed_mean"]), "",
                  "## Paired differences of single runs", "",
                  "Seed j of the arm against seed j of the reference, the mean over seeds of the per-seed "
                  "difference, bootstrapped over ECGs on the same resamples for every seed; Holm as above. "
                  "Arm and reference values are the mean single-run metrics.", "",
                  *_paired_markdown(table[table["pairing"] == "single_runs"]), ""]
    (out / "seeds.md").write_text("\n".join(lines), encoding="utf-8")
    return {"markdown": out / "seeds.md", "paired": out / "paired.csv", "figure": figure}
