"""Start-up of ``ecglens predict`` and listing of a folder, this checkout against another commit's source.

Times, in fresh processes, alternating between the trees for ``--rounds`` rounds: (a) ``python -m ecglens
predict ONE_RECORD --model M`` for each ``--model`` (imports, loading the model, one prediction, the CSV), wall
seconds; (b) :func:`ecglens.predict.records.find_records` on ``--folder`` (what ``ecglens predict FOLDER`` does
before it reads anything), seconds. Medians over rounds are compared as ratios (the machines are shared and noisy:
compare ratios, not absolute times). A 10,000-record job at 1,000 ECG/s has 10 s in all, so both count.

A baseline tree is any commit's files, e.g. ``git worktree add /tmp/base <commit>``; its ``src`` goes first on
``PYTHONPATH`` of its processes. Prints a table and writes ``benchmarks/results/bench_startup.json`` (git-ignored).
Usage::

    python benchmarks/bench_startup.py --model age-sex-fast --folder ~/ptbxl/records100/00000
    git worktree add /tmp/base 4c1ce69 && python benchmarks/bench_startup.py --baseline /tmp/base \\
        --model runs/int8/age-sex-int8.onnx --folder /tmp/p10k          # a folder of 10,000 records' links
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, print_ratio_table, tree_env, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "bench_startup.json"
_LIST = ("import sys, time\nfrom ecglens.predict.records import find_records\n"
         "t = time.perf_counter(); n = len(find_records([sys.argv[1]]))\nprint(time.perf_counter() - t, n)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=None, help="model name or file (repeatable; age-sex-fast)")
    p.add_argument("--folder", type=Path, default=Path("~/ptbxl/records100/00000").expanduser(),
                   help="folder to list, and whose first record is predicted (default ~/ptbxl/records100/00000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, each one process per tree and step (default 5)")
    p.add_argument("--baseline", type=Path, help="source tree of another commit to compare with")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    return p.parse_args(argv)


def _predict_seconds(tree: Path | None, record: Path, model: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecglens", "predict", str(record), "--model", model, "--output", str(out),
                    "--no-progress"], env=tree_env(tree), check=True, capture_output=True)
    return time.perf_counter() - t0


def _list_seconds(tree: Path | None, folder: Path) -> tuple[float, int]:
    done = subprocess.run([sys.executable, "-c", _LIST, str(folder)], env=tree_env(tree), check=True,
                          capture_output=True, text=True)
    seconds, n = done.stdout.split()[-2:]
    return float(seconds), int(n)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    models = args.model or ["age-sex-fast"]
    records = sorted(args.folder.expanduser().rglob("*.hea"))
    if not records:
        print(f"no .hea record under {args.folder}: give --folder a folder of WFDB records.", file=sys.stderr)
        return 2
    trees = {"this": None} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    steps = [f"predict one record: {m}" for m in models] + ["list the folder"]
    times: dict[str, dict[str, list[float]]] = {name: {s: [] for s in steps} for name in trees}
    n_listed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, tree in trees.items():
                for model, step in zip(models, steps, strict=False):
                    times[name][step].append(_predict_seconds(tree, records[0], model, Path(tmp) / "p.csv"))
                seconds, n_listed = _list_seconds(tree, args.folder)
                times[name]["list the folder"].append(seconds)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    medians = {name: {s: statistics.median(v) for s, v in per.items()} for name, per in times.items()}
    print_ratio_table(medians, steps, "step (median s)", width=max(len(s) for s in steps) + 2)
    print(f"(folder: {n_listed} records listed; {args.rounds} rounds)")
    write_results(args.json, {"medians_s": medians, "times_s": times, "n_listed": n_listed,
                              "args": {k: str(v) for k, v in vars(args).items()}, "machine": machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
