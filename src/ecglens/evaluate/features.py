"""Classic ECG features per record (heart rate, HRV, intervals, T-wave amplitude) and their associations.

These features answer "which ECG properties does a model's estimate follow?": a deep model's output (e.g.
ECG-derived hemoglobin or ECG-age) is correlated with each feature (:func:`feature_associations`) and the
correlations are drawn as a heatmap (:func:`plot_associations`).

Features (one lead, lead II by default; NeuroKit2 underneath, ``fs`` always explicit)
-------------------------------------------------------------------------------------
===================  ====  =================================================================================
column               unit  definition
===================  ====  =================================================================================
``heart_rate``       bpm   60 / mean R-R interval (R peaks: ``nk.ecg_findpeaks`` on ``nk.ecg_clean``)
``rr_mean_ms``       ms    mean R-R interval
``sdnn_ms``          ms    SD of the R-R intervals (ddof 1); needs >= 4 beats
``rmssd_ms``         ms    root mean square of successive R-R differences; needs >= 4 beats
``pr_ms``            ms    P onset -> QRS onset, median over beats (``method="dwt"`` only)
``qrs_ms``           ms    QRS onset -> QRS offset, median over beats (``"dwt"`` only)
``qt_ms``            ms    QRS onset -> T offset, median over beats (``"dwt"`` only)
``qtc_ms``           ms    Bazett: QT / sqrt(mean R-R in s) (``"dwt"`` only)
``t_amplitude_mv``   mV    signed T-wave amplitude, median over beats: the value of largest magnitude in
                           [R + 100 ms, R + min(0.6 RR, 500 ms)] minus the isoelectric level (median of
                           [R - 80 ms, R - 50 ms], the PR segment); negative = inverted T
``n_beats``          -     number of R peaks found
===================  ====  =================================================================================

HRV from a 10-s ECG is *ultra-short-term*: SDNN and RMSSD from 8-15 beats have large sampling error and are
not comparable with the 5-minute (or 24-hour) norms of the HRV guidelines (Task Force of the ESC/NASPE 1996).
Use them as relative, within-study covariates only. No ectopic-beat correction is made.

Methods and speed
-----------------
``method="dwt"`` adds wave delineation (``nk.ecg_delineate(method="dwt")``) for PR, QRS and QT; it costs about
0.1 s per 10-s record at 100 Hz on one CPU core (2,000 records: about 3.5 min on one core, under 2 min with two
workers). ``method="peaks"`` is the cheap fallback: R peaks and the T-amplitude window only (about 5 ms per
record: 2,000 records in about 10 s), with the interval columns NaN. The study pipelines use ``"dwt"`` on the
evaluated split and ``"peaks"`` in their quick mode.

Failures never raise: a record whose features cannot be computed (flat or NaN signal, fewer than 3 R peaks,
a NeuroKit2 error) gets NaN and the reason in ``feature_error``; :func:`extract_features` counts them in
``attrs["extract_features"]``. Delineation that fails on an otherwise fine record leaves HR / HRV / T amplitude
in place and notes the failure.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._optional import require
from ..exceptions import ConfigError
from ..leads import CANONICAL_LEADS, normalize_lead_name
from .figures import new_figure

__all__ = [
    "FEATURE_COLUMNS",
    "FEATURE_METHODS",
    "FEATURE_UNITS",
    "association_grid",
    "extract_features",
    "feature_associations",
    "plot_associations",
    "record_features",
]

#: what needs neurokit2, for the missing-dependency message
_FEATURE = "ECG feature extraction"

#: feature column -> unit
FEATURE_UNITS: dict[str, str] = {
    "heart_rate": "bpm",
    "rr_mean_ms": "ms",
    "sdnn_ms": "ms",
    "rmssd_ms": "ms",
    "pr_ms": "ms",
    "qrs_ms": "ms",
    "qt_ms": "ms",
    "qtc_ms": "ms",
    "t_amplitude_mv": "mV",
    "n_beats": "",
}
FEATURE_COLUMNS: tuple[str, ...] = tuple(FEATURE_UNITS)
#: plausible per-beat intervals (ms); values outside are delineation errors and are ignored
_INTERVAL_RANGES: dict[str, tuple[float, float]] = {"pr_ms": (60, 400), "qrs_ms": (40, 250), "qt_ms": (200, 700)}
_MIN_BEATS, _MIN_BEATS_HRV = 3, 4
_MIN_PEAK_TO_PEAK_MV = 0.05
#: plausible mean heart rate (bpm) and largest R-R coefficient of variation; beyond them the "R peaks" are noise
_HR_RANGE = (25.0, 250.0)
_MAX_RR_CV = 0.5


class _FeatureFailure(Exception):
    """A record whose features cannot be computed (caught; becomes NaN + reason)."""


# ---------------------------------------------------------------------------------------------- per record
def _empty() -> dict[str, float]:
    return {c: np.nan for c in FEATURE_COLUMNS}


def _check_signal(x: np.ndarray, fs: float) -> np.ndarray:
    if x.ndim != 1:
        raise _FeatureFailure(f"expected one lead (1-D), got shape {x.shape}")
    finite = np.isfinite(x)
    if finite.mean() < 0.9:
        raise _FeatureFailure(f"{100 * (1 - finite.mean()):.0f}% of the samples are NaN/inf")
    if x.size < 3 * fs:
        raise _FeatureFailure(f"only {x.size / fs:.1f} s of signal (need >= 3 s)")
    if not finite.all():
        idx = np.arange(x.size)
        x = np.interp(idx, idx[finite], x[finite])
    if np.ptp(x) < _MIN_PEAK_TO_PEAK_MV:
        raise _FeatureFailure(f"flat signal (peak-to-peak {np.ptp(x):.3f} mV)")
    return x


def _r_peaks(clean: np.ndarray, fs: float) -> np.ndarray:
    nk = require("neurokit2", _FEATURE)

    info = nk.ecg_findpeaks(clean, sampling_rate=fs, method="neurokit")
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    if peaks.size < _MIN_BEATS:
        raise _FeatureFailure(f"{peaks.size} R peak(s) found (need >= {_MIN_BEATS})")
    return peaks


def _rhythm(peaks: np.ndarray, fs: float) -> dict[str, float]:
    rr = np.diff(peaks) / fs * 1000.0
    hr, cv = 60_000.0 / rr.mean(), rr.std() / rr.mean()
    if not _HR_RANGE[0] <= hr <= _HR_RANGE[1] or cv > _MAX_RR_CV:
        raise _FeatureFailure(f"implausible R-R series (mean HR {hr:.0f} bpm, R-R CV {cv:.2f}); noise?")
    out = {"rr_mean_ms": float(rr.mean()), "heart_rate": float(60_000.0 / rr.mean()), "n_beats": float(peaks.size)}
    if peaks.size >= _MIN_BEATS_HRV:
        out["sdnn_ms"] = float(rr.std(ddof=1))
        out["rmssd_ms"] = float(np.sqrt(np.mean(np.diff(rr) ** 2)))
    return out


def _t_amplitude(clean: np.ndarray, peaks: np.ndarray, fs: float) -> float:
    """Median over beats of the signed T extreme relative to the PR-segment level (mV)."""
    rr = np.diff(peaks, append=peaks[-1] + int(np.median(np.diff(peaks))))
    t_start = peaks + round(0.10 * fs)
    t_stop = peaks + np.minimum(np.round(0.6 * rr), round(0.5 * fs)).astype(np.int64)
    amps = []
    for p, a, b in zip(peaks, t_start, t_stop, strict=True):
        base_a, base_b = p - round(0.08 * fs), p - round(0.05 * fs)
        if base_a < 0 or b > clean.size or b <= a or base_b <= base_a:
            continue
        seg = clean[a:b] - np.median(clean[base_a:base_b])
        amps.append(seg[np.argmax(np.abs(seg))])
    return float(np.median(amps)) if amps else np.nan


def _median_interval(waves: dict[str, Any], start: str, stop: str, fs: float, name: str) -> float:
    a = np.asarray(waves.get(start, []), dtype=np.float64)
    b = np.asarray(waves.get(stop, []), dtype=np.float64)
    if a.size == 0 or a.size != b.size:
        return np.nan
    ms = (b - a) / fs * 1000.0
    low, high = _INTERVAL_RANGES[name]
    ms = ms[np.isfinite(ms) & (ms >= low) & (ms <= high)]
    return float(np.median(ms)) if ms.size else np.nan


def _intervals_dwt(clean: np.ndarray, peaks: np.ndarray, fs: float) -> dict[str, float]:
    nk = require("neurokit2", _FEATURE)

    _, waves = nk.ecg_delineate(clean, peaks, sampling_rate=fs, method="dwt")
    return {
        "pr_ms": _median_interval(waves, "ECG_P_Onsets", "ECG_R_Onsets", fs, "pr_ms"),
        "qrs_ms": _median_interval(waves, "ECG_R_Onsets", "ECG_R_Offsets", fs, "qrs_ms"),
        "qt_ms": _median_interval(waves, "ECG_R_Onsets", "ECG_T_Offsets", fs, "qt_ms"),
    }


def _intervals_none(clean: np.ndarray, peaks: np.ndarray, fs: float) -> dict[str, float]:
    return {}


#: method -> interval function ``(clean lead, R peaks, fs) -> {pr_ms, qrs_ms, qt_ms}`` (empty: not measured)
FEATURE_METHODS: dict[str, Callable[[np.ndarray, np.ndarray, float], dict[str, float]]] = {
    "dwt": _intervals_dwt,
    "peaks": _intervals_none,
}


def _check_method(method: str) -> None:
    if method not in FEATURE_METHODS:
        raise ConfigError(f"unknown feature method {method!r}; choose one of {sorted(FEATURE_METHODS)}.")


def record_features(x: np.ndarray, fs: float, method: str = "dwt") -> dict[str, Any]:
    """Features of one lead of one record (see the module docstring for definitions and units).

    Parameters
    ----------
    x : np.ndarray, shape (n_samples,)
        One lead in mV at ``fs`` (NaN gaps below 10 % are interpolated).
    fs : float
        Sampling rate in Hz (>= 100 Hz recommended; delineation at lower rates is unreliable).
    method : {"dwt", "peaks"}
        ``"dwt"``: R peaks + wave delineation (PR, QRS, QT); ``"peaks"``: R peaks only (fast).

    Returns
    -------
    dict
        :data:`FEATURE_COLUMNS` (float, NaN when not measured) and ``feature_error`` (``""`` when all went
        well, otherwise why something is missing). Never raises for bad signals.
    """
    nk = require("neurokit2", _FEATURE)

    _check_method(method)
    out: dict[str, Any] = {**_empty(), "feature_error": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sig = _check_signal(np.asarray(x, dtype=np.float64), float(fs))
            clean = np.asarray(nk.ecg_clean(sig, sampling_rate=fs, method="neurokit"), dtype=np.float64)
            peaks = _r_peaks(clean, fs)
            out.update(_rhythm(peaks, fs))
            out["t_amplitude_mv"] = _t_amplitude(clean, peaks, fs)
        except _FeatureFailure as err:
            out["feature_error"] = str(err)
            return out
        except Exception as err:  # noqa: BLE001 - NeuroKit2 raises assorted errors on odd signals; never stop a batch
            out["feature_error"] = f"R-peak detection failed ({type(err).__name__}: {err})"
            return out
        try:
            out.update(FEATURE_METHODS[method](clean, peaks, fs))
        except Exception as err:  # noqa: BLE001 - as above: a failed delineation leaves the other features
            out["feature_error"] = f"delineation failed ({type(err).__name__}: {err})"
    if np.isfinite(out["qt_ms"]):
        out["qtc_ms"] = out["qt_ms"] / np.sqrt(out["rr_mean_ms"] / 1000.0)
    return out


# ---------------------------------------------------------------------------------------------- many records
def _chunk_features(task: tuple[np.ndarray, float, str]) -> list[dict[str, Any]]:
    block, fs, method = task
    return [record_features(row, fs, method) for row in block]


def _lead_index(lead: str | int, leads: Sequence[str], n_leads: int) -> int:
    if isinstance(lead, (int, np.integer)):
        index = int(lead)
    else:
        names = [normalize_lead_name(n) for n in leads]
        wanted = normalize_lead_name(lead)
        if wanted not in names:
            raise ConfigError(f"lead {lead!r} is not among the leads {list(leads)}; pass lead= one of them.")
        index = names.index(wanted)
    if not 0 <= index < n_leads:
        raise ConfigError(f"lead index {index} is out of range for signals with {n_leads} leads.")
    return index


def _run_chunks(tasks: list[tuple[np.ndarray, float, str]], workers: int, progress: bool,
                n: int) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    bar = tqdm(total=n, desc="ECG features", unit="rec", disable=not progress)
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            rows.extend(_chunk_features(task))
            bar.update(len(task[0]))
    else:
        ctx = mp.get_context("fork") if sys.platform.startswith("linux") else mp.get_context("spawn")
        with ctx.Pool(processes=workers) as pool:
            for part in pool.imap(_chunk_features, tasks):
                rows.extend(part)
                bar.update(len(part))
    bar.close()
    return rows


def extract_features(
    signals: np.ndarray,
    fs: float,
    *,
    lead: str | int = "II",
    leads: Sequence[str] = CANONICAL_LEADS,
    method: str = "dwt",
    workers: int = 1,
    chunk_size: int = 64,
    record_ids: Sequence[Any] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Features of many records (one lead each), optionally in worker processes.

    Parameters
    ----------
    signals : np.ndarray or np.memmap, shape (n_records, n_leads, n_samples)
        mV at ``fs`` (a prepared cache's ``signals`` with ``normalize="none"`` works as is).
    fs : float
        Sampling rate in Hz.
    lead : str or int
        Lead to measure (name, any spelling, or index into ``leads``).
    leads : sequence of str
        Lead names of the second dimension of ``signals``.
    method : {"dwt", "peaks"}
        See the module docstring (``"peaks"`` is ~20x faster and gives no intervals).
    workers : int
        Worker processes (1 = in this process).
    chunk_size : int
        Records per worker task.
    record_ids : sequence, optional
        Added as a ``record_id`` column (first).
    progress : bool
        Show a progress bar.

    Returns
    -------
    pd.DataFrame, shape (n_records, ...)
        Row i <-> ``signals[i]``: :data:`FEATURE_COLUMNS` and ``feature_error``. ``attrs["extract_features"]``:
        ``n_records``, ``n_failed`` (no features at all), ``n_partial`` (some missing), ``reasons`` (counts),
        ``method``, ``lead``, ``fs``, ``seconds`` (wall time).
    """
    require("neurokit2", _FEATURE)  # imported once here, so forked workers do not import it again

    _check_method(method)
    if signals.ndim != 3:
        raise ConfigError(f"signals must be [n_records, n_leads, n_samples], got shape {signals.shape}.")
    if record_ids is not None and len(record_ids) != len(signals):
        raise ConfigError(f"record_ids has {len(record_ids)} entries for {len(signals)} records.")
    index = _lead_index(lead, leads, signals.shape[1])
    start = time.perf_counter()
    step = max(1, int(chunk_size))
    tasks = [(np.asarray(signals[i:i + step, index], dtype=np.float64), float(fs), method)
             for i in range(0, len(signals), step)]
    table = pd.DataFrame(_run_chunks(tasks, max(1, int(workers)), progress, len(signals)),
                         columns=[*FEATURE_COLUMNS, "feature_error"])
    if record_ids is not None:
        table.insert(0, "record_id", list(record_ids))
    failed = table["heart_rate"].isna()
    reasons = Counter(_reason_kind(r) for r in table["feature_error"] if r)
    table.attrs["extract_features"] = {
        "n_records": len(table),
        "n_failed": int(failed.sum()),
        "n_partial": int(((table["feature_error"] != "") & ~failed).sum()),
        "reasons": dict(reasons),
        "method": method,
        "lead": CANONICAL_LEADS[index] if len(leads) == len(CANONICAL_LEADS) else str(lead),
        "fs": float(fs),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return table


def _reason_kind(reason: str) -> str:
    """Group free-text reasons for counting: the text before the first '(' or digit-bearing detail."""
    return reason.split("(")[0].strip()


# ---------------------------------------------------------------------------------------------- associations
def _numeric_columns(df: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    return [c for c in df.columns if c not in exclude and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])]


def _correlate(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from scipy import stats

    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    out = {"n": n, "pearson_r": np.nan, "pearson_p": np.nan, "spearman_r": np.nan, "spearman_p": np.nan}
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return out
    pr = stats.pearsonr(x[ok], y[ok])
    sr = stats.spearmanr(x[ok], y[ok])
    out.update(pearson_r=float(pr[0]), pearson_p=float(pr[1]), spearman_r=float(sr[0]), spearman_p=float(sr[1]))
    return out


def feature_associations(
    features_df: pd.DataFrame,
    outputs_df: pd.DataFrame,
    *,
    on: str | None = None,
    features: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Pearson and Spearman correlation of every feature with every model output.

    Parameters
    ----------
    features_df : pd.DataFrame
        One row per record (e.g. :func:`extract_features` output).
    outputs_df : pd.DataFrame
        One row per record: model outputs (and any other quantity to correlate, e.g. the truth).
    on : str, optional
        Join column present in both tables (e.g. ``"record_id"``); without it the tables are aligned by
        position and must have the same length.
    features, outputs : sequence of str, optional
        Columns to use (default: every numeric column, except ``on``; ``n_beats`` is kept).

    Returns
    -------
    pd.DataFrame
        One row per (feature, output): ``feature, output, n`` (pairwise complete records), ``pearson_r,
        pearson_p, spearman_r, spearman_p`` (two-sided p; NaN when fewer than 3 pairs or a constant column).
    """
    if on is not None:
        missing = [name for name, df in (("features_df", features_df), ("outputs_df", outputs_df))
                   if on not in df.columns]
        if missing:
            raise ConfigError(f"join column {on!r} is missing from {missing}; pass on= a shared column or None.")
        merged = features_df.merge(outputs_df, on=on, how="inner", suffixes=("", "_output"))
        left, right = merged, merged
    else:
        if len(features_df) != len(outputs_df):
            raise ConfigError(f"features_df has {len(features_df)} rows and outputs_df {len(outputs_df)}; "
                              "align them first or pass on= a shared id column.")
        left, right = features_df.reset_index(drop=True), outputs_df.reset_index(drop=True)
    feats = list(features) if features is not None else _numeric_columns(features_df, [on] if on else [])
    outs = list(outputs) if outputs is not None else _numeric_columns(outputs_df, [on] if on else [])
    for name, cols, df in (("feature", feats, left), ("output", outs, right)):
        absent = [c for c in cols if c not in df.columns]
        if absent or not cols:
            raise ConfigError(f"{name} columns {absent or cols} not usable; available: {list(df.columns)[:20]}.")
    rows = []
    for f in feats:
        x = pd.to_numeric(left[f], errors="coerce").to_numpy(dtype=np.float64)
        for o in outs:
            y = pd.to_numeric(right[o], errors="coerce").to_numpy(dtype=np.float64)
            rows.append({"feature": f, "output": o, **_correlate(x, y)})
    return pd.DataFrame(rows, columns=["feature", "output", "n", "pearson_r", "pearson_p", "spearman_r",
                                       "spearman_p"])


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def association_grid(table: pd.DataFrame, value: str = "spearman_r") -> pd.DataFrame:
    """Feature x output grid of formatted coefficients with stars, for reports.

    ``table`` is :func:`feature_associations` output; cells read ``+0.62***`` (``*`` p < 0.05, ``**`` < 0.01,
    ``***`` < 0.001, two-sided, uncorrected for multiple comparisons) or ``NA``.
    """
    p = table[value.replace("_r", "_p")]
    cell = ["NA" if not np.isfinite(r) else f"{r:+.2f}{_stars(q)}" for r, q in zip(table[value], p, strict=True)]
    grid = table.assign(cell=cell).pivot(index="feature", columns="output", values="cell")
    grid = grid.loc[table["feature"].drop_duplicates(), table["output"].drop_duplicates()]
    name = value.split("_")[0].capitalize()
    return grid.reset_index().rename(columns=lambda c: c if c == "feature" else f"{name} r: {c}")


def plot_associations(table: pd.DataFrame, path: str | Path | None = None, *, value: str = "spearman_r",
                      title: str | None = None) -> Any:
    """Heatmap of feature x output correlations, annotated with r and significance stars.

    Parameters
    ----------
    table : pd.DataFrame
        :func:`feature_associations` output.
    path : path, optional
        Save the figure here (PNG).
    value : {"spearman_r", "pearson_r"}
        Which coefficient to draw; stars use its p (``*`` < 0.05, ``**`` < 0.01, ``***`` < 0.001, uncorrected
        for multiple comparisons).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """

    p_col = value.replace("_r", "_p")
    if value not in table.columns or p_col not in table.columns:
        raise ConfigError(f"value must be 'spearman_r' or 'pearson_r' (a column of the table), got {value!r}.")
    grid = table.pivot(index="feature", columns="output", values=value)
    pvals = table.pivot(index="feature", columns="output", values=p_col).reindex_like(grid)
    rows = [f for f in table["feature"].drop_duplicates() if f in grid.index]
    cols = [o for o in table["output"].drop_duplicates() if o in grid.columns]
    grid, pvals = grid.loc[rows, cols], pvals.loc[rows, cols]
    fig, ax = new_figure((1.6 + 1.3 * grid.shape[1], 1.0 + 0.42 * grid.shape[0]))
    im = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), r in np.ndenumerate(grid.to_numpy(dtype=float)):
        text = "NA" if not np.isfinite(r) else f"{r:+.2f}{_stars(pvals.iat[i, j])}"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if abs(r) > 0.6 else "black")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), [f"{f} ({FEATURE_UNITS[f]})" if FEATURE_UNITS.get(f) else f
                                         for f in grid.index])
    fig.colorbar(im, ax=ax, label=value.replace("_", " "))
    ax.set_title(title or f"ECG features vs outputs ({value.split('_')[0].capitalize()} r)")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
