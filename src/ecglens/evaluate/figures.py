"""Evaluation figures (matplotlib, Agg canvas, no pyplot state).

Every function returns a :class:`matplotlib.figure.Figure`; save it with ``fig.savefig(path)``. Functions that
take ``ax=`` draw into an existing axes instead (e.g. several ROC curves in one panel) and return its figure.

* :func:`plot_scatter` — predicted vs true with the identity line (regression).
* :func:`plot_bland_altman` — difference vs mean with the mean difference and the 95 % limits of agreement.
* :func:`plot_roc` — ROC curve with the AUROC in the legend.
* :func:`plot_calibration` — reliability diagram (``sklearn.calibration.calibration_curve``).
* :func:`plot_decade_bias` — bias (mean error) per age decade as bars with confidence intervals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from ..artifact.calibration import COVERAGE_LEVELS, coverage
from . import metrics as M

__all__ = ["new_figure", "plot_bland_altman", "plot_calibration", "plot_decade_bias", "plot_roc", "plot_scatter"]

_POINT_COLOR = "#1f4e79"


def new_figure(figsize: tuple[float, float] = (5.0, 5.0), dpi: float = 120.0) -> tuple[Figure, Axes]:
    """A figure with one axes on an Agg canvas (headless; freed when dropped)."""
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(111)


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    return (ax.figure, ax) if ax is not None else new_figure(figsize)


def _alpha(n: int) -> float:
    """Point transparency falling with the number of points (dense clouds stay readable)."""
    return float(np.clip(30.0 / np.sqrt(max(n, 1)), 0.08, 0.8))


def plot_scatter(y_true: Any, y_pred: Any, label: str = "value", units: str = "", title: str | None = None,
                 ax: Axes | None = None) -> Figure:
    """Predicted against true values with the identity line, MAE and Pearson r in the legend.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (n,)
        True and predicted values (NaN pairs dropped).
    label, units : str
        Name of the quantity and its units for the axis labels (e.g. ``"age"``, ``"years"``).
    title : str, optional
        Axes title.
    ax : Axes, optional
        Draw into this axes.
    """
    t, p = M._pairs(y_true, y_pred)
    fig, ax = _axes(ax, (5.0, 5.0))
    unit = f" ({units})" if units else ""
    ax.scatter(t, p, s=6, alpha=_alpha(t.size), color=_POINT_COLOR, edgecolors="none",
               label=f"n = {t.size}, MAE = {M.mae(t, p):.2f}, r = {M.pearson_r(t, p):.2f}")
    if t.size:
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--", label="identity")
    ax.set_xlabel(f"true {label}{unit}")
    ax.set_ylabel(f"predicted {label}{unit}")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or f"Predicted vs true {label}")
    return fig


def plot_bland_altman(y_true: Any, y_pred: Any, label: str = "value", units: str = "", title: str | None = None,
                      ax: Axes | None = None) -> Figure:
    """Bland-Altman plot: ``pred - true`` against ``(pred + true) / 2``, mean difference and mean +- 1.96 SD.

    Parameters are those of :func:`plot_scatter`.
    """
    t, p = M._pairs(y_true, y_pred)
    fig, ax = _axes(ax, (6.0, 4.5))
    unit = f" ({units})" if units else ""
    diff, mean = p - t, (p + t) / 2
    ax.scatter(mean, diff, s=6, alpha=_alpha(t.size), color=_POINT_COLOR, edgecolors="none")
    if t.size >= 2:
        md, sd = float(diff.mean()), float(diff.std(ddof=1))
        lines = [(md, f"mean {md:+.2f}", "-"), (md + 1.96 * sd, f"+1.96 SD {md + 1.96 * sd:+.2f}", "--"),
                 (md - 1.96 * sd, f"-1.96 SD {md - 1.96 * sd:+.2f}", "--")]
        for y, text, style in lines:
            ax.axhline(y, color="#b22222", lw=1, ls=style)
            ax.annotate(text, xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                        textcoords="offset points", ha="right", fontsize=8, color="#b22222")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel(f"mean of predicted and true {label}{unit}")
    ax.set_ylabel(f"predicted - true {label}{unit}")
    ax.set_title(title or f"Bland-Altman: {label} (n = {t.size})")
    return fig


def plot_roc(y_true: Any, y_score: Any, label: str | None = None, title: str | None = None,
             ax: Axes | None = None) -> Figure:
    """ROC curve with the AUROC in the legend; call again with ``ax=`` to add more curves.

    Parameters
    ----------
    y_true, y_score : array-like, shape (n,)
        Truths (0/1) and scores of the positive class.
    label : str, optional
        Curve name in the legend.
    title : str, optional
        Axes title.
    ax : Axes, optional
        Draw into this axes (several curves in one panel).
    """
    t, s = M._binary_pairs(y_true, y_score)
    fig, ax = _axes(ax, (5.0, 5.0))
    new = not ax.lines  # first curve in this axes: draw the chance line and the labels
    name = f"{label} " if label else ""
    if M._both_classes(t):
        fpr, tpr, _ = roc_curve(t, s)
        ax.plot(fpr, tpr, lw=1.5, label=f"{name}AUROC = {M.auroc(t, s):.3f} (n = {t.size})")
    else:
        ax.plot([], [], label=f"{name}AUROC undefined ({int(t.sum())} positive of {t.size})")
    if new:
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("1 - specificity (false positive rate)")
        ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_title(title or ax.get_title() or "ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_calibration(y_true: Any, y_prob: Any, n_bins: int = 10, label: str | None = None,
                     title: str | None = None, ax: Axes | None = None) -> Figure:
    """Reliability diagram: observed fraction of positives against mean predicted probability per bin.

    Parameters
    ----------
    y_true, y_prob : array-like, shape (n,)
        Truths (0/1) and predicted probabilities.
    n_bins : int
        Equal-width probability bins.
    label, title, ax
        As in :func:`plot_roc`.
    """
    cal = M.calibration(y_true, y_prob, n_bins=n_bins)
    fig, ax = _axes(ax, (5.0, 5.0))
    new = not ax.lines
    name = f"{label} " if label else ""
    ax.plot(cal["prob_pred"], cal["prob_true"], marker="o", ms=4, lw=1.5,
            label=f"{name}Brier = {M.brier(y_true, y_prob):.3f}, ECE = {cal['ece']:.3f}")
    if new:
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed fraction of positives")
    ax.set_title(title or ax.get_title() or f"Calibration (n = {cal['n']})")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_decade_bias(table: pd.DataFrame | list[dict[str, Any]], value: str = "bias", units: str = "years",
                     title: str | None = None, ax: Axes | None = None) -> Figure:
    """Bar chart of a per-decade error (default the bias) with CI error bars and the count under each decade.

    Parameters
    ----------
    table : DataFrame or list of dict
        Rows with ``decade``, ``n``, ``value`` and optionally ``{value}_ci_low`` / ``{value}_ci_high``
        (:func:`ecglens.evaluate.metrics.by_decade`, or the runner's ``by_decade`` entries).
    value : str
        Column to plot (``"bias"`` or ``"mae"``).
    units : str
        Units of the y axis.
    title, ax
        As in :func:`plot_roc`.
    """
    frame = pd.DataFrame(table)
    fig, ax = _axes(ax, (6.5, 4.0))
    if frame.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return fig
    x = np.arange(len(frame))
    vals = pd.to_numeric(frame[value], errors="coerce").to_numpy(dtype=float)
    colors = np.where(vals >= 0, "#c0504d", "#4f81bd")
    ax.bar(x, vals, color=colors, width=0.7)
    lo_col, hi_col = f"{value}_ci_low", f"{value}_ci_high"
    if lo_col in frame and hi_col in frame:
        lo = np.clip(vals - frame[lo_col].to_numpy(dtype=float), 0, None)
        hi = np.clip(frame[hi_col].to_numpy(dtype=float) - vals, 0, None)
        ax.errorbar(x, vals, yerr=np.nan_to_num(np.vstack([lo, hi])), fmt="none", ecolor="black", capsize=3, lw=1)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [f"{d}\nn={int(n)}" for d, n in zip(frame["decade"], frame["n"], strict=True)], fontsize=8)
    ax.set_xlabel("true age (decade)")
    ax.set_ylabel(f"{value} ({units})" if units else value)
    ax.set_title(title or f"{value.upper() if value == 'mae' else value.capitalize()} per age decade")
    return fig


def plot_coverage(y_true: Any, y_pred: Any, y_std: Any, y_std_raw: Any = None, label: str = "age",
                  title: str | None = None, ax: Axes | None = None) -> Figure:
    """Calibration plot of a predicted standard deviation: observed vs nominal Gaussian coverage.

    For ``z`` from 0 to 3 SD, the share of truths within ``z * y_std`` of the prediction (y) against the share a
    Gaussian with that SD would hold (x); on the diagonal the SD is calibrated, below it too small.

    Parameters
    ----------
    y_true, y_pred, y_std : array-like, shape (n,)
        Truth, prediction and predicted SD in the same units (e.g. years).
    y_std_raw : array-like, shape (n,), optional
        The model's SD before recalibration, drawn as a second curve.
    label, title, ax
        As in :func:`plot_roc`.
    """
    from math import erf, sqrt

    zs = np.linspace(0.0, 3.0, 61)
    nominal = np.array([erf(z / sqrt(2)) for z in zs])
    fig, ax = _axes(ax, (5.0, 5.0))
    curves = [("calibrated" if y_std_raw is not None else "predicted", y_std, "#1f4e79")]
    if y_std_raw is not None:
        curves.append(("raw (model's own)", y_std_raw, "#c0504d"))
    for name, std, color in curves:
        observed = np.array([coverage(y_true, y_pred, std, z) for z in zs])
        marks = ", ".join(f"{100 * coverage(y_true, y_pred, std, z):.1f} % at {z:g} SD" for z in COVERAGE_LEVELS)
        ax.plot(nominal, observed, color=color, lw=1.6, label=f"{name}: {marks}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect calibration")
    for nominal_level in COVERAGE_LEVELS.values():
        ax.axvline(nominal_level, color="grey", lw=0.5, ls=":")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal coverage (Gaussian with the predicted SD)")
    ax.set_ylabel(f"observed share of true {label} inside the interval")
    ax.set_title(title or f"Coverage of the predicted SD of {label}")
    ax.legend(loc="upper left", fontsize=7)
    return fig


def plot_gap_by_decade(rows: list[dict[str, Any]], units: str = "years", title: str | None = None,
                       ax: Axes | None = None) -> Figure:
    """Mean ECG-age gap per decade of chronological age, raw and bias-corrected, side by side.

    Parameters
    ----------
    rows : list of dict
        ``decade``, ``n``, ``gap`` and ``gap_corrected`` (means, in ``units``), e.g. the runner's
        ``age_gap_by_decade``.
    """
    frame = pd.DataFrame(rows)
    fig, ax = _axes(ax, (6.5, 4.0))
    if frame.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return fig
    x = np.arange(len(frame))
    ax.bar(x - 0.2, frame["gap"].astype(float), width=0.4, color="#c0504d", label="raw gap (predicted - true)")
    if "gap_corrected" in frame:
        ax.bar(x + 0.2, frame["gap_corrected"].astype(float), width=0.4, color="#1f4e79",
               label="corrected for age (residual of the age-bias line)")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [f"{d}\nn={int(n)}" for d, n in zip(frame["decade"], frame["n"], strict=True)], fontsize=8)
    ax.set_xlabel("true age (decade)")
    ax.set_ylabel(f"mean gap ({units})")
    ax.set_title(title or "ECG-age gap per decade, before and after bias correction")
    ax.legend(fontsize=8)
    return fig
