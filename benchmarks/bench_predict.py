"""Prediction benchmark: ``ecglens predict`` end to end on N PTB-XL records, against reading the same files.

In one run, on the first ``--n`` records of ``records100/`` (100 Hz, 10 s; hard links in a temporary folder, so
that they are plain files as in an archive -- symbolic links where hard ones cannot be made, said in the table --
and discovery, reading, harmonisation, inference and the CSV are all timed):

* **reading alone**, in this process: ``wfdb.rdsamp`` on every file (the baseline of issue #21), the fast
  reader's raw samples (:func:`ecglens.io.wfdb_fast.read_fast`) and the full checked reader
  (``ecglens.read_ecg``: fast path + every safety check + lead order) -- records per second;
* **end to end**: the real CLI, ``python -m ecglens predict FOLDER --model M --output CSV`` in a subprocess
  (start-up and CSV writing included), for each model: ECGs/s, CPU ms per ECG (all processes), peak memory
  (largest sum of the RSS of the process tree, sampled every 50 ms; target < 2 GB), and the ratios to
  ``wfdb.rdsamp`` (target >= 2x) and to the fast reader;
* **start-up**: the same command on one record (imports + loading the model + one prediction);
* **500 Hz**: ``ecglens predict`` on ``--n500`` records resampled from PTB-XL to 500 Hz with
  :func:`ecglens.signal.functional.resample` and written with :func:`ecglens.io.wfdb_write.write_wfdb_records`
  (made once in ``--cache``; target >= 300 ECG/s).

Models: each ``--model`` given (repeatable); otherwise a ``resnet1d_ribeiro`` (filters [32, 48, 64, 96, 128],
kernel 9, downsample [4, 4, 2, 2]) with random weights and a 10 s input contract, built with the project's API
(the architecture of the shipped ``superclasses`` / ``mi``: same speed), and the shipped ``age-sex-fast`` (4 s
windows: 3 per record).

With ``--rounds R`` every measurement but start-up runs R times, round by round (each round runs the reading and
then every model, so that a busy spell of the shared machine falls on all of them); the table reports the median
run and the range of ECG/s over the rounds, and the JSON keeps every round.

Prints a table and writes ``benchmarks/results/bench_predict.json`` (git-ignored). Usage::

    python benchmarks/bench_predict.py --n 10000                      # full run (~5 min on 2 cores)
    python benchmarks/bench_predict.py --n 2000 --n500 500            # quick run
    python benchmarks/bench_predict.py --model age-sex --rounds 3     # median of three rounds
    python benchmarks/bench_predict.py --model age-sex --backend onnx --workers 2
    python benchmarks/bench_predict.py --model age-sex --model age-sex-fast --model mi --n500 1000  # the README's
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET_RATIO_WFDB = 2.0
TARGET_PEAK_MB = 2048.0
TARGET_500HZ = 300.0
GOAL_ECGS_PER_S = 1000.0
REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "bench_predict.json"
STAND_IN = {"filters": [32, 48, 64, 96, 128], "kernel_size": 9, "downsample": [4, 4, 2, 2]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ptbxl", type=Path, default=Path("~/ptbxl").expanduser(), help="PTB-XL folder (~/ptbxl)")
    p.add_argument("--n", type=int, default=10_000, help="100 Hz records (default 10,000)")
    p.add_argument("--n500", type=int, default=2000, help="500 Hz records (default 2,000; 0 skips)")
    p.add_argument("--model", action="append", default=None,
                   help="model name or checkpoint, optionally followed by ecglens predict options for it "
                        "(\"age-sex --precision bf16\"); repeat for several in one run (the 500 Hz run uses the "
                        "first; default: a random 10 s resnet1d_ribeiro stand-in, and age-sex-fast)")
    p.add_argument("--backend", default="torch", help="inference backend of ecglens predict (default torch)")
    p.add_argument("--workers", type=int, default=2, help="reading processes of ecglens predict (default 2)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass (default 64)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the reading and every end-to-end measurement this many times, the models in turn in "
                        "each round, and report the median run with the range (default 1)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ecglens-bench",
                   help="folder for the 500 Hz records, made once (default: $TMP/ecglens-bench)")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    return p.parse_args(argv)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH", "")]))
    return env


# ------------------------------------------------------------------------------------------------ setup
def link_records(ptbxl: Path, n: int, folder: Path) -> tuple[list[Path], str]:
    """Links to the first ``n`` records of ``records100/`` (sorted) in ``folder``, in its sub-folders; returns
    their headers and the kind of link: ``"hard"`` (the same files under a second name: to ``ecglens`` they are
    plain files, as in a real archive) or, where the temporary folder is on another file system,
    ``"symbolic"`` (every file found costs one more ``stat`` while listing, and one more lookup when opened)."""
    headers = sorted((ptbxl / "records100").glob("*/*.hea"))[:n]
    kind = "hard"
    for hea in headers:
        sub = folder / hea.parent.name
        sub.mkdir(exist_ok=True)
        for part in (hea, hea.with_suffix(".dat")):
            if kind == "hard":
                try:
                    os.link(part, sub / part.name)
                    continue
                except OSError:
                    kind = "symbolic"
            (sub / part.name).symlink_to(part)
    return headers, kind


def stand_in_model(work: Path) -> str:
    """A randomly initialised 10 s ``resnet1d_ribeiro`` checkpoint (the coming default's shape)."""
    import torch

    from ecglens.artifact import save_checkpoint
    from ecglens.data.targets import task_from_name
    from ecglens.models import create_model
    from ecglens.signal.transforms import Preprocess

    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [80.0, 0.0]]))
    model = create_model("resnet1d_ribeiro", in_leads=12, num_outputs=task.num_outputs, **STAND_IN)
    return str(save_checkpoint(work / "resnet1d_10s_random.safetensors", model, "resnet1d_ribeiro", STAND_IN,
                               task, Preprocess(seconds=10.0)))


def make_500hz(headers: list[Path], cache: Path) -> Path:
    """The records resampled to 500 Hz and written as WFDB (format 16) once, in ``cache/ptbxl500_N``."""
    from ecglens.io import read_ecg
    from ecglens.io.wfdb_write import write_wfdb_records
    from ecglens.signal.functional import resample

    folder = cache / f"ptbxl500_{len(headers)}"
    if (folder / "COMPLETE").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(headers), 500):
        part = [read_ecg(h) for h in headers[start:start + 500]]
        signals = np.stack([resample(e.signal, e.fs, 500.0) for e in part])
        write_wfdb_records(signals, 500.0, [f"{h.stem}_500" for h in headers[start:start + 500]], folder)
    (folder / "COMPLETE").write_text(f"{len(headers)} records\n")
    return folder


# ------------------------------------------------------------------------------------------------ measures
def reading(headers: list[Path]) -> dict[str, float]:
    """Records per second of wfdb.rdsamp, the fast path's raw samples and read_ecg, each over all headers."""
    import wfdb

    from ecglens.io import read_ecg
    from ecglens.io.wfdb_fast import read_fast

    out = {}
    for name, fn in (("wfdb_rdsamp", lambda h: wfdb.rdsamp(str(h)[:-4])), ("read_fast", read_fast),
                     ("read_ecg", read_ecg)):
        start = time.perf_counter()
        for hea in headers:
            fn(hea)
        out[name] = len(headers) / (time.perf_counter() - start)
    return out


def _tree_rss_mb(proc: Any) -> float:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def run_cli(inputs: list[str], model: str, args: argparse.Namespace, out_csv: Path) -> dict[str, Any]:
    """``python -m ecglens predict`` in a subprocess: wall, CPU of the tree, peak tree RSS, rows."""
    import pandas as pd
    import psutil

    model, *options = shlex.split(model)  # a model spec: the model, then its own predict options
    cmd = [sys.executable, "-m", "ecglens", "predict", *inputs, "--model", model, *options, "--output", str(out_csv),
           "--workers", str(args.workers), "--batch-size", str(args.batch_size), "--backend", args.backend,
           "--no-progress"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    peak, watched = [0.0], psutil.Process(proc.pid)

    def watch() -> None:
        while proc.poll() is None:
            try:
                peak[0] = max(peak[0], _tree_rss_mb(watched))
            except psutil.Error:
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"ecglens predict failed ({proc.returncode}):\n{stdout}\n{stderr}")
    table = pd.read_csv(out_csv)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    n = len(table)
    return {"n_rows": n, "n_ok": int((table["status"] == "ok").sum()), "wall_s": wall, "ecgs_per_s": n / wall,
            "cpu_s": cpu, "cpu_ms_per_ecg": 1e3 * cpu / n, "ecgs_per_s_two_idle_cores": n / (cpu / 2),
            "peak_tree_rss_mb": peak[0],
            "summary": stdout.strip().splitlines()[0] if stdout.strip() else ""}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time (the lower middle one of an even count), with every round's ECG/s and CPU ms
    per ECG beside it (``rounds_ecgs_per_s``, ``rounds_cpu_ms_per_ecg``)."""
    middle = sorted(runs, key=lambda run: run["wall_s"])[(len(runs) - 1) // 2]
    return {**middle, "rounds_ecgs_per_s": [run["ecgs_per_s"] for run in runs],
            "rounds_cpu_ms_per_ecg": [run["cpu_ms_per_ecg"] for run in runs]}


def environment() -> dict[str, Any]:
    import torch
    import wfdb

    from ecglens import __version__
    from ecglens._version import source_commit

    return {"ecglens": __version__, "commit": source_commit(),
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "wfdb": wfdb.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "load_avg_1m_before": round(os.getloadavg()[0], 2)}


def _spread(run: dict[str, Any]) -> str:
    """``"; 3 rounds 470-512"``: the range of ECG/s over the rounds (empty for one round)."""
    rates = run.get("rounds_ecgs_per_s", [])
    return f"; {len(rates)} rounds {min(rates):.0f}-{max(rates):.0f}" if len(rates) > 1 else ""


def print_table(result: dict[str, Any]) -> None:
    yes = {True: "yes", False: "NO"}
    read = result["reading"]
    rounds = result.get("rounds", 1)
    rows = [("records (100 Hz)", f"{result['n']} PTB-XL ({result['links']} links), {result['workers']} workers, "
             f"backend {result['backend']}" + (f", median of {rounds} rounds" if rounds > 1 else ""), ""),
            ("read: wfdb.rdsamp (1 process)", f"{read['wfdb_rdsamp']:.0f} rec/s", ""),
            ("read: fast path, raw samples", f"{read['read_fast']:.0f} rec/s",
             f"{read['read_fast'] / read['wfdb_rdsamp']:.1f}x wfdb"),
            ("read: read_ecg (fast path + checks)", f"{read['read_ecg']:.0f} rec/s",
             f"{read['read_ecg'] / read['wfdb_rdsamp']:.1f}x wfdb")]
    for label, res in result["models"].items():
        e, s = res["end_to_end"], res["startup"]
        rows += [(f"[{label}] predict end to end", f"{e['ecgs_per_s']:.0f} ECG/s ({e['wall_s']:.1f} s, "
                  f"{e['n_ok']}/{e['n_rows']} ok){_spread(e)}",
                  f"goal {GOAL_ECGS_PER_S:.0f}: {yes[e['ecgs_per_s'] >= 1000]}"),
                 (f"[{label}]   / wfdb.rdsamp", f"{e['ecgs_per_s'] / read['wfdb_rdsamp']:.2f}x",
                  f">= {TARGET_RATIO_WFDB:g}x: {yes[e['ecgs_per_s'] / read['wfdb_rdsamp'] >= TARGET_RATIO_WFDB]}"),
                 (f"[{label}]   / fast reader (read_ecg)", f"{e['ecgs_per_s'] / read['read_ecg']:.2f}x", ""),
                 (f"[{label}]   CPU per ECG (all processes)", f"{e['cpu_ms_per_ecg']:.2f} ms", ""),
                 (f"[{label}]   ECG/s if 2 cores were idle", f"{e['ecgs_per_s_two_idle_cores']:.0f} (CPU time / 2)",
                  ""),
                 (f"[{label}]   peak RSS of the process tree", f"{e['peak_tree_rss_mb']:.0f} MB",
                  f"< {TARGET_PEAK_MB:.0f} MB: {yes[e['peak_tree_rss_mb'] < TARGET_PEAK_MB]}"),
                 (f"[{label}]   start-up (one record)", f"{s['wall_s']:.1f} s", "")]
        if res.get("hz500"):
            h = res["hz500"]
            rows.append((f"[{label}] predict, 500 Hz records", f"{h['ecgs_per_s']:.0f} ECG/s ({h['n_rows']} records, "
                         f"{h['cpu_ms_per_ecg']:.2f} ms CPU/ECG){_spread(h)}",
                         f">= {TARGET_500HZ:.0f}: {yes[h['ecgs_per_s'] >= TARGET_500HZ]}"))
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    print(f"\n{'measure':<{w0}}  {'value':<{w1}}  target\n{'-' * w0}  {'-' * w1}  ------")
    for name, value, target in rows:
        print(f"{name:<{w0}}  {value:<{w1}}  {target}")
    env = result["environment"]
    print(f"\n(load average before the run: {env['load_avg_1m_before']}, {env['cpu_count']} CPUs; wall-clock rates "
          "depend on what else runs, CPU ms per ECG much less)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.ptbxl / "records100").is_dir():
        print(f"PTB-XL not found at {args.ptbxl}; unpack it (see ../shared/README.md) or pass --ptbxl DIR.",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO / "src"))
    env = environment()
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        work = Path(tmp)
        folder = work / "records"
        folder.mkdir()
        headers, links = link_records(args.ptbxl, args.n, folder)
        models = {m: m for m in args.model} if args.model else {
            "resnet1d 10 s (random weights)": stand_in_model(work), "age-sex-fast": "age-sex-fast"}
        hz500 = make_500hz(headers[: args.n500], args.cache) if args.n500 > 0 else None
        print(f"{len(headers)} PTB-XL records; models: {', '.join(models)}", flush=True)
        reads: list[dict[str, float]] = []
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {label: {"end_to_end": [], "hz500": []} for label in models}
        startups = {label: run_cli([str(headers[0])], model, args, work / "one.csv")
                    for label, model in models.items()}
        for r in range(max(1, args.rounds)):
            reads.append(reading(headers))
            print(f"round {r + 1}: reading {reads[-1]}", flush=True)
            for i, (label, model) in enumerate(models.items()):
                runs[label]["end_to_end"].append(run_cli([str(folder)], model, args, work / f"preds{i}.csv"))
                print(f"round {r + 1}: [{label}] {runs[label]['end_to_end'][-1]['summary']}", flush=True)
                if hz500 is not None and i == 0:
                    runs[label]["hz500"].append(run_cli([str(hz500)], model, args, work / f"preds{i}_500.csv"))
        read = {k: float(np.median([x[k] for x in reads])) for k in reads[0]}
        by_model = {}
        for label, model in models.items():
            res = {"model": model, "startup": startups[label], "end_to_end": median_run(runs[label]["end_to_end"])}
            if runs[label]["hz500"]:
                res["hz500"] = median_run(runs[label]["hz500"])
            by_model[label] = res
    result = {"n": len(headers), "links": links, "n500": args.n500, "workers": args.workers, "backend": args.backend,
              "batch_size": args.batch_size, "rounds": max(1, args.rounds), "reading": read, "reading_rounds": reads,
              "models": by_model, "environment": env,
              "targets": {"ratio_to_wfdb": TARGET_RATIO_WFDB, "peak_mb": TARGET_PEAK_MB,
                          "ecgs_per_s_500hz": TARGET_500HZ, "goal_ecgs_per_s": GOAL_ECGS_PER_S}}
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
