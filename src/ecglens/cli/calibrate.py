"""``ecglens calibrate CHECKPOINT CACHE --folds 9 --out NEW.safetensors``: fit the post-hoc calibration.

Examples::

    ecglens calibrate age-sex cache/ptbxl100 --folds 9 --out age-sex-calibrated.safetensors
    ecglens calibrate runs/age/model.safetensors cache/ptbxl100 --folds 8 --eval-folds 9 --out age-cal.safetensors

Predicts the records of ``--folds`` with CHECKPOINT, fits on them (docs/ecg_age.md,
:mod:`ecglens.artifact.calibration`)

* the age bias line for the **corrected ECG-age gap** (residual of predicted on recorded age; docs/ecg_age.md),
* one scale factor for ``age_std`` (sigma scaling, maximum likelihood),
* one temperature per probability (temperature scaling, Guo et al. 2017),
* and measures the median RMS of each lead of those records: the reference amplitudes a **site gain** matches
  another hospital's ECGs to (``ecglens predict --site-gain auto``; :mod:`ecglens.predict.site`),

then scores the calibrated model on ``--eval-folds`` (default: the same folds) and writes a copy of the checkpoint
(same weights) carrying the calibration and those metrics (``ecglens info`` shows them; ``predict``,
``evaluate``, the report and the server apply the calibration). It prints coverage, ECE and the gap per decade
before and after.

Fit on validation data the model was not trained on (PTB-XL fold 9 for the shipped models). Metrics measured on
the folds the calibration was fitted on are **in-sample** (coverage is near nominal by construction) and are
stored with ``calibration_in_sample: true``; for an honest check fit on one held-out split and evaluate on
another (e.g. a model trained on folds 1-7: ``--folds 8 --eval-folds 9``). Training folds are refused unless
``--allow-train-folds`` (a model is over-confident on its own training data).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

__all__ = ["register", "run_calibrate"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``calibrate`` to the ``ecglens`` parser."""
    from .evaluate import folds_arg

    p = sub.add_parser("calibrate", help="fit age-gap correction, age_std scaling and temperatures on validation "
                       "folds; write a calibrated checkpoint with its metrics",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file or shipped model name")
    p.add_argument("data", type=Path, metavar="CACHE", help="a cache folder written by `ecglens prepare`")
    p.add_argument("--folds", type=folds_arg, required=True,
                   help="validation folds to fit on, e.g. 9 (the shipped models' validation fold)")
    p.add_argument("--eval-folds", type=folds_arg, default=None,
                   help="folds on which the stored metrics are measured (default: --folds, in-sample)")
    p.add_argument("--out", type=Path, required=True, help="the new .safetensors checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--allow-train-folds", action="store_true",
                   help="fit even on folds the checkpoint was trained on (not recommended)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the stored metrics' CIs")
    p.add_argument("--batch-size", type=int, default=256, help="records per forward pass (default: 256)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_calibrate)


def _summary(results: dict, cal: object) -> list[str]:
    lines = [f"calibration: {cal}"]
    for output, entry in results["outputs"].items():
        unc = entry.get("uncertainty") or {}
        for key, label in (("coverage_raw", "raw"), ("coverage", "calibrated")):
            if key in unc:
                cells = ", ".join(f"{100 * c['observed']:.1f} % at {c['z']:g} SD (nominal {100 * c['nominal']:.1f})"
                                  for c in unc[key].values())
                lines.append(f"{output}_std coverage, {label}: {cells}")
        if "ece" in entry:
            lines.append(f"{output} ECE: raw {entry.get('ece_raw', float('nan')):.4f} -> calibrated "
                         f"{entry['ece']:.4f}")
        for row in entry.get("age_gap_by_decade") or ():
            lines.append(f"  gap {row['decade']:>6} n={row['n']:<5} raw {row['gap']:+6.1f} -> corrected "
                         f"{row.get('gap_corrected', float('nan')):+6.1f} years")
    return lines


def run_calibrate(args: argparse.Namespace) -> int:
    """Handler of ``ecglens calibrate``; returns the exit code."""
    from ..artifact import check_contract, load_checkpoint
    from ..artifact.calibration import fit_calibration
    from ..artifact.checkpoint import update_checkpoint
    from ..data.cache import open_cache
    from ..evaluate.calibration_report import checkpoint_metrics, in_sample_note, training_provenance
    from ..evaluate.overlap import training_overlap
    from ..evaluate.runner import calibrated_outputs, evaluate_predictions, predict_cache
    from ..exceptions import ConfigError
    from ..predict.site import reference_rms, signals_rms

    out = args.out if args.out.suffix == ".safetensors" else args.out.with_name(args.out.name + ".safetensors")
    if out.exists() and not args.force:
        raise ConfigError(f"{out} already exists; choose another --out or pass --force.")
    ck = load_checkpoint(args.checkpoint)
    cache = open_cache(args.data)
    check_contract(getattr(ck, "preprocess", None), getattr(cache, "preprocess", None), where=f"at {args.data}",
                   fix=" and calibrate on that")
    idx = cache.indices(args.folds)
    if idx.size == 0:
        raise ConfigError(f"no records in folds {args.folds} of {args.data}; check --folds.")
    meta = cache.meta.iloc[idx].reset_index(drop=True)
    overlap = training_overlap(ck, meta)
    if overlap is not None and not args.allow_train_folds:
        raise ConfigError(f"{overlap}. A model is over-confident on its training data, so a calibration fitted "
                          "there is too narrow: fit on validation folds (e.g. --folds 9), or pass "
                          "--allow-train-folds.")
    raw = predict_cache(ck, cache.signals, idx, args.batch_size, not args.quiet)
    cal = fit_calibration(raw, meta, folds=args.folds)
    leads = getattr(getattr(ck, "preprocess", None), "leads", None)
    if leads:  # the reference amplitudes of site gains, on the same records
        cal = dataclasses.replace(cal, lead_rms_mv=reference_rms(signals_rms(cache.signals, idx), leads))
    eval_folds = args.eval_folds or args.folds
    if eval_folds != args.folds:
        idx = cache.indices(eval_folds)
        meta = cache.meta.iloc[idx].reset_index(drop=True)
        raw = predict_cache(ck, cache.signals, idx, args.batch_size, not args.quiet)
    results = evaluate_predictions(calibrated_outputs(raw, cal), meta, task=getattr(ck, "task", None),
                                   n_boot=args.n_boot, calibration=cal)
    results["provenance"] = {"folds": eval_folds}
    metrics = {**checkpoint_metrics(results), **training_provenance(getattr(ck, "metrics", None))}
    metrics["calibration_in_sample"] = in_sample_note(cal, eval_folds) is not None
    command = "ecglens calibrate " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    path = update_checkpoint(args.checkpoint, out, calibration=cal, metrics=metrics, note=command)
    print("\n".join(_summary(results, cal)))
    if metrics["calibration_in_sample"]:
        print(f"\nnote: {in_sample_note(cal, eval_folds)}")
    print(f"\nwrote {path} (weights of {args.checkpoint}; calibration fitted on folds {args.folds}, n={cal.n}; "
          f"metrics on folds {eval_folds})")
    return 0
