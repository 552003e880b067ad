"""Prediction benchmark: ``ecglens predict`` throughput and peak memory on N PTB-XL records (100 Hz).

Three measurements, each ``ecglens predict FOLDER`` run in a fresh process (the folder holds symbolic links to
the first N records of ``records100/``, so record discovery, reading, harmonisation, inference and the CSV are
all timed):

(a) **end to end** with the model, for each backend of ``--backends`` (default ``torch,onnx``: PyTorch eager
    and onnxruntime, ``ecglens predict --backend ...``): ECGs/s (target >= 300 on 2 CPU cores) and peak memory
    (max RSS of the predict process plus ``workers`` x the largest reading worker, an upper bound; target < 2 GB);
(b) **pipeline capacity**: the same run with a backend that returns zeros (registered through
    ``ecglens.predict.register_backend``), i.e. what reading + harmonising + batching alone allow;
(c) **model alone**: ECGs/s of each backend on random batches of ``--batch-size`` windows in this process.

The model is ``--model`` (default ``age-sex``) when installed; otherwise a randomly initialised model of the
architecture in ``configs/age_sex.yaml`` (or ``--arch``), which has the same speed, and the output says so.
CPU seconds per record are reported too: unlike wall time they do not depend on what else runs on the cores.

Prints a table and writes ``benchmarks/results/bench_predict.json`` (git-ignored). Usage::

    python benchmarks/bench_predict.py --ptbxl ~/ptbxl --n 10000          # full run
    python benchmarks/bench_predict.py --n 1000 --arch cnn_baseline      # quick run, small model
    python benchmarks/bench_predict.py --model age-sex-fast --backends onnx --json benchmarks/results/fast.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET_ECGS_PER_S = 300.0
TARGET_PEAK_MB = 2048.0
REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "bench_predict.json"

#: run in a fresh interpreter: ``ecglens predict`` with its own resource usage printed as the last line
_CHILD = """
import json, resource, sys, time
null = sys.argv[1] == "null"
args = sys.argv[2:]
if null:
    import numpy as np
    from ecglens.predict import register_backend
    class Zeros:
        def __init__(self, checkpoint):
            self.n = checkpoint.task.num_outputs
        def run(self, x):
            return np.zeros((len(x), self.n), dtype=np.float32)
    register_backend("zeros", Zeros)
    args += ["--backend", "zeros"]
from ecglens.cli import app
start = time.perf_counter()
code = app(["predict", *args])
wall = time.perf_counter() - start
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "wall_s": wall, "parent_max_rss_mb": me.ru_maxrss / 1024,
                  "child_max_rss_mb": kids.ru_maxrss / 1024, "parent_cpu_s": me.ru_utime + me.ru_stime,
                  "children_cpu_s": kids.ru_utime + kids.ru_stime}))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ptbxl", type=Path, default=Path("~/ptbxl").expanduser(), help="PTB-XL folder (~/ptbxl)")
    p.add_argument("--n", type=int, default=10_000, help="records (default 10,000)")
    p.add_argument("--model", default="age-sex", help="model name or checkpoint (default age-sex)")
    p.add_argument("--arch", default=None,
                   help="architecture of the random stand-in when --model is not installed "
                        "(default: the model of configs/age_sex.yaml)")
    p.add_argument("--workers", type=int, default=2, help="reading processes (default 2)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass (default 64)")
    p.add_argument("--backends", default="torch,onnx",
                   help="comma-separated inference backends for (a) and (c) (default torch,onnx)")
    p.add_argument("--skip-pipeline", action="store_true", help="skip measurement (b)")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------ setup
def link_records(ptbxl: Path, n: int, folder: Path) -> int:
    """Symbolic links to the first ``n`` records of ``records100/`` (sorted) in ``folder``; returns the count."""
    headers = sorted((ptbxl / "records100").glob("*/*.hea"))[:n]
    for hea in headers:
        sub = folder / hea.parent.name
        sub.mkdir(exist_ok=True)
        for part in (hea, hea.with_suffix(".dat")):
            (sub / part.name).symlink_to(part)
    return len(headers)


def _architecture(arch: str | None) -> tuple[str, dict[str, Any]]:
    if arch:
        return arch, {}
    config = REPO / "configs" / "age_sex.yaml"
    if config.is_file():
        import yaml

        model = (yaml.safe_load(config.read_text()) or {}).get("model") or {}
        return model.get("name", "resnet1d_ribeiro"), dict(model.get("kwargs") or {})
    return "resnet1d_ribeiro", {}


def resolve_model(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    """(checkpoint to pass to --model, description). A random stand-in when the model is not installed."""
    from ecglens.artifact import load_checkpoint
    from ecglens.exceptions import CheckpointError

    try:
        ck = load_checkpoint(args.model)
        return str(args.model), f"{args.model} ({ck.model_name}, installed)"
    except CheckpointError:
        pass
    import torch

    from ecglens.artifact import save_checkpoint
    from ecglens.data.targets import task_from_name
    from ecglens.models import create_model
    from ecglens.signal.transforms import Preprocess

    name, kwargs = _architecture(args.arch)
    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [80.0, 0.0]]))
    model = create_model(name, in_leads=12, num_outputs=task.num_outputs, **kwargs)
    path = save_checkpoint(work / "stand_in.safetensors", model, name, kwargs, task, Preprocess())
    n_params = sum(p.numel() for p in model.parameters())
    return str(path), (f"randomly initialised {name} ({n_params / 1e6:.2f} M parameters; {args.model!r} is not "
                       "installed, same architecture and speed)")


# ------------------------------------------------------------------------------------------------ measures
def run_predict(folder: Path, model: str, args: argparse.Namespace, backend: str, out_csv: Path) -> dict[str, Any]:
    """One ``ecglens predict`` in a fresh process (``backend`` "null": the zero model); timing, memory, rows."""
    extra = [] if backend == "null" else ["--backend", backend]
    cmd = [sys.executable, "-c", _CHILD, "null" if backend == "null" else "model", str(folder), "--model", model,
           "--output", str(out_csv), "--workers", str(args.workers), "--batch-size", str(args.batch_size),
           "--no-progress", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ecglens predict failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    usage = json.loads(proc.stdout.strip().splitlines()[-1])
    import pandas as pd

    table = pd.read_csv(out_csv)
    n = len(table)
    cpu = usage["parent_cpu_s"] + usage["children_cpu_s"]
    return {**usage, "process_wall_s": total, "n_rows": n, "n_ok": int((table["status"] == "ok").sum()),
            "n_error": int((table["status"] == "error").sum()), "ecgs_per_s": n / usage["wall_s"],
            "cpu_ms_per_ecg": 1e3 * cpu / n, "ecgs_per_s_two_idle_cores": n / (cpu / 2),
            "peak_mb_upper_bound": usage["parent_max_rss_mb"] + args.workers * usage["child_max_rss_mb"],
            "summary": proc.stdout.strip().splitlines()[0]}


def model_alone(model: str, backend: str, batch_size: int, seconds: float = 8.0) -> dict[str, Any]:
    """ECGs/s and CPU ms per ECG of a backend on random model inputs (this process, the runtime's default
    threads: all cores)."""
    from ecglens.predict import Predictor

    predictor = Predictor.from_pretrained(model, backend=backend)
    pre = predictor.preprocess
    x = np.random.default_rng(0).normal(0, 0.3, (batch_size, pre.n_leads, pre.n_samples)).astype(np.float32)
    predictor.backend.run(x)
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds or n == 0:
        predictor.backend.run(x)
        n += batch_size
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"ecgs_per_s": n / elapsed, "cpu_ms_per_ecg": 1e3 * cpu / n, "batch_size": batch_size}


def environment() -> dict[str, Any]:
    import torch
    import wfdb

    from ecglens import __version__

    return {"ecglens": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "wfdb": wfdb.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "load_avg_1m_before": round(os.getloadavg()[0], 2)}


def print_table(result: dict[str, Any]) -> None:
    yes = {True: "yes", False: "NO"}
    first = next(iter(result["backends"].values()))["end_to_end"]
    rows = [("model", result["model"], ""),
            ("records", f"{first['n_rows']} ({result['workers']} reading workers, batch {result['batch_size']})",
             "")]
    for name, res in result["backends"].items():
        e, m = res["end_to_end"], res["model_alone"]
        rows += [(f"[{name}] (a) end to end: wall", f"{e['wall_s']:.1f} s ({e['n_ok']} ok, {e['n_error']} error)",
                  ""),
                 (f"[{name}] (a) end to end: ECGs/s", f"{e['ecgs_per_s']:.0f}",
                  f">= {TARGET_ECGS_PER_S:.0f}: {yes[e['ecgs_per_s'] >= TARGET_ECGS_PER_S]}"),
                 (f"[{name}] (a) CPU per ECG (all processes)", f"{e['cpu_ms_per_ecg']:.1f} ms", ""),
                 (f"[{name}] (a) ECGs/s if 2 cores were idle", f"{e['ecgs_per_s_two_idle_cores']:.0f} (CPU time / 2)",
                  ""),
                 (f"[{name}] (a) peak RSS parent / worker",
                  f"{e['parent_max_rss_mb']:.0f} / {e['child_max_rss_mb']:.0f} MB", ""),
                 (f"[{name}] (a) peak memory (parent + workers)", f"{e['peak_mb_upper_bound']:.0f} MB (upper bound)",
                  f"< {TARGET_PEAK_MB:.0f} MB: {yes[e['peak_mb_upper_bound'] < TARGET_PEAK_MB]}"),
                 (f"[{name}] (c) model alone: ECGs/s",
                  f"{m['ecgs_per_s']:.0f} (batch {m['batch_size']}; {m['cpu_ms_per_ecg']:.2f} ms CPU per ECG)", "")]
    p = result.get("pipeline")
    if p:
        rows += [("(b) pipeline only (zero model): ECGs/s", f"{p['ecgs_per_s']:.0f}", ""),
                 ("(b) CPU per ECG: read + harmonise", f"{p['cpu_ms_per_ecg']:.1f} ms", "")]
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    print(f"\n{'measure':<{w0}}  {'value':<{w1}}  target\n{'-' * w0}  {'-' * w1}  ------")
    for name, value, target in rows:
        print(f"{name:<{w0}}  {value:<{w1}}  {target}")
    env = result["environment"]
    print(f"\n(load average before the run: {env['load_avg_1m_before']}, {env['cpu_count']} CPUs)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.ptbxl / "records100").is_dir():
        print(f"PTB-XL not found at {args.ptbxl}; unpack it (see ../shared/README.md) or pass --ptbxl DIR.",
              file=sys.stderr)
        return 2
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "onnx" in backends and importlib.util.find_spec("onnxruntime") is None:
        print("onnxruntime is not installed (pip install 'ecglens[export]'): skipping the onnx backend",
              file=sys.stderr)
        backends.remove("onnx")
    if not backends:
        print("no backend to measure (--backends)", file=sys.stderr)
        return 2
    env = environment()
    work = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    try:
        folder = work / "records"
        folder.mkdir()
        n = link_records(args.ptbxl, args.n, folder)
        model, description = resolve_model(args, work)
        print(f"{n} PTB-XL records, model: {description}")
        by_backend = {}
        for backend in backends:
            model_alone(model, backend, args.batch_size, seconds=0.1)  # untimed: e.g. the ONNX export, cached
            end_to_end = run_predict(folder, model, args, backend, work / f"preds_{backend}.csv")
            print(f"[{backend}] {end_to_end['summary']}")
            by_backend[backend] = {"end_to_end": end_to_end,
                                   "model_alone": model_alone(model, backend, args.batch_size)}
        pipeline = None if args.skip_pipeline else run_predict(folder, model, args, "null", work / "zeros.csv")
        result = {"model": description, "n": n, "workers": args.workers, "batch_size": args.batch_size,
                  "backends": by_backend, "pipeline": pipeline, "environment": env,
                  "targets": {"ecgs_per_s": TARGET_ECGS_PER_S, "peak_mb": TARGET_PEAK_MB}}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
