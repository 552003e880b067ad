"""``ecglens report``: a self-contained HTML report for one ECG.

Examples::

    ecglens report rec.hea --model age-sex --out report.html
    ecglens report muse.xml --out report.html --true-age 63
    ecglens report x.npy --fs 500 --out report.html --method saliency
    ecglens report rec.hea --format png --out report.html     # 300-dpi PNG figures instead of vector SVG

The page (one file: images embedded, vector SVG by default or 300-dpi PNG with --format png; no external
assets) shows the predictions with their uncertainty, the ECG-age gap when the true age is known (from the file
header or --true-age), what was done to fit the record to the model and the quality flags, the 12-lead tracing
on ECG paper, an attribution overlay (integrated gradients of the age output by default) with a lead-importance
chart, and the model card.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .predict import add_array_options, array_read_kwargs

__all__ = ["register", "run_report"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one ECG -> a self-contained HTML report (predictions, tracing, attributions)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, metavar="FILE", help="the ECG record (any supported format)")
    p.add_argument("--model", default="age-sex", help="shipped model name or checkpoint path (default: age-sex)")
    p.add_argument("--out", type=Path, default=Path("report.html"), help="HTML file to write (default report.html)")
    p.add_argument("--true-age", type=float, default=None,
                   help="the patient's age in years, for the ECG-age gap (default: from the file header)")
    p.add_argument("--explain", default="age", help="output to attribute (default: age; first output otherwise)")
    p.add_argument("--method", choices=("integrated_gradients", "saliency", "none"), default="integrated_gradients",
                   help="attribution method (default integrated_gradients; none: no attribution map)")
    p.add_argument("--format", choices=("svg", "png"), default="svg", dest="image_format",
                   help="figures as vector SVG (default; sharp at any zoom) or PNG at 300 dpi")
    p.add_argument("--n-steps", type=int, default=32, help="integrated-gradients steps (default 32)")
    add_array_options(p)
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Run ``ecglens report``; returns the exit code."""
    from ..report import write_report

    explain = None if args.method == "none" else args.explain
    path = write_report(args.file, args.out, model=args.model, true_age=args.true_age,
                        read_kwargs=array_read_kwargs(args), explain=explain,
                        method="integrated_gradients" if args.method == "none" else args.method,
                        n_steps=args.n_steps, image_format=args.image_format)
    print(f"wrote {path}")
    return 0
