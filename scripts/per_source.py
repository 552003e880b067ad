"""Per-source accuracy of ``ecglens evaluate`` predictions: the folder each record came from as its source.

For a cache prepared from a folder of sub-folders (one per database, as the fixture check in the README), prints
n, age MAE (years) and sex accuracy at 0.5 for each sub-folder, from ``predictions.csv`` and the cache's
``meta.csv``. Tiny sources give descriptive numbers, not estimates.

Example::

    python scripts/per_source.py eval_fixtures/predictions.csv cache/fixtures100/meta.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def per_source(predictions: Path, meta: Path) -> pd.DataFrame:
    """One row per source folder: ``n``, ``age_mae``, ``sex_accuracy``."""
    p = pd.read_csv(predictions, dtype={"record_id": str})
    m = pd.read_csv(meta, dtype={"record_id": str})
    m["source_folder"] = m["path"].map(lambda s: Path(str(s)).parent.name)
    t = p.merge(m[["record_id", "source_folder"]], on="record_id", how="left")
    rows = []
    for source, g in t.groupby("source_folder"):
        rows.append({"source": source, "n": len(g),
                     "age_mae": float(np.mean(np.abs(g["age"] - g["true_age"]))),
                     "sex_accuracy": float(np.mean((g["p_female"] >= 0.5) == (g["true_sex"] == 1)))})
    all_ = {"source": "all", "n": len(t), "age_mae": float(np.mean(np.abs(t["age"] - t["true_age"]))),
            "sex_accuracy": float(np.mean((t["p_female"] >= 0.5) == (t["true_sex"] == 1)))}
    return pd.DataFrame(rows + [all_])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("predictions", type=Path)
    ap.add_argument("meta", type=Path)
    args = ap.parse_args()
    print(per_source(args.predictions, args.meta).to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
