"""The 500 Hz harmonising steps one by one: high-pass at 500 Hz vs at 100 Hz, resampling, quality checks.

Times each step on the same seeded ``[8, 12, 5000]`` array (8 records, 12 leads, 10 s at 500 Hz), median of
``--repeats``, in ms per record, and the ratio of the high-pass at 100 Hz (after resampling, what the input
contract does for a downsampled record since 2026-12-06) to the high-pass at 500 Hz (before). Prints a table and
writes ``benchmarks/results/bench_harmonise_steps.json`` (git-ignored). Usage::

    python benchmarks/bench_harmonise_steps.py --repeats 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from ecglens.signal import functional as F
from ecglens.signal.quality import assess_quality

RESULTS = Path(__file__).resolve().parent / "results" / "bench_harmonise_steps.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    x = np.random.default_rng(0).normal(0.0, 0.2, (8, 12, 5000))
    y = F.resample(x, 500.0, 100.0)
    steps = {
        "high-pass at 500 Hz": lambda: F.highpass(x, 500.0, 0.5),
        "high-pass at 100 Hz": lambda: F.highpass(y, 100.0, 0.5),
        "resample 500 -> 100 Hz": lambda: F.resample(x, 500.0, 100.0),
        "quality checks at 500 Hz": lambda: assess_quality(x.reshape(96, 5000), 500.0),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):  # interleaved: a busy machine slows every step alike
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1000.0 / x.shape[0])
    result = {name: statistics.median(v) for name, v in times.items()}
    result["ratio high-pass 100 / 500 Hz"] = result["high-pass at 100 Hz"] / result["high-pass at 500 Hz"]
    for name, value in result.items():
        print(f"{name:32s} {value:8.3f}" + ("" if name.startswith("ratio") else " ms per record"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"repeats": args.repeats, **result}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
