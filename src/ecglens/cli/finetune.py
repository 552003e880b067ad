"""``ecglens finetune``: adapt a pretrained checkpoint to a new task (transfer learning).

Examples
--------
  ecglens finetune runs/age_sex/model.safetensors configs/finetune_mi.yaml
  ecglens finetune age-sex configs/finetune_mi.yaml --strategy linear_probe          # a shipped model by name
  ecglens finetune CKPT configs/finetune_mi.yaml --strategy gradual_unfreeze --set finetune.unfreeze_every=2
  ecglens finetune CKPT configs/finetune_mi.yaml --strategy lp_ft                    # probe first, then finetune
  ecglens finetune CKPT configs/finetune_mi.yaml --leads I,II,V1,V2,V3,V4,V5,V6      # an 8-lead model
  ecglens finetune CKPT configs/finetune_mi.yaml --strategy scratch --set optim.lr=3e-3   # the baseline

Strategies: scratch (same architecture, random init), linear_probe (frozen backbone in eval mode, new head
fitted to convergence by L-BFGS on the frozen features, its L2 strength chosen on the validation folds;
--set finetune.probe_solver=sgd trains it like finetune), finetune (all layers, discriminative learning rates:
lr x lr_decay per group towards the input), gradual_unfreeze (head first, then one more group every
unfreeze_every epochs), lp_ft (linear probe, then fine-tune: the head fitted as linear_probe fits it, then all
layers trained as in finetune, starting from that head).

The config is a training config (the same sections and --set keys as `ecglens train`; the model comes from the
checkpoint) plus a `finetune:` section. The run folder has what `ecglens train` writes -- config.yaml,
model.safetensors (the new task), metrics.json, history.csv, curves.png, val_predictions.csv -- and
finetune.yaml (strategy, options, the pretrained checkpoint).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register", "run_finetune"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a pretrained checkpoint on a new task (transfer learning)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="pretrained checkpoint: a .safetensors file or a shipped model name")
    p.add_argument("config", type=Path, help="YAML config (see configs/finetune_mi.yaml)")
    p.add_argument("--strategy", metavar="NAME",
                   help="scratch, linear_probe, finetune, gradual_unfreeze or lp_ft (= --set finetune.strategy=...)")
    p.add_argument("--leads", help="comma-separated leads to fine-tune on, e.g. I,II,V1,V2,V3,V4,V5,V6 or II")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=3e-4 or finetune.lr_decay=0.3 "
                        "(repeatable)")
    p.add_argument("--out", type=Path, help="run folder (default: trainer.out_dir/<name>-<timestamp>)")
    p.add_argument("--devices", help="devices per node (int or 'auto'); same as --set trainer.devices=N")
    p.add_argument("--accelerator", choices=["cpu", "gpu", "auto"],
                   help="where to train (default: the config)")
    p.set_defaults(func=run_finetune)


def _cli_overrides(args: argparse.Namespace) -> list[str]:
    """The convenience flags as config overrides (applied after --set)."""
    flags = {"finetune.strategy": args.strategy, "trainer.devices": args.devices,
             "trainer.accelerator": args.accelerator,
             "finetune.leads": None if args.leads is None else "[" + args.leads + "]"}
    return [f"{key}={value}" for key, value in flags.items() if value is not None]


def run_finetune(args: argparse.Namespace) -> int:
    """Load the config, fine-tune, print where everything went; returns the exit code."""
    from ..train.finetune import finetune, load_finetune_config

    config, settings = load_finetune_config(args.config, [*args.overrides, *_cli_overrides(args)])
    result = finetune(args.checkpoint, config, settings, out=args.out)
    print(f"strategy:   {settings.strategy}")
    print(f"run folder: {result.run_dir}")
    print(f"checkpoint: {result.checkpoint_path}")
    if result.metrics:
        what = "the selected L2 strength" if result.metrics.get("probe_l2") is not None else "the best epoch"
        print(f"validation metrics ({what}):")
        print(json.dumps(result.metrics, indent=2))
    return 0
