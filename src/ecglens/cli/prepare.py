"""``ecglens prepare``: records -> a training-ready cache (one memory-mapped array + a metadata table).

Examples::

    ecglens prepare ptbxl ~/ptbxl --out cache/ptbxl100 --folds 1-9 --fs 100 --seconds 10 --highpass 0.5
    ecglens prepare wfdb  data/georgia --out cache/georgia --fs 100 --seconds 10

``ptbxl`` reads a PTB-XL folder (``labels.csv`` or the official ``ptbxl_database.csv`` beside ``records100/``);
``wfdb`` reads every WFDB / PhysioNet-challenge record under a folder, or in a .zip / .tar / .tar.gz archive
(unpacked safely into a temporary folder that is removed at the end; any mix of sampling rates and lengths;
age, sex and labels from the header comments). Records that cannot be read or preprocessed are listed with
their reason in ``OUT/rejected.csv`` and ``OUT/manifest.json``; the job goes on without them. The exit code is
0 when the cache was written (even with rejected records) and non-zero when no record could be prepared.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["build_preprocess", "print_summary", "register", "run_prepare"]

#: how many rejection reasons the summary shows
_SHOW_REJECTED = 5


def _ptbxl_catalogue(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    """PTB-XL catalogue of ``args.dir`` restricted to ``args.folds``."""
    from ..io.ptbxl import parse_folds, ptbxl_catalogue

    folds = parse_folds(args.folds) if args.folds else None
    return ptbxl_catalogue(args.dir, folds=folds), "ptbxl"


def _wfdb_catalogue(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    """Catalogue of every WFDB record under ``args.dir`` (a folder, or an archive unpacked for the run)."""
    from ..io.archive import is_archive
    from ..io.wfdb import wfdb_catalogue
    from ..predict.records import unpack_archive

    source = Path(args.dir)
    if source.is_file() and is_archive(source):
        return wfdb_catalogue(unpack_archive(source)), source.name
    return wfdb_catalogue(source), source.resolve().name or "wfdb"


#: dataset kind -> (catalogue builder, help text, examples); adding a dataset adds one entry here
_DATASETS: dict[str, tuple[Callable[[argparse.Namespace], tuple[pd.DataFrame, str]], str, str]] = {
    "ptbxl": (_ptbxl_catalogue, "a PTB-XL folder (labels.csv or ptbxl_database.csv + records100/500)",
              "  ecglens prepare ptbxl ~/ptbxl --out cache/ptbxl100 --folds 1-9 --fs 100 --seconds 10\n"
              "  ecglens prepare ptbxl ~/ptbxl --out cache/ptbxl_test --folds 10 --fs 100 --highpass 0.5"),
    "wfdb": (_wfdb_catalogue, "a folder tree (or a .zip / .tar / .tar.gz archive) of WFDB / PhysioNet-challenge "
                              "records (.hea + .dat/.mat)",
             "  ecglens prepare wfdb data/georgia --out cache/georgia --fs 100 --seconds 10\n"
             "  ecglens prepare wfdb challenge2021.tar.gz --out cache/challenge --fs 100 --notch 60 --workers 4\n"
             "  ecglens prepare wfdb my_ecgs/ --out cache/mine --labels my_labels.csv --id-column ecg_id"),
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``prepare ptbxl`` and ``prepare wfdb`` to the ``ecglens`` parser."""
    p = sub.add_parser("prepare", help="records -> a training-ready cache (memory-mapped signals + metadata)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name, (builder, text, examples) in _DATASETS.items():
        q = kinds.add_parser(name, help=text, formatter_class=argparse.RawDescriptionHelpFormatter,
                             description=f"Prepare a cache from {text}. Every record found is either stored "
                                         "(accepted) or listed with its reason in OUT/rejected.csv (rejected); "
                                         "the summary counts records = accepted + rejected.",
                             epilog=f"examples:\n{examples}")
        q.add_argument("dir", type=Path, metavar="DIR",
                       help="the data folder" + (" or archive" if name == "wfdb" else ""))
        if name == "ptbxl":
            q.add_argument("--folds", default=None,
                           help="strat_folds to include, e.g. '1-9' or '1-8,10' (default: all present)")
        _add_common_options(q)
        q.set_defaults(func=run_prepare, catalogue_builder=builder)


def _add_common_options(q: argparse.ArgumentParser) -> None:
    """Options shared by every dataset kind: output, preprocessing, workers."""
    q.add_argument("--out", type=Path, required=True, help="the cache folder to create")
    q.add_argument("--fs", type=float, default=100.0, help="target sampling rate in Hz (default: 100)")
    q.add_argument("--seconds", type=float, default=10.0, help="crop/pad every record to this length (default: 10)")
    q.add_argument("--highpass", type=float, default=None, metavar="HZ",
                   help="high-pass cut-off in Hz against baseline wander; 0 turns it off "
                        "(default: the Preprocess default, 0.5)")
    q.add_argument("--notch", type=float, default=None, metavar="HZ", help="mains notch filter, 50 or 60 Hz")
    q.add_argument("--normalize", default=None, metavar="METHOD",
                   help="per-lead normalisation: none, zscore, robust or minmax (default: none, keep mV)")
    q.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="storage type of signals.npy (default: float32)")
    q.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    q.add_argument("--force", action="store_true",
                   help="rebuild OUT even when it holds a cache (needed when it was built with other settings)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--labels", type=Path, default=None, metavar="TABLE",
                   help="your own label table (.csv, or .tsv tab-separated), one row per record: its columns "
                        "(age, sex, fold, patient_id, label columns such as MI) replace the header values")
    q.add_argument("--id-column", default="record_id", metavar="COLUMN",
                   help="the --labels column naming the records: their file names without suffix "
                        "(default: record_id)")


def build_preprocess(args: argparse.Namespace) -> Any:
    """The :class:`~ecglens.signal.transforms.Preprocess` described by the command-line options."""
    from ..exceptions import ConfigError
    from ..signal.transforms import Preprocess

    kwargs: dict[str, Any] = {"fs": args.fs, "seconds": args.seconds}
    if args.highpass is not None:
        kwargs["highpass_hz"] = args.highpass if args.highpass > 0 else None
    if args.notch is not None:
        kwargs["notch_hz"] = args.notch
    if args.normalize is not None:
        kwargs["normalize"] = args.normalize
    try:
        return Preprocess(**kwargs)
    except TypeError as err:  # an option the installed Preprocess does not know
        raise ConfigError(f"invalid preprocessing options {kwargs}: {err}") from err


def run_prepare(args: argparse.Namespace) -> int:
    """Handler of ``ecglens prepare ptbxl|wfdb``; returns the exit code."""
    from ..data.cache import prepare_cache
    from ..data.label_table import attach_labels, read_label_table
    from ..exceptions import ConfigError
    from ..predict.records import unpacked_archives

    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}.")
    preprocess = build_preprocess(args)
    with unpacked_archives():
        catalogue, source = args.catalogue_builder(args)
        if args.labels is not None:
            catalogue = attach_labels(catalogue, read_label_table(args.labels), args.id_column)
            print(f"labels from {args.labels}: {catalogue.attrs['labels_matched']} of {len(catalogue)} records "
                  f"named in the table ({catalogue.attrs['labels_unmatched']} table rows name no record found)")
        print(f"{len(catalogue)} records in {args.dir} -> {args.out} ({args.workers} workers)")
        manifest = prepare_cache(catalogue, args.out, preprocess, workers=args.workers, source=source,
                                 progress=not args.quiet, force=args.force, dtype=args.dtype)
    if manifest.get("up_to_date"):
        print(f"up to date: {args.out} was prepared from the same records and settings; nothing to do "
              "(the summary below is of that run).")
    print_summary(manifest, Path(args.out))
    return 0 if manifest["n_accepted"] > 0 else 1


def print_summary(manifest: dict[str, Any], out: Path) -> None:
    """Print accepted / rejected counts, the first rejection reasons, the time and the speed of a prepare run."""
    n_rej = manifest["n_rejected"]
    shape = "x".join(map(str, manifest.get("shape", [])))
    print(f"cache      {out}  ({manifest.get('dtype', 'float32')} [{shape}], {manifest.get('fs', 0):g} Hz)")
    n_records = manifest.get("n_records", manifest["n_accepted"] + n_rej)
    print(f"records    {n_records} = {manifest['n_accepted']} accepted + {n_rej} rejected")
    print(f"accepted   {manifest['n_accepted']} of {n_records}")
    print(f"rejected   {n_rej}" + (f"  (full list: {out / 'rejected.csv'} and manifest.json)" if n_rej else ""))
    for row in manifest.get("rejected", [])[:_SHOW_REJECTED]:
        print(f"  - {row['record']}: {row['reason']}")
    if n_rej > _SHOW_REJECTED:
        print(f"  ... and {n_rej - _SHOW_REJECTED} more")
    print(f"time       {manifest.get('elapsed_s', 0):.1f} s  ({manifest.get('records_per_s') or 0:.0f} rec/s, "
          f"{manifest.get('workers', '?')} workers, created {manifest.get('created', '?')})")
