"""``ecglens export``: a checkpoint -> one self-describing ONNX file (optionally verified against PyTorch).

Examples::

    ecglens export age-sex --onnx age-sex.onnx --verify
    ecglens export runs/mi/best.safetensors --onnx mi.onnx --opset 18 --fixed-length

The file takes ``ecg`` (float32 ``[batch, leads, samples]``, mV at the checkpoint's sampling rate) and returns
one ``[batch]`` output per prediction in user units, named as ``ecglens predict`` names its columns (``age`` in
years, ``age_std``, ``p_female``, ``p_MI``, ...: the task's postprocessing is in the graph), besides ``raw``
(``[batch, num_outputs]``, internal units); its metadata holds the checkpoint's input contract and task, so
``ecglens serve --model FILE.onnx`` and ``Predictor.from_pretrained(FILE)`` use it without
the PyTorch weights. ``--verify`` compares onnxruntime with PyTorch on random input at the contract length and,
for a length-dynamic file, at 1.5x that length; the exit code is 1 when the largest difference exceeds
``--tolerance``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
                   help="largest accepted max-abs difference for --verify (default: 1e-4)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Export (and optionally verify); returns the exit code."""
    from ..artifact import load_checkpoint
    from ..export import export_onnx, read_onnx_metadata, verify_onnx

    ckpt = load_checkpoint(args.checkpoint)
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
