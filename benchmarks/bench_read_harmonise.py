"""Reading and harmonising per record, this checkout against another commit's source, in one run.

Times, per record, (a) ``read_ecg`` of WFDB records at 100 Hz (PTB-XL, ``--ptbxl``) and at 500 Hz (LUDB,
``--ludb``, 197 records of 10 s), and (b) ``InputAdapter.prepare_many`` (chunks of 32, the input contract of
``--model``) on PTB-XL records at 100 Hz and resampled to 500 Hz in memory. Each round runs the measurements in a
fresh process for this checkout and, with ``--baseline``, for another source tree, alternating, and the medians
over rounds are compared as ratios (the machines are shared and noisy: compare ratios, not absolute times).

A baseline tree is any commit's files, e.g. ``git worktree add /tmp/base <commit>``; its ``src`` goes first on
``PYTHONPATH`` of its processes. Prints a table and writes ``benchmarks/results/bench_read_harmonise.json``
(git-ignored). Usage::

    python benchmarks/bench_read_harmonise.py                                  # this checkout only
    git worktree add /tmp/base 84cbafc && python benchmarks/bench_read_harmonise.py --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, print_ratio_table, tree_env, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "bench_read_harmonise.json"
HERE = Path(__file__).resolve()
SHARED = HERE.parents[2] / "shared" / "data" / "external" / "ludb"
STEPS = ("read_100hz", "read_500hz", "harmonise_100hz", "harmonise_500hz")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ptbxl", type=Path, default=Path("~/ptbxl").expanduser(), help="PTB-XL folder (~/ptbxl)")
    p.add_argument("--ludb", type=Path, default=SHARED, help=f"LUDB folder (default {SHARED})")
    p.add_argument("--n", type=int, default=256, help="PTB-XL records (default 256)")
    p.add_argument("--model", default="age-sex", help="input contract of this model (default age-sex)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, each one process per tree (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="passes over the records per process (default 3)")
    p.add_argument("--baseline", type=Path, help="source tree of another commit to compare with")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _per_record_ms(fn, items: list, repeats: int) -> float:
    """Median over ``repeats`` passes of the milliseconds per item of ``fn(items)``, after one warm-up pass."""
    fn(items)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(items)
        times.append((time.perf_counter() - t0) / len(items) * 1e3)
    return statistics.median(times)


def worker(args: argparse.Namespace) -> dict[str, float]:
    """One process: every step timed with the ecglens found on sys.path."""
    import numpy as np

    from ecglens import Ecg
    from ecglens.io import read_ecg
    from ecglens.predict import Predictor
    from ecglens.signal.functional import resample

    heads = sorted((args.ptbxl / "records100").rglob("*.hea"))[: args.n]
    ludb = sorted(args.ludb.glob("*.hea"))
    adapter = Predictor.from_pretrained(args.model).adapter

    def read_all(paths: list[Path]) -> None:
        for h in paths:
            read_ecg(h)

    def harmonise(ecgs: list) -> None:
        for i in range(0, len(ecgs), 32):
            adapter.prepare_many(ecgs[i:i + 32])

    at100 = [read_ecg(h) for h in heads]
    at500 = [Ecg(resample(e.signal, e.fs, 500.0).astype(np.float32), 500.0, e.leads, record_id=e.record_id)
             for e in at100]
    out = {"read_100hz": _per_record_ms(read_all, heads, args.repeats),
           "harmonise_100hz": _per_record_ms(harmonise, at100, args.repeats),
           "harmonise_500hz": _per_record_ms(harmonise, at500, args.repeats)}
    if ludb:
        out["read_500hz"] = _per_record_ms(read_all, ludb, args.repeats)
    return out


def _run(tree: Path | None, args: argparse.Namespace) -> dict[str, float]:
    env = tree_env(tree)
    cmd = [sys.executable, str(HERE), "--worker", "--ptbxl", str(args.ptbxl), "--ludb", str(args.ludb),
           "--n", str(args.n), "--model", args.model, "--repeats", str(args.repeats)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if not (args.ptbxl / "records100").is_dir():
        print(f"PTB-XL not found in {args.ptbxl} (see the README: extract it there first).", file=sys.stderr)
        return 2
    trees = {"this": None} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, tree in trees.items():
            rounds[name].append(_run(tree, args))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    medians = {name: {s: statistics.median(x[s] for x in runs) for s in STEPS if s in runs[0]}
               for name, runs in rounds.items()}
    print_ratio_table(medians, list(medians["this"]), "step", unit=" ms/rec")
    write_results(args.json, {"medians_ms_per_record": medians, "rounds": rounds,
                              "args": {k: str(v) for k, v in vars(args).items()}, "machine": machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
