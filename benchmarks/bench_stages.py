"""Where the CPU time of ``ecglens predict`` goes: reading, harmonising, the network, the rest, per ECG.

Runs ``ecglens predict FOLDER --model MODEL -o OUT`` in this process with its reading workers (forked, so they
inherit the counters), and adds up, in each worker, the CPU time (``time.process_time``) spent in reading a record
(``read_record``), harmonising a chunk (``InputAdapter.prepare_many``), running the model on a chunk's windows
(``WorkerModel.__call__``: the network and the post-processing) and the whole chunk; the main process's CPU time
(listing, writing the table, the model where it runs there, start-up after the imports) is measured around the
command. Each worker writes its
totals to a temporary folder after every chunk (workers end without running exit handlers). Prints a table in ms
of CPU per ECG and writes JSON (``--json``, default ``benchmarks/results/bench_stages.json``, git-ignored).
Where the model runs in the main process instead (a GPU, ``--threads N``, one worker) it is in the main
process's row. Usage::

    python benchmarks/bench_stages.py FOLDER                       # the shipped age-sex
    python benchmarks/bench_stages.py FOLDER --model age-sex-int8 --workers 2

``FOLDER``: e.g. a folder of links to the first 10,000 PTB-XL records (``bench_predict.py`` makes one under
``/tmp/ecglens-bench``).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _common import machine, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "bench_stages.json"
STAGES = ("read", "harmonise", "model", "chunk")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="records to predict")
    p.add_argument("--model", default="age-sex", help="shipped name or checkpoint (default age-sex)")
    p.add_argument("--workers", type=int, default=None, help="reading workers (default: ecglens predict's)")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    return p.parse_args(argv)


def _timed(fn, totals: dict[str, float], key: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.process_time() - start
    return wrapper


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ecglens import __version__
    from ecglens._version import source_commit
    from ecglens.cli import app
    from ecglens.predict import harmonise, workers

    totals: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory(prefix="ecglens-stages-") as tmp:
        out_dir = Path(tmp)
        originals = (workers.read_record, harmonise.InputAdapter.prepare_many, workers.WorkerModel.__call__,
                     workers._prepare_chunk)
        workers.read_record = _timed(workers.read_record, totals, "read")
        harmonise.InputAdapter.prepare_many = _timed(harmonise.InputAdapter.prepare_many, totals, "harmonise")
        workers.WorkerModel.__call__ = _timed(workers.WorkerModel.__call__, totals, "model")
        chunk = _timed(workers._prepare_chunk, totals, "chunk")

        @functools.wraps(originals[3])  # pickled by reference, as ecglens.predict.workers._prepare_chunk
        def prepare_and_save(c):
            result = chunk(c)
            (out_dir / f"{os.getpid()}.json").write_text(json.dumps(totals))
            return result

        workers._prepare_chunk = prepare_and_save
        command = ["--quiet", "predict", str(args.folder), "--model", args.model, "-o", str(out_dir / "p.csv")]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        try:
            code = app(command)
        finally:
            (workers.read_record, harmonise.InputAdapter.prepare_many, workers.WorkerModel.__call__,
             workers._prepare_chunk) = originals
        main_cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
        table = out_dir / "p.csv"
        n = sum(1 for _ in csv.DictReader(table.open(newline=""))) if table.exists() else 0
        saved = {int(f.stem): json.loads(f.read_text()) for f in out_dir.glob("*.json")}
    here = saved.pop(os.getpid(), {})  # chunks prepared in this process (no pool): inside main_cpu already
    per_worker = list(saved.values())
    if code != 0 or n == 0:
        print(f"ecglens predict failed (exit code {code})", file=sys.stderr)
        return 1
    summed = {k: sum(w.get(k, 0.0) for w in [*per_worker, here]) for k in STAGES}
    rows = {"read": summed["read"], "harmonise": summed["harmonise"], "model (in workers)": summed["model"],
            "rest of the chunks": summed["chunk"] - summed["read"] - summed["harmonise"] - summed["model"],
            "main process, the rest": main_cpu - here.get("chunk", 0.0)}
    print(f"ecglens predict {args.folder} --model {args.model}: {n} records in {wall:.1f} s wall "
          f"({n / wall:.0f} ECG/s), {len(per_worker)} worker(s)")
    print(f"{'stage':<30}{'CPU ms per ECG':>16}")
    for name, seconds in rows.items():
        print(f"{name:<30}{seconds / n * 1e3:>16.3f}")
    total = sum(rows.values())
    print(f"{'total':<30}{total / n * 1e3:>16.3f}")
    write_results(args.json, {"benchmark": "bench_stages", "ecglens": __version__, "commit": source_commit(),
                              "machine": machine(), "model": args.model, "folder": str(args.folder),
                              "records": n, "wall_s": wall, "workers": len(per_worker),
                              "chunks_in_main_process": bool(here),
                              "cpu_ms_per_ecg": {k: v / n * 1e3 for k, v in rows.items()},
                              "cpu_ms_per_ecg_total": total / n * 1e3})
    return 0


if __name__ == "__main__":
    sys.exit(main())
