"""Check the ``linear_probe`` runs of a transfer grid against a logistic regression on the same frozen features.

    python scripts/linear_probe_check.py runs/transfer_cnn_axes [--cache cache/ptbxl100]

For every ``linear_probe`` row of ``OUT/results.csv`` this loads the pretrained network of the run
(``OUT/<pretrain_dir>/model.safetensors``), computes its frozen features (``forward_features``, averaged over the
windows of the network's input length, as evaluation does) for the run's training ECGs (``splits.csv``) and the
test folds, fits scikit-learn's ``LogisticRegressionCV`` (L2, C chosen by 5-fold cross-validated AUROC on the
training ECGs only) and prints its test AUROC beside the run's. A large gap means the probe's head was not
trained to convergence by the grid's budget; the features themselves are what the logistic regression measures.
Binary target tasks only (the grid's ``target.task``).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score

from ecglens.artifact import load_checkpoint
from ecglens.data.cache import open_cache
from ecglens.train.probe import window_features


def frozen_features(model: torch.nn.Module, signals: np.ndarray, rows: np.ndarray, width: int | None) -> np.ndarray:
    """``forward_features`` of ``signals[rows]``, averaged over windows of ``width`` samples: ``(N, F)``."""
    return window_features(model, signals, rows, width).mean(axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output folder of `ecglens experiment transfer`")
    parser.add_argument("--cache", type=Path, default=Path("cache/ptbxl100"), help="the grid's cache")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = pd.read_csv(args.out / "results.csv")
    probes = results[results["strategy"] == "linear_probe"].sort_values("run_key")
    if probes.empty:
        parser.error(f"no linear_probe rows in {args.out / 'results.csv'}")
    cache = open_cache(args.cache)
    meta = cache.meta
    rows = []
    for pretrain_dir, group in probes.groupby("pretrain_dir"):
        ckpt = load_checkpoint(args.out / pretrain_dir / "model.safetensors")
        pre = ckpt.preprocess
        width = pre.n_samples if pre is not None and pre.n_samples < cache.signals.shape[-1] else None
        test_folds = [int(f) for f in str(group["test_folds"].iloc[0]).split()]
        test = np.flatnonzero(meta["fold"].isin(test_folds).to_numpy() & meta[group["target_task"].iloc[0]].notna())
        f_test = frozen_features(ckpt.model, cache.signals, test, width)
        for _, run in group.iterrows():
            label = meta[run["target_task"]].to_numpy()
            splits = pd.read_csv(args.out / run["run_dir"] / "splits.csv")
            train = splits.loc[splits["split"] == "train", "row"].to_numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                clf = LogisticRegressionCV(Cs=10, cv=5, scoring="roc_auc", max_iter=5000)
                clf.fit(frozen_features(ckpt.model, cache.signals, train, width), label[train].astype(int))
            auroc = roc_auc_score(label[test].astype(int), clf.predict_proba(f_test)[:, 1])
            rows.append({"run_key": run["run_key"], "n_target": int(run["n_target"]),
                         "linear_probe_auroc": round(float(run["test_auroc"]), 3),
                         "logistic_regression_auroc": round(float(auroc), 3)})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
