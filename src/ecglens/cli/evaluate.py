"""``ecglens evaluate``: score a checkpoint on a prepared cache, every metric with a bootstrap 95 % CI.

Examples::

    ecglens evaluate runs/age_sex/best.safetensors cache/ptbxl100 --folds 9 --out eval/age_sex_fold9
    ecglens evaluate age-sex cache/georgia --out eval/age_sex_georgia --n-boot 2000
    ecglens evaluate mi.safetensors cache/ptbxl100 --folds 10 --threshold-folds 9 --out eval/mi_fold10

CHECKPOINT is a ``.safetensors`` checkpoint or the name of a shipped model; DATA is a folder written by
``ecglens prepare`` with the checkpoint's preprocessing. Each output is matched to its truth column (``age`` <->
age, ``p_female`` <-> sex, ``p_<LABEL>`` <-> LABEL); age is also scored on the PTB-XL healthy / non-healthy
subsets and per decade. Binary decisions use threshold 0.5 unless ``--threshold-folds`` names validation folds
on which the threshold is chosen (Youden's J by default) and then applied unchanged. The command prints a table
and writes ``metrics.json``, ``predictions.csv`` and the figures (PNG) to ``--out`` (default
``eval_<checkpoint>_<data>_fold9``, ``..._all`` without ``--folds``); an existing folder is never overwritten
without ``--force``. ``--device cuda`` (``cuda:N``, ``mps``, ``auto``) runs the model on a GPU; ``--precision
bf16`` (``16`` on a GPU) in 16-bit arithmetic (docs/scale.md), stored in ``metrics.json``'s provenance.

Records of the checkpoint's training folds (its config's ``train_folds`` against the cache's ``fold`` column) or
training records (the run folder's ``splits.csv``) are refused, with or without ``--folds``:
``--allow-train-folds`` evaluates them anyway, with a warning printed and stored in ``metrics.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .predict import add_device_option

__all__ = ["default_out", "folds_arg", "register", "run_evaluate"]


def folds_arg(text: str) -> list[int]:
    """argparse type of fold options: ``9``, ``1-8`` or ``9,10`` -> a list of ints."""
    from ..io.ptbxl import parse_folds

    try:
        return [int(f) for f in parse_folds(text)]
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(f"cannot read folds {text!r} ({err}); write e.g. 9, 1-8 or 9,10") from None


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the ``ecglens`` parser."""
    p = sub.add_parser("evaluate", help="score a checkpoint on a prepared cache (metrics with bootstrap CIs)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file or shipped model name")
    p.add_argument("data", type=Path, metavar="DATA", help="a cache folder written by `ecglens prepare`")
    p.add_argument("--folds", type=folds_arg, default=None,
                   help="folds to evaluate, e.g. 9, 10 or 1-8 (default: every record)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: eval_<checkpoint>_<data>_fold<F> or ..._all)")
    p.add_argument("--force", action="store_true", help="write into an existing output folder")
    p.add_argument("--allow-train-folds", action="store_true",
                   help="evaluate even records the checkpoint was trained on (a warning goes into metrics.json)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--batch-size", type=int, default=256, help="records per forward pass (default: 256)")
    p.add_argument("--threshold-folds", type=folds_arg, default=None,
                   help="validation folds on which binary decision thresholds are chosen (default: use 0.5)")
    p.add_argument("--threshold-method", choices=("youden", "sensitivity", "specificity"), default="youden",
                   help="threshold rule on the validation folds (default: youden; sensitivity/specificity "
                        "target 0.9)")
    p.add_argument("--site-gain", default=None, metavar="auto|FILE",
                   help="scale each lead by a site gain (ECGs of another hospital or device; "
                        "ecglens.predict.site): auto estimates it from the evaluated records (no labels used), "
                        "FILE reuses one written by `ecglens predict --site-gain auto`")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_option(p)
    p.set_defaults(func=run_evaluate)


def default_out(checkpoint: str, data: Path, folds: list[int] | None) -> Path:
    """``eval_<checkpoint>_<data>_fold9`` (``_fold9+10``; ``_all`` without folds)."""
    part = "all" if folds is None else "fold" + "+".join(str(f) for f in folds)
    return Path(f"eval_{Path(checkpoint).name.split('.')[0]}_{data.resolve().name}_{part}")


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``ecglens evaluate``; returns the exit code."""
    from ..artifact import load_checkpoint
    from ..artifact.formats import ONNX, load_model_file, model_format
    from ..evaluate.runner import check_out_dir, evaluate_checkpoint, format_results
    from ..predict.device import resolve_device

    device = resolve_device(args.device)  # before anything is loaded or written
    out = args.out or default_out(args.checkpoint, args.data, args.folds)
    check_out_dir(out, args.force)
    if model_format(args.checkpoint) is ONNX:  # an exported (e.g. int8) file: predicted with onnxruntime
        checkpoint = load_model_file(args.checkpoint)
    else:
        checkpoint = load_checkpoint(args.checkpoint, map_location=device)
    precision = checkpoint.check_precision(args.precision, device.split(":")[0])  # before the cache is read
    results = evaluate_checkpoint(checkpoint, args.data, folds=args.folds, out_dir=out, n_boot=args.n_boot,
                                  seed=args.seed, batch_size=args.batch_size, threshold_folds=args.threshold_folds,
                                  threshold_method=args.threshold_method, progress=not args.quiet,
                                  allow_train_folds=args.allow_train_folds, site_gain=args.site_gain,
                                  precision=precision)
    prov = results["provenance"]
    folds = "all records" if args.folds is None else f"folds {args.folds}"
    print(f"\n{prov['checkpoint']} on {prov['data']} ({folds}): {prov['n_evaluated']} records, "
          f"{results['ci']} ({results['n_boot']} resamples by {results['resampling']}, seed {results['seed']})")
    if prov.get("n_rejected_in_cache"):
        print(f"({prov['n_rejected_in_cache']} records were rejected when the cache was prepared; "
              "see its manifest.json)")
    print(format_results(results))
    for text in results.get("warnings", []):
        print(f"\nWARNING: {text}", file=sys.stderr)
    print(f"\nwrote {out / 'metrics.json'}, {out / 'predictions.csv'} and {len(results['files']) - 2} figures "
          f"to {out}")
    return 0 if results["outputs"] else 1
