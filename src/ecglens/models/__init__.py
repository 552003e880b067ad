"""The model zoo: ECG networks built by name through one registry.

>>> from ecglens.models import create_model, list_models
>>> model = create_model("resnet1d_ribeiro", in_leads=12, num_outputs=2)   # doctest: +SKIP
>>> model(x)                     # x: [batch, 12, n_samples] float32 in mV -> [batch, 2]   # doctest: +SKIP

Every model follows the contract of :class:`~ecglens.models.layers.EcgModel`: ``forward_features``,
``forward_head``, ``reset_head``, ``param_groups``, ``num_features`` and ``first_conv`` (adapted to other lead
counts by :func:`adapt_input_leads`). Model modules register themselves with ``@register_model`` and are
imported on first use of the registry.
"""

from __future__ import annotations

from ._registry import ModelSpec, create_model, get_model_spec, list_models, model_info, register_model
from .layers import EcgModel, adapt_input_leads

__all__ = [
    "EcgModel",
    "ModelSpec",
    "adapt_input_leads",
    "create_model",
    "get_model_spec",
    "list_models",
    "model_info",
    "register_model",
]
