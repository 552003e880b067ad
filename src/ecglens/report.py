"""The one-ECG HTML report: tracing, predictions with uncertainty, attributions and the model card.

:func:`write_report` reads one record (any format), predicts with a checkpoint through
:class:`~ecglens.predict.Predictor` and writes a **self-contained** HTML page (inline CSS, images embedded as
base64 SVG, vector graphics sharp at any zoom, or PNG at 300 dpi: ``image_format``; no scripts, no external
assets) with

* the predictions with their uncertainty: the predicted standard deviation (``age_std``, recalibrated when the
  checkpoint stores a calibration) and the spread across windows of a long recording; the ECG-age gap when the
  true age is known (from the file header, or given), raw and corrected for chronological age (Le et al.
  2018; docs/ecg_age.md) when the checkpoint has the correction; the sex as "uncertain" when the probability
  lies in :data:`~ecglens.artifact.calibration.UNCERTAIN_BAND`;
* what was done to the record to fit the model (resampling, derived leads, unit conversion, padding) and the
  quality flags;
* the 12-lead tracing on ECG paper (25 mm/s, 10 mm/mV) as recorded;
* an attribution overlay (integrated gradients of one output, by default the age) mapped back onto the
  displayed tracing, a lead-importance bar chart, and a plain statement of what such maps show;
* a model card: architecture, task, training data and splits, input contract and validation metrics, all read
  from the checkpoint.

>>> write_report("rec.hea", "report.html", model="age-sex", true_age=63)   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .artifact.calibration import UNCERTAIN_BAND
from .ecg import Ecg
from .evaluate import explain
from .exceptions import ConfigError, EcglensError
from .plot import plot_ecg
from .predict import Prediction, Predictor, PreparedEcg, read_record, record_key
from .predict.postprocess import calibrate_record

__all__ = ["IMAGE_FORMATS", "AttributionSummary", "build_report", "explained_output_index", "write_report"]

#: figure resolution while drawing (sizes of text and lines; a PNG is written at its own dpi below)
_DPI = 110
#: image format of the report's figures -> (MIME type, dpi of a raster file; None: vector)
IMAGE_FORMATS: dict[str, tuple[str, float | None]] = {
    "svg": ("image/svg+xml", None), "png": ("image/png", 300.0)}
#: seconds of the record shown on the page (and explained)
_PAGE_SECONDS = 10.0


# ============================================================================================ attribution
@dataclass(frozen=True)
class AttributionSummary:
    """Attributions of one output, mapped onto the displayed record.

    Attributes
    ----------
    output : str
        The explained output (e.g. ``"age"``).
    unit : str
        Unit of the attribution values (``"years"`` for a regression output, ``"logit"`` for a probability).
    method : str
        ``"integrated_gradients"`` or ``"saliency"``.
    overlay : np.ndarray, shape (n_leads, n_samples)
        Per lead and sample of the displayed record (its fs); NaN where not explained.
    importance : np.ndarray, shape (n_leads,)
        Share of the absolute attribution per lead (sums to 1).
    leads : tuple of str
    n_windows : int
        Model windows explained (those overlapping the displayed page).
    attr_sum, output_delta : float
        Mean over windows of the attribution sum and of ``f(x) - f(flat line)`` (integrated gradients only;
        equal up to the integration error).
    """

    output: str
    unit: str
    method: str
    overlay: np.ndarray
    importance: np.ndarray
    leads: tuple[str, ...]
    n_windows: int
    n_steps: int
    attr_sum: float = float("nan")
    output_delta: float = float("nan")


def explained_output_index(task: Any, name: str) -> tuple[int, float, str]:
    """Raw model output column of output ``name``, its scale to natural units and the unit's name.

    For a regression output the raw column is standardised (``(y - mean) / std``) and its attributions are
    multiplied by ``std`` to read in natural units (years); probabilities are explained on their logit.
    """
    names = list(task.output_names)
    if name not in names:
        raise ConfigError(f"output {name!r} is not predicted by this model; choose one of {names}.")
    offset = 0
    for target in task.targets:
        if name in target.output_names:
            if target.num_outputs != len(target.output_names):
                raise ConfigError(f"output {name!r} has no raw column of its own to explain.")
            index = offset + list(target.output_names).index(name)
            regression = getattr(target, "out_name", None) == name and getattr(target, "std", None)
            return index, (float(target.std) if regression else 1.0), (
                "years" if regression and name == "age" else ("output units" if regression else "logit"))
        offset += target.num_outputs
    raise ConfigError(f"output {name!r} not found among the task's targets.")  # pragma: no cover


def _explain(predictor: Predictor, prepared: PreparedEcg, output: str, method: str,
             n_steps: int) -> AttributionSummary:
    """Attributions of the windows overlapping the displayed page, mapped to the record's native samples."""

    ecg, pre = prepared.ecg, predictor.preprocess
    index, scale, unit = explained_output_index(predictor.checkpoint.task, output)
    shown = [i for i, s in enumerate(prepared.starts) if s / pre.fs < _PAGE_SECONDS] or [0]
    x = prepared.windows[shown]
    model = predictor.checkpoint.model
    attr = explain.attribute(model, x, index, method=method, n_steps=n_steps) * scale
    attr_sum = delta = float("nan")
    if method == "integrated_gradients":
        gap = explain.completeness_gap(model, x, attr / scale, index) * scale
        attr_sum = float(attr.reshape(len(x), -1).sum(axis=1).mean())
        delta = attr_sum - float(np.mean(gap))
    timeline = explain.windows_to_timeline(attr, [prepared.starts[i] for i in shown], prepared.n_resampled)
    overlay = explain.resample_attribution(timeline, pre.fs, ecg.fs, ecg.n_samples)
    labels = tuple(lead + ("*" if lead in ecg.derived_leads else "") for lead in ecg.leads)
    return AttributionSummary(output, unit, method, overlay, explain.lead_importance(np.nan_to_num(timeline)),
                              labels, len(shown), n_steps, attr_sum, delta)


# ============================================================================================ figures
def _image(fig: Any, image_format: str) -> str:
    """A matplotlib figure as a ``data:`` URI: base64 SVG (vector) or PNG (300 dpi), see :data:`IMAGE_FORMATS`."""
    mime, dpi = IMAGE_FORMATS[image_format]
    buf = io.BytesIO()
    fig.savefig(buf, format=image_format, dpi=dpi or _DPI, facecolor=fig.get_facecolor(),
                metadata={"Date": None} if image_format == "svg" else None)
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _importance_figure(summary: AttributionSummary) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.2), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    share = 100 * np.asarray(summary.importance)
    pos = np.arange(len(share))
    ax.bar(pos, share, color="#1f4e79")
    ax.axhline(100 / max(1, len(share)), color="#999999", lw=0.8, ls="--", label="equal share")
    ax.set_xticks(pos, summary.leads)
    ax.set_ylabel("share of |attribution| (%)")
    ax.set_title(f"Lead importance for the {summary.output} output", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


# ============================================================================================ html pieces
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}
main{max-width:1180px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:1.55em;margin:0 0 4px} h2{font-size:1.15em;margin:28px 0 8px;border-bottom:1px solid #d0d4da;
padding-bottom:4px} .sub{color:#5b6470;font-size:.92em}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin-top:14px}
.card{background:#fff;border:1px solid #d8dce2;border-radius:8px;padding:12px 16px;min-width:200px;flex:1}
.card .k{color:#5b6470;font-size:.82em;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:1.6em;font-weight:600;margin:2px 0} .card .n{font-size:.85em;color:#3d4650}
table{border-collapse:collapse;background:#fff;font-size:.92em} td,th{border:1px solid #d8dce2;padding:4px 9px;
text-align:left} th{background:#eef0f3} img{max-width:100%;border:1px solid #d8dce2;background:#fff}
img.trace{width:100%;height:auto}
.flag{display:inline-block;background:#fff4d6;border:1px solid #e7c66a;border-radius:4px;padding:1px 7px;
margin:2px 4px 2px 0;font-size:.88em} .ok{background:#e5f5e8;border-color:#8ccf98}
.note{background:#fff;border-left:4px solid #1f4e79;padding:8px 14px;font-size:.93em;line-height:1.45}
.warn{border-left-color:#c0392b} footer{margin-top:30px;color:#5b6470;font-size:.85em}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, (float, np.floating)):
        return "&ndash;" if not np.isfinite(value) else f"{value:.{digits}g}"
    return _esc(value)


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...] | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _card(key: str, value: str, note: str = "") -> str:
    return f'<div class="card"><div class="k">{key}</div><div class="v">{value}</div><div class="n">{note}</div></div>'


def _age_cards(pred: Prediction, shown: Mapping[str, Any], true_age: float | None, age_source: str,
               metrics: Mapping[str, Any]) -> list[str]:
    age = shown["outputs"]["age"]
    sd = shown["outputs"].get("age_std")
    cal = shown["calibration"]
    value = f"{age:.1f}" + (f" &plusmn; {sd:.1f}" if sd is not None and np.isfinite(sd) else "") + " y"
    spread = pred.window_spread.get("age", float("nan"))
    what_sd = ("&plusmn; is the predicted standard deviation, recalibrated on validation data "
               f"(model's own: {shown['raw'].get('age_std', float('nan')):.1f} y). " if "age_std" in shown["raw"]
               else "&plusmn; is the model's own predicted standard deviation (not recalibrated). ")
    note = (what_sd if sd is not None else "") + (
        f"Spread across {pred.n_windows} windows: {spread:.1f} y." if np.isfinite(spread)
        else "One 10 s window (no spread across windows).")
    cards = [_card("ECG-predicted age", value, note)]
    if true_age is None or shown["age_gap"] is None:
        return cards
    gap, corrected = shown["age_gap"], shown["age_gap_corrected"]
    mae = metrics.get("age_mae")
    error = f"its validation MAE is {mae:.1f} y" if isinstance(mae, (int, float)) else "see the model card"
    source = f"true age {true_age:g} y, from {_esc(age_source)}"
    if corrected is None:
        cards.append(_card("ECG-age gap (raw, not corrected)", f"{gap:+.1f} y",
                           f"Predicted minus true age ({source}). <b>Not corrected for age</b>: this model stores no "
                           "bias correction, and models of age overestimate the young and underestimate the old "
                           "(regression to the mean), so part of this gap is expected at this age alone. "
                           f"A gap within the model's error ({error}) says little about one person."))
        return cards
    expected = (cal["age_slope"] * true_age + cal["age_intercept"]) - true_age
    cards.append(_card("ECG-age gap, corrected for age", f"{corrected:+.1f} y",
                       f"Raw gap (predicted minus true age, {source}): {gap:+.1f} y. For people of this age whose "
                       f"ECG looks typical for their age the model predicts {expected:+.1f} y on average "
                       "(regression to the mean, fitted on validation folds "
                       f"{_esc(cal['folds'])}); the corrected gap is the raw gap minus that (Le et al. 2018; "
                       "Smith et al. 2019). "
                       "Positive: the ECG looks older than expected for the patient's age. A gap within the "
                       f"model's error ({error}) says little about one person."))
    return cards


def _sex_card(pred: Prediction, shown: Mapping[str, Any], true_sex: str | None) -> str:
    p = shown["outputs"]["p_female"]
    label = shown["calls"].get("p_female", "uncertain")
    low, high = UNCERTAIN_BAND
    note = f"Probability of female sex {p:.2f}"
    if "p_female" in shown["raw"]:
        note += f" (temperature-scaled; model's own {shown['raw']['p_female']:.2f})"
    spread = pred.window_spread.get("p_female", float("nan"))
    note += f", spread across windows {spread:.2f}." if np.isfinite(spread) else "."
    if label == "uncertain":
        note += f" Between {low:g} and {high:g} the ECG does not settle the question: shown as uncertain."
    if true_sex:
        note += f" Recorded sex: {'female' if true_sex == 'F' else 'male'}."
    return _card("ECG-predicted sex", label, note)


#: probability output -> what it is the probability of (others are shown by their name)
_PROBABILITY_TEXT: dict[str, str] = {
    "p_NORM": "normal ECG", "p_MI": "myocardial infarction", "p_STTC": "ST/T change",
    "p_CD": "conduction disturbance", "p_HYP": "hypertrophy",
}


def _probability_card(name: str, shown: Mapping[str, Any], pred: Prediction, metrics: Mapping[str, Any]) -> str:
    """A headline card for a probability other than ``p_female`` (a diagnosis): the probability in percent."""
    p = shown["outputs"][name]
    what = _PROBABILITY_TEXT.get(name, name.removeprefix("p_"))
    note = f"Probability of {_esc(what)}"
    if name in shown["raw"]:
        note += f" (temperature-scaled; model's own {shown['raw'][name]:.2f})"
    spread = pred.window_spread.get(name, float("nan"))
    note += f", spread across windows {spread:.2f}." if np.isfinite(spread) else "."
    auroc = metrics.get(f"{name.removeprefix('p_')}_auroc")
    if isinstance(auroc, (int, float)):
        note += f" Validation AUROC of this output: {auroc:.3f}."
    return _card(_esc(what), f"{100 * p:.0f} %" if np.isfinite(p) else "&ndash;", note)


#: flag kind -> sentence (``{}`` is the flag's value)
_FLAG_TEXT: dict[str, str] = {
    "calibration_removed": "the calibration pulse the cart stored with the waveform was cut off",
    "resampled": "resampled {} Hz to fit the model",
    "derived": "leads {} computed from I and II (not recorded)",
    "unit_converted": "amplitudes converted {} (they were not in millivolts)",
    "padded": "shorter than the model window: zero-padded",
    "cropped": "part of the recording lies in no model window",
    "flat": "lead {} is flat (disconnected electrode?)",
    "noisy": "lead {} is noisy (broadband noise as strong as the ECG)",
    "saturated": "lead {} is saturated (clipped at the amplifier's limit)",
    "nan": "lead {} has missing (NaN) samples",
}


def _flags_html(prepared: PreparedEcg) -> str:
    if not prepared.flags and not prepared.warnings:
        return '<p><span class="flag ok">no adjustment needed, no quality problem found</span></p>'
    items = []
    for flag in prepared.flags:
        kind, _, value = flag.partition(":")
        text = _FLAG_TEXT.get(kind, flag).format(value.replace("->", " &rarr; "))
        items.append(f'<span class="flag">{_esc(flag)}</span> {text}')
    items += [f'<span class="flag">warning</span> {_esc(w)}' for w in prepared.warnings]
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _predictions_table(pred: Prediction, shown: Mapping[str, Any]) -> str:
    raw = shown["raw"]
    rows = [(_esc(name), _fmt(value, 4), _fmt(raw.get(name, value), 4),
             _fmt(pred.window_spread.get(name, float("nan")), 3)) for name, value in shown["outputs"].items()]
    rows += [(_esc(k), _fmt(shown[k], 3), "", "") for k in ("age_gap", "age_gap_corrected") if shown[k] is not None]
    parts = [what for key, what in (("age_std", "age_std (scaled)"), ("p_", "probabilities (temperature)"))
             if any(name.startswith(key) for name in raw)]
    gaps = (" Gaps in years, predicted minus true age (corrected: for chronological age)."
            if shown["age_gap"] is not None else "")
    note = (f"<p class='sub'>Calibrated: {' and '.join(parts) or 'nothing this model outputs'}; the model's own "
            f"values beside them.{gaps}</p>"
            if shown["calibration"] else "<p class='sub'>This model stores no calibration: raw outputs.</p>")
    return _table(rows, ("output", "shown (mean over windows)", "model's own", "SD across windows")) + note


# ============================================================================================ sections
def _attribution_html(summary: AttributionSummary | None, ecg: Ecg, pre: Any, error: str | None,
                      image_format: str) -> str:

    if summary is None:
        return f'<p class="note warn">No attribution map: {_esc(error or "switched off")}.</p>'
    fig = plot_ecg(ecg, title=f"Integrated gradients for '{summary.output}' (red raises, blue lowers the output)"
                   if summary.method == "integrated_gradients" else f"Saliency |d {summary.output} / dx|",
                   overlay=summary.overlay, overlay_cmap="RdBu_r" if summary.method == "integrated_gradients"
                   else "Reds", dpi=_DPI)
    check = ""
    if np.isfinite(summary.attr_sum):
        check = (f" Completeness check: the attributions of a window sum to {summary.attr_sum:.2f} {summary.unit} "
                 f"on average, against {summary.output_delta:.2f} {summary.unit} for the difference between "
                 f"the output for this ECG and for a flat line.")
    what = ("Integrated gradients (zero baseline = a flat line at 0 mV, "
            f"{summary.n_steps} steps) split the difference between the {summary.output} predicted for this ECG "
            f"and for a flat line over every lead and sample, in {summary.unit}: red samples push the output up, "
            "blue ones down." if summary.method == "integrated_gradients" else
            "Saliency is the absolute gradient of the output: where a small change of the signal would move it.")
    return (f'<img class="trace" src="{_image(fig, image_format)}" alt="attribution overlay">'
            f'<p class="note">{what} They are computed on what the model sees ({_esc(pre.describe())}) for '
            f"the {summary.n_windows} window(s) on the page and interpolated onto the displayed tracing "
            f"(overlapping windows averaged).{check}</p>"
            '<p class="note warn">What this does <b>not</b> show: attributions describe the model, not the '
            "heart. A highlighted segment is not necessarily abnormal, gradient attributions are noisy and depend "
            "on the baseline, and they have not been validated clinically. Use them to check that the model "
            "looks at the ECG waves rather than at artefacts, padding or one noisy lead.</p>"
            "<h3>Lead importance</h3><p class=\"sub\">Share of the absolute attribution carried by each lead "
            "in the explained window(s); the dashed line is an equal share. Leads marked * were computed from I "
            "and II, so their share is really a share of I and II.</p>"
            f'<img src="{_image(_importance_figure(summary), image_format)}" alt="lead importance" '
            'style="max-width:620px">')


def _model_card_html(predictor: Predictor) -> str:
    ck = predictor.checkpoint
    config = ck.config or {}
    data = config.get("data") or {}
    training = (f"cache <code>{_esc(data.get('cache', '?'))}</code>, train folds {_esc(data.get('train_folds', '?'))}"
                f", validation folds {_esc(data.get('val_folds', '?'))}" if data else "not recorded in the checkpoint")
    rows = [("model", f"{_esc(ck.model_name)} <span class='sub'>{_esc(ck.model_kwargs or '')}</span>"),
            ("checkpoint", _esc(Path(ck.path).name if getattr(ck, "path", None) else "in memory")),
            ("task", f"{_esc(ck.task.name)}: outputs {_esc(', '.join(ck.task.output_names))}"),
            ("training data", training),
            ("input contract", _esc(predictor.preprocess.describe())),
            ("ecglens version / created", f"{_esc(ck.version)} / {_esc(ck.created)}")]
    stored = dict(ck.metrics or {})
    metrics = [(_esc(k), _fmt(v, 4) if not isinstance(v, list) else _esc(v),
                _esc("[" + ", ".join(_fmt(x, 4) for x in stored[f"{k}_ci"]) + "]") if f"{k}_ci" in stored else "")
               for k, v in sorted(stored.items()) if not k.endswith("_ci")]
    cal = getattr(ck, "calibration", None)
    rows.append(("calibration", "none: outputs are the model's own" if cal is None else
                 f"fitted on folds {_esc(cal.folds)} (n={cal.n}): "
                 + "; ".join(_esc(part).replace(" x ", " &times; ") for part in cal.parts())))
    card = _model_card_text(ck)
    return (_table(rows) + "<h3>Validation metrics (stored in the checkpoint)</h3>"
            + (_table(metrics, ("metric", "value", "95% CI")) if metrics else "<p>none stored</p>")
            + ("<p class='sub'>Calibration metrics (coverage, ECE) measured on the folds the calibration was "
               "fitted on are in-sample.</p>" if stored.get("calibration_in_sample") else "") + card)


def _model_card_text(ck: Any) -> str:
    """The model card shipped beside the weights (``<name>.md``), as preformatted text, when there is one."""
    path = Path(ck.path).with_suffix(".md") if getattr(ck, "path", None) else None
    if path is None or not path.is_file():
        return ""
    return f"<details><summary>Model card ({_esc(path.name)})</summary><pre>{_esc(path.read_text())}</pre></details>"


# ============================================================================================ assembly
@dataclass
class _Content:
    record: str
    ecg: Ecg
    prepared: PreparedEcg
    prediction: Prediction
    true_age: float | None
    age_source: str
    attribution: AttributionSummary | None
    attribution_error: str | None
    image_format: str = "svg"
    shown: Mapping[str, Any] | None = None


def _summary_html(c: _Content, predictor: Predictor) -> str:
    cards: list[str] = []
    if "age" in c.prediction.outputs:
        cards += _age_cards(c.prediction, c.shown, c.true_age, c.age_source, predictor.checkpoint.metrics or {})
    if "p_female" in c.prediction.outputs:
        cards.append(_sex_card(c.prediction, c.shown, c.ecg.sex))
    cards += [_probability_card(name, c.shown, c.prediction, predictor.checkpoint.metrics or {})
              for name in c.prediction.outputs if name.startswith("p_") and name != "p_female"]
    cards.append(_card("windows", str(c.prediction.n_windows),
                       f"{predictor.preprocess.seconds:g} s model windows over {c.prepared.ecg.duration:.1f} s"))
    return f'<div class="cards">{"".join(cards)}</div>'


def _render(c: _Content, predictor: Predictor) -> str:

    tracing = _image(plot_ecg(c.prepared.ecg, title=None, dpi=_DPI), c.image_format)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (f"<h1>ECG report: {_esc(c.record)}</h1>"
            f'<div class="sub">{_esc(c.ecg.source or c.record)} &middot; {c.ecg.fs:g} Hz, {c.ecg.n_leads} leads, '
            f"{c.ecg.duration:.1f} s &middot; model {_esc(predictor.model_label)} &middot; {when}</div>"
            + _summary_html(c, predictor)
            + "<h2>Predictions</h2>" + _predictions_table(c.prediction, c.shown)
            + "<h2>Adjustments and signal quality</h2>" + _flags_html(c.prepared)
            + "<h2>12-lead tracing</h2>"
            + f'<img class="trace" src="{tracing}" alt="12-lead ECG"><p class="sub">As recorded (first '
            f"{_PAGE_SECONDS:g} s), 25 mm/s, 10 mm/mV; * marks leads derived from I and II.</p>"
            + "<h2>What the model looked at</h2>"
            + _attribution_html(c.attribution, c.prepared.ecg, predictor.preprocess, c.attribution_error,
                                c.image_format)
            + "<h2>Model card</h2>" + _model_card_html(predictor)
            + f"<footer>Generated by ecglens {_esc(__version__)}. For research use: not a medical device, not a "
              "diagnosis. Predictions are only as good as the model's training data (see the model card).</footer>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ECG report: {_esc(c.record)}'
            f"</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>")


def _load(source: str | os.PathLike[str] | Ecg, read_kwargs: Mapping[str, Any] | None) -> tuple[str, Ecg]:
    if isinstance(source, Ecg):
        return source.record_id or "ECG", source
    name, target = record_key(Path(source).expanduser())
    ecg = read_record(target, read_kwargs)
    return ecg.record_id or Path(name).name, ecg


def build_report(source: str | os.PathLike[str] | Ecg, model: str | os.PathLike[str] = "age-sex", *,
                 predictor: Predictor | None = None, true_age: float | None = None,
                 read_kwargs: Mapping[str, Any] | None = None, explain: str | None = "age",
                 method: str = "integrated_gradients", n_steps: int = 32, image_format: str = "svg") -> str:
    """The HTML text of the one-ECG report (see the module docstring).

    Parameters
    ----------
    source : path or Ecg
        A record in any supported format, or an :class:`~ecglens.ecg.Ecg`.
    model : str or path
        Shipped model name or checkpoint path (ignored when ``predictor`` is given).
    predictor : Predictor, optional
        An existing predictor.
    true_age : float, optional
        The patient's age in years (default: from the file header, when present).
    read_kwargs : mapping, optional
        Reader options for raw arrays (``fs``, ``leads``, ``units``).
    explain : str or None
        Output to attribute (default ``"age"``; the first output when the model has no age; ``None``: no map).
    method : {"integrated_gradients", "saliency"}
    n_steps : int
        Integration steps of integrated gradients.
    image_format : {"svg", "png"}
        The figures as vector SVG (default; sharp at any zoom) or PNG at 300 dpi, embedded in the page either way.

    Returns
    -------
    str
        A complete, self-contained HTML document.
    """
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}.")
    predictor = predictor or Predictor.from_pretrained(model)
    record, ecg = _load(source, read_kwargs)
    prepared = predictor.adapter.prepare(ecg, record=record, keep_ecg=True)
    prediction = predictor.predict_prepared(prepared)
    age, age_source = (float(true_age), "--true-age") if true_age is not None else (ecg.age, "the file header")
    summary, error = None, None
    if explain is not None:
        output = explain if explain in predictor.output_names else predictor.output_names[0]
        if explain != output and explain != "age":
            raise ConfigError(f"cannot explain {explain!r}: the model predicts {list(predictor.output_names)}.")
        try:
            summary = _explain(predictor, prepared, output, method, n_steps)
        except EcglensError as err:
            error = str(err)
    shown = calibrate_record(prediction.outputs, predictor, age)
    content = _Content(record, ecg, prepared, prediction, age, age_source, summary, error, image_format, shown)
    return _render(content, predictor)


def write_report(source: str | os.PathLike[str] | Ecg, out: str | os.PathLike[str],
                 model: str | os.PathLike[str] = "age-sex", **kwargs: Any) -> Path:
    """Write :func:`build_report` to ``out`` (folders created); returns the path. ``kwargs`` as build_report."""
    text = build_report(source, model, **kwargs)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

