"""``inception1d``: the InceptionTime-style network of Strodthoff et al. 2021.

Takes ``x`` ``[batch, in_leads, n_samples]`` in mV (typically 100 Hz x 10 s = 1000 samples; any length works).
"""

from __future__ import annotations

import torch
from torch import nn

from ..exceptions import ConfigError
from ._registry import register_model
from .layers import (
    ConcatPool1d,
    EcgModel,
    GroupSpec,
    check_head_hidden,
    check_positive_int,
    hidden_head,
    init_conv_weights,
)

__all__ = ["Inception1d", "InceptionBlock1d"]


def _conv(in_ch: int, out_ch: int, kernel_size: int) -> nn.Conv1d:
    return nn.Conv1d(in_ch, out_ch, kernel_size, padding=(kernel_size - 1) // 2, bias=False)


class InceptionBlock1d(nn.Module):
    """One inception module: a 1x1 bottleneck, parallel convs of several lengths, and a max-pool branch.

    ``[B, in_ch, T] -> [B, (len(kernels) + 1) * filters, T]``: ``cat(conv_k(bottleneck(x)) for k in kernels,
    conv1x1(maxpool3(x)))`` then BN and ReLU.
    """

    def __init__(self, in_ch: int, filters: int, kernels: tuple[int, ...], bottleneck: int) -> None:
        super().__init__()
        self.bottleneck = _conv(in_ch, bottleneck, 1)
        self.convs = nn.ModuleList(_conv(bottleneck, filters, k) for k in kernels)
        self.pool_conv = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1), _conv(in_ch, filters, 1))
        self.bn = nn.BatchNorm1d((len(kernels) + 1) * filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bottleneck(x)
        out = torch.cat([conv(b) for conv in self.convs] + [self.pool_conv(x)], dim=1)
        return torch.relu(self.bn(out))


class Shortcut1d(nn.Module):
    """Residual connection over three inception blocks: ``ReLU(out + BN(conv1x1(inp)))``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = _conv(in_ch, out_ch, 1)
        self.bn = nn.BatchNorm1d(out_ch)

    def forward(self, inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.relu(out + self.bn(self.conv(inp)))


@register_model("inception1d")
class Inception1d(EcgModel):
    """InceptionTime-style 1-D network of Strodthoff et al. 2021 (``inception1d``), concat-pooling MLP head.

    Follows N. Strodthoff et al., "Deep Learning for ECG Analysis: Benchmarks and Insights from PTB-XL",
    IEEE J Biomed Health Inform 25(5):1519-1528 (2021), itself after InceptionTime (Ismail Fawaz et al.
    2020): ``depth`` inception modules (1x1 bottleneck of 32 channels, parallel convs of 39, 19 and 9 taps,
    i.e. kernel 40 -> 40, 20, 10 made odd, plus a max-pool/1x1 branch; 32 filters each -> 128 channels), a
    residual shortcut (1x1 conv + BN) every third module, concat (max + average) pooling and the head
    ``BN-Dropout(p/2)-Linear(128)-ReLU-BN-Dropout(p)-Linear``. No temporal downsampling, as in the paper
    (which also ran at 100 Hz). About 0.51 M parameters with the defaults.

    Deviations: none in the architecture; ``num_features`` is the concat-pooled embedding (256), the MLP is
    the head.

    Parameters
    ----------
    in_leads : int
        Input leads; ``x`` is ``[batch, in_leads, n_samples]`` in mV.
    num_outputs : int
        Head outputs.
    kernel_size : int
        Longest kernel; the branches use ``kernel_size``, ``// 2`` and ``// 4`` (made odd).
    depth : int
        Number of inception modules.
    filters : int
        Filters per branch (the module outputs ``4 * filters`` channels).
    bottleneck : int
        Channels of the 1x1 bottleneck.
    use_residual : bool
        Add a shortcut every third module.
    head_hidden : int
        Hidden units of the MLP head; 0 gives a linear head (what a ``linear_probe`` fits).
    dropout : float
        Head dropout ``p``.

    Notes
    -----
    ``first_conv = ("blocks.0.bottleneck", "blocks.0.pool_conv.1", "shortcuts.0.conv")``: three layers see the
    leads (the first module's bottleneck and pool branch, and the first shortcut).
    """

    first_conv = ("blocks.0.bottleneck", "blocks.0.pool_conv.1", "shortcuts.0.conv")

    def __init__(
        self,
        in_leads: int = 12,
        num_outputs: int = 1,
        kernel_size: int = 40,
        depth: int = 6,
        filters: int = 32,
        bottleneck: int = 32,
        use_residual: bool = True,
        head_hidden: int = 128,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        if check_positive_int("kernel_size", kernel_size) < 4:
            raise ConfigError(f"kernel_size must be >= 4 (branches use k, k//2, k//4), got {kernel_size}.")
        depth = check_positive_int("depth", depth)
        filters = check_positive_int("filters", filters)
        bottleneck = check_positive_int("bottleneck", bottleneck)
        self.head_hidden = check_head_hidden(head_hidden)
        kernels = tuple(k - 1 if k % 2 == 0 else k for k in (kernel_size, kernel_size // 2, kernel_size // 4))
        n_ch = (len(kernels) + 1) * filters
        self.use_residual = bool(use_residual)
        self.blocks = nn.ModuleList(
            InceptionBlock1d(in_leads if d == 0 else n_ch, filters, kernels, bottleneck) for d in range(depth)
        )
        n_short = depth // 3 if self.use_residual else 0
        self.shortcuts = nn.ModuleList(Shortcut1d(in_leads if d == 0 else n_ch, n_ch) for d in range(n_short))
        if not self.shortcuts:
            # no shortcut sees the leads: only the first block's two input convs do
            self.first_conv = ("blocks.0.bottleneck", "blocks.0.pool_conv.1")
        self.pool = ConcatPool1d()
        self.num_features = 2 * n_ch
        self.head = self.build_head(num_outputs)
        init_conv_weights(self)

    def build_head(self, num_outputs: int) -> nn.Module:
        return hidden_head(self.num_features, num_outputs, self.dropout, self.head_hidden)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> concat max+mean pooled ``[batch, 8 * filters]``."""
        x = self.check_input(x)
        res = x
        for d, block in enumerate(self.blocks):
            x = block(x)
            if d % 3 == 2 and d // 3 < len(self.shortcuts):
                x = self.shortcuts[d // 3](res, x)
                res = x
        return self.pool(x)

    def group_modules(self) -> GroupSpec:
        groups: list[tuple[str, list[nn.Module]]] = []
        for d, block in enumerate(self.blocks):
            mods: list[nn.Module] = [block]
            if d % 3 == 2 and d // 3 < len(self.shortcuts):
                mods.append(self.shortcuts[d // 3])
            groups.append((f"block{d + 1}", mods))
        return [*groups, ("head", self.head)]
