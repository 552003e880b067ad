"""Shared building blocks of the model zoo: the :class:`EcgModel` base class, conv/pooling/SE blocks, heads,
and :func:`adapt_input_leads`.

Every model takes ``x`` of shape ``[batch, in_leads, n_samples]`` (float32, mV, at the fs of its
``Preprocess`` spec, typically 100 Hz) and pools over time globally, so any ``n_samples`` works.

The model contract (see ``DESIGN.md``), implemented once here:

* ``forward_features(x) -> [batch, num_features]``: the pooled embedding;
* ``forward_head(feats) -> [batch, num_outputs]``: raw outputs (logits / unscaled regression values);
* ``forward(x) = forward_head(forward_features(x))``;
* ``reset_head(num_outputs)``: a new, randomly initialised head (transfer learning);
* ``param_groups() -> [(name, [params]), ...]``: every parameter exactly once, ordered from input to head, for
  discriminative learning rates and gradual unfreezing;
* ``first_conv``: a class attribute with the dotted path(s) of the layer(s) that see the leads, which
  :func:`adapt_input_leads` rebuilds for another lead count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn

from ..exceptions import ConfigError, LeadError
from ..leads import CANONICAL_LEADS, normalize_lead_name

__all__ = [
    "ConcatPool1d",
    "ConvBnAct",
    "EcgModel",
    "LeadMixConv2d",
    "SqueezeExcite1d",
    "adapt_input_leads",
    "check_dropout",
    "check_head_hidden",
    "check_positive_int",
    "conv_pool_block",
    "hidden_head",
    "init_conv_weights",
    "linear_head",
    "mlp_head",
    "rnn_layer_params",
]


# ----------------------------------------------------------------------------------------------------
# argument checks (user input: raise ConfigError, never assert)
# ----------------------------------------------------------------------------------------------------


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int >= 1, or raise :class:`ConfigError` saying what to pass instead."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}. Pass e.g. {name}=1.")
    return value


def check_dropout(value: object, name: str = "dropout") -> float:
    """Return ``value`` as a float in [0, 1), or raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1), got {value!r}. Pass e.g. {name}=0.2.")
    return float(value)


def check_int_sequence(name: str, value: object, length: int | None = None) -> tuple[int, ...]:
    """Return ``value`` as a tuple of positive ints (of ``length`` when given), or raise ConfigError."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{name} must be a sequence of positive integers, got {value!r}.")
    out = tuple(check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))
    if not out or (length is not None and len(out) != length):
        want = f"{length} values" if length is not None else "at least one value"
        raise ConfigError(f"{name} must have {want}, got {len(out)}: {value!r}.")
    return out


# ----------------------------------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------------------------------


class ConvBnAct(nn.Sequential):
    """``Conv1d -> BatchNorm1d -> activation`` with 'same'-style padding.

    Input ``[batch, in_ch, T]`` -> output ``[batch, out_ch, ceil(T / stride)]``.

    Parameters
    ----------
    in_ch, out_ch : int
        Channels.
    kernel_size : int
        Taps; padding is ``(kernel_size - 1) // 2`` (exact 'same' for odd kernels).
    stride : int
        Temporal stride.
    act : bool
        Apply ReLU after the BatchNorm.
    zero_bn : bool
        Initialise the BatchNorm scale to 0 (a residual branch then starts as identity; fastai ``zero_bn``).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: bool = True,
        zero_bn: bool = False,
    ) -> None:
        conv = nn.Conv1d(
            in_ch, out_ch, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=False
        )
        bn = nn.BatchNorm1d(out_ch)
        if zero_bn:
            nn.init.zeros_(bn.weight)
        layers: list[nn.Module] = [conv, bn]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def conv_pool_block(in_ch: int, out_ch: int, kernel_size: int, pool: int) -> nn.Sequential:
    """``conv-BN-ReLU -> MaxPool1d(pool)``: ``[B, in_ch, T] -> [B, out_ch, ceil(T / pool)]``.

    ``ceil_mode`` keeps at least one time step for any input length; ``pool=1`` means no pooling.
    """
    pool_layer: nn.Module = nn.MaxPool1d(pool, ceil_mode=True) if pool > 1 else nn.Identity()
    return nn.Sequential(ConvBnAct(in_ch, out_ch, kernel_size), pool_layer)


def rnn_layer_params(rnn: nn.RNNBase) -> list[list[nn.Parameter]]:
    """The parameters of each layer of a (bidirectional) ``nn.LSTM``/``nn.GRU``, input layer first."""
    layers: list[list[nn.Parameter]] = [[] for _ in range(rnn.num_layers)]
    for name, p in rnn.named_parameters():
        # names look like weight_ih_l0, bias_hh_l1_reverse
        layer = int(name.split("_l")[-1].split("_")[0])
        layers[layer].append(p)
    return layers


class SqueezeExcite1d(nn.Module):
    """Squeeze-and-excitation over channels (Hu et al. 2018), for ``[batch, channels, T]``.

    The channel weights are ``sigmoid(W2 relu(W1 mean_t(x)))`` with a bottleneck of ``channels // reduction``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Conv1d(channels, hidden, 1)
        self.fc2 = nn.Conv1d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=-1, keepdim=True)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s


class ConcatPool1d(nn.Module):
    """Global max and average pooling over time, concatenated (max first): ``[B, C, T] -> [B, 2C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=1)


class LeadMixConv2d(nn.Conv2d):
    """A 'spatial' convolution across all leads at once: kernel ``(n_leads, 1)`` on ``[B, C, n_leads, T]``.

    Used by models that first filter each lead separately in time (shared weights) and then mix the leads
    (Attia et al. 2019). :func:`adapt_input_leads` knows that the lead axis of its weight is dim 2.
    """

    def __init__(self, in_ch: int, out_ch: int, n_leads: int, bias: bool = False) -> None:
        super().__init__(in_ch, out_ch, kernel_size=(n_leads, 1), bias=bias)


def init_conv_weights(module: nn.Module) -> None:
    """Kaiming-normal init for conv weights and zero conv biases (fastai ``init_cnn``), applied recursively.

    Linear layers keep PyTorch's default init, so a head built by ``reset_head`` is initialised like the
    original one; BatchNorm scales set to zero on purpose (``zero_bn``) are left alone.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------------
# heads
# ----------------------------------------------------------------------------------------------------


def linear_head(num_features: int, num_outputs: int, dropout: float) -> nn.Sequential:
    """``Dropout(dropout) -> Linear(num_features, num_outputs)``: the default head."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_outputs))


def mlp_head(num_features: int, num_outputs: int, dropout: float, hidden: int = 128) -> nn.Sequential:
    """fastai ``create_head1d`` with one hidden layer (Strodthoff et al. 2021's ``lin_ftrs_head=[128]``).

    ``BN -> Dropout(dropout/2) -> Linear -> ReLU -> BN -> Dropout(dropout) -> Linear``. Its BatchNorms need a
    batch of at least 2 in training mode.
    """
    return nn.Sequential(
        nn.BatchNorm1d(num_features),
        nn.Dropout(dropout / 2),
        nn.Linear(num_features, hidden),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(hidden),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_outputs),
    )


def hidden_head(num_features: int, num_outputs: int, dropout: float, hidden: int) -> nn.Sequential:
    """:func:`mlp_head` with ``hidden`` units, or :func:`linear_head` when ``hidden == 0`` (the head of a
    ``linear_probe``, :mod:`ecglens.train.probe`)."""
    if hidden == 0:
        return linear_head(num_features, num_outputs, dropout)
    return mlp_head(num_features, num_outputs, dropout, hidden)


def check_head_hidden(value: object) -> int:
    """``head_hidden`` as an int >= 0 (0: a linear head), or raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"head_hidden must be an integer >= 0 (0: a linear head), got {value!r}. Pass e.g. "
                          "head_hidden=128.")
    return value


# ----------------------------------------------------------------------------------------------------
# the base class
# ----------------------------------------------------------------------------------------------------

GroupSpec = Sequence[tuple[str, "nn.Module | Sequence[nn.Module] | Sequence[nn.Parameter]"]]


class EcgModel(nn.Module):
    """Base class of every ecglens model (see the module docstring for the contract).

    Subclasses build their layers, set ``self.num_features`` and ``self.head = self.build_head(num_outputs)``,
    implement ``forward_features`` and ``group_modules``, and set the class attribute ``first_conv``.

    Parameters
    ----------
    in_leads : int
        Leads (input channels), >= 1.
    num_outputs : int
        Outputs of the head, >= 1.
    dropout : float
        Dropout probability before the last linear layer of the head, in [0, 1).
    """

    #: dotted paths (``model.get_submodule``) of the layers whose input is the lead axis
    first_conv: ClassVar[tuple[str, ...]] = ()

    def __init__(self, in_leads: int, num_outputs: int, dropout: float) -> None:
        super().__init__()
        self.in_leads = check_positive_int("in_leads", in_leads)
        self.num_outputs = check_positive_int("num_outputs", num_outputs)
        self.dropout = check_dropout(dropout)
        self.num_features = 0

    # -- contract --------------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> pooled embedding ``[batch, num_features]``."""
        raise NotImplementedError

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """``[batch, num_features]`` -> ``[batch, num_outputs]`` (raw: logits or unscaled values)."""
        return self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` (mV) -> ``[batch, num_outputs]``."""
        return self.forward_head(self.forward_features(x))

    def build_head(self, num_outputs: int) -> nn.Module:
        """A freshly initialised head for ``num_outputs`` (override for another head type)."""
        return linear_head(self.num_features, num_outputs, self.dropout)

    def reset_head(self, num_outputs: int) -> None:
        """Replace the head by a new, randomly initialised one with ``num_outputs`` outputs."""
        num_outputs = check_positive_int("num_outputs", num_outputs)
        ref = next(self.parameters())
        self.head = self.build_head(num_outputs).to(device=ref.device, dtype=ref.dtype)
        self.num_outputs = num_outputs

    def group_modules(self) -> GroupSpec:
        """``[(name, module or list of modules/parameters), ...]``, input to head (see ``param_groups``)."""
        raise NotImplementedError

    def param_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """Parameters in named groups ordered from input to head, each parameter exactly once.

        Use for discriminative learning rates (e.g. lr * 0.1 ** (n_groups - 1 - i)) or gradual unfreezing
        (unfreeze from the last group backwards). The last group is always ``"head"``.
        """
        groups: list[tuple[str, list[nn.Parameter]]] = []
        seen: set[int] = set()
        for name, spec in self.group_modules():
            items = [spec] if isinstance(spec, (nn.Module, nn.Parameter)) else list(spec)
            params: list[nn.Parameter] = []
            for item in items:
                for p in [item] if isinstance(item, nn.Parameter) else item.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        params.append(p)
            groups.append((name, params))
        missing = [n for n, p in self.named_parameters() if id(p) not in seen]
        if missing:
            raise RuntimeError(f"{type(self).__name__}.group_modules() misses parameters {missing[:5]}")
        return groups

    # -- helpers ---------------------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` when it is ``[batch, in_leads, n_samples]``, else raise LeadError/ConfigError."""
        if x.dim() != 3:
            raise ConfigError(
                f"{type(self).__name__} expects x of shape [batch, leads, n_samples], got {list(x.shape)}. "
                "Add a batch axis with x[None] for a single ECG."
            )
        if x.shape[1] != self.in_leads:
            raise LeadError(
                f"{type(self).__name__} was built for {self.in_leads} leads but x has {x.shape[1]} "
                f"(shape {list(x.shape)}). Bring the ECG to the model's leads (Predictor does this) or call "
                f"ecglens.models.adapt_input_leads(model, {x.shape[1]}) before fine-tuning."
            )
        return x

    def extra_repr(self) -> str:
        return f"in_leads={self.in_leads}, num_outputs={self.num_outputs}, num_features={self.num_features}"


# ----------------------------------------------------------------------------------------------------
# adapting the input layer to another lead count
# ----------------------------------------------------------------------------------------------------


def _rebuild_conv1d(old: nn.Conv1d, in_leads: int) -> nn.Conv1d:
    if old.groups != 1:
        raise ConfigError(f"cannot adapt a grouped input convolution ({old}); only groups=1 is supported.")
    return nn.Conv1d(
        in_leads,
        old.out_channels,
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )


def _rebuild_leadmix(old: LeadMixConv2d, in_leads: int) -> LeadMixConv2d:
    return LeadMixConv2d(old.in_channels, old.out_channels, in_leads, bias=old.bias is not None)


#: layer type -> (axis of the weight that indexes leads, rebuild(old, in_leads) -> new layer)
_LEAD_ADAPTERS: dict[type, tuple[int, Callable[..., nn.Module]]] = {
    nn.Conv1d: (1, _rebuild_conv1d),
    LeadMixConv2d: (2, _rebuild_leadmix),
}


def _resolve_keep(
    keep: Sequence[int | str], old_leads: int, in_leads: int, source_leads: Sequence[str] | None
) -> list[int]:
    """Turn ``keep`` (indices or lead names) into indices into the old lead axis."""
    if len(keep) != in_leads:
        raise ConfigError(
            f"keep has {len(keep)} entries but in_leads={in_leads}; give one source lead (index or name) per "
            "new input lead."
        )
    if source_leads is None and old_leads == len(CANONICAL_LEADS):
        source_leads = CANONICAL_LEADS
    names = [normalize_lead_name(s) for s in source_leads] if source_leads is not None else None
    idx: list[int] = []
    for k in keep:
        if isinstance(k, str):
            if names is None:
                raise ConfigError(
                    f"keep names lead {k!r} but the model has {old_leads} leads with no known names; pass "
                    "source_leads=[...] (the model's lead names) or integer indices."
                )
            name = normalize_lead_name(k)
            if name not in names:
                raise LeadError(
                    f"lead {k!r} is not one of the model's leads {list(names)}; use one of those."
                )
            idx.append(names.index(name))
        elif isinstance(k, int) and not isinstance(k, bool) and 0 <= k < old_leads:
            idx.append(k)
        else:
            raise ConfigError(f"keep entry {k!r} is not a lead name or an index in [0, {old_leads}).")
    return idx


def _new_lead_weight(w: torch.Tensor, dim: int, in_leads: int, idx: list[int] | None) -> torch.Tensor:
    """Select kept leads' weights, or spread the summed weight evenly over ``in_leads`` new leads."""
    if idx is not None:
        return w.index_select(dim, torch.as_tensor(idx, device=w.device)).clone()
    shape = list(w.shape)
    shape[dim] = in_leads
    return (w.sum(dim=dim, keepdim=True) / in_leads).expand(shape).clone()


@torch.no_grad()
def adapt_input_leads(
    model: EcgModel,
    in_leads: int,
    keep: Sequence[int | str] | None = None,
    source_leads: Sequence[str] | None = None,
) -> EcgModel:
    """Rebuild the layer(s) that see the leads (``model.first_conv``) for ``in_leads`` input leads, in place.

    With ``keep`` the new lead ``i`` takes the pretrained weights of old lead ``keep[i]``: the adapted model
    on the kept leads gives exactly what the original gives when the dropped leads' input weights are zero
    (for models whose first layer convolves over the leads: when the dropped leads are set to zero).
    Without ``keep`` every new lead gets the old weights summed over leads divided by ``in_leads`` (for one
    lead: the sum, as timm does for grey-scale input), so a signal common to all leads gets the same response.

    Parameters
    ----------
    model : EcgModel
        A model from :func:`ecglens.models.create_model` (pretrained or not).
    in_leads : int
        New number of input leads, >= 1.
    keep : sequence of int or str, optional
        One entry per new lead: the index or name of the old lead whose weights it keeps. Names are resolved
        against ``source_leads`` (default: the canonical 12-lead order when the model has 12 leads).
    source_leads : sequence of str, optional
        The model's current lead names, in order.

    Returns
    -------
    EcgModel
        ``model`` itself, now expecting ``[batch, in_leads, n_samples]``.

    Examples
    --------
    >>> m = create_model("cnn_baseline")                      # 12 leads
    >>> adapt_input_leads(m, 8, keep=["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"])  # doctest: +SKIP
    """
    in_leads = check_positive_int("in_leads", in_leads)
    old_leads = model.in_leads
    if keep is None and in_leads == old_leads:
        return model
    idx = None if keep is None else _resolve_keep(list(keep), old_leads, in_leads, source_leads)
    if not model.first_conv:
        raise ConfigError(
            f"{type(model).__name__} declares no first_conv; it cannot be adapted to other leads."
        )
    for path in model.first_conv:
        old = model.get_submodule(path)
        adapter = _LEAD_ADAPTERS.get(type(old))
        if adapter is None:
            raise ConfigError(f"cannot adapt {path} of type {type(old).__name__} to another lead count.")
        dim, rebuild = adapter
        weight = _new_lead_weight(old.weight, dim, in_leads, idx)
        new = rebuild(old, in_leads).to(device=old.weight.device, dtype=old.weight.dtype)
        new.weight.copy_(weight)
        new.weight.requires_grad_(old.weight.requires_grad)
        if old.bias is not None:
            new.bias.copy_(old.bias)
            new.bias.requires_grad_(old.bias.requires_grad)
        new.train(old.training)
        parent_path, _, attr = path.rpartition(".")
        setattr(model.get_submodule(parent_path) if parent_path else model, attr, new)
    model.in_leads = in_leads
    return model
