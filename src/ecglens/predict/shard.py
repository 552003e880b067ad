"""Sharded batch prediction: ``ecglens predict INPUTS --shard K/N --output DIR``, then ``ecglens merge DIR``.

A large job is split into N shards run independently (e.g. the N tasks of a SLURM array job); each writes
``DIR/shard-0000K-of-0000N.csv`` (or ``.parquet``) and a JSON sidecar beside it. Then :func:`merge_shards`
checks the shards and joins them into one table.

* **Partition** — a record belongs to shard ``1 + H(name) mod N``, ``H`` the first 8 bytes of the BLAKE2b hash
  of its record name (:func:`shard_of`): deterministic, independent of the order in which files are found, of
  the machine and of the other records; every record is in exactly one shard. Record names are the paths as
  given on the command line (see :func:`~ecglens.predict.records.find_records`), so every shard of one job must
  be run with the same INPUTS, written the same way.
* **Atomic, resumable** — the table is written to a temporary name and renamed, then the sidecar likewise; the
  sidecar marks a finished shard. A rerun of the same shard (same inputs, model and options) skips it; ``force``
  redoes it; a shard file from another job (other model or inputs) is refused, never silently mixed.
* **Merge** — :func:`merge_shards` refuses a folder whose shards are not all present (naming the missing ones
  and the command to run them), come from different models, inputs or options, or hold a record twice or not at
  all; the merged table has one row per discovered record, sorted by record name.

Tables are written by suffix (:func:`write_table`): ``.csv``, or ``.parquet`` with the ``parquet`` extra
(pyarrow).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .._optional import require
from .._version import __version__
from ..exceptions import ConfigError, EcglensError

__all__ = ["TABLE_FORMATS", "ShardResult", "merge_shards", "parse_shard", "read_table", "records_digest",
           "run_shard", "select_shard", "shard_of", "shard_paths", "table_attrs", "table_format", "write_table"]

log = logging.getLogger(__name__)

#: table formats by suffix
TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet"}
#: the sidecar keys that must agree for a rerun to skip a shard and for shards to be merged
IDENTITY = ("model", "backend", "options", "inputs_digest", "n_inputs", "n_shards")
_SHARD_RE = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")
_STR_COLUMNS = ("record", "status", "message", "flags", "sex_recorded", "patient_id", "exam_id", "sex_call")


# ----------------------------------------------------------------------------------------------- partition
def parse_shard(text: str) -> tuple[int, int]:
    """``"3/10"`` -> ``(3, 10)``: shard K of N, K counted from 1.

    Raises
    ------
    ConfigError
        Not ``K/N`` with integers ``1 <= K <= N``.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None:
        raise ConfigError(f"cannot read shard {text!r}: write K/N, e.g. --shard 3/10 for the third of ten shards "
                          "(K counts from 1; in a SLURM array job: --shard $SLURM_ARRAY_TASK_ID/N with --array=1-N).")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ConfigError(f"shard {k}/{n} does not exist: K must be between 1 and N (N >= 1), e.g. 1/{max(n, 1)} "
                          f"... {max(n, 1)}/{max(n, 1)}. A SLURM array for N shards is --array=1-N (not 0-based).")
    return k, n


def shard_of(name: str, n_shards: int) -> int:
    """The shard (1 to ``n_shards``) of the record named ``name``: ``1 + BLAKE2b-64(name) mod n_shards``."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "big") % int(n_shards)


def select_shard(records: Sequence[tuple[str, Any]], k: int, n: int) -> list[tuple[str, Any]]:
    """The ``(name, path)`` pairs of ``records`` in shard ``k`` of ``n``, in their order."""
    return [pair for pair in records if shard_of(pair[0], n) == k]


def records_digest(names: Sequence[str]) -> str:
    """SHA-256 of the sorted record names: the identity of a job's inputs, whatever the discovery order."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode("utf-8") + b"\n")
    return h.hexdigest()


def shard_paths(out_dir: str | os.PathLike[str], k: int, n: int, fmt: str = "csv") -> tuple[Path, Path]:
    """``(table, sidecar)`` of shard ``k`` of ``n``: ``DIR/shard-00003-of-00010.csv`` and ``.json``."""
    stem = Path(out_dir) / f"shard-{k:05d}-of-{n:05d}"
    return stem.with_suffix(f".{fmt}"), stem.with_suffix(".json")


# ----------------------------------------------------------------------------------------------- tables
def table_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"`` from the suffix of ``path``; a :class:`ConfigError` for any other."""
    fmt = TABLE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot write a table to {path}: name it .csv or .parquet (the suffix sets the format).")
    return fmt


def _pyarrow() -> None:
    require("pyarrow", "Parquet tables (or write .csv instead)")


def write_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` to ``path`` (CSV or Parquet by suffix) atomically: a temporary file, then a rename.

    A reader never sees a half-written table, and a job killed while writing leaves only a ``.tmp`` file.

    Raises
    ------
    ConfigError
        Another suffix.
    MissingDependencyError
        ``.parquet`` without pyarrow (the message names the ``parquet`` extra).
    """
    path = Path(path)
    fmt = table_format(path)
    if fmt == "parquet":
        _pyarrow()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if fmt == "parquet":
            plain = table.copy()
            plain.attrs = {}  # attrs are run statistics (the sidecar keeps them), not table metadata
            plain.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table written by :func:`write_table` (empty message/flags stay ``""``, records stay strings)."""
    path = Path(path)
    if table_format(path) == "parquet":
        _pyarrow()
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path, dtype={c: str for c in _STR_COLUMNS})
    for column in _STR_COLUMNS:
        if column in table:
            table[column] = table[column].fillna("")
    return table


def _write_json(data: Mapping[str, Any], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=str)
    os.replace(tmp, path)


def table_attrs(table: pd.DataFrame, seconds: float, **extra: Any) -> pd.DataFrame:
    """Fill ``table.attrs`` as :meth:`Predictor.predict_paths` does (``n_ok``, ``n_error``, ``seconds``,
    ``ecgs_per_s``, plus ``extra`` such as ``model`` and ``backend``); returns ``table``."""
    n_ok = int((table["status"] == "ok").sum()) if len(table) else 0
    table.attrs.update({**extra, "n_ok": n_ok, "n_error": len(table) - n_ok, "seconds": seconds,
                        "ecgs_per_s": len(table) / seconds if seconds > 0 else float("nan")})
    return table


# ----------------------------------------------------------------------------------------------- one shard
@dataclass
class ShardResult:
    """What :func:`run_shard` did: ``table`` is None when a finished shard was skipped."""

    path: Path
    sidecar: dict[str, Any]
    table: pd.DataFrame | None
    skipped: bool


def run_shard(records: Sequence[tuple[str, Any]], k: int, n: int, out_dir: str | os.PathLike[str],
              predict: Callable[[list[tuple[str, Any]]], pd.DataFrame], identity: Mapping[str, Any], *,
              fmt: str = "csv", force: bool = False, describe: Callable[[], Mapping[str, Any]] | None = None,
              ) -> ShardResult:
    """Predict shard ``k`` of ``n`` of ``records`` into ``out_dir`` unless it is already there.

    Parameters
    ----------
    records : sequence of (record name, path)
        Every record of the job (:func:`~ecglens.predict.records.find_records`), before partitioning.
    k, n : int
        The shard, 1 <= k <= n.
    out_dir : path
        The job's folder (created).
    predict : callable
        ``predict(shard_records) -> table`` with ``record`` and ``status`` columns (e.g. a
        :class:`~ecglens.predict.Predictor`'s rows, or :func:`~ecglens.predict.distributed.predict_distributed`).
        Called only when the shard is not already finished; may be called with no records.
    identity : mapping
        ``model`` (as given), ``backend``, ``options`` (reader and window options), ``inputs`` (as given):
        what must match for a rerun to skip the shard and for :func:`merge_shards` to accept it.
    fmt : {"csv", "parquet"}
        Table format.
    force : bool
        Redo a finished shard (and overwrite one from another job).
    describe : callable, optional
        Called after ``predict`` for more sidecar fields (e.g. ``model_label``, ``model_sha256``).

    Returns
    -------
    ShardResult

    Raises
    ------
    ConfigError
        ``out_dir`` holds this shard from another job (other model, inputs, options or N) and ``force`` is
        False.
    """
    if fmt not in TABLE_FORMATS.values():
        raise ConfigError(f"unknown table format {fmt!r}; use csv or parquet.")
    out = Path(out_dir)
    table_path, side_path = shard_paths(out, k, n, fmt)
    names = [name for name, _ in records]
    mine = select_shard(records, k, n)
    want = {"model": str(identity.get("model")), "backend": str(identity.get("backend", "torch")),
            "options": json.loads(json.dumps(identity.get("options") or {}, default=str, sort_keys=True)),
            "inputs": [str(i) for i in identity.get("inputs", [])], "inputs_digest": records_digest(names),
            "n_inputs": len(names), "n_shards": n, "shard": k}
    if side_path.is_file() and not force:
        done = json.loads(side_path.read_text(encoding="utf-8"))
        differs = [key for key in (*IDENTITY, "shard") if done.get(key) != want[key]]
        if differs:
            raise ConfigError(f"{side_path} is shard {done.get('shard')}/{done.get('n_shards')} of another job "
                              f"(its {', '.join(differs)} differ from this run's). Use another --output folder, "
                              "or --force to redo this shard here (then rerun every shard with the same inputs).")
        if (out / done.get("table", "")).is_file():
            log.debug("shard %d/%d is finished (%s); skipped (--force redoes it)", k, n, side_path)
            return ShardResult(out / done["table"], done, None, True)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    table = predict(mine)
    missing = set(name for name, _ in mine) - set(table["record"])
    if missing or len(table) != len(mine):
        raise EcglensError(f"shard {k}/{n}: the prediction returned {len(table)} rows for {len(mine)} records "
                           f"({len(missing)} missing); nothing was written.")
    seconds = time.perf_counter() - start
    n_ok = int((table["status"] == "ok").sum())
    write_table(table, table_path)
    sidecar = {**want, **(dict(describe()) if describe is not None else {}), "table": table_path.name,
               "format": fmt, "columns": list(table.columns), "n_records": len(table), "n_ok": n_ok,
               "n_error": len(table) - n_ok, "seconds": round(seconds, 3), "ecglens_version": __version__,
               "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_json(sidecar, side_path)  # last: the sidecar marks the shard finished
    return ShardResult(table_path, sidecar, table, False)


# ----------------------------------------------------------------------------------------------- merge
def _sidecars(folder: Path) -> dict[int, dict[int, dict[str, Any]]]:
    """n_shards -> shard -> sidecar, for every ``shard-K-of-N.json`` in ``folder``."""
    found: dict[int, dict[int, dict[str, Any]]] = {}
    for path in sorted(folder.glob("shard-*-of-*.json")):
        match = _SHARD_RE.match(path.name)
        if match is None:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{path} is not a readable shard sidecar ({err}); rerun that shard with --force.") \
                from None
        found.setdefault(int(match.group(2)), {})[int(match.group(1))] = data
    return found


def merge_shards(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """Check the shards in ``folder`` and join them into one table, sorted by record.

    Parameters
    ----------
    folder : path
        A ``--output`` folder of ``ecglens predict --shard K/N``.

    Returns
    -------
    pandas.DataFrame
        The shards' rows (one per discovered record), sorted by ``record``; ``attrs``: ``model``, ``n_ok``,
        ``n_error``, ``n_shards``, ``seconds`` (summed over shards).

    Raises
    ------
    ConfigError
        No shards; shards of several N; missing shards (named, with the ``--shard`` to rerun); shards from other
        models, inputs or options; a table that is missing or does not match its sidecar; a record twice, in the
        wrong shard, or a count that does not add up to the job's inputs.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; give the --output folder of `ecglens predict --shard K/N`.")
    found = _sidecars(folder)
    if not found:
        raise ConfigError(f"no finished shards (shard-K-of-N.json) in {folder}; run `ecglens predict ... --shard "
                          f"K/N --output {folder}` for K = 1..N first.")
    if len(found) > 1:
        raise ConfigError(f"{folder} holds shards of several jobs (N = {', '.join(map(str, sorted(found)))}); keep "
                          "one job per folder.")
    n, shards = next(iter(found.items()))
    missing = [k for k in range(1, n + 1) if k not in shards]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise ConfigError(f"{len(missing)} of {n} shards are not finished in {folder}: {shown}. Run them (the same "
                          f"command with --shard {missing[0]}/{n}, ...; finished shards are skipped), then merge.")
    first = shards[1]
    for k, side in sorted(shards.items()):
        differs = [key for key in (*IDENTITY, "model_sha256") if side.get(key) != first.get(key)]
        if differs:
            raise ConfigError(f"shard {k}/{n} differs from shard 1/{n} in {', '.join(differs)}: the shards come from "
                              "different jobs. Rerun the odd ones with the job's command and --force.")
        if side.get("ecglens_version") != first.get("ecglens_version"):
            log.warning("shard %d/%d was written by ecglens %s, shard 1 by %s", k, n, side.get("ecglens_version"),
                        first.get("ecglens_version"))
    parts = []
    for k, side in sorted(shards.items()):
        path = folder / str(side.get("table", ""))
        if not path.is_file():
            raise ConfigError(f"shard {k}/{n}: its table {path} is missing; rerun it with --shard {k}/{n} --force.")
        part = read_table(path)
        wrong = [r for r in part["record"] if shard_of(r, n) != k]
        if len(part) != side.get("n_records") or wrong:
            raise ConfigError(f"shard {k}/{n}: {path} does not match its sidecar ({len(part)} rows, sidecar says "
                              f"{side.get('n_records')}; {len(wrong)} records of other shards); rerun it with "
                              "--force.")
        parts.append(part)
    table = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    twice = table["record"][table["record"].duplicated()]
    if len(twice):
        raise ConfigError(f"{len(twice)} records appear more than once (e.g. {twice.iloc[0]}); rerun their shards "
                          "with --force.")
    if len(table) != first["n_inputs"]:
        raise ConfigError(f"the shards hold {len(table)} records but the job found {first['n_inputs']}; rerun the "
                          "shards with --force.")
    if records_digest(list(table["record"])) != first["inputs_digest"]:
        raise ConfigError("the shards' records are not the records the job found (inputs digest differs); rerun "
                          "the shards with --force.")
    table = table.sort_values("record", kind="stable").reset_index(drop=True)
    seconds = float(sum(side.get("seconds", 0.0) for side in shards.values()))
    return table_attrs(table, seconds, model=first.get("model_label", first.get("model")), n_shards=n)
