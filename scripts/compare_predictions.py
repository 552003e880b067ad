"""Paired comparison of two models on the same records: age MAE and sex AUROC differences with bootstrap CIs.

Reads two ``predictions.csv`` files written by ``ecglens evaluate`` on the same data (``record_id``,
``true_age``, ``true_sex``, ``age``, ``p_female``) and prints, for A - B, the difference on all shared records
with its 95 % paired percentile-bootstrap interval (records resampled jointly; patients when ``--groups`` names
the cache's meta.csv). Writes JSON with ``--out``.

Example::

    python scripts/compare_predictions.py runs/age_sex_single/eval_fold9/predictions.csv \\
        runs/age_sex_ens_fold9/predictions.csv --names single,ensemble --out runs/single_vs_ensemble.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ecglens.evaluate.bootstrap import paired_bootstrap_diff
from ecglens.jsonutil import json_ready


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(y - p)))


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


def compare(path_a: Path, path_b: Path, n_boot: int = 2000, seed: int = 0,
            meta: Path | None = None) -> dict[str, dict[str, float]]:
    """Paired differences A - B of age MAE and sex AUROC on the records both tables hold."""
    a = pd.read_csv(path_a, dtype={"record_id": str}).set_index("record_id")
    b = pd.read_csv(path_b, dtype={"record_id": str}).set_index("record_id")
    shared = a.index.intersection(b.index)
    a, b = a.loc[shared], b.loc[shared]
    groups = None
    if meta is not None:
        m = pd.read_csv(meta, dtype={"record_id": str, "patient_id": str}).set_index("record_id")
        groups = m["patient_id"].reindex(shared).fillna(pd.Series(shared, index=shared)).to_numpy()
    out = {}
    if "age" in a and "age" in b:
        out["age_mae"] = paired_bootstrap_diff(_mae, a["true_age"], a["age"], b["age"], n_boot=n_boot, seed=seed,
                                               groups=groups)
    if "p_female" in a and "p_female" in b:
        out["sex_auroc"] = paired_bootstrap_diff(_auroc, a["true_sex"], a["p_female"], b["p_female"],
                                                 n_boot=n_boot, seed=seed, groups=groups)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--names", default="A,B", help="names of the two models, comma-separated")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--meta", type=Path, default=None, help="cache meta.csv: resample patients, not records")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    name_a, name_b = args.names.split(",")
    result = compare(args.a, args.b, args.n_boot, meta=args.meta)
    print(f"{'metric':<10} {name_a:>10} {name_b:>10}   {name_a} - {name_b} [95 % paired CI]      n")
    for key, r in result.items():
        print(f"{key:<10} {r['value_a']:>10.3f} {r['value_b']:>10.3f}   {r['diff']:+.3f} "
              f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]   {r['n']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(json_ready({"a": str(args.a), "b": str(args.b), "names": [name_a, name_b],
                                                   **result}), indent=2))


if __name__ == "__main__":
    main()
