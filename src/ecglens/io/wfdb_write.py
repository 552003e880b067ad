"""Writing ECGs as WFDB records (format 16, one ``.hea`` / ``.dat`` pair per record), readable by :func:`read_ecg`.

Used to turn simulated cohorts into files a hospital pipeline would read (:mod:`ecglens.experiments.study`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..leads import CANONICAL_LEADS

__all__ = ["write_wfdb_records"]


def write_wfdb_records(signals: np.ndarray, fs: float, record_ids: Sequence[str], folder: str | Path,
                       leads: Sequence[str] = CANONICAL_LEADS, ages: Sequence[float] | None = None,
                       sexes: Sequence[float] | None = None, progress: bool = False) -> list[str]:
    """Write ECGs ``signals`` [n_records, n_leads, n_samples] (mV at ``fs`` Hz) as WFDB records.

    Format 16, 1000 adu/mV (1 uV resolution; values beyond +-32.767 mV are clipped), one ``<id>.hea`` /
    ``<id>.dat`` pair per record in ``folder``; ``ages`` / ``sexes`` (1 female, 0 male) become ``# Age:`` /
    ``# Sex:`` header comments. Returns the record paths without suffix (what ``read_ecg`` takes).
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rid in enumerate(tqdm(record_ids, desc="write WFDB", unit="rec", disable=not progress)):
        digital = np.clip(np.round(np.asarray(signals[i], dtype=np.float64).T * 1000.0), -32767, 32767).astype("<i2")
        digital.tofile(folder / f"{rid}.dat")
        checks = ((digital.astype(np.int64).sum(axis=0) + 32768) % 65536) - 32768
        lines = [f"{rid} {len(leads)} {fs:g} {digital.shape[0]}"]
        lines += [f"{rid}.dat 16 1000/mV 16 0 {digital[0, j]} {checks[j]} 0 {lead}" for j, lead in enumerate(leads)]
        if ages is not None:
            lines.append(f"# Age: {ages[i]:.0f}")
        if sexes is not None and np.isfinite(sexes[i]):
            lines.append(f"# Sex: {'Female' if sexes[i] == 1 else 'Male'}")
        (folder / f"{rid}.hea").write_text("\n".join(lines) + "\n")
        paths.append(str(folder / rid))
    return paths
