"""Laboratory values (hemoglobin first): reading, unit conversion, ECG linkage and anemia labels.

A lab table has one row per blood draw: ``patient_id``, ``time`` (a datetime, or a number of days on any fixed
origin shared with the ECG table), ``value`` and ``unit``. :func:`read_labs` maps a file's own column names
onto these, converts every value to the analyte's canonical unit and flags implausible values.
:func:`link_labs` attaches to each ECG the nearest draw **of the same patient** inside a time window, and
:func:`anemia_labels` turns hemoglobin into binary targets.

Hemoglobin units
----------------
The canonical unit is g/dL. ``g/L`` is divided by 10. ``mmol/L`` (used in the Netherlands and Scandinavia) is
the *monomer* concentration, Hb(Fe): one heme + one globin chain per "molecule". The hemoglobin tetramer has a
molar mass of about 64,458 g/mol (ICSH), so the monomer weighs 64,458 / 4 = 16,114.5 g/mol = 16.1145 g/mmol.
Therefore 1 mmol/L = 16.1145 g/L = 1.61145 g/dL, the clinical factor usually quoted as 1.611 (and its inverse,
g/dL -> mmol/L, as 0.6206). A value given per mmol of *tetramer* would need 6.4458 instead; no laboratory
reports that, so it is not accepted under the name ``mmol/L``.

Sex coding follows the library: 1 = female, 0 = male, NaN = unknown (``"F"``/``"M"`` strings are accepted
too).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ConfigError, UnitError

__all__ = [
    "HB_MONOMER_MOLAR_MASS",
    "MMOL_L_TO_G_DL",
    "PLAUSIBLE_RANGES",
    "UNIT_FACTORS",
    "WHO_THRESHOLDS",
    "anemia_labels",
    "convert_units",
    "link_labs",
    "read_labs",
]

log = logging.getLogger(__name__)

#: molar mass of one hemoglobin monomer (heme + one globin chain), g/mol: tetramer 64,458 g/mol divided by 4
HB_MONOMER_MOLAR_MASS = 64458.0 / 4.0
#: g/dL per mmol/L of monomer: 16,114.5 g/mol * 1e-3 mol/mmol / 10 dL/L = 1.61145 (clinically quoted as 1.611)
MMOL_L_TO_G_DL = HB_MONOMER_MOLAR_MASS / 1e4

#: per analyte: normalised unit spelling -> factor to the canonical unit (the first entry, factor 1)
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "hemoglobin": {
        "g/dl": 1.0,
        "g/100ml": 1.0,
        "g%": 1.0,
        "gm/dl": 1.0,
        "g/l": 0.1,
        "mg/dl": 1e-3,
        "mmol/l": MMOL_L_TO_G_DL,
        "mmol(fe)/l": MMOL_L_TO_G_DL,
    },
}
#: canonical unit per analyte, as written in output tables
CANONICAL_UNIT: dict[str, str] = {"hemoglobin": "g/dL"}
#: values outside this range (canonical unit) are physiologically impossible and treated as entry errors
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {"hemoglobin": (2.0, 25.0)}
#: WHO adult anemia cut-offs (g/dL, non-pregnant): anemia when Hb is strictly below the value; 1 = female
WHO_THRESHOLDS: dict[float, float] = {0.0: 13.0, 1.0: 12.0}

_LAB_COLUMNS = ("patient_id", "time", "value", "unit")
_SEX_STRINGS = {"F": 1.0, "FEMALE": 1.0, "W": 1.0, "M": 0.0, "MALE": 0.0}
_NS_PER_DAY = 86_400e9


def _normalise_unit(unit: Any) -> str:
    return str(unit).strip().lower().replace(" ", "")


def convert_units(values: Any, units: Any, analyte: str = "hemoglobin") -> np.ndarray:
    """Convert lab values to the analyte's canonical unit (hemoglobin: g/dL).

    Parameters
    ----------
    values : array-like of float, shape (n,)
        Values as reported.
    units : str or array-like of str, shape (n,)
        Unit of each value (or one unit for all). Spelling is normalised (case, spaces): ``g/dL``, ``g/L``,
        ``mmol/L``, ``g/100mL``, ``mg/dL``.
    analyte : str
        Key of :data:`UNIT_FACTORS`.

    Returns
    -------
    np.ndarray of float64, shape (n,)
        Values in the canonical unit; NaN stays NaN.

    Raises
    ------
    UnitError
        A unit not known for the analyte (the message lists the known ones).
    """
    factors = _unit_table(analyte)
    vals = np.asarray(values, dtype=np.float64)
    unit_series = pd.Series(np.broadcast_to(np.asarray(units, dtype=object), vals.shape))
    factor = unit_series.map(_normalise_unit).map(factors)
    unknown = sorted(set(unit_series[factor.isna()].astype(str)))
    if unknown:
        raise UnitError(
            f"unknown {analyte} unit(s) {unknown[:10]}; known: {sorted(factors)} (case and spaces ignored). "
            f"Fix the unit column, or convert those rows to {CANONICAL_UNIT[analyte]} before reading them."
        )
    return vals * factor.to_numpy(dtype=np.float64)


def _unit_table(analyte: str) -> dict[str, float]:
    try:
        return UNIT_FACTORS[analyte]
    except KeyError:
        raise ConfigError(
            f"no unit table for analyte {analyte!r}; known analytes: {sorted(UNIT_FACTORS)}."
        ) from None


def _time_column(series: pd.Series, name: str) -> pd.Series:
    """Datetimes stay datetimes (datetime64[ns]); numbers become float days; strings are parsed as dates."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert(None).astype("datetime64[ns]")  # time-zone aware -> naive UTC
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("datetime64[ns]")
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype(np.float64)
    try:
        return pd.to_datetime(series, errors="raise", format="ISO8601").astype("datetime64[ns]")
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"column {name!r} is neither numeric (days) nor ISO-8601 dates ({str(err).splitlines()[0]}). "
            "Give times as ISO dates ('2021-03-04 10:15'), as parsed datetimes (pd.to_datetime(..., "
            "format=...) for other spellings), or as numbers of days on one origin shared by the ECG and "
            "lab tables."
        ) from None


def _load_table(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.copy()
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"lab table {path} not found; pass a CSV path or a pandas DataFrame.")
    return pd.read_csv(path)


def _rename(
    df: pd.DataFrame, columns: Mapping[str, str] | None, required: Sequence[str], what: str
) -> pd.DataFrame:
    mapping = {src: dst for dst, src in (columns or {}).items()}
    df = df.rename(columns=mapping)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ConfigError(
            f"{what} lacks column(s) {missing}; it has {list(df.columns)[:20]}. Map your names with "
            f"columns={{'{missing[0]}': 'your_column_name', ...}}."
        )
    return df


def read_labs(
    source: str | Path | pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    unit: str | None = None,
    analyte: str = "hemoglobin",
    plausible: tuple[float, float] | str | None = "default",
) -> pd.DataFrame:
    """Read a lab table and convert its values to the canonical unit.

    Parameters
    ----------
    source : path or DataFrame
        CSV file or table with one row per draw.
    columns : mapping, optional
        Canonical name -> your column name, for any of ``patient_id, time, value, unit``.
    unit : str, optional
        The unit of every row when the table has no unit column (e.g. ``"g/dL"``).
    analyte : str
        Which unit table and plausible range to use (``"hemoglobin"``).
    plausible : (low, high) or None
        Range in the canonical unit outside of which a value is an entry error: such values become NaN, are
        counted and a warning says how many. ``"default"`` uses :data:`PLAUSIBLE_RANGES`; ``None`` disables.

    Returns
    -------
    pd.DataFrame
        Columns ``patient_id``, ``time`` (datetime64[ns] or float days), ``value`` (canonical unit, float),
        ``unit`` (canonical), ``value_raw``, ``unit_raw``, plus any other columns of the input.
        ``attrs["read_labs"]`` holds the counts ``n_rows``, ``n_missing``, ``n_implausible``.

    Raises
    ------
    UnitError
        Unknown units, no unit information at all, or a table where most values are implausible (a systematic
        unit mistake, e.g. g/L labelled g/dL).
    ConfigError
        Missing columns or unparseable times.
    """
    df = _rename(_load_table(source), columns, ("patient_id", "time", "value"), "lab table")
    if "unit" not in df.columns:
        if unit is None:
            raise UnitError(
                "lab table has no 'unit' column; pass unit='g/dL' (or the table's unit) to read_labs."
            )
        df["unit"] = unit
    df["time"] = _time_column(df["time"], "time")
    df["value_raw"] = pd.to_numeric(df["value"], errors="coerce")
    df["unit_raw"] = df["unit"]
    df["value"] = convert_units(df["value_raw"], df["unit_raw"], analyte)
    df["unit"] = CANONICAL_UNIT[analyte]
    n_implausible = _flag_implausible(
        df, analyte, PLAUSIBLE_RANGES.get(analyte) if plausible == "default" else plausible
    )
    df.attrs["read_labs"] = {
        "n_rows": len(df),
        "n_missing": int(df["value_raw"].isna().sum()),
        "n_implausible": n_implausible,
    }
    return df


def _flag_implausible(df: pd.DataFrame, analyte: str, bounds: tuple[float, float] | None) -> int:
    if bounds is None:
        return 0
    low, high = bounds
    bad = df["value"].notna() & ~df["value"].between(low, high)
    n_bad, n_valid = int(bad.sum()), int(df["value"].notna().sum())
    if n_valid and n_bad > n_valid / 2:
        raise UnitError(
            f"{n_bad} of {n_valid} {analyte} values lie outside {low}-{high} {CANONICAL_UNIT[analyte]} "
            f"after unit conversion (e.g. {df.loc[bad, 'value_raw'].head(3).tolist()} "
            f"{df.loc[bad, 'unit_raw'].head(1).tolist()}). "
            "The unit column is probably wrong (g/L labelled g/dL?); fix it, or pass plausible=None."
        )
    if n_bad:
        warnings.warn(
            f"{n_bad} {analyte} value(s) outside {low}-{high} {CANONICAL_UNIT[analyte]} set to NaN "
            "(entry errors?).",
            UserWarning,
            stacklevel=3,
        )
        df.loc[bad, "value"] = np.nan
    return n_bad


# ------------------------------------------------------------------------------------------------------------
# linkage


def _patient_codes(ecg_ids: pd.Series, lab_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes shared by both tables (-1 = missing id); refuses ids of different kinds."""
    kinds = {pd.api.types.is_numeric_dtype(s) for s in (ecg_ids.dropna(), lab_ids.dropna()) if len(s)}
    if len(kinds) > 1:
        raise ConfigError(
            f"patient ids have different types in the ECG table ({ecg_ids.dtype}) and the lab table "
            f"({lab_ids.dtype}); cast both to the same type (e.g. .astype(str)) before linking."
        )
    codes, _ = pd.factorize(pd.concat([ecg_ids, lab_ids], ignore_index=True), use_na_sentinel=True)
    return codes[: len(ecg_ids)], codes[len(ecg_ids) :]


def _check_window(window: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(w) for w in window)
    except (TypeError, ValueError):
        raise ConfigError(
            f"window must be (-days_before, days_after), e.g. (-7, 7); got {window!r}."
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low <= 0.0 <= high):
        raise ConfigError(
            f"window {window!r} must contain 0 (lab time - ECG time, in days): give "
            "(-days_before, days_after) with days_before >= 0 and days_after >= 0, e.g. (-7, 3)."
        )
    return low, high


def _asof(left: pd.DataFrame, right: pd.DataFrame, direction: str, tolerance: Any) -> pd.DataFrame:
    return pd.merge_asof(
        left, right, on="_t", by="_pid", direction=direction, tolerance=tolerance, allow_exact_matches=True
    )


def _pick_nearest(back: pd.DataFrame, fwd: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Nearest of the draws before and after; a tie goes to the earlier draw (before the ECG)."""
    take_fwd = back["_lab_t"].isna() | (fwd["_delta"].abs() < back["_delta"].abs())
    value = back["_value"].where(~take_fwd, fwd["_value"])
    delta = back["_delta"].where(~take_fwd, fwd["_delta"])
    return value, delta


def link_labs(
    ecg_table: pd.DataFrame,
    lab_table: pd.DataFrame,
    window: tuple[float, float] = (-7.0, 7.0),
    how: str = "nearest",
    *,
    patient_col: str = "patient_id",
    time_col: str = "time",
    out_col: str = "hb",
    analyte: str = "hemoglobin",
) -> pd.DataFrame:
    """Attach to each ECG the closest lab draw of the same patient within a time window.

    Parameters
    ----------
    ecg_table : pd.DataFrame
        One row per ECG with ``patient_col`` and ``time_col`` (datetime, or float days on the lab table's
        origin).
    lab_table : pd.DataFrame
        As returned by :func:`read_labs` (``patient_id``, ``time``, ``value`` and, optionally, ``unit``; a
        unit column is converted to the canonical unit again, which is a no-op on canonical units).
    window : (float, float)
        ``(-days_before, days_after)``: admissible ``lab time - ECG time`` in days, both edges inclusive.
    how : {"nearest", "before", "after"}
        Nearest draw on either side (a tie in distance goes to the earlier draw), the latest draw at or before
        the ECG, or the earliest draw at or after it.
    patient_col, time_col : str
        Column names in ``ecg_table`` (the lab table always uses ``patient_id`` / ``time``).
    out_col : str
        Name of the linked value column.
    analyte : str
        Unit table used when the lab table has a unit column.

    Returns
    -------
    pd.DataFrame
        A copy of ``ecg_table`` (same order and index) with ``out_col`` (canonical unit; NaN when no draw of
        that patient lies in the window) and ``lab_time_delta`` (lab time - ECG time, days).
        ``attrs["link_labs"]`` holds ``n_ecgs``, ``n_matched``, ``n_unmatched``, ``window`` and ``how``.
        Several draws at the very same time are averaged first. Draws of other patients are never used:
        linkage is grouped by patient.
    """
    low, high = _check_window(window)
    ecg = _rename(ecg_table, {}, (patient_col, time_col), "ECG table")
    labs = _rename(lab_table, {}, _LAB_COLUMNS[:3], "lab table")
    pick = _LINKERS.get(how)
    if pick is None:
        raise ConfigError(f"unknown how={how!r}; choose one of {sorted(_LINKERS)}.")
    left, right = _linkage_frames(ecg, labs, patient_col, time_col, analyte)
    value, delta = pick(left, right, low, high)
    out = ecg_table.copy()
    out[out_col] = np.nan
    out["lab_time_delta"] = np.nan
    rows = left["_row"].to_numpy()
    out.iloc[rows, out.columns.get_loc(out_col)] = value.to_numpy(dtype=np.float64)
    out.iloc[rows, out.columns.get_loc("lab_time_delta")] = delta.to_numpy(dtype=np.float64)
    n_matched = int(out[out_col].notna().sum())
    out.attrs["link_labs"] = {
        "n_ecgs": len(out),
        "n_matched": n_matched,
        "n_unmatched": int(len(out) - n_matched),
        "window": [low, high],
        "how": how,
    }
    log.info("link_labs: %d of %d ECGs matched a draw within %s days", n_matched, len(out), (low, high))
    return out


def _linkage_frames(
    ecg: pd.DataFrame, labs: pd.DataFrame, patient_col: str, time_col: str, analyte: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sorted left (ECG) and right (lab) frames keyed by shared integer patient codes and one time type."""
    ecg_t, lab_t = _time_column(ecg[time_col], time_col), _time_column(labs["time"], "time")
    if pd.api.types.is_datetime64_any_dtype(ecg_t) != pd.api.types.is_datetime64_any_dtype(lab_t):
        raise ConfigError(
            "one table has datetime times and the other numeric days; give both as datetimes or both as days "
            "on the same origin."
        )
    ecg_code, lab_code = _patient_codes(
        ecg[patient_col].reset_index(drop=True), labs["patient_id"].reset_index(drop=True)
    )
    value = labs["value"].to_numpy(dtype=np.float64)
    if "unit" in labs.columns:
        value = convert_units(value, labs["unit"].to_numpy(), analyte)
    left = pd.DataFrame({"_row": np.arange(len(ecg)), "_pid": ecg_code, "_t": ecg_t.to_numpy()})
    right = pd.DataFrame({"_pid": lab_code, "_t": lab_t.to_numpy(), "_value": value})
    left = left[(left["_pid"] >= 0) & left["_t"].notna()].sort_values("_t", kind="stable")
    right = right[(right["_pid"] >= 0) & right["_t"].notna() & right["_value"].notna()]
    right = (
        right.groupby(["_pid", "_t"], as_index=False, sort=True)["_value"]
        .mean()
        .sort_values("_t", kind="stable")
    )
    right["_lab_t"] = right["_t"]
    return left.reset_index(drop=True), right.reset_index(drop=True)


def _side(left: pd.DataFrame, right: pd.DataFrame, direction: str, days: float) -> pd.DataFrame:
    is_dt = pd.api.types.is_datetime64_any_dtype(left["_t"])
    tolerance = pd.Timedelta(days=days) if is_dt else float(days)
    merged = _asof(left, right, direction, tolerance)
    diff = merged["_lab_t"] - merged["_t"]
    merged["_delta"] = diff / pd.Timedelta(days=1) if is_dt else diff
    return merged


def _link_before(left, right, low, high):
    back = _side(left, right, "backward", -low)
    return back["_value"], back["_delta"]


def _link_after(left, right, low, high):
    fwd = _side(left, right, "forward", high)
    return fwd["_value"], fwd["_delta"]


def _link_nearest(left, right, low, high):
    return _pick_nearest(_side(left, right, "backward", -low), _side(left, right, "forward", high))


_LINKERS = {"nearest": _link_nearest, "before": _link_before, "after": _link_after}


# ------------------------------------------------------------------------------------------------------------
# labels


def _sex_codes(sex: Any, n: int) -> np.ndarray:
    """1 = female, 0 = male, NaN unknown, from numbers or 'F'/'M'/'female'/'male' strings."""
    s = pd.Series(np.asarray(sex, dtype=object).reshape(-1))
    if len(s) != n:
        raise ConfigError(f"sex has {len(s)} values but hb has {n}; pass one sex per hemoglobin value.")
    as_num = pd.to_numeric(s, errors="coerce")
    as_str = s.astype(str).str.strip().str.upper().map(_SEX_STRINGS)
    codes = as_num.where(as_num.notna(), as_str).to_numpy(dtype=np.float64)
    bad = ~np.isnan(codes) & ~np.isin(codes, (0.0, 1.0))
    if bad.any():
        raise ConfigError(
            f"sex values {sorted(set(s[bad].astype(str)))[:5]} are not 1/0 (female/male) or 'F'/'M'."
        )
    return codes


def anemia_labels(
    hb: Any,
    thresholds: Mapping[str, float] | None = None,
    sex: Any = None,
    who: bool = False,
) -> pd.DataFrame:
    """Binary anemia labels from hemoglobin (g/dL).

    Parameters
    ----------
    hb : array-like of float, shape (n,)
        Hemoglobin in g/dL (NaN allowed). A Series keeps its index.
    thresholds : mapping name -> g/dL, optional
        One column per entry, 1 where ``hb <= threshold``. Default ``{"moderate": 10.0, "severe": 8.0}``;
        pass ``{}`` for none.
    sex : array-like, shape (n,), optional
        1 = female, 0 = male (or ``"F"``/``"M"``); needed when ``who=True``.
    who : bool
        Add a ``who_anemia`` column with the WHO adult (non-pregnant) definition: 1 where Hb < 13 g/dL for
        men, < 12 g/dL for women (strictly below). NaN when sex is unknown.

    Returns
    -------
    pd.DataFrame, shape (n, n_labels)
        Float columns holding 1.0 / 0.0, NaN where hb (or, for WHO, sex) is missing.
    """
    thresholds = {"moderate": 10.0, "severe": 8.0} if thresholds is None else dict(thresholds)
    index = hb.index if isinstance(hb, pd.Series) else None
    values = np.asarray(hb, dtype=np.float64).reshape(-1)
    missing = np.isnan(values)
    out = pd.DataFrame(index=index if index is not None else pd.RangeIndex(len(values)))
    for name, cut in thresholds.items():
        out[name] = np.where(missing, np.nan, (values <= float(cut)).astype(np.float64))
    if who:
        if sex is None:
            raise ConfigError(
                "who=True needs sex (1 = female, 0 = male, or 'F'/'M') for every hemoglobin value."
            )
        codes = _sex_codes(sex, len(values))
        cut = pd.Series(codes).map(WHO_THRESHOLDS).to_numpy(dtype=np.float64)
        unknown = missing | np.isnan(cut)
        out["who_anemia"] = np.where(unknown, np.nan, (values < np.nan_to_num(cut)).astype(np.float64))
    return out
