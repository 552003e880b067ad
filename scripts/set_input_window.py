"""Give a checkpoint trained on random crops its crop length as input window (for checkpoints written before
ecglens stored it).

    python scripts/set_input_window.py CHECKPOINT [--seconds S] [--out OUT]

Since the change that added :mod:`ecglens.artifact.windows`, ``ecglens train`` stores the training crop
(``augment.spec.crop_seconds``) as the checkpoint's input contract (``preprocess.seconds``), so that longer
records are predicted in windows of the length the model was trained on. Checkpoints written before that change
carry the cache's duration instead (e.g. 10 s for a model trained on 4 s crops). This script rewrites such a
file with ``preprocess.seconds`` set to the crop of its stored config (or to ``--seconds``). The weights, task
and config are unchanged; the stored validation metrics, computed on the whole records, move to the stored
config's ``metrics_whole_input`` and ``metrics`` is left empty: re-evaluate the file (``ecglens evaluate``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ecglens.artifact import load_checkpoint, save_checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--seconds", type=float, default=None,
                   help="input window in seconds (default: the stored config's augment.spec.crop_seconds)")
    p.add_argument("--out", type=Path, default=None, help="output file (default: rewrite CHECKPOINT)")
    args = p.parse_args()
    ck = load_checkpoint(args.checkpoint)
    if ck.preprocess is None:
        raise SystemExit(f"{args.checkpoint} has no input contract (preprocess); nothing to set.")
    config = dict(ck.config or {})
    augment = config.get("augment") or {}
    crop = (augment.get("spec") or {}).get("crop_seconds") if augment.get("enabled", True) else None
    seconds = args.seconds if args.seconds is not None else crop
    if seconds is None:
        raise SystemExit(f"{args.checkpoint} was not trained on crops (no augment.spec.crop_seconds in its "
                         "config); pass --seconds to set a window anyway.")
    if not 0 < seconds <= ck.preprocess.seconds:
        raise SystemExit(f"--seconds must be in (0, {ck.preprocess.seconds:g}] (the stored contract), got "
                         f"{seconds:g}.")
    pre = dataclasses.replace(ck.preprocess, seconds=float(seconds))
    config["metrics_whole_input"] = dict(ck.metrics)
    out = save_checkpoint(args.out or args.checkpoint, ck.model, ck.model_name, dict(ck.model_kwargs), ck.task,
                          pre, config, {}, in_leads=ck.in_leads)
    print(f"wrote {out}: input window {ck.preprocess.seconds:g} s -> {seconds:g} s ({pre.n_samples} samples)")


if __name__ == "__main__":
    main()
