"""``ecglens train``: train a model from a YAML config on a prepared cache.

Examples
--------
  ecglens train configs/age_sex.yaml
  ecglens train configs/age_sex.yaml --set optim.lr=3e-4 --set model.kwargs.dropout=0.3 --out runs/age_sex_lr
  ecglens train configs/age_sex.yaml --accelerator gpu --devices 2          # DDP on 2 GPUs
  ecglens train --resume runs/age_sex_lr --set optim.epochs=40             # continue a run (its config.yaml)

The run folder gets config.yaml, model.safetensors (best weights + preprocess + task + config + metrics),
metrics.json, history.csv, curves.png, val_predictions.csv and last.ckpt / best.ckpt (for --resume).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..exceptions import ConfigError

__all__ = ["register", "run_train"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config (age, sex, diagnoses, multi-task)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "config",
        nargs="?",
        type=Path,
        help="YAML config (see configs/); optional with --resume (then RUN_DIR/config.yaml)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=3e-4 (repeatable)",
    )
    p.add_argument("--out", type=Path, help="run folder (default: trainer.out_dir/<name>-<timestamp>)")
    p.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR from last.ckpt"
    )
    p.add_argument("--devices", help="devices per node (int or 'auto'); same as --set trainer.devices=N")
    p.add_argument(
        "--num-nodes", type=int, help="nodes for multi-node DDP; same as --set trainer.num_nodes=N"
    )
    p.add_argument(
        "--accelerator", choices=["cpu", "gpu", "auto"], help="where to train (default: the config)"
    )
    p.set_defaults(func=run_train)


def _cli_overrides(args: argparse.Namespace) -> list[str]:
    """``--devices`` / ``--num-nodes`` / ``--accelerator`` as config overrides (applied after ``--set``)."""
    flags = {
        "trainer.devices": args.devices,
        "trainer.num_nodes": args.num_nodes,
        "trainer.accelerator": args.accelerator,
    }
    return [f"{key}={value}" for key, value in flags.items() if value is not None]


def run_train(args: argparse.Namespace) -> int:
    """Load the config, train, print where everything went; returns the exit code."""
    from ..train.config import load_config
    from ..train.loop import fit

    config_path = args.config
    if config_path is None:
        if args.resume is None:
            raise ConfigError(
                "Pass a config file (e.g. configs/age_sex.yaml), or --resume RUN_DIR to continue a run."
            )
        config_path = args.resume / "config.yaml"
    config = load_config(config_path, [*args.overrides, *_cli_overrides(args)])
    result = fit(config, out=args.out, resume=args.resume)
    print(f"run folder: {result.run_dir}")
    print(f"checkpoint: {result.checkpoint_path}")
    if result.metrics:
        print("validation metrics (best epoch):")
        print(json.dumps(result.metrics, indent=2))
    return 0
