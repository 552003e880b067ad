"""Hybrid convolutional-recurrent networks: ``cnn_bigru``.

Takes ``x`` ``[batch, in_leads, n_samples]`` in mV (typically 100 Hz x 10 s = 1000 samples; any length works).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._registry import register_model
from .layers import (
    EcgModel,
    GroupSpec,
    check_dropout,
    check_int_sequence,
    check_positive_int,
    conv_pool_block,
    init_conv_weights,
    rnn_layer_params,
)
from .rnn import pool_sequence

__all__ = ["CnnBiGru"]


@register_model("cnn_bigru")
class CnnBiGru(EcgModel):
    """CNN + bidirectional GRU hybrid (the CNN-BiGRU family compared with plain CNNs for ECG age and sex).

    Convolutional blocks (``conv-BN-ReLU-max-pool``) extract local waveform features and shorten the sequence;
    stacked bidirectional GRU layers (Cho et al. 2014) model the rhythm over the whole record; max and mean
    over time of the GRU output are concatenated (``num_features = 4 * hidden``). This is the generic
    CNN+BiGRU design used in ECG age/sex estimation studies; the sizes are ecglens defaults for 100 Hz input
    (1000 samples -> 125 GRU steps), not a reproduction of one paper's exact configuration. About 0.21 M
    parameters with the defaults.

    Parameters
    ----------
    in_leads : int
        Input leads; ``x`` is ``[batch, in_leads, n_samples]`` in mV.
    num_outputs : int
        Head outputs.
    channels, kernels, pools : sequence of int
        Per conv block: channels, taps, max-pool factor (equal lengths).
    hidden : int
        GRU hidden units per direction.
    num_layers : int
        Stacked GRU layers.
    rnn_dropout : float
        Dropout between GRU layers.
    dropout : float
        Dropout before the head's linear layer.

    Notes
    -----
    ``first_conv = "cnn.0.0.0"``.
    """

    first_conv = ("cnn.0.0.0",)

    def __init__(
        self,
        in_leads: int = 12,
        num_outputs: int = 1,
        channels: Sequence[int] = (32, 64, 128),
        kernels: Sequence[int] = (7, 7, 5),
        pools: Sequence[int] = (2, 2, 2),
        hidden: int = 64,
        num_layers: int = 2,
        rnn_dropout: float = 0.1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        channels = check_int_sequence("channels", channels)
        kernels = check_int_sequence("kernels", kernels, len(channels))
        pools = check_int_sequence("pools", pools, len(channels))
        hidden = check_positive_int("hidden", hidden)
        num_layers = check_positive_int("num_layers", num_layers)
        rnn_dropout = check_dropout(rnn_dropout, "rnn_dropout")
        ins = (in_leads, *channels[:-1])
        self.cnn = nn.Sequential(
            *[conv_pool_block(a, b, k, p) for a, b, k, p in zip(ins, channels, kernels, pools, strict=True)]
        )
        self.rnn = nn.GRU(
            channels[-1],
            hidden,
            num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=rnn_dropout if num_layers > 1 else 0.0,
        )
        self.num_features = 4 * hidden
        self.head = self.build_head(num_outputs)
        init_conv_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> ``[batch, 4 * hidden]``."""
        h = self.cnn(self.check_input(x)).transpose(1, 2)  # [B, T', C]
        h, _ = self.rnn(h)
        return pool_sequence(h)

    def group_modules(self) -> GroupSpec:
        cnn = [(f"conv{i + 1}", m) for i, m in enumerate(self.cnn)]
        rnn = [(f"gru{i + 1}", params) for i, params in enumerate(rnn_layer_params(self.rnn))]
        return [*cnn, *rnn, ("head", self.head)]
