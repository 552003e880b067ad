"""``ecglens predict``: predictions for ECG files and folders -> one CSV row per record.

Examples::

    ecglens predict ~/ptbxl/records100 --model age-sex --output preds.csv
    ecglens predict a.hea b.xml scans/ --model runs/age_sex/model.safetensors --workers 2
    ecglens predict arrays/ --fs 500 --leads I,II,V1,V2,V3,V4,V5,V6 --units uV --output preds.csv
    ecglens predict export.zip muse_export.tar.gz --output preds.csv

INPUTS are files (any supported format), folders, searched recursively for the files of every supported format
(WFDB .hea + .dat/.mat, each record once; .xml, .dcm, .scp, .edf, ...; with --fs also .npy/.npz/.csv/.tsv
arrays), and .zip, .tar, .tar.gz/.tgz archives, unpacked into a private temporary folder (removed at the end)
and searched like a folder; their records are named ARCHIVE/MEMBER (export.zip/folder/rec.xml). Unsafe archives
(../ or absolute names, links, devices) and zip bombs are refused. Every record is brought to
the model's input contract (resampled, leads reordered or derived, windows for long recordings, uV converted);
what was done is listed in the ``flags`` column. A record that cannot be used gets an ``error`` row with the
reason; the job goes on. Columns: record, status, message, one per model output (e.g. age, age_std, p_female),
n_windows, flags. Exit code 0 when at least one record was predicted, 1 when none was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_array_options", "array_read_kwargs", "register", "run_predict"]

#: error reasons shown in the summary
_SHOW_ERRORS = 5


def add_array_options(p: argparse.ArgumentParser) -> None:
    """``--fs``, ``--leads``, ``--units``: how to read raw arrays (.npy/.npz/.csv), which carry no header."""
    g = p.add_argument_group("raw arrays (.npy, .npz, .csv, .tsv)")
    g.add_argument("--fs", type=float, default=None, help="sampling rate in Hz of raw arrays (required for them)")
    g.add_argument("--leads", default=None,
                   help="comma-separated lead names of raw arrays, e.g. I,II,V1,V2,V3,V4,V5,V6 "
                        "(default: the 12 standard leads)")
    g.add_argument("--units", default=None, help="amplitude unit of raw arrays: mV (default), uV or V")


def array_read_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Reader options from :func:`add_array_options` (only those given)."""
    kwargs: dict[str, Any] = {}
    if args.fs is not None:
        kwargs["fs"] = args.fs
    if args.leads:
        kwargs["leads"] = [name.strip() for name in args.leads.split(",") if name.strip()]
    if args.units:
        kwargs["units"] = args.units
    return kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict for ECG files / folders with a trained model -> CSV",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUTS", help="ECG files, folders and/or archives")
    p.add_argument("--model", default="age-sex", help="shipped model name or checkpoint path (default: age-sex)")
    p.add_argument("--output", "-o", type=Path, default=Path("preds.csv"), help="CSV to write (default preds.csv)")
    p.add_argument("--batch-size", type=int, default=64, help="model windows per forward pass (default 64)")
    p.add_argument("--workers", type=int, default=None,
                   help="reading processes (default: min(4, CPU count); 0 reads in the main process)")
    p.add_argument("--backend", default="torch", help="inference backend: torch (default) or onnx")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads of the torch backend (default: torch's choice)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="most 10 s windows per record for long recordings (default 30)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_array_options(p)
    p.set_defaults(func=run_predict)


def _summary(table: Any, output: Path) -> str:
    attrs = table.attrs
    head = (f"predicted {len(table)} record(s) with {attrs.get('model', '?')} in {attrs['seconds']:.1f} s "
            f"({attrs['ecgs_per_s']:.1f} ECGs/s): {attrs['n_ok']} ok, {attrs['n_error']} error")
    lines = [head, f"wrote {output}"]
    errors = table[table["status"] == "error"]
    for _, row in errors.head(_SHOW_ERRORS).iterrows():
        lines.append(f"  error {row['record']}: {row['message']}")
    if len(errors) > _SHOW_ERRORS:
        lines.append(f"  ... and {len(errors) - _SHOW_ERRORS} more (see the status/message columns)")
    return "\n".join(lines)


def run_predict(args: argparse.Namespace) -> int:
    """Run ``ecglens predict``; returns the exit code."""
    from ..predict import DEFAULT_MAX_WINDOWS, Predictor
    from ..predict.records import unpacked_archives

    max_windows = args.max_windows if args.max_windows is not None else DEFAULT_MAX_WINDOWS
    options = {"num_threads": args.threads} if args.threads else {}
    predictor = Predictor.from_pretrained(args.model, backend=args.backend, max_windows=max_windows, **options)
    with unpacked_archives():
        table = predictor.predict_paths([str(p) for p in args.inputs], progress=not args.no_progress,
                                        batch_size=args.batch_size, workers=args.workers,
                                        read_kwargs=array_read_kwargs(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    print(_summary(table, args.output), file=sys.stdout)
    return 0 if table.attrs["n_ok"] > 0 else 1
