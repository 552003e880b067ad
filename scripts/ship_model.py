"""Ship a trained checkpoint in the package: copy its weights and write its model card from measured metrics.

    python scripts/ship_model.py RUN EVAL_DIR --name age-sex [--train-command "..."] [--eval-command "..."]

* ``RUN``      — an ``ecglens train`` run folder (``model.safetensors``, ``config.yaml``, ``history.csv``), or a
  checkpoint file itself (then the epochs run are read from its stored metrics).
* ``EVAL_DIR`` — the ``ecglens evaluate`` folder of that checkpoint (``metrics.json``).

Writes ``src/ecglens/weights/NAME.safetensors`` (the same weights, with the evaluation's headline metrics stored
in its metadata, so ``ecglens info``, the report, the page and ``/models`` show them) and
``src/ecglens/weights/NAME.md``. Every number in the card is read from those files; nothing is typed in by hand.

To ship a calibrated model, calibrate first and evaluate the calibrated file::

    ecglens calibrate runs/x/model.safetensors cache/ptbxl100 --folds 9 --out runs/x/calibrated.safetensors
    ecglens evaluate runs/x/calibrated.safetensors cache/ptbxl100 --folds 9 --out eval/x_fold9
    python scripts/ship_model.py runs/x/calibrated.safetensors eval/x_fold9 --name NAME

The card then has a calibration section (coverage of ``age_std``, ECE, the ECG-age gap per decade before and
after the correction), marked in-sample when the evaluated folds are those the calibration was fitted on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from ecglens.artifact import load_checkpoint
from ecglens.artifact.checkpoint import update_checkpoint
from ecglens.evaluate.calibration_report import checkpoint_metrics, in_sample_note, training_provenance

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "ecglens" / "weights"
MAX_MB = 20.0


def _fmt(m: dict, digits: int = 2) -> str:
    return f"{m['value']:.{digits}f} [{m['ci_low']:.{digits}f}, {m['ci_high']:.{digits}f}]"


_OUTPUTS = {
    "age": "`age` in years",
    "age_std": "`age_std` the model's own uncertainty of it (Gaussian NLL), in years",
    "p_female": "`p_female` the probability of female sex",
    "p_NORM": "`p_NORM` the probability of a normal ECG",
    "p_MI": "`p_MI` of myocardial infarction",
    "p_STTC": "`p_STTC` of ST/T change",
    "p_CD": "`p_CD` of a conduction disturbance",
    "p_HYP": "`p_HYP` of hypertrophy",
}


def _describe(output: str) -> str:
    """One phrase of the card's first line for an output column."""
    return _OUTPUTS.get(output, f"`{output}`")


def _n_windows(pre: dict) -> int:
    from ecglens.artifact import plan_windows

    return len(plan_windows(round(10.0 * pre["fs"]), round(pre["seconds"] * pre["fs"]))[0])


def _metric_rows(metrics: dict) -> list[str]:
    rows = ["| output | subset | metric | value [95 % CI] | n |", "|---|---|---|---|---|"]
    for output, block in metrics["outputs"].items():
        for subset, sub in block.get("subsets", {}).items():
            for name, m in sub.get("metrics", {}).items():
                if isinstance(m, dict) and m.get("value") is not None:
                    digits = 2 if block.get("kind") == "regression" else 3
                    rows.append(f"| {output} | {subset} | {name} | {_fmt(m, digits)} | {m.get('n', '')} |")
    return rows


def _checkpoint_file(run: Path) -> Path:
    return run if run.suffix == ".safetensors" else run / "model.safetensors"


def _epochs_run(run: Path, ckpt) -> object:
    if (run / "history.csv").is_file():
        return len(pd.read_csv(run / "history.csv"))
    for stored in (ckpt.metrics, (ckpt.config or {}).get("metrics_whole_input")):
        if (stored or {}).get("epochs_run") is not None:
            return stored["epochs_run"]
    return "?"


def _ensemble_lines(ens: dict) -> list[str]:
    """Card lines for an ``ecglens ensemble`` checkpoint: one per member, from the configs it recorded."""
    members = ens["members"]
    weights = ens.get("weights") or [1.0] * len(members)
    total = sum(weights)
    lines = [(f"- an ensemble (`ecglens ensemble`) of {len(members)} independently trained models; its raw output "
              "is the weighted mean of theirs (age averaged in years, sex as the mean logit, `age_std` the "
              "geometric mean of the members' own standard deviations)")]
    for i, (m, w) in enumerate(zip(members, weights, strict=True)):
        cfg = m.get("config") or {}
        metrics = m.get("metrics") or {}
        epochs = metrics.get("epochs_run") or (cfg.get("metrics_whole_input") or {}).get("epochs_run", "?")
        seed = cfg.get("trainer", {}).get("seed")
        lines.append(f"- member {i} (weight {w / total:.3g}): `{m['model']}`, seed {seed}, {epochs} epochs, "
                     f"optimiser `{json.dumps(cfg.get('optim', {}))}`, augmentation "
                     f"`{json.dumps(cfg.get('augment', {}).get('spec', {}))}`; from `{m['source']}` of "
                     f"{m.get('created', '?')[:10]}")
    lines.append("- trained on CPU (2 cores, shared), no GPU")
    return lines


def _calibration_lines(ckpt, metrics: dict) -> list[str]:
    """Card section on calibration: what was fitted where, coverage / ECE before and after, gap per decade."""
    cal = ckpt.calibration
    if cal is None:
        return ["## Calibration", "", ("None stored: uncertainties and probabilities are the model's own, and an "
                "ECG-age gap is not corrected for age (see docs/ecg_age.md; `ecglens calibrate` fits both)."), ""]
    in_sample = in_sample_note(cal, (metrics.get("provenance") or {}).get("folds"))
    lines = ["## Calibration", "",
             f"Fitted on folds {cal.folds} (n = {cal.n}) with `ecglens calibrate` ({cal.method}): "
             f"{'; '.join(cal.parts())}.", ""]
    if in_sample:
        lines += [f"**In-sample**: {in_sample}", ""]
    for output, block in metrics["outputs"].items():
        unc = block.get("uncertainty") or {}
        for key, label in (("coverage_raw", "model's own SD"), ("coverage", "calibrated SD")):
            if key in unc:
                cells = "; ".join(f"{100 * c['observed']:.1f} % within {c['z']:g} SD "
                                  f"(nominal {100 * c['nominal']:.1f} %)" for c in unc[key].values())
                lines.append(f"- `{output}` coverage, {label}: {cells}")
        if "ece" in block:
            raw = f" (model's own {block['ece_raw']:.3f})" if "ece_raw" in block else ""
            lines.append(f"- `{output}` expected calibration error {block['ece']:.3f}{raw}")
        rows = block.get("age_gap_by_decade")
        if rows:
            lines += ["", "| decade | n | mean raw gap (y) | mean corrected gap (y) |", "|---|---|---|---|"]
            lines += [f"| {r['decade']} | {r['n']} | {r['gap']:+.1f} | {r.get('gap_corrected', float('nan')):+.1f} |"
                      for r in rows]
            lines.append("")
    return [*lines, ""]


def _selects_epoch(cfg: dict) -> bool:
    """Whether the run kept the epoch its validation folds chose (``trainer.monitor``), not simply the last."""
    return "ensemble" in cfg or (cfg.get("trainer") or {}).get("monitor", "val_loss") is not None


def _data_line(cfg: dict) -> str:
    """The card's line on training data: folds, distillation, how the epoch was chosen."""
    data = cfg.get("data") or {}
    teacher = (f", with labels blended {1 - data.get('teacher_weight', 0.5):g}:{data.get('teacher_weight', 0.5):g} "
               f"with a teacher's predictions on them (distillation, `{data['teacher']}`)" if data.get("teacher")
               else "")
    chosen = "fold 9 to select the epoch" if _selects_epoch(cfg) else "the last epoch kept (no epoch selection)"
    return (f"- PTB-XL v1.0.3 at 100 Hz (Wagner et al. 2020, CC BY 4.0), `strat_fold` 1-8 for training{teacher}; "
            f"{chosen}; fold 10 (the blind test set) was never used.")


def _card(name: str, run: Path, ev: Path, args: argparse.Namespace) -> str:
    ckpt = load_checkpoint(_checkpoint_file(run))
    metrics = json.loads((ev / "metrics.json").read_text())
    cfg = ckpt.config
    n_params = sum(p.numel() for p in ckpt.model.parameters())
    pre = ckpt.preprocess.to_dict()
    epochs = _epochs_run(run, ckpt)
    lines = [
        f"# Model card: `{name}`",
        "",
        (f"Estimates **{', '.join(ckpt.task.output_names)}** from a resting 12-lead ECG "
         f"({'; '.join(_describe(o) for o in ckpt.task.output_names)})."),
        "",
        "## Model",
        "",
        f"- architecture: `{ckpt.model_name}` with `{json.dumps(ckpt.model_kwargs)}` ({n_params:,} parameters)",
        f"- task: `{json.dumps(ckpt.task.to_dict())}`",
        f"- ecglens version: {ckpt.version}; file: `{name}.safetensors` (safetensors weights + JSON metadata)",
        "",
        "## Input contract (stored in the checkpoint; `Predictor` brings any input to it)",
        "",
        f"- `{json.dumps(pre)}`",
        ("- signal in mV, leads in canonical order; other rates are resampled; longer records are split into "
         f"windows of {pre['seconds']:g} s covering them evenly and the outputs averaged (a 10 s record: "
         f"{_n_windows(pre)} window{'s' if _n_windows(pre) != 1 else ''})"),
        "",
        "## Training data and budget",
        "",
        _data_line(cfg),
        *(_ensemble_lines(cfg["ensemble"]) if "ensemble" in cfg else [
            f"- optimiser: `{json.dumps(cfg.get('optim', {}))}`",
            f"- augmentation: `{json.dumps(cfg.get('augment', {}))}`",
            f"- epochs run: {epochs}; on CPU (2 cores, shared), no GPU",
        ]),
        "",
        (f"## Metrics on PTB-XL fold 9 ({metrics['n_records']} ECGs; {metrics['ci']}, "
         f"{metrics['n_boot']} resamples by {metrics['resampling']})"),
        "",
        (("Fold 9 was also used to select the epoch, so these are validation numbers, slightly optimistic; the "
          "blind fold 10 is the honest test." if _selects_epoch(cfg) else "Fold 9 selected no epoch here (the last "
          "was kept); these are still validation numbers, the blind fold 10 is the honest test.")
         + (f" {args.note}" if args.note else "")),
        "",
        *_metric_rows(metrics),
        "",
        *(["Subsets: `healthy` = NORM only (no MI/STTC/CD/HYP), `non_healthy` = any of MI/STTC/CD/HYP."]
          if any("healthy" in b.get("subsets", {}) for b in metrics["outputs"].values()) else []),
        "",
        *_calibration_lines(ckpt, metrics),
        "## How it was made",
        "",
        "```bash",
        "ecglens prepare ptbxl ~/ptbxl --out cache/ptbxl100 --folds 1-9 --fs 100 --seconds 10",
        args.train_command or f"ecglens train {run / 'config.yaml'}",
        args.eval_command or f"ecglens evaluate {_checkpoint_file(run)} cache/ptbxl100 --folds 9 --out {ev}",
        f"python scripts/ship_model.py {run} {ev} --name {name}",
        "```",
        "",
        "## Limits",
        "",
        "- Trained on one German database (PTB-XL, 1989-1996 recordings); accuracy elsewhere is not established.",
        *(["- Age above 89 is coded 90 in the training labels."] if "age" in ckpt.task.output_names else []),
        "- Not a medical device; research use only.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("eval", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--train-command", default="")
    p.add_argument("--eval-command", default="")
    p.add_argument("--note", default="", help="a sentence added to the metrics section (e.g. how fold 9 was used)")
    p.add_argument("--weights-dir", type=Path, default=WEIGHTS, help="where to write (default: the package's)")
    args = p.parse_args()
    src = _checkpoint_file(args.run)
    size_mb = src.stat().st_size / 1e6
    if size_mb > MAX_MB:
        raise SystemExit(f"{src} is {size_mb:.1f} MB; shipped weights must stay under {MAX_MB} MB")
    weights = args.weights_dir
    weights.mkdir(parents=True, exist_ok=True)
    card = _card(args.name, args.run, args.eval, args)  # reads the source before it may be replaced
    results = json.loads((args.eval / "metrics.json").read_text())
    source = load_checkpoint(src)
    stored = {**checkpoint_metrics(results), **training_provenance(source.metrics)}
    cal = source.calibration
    stored["calibration_in_sample"] = in_sample_note(cal, stored["folds"]) is not None
    update_checkpoint(src, weights / f"{args.name}.safetensors", metrics=stored,
                      note=f"scripts/ship_model.py {args.run} {args.eval} --name {args.name}")
    (weights / f"{args.name}.md").write_text(card)
    print(f"wrote {weights / (args.name + '.safetensors')} ({size_mb:.1f} MB) and {args.name}.md")


if __name__ == "__main__":
    main()
