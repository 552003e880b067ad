"""Combine trained checkpoints into one ensemble checkpoint (``ecglens ensemble``).

>>> ensemble_checkpoints(["runs/a/model.safetensors", "runs/b/model.safetensors"], "ens.safetensors")
... # doctest: +SKIP

Members are named by their run folder in every message (``runs/a/model.safetensors`` -> ``a``; the folder
and file name when two members share a folder; a shipped model by its name). The same checkpoint twice (the same
file, or another file with identical weights) is refused: it would only re-weight the ensemble silently.

The members must predict the same task with the same label statistics (e.g. age standardised with the same
training mean and standard deviation: the same training folds) and take the same input (the same
``Preprocess`` contract: fs, window length, leads, filters); architectures may differ. The result is an
:class:`ecglens.models.ensemble.Ensemble` checkpoint like any other: ``ecglens evaluate``, ``predict``,
``serve``, ``export`` and ``finetune`` take it unchanged, and its raw output is the (weighted) mean of the
members' raw outputs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..artifact import Checkpoint, load_checkpoint, save_checkpoint
from ..exceptions import CheckpointError
from ..models.ensemble import combine_models

__all__ = ["ensemble_checkpoints", "member_labels"]


def member_labels(sources: Sequence[str | os.PathLike[str]], paths: Sequence[Path]) -> list[str]:
    """How each member is named in messages: its run folder (``runs/a/model.safetensors`` -> ``a``).

    A shipped model given by name keeps its name; members whose folders have the same name are named
    ``folder/file`` instead.
    """
    folders = [Path(p).parent.name or str(p) for p in paths]
    labels = []
    for source, path, folder in zip(sources, paths, folders, strict=True):
        if Path(path).name != Path(str(source)).name and not Path(str(source)).suffix:
            labels.append(str(source))  # a shipped model name
        elif folders.count(folder) > 1:
            labels.append(f"{folder}/{Path(path).name}")
        else:
            labels.append(folder)
    return labels


def _weights_digest(c: Checkpoint) -> str:
    """SHA-256 of the model's tensors (names, shapes, dtypes and values), independent of the file."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(c.model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _refuse_duplicates(ckpts: Sequence[Checkpoint], labels: Sequence[str]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for c, label in zip(ckpts, labels, strict=True):
        for key in (("file", str(Path(c.path).resolve())), ("weights", _weights_digest(c))):
            if key in seen:
                same = "the same file" if key[0] == "file" else "identical weights"
                who = f"{label!r} is given twice" if seen[key] == label else f"{seen[key]!r} and {label!r} are"
                raise CheckpointError(
                    f"members {who}: the same checkpoint ({same}); an ensemble of "
                    "copies only re-weights one model. Give each trained checkpoint once (use --weights to "
                    "weight them)."
                )
            seen[key] = label


def _same(ckpts: Sequence[Checkpoint], labels: Sequence[str], what: str, get: Any, fix: str) -> None:
    first = get(ckpts[0])
    for c, label in zip(ckpts[1:], labels[1:], strict=True):
        if get(c) != first:
            raise CheckpointError(
                f"members {label!r} and {labels[0]!r} differ in their {what} ({get(c)!r} vs {first!r}); "
                f"an ensemble needs the same {what} for every member. {fix}"
            )


def _member_record(c: Checkpoint, label: str) -> dict[str, Any]:
    return {"source": str(c.path), "label": label, "model": c.model_name, "kwargs": dict(c.model_kwargs),
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
        Fewer than two sources, the same checkpoint twice, or members with different tasks, label statistics,
        input contracts or leads.
    """

    if len(sources) < 2:
        raise CheckpointError(f"an ensemble needs at least two checkpoints, got {len(sources)}.")
    ckpts = [load_checkpoint(s) for s in sources]
    labels = member_labels(sources, [c.path for c in ckpts])
    _refuse_duplicates(ckpts, labels)
    _same(ckpts, labels, "task", lambda c: c.task.to_dict(),
          "Train every member with the same task and training folds (label statistics come from them).")
    _same(ckpts, labels, "input contract", lambda c: c.preprocess.to_dict() if c.preprocess is not None else None,
          "Train every member with the same data.fs / seconds / leads / filters and training crop.")
    _same(ckpts, labels, "input leads", lambda c: c.in_leads, "Adapt the members to the same leads first.")
    model = combine_models([c.model for c in ckpts], weights)
    datas = [(c.config or {}).get("data") for c in ckpts]
    config = {
        "name": "ensemble",
        "data": datas[0] if all(d == datas[0] for d in datas) else None,
        "ensemble": {"members": [_member_record(c, label) for c, label in zip(ckpts, labels, strict=True)],
                     "weights": None if weights is None else [float(w) for w in weights]},
    }
    return save_checkpoint(out, model, task=ckpts[0].task, preprocess=ckpts[0].preprocess, config=config,
                           in_leads=ckpts[0].in_leads)
