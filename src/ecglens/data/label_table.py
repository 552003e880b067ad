"""A user's own label table, joined onto a catalogue of records before ``prepare`` builds a cache.

``ecglens prepare wfdb DIR --labels labels.csv --id-column ecg_id`` reads a CSV / TSV table with one row per
record, matches its ``id_column`` to the catalogue's ``record_id`` (the record's file name without suffix; a value
given with a suffix or a folder, e.g. ``E07500.hea`` or ``georgia/E07500``, matches too) and stores every other
column in the cache's ``meta.csv``: ``age``, ``sex`` (``M``/``F``/``male``/``female``/``0``/``1``, stored as
1 = female), ``fold``, ``patient_id`` and any label column (e.g. ``MI``) a task reads. A value in the table
replaces the one read from the record's header; a record missing from the table keeps its header values.

>>> catalogue = attach_labels(catalogue, read_label_table("labels.csv"), "ecg_id")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..ecg import sex_to_code
from ..exceptions import ConfigError

__all__ = ["attach_labels", "read_label_table"]

log = logging.getLogger(__name__)

#: columns of the catalogue a label table may not replace (they locate and describe the file itself)
_PROTECTED = ("record_id", "path", "source", "fs", "n_samples", "n_leads", "error")
_SEX_WORDS = {"f": "F", "female": "F", "w": "F", "woman": "F", "m": "M", "male": "M", "man": "M"}


def read_label_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a label table (``.csv``; ``.tsv`` / ``.txt`` tab-separated) with every id kept as text.

    Raises
    ------
    ConfigError
        The file is missing, empty or not a table.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"label table {path} not found; pass --labels with an existing .csv or .tsv file.")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab", ".txt") else ","
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"label table {path} could not be read as a table ({err}).") from None
    if table.empty:
        raise ConfigError(f"label table {path} has no rows.")
    return table


def _record_name(value: object) -> str:
    """``E07500``, ``E07500.hea`` and ``georgia/E07500.hea`` all name the record ``E07500``."""
    name = PurePosixPath(str(value).strip().replace("\\", "/")).name
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and suffix.lower() in ("hea", "dat", "mat", "xml", "dcm", "scp", "edf") else name


def _sex_code(value: object) -> float:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return float("nan")
    text = str(value).strip().lower()
    if text in ("0", "0.0", "1", "1.0"):
        return float(text)
    return sex_to_code(_SEX_WORDS.get(text))


def _typed(column: str, values: pd.Series) -> pd.Series:
    """Age, fold and label columns as numbers where every value parses; sex as 1 = female, 0 = male."""
    if column == "sex":
        return values.map(_sex_code)
    if column in ("patient_id", "exam_id"):
        return values
    numeric = pd.to_numeric(values, errors="coerce")
    return numeric if numeric.notna().sum() == values.notna().sum() else values


def attach_labels(catalogue: pd.DataFrame, table: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """The catalogue with the table's columns joined on ``record_id``.

    Parameters
    ----------
    catalogue : pandas.DataFrame
        A record catalogue (``record_id``, ``path``, ...), e.g. from :func:`ecglens.io.wfdb.wfdb_catalogue`.
    table : pandas.DataFrame
        One row per record; ``id_column`` names the record.
    id_column : str
        The table's column holding the record names.

    Returns
    -------
    pandas.DataFrame
        One row per catalogue row, in the same order; table values replace header values where given.
        ``attrs["labels_matched"]`` counts the records the table names, ``attrs["labels_unmatched"]`` the table
        rows that name no record of the catalogue.

    Raises
    ------
    ConfigError
        ``id_column`` is missing, an id appears twice, or no id matches any record.
    """
    if id_column not in table.columns:
        raise ConfigError(f"the label table has no column {id_column!r}; its columns: {', '.join(table.columns)}. "
                          "Pass --id-column with the column that names the records.")
    keys = table[id_column].map(_record_name)
    duplicated = sorted(set(keys[keys.duplicated()]))
    if duplicated:
        raise ConfigError(f"the label table names these records more than once: {', '.join(duplicated[:5])}"
                          f"{' ...' if len(duplicated) > 5 else ''}. Keep one row per record.")
    columns = [c for c in table.columns if c != id_column and c not in _PROTECTED]
    labels = table[columns].set_axis(keys.to_numpy()).apply(lambda col: _typed(col.name, col))
    matched = catalogue["record_id"].astype(str).isin(labels.index)
    if not matched.any():
        raise ConfigError(f"no record of the catalogue is named in the label table's {id_column!r} column (e.g. "
                          f"{catalogue['record_id'].iloc[0] if len(catalogue) else '-'} vs "
                          f"{keys.iloc[0]}). The ids must be the records' file names without suffix.")
    out = catalogue.copy()
    joined = labels.reindex(out["record_id"].astype(str)).set_axis(out.index)
    for column in columns:
        given = joined[column]
        out[column] = given.where(given.notna(), out[column]) if column in out else given
    out.attrs["labels_matched"] = int(matched.sum())
    out.attrs["labels_unmatched"] = len(labels) - int(matched.sum())
    log.info("label table: %d of %d records matched; %d table rows name no record found",
             out.attrs["labels_matched"], len(out), out.attrs["labels_unmatched"])
    return out
