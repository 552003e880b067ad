"""I/O benchmark: how fast ``prepare`` builds a cache, and how much faster training batches come from it.

(a) ``prepare``: records per second of :func:`ecglens.data.cache.prepare_cache` on PTB-XL (100 Hz, folds 1-9 by
    default) with ``--workers`` processes, and the projected time for all 19,601 records (target: < 3 min).
(b) batch reading: ECGs per second of drawing training batches (``--batch-size`` 64, random indices) from the
    cache's memory map, against reading the same records with ``wfdb.rdsamp`` (and with ``read_ecg`` +
    ``Preprocess``, the work a cache saves at every epoch), as a ratio in one run (target: >= 50x).

Both sides read files that were just read or written, so both are served from the OS page cache (warm); that
is the steady state of a training run, where every epoch reads the same files.

Prints a table and writes ``benchmarks/results/bench_io.json`` (git-ignored). Usage::

    python benchmarks/bench_io.py                     # full run: PTB-XL in ~/ptbxl, folds 1-9
    python benchmarks/bench_io.py --limit 2000        # quick run on the first 2,000 records
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ecglens import __version__
from ecglens._version import source_commit
from ecglens.data.cache import open_cache, prepare_cache
from ecglens.io import read_ecg
from ecglens.io.ptbxl import ptbxl_catalogue
from ecglens.signal.transforms import Preprocess

PTBXL_FULL = 19_601
TARGET_PREPARE_S = 180.0
TARGET_RATIO = 50.0
RESULTS = Path(__file__).resolve().parent / "results" / "bench_io.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ptbxl", type=Path, default=Path("~/ptbxl").expanduser(), help="PTB-XL folder (~/ptbxl)")
    p.add_argument("--folds", default="1-9", help="strat_folds to prepare (default 1-9)")
    p.add_argument("--limit", type=int, default=None, help="prepare only the first N records (quick run)")
    p.add_argument("--workers", type=int, default=2, help="prepare worker processes (default 2)")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size (default 64)")
    p.add_argument("--cache-batches", type=int, default=200, help="batches drawn from the cache (default 200)")
    p.add_argument("--rdsamp-batches", type=int, default=5, help="batches read with wfdb.rdsamp (default 5)")
    p.add_argument("--work-dir", type=Path, default=None, help="where the cache is built (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the cache after the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    return p.parse_args(argv)


def bench_prepare(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """(a) Build the cache from scratch; returns timing and counts."""
    catalogue = ptbxl_catalogue(args.ptbxl, folds=args.folds)
    if args.limit:
        catalogue = catalogue.head(args.limit)
    cpu0 = os.times()
    start = time.perf_counter()
    manifest = prepare_cache(catalogue, out, Preprocess(fs=100, seconds=10), workers=args.workers,
                             source="ptbxl", progress=sys.stderr.isatty(), force=True)
    wall = time.perf_counter() - start
    cpu1 = os.times()
    rate = len(catalogue) / wall
    cpu_workers = cpu1.children_user + cpu1.children_system - cpu0.children_user - cpu0.children_system
    cpu_parent = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    # CPU time per record: what the wall time would be with the cores to ourselves (others share this machine)
    cpu_per_record = (cpu_workers + cpu_parent) / len(catalogue)
    return {
        "n_records": len(catalogue),
        "n_accepted": manifest["n_accepted"],
        "n_rejected": manifest["n_rejected"],
        "workers": args.workers,
        "wall_s": round(wall, 2),
        "records_per_s": round(rate, 1),
        "projected_full_s": round(PTBXL_FULL / rate, 1),
        "target_full_s": TARGET_PREPARE_S,
        "cpu_s_parent": round(cpu_parent, 2),
        "cpu_s_workers": round(cpu_workers, 2),
        "cpu_ms_per_record": round(1e3 * cpu_per_record, 2),
        "projected_full_s_idle_cores": round(PTBXL_FULL * cpu_per_record / args.workers, 1),
        "signals_mb": round((out / "signals.npy").stat().st_size / 1e6, 1),
    }


def _rate(n_items: int, seconds: float) -> float:
    return n_items / seconds if seconds > 0 else float("inf")


def bench_batches(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """(b) ECGs/s of random training batches: cache memmap vs wfdb.rdsamp vs read_ecg + Preprocess."""
    import wfdb

    cache = open_cache(out)
    rng = np.random.default_rng(args.seed)
    n, bs = len(cache), min(args.batch_size, len(cache))
    batches = [np.sort(rng.choice(n, size=bs, replace=False)) for _ in range(args.cache_batches)]
    start = time.perf_counter()
    for idx in batches:
        x = np.ascontiguousarray(cache.signals[idx], dtype=np.float32)  # [bs, 12, 1000] -> torch.from_numpy
    cache_s = time.perf_counter() - start
    if x.shape != (bs, *cache.signals.shape[1:]):
        raise RuntimeError(f"cache batch has shape {x.shape}")
    paths = cache.meta["path"].to_numpy()
    slow = batches[: args.rdsamp_batches]
    start = time.perf_counter()
    for idx in slow:
        np.stack([wfdb.rdsamp(paths[i])[0].T for i in idx])
    rdsamp_s = time.perf_counter() - start
    start = time.perf_counter()
    for idx in slow:
        np.stack([cache.preprocess.apply(read_ecg(paths[i])) for i in idx])
    ecglens_s = time.perf_counter() - start
    cache_rate = _rate(bs * len(batches), cache_s)
    rdsamp_rate = _rate(bs * len(slow), rdsamp_s)
    return {
        "batch_size": bs,
        "cache_batches": len(batches),
        "rdsamp_batches": len(slow),
        "cache_ecgs_per_s": round(cache_rate, 1),
        "rdsamp_ecgs_per_s": round(rdsamp_rate, 1),
        "read_ecg_preprocess_ecgs_per_s": round(_rate(bs * len(slow), ecglens_s), 1),
        "ratio_cache_vs_rdsamp": round(cache_rate / rdsamp_rate, 1),
        "target_ratio": TARGET_RATIO,
    }


def environment() -> dict[str, Any]:
    """What the numbers depend on: machine, versions, load (other processes share the cores)."""
    import pandas
    import wfdb

    return {
        "ecglens": __version__, "commit": source_commit(), "python": platform.python_version(), "numpy": np.__version__,
        "pandas": pandas.__version__, "wfdb": wfdb.__version__, "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "load_avg_1m_before": round(os.getloadavg()[0], 2),
    }


def print_table(result: dict[str, Any]) -> None:
    p, b = result["prepare"], result["batches"]
    ok = {True: "yes", False: "NO"}
    rows = [
        ("prepare: records", f"{p['n_records']} ({p['n_accepted']} accepted, {p['n_rejected']} rejected)", ""),
        ("prepare: wall time", f"{p['wall_s']:.1f} s on {p['workers']} workers", ""),
        ("prepare: records/s", f"{p['records_per_s']:.0f}", ""),
        ("prepare: CPU per record", f"{p['cpu_ms_per_record']:.1f} ms", ""),
        ("prepare: projected 19,601 records", f"{p['projected_full_s']:.0f} s (measured rate)",
         f"< {TARGET_PREPARE_S:.0f} s: {ok[p['projected_full_s'] < TARGET_PREPARE_S]}"),
        ("prepare: same, cores to ourselves", f"{p['projected_full_s_idle_cores']:.0f} s (CPU time / workers)",
         f"< {TARGET_PREPARE_S:.0f} s: {ok[p['projected_full_s_idle_cores'] < TARGET_PREPARE_S]}"),
        ("batches (64, random): cache", f"{b['cache_ecgs_per_s']:,.0f} ECG/s", ""),
        ("batches (64, random): wfdb.rdsamp", f"{b['rdsamp_ecgs_per_s']:,.0f} ECG/s", ""),
        ("batches: read_ecg + Preprocess", f"{b['read_ecg_preprocess_ecgs_per_s']:,.0f} ECG/s", ""),
        ("cache / rdsamp", f"{b['ratio_cache_vs_rdsamp']:,.0f}x",
         f">= {TARGET_RATIO:.0f}x: {ok[b['ratio_cache_vs_rdsamp'] >= TARGET_RATIO]}"),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':<{vwidth}}  target")
    print(f"{'-' * width}  {'-' * vwidth}  ------")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {target}")
    print(f"\n(load average before the run: {result['environment']['load_avg_1m_before']}, "
          f"{result['environment']['cpu_count']} CPUs)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.ptbxl.is_dir():
        print(f"PTB-XL not found at {args.ptbxl}; unpack it (see ../shared/README.md) or pass --ptbxl DIR.",
              file=sys.stderr)
        return 2
    result: dict[str, Any] = {"benchmark": "bench_io", "environment": environment(), "args": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    work = Path(tempfile.mkdtemp(prefix="ecglens-bench-", dir=args.work_dir))
    try:
        out = work / "cache"
        result["prepare"] = bench_prepare(args, out)
        result["batches"] = bench_batches(args, out)
    finally:
        if args.keep:
            print(f"cache kept at {work / 'cache'}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["environment"]["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
