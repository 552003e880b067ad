"""``ecglens merge``: join the shards of ``ecglens predict --shard K/N --output DIR`` into one table.

Examples::

    ecglens merge shards/ -o preds.csv
    ecglens merge shards/ -o preds.parquet        # needs the parquet extra (pyarrow)

Checks before writing anything: all N shards are finished (the missing ones are named, with the --shard to run),
they come from the same model, inputs and options, each table matches its sidecar, and every record the job
found appears exactly once. The table (one row per record, sorted by record name; format by the suffix of
--output) is written atomically, and a summary (records = ok + error) is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run_merge"]

#: the merged table when --output is not given
DEFAULT_OUTPUT = Path("preds.csv")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``merge`` to the ``ecglens`` parser."""
    p = sub.add_parser("merge", help="join the shards of `ecglens predict --shard K/N` into one table",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, metavar="DIR", help="the --output folder of the sharded predict job")
    p.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT,
                   help=f"the merged table, .csv or .parquet (default: {DEFAULT_OUTPUT})")
    p.set_defaults(func=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    """Run ``ecglens merge``; returns the exit code (0 when at least one record was predicted)."""
    from ..predict.shard import merge_shards, table_format, write_table

    table_format(args.output)  # a wrong suffix fails before the shards are read
    table = merge_shards(args.folder)
    write_table(table, args.output)
    attrs = table.attrs
    print(f"{len(table)} records from {attrs['n_shards']} shards: {attrs['n_ok']} ok, {attrs['n_error']} error; "
          f"model {attrs['model']}\nwrote {args.output}")
    return 0 if attrs["n_ok"] > 0 else 1
