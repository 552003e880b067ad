"""``s4``: a diagonal structured state-space model (S4D, Gu et al. 2022) in plain PyTorch.

No custom CUDA kernels: the S4D convolution kernel is computed with a Vandermonde product and applied with
``torch.fft``, so it runs on CPU (during ONNX export DFT matrix products replace the FFT). Takes ``x``
``[batch, in_leads, n_samples]`` in mV (typically 100 Hz x 10 s = 1000 samples; any length works).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..exceptions import ConfigError
from ._registry import register_model
from .layers import ConvBnAct, EcgModel, GroupSpec, check_dropout, check_positive_int, init_conv_weights

__all__ = ["S4DKernel", "S4DLayer", "S4Model", "dft_conv", "fft_conv"]


class S4DKernel(nn.Module):
    """Convolution kernel of a diagonal SSM with S4D-Lin initialisation and zero-order-hold discretisation.

    For each of ``channels`` rows the continuous system ``x' = A x + B u, y = C x`` has a complex diagonal
    ``A`` (``N = d_state // 2`` conjugate pairs, ``A_n = -exp(log_a_real_n) + i a_imag_n``, initialised
    ``-1/2 + i pi n``), ``B = 1`` and a learnable step ``dt`` (log-uniform in ``[dt_min, dt_max]``). ZOH gives
    ``A_bar = exp(dt A)`` and ``B_bar = (exp(dt A) - 1) / A``, and the kernel
    ``K[l] = 2 Re(sum_n C_n B_bar_n A_bar_n^l)`` is a Vandermonde product (the factor 2 covers the conjugate
    half). ``C`` is stored as a real ``[channels, N, 2]`` tensor (real, imaginary) so optimisers, checkpoints
    and ONNX see only floats.

    Parameters
    ----------
    channels : int
        Number of independent kernels (rows).
    d_state : int
        State size (even; ``d_state // 2`` complex modes are stored).
    dt_min, dt_max : float
        Range of the initial step size (in units of the input sampling interval).
    """

    def __init__(self, channels: int, d_state: int = 64, dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        n = d_state // 2
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.C = nn.Parameter(torch.view_as_real(torch.randn(channels, n, dtype=torch.cfloat)).contiguous())
        self.log_a_real = nn.Parameter(torch.log(0.5 * torch.ones(channels, n)))
        self.a_imag = nn.Parameter(math.pi * torch.arange(n, dtype=torch.float32).repeat(channels, 1))

    def forward(self, length: int) -> torch.Tensor:
        """Return the kernel ``[channels, length]`` (float, same dtype as the parameters).

        Complex arithmetic is written out in real and imaginary parts (no complex tensors), so the model also
        exports to ONNX.
        """
        dt = torch.exp(self.log_dt)[:, None]  # [H, 1]
        ar, ai = -torch.exp(self.log_a_real), self.a_imag  # A = ar + i ai, [H, N]
        decay = torch.exp(ar * dt)
        er, ei = decay * torch.cos(ai * dt), decay * torch.sin(ai * dt)  # exp(dt A)
        norm = ar * ar + ai * ai
        # B_bar = (exp(dt A) - 1) / A
        br, bi = ((er - 1.0) * ar + ei * ai) / norm, (ei * ar - (er - 1.0) * ai) / norm
        cr, ci = self.C[..., 0], self.C[..., 1]
        kr, ki = cr * br - ci * bi, cr * bi + ci * br  # C * B_bar
        steps = torch.arange(length, device=dt.device, dtype=dt.dtype)
        mag = torch.exp((ar * dt).unsqueeze(-1) * steps)  # |A_bar^l|, [H, N, L]
        phase = (ai * dt).unsqueeze(-1) * steps
        vr, vi = mag * torch.cos(phase), mag * torch.sin(phase)  # Vandermonde A_bar^l
        return 2.0 * (torch.einsum("hn,hnl->hl", kr, vr) - torch.einsum("hn,hnl->hl", ki, vi))


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Linear (non-circular) convolution along the last axis via FFT of length ``2L``.

    ``u`` is ``[B, H, L]``; ``k`` is ``[H, L]`` (causal) or ``[H, 2L]`` (causal part then the flipped
    anti-causal part, see :class:`S4DLayer`). Returns ``y[..., t] = sum_s u[..., s] k[..., t - s]`` for
    ``t < L``, ``[B, H, L]``.
    """
    length = u.shape[-1]
    u_f = torch.fft.rfft(u, n=2 * length)
    k_f = torch.fft.rfft(k, n=2 * length)
    return torch.fft.irfft(u_f * k_f, n=2 * length)[..., :length]


def dft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The convolution of :func:`fft_conv` with real DFT matrices (matmuls, cos and sin only).

    Used during ONNX export, whose PyTorch exporter has no FFT: ``O(L^2)`` time, and ``O(L^2)`` memory for
    the ``[2L, L + 1]`` DFT matrices (not per channel). ``u`` is ``[B, H, L]``; ``k`` is ``[H, L]`` or
    ``[H, 2L]``.
    """
    length = u.shape[-1]
    n = 2 * length
    t = torch.arange(n, device=u.device)
    f = torch.arange(length + 1, device=u.device)
    angle = ((t[:, None] * f[None, :]) % n).to(u.dtype) * (2.0 * math.pi / n)  # exact phase, [2L, L+1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    kn = k.shape[-1]
    ur, ui = u @ cos[:length], -(u @ sin[:length])  # rfft(u, 2L): [B, H, L+1]
    kr, ki = k @ cos[:kn], -(k @ sin[:kn])  # rfft(k, 2L): [H, L+1]
    yr, yi = ur * kr - ui * ki, ur * ki + ui * kr
    weight = torch.where((f == 0) | (f == length), 1.0, 2.0).to(u.dtype)  # one-sided spectrum weights
    return ((yr * weight) @ cos[:length].T - (yi * weight) @ sin[:length].T) / n


class S4DLayer(nn.Module):
    """One S4D sequence layer: SSM convolution + skip ``D u``, GELU, dropout, 1x1 conv with GLU.

    ``[B, H, L] -> [B, H, L]``. With ``bidirectional`` a second kernel runs backwards in time (S4's
    ``bidirectional=True``): the two kernels are joined into one of length ``2L`` and applied in one FFT.
    """

    def __init__(self, d_model: int, d_state: int, dropout: float, bidirectional: bool) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        self.kernel = S4DKernel(d_model * (2 if bidirectional else 1), d_state)
        self.D = nn.Parameter(torch.randn(d_model))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Sequential(nn.Conv1d(d_model, 2 * d_model, 1), nn.GLU(dim=1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        length = u.shape[-1]
        k = self.kernel(length)
        if self.bidirectional:
            k_fwd, k_bwd = k.chunk(2, dim=0)
            k = nn.functional.pad(k_fwd, (0, length)) + nn.functional.pad(k_bwd.flip(-1), (length, 0))
        conv = dft_conv if torch.onnx.is_in_onnx_export() else fft_conv
        y = conv(u, k) + u * self.D[:, None]
        return self.output(self.dropout(nn.functional.gelu(y)))


class S4Block(nn.Module):
    """Pre-norm residual block: ``x + Dropout(S4DLayer(LayerNorm(x)))`` on ``[B, H, L]``."""

    def __init__(self, d_model: int, d_state: int, dropout: float, bidirectional: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.layer = S4DLayer(d_model, d_state, dropout, bidirectional)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return x + self.dropout(self.layer(z))


@register_model("s4")
class S4Model(EcgModel):
    """Diagonal structured state-space model (S4D, Gu et al. 2022) in plain PyTorch: conv stem + S4D blocks.

    Follows A. Gu, A. Gupta, K. Goel, C. Re, "On the Parameterization and Initialization of Diagonal State
    Space Models" (S4D), NeurIPS 2022: complex diagonal state matrix with S4D-Lin initialisation, ZOH
    discretisation, the convolution kernel computed by a Vandermonde product and applied by FFT
    (``torch.fft``); no custom CUDA kernels. (S4 models have since been applied to 12-lead ECGs, e.g. by
    Mehari & Strodthoff, IEEE JBHI 2023.)

    Architecture: a stem of two stride-2 ``conv-BN-ReLU`` layers (1000 samples at 100 Hz -> 250 steps,
    ``d_model`` channels), ``n_layers`` pre-norm residual blocks ``x + Dropout(S4D(LayerNorm(x)))`` where the
    S4D layer is ``SSM conv + D skip -> GELU -> Dropout -> Conv1x1 -> GLU``, bidirectional by default, then a
    final LayerNorm and mean pooling over time (``num_features = d_model``). About 0.31 M parameters with the
    defaults. Deviation from the paper: the conv stem (the paper's models embed every sample linearly).

    The SSM parameters (``log_dt``, ``log_a_real``, ``a_imag``) are usually trained without weight decay
    and with a small learning rate (1e-3): :meth:`no_weight_decay` names them, and ``ecglens train`` /
    ``ecglens finetune`` leave them out of weight decay (:func:`ecglens.train.module.is_decayed`).

    Parameters
    ----------
    in_leads : int
        Input leads; ``x`` is ``[batch, in_leads, n_samples]`` in mV.
    num_outputs : int
        Head outputs.
    d_model : int
        Channels of the S4D blocks.
    d_state : int
        SSM state size per channel (even).
    n_layers : int
        Number of S4D blocks.
    stem_channels : int
        Channels of the first stem convolution.
    bidirectional : bool
        Add a backward-in-time kernel (non-causal; recommended for whole-record classification).
    layer_dropout : float
        Dropout inside the S4D blocks.
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
        d_model: int = 128,
        d_state: int = 64,
        n_layers: int = 4,
        stem_channels: int = 64,
        bidirectional: bool = True,
        layer_dropout: float = 0.1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        d_model = check_positive_int("d_model", d_model)
        if check_positive_int("d_state", d_state) % 2 or d_state < 2:
            raise ConfigError(
                f"d_state must be an even number >= 2 (conjugate pairs), got {d_state}; e.g. 64."
            )
        n_layers = check_positive_int("n_layers", n_layers)
        stem_channels = check_positive_int("stem_channels", stem_channels)
        layer_dropout = check_dropout(layer_dropout, "layer_dropout")
        self.stem = nn.Sequential(
            ConvBnAct(in_leads, stem_channels, 7, stride=2), ConvBnAct(stem_channels, d_model, 5, stride=2)
        )
        self.blocks = nn.ModuleList(
            S4Block(d_model, d_state, layer_dropout, bool(bidirectional)) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.num_features = d_model
        self.head = self.build_head(num_outputs)
        init_conv_weights(self.stem)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> ``[batch, d_model]``."""
        h = self.stem(self.check_input(x))  # [B, H, L]
        for block in self.blocks:
            h = block(h)
        return self.norm(h.transpose(1, 2)).mean(dim=1)

    def no_weight_decay(self) -> set[str]:
        """Names of the SSM parameters to train without weight decay (timm's convention)."""
        return {
            n
            for n, _ in self.named_parameters()
            if n.rsplit(".", 1)[-1] in {"log_dt", "log_a_real", "a_imag"}
        }

    def group_modules(self) -> GroupSpec:
        blocks = [(f"block{i + 1}", b) for i, b in enumerate(self.blocks)]
        return [("stem", self.stem), *blocks, ("norm", self.norm), ("head", self.head)]
