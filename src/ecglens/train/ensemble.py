"""Combine trained checkpoints into one ensemble checkpoint (``ecglens ensemble``).

>>> ensemble_checkpoints(["runs/a/model.safetensors", "runs/b/model.safetensors"], "ens.safetensors")
... # doctest: +SKIP

The members must predict the same task with the same label statistics (e.g. age standardised with the same
training mean and standard deviation: the same training folds) and take the same input (the same
``Preprocess`` contract: fs, window length, leads, filters); architectures may differ. The result is an
:class:`ecglens.models.ensemble.Ensemble` checkpoint like any other: ``ecglens evaluate``, ``predict``,
``serve``, ``export`` and ``finetune`` take it unchanged, and its raw output is the (weighted) mean of the
members' raw outputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..artifact import Checkpoint, load_checkpoint, save_checkpoint
from ..exceptions import CheckpointError
from ..models.ensemble import combine_models

__all__ = ["ensemble_checkpoints"]


def _same(ckpts: Sequence[Checkpoint], what: str, get: Any, fix: str) -> None:
    first = get(ckpts[0])
    for c in ckpts[1:]:
        if get(c) != first:
            raise CheckpointError(
                f"{c.path.name} and {ckpts[0].path.name} differ in their {what} ({get(c)!r} vs {first!r}); "
                f"an ensemble needs the same {what} for every member. {fix}"
            )


def _member_record(c: Checkpoint) -> dict[str, Any]:
    return {"source": str(c.path), "model": c.model_name, "kwargs": dict(c.model_kwargs),
            "created": c.created, "ecglens_version": c.version, "metrics": dict(c.metrics), "config": c.config}


def ensemble_checkpoints(
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    weights: Sequence[float] | None = None,
) -> Path:
    """Write one checkpoint whose model averages the raw outputs of ``sources``.

    Parameters
    ----------
    sources : sequence of path or str
        At least two checkpoint files or shipped model names.
    out : path
        The ``.safetensors`` file to write.
    weights : sequence of float, optional
        One non-negative weight per source (normalised to sum 1); default equal weights.

    Returns
    -------
    Path
        The written file. Its ``config`` records every member (source file, model, training config and
        validation metrics) and the weights; its ``metrics`` are empty until you evaluate it.

    Raises
    ------
    CheckpointError
        Fewer than two sources, or members with different tasks, label statistics, input contracts or leads.
    """

    if len(sources) < 2:
        raise CheckpointError(f"an ensemble needs at least two checkpoints, got {len(sources)}.")
    ckpts = [load_checkpoint(s) for s in sources]
    _same(ckpts, "task", lambda c: c.task.to_dict(),
          "Train every member with the same task and training folds (label statistics come from them).")
    _same(ckpts, "input contract", lambda c: c.preprocess.to_dict() if c.preprocess is not None else None,
          "Train every member with the same data.fs / seconds / leads / filters and training crop.")
    _same(ckpts, "input leads", lambda c: c.in_leads, "Adapt the members to the same leads first.")
    model = combine_models([c.model for c in ckpts], weights)
    datas = [(c.config or {}).get("data") for c in ckpts]
    config = {
        "name": "ensemble",
        "data": datas[0] if all(d == datas[0] for d in datas) else None,
        "ensemble": {"members": [_member_record(c) for c in ckpts],
                     "weights": None if weights is None else [float(w) for w in weights]},
    }
    return save_checkpoint(out, model, task=ckpts[0].task, preprocess=ckpts[0].preprocess, config=config,
                           in_leads=ckpts[0].in_leads)
