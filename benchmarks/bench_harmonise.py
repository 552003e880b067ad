"""Harmonising benchmark: time per record of ``InputAdapter.prepare_many`` by the size of its record groups.

A reading worker of ``ecglens predict`` harmonises a chunk of up to 32 records; records that share fs, length and
leads are filtered, resampled and quality-checked together as one ``[B, L, T]`` float64 array. This benchmark
times the same chunk cut into groups of different sizes (``harmonise.GROUP_RECORDS``, the shipped default, against
a group of 1 record = ``prepare`` alone, 2, 4, 8, 16 and the whole chunk), at 100 Hz and at 500 Hz (the 100 Hz
PTB-XL records resampled to 500 Hz in memory), with the input contract of ``--model``. Sizes are interleaved
within each repeat and the median over repeats is reported, with each size's ratio to the whole-chunk group in
the same run (the machines are shared and noisy: compare ratios, not absolute times).

Prints a table and writes ``benchmarks/results/bench_harmonise.json`` (git-ignored). Usage::

    python benchmarks/bench_harmonise.py                          # PTB-XL in ~/ptbxl, model mi, 7 repeats
    python benchmarks/bench_harmonise.py --model age-sex --repeats 15
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_results

from ecglens import Ecg, __version__
from ecglens._version import source_commit
from ecglens.io import read_ecg
from ecglens.predict import Predictor, harmonise
from ecglens.signal.functional import resample

RESULTS = Path(__file__).resolve().parent / "results" / "bench_harmonise.json"
CHUNK = 32  # the largest chunk a reading worker of ``ecglens predict`` gets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ptbxl", type=Path, default=Path("~/ptbxl").expanduser(), help="PTB-XL folder (~/ptbxl)")
    p.add_argument("--model", default="mi", help="model whose input contract is used (default mi)")
    p.add_argument("--repeats", type=int, default=7, help="repeats of every size (default 7)")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    return p.parse_args(argv)


def chunk_at(headers: list[Path], fs: float) -> list[Ecg]:
    """The records of ``headers`` read, resampled to ``fs`` Hz when they are not at it."""
    out = []
    for h in headers:
        ecg = read_ecg(h)
        if ecg.fs != fs:
            ecg = Ecg(resample(ecg.signal, ecg.fs, fs).astype(np.float32), fs, ecg.leads, record_id=ecg.record_id)
        out.append(ecg)
    return out


def time_sizes(adapter: Any, ecgs: list[Ecg], sizes: list[int | str], repeats: int) -> dict[str, float]:
    """Median milliseconds per record of ``prepare_many`` on ``ecgs`` for each group size (interleaved)."""
    shipped = harmonise.GROUP_RECORDS
    times: dict[str, list[float]] = {str(s): [] for s in sizes}
    try:
        adapter.prepare_many(ecgs)  # warm-up: filter designs, imports
        for _ in range(repeats):
            for size in sizes:
                harmonise.GROUP_RECORDS = shipped if size == "default" else int(size)
                start = time.perf_counter()
                if size == 1:  # no group: every record through prepare alone
                    [adapter.prepare(e) for e in ecgs]
                else:
                    adapter.prepare_many(ecgs)
                times[str(size)].append((time.perf_counter() - start) / len(ecgs) * 1e3)
    finally:
        harmonise.GROUP_RECORDS = shipped
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    headers = sorted((args.ptbxl / "records100").glob("*/*.hea"))[:CHUNK]
    if len(headers) < CHUNK:
        print(f"need {CHUNK} PTB-XL records in {args.ptbxl / 'records100'}; found {len(headers)}", file=sys.stderr)
        return 2
    adapter = Predictor.from_pretrained(args.model).adapter
    sizes: list[int | str] = [1, 2, 4, 8, 16, CHUNK, "default"]
    result: dict[str, Any] = {"model": args.model, "chunk": CHUNK, "repeats": args.repeats,
                              "group_records_default": harmonise.GROUP_RECORDS, "ecglens": __version__,
                              "commit": source_commit(),
                              "python": platform.python_version(), "machine": platform.machine(), "fs": {}}
    print(f"prepare_many on a chunk of {CHUNK} PTB-XL records, {args.model}'s input contract, "
          f"median of {args.repeats} repeats (ms per record; ratio to one group of {CHUNK})")
    print(f"{'fs':>6} " + " ".join(f"{str(s):>14}" for s in sizes))
    for fs in (100.0, 500.0):
        ecgs = chunk_at(headers, fs)
        ms = time_sizes(adapter, ecgs, sizes, args.repeats)
        base = ms[str(CHUNK)]
        default_size = harmonise.GROUP_RECORDS
        result["fs"][f"{fs:g}"] = {"ms_per_record": ms, "ratio_to_whole_chunk": {k: v / base for k, v in ms.items()},
                                   "default_group_records": default_size}
        print(f"{fs:>6g} " + " ".join(f"{ms[str(s)]:>7.3f} ({ms[str(s)] / base:.2f})" for s in sizes)
              + f"   default = groups of {default_size}")
    write_results(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
