"""Model benchmark: size, CPU speed and memory of every model of the zoo at 100 Hz x 10 s (12 x 1000 samples).

Per model:

* ``params``: trainable and frozen parameters;
* ``train ECG/s``: ECGs per second of full training steps (forward, MSE loss, backward, ``AdamW.step``) on a
  batch of ``--batch-size`` (64) random ECGs, model in training mode;
* ``infer ECG/s``: ECGs per second of forward passes on the same batch in eval mode under
  ``torch.inference_mode()``;
* peak memory, as the increase of the process's **peak resident set size** (``resource.getrusage``
  ``ru_maxrss``) over its value once the model, optimiser and batch exist. Each model runs in a fresh
  subprocess (``spawn``) so models do not hide each other's peaks; inference runs first (``infer peak``), then
  training (``train peak``, which includes the AdamW state). ``tracemalloc`` is not used: it does not see
  PyTorch's C++ allocations. RSS is a high-water mark, so a peak below one already reached while importing
  reads as 0; with ``--no-subprocess`` later models' peaks are hidden by earlier ones (speed is unaffected).

Timings exclude ``--warmup`` steps and use ``time.perf_counter``. The CPU may be shared: compare numbers from
one run. Prints a table and writes ``benchmarks/results/bench_models.json`` (git-ignored). Usage::

    python benchmarks/bench_models.py                                   # all models, 5 timed steps
    python benchmarks/bench_models.py --models s4,cnn_baseline --steps 2 --threads 2
    python benchmarks/bench_models.py --models "xresnet*" --kwargs xresnet1d50:width=0.25
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "bench_models.json"
MEMORY_METHOD = (
    "peak RSS increase (resource.getrusage(RUSAGE_SELF).ru_maxrss) over the value after building the model, "
    "optimiser and batch; fresh spawned process per model unless --no-subprocess"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="*", help="comma-separated names or wildcards (default: all)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before timing (default 1)")
    p.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)"
    )
    p.add_argument("--batch-size", type=int, default=64, help="ECGs per batch (default 64)")
    p.add_argument("--leads", type=int, default=12, help="input leads (default 12)")
    p.add_argument("--fs", type=float, default=100.0, help="sampling rate in Hz (default 100)")
    p.add_argument("--seconds", type=float, default=10.0, help="ECG duration in s (default 10)")
    p.add_argument(
        "--kwargs",
        action="append",
        default=[],
        metavar="MODEL:KEY=VALUE",
        help="model option, repeatable (VALUE is JSON, else a string), e.g. xresnet1d50:width=0.25",
    )
    p.add_argument("--no-subprocess", action="store_true", help="run every model in this process")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or args.leads < 1:
        p.error("--steps, --batch-size and --leads must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def parse_model_kwargs(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["xresnet1d50:width=0.25", ...]`` -> ``{"xresnet1d50": {"width": 0.25}}`` (values parsed as JSON)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, assignment = item.partition(":")
        key, eq, raw = assignment.partition("=")
        if not (sep and eq and name and key):
            raise SystemExit(f"--kwargs {item!r}: write MODEL:KEY=VALUE, e.g. xresnet1d50:width=0.25")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(name, {})[key] = value
    return out


def select_models(spec: str) -> list[str]:
    """Model names from a comma-separated list of names or wildcards, in registry order, without repeats."""
    from ecglens.models import create_model, list_models

    names: list[str] = []
    for part in (s.strip() for s in spec.split(",") if s.strip()):
        # wildcards match the architectures; a composite model (ensemble) is benchmarked only when named
        found = list_models(part, composite=False) if any(c in part for c in "*?[") else [part]
        if not found:
            raise SystemExit(f"--models: no model matches {part!r}; available: {', '.join(list_models())}")
        for name in found:
            if name not in list_models():
                create_model(name)  # raises ConfigError naming close matches
            if name not in names:
                names.append(name)
    return names


def _maxrss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def _timed(fn, steps: int, warmup: int) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def bench_one(name: str, kwargs: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Benchmark one model (runs in a fresh process by default); returns one results row."""
    import torch

    from ecglens.models import create_model

    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    model = create_model(name, in_leads=cfg["leads"], num_outputs=1, **kwargs)
    x = torch.randn(cfg["batch_size"], cfg["leads"], cfg["n_samples"]) * 0.5
    y = torch.randn(cfg["batch_size"], 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gc.collect()
    base = _maxrss_mib()

    model.eval()

    def infer() -> None:
        with torch.inference_mode():
            model(x)

    infer_s = _timed(infer, cfg["steps"], cfg["warmup"])
    infer_peak = _maxrss_mib() - base

    model.train()

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

    train_s = _timed(train, cfg["steps"], cfg["warmup"])
    train_peak = _maxrss_mib() - base
    return {
        "model": name,
        "kwargs": kwargs,
        "params": sum(p.numel() for p in model.parameters()),
        "num_features": int(model.num_features),
        "threads": torch.get_num_threads(),
        "train_step_s": train_s,
        "train_ecg_per_s": cfg["batch_size"] / train_s,
        "infer_step_s": infer_s,
        "infer_ecg_per_s": cfg["batch_size"] / infer_s,
        "train_peak_mib": train_peak,
        "infer_peak_mib": infer_peak,
    }


def run_one(name: str, kwargs: dict[str, Any], cfg: dict[str, Any], subprocess: bool) -> dict[str, Any]:
    """``bench_one`` in a fresh spawned process (or here); failures become a row with ``error``."""
    try:
        if not subprocess:
            return bench_one(name, kwargs, cfg)
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            return pool.submit(bench_one, name, kwargs, cfg).result()
    except Exception as err:  # noqa: BLE001 - a benchmark row records any failure and the run goes on
        return {"model": name, "kwargs": kwargs, "error": f"{type(err).__name__}: {err}"}


def format_row(row: dict[str, Any]) -> str:
    label = row["model"] + (
        "" if not row.get("kwargs") else " " + json.dumps(row["kwargs"], separators=(",", ":"))
    )
    if "error" in row:
        return f"{label:<34} failed: {row['error']}"
    speed = f"{row['train_ecg_per_s']:>11.1f} {row['infer_ecg_per_s']:>11.1f}"
    memory = f"{row['train_peak_mib']:>11.0f} {row['infer_peak_mib']:>11.0f}"
    return f"{label:<34} {row['params'] / 1e6:>9.2f} {speed} {memory}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from ecglens import __version__

    names = select_models(args.models)
    model_kwargs = parse_model_kwargs(args.kwargs)
    n_samples = round(args.fs * args.seconds)
    cfg = {
        "threads": args.threads,
        "leads": args.leads,
        "n_samples": n_samples,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
    }
    print(
        f"{len(names)} model(s); batch {args.batch_size} x {args.leads} leads x {n_samples} samples "
        f"({args.fs:g} Hz x {args.seconds:g} s); {args.steps} timed step(s) after {args.warmup} warm-up; "
        f"threads {args.threads or torch.get_num_threads()}; CPU: {cpu_name()}"
    )
    columns = ("params(M)", "train ECG/s", "infer ECG/s", "train peak", "infer peak")
    header = f"{'model':<34} {columns[0]:>9} " + " ".join(f"{c:>11}" for c in columns[1:])
    print(header + "\n" + " " * 72 + "(MiB RSS)   (MiB RSS)\n" + "-" * len(header))
    rows = []
    for name in names:
        row = run_one(name, model_kwargs.get(name, {}), cfg, subprocess=not args.no_subprocess)
        rows.append(row)
        print(format_row(row), flush=True)
    result = {
        "benchmark": "bench_models",
        "ecglens_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "config": {**cfg, "fs": args.fs, "seconds": args.seconds, "subprocess": not args.no_subprocess},
        "memory_method": MEMORY_METHOD,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
