"""Windows: where a model's input windows go on a longer record, windowed inference and averaging.

A model sees inputs of its contract's length (``Preprocess.n_samples``, at ``Preprocess.fs``). A longer record
is cut into windows of that length covering it evenly (:func:`plan_windows`: a 10 s record and a 4 s model give
windows at 0, 3 and 6 s), each window is predicted, and the postprocessed outputs are averaged
(:func:`mean_over_windows`, :func:`aggregate_windows`).

Why: a model trained on random crops of ``crop_seconds`` (``augment.spec.crop_seconds``) of a longer cached
window has only ever seen inputs of the crop's length. Shown the whole cached window at once, its global pooling
averages over a longer stretch than in training, and its estimates shift (for the shipped PTB-XL age model,
trained on 4 s crops of 10 s records, the age bias on training fold 8 went from -1.5 to -0.9 years when it was
shown 4 s windows instead of the whole 10 s; docs/results.md). So a checkpoint trained with crops stores the
crop length as its input contract (``Preprocess.seconds``), and every prediction of a longer input —
validation during training, :meth:`Checkpoint.predict <ecglens.artifact.checkpoint.Checkpoint.predict>`,
``ecglens evaluate`` and :class:`ecglens.Predictor` — uses windows. Losses are computed on the window-averaged
raw outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_WINDOWS", "WINDOW_TOLERANCE", "aggregate_records", "aggregate_windows", "inference_window",
           "mean_over_windows", "plan_windows", "window_starts", "windowed_raw"]

#: a record longer than ``k`` windows by less than this fraction of a window is centre-cropped to ``k`` windows
WINDOW_TOLERANCE: float = 0.1
#: most windows predicted per record by default (5 minutes of 10 s windows); longer records are sampled evenly
DEFAULT_MAX_WINDOWS: int = 30
#: where a single window sits in a longer (crop) or shorter (pad) record, by crop mode: excess -> offset
_SINGLE_OFFSET: dict[str, Callable[[int], int]] = {"center": lambda excess: excess // 2, "start": lambda excess: 0}


def plan_windows(n_total: int, width: int, max_windows: int | None = DEFAULT_MAX_WINDOWS,
                 crop: str = "center") -> tuple[list[int], bool]:
    """Where the model windows go on a record of ``n_total`` samples (all at the model's fs).

    Parameters
    ----------
    n_total : int
        Record length (samples).
    width : int
        Window length (samples, ``Preprocess.n_samples``).
    max_windows : int or None
        Most windows; longer records get this many windows spread evenly (with gaps).
    crop : {"center", "start"}
        Where a single window sits in a record shorter than 1 + :data:`WINDOW_TOLERANCE` windows.

    Returns
    -------
    starts : list of int
        Window starts (negative: padding before the record's first sample).
    cropped : bool
        True when some samples of the record are in no window.
    """
    n_win = max(1, math.ceil(n_total / width - WINDOW_TOLERANCE))
    if n_win == 1:
        return [_SINGLE_OFFSET[crop](n_total - width) if n_total >= width
                else -_SINGLE_OFFSET[crop](width - n_total)], n_total > width
    capped = max_windows is not None and n_win > int(max_windows)
    n_win = int(max_windows) if capped else n_win
    if n_win == 1:
        return [_SINGLE_OFFSET[crop](n_total - width)], True
    hop = (n_total - width) // (n_win - 1)
    return [k * hop for k in range(n_win)], capped and hop > width


def window_starts(n_total: int, width: int | None) -> list[int] | None:
    """Window starts (samples) for an input of ``n_total`` samples and windows of ``width`` samples.

    Returns
    -------
    list of int or None
        ``None`` when the input is used whole (no ``width``, or ``n_total <= width``); otherwise the starts of
        :func:`plan_windows` (no cap on the number of windows).
    """
    if width is None or n_total <= width:
        return None
    return plan_windows(int(n_total), int(width), max_windows=None, crop="center")[0]


def windowed_raw(forward: Callable[[Any], Any], x: Any, width: int | None) -> Any:
    """Raw model outputs per window.

    Parameters
    ----------
    forward : callable
        The model: ``[batch, leads, samples] -> [batch, K]`` (torch tensors).
    x : torch.Tensor, shape (N, leads, T)
        Model input at the model's fs.
    width : int or None
        Window length in samples (``None``: use ``x`` whole).

    Returns
    -------
    torch.Tensor, shape (N, W, K)
        ``W = 1`` when ``x`` is used whole; all windows go through the model as one batch of ``W * N``.
    """
    import torch

    starts = window_starts(x.shape[-1], width)
    if starts is None:
        return forward(x)[:, None]
    n = x.shape[0]
    raw = forward(torch.cat([x[..., s : s + int(width)] for s in starts]))
    return raw.reshape(len(starts), n, -1).transpose(0, 1)


def mean_over_windows(task: Any, raw: Any) -> dict[str, np.ndarray]:
    """``task.postprocess`` of each window, averaged over the windows.

    Parameters
    ----------
    task : OutputSpec
        Turns raw outputs into named outputs (years, probabilities...).
    raw : torch.Tensor or np.ndarray, shape (N, W, K)
        Raw outputs per window (:func:`windowed_raw`).

    Returns
    -------
    dict of str to np.ndarray, each shape (N,)
    """
    if hasattr(raw, "detach"):
        raw = raw.detach().cpu().double().numpy()
    raw = np.asarray(raw)
    per_window = [task.postprocess(raw[:, w]) for w in range(raw.shape[1])]
    if len(per_window) == 1:
        return per_window[0]
    return {k: np.mean([np.asarray(o[k], dtype=np.float64) for o in per_window], axis=0)
            for k in per_window[0]}


def aggregate_windows(per_window: Mapping[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and SD (ddof=1; NaN for one window) of each output over the windows of one record.

    Parameters
    ----------
    per_window : mapping of str to np.ndarray, each shape (n_windows,)
        Postprocessed outputs of each window of one record.

    Returns
    -------
    means, spread : dict of str to float
    """
    means = {k: float(np.mean(v)) for k, v in per_window.items()}
    with np.errstate(invalid="ignore"):  # infinite outputs: NaN spread (such a record is refused anyway)
        spread = {k: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan") for k, v in per_window.items()}
    return means, spread


def aggregate_records(per_window: Mapping[str, np.ndarray], counts: Sequence[int] | np.ndarray
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`aggregate_windows` of many records at once: records whose windows follow each other.

    Records with the same number of windows are reduced together as one ``[n_records, n_windows]`` array (the
    same NumPy reductions along the last axis as for one record), so a batch of 10-s records costs a few calls
    instead of a few per record.

    Parameters
    ----------
    per_window : mapping of str to np.ndarray, each shape (sum(counts),)
        Postprocessed outputs of every window, the windows of record 0 first, then those of record 1, ...
    counts : sequence of int, shape (n_records,)
        Windows of each record (each >= 1).

    Returns
    -------
    means, spread : dict of str to np.ndarray, float64, each shape (n_records,)
        Mean and SD (ddof=1; NaN for a record of one window) of each output per record.
    """
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    means = {k: np.empty(len(counts)) for k in per_window}
    spread = {k: np.full(len(counts), np.nan) for k in per_window}
    for width in np.unique(counts):
        rows = np.flatnonzero(counts == width)
        index = starts[rows, None] + np.arange(width)  # [n_rows, width] window positions
        for k, values in per_window.items():
            block = np.asarray(values, dtype=np.float64)[index]
            means[k][rows] = block.mean(axis=-1)
            if width > 1:
                with np.errstate(invalid="ignore"):  # infinite outputs: NaN spread (the row is refused anyway)
                    spread[k][rows] = block.std(axis=-1, ddof=1)
    return means, spread


def inference_window(crop_seconds: float | None, fs: float | None, n_samples: int | None) -> int | None:
    """Window length (samples) for a model trained on ``crop_seconds`` crops of ``n_samples``-long inputs.

    ``None`` (use inputs whole) when there is no crop, the sampling rate is unknown, or the crop is not shorter
    than the input.
    """
    if crop_seconds is None or fs is None or n_samples is None:
        return None
    width = round(float(crop_seconds) * float(fs))
    return width if 0 < width < int(n_samples) else None
