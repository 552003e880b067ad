"""Tables and figures over several transfer grids at once (e.g. one ``--out`` per model).

    python scripts/transfer_summary.py runs/transfer_mini_v2/results.csv runs/transfer_mini_xres/results.csv \
        --out runs/transfer_all

Concatenates the ``results.csv`` files (rows are keyed by model, so grids of different models combine) and
writes what ``ecglens experiment transfer --figures-only`` writes for one grid: ``summary.csv``, ``summary.md``
and the figures (one panel per model). Rows of the same run key in several files are an error, unless
``--replace`` is given: then a later file's row replaces an earlier one (e.g. a re-run of some arms).
``--target-sizes 100,500`` keeps only those target sizes (e.g. to compare models that ran different sizes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ecglens.experiments.figures import write_transfer_figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="results.csv files of transfer grids")
    parser.add_argument("--out", type=Path, required=True, help="folder for summary.csv / summary.md / figures")
    parser.add_argument("--replace", action="store_true",
                        help="a row of a later file replaces the row of the same run_key from an earlier one")
    parser.add_argument("--target-sizes", metavar="A,B",
                        help="keep only these target sizes (comma-separated, e.g. 100,500 or 100,all)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.results if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    table = pd.concat([pd.read_csv(p, dtype={"source_size": str, "target_size": str}) for p in args.results],
                      ignore_index=True)
    if args.replace:
        table = table.drop_duplicates("run_key", keep="last").reset_index(drop=True)
    if args.target_sizes:
        keep = [s.strip() for s in args.target_sizes.split(",") if s.strip()]
        table = table[table["target_size"].isin(keep)].reset_index(drop=True)
        if table.empty:
            parser.error(f"no rows with target size in {keep}")
    twice = table["run_key"][table["run_key"].duplicated()].unique()
    if len(twice):
        parser.error(f"{len(twice)} run(s) appear in more than one file, e.g. {twice[0]}; give each grid once")
    for name, path in write_transfer_figures(table, args.out).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
