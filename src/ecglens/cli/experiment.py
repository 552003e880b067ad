"""``ecglens experiment``: reproducible experiment grids -> tidy results tables and figures.

Examples
--------
  ecglens experiment transfer configs/transfer_ptbxl.yaml                      # the whole grid (resumable)
  ecglens experiment transfer configs/transfer_ptbxl.yaml --shard 1/4 --no-figures   # one of 4 processes
  ecglens experiment transfer configs/transfer_ptbxl.yaml --profile quick --out runs/tq   # seconds, synthetic
  ecglens experiment transfer configs/transfer_ptbxl.yaml --dry-run            # list the runs still to do
  ecglens experiment transfer configs/transfer_ptbxl.yaml --figures-only       # redraw from results.csv
  ecglens experiment transfer configs/transfer_quick.yaml --set grid.seeds=[0] --set target.sizes=[20]
  ecglens experiment compare configs/compare_ptbxl.yaml                       # the whole grid (resumable)
  ecglens experiment compare configs/compare_ptbxl.yaml --shard 2/3           # one of 3 processes, same --out
  ecglens experiment compare configs/compare_ptbxl.yaml --models cnn_baseline,s4 --tasks age
  ecglens experiment compare configs/compare_ptbxl.yaml --profile quick --out runs/cq   # seconds, synthetic
  ecglens experiment compare configs/compare_ptbxl.yaml --dry-run             # list the runs still to do
  ecglens experiment compare configs/compare_ptbxl.yaml --report-only         # table + figure from results.csv

Every finished run is one row of OUT/results.csv; a re-run skips the rows already there. Shards split the grid
deterministically, so shards can run in parallel into the same --out. Both experiments run on one grid runner
(:mod:`ecglens.experiments.grid`). The comparison's table for docs/results.md is OUT/comparison.md, its figure
OUT/figures/comparison.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..exceptions import ConfigError

__all__ = ["register", "run_compare", "run_transfer"]


def _common_arguments(p: argparse.ArgumentParser, kind: str, example: str, override: str) -> None:
    """The arguments every experiment grid takes (config, --out, --profile, --shard, --set, ...)."""
    p.add_argument("config", type=Path, help=f"{kind} YAML ({example})")
    p.add_argument("--out", type=Path, help="output folder (default: the config's out_dir)")
    p.add_argument("--shard", metavar="I/N", help="run only part I of N (1-based), e.g. --shard 2/4")
    p.add_argument("--profile", help="apply a profile of overrides, e.g. quick (synthetic cohort, tiny models, "
                                     "1 epoch)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config value, e.g. --set {override} (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the runs this shard would do, and stop")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first failing run (default: record it in failures.csv and go on)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_transfer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="pretraining task x source size x target size x model x strategy grid",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_arguments(p, "transfer", "configs/transfer_ptbxl.yaml, configs/transfer_quick.yaml",
                      "grid.seeds=[0,1]")
    p.add_argument("--no-figures", action="store_true", help="do not draw figures at the end")
    p.add_argument("--targets", metavar="A,B", help="run only the runs of these target tasks of grid.target_tasks "
                                                     "(same protocol and run keys), e.g. --targets MI")
    p.add_argument("--figures-only", action="store_true",
                   help="only redraw the figures and summary from results.csv")
    p.set_defaults(func=run_transfer)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="every zoo model x {age, sex, age_sex} under one budget",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_arguments(p, "comparison", "configs/compare_ptbxl.yaml, configs/compare_quick.yaml",
                      "budget.epochs=3")
    p.add_argument("--models", metavar="A,B", help="only these models of the config (comma-separated)")
    p.add_argument("--tasks", metavar="A,B", help="only these tasks of the config, e.g. age,sex")
    p.add_argument("--report-only", action="store_true", help="only rewrite the table and figure from results.csv")
    p.add_argument("--no-report", action="store_true", help="do not write the table and figure at the end")
    p.set_defaults(func=run_compare)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``experiment`` (with ``transfer`` and ``compare``) to the ``ecglens`` parser."""
    p = sub.add_parser("experiment", help="run an experiment grid (transfer, compare): results.csv, figures",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    _add_transfer(inner)
    _add_compare(inner)
    p.set_defaults(func=_usage, experiment_parser=p)


def _usage(args: argparse.Namespace) -> int:
    """No experiment named: print the help; exit code 2."""
    args.experiment_parser.print_help()
    return 2


def _print_paths(paths: dict[str, Path]) -> None:
    for name, path in paths.items():
        print(f"{name}: {path}")


def _no_results(out: Path, flag: str) -> ConfigError:
    return ConfigError(f"No results in {out / 'results.csv'} yet; run the grid first (without {flag}).")


def run_transfer(args: argparse.Namespace) -> int:
    """``ecglens experiment transfer``: exit code 0, or 1 when some runs failed."""
    from ..experiments.grid import parse_shard
    from ..experiments.transfer import load_transfer_config, read_results, write_summaries
    from ..experiments.transfer import run_transfer as run

    cfg = load_transfer_config(args.config, args.overrides, profile=args.profile)
    out = Path(args.out or cfg.out_dir)
    if args.figures_only:
        table = read_results(out)
        if table.empty:
            raise _no_results(out, "--figures-only")
        _print_paths(write_summaries(cfg, table, out))
        return 0
    shard = parse_shard(args.shard)
    summary = run(cfg, out, shard=shard, dry_run=args.dry_run, figures=not args.no_figures,
                  progress=not args.quiet, fail_fast=args.fail_fast, targets=args.targets)
    print(f"grid: {summary.n_grid} target runs; shard {shard[0]}/{shard[1]}: {summary.n_shard}, already done "
          f"{summary.n_skipped}")
    if args.dry_run:
        for run_ in summary.runs:
            print(f"  {run_.key}")
        return 0
    print(f"done now: {summary.n_done} (pretraining runs trained: {summary.n_pretrained}), failed: "
          f"{summary.n_failed}")
    print(f"results: {out / 'results.csv'}")
    _print_paths(summary.figures)
    if summary.n_failed:
        print(f"see {out / 'failures.csv'}; failed runs are retried on the next start")
    return 1 if summary.n_failed else 0


def run_compare(args: argparse.Namespace) -> int:
    """``ecglens experiment compare``: exit code 0, or 1 when some runs of this shard failed."""
    from ..experiments.compare import load_compare_config, read_results, run_comparison, write_report
    from ..experiments.grid import parse_shard

    cfg = load_compare_config(args.config, args.overrides, profile=args.profile)
    out = Path(args.out or cfg.out_dir)
    if args.report_only:
        table = read_results(out)
        if table.empty:
            raise _no_results(out, "--report-only")
        _print_paths(write_report(table, out))
        return 0
    plan = run_comparison(cfg, out, shard=args.shard, models=args.models, tasks=args.tasks, dry_run=True)
    i, n = parse_shard(args.shard)
    print(f"shard {i}/{n}: {len(plan)} runs, already done {int(plan['done'].sum())}")
    if args.dry_run:
        for row in plan.itertuples():
            print(f"  {'done' if row.done else 'todo'}  {row.run_key}")
        return 0
    table = run_comparison(cfg, out, shard=args.shard, models=args.models, tasks=args.tasks,
                           progress=not args.quiet, report=not args.no_report, fail_fast=args.fail_fast)
    failed = len(set(plan["run_key"]) - set(table["run_key"].astype(str)))
    print(f"results: {out / 'results.csv'} ({len(table)} rows)")
    if not args.no_report and len(table):
        print(f"table: {out / 'comparison.md'}\nfigure: {out / 'figures' / 'comparison.png'}")
        if (out / "seeds.md").is_file():
            print(f"over seeds / paired: {out / 'seeds.md'}, {out / 'paired.csv'}")
    if failed:
        print(f"{failed} run(s) of this shard failed; see {out / 'failures.csv'} (retried on the next start)")
    return 1 if failed else 0
