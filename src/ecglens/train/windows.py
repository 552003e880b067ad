"""Predict over windows of the length a model was trained on.

A model trained on random crops of ``crop_seconds`` (``augment.spec.crop_seconds``) of a longer cached window
has only ever seen inputs of the crop's length. Shown the whole cached window at once, its global pooling
averages over a longer stretch than in training, and its estimates shift (for the shipped PTB-XL age model,
trained on 4 s crops of 10 s records, the age bias on training fold 8 went from -1.5 to -0.9 years when it was
shown 4 s windows instead of the whole 10 s; docs/results.md). So a checkpoint trained with crops stores the
crop length as its input contract (``Preprocess.seconds``), and every prediction of a longer input —
validation during training, the validation metrics of the run,
:meth:`Checkpoint.predict <ecglens.train.checkpoint.Checkpoint.predict>`, ``ecglens evaluate`` and
:class:`ecglens.Predictor` — cuts it into windows of that length covering it evenly
(:func:`ecglens.predict.plan_windows`: a 10 s record and a 4 s model give windows at 0, 3 and 6 s) and
averages the postprocessed outputs over the windows (``age`` in years, ``p_female`` as a probability).
Losses are computed on the window-averaged raw outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["inference_window", "mean_over_windows", "window_starts", "windowed_raw"]


def window_starts(n_total: int, width: int | None) -> list[int] | None:
    """Window starts (samples) for an input of ``n_total`` samples and windows of ``width`` samples.

    Returns
    -------
    list of int or None
        ``None`` when the input is used whole (no ``width``, or ``n_total <= width``); otherwise the starts of
        :func:`ecglens.predict.plan_windows` (no cap on the number of windows).
    """
    if width is None or n_total <= width:
        return None
    from ..predict import plan_windows

    return plan_windows(int(n_total), int(width), max_windows=None, crop="center")[0]


def windowed_raw(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                 width: int | None) -> torch.Tensor:
    """Raw model outputs per window.

    Parameters
    ----------
    forward : callable
        The model: ``[batch, leads, samples] -> [batch, K]``.
    x : torch.Tensor, shape (N, leads, T)
        Model input at the model's fs.
    width : int or None
        Window length in samples (``None``: use ``x`` whole).

    Returns
    -------
    torch.Tensor, shape (N, W, K)
        ``W = 1`` when ``x`` is used whole; all windows go through the model as one batch of ``W * N``.
    """
    starts = window_starts(x.shape[-1], width)
    if starts is None:
        return forward(x)[:, None]
    n = x.shape[0]
    raw = forward(torch.cat([x[..., s : s + int(width)] for s in starts]))
    return raw.reshape(len(starts), n, -1).transpose(0, 1)


def mean_over_windows(task: Any, raw: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """``task.postprocess`` of each window, averaged over the windows.

    Parameters
    ----------
    task : TaskSpec
        Turns raw outputs into named outputs (years, probabilities...).
    raw : torch.Tensor or np.ndarray, shape (N, W, K)
        Raw outputs per window (:func:`windowed_raw`).

    Returns
    -------
    dict of str to np.ndarray, each shape (N,)
    """
    raw = torch.as_tensor(raw)
    per_window = [task.postprocess(raw[:, w]) for w in range(raw.shape[1])]
    if len(per_window) == 1:
        return per_window[0]
    return {k: np.mean([np.asarray(o[k], dtype=np.float64) for o in per_window], axis=0)
            for k in per_window[0]}


def inference_window(crop_seconds: float | None, fs: float | None, n_samples: int | None) -> int | None:
    """Window length (samples) for a model trained on ``crop_seconds`` crops of ``n_samples``-long inputs.

    ``None`` (use inputs whole) when there is no crop, the sampling rate is unknown, or the crop is not shorter
    than the input.
    """
    if crop_seconds is None or fs is None or n_samples is None:
        return None
    width = round(float(crop_seconds) * float(fs))
    return width if 0 < width < int(n_samples) else None
