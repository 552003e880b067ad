"""Figures and a summary table of a transfer-learning grid (``results.csv`` of
:mod:`ecglens.experiments.transfer`).

* :func:`summarize` -- one row per setting (model, pretraining task, strategy, source size, target size): mean
  of the metric over seeds with a 95 % interval (over seeds: mean +- t * sd / sqrt(k) for k >= 2 seeds; one
  seed: that run's bootstrap interval on the test set).
* :func:`plot_target_size_curves` -- metric vs number of target ECGs (log x), one panel per model, one line
  per pretraining task / strategy (``none`` = from scratch), interval as a band.
* :func:`plot_gain_vs_source_size` -- gain over from-scratch training (paired by model, target size and seed)
  vs number of source ECGs (log x); rows: pretraining tasks, columns: models, one line per target size.
* :func:`plot_pretraining_tasks` -- the pretraining tasks side by side (bars with intervals) per model, one
  panel per target size.
* :func:`gain_summary` / :func:`plot_gain_by_arm` -- the paired gain over from-scratch training of every
  pretrained arm (pretraining task x strategy) with a 95 % interval over seeds; bars, a panel per model and
  target size: where fine-tuning and linear probing of the same pretrained network part ways.
* :func:`summary_markdown` -- the tables of docs/transfer_notebook.md: per model, the metric per target size and
  pretraining task, and the gains over from-scratch training paired by seed.
* :func:`write_transfer_figures` -- all of the above into a folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["gain_summary", "paired_gains", "plot_gain_by_arm", "plot_gain_vs_source_size", "plot_paired_differences",
           "plot_pretraining_tasks", "plot_target_size_curves", "save_figure", "summarize", "summary_markdown",
           "write_transfer_figures"]

_KEYS = ["model", "pretrain_task", "strategy", "source_size", "target_size"]
_TASK_COLORS = {"none": "0.25", "age": "tab:blue", "sex": "tab:orange", "age_sex": "tab:green"}
_STRATEGY_STYLES = {"scratch": "-", "finetune": "-", "gradual_unfreeze": "-.", "linear_probe": "--", "lp_ft": ":"}


def _prepared(results: pd.DataFrame) -> pd.DataFrame:
    df = results.copy()
    for column in ("source_size", "target_size"):
        df[column] = df[column].fillna("").astype(str).replace({"nan": ""})
    for column in ("n_target", "n_source", "seed"):
        df[column] = pd.to_numeric(df[column], errors="coerce")
    return df


def _quiet_mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _interval(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[float, float, float, float]:
    """mean, sd, lower, upper: a t interval over seeds, or the bootstrap interval of a single run."""
    from scipy import stats

    values = values[np.isfinite(values)]
    k = values.size
    if k == 0:
        return (math.nan,) * 4
    mean = float(values.mean())
    if k == 1:
        return mean, math.nan, _quiet_mean(low), _quiet_mean(high)
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.975, k - 1)) * sd / math.sqrt(k)
    return mean, sd, mean - half, mean + half


def summarize(results: pd.DataFrame, metric: str = "test_auroc") -> pd.DataFrame:
    """Mean of ``metric`` over seeds per setting, with a 95 % interval (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        ``model, pretrain_task, strategy, source_size, target_size, n_source, n_target, n_seeds, mean, sd,
        ci_low, ci_high`` (``n_source`` / ``n_target``: mean actual record counts).
    """
    df = _prepared(results)
    rows = []
    for key, g in df.groupby(_KEYS, sort=False, dropna=False):
        mean, sd, lo, hi = _interval(pd.to_numeric(g[metric], errors="coerce").to_numpy(float),
                                     pd.to_numeric(g.get(f"{metric}_low"), errors="coerce").to_numpy(float),
                                     pd.to_numeric(g.get(f"{metric}_high"), errors="coerce").to_numpy(float))
        rows.append({**dict(zip(_KEYS, key, strict=True)), "n_source": g["n_source"].mean(),
                     "n_target": g["n_target"].mean(), "n_seeds": int(g["seed"].nunique()), "mean": mean,
                     "sd": sd, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=[*_KEYS, "n_source", "n_target", "n_seeds", "mean", "sd", "ci_low",
                                       "ci_high"])


def paired_gains(results: pd.DataFrame, metric: str = "test_auroc") -> pd.DataFrame:
    """Per pretrained run: ``gain = metric - metric of the from-scratch run`` with the same model, target size
    and seed (rows without such a partner are left out)."""
    df = _prepared(results)
    base = df[df["pretrain_task"] == "none"][["model", "target_size", "seed", metric]]
    base = base.rename(columns={metric: "scratch"})
    pre = df[df["pretrain_task"] != "none"].merge(base, on=["model", "target_size", "seed"], how="inner")
    pre["gain"] = pd.to_numeric(pre[metric], errors="coerce") - pd.to_numeric(pre["scratch"], errors="coerce")
    return pre


def _largest_source(df: pd.DataFrame) -> str | None:
    pre = df[df["pretrain_task"] != "none"]
    if pre.empty:
        return None
    return str(pre.groupby("source_size")["n_source"].mean().idxmax())


def _primary_strategy(df: pd.DataFrame) -> str | None:
    names = [s for s in df["strategy"].unique() if s != "scratch"]
    return "finetune" if "finetune" in names else (min(names) if names else None)


def _grid(n_panels: int, ncols: int = 3, size: tuple[float, float] = (4.2, 3.4),
          nrows: int | None = None) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n_panels))
    nrows = nrows or -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    return fig, axes


def _log_x(ax: Any) -> None:
    """Log x axis labelled with plain record counts (20, 100, 1000) instead of powers of ten."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    if not ax.has_data():  # nothing finite to show (e.g. every run of the panel undefined)
        ax.text(0.5, 0.5, "no finished runs with a defined value", ha="center", va="center", fontsize=7,
                transform=ax.transAxes)
        return
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _legend(ax: Any, fontsize: float) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize)


def save_figure(fig: Any, path: str | os.PathLike[str], title: str, *, fontsize: float = 8) -> Path:
    """Title ``fig``, save it to ``path`` (folders made; 110 dpi, tight box) and close it."""
    import matplotlib.pyplot as plt

    text = fig.suptitle(title, fontsize=fontsize, y=1.0 - 0.06 / fig.get_figheight(), va="top")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    tops = [ax.get_tightbbox(renderer).y1 for ax in fig.axes if ax.get_visible()]
    overlap = max(tops, default=0.0) - text.get_window_extent(renderer).y0 + 0.08 * fig.dpi
    if overlap > 0:  # tight_layout leaves the suptitle over tall figures' panels: move the panels down
        fig.subplots_adjust(top=fig.subplotpars.top - overlap / fig.bbox.height)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": keeps a legend placed outside the panels
    plt.close(fig)
    return path


def _label(metric: str) -> str:
    split, _, name = metric.partition("_")
    return f"{name.upper()} ({split})"


def plot_target_size_curves(results: pd.DataFrame, path: str | os.PathLike[str], metric: str = "test_auroc",
                            source_size: str | None = None) -> Path:
    """Metric vs target-set size (log x), a panel per model, a line per pretraining task and strategy.

    Pretrained lines use ``source_size`` (default: the largest); ``none`` is training from scratch. All panels
    share one y range (that of the means), so the models can be compared; wide intervals may be clipped.
    """
    df = _prepared(results)
    source_size = source_size or _largest_source(df)
    table = summarize(df, metric)
    table = table[(table["pretrain_task"] == "none") | (table["source_size"] == str(source_size))]
    models = list(dict.fromkeys(df["model"]))
    fig, axes = _grid(len(models))
    for ax, model in zip(axes.flat, models, strict=False):
        mine = table[table["model"] == model]
        for (task, strategy), g in mine.groupby(["pretrain_task", "strategy"], sort=False):
            g = g[np.isfinite(g["mean"])].sort_values("n_target")
            if g.empty:
                continue
            color = _TASK_COLORS.get(task)
            ax.plot(g["n_target"], g["mean"], _STRATEGY_STYLES.get(strategy, ":"), marker="o", ms=3,
                    color=color,
                    label=f"{task} ({strategy})")
            ax.fill_between(g["n_target"], g["ci_low"], g["ci_high"], color=color, alpha=0.15, lw=0)
        _log_x(ax)
        ax.set_title(model)
        ax.set_xlabel("target training ECGs")
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3, which="both")
        _legend(ax, 7)
    means = table["mean"].to_numpy(float)
    if np.isfinite(means).any():  # one y range for every panel, so models compare at a glance (bands may clip)
        low, high = float(np.nanmin(means)), float(np.nanmax(means))
        pad = max(0.02, 0.15 * (high - low))
        for ax in list(axes.flat)[:len(models)]:
            ax.set_ylim(low - pad, high + pad)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    return save_figure(fig, path, f"{_label(metric)} vs target ECGs (pretrained on {source_size} source ECGs)\n"
                            "mean over seeds, 95 % interval")


def plot_gain_vs_source_size(results: pd.DataFrame, path: str | os.PathLike[str], metric: str = "test_auroc",
                             strategy: str | None = None) -> Path:
    """Gain over from-scratch training vs source size (log x): rows pretraining tasks, columns models, a line
    per target size (mean over seeds, 95 % t interval when there are >= 2 seeds)."""
    from matplotlib import colormaps

    gains = paired_gains(results, metric)
    strategy = strategy or _primary_strategy(_prepared(results))
    gains = gains[gains["strategy"] == strategy]
    models = list(dict.fromkeys(_prepared(results)["model"]))
    tasks = list(dict.fromkeys(gains["pretrain_task"])) or ["(none)"]
    fig, axes = _grid(len(models) * len(tasks), ncols=len(models), nrows=len(tasks))
    sizes = sorted(gains["target_size"].unique(), key=lambda s: (s == "all", float(s) if s != "all" else 0))
    colors = colormaps["viridis"](np.linspace(0, 0.9, max(1, len(sizes))))
    for r, task in enumerate(tasks):
        for c, model in enumerate(models):
            ax = axes[r][c]
            sub = gains[(gains["model"] == model) & (gains["pretrain_task"] == task)]
            for color, size in zip(colors, sizes, strict=True):
                g = sub[(sub["target_size"] == size) & np.isfinite(sub["gain"])]
                if g.empty:
                    continue
                stats = [(s["n_source"].mean(), *_interval(s["gain"].to_numpy(float), np.array([np.nan]),
                                                           np.array([np.nan])))
                         for _, s in g.groupby("source_size")]
                x, mean, _, lo, hi = (np.array(v, dtype=float) for v in zip(*sorted(stats), strict=True))
                ax.plot(x, mean, marker="o", ms=3, color=color, label=f"target {size}")
                if len(x) > 1:
                    ax.fill_between(x, lo, hi, color=color, alpha=0.12, lw=0)
                elif np.isfinite(lo).all():  # one source size: its interval as an error bar
                    ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], color=color, lw=1, capsize=2)
            ax.axhline(0.0, color="0.4", lw=0.8)
            _log_x(ax)
            ax.set_title(f"{model}: {task}", fontsize=9)
            ax.set_xlabel("source (pretraining) ECGs")
            ax.set_ylabel(f"gain in {_label(metric)}")
            ax.grid(alpha=0.3, which="both")
            _legend(ax, 6)
    n_source = pd.to_numeric(gains["n_source"], errors="coerce")
    n_source = n_source[np.isfinite(n_source) & (n_source > 0)]
    if len(n_source):  # one x range for every panel: a task run at one source size sits where it belongs
        for ax in axes.flat:
            if ax.has_data():
                ax.set_xlim(n_source.min() / 1.4, n_source.max() * 1.4)
    return save_figure(fig, path, f"Gain over training from scratch ({strategy}),\npaired by model, target size "
                            "and seed")


def plot_pretraining_tasks(results: pd.DataFrame, path: str | os.PathLike[str], metric: str = "test_auroc",
                           source_size: str | None = None, strategy: str | None = None) -> Path:
    """The pretraining tasks side by side: bars (mean over seeds, 95 % interval) per model, a panel per target
    size; pretrained bars use ``source_size`` (default: the largest) and ``strategy`` (default: finetune)."""
    df = _prepared(results)
    source_size = source_size or _largest_source(df)
    strategy = strategy or _primary_strategy(df)
    table = summarize(df, metric)
    keep = (table["pretrain_task"] == "none") | ((table["source_size"] == str(source_size))
                                                 & (table["strategy"] == strategy))
    table = table[keep]
    sizes = sorted(table["target_size"].unique(), key=lambda s: (s == "all", float(s) if s != "all" else 0))
    models = list(dict.fromkeys(df["model"]))
    tasks = list(dict.fromkeys(df["pretrain_task"]))
    fig, axes = _grid(len(sizes))
    width = 0.8 / max(1, len(tasks))
    for ax, size in zip(axes.flat, sizes, strict=False):
        sub = table[table["target_size"] == size]
        for k, task in enumerate(tasks):
            g = sub[sub["pretrain_task"] == task].set_index("model").reindex(models)
            x = np.arange(len(models)) + (k - (len(tasks) - 1) / 2) * width
            err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]).clip(min=0)
            ax.bar(x, g["mean"], width, yerr=np.nan_to_num(err), capsize=2, label=task,
                   color=_TASK_COLORS.get(task))
        ax.set_xticks(np.arange(len(models)), models, rotation=20, fontsize=7)
        if metric.endswith("auroc"):
            ax.set_ylim(0.4, 1.0)
        ax.set_title(f"target size {size}")
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3, axis="y")
    for ax in list(axes.flat)[len(sizes):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:  # one legend under the panels: inside a panel it hides bars
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels), fontsize=7,
                   title="pretraining task", title_fontsize=7)
    return save_figure(fig, path, f"Pretraining tasks ({strategy}, {source_size} source ECGs) vs from scratch "
                            "(none)")


def gain_summary(results: pd.DataFrame, metric: str = "test_auroc") -> pd.DataFrame:
    """Mean paired gain over from-scratch training per pretrained arm, with a 95 % interval over seeds.

    Parameters
    ----------
    results : pandas.DataFrame
        ``results.csv`` of one or more grids.
    metric : str
        A metric column, e.g. ``test_auroc``.

    Returns
    -------
    pandas.DataFrame
        ``model, pretrain_task, strategy, source_size, target_size, n_pairs, mean, ci_low, ci_high``: the gains of
        :func:`paired_gains` averaged over seeds, with a t interval (NaN bounds for a single pair).
    """
    gains = paired_gains(results, metric)
    rows = []
    for key, g in gains.groupby(_KEYS, sort=False):
        values = pd.to_numeric(g["gain"], errors="coerce").to_numpy(float)
        mean, _, lo, hi = _interval(values, np.array([np.nan]), np.array([np.nan]))
        rows.append({**dict(zip(_KEYS, key, strict=True)), "n_pairs": int(np.isfinite(values).sum()), "mean": mean,
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=[*_KEYS, "n_pairs", "mean", "ci_low", "ci_high"])


def plot_gain_by_arm(results: pd.DataFrame, path: str | os.PathLike[str], metric: str = "test_auroc",
                     source_size: str | None = None) -> Path:
    """Paired gain over from-scratch training of every pretrained arm: a panel per model (rows) and target size
    (columns), pretraining tasks along x, a bar per strategy (mean over seeds, 95 % t interval), source size
    ``source_size`` (default: the largest)."""
    df = _prepared(results)
    source_size = source_size or _largest_source(df)
    table = gain_summary(results, metric)
    table = table[table["source_size"] == str(source_size)]
    models = [m for m in dict.fromkeys(df["model"]) if m in set(table["model"])] or ["(none)"]
    sizes = _sizes_in_order(table["target_size"]) or ["(none)"]
    tasks = [t for t in dict.fromkeys(df["pretrain_task"]) if t != "none" and t in set(table["pretrain_task"])]
    strategies = [s for s in _STRATEGY_STYLES if s in set(table["strategy"])]
    fig, axes = _grid(len(models) * len(sizes), ncols=len(sizes), nrows=len(models), size=(3.6, 3.0))
    width = 0.8 / max(1, len(strategies))
    hatches = {"finetune": "", "gradual_unfreeze": "..", "linear_probe": "//", "lp_ft": "xx"}
    for r, model in enumerate(models):
        for c, size in enumerate(sizes):
            ax = axes[r][c]
            sub = table[(table["model"] == model) & (table["target_size"] == size)]
            for k, strategy in enumerate(strategies):
                g = sub[sub["strategy"] == strategy].set_index("pretrain_task").reindex(tasks)
                x = np.arange(len(tasks)) + (k - (len(strategies) - 1) / 2) * width
                err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]).clip(min=0)
                ax.bar(x, g["mean"], width, yerr=np.nan_to_num(err), capsize=2, label=strategy,
                       color=[_TASK_COLORS.get(t, "0.5") for t in tasks], edgecolor="0.15", lw=0.5,
                       hatch=hatches.get(strategy, ""))
            ax.axhline(0.0, color="0.3", lw=0.8)
            if sub.empty:
                ax.text(0.5, 0.5, "no pretrained runs", transform=ax.transAxes, ha="center", color="0.4")
            ax.set_xticks(np.arange(len(tasks)), tasks, fontsize=8)
            ax.set_title(f"{model}, target {size}", fontsize=8)
            ax.set_ylabel(f"gain in {_label(metric)}", fontsize=8)
            ax.grid(alpha=0.3, axis="y")
        lows = [ax.get_ylim()[0] for ax in axes[r] if ax.has_data()]
        highs = [ax.get_ylim()[1] for ax in axes[r] if ax.has_data()]
        for ax in axes[r]:  # one y scale per model, so that target sizes compare by eye
            ax.set_ylim(min(lows, default=-0.05), max(highs, default=0.05))
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:  # the strategies differ by hatching; colours are the pretraining tasks, as in the other figures
        from matplotlib.patches import Patch

        proxies = [Patch(facecolor="white", edgecolor="0.15", hatch=hatches.get(lab, ""), label=lab)
                   for lab in labels]
        fig.legend(proxies, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels),
                   fontsize=7, title="strategy", title_fontsize=7)
    return save_figure(fig, path, f"Gain over training from scratch per pretrained arm ({source_size} source ECGs),\n"
                            "paired by seed: mean, 95 % t interval over seeds")


def _sizes_in_order(values: Any) -> list[str]:
    return sorted(set(values), key=lambda s: (s == "all", float(s) if s not in ("", "all") else 0.0))


def _cell(g: pd.DataFrame, metric: str) -> str:
    """One setting's runs: ``mean [t interval]`` for >= 3 seeds, ``mean (run, run)`` for 2, ``value [bootstrap
    interval]`` for 1."""
    values = pd.to_numeric(g[metric], errors="coerce").to_numpy(float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "—"
    if values.size == 2:
        return f"{values.mean():.3f} ({values[0]:.3f}, {values[1]:.3f})"
    mean, _, lo, hi = _interval(values, pd.to_numeric(g.get(f"{metric}_low"), errors="coerce").to_numpy(float),
                                pd.to_numeric(g.get(f"{metric}_high"), errors="coerce").to_numpy(float))
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{mean:.3f}"


def summary_markdown(results: pd.DataFrame, metric: str = "test_auroc") -> str:
    """Markdown tables of a grid, per model and source size: ``metric`` per target size (rows) and pretraining
    task / strategy (columns), then the mean gain over from-scratch training paired by seed.

    Cells: mean over seeds with a 95 % t interval (>= 3 seeds), the two runs' values (2 seeds), or the run's
    bootstrap interval (1 seed). Gains: mean of ``metric - metric from scratch`` over the seeds that both arms
    ran, with the number of pairs.

    Parameters
    ----------
    results : pandas.DataFrame
        ``results.csv`` of one or more grids (rows of several models may be concatenated).
    metric : str
        A metric column, e.g. ``test_auroc``.

    Returns
    -------
    str
        Markdown, one section per model and source size.
    """
    df = _prepared(results)
    gains = gain_summary(results, metric)
    lines: list[str] = []
    for model, mine in df.groupby("model", sort=False):
        sources = [s for s in _sizes_in_order(mine["source_size"]) if s] or [""]
        for source in sources:
            pairs = dict.fromkeys(zip(mine["pretrain_task"], mine["strategy"], strict=True))
            arms = [("none", "scratch")] + [key for key in pairs if key[0] != "none"]
            use = mine[(mine["pretrain_task"] == "none") | (mine["source_size"] == source)]
            title = f"### `{model}`" + (f", pretrained on {source} source ECGs" if source else "")
            header = ["target ECGs (positives)"] + [
                "from scratch" if task == "none" else f"{task} ({strategy})" for task, strategy in arms]
            lines += [title, "", f"{_label(metric)}, mean over seeds [95 % interval]:", "",
                      "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for size in _sizes_in_order(use["target_size"]):
                at = use[use["target_size"] == size]
                n = pd.to_numeric(at["n_target"], errors="coerce")
                pos = pd.to_numeric(at.get("n_target_pos", pd.Series(dtype=float)), errors="coerce")
                label = f"{int(n.mean()):,}" if n.notna().any() else size
                if pos.notna().any():
                    label += f" ({int(pos.min())}–{int(pos.max())})" if pos.min() != pos.max() else \
                        f" ({int(pos.min())})"
                cells = [_cell(at[(at["pretrain_task"] == t) & (at["strategy"] == st)], metric) for t, st in arms]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            mine_gains = gains[(gains["model"] == model) & (gains["source_size"] == source)]
            if not mine_gains.empty:
                lines += ["", "Gain over from scratch, paired by seed: mean (number of pairs):", "",
                          "| " + " | ".join(["target ECGs"] + header[2:]) + " |", "|" + "---|" * (len(header) - 1)]
                by_arm = {(r.pretrain_task, r.strategy, r.target_size): r for r in mine_gains.itertuples()}
                for size in _sizes_in_order(mine_gains["target_size"]):
                    rows = [by_arm.get((task, strategy, size)) for task, strategy in arms[1:]]
                    cells = [f"{r.mean:+.3f} ({r.n_pairs})" if r is not None and r.n_pairs else "—" for r in rows]
                    lines.append(f"| {size} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def plot_paired_differences(paired: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Forest plot of the paired differences of the primary metric (``paired.csv`` of
    :mod:`~ecglens.experiments.transfer_paired`): one panel per model and target task, one line per arm, target
    size and reference, the difference with its CI; filled markers: significant after Holm's correction."""
    rows = paired[paired["primary"].astype(bool)]
    panels = list(rows.groupby(["model", "target_task"], sort=False))
    fig, axes = _grid(max(1, len(panels)), ncols=2, size=(5.2, 0.28 * max(8, rows.groupby(
        ["model", "target_task"]).size().max() if len(rows) else 8)))
    colours = {ref: f"C{k}" for k, ref in enumerate(dict.fromkeys(rows["reference"]))}
    for ax, ((model, task), g) in zip(axes.flat, panels, strict=False):
        y = np.arange(len(g))
        for k, (_, r) in enumerate(g.iterrows()):
            ax.errorbar(r["diff"], y[k], xerr=[[r["diff"] - r["ci_low"]], [r["ci_high"] - r["diff"]]], fmt="o",
                        color=colours[r["reference"]], mfc=colours[r["reference"]] if r["significant"] else "white",
                        ms=4, lw=1)
        ax.set_yticks(y, [f"{r['arm']} @{r['target_size']} vs {r['reference']}" for _, r in g.iterrows()], fontsize=5)
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_title(f"{model}: {task} ({g['metric'].iloc[0].upper()})", fontsize=7)
        ax.set_xlabel("paired difference (seeds averaged per ECG)", fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return save_figure(fig, path, "Gains on the same test ECGs, with percentile CIs (filled: Holm-adjusted p < alpha)")


def plot_main_differences(paired: pd.DataFrame, runs: pd.DataFrame, path: str | os.PathLike[str],
                          references: Sequence[str] = ("scratch", "scratch_demographics")) -> Path:
    """The transfer experiment's main figure: every pretrained arm's paired difference [CI] in the primary
    metric from each reference, seed-averaged predictions (circles) beside the mean of single runs (squares).

    Parameters
    ----------
    paired, runs : pandas.DataFrame
        ``paired.csv`` and ``paired_runs.csv`` (:mod:`~ecglens.experiments.transfer_paired`).
    path : path-like
        The PNG to write.
    references : sequence of str
        One column of panels per reference present; one row per (model, target task, target size). The
        age + sex logistic regression is left out (its AUROC is far below every network's; see the tables).

    Returns
    -------
    Path
        ``path``. Filled markers: Holm-adjusted p < alpha.
    """
    keep = ~paired["arm"].isin(["demographics_logreg", "scratch_demographics", *references])
    main = paired[paired["primary"].astype(bool) & keep]
    single = runs[runs["primary"].astype(bool) & ~runs["arm"].isin(["demographics_logreg", "scratch_demographics",
                                                                     *references])]
    refs = [r for r in references if r in set(main["reference"])]
    cells = list(main.groupby(["model", "target_task", "target_size"], sort=False).groups)
    arms = sorted(set(main["arm"]), key=lambda a: (a.split("/")[-1], a))
    fig, axes = _grid(max(1, len(cells) * max(1, len(refs))), ncols=max(1, len(refs)),
                      size=(4.4, 0.75 + 0.24 * len(arms)), nrows=max(1, len(cells)))
    y = np.arange(len(arms))[::-1]
    level = float(main["ci_level"].iloc[0]) if len(main) else 0.95
    for i, cell in enumerate(cells):
        for j, ref in enumerate(refs):
            ax = axes[i, j]
            for table, dy, marker, colour, label in ((main, 0.15, "o", "C0", "seeds averaged per ECG"),
                                                     (single, -0.15, "s", "C1", "mean of single runs")):
                part = table[(table["reference"] == ref)
                             & (table[["model", "target_task", "target_size"]].astype(str)
                                == [str(c) for c in cell]).all(axis=1)].set_index("arm")
                for k, arm in enumerate(arms):
                    if arm not in part.index:
                        continue
                    r = part.loc[arm]
                    ax.errorbar(r["diff"], y[k] + dy, xerr=[[r["diff"] - r["ci_low"]], [r["ci_high"] - r["diff"]]],
                                fmt=marker, color=colour, mfc=colour if r["significant"] else "white", ms=4, lw=1,
                                label=label if k == 0 else None)
            ax.axvline(0.0, color="grey", lw=0.8)
            ax.set_yticks(y, arms, fontsize=6)
            ax.grid(axis="x", alpha=0.3)
            in_cell = (main[["model", "target_task", "target_size"]].astype(str) == [str(c) for c in cell]).all(axis=1)
            metric = str(main.loc[in_cell, "metric"].iloc[0]).upper()
            ax.set_title(f"{cell[1]}, {cell[2]} target ECGs: vs {ref}", fontsize=7)
            ax.set_xlabel(f"difference in {metric} (fold 9), {100 * level:.0f} % CI", fontsize=6)
            ax.tick_params(axis="x", labelsize=6)
            if i == 0 and j == 0:
                ax.legend(fontsize=5.5, loc="upper left")
    return save_figure(fig, path, "Pretrained arms against the networks trained from scratch, paired on the same "
                       f"test ECGs (filled: Holm-adjusted p < {1 - level:.2g})")


def write_transfer_figures(results: pd.DataFrame, out_dir: str | os.PathLike[str],
                           metrics: Sequence[str] = ("test_auroc", "test_auprc")) -> dict[str, Path]:
    """Write ``summary.csv``, ``summary.md`` (:func:`summary_markdown`, first metric) and, per metric, the four
    figures into ``out_dir`` (the two gain figures only when the grid has pretrained and from-scratch runs);
    returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    frames = [summarize(results, m).assign(metric=m) for m in metrics]
    paths["summary"] = out / "summary.csv"
    pd.concat(frames, ignore_index=True).to_csv(paths["summary"], index=False)
    paths["summary_md"] = out / "summary.md"
    paths["summary_md"].write_text(summary_markdown(results, metrics[0]), encoding="utf-8")
    both_arms = (results["pretrain_task"] != "none").any() and (results["pretrain_task"] == "none").any()
    for m in metrics:
        paths[f"{m}_vs_target_size"] = plot_target_size_curves(results, out / f"{m}_vs_target_size.png", m)
        if both_arms:
            paths[f"{m}_gain_vs_source_size"] = plot_gain_vs_source_size(
                results, out / f"{m}_gain_vs_source_size.png", m)
        paths[f"{m}_pretraining_tasks"] = plot_pretraining_tasks(results, out / f"{m}_pretraining_tasks.png",
                                                                 m)
        if both_arms:
            paths[f"{m}_gain_by_arm"] = plot_gain_by_arm(results, out / f"{m}_gain_by_arm.png", m)
    return paths
