"""Plain convolutional networks: ``cnn_baseline`` and ``attia_cnn``.

Both take ``x`` ``[batch, in_leads, n_samples]`` in mV (typically 100 Hz x 10 s = 1000 samples; any length
works) and pool globally over time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from ._registry import register_model
from .layers import (
    EcgModel,
    GroupSpec,
    LeadMixConv2d,
    check_int_sequence,
    check_positive_int,
    conv_pool_block,
    init_conv_weights,
)

__all__ = ["AttiaCnn", "PlainCnn1d"]


@register_model("cnn_baseline")
class PlainCnn1d(EcgModel):
    """Plain CNN baseline: conv-BN-ReLU-max-pool blocks and global average pooling (no paper; a reference).

    Architecture: ``len(channels)`` blocks of ``Conv1d(kernel_size) -> BN -> ReLU -> MaxPool1d(2)``; the
    first block is ``stem``; global average pooling over time gives ``num_features = channels[-1]``; head
    ``Dropout -> Linear``. Defaults: about 0.19 M parameters for 12 leads.

    Parameters
    ----------
    in_leads : int
        Input leads; ``x`` is ``[batch, in_leads, n_samples]`` in mV, any ``n_samples``.
    num_outputs : int
        Head outputs.
    channels : sequence of int
        Output channels of each block (default ``(32, 64, 128, 128)``).
    kernel_size : int
        Conv taps (default 7 = 70 ms at 100 Hz).
    dropout : float
        Dropout before the head's linear layer.

    Notes
    -----
    ``first_conv = "stem.0.0"`` (the only layer that sees the leads).
    """

    first_conv = ("stem.0.0",)

    def __init__(
        self,
        in_leads: int = 12,
        num_outputs: int = 1,
        channels: Sequence[int] = (32, 64, 128, 128),
        kernel_size: int = 7,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        channels = check_int_sequence("channels", channels)
        kernel_size = check_positive_int("kernel_size", kernel_size)
        self.stem = conv_pool_block(in_leads, channels[0], kernel_size, 2)
        self.blocks = nn.Sequential(
            *[conv_pool_block(a, b, kernel_size, 2) for a, b in itertools.pairwise(channels)]
        )
        self.num_features = channels[-1]
        self.head = self.build_head(num_outputs)
        init_conv_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> ``[batch, channels[-1]]``."""
        x = self.blocks(self.stem(self.check_input(x)))
        return x.mean(dim=-1)

    def group_modules(self) -> GroupSpec:
        blocks = [(f"block{i + 1}", b) for i, b in enumerate(self.blocks)]
        return [("stem", self.stem), *blocks, ("head", self.head)]


@register_model("attia_cnn")
class AttiaCnn(EcgModel):
    """CNN of Attia et al. 2019 (age and sex from the 12-lead ECG): temporal conv blocks, then a spatial conv.

    Follows Z. I. Attia et al., "Age and Sex Estimation Using Artificial Intelligence From Standard 12-Lead
    ECGs", Circ Arrhythm Electrophysiol 12:e007284 (2019): every lead is filtered in time by the same stack of
    ``conv-BN-ReLU-max-pool`` blocks (a ``(k x 1)`` 2-D convolution in the paper), then one "spatial"
    convolution spans all leads at once (kernel ``n_leads x 1``), followed by fully connected layers with
    dropout.

    Deviations: the paper works at 500 Hz with 5000 samples and flattens the last feature map into the dense
    layers; here the spatial features are averaged over time (any length works), the pooling factors are
    reduced for 100 Hz (default total downsampling 64: 1000 samples -> 16 steps), and the layer sizes are
    ecglens defaults (all configurable). The dense layers (``neck``) belong to the features, so
    ``num_features = hidden[-1]`` and ``reset_head`` keeps them. About 0.18 M parameters with the defaults.

    Parameters
    ----------
    in_leads : int
        Input leads; ``x`` is ``[batch, in_leads, n_samples]`` in mV.
    num_outputs : int
        Head outputs.
    filters, kernels, pools : sequence of int
        Per temporal block: channels, conv taps, max-pool factor (equal lengths).
    spatial_filters : int
        Channels of the across-leads convolution.
    hidden : sequence of int
        Widths of the fully connected layers after pooling (the last is ``num_features``).
    dropout : float
        Dropout after each fully connected layer and before the head's linear layer.

    Notes
    -----
    ``first_conv = "spatial.0"``: the temporal blocks are shared across leads (one input channel), so the
    spatial convolution is the only layer whose size depends on the lead count.
    """

    first_conv = ("spatial.0",)

    def __init__(
        self,
        in_leads: int = 12,
        num_outputs: int = 1,
        filters: Sequence[int] = (16, 16, 32, 32, 64, 64, 64, 64),
        kernels: Sequence[int] = (7, 5, 5, 5, 5, 3, 3, 3),
        pools: Sequence[int] = (2, 2, 2, 2, 2, 2, 1, 1),
        spatial_filters: int = 128,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        filters = check_int_sequence("filters", filters)
        kernels = check_int_sequence("kernels", kernels, len(filters))
        pools = check_int_sequence("pools", pools, len(filters))
        hidden = check_int_sequence("hidden", hidden)
        spatial_filters = check_positive_int("spatial_filters", spatial_filters)
        ins = (1, *filters[:-1])
        self.temporal = nn.Sequential(
            *[conv_pool_block(a, b, k, p) for a, b, k, p in zip(ins, filters, kernels, pools, strict=True)]
        )
        self.spatial = nn.Sequential(
            LeadMixConv2d(filters[-1], spatial_filters, in_leads),
            nn.BatchNorm2d(spatial_filters),
            nn.ReLU(inplace=True),
        )
        dense: list[nn.Module] = []
        for a, b in zip((spatial_filters, *hidden[:-1]), hidden, strict=True):
            dense += [
                nn.Linear(a, b, bias=False),
                nn.BatchNorm1d(b),
                nn.ReLU(inplace=True),
                nn.Dropout(self.dropout),
            ]
        self.neck = nn.Sequential(*dense)
        self.num_features = hidden[-1]
        self.head = self.build_head(num_outputs)
        init_conv_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> ``[batch, hidden[-1]]``."""
        b, n_leads, t = self.check_input(x).shape
        h = self.temporal(x.reshape(b * n_leads, 1, t))  # [B*L, C, T']
        h = h.reshape(b, n_leads, h.shape[1], h.shape[2]).transpose(1, 2)  # [B, C, L, T']
        h = self.spatial(h).mean(dim=(2, 3))  # [B, S]
        return self.neck(h)

    def group_modules(self) -> GroupSpec:
        temporal = [(f"temporal{i + 1}", m) for i, m in enumerate(self.temporal)]
        return [*temporal, ("spatial", self.spatial), ("neck", self.neck), ("head", self.head)]
