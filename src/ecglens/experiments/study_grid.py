"""The simulated hemoglobin study as a grid over seeds, on the shared runner (:mod:`ecglens.experiments.grid`).

One run = :func:`~ecglens.experiments.study.run_simulation_study` with one seed (the study seed and the
training seed), into ``OUT/runs/seed<k>/`` (``summary.json``, ``study.md``, ``tables/``, ``figures/``). Each finished
run appends one row to ``OUT/results.csv`` (:data:`RESULT_COLUMNS`: the true and estimated hazard ratios, whether
the CI covers the truth, Hb and anemia metrics), so repeated seeds show how often the study recovers the known
hazard ratio. Resumable and shardable like every grid: a re-run skips finished seeds, ``--shard i/n`` splits them.

>>> cfg = load_study_config(profile="quick")                                   # doctest: +SKIP
>>> table = run_study_grid(cfg, "runs/study_seeds", seeds=[0, 1, 2])          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..exceptions import ConfigError
from ..jsonutil import json_ready
from .grid import GridDefinition, read_results_csv, run_grid
from .study import run_simulation_study

__all__ = ["RESULT_COLUMNS", "StudyRun", "grid_definition", "protocol", "read_results", "run_study_grid"]

#: columns of ``results.csv`` (one row per seed)
RESULT_COLUMNS: tuple[str, ...] = (
    "run_key", "seed", "true_hazard_ratio", "hazard_ratio", "hazard_ratio_low", "hazard_ratio_high",
    "covers_truth", "c_index", "hb_mae", "hb_mae_baseline", "hb_pearson_r", "anemia_auroc", "seconds",
    "protocol_hash", "run_dir", "finished_at",
)


@dataclass(frozen=True)
class StudyRun:
    """One seed of the grid: a row of ``results.csv``."""

    seed: int

    @property
    def key(self) -> str:
        """``seed<k>``: the row's ``run_key`` and its folder under ``OUT/runs``."""
        return f"seed{self.seed}"


def _seeded(cfg: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """``cfg`` with ``study.seed`` and ``train.trainer.seed`` set to ``seed`` (what ``--seed`` does)."""
    train = cfg["train"]
    return {**cfg, "study": dataclasses.replace(cfg["study"], seed=seed),
            "train": dataclasses.replace(train, trainer=dataclasses.replace(train.trainer, seed=seed))}


def protocol(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting of the study except the seeds: what all rows of one output folder share."""
    plain = {k: dataclasses.asdict(v) for k, v in _seeded(cfg, 0).items()}
    plain["study"].pop("seed")
    plain["train"]["trainer"].pop("seed")
    return json_ready(plain, default=str)


def _run_seed(cfg: Mapping[str, Any], run: StudyRun, _data: None, _state: None, out: Path,
              digest: str) -> dict[str, Any]:
    """Run the simulated study with one seed; return its ``results.csv`` row."""
    folder = out / "runs" / run.key
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished earlier attempt
    s = run_simulation_study(_seeded(cfg, run.seed), folder, progress=False)
    low, high = s.get("hazard_ratio_ci") or (None, None)
    truth = s.get("true_hazard_ratio")
    covers = None if None in (truth, low, high) else bool(low <= truth <= high)
    return {"run_key": run.key, "seed": run.seed, "true_hazard_ratio": truth,
            "hazard_ratio": s.get("hazard_ratio"), "hazard_ratio_low": low, "hazard_ratio_high": high,
            "covers_truth": covers, **{k: s.get(k) for k in ("c_index", "hb_mae", "hb_mae_baseline",
                                                             "hb_pearson_r", "anemia_auroc", "seconds")},
            "protocol_hash": digest, "run_dir": str(folder.relative_to(out)),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def grid_definition(cfg: Mapping[str, Any], seeds: Sequence[int]) -> GridDefinition:
    """The study over ``seeds`` as a grid for :func:`~ecglens.experiments.grid.run_grid`."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct and non-empty, e.g. 0,1,2; got {list(seeds)}.")
    config = {k: dataclasses.asdict(v) for k, v in cfg.items()}
    return GridDefinition(name="study", runs=[StudyRun(int(s)) for s in seeds], protocol=protocol(cfg),
                          config=json_ready(config, default=str), columns=RESULT_COLUMNS,
                          open_data=lambda out: None, run=functools.partial(_run_seed, cfg))


def read_results(path: str | Path) -> pd.DataFrame:
    """``results.csv`` of an output folder (or the file itself), one row per seed (the last one kept)."""
    return read_results_csv(path, RESULT_COLUMNS)


def run_study_grid(cfg: Mapping[str, Any], out: str | Path, seeds: Sequence[int], shard: tuple[int, int] = (1, 1),
                   *, progress: bool = True, fail_fast: bool = False) -> pd.DataFrame:
    """Run the simulated study once per seed (the shard ``(i, n)`` of them) into ``out``; resumable.

    Parameters
    ----------
    cfg : dict
        From :func:`~ecglens.experiments.study_config.load_study_config` (its seeds are replaced per run).
    out : path
        Output folder (``experiment.yaml``, ``results.csv``, ``failures.csv``, ``runs/seed<k>/``).
    seeds : sequence of int
        The seeds, one run each.
    shard : (i, n)
        Run only part i of n of the seeds.
    progress : bool
        A progress bar over the seeds.
    fail_fast : bool
        Re-raise the first error instead of recording it in ``failures.csv`` and going on.

    Returns
    -------
    pandas.DataFrame
        Every row of ``results.csv`` (all shards so far; :data:`RESULT_COLUMNS`).
    """
    run_grid(grid_definition(cfg, seeds), out, shard, progress=progress, fail_fast=fail_fast)
    return read_results(out)
