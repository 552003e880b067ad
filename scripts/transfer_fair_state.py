"""Carry a transfer grid's finished runs between machines in a few small files, and restore them.

A long grid (``configs/transfer_fair.yaml``: about 10 CPU-hours) may outlive the machine it runs on. Its output
folder holds model checkpoints and candidate folders (hundreds of MB), but to resume it and to analyse it only
three things are needed: ``results.csv`` (finished runs are skipped by their ``run_key``), ``experiment.yaml``
(the protocol fingerprint) and every run's ``test_predictions.csv`` (the paired comparisons). ``pack`` copies the
first two and appends the predictions of the runs not packed before as one Parquet part (probabilities as float32:
exact for the networks, which compute in float32); ``restore`` writes them back into an output folder, after which
``ecglens experiment transfer CONFIG`` resumes where the packed grid stopped and ``--figures-only`` rebuilds the
tables. Runs whose pretraining was unfinished are pretrained again on resume (same seed, same data).

    python scripts/transfer_fair_state.py pack runs/transfer_fair docs/data/transfer_fair
    python scripts/transfer_fair_state.py restore docs/data/transfer_fair runs/transfer_fair
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

COPIED = ("results.csv", "experiment.yaml", "failures.csv")
PARTS = "predictions"
_RESULT_DTYPES = {"source_size": str, "target_size": str, "model_kwargs": str, "run_dir": str, "run_key": str}


def _read_results(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=_RESULT_DTYPES)


def packed_runs(state: Path) -> set[str]:
    """``run_dir`` of every run whose predictions are in a part under ``state/predictions``."""
    done: set[str] = set()
    for part in sorted((state / PARTS).glob("part-*.parquet")):
        done |= set(pd.read_parquet(part, columns=["run_dir"])["run_dir"].astype(str))
    return done


def pack(out: Path, state: Path) -> tuple[int, Path | None]:
    """Copy ``results.csv`` & co. of ``out`` into ``state`` and add a part with the new runs' predictions.

    Returns
    -------
    tuple
        The number of runs added and the new part (``None`` when there was nothing new).
    """
    out, state = Path(out), Path(state)
    if not (out / "results.csv").is_file():
        raise SystemExit(f"{out} holds no results.csv: is it the output folder of a transfer grid?")
    results = _read_results(out / "results.csv")
    done = packed_runs(state)
    tables = []
    for _, row in results.iterrows():
        run_dir = str(row["run_dir"])
        path = out / run_dir / "test_predictions.csv"
        if run_dir in done or not path.is_file():
            continue
        table = pd.read_csv(path, dtype={"record_id": str, "patient_id": str})
        column = f"p_{row['target_task']}"
        tables.append(pd.DataFrame({
            "run_dir": run_dir, "record_id": table["record_id"], "column": column,
            "p": table[column].to_numpy(np.float32), "label": table["label"].to_numpy(np.float32),
            "patient_id": table["patient_id"] if "patient_id" in table else None,
        }))
    state.mkdir(parents=True, exist_ok=True)
    # results.csv only after the predictions it points to: a pack cut short never lists a run it lacks
    part = None
    if tables:
        (state / PARTS).mkdir(exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        part = state / PARTS / f"part-{stamp}.parquet"
        frame = pd.concat(tables, ignore_index=True)
        for name in ("run_dir", "column", "record_id", "patient_id"):
            frame[name] = frame[name].astype("category")
        frame.to_parquet(part, index=False, compression="zstd")
    packed = packed_runs(state)
    kept = results[results["run_dir"].astype(str).isin(packed)]
    kept.to_csv(state / "results.csv", index=False)
    for name in COPIED[1:]:
        if (out / name).is_file():
            shutil.copyfile(out / name, state / name)
    return len(tables), part


def restore(state: Path, out: Path) -> int:
    """Write the packed runs of ``state`` into the output folder ``out``; returns the number of runs restored.

    Runs already in ``out/results.csv`` are left alone; the rows of the others are appended.
    """
    state, out = Path(state), Path(out)
    if not (state / "results.csv").is_file():
        raise SystemExit(f"{state} holds no results.csv: nothing to restore.")
    packed = _read_results(state / "results.csv")
    existing = _read_results(out / "results.csv") if (out / "results.csv").is_file() else packed.iloc[:0]
    new = packed[~packed["run_key"].isin(set(existing["run_key"]))]
    wanted = set(new["run_dir"].astype(str))
    for part in sorted((state / PARTS).glob("part-*.parquet")):
        frame = pd.read_parquet(part)
        frame = frame[frame["run_dir"].astype(str).isin(wanted)]
        for run_dir, table in frame.groupby("run_dir", observed=True):
            folder = out / str(run_dir)
            folder.mkdir(parents=True, exist_ok=True)
            column = str(table["column"].iloc[0])
            written = pd.DataFrame({"record_id": table["record_id"].astype(str), column: table["p"].astype(np.float64),
                                    "label": table["label"], "patient_id": table["patient_id"]})
            written.to_csv(folder / "test_predictions.csv", index=False)
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
        n, part = pack(args.out, args.state)
        print(f"packed {n} new run(s)" + (f" into {part}" if part else "") + f"; {args.state}/results.csv updated")
    else:
        print(f"restored {restore(args.state, args.out)} run(s) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
