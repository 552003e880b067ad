"""Write the example ECGs that ship with ecglens (``src/ecglens/examples/``).

They are *simulated* — no real patient data — and written as WFDB records with ``wfdb.wrsamp``, with age/sex
header comments in the PhysioNet-challenge spelling. They exercise the read -> harmonise -> predict path on
different sampling rates, durations and lead sets:

* ``sim_500hz_12lead``  — 12 leads, 500 Hz, 10 s, heart rate 68 bpm
* ``sim_400hz_15s``     — 12 leads, 400 Hz, 15 s (CODE-15%-like rate; longer than the 10 s models use)
* ``sim_250hz_8lead``   — 8 independent leads (I, II, V1-V6), 250 Hz, 10 s, 95 bpm: III/aVR/aVL/aVF are derived

How (a heart vector projected on the leads, so every lead has a plausible QRS/T ratio and the axis is normal):

1. NeuroKit2's ECGSYN model (McSharry et al. 2003, ``nk.ecg_simulate(method="ecgsyn")``) gives the time course
   of each of its five waves P, Q, R, S, T alone (its ``ai`` with one non-zero entry), all on the same RR
   series (same ``random_state``). Its ``z`` is linear in ``ai``, so each wave is a unit bump once NeuroKit2's
   per-signal min-max scaling is undone (baseline = median, peak = 1).
2. Each wave gets a vector of a normal adult vectorcardiogram (Frank X left, Y inferior, Z posterior, mV):
   :data:`WAVE_VECTORS` — QRS axis about +45 deg, T concordant with it and a third of its size.
3. The inverse Dower transform (Dower et al. 1980; :data:`DOWER`) projects the heart vector on I, II, V1-V6;
   III, aVR, aVL, aVF follow from Einthoven's and Goldberger's equations. 10 uV of white noise is added.

NeuroKit2's own ``method="multileads"`` scales every lead to the same -0.4..1.2 mV range and its lead factors
make T waves taller than the QRS in II and V4-V6; hence this construction.

Run: ``python scripts/make_examples.py [--png FOLDER]`` (``--png`` also draws each record on ECG paper with
:func:`ecglens.plot.plot_ecg`, to look at before committing). Deterministic for a given NeuroKit2 / NumPy
version (fixed ``random_state``); other versions give slightly different, equally valid signals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import neurokit2 as nk
import numpy as np
import wfdb

OUT = Path(__file__).resolve().parents[1] / "src" / "ecglens" / "examples"
SPECS = [
    # name, fs, seconds, heart_rate, leads, age, sex, seed
    ("sim_500hz_12lead", 500, 10, 68, None, 63, "Female", 1),
    ("sim_400hz_15s", 400, 15, 74, None, 45, "Male", 2),
    ("sim_250hz_8lead", 250, 10, 95, ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], 71, "Male", 3),
]
#: ECGSYN's default wave amplitudes (P, Q, R, S, T); only their signs matter here (every wave is a bump)
ECGSYN_AI = np.array([1.2, -5.0, 30.0, -7.5, 0.75])
#: heart vector of each wave at its peak, Frank axes (X left, Y inferior, Z posterior), mV: septal Q anterior and
#: rightward, R left-inferior-slightly posterior, terminal S posterior-superior-rightward, T left-inferior-anterior
WAVE_VECTORS = np.array([
    [0.08, 0.15, 0.00],    # P
    [-0.10, 0.00, -0.15],  # Q
    [1.30, 0.80, 0.60],    # R
    [-0.25, -0.10, 0.50],  # S
    [0.40, 0.25, -0.25],   # T
])
#: Dower's transform, rows V1..V6, I, II: lead = X, Y, Z weighted (Dower, Machado & Osborne 1980)
DOWER = np.array([
    [-0.515, 0.157, -0.917], [0.044, 0.164, -1.387], [0.882, 0.098, -1.277], [1.213, 0.127, -0.601],
    [1.125, 0.127, -0.086], [0.831, 0.076, 0.230], [0.632, -0.235, 0.059], [0.235, 1.066, -0.132],
])
LEAD_IN, LEAD_OUT = 3, 1  # s simulated before / after each record and dropped
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def wave_shapes(fs: int, seconds: int, heart_rate: int, seed: int) -> np.ndarray:
    """Unit bumps ``[5, n_samples]`` of P, Q, R, S, T on one RR series (ECGSYN, NeuroKit2's scaling undone).

    ECGSYN starts off its baseline and relaxes with a 1 s time constant, so :data:`LEAD_IN` seconds more are
    simulated (and :data:`LEAD_OUT` after, so the last beat is whole) and dropped.
    """
    shapes = []
    for k in range(5):
        ai = np.where(np.arange(5) == k, np.abs(ECGSYN_AI), 0.0)
        z = np.asarray(nk.ecg_simulate(duration=seconds + LEAD_IN + LEAD_OUT, sampling_rate=fs,
                                       heart_rate=heart_rate, method="ecgsyn", noise=0, random_state=seed, ai=ai),
                       dtype=np.float64)[LEAD_IN * fs:(LEAD_IN + seconds) * fs]
        z = z - np.median(z)
        shapes.append(z / z.max())
    return np.stack(shapes)


def simulate(fs: int, seconds: int, heart_rate: int, seed: int) -> np.ndarray:
    """12 leads ``[12, n_samples]`` in mV, in :data:`LEADS` order."""
    vcg = WAVE_VECTORS.T @ wave_shapes(fs, seconds, heart_rate, seed)  # [3, n] X, Y, Z in mV
    v1_to_v6, (lead_i, lead_ii) = (DOWER @ vcg)[:6], (DOWER @ vcg)[6:]
    limb = [lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2]
    noise = np.random.default_rng(seed).normal(0.0, 0.01, (12, vcg.shape[1]))
    return np.vstack([np.stack(limb), v1_to_v6]) + noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, help="also draw each record on ECG paper into this folder")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fs, seconds, hr, leads, age, sex, seed in SPECS:
        names = leads or LEADS
        sig = simulate(fs, seconds, hr, seed)[[LEADS.index(lead) for lead in names]].T
        wfdb.wrsamp(
            name, fs=fs, units=["mV"] * sig.shape[1], sig_name=list(names), p_signal=sig,
            fmt=["16"] * sig.shape[1], adc_gain=[1000.0] * sig.shape[1], baseline=[0] * sig.shape[1],
            comments=[f"Age: {age}", f"Sex: {sex}", "Source: simulated (ECGSYN + Dower heart vector; not a patient)"],
            write_dir=str(OUT),
        )
        print(f"wrote {OUT / name}.hea/.dat  ({sig.shape[1]} leads, {fs} Hz, {seconds} s)")
        if args.png is not None:
            import ecglens
            from ecglens.plot import plot_ecg

            args.png.mkdir(parents=True, exist_ok=True)
            plot_ecg(ecglens.read_ecg(OUT / f"{name}.hea"), path=args.png / f"{name}.png", dpi=100)


if __name__ == "__main__":
    main()
