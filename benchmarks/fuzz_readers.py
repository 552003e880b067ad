"""Reliability benchmark: ``read_ecg`` on thousands of mutated copies of the real-format fixtures.

The mutator and the runner are in ``tests/fuzzing.py`` (see its docstring for the mutation families and the
outcome classes). Every case runs in a worker process with a time limit (``--timeout``, a ``hang`` beyond it)
and an address-space limit (``--mem-gib``). Then the Predictor is run on records that a careless reader would
have let through (non-finite, absurd amplitudes on one lead, all zero, absurd fs): none may come out ``ok``.

Prints a table (outcome class x format) and writes ``benchmarks/results/fuzz_readers.json`` (git-ignored). Usage::

    python benchmarks/fuzz_readers.py --cases 10000            # the long profile (~10 min on 2 cores)
    python benchmarks/fuzz_readers.py --cases 300 --seed 1     # a quick look

Exit status 1 when any defect (foreign exception, hang, garbage Ecg, garbage ``ok`` prediction) was found.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import fuzzing  # noqa: E402  (tests/fuzzing.py, the mutator)

from ecglens import __version__  # noqa: E402
from ecglens._version import source_commit  # noqa: E402


def _table(counts: dict[str, dict[str, int]], slowest: dict[str, float]) -> str:
    cols = fuzzing.OUTCOMES
    lines = ["| format | cases | " + " | ".join(cols) + " | slowest case (s) |",
             "|---|---:|" + "---:|" * (len(cols) + 1)]
    total = dict.fromkeys(cols, 0)
    for label in sorted(counts):
        row = counts[label]
        lines.append(f"| {label} | {sum(row.values())} | " + " | ".join(str(row[c]) for c in cols)
                     + f" | {slowest[label]:.2f} |")
        for c in cols:
            total[c] += row[c]
    lines.append(f"| **all** | {sum(total.values())} | " + " | ".join(str(total[c]) for c in cols)
                 + f" | {max(slowest.values()):.2f} |")
    return "\n".join(lines)


def predictor_on_garbage() -> dict[str, str]:
    """Status of the shipped model's prediction for records that are garbage by construction."""
    import numpy as np

    from ecglens.ecg import Ecg
    from ecglens.exceptions import EcglensError
    from ecglens.predict import Predictor

    predictor = Predictor.from_pretrained("age-sex-fast")
    t = np.arange(5000) / 500.0
    good = np.stack([np.sin(2 * np.pi * 1.2 * t + k) for k in range(12)]).astype(np.float64)
    one_lead = good.copy()
    one_lead[3] *= 1e6
    cases = {"one absurd lead (x1e6)": (one_lead, 500.0), "all leads x1e9": (good * 1e9, 500.0),
             "all zero": (good * 0, 500.0), "fs 1e6": (good, 1e6), "fs 1": (good, 1.0),
             "one spike 1e12": (np.where(np.arange(5000) == 100, 1e12, good), 500.0)}
    out = {}
    for name, (x, fs) in cases.items():
        try:
            ecg = Ecg(x, fs, ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"))
            out[name] = "ok" if predictor.predict_ecg(ecg) else "?"
        except EcglensError as err:
            out[name] = f"error: {type(err).__name__}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--mem-gib", type=float, default=3.0, help="address-space limit per worker")
    parser.add_argument("--fixtures", type=Path, default=REPO.parent / "shared" / "data" / "fixtures")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fuzz_readers.json")
    args = parser.parse_args(argv)

    srcs = fuzzing.sources(args.fixtures, fuzzing.default_cache())
    start = time.perf_counter()
    rows = list(fuzzing.run_cases(srcs, range(args.cases), args.seed, args.workers, args.timeout, args.mem_gib))
    seconds = time.perf_counter() - start
    counts = fuzzing.tally(rows)
    slowest: dict[str, float] = {}
    for r in rows:
        slowest[r[1]] = max(slowest.get(r[1], 0.0), r[5])
    defects = [r for r in rows if r[3] in fuzzing.DEFECTS]
    print(_table(counts, slowest))
    print(f"\n{len(rows)} cases, seed {args.seed}, {seconds:.0f} s ({len(rows) / seconds:.1f} cases/s)")
    for kind, n in Counter((r[3], r[4][:90]) for r in defects).most_common(25):
        print(f"  {n:5d}  {kind[0]}: {kind[1]}")
    garbage_preds = predictor_on_garbage()
    print("\nPredictor on garbage records: " + ", ".join(f"{k} -> {v}" for k, v in garbage_preds.items()))
    n_ok_garbage = sum(v == "ok" for v in garbage_preds.values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "ecglens": __version__, "commit": source_commit(),
        "python": platform.python_version(), "cases": len(rows), "seed": args.seed,
        "seconds": seconds, "counts": counts, "slowest_case_s": slowest,
        "errors": dict(Counter(r[4].split(":")[0] for r in rows if r[3] == "error")),
        "defects": [dict(zip(("index", "format", "family", "outcome", "detail", "seconds"), r, strict=True))
                    for r in defects],
        "predictor_on_garbage": garbage_preds, "garbage_ok_predictions": n_ok_garbage,
    }, indent=1))
    print(f"wrote {args.out}")
    return 1 if defects or n_ok_garbage else 0


if __name__ == "__main__":
    raise SystemExit(main())
