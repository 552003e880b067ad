"""``create_model(name, pretrained=True)``: the timm-style factory over the registry and the shipped weights.

:func:`ecglens.models.create_model` builds architectures with fresh weights and cannot see the shipped files (it
sits below the model file format). This module adds ``pretrained=True``: a shipped model's name (``"age-sex"``,
see :func:`~ecglens.artifact.list_pretrained`; an alias such as ``"mi"``), a checkpoint path, or an architecture with
exactly one shipped checkpoint (``"ensemble"``) gives that network with its trained weights.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..exceptions import CheckpointError, ConfigError
from .checkpoint import _is_bare_name, list_pretrained, load_checkpoint, pretrained_aliases, read_checkpoint_metadata

if TYPE_CHECKING:
    from torch import nn

__all__ = ["create_model", "pretrained_architectures"]


def pretrained_architectures() -> dict[str, str]:
    """Each shipped model's name -> the registered architecture it is built from (reads metadata only)."""
    return {name: str(read_checkpoint_metadata(name)["model"]["name"]) for name in list_pretrained()}


def _shipped_name(name: str) -> str:
    """The shipped model ``name`` stands for: itself, or the one shipped checkpoint of that architecture."""
    shipped = pretrained_architectures()
    if name in shipped or name in pretrained_aliases():
        return name
    matches = [model for model, arch in shipped.items() if arch == name]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(f"{model} ({arch})" for model, arch in shipped.items()) or "none in this install"
    why = (f"{len(matches)} shipped checkpoints use architecture {name!r} ({', '.join(matches)}); name one"
           if matches else f"no shipped weights for {name!r}")
    raise CheckpointError(
        f"{why}. Shipped models (architecture): {listing}. Pass one of those names or a .safetensors path, or "
        f"pretrained=False for fresh weights of a registered architecture (ecglens.list_models())."
    )


def create_model(name: str | os.PathLike[str], pretrained: bool = False, *, map_location: str = "cpu",
                 **kwargs: Any) -> nn.Module:
    """Build a model by name, with fresh weights or the shipped / saved ones (timm's ``create_model``).

    Parameters
    ----------
    name : str or path
        With ``pretrained=False``: a registered architecture (:func:`ecglens.list_models`). With
        ``pretrained=True``: a shipped model (:func:`~ecglens.artifact.list_pretrained`, e.g. ``"age-sex"``), an
        architecture with exactly one shipped checkpoint (``"ensemble"`` -> ``age-sex-ensemble``), or the
        path of a ``.safetensors`` checkpoint.
    pretrained : bool
        Load trained weights instead of initialising fresh ones.
    map_location : str
        Device of the loaded weights (``pretrained=True`` only).
    **kwargs
        ``pretrained=False``: ``in_leads``, ``num_outputs`` and the architecture's options (see
        :func:`ecglens.models.create_model`). ``pretrained=True``: only ``num_outputs``, which replaces the
        trained head by a fresh one with that many outputs (the start of fine-tuning).

    Returns
    -------
    torch.nn.Module
        Pretrained: in eval mode, taking ``[batch, in_leads, n_samples]`` prepared as the checkpoint's input
        contract says (``load_checkpoint(name).preprocess``). Otherwise in training mode.

    Raises
    ------
    CheckpointError
        No shipped weights for ``name`` (the message lists the shipped models and their architectures).
    ConfigError
        Unknown architecture, or options other than ``num_outputs`` with ``pretrained=True``.
    """
    from ..models import create_model as build

    if not pretrained:
        return build(os.fspath(name), **kwargs)
    extra = sorted(set(kwargs) - {"num_outputs"})
    if extra:
        raise ConfigError(f"a pretrained model keeps the architecture it was trained with; options {extra} apply "
                          "only with pretrained=False. num_outputs= replaces its head.")
    text = os.fspath(name)
    model = load_checkpoint(_shipped_name(text) if _is_bare_name(text) else text, map_location).model
    if "num_outputs" in kwargs:
        model.reset_head(int(kwargs["num_outputs"]))
    return model
