"""``ecglens demo``: the main job of ``make demo``.

Reads the example ECGs shipped with the package, prints a summary table, writes a 12-lead plot of each (ECG
paper: 25 mm/s, 10 mm/mV, 3x4 layout + rhythm strip) and, when a pretrained model is installed, predicts with it
and writes an HTML report.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

__all__ = ["demo_predictions", "register", "run_demo"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="read the bundled example ECGs, print a table, plot them (and predict)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--model", default="age-sex", help="pretrained model name or checkpoint path (default: age-sex)")
    p.set_defaults(func=run_demo)


def _summaries(paths: list[Path]) -> tuple[list, pd.DataFrame]:
    from ..io import read_ecg

    ecgs = [read_ecg(p) for p in paths]
    rows = []
    for ecg in ecgs:
        s = ecg.summary()
        rows.append({k: s[k] for k in ("record", "fs_hz", "n_leads", "duration_s", "derived_leads", "age", "sex",
                                       "peak_abs_mv")})
    return ecgs, pd.DataFrame(rows)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    from ..examples import example_paths
    from ..plot import plot_ecg

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ecgs, table = _summaries(example_paths())
    print("Example ECGs (simulated with NeuroKit2, shipped in ecglens/examples):\n")
    print(table.to_string(index=False))
    table.to_csv(out / "examples.csv", index=False)
    print()
    for ecg in ecgs:
        png = out / f"{ecg.record_id}.png"
        fig = plot_ecg(ecg, title=f"{ecg.record_id} - {ecg.fs:g} Hz, {ecg.duration:.1f} s (simulated)")
        fig.savefig(png)
        print(f"wrote {png}")
    _maybe_predict(args, out)
    return 0


def _maybe_predict(args: argparse.Namespace, out: Path) -> None:
    """Predict with the pretrained model (prints a note when it is not installed)."""
    demo_predictions(args.model, out)


def demo_predictions(model_name: str, out_dir: str | os.PathLike[str]) -> pd.DataFrame | None:
    """Predict for the shipped example ECGs, print the table, write ``preds.csv`` and one HTML report.

    Used by ``ecglens demo``. When ``model_name`` is not installed (unknown name / missing file), prints a
    one-line note and returns ``None``.
    """
    from ..examples import example_paths
    from ..exceptions import CheckpointError
    from ..predict import Predictor

    out = Path(out_dir)
    try:
        predictor = Predictor.from_pretrained(model_name)
    except CheckpointError:
        print(f"\n(model {model_name!r} is not installed: skipping predictions. Train one with `ecglens train "
              "configs/age_sex.yaml`, or pass --model CHECKPOINT.)")
        return None
    paths = example_paths()
    table = predictor.predict_paths(paths, progress=False, workers=1)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "preds.csv", index=False)
    shown = table.assign(record=[Path(r).name for r in table["record"]])
    shown = shown.drop(columns=["message"]) if not shown["message"].astype(bool).any() else shown
    print(f"\nPredictions of {predictor.model_label} for the example ECGs:\n")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nwrote {out / 'preds.csv'}")
    if paths:
        from ..report import write_report

        html = write_report(paths[0], out / f"report_{paths[0].stem}.html", predictor=predictor)
        print(f"wrote {html}")
    return table
