"""Tests of ecglens.evaluate.explain: attribution shapes, integrated-gradients completeness, lead importance.

Oracles: for a linear model ``f(x) = sum(w * x) + b`` integrated gradients with a zero baseline are exactly
``w * x`` and the gradient is ``w``; for a non-linear CNN the sum of the attributions must equal
``f(x) - f(0)`` (completeness, Sundararajan et al. 2017) up to the integration error.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("captum", reason="attributions need the optional dependency captum (ecglens[explain])")

from ecglens.evaluate.explain import (
    attribute,
    completeness_gap,
    lead_importance,
    resample_attribution,
    windows_to_timeline,
)
from ecglens.exceptions import ConfigError
from ecglens.models import create_model


class Linear(nn.Module):
    """``f(x)[:, k] = sum(w_k * x) + b_k`` for x [batch, leads, samples]."""

    def __init__(self, leads: int, samples: int, outputs: int = 2) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(outputs, leads, samples, generator=gen))
        self.b = nn.Parameter(torch.randn(outputs, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bls,kls->bk", x, self.w) + self.b


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    torch.manual_seed(0)
    return create_model("cnn_baseline", in_leads=12, num_outputs=3, channels=(8, 16)).eval()


@pytest.fixture
def x(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0, 0.5, size=(3, 12, 500)).astype(np.float32)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_shapes_single_and_batch(cnn: nn.Module, x: np.ndarray, method: str) -> None:
    batch = attribute(cnn, x, output_index=1, method=method, n_steps=8)
    single = attribute(cnn, x[0], output_index=1, method=method, n_steps=8)
    assert batch.shape == x.shape and single.shape == x[0].shape
    assert batch.dtype == np.float32 and np.isfinite(batch).all() and np.abs(batch).sum() > 0
    np.testing.assert_allclose(single, batch[0], rtol=1e-4, atol=1e-6)
    if method == "saliency":
        assert (batch >= 0).all()


def test_linear_model_exact(x: np.ndarray) -> None:
    model = Linear(12, 500)
    w = model.w.detach().numpy()[1]
    ig = attribute(model, x, output_index=1, method="integrated_gradients", n_steps=4)
    np.testing.assert_allclose(ig, w[None] * x, rtol=1e-4, atol=1e-5)
    sal = attribute(model, x, output_index=1, method="saliency")
    np.testing.assert_allclose(sal, np.broadcast_to(np.abs(w), x.shape), rtol=1e-6)


def test_integrated_gradients_completeness(cnn: nn.Module, x: np.ndarray) -> None:
    attr = attribute(cnn, x, output_index=0, method="integrated_gradients", n_steps=64)
    with torch.no_grad():
        fx = cnn(torch.from_numpy(x))[:, 0].numpy()
        f0 = cnn(torch.zeros_like(torch.from_numpy(x)))[:, 0].numpy()
    total = attr.reshape(len(x), -1).sum(axis=1)
    np.testing.assert_allclose(total, fx - f0, atol=0.02 * np.abs(fx - f0).max() + 1e-4)
    gap = completeness_gap(cnn, x, attr, output_index=0)
    np.testing.assert_allclose(gap, total - (fx - f0), atol=1e-4)


def test_checkpoint_like_object_is_accepted(cnn: nn.Module, x: np.ndarray) -> None:
    class Holder:
        model = cnn

    np.testing.assert_allclose(attribute(Holder(), x[0], 2), attribute(cnn, x[0], 2), rtol=1e-6)


def test_bad_arguments(cnn: nn.Module, x: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        attribute(cnn, x, output_index=3)
    with pytest.raises(ConfigError, match="unknown attribution method"):
        attribute(cnn, x, output_index=0, method="shap")


def test_lead_importance() -> None:
    attr = np.zeros((12, 100))
    attr[3, 10:20] = -2.0
    attr[7, 50] = 1.0
    share = lead_importance(attr)
    assert share.shape == (12,) and share.sum() == pytest.approx(1.0)
    assert share[3] == pytest.approx(20 / 21) and share[7] == pytest.approx(1 / 21)
    batch = lead_importance(np.stack([attr, np.zeros_like(attr)]))
    assert batch.shape == (2, 12) and batch[1].sum() == 0.0


def test_windows_to_timeline_and_resampling() -> None:
    attr = np.stack([np.full((2, 4), 1.0), np.full((2, 4), 3.0)])
    timeline = windows_to_timeline(attr, [0, 2], n_total=8)
    np.testing.assert_allclose(timeline[0, :6], [1, 1, 2, 2, 3, 3])  # overlap averaged
    assert np.isnan(timeline[:, 6:]).all()                           # not covered
    padded = windows_to_timeline(attr[:1], [-1], n_total=3)           # window starts with padding
    np.testing.assert_allclose(padded[0], [1, 1, 1])
    up = resample_attribution(np.arange(10.0)[None], fs=100.0, fs_out=500.0, n_out=50)
    np.testing.assert_allclose(up[0, ::5], np.arange(10.0))
    assert up.shape == (1, 50) and np.isnan(up[0, -1])                # beyond the last sample
