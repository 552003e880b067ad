"""The paper-style main table of docs/transfer.md from a transfer grid's paired comparisons.

    python scripts/transfer_paper_table.py docs/data/transfer_fair --target MI --metric auroc
    python scripts/transfer_paper_table.py docs/data/transfer_fair_acute --target acute_mi --metric auprc

Reads ``paired.csv`` (each arm's seeds averaged per ECG: the pre-specified analysis) and ``paired_runs.csv``
(seed *j* against seed *j*: single runs) written by ``ecglens experiment transfer ... --figures-only`` and prints
one Markdown table: per target size and arm, the metric and its paired differences [95 % CI] against ``scratch``
and against ``scratch_demographics`` (scratch + age, sex), in both analyses side by side; ``*`` marks a
Holm-adjusted p < 0.05 within its family. Rows: scratch, the two controls, fine-tuned arms, linear probes (each
by pretraining task, then source size). Nothing is recomputed: the numbers are those of the two CSVs.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

_FIRST = ["scratch", "demographics_logreg", "scratch_demographics"]
_TASKS = {"age": 0, "sex": 1, "age_sex": 2}
_STRATEGIES = {"finetune": 0, "lp_ft": 1, "linear_probe": 2}


def _source_rank(source: str) -> float:
    """``srcall`` sorts after every numbered source size."""
    digits = re.sub(r"\D", "", source)
    return float(digits) if digits else float("inf")


def arm_order(arm: str) -> tuple:
    """Sort key: scratch, the controls, then fine-tuning before probing, each by task and source size."""
    if arm in _FIRST:
        return (0, _FIRST.index(arm), 0, 0.0)
    task, source, strategy = (arm.split("/") + ["", "", ""])[:3]
    return (1 + _STRATEGIES.get(strategy, 9), _TASKS.get(task, 9), 0, _source_rank(source))


def _cell(row: pd.Series | None) -> str:
    if row is None:
        return ""
    star = " *" if bool(row["significant"]) else ""
    return f"{row['diff']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]{star}"


def _value(rows: pd.DataFrame, arm: str) -> str:
    own = rows[rows["arm"] == arm]
    if len(own):
        return f"{own['value_arm'].iloc[0]:.3f}"
    ref = rows[rows["reference"] == arm]
    return f"{ref['value_reference'].iloc[0]:.3f}" if len(ref) else ""


def _lookup(rows: pd.DataFrame, arm: str, reference: str) -> pd.Series | None:
    hit = rows[(rows["arm"] == arm) & (rows["reference"] == reference)]
    return hit.iloc[0] if len(hit) else None


def paper_table(averaged: pd.DataFrame, single: pd.DataFrame, target: str, metric: str) -> str:
    """Markdown table of one target and metric; both frames have the columns of ``paired.csv``."""
    name = metric.upper()
    lines = [f"| target ECGs | arm | {name}, seeds averaged | vs scratch | vs scratch + age, sex "
             f"| {name}, single run | vs scratch | vs scratch + age, sex |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    pick = {}
    for label, frame in (("avg", averaged), ("one", single)):
        pick[label] = frame[(frame["target_task"] == target) & (frame["metric"] == metric)]
    if pick["avg"].empty:
        raise SystemExit(f"no {metric} rows for target {target!r} in paired.csv")
    sizes = sorted(pick["avg"]["target_size"].astype(str).unique(),
                   key=lambda s: (s == "all", float(s) if s.isdigit() else 0.0))  # numbers, then "all"
    for size in sizes:
        avg = pick["avg"][pick["avg"]["target_size"] == size]
        one = pick["one"][pick["one"]["target_size"] == size]
        arms = sorted(set(avg["arm"]) | set(avg["reference"]), key=arm_order)
        for arm in arms:
            cells = [str(size), f"`{arm}`"]
            for rows in (avg, one):
                cells.append(_value(rows, arm))
                for reference in ("scratch", "scratch_demographics"):
                    skip = arm == reference or (arm in _FIRST and reference == "scratch_demographics")
                    cells.append("" if skip else _cell(_lookup(rows, arm, reference)))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder with paired.csv and paired_runs.csv")
    parser.add_argument("--target", required=True, help="target task, e.g. MI or acute_mi")
    parser.add_argument("--metric", default="auroc", choices=["auroc", "auprc"])
    args = parser.parse_args(argv)
    paths = [args.folder / "paired.csv", args.folder / "paired_runs.csv"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"missing {', '.join(missing)}: run `ecglens experiment transfer CONFIG --out DIR "
                     "--figures-only` first")
    averaged, single = (pd.read_csv(p, dtype={"target_size": str}) for p in paths)
    print(paper_table(averaged, single, args.target, args.metric))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
