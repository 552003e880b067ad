"""How well calibrated a model's uncertainty and probabilities are, and the ECG-age gap per decade.

Used by :func:`ecglens.evaluate.runner.evaluate_predictions`: for a regression output with a predicted standard
deviation (``age`` with ``age_std``) the coverage at 1 and 1.96 SD (raw and recalibrated when both are given);
for ``age`` the mean gap per decade of the true age before and after the bias correction stored in the
checkpoint (:class:`~ecglens.artifact.calibration.Calibration`); and whether the evaluated records are the ones
the calibration was fitted on (then the calibrated numbers are in-sample and say so).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..artifact.calibration import Calibration, corrected_gap, gaussian_coverage
from . import metrics as M

__all__ = ["calibration_provenance", "gap_by_decade", "in_sample_note", "uncertainty_summary"]


def uncertainty_summary(y_true: Any, y_pred: Any, y_std: Any, y_std_raw: Any = None) -> dict[str, Any]:
    """Coverage of a predicted SD at :data:`~ecglens.artifact.calibration.COVERAGE_LEVELS`.

    Returns
    -------
    dict
        ``coverage`` (of ``y_std``: ``{"1": {z, nominal, observed}, "1.96": ...}``), ``coverage_raw`` (of
        ``y_std_raw`` when given), ``mean_std`` (years, or the output's units) and ``n``.
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    s = np.asarray(y_std, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(p) & np.isfinite(s)
    out: dict[str, Any] = {"n": int(ok.sum()), "mean_std": float(np.mean(s[ok])) if ok.any() else float("nan"),
                           "coverage": gaussian_coverage(t, p, s)}
    if y_std_raw is not None:
        out["coverage_raw"] = gaussian_coverage(t, p, y_std_raw)
    return out


def gap_by_decade(age_true: Any, age_pred: Any, calibration: Calibration | None) -> list[dict[str, Any]]:
    """Mean raw ECG-age gap (predicted - true, years) per decade of the true age, and the corrected gap.

    Returns
    -------
    list of dict
        ``decade``, ``n``, ``gap`` and, when ``calibration`` has an age bias correction, ``gap_corrected``.
    """
    t = np.asarray(age_true, dtype=np.float64)
    p = np.asarray(age_pred, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    decades = M.age_decade(t)
    corrected = (corrected_gap(p, t, calibration.age_slope, calibration.age_intercept)
                 if calibration is not None and calibration.has_age_bias else None)
    rows = []
    for decade in M.by_decade(t, p)["decade"]:
        mask = decades == decade
        row = {"decade": decade, "n": int(mask.sum()), "gap": float(np.mean(p[mask] - t[mask]))}
        if corrected is not None:
            row["gap_corrected"] = float(np.mean(corrected[mask]))
        rows.append(row)
    return rows


def _as_set(folds: Any) -> set[int] | None:
    """Folds as a set of ints (``9``, ``"9"``, ``"1-8,9"``, ``[8, 9]``); ``None`` when not fold numbers."""
    if folds is None:
        return None
    parts = str(folds).split(",") if isinstance(folds, str) else list(folds) if isinstance(folds, (list, tuple)) \
        else [folds]
    out: set[int] = set()
    try:
        for part in parts:
            lo, _, hi = str(part).strip().partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        return None
    return out


def in_sample_note(calibration: Calibration | None, folds: Any) -> str | None:
    """A warning when the evaluated ``folds`` overlap those the calibration was fitted on (else ``None``)."""
    if calibration is None:
        return None
    fitted, evaluated = _as_set(calibration.folds), _as_set(folds)
    if fitted is None or evaluated is None or not fitted & evaluated:
        return None
    return (f"the calibration (age_std scale, temperatures, age bias line) was fitted on folds {sorted(fitted)}, "
            f"which overlap the evaluated folds {sorted(evaluated)}: calibrated coverage, ECE and corrected gaps "
            "are IN-SAMPLE here (near nominal by construction); check them on other data.")


def calibration_provenance(calibration: Calibration | None) -> dict[str, Any] | None:
    """The stored calibration as a plain dict for ``metrics.json`` (``None`` when the checkpoint has none)."""
    return None if calibration is None else calibration.to_dict()


#: metric key in the evaluation -> short name stored in a checkpoint (``age_pearson_r`` -> ``age_r``)
_SHORT = {"pearson_r": "r", "r2": "r2"}


#: What a checkpoint's stored metrics say about its training run; kept when new metrics replace the others.
TRAINING_KEYS = ("best_epoch", "epochs_run")


def training_provenance(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The :data:`TRAINING_KEYS` entries of a checkpoint's stored ``metrics`` (``{}`` when there are none)."""
    return {key: metrics[key] for key in TRAINING_KEYS if key in (metrics or {})}


def checkpoint_metrics(results: dict[str, Any], split: str = "val") -> dict[str, Any]:
    """The flat metrics a checkpoint stores, from :func:`~ecglens.evaluate.runner.evaluate_predictions` results.

    Names: ``<truth>_<metric>`` on all records (``age_mae``, ``age_r``, ``sex_auroc``, ``sex_accuracy``),
    ``<truth>_<metric>_ci`` ``[low, high]``; ``<output>_ece`` (and ``_ece_raw``); ``<output>_std_coverage_1sd``,
    ``..._1.96sd`` (and ``_raw``); plus ``split``, ``folds``, ``n`` and ``ci`` saying where they were measured.
    """
    prov = results.get("provenance") or {}
    out: dict[str, Any] = {"split": split, "folds": prov.get("folds"), "n": results.get("n_records"),
                           "ci": results.get("ci")}
    for output, entry in results.get("outputs", {}).items():
        column = entry["target"]
        for name, m in entry["subsets"]["all"]["metrics"].items():
            key = f"{column}_{_SHORT.get(name, name)}"
            out[key] = m["value"]
            out[f"{key}_ci"] = [m["ci_low"], m["ci_high"]]
        for key in ("ece", "ece_raw"):
            if key in entry:
                out[f"{output}_{key}"] = entry[key]
        unc = entry.get("uncertainty") or {}
        for key, suffix in (("coverage", ""), ("coverage_raw", "_raw")):
            for level in (unc.get(key) or {}).values():
                out[f"{output}_std_coverage_{level['z']:g}sd{suffix}"] = level["observed"]
    return out
