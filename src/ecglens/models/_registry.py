"""The model registry: ``@register_model(name)`` and one factory, ``create_model`` (timm style).

A model is registered by decorating a factory ``fn(in_leads=12, num_outputs=1, *, dropout=..., ...)``
returning an ``EcgModel`` (a class works too). ``create_model`` looks the name up in a dict (never an if/elif
chain over names), checks the keyword arguments against the factory's signature, builds the model and records
``model_name`` and ``model_kwargs`` on it so a checkpoint can rebuild it. Every module of ``ecglens.models``
whose name does not start with ``_`` is imported on first use, so a new model file registers itself.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from .._optional import import_submodules
from ..exceptions import ConfigError

__all__ = ["ModelSpec", "create_model", "get_model_spec", "list_models", "model_info", "register_model"]

F = TypeVar("F", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes
    ----------
    name : str
        Name used with ``create_model(name)``.
    factory : callable
        ``factory(in_leads=..., num_outputs=..., **kwargs) -> nn.Module``.
    description : str
        First line of the factory's docstring.
    defaults : dict
        Keyword arguments and their defaults (``in_leads`` and ``num_outputs`` included).
    composite : bool
        Built from other registered models (``ensemble``) rather than an architecture of its own.
    """

    name: str
    factory: Callable[..., nn.Module]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    composite: bool = False


_MODELS: dict[str, ModelSpec] = {}
_LOADED = False


def _signature_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not inspect.Parameter.empty
    }


def register_model(name: str | None = None, *, composite: bool = False) -> Callable[[F], F]:
    """Decorator that registers a model factory under ``name`` (default: the factory's ``__name__``).

    The factory must accept ``in_leads`` and ``num_outputs`` keywords and have a docstring whose first line
    describes the model (shown by ``ecglens models`` and :func:`model_info`). ``composite=True`` marks a model
    built from other registered models (``ensemble``), which ``list_models(composite=False)`` leaves out.
    """

    def deco(fn: F) -> F:
        key = name or fn.__name__
        if key in _MODELS:
            raise ConfigError(f"a model named {key!r} is already registered; choose another name.")
        defaults = _signature_defaults(fn)
        missing = {"in_leads", "num_outputs"} - set(defaults)
        if missing:
            raise ConfigError(
                f"model factory {key!r} must take keyword arguments {sorted(missing)} with defaults."
            )
        doc = inspect.getdoc(fn) or ""
        _MODELS[key] = ModelSpec(key, fn, (doc.splitlines() or [""])[0], defaults, composite)
        return fn

    return deco


def _ensure_loaded() -> None:
    """Import the model modules so their ``@register_model`` decorators run.

    The registry counts as loaded only once every module imported; a module that fails raises ``ImportError``
    naming it (and is tried again on the next call), never a silently partial registry.
    """
    global _LOADED
    if _LOADED:
        return
    from .. import models as pkg

    import_submodules(pkg.__name__, pkg.__path__, kind="model")
    _LOADED = True


def get_model_spec(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` registered as ``name``; unknown names raise ``ConfigError``."""
    _ensure_loaded()
    spec = _MODELS.get(name)
    if spec is None:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=3, cutoff=0.5)
        hint = f"Did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ConfigError(f"unknown model {name!r}. {hint}Available models: {', '.join(sorted(_MODELS))}.")
    return spec


def list_models(pattern: str | None = None, composite: bool = True) -> list[str]:
    """Names of the registered models, sorted; ``pattern`` is a shell wildcard (``"xresnet*"``).

    ``composite=False`` lists the architectures only, without models built from them (``ensemble``).
    """
    _ensure_loaded()
    names = sorted(n for n, spec in _MODELS.items() if composite or not spec.composite)
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def model_info(name: str) -> dict[str, Any]:
    """Describe a registered model without building it.

    Returns
    -------
    dict
        ``name``, ``description`` (first docstring line), ``defaults`` (keyword arguments and defaults),
        ``module`` (where it is defined) and ``doc`` (the full docstring).
    """
    spec = get_model_spec(name)
    return {
        "name": spec.name,
        "description": spec.description,
        "defaults": dict(spec.defaults),
        "module": spec.factory.__module__,
        "doc": inspect.getdoc(spec.factory) or "",
    }


def create_model(name: str, in_leads: int = 12, num_outputs: int = 1, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        A name from :func:`list_models` (e.g. ``"resnet1d_ribeiro"``); unknown names raise
        :class:`~ecglens.exceptions.ConfigError` naming close matches.
    in_leads : int
        Input leads; the model takes ``x`` of shape ``[batch, in_leads, n_samples]`` in mV, any ``n_samples``.
    num_outputs : int
        Outputs of the head (raw logits or regression values).
    **kwargs
        Model-specific options (see :func:`model_info`), e.g. ``dropout=0.3`` or ``width=0.5``.

    Returns
    -------
    torch.nn.Module
        An :class:`~ecglens.models.layers.EcgModel` in training mode, with ``model_name`` and ``model_kwargs``
        attributes recording how it was built.
    """
    if kwargs.pop("pretrained", False):
        raise ConfigError(f"ecglens.models.create_model builds fresh weights; for trained ones use "
                          f"ecglens.create_model({name!r}, pretrained=True) (the shipped models: "
                          "ecglens.artifact.list_pretrained()).")
    spec = get_model_spec(name)
    unknown = sorted(set(kwargs) - set(spec.defaults))
    if unknown:
        options = sorted(set(spec.defaults) - {"in_leads", "num_outputs"})
        raise ConfigError(f"model {name!r} has no option(s) {unknown}; its options are {options}.")
    model = spec.factory(in_leads=in_leads, num_outputs=num_outputs, **kwargs)
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    return model
