"""``ecglens predict``: predictions for ECG files and folders -> a table on screen or one CSV row per record.

Examples::

    ecglens predict one.hea                       # one record: its predictions as a table, no file written
    ecglens predict one.xml --output one.csv      # ... and also written to one.csv
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
reason; the job goes on, and every record found appears exactly once. Columns: record, status, message, one per
model output (e.g. age, age_std, p_female), n_windows, flags. A recording longer than the model's input window
(4 s for the shipped models) is cut into up to --max-windows windows whose predictions are averaged.

Output: when the inputs hold a single record, its predictions are printed as a table and a file is written only
with --output. With several records, the table is written to --output (default ./preds.csv) and a summary
(inputs = ok + error, the first error reasons) is printed. Exit code 0 when at least one record was predicted,
1 when none was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_array_options", "array_read_kwargs", "register", "run_predict"]

#: error reasons shown in the summary
_SHOW_ERRORS = 5
#: the file written for several records when --output is not given
DEFAULT_OUTPUT = Path("preds.csv")


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
    p.add_argument("--output", "-o", type=Path, default=None,
                   help=f"CSV to write; default: none for a single record (its table is printed), "
                        f"{DEFAULT_OUTPUT} for several")
    p.add_argument("--batch-size", type=int, default=64, help="model windows per forward pass (default 64)")
    p.add_argument("--workers", type=int, default=None,
                   help="reading processes (default: min(4, CPU count); 0 reads in the main process)")
    p.add_argument("--backend", default="torch", help="inference backend: torch (default) or onnx")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads of the torch backend (default: torch's choice)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="most windows per record for recordings longer than the model's input window (each "
                        "window as long as that input, e.g. 4 s for the shipped models; default 30)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_array_options(p)
    p.set_defaults(func=run_predict)


def _summary(table: Any, output: Path | None) -> str:
    """The summary of a run: inputs = ok + error, the file written, the first error reasons."""
    attrs = table.attrs
    head = (f"{len(table)} input(s): {attrs['n_ok']} ok, {attrs['n_error']} error; predicted with "
            f"{attrs.get('model', '?')} in {attrs['seconds']:.1f} s ({attrs['ecgs_per_s']:.1f} ECGs/s)")
    lines = [head] + ([f"wrote {output}"] if output is not None else [])
    errors = table[table["status"] == "error"]
    for _, row in errors.head(_SHOW_ERRORS).iterrows():
        lines.append(f"  error {row['record']}: {row['message']}")
    if len(errors) > _SHOW_ERRORS:
        lines.append(f"  ... and {len(errors) - _SHOW_ERRORS} more (see the status/message columns)")
    return "\n".join(lines)


def _record_table(table: Any) -> str:
    """One record's row as a ``column  value`` table (empty columns left out)."""
    row = table.iloc[0]
    shown = [(name, value) for name, value in row.items() if not (isinstance(value, str) and value == "")]
    width = max(len(str(name)) for name, _ in shown)
    return "\n".join(f"{name:<{width}}  {value:.4g}" if isinstance(value, float) else f"{name:<{width}}  {value}"
                     for name, value in shown)


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
    single = len(table) == 1
    output = args.output if args.output is not None or single else DEFAULT_OUTPUT
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(output, index=False)
    if single:
        print(_record_table(table), file=sys.stdout)
        if output is not None:
            print(f"wrote {output}", file=sys.stdout)
    else:
        print(_summary(table, output), file=sys.stdout)
    return 0 if table.attrs["n_ok"] > 0 else 1
