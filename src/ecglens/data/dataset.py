"""Torch datasets and the Lightning data module over a prepared cache.

The cache (:mod:`ecglens.data.cache`) holds every record already preprocessed (``signals`` memmap
``[N, n_leads, n_samples]`` float32 at the cache's ``fs``, and a ``meta`` table row-aligned with it). Training
reads rows from the memmap, applies the train-only augmentation, and pairs them with the task's labels.

Splits are made by the cache's ``fold`` column (PTB-XL ``strat_fold``: train folds 1-8, validation fold 9 by
default). PTB-XL's folds put all records of a patient in one fold, so the splits are patient-disjoint by
construction; when the cache has a ``patient_id`` column this is checked and a shared patient is an error.

Not included (yet): demographic inputs (age / sex with missing-value flags) fed to the head next to the ECG
embedding; the models here see the ECG only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from .._optional import require
from ..exceptions import ConfigError
from .cache import open_cache
from .distill import blend_labels, read_teacher, teacher_labels
from .targets import TaskSpec

L = require("lightning", "training")

__all__ = ["CacheDataset", "EcgDataModule", "split_by_folds", "subsample_indices"]

Augmenter = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


class CacheDataset(Dataset):
    """Rows of a signal array with their labels, optionally augmented (training only).

    Parameters
    ----------
    signals : np.ndarray or np.memmap, shape (N, n_leads, n_samples)
        Preprocessed signals (mV or normalised units, as the cache's Preprocess made them) at ``fs``.
    labels : np.ndarray, shape (N, n_labels)
        Labels in natural units, NaN where missing (``TaskSpec.labels_from_meta``).
    indices : sequence of int
        Rows of ``signals`` / ``labels`` in this dataset.
    augment : callable ``(x, fs, rng) -> x``, optional
        Train-only augmentation of one record ``[n_leads, n_samples]``
        (e.g. ``ecglens.signal.augment.Augment``).
    fs : float
        Sampling rate of ``signals`` in Hz (passed to ``augment``).
    seed : int
        Seed of the augmentation random stream (combined with the data-loader worker's seed).

    Items are ``(x, y)``: ``x`` float32 tensor ``[n_leads, n_samples]``, ``y`` float32 tensor ``[n_labels]``.
    """

    def __init__(
        self,
        signals: np.ndarray,
        labels: np.ndarray,
        indices: Sequence[int],
        augment: Augmenter | None = None,
        fs: float = 100.0,
        seed: int = 0,
    ) -> None:
        self.signals = signals
        self.labels = np.asarray(labels, dtype=np.float32)
        self.labels = self.labels[:, None] if self.labels.ndim == 1 else self.labels
        self.indices = np.asarray(indices, dtype=np.int64)
        if len(self.labels) != len(signals):
            raise ConfigError(
                f"labels have {len(self.labels)} rows but signals {len(signals)}; they must align."
            )
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= len(signals)):
            raise ConfigError(
                f"indices must lie in [0, {len(signals)}), got {self.indices.min()}..{self.indices.max()}."
            )
        self.augment = augment
        self.fs = float(fs)
        self.seed = int(seed)
        self._rng: np.random.Generator | None = None
        self._rng_key: int | None = None

    def __len__(self) -> int:
        return int(self.indices.size)

    def _generator(self) -> np.random.Generator:
        """A generator per process: seeded from ``seed`` and, in a worker, the worker's own torch seed."""
        info = torch.utils.data.get_worker_info()
        key = -1 if info is None else info.id
        if self._rng is None or self._rng_key != key:
            entropy = [self.seed] if info is None else [self.seed, int(info.seed) % (2**63)]
            self._rng, self._rng_key = np.random.default_rng(entropy), key
        return self._rng

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = int(self.indices[i])
        x = np.array(self.signals[row], dtype=np.float32)
        if self.augment is not None:
            x = np.asarray(self.augment(x, self.fs, self._generator()), dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(self.labels[row].copy())

    # A memmap would be pickled as a full in-memory copy when workers are spawned: send its file instead.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        sig = self.signals
        whole_file = isinstance(sig, np.memmap) and sig.filename and sig.base is getattr(sig, "_mmap", None)
        if whole_file and sig.flags.c_contiguous:  # an original memmap, not a view of one
            state["signals"] = ("memmap", str(sig.filename), sig.dtype.str, tuple(sig.shape), int(sig.offset))
        state["_rng"], state["_rng_key"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        sig = state["signals"]
        if isinstance(sig, tuple) and sig and sig[0] == "memmap":
            _, filename, dtype, shape, offset = sig
            state["signals"] = np.memmap(
                filename, dtype=np.dtype(dtype), mode="r", shape=shape, offset=offset
            )
        self.__dict__.update(state)


def split_by_folds(
    folds: np.ndarray, train_folds: Sequence[int], val_folds: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and validation folds.

    Parameters
    ----------
    folds : np.ndarray, shape (N,)
        Fold of each row (NaN: in no split).
    train_folds, val_folds : sequence of int
        Disjoint fold numbers.
    """
    overlap = sorted(set(train_folds) & set(val_folds))
    if overlap:
        raise ConfigError(f"Folds {overlap} are in both train_folds and val_folds; make them disjoint.")
    folds = np.asarray(folds, dtype=np.float64)
    train = np.flatnonzero(np.isin(folds, list(train_folds)))
    val = np.flatnonzero(np.isin(folds, list(val_folds)))
    return train, val


def subsample_indices(
    indices: np.ndarray, fraction: float = 1.0, max_n: int | None = None, seed: int = 0
) -> np.ndarray:
    """A seeded random subset (sorted) of ``indices``: ``fraction`` of them, at most ``max_n``."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"train_fraction must be in (0, 1], got {fraction}.")
    if max_n is not None and max_n < 1:
        raise ConfigError(f"max_train must be >= 1 (or null for all), got {max_n}.")
    n = max(1, math.floor(len(indices) * fraction)) if len(indices) else 0
    n = min(n, max_n) if max_n is not None else n
    if n >= len(indices):
        return np.asarray(indices)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(np.asarray(indices), size=n, replace=False))


def _check_patient_disjoint(meta: pd.DataFrame, train: np.ndarray, val: np.ndarray) -> None:
    if "patient_id" not in meta.columns:
        return
    pid = meta["patient_id"]
    shared = set(pid.iloc[train].dropna()) & set(pid.iloc[val].dropna())
    if shared:
        raise ConfigError(
            f"{len(shared)} patient(s) (e.g. {sorted(map(str, shared))[:3]}) have records in both the "
            "training and "
            "the validation folds. Use folds that are patient-disjoint (PTB-XL strat_fold is)."
        )


def _open(cache: Any) -> Any:
    if isinstance(cache, (str, Path)):

        return open_cache(cache)
    return cache


def _cache_fs(cache: Any) -> float:
    """Sampling rate (Hz) of a cache's signals: ``cache.fs``, else ``cache.preprocess.fs``, else 100."""
    fs = getattr(cache, "fs", None) or getattr(getattr(cache, "preprocess", None), "fs", None)
    return float(fs or 100.0)


class EcgDataModule(L.LightningDataModule):
    """Train / validation data from a prepared cache, split by fold, with the task's labels.

    Parameters
    ----------
    cache : PreparedCache or path
        The cache (anything with ``signals`` [N, L, T], ``meta`` DataFrame with a ``fold`` column, and
        ``preprocess`` (its ``fs`` is used) works).
    task : TaskSpec
        The task; its label statistics are fitted on the (subsampled) training rows: use :attr:`task`
        afterwards.
    train_folds, val_folds : sequence of int
        Folds of the two splits (default 1-8 and 9).
    train_fraction, max_train, subsample_seed
        Seeded subsampling of the training rows (recorded in :attr:`split_info`).
    augment : callable ``(x, fs, rng) -> x``, optional
        Train-only augmentation.
    batch_size, num_workers, seed
        Data-loader settings; ``seed`` seeds the augmentation stream.
    teacher : str, optional
        A teacher's predictions table (``ecglens.data.distill``); the **training** labels become
        ``(1 - teacher_weight) * label + teacher_weight * teacher`` (knowledge distillation). Validation labels
        and the fitted label statistics stay the true ones.
    teacher_weight : float
        Weight of the teacher's soft labels in [0, 1].

    Rows whose labels are all missing are left out of both splits (they carry no signal for the task).
    """

    def __init__(
        self,
        cache: Any,
        task: TaskSpec,
        *,
        train_folds: Sequence[int] = tuple(range(1, 9)),
        val_folds: Sequence[int] = (9,),
        train_fraction: float = 1.0,
        max_train: int | None = None,
        subsample_seed: int = 0,
        augment: Augmenter | None = None,
        batch_size: int = 64,
        num_workers: int = 2,
        seed: int = 0,
        teacher: str | None = None,
        teacher_weight: float = 0.5,
    ) -> None:
        super().__init__()
        self.cache = _open(cache)
        self.meta: pd.DataFrame = self.cache.meta.reset_index(drop=True)
        if "fold" not in self.meta.columns:
            raise ConfigError(
                "The cache metadata has no 'fold' column; rebuild the cache from a catalogue with "
                "folds (e.g. ptbxl_catalogue) or add one."
            )
        self.labels = task.labels_from_meta(self.meta)
        train, val = split_by_folds(self.meta["fold"].to_numpy(), train_folds, val_folds)
        labelled = ~np.all(np.isnan(self.labels), axis=1)
        train_all, val = train[labelled[train]], val[labelled[val]]
        self.train_indices = subsample_indices(train_all, train_fraction, max_train, subsample_seed)
        self.val_indices = val
        for name, idx, folds in (
            ("training", self.train_indices, train_folds),
            ("validation", val, val_folds),
        ):
            if idx.size == 0:
                raise ConfigError(
                    f"The {name} split is empty: no labelled rows in folds {list(folds)} of the cache "
                    f"(folds present: {sorted(self.meta['fold'].dropna().unique().tolist())})."
                )
        _check_patient_disjoint(self.meta, self.train_indices, self.val_indices)
        self.task = task.fit(self.labels[self.train_indices])
        self.train_labels = self.labels
        if teacher is not None:
            soft = teacher_labels(task, self.meta, read_teacher(teacher))
            missing = int(np.isnan(soft[self.train_indices]).all(axis=1).sum())
            if missing == self.train_indices.size:
                raise ConfigError(f"the teacher table {teacher} covers none of the training records.")
            self.train_labels = self.labels.copy()
            self.train_labels[self.train_indices] = blend_labels(
                self.labels[self.train_indices], soft[self.train_indices], teacher_weight)
        self.fs = _cache_fs(self.cache)
        self.augment, self.batch_size, self.num_workers, self.seed = augment, batch_size, num_workers, seed
        self.split_info = {
            "train_folds": list(train_folds),
            "val_folds": list(val_folds),
            "n_train": int(self.train_indices.size),
            "n_train_available": int(train_all.size),
            "n_val": int(val.size),
            "train_fraction": train_fraction,
            "max_train": max_train,
            "subsample_seed": subsample_seed,
            "n_unlabelled_dropped": int((~labelled[np.concatenate([train, val])]).sum()),
            "teacher": teacher,
            "teacher_weight": teacher_weight if teacher is not None else None,
        }

    @property
    def in_leads(self) -> int:
        return int(self.cache.signals.shape[1])

    def train_dataset(self) -> CacheDataset:
        return CacheDataset(
            self.cache.signals, self.train_labels, self.train_indices, self.augment, self.fs, self.seed
        )

    def val_dataset(self) -> CacheDataset:
        return CacheDataset(self.cache.signals, self.labels, self.val_indices, None, self.fs, self.seed)

    def _loader(self, ds: CacheDataset, train: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=train and len(ds) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset(), train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset(), train=False)

    def splits_table(self) -> pd.DataFrame:
        """``record_id, fold, split`` of every row used (``split`` is ``train`` or ``val``), and the cache's
        ``source`` (the dataset or reader a record came from) when it has one."""
        ids = self.meta["record_id"] if "record_id" in self.meta.columns else pd.Series(self.meta.index)
        parts = [
            pd.DataFrame(
                {
                    "row": idx,
                    "record_id": ids.iloc[idx].to_numpy(),
                    "fold": self.meta["fold"].iloc[idx].to_numpy(),
                    "split": name,
                    **({"source": self.meta["source"].iloc[idx].to_numpy()} if "source" in self.meta.columns
                       else {}),
                }
            )
            for name, idx in (("train", self.train_indices), ("val", self.val_indices))
        ]
        return pd.concat(parts, ignore_index=True)
