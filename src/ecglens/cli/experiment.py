"""``ecglens experiment``: reproducible experiment grids -> tidy results tables and figures.

Examples
--------
  ecglens experiment transfer configs/transfer_ptbxl.yaml                      # the whole grid (resumable)
  ecglens experiment transfer configs/transfer_ptbxl.yaml --shard 1/4 --no-figures   # one of 4 processes
  ecglens experiment transfer configs/transfer_ptbxl.yaml --profile quick --out runs/tq   # seconds, synthetic
  ecglens experiment transfer configs/transfer_ptbxl.yaml --dry-run            # list the runs still to do
  ecglens experiment transfer configs/transfer_ptbxl.yaml --figures-only       # redraw from results.csv
  ecglens experiment transfer configs/transfer_quick.yaml --set grid.seeds=[0] --set target.sizes=[20]
  ecglens experiment compare configs/compare_quick.yaml --dry-run              # the model comparison

Every finished run is one row of OUT/results.csv; a re-run skips the rows already there. Shards split the grid
deterministically, so shards can run in parallel into the same --out.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

__all__ = ["EXPERIMENTS", "add_transfer_parser", "register", "run_experiment"]

#: experiment name -> (one-line help, "module:function" that adds its sub-command to a sub-parsers object).
#: The module is imported only when the experiment runs, so ``ecglens`` starts fast; add an entry to add
#: ``ecglens experiment NAME`` (the function sets ``func`` on its parser, as every ecglens command does).
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "transfer": ("pretraining task x source size x target size x model x strategy grid",
                 "ecglens.cli.experiment:add_transfer_parser"),
    "compare": ("every zoo model x {age, sex, age_sex} under one budget",
                "ecglens.experiments.compare:add_compare_parser"),
}


def add_transfer_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``transfer`` (:mod:`ecglens.experiments.transfer`) to ``sub``."""
    p = sub.add_parser("transfer", help=EXPERIMENTS["transfer"][0], description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path,
                   help="transfer YAML (configs/transfer_ptbxl.yaml, configs/transfer_quick.yaml)")
    p.add_argument("--out", type=Path, help="output folder (default: the config's out_dir)")
    p.add_argument("--shard", metavar="I/N", help="run only part I of N (1-based), e.g. --shard 2/4")
    p.add_argument("--profile",
                   help="apply a profile of overrides, e.g. quick (synthetic cohort, tiny model, 1 epoch)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set grid.seeds=[0,1] (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the runs this shard would do, and stop")
    p.add_argument("--no-figures", action="store_true", help="do not draw figures at the end")
    p.add_argument("--figures-only", action="store_true",
                   help="only redraw the figures and summary from results.csv")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first failing run (default: record it in failures.csv and go on)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_transfer, experiment="transfer")
    return p


def _run_transfer(args: argparse.Namespace) -> int:
    from ..exceptions import ConfigError
    from ..experiments.transfer import load_transfer_config, parse_shard, read_results, run_transfer

    cfg = load_transfer_config(args.config, args.overrides, profile=args.profile)
    out = Path(args.out or cfg.out_dir)
    if args.figures_only:
        from ..experiments.figures import write_transfer_figures

        table = read_results(out)
        if table.empty:
            raise ConfigError(f"No results in {out / 'results.csv'} yet; run the grid first (without "
                              "--figures-only).")
        for name, path in write_transfer_figures(table, out / "figures").items():
            print(f"{name}: {path}")
        return 0
    shard = parse_shard(args.shard)
    summary = run_transfer(cfg, out, shard=shard, dry_run=args.dry_run, figures=not args.no_figures,
                           progress=not args.quiet, fail_fast=args.fail_fast)
    print(f"grid: {summary.n_grid} target runs; shard {shard[0]}/{shard[1]}: {summary.n_shard}, already done "
          f"{summary.n_skipped}")
    if args.dry_run:
        for run in summary.runs:
            print(f"  {run.key}")
        return 0
    print(f"done now: {summary.n_done} (pretraining runs trained: {summary.n_pretrained}), failed: "
          f"{summary.n_failed}")
    print(f"results: {out / 'results.csv'}")
    for name, path in summary.figures.items():
        print(f"{name}: {path}")
    if summary.n_failed:
        print(f"see {out / 'failures.csv'}; failed runs are retried on the next start")
    return 1 if summary.n_failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run an experiment grid (transfer, compare): results.csv, figures",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    for name, (text, _) in EXPERIMENTS.items():
        # a placeholder that keeps every argument (even --help) for the real parser, built when it runs
        q = inner.add_parser(name, help=text, add_help=False, prefix_chars="\x00")
        q.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=run_experiment, experiment=None, _parser=p)


def run_experiment(args: argparse.Namespace) -> int:
    """Build the chosen experiment's parser, parse its arguments and run it; returns the exit code."""
    if args.experiment not in EXPERIMENTS:
        args._parser.print_help()
        return 2
    module, _, function = EXPERIMENTS[args.experiment][1].partition(":")
    parser = argparse.ArgumentParser(prog="ecglens experiment")
    getattr(importlib.import_module(module), function)(parser.add_subparsers(dest="experiment"))
    inner = parser.parse_args([args.experiment, *args.rest])
    return int(inner.func(inner) or 0)
