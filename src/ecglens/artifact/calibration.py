"""Post-hoc calibration of a checkpoint's outputs, fitted on validation data and stored in the checkpoint.

Three corrections, each a closed-form or one-parameter fit on the predictions and truths of a validation split
(:func:`fit_calibration`), stored as a :class:`Calibration` in the checkpoint metadata (``"calibration"``):

**Age bias (the ECG-age gap corrected for chronological age).** A model of age regresses towards the mean of its
training data: it overestimates the young and underestimates the old, so the raw gap ``age - age_recorded``
correlates with ``age_recorded`` even for a perfectly healthy cohort. A line ``predicted = slope * recorded +
intercept`` is fitted on validation data (least squares); ``slope * recorded + intercept`` is then the **expected
predicted age** of a person of that age whose ECG looks typical for it, and the **corrected gap** is ``predicted -
(slope * recorded + intercept)``: the raw gap minus the gap expected from regression to the mean alone. This is the
residual form used by Le et al. (2018, "A nonlinear simulation framework supports adjusting for age when
analyzing BrainAGE", Front. Aging Neurosci.) and Smith et al. (2019, "Estimation of brain age delta from brain
imaging", NeuroImage); de Lange & Cole (2020, "Commentary: correction procedures in brain-age prediction",
NeuroImage: Clinical) fit the same line but divide: ``(predicted - intercept) / slope - recorded``, which is our
corrected gap divided by ``slope`` (larger by 1/slope, about 1.4 for the shipped models). We use the residual form
because it reads directly in years of the model's own output ("the ECG looks 3 y older than the model predicts
for typical people of this age") and does not inflate the gap; both are uncorrelated with the recorded age on the
fitting data and have mean 0 there. The correction needs the recorded age: the predicted age itself is never
changed, and without a recorded age there is no corrected gap. As any correction that uses the recorded age, it
must not be read as a better age estimate (Butler et al. 2021, "Pitfalls in brain age analyses", Hum. Brain
Mapp.).

**Predicted standard deviation (``age_std``).** A model trained with the Gaussian negative log-likelihood
predicts its own standard deviation, which is often too small. Variance (sigma) scaling (Levi et al. 2022,
"Evaluating and calibrating uncertainty prediction in regression tasks", Sensors 22:5540; Laves et al. 2020,
MIDL) multiplies it by one factor ``s`` fitted by maximum likelihood on validation data: ``s**2 = mean(((y -
mu) / sigma)**2)``. Coverage (the share of truths within ``z * sigma`` of the prediction) is reported at 1 and
1.96 SD (nominal 68.3 % and 95.0 %).

**Probabilities (``p_female``, any ``p_*``).** Temperature scaling (Guo et al. 2017, "On calibration of modern
neural networks", ICML): ``p' = sigmoid(logit(p) / T)`` with ``T`` minimising the negative log-likelihood on
validation data. It changes no ranking (AUROC is unchanged), only how sure the probabilities are.

Convention of calibrated outputs (:meth:`Calibration.apply`): ``age_std`` and ``p_*`` are replaced by their
calibrated values and the model's raw values are kept as ``age_std_raw`` / ``p_*_raw``; ``age`` is unchanged.
With the recorded age, ``age_gap = age - age_recorded`` and ``age_gap_corrected`` are added.

Coverage measured on the split the calibration was fitted on is **in-sample** (it matches nominal by
construction); the honest check is a different split (e.g. fit on an inner split of the training folds and
measure on fold 9, or fit on fold 9 and measure on fold 10).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit

from ..exceptions import ConfigError

__all__ = [
    "COVERAGE_LEVELS",
    "UNCERTAIN_BAND",
    "Calibration",
    "binary_label",
    "corrected_gap",
    "coverage",
    "fit_age_bias",
    "fit_calibration",
    "fit_std_scale",
    "fit_temperature",
    "gaussian_coverage",
]

#: z -> nominal two-sided coverage of a Gaussian (1 SD: 68.27 %, 1.96 SD: 95.00 %)
COVERAGE_LEVELS: dict[float, float] = {1.0: math.erf(1 / math.sqrt(2)), 1.96: math.erf(1.96 / math.sqrt(2))}
#: probabilities in this closed band are shown as "uncertain", not as a class
UNCERTAIN_BAND: tuple[float, float] = (0.35, 0.65)
_MIN_N = 20
_P_EPS = 1e-6


def _finite(*arrays: Any) -> tuple[np.ndarray, ...]:
    arrs = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    ok = np.logical_and.reduce([np.isfinite(a) for a in arrs])
    return tuple(a[ok] for a in arrs)


def _need(n: int, what: str) -> None:
    if n < _MIN_N:
        raise ConfigError(f"{what}: only {n} records with a truth and a prediction; calibration needs at least "
                          f"{_MIN_N}. Fit it on a larger validation split (e.g. --folds 9).")


# ----------------------------------------------------------------------------------------------- fitting
def fit_age_bias(age_recorded: Any, age_predicted: Any) -> tuple[float, float]:
    """Least-squares line ``predicted = slope * recorded + intercept`` (the age-bias line of the module docstring).

    Parameters
    ----------
    age_recorded, age_predicted : array-like, shape (n,)
        Chronological and predicted age in years (non-finite pairs are dropped).

    Returns
    -------
    slope, intercept : float
        ``slope`` is dimensionless, ``intercept`` in years.
    """
    t, p = _finite(age_recorded, age_predicted)
    _need(t.size, "age bias correction")
    if np.ptp(t) == 0:
        raise ConfigError("age bias correction: every recorded age is the same; the line cannot be fitted.")
    slope, intercept = np.polyfit(t, p, 1)
    if slope <= 0.05:
        raise ConfigError(f"age bias correction: the predicted age barely follows the recorded age (slope "
                          f"{slope:.3f}); dividing by it would blow the gap up. Check the model and the data.")
    return float(slope), float(intercept)


def corrected_gap(age_predicted: Any, age_recorded: Any, slope: float, intercept: float) -> np.ndarray:
    """Bias-corrected ECG-age gap in years: ``predicted - (slope * recorded + intercept)``; shape as inputs."""
    t = np.asarray(age_recorded, dtype=np.float64)
    return np.asarray(age_predicted, dtype=np.float64) - (slope * t + intercept)


def fit_std_scale(y_true: Any, y_pred: Any, y_std: Any) -> float:
    """Maximum-likelihood factor ``s`` for ``s * y_std`` (Gaussian errors): ``sqrt(mean(((y - mu)/sigma)**2))``."""
    t, p, s = _finite(y_true, y_pred, y_std)
    ok = s > 0
    t, p, s = t[ok], p[ok], s[ok]
    _need(t.size, "std scaling")
    return float(np.sqrt(np.mean(((t - p) / s) ** 2)))


def _nll(t: np.ndarray, z: np.ndarray, temperature: float) -> float:
    q = np.clip(expit(z / temperature), _P_EPS, 1 - _P_EPS)
    return float(-np.mean(t * np.log(q) + (1 - t) * np.log1p(-q)))


def fit_temperature(y_true: Any, y_prob: Any) -> float:
    """Temperature ``T`` (Guo et al. 2017) minimising the log loss of ``sigmoid(logit(p) / T)``; ``T > 1`` softens."""
    t, p = _finite(y_true, y_prob)
    _need(t.size, "temperature scaling")
    if np.unique(t).size < 2:
        raise ConfigError("temperature scaling: the validation data has only one class.")
    z = logit(np.clip(p, _P_EPS, 1 - _P_EPS))
    res = minimize_scalar(lambda log_t: _nll(t, z, math.exp(log_t)), bounds=(-3.0, 3.0), method="bounded")
    return float(math.exp(res.x))


# ----------------------------------------------------------------------------------------------- checking
def coverage(y_true: Any, y_pred: Any, y_std: Any, z: float = 1.0) -> float:
    """Share of truths within ``z * y_std`` of the prediction (NaN when no finite triple)."""
    t, p, s = _finite(y_true, y_pred, y_std)
    return float(np.mean(np.abs(t - p) <= z * s)) if t.size else float("nan")


def gaussian_coverage(y_true: Any, y_pred: Any, y_std: Any) -> dict[str, dict[str, float]]:
    """Observed vs nominal coverage at each of :data:`COVERAGE_LEVELS`: ``{"1.0": {nominal, observed}, ...}``."""
    return {f"{z:g}": {"z": z, "nominal": nominal, "observed": coverage(y_true, y_pred, y_std, z)}
            for z, nominal in COVERAGE_LEVELS.items()}


def binary_label(p: float, positive: str = "female", negative: str = "male",
                 band: tuple[float, float] = UNCERTAIN_BAND) -> str:
    """``positive`` above the band, ``negative`` below it, ``"uncertain"`` inside it (or for NaN)."""
    if p is None or not np.isfinite(p) or band[0] <= p <= band[1]:
        return "uncertain"
    return positive if p > band[1] else negative


# ----------------------------------------------------------------------------------------------- the object
@dataclass(frozen=True)
class Calibration:
    """Fitted calibration of one checkpoint (all optional; ``None``: that part not fitted).

    Attributes
    ----------
    age_slope, age_intercept : float or None
        Line ``predicted = slope * recorded + intercept`` (years) for the corrected gap.
    age_std_scale : float or None
        Factor applied to ``age_std``.
    temperatures : dict of str to float
        Temperature per probability output (``{"p_female": 1.2}``).
    folds : list or None
        Folds (or a description of the split) the fit used; ``n`` records.
    method : str
        The methods, in words (stored so a reader of the checkpoint knows).
    lead_rms_mv : dict of str to float
        Median RMS (mV) of each lead of the model inputs on the same records: the reference amplitudes a site
        gain matches another site's ECGs to (:mod:`ecglens.predict.site`); empty when not measured.
    """

    age_slope: float | None = None
    age_intercept: float | None = None
    age_std_scale: float | None = None
    temperatures: dict[str, float] = field(default_factory=dict)
    folds: Any = None
    n: int = 0
    method: str = ("age gap: residual of the line predicted ~ recorded age (Le et al. 2018; Smith et al. 2019); "
                   "age_std: sigma scaling (max. likelihood); probabilities: temperature scaling (Guo et al. 2017)")
    lead_rms_mv: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Calibration | None:
        """Rebuild from :meth:`to_dict` (unknown keys ignored, so newer files still load); ``None`` -> ``None``."""
        if not d:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in dict(d).items() if k in names}
        kept["temperatures"] = {str(k): float(v) for k, v in (kept.get("temperatures") or {}).items()}
        kept["lead_rms_mv"] = {str(k): float(v) for k, v in (kept.get("lead_rms_mv") or {}).items()}
        return cls(**kept)

    def parts(self, times: str = "x") -> list[str]:
        """The fitted corrections in words, one string each (only those this calibration has), e.g.
        ``["age_std x 1.074", "temperature p_female 1.173", "age-bias line predicted = 0.736 x age + 16.05 y"]``;
        ``times`` is the multiplication sign to use (``"&times;"`` in HTML)."""
        out = []
        if self.age_std_scale is not None:
            out.append(f"age_std {times} {self.age_std_scale:.3f}")
        if self.temperatures:
            out.append("temperature " + ", ".join(f"{k} {v:.3f}" for k, v in self.temperatures.items()))
        if self.has_age_bias:
            out.append(f"age-bias line predicted = {self.age_slope:.3f} {times} age + {self.age_intercept:.2f} y")
        if self.lead_rms_mv:
            out.append(f"reference amplitudes for site gains ({len(self.lead_rms_mv)} leads, median RMS "
                       f"{min(self.lead_rms_mv.values()):.3f}-{max(self.lead_rms_mv.values()):.3f} mV)")
        return out

    def describe(self, times: str = "x") -> str:
        """One line: where it was fitted and :meth:`parts`."""
        return f"fitted on folds {self.folds} (n={self.n}): " + "; ".join(self.parts(times))

    @property
    def has_age_bias(self) -> bool:
        return self.age_slope is not None and self.age_intercept is not None

    def expected_age(self, age_recorded: Any) -> np.ndarray:
        """Predicted age (years) expected for people of this recorded age whose ECG looks typical for it:
        ``slope * recorded + intercept``; the corrected gap is the predicted age minus this."""
        if not self.has_age_bias:
            raise ConfigError("this calibration has no age bias correction; fit one with `ecglens calibrate`.")
        return self.age_slope * np.asarray(age_recorded, dtype=np.float64) + self.age_intercept

    def apply(self, outputs: Mapping[str, Any], age_recorded: Any = None) -> dict[str, Any]:
        """Calibrated outputs (see the module docstring for the convention); inputs unchanged.

        Parameters
        ----------
        outputs : mapping of str to float or np.ndarray
            The model's outputs, e.g. ``{"age": years, "age_std": years, "p_female": prob}``. Outputs already
            holding a ``*_raw`` twin are taken as calibrated and left alone (applying twice is harmless).
        age_recorded : float or np.ndarray, optional
            Chronological age in years (NaN where unknown): adds ``age_gap`` and ``age_gap_corrected``.

        Returns
        -------
        dict
            Same keys plus ``age_std_raw``, ``p_*_raw`` (when calibrated), ``age_gap``, ``age_gap_corrected``.
        """
        out = dict(outputs)
        if self.age_std_scale is not None and "age_std" in out and "age_std_raw" not in out:
            out["age_std_raw"] = out["age_std"]
            out["age_std"] = np.asarray(out["age_std"], dtype=np.float64) * self.age_std_scale
        for name, temperature in self.temperatures.items():
            if name in out and f"{name}_raw" not in out:
                p = np.clip(np.asarray(out[name], dtype=np.float64), _P_EPS, 1 - _P_EPS)
                out[f"{name}_raw"] = out[name]
                out[name] = np.where(np.isfinite(p), expit(logit(p) / temperature), np.nan)
        if age_recorded is not None and "age" in out:
            out.update(age_gaps(out["age"], age_recorded, self))
        return {k: _scalar_like(v, outputs.get(k.removesuffix("_raw"), v)) for k, v in out.items()}


def age_gaps(age_predicted: Any, age_recorded: Any, calibration: Calibration | None) -> dict[str, np.ndarray]:
    """``age_gap`` (predicted - recorded) and, with an age bias correction, ``age_gap_corrected`` (years)."""
    p = np.asarray(age_predicted, dtype=np.float64)
    t = np.asarray(age_recorded, dtype=np.float64)
    gaps = {"age_gap": p - t}
    if calibration is not None and calibration.has_age_bias:
        gaps["age_gap_corrected"] = corrected_gap(p, t, calibration.age_slope, calibration.age_intercept)
    return gaps


def _scalar_like(value: Any, like: Any) -> Any:
    """A 0-d array back to a float when the input was a scalar (one-record outputs stay plain floats)."""
    arr = np.asarray(value)
    return float(arr) if arr.ndim == 0 and np.ndim(like) == 0 else value


def fit_calibration(outputs: Mapping[str, Any], truths: Mapping[str, Any], folds: Any = None,
                    probabilities: Sequence[tuple[str, str]] = (("p_female", "sex"),),
                    age: tuple[str, str] = ("age", "age")) -> Calibration:
    """Fit every correction the outputs allow on one validation split.

    Parameters
    ----------
    outputs : mapping of str to np.ndarray, each shape (n,)
        Raw (uncalibrated) predictions of the split: ``age``, ``age_std``, ``p_female``, ``p_*``...
    truths : mapping or DataFrame with columns of length n
        Truth columns: ``age`` (years), ``sex`` (1 female, 0 male), label columns for ``p_<LABEL>``.
    folds : any
        What the split was (stored as is, e.g. ``[9]``).
    probabilities : sequence of (output, truth column)
        Probability outputs to temperature-scale; ``p_<LABEL>`` outputs whose ``LABEL`` column exists are added.
    age : (output, truth column)
        The age output and its truth.

    Returns
    -------
    Calibration
        Parts whose output or truth is missing stay ``None``.
    """
    columns = set(truths.keys()) if hasattr(truths, "keys") else set()
    pairs = dict(probabilities)
    pairs.update({name: name[2:] for name in outputs if name.startswith("p_") and name[2:] in columns})
    kwargs: dict[str, Any] = {"temperatures": {}}
    n = 0
    out_age, col_age = age
    if out_age in outputs and col_age in columns:
        t = np.asarray(truths[col_age], dtype=np.float64)
        kwargs["age_slope"], kwargs["age_intercept"] = fit_age_bias(t, outputs[out_age])
        n = int(np.sum(np.isfinite(t) & np.isfinite(np.asarray(outputs[out_age], dtype=np.float64))))
        if f"{out_age}_std" in outputs:
            kwargs["age_std_scale"] = fit_std_scale(t, outputs[out_age], outputs[f"{out_age}_std"])
    for name, column in pairs.items():
        if name in outputs and column in columns:
            kwargs["temperatures"][name] = fit_temperature(np.asarray(truths[column], dtype=np.float64),
                                                           outputs[name])
            n = max(n, int(np.sum(np.isfinite(np.asarray(truths[column], dtype=np.float64)))))
    if kwargs.get("age_slope") is None and not kwargs["temperatures"]:
        raise ConfigError(f"nothing to calibrate: outputs {sorted(outputs)} have no truth among the columns "
                          f"{sorted(columns)} (age needs 'age', p_female needs 'sex').")
    folds = list(folds) if isinstance(folds, (list, tuple, range)) else folds
    return Calibration(folds=folds, n=n, **kwargs)
