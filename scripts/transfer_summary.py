"""Tables and figures over several transfer grids at once (e.g. one ``--out`` per model).

    python scripts/transfer_summary.py runs/transfer_mini_v2/results.csv runs/transfer_mini_xres/results.csv \
        --out runs/transfer_all

Concatenates the ``results.csv`` files (rows are keyed by model, so grids of different models combine) and
writes what ``ecglens experiment transfer --figures-only`` writes for one grid: ``summary.csv``, ``summary.md``,
the figures (one panel per model) and, where the runs kept their test predictions, ``paired.csv`` / ``paired.md``
(every arm against scratch and each control on the same test ECGs; :mod:`ecglens.experiments.transfer_paired`).
Rows of the same run key in several files are an error, unless
``--replace`` is given: then a later file's row replaces an earlier one (e.g. a re-run of some arms).
``--target-sizes 100,500`` keeps only those target sizes (e.g. to compare models that ran different sizes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ecglens.experiments.figures import write_transfer_figures
from ecglens.experiments.transfer_controls import CONTROLS
from ecglens.experiments.transfer_paired import write_paired


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="results.csv files of transfer grids")
    parser.add_argument("--out", type=Path, required=True, help="folder for summary.csv / summary.md / figures")
    parser.add_argument("--replace", action="store_true",
                        help="a row of a later file replaces the row of the same run_key from an earlier one")
    parser.add_argument("--target-sizes", metavar="A,B",
                        help="keep only these target sizes (comma-separated, e.g. 100,500 or 100,all)")
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="bootstrap resamples of the paired comparisons (paired.csv / paired.md)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.results if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    table = pd.concat([_read(p) for p in args.results], ignore_index=True)
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
    controls = table["strategy"].isin(list(CONTROLS))
    paths = write_transfer_figures(table[~controls], args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    paths.update(write_paired(table, args.out, n_boot=args.n_boot, seed=0))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _read(path: Path) -> pd.DataFrame:
    """A ``results.csv`` with its runs' folders made absolute (the paired tables read their predictions)."""
    table = pd.read_csv(path, dtype={"source_size": str, "target_size": str})
    table["run_dir"] = [str((path.parent / str(d)).resolve()) for d in table["run_dir"]]
    return table


if __name__ == "__main__":
    raise SystemExit(main())
