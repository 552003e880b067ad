"""``ecglens survival``: Cox models and Kaplan-Meier curves of an ECG-derived prediction against outcomes.

The predictions table (e.g. written by ``ecglens predict``) and the outcome table are joined on a shared id.
Without ``--on`` the first of these (predictions column = outcomes column) that both tables have and whose values
overlap is used, in this order: ``record = record``, ``record = record_id``, ``record_id = record_id``,
``exam_id = exam_id``, ``patient_id = patient_id`` (a per-ECG id first; a patient id only when it is unique in
both tables). Columns present in both keep the outcome table's name and the prediction's copy gets ``_pred``.

A predictions table of ``ecglens predict`` with ``age_recorded`` has ``age_gap`` (predicted - recorded age) and,
for a calibrated model, ``age_gap_corrected`` (corrected for chronological age; docs/ecg_age.md): use them as
``--exposure`` directly. When only ``age`` and ``age_recorded`` are there, ``age_gap`` is derived here.

Examples::

    # HR per 10 years of the bias-corrected ECG-age gap, adjusted for the recorded age and sex (joined on exam_id)
    ecglens survival preds.csv exams.csv --outcome-preset code15 --exposure age_gap_corrected --per 10 \\
        --adjust age_recorded,sex_recorded --out results/ecg_age_corrected

    # HR per 10 years of ECG-age gap and by gap category (Lima et al. 2021), adjusted for age and sex
    ecglens survival preds.csv exams.csv --outcome-preset code15 --on exam_id --age-gap age_pred,age \\
        --exposure ecg_age_gap --per 10 --categorical ecg_age_gap_category --reference normal \\
        --adjust age,sex --out results/ecg_age

    # predicted hemoglobin, per SD, with custom outcome column names
    ecglens survival hb_preds.csv followup.csv --exposure hb_pred --per sd --time-col fu_years \\
        --event-col died --out results/hb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from ..jsonutil import json_ready

if TYPE_CHECKING:  # pandas is imported inside the handlers so that `ecglens --help` stays fast
    import pandas as pd

__all__ = ["JOIN_KEYS", "choose_join_key", "register", "run_survival"]

#: (predictions column, outcomes column) join keys, in order of preference
JOIN_KEYS: tuple[tuple[str, str], ...] = (("record", "record"), ("record", "record_id"), ("record_id", "record_id"),
                                          ("exam_id", "exam_id"), ("patient_id", "patient_id"))


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``survival`` to the ``ecglens`` parser."""
    p = sub.add_parser(
        "survival",
        help="Cox PH / Kaplan-Meier of an ECG-derived prediction against outcomes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("predictions", type=Path, metavar="PREDICTIONS.csv")
    p.add_argument("outcomes", type=Path, metavar="OUTCOMES.csv")
    p.add_argument("--exposure", required=True, help="continuous exposure column (after the join)")
    p.add_argument(
        "--per", default=None, help="HR per this many units of the exposure, or 'sd' (default 1 unit)"
    )
    p.add_argument(
        "--categorical", default=None, help="also analyse this categorical column (KM curves by it)"
    )
    p.add_argument("--reference", default=None, help="reference level of --categorical")
    p.add_argument(
        "--adjust", default="", help="comma-separated covariates of the adjusted model, e.g. age,sex"
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--on", default=None,
        help="join column present in both tables (default: the first of record, record=record_id, "
        "record_id, exam_id, patient_id that both have with overlapping values)"
    )
    p.add_argument("--outcome-preset", default="default", help="outcome column preset: default or code15")
    p.add_argument(
        "--time-col", default=None, help="follow-up time column of OUTCOMES (default: the preset's)"
    )
    p.add_argument(
        "--event-col", default=None, help="event column of OUTCOMES, 1 = event (default: the preset's)"
    )
    p.add_argument(
        "--age-gap",
        default=None,
        metavar="PRED,TRUE",
        help="derive ecg_age_gap = PRED - TRUE and ecg_age_gap_category from these columns",
    )
    p.add_argument(
        "--gap-threshold", type=float, default=8.0, help="years for the gap categories (default 8)"
    )
    p.add_argument("--km-groups", type=int, default=3, help="quantile groups for KM without --categorical")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    p.set_defaults(func=run_survival)


def _join(args: argparse.Namespace) -> pd.DataFrame:
    import pandas as pd

    from ..data.outcomes import read_outcomes

    if not args.predictions.is_file():
        raise ConfigError(f"predictions file {args.predictions} not found.")
    preds = pd.read_csv(args.predictions)
    columns = {k: v for k, v in (("time", args.time_col), ("event", args.event_col)) if v}
    outcomes = read_outcomes(args.outcomes, preset=args.outcome_preset, columns=columns)
    if "status" in preds.columns:  # error rows of `ecglens predict` have no prediction
        preds = preds[preds["status"].astype(str) != "error"].copy()
    if "age" in preds.columns and "age_recorded" in preds.columns and "age_gap" not in preds.columns:
        preds["age_gap"] = pd.to_numeric(preds["age"], errors="coerce") - pd.to_numeric(preds["age_recorded"],
                                                                                        errors="coerce")
    pred_key, key = (args.on, args.on) if args.on else choose_join_key(preds, outcomes)
    if pred_key not in preds.columns or key not in outcomes.columns:
        raise ConfigError(
            f"join column {key!r} is not in both tables; give --on with a column present in both "
            f"(predictions: {list(preds.columns)[:12]}, outcomes: {list(outcomes.columns)[:12]})."
        )
    if pred_key != key:
        preds = preds.rename(columns={pred_key: key})
    print(f"joining predictions.{pred_key} = outcomes.{key}")
    joined_on = key if pred_key == key else f"{pred_key}={key}"
    if outcomes[key].duplicated().any() or preds[key].duplicated().any():
        raise ConfigError(
            f"join column {key!r} is not unique in both tables; join on a per-ECG id (e.g. --on exam_id) "
            "or keep one ECG per patient first."
        )
    preds[key], outcomes[key] = preds[key].astype(str), outcomes[key].astype(str)
    merged = outcomes.merge(preds, on=key, how="inner", suffixes=("", "_pred"))
    if merged.empty:
        raise ConfigError(
            f"no {key!r} value is shared by the predictions and the outcome table; check the ids."
        )
    merged.attrs["joined_on"] = joined_on
    return merged


def choose_join_key(preds: pd.DataFrame, outcomes: pd.DataFrame) -> tuple[str, str]:
    """The first of :data:`JOIN_KEYS` both tables have whose values overlap (else the first both have).

    Raises
    ------
    ConfigError
        When the tables share none of them (the message lists both tables' columns and suggests ``--on``).
    """
    present = [(p, o) for p, o in JOIN_KEYS if p in preds.columns and o in outcomes.columns]
    for p, o in present:
        if set(preds[p].dropna().astype(str)) & set(outcomes[o].dropna().astype(str)):
            return p, o
    if present:
        return present[0]
    raise ConfigError(
        "no join column: the tables share none of " + ", ".join(f"{p}={o}" for p, o in JOIN_KEYS)
        + f"; give --on with a column present in both (predictions: {list(preds.columns)[:12]}, "
        f"outcomes: {list(outcomes.columns)[:12]})."
    )


def _add_age_gap(df: pd.DataFrame, spec: str, threshold: float) -> pd.DataFrame:
    from ..data.outcomes import ecg_age_gap, gap_category

    parts = [s.strip() for s in spec.split(",")]
    if len(parts) != 2 or any(p not in df.columns for p in parts):
        raise ConfigError(
            f"--age-gap needs two existing columns PRED,TRUE; got {spec!r} "
            f"(columns: {list(df.columns)[:20]})."
        )
    df["ecg_age_gap"] = ecg_age_gap(df[parts[0]], df[parts[1]])
    df["ecg_age_gap_category"] = gap_category(df["ecg_age_gap"], threshold)  # same index; category dtype kept
    return df


def _analyses(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """analysis name -> keyword arguments of CoxAnalysis.fit (dispatch table built from the options)."""
    adjust = [c.strip() for c in args.adjust.split(",") if c.strip()]
    per: Any = args.per
    if per is not None and str(per).lower() != "sd":
        try:
            per = float(per)
        except ValueError:
            raise ConfigError(f"--per must be a number or 'sd', got {args.per!r}.") from None
    runs = {"continuous": {"exposure": args.exposure, "per": per, "categorical": False, "adjust": adjust}}
    if args.categorical:
        runs["categorical"] = {
            "exposure": args.categorical,
            "categorical": True,
            "reference": args.reference,
            "adjust": adjust,
        }
    return runs


def run_survival(args: argparse.Namespace) -> int:
    """Handler of ``ecglens survival``: join, fit, write tables (md/csv/json) and KM figure(s)."""
    import pandas as pd

    from ..evaluate.survival import CoxAnalysis

    df = _join(args)
    if args.age_gap:
        df = _add_age_gap(df, args.age_gap, args.gap_threshold)
    args.out.mkdir(parents=True, exist_ok=True)
    results, markdown, summaries, ph = {}, [], [], []
    for name, kw in _analyses(args).items():
        cox = CoxAnalysis("time", "event", alpha=args.alpha).fit(df, **kw)
        km = cox.plot_km(args.out / f"km_{name}.png", groups=args.km_groups)
        results[name] = {
            **cox.to_dict(),
            "km_figure": km.path.name,
            "logrank_p": km.logrank_p,
            "at_risk": {str(k): v for k, v in km.at_risk.to_dict(orient="index").items()},
        }
        markdown.append(cox.to_markdown() + f"\n![Kaplan-Meier]({km.path.name})\n")
        summaries.append(cox.summary_.assign(analysis=name))
        ph.append(cox.ph_test_.assign(analysis=name))
    meta = {
        "predictions": str(args.predictions),
        "outcomes": str(args.outcomes),
        "n_joined": len(df),
        "joined_on": df.attrs.get("joined_on"),
        "outcome_preset": args.outcome_preset,
    }
    (args.out / "survival.md").write_text("\n".join(markdown))
    pd.concat(summaries, ignore_index=True).to_csv(args.out / "cox_summary.csv", index=False)
    pd.concat(ph, ignore_index=True).to_csv(args.out / "ph_test.csv", index=False)
    (args.out / "survival.json").write_text(
        json.dumps(json_ready({"inputs": meta, "analyses": results}, default=str), indent=2, allow_nan=False)
    )
    print("\n".join(markdown))
    print(f"wrote survival.md, cox_summary.csv, ph_test.csv, survival.json and KM figure(s) to {args.out}")
    return 0
