"""Inference-runtime benchmark: PyTorch eager vs TorchScript vs torch.compile vs onnxruntime on CPU.

For one checkpoint (default: the shipped ``age-sex`` model when it is installed, else a randomly initialised
model of ``--arch``, default ``xresnet1d50``, with the age-sex task; the table says which), at the input of
100 Hz x 10 s (``[batch, 12, 1000]`` float32, or the checkpoint's own contract), in ONE process and run:

* ``latency``: milliseconds per call with batch 1 (median and 90th percentile of ``--repeats`` calls);
* ``throughput``: ECGs per second with batch ``--batch-size`` (64), from the median time of ``--batches`` calls;
* ``max |diff|``: largest absolute difference of the raw outputs from PyTorch eager on the same batch.

Runtimes: ``torch eager`` (``torch.inference_mode``), ``torchscript`` (``torch.jit.trace`` + ``freeze``),
``torch.compile`` (inductor; only with ``--compile``: compiling takes a while and needs a C++ compiler), and
``onnxruntime`` (the file written by :func:`ecglens.export.export_onnx`, ``CPUExecutionProvider``, all graph
optimisations). Every runtime uses ``--threads`` intra-op threads (default: torch's setting). Each measurement is
preceded by ``--warmup`` untimed calls. The CPU may be shared with other work: compare numbers from one run
only. Prints a table and writes ``benchmarks/results/bench_export.json`` (git-ignored). Usage::

    python benchmarks/bench_export.py                         # age-sex if installed, else random xresnet1d50
    python benchmarks/bench_export.py --checkpoint runs/mi/best.safetensors --compile
    python benchmarks/bench_export.py --arch resnet1d_ribeiro --repeats 20 --batches 3
    python benchmarks/bench_export.py --threads 1 --repeats 15 --batches 3 --compile   # on a busy shared CPU

On a CPU shared with other jobs, several intra-op threads per runtime oversubscribe the cores and the timings
become noise (PyTorch's worst); ``--threads 1`` gives comparable numbers there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecglens import __version__
from ecglens._version import source_commit
from ecglens.exceptions import CheckpointError

RESULTS = Path(__file__).resolve().parent / "results" / "bench_export.json"
Runner = Callable[[np.ndarray], np.ndarray]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="age-sex", help="checkpoint path or shipped name (default age-sex)")
    p.add_argument("--arch", default="xresnet1d50",
                   help="architecture of the random model used when the checkpoint is not installed")
    p.add_argument("--batch-size", type=int, default=64, help="throughput batch size (default 64)")
    p.add_argument("--repeats", type=int, default=30, help="timed batch-1 calls (default 30)")
    p.add_argument("--batches", type=int, default=5, help="timed large-batch calls (default 5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before each measurement (default 3)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of every runtime")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    return p.parse_args(argv)


def load_or_random(args: argparse.Namespace, folder: Path) -> tuple[Any, str]:
    """The checkpoint to benchmark and a sentence saying what it is."""
    from ecglens.artifact import load_checkpoint, save_checkpoint
    from ecglens.data.targets import task_from_name
    from ecglens.models import create_model
    from ecglens.signal.transforms import Preprocess

    try:
        ckpt = load_checkpoint(args.checkpoint)
        return ckpt, f"checkpoint {ckpt.path.name} ({ckpt.model_name}, trained weights)"
    except CheckpointError as err:
        print(f"note: {str(err).split('. ')[0]}; using a random {args.arch} instead.")
    rng = np.random.default_rng(args.seed)
    task = task_from_name("age_sex").fit(np.c_[rng.uniform(20, 90, 64), rng.integers(0, 2, 64)])
    torch.manual_seed(args.seed)
    model = create_model(args.arch, num_outputs=task.num_outputs)
    ckpt = load_checkpoint(save_checkpoint(folder / f"{args.arch}.safetensors", model, task=task,
                                           preprocess=Preprocess(fs=100.0, seconds=10.0)))
    return ckpt, f"random {args.arch} (default widths, age-sex task; {args.checkpoint!r} not installed)"


def torch_runner(model: torch.nn.Module) -> Runner:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


def torchscript_runner(model: torch.nn.Module, example: np.ndarray) -> Runner:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.freeze(torch.jit.trace(model, torch.from_numpy(example)).eval())
    return torch_runner(traced)


def compile_runner(model: torch.nn.Module) -> Runner:
    return torch_runner(torch.compile(model, dynamic=False))


def onnx_runner(ckpt: Any, threads: int, opset: int, folder: Path) -> Runner:
    from ecglens.export import export_onnx
    from ecglens.predict.onnx import OnnxBackend

    backend = OnnxBackend(export_onnx(ckpt, folder / "model.onnx", opset=opset), threads=threads)
    return backend.run


def multiply_adds(model: torch.nn.Module, x: np.ndarray) -> int:
    """Multiply-adds of one forward pass of ONE input of ``x``'s shape: every convolution and linear layer (their
    share of the arithmetic; normalisation, activations and pooling are a few per cent at most), counted with
    forward hooks."""
    total = 0

    def count(module: torch.nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        nonlocal total
        per_output = (module.in_channels // module.groups * int(np.prod(module.kernel_size))
                      if isinstance(module, torch.nn.modules.conv._ConvNd) else module.in_features)
        total += out[:1].numel() * per_output

    from ecglens.models import _layout  # its 2-D path calls the layers' weights, not their forward: no hooks

    layers = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, layers)]
    enabled, _layout.ENABLED = _layout.ENABLED, False
    try:
        with torch.inference_mode():
            model(torch.from_numpy(x[:1]))
    finally:
        _layout.ENABLED = enabled
        for h in hooks:
            h.remove()
    return total


def time_calls(run: Runner, x: np.ndarray, repeats: int, warmup: int) -> list[float]:
    """Seconds of each of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return times


def measure(name: str, build: Callable[[], Runner], x1: np.ndarray, xb: np.ndarray, reference: np.ndarray | None,
            args: argparse.Namespace) -> dict[str, Any]:
    """Build one runtime and time it; a runtime that fails is reported with its error."""
    start = time.perf_counter()
    try:
        run = build()
        out = run(xb)  # also the first (compiling / optimising) call
    except Exception as err:  # noqa: BLE001 - a benchmark reports a failing runtime and goes on
        return {"runtime": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}
    setup = time.perf_counter() - start
    lat = time_calls(run, x1, args.repeats, args.warmup)
    big = time_calls(run, xb, args.batches, max(1, args.warmup // 2))
    lat_ms = sorted(1e3 * t for t in lat)
    return {
        "runtime": name, "setup_s": setup,
        "latency_ms_median": statistics.median(lat_ms),
        "latency_ms_p90": lat_ms[min(len(lat_ms) - 1, int(0.9 * len(lat_ms)))],
        "throughput_ecg_s": len(xb) / statistics.median(big),
        "max_abs_diff": None if reference is None else float(np.max(np.abs(out - reference))),
    }


def print_table(rows: list[dict[str, Any]], header: str, macs: int, batch_size: int = 64) -> None:
    print(f"\n{header}\n")
    batch = f"(b={batch_size})"
    print(f"{'runtime':<15} {'latency ms (b=1)':>17} {'p90 ms':>8} {'ECG/s ' + batch:>13} {'vs eager':>9} "
          f"{'GMAC/s ' + batch:>14} {'max |diff|':>11} {'setup s':>8}")
    eager = next((r["throughput_ecg_s"] for r in rows if r["runtime"] == "torch eager" and "error" not in r), None)
    for r in rows:
        if "error" in r:
            print(f"{r['runtime']:<15} failed: {r['error']}")
            continue
        ratio = f"{r['throughput_ecg_s'] / eager:.2f}x" if eager else "-"
        diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        print(f"{r['runtime']:<15} {r['latency_ms_median']:>17.2f} {r['latency_ms_p90']:>8.2f} "
              f"{r['throughput_ecg_s']:>13.1f} {ratio:>9} {r['throughput_ecg_s'] * macs / 1e9:>14.1f} {diff:>11} "
              f"{r['setup_s']:>8.1f}")
    print(f"\n{macs / 1e6:.1f} M multiply-adds per input (convolutions and linear layers); GMAC/s: the rate "
          "the runtime sustained on all its threads (a float32 ceiling of the CPU bounds it)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        result = run(args, Path(tmp))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    return 0


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Time every runtime, print the table; returns the JSON document."""
    threads = torch.get_num_threads()
    ckpt, what = load_or_random(args, folder)
    model = ckpt.model.eval()
    n = ckpt.preprocess.n_samples if ckpt.preprocess is not None else 1000
    rng = np.random.default_rng(args.seed)
    xb = (rng.standard_normal((args.batch_size, int(ckpt.in_leads), n)) * 0.5).astype(np.float32)
    x1 = xb[:1].copy()
    reference = torch_runner(model)(xb)
    builds: dict[str, Callable[[], Runner]] = {
        "torch eager": lambda: torch_runner(model),
        "torchscript": lambda: torchscript_runner(model, x1),
        "onnxruntime": lambda: onnx_runner(ckpt, threads, args.opset, folder),
    }
    if args.compile:
        builds["torch.compile"] = lambda: compile_runner(model)
    rows = [measure(name, build, x1, xb, reference, args) for name, build in builds.items()]
    header = (f"{what}; input [1 | {args.batch_size}, {ckpt.in_leads}, {n}] float32; {threads} thread(s); "
              f"torch {torch.__version__}")
    macs = multiply_adds(model, x1)
    print_table(rows, header, macs, args.batch_size)
    result = {"benchmark": "bench_export", "model": what, "architecture": ckpt.model_name,
              "input_shape": [args.batch_size, int(ckpt.in_leads), n], "threads": threads,
              "multiply_adds_per_input": macs, "results": rows,
              "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "environment": _environment()}
    return result


def _environment() -> dict[str, Any]:
    import onnxruntime

    return {"ecglens": __version__, "commit": source_commit(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


if __name__ == "__main__":
    sys.exit(main())
