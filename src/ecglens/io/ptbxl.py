"""PTB-XL catalogue: the label table of a PTB-XL folder -> one index of records (no signal is read).

Two table schemas are understood, chosen by which file the folder holds (the official one first):

``ptbxl_database.csv`` (official PhysioNet release, v1.0.1-v1.0.3)
    ``ecg_id, patient_id, age, sex, ..., scp_codes, ..., strat_fold, filename_lr, filename_hr``.
    ``scp_codes`` is a Python dict literal with likelihoods (``"{'NORM': 100.0, 'SR': 0.0}"``), parsed with
    :func:`ast.literal_eval` (never ``eval``). Diagnostic superclasses are derived from
    ``scp_statements.csv``: every code of the record (any likelihood) whose row has ``diagnostic == 1``
    contributes its ``diagnostic_class``.
``labels.csv`` (the project's shared table)
    ``ecg_id, age, sex, strat_fold, filename_lr, statements`` (codes joined by ``;``) and
    ``diagnostic_superclass_{NORM,MI,STTC,CD,HYP}``; no patient id, 100 Hz files only.

Both give the same output (:func:`ptbxl_catalogue`). Conventions: ``sex`` 1 = female, 0 = male (PTB-XL's own
coding, which is ecglens's); ``age`` in years with the v1.0.3 code 300 ("over 89") mapped to 90.
Cite Wagner et al., Scientific Data 7, 154 (2020) when using PTB-XL.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ConfigError, CorruptRecordError, UnsupportedFormatError
from .metadata import AGE_OVER_89

__all__ = ["SUPERCLASSES", "diagnostic_superclasses", "load_scp_statements", "parse_folds", "ptbxl_catalogue"]

#: PTB-XL's five diagnostic superclasses, in the order of the label columns
SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
_SAMPLING_COLUMN: dict[str, str] = {
    "lr": "filename_lr",
    "100": "filename_lr",
    "hr": "filename_hr",
    "500": "filename_hr",
}
_AGE_CODE_OVER_89 = 300
_OUTPUT_COLUMNS = [
    "record_id",
    "path",
    "source",
    "age",
    "sex",
    "fold",
    "patient_id",
    "statements",
    *SUPERCLASSES,
]


# --------------------------------------------------------------------------- folds
def parse_folds(spec: str | int | Iterable[int] | None) -> list[int] | None:
    """Parse a fold selection.

    Parameters
    ----------
    spec : str, int, iterable of int or None
        ``"1-8"``, ``"1-4,9"``, ``"10"``, ``3``, ``[1, 2, 9]``; ``None`` means all folds.

    Returns
    -------
    list of int or None
        Sorted unique fold numbers, or ``None`` for all.

    Raises
    ------
    ConfigError
        On anything else (``"a-b"``, ``"8-1"``, ``""``).
    """
    if spec is None:
        return None
    if isinstance(spec, (int, np.integer)):
        return [int(spec)]
    if isinstance(spec, str):
        folds: set[int] = set()
        for part in spec.replace(" ", "").split(","):
            match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if match is None or (match.group(2) and int(match.group(2)) < int(match.group(1))):
                raise ConfigError(
                    f"cannot parse fold selection {spec!r}: write folds as '1-8', '1-4,9' or '10' "
                    "(ranges ascending, separated by commas)."
                )
            lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
            folds.update(range(lo, hi + 1))
        return sorted(folds)
    try:
        return sorted({int(f) for f in spec})
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"cannot parse fold selection {spec!r}: give a list of ints or a string like '1-8'."
        ) from err


# --------------------------------------------------------------------------- scp statements
def load_scp_statements(path: str | Path) -> dict[str, str]:
    """Map each *diagnostic* SCP code to its superclass (``diagnostic_class``) from ``scp_statements.csv``."""
    table = pd.read_csv(path, index_col=0)
    missing = {"diagnostic", "diagnostic_class"} - set(table.columns)
    if missing:
        raise CorruptRecordError(
            f"{path}: missing column(s) {sorted(missing)}; use PTB-XL's scp_statements.csv."
        )
    diag = table[pd.to_numeric(table["diagnostic"], errors="coerce") == 1]
    return {str(code): str(cls) for code, cls in diag["diagnostic_class"].dropna().items()}


def diagnostic_superclasses(codes: Iterable[str], code_to_class: dict[str, str]) -> dict[str, int]:
    """0/1 indicator per superclass for a record's SCP codes."""
    present = {code_to_class[c] for c in codes if c in code_to_class}
    return {cls: int(cls in present) for cls in SUPERCLASSES}


def _parse_scp_codes(text: Any, ecg_id: Any) -> dict[str, float]:
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise CorruptRecordError(
            f"ptbxl_database.csv, ecg_id {ecg_id}: scp_codes {text[:60]!r} is not a dict literal ({err}). "
            "Re-download ptbxl_database.csv."
        ) from err
    if not isinstance(value, dict):
        raise CorruptRecordError(
            f"ptbxl_database.csv, ecg_id {ecg_id}: scp_codes is not a dict: {text[:60]!r}."
        )
    return {str(k): float(v) for k, v in value.items()}


# --------------------------------------------------------------------------- schema loaders
def _require(table: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CorruptRecordError(
            f"{path}: missing column(s) {missing}; expected PTB-XL's official ptbxl_database.csv or the "
            "shared labels.csv schema (see ecglens.io.ptbxl)."
        )


def _load_official(csv: Path, root: Path, column: str) -> pd.DataFrame:
    table = pd.read_csv(csv)
    _require(table, ["ecg_id", "age", "sex", "scp_codes", "strat_fold", column], csv)
    scp_path = root / "scp_statements.csv"
    if not scp_path.is_file():
        raise UnsupportedFormatError(
            f"{scp_path}: not found. The official ptbxl_database.csv needs PTB-XL's scp_statements.csv "
            "beside it "
            "to derive the diagnostic superclasses; copy it from the PTB-XL download."
        )
    code_to_class = load_scp_statements(scp_path)
    codes = [_parse_scp_codes(t, i) for t, i in zip(table["scp_codes"], table["ecg_id"], strict=True)]
    labels = pd.DataFrame(
        [diagnostic_superclasses(c, code_to_class) for c in codes],
        index=table.index,
        columns=list(SUPERCLASSES),
    )
    out = table[["ecg_id", "age", "sex", "strat_fold", column]].copy()
    out["patient_id"] = table["patient_id"] if "patient_id" in table.columns else np.nan
    out["statements"] = [";".join(sorted(c)) for c in codes]
    return pd.concat([out, labels], axis=1)


def _load_labels(csv: Path, root: Path, column: str) -> pd.DataFrame:
    table = pd.read_csv(csv)
    label_cols = [f"diagnostic_superclass_{c}" for c in SUPERCLASSES]
    if column not in table.columns and column == "filename_hr":
        raise ConfigError(
            f"{csv}: has no 500 Hz file names (filename_hr); this table lists 100 Hz records only. "
            "Use sampling='lr', or the official ptbxl_database.csv."
        )
    _require(table, ["ecg_id", "age", "sex", "strat_fold", column, "statements", *label_cols], csv)
    out = table[["ecg_id", "age", "sex", "strat_fold", column]].copy()
    out["patient_id"] = table["patient_id"] if "patient_id" in table.columns else np.nan
    out["statements"] = table["statements"].fillna("").astype(str)
    for cls in SUPERCLASSES:
        out[cls] = table[f"diagnostic_superclass_{cls}"].fillna(0).astype(int)
    return out


#: label table file name -> loader; the first one found in the folder is used
_SCHEMAS: dict[str, Callable[[Path, Path, str], pd.DataFrame]] = {
    "ptbxl_database.csv": _load_official,
    "labels.csv": _load_labels,
}


def _find_table(root: Path) -> tuple[Path, Path, Callable[[Path, Path, str], pd.DataFrame]]:
    """Return (folder, csv, loader); ``root`` may be the folder or one of the csv files."""
    if root.is_file() and root.name in _SCHEMAS:
        return root.parent, root, _SCHEMAS[root.name]
    for name, loader in _SCHEMAS.items():
        if (root / name).is_file():
            return root, root / name, loader
    raise UnsupportedFormatError(
        f"{root}: no PTB-XL label table found (looked for {' and '.join(_SCHEMAS)}). "
        "Point root to the unpacked "
        "PTB-XL folder that holds ptbxl_database.csv (official download) or labels.csv (shared table)."
    )


def _format_id(value: Any) -> Any:
    """``15709.0`` -> ``"15709"``; NaN/None stay NaN; other values as stripped strings."""
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return np.nan
    if isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and value.is_integer()
    ):
        return str(int(value))
    return str(value).strip()


# --------------------------------------------------------------------------- the catalogue
def ptbxl_catalogue(
    root: str | Path,
    folds: str | int | Iterable[int] | None = None,
    sampling: str = "lr",
) -> pd.DataFrame:
    """Index the PTB-XL records of a folder (no signal is read, no file is written).

    Parameters
    ----------
    root : str or Path
        The unpacked PTB-XL folder (with ``ptbxl_database.csv`` + ``scp_statements.csv``, or ``labels.csv``),
        or the path of one of those csv files.
    folds : str, int, list of int or None
        Keep only these ``strat_fold`` values (``"1-8"``, ``"9"``, ``[10]``; see :func:`parse_folds`).
        Default: all folds in the table.
    sampling : {"lr", "hr"}
        ``"lr"``: the 100 Hz files (``filename_lr``); ``"hr"``: the 500 Hz files (official table only).
        ``"100"``/``"500"`` are accepted too.

    Returns
    -------
    pandas.DataFrame
        One row per record, columns ``record_id`` (ecg_id as str), ``path`` (absolute record path without
        suffix, readable by :func:`ecglens.io.read_ecg`), ``source="ptbxl"``, ``age`` (years, 300 -> 90),
        ``sex`` (1 female, 0 male), ``fold`` (int), ``patient_id`` (str, NaN when the table has none),
        ``statements`` (SCP codes joined by ``;``, sorted) and ``NORM, MI, STTC, CD, HYP`` (0/1 int).
    """
    column = _SAMPLING_COLUMN.get(str(sampling).lower())
    if column is None:
        raise ConfigError(f"sampling={sampling!r}: use 'lr' (100 Hz) or 'hr' (500 Hz).")
    folder, csv, loader = _find_table(Path(root))
    table = loader(csv, folder, column)
    wanted = parse_folds(folds)
    if wanted is not None:
        available = sorted(int(f) for f in table["strat_fold"].dropna().unique())
        table = table[table["strat_fold"].isin(wanted)]
        if table.empty:
            raise ConfigError(
                f"{csv}: no records in folds {wanted}; this table has folds {available}. Choose folds it has."
            )
    base = folder.resolve()
    age = pd.to_numeric(table["age"], errors="coerce").astype(float)
    out = pd.DataFrame(
        {
            "record_id": table["ecg_id"].map(_format_id),
            "path": [str(base / str(f)) if isinstance(f, str) else np.nan for f in table[column]],
            "source": "ptbxl",
            "age": age.where(age != _AGE_CODE_OVER_89, AGE_OVER_89),
            "sex": pd.to_numeric(table["sex"], errors="coerce").astype(float),
            "fold": table["strat_fold"].astype(int),
            "patient_id": table["patient_id"].map(_format_id),
            "statements": table["statements"],
            **{cls: table[cls].astype(int) for cls in SUPERCLASSES},
        }
    )
    return out[_OUTPUT_COLUMNS].reset_index(drop=True)
