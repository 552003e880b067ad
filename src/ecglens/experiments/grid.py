"""Building blocks shared by the experiment grids (:mod:`~ecglens.experiments.transfer`,
:mod:`~ecglens.experiments.compare`): dotted overrides of a raw config, run keys, shards, the protocol
fingerprint in ``experiment.yaml``, file-locked appends to ``results.csv`` and quiet Lightning runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..exceptions import ConfigError
from ..train.config import TrainConfig, parse_override

__all__ = ["append_row", "apply_raw_overrides", "check_protocol", "device_of", "folds_text", "locked",
           "parse_shard", "quiet_lightning", "read_results_csv", "short_hash"]


def apply_raw_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (YAML values) to a raw config mapping, creating sections as needed."""
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node[part] = dict(node[part])
            node = node[part]
        node[path[-1]] = value
    return data


def short_hash(value: Any, n: int = 6) -> str:
    """First ``n`` hex digits of the SHA-1 of ``value`` as canonical JSON (run keys, protocol fingerprints)."""
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:n]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (1 <= i <= n) -> ``(i, n)``; ``None`` -> ``(1, 1)``."""
    if text is None:
        return 1, 1
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like i/n (e.g. 2/4), got {text!r}.") from None
    if not 1 <= i <= n:
        raise ConfigError(f"--shard {text}: shards are numbered 1..n, so use 1/{n} ... {n}/{n}.")
    return i, n


def check_protocol(proto: Mapping[str, Any], config: Mapping[str, Any], out: Path) -> str:
    """Write ``out/experiment.yaml`` on the first start; later starts must have the same protocol.

    Parameters
    ----------
    proto : mapping
        What every result of the folder must share (JSON-able); its hash is the fingerprint.
    config : mapping
        The resolved config, stored for the record.
    out : Path
        The experiment's output folder.

    Returns
    -------
    str
        The 12-digit protocol hash.

    Raises
    ------
    ConfigError
        When the folder holds results of another protocol (the message lists the differing keys).
    """
    digest = short_hash(proto, 12)
    path = out / "experiment.yaml"
    if path.is_file():
        old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if old.get("protocol_hash") != digest:
            before = old.get("protocol") or {}
            diff = sorted(k for k in set(before) | set(proto) if before.get(k) != proto.get(k))
            raise ConfigError(f"{out} holds results of a different protocol (differs in: {', '.join(diff)}). "
                              "Use another --out for the new protocol, or restore the settings it was run "
                              "with.")
        return digest
    out.mkdir(parents=True, exist_ok=True)
    doc = {"protocol_hash": digest, "protocol": dict(proto), "config": dict(config),
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path.write_text(yaml.safe_dump(json.loads(json.dumps(doc, default=str)), sort_keys=False), encoding="utf-8")
    return digest


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``fcntl.flock``, released on close) on ``path.lock`` where available."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: single-process use
        fcntl = None
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def append_row(path: Path, row: Mapping[str, Any], columns: Sequence[str]) -> None:
    """Append one row (``columns`` in order, header on a new file) to a CSV under a file lock."""
    with locked(path):
        header = not path.is_file() or path.stat().st_size == 0
        pd.DataFrame([{c: row.get(c) for c in columns}], columns=list(columns)).to_csv(
            path, mode="a", header=header, index=False)


def read_results_csv(path: str | os.PathLike[str], columns: Sequence[str],
                     dtype: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """``results.csv`` of an output folder (or the file itself), one row per ``run_key`` (the last one kept).

    A missing file gives an empty table with ``columns``; ``dtype`` is passed to :func:`pandas.read_csv` (columns
    such as sizes or model kwargs that must stay text).
    """
    path = Path(path)
    path = path / "results.csv" if path.is_dir() else path
    if not path.is_file():
        return pd.DataFrame(columns=list(columns))
    table = pd.read_csv(path, dtype=dict(dtype or {}))
    return table.drop_duplicates("run_key", keep="last").reset_index(drop=True)


def folds_text(folds: Sequence[int]) -> str:
    """Folds as the space-separated text of a ``results.csv`` cell, e.g. ``"1 2 3"``."""
    return " ".join(str(int(f)) for f in folds)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's per-run banners (GPU available, tips, ...) at WARNING level while a grid runs."""
    import logging
    import warnings

    names = ("lightning.pytorch", "lightning.fabric", "lightning")
    loggers = {lg: lg.level for lg in map(logging.getLogger, names)}
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # torch / lightning version noise
            yield
    finally:
        for lg, level in loggers.items():
            lg.setLevel(level)


def device_of(config: TrainConfig) -> str:
    """``"cuda"`` when the training config asks for (or auto-detects) a GPU, else ``"cpu"``."""
    import torch

    gpu = config.trainer.accelerator in ("gpu", "cuda") or (config.trainer.accelerator == "auto"
                                                             and torch.cuda.is_available())
    return "cuda" if gpu else "cpu"
