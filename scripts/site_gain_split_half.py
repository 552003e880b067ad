"""Is a site gain estimated on some of a site's ECGs as good on the others? A split-half check.

The records of a prepared cache (e.g. LUDB) are split by position into two halves (even / odd rows). For each
half, the model is scored three ways: as is, with the site gain estimated on the *other* half (out of sample:
what a user gets who estimates the gain on part of an archive), and with the gain estimated on the half itself
(what ``--site-gain auto`` does). No label is used to estimate a gain; labels only score.

    python scripts/site_gain_split_half.py age-sex cache/ludb100 --out eval/ludb_site_gain_split_half_age-sex.json

Prints age MAE (years) and sex AUROC per half and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ecglens.artifact import load_checkpoint
from ecglens.data.cache import open_cache
from ecglens.evaluate.runner import predict_cache
from ecglens.predict.site import estimate_site_gain, signals_rms


def _scores(ck, cache, idx: np.ndarray, gain) -> dict[str, float]:
    out = predict_cache(ck, cache.signals, idx, progress=False, site_gain=gain)
    meta = cache.meta.iloc[idx]
    age, sex = meta["age"].to_numpy(float), meta["sex"].to_numpy(float)
    ok = np.isfinite(age)
    known = np.isfinite(sex)
    return {"age_mae": float(np.mean(np.abs(out["age"][ok] - age[ok]))),
            "sex_auroc": float(roc_auc_score(sex[known], out["p_female"][known]))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="shipped model name or checkpoint with reference amplitudes")
    p.add_argument("cache", type=Path, help="prepared cache of the site (ecglens prepare)")
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    ck = load_checkpoint(args.model)
    cache = open_cache(args.cache)
    reference, leads = ck.calibration.lead_rms_mv, ck.preprocess.leads
    rows = np.arange(len(cache.meta))
    halves = {"even": rows[rows % 2 == 0], "odd": rows[rows % 2 == 1]}
    rms = {name: signals_rms(cache.signals, idx) for name, idx in halves.items()}
    results = {}
    print(f"{'half':<6} {'n':>4} {'scoring':<22} {'age MAE':>8} {'sex AUROC':>10}")
    for name, idx in halves.items():
        other = "odd" if name == "even" else "even"
        ways = {"as is": None, f"gain from {other} half": estimate_site_gain(rms[other], reference, leads),
                "gain from this half": estimate_site_gain(rms[name], reference, leads)}
        results[name] = {"n": int(idx.size)}
        for way, gain in ways.items():
            s = _scores(ck, cache, idx, gain)
            results[name][way] = {**s, "gains": None if gain is None else gain.to_dict()["gains"]}
            print(f"{name:<6} {idx.size:>4} {way:<22} {s['age_mae']:>8.2f} {s['sex_auroc']:>10.3f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": args.model, "cache": str(args.cache), "halves": results}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
