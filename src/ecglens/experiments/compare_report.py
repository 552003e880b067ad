"""The report of the model comparison (:mod:`ecglens.experiments.compare`): the Markdown table for
docs/results.md and the figure (age MAE and sex AUROC per model and task, with 95 % CIs), from ``results.csv``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ConfigError
from .figures import save_figure

__all__ = ["TASKS", "plot_comparison", "write_comparison_markdown", "write_report"]

#: the tasks of the comparison, in table order
TASKS: tuple[str, ...] = ("age", "sex", "age_sex")


#: table columns of the markdown report: header -> (results column, number format); CI from _low / _high
_TABLE: dict[str, tuple[str, str]] = {
    "Age MAE (y)": ("age_mae", ".1f"),
    "MAE healthy": ("age_mae_healthy", ".1f"),
    "MAE non-healthy": ("age_mae_non_healthy", ".1f"),
    "Age r": ("age_r", ".2f"),
    "Sex AUROC": ("sex_auroc", ".3f"),
    "Sex accuracy": ("sex_accuracy", ".3f"),
}
_MISSING = "—"


def _num(value: Any) -> float:
    """A float, NaN for anything that is not a finite number (None, "", text)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _with_ci(row: Mapping[str, Any], column: str, fmt: str) -> str:
    """``"6.9 [6.7, 7.1]"`` (or the value alone without a CI, or a dash without a value)."""
    value, low, high = (_num(row.get(column + s)) for s in ("", "_low", "_high"))
    if math.isnan(value):
        return _MISSING
    if math.isnan(low) or math.isnan(high):
        return format(value, fmt)
    return f"{value:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def _params_text(n: Any) -> str:
    n = _num(n)
    return _MISSING if math.isnan(n) else f"{n / 1e6:.3g} M" if n >= 1e6 else f"{n / 1e3:.3g} k"


def _time_text(seconds: Any) -> str:
    s = _num(seconds)
    return _MISSING if math.isnan(s) else f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _keyed(results: pd.DataFrame) -> pd.DataFrame:
    """The last row per model x task x variant x seed, with ``variant`` ("" for none) and ``label`` (the model,
    ``model / variant`` where there are variants) columns."""
    df = results.copy()
    df["variant"] = df["variant"].fillna("").astype(str) if "variant" in df else ""
    if "seed" not in df:
        df["seed"] = 0
    df["label"] = [f"{m} / {v}" if v else str(m) for m, v in zip(df["model"], df["variant"], strict=True)]
    return df.drop_duplicates(["model", "task", "variant", "seed"], keep="last")


def _ordered(results: pd.DataFrame) -> pd.DataFrame:
    """Rows in model order (first appearance), then task order (:data:`TASKS`, others after), variant, seed."""
    df = _keyed(results).reset_index(drop=True)
    models = {m: i for i, m in enumerate(dict.fromkeys(df["model"]))}
    variants = {v: i for i, v in enumerate(dict.fromkeys(df["variant"]))}
    tasks = {t: i for i, t in enumerate(TASKS)}
    order = sorted(range(len(df)), key=lambda i: (models[df.at[i, "model"]], tasks.get(df.at[i, "task"], 99),
                                                  str(df.at[i, "task"]), variants[df.at[i, "variant"]],
                                                  int(df.at[i, "seed"])))
    return df.iloc[order].reset_index(drop=True)


def _unique_text(results: pd.DataFrame, column: str) -> str:
    values = [str(v) for v in dict.fromkeys(results[column].dropna())] if column in results else []
    return "; ".join(values) if values else "?"


def _preamble(results: pd.DataFrame, title: str) -> list[str]:
    """Heading and the paragraph stating budget, data, CI method and column meanings."""
    u = {c: _unique_text(results, c) for c in ("budget", "train_folds", "val_folds", "n_val", "n_boot", "resampling",
                                               "test_folds", "n_test")}
    level = _num(results["ci_level"].iloc[0]) if "ci_level" in results else math.nan
    level_text = "95 %" if math.isnan(level) else f"{100 * level:g} %"
    if u["test_folds"] in ("?", u["val_folds"]):
        where = (f"validation folds {u['val_folds']} (n = {u['n_val']}); the best epoch is selected on the validation "
                 "folds, so these are validation, not test, numbers")
    else:
        where = (f"validation folds {u['val_folds']} (n = {u['n_val']}) select the best epoch; the metrics are on "
                 f"folds {u['test_folds']} (n = {u['n_test']}), used for nothing else")
    text = (f"Budget per run: {u['budget']}. Training folds {u['train_folds']}, {where}. Values: estimate "
            f"[{level_text} CI], percentile bootstrap with {u['n_boot']} resamples "
            f"(by {u['resampling']}). Age MAE in years; healthy = NORM only, non-healthy = any of MI, STTC, CD, HYP "
            "(PTB-XL superclasses). Sex: AUROC of P(female) and accuracy at 0.5. "
            f"{_MISSING}: not predicted by that task. Params: trainable parameters (model kwargs in results.csv).")
    return [f"## {title}", "", text, ""]


def write_comparison_markdown(results_df: pd.DataFrame, path: str | os.PathLike[str], *,
                              title: str = "Model comparison: age, sex and age + sex",
                              figure: str | os.PathLike[str] | None = None) -> Path:
    """Write the comparison table (one row per model x task, values as ``6.9 [6.7, 7.1]``) as Markdown.

    Parameters
    ----------
    results_df : pandas.DataFrame
        Rows of ``results.csv`` (:func:`read_results`); one per model x task x variant x seed (the last one
        kept otherwise); Variant and Seed columns appear where the results have several.
    path : path
        The Markdown file to write (e.g. ``docs/results_compare.md``, to paste into ``docs/results.md``).
    title : str
        The section heading.
    figure : path, optional
        A figure (:func:`plot_comparison`) to link below the table, relative to ``path``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if results_df is None or len(results_df) == 0:
        raise ConfigError("No results to tabulate; run the comparison first (results.csv is empty).")
    df = _ordered(results_df)
    extra = [name for name, column in (("Variant", "variant"), ("Seed", "seed")) if df[column].nunique() > 1]
    header = ["Model", "Task", *extra, "Params", "Epochs", "Train time", *_TABLE]
    lines = _preamble(df, title)
    lines += ["| " + " | ".join(header) + " |",
              "|" + "|".join(["---"] * (2 + len(extra)) + ["---:"] * (len(header) - 2 - len(extra))) + "|"]
    for row in df.to_dict("records"):
        stopped = row.get("stopped_by")
        epochs = _MISSING if math.isnan(_num(row.get("epochs_run"))) else str(int(_num(row.get("epochs_run"))))
        if isinstance(stopped, str) and stopped != "epochs":
            epochs += f" ({stopped.replace('_', ' ')})"
        cells = [f"`{row['model']}`", str(row["task"]), *(str(row[c.lower()]) or _MISSING for c in extra),
                 _params_text(row.get("params")), epochs,
                 _time_text(row.get("train_time_s"))]
        cells += [_with_ci(row, column, fmt) for column, fmt in _TABLE.values()]
        lines.append("| " + " | ".join(cells) + " |")
    if figure is not None:
        rel = os.path.relpath(Path(figure), path.parent if str(path.parent) else ".")
        lines += ["", f"![Age MAE and sex AUROC per model with CIs]({Path(rel).as_posix()})"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


#: figure panels: (metric column, x label, tasks drawn, better direction)
_PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("age_mae", "age MAE (years), lower is better", ("age", "age_sex")),
    ("sex_auroc", "sex AUROC, higher is better", ("sex", "age_sex")),
)
_TASK_STYLE = {"age": ("tab:blue", "o"), "sex": ("tab:orange", "s"), "age_sex": ("tab:green", "D")}


def _draw_task(ax: Any, rows: pd.DataFrame, column: str, task: str, models: list[str], offset: float) -> None:
    """One task's ``column`` per model (markers at model row + ``offset``) with CI error bars."""
    value, low, high = (pd.to_numeric(rows[column + s], errors="coerce").to_numpy(float) for s in ("", "_low", "_high"))
    y = np.array([models.index(m) for m in rows["label"]], dtype=float) + offset
    ok = np.isfinite(value)
    err = np.nan_to_num(np.abs(np.vstack([value - low, high - value])[:, ok]))
    color, marker = _TASK_STYLE.get(task, ("0.3", "o"))
    ax.errorbar(value[ok], y[ok], xerr=err, fmt=marker, color=color, capsize=3, label=task)


def plot_comparison(results_df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Age MAE and sex AUROC per model (rows; model / variant where there are variants), one marker per task
    (per task and seed where there are several seeds), with CI error bars; saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = _ordered(results_df)
    models = list(dict.fromkeys(df["label"]))
    fig, axes = plt.subplots(1, len(_PANELS), figsize=(5.0 * len(_PANELS), 0.45 * len(models) + 1.6),
                             sharey=True, squeeze=False)
    for ax, (column, label, tasks) in zip(axes[0], _PANELS, strict=True):
        drawn = [t for t in tasks if pd.to_numeric(df.loc[df["task"] == t, column], errors="coerce").notna().any()]
        for k, task in enumerate(drawn):
            _draw_task(ax, df[df["task"] == task], column, task, models, (k - (len(drawn) - 1) / 2) * 0.25)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        if drawn:
            ax.legend(title="trained for", fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no run of " + " / ".join(tasks), ha="center", va="center", transform=ax.transAxes)
    axes[0][0].set_yticks(range(len(models)), models)
    axes[0][0].set_ylim(len(models) - 0.5, -0.5)  # first model on top
    return save_figure(fig, path, "Model comparison (evaluated folds, 95 % bootstrap CI)", fontsize=10)


def write_report(results_df: pd.DataFrame, out: str | os.PathLike[str]) -> dict[str, Path]:
    """``OUT/figures/comparison.png`` and ``OUT/comparison.md`` (linking the figure) from ``results_df``; with
    several seeds or variants also ``OUT/seeds.md``, ``OUT/paired.csv`` and ``OUT/figures/seeds.png``
    (:func:`ecglens.experiments.compare_seeds.write_seed_report`; references: the first variant and model)."""
    from .compare_seeds import write_seed_report

    out = Path(out)
    figure = plot_comparison(results_df, out / "figures" / "comparison.png")
    table = write_comparison_markdown(results_df, out / "comparison.md", figure=figure)
    files = {"markdown": table, "figure": figure}
    df = _keyed(results_df)
    if df["seed"].nunique() > 1 or df["variant"].nunique() > 1:
        n_boot = int(_num(df["n_boot"].iloc[0])) if "n_boot" in df and not math.isnan(_num(df["n_boot"].iloc[0])) \
            else 1000
        seeds = write_seed_report(df.drop(columns="label"), out, n_boot=n_boot)  # "" -> "default" there
        files.update({"seeds": seeds["markdown"], "paired": seeds["paired"], "seeds_figure": seeds["figure"]})
    return files


