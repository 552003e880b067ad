"""Attributions: which leads and which moments of an ECG a model's output is sensitive to.

Two gradient methods (through `captum <https://captum.ai>`_), for one output of a model:

* ``"saliency"`` — the absolute gradient of the output with respect to every input sample, ``|df/dx|``. Cheap
  (one backward pass); says where a *small* change of the input would move the output, not how much each sample
  contributed.
* ``"integrated_gradients"`` — Sundararajan et al. 2017: the gradient averaged along the straight path from a
  baseline (here a flat line at 0 mV, or a given one) to the input, times ``(x - baseline)``. Signed; its sum
  over leads and samples equals ``f(x) - f(baseline)`` up to the integration error ("completeness"), so each
  value is a share of the output in the output's own units.

What these maps are and are not: they describe the *model*, not the physiology. A large attribution means the
output depends on that stretch of signal for this record; it does not mean the segment is clinically abnormal,
and attributions from gradient methods are noisy and depend on the baseline. Use them to spot models that look
at artefacts (padding, a noisy lead, the pacemaker spike), not as a diagnosis.

>>> attr = attribute(model, x, output_index=0, method="integrated_gradients")   # doctest: +SKIP
>>> lead_importance(attr)                      # share of |attribution| per lead, sums to 1   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .._optional import require
from ..exceptions import ConfigError, EcglensError

__all__ = ["ATTRIBUTION_METHODS", "attribute", "completeness_gap", "lead_importance", "resample_attribution",
           "windows_to_timeline"]

#: what needs captum, for the missing-dependency message
_FEATURE = "attributions"


def _as_model(model: Any) -> nn.Module:
    """Accept an ``nn.Module`` or anything with a ``.model`` module (a loaded checkpoint)."""
    module = getattr(model, "model", model)
    if not isinstance(module, nn.Module):
        raise EcglensError(f"attribute() needs a torch model (nn.Module) or a loaded checkpoint, got "
                           f"{type(model).__name__}.")
    return module


def _saliency(model: nn.Module, x: torch.Tensor, target: int, baseline: torch.Tensor, n_steps: int,
              internal_batch_size: int | None) -> torch.Tensor:
    return require("captum.attr", _FEATURE).Saliency(model).attribute(x, target=target, abs=True)


def _integrated_gradients(model: nn.Module, x: torch.Tensor, target: int, baseline: torch.Tensor, n_steps: int,
                          internal_batch_size: int | None) -> torch.Tensor:
    integrated_gradients = require("captum.attr", _FEATURE).IntegratedGradients(model)
    return integrated_gradients.attribute(x, baselines=baseline, target=target, n_steps=n_steps,
                                          internal_batch_size=internal_batch_size)


#: method name -> implementation ``(model, x, target, baseline, n_steps, internal_batch_size) -> attributions``
ATTRIBUTION_METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "saliency": _saliency,
    "integrated_gradients": _integrated_gradients,
}


def _check_output_index(model: nn.Module, x: torch.Tensor, output_index: int) -> None:
    with torch.no_grad():
        n_out = model(x[:1]).shape[-1]
    if not 0 <= int(output_index) < n_out:
        raise ConfigError(f"output_index={output_index} is out of range: the model has {n_out} outputs "
                          f"(0..{n_out - 1}).")


def _as_batch(x: np.ndarray | torch.Tensor, device: torch.device) -> tuple[torch.Tensor, bool]:
    """``x`` as a float32 tensor [N, L, T] on ``device``, and whether it was a single record [L, T]."""
    arr = torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32))
    if arr.ndim not in (2, 3):
        raise EcglensError(f"x must be [leads, samples] or [batch, leads, samples], got shape {tuple(arr.shape)}.")
    return (arr[None] if arr.ndim == 2 else arr).to(device), arr.ndim == 2


def attribute(model: Any, x: np.ndarray | torch.Tensor, output_index: int, method: str = "saliency",
              n_steps: int = 50, baseline: np.ndarray | None = None,
              internal_batch_size: int | None = 64) -> np.ndarray:
    """Attribute one model output to every lead and sample of the input.

    Parameters
    ----------
    model : nn.Module or Checkpoint
        A model taking ``[batch, leads, samples]`` and returning ``[batch, n_outputs]`` (raw outputs, e.g. the
        standardised age or a logit); a loaded checkpoint's ``.model`` is used. Put in eval mode (not changed
        back).
    x : np.ndarray or torch.Tensor, shape (L, T) or (N, L, T)
        Model input, already brought to the model's input contract (fs, leads, filters).
    output_index : int
        Which raw output to explain (column of the model output).
    method : {"saliency", "integrated_gradients"}
        See the module docstring.
    n_steps : int
        Integration steps of integrated gradients (Gauss-Legendre; ignored by saliency).
    baseline : np.ndarray, optional
        Reference input of integrated gradients, broadcastable to ``x`` (default: zeros, a flat line at 0).
    internal_batch_size : int or None
        Integration points evaluated per forward pass (bounds memory).

    Returns
    -------
    np.ndarray, float32, same shape as ``x``
        Attributions in the units of the raw output (integrated gradients, signed) or the absolute gradient
        (saliency, non-negative).

    Raises
    ------
    ConfigError
        Unknown method, bad ``n_steps`` or ``output_index`` out of range.
    """
    if method not in ATTRIBUTION_METHODS:
        raise ConfigError(f"unknown attribution method {method!r}; choose one of {sorted(ATTRIBUTION_METHODS)}.")
    if int(n_steps) < 1:
        raise ConfigError(f"n_steps must be a positive integer, got {n_steps!r}.")
    require("captum.attr", _FEATURE)  # checked before any work
    module = _as_model(model).eval()
    device = next(module.parameters()).device
    inp, single = _as_batch(x, device)
    base = torch.zeros_like(inp) if baseline is None else torch.as_tensor(
        np.broadcast_to(np.asarray(baseline, dtype=np.float32), inp.shape).copy(), device=device)
    with torch.enable_grad():
        _check_output_index(module, inp, output_index)
        attr = ATTRIBUTION_METHODS[method](module, inp.clone().requires_grad_(True), int(output_index), base,
                                           int(n_steps), internal_batch_size)
    out = attr.detach().float().cpu().numpy()
    return out[0] if single else out


def completeness_gap(model: Any, x: np.ndarray, attributions: np.ndarray, output_index: int,
                     baseline: np.ndarray | None = None) -> np.ndarray:
    """How far integrated gradients are from completeness: ``sum(attr) - (f(x) - f(baseline))`` per record.

    Parameters
    ----------
    model : nn.Module or Checkpoint
    x, attributions : np.ndarray, shape (L, T) or (N, L, T)
    output_index : int
    baseline : np.ndarray, optional
        As given to :func:`attribute` (default zeros).

    Returns
    -------
    np.ndarray, shape (N,) (or a 0-d array for a single record)
        In the units of the raw output; small compared with ``f(x) - f(baseline)`` when ``n_steps`` suffices.
    """
    module = _as_model(model).eval()
    device = next(module.parameters()).device
    arr = np.asarray(x, dtype=np.float32)
    single = arr.ndim == 2
    arr = arr[None] if single else arr
    base = np.zeros_like(arr) if baseline is None else np.broadcast_to(np.asarray(baseline, np.float32), arr.shape)
    with torch.inference_mode():
        fx = module(torch.from_numpy(arr).to(device))[:, output_index].double().cpu().numpy()
        fb = module(torch.from_numpy(np.ascontiguousarray(base)).to(device))[:, output_index].double().cpu().numpy()
    total = np.asarray(attributions, dtype=np.float64).reshape(arr.shape[0], -1).sum(axis=1)
    gap = total - (fx - fb)
    return gap[0] if single else gap


def lead_importance(attr: np.ndarray) -> np.ndarray:
    """Share of the absolute attribution carried by each lead.

    Parameters
    ----------
    attr : np.ndarray, shape (L, T) or (N, L, T)
        Attributions (any sign).

    Returns
    -------
    np.ndarray, shape (L,) or (N, L)
        ``sum_t |attr| / sum_{l,t} |attr|``; sums to 1 over the leads (all zeros when the attribution is zero).
        NaN samples (e.g. times no window covered) are ignored.
    """
    a = np.abs(np.asarray(attr, dtype=np.float64))
    if a.ndim not in (2, 3):
        raise EcglensError(f"attr must be [leads, samples] or [batch, leads, samples], got shape {a.shape}.")
    per_lead = np.nansum(a, axis=-1)
    total = per_lead.sum(axis=-1, keepdims=True)
    return np.where(total > 0, per_lead / np.where(total > 0, total, 1.0), 0.0)


def windows_to_timeline(attr: np.ndarray, starts: Sequence[int], n_total: int) -> np.ndarray:
    """Place window attributions back on the record's time axis (at the model's fs), averaging overlaps.

    Parameters
    ----------
    attr : np.ndarray, shape (n_windows, L, T)
        Attributions of consecutive model inputs.
    starts : sequence of int
        Start of each window in samples of the (resampled) record; negative when the window begins with padding
        (a record shorter than the window, padded before its first sample).
    n_total : int
        Length of the resampled record in samples.

    Returns
    -------
    np.ndarray, shape (L, n_total)
        Mean attribution of the windows covering each sample; NaN where no window covers it (a cropped part).
    """
    attr = np.asarray(attr, dtype=np.float64)
    if attr.ndim != 3 or len(starts) != attr.shape[0]:
        raise EcglensError(f"attr must be [n_windows, L, T] with one start per window; got shape {attr.shape} "
                           f"and {len(starts)} starts.")
    n_leads, width = attr.shape[1], attr.shape[2]
    acc = np.zeros((n_leads, int(n_total)))
    count = np.zeros(int(n_total))
    for window, start in zip(attr, starts, strict=True):
        lo, hi = max(int(start), 0), min(int(start) + width, int(n_total))
        if hi <= lo:
            continue
        acc[:, lo:hi] += window[:, lo - int(start): hi - int(start)]
        count[lo:hi] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, acc / np.where(count > 0, count, 1), np.nan)


def resample_attribution(timeline: np.ndarray, fs: float, fs_out: float, n_out: int) -> np.ndarray:
    """Map an attribution timeline from the model's fs to another time grid (e.g. the displayed record).

    Parameters
    ----------
    timeline : np.ndarray, shape (L, n)
        Attribution per sample at ``fs`` Hz (sample ``i`` at time ``i / fs``); NaN where unknown.
    fs, fs_out : float
        Sampling rates (Hz) of the timeline and of the output grid.
    n_out : int
        Samples of the output grid (sample ``j`` at time ``j / fs_out``).

    Returns
    -------
    np.ndarray, shape (L, n_out)
        Linearly interpolated values; NaN outside the timeline and next to its NaN samples. Values are per
        sample of the *model input*: their colours compare times and leads; their sum is not preserved.
    """
    timeline = np.asarray(timeline, dtype=np.float64)
    t_in = np.arange(timeline.shape[-1]) / float(fs)
    t_out = np.arange(int(n_out)) / float(fs_out)
    out = np.empty((timeline.shape[0], int(n_out)))
    for i, row in enumerate(timeline):
        out[i] = np.interp(t_out, t_in, row, left=np.nan, right=np.nan)
    return out
