"""Calibrated and derived columns of a predictions table (the checkpoint's stored calibration applied).

:func:`apply_calibration` is the one place where a checkpoint's :class:`~ecglens.artifact.calibration.Calibration`
meets a predictions table. Convention (the same everywhere: ``predict``, ``evaluate``, the report, the server):

* ``age`` is the model's predicted age, unchanged;
* ``age_std`` is the **calibrated** predicted standard deviation (years), the model's own in ``age_std_raw``;
* ``p_female`` (and every temperature-scaled ``p_*``) is the **calibrated** probability, the model's own in
  ``p_female_raw``;
* with the recorded age (column ``age_recorded``, years): ``age_gap = age - age_recorded`` and, when the
  checkpoint has an age bias correction, ``age_gap_corrected`` (the raw gap minus the gap expected at that
  age; docs/ecg_age.md);
* ``sex_call``: ``"female"`` / ``"male"`` outside :data:`~ecglens.artifact.calibration.UNCERTAIN_BAND`,
  ``"uncertain"`` inside it.

A checkpoint without a calibration gets only the derived columns (``age_gap``, ``sex_call``). Applying it twice
changes nothing (a table holding ``age_std_raw`` is already calibrated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..artifact.calibration import Calibration, age_gaps, binary_label

__all__ = ["RECORDED_AGE_COLUMN", "apply_calibration", "calibrate_record", "calibration_of"]

#: column of the chronological age (years) in a predictions table
RECORDED_AGE_COLUMN = "age_recorded"


def calibration_of(checkpoint: Any) -> Calibration | None:
    """The :class:`Calibration` of a checkpoint, a predictor (its ``.checkpoint``) or ``None``.

    A checkpoint whose ``calibration`` attribute is unset but whose stored description has one (the weightless
    checkpoint of an exported ``.onnx`` file) gets it from ``meta["calibration"]``.
    """
    if checkpoint is None or isinstance(checkpoint, Calibration):
        return checkpoint
    holder = checkpoint.checkpoint if hasattr(checkpoint, "checkpoint") else checkpoint
    found = getattr(holder, "calibration", None)
    if found is None:
        meta = getattr(holder, "meta", None)
        found = Calibration.from_dict(meta.get("calibration")) if isinstance(meta, dict) else None
    return found if isinstance(found, Calibration) else None


def _after(columns: list[str], anchor: str, new: str) -> list[str]:
    """``columns`` with ``new`` moved right after ``anchor`` (or left at the end)."""
    columns = [c for c in columns if c != new]
    if anchor in columns:
        columns.insert(columns.index(anchor) + 1, new)
    else:
        columns.append(new)
    return columns


def apply_calibration(table: pd.DataFrame, checkpoint: Any) -> pd.DataFrame:
    """A copy of a predictions table with the calibrated and derived columns (module docstring).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per record with the model's outputs as columns (``age``, ``age_std``, ``p_female``, ...;
        error rows hold NaN), optionally ``age_recorded`` (years).
    checkpoint : Checkpoint, Predictor, Calibration or None
        Where the calibration comes from.

    Returns
    -------
    pandas.DataFrame
        Same rows and attributes; ``attrs["calibration"]`` says what was applied.
    """
    cal = calibration_of(checkpoint)
    out = table.copy()
    columns = list(out.columns)
    already = "age_std_raw" in out.columns or any(c.endswith("_raw") and c.startswith("p_") for c in out.columns)
    if cal is not None and not already:
        outputs = {c: out[c].to_numpy(dtype=np.float64) for c in out.columns
                   if c in ("age", "age_std") or c in cal.temperatures}
        for name, values in cal.apply(outputs).items():
            out[name] = values
            if name.endswith("_raw"):
                columns = _after(columns, name.removesuffix("_raw"), name)
    if "age" in out.columns and RECORDED_AGE_COLUMN in out.columns:
        recorded = pd.to_numeric(out[RECORDED_AGE_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
        anchor = RECORDED_AGE_COLUMN
        for name, values in age_gaps(out["age"].to_numpy(dtype=np.float64), recorded, cal).items():
            out[name] = values
            columns = _after(columns, anchor, name)
            anchor = name
    if "p_female" in out.columns:
        out["sex_call"] = [binary_label(p) if np.isfinite(p) else "" for p in out["p_female"].astype(float)]
        columns = _after(columns, "p_female_raw" if "p_female_raw" in out.columns else "p_female", "sex_call")
    out = out[columns]
    out.attrs = dict(table.attrs)
    out.attrs["calibration"] = ("none stored in the checkpoint" if cal is None else
                                f"fitted on folds {cal.folds} (n={cal.n}): {cal.method}")
    return out


def calibrate_record(outputs: Mapping[str, float], checkpoint: Any,
                     age_recorded: float | None = None) -> dict[str, Any]:
    """One record's outputs, calibrated, split the way the report and the server show them.

    Parameters
    ----------
    outputs : mapping of str to float
        ``Prediction.outputs`` (``age``, ``age_std``, ``p_female``...).
    checkpoint : Checkpoint, Predictor, Calibration or None
        Where the calibration comes from.
    age_recorded : float, optional
        Chronological age in years (from the file header or given).

    Returns
    -------
    dict
        ``outputs`` (calibrated, same keys as given), ``raw`` (the model's own value of each calibrated output),
        ``age_gap`` / ``age_gap_corrected`` (years; ``None`` when unknown), ``calls`` (``{"p_female": "female" |
        "male" | "uncertain"}``), ``calibration`` (the stored calibration as a dict, or ``None``).
    """
    cal = calibration_of(checkpoint)
    values = cal.apply(outputs) if cal is not None else dict(outputs)
    raw = {k.removesuffix("_raw"): float(values.pop(k)) for k in list(values) if k.endswith("_raw")}
    known = age_recorded is not None and np.isfinite(age_recorded) and "age" in values
    gaps = age_gaps(values["age"], age_recorded, cal) if known else {}
    return {"outputs": {k: float(v) for k, v in values.items()}, "raw": raw,
            "age_gap": float(gaps["age_gap"]) if "age_gap" in gaps else None,
            "age_gap_corrected": float(gaps["age_gap_corrected"]) if "age_gap_corrected" in gaps else None,
            "calls": {"p_female": binary_label(values["p_female"])} if "p_female" in values else {},
            "calibration": None if cal is None else cal.to_dict()}
