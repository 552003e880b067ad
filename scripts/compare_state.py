"""Carry a model-comparison grid's finished runs between machines in a few small files, and restore them.

A comparison over seeds (``configs/compare_converge.yaml``: about 6 CPU-hours) may outlive the machine it runs on.
To resume it and to write its report only three things are needed: ``results.csv`` (finished runs are skipped by
their ``run_key``), ``experiment.yaml`` (the protocol fingerprint) and every run's ``eval/predictions.csv`` (the
paired differences). ``pack`` copies the first two and appends the predictions of the runs not packed before as
one Parquet part (columns and dtypes as written: exact); ``restore`` writes them back into an output folder, after
which ``ecglens experiment compare CONFIG`` resumes where the packed grid stopped and ``--report-only`` rebuilds
the tables (the per-run evaluation figures and curves are not carried).

    python scripts/compare_state.py pack runs/compare_converge docs/data/compare_converge
    python scripts/compare_state.py restore docs/data/compare_converge runs/compare_converge
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

COPIED = ("results.csv", "experiment.yaml", "failures.csv")
PARTS = "predictions"
PREDICTIONS = Path("eval") / "predictions.csv"
_TEXT = {"run_key": str, "run_dir": str, "variant": str, "variant_overrides": str, "model_kwargs": str,
         "task_options": str, "max_time": str}


def _packed(state: Path) -> set[str]:
    done: set[str] = set()
    for part in sorted((state / PARTS).glob("part-*.parquet")):
        done |= set(pd.read_parquet(part, columns=["run_dir"])["run_dir"].astype(str))
    return done


def pack(out: Path, state: Path) -> int:
    """Copy ``results.csv`` & co. of ``out`` into ``state`` and add a part with the new runs' predictions;
    returns the number of runs added. ``state/results.csv`` lists only runs whose predictions are packed."""
    out, state = Path(out), Path(state)
    if not (out / "results.csv").is_file():
        raise SystemExit(f"{out} holds no results.csv: is it the output folder of a comparison?")
    results = pd.read_csv(out / "results.csv", dtype=_TEXT)
    done = _packed(state)
    tables = [pd.read_csv(out / d / PREDICTIONS, dtype={"record_id": str}).assign(run_dir=d)
              for d in results["run_dir"].astype(str) if d not in done and (out / d / PREDICTIONS).is_file()]
    state.mkdir(parents=True, exist_ok=True)
    if tables:  # the predictions before results.csv: a pack cut short never lists a run it lacks
        (state / PARTS).mkdir(exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        pd.concat(tables, ignore_index=True).to_parquet(state / PARTS / f"part-{stamp}.parquet", index=False,
                                                        compression="zstd")
    results[results["run_dir"].astype(str).isin(_packed(state))].to_csv(state / "results.csv", index=False)
    for name in COPIED[1:]:
        if (out / name).is_file():
            shutil.copyfile(out / name, state / name)
    return len(tables)


def restore(state: Path, out: Path) -> int:
    """Write the packed runs of ``state`` into ``out``; runs already in ``out/results.csv`` are left alone.
    Returns the number of runs restored."""
    state, out = Path(state), Path(out)
    if not (state / "results.csv").is_file():
        raise SystemExit(f"{state} holds no results.csv: nothing to restore.")
    packed = pd.read_csv(state / "results.csv", dtype=_TEXT)
    existing = pd.read_csv(out / "results.csv", dtype=_TEXT) if (out / "results.csv").is_file() else packed.iloc[:0]
    new = packed[~packed["run_key"].isin(set(existing["run_key"]))]
    wanted = set(new["run_dir"].astype(str))
    for part in sorted((state / PARTS).glob("part-*.parquet")):
        frame = pd.read_parquet(part)
        for run_dir, table in frame[frame["run_dir"].astype(str).isin(wanted)].groupby("run_dir"):
            path = out / str(run_dir) / PREDICTIONS
            path.parent.mkdir(parents=True, exist_ok=True)
            table.drop(columns="run_dir").to_csv(path, index=False)
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED[1:]:
        if (state / name).is_file() and not (out / name).is_file():
            shutil.copyfile(state / name, out / name)
    pd.concat([existing, new], ignore_index=True).to_csv(out / "results.csv", index=False)
    return len(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="OUT -> STATE: add the runs finished since the last pack")
    p.add_argument("out", type=Path)
    p.add_argument("state", type=Path)
    r = sub.add_parser("restore", help="STATE -> OUT: write the packed runs into an output folder")
    r.add_argument("state", type=Path)
    r.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "pack":
        print(f"packed {pack(args.out, args.state)} new run(s); {args.state}/results.csv updated")
    else:
        print(f"restored {restore(args.state, args.out)} run(s) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
