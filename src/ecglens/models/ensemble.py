"""``ensemble``: several models of the zoo side by side, their outputs averaged (a deep ensemble).

An ensemble of ``M`` models whose heads end in a linear layer is itself a model of the zoo: its features are
the members' features side by side (each member's head up to, not including, its last ``Linear``), and its
head is one ``Linear`` holding the members' last layers, each scaled by ``1 / M``. Its raw output is then
exactly the mean of the members' raw outputs, so everything that takes a model — checkpoints, windows,
``ecglens evaluate`` / ``predict`` / ``serve`` / ``export``, fine-tuning and linear probes — takes an ensemble
unchanged. :func:`combine_models` builds one from trained models; ``ecglens ensemble`` does it for checkpoint
files.

Averaging raw outputs means: regression values are averaged in the task's units; binary and multilabel
outputs average logits (the geometric mean of the members' odds); a Gaussian head (``age_loss:
gaussian_nll``) averages the members' log-variances, so its ``age_std`` is the geometric mean of the members'
own standard deviations — it does not add the spread between the members (Lakshminarayanan et al. 2017 mix
the Gaussians instead).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..exceptions import ConfigError
from ._registry import create_model, register_model
from .layers import EcgModel, GroupSpec, linear_head

__all__ = ["Ensemble", "combine_models"]

_DEFAULT_MEMBERS = ({"name": "cnn_baseline"}, {"name": "cnn_baseline"})


def _member_specs(members: object) -> list[dict[str, Any]]:
    """``members`` as ``[{"name": str, "kwargs": dict}, ...]`` (at least two), or raise ConfigError."""
    example = "members=[{name: cnn_baseline}, {name: resnet1d_ribeiro, kwargs: {filters: [32, 48, 64, 96]}}]"
    if isinstance(members, (str, bytes, Mapping)) or not isinstance(members, Sequence) or len(members) < 2:
        raise ConfigError(
            f"ensemble needs a list of at least two member models, got {members!r}; e.g. {example}."
        )
    specs = []
    for i, spec in enumerate(members):
        well_formed = isinstance(spec, Mapping) and isinstance(spec.get("name"), str)
        if not well_formed or set(spec) - {"name", "kwargs"}:
            raise ConfigError(
                f"ensemble member {i} must be {{name: MODEL, kwargs: {{...}}}}, got {spec!r}; e.g. {example}."
            )
        if spec["name"] == "ensemble":
            raise ConfigError(f"ensemble member {i} is itself an ensemble; list its members instead.")
        kwargs = spec.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise ConfigError(f"ensemble member {i}: kwargs must be a mapping, got {kwargs!r}.")
        specs.append({"name": spec["name"], "kwargs": dict(kwargs)})
    return specs


def _split_head(member: EcgModel, index: int) -> tuple[nn.Module, nn.Linear]:
    """``member.head`` as (everything before its last ``Linear``, that ``Linear``)."""
    head = member.head
    if not isinstance(head, nn.Sequential) or not isinstance(head[-1], nn.Linear):
        raise ConfigError(
            f"ensemble member {index} ({getattr(member, 'model_name', type(member).__name__)}) "
            "has a head that does not end in a Linear layer; such a model cannot be a member."
        )
    return nn.Sequential(*list(head)[:-1]), head[-1]


@register_model("ensemble", composite=True)
class Ensemble(EcgModel):
    """Deep ensemble: the mean of the raw outputs of several models (Lakshminarayanan et al. 2017).

    ``forward_features`` returns the members' features side by side (each member's head without its last
    ``Linear``: for a ``Dropout -> Linear`` head the pooled embedding, for a head with a hidden layer that
    layer's output), and the head is one ``Dropout -> Linear`` on all of them. Built with
    :func:`combine_models` from trained members the head holds their last layers scaled by ``1 / M``, so the
    output is exactly the mean of the members' raw outputs; built by ``create_model`` it is a freshly
    initialised wide model that trains like any other. Its parameters are the members' (0.38 M with the
    default two ``cnn_baseline`` members). See the module docstring for how outputs are combined.

    Parameters
    ----------
    in_leads : int
        Input leads of every member; ``x`` is ``[batch, in_leads, n_samples]`` in mV, any ``n_samples``.
    num_outputs : int
        Head outputs.
    members : sequence of mapping
        At least two ``{"name": MODEL, "kwargs": {...}}`` of :func:`ecglens.models.list_models` (not
        ``ensemble``), each with a head ending in ``Linear`` (every model of the zoo).
    dropout : float
        Dropout before the shared linear head (default 0: members were trained with their own).

    Notes
    -----
    ``first_conv`` lists every member's input layer (``members.<i>.<path>``), so :func:`adapt_input_leads`
    adapts all members at once. ``param_groups`` merges the members' groups level by level (group ``k`` holds
    each member's ``k``-th group; a member's own head layers join its last body group).
    """

    def __init__(
        self,
        in_leads: int = 12,
        num_outputs: int = 1,
        members: Sequence[Mapping[str, Any]] = _DEFAULT_MEMBERS,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_leads, num_outputs, dropout)
        specs = _member_specs(members)
        built, widths = [], []
        for i, spec in enumerate(specs):
            member = create_model(
                spec["name"], in_leads=self.in_leads, num_outputs=num_outputs, **spec["kwargs"]
            )
            member.head, last = _split_head(member, i)
            built.append(member)
            widths.append(last.in_features)
        self.members = nn.ModuleList(built)
        self.widths = tuple(widths)
        self.first_conv = tuple(f"members.{i}.{p}" for i, m in enumerate(built) for p in m.first_conv)
        self.num_features = sum(widths)
        self.head = self.build_head(num_outputs)

    @property
    def in_leads(self) -> int:
        """Input leads (setting it, as :func:`adapt_input_leads` does, sets every member's)."""
        return self._in_leads

    @in_leads.setter
    def in_leads(self, value: int) -> None:
        self._in_leads = value
        for member in getattr(self, "members", ()):
            member.in_leads = value

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, in_leads, n_samples]`` -> ``[batch, sum(widths)]``: every member's features, in order."""
        x = self.check_input(x)
        return torch.cat([m.head(m.forward_features(x)) for m in self.members], dim=1)

    def build_head(self, num_outputs: int) -> nn.Module:
        return linear_head(self.num_features, num_outputs, self.dropout)

    def group_modules(self) -> GroupSpec:
        per_member = []
        for member in self.members:
            groups = [(name, spec) for name, spec in member.group_modules() if name != "head"]
            name, spec = groups[-1]
            items = [spec] if isinstance(spec, (nn.Module, nn.Parameter)) else list(spec)
            groups[-1] = (name, [*items, member.head])  # the member's own head layers end its body
            per_member.append(groups)
        merged = []
        for k in range(max(len(g) for g in per_member)):
            level = [g[k] for g in per_member if k < len(g)]
            names = dict.fromkeys(name for name, _ in level)
            items = [
                item
                for _, spec in level
                for item in ([spec] if isinstance(spec, (nn.Module, nn.Parameter)) else list(spec))
            ]
            merged.append((f"{k}:{'+'.join(names)}", items))
        return [*merged, ("head", self.head)]


@torch.no_grad()
def combine_models(models: Sequence[EcgModel], weights: Sequence[float] | None = None) -> Ensemble:
    """An :class:`Ensemble` whose raw output is the (weighted) mean of ``models``' raw outputs.

    Parameters
    ----------
    models : sequence of EcgModel
        At least two trained models from :func:`ecglens.models.create_model` (they record ``model_name`` and
        ``model_kwargs``) with the same ``in_leads`` and ``num_outputs``; architectures may differ. They are
        copied, not changed.
    weights : sequence of float, optional
        One non-negative weight per model (normalised to sum 1); default equal weights.

    Returns
    -------
    Ensemble
        In eval mode, on the CPU, with ``model_name = "ensemble"`` and ``model_kwargs`` listing the members.
    """
    if len(models) < 2:
        raise ConfigError(f"an ensemble needs at least two models, got {len(models)}.")
    w = torch.as_tensor([1.0] * len(models) if weights is None else weights, dtype=torch.float64)
    if w.shape != (len(models),) or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise ConfigError(
            f"weights must be {len(models)} non-negative numbers with a positive sum, got {weights!r}."
        )
    w = w / w.sum()
    shapes = {(int(m.in_leads), int(m.num_outputs)) for m in models}
    if len(shapes) != 1:
        raise ConfigError(f"ensemble members must share in_leads and num_outputs, got {sorted(shapes)}.")
    ((in_leads, num_outputs),) = shapes
    specs = []
    for i, m in enumerate(models):
        if not hasattr(m, "model_name"):
            raise ConfigError(
                f"model {i} was not built by ecglens.models.create_model (no model_name); "
                "build it with create_model or load it with load_checkpoint."
            )
        specs.append({"name": m.model_name, "kwargs": dict(getattr(m, "model_kwargs", {}) or {})})
    ensemble = create_model("ensemble", in_leads=in_leads, num_outputs=num_outputs, members=specs)
    last_layers = []
    for i, (model, member) in enumerate(zip(models, ensemble.members, strict=True)):
        body_head, last = _split_head(model, i)
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
        state.update({f"head.{k}": v for k, v in body_head.state_dict().items()})
        member.load_state_dict({k: v.detach().cpu() for k, v in state.items()}, strict=True)
        last_layers.append(last)
    linear = ensemble.head[-1]
    linear.weight.copy_(
        torch.cat([float(wi) * ll.weight.detach().cpu() for wi, ll in zip(w, last_layers, strict=True)], dim=1)
    )
    bias = [
        float(wi) * (ll.bias.detach().cpu() if ll.bias is not None else torch.zeros(num_outputs))
        for wi, ll in zip(w, last_layers, strict=True)
    ]
    linear.bias.copy_(torch.stack(bias).sum(dim=0))
    return ensemble.eval()
