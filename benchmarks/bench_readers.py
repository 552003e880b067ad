"""Reading each file format: ms per ``read_ecg`` of the real fixture files, this checkout against another commit.

A hospital archive is often not WFDB: GE MUSE XML, Philips XML (XLI-compressed), HL7 aECG, SCP-ECG, DICOM
waveforms, GE CardioSoft XML. This times ``ecglens.io.read_ecg`` (every check, canonical lead order) on one real
file of each format from ``../shared/data/fixtures`` (see its ``vendor/SOURCES.csv``), with PTB-XL WFDB records at
100 and 500 Hz for scale. Each round times every file in a fresh process of its own for this checkout and, with
``--baseline``, for another source tree, alternating (one process per file, so that no file's reads change the
heap another file is read with); a file's time in a process is the median over ``--repeats`` passes of
``--reads`` reads after one warm-up read. The table gives the medians over rounds and, with a baseline,
this / baseline (the machines are shared and noisy: compare ratios, not absolute times). Writes
``benchmarks/results/bench_readers.json`` (git-ignored). Usage::

    python benchmarks/bench_readers.py                                          # this checkout only
    git worktree add /tmp/base aafb685 && python benchmarks/bench_readers.py --baseline /tmp/base --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, print_ratio_table, tree_env, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "bench_readers.json"
HERE = Path(__file__).resolve()
FIXTURES = HERE.parents[2] / "shared" / "data" / "fixtures"
#: (label, path under the fixtures folder; a WFDB record without its suffix)
FILES: tuple[tuple[str, str], ...] = (
    ("WFDB 100 Hz (PTB-XL)", "ptbxl_official/records100/00000/00001_lr"),
    ("WFDB 500 Hz (PTB-XL)", "ptbxl_official/records500/00000/00001_hr"),
    ("WFDB + .mat (Georgia)", "georgia/E07500"),
    ("GE MUSE XML", "vendor/muse_phi1.xml"),
    ("Philips XML 1.03", "vendor/philips_129DYPRG_103.xml"),
    ("Philips XML 1.04", "vendor/philips_ad4d3d80_104.xml"),
    ("HL7 aECG (FDA example)", "vendor/aecg_hl7_example.xml"),
    ("HL7 aECG (Philips converted)", "vendor/philips_ad4d3d80_104_as_aecg.xml"),
    ("GE CardioSoft XML", "vendor/cardiosoft_dummy.xml"),
    ("SCP-ECG (ECGToolkit)", "vendor/toolkit_example.scp"),
    ("SCP-ECG (Contec)", "vendor/contec_demo.scp"),
    ("DICOM waveform", "vendor/toolkit_example.dcm"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixtures", type=Path, default=FIXTURES, help=f"fixtures folder (default {FIXTURES})")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each one process per tree (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per file and process (default 5)")
    p.add_argument("--reads", type=int, default=10, help="reads of the file per pass (default 10)")
    p.add_argument("--baseline", type=Path, help="source tree of another commit to compare with")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(args: argparse.Namespace) -> float:
    """One process: ms per read of the file ``args.worker`` (a label of :data:`FILES`), with the ecglens found
    on sys.path."""
    from ecglens.io import read_ecg

    path = args.fixtures / dict(FILES)[args.worker]
    read_ecg(path)  # warm-up: imports, caches
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.reads):
            read_ecg(path)
        times.append((time.perf_counter() - t0) / args.reads * 1e3)
    return statistics.median(times)


def _run(tree: Path | None, label: str, args: argparse.Namespace) -> float:
    cmd = [sys.executable, str(HERE), "--worker", label, "--fixtures", str(args.fixtures), "--repeats",
           str(args.repeats), "--reads", str(args.reads)]
    done = subprocess.run(cmd, env=tree_env(tree), capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    missing = [rel for _, rel in FILES if not any((args.fixtures / rel).parent.glob((args.fixtures / rel).name + "*"))]
    if missing:
        print(f"fixture files not found under {args.fixtures}: {', '.join(missing)} (the shared data sit beside "
              "the repository as ../shared; pass --fixtures otherwise).", file=sys.stderr)
        return 2
    trees = {"this": None} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name in trees:
            rounds[name].append({})
        for label, _ in FILES:
            for name, tree in trees.items():
                rounds[name][-1][label] = _run(tree, label, args)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    medians = {name: {label: statistics.median(x[label] for x in runs) for label, _ in FILES}
               for name, runs in rounds.items()}
    print_ratio_table(medians, [label for label, _ in FILES], "format", unit=" ms/file", width=30, digits=2)
    from ecglens import __version__
    from ecglens._version import source_commit

    write_results(args.json, {"benchmark": "bench_readers", "ecglens": __version__, "commit": source_commit(),
                              "baseline": str(args.baseline) if args.baseline else None,
                              "medians_ms_per_file": medians, "rounds": rounds, "files": dict(FILES),
                              "args": {k: str(v) for k, v in vars(args).items()}, "machine": machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
