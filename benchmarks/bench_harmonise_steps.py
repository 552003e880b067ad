"""The harmonising steps one by one: high-pass at 500 Hz vs at 100 Hz, resampling, quality checks, unit check.

Times each step on the same seeded ``[8, 12, 5000]`` array (8 records, 12 leads, 10 s at 500 Hz) and its
resampling to 100 Hz, median of ``--repeats``, in ms per record, with four ratios: the high-pass at 100 Hz (after
resampling, what the input contract does for a downsampled record since 2026-12-06) to the high-pass at 500 Hz
(before); :func:`ecglens.signal.functional.resample` (vectorised integer decimation) to
``scipy.signal.resample_poly`` with the same filter, on float32 records as the pipeline holds them; a lead's maximum
along time on a stack of records in the WFDB reader's transposed layout to the same on contiguous memory (the
layout every ``Ecg`` has had since 2026-12-07); and the unit check's 1st/99th percentiles of float32 records by
:func:`ecglens.signal.functional.row_percentiles` to ``np.percentile`` (at 100 and 500 Hz). Prints a table and
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
from scipy import signal as sps

from ecglens.signal import functional as F
from ecglens.signal.quality import assess_quality
from ecglens.signal.resampling import _polyphase_fir

RESULTS = Path(__file__).resolve().parent / "results" / "bench_harmonise_steps.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    x = np.random.default_rng(0).normal(0.0, 0.2, (8, 12, 5000))
    y = F.resample(x, 500.0, 100.0)
    x32 = x.astype(np.float32)
    # the same values laid out as the WFDB reader's [samples, leads] array seen through .T (before 2026-12-07 an Ecg
    # kept that layout, and np.stack of such records gives a strided time axis)
    x32_reader = np.stack([np.ascontiguousarray(r.T).T for r in x32])
    steps = {
        "high-pass at 500 Hz": lambda: F.highpass(x, 500.0, 0.5),
        "high-pass at 100 Hz": lambda: F.highpass(y, 100.0, 0.5),
        "resample 500 -> 100 Hz": lambda: F.resample(x, 500.0, 100.0),
        "resample 500 -> 100 Hz float32": lambda: F.resample(x32, 500.0, 100.0),
        "resample 500 -> 100 Hz float32, scipy resample_poly": lambda: sps.resample_poly(
            x32, 1, 5, axis=-1, window=_polyphase_fir(1, 5), padtype="antireflect"),
        "quality checks at 500 Hz": lambda: assess_quality(x.reshape(96, 5000), 500.0),
        "max along time, 500 Hz float32, contiguous": lambda: x32.max(axis=-1),
        "max along time, 500 Hz float32, reader's transposed layout": lambda: x32_reader.max(axis=-1),
    }
    for fs, rows in ((100, y.reshape(96, -1).astype(np.float32)), (500, x.reshape(96, -1).astype(np.float32))):
        steps[f"percentiles np.percentile {fs} Hz"] = lambda r=rows: np.percentile(r, [1, 99], axis=-1)
        steps[f"percentiles row_percentiles {fs} Hz"] = lambda r=rows: F.row_percentiles(r, [1, 99])
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):  # interleaved: a busy machine slows every step alike
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1000.0 / x.shape[0])
    result = {name: statistics.median(v) for name, v in times.items()}
    result["ratio high-pass 100 / 500 Hz"] = result["high-pass at 100 Hz"] / result["high-pass at 500 Hz"]
    result["ratio max along time: transposed layout / contiguous"] = (
        result["max along time, 500 Hz float32, reader's transposed layout"]
        / result["max along time, 500 Hz float32, contiguous"])
    result["ratio resample float32: ecglens / scipy resample_poly"] = (
        result["resample 500 -> 100 Hz float32"] / result["resample 500 -> 100 Hz float32, scipy resample_poly"])
    for fs in (100, 500):
        result[f"ratio percentiles {fs} Hz: row_percentiles / np.percentile"] = (
            result[f"percentiles row_percentiles {fs} Hz"] / result[f"percentiles np.percentile {fs} Hz"])
    for name, value in result.items():
        print(f"{name:56s} {value:8.3f}" + ("" if name.startswith("ratio") else " ms per record"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"repeats": args.repeats, **result}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
