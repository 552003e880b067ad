"""``ecglens experiment``: reproducible experiment grids -> tidy results tables and figures.

Examples
--------
  ecglens experiment transfer configs/transfer_ptbxl.yaml                      # the whole grid (resumable)
  ecglens experiment transfer configs/transfer_ptbxl.yaml --shard 1/4 --no-figures   # one of 4 processes
  ecglens experiment transfer configs/transfer_ptbxl.yaml --profile quick --out runs/tq   # seconds, synthetic
  ecglens experiment transfer configs/transfer_ptbxl.yaml --dry-run            # list the runs still to do
  ecglens experiment transfer configs/transfer_ptbxl.yaml --figures-only       # redraw from results.csv
  ecglens experiment transfer configs/transfer_quick.yaml --set grid.seeds=[0] --set target.sizes=[20]

Every finished target run is one row of OUT/results.csv; a re-run skips the rows already there. Shards split
the grid by pretraining run (deterministically), so shards can run in parallel into the same --out.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = ["register", "run_experiment", "EXPERIMENTS"]


def _add_transfer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="pretraining task x source size x target size x model x strategy grid",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="transfer YAML (configs/transfer_ptbxl.yaml, configs/transfer_quick.yaml)")
    p.add_argument("--out", type=Path, help="output folder (default: the config's out_dir)")
    p.add_argument("--shard", metavar="I/N", help="run only part I of N (1-based), e.g. --shard 2/4")
    p.add_argument("--profile", help="apply a profile of overrides, e.g. quick (synthetic cohort, tiny, 1 epoch)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set grid.seeds=[0,1] (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the runs this shard would do, and stop")
    p.add_argument("--no-figures", action="store_true", help="do not draw figures at the end")
    p.add_argument("--figures-only", action="store_true", help="only redraw figures / summary from results.csv")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_experiment, experiment="transfer")


def _run_transfer(args: argparse.Namespace) -> int:
    from ..exceptions import ConfigError
    from ..experiments.transfer import load_transfer_config, parse_shard, read_results, run_transfer

    cfg = load_transfer_config(args.config, args.overrides, profile=args.profile)
    out = Path(args.out or cfg.out_dir)
    if args.figures_only:
        from ..experiments.figures import write_transfer_figures

        table = read_results(out)
        if table.empty:
            raise ConfigError(f"No results in {out / 'results.csv'} yet; run the grid first (without --figures-only).")
        for name, path in write_transfer_figures(table, out / "figures").items():
            print(f"{name}: {path}")
        return 0
    shard = parse_shard(args.shard)
    summary = run_transfer(cfg, out, shard=shard, dry_run=args.dry_run, figures=not args.no_figures,
                           progress=not args.quiet)
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


#: experiment name -> (add its parser, run it)
EXPERIMENTS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]] = {
    "transfer": (_add_transfer, _run_transfer),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run an experiment grid (transfer learning) -> results.csv + figures",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    for add, _ in EXPERIMENTS.values():
        add(inner)
    p.set_defaults(func=run_experiment, experiment=None, _parser=p)


def run_experiment(args: argparse.Namespace) -> int:
    """Dispatch to the chosen experiment; returns the exit code (1 when some runs failed)."""
    if args.experiment not in EXPERIMENTS:
        args._parser.print_help()
        return 2
    return EXPERIMENTS[args.experiment][1](args)
