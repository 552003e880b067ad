"""The channels-last 2-D inference path of ``resnet1d_ribeiro`` against the 1-D layers, network alone, on CPU.

For each model (default: the shipped ``resnet1d_ribeiro`` models), in one process with ``--threads`` intra-op
threads (default 1, as in ``ecglens predict``'s reading workers), on the same random batch of ``--batch`` windows
of the model's input length: milliseconds per window of the 1-D layers (``ecglens.models._layout.ENABLED = False``)
and of the 2-D path, measured in alternating rounds (``--rounds``), and the largest difference of the raw outputs.
The 2-D path is timed at any batch size (``ecglens`` itself takes it from ``_layout.MIN_SAMPLES`` samples on, where
it pays: ``--batch 3`` shows why). The process keeps freed memory for reuse, as the reading workers do
(:func:`ecglens.predict.workers.keep_freed_memory`). Prints a table of the medians over the rounds and writes JSON
(``--json``, default ``benchmarks/results/bench_layout.json``, git-ignored). Compare numbers within one run only:
the CPU is shared. End to end, the path's effect is measured with ``ecglens predict`` against the commit before it
(see docs/benchmarks.md). Usage::

    python benchmarks/bench_layout.py
    python benchmarks/bench_layout.py --model age-sex --batch 32 --rounds 9
    python benchmarks/bench_layout.py --model age-sex --train --batch 128 --threads 2 --calls 3   # training steps
    python benchmarks/bench_layout.py --model age-sex --profile 12    # + the operators that take the time
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from _common import machine, write_results

from ecglens import __version__
from ecglens._version import source_commit
from ecglens.artifact.checkpoint import load_checkpoint
from ecglens.models import _layout
from ecglens.predict.workers import keep_freed_memory

DEFAULT_MODELS = ("age-sex", "age-sex-plain", "age-sex-fast", "superclasses")
RESULTS = Path(__file__).resolve().parent / "results" / "bench_layout.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="shipped name or checkpoint (repeatable; default: "
                   + ", ".join(DEFAULT_MODELS) + ")")
    p.add_argument("--batch", type=int, default=81,
                   help="windows per forward pass (default 81: what ecglens predict's CPU passes hold at 400 "
                        "samples)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--calls", type=int, default=6, help="timed forward passes per path and round (default 6)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--train", action="store_true",
                   help="time training steps instead (train mode, forward + MSE loss + backward + AdamW step, on "
                        "the model's architecture as loaded; ms per window of the batch)")
    p.add_argument("--bf16", action="store_true", help="with --train: bfloat16 autocast, as trainer.precision="
                   "bf16-mixed")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also list the N operators of the 2-D path with the most CPU time of their own "
                        "(torch.profiler over --calls passes after the timed rounds, each input shape apart): "
                        "where a cheaper architecture would have to save")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = p.parse_args(argv)
    if args.profile < 0:
        p.error(f"--profile takes a number of operators >= 0 (0: no profile), got {args.profile}")
    return args


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    loss = torch.nn.functional.mse_loss(out.float(), torch.zeros_like(out, dtype=torch.float32))
    loss.backward()
    opt.step()
    opt.zero_grad()


def _ms_per_window(step: Callable[[], object], n_windows: int, calls: int, enabled: bool) -> float:
    """Milliseconds per window of ``calls`` runs of ``step`` (after one untimed run) on one path."""
    _layout.ENABLED = enabled
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls / n_windows * 1e3


def top_operators(step: Callable[[], object], n_windows: int, calls: int, top: int) -> list[dict]:
    """The ``top`` operators of the 2-D path by CPU time of their own over ``calls`` runs of ``step``.

    Each row: the operator, its input shapes (``[batch, channels, 1, time]`` and the weight's for a convolution),
    milliseconds per window and the share of all operators' own time.
    """
    _layout.ENABLED = True
    step()  # warm-up
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(calls):
            step()
    events = list(prof.key_averages(group_by_input_shape=True))
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "input_shapes": [s for s in e.input_shapes if s][:2],
             "ms_per_window": e.self_cpu_time_total / 1e3 / calls / n_windows,
             "share": e.self_cpu_time_total / total} for e in events[:top]]


def bench_model(name: str, args: argparse.Namespace) -> dict:
    ckpt = load_checkpoint(name)
    model = ckpt.model.eval()
    n_samples = ckpt.preprocess.n_samples if ckpt.preprocess is not None else 400
    x = torch.randn(args.batch, model.in_leads, n_samples, generator=torch.Generator().manual_seed(0))
    paths = ("1d", "2d")
    times: dict[str, list[float]] = {k: [] for k in paths}
    max_diff = float("nan")
    min_samples = _layout.MIN_SAMPLES
    _layout.MIN_SAMPLES = 0  # the path at any batch size: this benchmark measures where it pays
    try:
        if args.train:  # a copy and an optimizer per path: the same work every round
            models = {k: copy.deepcopy(model).train() for k in paths}
            opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
            steps = {k: partial(_train_step, models[k], opts[k], x, args.bf16) for k in paths}
            context: contextlib.AbstractContextManager = contextlib.nullcontext()
        else:
            steps = {k: partial(model, x) for k in paths}
            context = torch.inference_mode()
        with context:
            if not args.train:
                outputs = {}
                for k in paths:
                    _layout.ENABLED = k == "2d"
                    outputs[k] = model(x)
                max_diff = float((outputs["1d"] - outputs["2d"]).abs().max())
            for _ in range(args.rounds):
                for k in paths:
                    times[k].append(_ms_per_window(steps[k], len(x), args.calls, k == "2d"))
            operators = top_operators(steps["2d"], len(x), args.calls, args.profile) if args.profile else []
    finally:
        _layout.ENABLED, _layout.MIN_SAMPLES = True, min_samples
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": name, "arch": type(model).__name__, "window_samples": n_samples, "train": args.train,
            "bf16": args.train and args.bf16, "ms_per_window_1d": med["1d"], "ms_per_window_2d": med["2d"],
            "ratio_2d_1d": med["2d"] / med["1d"], "rounds_1d": times["1d"], "rounds_2d": times["2d"],
            "max_abs_diff": max_diff, "top_operators_2d": operators}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as ecglens predict's reading workers, where the network runs
    rows = [bench_model(name, args) for name in (args.model or DEFAULT_MODELS)]
    what = (f"training steps{' in bfloat16' if args.bf16 else ''}" if args.train else "network alone")
    print(f"{what}, {args.threads} thread(s), batches of {args.batch} windows, median of {args.rounds} "
          "alternating rounds")
    print(f"{'model':<16}{'1-D ms/window':>15}{'2-D ms/window':>15}{'2-D / 1-D':>11}{'max |diff|':>12}")
    for r in rows:
        print(f"{r['model']:<16}{r['ms_per_window_1d']:>15.3f}{r['ms_per_window_2d']:>15.3f}"
              f"{r['ratio_2d_1d']:>11.2f}{r['max_abs_diff']:>12.1e}")
    for r in rows:
        if r["top_operators_2d"]:
            print(f"\n{r['model']}: the {len(r['top_operators_2d'])} operators of the 2-D path with the most CPU "
                  "time of their own")
            print(f"{'share':>7}{'ms/window':>11}  operator and input shapes")
            for op in r["top_operators_2d"]:
                print(f"{op['share']:>7.1%}{op['ms_per_window']:>11.4f}  {op['op']} {op['input_shapes']}")
    write_results(args.json, {"benchmark": "bench_layout", "ecglens": __version__, "commit": source_commit(),
                              "machine": machine(), "threads": args.threads, "batch": args.batch,
                              "rounds": args.rounds, "calls": args.calls, "train": args.train, "bf16": args.bf16,
                              "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
