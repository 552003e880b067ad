"""``ecglens ensemble``: several trained checkpoints -> one checkpoint that averages their outputs.

Examples::

    ecglens ensemble runs/s0/model.safetensors runs/s1/model.safetensors runs/s2/model.safetensors \\
        --out runs/age_sex_ens.safetensors
    ecglens ensemble a.safetensors b.safetensors --weights 2,1 --out ens.safetensors
    ecglens evaluate runs/age_sex_ens.safetensors cache/ptbxl100 --folds 9 --out runs/age_sex_ens_eval

The members must share the task (with the same label statistics, i.e. the same training folds), the input
contract and the leads; their architectures may differ. The same checkpoint given twice (the same file or
identical weights) is refused; use ``--weights`` to weight a member. Members are named by their run folder
(``runs/s0/model.safetensors`` -> ``s0``) in every message. The ensemble's raw output is the weighted mean of the
members' raw outputs (regression values in the task's units, logits for probabilities); see
``ecglens.models.ensemble``. Every other command takes the written file like any checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..exceptions import ConfigError

__all__ = ["register", "run_ensemble"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ensemble`` to the ``ecglens`` parser."""
    p = sub.add_parser("ensemble", help="combine trained checkpoints into one that averages their outputs",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="two or more .safetensors checkpoints or shipped model names")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the .safetensors file to write")
    p.add_argument("--weights", default=None, metavar="W1,W2,...",
                   help="one non-negative weight per checkpoint (default: equal weights)")
    p.set_defaults(func=run_ensemble)


def _weights(text: str | None, n: int) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--weights must be comma-separated numbers, got {text!r}; e.g. --weights 1,1,2."
        ) from None
    if len(values) != n:
        raise ConfigError(f"--weights has {len(values)} values for {n} checkpoints; give one per checkpoint.")
    return values


def run_ensemble(args: argparse.Namespace) -> int:
    """Write the ensemble checkpoint; returns the exit code."""
    from ..artifact import load_checkpoint
    from ..train.ensemble import ensemble_checkpoints

    path = ensemble_checkpoints(args.checkpoints, args.out, _weights(args.weights, len(args.checkpoints)))
    ckpt = load_checkpoint(path)
    n_params = sum(p.numel() for p in ckpt.model.parameters())
    names = [m["name"] for m in ckpt.model_kwargs["members"]]
    labels = [m["label"] for m in ckpt.config["ensemble"]["members"]]
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): ensemble of {len(names)} ({', '.join(names)}), "
          f"members {', '.join(labels)}, {n_params:,} parameters, outputs {', '.join(ckpt.output_names)}")
    return 0
