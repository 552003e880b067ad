"""Recurrent networks: ``bilstm`` (a strided conv stem, a bidirectional LSTM, and pooling over time).

Takes ``x`` ``[batch, in_leads, n_samples]`` in mV (typically 100 Hz x 10 s = 1000 samples; any length works).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._registry import register_model
from .layers import (
    ConvBnAct,
    EcgModel,
    GroupSpec,
    check_dropout,
    check_int_sequence,
    check_positive_int,
    init_conv_weights,
    rnn_layer_params,
)

__all__ = ["BiLstm", "pool_sequence"]


def pool_sequence(h: torch.Tensor) -> torch.Tensor:
    """Concat max and mean over time of an RNN output: ``[B, T, C] -> [B, 2C]`` (max first)."""
    return torch.cat([h.amax(dim=1), h.mean(dim=1)], dim=1)


@register_model("bilstm")
class BiLstm(EcgModel):
    """Bidirectional LSTM over a strided conv stem, with concat max+mean pooling over time.

    A standard recurrent ECG baseline (bidirectional LSTM, Hochreiter & Schmidhuber 1997; Schuster & Paliwal
    1997) as included in the PTB-XL benchmark of Strodthoff et al. 2021 (``lstm_bidir``). Deviation: instead
    of running the LSTM on every raw sample, a stem of strided ``conv-BN-ReLU`` layers (default 3 x stride 2)
    shortens the sequence 8-fold first (1000 samples at 100 Hz -> 125 steps), which makes CPU training
    practical; the pooled embedding concatenates max and mean over time of both directions
    (``num_features = 4 * hidden``). About 0.64 M parameters with the defaults.

    Parameters
    ----------
    in_leads : int
        Input leads; ``x`` is ``[batch, in_leads, n_samples]`` in mV.
    num_outputs : int
        Head outputs.
    stem_channels : sequence of int
        Channels of the stride-2 stem convolutions (one entry per layer).
    kernel_size : int
        Taps of the stem convolutions.
    hidden : int
        LSTM hidden units per direction.
    num_layers : int
        Stacked LSTM layers.
    rnn_dropout : float
        Dropout between LSTM layers.
    dropout : float
        Dropout before the head's linear layer.

    Notes
    -----
    ``first_conv = "stem.0.0"``.
    """

    first_conv = ("stem.0.0",)

    def __init__(
        self,
        in_leads: int = 12,
        num_outputs: int = 1,
        stem_channels: Sequence[int] = (32, 64, 64),
        kernel_size: int = 7,
        hidden: int = 128,
        num_layers: int = 2,
        rnn_dropout: float = 0.1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        stem_channels = check_int_sequence("stem_channels", stem_channels)
        k = check_positive_int("kernel_size", kernel_size)
        hidden = check_positive_int("hidden", hidden)
        num_layers = check_positive_int("num_layers", num_layers)
        rnn_dropout = check_dropout(rnn_dropout, "rnn_dropout")
        ins = (in_leads, *stem_channels[:-1])
        self.stem = nn.Sequential(*[ConvBnAct(a, b, k, stride=2) for a, b in zip(ins, stem_channels, strict=True)])
        self.rnn = nn.LSTM(
            stem_channels[-1],
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
        h = self.stem(self.check_input(x)).transpose(1, 2)  # [B, T', C]
        h, _ = self.rnn(h)
        return pool_sequence(h)

    def group_modules(self) -> GroupSpec:
        rnn = [(f"lstm{i + 1}", params) for i, params in enumerate(rnn_layer_params(self.rnn))]
        return [("stem", self.stem), *rnn, ("head", self.head)]
