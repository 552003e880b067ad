"""Survival analysis of ECG-derived quantities: Cox proportional hazards, C-index and Kaplan-Meier curves.

lifelines does the fitting; this module builds the design (scaling a continuous exposure per SD or per N
units, dummy-coding a categorical one against a reference level, adding adjustment covariates), fits
unadjusted and adjusted models on the *same* complete-case rows, and reports hazard ratios with confidence
intervals, the C-index, a proportional-hazards check per covariate, and Kaplan-Meier curves with numbers at
risk.

C-index sign convention
-----------------------
``lifelines.utils.concordance_index(durations, scores, events)`` expects ``scores`` where a HIGHER score means
a LONGER survival time. A risk score (partial hazard, predicted risk, ECG-age gap) is the opposite, so
:func:`c_index` passes ``-risk``. Passing a risk score unchanged silently gives ``1 - C`` (a known pitfall in
public code); a risk score that truly raises the hazard must give C > 0.5.

Examples
--------
>>> cox = CoxAnalysis("time", "event").fit(df, "ecg_age_gap", per=10, adjust=["age", "sex"])  # doctest: +SKIP
>>> print(cox.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._optional import require
from ..exceptions import ConfigError

__all__ = ["CoxAnalysis", "KaplanMeierPlot", "c_index", "format_p", "plot_km", "quantile_groups"]

#: what needs lifelines, for the missing-dependency message
_FEATURE = "survival analysis"


def c_index(durations: Any, risk: Any, events: Any) -> float:
    """Harrell's C for a RISK score (higher = shorter survival).

    Parameters
    ----------
    durations : array-like of float, shape (n,)
        Follow-up times.
    risk : array-like of float, shape (n,)
        Risk score: higher means a higher hazard (partial hazard, predicted risk, ECG-age gap).
    events : array-like of {0, 1}, shape (n,)
        1 = event observed, 0 = censored.

    Returns
    -------
    float
        Concordance in [0, 1]; 0.5 = no discrimination, > 0.5 = higher risk dies earlier.
    """
    concordance_index = require("lifelines.utils", _FEATURE).concordance_index

    return float(
        concordance_index(np.asarray(durations, float), -np.asarray(risk, float), np.asarray(events, float))
    )


def format_p(p: float) -> str:
    """p-value for tables: ``<0.001`` below 0.001, else 3 decimals (2 significant digits below 0.01)."""
    if not np.isfinite(p):
        return "NA"
    return "<0.001" if p < 0.001 else (f"{p:.2g}" if p < 0.01 else f"{p:.3f}")


def _md_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def quantile_groups(x: Any, q: int = 3) -> pd.Series:
    """Split a continuous quantity into ``q`` quantile groups labelled ``"Q1 (low)"`` ... ``"Qq (high)"``."""
    s = pd.Series(np.asarray(x, dtype=float))
    labels = [f"Q{i + 1}" + (" (low)" if i == 0 else " (high)" if i == q - 1 else "") for i in range(q)]
    return pd.qcut(s.rank(method="first"), q, labels=labels)


# ------------------------------------------------------------------------------------------------------------
# design


def _continuous_design(x: pd.Series, per: float | str | None) -> tuple[pd.DataFrame, float, str]:
    """Scaled exposure column; returns (design, divisor, contrast label)."""
    if not pd.api.types.is_numeric_dtype(x):
        raise ConfigError(
            f"exposure {x.name!r} is not numeric; pass categorical=True with a reference level."
        )
    if per is None or per == 1:
        scale, label = 1.0, "per unit"
    elif isinstance(per, str) and per.lower() == "sd":
        scale = float(x.std(ddof=1))
        label = f"per SD ({scale:.3g})"
    else:
        try:
            scale = float(per)
        except (TypeError, ValueError):
            raise ConfigError(f"per must be a number of units or 'sd', got {per!r}.") from None
        label = f"per {scale:g} units"
    if not np.isfinite(scale) or scale <= 0:
        raise ConfigError(
            f"cannot scale exposure {x.name!r} by {scale} (constant exposure?); check the column."
        )
    return pd.DataFrame({str(x.name): x.astype(float) / scale}), scale, label


def _levels(x: pd.Series) -> list[Any]:
    if isinstance(x.dtype, pd.CategoricalDtype):
        present = set(x.dropna().unique())
        return [c for c in x.cat.categories if c in present]
    return sorted(x.dropna().unique().tolist(), key=str)


def _same_level(level: Any, reference: Any) -> bool:
    """Level equality tolerant of CLI strings: ``"1"`` matches ``1`` and ``1.0``."""
    if level == reference or str(level) == str(reference):
        return True
    try:
        return float(level) == float(reference)
    except (TypeError, ValueError):
        return False


def _dummies(x: pd.Series, reference: Any) -> tuple[pd.DataFrame, Any, list[str]]:
    """0/1 columns ``name[level]`` for each level but the reference."""
    levels = _levels(x)
    if len(levels) < 2:
        raise ConfigError(
            f"{x.name!r} has {len(levels)} level(s) {levels}; a categorical exposure needs >= 2."
        )
    if reference is None:
        reference = levels[0] if isinstance(x.dtype, pd.CategoricalDtype) else x.value_counts().idxmax()
    matches = [lv for lv in levels if _same_level(lv, reference)]
    if not matches:
        raise ConfigError(f"reference level {reference!r} not found in {x.name!r}; its levels are {levels}.")
    reference = matches[0]
    cols = {f"{x.name}[{lv}]": (x == lv).astype(float) for lv in levels if lv != reference}
    return (
        pd.DataFrame(cols, index=x.index),
        reference,
        [f"{lv} vs {reference}" for lv in levels if lv != reference],
    )


def _covariate_design(df: pd.DataFrame, adjust: Sequence[str]) -> pd.DataFrame:
    parts = []
    for col in adjust:
        x = df[col]
        if pd.api.types.is_numeric_dtype(x) and not isinstance(x.dtype, pd.CategoricalDtype):
            parts.append(x.astype(float).rename(col).to_frame())
        else:
            levels = _levels(x)
            parts.append(_dummies(x, levels[0])[0] if len(levels) > 1 else pd.DataFrame(index=df.index))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=df.index)


@dataclass
class CoxAnalysis:
    """Cox proportional-hazards analysis of one ECG-derived exposure, unadjusted and adjusted.

    Parameters
    ----------
    duration_col : str
        Follow-up time column (any unit; hazard ratios do not depend on it).
    event_col : str
        Event indicator column (1 = event, 0 = censored).
    alpha : float
        1 - confidence level of the intervals (0.05 -> 95 % CI).
    penalizer : float
        Ridge penalty passed to lifelines (0 = ordinary partial likelihood).
    ph_transform : str
        Time transform of the Schoenfeld-residual test (lifelines ``proportional_hazard_test``): "rank", "km",
        "identity" or "log".

    Attributes (after :meth:`fit`)
    -------------------------------
    models_ : dict str -> lifelines.CoxPHFitter
        ``"unadjusted"`` and, with covariates, ``"adjusted"``.
    summary_ : pd.DataFrame
        One row per model and term: ``model, term, contrast, is_exposure, hr, ci_lower, ci_upper, p, coef, se,
        n, n_events``.
    c_index_ : dict str -> float
        Harrell's C of each model's partial hazard (sign handled, see module docstring).
    ph_test_ : pd.DataFrame
        ``model, term, statistic, p, violated`` (p < alpha) per covariate.
    data_ : pd.DataFrame
        The complete-case rows used (durations, events, exposure as given, design columns).
    n_, n_events_, n_dropped_ : int
        Rows used, events among them, rows dropped for missing values.
    exposure_terms_ : list of str
        Design columns of the exposure.
    """

    duration_col: str = "time"
    event_col: str = "event"
    alpha: float = 0.05
    penalizer: float = 0.0
    ph_transform: str = "rank"

    def fit(
        self,
        df: pd.DataFrame,
        exposure: str,
        *,
        per: float | str | None = None,
        categorical: bool | None = None,
        reference: Any = None,
        adjust: Sequence[str] = (),
    ) -> CoxAnalysis:
        """Fit the unadjusted (exposure only) and, when ``adjust`` is given, the adjusted model.

        Parameters
        ----------
        df : pd.DataFrame
            One row per patient with the duration, event, exposure and covariate columns.
        exposure : str
            The ECG-derived quantity (e.g. ``"ecg_age_gap"``, ``"hb_pred"``, ``"ecg_age_gap_category"``).
        per : float or "sd", optional
            Continuous exposure only: hazard ratio per this many units (``10`` -> per 10 years) or per
            standard deviation (``"sd"``, computed on the rows used). Default per 1 unit.
        categorical : bool, optional
            Treat the exposure as categorical; default: yes for non-numeric / category dtype.
        reference : optional
            Reference level of a categorical exposure (default: first category of a category dtype, else the
            most frequent level).
        adjust : sequence of str
            Covariates of the adjusted model (numeric as is; non-numeric dummy-coded against their first
            level).

        Returns
        -------
        CoxAnalysis
            self, fitted.
        """
        CoxPHFitter = require("lifelines", _FEATURE).CoxPHFitter

        data = self._complete_cases(df, exposure, adjust)
        x = data[exposure]
        if categorical is None:
            categorical = isinstance(x.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(x)
        if categorical:
            design, self.reference_, contrasts = _dummies(x, reference)
            self.scale_ = None
        else:
            design, self.scale_, label = _continuous_design(x, per)
            self.reference_, contrasts = None, [label]
        self.exposure_, self.exposure_terms_ = exposure, list(design.columns)
        self.contrasts_ = dict(zip(self.exposure_terms_, contrasts, strict=True))
        cov = _covariate_design(data, adjust)
        self.adjust_ = list(adjust)
        base = data[[self.duration_col, self.event_col]].astype(float)
        designs = {"unadjusted": pd.concat([base, design], axis=1)}
        if len(adjust):
            designs["adjusted"] = pd.concat([base, design, cov], axis=1)
        self.models_ = {
            name: CoxPHFitter(alpha=self.alpha, penalizer=self.penalizer).fit(
                d, self.duration_col, self.event_col
            )
            for name, d in designs.items()
        }
        self.data_ = pd.concat([data, design.add_prefix("_design_")], axis=1)
        self._designs = designs
        self.summary_ = pd.concat([self._model_summary(n) for n in self.models_], ignore_index=True)
        self.c_index_ = {n: self._c_index(n) for n in self.models_}
        self.ph_test_ = pd.concat([self._ph_test(n) for n in self.models_], ignore_index=True)
        return self

    def _complete_cases(self, df: pd.DataFrame, exposure: str, adjust: Sequence[str]) -> pd.DataFrame:
        cols = [self.duration_col, self.event_col, exposure, *adjust]
        missing = [c for c in dict.fromkeys(cols) if c not in df.columns]
        if missing:
            raise ConfigError(
                f"columns {missing} not in the table (it has {list(df.columns)[:20]}); check names."
            )
        data = df[list(dict.fromkeys(cols))]
        keep = data.notna().all(axis=1)
        self.n_dropped_ = int((~keep).sum())
        data = data.loc[keep].copy()
        self.n_, self.n_events_ = len(data), int(data[self.event_col].astype(float).sum())
        if self.n_events_ == 0:
            raise ConfigError(
                f"no events among the {self.n_} complete rows; a Cox model needs events ({self.event_col}=1)."
            )
        return data

    def _model_summary(self, name: str) -> pd.DataFrame:
        cph = self.models_[name]
        ci = np.exp(cph.confidence_intervals_.to_numpy())
        terms = list(cph.params_.index)
        return pd.DataFrame(
            {
                "model": name,
                "term": terms,
                "contrast": [
                    self.contrasts_.get(t, "per unit" if t in self.adjust_ else "vs reference") for t in terms
                ],
                "is_exposure": [t in self.exposure_terms_ for t in terms],
                "hr": np.exp(cph.params_.to_numpy()),
                "ci_lower": ci[:, 0],
                "ci_upper": ci[:, 1],
                "p": cph.summary["p"].to_numpy(),
                "coef": cph.params_.to_numpy(),
                "se": cph.standard_errors_.to_numpy(),
                "n": self.n_,
                "n_events": self.n_events_,
            }
        )

    def _c_index(self, name: str) -> float:
        d = self._designs[name]
        risk = self.models_[name].predict_partial_hazard(d)
        return c_index(d[self.duration_col], risk, d[self.event_col])

    def _ph_test(self, name: str) -> pd.DataFrame:
        proportional_hazard_test = require("lifelines.statistics", _FEATURE).proportional_hazard_test

        res = proportional_hazard_test(
            self.models_[name], self._designs[name], time_transform=self.ph_transform
        )
        s = res.summary
        return pd.DataFrame(
            {
                "model": name,
                "term": [str(i) for i in s.index],
                "statistic": s["test_statistic"].to_numpy(),
                "p": s["p"].to_numpy(),
                "violated": s["p"].to_numpy() < self.alpha,
            }
        )

    # --------------------------------------------------------------------------------------------------------
    # output

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise ConfigError("this CoxAnalysis is not fitted yet; call .fit(df, exposure, ...) first.")

    def exposure_summary(self) -> pd.DataFrame:
        """The exposure rows of :attr:`summary_` (one per model and contrast)."""
        self._check_fitted()
        return self.summary_[self.summary_["is_exposure"]].reset_index(drop=True)

    def to_markdown(self, exposure_only: bool = False) -> str:
        """Markdown: hazard ratios with CI and p, C-index per model, and the proportional-hazards check."""
        self._check_fitted()
        level = round(100 * (1 - self.alpha))
        rows = self.exposure_summary() if exposure_only else self.summary_
        table = pd.DataFrame(
            {
                "model": rows["model"],
                "term": rows["term"],
                "contrast": rows["contrast"],
                "HR": rows["hr"].map("{:.2f}".format),
                f"{level}% CI": [
                    f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(rows["ci_lower"], rows["ci_upper"], strict=True)
                ],
                "p": rows["p"].map(format_p),
            }
        )
        ph = self.ph_test_.assign(
            p=self.ph_test_["p"].map(format_p),
            statistic=self.ph_test_["statistic"].map("{:.2f}".format),
            violated=self.ph_test_["violated"].map({True: "yes", False: "no"}),
        )
        c_line = ", ".join(f"{k} {v:.3f}" for k, v in self.c_index_.items())
        counts = (
            f"n = {self.n_}, events = {self.n_events_}, rows dropped for missing values = {self.n_dropped_}"
        )
        adjusted = f"; adjusted for {', '.join(self.adjust_)}" if self.adjust_ else ""
        ph_title = (
            f"Proportional-hazards check (scaled Schoenfeld residuals, {self.ph_transform} time; "
            f"violated = p < {self.alpha}):"
        )
        return "\n".join(
            [
                f"### Cox proportional hazards: {self.exposure_}",
                "",
                counts + adjusted,
                "",
                _md_table(table),
                "",
                f"C-index (Harrell): {c_line}",
                "",
                ph_title,
                "",
                _md_table(ph[["model", "term", "statistic", "p", "violated"]]),
                "",
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (numbers as floats, tables as lists of records)."""
        self._check_fitted()
        return {
            "exposure": self.exposure_,
            "reference": None if self.reference_ is None else str(self.reference_),
            "scale": self.scale_,
            "adjust": self.adjust_,
            "n": self.n_,
            "n_events": self.n_events_,
            "n_dropped": self.n_dropped_,
            "alpha": self.alpha,
            "c_index": self.c_index_,
            "summary": json.loads(self.summary_.to_json(orient="records")),
            "ph_test": json.loads(self.ph_test_.to_json(orient="records")),
        }

    def plot_km(self, path: str | Path, *, groups: int = 3, **kwargs: Any) -> KaplanMeierPlot:
        """Kaplan-Meier curves by exposure category (or by ``groups`` quantile groups if continuous)."""
        self._check_fitted()
        d = self.data_
        if self.scale_ is None:
            g = d[self.exposure_]
            order = [self.reference_, *[lv for lv in _levels(g) if lv != self.reference_]]
        else:
            g = quantile_groups(d[self.exposure_], groups).set_axis(d.index)
            order = list(g.cat.categories)
        frame = pd.DataFrame({"time": d[self.duration_col], "event": d[self.event_col], "group": g})
        kwargs.setdefault("title", f"Kaplan-Meier by {self.exposure_}")
        return plot_km(frame, "time", "event", "group", path, order=order, **kwargs)


# ------------------------------------------------------------------------------------------------------------
# Kaplan-Meier


@dataclass(frozen=True)
class KaplanMeierPlot:
    """A saved Kaplan-Meier figure.

    Attributes
    ----------
    path : Path
        The PNG written.
    at_risk : pd.DataFrame
        Numbers at risk, one row per group, one column per tick time (as printed below the plot).
    logrank_p : float
        p of the (multivariate) log-rank test across groups.
    """

    path: Path
    at_risk: pd.DataFrame
    logrank_p: float


def _at_risk_table(fitters: dict[str, Any], ticks: Sequence[float]) -> pd.DataFrame:
    """Numbers at risk just after each tick (lifelines' default: at risk minus removed up to the tick)."""
    rows = {}
    for name, f in fitters.items():
        table = f.event_table
        remaining = table["at_risk"] - table["removed"]
        rows[name] = [
            int(table["at_risk"].iloc[0]) if t < table.index[0] else int(remaining.loc[:t].iloc[-1])
            for t in ticks
        ]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[float(t) for t in ticks])


def plot_km(
    df: pd.DataFrame,
    duration_col: str,
    event_col: str,
    group_col: str,
    path: str | Path,
    *,
    order: Sequence[Any] | None = None,
    title: str | None = None,
    xlabel: str = "time since ECG",
    ylabel: str = "survival probability",
    at_risk: bool = True,
    ci: bool = True,
) -> KaplanMeierPlot:
    """Kaplan-Meier curves per group with the numbers at risk printed below the axes; saved as PNG.

    Parameters
    ----------
    df : pd.DataFrame
        One row per patient.
    duration_col, event_col, group_col : str
        Follow-up time, event indicator (1 = event) and group label columns. Rows with missing values are
        skipped.
    path : path
        Output PNG.
    order : sequence, optional
        Group order (legend and at-risk rows); default sorted labels.
    title, xlabel, ylabel : str
        Labels.
    at_risk : bool
        Add the at-risk table (lifelines ``add_at_risk_counts``).
    ci : bool
        Draw the pointwise confidence bands.

    Returns
    -------
    KaplanMeierPlot
    """
    import matplotlib.pyplot as plt
    KaplanMeierFitter = require("lifelines", _FEATURE).KaplanMeierFitter
    add_at_risk_counts = require("lifelines.plotting", _FEATURE).add_at_risk_counts
    multivariate_logrank_test = require("lifelines.statistics", _FEATURE).multivariate_logrank_test

    d = df[[duration_col, event_col, group_col]].dropna()
    groups = list(order) if order is not None else sorted(d[group_col].unique().tolist(), key=str)
    groups = [g for g in groups if (d[group_col] == g).any()]
    if not groups:
        raise ConfigError(f"no rows with a {group_col!r} value to plot; check the group column.")
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    fitters = {}
    for g in groups:
        sub = d[d[group_col] == g]
        fitters[str(g)] = KaplanMeierFitter(label=f"{g} (n={len(sub)})").fit(
            sub[duration_col], sub[event_col]
        )
        fitters[str(g)].plot_survival_function(ax=ax, ci_show=ci)
    p = (
        float(multivariate_logrank_test(d[duration_col], d[group_col], d[event_col]).p_value)
        if len(groups) > 1
        else np.nan
    )
    ax.set(
        title=(title or f"Kaplan-Meier by {group_col}")
        + (f"  (log-rank p {format_p(p)})" if len(groups) > 1 else ""),
        xlabel=xlabel,
        ylabel=ylabel,
        ylim=(0, 1.02),
    )
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    if at_risk:
        add_at_risk_counts(
            *fitters.values(), ax=ax, fig=fig, rows_to_show=["At risk"], xticks=ticks, labels=list(fitters)
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return KaplanMeierPlot(path=path, at_risk=_at_risk_table(fitters, ticks), logrank_p=p)
