"""How many 4-s windows a 10-s record needs: a shipped age + sex model with 3 (the default), 2 and 1 windows.

A model trained on 4-s crops predicts a 10-s record as the mean over windows covering it: 3 windows (0-4, 3-7 and
6-10 s) by default, 2 (0-4 and 6-10 s: 2 s unseen) with ``--max-windows 2``, the centre 4 s with ``--max-windows 1``.
The network's time is proportional to the windows. This script predicts the PTB-XL records of ``--folds`` from
their WFDB files (``ecglens predict``'s pipeline: :meth:`ecglens.predict.Predictor.predict_paths`) once per window
count, scores age MAE and sex AUROC against ``labels.csv`` (age above 89 counted as 90, as in training) and prints
the paired differences from the first count with 95 % bootstrap intervals (records resampled;
``scripts/compare_predictions.py``). Writes the prediction tables and a JSON of the differences to ``--out``.

Example (docs/results.md, "Predicting in windows of the training crop")::

    python scripts/window_count_check.py ~/ptbxl --model age-sex --folds 9 --windows 3 2 1 --out eval/windows_f9
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_predictions import compare  # noqa: E402

from ecglens.jsonutil import json_ready  # noqa: E402
from ecglens.predict import Predictor  # noqa: E402


def link_fold(ptbxl: Path, folds: list[int], folder: Path) -> pd.DataFrame:
    """Links to the records of ``folds`` in ``folder``; their labels (record_id, true_age, true_sex)."""
    labels = pd.read_csv(ptbxl / "labels.csv")
    labels = labels[labels["strat_fold"].isin(folds)]
    for rel in labels["filename_lr"]:
        for suffix in (".hea", ".dat"):
            (folder / (Path(rel).name + suffix)).symlink_to(ptbxl / (rel + suffix))
    return pd.DataFrame({"record_id": [Path(r).name for r in labels["filename_lr"]],
                         "true_age": labels["age"].clip(upper=90).to_numpy(),
                         "true_sex": labels["sex"].to_numpy()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ptbxl", type=Path, help="PTB-XL folder with labels.csv and records100/")
    ap.add_argument("--model", default="age-sex")
    ap.add_argument("--folds", type=int, nargs="+", default=[9])
    ap.add_argument("--windows", type=int, nargs="+", default=[3, 2, 1], help="window counts; the first is the "
                    "reference")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        truth = link_fold(args.ptbxl.expanduser(), args.folds, Path(tmp))
        for w in args.windows:
            table = Predictor(args.model, max_windows=w).predict_paths(tmp, progress=False)
            table = table[table["status"] == "ok"].assign(record_id=lambda t: t["record"].map(lambda r: Path(r).name))
            table = truth.merge(table[["record_id", "age", "p_female", "n_windows"]], on="record_id")
            tables[w] = args.out / f"predictions_w{w}.csv"
            table.to_csv(tables[w], index=False)
    ref = args.windows[0]
    result = {}
    print(f"{args.model}, folds {args.folds}: differences from {ref} windows [95 % paired CI]")
    for w in args.windows[1:]:
        result[f"{w}_vs_{ref}"] = diff = compare(tables[w], tables[ref], n_boot=args.n_boot)
        for key, r in diff.items():
            print(f"  {w} windows  {key:<10} {r['value_a']:.4f} vs {r['value_b']:.4f}: {r['diff']:+.4f} "
                  f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]  n={r['n']}")
    (args.out / "windows.json").write_text(json.dumps(json_ready({"model": args.model, "folds": args.folds,
                                                                   **result}), indent=2))


if __name__ == "__main__":
    main()
