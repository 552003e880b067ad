"""The input-contract check: may data prepared one way feed a model trained on another?

A model file declares its input contract (:class:`~ecglens.signal.transforms.Preprocess`: fs, duration, leads,
filters, normalisation). Data prepared into a cache has its own ``Preprocess``. They must agree on every
contract field, except that the data may be longer than the model's window (it is then predicted in windows,
:mod:`ecglens.artifact.windows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..exceptions import ConfigError
from ..jsonutil import json_ready
from ..signal.transforms import CONTRACT_FIELDS, contract_mismatches

__all__ = ["check_contract"]

#: Preprocess field -> ``ecglens prepare`` option (for the fix in the error message)
_PREPARE_FLAGS: dict[str, str] = {"fs": "fs", "seconds": "seconds", "highpass_hz": "highpass", "notch_hz": "notch",
                                  "normalize": "normalize"}


def check_contract(model_pre: Any, data_pre: Any, *, fields: Sequence[str] = CONTRACT_FIELDS, where: str = "",
                   fix: str = "") -> None:
    """Refuse data prepared differently from a model's input contract.

    Parameters
    ----------
    model_pre, data_pre : Preprocess or None
        The model's contract and the data's preprocessing; nothing is checked when either is ``None``.
    fields : sequence of str
        The contract fields compared (default :data:`~ecglens.signal.transforms.CONTRACT_FIELDS`).
    where : str
        Names the data in the message (e.g. ``"at cache/ptbxl100"``).
    fix : str
        The rest of the fix, after "prepare the data with the model's preprocessing" (e.g. ``" and evaluate on
        that"``).

    Raises
    ------
    ConfigError
        Listing each mismatch (``fs: model 100.0, cache 500.0``) and the ``ecglens prepare`` options that
        reproduce the model's preprocessing.
    """
    if model_pre is None or data_pre is None:
        return
    model = json_ready(model_pre.to_dict())
    diff = contract_mismatches(model, json_ready(data_pre.to_dict()), fields)
    if not diff:
        return
    details = "; ".join(f"{k}: model {a!r}, cache {b!r}" for k, (a, b) in diff.items())
    flags = " ".join(f"--{flag} {model[key]}" for key, flag in _PREPARE_FLAGS.items() if model.get(key) is not None)
    place = f" {where}" if where else ""
    raise ConfigError(f"the cache{place} was prepared differently from what the model expects ({details}). "
                      f"Prepare a cache with the checkpoint's preprocessing (`ecglens prepare ... {flags}`){fix}.")
