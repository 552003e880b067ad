"""Views of a prepared cache: a lead selection and / or other fold labels, with nothing copied.

A fine-tuning run on fewer leads (``finetune.leads``) or an experiment that holds out a seeded part of a fold
sees the cache through a :class:`CacheView`; the rows of its ``signals`` (a :class:`LeadSubset` when leads are
dropped) are read from the memory-mapped cache only when a batch needs them.

>>> eight = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
>>> view = CacheView(open_cache("caches/ptbxl"), eight)   # doctest: +SKIP
>>> view.signals.shape       # [n_records, 8, n_samples]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import ConfigError, LeadError
from ..leads import normalize_lead_name

__all__ = ["CacheView", "LeadSubset", "cache_leads"]


class LeadSubset:
    """Read-only view of a signal array ``[N, L, T]`` keeping some leads: ``view[i] -> [len(idx), T]``.

    Nothing is copied until a row is read, so a memory-mapped cache stays on disk.

    Parameters
    ----------
    signals : array-like, shape (N, L, T)
        The cache's signals (mV, at the cache's fs), usually a ``np.memmap``.
    lead_index : sequence of int
        Indices (into ``L``) of the leads to keep, in the order wanted.
    """

    def __init__(self, signals: Any, lead_index: Sequence[int]) -> None:
        self.base = signals
        self.lead_index = np.asarray(lead_index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.base.shape[0]), int(self.lead_index.size), int(self.base.shape[2]))

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return int(self.base.shape[0])

    def __getitem__(self, rows: Any) -> np.ndarray:
        return np.take(np.asarray(self.base[rows]), self.lead_index, axis=-2)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    # a memory map would be pickled as a full copy (spawned data-loader workers): send its file instead
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        sig = self.base
        if isinstance(sig, np.memmap) and sig.filename and sig.flags.c_contiguous:
            state["base"] = ("memmap", str(sig.filename), sig.dtype.str, tuple(sig.shape), int(sig.offset))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        base = state["base"]
        if isinstance(base, tuple) and base and base[0] == "memmap":
            _, filename, dtype, shape, offset = base
            state["base"] = np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=shape, offset=offset)
        self.__dict__.update(state)


def cache_leads(cache: Any) -> tuple[str, ...]:
    """The lead names of a cache (its ``leads``, else ``preprocess.leads``), in canonical spelling.

    Raises
    ------
    ConfigError
        The cache names no leads (prepare it with ``ecglens prepare`` so they are recorded).
    """
    leads = getattr(cache, "leads", None) or getattr(getattr(cache, "preprocess", None), "leads", None)
    if not leads:
        raise ConfigError("The cache declares no lead names (manifest 'leads' / preprocess.leads); prepare "
                          "it with `ecglens prepare` so the leads are recorded.")
    return tuple(normalize_lead_name(x) for x in leads)


class CacheView:
    """A prepared cache seen through a lead selection and / or other fold labels; nothing is copied.

    Parameters
    ----------
    cache : PreparedCache or similar
        Anything with ``signals`` ``[N, L, T]``, ``meta`` (with ``fold``), ``preprocess`` (and ``leads``).
    leads : sequence of str, optional
        Leads to keep, in this order (any alias spelling); ``None`` keeps all.
    folds : array-like, shape (N,), optional
        Replacement ``fold`` column (NaN: the row is in no split), e.g. to hold out a seeded part of a fold.

    Attributes
    ----------
    signals, meta, preprocess, manifest, path, fs, leads
        As on :class:`~ecglens.data.cache.PreparedCache`; ``preprocess.leads`` is the kept leads.
    lead_index : tuple of int
        Index of each kept lead in the cache's leads.
    """

    def __init__(self, cache: Any, leads: Sequence[str] | None = None, folds: Any = None) -> None:
        self.base = cache
        all_leads = cache_leads(cache)
        wanted = all_leads if leads is None else tuple(normalize_lead_name(x) for x in leads)
        missing = [x for x in wanted if x not in all_leads]
        if missing:
            raise LeadError(f"Lead(s) {missing} are not in the cache (its leads: {', '.join(all_leads)}). "
                            "Choose leads the cache has, or prepare a cache with them.")
        index = [all_leads.index(x) for x in wanted]
        same = index == list(range(len(all_leads)))
        self.signals = cache.signals if same else LeadSubset(cache.signals, index)
        meta = cache.meta
        if folds is not None:
            folds = np.asarray(folds, dtype=np.float64)
            if folds.shape != (len(meta),):
                raise ConfigError(f"folds must have one entry per cache row ({len(meta)}), got shape "
                                  f"{folds.shape}.")
            meta = meta.assign(fold=folds)
        self.meta = meta
        pre = getattr(cache, "preprocess", None)
        self.preprocess = None if pre is None else dataclasses.replace(pre, leads=wanted)
        self.manifest = {**dict(getattr(cache, "manifest", {}) or {}), "leads": list(wanted)}
        self.path = getattr(cache, "path", None)
        self.leads = wanted
        self.lead_index = tuple(index)

    @property
    def fs(self) -> float:
        """Sampling rate of the signals in Hz (the cache's; 100 Hz if it declares none)."""
        fs = getattr(self.base, "fs", None) or getattr(self.preprocess, "fs", None)
        return float(fs or 100.0)

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    def __repr__(self) -> str:
        return f"CacheView({self.path!s}, leads={','.join(self.leads)}, n={len(self)})"
