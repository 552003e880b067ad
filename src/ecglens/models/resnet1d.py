"""1-D residual networks: ``resnet1d_ribeiro`` (Ribeiro et al. 2020 / Lima et al. 2021) and
``resnet_se_gustafsson`` (a squeeze-and-excitation ResNet after Gustafsson et al. 2022).

Both take ``x`` ``[batch, in_leads, n_samples]`` in mV (typically 100 Hz x 10 s = 1000 samples; any length
works) and average the last feature map over time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..exceptions import ConfigError
from ._layout import channels_last_path, conv_bn_2d, run_2d, supported, to_2d
from ._registry import register_model
from .layers import (
    ConvBnAct,
    EcgModel,
    GroupSpec,
    SqueezeExcite1d,
    check_dropout,
    check_int_sequence,
    check_positive_int,
    init_conv_weights,
)

__all__ = ["RibeiroResNet1d", "SeResNet1d"]


def _odd_kernel(kernel_size: object) -> int:
    k = check_positive_int("kernel_size", kernel_size)
    if k % 2 == 0:
        raise ConfigError(
            f"kernel_size must be odd so that padding keeps lengths aligned, got {k}; use {k + 1}."
        )
    return k


# ----------------------------------------------------------------------------------------------------
# Ribeiro et al. 2020
# ----------------------------------------------------------------------------------------------------


def _block_conv(in_ch: int, out_ch: int, kernel_size: int, stride: int, separable: bool) -> nn.Module:
    """A ``Conv1d(in_ch, out_ch, kernel_size, stride)`` without bias; with ``separable``, a depthwise conv
    (``kernel_size``, ``stride``, one filter per input channel) followed by a pointwise ``1 x 1`` conv: about
    ``1 / kernel_size + 1 / out_ch`` of the multiply-adds and weights (MobileNet's factorisation)."""
    pad = (kernel_size - 1) // 2
    if not separable:
        return nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, padding=pad, bias=False)
    return nn.Sequential(
        nn.Conv1d(in_ch, in_ch, kernel_size, stride=stride, padding=pad, groups=in_ch, bias=False),
        nn.Conv1d(in_ch, out_ch, 1, bias=False),
    )


def _per_block_flags(name: str, value: object, n_blocks: int) -> tuple[bool, ...]:
    """One bool per residual block from a bool (every block) or a sequence of ``n_blocks`` bools."""
    if isinstance(value, bool):
        return (value,) * n_blocks
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == n_blocks \
            and all(isinstance(v, bool) for v in value):
        return tuple(value)
    raise ConfigError(f"{name} must be true, false or a list of {n_blocks} true/false values (one per residual "
                      f"block), got {value!r}.")


class RibeiroBlock(nn.Module):
    """Residual unit of Ribeiro et al. 2020: two convs, the skip downsampled by max-pool and 1x1 conv.

    Works on a pair ``(x, y)``: ``x`` is the activated stream, ``y`` the (un-activated) skip stream.
    ``x -> conv(k) -> BN -> ReLU -> Dropout -> conv(k, stride=s)``; ``y -> MaxPool(s) -> Conv1x1``;
    ``y' = x + y``; ``x' = Dropout(ReLU(BN(y')))``. Lengths go from ``T`` to ``ceil(T / s)``. With
    ``separable``, each ``conv(k)`` is a depthwise conv followed by a pointwise one (:func:`_block_conv`).
    """

    def __init__(self, in_ch: int, out_ch: int, downsample: int, kernel_size: int, dropout: float,
                 separable: bool = False) -> None:
        super().__init__()
        self.conv1 = _block_conv(in_ch, out_ch, kernel_size, 1, separable)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.drop1 = nn.Dropout(dropout)
        self.conv2 = _block_conv(out_ch, out_ch, kernel_size, downsample, separable)
        self.bn2 = nn.BatchNorm1d(out_ch)
        self.drop2 = nn.Dropout(dropout)
        skip: list[nn.Module] = []
        if downsample > 1:
            skip.append(nn.MaxPool1d(downsample, stride=downsample, ceil_mode=True))
        if in_ch != out_ch:
            skip.append(nn.Conv1d(in_ch, out_ch, 1, bias=False))
        self.skip = nn.Sequential(*skip)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.skip(y)
        x = self.drop1(torch.relu(self.bn1(self.conv1(x))))
        y = self.conv2(x) + y
        x = self.drop2(torch.relu(self.bn2(y)))
        return x, y

    def forward_2d(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` on ``[batch, C, 1, T]`` channels-last tensors (:mod:`ecglens.models._layout`)."""
        y = run_2d(self.skip, y)
        x = run_2d(self.drop1, torch.relu_(conv_bn_2d(self.conv1, self.bn1, x)))
        y = run_2d(self.conv2, x).add_(y)
        x = run_2d(self.drop2, torch.relu_(run_2d(self.bn2, y)))
        return x, y


@register_model("resnet1d_ribeiro")
class RibeiroResNet1d(EcgModel):
    """Residual network of Ribeiro et al. 2020 (Nat Commun) / Lima et al. 2021 (ECG-age), kernel 17.

    Follows A. H. Ribeiro et al., "Automatic diagnosis of the 12-lead ECG using a deep neural network",
    Nat Commun 11:1760 (2020), as used for ECG age by E. M. Lima et al., Nat Commun 12:5117 (2021): a conv
    stem (``Conv1d(17) -> BN``, 64 filters) and 4 residual blocks (128, 196, 256, 320 filters) whose skip
    connections are downsampled by max-pooling and a 1x1 convolution.

    Deviations: the paper flattens the last 320 x 16 feature map of a 4096-sample, 400 Hz input; here it is
    averaged over time (``num_features = 320``; any length works). The default downsampling ``(4, 4, 2, 2)``
    (x64 in total; the paper uses 4 per block, x256, at 400 Hz) keeps about 16 output steps per 10 s at
    100 Hz, as the paper has. Every conv pads ``(k - 1) // 2`` and pooling uses ``ceil_mode`` so lengths that
    are not multiples of the downsampling work. In-block dropout is 0.2 (the TF original's keep-prob 0.8).
    About 6.8 M parameters with the defaults.

    Parameters
    ----------
    in_leads : int
        Input leads; ``x`` is ``[batch, in_leads, n_samples]`` in mV.
    num_outputs : int
        Head outputs.
    filters : sequence of int
        Channels of the stem and of each residual block (default ``(64, 128, 196, 256, 320)``).
    downsample : sequence of int
        Temporal downsampling of each residual block (one fewer value than ``filters``).
    kernel_size : int
        Conv taps, odd (17).
    block_dropout : float
        Dropout inside the residual blocks.
    dropout : float
        Dropout before the head's linear layer (0: the paper has none).
    stem_stride : int
        Temporal stride of the stem convolution (1, the paper's). 2 halves the time steps that the first block's
        convolutions see (about 0.8x the multiply-adds of the shipped ``age-sex`` width when the first block then
        downsamples by 2 instead of 4, keeping the output length).
    separable : bool or sequence of bool
        Depthwise-separable convolutions in the residual blocks (False, the paper's): each ``conv(k)`` becomes a
        depthwise ``conv(k)`` and a pointwise ``conv(1)``; one value for every block or one per block. With every
        block separable at the shipped ``age-sex`` width (filters 64-192, kernel 9): about 0.18x the
        multiply-adds per 4-s window (11.2 vs 62.8 M) and 0.16x the weights; the stem stays a full convolution.

    Notes
    -----
    ``first_conv = "stem.0"``.
    """

    first_conv = ("stem.0",)

    def __init__(
        self,
        in_leads: int = 12,
        num_outputs: int = 1,
        filters: Sequence[int] = (64, 128, 196, 256, 320),
        downsample: Sequence[int] = (4, 4, 2, 2),
        kernel_size: int = 17,
        block_dropout: float = 0.2,
        dropout: float = 0.0,
        stem_stride: int = 1,
        separable: bool | Sequence[bool] = False,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        filters = check_int_sequence("filters", filters)
        downsample = check_int_sequence("downsample", downsample, len(filters) - 1)
        k = _odd_kernel(kernel_size)
        block_dropout = check_dropout(block_dropout, "block_dropout")
        stride = check_positive_int("stem_stride", stem_stride)
        self.stem = nn.Sequential(
            nn.Conv1d(in_leads, filters[0], k, stride=stride, padding=(k - 1) // 2, bias=False),
            nn.BatchNorm1d(filters[0]),
        )
        self.blocks = nn.ModuleList(
            RibeiroBlock(a, b, s, k, block_dropout, sep)
            for a, b, s, sep in zip(filters[:-1], filters[1:], downsample,
                                    _per_block_flags("separable", separable, len(downsample)), strict=True)
        )
        self.num_features = filters[-1]
        self.head = self.build_head(num_outputs)
        init_conv_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> ``[batch, filters[-1]]``.

        On a CPU (batches of 8 four-second windows or more; inference and training) the layers run as 2-D ones
        on channels-last tensors: the same weights and outputs, faster (:mod:`ecglens.models._layout`).
        """
        x = self.check_input(x)
        if channels_last_path(x) and supported(self.stem, *self.blocks):
            x = conv_bn_2d(self.stem[0], self.stem[1], to_2d(x))
            y = x
            for block in self.blocks:
                x, y = block.forward_2d(x, y)
            return x.mean(dim=(2, 3))
        x = self.stem(x)
        y = x
        for block in self.blocks:
            x, y = block(x, y)
        return x.mean(dim=-1)

    def group_modules(self) -> GroupSpec:
        blocks = [(f"block{i + 1}", b) for i, b in enumerate(self.blocks)]
        return [("stem", self.stem), *blocks, ("head", self.head)]


# ----------------------------------------------------------------------------------------------------
# SE-ResNet after Gustafsson et al. 2022
# ----------------------------------------------------------------------------------------------------


class SeBasicBlock(nn.Module):
    """``conv(k, stride) -> BN -> ReLU -> conv(k) -> BN -> SE``, plus a projected shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, kernel_size: int, reduction: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            ConvBnAct(in_ch, out_ch, kernel_size, stride=stride),
            ConvBnAct(out_ch, out_ch, kernel_size, act=False),
            SqueezeExcite1d(out_ch, reduction),
        )
        short: list[nn.Module] = []
        if stride > 1:
            short.append(nn.AvgPool1d(stride, ceil_mode=True))
        if in_ch != out_ch:
            short += [nn.Conv1d(in_ch, out_ch, 1, bias=False), nn.BatchNorm1d(out_ch)]
        self.shortcut = nn.Sequential(*short)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x) + self.shortcut(x))


@register_model("resnet_se_gustafsson")
class SeResNet1d(EcgModel):
    """Squeeze-and-excitation 1-D ResNet after Gustafsson et al. 2022 (ECG-based prediction of MI, Sci Rep).

    Follows the residual network with squeeze-and-excitation (SE, Hu et al. 2018) channel attention used by
    S. Gustafsson et al., "Development and validation of deep learning ECG-based prediction of myocardial
    infarction in emergency department patients", Sci Rep 12 (2022), a descendant of Ribeiro et al.'s
    ECG ResNet: a strided conv stem, then stages of basic residual blocks
    (``conv-BN-ReLU-conv-BN-SE + shortcut``, ReLU after the sum), global average pooling, linear head.

    Deviations: the depth, widths and kernel sizes are ecglens defaults for 100 Hz input (the exact
    configuration of the paper is not reproduced); downsampling shortcuts use average pooling + 1x1 conv
    so any length works. About 2.0 M parameters with the defaults.

    Parameters
    ----------
    in_leads : int
        Input leads; ``x`` is ``[batch, in_leads, n_samples]`` in mV.
    num_outputs : int
        Head outputs.
    stem_channels : int
        Channels of the stem ``Conv1d(stem_kernel, stride 2) -> BN -> ReLU``.
    channels, blocks, strides : sequence of int
        Per stage: channels, number of residual blocks, stride of its first block.
    kernel_size, stem_kernel : int
        Conv taps in the blocks / the stem (odd).
    reduction : int
        SE bottleneck reduction.
    dropout : float
        Dropout before the head's linear layer.

    Notes
    -----
    ``first_conv = "stem.0"``.
    """

    first_conv = ("stem.0",)

    def __init__(
        self,
        in_leads: int = 12,
        num_outputs: int = 1,
        stem_channels: int = 32,
        channels: Sequence[int] = (32, 64, 128, 192),
        blocks: Sequence[int] = (2, 2, 2, 2),
        strides: Sequence[int] = (1, 2, 2, 2),
        kernel_size: int = 9,
        stem_kernel: int = 15,
        reduction: int = 8,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        channels = check_int_sequence("channels", channels)
        blocks = check_int_sequence("blocks", blocks, len(channels))
        strides = check_int_sequence("strides", strides, len(channels))
        k, ks = _odd_kernel(kernel_size), _odd_kernel(stem_kernel)
        reduction = check_positive_int("reduction", reduction)
        stem_channels = check_positive_int("stem_channels", stem_channels)
        self.stem = ConvBnAct(in_leads, stem_channels, ks, stride=2)
        stages: list[nn.Module] = []
        prev = stem_channels
        for ch, n, s in zip(channels, blocks, strides, strict=True):
            stage = [
                SeBasicBlock(prev if i == 0 else ch, ch, s if i == 0 else 1, k, reduction) for i in range(n)
            ]
            stages.append(nn.Sequential(*stage))
            prev = ch
        self.stages = nn.Sequential(*stages)
        self.num_features = channels[-1]
        self.head = self.build_head(num_outputs)
        init_conv_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> ``[batch, channels[-1]]``."""
        return self.stages(self.stem(self.check_input(x))).mean(dim=-1)

    def group_modules(self) -> GroupSpec:
        stages = [(f"stage{i + 1}", s) for i, s in enumerate(self.stages)]
        return [("stem", self.stem), *stages, ("head", self.head)]
