"""Is a checkpoint being evaluated on its own training data? (``ecglens evaluate`` refuses unless told.)

A checkpoint stores its resolved training config: ``config["data"]["train_folds"]`` (an ensemble also stores
each member's config under ``config["ensemble"]["members"]``). A run folder also holds ``splits.csv``
(``record_id, fold, split`` of every training and validation row), beside ``model.safetensors``. A prepared
cache has a ``fold`` column (PTB-XL ``strat_fold``; empty for records read from a plain folder) and a
``record_id`` column.

:func:`training_overlap` compares both ways: evaluated rows whose ``fold`` is one of the training folds, and
evaluated records whose id is among the training records of ``splits.csv`` (when the checkpoint's run folder,
or an ensemble member's, still has it). A cache of another cohort numbered with its own folds 1-10 would be
flagged by folds although its records were never seen: ``allow_train_folds`` is the way out, and the warning
stays in ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["training_folds", "training_overlap", "training_record_ids", "training_records"]


def _configs(checkpoint: Any) -> list[tuple[dict[str, Any], str]]:
    """(training config, source path) of the checkpoint and, for an ensemble, of every member."""
    config = getattr(checkpoint, "config", None) or {}
    found = [(config, str(getattr(checkpoint, "path", "") or ""))]
    for member in (config.get("ensemble") or {}).get("members") or ():
        found.append((member.get("config") or {}, str(member.get("source") or "")))
    return found


def training_folds(checkpoint: Any) -> list[int]:
    """The folds of the cache the checkpoint (or any ensemble member) was trained on (sorted; may be empty)."""
    folds: set[int] = set()
    for config, _ in _configs(checkpoint):
        for key in ("data", "split"):
            folds.update(int(f) for f in ((config.get(key) or {}).get("train_folds") or ()))
    return sorted(folds)


def training_records(checkpoint: Any) -> pd.DataFrame:
    """``record_id`` and ``source`` of the training rows listed in the ``splits.csv`` of the checkpoint's run
    folder (and of each ensemble member's); ``source`` is ``""`` where the file does not name it (runs before
    2026-12-05). Empty when no such file is there."""
    parts = []
    for _, source in _configs(checkpoint):
        splits = Path(source).parent / "splits.csv" if source else None
        if splits is None or not splits.is_file():
            continue
        table = pd.read_csv(splits, dtype={"record_id": str, "source": str})
        if {"record_id", "split"} <= set(table.columns):
            train = table.loc[table["split"] == "train"].dropna(subset=["record_id"])
            src = train["source"].fillna("") if "source" in train.columns else ""
            parts.append(pd.DataFrame({"record_id": train["record_id"].astype(str), "source": src}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"record_id": [], "source": []})


def training_record_ids(checkpoint: Any) -> set[str]:
    """Record ids of the training rows of :func:`training_records` (without their source)."""
    return set(training_records(checkpoint)["record_id"])


def _id_hits(meta: pd.DataFrame, records: pd.DataFrame) -> np.ndarray:
    """Evaluated rows that are training records: the same ``source`` and ``record_id`` where both sides name a
    source (record 101 of LUDB is not record 101 of PTB-XL), the same ``record_id`` where either does not."""
    ids = meta["record_id"].astype(str)
    src = meta["source"].fillna("").astype(str) if "source" in meta.columns else pd.Series("", index=meta.index)
    named = records["source"] != ""
    hits = ids.isin(records.loc[~named, "record_id"]) | ((src == "") & ids.isin(records.loc[named, "record_id"]))
    keys = set(records.loc[named, "source"] + "/" + records.loc[named, "record_id"])
    return (hits | ((src != "") & (src + "/" + ids).isin(keys))).to_numpy()


def _fold_hits(meta: pd.DataFrame, folds: Iterable[int]) -> np.ndarray:
    if "fold" not in meta.columns:
        return np.zeros(len(meta), dtype=bool)
    return pd.to_numeric(meta["fold"], errors="coerce").isin(list(folds)).to_numpy()


def training_overlap(checkpoint: Any, meta: pd.DataFrame) -> str | None:
    """Why the evaluated records (``meta``, one row each) overlap the checkpoint's training data, or ``None``.

    Parameters
    ----------
    checkpoint : Checkpoint
        Its ``config`` (training folds, ensemble members) and ``path`` (run folder with ``splits.csv``).
    meta : pandas.DataFrame
        The evaluated rows of the cache (``fold``, ``record_id`` columns when present).

    Returns
    -------
    str or None
        A sentence naming how many records overlap and how that was found.
    """
    folds = training_folds(checkpoint)
    by_fold = _fold_hits(meta, folds) if folds else np.zeros(len(meta), dtype=bool)
    records = training_records(checkpoint)
    by_id = np.zeros(len(meta), dtype=bool)
    if len(records) and "record_id" in meta.columns:
        by_id = _id_hits(meta, records)
    hits = by_fold | by_id
    if not hits.any():
        return None
    how = []
    if by_fold.any():
        seen = sorted(set(pd.to_numeric(meta["fold"], errors="coerce")[by_fold].astype(int)))
        how.append(f"{int(by_fold.sum())} are in folds {seen}, which the model was trained on (train_folds {folds})")
    if by_id.any():
        how.append(f"{int(by_id.sum())} are training records listed in the run's splits.csv")
    return f"{int(hits.sum())} of {len(meta)} evaluated records overlap the training data: {'; '.join(how)}"
