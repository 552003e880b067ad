"""Write the example ECGs that ship with ecglens (``src/ecglens/examples/``).

They are *simulated* with NeuroKit2 (``ecg_simulate(method="multileads")``) — no real patient data — and written
as WFDB records with ``wfdb.wrsamp``, with age/sex header comments in the PhysioNet-challenge spelling. They
exercise the read -> harmonise -> predict path on different sampling rates, durations and lead sets:

* ``sim_500hz_12lead``  — 12 leads, 500 Hz, 10 s, heart rate 68 bpm
* ``sim_400hz_15s``     — 12 leads, 400 Hz, 15 s (CODE-15%-like rate; longer than the 10 s models use)
* ``sim_250hz_8lead``   — 8 independent leads (I, II, V1-V6), 250 Hz, 10 s, 95 bpm: III/aVR/aVL/aVF are derived

Run: ``python scripts/make_examples.py``. Deterministic for a given NeuroKit2 / NumPy version (fixed
``random_state``); other versions give slightly different, equally valid signals, so a re-run may change the
committed files (and the demo's printed predictions).
"""

from __future__ import annotations

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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fs, seconds, hr, leads, age, sex, seed in SPECS:
        df = nk.ecg_simulate(duration=seconds, sampling_rate=fs, heart_rate=hr, method="multileads",
                             random_state=seed)
        if leads is not None:
            df = df[leads]
        sig = np.asarray(df, dtype=np.float64)
        wfdb.wrsamp(
            name, fs=fs, units=["mV"] * sig.shape[1], sig_name=list(df.columns), p_signal=sig,
            fmt=["16"] * sig.shape[1], adc_gain=[1000.0] * sig.shape[1], baseline=[0] * sig.shape[1],
            comments=[f"Age: {age}", f"Sex: {sex}", "Source: simulated with neurokit2 (not a real patient)"],
            write_dir=str(OUT),
        )
        print(f"wrote {OUT / name}.hea/.dat  ({sig.shape[1]} leads, {fs} Hz, {seconds} s)")


if __name__ == "__main__":
    main()
