"""Patient-level splits: every record of a patient lands in the same fold, so no patient crosses a split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..exceptions import ConfigError

__all__ = ["patient_folds"]


def patient_folds(patient_ids: pd.Series, shares: Sequence[float], seed: int,
                  folds: Sequence[int] = (1, 2, 3)) -> np.ndarray:
    """A fold per row, all rows of a patient in the same fold; patients dealt at random (seeded) by ``shares``.

    Parameters
    ----------
    patient_ids : pandas.Series
        One patient id per row (record).
    shares : sequence of float
        Relative sizes of the folds in patients, e.g. ``(0.5, 0.15, 0.35)`` for train / validation / test; the
        last fold takes the patients left after rounding the others down.
    seed : int
        Seed of the patient permutation.
    folds : sequence of int
        The fold numbers, one per share (default 1, 2, 3).

    Returns
    -------
    numpy.ndarray
        int, one fold number per row of ``patient_ids``.
    """
    if len(shares) != len(folds) or min(shares) <= 0:
        raise ConfigError(f"patient_folds needs one positive share per fold; got shares {list(shares)} for folds "
                          f"{list(folds)}.")
    patients = pd.unique(patient_ids)
    weights = np.asarray(shares, dtype=np.float64) / np.sum(shares)
    ends = np.cumsum(np.floor(weights[:-1] * len(patients)).astype(int))
    order = np.random.default_rng(seed).permutation(len(patients))
    fold = np.full(len(patients), folds[-1])
    for number, part in zip(folds[:-1], np.split(order, ends)[:-1], strict=True):
        fold[part] = number
    return pd.Series(fold, index=patients).loc[patient_ids.to_numpy()].to_numpy()
