"""The one experiment runner: a grid of runs into one resumable, shardable output folder.

An experiment (:mod:`~ecglens.experiments.compare`, :mod:`~ecglens.experiments.transfer`) is a thin definition
on top of this module: its config (loaded by :func:`load_grid_config`: YAML, profiles, dotted overrides), its
planned runs (each with a ``key`` and a ``group``), its protocol (what every result of a folder must share) and
a per-run function returning one row of ``results.csv``. :func:`run_grid` does the rest::

    OUT/experiment.yaml   resolved config and protocol fingerprint (a re-run into OUT must match it)
    OUT/results.csv       one row per finished run (file-locked appends; a re-run skips these run keys)
    OUT/failures.csv      runs that raised, with the error (retried on the next start)

``shard=(i, n)`` deals the run groups round-robin (a run is its own group unless it says otherwise), so several
processes or machines can write into one folder. Synthetic cohorts (:class:`SyntheticSpec`) are written as
ordinary caches with :func:`ecglens.data.cache.write_cache`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import yaml

from ..data.cache import open_cache, write_cache
from ..exceptions import ConfigError
from ..jsonutil import json_ready
from ..signal.transforms import Preprocess
from ..train.config import TrainConfig, dataclass_from_dict, parse_override
from ..train.finetune import read_yaml_mapping
from ..train.loop import without_curves
from .simulate import simulate_cohort

__all__ = ["QUIET_TRAINER", "GridDefinition", "GridOutcome", "LabelMaker", "SyntheticSpec", "append_row",
           "apply_profile", "apply_raw_overrides", "check_protocol", "device_of", "drop_checkpoints", "folds_text",
           "load_grid_config", "locked", "merge_mappings", "open_grid_cache", "parse_shard",
           "protocol_train_section", "quiet_lightning", "read_results_csv", "record_failure", "run_grid",
           "shard_runs", "short_hash", "write_synthetic_cache"]

#: trainer settings of the quick profiles: one CPU thread, no progress bar, no early stopping
QUIET_TRAINER: dict[str, Any] = {"accelerator": "cpu", "devices": 1, "precision": "32-true", "num_workers": 0,
                                 "num_threads": 1, "progress_bar": False, "patience": None, "log_every_n_steps": 1}
#: trainer keys that change where / how visibly a run trains, not its results (left out of the protocol)
_NOT_PROTOCOL_TRAINER = ("accelerator", "devices", "num_nodes", "strategy", "num_workers", "num_threads",
                         "progress_bar", "log_every_n_steps", "out_dir")
_FAILURE_COLUMNS = ("run_key", "error", "at")
C = TypeVar("C")


# ----------------------------------------------------------------------------------------------- config


def merge_mappings(base: Mapping[str, Any], over: Mapping[str, Any],
                   replaced: frozenset[tuple[str, ...]] = frozenset(), path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``over`` merged into ``base`` recursively (new dicts); a mapping at a path in ``replaced`` replaces."""
    out = dict(base)
    for key, value in over.items():
        here = (*path, str(key))
        if isinstance(value, Mapping) and here not in replaced:
            before = out.get(key)
            out[key] = merge_mappings(before if isinstance(before, Mapping) else {}, value, replaced, here)
        else:
            out[key] = value
    return out


def apply_profile(data: Mapping[str, Any], profile: str, builtin: Mapping[str, Mapping[str, Any]],
                  replaced: frozenset[tuple[str, ...]] = frozenset()) -> dict[str, Any]:
    """Merge the built-in profile ``profile``, then the config's own ``profiles.<profile>`` section, into ``data``.

    Raises
    ------
    ConfigError
        When neither defines the profile (the message lists the available ones).
    """
    own = (data.get("profiles") or {}).get(profile)
    if profile not in builtin and own is None:
        names = sorted(set(builtin) | set(data.get("profiles") or {}))
        raise ConfigError(f"Unknown profile {profile!r}. Available: {', '.join(names) or 'none'} (built-in or the "
                          "config's `profiles:` section).")
    return merge_mappings(merge_mappings(data, builtin.get(profile, {}), replaced), own or {}, replaced)


def load_grid_config(cls: type[C], path: str | os.PathLike[str] | None, overrides: Sequence[str],
                     profile: str | None, profiles: Mapping[str, Mapping[str, Any]], example: str,
                     replaced: frozenset[tuple[str, ...]] = frozenset()) -> C:
    """An experiment config ``cls`` from a YAML file, a profile and ``key.sub=value`` overrides (unchecked).

    Parameters
    ----------
    cls : dataclass type
        The experiment's config class (``CompareConfig``, ``TransferConfig``).
    path : path, optional
        The YAML file (``None``: the defaults of ``cls``).
    overrides : list of str
        Dotted overrides with YAML values, applied last.
    profile : str, optional
        A profile name: built in (``profiles``) or the config's own ``profiles:`` section.
    profiles : mapping
        The experiment's built-in profiles.
    example : str
        A config to cite in error messages (``configs/compare_ptbxl.yaml``).
    replaced : set of tuple of str
        Paths whose mapping a profile replaces instead of merging into (e.g. the model list).
    """
    data = json.loads(json.dumps(read_yaml_mapping(path, example)))  # a deep, plain copy
    if profile:
        data = apply_profile(data, profile, profiles, replaced)
    return dataclass_from_dict(cls, apply_raw_overrides(data, overrides))


def protocol_train_section(section: Mapping[str, Any]) -> dict[str, Any]:
    """A training-config section without the trainer keys that do not change results (devices, progress)."""
    plain = json.loads(json.dumps(dict(section)))
    trainer = {k: v for k, v in (plain.get("trainer") or {}).items() if k not in _NOT_PROTOCOL_TRAINER}
    return {**{k: v for k, v in plain.items() if k != "trainer"}, "trainer": trainer}


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
    path.write_text(yaml.safe_dump(json_ready(doc, default=str), sort_keys=False), encoding="utf-8")
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
        if not header:
            with open(path, encoding="utf-8") as handle:
                existing = handle.readline().rstrip("\r\n").split(",")
            if existing != list(columns):
                raise ConfigError(f"{path} has other columns than this version of ecglens writes ({len(existing)} "
                                  f"vs {len(columns)}): it was written by another version. Write into a new "
                                  "output folder (--out), or move the old results.csv away.")
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


# ----------------------------------------------------------------------------------------------- synthetic data


@dataclass(frozen=True)
class SyntheticSpec:
    """A seeded synthetic cohort replacing the cache: ``n_records`` ECGs of ``seconds`` s at ``fs`` Hz.

    ECGs, age and sex come from :func:`ecglens.experiments.simulate.simulate_cohort`; each experiment adds its
    own label columns (see :func:`write_synthetic_cache`).
    """

    n_records: int = 240
    seed: int = 0
    fs: float = 100.0
    seconds: float = 2.5


#: labels of a synthetic cohort: (patients table, seeded generator) -> {column: 0/1 array per patient}
LabelMaker = Callable[[pd.DataFrame, np.random.Generator], Mapping[str, np.ndarray]]


def write_synthetic_cache(spec: SyntheticSpec, out: str | os.PathLike[str], labels: LabelMaker) -> Path:
    """Write a seeded synthetic cohort as an ecglens cache (reused when it exists with the same spec and labels).

    Parameters
    ----------
    spec : SyntheticSpec
        Size, seed, fs (Hz) and length (s) of the cohort.
    out : path
        The cache folder (written with :func:`ecglens.data.cache.write_cache`).
    labels : callable
        ``labels(patients, rng)`` -> label columns (one value per patient); ``rng`` is seeded with
        ``spec.seed + 1`` and drawn before the folds. Its ``__name__`` is stored in the manifest.

    Returns
    -------
    Path
        ``out``. One ECG per patient, folds 1-10 at random: every split is patient-disjoint.
    """
    out, want = Path(out), {"spec": dataclasses.asdict(spec), "labels": labels.__name__}
    manifest = out / "manifest.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("synthetic") == want["spec"] and old.get("synthetic_labels") == want["labels"]:
            return out
    cohort = simulate_cohort(n_patients=spec.n_records, seed=spec.seed, fs=spec.fs, seconds=spec.seconds)
    p, rng = cohort.patients, np.random.default_rng(spec.seed + 1)
    columns = dict(labels(p, rng))
    meta = pd.DataFrame({"record_id": cohort.ecg_table["record_id"], "source": "synthetic", "path": "",
                         "age": p["age"], "sex": p["sex"], "fold": rng.permutation(np.arange(len(p)) % 10 + 1),
                         "patient_id": p["patient_id"], **columns})
    write_cache(out, cohort.signals, meta, Preprocess(fs=spec.fs, seconds=spec.seconds, highpass_hz=None),
                source="synthetic", extra={"synthetic": want["spec"], "synthetic_labels": want["labels"]})
    return out


def open_grid_cache(synthetic: SyntheticSpec | None, cache: str, out: Path, labels: LabelMaker,
                    need: set[str]) -> tuple[Any, str]:
    """The data of a grid: the synthetic cohort (written to ``out/synthetic_cache``) or the prepared ``cache``.

    Returns
    -------
    (PreparedCache, str)
        The opened cache and its path.

    Raises
    ------
    ConfigError
        When the cache lacks a column of ``need`` (the message says how to prepare one from PTB-XL).
    """

    path = write_synthetic_cache(synthetic, out / "synthetic_cache", labels) if synthetic else Path(cache)
    opened = open_cache(path)
    missing = sorted(set(need) - set(opened.meta.columns))
    if missing:
        raise ConfigError(f"The cache {path} has no column(s) {missing}; prepare it from PTB-XL "
                          "(`ecglens prepare ptbxl ~/ptbxl --out cache/ptbxl100 --folds 1-9`).")
    return opened, str(path)


def drop_checkpoints(folder: Path, keep_model: bool) -> None:
    """Delete a finished run's Lightning checkpoints (and ``model.safetensors`` unless ``keep_model``)."""
    for name in ("last.ckpt", "best.ckpt") + (() if keep_model else ("model.safetensors",)):
        (folder / name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------- the runner


@dataclass(frozen=True)
class GridDefinition:
    """What an experiment gives :func:`run_grid`.

    Attributes
    ----------
    name : str
        The experiment (progress bar label).
    runs : sequence
        Every planned run, in order; each has ``key`` (its ``run_key``) and ``group`` (runs sharing work, e.g.
        one pretraining run; shards never split a group).
    protocol : mapping
        What every result of one output folder must share (JSON-able); its hash is checked on every start.
    config : mapping
        The resolved config, stored in ``experiment.yaml``.
    columns : tuple of str
        The columns of ``results.csv``.
    open_data : callable
        ``open_data(out)`` -> the data every run uses (called once, only when there is something to run).
    run : callable
        ``run(run, data, group_state, out, protocol_hash)`` -> the run's ``results.csv`` row.
    start_group : callable, optional
        ``start_group(first_run, data, out)`` -> ``group_state`` before the group's runs (e.g. pretraining);
        when it raises, every run of the group is recorded as failed.
    curves : bool
        Draw each run's ``curves.png``.
    describe : callable, optional
        ``describe(row)`` -> a progress line per finished run.
    group_label : str
        What a group start is, in failure messages (``"pretraining <group> failed: ..."``).
    """

    name: str
    runs: Sequence[Any]
    protocol: Mapping[str, Any]
    config: Mapping[str, Any]
    columns: tuple[str, ...]
    open_data: Callable[[Path], Any]
    run: Callable[[Any, Any, Any, Path, str], Mapping[str, Any]]
    start_group: Callable[[Any, Any, Path], Any] | None = None
    curves: bool = True
    describe: Callable[[Mapping[str, Any]], str] | None = None
    group_label: str = "group"


@dataclass(frozen=True)
class GridOutcome:
    """What :func:`run_grid` did for one shard: counts and the runs that were (or, dry, would be) run."""

    out: Path
    shard: tuple[int, int]
    n_grid: int
    n_shard: int
    n_skipped: int
    todo: tuple[Any, ...]
    n_done: int = 0
    n_failed: int = 0
    failed: tuple[str, ...] = field(default=())


def shard_runs(runs: Sequence[Any], shard: tuple[int, int]) -> list[Any]:
    """The runs of shard ``(i, n)``: the run groups (in plan order) dealt round-robin, from the i-th.

    A run is its own group (its ``key``) unless it has a ``group`` attribute; shards never share a group.
    """
    i, n = shard
    group = [getattr(r, "group", r.key) for r in runs]
    mine = {g for k, g in enumerate(dict.fromkeys(group)) if k % n == i - 1}
    return [r for r, g in zip(runs, group, strict=True) if g in mine]


def record_failure(out: Path, key: str, message: str) -> None:
    """Print ``FAILED key: message`` and append it to ``out/failures.csv`` (retried on the next start)."""
    from tqdm.auto import tqdm

    tqdm.write(f"FAILED {key}: {message}")
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    append_row(out / "failures.csv", {"run_key": key, "error": message, "at": at}, _FAILURE_COLUMNS)


def run_grid(grid: GridDefinition, out: str | os.PathLike[str], shard: tuple[int, int] = (1, 1), *,
             dry_run: bool = False, progress: bool = True, fail_fast: bool = False) -> GridOutcome:
    """Run the runs of shard ``shard`` of ``grid`` that ``out/results.csv`` does not hold yet.

    Parameters
    ----------
    grid : GridDefinition
        The experiment's runs, protocol and per-run function.
    out : path
        The output folder (several shards may write into it at once).
    shard : (i, n)
        Part i of n (1-based); see :func:`shard_runs`.
    dry_run : bool
        Plan only: nothing is written.
    progress : bool
        A progress bar and the experiment's line per finished run.
    fail_fast : bool
        Re-raise the first error instead of recording it in ``failures.csv`` and going on.

    Returns
    -------
    GridOutcome

    Raises
    ------
    ConfigError
        When ``out`` holds results of another protocol.
    """
    out = Path(out)
    mine = shard_runs(grid.runs, shard)
    finished = set(read_results_csv(out, grid.columns, {"run_key": str})["run_key"].astype(str))
    todo = tuple(r for r in mine if r.key not in finished)
    outcome = GridOutcome(out, shard, len(grid.runs), len(mine), len(mine) - len(todo), todo)
    if dry_run:
        return outcome
    digest = check_protocol(grid.protocol, grid.config, out)
    if not todo:
        return outcome
    from tqdm.auto import tqdm

    data, failed = grid.open_data(out), []
    groups: dict[str, list[Any]] = {}
    for run in todo:
        groups.setdefault(getattr(run, "group", run.key), []).append(run)
    bar = tqdm(total=len(todo), desc=f"{grid.name} {shard[0]}/{shard[1]}", unit="run", disable=not progress)
    with quiet_lightning(), contextlib.nullcontext() if grid.curves else without_curves(), bar:
        for runs in groups.values():
            failed += _run_group(grid, runs, data, out, digest, bar, fail_fast, progress)
    return dataclasses.replace(outcome, n_done=len(todo) - len(failed), n_failed=len(failed), failed=tuple(failed))


def _run_group(grid: GridDefinition, runs: list[Any], data: Any, out: Path, digest: str, bar: Any,
               fail_fast: bool, progress: bool) -> list[str]:
    """The runs of one group, after ``grid.start_group``; returns the keys of the failed runs."""
    from tqdm.auto import tqdm

    try:
        state = grid.start_group(runs[0], data, out) if grid.start_group is not None else None
    except Exception as err:  # recorded and retried on the next start; the grid goes on
        if fail_fast:
            raise
        group = getattr(runs[0], "group", runs[0].key)
        for run in runs:
            record_failure(out, run.key, f"{grid.group_label} {group} failed: {type(err).__name__}: {err}")
        bar.update(len(runs))
        return [r.key for r in runs]
    failed = []
    for run in runs:
        bar.set_postfix_str(run.key)
        try:
            row = grid.run(run, data, state, out, digest)
            append_row(out / "results.csv", row, grid.columns)
            if progress and grid.describe is not None:
                tqdm.write(grid.describe(row))
        except Exception as err:  # one failed run never stops the grid (unless fail_fast)
            if fail_fast:
                raise
            failed.append(run.key)
            record_failure(out, run.key, f"{type(err).__name__}: {err}")
        bar.update(1)
    return failed
