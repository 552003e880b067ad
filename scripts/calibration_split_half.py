"""Out-of-sample check of a calibration: fit on one half of an evaluation, measure on the other, both ways.

Reads the ``predictions.csv`` of ``ecglens evaluate`` (raw outputs ``age_std_raw`` / ``p_female_raw``, truths
``true_age`` / ``true_sex``), splits its rows into even and odd rows (A / B), fits the calibration on one half
(``ecglens.artifact.calibration.fit_calibration``) and prints, on the other: coverage of ``age_std`` at 1 and
1.96 SD, the ECE of ``p_female`` and the correlation of the ECG-age gap with age, raw -> calibrated.

    python scripts/calibration_split_half.py eval/age_sex_single_last_fold9/predictions.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ecglens.artifact.calibration import coverage, fit_calibration
from ecglens.evaluate.metrics import calibration


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("predictions", type=Path)
    d = pd.read_csv(p.parse_args().predictions)
    halves = {"A": d.iloc[::2], "B": d.iloc[1::2]}
    for fit, test in (("A", "B"), ("B", "A")):
        f, t = halves[fit], halves[test]
        cal = fit_calibration({"age": f.age.to_numpy(), "age_std": f.age_std_raw.to_numpy(),
                               "p_female": f.p_female_raw.to_numpy()},
                              pd.DataFrame({"age": f.true_age, "sex": f.true_sex}), folds=[fit])
        out = cal.apply({"age": t.age.to_numpy(), "age_std": t.age_std_raw.to_numpy(),
                         "p_female": t.p_female_raw.to_numpy()}, t.true_age.to_numpy())

        def cov(sd, z, t=t):
            return 100 * coverage(t.true_age, t.age, sd, z)

        def ece(prob, t=t):
            return calibration(t.true_sex, prob)["ece"]

        def r(gap, t=t):
            return np.corrcoef(gap, t.true_age)[0, 1]

        print(f"half {fit} -> {test} (n={len(t)}): 1 SD {cov(t.age_std_raw, 1):.1f} -> {cov(out['age_std'], 1):.1f} %; "
              f"1.96 SD {cov(t.age_std_raw, 1.96):.1f} -> {cov(out['age_std'], 1.96):.1f} %; "
              f"ECE {ece(t.p_female_raw):.3f} -> {ece(out['p_female']):.3f}; "
              f"r(gap, age) {r(t.age - t.true_age):+.2f} -> {r(out['age_gap_corrected']):+.2f}")


if __name__ == "__main__":
    main()
