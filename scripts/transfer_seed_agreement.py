"""How much the seeds of each arm of a transfer grid agree: the mean Spearman correlation between the seeds'
test predictions, per (model, target, size, arm). Low agreement means averaging the seeds helps that arm more
(docs/transfer.md, Results). Usage::

    python scripts/transfer_seed_agreement.py runs/transfer_fair
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ecglens.experiments.transfer import read_results
from ecglens.experiments.transfer_paired import _run_predictions


def main(argv: list[str] | None = None) -> int:
    out = Path((argv if argv is not None else sys.argv[1:])[0])
    for key, seeds in sorted(_run_predictions(read_results(out), out).items()):
        if len(seeds) < 2:
            continue
        wide = pd.concat([t.set_index("record_id")["p"].rename(s) for s, t in seeds.items()], axis=1)
        rho = wide.rank().corr().to_numpy()
        print(" ".join(map(str, key)), f"{rho[np.triu_indices(len(rho), 1)].mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
