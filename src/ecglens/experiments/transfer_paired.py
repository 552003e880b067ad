"""Paired statistics of the transfer experiment (issue #23, item 6): every gain on the same test ECGs.

For each cell (model, target task, target size) every arm is compared with the references of the cell: plain
``scratch`` and each demographic control. An arm's prediction for a test ECG is the mean of its seeds'
predictions for that ECG (seeds averaged per record first); the difference of a metric (AUROC, AUPRC) between
the arm and a reference is bootstrapped over the test ECGs both scored (patients resampled when the
predictions carry ``patient_id``; :func:`~ecglens.evaluate.bootstrap.paired_bootstrap_diff`). Within a family
(one cell, one metric, one reference) the p-values are Holm-adjusted over the arms compared, and
``significant`` says whether the adjusted p-value is below ``alpha``; the CI is the unadjusted percentile
interval at level ``1 - alpha``.

Seed-averaged predictions compare *ensembles* of the seeds, each trained on its own draw of target ECGs; an arm
whose seeds disagree more (e.g. scratch against fine-tuning from similar pretrained networks) gains more from the
averaging, and the ensemble's metric is not one network's. The secondary
"single-run" comparisons (:func:`per_run_comparisons`, ``paired_runs.csv``) therefore pair seed ``j`` of an arm
with seed ``j`` of its reference (same target ECGs, same validation split) and bootstrap the mean over seeds of
the per-seed difference: the expected gain of one fine-tuned network over one trained from scratch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluate.bootstrap import holm_adjust, paired_bootstrap_diff
from .transfer_fair import METRICS, PRIMARY_METRIC

__all__ = ["PAIRED_COLUMNS", "arm_name", "main_markdown", "paired_comparisons", "paired_markdown",
           "per_run_comparisons", "seed_averaged", "write_paired"]

#: columns of ``paired.csv``
PAIRED_COLUMNS: tuple[str, ...] = (
    "model", "target_task", "target_size", "metric", "primary", "arm", "reference", "n_seeds_arm",
    "n_seeds_reference", "n_records", "n_patients", "value_arm", "value_reference", "diff", "ci_low", "ci_high",
    "ci_level", "p_value", "p_holm", "family_size", "significant", "n_boot",
)
_CELL = ("model", "target_task", "target_size")
_IDS = ("record_id", "label", "patient_id")


def arm_name(row: Mapping[str, Any]) -> str:
    """``scratch``, a control's name, or ``<pretrain task>/src<source size>/<strategy>``."""
    if row["pretrain_task"] == "none":
        return str(row["strategy"])
    return f"{row['pretrain_task']}/src{row['source_size']}/{row['strategy']}"


def _read_predictions(folder: Path) -> pd.DataFrame:
    table = pd.read_csv(folder / "test_predictions.csv", dtype={"record_id": str, "patient_id": str})
    column = next(c for c in table.columns if c not in _IDS)
    return table.rename(columns={column: "p"})


def _run_predictions(results: pd.DataFrame, out: Path) -> dict[tuple[Any, ...], dict[int, pd.DataFrame]]:
    """``(model, target_task, target_size, arm) -> {seed: test predictions}`` of the runs that wrote them."""
    runs: dict[tuple[Any, ...], dict[int, pd.DataFrame]] = {}
    for _, row in results.iterrows():
        folder = out / str(row["run_dir"])
        if (folder / "test_predictions.csv").is_file():
            key = (*(str(row[c]) for c in _CELL), arm_name(row))
            runs.setdefault(key, {})[int(row["seed"])] = _read_predictions(folder)
    return runs


def seed_averaged(results: pd.DataFrame, out: Path) -> dict[tuple[Any, ...], tuple[pd.DataFrame, int]]:
    """Per (cell, arm): the test predictions averaged over seeds per record, and the number of seeds.

    Parameters
    ----------
    results : pandas.DataFrame
        ``results.csv`` rows (``run_dir`` relative to ``out``).
    out : Path
        The experiment folder.

    Returns
    -------
    dict
        ``(model, target_task, target_size, arm) -> (table with record_id, label, p[, patient_id], n_seeds)``.
    """
    averaged = {}
    for key, seeds in _run_predictions(results, Path(out)).items():
        both = pd.concat(list(seeds.values()), ignore_index=True)
        agg = {"p": "mean", "label": "first", **({"patient_id": "first"} if "patient_id" in both else {})}
        averaged[key] = (both.groupby("record_id", as_index=False).agg(agg), len(seeds))
    return averaged


def _seed_matrix(seeds: dict[int, pd.DataFrame], matched: list[int]) -> pd.DataFrame:
    """One row per record: record_id, label[, patient_id] and one column ``p<seed>`` per matched seed."""
    first = seeds[matched[0]]
    ids = first[[c for c in _IDS if c in first]].drop_duplicates("record_id")
    wide = ids
    for s in matched:
        wide = wide.merge(seeds[s][["record_id", "p"]].rename(columns={"p": f"p{s}"}), on="record_id")
    return wide


def _compare(arm: pd.DataFrame, ref: pd.DataFrame, metric: str, n_boot: int, alpha: float,
             seed: int) -> dict[str, Any]:
    """The paired difference ``metric(arm) - metric(reference)`` on the records both scored."""
    both = arm.merge(ref[["record_id", "p"]], on="record_id", suffixes=("_arm", "_ref"))
    groups = both["patient_id"].to_numpy() if "patient_id" in both else None
    d = paired_bootstrap_diff(METRICS[metric], both["label"].to_numpy(np.float64), both["p_arm"].to_numpy(),
                              both["p_ref"].to_numpy(), n_boot=n_boot, alpha=alpha, seed=seed, groups=groups)
    return _stats(d)


def _stats(d: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`paired_bootstrap_diff` output under the names of :data:`PAIRED_COLUMNS`."""
    return {"n_records": d["n"], "n_patients": d.get("n_groups"), "value_arm": d["value_a"],
            "value_reference": d["value_b"], "diff": d["diff"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
            "p_value": d["p_value"], "n_boot": d["n_boot"]}


def paired_comparisons(results: pd.DataFrame, out: Path, *, n_boot: int = 1000, alpha: float = 0.05,
                       seed: int = 0, controls: tuple[str, ...] = ("demographics_logreg", "scratch_demographics"),
                       ) -> pd.DataFrame:
    """Every arm against ``scratch`` and against each control of its cell, paired on the same test ECGs.

    Parameters
    ----------
    results : pandas.DataFrame
        ``results.csv`` of a transfer grid.
    out : Path
        Its folder (the runs' ``test_predictions.csv``).
    n_boot, alpha, seed
        Bootstrap resamples, 1 - CI level (and the Holm threshold), seed.
    controls : tuple of str
        Arm names that are references besides ``scratch`` (compared with scratch themselves).

    Returns
    -------
    pandas.DataFrame
        :data:`PAIRED_COLUMNS`, one row per (cell, metric, arm, reference).
    """
    arms = seed_averaged(results, Path(out))
    rows = []
    for cell in sorted({k[:3] for k in arms}):
        names = [k[3] for k in arms if k[:3] == cell]
        references = [r for r in ("scratch", *controls) if r in names]
        for ref in references:
            compared = [a for a in names if a != ref and (a not in controls or ref == "scratch")]
            for metric in METRICS:
                family = []
                for name in compared:
                    stats = _compare(arms[(*cell, name)][0], arms[(*cell, ref)][0], metric, n_boot, alpha, seed)
                    family.append({**dict(zip(_CELL, cell, strict=True)), "metric": metric, "arm": name,
                                   "reference": ref, "n_seeds_arm": arms[(*cell, name)][1],
                                   "n_seeds_reference": arms[(*cell, ref)][1], **stats})
                rows += _holm_family(family, metric, alpha)
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


def _holm_family(family: list[dict[str, Any]], metric: str, alpha: float) -> list[dict[str, Any]]:
    """The family's rows with Holm-adjusted p-values, significance, CI level and the primary-metric mark."""
    adjusted = holm_adjust([r["p_value"] for r in family]) if family else []
    for r, p in zip(family, adjusted, strict=True):
        r.update({"p_holm": p, "family_size": len(family), "significant": bool(p < alpha), "ci_level": 1.0 - alpha,
                  "primary": metric == PRIMARY_METRIC.get(r["target_task"], "auroc")})
    return family


def paired_markdown(paired: pd.DataFrame) -> str:
    """The primary metric's comparisons as a Markdown table (difference with CI, Holm-adjusted p)."""
    lines = ["| model | target | size | arm | vs | diff [CI] | p (Holm) | n |", "|---|---|---|---|---|---|---|---|"]
    for _, r in paired[paired["primary"]].iterrows():
        lines.append(f"| {r['model']} | {r['target_task']} ({r['metric']}) | {r['target_size']} | {r['arm']} | "
                     f"{r['reference']} | {r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | "
                     f"{r['p_holm']:.3f}{' *' if r['significant'] else ''} | {r['n_records']} |")
    note = ("\nSeeds averaged per test ECG first; paired bootstrap over test ECGs (patients when known); "
            f"{int(round(100 * paired['ci_level'].iloc[0])) if len(paired) else 95} % percentile CIs; p-values "
            "Holm-adjusted over the arms compared with one reference (family_size); * adjusted p < alpha.")
    return "\n".join(lines) + "\n" + note + "\n"


#: the references of the main table, in column order, with their headers
def per_run_comparisons(results: pd.DataFrame, out: Path, *, n_boot: int = 1000, alpha: float = 0.05,
                        seed: int = 0, references: tuple[str, ...] = ("scratch",)) -> pd.DataFrame:
    """Secondary comparisons of single runs: seed ``j`` of an arm against seed ``j`` of a reference.

    The difference is the mean over the matched seeds of ``metric(arm seed j) - metric(reference seed j)`` on
    the test ECGs both scored, bootstrapped over those ECGs with the same resamples for every seed
    (:func:`~ecglens.evaluate.bootstrap.paired_bootstrap_diff` with one column per seed); Holm within each
    (cell, metric, reference) family as in :func:`paired_comparisons`. ``value_arm`` / ``value_reference``
    are the mean single-run metrics.

    Parameters
    ----------
    results : pandas.DataFrame
        ``results.csv`` of a transfer grid (``seed`` pairs the runs; runs of one seed share target ECGs).
    out : Path
        Its folder.
    n_boot, alpha, seed
        Bootstrap resamples, 1 - CI level (and the Holm threshold), seed.
    references : tuple of str
        Arms every other arm of a cell is compared with (:func:`write_paired` uses ``scratch`` and
        ``scratch_demographics``).

    Returns
    -------
    pandas.DataFrame
        :data:`PAIRED_COLUMNS`, ``n_seeds_arm`` = ``n_seeds_reference`` = the matched seeds.
    """
    runs = _run_predictions(results, Path(out))
    rows = []
    for cell in sorted({k[:3] for k in runs}):
        names = [k[3] for k in runs if k[:3] == cell]
        for ref in (r for r in references if r in names):
            for metric in METRICS:
                family = []
                for name in (a for a in names if a != ref):
                    matched = sorted(set(runs[(*cell, name)]) & set(runs[(*cell, ref)]))
                    if not matched:
                        continue
                    a = _seed_matrix(runs[(*cell, name)], matched)
                    b = _seed_matrix(runs[(*cell, ref)], matched)
                    both = a.merge(b.drop(columns=[c for c in ("label", "patient_id") if c in b]),
                                   on="record_id", suffixes=("_arm", "_ref"))
                    groups = both["patient_id"].to_numpy() if "patient_id" in both else None
                    d = paired_bootstrap_diff(
                        METRICS[metric], both["label"].to_numpy(np.float64),
                        both[[f"p{s}_arm" for s in matched]].to_numpy(np.float64),
                        both[[f"p{s}_ref" for s in matched]].to_numpy(np.float64),
                        n_boot=n_boot, alpha=alpha, seed=seed, groups=groups)
                    family.append({**dict(zip(_CELL, cell, strict=True)), "metric": metric, "arm": name,
                                   "reference": ref, "n_seeds_arm": len(matched), "n_seeds_reference": len(matched),
                                   **_stats(d)})
                rows += _holm_family(family, metric, alpha)
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


_MAIN_REFERENCES = {"scratch": "vs scratch", "scratch_demographics": "vs scratch + age, sex",
                    "demographics_logreg": "vs age + sex LR"}


def _arm_order(arm: str) -> tuple[int, str]:
    first = {"scratch": 0, "demographics_logreg": 1, "scratch_demographics": 2}
    return (first.get(arm, 3), arm)


def main_markdown(paired: pd.DataFrame, what: str = "seeds averaged per ECG") -> str:
    """The main table: per model, target and size, every arm's primary metric (seeds averaged per ECG) and its
    paired difference [CI] from plain scratch and from each demographic control; ``*``: Holm-adjusted p < alpha.

    Parameters
    ----------
    paired : pandas.DataFrame
        :func:`paired_comparisons` (or :func:`per_run_comparisons`) output.
    what : str
        What the values are, for each table's title.

    Returns
    -------
    str
        One Markdown table per model x target task (empty string without primary rows).
    """
    rows = paired[paired["primary"].astype(bool)]
    blocks = []
    for (model, target), cell in rows.groupby(["model", "target_task"], sort=False):
        metric = str(cell["metric"].iloc[0])
        refs = [r for r in _MAIN_REFERENCES if r in set(cell["reference"])]
        header = ["size", "arm", metric.upper(), *(_MAIN_REFERENCES[r] for r in refs)]
        lines = [f"**{model}, {target} ({metric.upper()}, fold 9; {what})**", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"]
        for size, part in cell.groupby("target_size", sort=False):
            values = dict(zip(part["arm"], part["value_arm"], strict=False))
            values.update(dict(zip(part["reference"], part["value_reference"], strict=False)))
            for arm in sorted(values, key=_arm_order):
                cells = [str(size), f"`{arm}`", f"{values[arm]:.3f}"]
                for ref in refs:
                    hit = part[(part["arm"] == arm) & (part["reference"] == ref)]
                    if arm == ref or hit.empty:
                        cells.append("")
                        continue
                    r = hit.iloc[0]
                    cells.append(f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                                 + (" *" if r["significant"] else ""))
                lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


_RUNS_NOTE = ("Secondary: single runs. Seed j of each arm against seed j of the reference (same target ECGs); "
              "the mean over seeds of the per-seed difference, bootstrapped over test ECGs; Holm as above.\n\n")


def write_paired(results: pd.DataFrame, out: Path, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                 controls: tuple[str, ...] = ("demographics_logreg", "scratch_demographics")) -> dict[str, Path]:
    """``paired.csv``, ``paired_runs.csv`` and ``paired.md`` (the main table, :func:`main_markdown`, then every
    comparison, then the single-run tables of :func:`per_run_comparisons` against ``scratch`` and
    ``scratch_demographics``) in ``out`` (nothing when no cell has a reference arm)."""
    options = {"n_boot": n_boot, "alpha": alpha, "seed": seed}
    paired = paired_comparisons(results, out, controls=controls, **options)
    if not len(paired):
        return {}
    seeded = tuple(c for c in controls if c != "demographics_logreg")
    runs = per_run_comparisons(results, out, references=("scratch", *seeded), **options)
    paths = {"paired_csv": out / "paired.csv", "paired_runs_csv": out / "paired_runs.csv",
             "paired_md": out / "paired.md"}
    paired.to_csv(paths["paired_csv"], index=False)
    runs.to_csv(paths["paired_runs_csv"], index=False)
    text = ("## Main table\n\n" + main_markdown(paired) + "\n## Every comparison\n\n" + paired_markdown(paired)
            + "\n## Single runs\n\n" + _RUNS_NOTE + main_markdown(runs, "mean of single runs"))
    paths["paired_md"].write_text(text, encoding="utf-8")
    return paths
