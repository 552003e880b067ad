"""``ecglens export``: a checkpoint -> one self-describing ONNX file (optionally verified against PyTorch).

Examples::

    ecglens export age-sex --onnx age-sex.onnx --verify
    ecglens export runs/mi/best.safetensors --onnx mi.onnx --opset 18 --fixed-length
    ecglens export age-sex-fast --onnx fast-int8.onnx --int8 cache/ptbxl100 --int8-folds 1-8

The file takes ``ecg`` (float32 ``[batch, leads, samples]``, mV at the checkpoint's sampling rate) and returns
one ``[batch]`` output per prediction in user units, named as ``ecglens predict`` names its columns (``age`` in
years, ``age_std``, ``p_female``, ``p_MI``, ...: the task's postprocessing is in the graph), besides ``raw``
(``[batch, num_outputs]``, internal units); its metadata holds the checkpoint's input contract and task, so
``ecglens serve --model FILE.onnx`` and ``Predictor.from_pretrained(FILE)`` use it without
the PyTorch weights. ``--verify`` compares onnxruntime with PyTorch on random input at the contract length and,
for a length-dynamic file, at 1.5x that length; the exit code is 1 when the largest difference exceeds
``--tolerance``.

``--int8 CACHE`` writes an int8 file instead (:mod:`ecglens.quantize`: onnxruntime static quantization; the
network of ``age-sex-fast`` runs about 4x faster on one CPU thread), its activation ranges calibrated on
``--int8-records`` records of ``--int8-folds`` of a cache prepared with the model's contract (data the model will
not be judged on). It changes the outputs: ``--verify`` then reports the difference from the float model on other
records of the same folds, and ``ecglens evaluate FILE.onnx`` measures the accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .evaluate import folds_arg

__all__ = ["register", "run_export"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export`` to the ``ecglens`` parser."""
    p = sub.add_parser("export", help="export a checkpoint to ONNX (with its input contract as metadata)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .safetensors checkpoint or a shipped model name")
    p.add_argument("--onnx", type=Path, required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--fixed-length", action="store_true",
                   help="fix the samples axis to the checkpoint's n_samples (default: dynamic length)")
    p.add_argument("--fixed-batch", action="store_true", help="fix the batch axis to 1 (default: dynamic batch)")
    p.add_argument("--verify", action="store_true", help="compare onnxruntime with PyTorch after exporting")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest accepted max-abs difference for --verify (default: 1e-4; not applied with --int8)")
    g = p.add_argument_group("int8 (ecglens.quantize)")
    g.add_argument("--int8", type=Path, default=None, metavar="CACHE",
                   help="write an int8 file, calibrated on records of this prepared cache")
    g.add_argument("--int8-folds", type=folds_arg, default=None,
                   help="folds of CACHE to calibrate on, e.g. 1-8 (default: all records)")
    g.add_argument("--int8-records", type=int, default=512, help="records to calibrate on (default: 512)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Export (and optionally verify); returns the exit code."""
    from ..artifact import load_checkpoint
    from ..export import export_onnx, read_onnx_metadata, verify_onnx

    ckpt = load_checkpoint(args.checkpoint)
    if args.int8 is not None:
        return _export_int8(args, ckpt)
    path = export_onnx(ckpt, args.onnx, opset=args.opset, dynamic_batch=not args.fixed_batch,
                       dynamic_length=not args.fixed_length)
    info = read_onnx_metadata(path)["onnx"]
    axes = [name for name, on in (("batch", info["dynamic_batch"]), ("samples", info["dynamic_length"])) if on]
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): {ckpt.model_name}, opset {info['opset']}, "
          f"dynamic axes: {', '.join(axes) or 'none'}")
    print(f"input '{info['input_name']}' {info['input_contract']['shape']} float32 mV -> output "
          f"'{info['output_name']}' [batch, {ckpt.task.num_outputs}] {list(ckpt.task.output_names)}")
    if info.get("note"):
        print(f"note: {info['note']}")
    if not args.verify:
        return 0
    diff = verify_onnx(ckpt, path)
    ok = diff <= args.tolerance
    print(f"verify: max |onnxruntime - torch| = {diff:.3g} ({'ok' if ok else 'FAILED'}, tolerance "
          f"{args.tolerance:g})")
    return 0 if ok else 1


def _export_int8(args: argparse.Namespace, ckpt: Any) -> int:
    """``--int8 CACHE``: export, quantize, report the difference from the float model (with --verify)."""
    import tempfile

    import numpy as np

    from ..artifact import check_contract
    from ..artifact.onnx import INPUT_NAME, onnx_session
    from ..data.cache import open_cache
    from ..export import export_onnx
    from ..quantize import calibration_windows, quantize_onnx, split_records

    cache = open_cache(args.int8)
    check_contract(ckpt.preprocess, cache.preprocess, where=f"at {args.int8}", fix=" and calibrate on that")
    n = ckpt.preprocess.n_samples
    calib, check = split_records(cache, args.int8_folds, args.int8_records, seed=0)
    windows = calibration_windows(cache, n, records=calib)
    with tempfile.TemporaryDirectory(prefix="ecglens-export-") as tmp:
        fp32 = export_onnx(ckpt, Path(tmp) / "model.onnx", opset=args.opset, dynamic_batch=not args.fixed_batch,
                           dynamic_length=not args.fixed_length)
        folds = "all records" if args.int8_folds is None else f"folds {args.int8_folds}"
        note = f"{len(calib)} records of {folds} of {args.int8}, seed 0 ({len(windows)} windows)"
        path = quantize_onnx(fp32, args.onnx, windows, note)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): {ckpt.model_name}, int8, calibrated on {note}")
        if not args.verify:
            return 0
        held_out = calibration_windows(cache, n, records=check)
        outs = [dict(zip([o.name for o in s.get_outputs()], s.run(None, {INPUT_NAME: held_out}), strict=True))
                for s in (onnx_session(fp32), onnx_session(path))]
    print(f"verify on {len(held_out)} windows of other records of {folds} (int8 - float):")
    for name in ckpt.task.output_names:
        diff = np.abs(outs[1][name] - outs[0][name])
        print(f"  {name:<10} mean |diff| {diff.mean():.4g}, max {diff.max():.4g}")
    print("measure the accuracy with `ecglens evaluate FILE.onnx CACHE --folds ...` on validation data.")
    return 0
