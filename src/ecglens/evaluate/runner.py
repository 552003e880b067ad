"""Evaluate predictions (or a checkpoint on a prepared cache): every metric with a bootstrap 95 % CI.

How an output is matched to its truth (first rule that applies):

1. the checkpoint's task: each target maps its output names to its label columns (``RegressionTarget("age")``:
   ``age`` <-> ``age``; ``BinaryTarget("sex", name="p_female")``: ``p_female`` <-> ``sex``; a
   ``MultilabelTarget``: ``p_NORM`` <-> ``NORM``, ...);
2. :data:`OUTPUT_TARGETS`, exact names: ``age`` <-> ``age`` (regression), ``p_female`` <-> ``sex`` (binary,
   1 = female);
3. outputs ending in one of :data:`AUXILIARY_SUFFIXES` (``age_std``: a predicted uncertainty; ``*_raw``: an
   output before calibration; ``age_gap``...) are not scored as predictions of a label;
4. :data:`PREFIX_TARGETS`: ``p_<LABEL>`` <-> column ``LABEL`` (binary);
5. an output named like a numeric column of the data (``hemoglobin`` <-> ``hemoglobin``, regression).

Outputs whose truth column is absent are listed in ``notes`` and skipped. Regression outputs are also scored on
the PTB-XL **healthy** subset (``NORM == 1`` and ``MI``, ``STTC``, ``CD``, ``HYP`` all 0) and **non-healthy**
subset (any of ``MI``, ``STTC``, ``CD``, ``HYP`` == 1) when those five columns exist, as in Strodthoff et al.,
"Deep learning for ECG analysis: benchmarks and insights from PTB-XL" (2021); records with none of the five
labels are in neither subset. Age is also scored per decade. Bootstrap resampling is by patient when the data
has a ``patient_id`` column, otherwise by record.

Calibration (:mod:`ecglens.evaluate.calibration_report`): a regression output with a predicted SD (``age_std``) gets its
coverage at 1 and 1.96 SD (``uncertainty``); every probability its expected calibration error (ECE, in
``subsets.all.calibration``); ``age`` its mean ECG-age gap per decade, raw and bias-corrected
(``age_gap_by_decade``). :func:`evaluate_checkpoint` applies the checkpoint's stored calibration first
(:func:`ecglens.predict.postprocess.apply_calibration`: ``age_std`` and ``p_*`` calibrated, the raw values kept as
``*_raw`` and reported beside them) and says when the evaluated folds are those it was fitted on (in-sample).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import check_contract, load_checkpoint
from ..artifact.calibration import Calibration, age_gaps
from ..artifact.checkpoint import Checkpoint, CheckpointLike
from ..data.cache import open_cache
from ..exceptions import ConfigError, EcglensError
from ..jsonutil import json_ready
from ..predict.postprocess import apply_calibration, calibration_of
from . import calibration_report as C
from . import figures as F
from . import metrics as M
from .bootstrap import bootstrap_metrics
from .overlap import training_overlap

__all__ = [
    "AUXILIARY_SUFFIXES",
    "HEALTH_COLUMNS",
    "OUTPUT_TARGETS",
    "PREFIX_TARGETS",
    "OutputTarget",
    "check_out_dir",
    "evaluate_checkpoint",
    "evaluate_predictions",
    "format_results",
    "health_subsets",
    "map_outputs",
    "predict_cache",
    "predictions_table",
    "write_report",
]

#: exact output name -> (truth column, kind)
OUTPUT_TARGETS: dict[str, tuple[str, str]] = {"age": ("age", "regression"), "p_female": ("sex", "binary")}
#: output name prefix -> kind; the rest of the name is the truth column (``p_MI`` <-> ``MI``)
PREFIX_TARGETS: dict[str, str] = {"p_": "binary"}
#: outputs that are not predictions of a label (``age_std``: predicted standard deviation)
AUXILIARY_SUFFIXES: tuple[str, ...] = ("_std", "_raw", "_gap", "_gap_corrected")
#: task target kind (``Target.kind``) -> evaluation kind
TARGET_KINDS: dict[str, str] = {"regression": "regression", "binary": "binary", "multilabel": "binary"}
#: PTB-XL diagnostic superclasses defining the healthy / non-healthy subsets
HEALTH_COLUMNS: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
#: regression truth columns also scored per decade, and units of known columns (figure labels)
DECADE_COLUMNS: frozenset[str] = frozenset({"age"})
UNITS: dict[str, str] = {"age": "years"}
SUBSET_DEFINITIONS: dict[str, str] = {
    "all": "every record with a truth and a prediction",
    "healthy": "NORM == 1 and MI, STTC, CD, HYP == 0",
    "non_healthy": "any of MI, STTC, CD, HYP == 1",
}


@dataclass(frozen=True)
class OutputTarget:
    """One scored output: its truth column, evaluation kind and (for multilabel tasks) its label group."""

    output: str
    column: str
    kind: str
    group: str | None = None


# ------------------------------------------------------------------------------------------------ mapping
def _task_targets(task: Any) -> dict[str, OutputTarget]:
    """Output -> target pairs declared by a TaskSpec (``task.targets``), if there is one."""
    out: dict[str, OutputTarget] = {}
    for target in getattr(task, "targets", None) or ():
        kind = TARGET_KINDS.get(getattr(target, "kind", ""))
        if kind is None:
            continue
        group = getattr(target, "name", None) if target.kind == "multilabel" else None
        for output, column in zip(target.output_names, target.label_columns, strict=False):
            out[output] = OutputTarget(output, column, kind, group)
    return out


def _rule_target(output: str, meta: pd.DataFrame) -> OutputTarget | None:
    """Rules 2-5 of the module docstring (``None``: auxiliary or unknown output)."""
    if output in OUTPUT_TARGETS:
        column, kind = OUTPUT_TARGETS[output]
        return OutputTarget(output, column, kind)
    if output.endswith(AUXILIARY_SUFFIXES):
        return None
    for prefix, kind in PREFIX_TARGETS.items():
        if output.startswith(prefix) and len(output) > len(prefix):
            return OutputTarget(output, output[len(prefix):], kind, group="labels")
    if output in meta.columns and pd.api.types.is_numeric_dtype(meta[output]):
        return OutputTarget(output, output, "regression")
    return None


def map_outputs(outputs: list[str] | tuple[str, ...], meta: pd.DataFrame,
                task: Any = None) -> tuple[list[OutputTarget], list[str]]:
    """Match output names to truth columns of ``meta`` (see the module docstring).

    Returns
    -------
    targets : list of OutputTarget
        The outputs that can be scored, in the order given.
    notes : list of str
        Why the others are not scored.
    """
    declared = _task_targets(task)
    targets, notes = [], []
    for name in outputs:
        target = declared.get(name) or _rule_target(name, meta)
        if target is None:
            if not name.endswith(AUXILIARY_SUFFIXES):
                notes.append(f"output {name!r}: no matching truth column; not scored")
            continue
        if target.column not in meta.columns:
            notes.append(f"output {name!r}: the data has no {target.column!r} column; not scored")
            continue
        targets.append(target)
    return targets, notes


def health_subsets(meta: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks ``{"healthy", "non_healthy"}`` from the PTB-XL superclasses (empty if columns missing)."""
    if not all(c in meta.columns for c in HEALTH_COLUMNS):
        return {}
    labels = meta[list(HEALTH_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    other = labels[list(HEALTH_COLUMNS[1:])]
    healthy = (labels["NORM"] == 1) & (other == 0).all(axis=1)
    return {"healthy": healthy.to_numpy(), "non_healthy": (other == 1).any(axis=1).to_numpy()}


def _truth(meta: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(meta[column], errors="coerce").to_numpy(dtype=np.float64)


def _groups(meta: pd.DataFrame) -> np.ndarray | None:
    """Patient ids for patient-level resampling (``None``: resample records)."""
    if "patient_id" in meta.columns and meta["patient_id"].notna().any():
        return meta["patient_id"].astype(object).where(meta["patient_id"].notna(), None).to_numpy()
    return None


# --------------------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class _Boot:
    """Bootstrap settings shared by every metric of one evaluation."""

    n_boot: int
    seed: int
    alpha: float

    def run(self, fns: dict[str, Any], *arrays: Any, groups: np.ndarray | None) -> dict[str, dict[str, Any]]:
        return bootstrap_metrics(fns, *arrays, n_boot=self.n_boot, alpha=self.alpha, seed=self.seed, groups=groups)


def _decade_rows(t: np.ndarray, p: np.ndarray, g: np.ndarray | None, boot: _Boot) -> list[dict[str, Any]]:
    """Bias and MAE per decade of the truth, each with its CI."""
    ok = np.isfinite(t) & np.isfinite(p)
    t, p, g = t[ok], p[ok], None if g is None else g[ok]
    labels = M.age_decade(t)
    rows = []
    for row in M.by_decade(t, p).to_dict("records"):
        mask = labels == row["decade"]
        cis = boot.run({"bias": M.bias, "mae": M.mae}, t[mask], p[mask], groups=None if g is None else g[mask])
        for name, ci in cis.items():
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci["ci_low"], ci["ci_high"]
        rows.append(row)
    return rows


def _evaluate_regression(target: OutputTarget, t: np.ndarray, p: np.ndarray, meta: pd.DataFrame,
                         g: np.ndarray | None, boot: _Boot, threshold: float | None) -> dict[str, Any]:
    masks = {"all": np.ones(len(t), dtype=bool), **health_subsets(meta)}
    subsets = {}
    for name, mask in masks.items():
        gm = None if g is None else g[mask]
        entry: dict[str, Any] = {"metrics": boot.run(M.REGRESSION_METRICS, t[mask], p[mask], groups=gm)}
        entry["n"] = int(entry["metrics"]["mae"]["n"])
        if target.column in DECADE_COLUMNS:
            entry["by_decade"] = _decade_rows(t[mask], p[mask], gm, boot)
        subsets[name] = entry
    return {"subsets": subsets}


def _evaluate_binary(target: OutputTarget, t: np.ndarray, p: np.ndarray, meta: pd.DataFrame,
                     g: np.ndarray | None, boot: _Boot, threshold: float | None) -> dict[str, Any]:
    thr = 0.5 if threshold is None else float(threshold)
    fns = dict(M.BINARY_METRICS)
    fns.update({name: M.at_threshold(fn, thr) for name, fn in M.THRESHOLD_METRICS.items()})
    known = np.isfinite(t) & np.isfinite(p)
    entry: dict[str, Any] = {"n": int(known.sum()), "n_pos": int(np.nansum(t[known])),
                             "metrics": boot.run(fns, t, p, groups=g), "calibration": M.calibration(t, p)}
    note = M.binary_note(t[known])
    if note:
        entry["note"] = note
    source = "default 0.5 (not selected on validation data)" if threshold is None else "given"
    return {"threshold": thr, "threshold_source": source, "subsets": {"all": entry}}


#: evaluation kind -> function(target, truth, pred, meta, groups, boot, threshold) -> result entry
_EVALUATORS = {"regression": _evaluate_regression, "binary": _evaluate_binary}


def _evaluate_groups(targets: list[OutputTarget], outputs: dict[str, np.ndarray], meta: pd.DataFrame,
                     g: np.ndarray | None, boot: _Boot) -> dict[str, Any]:
    """Macro / micro AUROC of each multilabel group with at least two labels."""
    groups: dict[str, list[OutputTarget]] = defaultdict(list)
    for target in targets:
        if target.group and target.kind == "binary":
            groups[target.group].append(target)
    out = {}
    for name, members in groups.items():
        if len(members) < 2:
            continue
        y = np.stack([_truth(meta, m.column) for m in members], axis=1)
        s = np.stack([outputs[m.output] for m in members], axis=1)
        res = boot.run({"macro_auroc": M.multilabel_auroc, "micro_auroc": M.micro_auroc}, y, s, groups=g)
        out[name] = {"labels": [m.column for m in members], "outputs": [m.output for m in members], **res}
    return out


def _calibration_entry(target: OutputTarget, t: np.ndarray, arrays: dict[str, np.ndarray],
                       calibration: Calibration | None) -> dict[str, Any]:
    """Coverage of a predicted SD and the gap per decade (regression), the raw ECE (calibrated binary)."""
    name, extra = target.output, {}
    if target.kind == "regression" and f"{name}_std" in arrays:
        extra["uncertainty"] = C.uncertainty_summary(t, arrays[name], arrays[f"{name}_std"],
                                                     arrays.get(f"{name}_std_raw"))
    if target.kind == "regression" and target.column in DECADE_COLUMNS:
        extra["age_gap_by_decade"] = C.gap_by_decade(t, arrays[name], calibration)
    if target.kind == "binary":
        extra["ece"] = M.calibration(t, arrays[name])["ece"]
        if f"{name}_raw" in arrays:
            extra["ece_raw"] = M.calibration(t, arrays[f"{name}_raw"])["ece"]
    return extra


def _check_outputs(outputs: dict[str, Any], meta: pd.DataFrame) -> dict[str, np.ndarray]:
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in outputs.items()}
    bad = {k: v.size for k, v in arrays.items() if v.size != len(meta)}
    if bad:
        raise EcglensError(f"outputs {bad} do not have one value per row of the metadata ({len(meta)} rows); "
                           "pass predictions and metadata for the same records in the same order.")
    return arrays


def evaluate_predictions(outputs: dict[str, np.ndarray], meta: pd.DataFrame, task: Any = None,
                         n_boot: int = 1000, seed: int = 0, thresholds: dict[str, float] | None = None,
                         alpha: float = 0.05, calibration: Calibration | None = None) -> dict[str, Any]:
    """Score every output against its truth, each metric with a percentile bootstrap CI.

    Parameters
    ----------
    outputs : dict of str to np.ndarray, each shape (n,)
        Predictions (``{"age": years, "age_std": years, "p_female": prob, ...}``), row i <-> ``meta.iloc[i]``.
    meta : pandas.DataFrame, n rows
        Truth columns (``age`` years, ``sex`` 1 female / 0 male, label columns 0/1), optionally
        ``patient_id`` (patient-level resampling) and ``NORM, MI, STTC, CD, HYP`` (healthy subsets).
    task : TaskSpec, optional
        The model's task: its targets say which column each output predicts (see the module docstring).
    n_boot, seed, alpha : int, int, float
        Bootstrap resamples, seed and 1 - confidence level.
    thresholds : dict of str to float, optional
        Decision threshold per binary output, chosen on validation data; default 0.5 (flagged as such).
    calibration : Calibration, optional
        The checkpoint's stored calibration (its age bias line gives the corrected gap per decade). The
        outputs are taken as given: pass calibrated ones (``age_std`` with ``age_std_raw`` ...) to report both.

    Returns
    -------
    dict
        ``outputs``: per output ``{target, kind, subsets: {all, healthy, non_healthy}: {n, metrics: {name:
        {value, ci_low, ci_high, n, n_boot}}, by_decade, calibration}, threshold, uncertainty,
        age_gap_by_decade, ece, ece_raw}``; ``multilabel``: macro / micro AUROC per label group; ``n_records``,
        ``n_boot``, ``seed``, ``alpha``, ``resampling``, ``task``, ``calibration``, ``subset_definitions``, ``notes``.
    """
    meta = meta.reset_index(drop=True)
    arrays = _check_outputs(outputs, meta)
    targets, notes = map_outputs(list(arrays), meta, task)
    boot, g = _Boot(int(n_boot), int(seed), float(alpha)), _groups(meta)
    thresholds = dict(thresholds or {})
    results: dict[str, Any] = {}
    for target in targets:
        t = _truth(meta, target.column)
        entry = _EVALUATORS[target.kind](target, t, arrays[target.output], meta, g, boot,
                                         thresholds.get(target.output))
        results[target.output] = {"target": target.column, "kind": target.kind, **entry}
        results[target.output].update(_calibration_entry(target, t, arrays, calibration))
    if not targets:
        notes.append("no output could be matched to a truth column: nothing was scored")
    return {
        "n_records": len(meta), "n_boot": boot.n_boot, "seed": boot.seed, "alpha": boot.alpha,
        "ci": f"{100 * (1 - boot.alpha):g}% percentile bootstrap",
        "resampling": "patient" if g is not None else "record",
        "task": task.to_dict() if hasattr(task, "to_dict") else None,
        "calibration": C.calibration_provenance(calibration),
        "outputs": results, "multilabel": _evaluate_groups(targets, arrays, meta, g, boot),
        "subset_definitions": SUBSET_DEFINITIONS, "notes": notes,
    }


# ------------------------------------------------------------------------------------------------- report
def _regression_figures(name: str, entry: dict[str, Any], t: np.ndarray, p: np.ndarray,
                        out: Path) -> dict[str, Path]:

    column = entry["target"]
    units = UNITS.get(column, "")
    figs = {f"{name}_scatter": F.plot_scatter(t, p, label=column, units=units),
            f"{name}_bland_altman": F.plot_bland_altman(t, p, label=column, units=units)}
    decades = entry["subsets"]["all"].get("by_decade")
    if decades:
        figs[f"{name}_decade_bias"] = F.plot_decade_bias(decades, value="bias", units=units,
                                                         title=f"Bias of predicted {column} per decade")
    return _save(figs, out)


def _binary_figures(name: str, entry: dict[str, Any], t: np.ndarray, p: np.ndarray, out: Path) -> dict[str, Path]:

    title = f"{name} vs {entry['target']}"
    figs = {f"{name}_roc": F.plot_roc(t, p, label=name, title=f"ROC: {title}"),
            f"{name}_calibration": F.plot_calibration(t, p, label=name, title=f"Calibration: {title}")}
    return _save(figs, out)


_FIGURES = {"regression": _regression_figures, "binary": _binary_figures}


def _save(figs: dict[str, Any], out: Path) -> dict[str, Path]:
    paths = {}
    for key, fig in figs.items():
        paths[key] = out / f"{key}.png"
        fig.savefig(paths[key])
    return paths


def _multilabel_figures(results: dict[str, Any], outputs: dict[str, np.ndarray], meta: pd.DataFrame,
                        out: Path) -> dict[str, Path]:

    paths = {}
    for group, entry in results.get("multilabel", {}).items():
        fig, ax = F.new_figure((5.5, 5.5))
        for column, output in zip(entry["labels"], entry["outputs"], strict=True):
            F.plot_roc(_truth(meta, column), outputs[output], label=column, ax=ax)
        ax.set_title(f"ROC: {group} (macro AUROC {entry['macro_auroc']['value']:.3f})")
        paths.update(_save({f"{group}_roc": fig}, out))
    return paths


def _calibration_figures(results: dict[str, Any], arrays: dict[str, np.ndarray], meta: pd.DataFrame,
                         out: Path) -> dict[str, Path]:
    """``<output>_coverage.png`` (a predicted SD's calibration plot) and ``<output>_gap_by_decade.png`` (age)."""
    figs = {}
    for name, entry in results.get("outputs", {}).items():
        if "uncertainty" in entry:
            figs[f"{name}_coverage"] = F.plot_coverage(_truth(meta, entry["target"]), arrays[name],
                                                       arrays[f"{name}_std"], arrays.get(f"{name}_std_raw"),
                                                       label=entry["target"])
        if entry.get("age_gap_by_decade"):
            figs[f"{name}_gap_by_decade"] = F.plot_gap_by_decade(entry["age_gap_by_decade"],
                                                                 units=UNITS.get(entry["target"], ""))
    return _save(figs, out)


def write_report(results: dict[str, Any], out_dir: str | os.PathLike[str], outputs: dict[str, np.ndarray],
                 meta: pd.DataFrame) -> dict[str, Path]:
    """Write ``metrics.json`` and the figures of every scored output into ``out_dir``.

    Figures: regression ``<output>_scatter.png``, ``_bland_altman.png``, ``_decade_bias.png`` (age),
    ``_coverage.png`` (with a predicted SD), ``_gap_by_decade.png`` (age); binary
    ``<output>_roc.png``, ``_calibration.png``; multilabel ``<group>_roc.png`` (one curve per label).

    Returns
    -------
    dict of str to Path
        ``"metrics"`` and one entry per figure.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = meta.reset_index(drop=True)
    arrays = _check_outputs(outputs, meta)
    paths: dict[str, Path] = {}
    for name, entry in results.get("outputs", {}).items():
        paths.update(_FIGURES[entry["kind"]](name, entry, _truth(meta, entry["target"]), arrays[name], out))
    paths.update(_multilabel_figures(results, arrays, meta, out))
    paths.update(_calibration_figures(results, arrays, meta, out))
    report = {**results, "figures": sorted(p.name for p in paths.values())}
    paths["metrics"] = out / "metrics.json"
    paths["metrics"].write_text(json.dumps(json_ready(report), indent=2, allow_nan=False) + "\n")
    return paths


def predictions_table(outputs: dict[str, np.ndarray], meta: pd.DataFrame, task: Any = None) -> pd.DataFrame:
    """``record_id`` (and ``fold``), ``true_<column>`` for every scored output's truth, then every output."""
    meta = meta.reset_index(drop=True)
    arrays = _check_outputs(outputs, meta)
    targets, _ = map_outputs(list(arrays), meta, task)
    table = pd.DataFrame({c: meta[c] for c in ("record_id", "fold") if c in meta.columns})
    for column in dict.fromkeys(t.column for t in targets):
        table[f"true_{column}"] = _truth(meta, column)
    for name, values in arrays.items():
        table[name] = values
    return table


def _calibration_lines(output: str, entry: dict[str, Any], fmt: Any) -> list[str]:
    """Coverage of a predicted SD, ECE of a probability, the age gap per decade before / after correction."""
    lines = []
    unc = entry.get("uncertainty")
    if unc:
        for key, label in (("coverage_raw", "raw SD"), ("coverage", "calibrated SD" if "coverage_raw" in unc
                                                                  else "predicted SD")):
            if key in unc:
                cells = ", ".join(f"{100 * c['observed']:.1f} % within {c['z']:g} SD (nominal "
                                  f"{100 * c['nominal']:.1f} %)" for c in unc[key].values())
                lines.append(f"{'':<14} coverage of {output}_std ({label}): {cells}")
    if "ece" in entry:
        raw = f" (raw {fmt(entry['ece_raw'])})" if "ece_raw" in entry else ""
        lines.append(f"{'':<14} expected calibration error {fmt(entry['ece'])}{raw}")
    rows = entry.get("age_gap_by_decade")
    if rows:
        lines.append(f"{'':<14} mean ECG-age gap per decade (years), raw -> bias-corrected:")
        lines += [f"{'':<16}{r['decade']:>6}  n={r['n']:<5} {r['gap']:+6.1f}"
                  + (f" -> {r['gap_corrected']:+6.1f}" if "gap_corrected" in r else "") for r in rows]
    return lines


def format_results(results: dict[str, Any]) -> str:
    """A compact text table: output, subset, metric, value [CI], n."""
    pct = f"{100 * (1 - results.get('alpha', 0.05)):g}% CI"
    lines = [f"{'output':<14} {'subset':<12} {'metric':<12} {'value':>9}  {pct:<21} {'n':>6}"]

    def fmt(v: Any) -> str:
        return "nan" if v is None or not np.isfinite(v) else f"{v:.3f}"

    def add(output: str, subset: str, metrics: dict[str, Any]) -> None:
        for name, ci in metrics.items():
            interval = f"[{fmt(ci['ci_low'])}, {fmt(ci['ci_high'])}]"
            lines.append(f"{output:<14} {subset:<12} {name:<12} {fmt(ci['value']):>9}  {interval:<21} {ci['n']:>6}")

    for output, entry in results.get("outputs", {}).items():
        for subset, sub in entry["subsets"].items():
            add(output, subset, sub["metrics"])
        if "threshold" in entry:
            lines.append(f"{'':<14} (threshold {entry['threshold']:.3f}: {entry['threshold_source']})")
        lines += _calibration_lines(output, entry, fmt)
    for group, entry in results.get("multilabel", {}).items():
        add(group, "all", {k: entry[k] for k in ("macro_auroc", "micro_auroc")})
    lines += [f"note: {n}" for n in results.get("notes", [])]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- checkpoint
def predict_cache(checkpoint: Checkpoint, signals: np.ndarray, indices: np.ndarray, batch_size: int = 256,
                  progress: bool = True, site_gain: Any = None, precision: str = "32") -> dict[str, np.ndarray]:
    """``checkpoint.predict`` (in ``precision``) over ``signals[indices]`` ([N, L, T], e.g. a memory map) in
    batches, each lead multiplied by its ``site_gain`` (:class:`~ecglens.predict.site.SiteGain`) when one is given.

    Returns
    -------
    dict of str to np.ndarray, each shape (len(indices),)
    """
    from tqdm.auto import tqdm

    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    options = {} if str(precision) == "32" else {"precision": precision}  # any object with .predict(x) at 32
    starts = range(0, len(indices), max(1, int(batch_size)))
    for start in tqdm(starts, desc="predict", unit="batch", disable=not progress):
        rows = indices[start:start + batch_size]
        x = np.asarray(signals[rows], dtype=np.float32)
        x = x if site_gain is None else site_gain.apply(x)
        for name, values in checkpoint.predict(x, **options).items():
            parts[name].append(np.asarray(values, dtype=np.float64).reshape(len(rows), -1)[:, 0])
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def calibrated_outputs(outputs: dict[str, np.ndarray], checkpoint: Any) -> dict[str, np.ndarray]:
    """``outputs`` through :func:`~ecglens.predict.postprocess.apply_calibration` (raw values as ``*_raw``)."""
    if calibration_of(checkpoint) is None:
        return outputs
    table = apply_calibration(pd.DataFrame(outputs), checkpoint)
    return {c: table[c].to_numpy(dtype=np.float64) for c in table.columns if pd.api.types.is_numeric_dtype(table[c])}


def _select_thresholds(checkpoint: Checkpoint, cache: Any, folds: Any, eval_idx: np.ndarray, method: str,
                       batch_size: int, progress: bool, site_gain: Any = None, precision: str = "32"
                       ) -> tuple[dict[str, float], list[str]]:
    """Thresholds per binary output chosen on ``folds`` (which must not overlap the evaluated records)."""
    idx = cache.indices(folds)
    if np.intersect1d(idx, eval_idx).size:
        raise ConfigError(f"threshold folds {folds} overlap the evaluated folds: choose thresholds on separate "
                          "validation data (e.g. --threshold-folds 9 when evaluating fold 10).")
    meta = cache.meta.iloc[idx].reset_index(drop=True)
    outputs = calibrated_outputs(predict_cache(checkpoint, cache.signals, idx, batch_size, progress, site_gain,
                                               precision), checkpoint)
    targets, _ = map_outputs(list(outputs), meta, getattr(checkpoint, "task", None))
    chosen, notes = {}, []
    for target in (t for t in targets if t.kind == "binary"):
        try:
            chosen[target.output] = M.select_threshold(_truth(meta, target.column), outputs[target.output], method)
        except EcglensError as err:
            notes.append(f"threshold of {target.output!r} not selected ({err}); 0.5 used")
    return chosen, notes


def _site_gain(checkpoint: Checkpoint, cache: Any, idx: np.ndarray, site_gain: Any) -> Any:
    """The :class:`~ecglens.predict.site.SiteGain` to apply: ``"auto"`` measures it on ``cache.signals[idx]``."""
    from ..predict.site import as_site_gain, estimate_site_gain, signals_rms

    leads = tuple(getattr(getattr(checkpoint, "preprocess", None), "leads", None) or ())
    if isinstance(site_gain, str) and site_gain == "auto":
        reference = getattr(calibration_of(checkpoint), "lead_rms_mv", None)
        return estimate_site_gain(signals_rms(cache.signals, idx), reference, leads)
    gain = as_site_gain(site_gain)
    if gain is not None:
        gain.check_leads(leads)
    return gain


def _provenance(checkpoint: Checkpoint, cache: Any, folds: Any, n: int) -> dict[str, Any]:
    pre = getattr(cache, "preprocess", None)
    manifest = getattr(cache, "manifest", {}) or {}
    return {"checkpoint": str(getattr(checkpoint, "path", "")), "model": getattr(checkpoint, "model_name", None),
            "checkpoint_version": getattr(checkpoint, "version", None), "data": str(getattr(cache, "path", "")),
            "folds": "all" if folds is None else folds, "n_evaluated": n,
            "n_rejected_in_cache": manifest.get("n_rejected"),
            "preprocess": pre.to_dict() if hasattr(pre, "to_dict") else None}


def check_out_dir(out_dir: str | os.PathLike[str] | None, force: bool = False) -> None:
    """Refuse an existing, non-empty output folder unless ``force`` (``ecglens evaluate`` checks this first;
    :func:`evaluate_checkpoint` itself writes into ``out_dir`` as told, e.g. when a grid cell is resumed)."""
    if out_dir is None or force:
        return
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"the output folder {out} already exists; choose another --out, or pass --force "
                          "(force=True) to overwrite its files.")


def _training_guard(checkpoint: Checkpoint, meta: pd.DataFrame, allow: bool) -> list[str]:
    """Refuse (ConfigError) evaluated records that overlap the training data; with ``allow``, the warnings."""
    overlap = training_overlap(checkpoint, meta)
    if overlap is None:
        return []
    if not allow:
        raise ConfigError(f"{overlap}. Metrics on training data overstate the model. Evaluate held-out folds "
                          "(e.g. --folds 9 or 10 for a model trained on folds 1-8), or pass --allow-train-folds "
                          "(allow_train_folds=True) when that is what you mean (e.g. a cohort whose own fold "
                          "numbers are unrelated to the training data); the warning is kept in metrics.json.")
    text = f"EVALUATED ON TRAINING DATA (--allow-train-folds): {overlap}; these metrics overstate the model."
    warnings.warn(text, UserWarning, stacklevel=3)
    return [text]


def evaluate_checkpoint(checkpoint: CheckpointLike, cache: Any, folds: Any = None,
                        out_dir: str | os.PathLike[str] | None = None, n_boot: int = 1000, seed: int = 0,
                        batch_size: int = 256, threshold_folds: Any = None, threshold_method: str = "youden",
                        progress: bool = True, *, allow_train_folds: bool = False,
                        site_gain: Any = None, precision: str = "32") -> dict[str, Any]:
    """Predict a prepared cache with a checkpoint and evaluate (metrics, CIs, figures, predictions.csv).

    Parameters
    ----------
    checkpoint : Checkpoint or str or path
        A loaded checkpoint (``.predict``, ``.task``, ``.preprocess``) or what ``load_checkpoint`` accepts.
    cache : PreparedCache or str or path
        A prepared cache (``.signals`` [N, L, T], ``.meta``, ``.indices(folds)``) or its folder.
    folds : int, str or list of int, optional
        Folds to evaluate (``9``, ``"10"``, ``[9, 10]``); ``None``: every record.
    out_dir : path, optional
        Where to write ``metrics.json``, ``predictions.csv`` and the figures; ``None`` writes nothing.
    n_boot, seed : int
        Bootstrap resamples and seed.
    batch_size : int
        Records per forward pass.
    threshold_folds : int, str or list of int, optional
        Validation folds on which the binary decision thresholds are chosen (``threshold_method``) before
        being applied unchanged to ``folds``; default: 0.5.
    threshold_method : {"youden", "sensitivity", "specificity"}
        See :func:`ecglens.evaluate.metrics.select_threshold`.
    progress : bool
        Show a progress bar.
    allow_train_folds : bool
        Evaluate even when the records overlap the checkpoint's training folds or training records
        (:mod:`ecglens.evaluate.overlap`); by default that is a ``ConfigError``. The results (and
        ``metrics.json``) then carry the overlap in ``warnings``.
    site_gain : "auto" or SiteGain or dict or path, optional
        Scale each lead of the inputs by a site gain (:mod:`ecglens.predict.site`): ``"auto"`` estimates it from
        the evaluated records themselves (no labels are used), else a saved one. Stored in ``provenance``.
    precision : {"32", "bf16", "16"}
        The model's forward pass in float32 or under autocast (:mod:`ecglens.artifact.precision`); stored in
        ``provenance`` unless ``"32"``.

    Returns
    -------
    dict
        :func:`evaluate_predictions` output plus ``provenance`` (checkpoint, data, folds, counts, site gain,
        precision), ``warnings`` and, when written, ``files``.
    """
    if not hasattr(checkpoint, "predict"):

        checkpoint = load_checkpoint(checkpoint)
    if not hasattr(cache, "signals"):

        cache = open_cache(cache)
    check_contract(getattr(checkpoint, "preprocess", None), getattr(cache, "preprocess", None),
                   where=f"at {getattr(cache, 'path', '?')}", fix=" and evaluate on that")
    idx = cache.indices(folds)
    if idx.size == 0:
        raise ConfigError(f"no records in folds {folds} of the cache at {getattr(cache, 'path', '?')}; "
                          "check --folds against the folds the cache has.")
    meta = cache.meta.iloc[idx].reset_index(drop=True)
    warned = _training_guard(checkpoint, meta, allow_train_folds)
    gain = _site_gain(checkpoint, cache, idx, site_gain)
    thresholds, notes = {}, [] if gain is None else [gain.describe()]
    if threshold_folds is not None:
        thresholds, chosen_notes = _select_thresholds(checkpoint, cache, threshold_folds, idx, threshold_method,
                                                      batch_size, progress, gain, precision)
        notes += chosen_notes
    outputs = calibrated_outputs(predict_cache(checkpoint, cache.signals, idx, batch_size, progress, gain,
                                               precision), checkpoint)
    task = getattr(checkpoint, "task", None)
    cal = calibration_of(checkpoint)
    results = evaluate_predictions(outputs, meta, task=task, n_boot=n_boot, seed=seed, thresholds=thresholds,
                                   calibration=cal)
    in_sample = C.in_sample_note(cal, folds)
    notes += [in_sample] if in_sample else []
    results["notes"] = warned + notes + results["notes"]
    results["warnings"] = warned
    results["provenance"] = _provenance(checkpoint, cache, folds, int(idx.size))
    if gain is not None:
        results["provenance"]["site_gain"] = gain.to_dict()
    if str(precision) != "32":
        results["provenance"]["precision"] = str(precision)
    if threshold_folds is not None:
        results["provenance"]["threshold_folds"] = threshold_folds
        results["provenance"]["threshold_method"] = threshold_method
    if out_dir is not None:
        files = write_report(results, out_dir, outputs, meta)
        files["predictions"] = Path(out_dir) / "predictions.csv"
        table = predictions_table(outputs, meta, task)
        if "true_age" in table and "age" in table:
            table = table.assign(**age_gaps(table["age"], table["true_age"], cal))
        table.to_csv(files["predictions"], index=False)
        results["files"] = {k: str(v) for k, v in files.items()}
    return results
