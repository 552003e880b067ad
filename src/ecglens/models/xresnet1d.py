"""``xresnet1d50`` and ``xresnet1d101``: fastai's XResNet in 1-D, as benchmarked on PTB-XL (Strodthoff).

Takes ``x`` ``[batch, in_leads, n_samples]`` in mV (typically 100 Hz x 10 s = 1000 samples; any length works).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..exceptions import ConfigError
from ._registry import register_model
from .layers import (
    ConcatPool1d,
    ConvBnAct,
    EcgModel,
    GroupSpec,
    check_head_hidden,
    check_int_sequence,
    check_positive_int,
    hidden_head,
    init_conv_weights,
)

__all__ = ["XResBlock", "XResNet1d", "xresnet1d50", "xresnet1d101"]


class XResBlock(nn.Module):
    """Bottleneck block of fastai's XResNet (bag-of-tricks ResNet-D), 1-D.

    Conv path ``1x1 (in -> mid) -> k (mid -> mid, stride) -> 1x1 (mid -> out, BN scale 0, no act)``; identity
    path ``AvgPool(stride, ceil_mode) -> 1x1 conv + BN`` when the shape changes; ``ReLU(conv + identity)``.
    ``[B, in_ch, T] -> [B, out_ch, ceil(T / stride)]``.
    """

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int, kernel_size: int) -> None:
        super().__init__()
        self.convpath = nn.Sequential(
            ConvBnAct(in_ch, mid_ch, 1),
            ConvBnAct(mid_ch, mid_ch, kernel_size, stride=stride),
            ConvBnAct(mid_ch, out_ch, 1, act=False, zero_bn=True),
        )
        idpath: list[nn.Module] = []
        if stride != 1:
            idpath.append(nn.AvgPool1d(stride, ceil_mode=True))
        if in_ch != out_ch:
            idpath.append(ConvBnAct(in_ch, out_ch, 1, act=False))
        self.idpath = nn.Sequential(*idpath)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.convpath(x) + self.idpath(x))


class XResNet1d(EcgModel):
    """fastai XResNet in 1-D (Strodthoff et al. 2021): 3-conv stem, bottleneck stages, concat-pool MLP head.

    Follows N. Strodthoff et al., "Deep Learning for ECG Analysis: Benchmarks and Insights from PTB-XL",
    IEEE J Biomed Health Inform 25(5):1519-1528 (2021), whose ``xresnet1d`` ports fastai's XResNet (He et al.
    2019, "Bag of tricks") to 1-D: stem of three ``conv(5)-BN-ReLU`` (32, 32, 64 channels, the first with
    stride 2) and a max-pool (3, stride 2); four stages of bottleneck blocks with expansion 4, kernel 5,
    widths 64/128/256/512 (x4 at the output), stride 2 from the second stage on (average-pool shortcut);
    concat (max + average) pooling; head ``BN-Dropout(p/2)-Linear(128)-ReLU-BN-Dropout(p)-Linear``
    (``lin_ftrs_head=[128]``, ``ps_head=0.5``).

    Deviations: ``width`` scales the stem as well as the stages (fastai's ``widen`` scales only the stages);
    ``num_features`` is the concat-pooled embedding (``2 x 4 x 512 x width``), the MLP is the head.

    Parameters
    ----------
    in_leads : int
        Input leads; ``x`` is ``[batch, in_leads, n_samples]`` in mV.
    num_outputs : int
        Head outputs.
    layers : sequence of int
        Bottleneck blocks per stage (``(3, 4, 6, 3)`` for 50, ``(3, 4, 23, 3)`` for 101).
    width : float
        Channel multiplier (e.g. 0.25 for a small CPU variant).
    kernel_size, kernel_size_stem : int
        Conv taps in the blocks / the stem (odd).
    expansion : int
        Bottleneck expansion.
    head_hidden : int
        Hidden units of the MLP head; 0 gives a linear head (what a ``linear_probe`` fits).
    dropout : float
        Head dropout ``p`` (``p/2`` before the hidden layer, ``p`` before the output layer).

    Notes
    -----
    ``first_conv = "stem.0.0"``.
    """

    first_conv = ("stem.0.0",)

    def __init__(
        self,
        in_leads: int = 12,
        num_outputs: int = 1,
        layers: Sequence[int] = (3, 4, 6, 3),
        width: float = 1.0,
        kernel_size: int = 5,
        kernel_size_stem: int = 5,
        expansion: int = 4,
        head_hidden: int = 128,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        layers = check_int_sequence("layers", layers)
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0.0 < width <= 8.0:
            raise ConfigError(
                f"width must be a number in (0, 8], got {width!r}; e.g. width=0.25 for a small model."
            )
        for name, k in (("kernel_size", kernel_size), ("kernel_size_stem", kernel_size_stem)):
            if check_positive_int(name, k) % 2 == 0:
                raise ConfigError(f"{name} must be odd, got {k}; use {k + 1}.")
        self.head_hidden = check_head_hidden(head_hidden)
        expansion = check_positive_int("expansion", expansion)

        def w(c: int) -> int:
            return max(round(c * width), 4)

        stem = (w(32), w(32), w(64))
        self.stem = nn.Sequential(
            ConvBnAct(in_leads, stem[0], kernel_size_stem, stride=2),
            ConvBnAct(stem[0], stem[1], kernel_size_stem),
            ConvBnAct(stem[1], stem[2], kernel_size_stem),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        widths = [w(64 * 2 ** min(i, 3)) for i in range(len(layers))]
        stages: list[nn.Module] = []
        prev = stem[2]
        for i, (mid, n) in enumerate(zip(widths, layers, strict=True)):
            out = mid * expansion
            blocks = [
                XResBlock(
                    prev if j == 0 else out, mid, out, (1 if i == 0 else 2) if j == 0 else 1, kernel_size
                )
                for j in range(n)
            ]
            stages.append(nn.Sequential(*blocks))
            prev = out
        self.stages = nn.Sequential(*stages)
        self.pool = ConcatPool1d()
        self.num_features = 2 * prev
        self.head = self.build_head(num_outputs)
        init_conv_weights(self)

    def build_head(self, num_outputs: int) -> nn.Module:
        return hidden_head(self.num_features, num_outputs, self.dropout, self.head_hidden)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> concat max+mean pooled ``[batch, num_features]``."""
        return self.pool(self.stages(self.stem(self.check_input(x))))

    def group_modules(self) -> GroupSpec:
        stages = [(f"stage{i + 1}", s) for i, s in enumerate(self.stages)]
        return [("stem", self.stem), *stages, ("head", self.head)]


@register_model("xresnet1d50")
def xresnet1d50(
    in_leads: int = 12,
    num_outputs: int = 1,
    width: float = 1.0,
    kernel_size: int = 5,
    head_hidden: int = 128,
    dropout: float = 0.5,
) -> XResNet1d:
    """XResNet1d-50 of Strodthoff et al. 2021 (fastai xresnet1d; bottleneck blocks [3, 4, 6, 3], kernel 5).

    See :class:`XResNet1d` for the architecture, paper and deviations. About 19.0 M parameters at
    ``width=1`` and 12 leads (4.9 M at ``width=0.5``, 1.3 M at ``width=0.25``);
    heavy for CPU training: use ``width=0.25`` or 0.5 there.
    """
    return XResNet1d(in_leads, num_outputs, (3, 4, 6, 3), width, kernel_size, 5, 4, head_hidden, dropout)


@register_model("xresnet1d101")
def xresnet1d101(
    in_leads: int = 12,
    num_outputs: int = 1,
    width: float = 1.0,
    kernel_size: int = 5,
    head_hidden: int = 128,
    dropout: float = 0.5,
) -> XResNet1d:
    """XResNet1d-101 of Strodthoff et al. 2021 (fastai xresnet1d; bottleneck blocks [3, 4, 23, 3], kernel 5).

    See :class:`XResNet1d` for the architecture, paper and deviations. About 33.6 M parameters at
    ``width=1`` and 12 leads (8.5 M at ``width=0.5``, 2.2 M at ``width=0.25``);
    heavy for CPU training: use ``width=0.25`` or 0.5 there.
    """
    return XResNet1d(in_leads, num_outputs, (3, 4, 23, 3), width, kernel_size, 5, 4, head_hidden, dropout)
