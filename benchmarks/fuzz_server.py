"""Reliability benchmark: the server campaign (``tests/serve/campaign.py``) at length, against the web service
with the shipped ``age-sex`` model on 127.0.0.1 (uvicorn on a free loopback port, nothing else is contacted).

Malformed multipart, oversized uploads, zip bombs, traversal names, headers naming server paths, mutated fixture
uploads (``tests/fuzzing.py``) and good records, ``--concurrency`` requests at a time (8 by default). Prints a
table (family x outcome class) and writes ``benchmarks/results/fuzz_server.json`` (git-ignored). Usage::

    python benchmarks/fuzz_server.py --cases 3000             # the long profile (a few minutes on 2 cores)
    python benchmarks/fuzz_server.py --cases 200 --seed 1     # a quick look

Exit status 1 when any defect (5xx, 4xx without a JSON error, server down, a file written outside the request's
temporary folder, a server file's existence disclosed) was found.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "serve")]

import campaign  # noqa: E402  (tests/serve/campaign.py)

from ecglens import __version__  # noqa: E402
from ecglens._version import source_commit  # noqa: E402
from ecglens.serve import create_app  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mutants", type=int, default=200, help="mutated fixtures to draw uploads from")
    parser.add_argument("--model", default="age-sex")
    parser.add_argument("--fixtures", type=Path, default=REPO.parent / "shared" / "data" / "fixtures")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fuzz_server.json")
    args = parser.parse_args(argv)
    logging.getLogger("python_multipart").setLevel(logging.ERROR)  # one line per malformed body otherwise

    record = tuple((p.name, p.read_bytes()) for p in sorted((args.fixtures / "code15").glob("100003.*")))
    mutants = campaign.mutant_uploads(args.fixtures, args.mutants, args.seed)
    with tempfile.TemporaryDirectory(prefix="ecglens-campaign-") as work:
        root = Path(work)
        secret = root / "secret" / "passwords.dat"
        secret.parent.mkdir()
        secret.write_bytes(b"root:x:0:0\n" * 40)
        (root / "uploads").mkdir()
        app = create_app(args.model, max_upload_mb=campaign.MAX_MB, max_files=4, max_zip_entries=16,
                         max_unzipped_mb=campaign.MAX_UNZIPPED_MB, tmp_dir=root / "uploads", plot_dpi=60)
        start = time.perf_counter()
        with campaign.LoopbackServer(app) as url:
            target = campaign.Target(url, root / "uploads", (root,), secret, record)
            rows = campaign.run_campaign(target, range(args.cases), args.seed, args.concurrency, mutants)
        seconds = time.perf_counter() - start
    counts = campaign.tally(rows)
    defects = [r for r in rows if r["outcome"] in campaign.DEFECTS]
    print(campaign.table(counts))
    print(f"\n{len(rows)} cases, seed {args.seed}, concurrency {args.concurrency}, {seconds:.0f} s "
          f"({len(rows) / seconds:.1f} requests/s), slowest {max(r['seconds'] for r in rows):.2f} s")
    print("4xx codes: " + ", ".join(f"{code} {n}" for code, n in Counter(
        f"{r['status']} {r['detail']}" for r in rows if r["outcome"] == "4xx").most_common()))
    for r in defects[:25]:
        print(f"  defect {r['family']} #{r['index']}: {r['outcome']} {r['status']} {str(r['detail'])[:120]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "ecglens": __version__, "commit": source_commit(),
        "python": platform.python_version(), "cases": len(rows), "seed": args.seed,
        "concurrency": args.concurrency, "model": args.model, "seconds": seconds,
        "counts": {family: dict(c) for family, c in counts.items()}, "defects": defects,
    }, indent=1, default=str))
    print(f"wrote {args.out}")
    return 1 if defects else 0


if __name__ == "__main__":
    raise SystemExit(main())
