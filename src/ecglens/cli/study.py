"""``ecglens study``: end-to-end clinical studies (docs/clinical.md).

Examples::

    # hemoglobin -> anemia -> survival on a simulated cohort with a known hazard ratio (a few minutes on 2 CPUs)
    ecglens study simulate --out runs/study_sim --seed 0
    ecglens study simulate --out /tmp/study_quick --quick            # tiny, well under a minute
    # the same study once per seed (a resumable, shardable grid: OUT/results.csv, one row per seed)
    ecglens study simulate --out runs/study_seeds --seeds 0,1,2,3 --shard 1/2

    # the same study on your own tables (column names and units: docs/clinical.md)
    ecglens study hb --ecgs ecgs.csv --labs labs.csv --outcomes outcomes.csv \\
        --external-ecgs ext_ecgs.csv --external-labs ext_labs.csv --external-outcomes ext_outcomes.csv --out runs/hb

    # the realistic simulation (oracle r 0.55, AUROC 0.85; death and new HF, competing risks; several ECGs per
    # patient), one cohort, and its coverage study over 400 seeds (resumable; OUT/coverage.{csv,md})
    ecglens study realistic --out runs/hb_realistic --seed 0
    ecglens study coverage --seeds 400 --out runs/hb_coverage
    ecglens study calibrate                                            # how the simulation's parameters were set

    # ECG-age gap on PTB-XL (fold 9) with a trained age model
    ecglens study ptbxl-age runs/age/model.safetensors cache/ptbxl100 --folds 9 --out runs/age_study

Every run writes ``summary.json``, ``study.md``, ``tables/`` (CSV + Markdown) and ``figures/`` (PNG) into a new
``--out`` folder; nothing is overwritten.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["STUDIES", "register", "run_study"]

_HEADLINE = ("true_hazard_ratio", "hazard_ratio", "hazard_ratio_ci", "c_index", "hb_mae", "hb_mae_baseline",
             "hb_pearson_r", "anemia_auroc")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None,
                   help="study YAML (default: the shipped study_simulate.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set study.n_boot=2000 or train.optim.epochs=12")
    p.add_argument("--seed", type=int, default=None, help="study seed (also the training seed)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (train.optim.epochs)")
    p.add_argument("--quick", action="store_true", help="the config's 'quick' profile: tiny and fast (tests)")
    p.add_argument("--out", type=Path, required=True, help="new output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="Hb / anemia / survival study on a simulated cohort (known true HR)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _config_args(p)
    p.add_argument("--n-patients", type=int, default=None, help="internal cohort size (simulation.n_patients)")
    p.add_argument("--seeds", metavar="A,B", default=None,
                   help="run the study once per seed into OUT/runs/seed<k> (resumable grid; OUT/results.csv)")
    p.add_argument("--shard", metavar="I/N", help="with --seeds: run only part I of N of the seeds, e.g. 2/4")
    p.set_defaults(study="simulate")


def _add_hb(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hb", help="the Hb / anemia / survival study on your own ECG, lab and outcome tables",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _config_args(p)
    for prefix, need in (("", True), ("external-", False)):
        p.add_argument(f"--{prefix}ecgs", type=Path, required=need,
                       help="ECG catalogue CSV: record_id, path, patient_id, time, age, sex")
        p.add_argument(f"--{prefix}labs", type=Path, required=need,
                       help="hemoglobin draws CSV: patient_id, time, value, unit")
        p.add_argument(f"--{prefix}outcomes", type=Path, default=None,
                       help="outcomes CSV: patient_id, time (years from the ECG), event (1 = event)")
    p.set_defaults(study="hb")


def _add_ptbxl_age(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ptbxl-age", help="ECG-age gap by healthy / non-healthy, figures and feature associations",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="checkpoint with an 'age' output (file or shipped name)")
    p.add_argument("cache", type=Path, help="cache folder prepared with the checkpoint's preprocessing")
    p.add_argument("--folds", default=None, help="folds to analyse, e.g. 9 or 1-8 (default: all records)")
    p.add_argument("--out", type=Path, required=True, help="new output folder")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap / subsample seed (default 0)")
    p.add_argument("--gap-threshold", type=float, default=8.0, help="gap category threshold, years (default 8)")
    p.add_argument("--feature-method", choices=("dwt", "peaks"), default="dwt",
                   help="ECG features with wave delineation (dwt) or R peaks only (peaks, fast)")
    p.add_argument("--feature-records", type=int, default=1000, help="at most this many records for features")
    p.add_argument("--workers", type=int, default=2, help="processes for the ECG features (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(study="ptbxl-age")


def _add_realistic(sub: argparse._SubParsersAction) -> None:
    for name, text in (("realistic", "one cohort of the realistic Hb simulation: oracle, anemia, death / HF Cox, "
                                     "Aalen-Johansen"),
                       ("coverage", "bias, 95 %% CI coverage and power of the realistic study's hazard ratios over "
                                    "seeds"),
                       ("calibrate", "re-run the calibration of the realistic simulation (oracle r / AUROC, HF HR)")):
        p = sub.add_parser(name, help=text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--n-patients", type=int, default=None, help="patients per cohort (default 4000)")
        if name != "calibrate":
            p.add_argument("--out", type=Path, required=True, help="output folder")
        if name == "realistic":
            p.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
        if name == "coverage":
            p.add_argument("--seeds", type=int, required=True, help="number of seeds (0 .. N-1 from --first-seed)")
            p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
            p.add_argument("--shard", metavar="I/N", help="run only part I of N of the seeds, e.g. 2/4")
            p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(study=name)


def _run_realistic(args: argparse.Namespace) -> int:
    from ..experiments.study_coverage import CoverageSettings, run_realistic_study, with_overrides

    s = run_realistic_study(with_overrides(CoverageSettings(), args.n_patients), args.out, args.seed)
    o = s["oracle"]
    print(f"oracle: r = {o['r_calibration']:.3f}, AUROC (Hb <= 10) = {o['auroc_le10_calibration']:.3f} "
          f"(calibration cohort); r = {o['r_this_cohort']:.3f} in this cohort")
    for row in s["anemia"]:
        print(f"anemia {row['level']:>8}: n_pos {row['n_pos']:>4}  AUROC {row['auroc']:.3f}  sensitivity "
              f"{row['sensitivity']:.2f}  specificity {row['specificity']:.2f}")
    for row in s["cox"]:
        print(f"{row['estimand']:>24}: HR {row['hr']:.2f} ({row['ci_low']:.2f}-{row['ci_high']:.2f}), true "
              f"{row['true_hr']:.2f}; {row['events']} events / {row['n']}")
    print(f"wrote summary.json, study.md, anemia_metrics.csv, cox.csv and cif_hf_by_ecg_anemia.png to {args.out}")
    return 0


def _run_coverage(args: argparse.Namespace) -> int:
    from ..exceptions import ConfigError
    from ..experiments.grid import parse_shard
    from ..experiments.study_coverage import CoverageSettings, run_coverage, with_overrides, write_coverage_tables

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1 (the number of seeds), got {args.seeds}.")
    cs = with_overrides(CoverageSettings(), args.n_patients)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    done = run_coverage(cs, args.out, seeds, parse_shard(args.shard), progress=not args.quiet)
    table = write_coverage_tables(args.out, cs)
    print(table[["estimand", "seeds", "true_hr", "mean_hr", "bias_log_hr", "coverage_pct", "power_pct"]]
          .round(3).to_string(index=False))
    print(f"{len(done)} seeds in {args.out / 'results.csv'}; tables {args.out / 'coverage.csv'} and coverage.md")
    return 0 if len(done) >= len(seeds) else 1


def _run_calibrate(args: argparse.Namespace) -> int:
    from ..experiments.hb_realistic import calibrate
    from ..experiments.study_coverage import CoverageSettings, calibrate_hf_effect, with_overrides

    settings, oracle, steps = calibrate()
    for step in steps:
        print("oracle:", {k: round(v, 4) for k, v in step.items()})
    print(f"-> anemia_fraction {settings.anemia_fraction}, ecg_signal {settings.ecg_signal}: oracle r "
          f"{oracle.r:.4f}, AUROC {oracle.auroc:.4f}")
    cs = with_overrides(CoverageSettings(), args.n_patients, anemia_fraction=settings.anemia_fraction,
                        ecg_signal=settings.ecg_signal)
    value, hf_steps = calibrate_hf_effect(cs)
    for step in hf_steps:
        print("HF:", {k: round(v, 4) for k, v in step.items()})
    print(f"-> hr_hf_per_g_dl {value}")
    return 0


def _load(args: argparse.Namespace) -> dict[str, Any]:
    from ..experiments.study import load_study_config

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides += [f"study.seed={args.seed}", f"train.trainer.seed={args.seed}"]
    if args.epochs is not None:
        overrides.append(f"train.optim.epochs={args.epochs}")
    if getattr(args, "n_patients", None) is not None:
        overrides.append(f"simulation.n_patients={args.n_patients}")
    return load_study_config(args.config, overrides, profile="quick" if args.quick else None)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    for key in _HEADLINE:
        if key in summary:
            print(f"{key:>20}: {summary[key]}")
    print(f"wrote summary.json, study.md, tables/ and figures/ to {out}")


def _run_simulate(args: argparse.Namespace) -> int:
    from ..exceptions import ConfigError
    from ..experiments.study import run_simulation_study

    if args.seeds is not None:
        return _run_seeds(args)
    if args.shard is not None:
        raise ConfigError("--shard splits the seeds of a grid; add --seeds (e.g. --seeds 0,1,2,3 --shard 1/2).")
    summary = run_simulation_study(_load(args), args.out, progress=not args.quiet)
    _print_summary(summary, args.out)
    return 0


def _run_seeds(args: argparse.Namespace) -> int:
    """``study simulate --seeds``: the study once per seed on the grid runner; exit 1 when a seed failed."""
    from ..exceptions import ConfigError
    from ..experiments.grid import parse_shard, shard_runs
    from ..experiments.study_grid import StudyRun, run_study_grid

    try:
        seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds must be integers separated by commas, e.g. 0,1,2; got {args.seeds!r}.") from None
    shard = parse_shard(args.shard)
    table = run_study_grid(_load(args), args.out, seeds, shard, progress=not args.quiet)
    print(table[["run_key", "true_hazard_ratio", "hazard_ratio", "covers_truth", "hb_mae"]].to_string(index=False))
    failed = {r.key for r in shard_runs([StudyRun(s) for s in seeds], shard)} - set(table["run_key"].astype(str))
    print(f"results: {args.out / 'results.csv'} ({len(table)} seeds done)")
    if failed:
        print(f"{len(failed)} seed(s) of this shard failed; see {args.out / 'failures.csv'} (retried on the next "
              "start)")
    return 1 if failed else 0


def _run_hb(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..exceptions import ConfigError
    from ..experiments.study import CohortInputs, _prepare_out, run_hb_study

    def read(path: Path | None) -> Any:
        if path is None:
            return None
        if not path.is_file():
            raise ConfigError(f"{path} not found; pass an existing CSV file.")
        return pd.read_csv(path)

    cfg = _load(args)
    internal = CohortInputs("internal", read(args.ecgs), read(args.labs), read(args.outcomes))
    external = None
    if args.external_ecgs is not None:
        if args.external_labs is None:
            raise ConfigError("--external-ecgs needs --external-labs (the external cohort's Hb draws).")
        external = CohortInputs("external", read(args.external_ecgs), read(args.external_labs),
                                read(args.external_outcomes))
    summary = run_hb_study(internal, external, cfg, _prepare_out(args.out), progress=not args.quiet)
    _print_summary(summary, args.out)
    return 0


def _run_ptbxl_age(args: argparse.Namespace) -> int:
    from ..experiments.study import FeatureSettings, run_ptbxl_age_study
    from ..io.ptbxl import parse_folds

    folds = None if args.folds is None else [int(f) for f in parse_folds(args.folds)]
    features = FeatureSettings(method=args.feature_method, max_records=args.feature_records, workers=args.workers)
    summary = run_ptbxl_age_study(args.checkpoint, args.cache, args.out, folds, n_boot=args.n_boot, seed=args.seed,
                                  gap_threshold=args.gap_threshold, features=features, progress=not args.quiet)
    print(json.dumps(summary["gap_table"], indent=1))
    print(f"wrote summary.json, study.md, tables/, figures/ and evaluation/ to {args.out}")
    return 0


#: study name -> (add its parser, run it)
STUDIES: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]] = {
    "simulate": (_add_simulate, _run_simulate),
    "hb": (_add_hb, _run_hb),
    "ptbxl-age": (_add_ptbxl_age, _run_ptbxl_age),
    "realistic": (_add_realistic, _run_realistic),
    "coverage": (lambda sub: None, _run_coverage),
    "calibrate": (lambda sub: None, _run_calibrate),
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``study`` (with ``simulate``, ``hb`` and ``ptbxl-age``) to the ``ecglens`` parser."""
    p = sub.add_parser("study", help="end-to-end clinical studies (Hb / anemia / survival, ECG-age gap)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    studies = p.add_subparsers(dest="study", metavar="STUDY")
    for add, _ in STUDIES.values():
        add(studies)
    p.set_defaults(func=run_study, study_parser=p)


def run_study(args: argparse.Namespace) -> int:
    """Dispatch ``ecglens study <name>`` to its runner (no name: print the help)."""
    if getattr(args, "study", None) not in STUDIES:
        args.study_parser.print_help()
        return 2
    return STUDIES[args.study][1](args)
