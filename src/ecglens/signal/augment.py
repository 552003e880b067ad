"""Train-time augmentations of one ECG sample.

Every function takes ``x`` as a float array ``[n_leads, n_samples]`` in mV (float32 from the cache), the
sampling rate ``fs`` in Hz where time matters, and an explicit :class:`numpy.random.Generator`; it returns a
**new** float32 array and never modifies ``x``. Use them on training data only; evaluation and prediction use
:class:`~ecglens.signal.transforms.Preprocess` alone.

:class:`Augment` bundles them into a serialisable spec (each augmentation applied with its own probability),
all off by default; :meth:`Augment.default` is a mild preset for age / sex / diagnosis models.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import ConfigError
from .functional import crop_or_pad, resample

__all__ = [
    "Augment",
    "amplitude_scale",
    "baseline_wander",
    "chest_gain",
    "gaussian_noise",
    "lead_dropout",
    "limb_lead_swap",
    "lowpass",
    "powerline",
    "precordial_swap",
    "random_crop",
    "resample_roundtrip",
    "time_shift",
]

#: canonical 12-lead order the lead-swap augmentations assume (``ecglens.leads.STANDARD_12``)
_LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")


def _f32(x: np.ndarray) -> np.ndarray:
    """A float32 copy of ``x`` (always a copy, so callers may write to it)."""
    return np.array(x, dtype=np.float32, copy=True)


def gaussian_noise(x: np.ndarray, rng: np.random.Generator, std_mv: float = 0.02) -> np.ndarray:
    """Add white Gaussian noise.

    Parameters
    ----------
    x : np.ndarray, shape (n_leads, n_samples)
        Signal in mV.
    rng : np.random.Generator
        Random source.
    std_mv : float
        Noise standard deviation in mV (0.02 mV: about 2 % of a typical QRS).

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    return (_f32(x) + rng.normal(0.0, std_mv, size=np.shape(x))).astype(np.float32)


def baseline_wander(
    x: np.ndarray,
    fs: float,
    rng: np.random.Generator,
    amplitude_mv: float = 0.1,
    max_freq_hz: float = 0.5,
    n_components: int = 3,
) -> np.ndarray:
    """Add baseline wander: a sum of low-frequency sines, common to all leads with per-lead gains.

    Parameters
    ----------
    x : np.ndarray, shape (n_leads, n_samples)
        Signal in mV sampled at ``fs``.
    fs : float
        Sampling rate in Hz.
    rng : np.random.Generator
        Random source.
    amplitude_mv : float
        Peak amplitude of each sine in mV (drawn uniformly up to this value).
    max_freq_hz : float
        Highest sine frequency (Hz); respiration is 0.15-0.4 Hz, electrode drift lower.
    n_components : int
        Number of sines.

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    out = _f32(x)
    t = np.arange(out.shape[-1]) / float(fs)
    freqs = rng.uniform(min(0.05, max_freq_hz), max_freq_hz, size=n_components)
    amps = rng.uniform(0.0, amplitude_mv, size=n_components)
    phases = rng.uniform(0.0, 2 * np.pi, size=n_components)
    wander = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(axis=0)
    gains = rng.uniform(0.5, 1.0, size=out.shape[:-1] + (1,))
    return (out + gains * wander).astype(np.float32)


def amplitude_scale(
    x: np.ndarray, rng: np.random.Generator, low: float = 0.9, high: float = 1.1, per_lead: bool = False
) -> np.ndarray:
    """Multiply by a random gain drawn uniformly from ``[low, high]`` (one for all leads, or one per lead).

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    shape = np.shape(x)[:-1] + (1,) if per_lead else (1,) * np.ndim(x)
    return (_f32(x) * rng.uniform(low, high, size=shape)).astype(np.float32)


def time_shift(x: np.ndarray, fs: float, rng: np.random.Generator, max_shift_s: float = 0.5) -> np.ndarray:
    """Shift in time by up to ``max_shift_s`` seconds either way; vacated samples become zeros (no wrap-around).

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    src = _f32(x)
    n = src.shape[-1]
    limit = min(round(max_shift_s * float(fs)), n - 1)
    shift = int(rng.integers(-limit, limit + 1)) if limit > 0 else 0
    out = np.zeros_like(src)
    if shift >= 0:
        out[..., shift:] = src[..., : n - shift]
    else:
        out[..., :shift] = src[..., -shift:]
    return out


def random_crop(x: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``n_samples`` from a longer array (a shorter one is zero-padded at a random place).

    Returns
    -------
    np.ndarray, float32, shape (n_leads, n_samples)
    """
    return crop_or_pad(_f32(x), n_samples, mode="random", rng=rng)[0]


def lead_dropout(x: np.ndarray, rng: np.random.Generator, max_leads: int = 2) -> np.ndarray:
    """Set between 1 and ``max_leads`` random leads to zero (at least one lead is always kept).

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    out = _f32(x)
    n_leads = out.shape[-2] if out.ndim >= 2 else 1
    k = min(int(max_leads), n_leads - 1)
    if k < 1:
        return out
    drop = rng.choice(n_leads, size=int(rng.integers(1, k + 1)), replace=False)
    out[..., drop, :] = 0.0
    return out


# ------------------------------------------------------------------------------------------ device / site


def lowpass(x: np.ndarray, fs: float, rng: np.random.Generator, low_hz: float = 20.0,
            high_hz: float = 45.0) -> np.ndarray:
    """Low-pass filter at a random cut-off, as the recording filters of other devices do (e.g. 40 Hz modes).

    A zero-phase 2nd-order Butterworth (``scipy.signal.sosfiltfilt``) at a cut-off drawn uniformly from
    ``[low_hz, high_hz]``; a cut-off at or above 0.45 ``fs`` leaves ``x`` unchanged.

    Parameters
    ----------
    x : np.ndarray, shape (n_leads, n_samples)
        Signal in mV sampled at ``fs``.
    fs : float
        Sampling rate in Hz.
    rng : np.random.Generator
        Random source.
    low_hz, high_hz : float
        Range of the cut-off frequency in Hz.

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    from scipy.signal import butter, sosfiltfilt

    out = _f32(x)
    cutoff = float(rng.uniform(low_hz, high_hz))
    if cutoff >= 0.45 * float(fs) or out.shape[-1] < 16:
        return out
    sos = butter(2, cutoff, btype="low", fs=float(fs), output="sos")
    return sosfiltfilt(sos, out, axis=-1).astype(np.float32)


def resample_roundtrip(x: np.ndarray, fs: float, rng: np.random.Generator,
                       rates: tuple[float, ...] = (50.0, 62.5, 80.0)) -> np.ndarray:
    """Resample to a random lower rate and back to ``fs`` (what a record stored at another rate goes through).

    Uses the project's polyphase resampler (:func:`ecglens.signal.functional.resample`); rates not below ``fs``
    are skipped. The length is restored exactly (cropped or zero-padded at the end by at most one sample).

    Parameters
    ----------
    x : np.ndarray, shape (n_leads, n_samples)
        Signal in mV sampled at ``fs``.
    fs : float
        Sampling rate in Hz.
    rng : np.random.Generator
        Random source.
    rates : tuple of float
        Candidate intermediate rates in Hz.

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    out = _f32(x)
    lower = [r for r in rates if r < float(fs)]
    if not lower:
        return out
    mid = float(lower[int(rng.integers(len(lower)))])
    back = resample(resample(out, float(fs), mid), mid, float(fs))
    return crop_or_pad(back.astype(np.float32), out.shape[-1], mode="start")[0]


def powerline(x: np.ndarray, fs: float, rng: np.random.Generator, amplitude_mv: float = 0.05) -> np.ndarray:
    """Add 50 or 60 Hz mains interference (aliased as it would be when sampled at ``fs``), per-lead gains.

    Parameters
    ----------
    x : np.ndarray, shape (n_leads, n_samples)
        Signal in mV sampled at ``fs``.
    fs : float
        Sampling rate in Hz.
    rng : np.random.Generator
        Random source.
    amplitude_mv : float
        Largest amplitude in mV (drawn uniformly up to it).

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    out = _f32(x)
    freq = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(out.shape[-1]) / float(fs)
    hum = np.sin(2 * np.pi * freq * t + rng.uniform(0.0, 2 * np.pi))
    gains = rng.uniform(0.0, amplitude_mv, size=out.shape[:-1] + (1,))
    return (out + gains * hum).astype(np.float32)


def _twelve_leads(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """A float32 copy of ``x`` and whether it is a canonical 12-lead array ``[12, n]`` (the lead-specific
    augmentations return any other array unchanged)."""
    out = _f32(x)
    return out, out.ndim == 2 and out.shape[0] == 12


def limb_lead_swap(x: np.ndarray) -> np.ndarray:
    """Left/right arm electrode reversal on a canonical 12-lead array: I -> -I, II <-> III, aVR <-> aVL.

    Parameters
    ----------
    x : np.ndarray, shape (12, n_samples)
        Signal in mV, leads in the canonical order (I, II, III, aVR, aVL, aVF, V1-V6); other lead counts are
        returned unchanged.

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    out, twelve = _twelve_leads(x)
    if not twelve:
        return out
    src = out.copy()
    out[0] = -src[0]
    out[1], out[2] = src[2], src[1]
    out[3], out[4] = src[4], src[3]
    return out


def chest_gain(x: np.ndarray, rng: np.random.Generator, low: float = 0.4, high: float = 2.5) -> np.ndarray:
    """Multiply the six chest leads V1-V6 by one gain drawn log-uniformly from ``[low, high]``.

    Devices differ in how they scale the precordial leads against the limb leads (LUDB's records V1-V6 at about
    half of PTB-XL's size, the limb leads at about the same; docs/results.md, "Other hospitals"). One gain for the
    group keeps the chest leads' ratios to each other, which carry anatomy.

    Parameters
    ----------
    x : np.ndarray, shape (12, n_samples)
        Signal in mV in the canonical lead order; other lead counts are returned unchanged.
    rng : np.random.Generator
        Random source.
    low, high : float
        Gain range (positive; the log of the gain is uniform, so 0.4-2.5 is symmetric around 1).

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    out, twelve = _twelve_leads(x)
    if not twelve:
        return out
    out[6:12] *= np.float32(math.exp(rng.uniform(math.log(low), math.log(high))))
    return out


def precordial_swap(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swap two neighbouring precordial leads (V1-V6), as a misplaced chest electrode pair does.

    Parameters
    ----------
    x : np.ndarray, shape (12, n_samples)
        Signal in mV in the canonical lead order; other lead counts are returned unchanged.
    rng : np.random.Generator
        Random source.

    Returns
    -------
    np.ndarray, float32, same shape as ``x``.
    """
    out, twelve = _twelve_leads(x)
    if not twelve:
        return out
    i = 6 + int(rng.integers(5))
    out[[i, i + 1]] = out[[i + 1, i]]
    return out


@dataclass(frozen=True)
class Augment:
    """Which augmentations to apply, how often and how strongly (all off by default).

    Applied in this order, each with its probability: random crop (always, when ``crop_seconds`` is set),
    amplitude scale, baseline wander, Gaussian noise, time shift, per-lead gain, low-pass, resampling round
    trip, mains, limb-lead swap, chest-lead swap, lead dropout, chest-lead gain.

    Parameters
    ----------
    crop_seconds : float or None
        Random crop to this duration (from a longer cached window); ``None``: no crop.
    scale_p, scale_low, scale_high : float
        Probability and gain range of :func:`amplitude_scale` (one gain for all leads).
    wander_p, wander_mv, wander_max_hz : float
        Probability, per-sine amplitude (mV) and top frequency (Hz) of :func:`baseline_wander`.
    noise_p, noise_std_mv : float
        Probability and standard deviation (mV) of :func:`gaussian_noise`.
    shift_p, shift_max_s : float
        Probability and largest shift (s) of :func:`time_shift`.
    dropout_p : float
        Probability of :func:`lead_dropout`.
    dropout_max_leads : int
        Most leads zeroed at once.
    lead_scale_p, lead_scale_low, lead_scale_high : float
        Probability and gain range of a separate gain per lead (:func:`amplitude_scale` with ``per_lead``):
        electrode contact and placement differ between leads and sites.
    lowpass_p, lowpass_low_hz, lowpass_high_hz : float
        Probability and cut-off range (Hz) of :func:`lowpass` (other devices' recording filters).
    resample_p : float
        Probability of :func:`resample_roundtrip` (a record stored at another rate, resampled back).
    powerline_p, powerline_mv : float
        Probability and largest amplitude (mV) of :func:`powerline` (50/60 Hz mains).
    limb_swap_p, chest_swap_p : float
        Probabilities of :func:`limb_lead_swap` and :func:`precordial_swap` (electrode misplacement).
    chest_gain_p, chest_gain_low, chest_gain_high : float
        Probability and (log-uniform) gain range of :func:`chest_gain`: one gain for V1-V6 together, as a
        device that scales the chest leads differently from the limb leads records them.

    The device and site augmentations (``lead_scale_p`` ... ``chest_swap_p``) imitate recordings from other
    hospitals; :meth:`robust` is a preset that turns them on.
    """

    crop_seconds: float | None = None
    scale_p: float = 0.0
    scale_low: float = 0.9
    scale_high: float = 1.1
    wander_p: float = 0.0
    wander_mv: float = 0.1
    wander_max_hz: float = 0.5
    noise_p: float = 0.0
    noise_std_mv: float = 0.02
    shift_p: float = 0.0
    shift_max_s: float = 0.5
    dropout_p: float = 0.0
    dropout_max_leads: int = 2
    lead_scale_p: float = 0.0
    lead_scale_low: float = 0.8
    lead_scale_high: float = 1.25
    lowpass_p: float = 0.0
    lowpass_low_hz: float = 20.0
    lowpass_high_hz: float = 45.0
    resample_p: float = 0.0
    powerline_p: float = 0.0
    powerline_mv: float = 0.05
    limb_swap_p: float = 0.0
    chest_swap_p: float = 0.0
    chest_gain_p: float = 0.0
    chest_gain_low: float = 0.4
    chest_gain_high: float = 2.5

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "crop_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"Augment.{f.name} must be a finite number, got {value!r}.")
            if f.name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"Augment.{f.name} is a probability and must be in [0, 1], got {value!r}.")
            if value < 0:
                raise ConfigError(f"Augment.{f.name} must not be negative, got {value!r}.")
        for low, high in (("scale_low", "scale_high"), ("lead_scale_low", "lead_scale_high"),
                          ("lowpass_low_hz", "lowpass_high_hz"), ("chest_gain_low", "chest_gain_high")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(
                    f"Augment needs {low} <= {high}, got {getattr(self, low)} > {getattr(self, high)}."
                )
        if self.chest_gain_low <= 0:
            raise ConfigError(f"Augment.chest_gain_low must be positive (a gain), got {self.chest_gain_low!r}.")
        if self.dropout_max_leads != int(self.dropout_max_leads):
            raise ConfigError(
                f"Augment.dropout_max_leads must be a whole number, got {self.dropout_max_leads!r}."
            )
        if self.crop_seconds is not None and self.crop_seconds <= 0:
            raise ConfigError(f"Augment.crop_seconds must be positive or None, got {self.crop_seconds!r}.")

    @classmethod
    def default(cls) -> Augment:
        """A mild preset that keeps every sample a plausible ECG.

        Gain 0.9-1.1 with p=0.5 (inter-device and electrode-placement variation of about 10 %); baseline
        wander up to 0.1 mV per sine below 0.5 Hz with p=0.5 (what the 0.5 Hz high-pass leaves of breathing);
        Gaussian noise of 0.02 mV with p=0.5; time shift up to 0.5 s with p=0.3; one or two leads zeroed with
        p=0.1 (missing or disconnected leads at prediction time).
        """
        return cls(scale_p=0.5, wander_p=0.5, noise_p=0.5, shift_p=0.3, dropout_p=0.1)

    @classmethod
    def robust(cls) -> Augment:
        """:meth:`default` plus the device and site augmentations, for models meant for other hospitals.

        Per-lead gains 0.8-1.25 (p=0.3), a recording low-pass at 20-45 Hz (p=0.3), a resampling round trip
        through 50-80 Hz (p=0.2), 50/60 Hz mains up to 0.05 mV (p=0.2), a left/right arm reversal (p=0.02) and a
        neighbouring chest-lead swap (p=0.05): rare enough that the label stays what the clean record says.
        """
        return dataclasses.replace(cls.default(), lead_scale_p=0.3, lowpass_p=0.3, resample_p=0.2,
                                   powerline_p=0.2, limb_swap_p=0.02, chest_swap_p=0.05)

    @property
    def is_identity(self) -> bool:
        """True when no augmentation is enabled."""
        probs = [getattr(self, f.name) for f in dataclasses.fields(self) if f.name.endswith("_p")]
        return self.crop_seconds is None and not any(probs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the fields; inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Augment:
        """Build from a dict (missing keys take their defaults; unknown keys raise :class:`ConfigError`)."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ConfigError(f"unknown augment key(s) {unknown}; valid keys are {valid}.")
        return cls(**dict(d))

    def __call__(self, x: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
        """Augment one sample.

        Parameters
        ----------
        x : np.ndarray, shape (n_leads, n_samples)
            Signal in mV at ``fs`` Hz (not modified).
        fs : float
            Sampling rate in Hz.
        rng : np.random.Generator
            Random source (seed it for reproducible augmentation).

        Returns
        -------
        np.ndarray, float32, shape (n_leads, n_samples) or (n_leads, round(crop_seconds * fs)).
        """
        out = _f32(x)
        if self.crop_seconds is not None:
            out = random_crop(out, round(self.crop_seconds * float(fs)), rng)
        steps = (
            (self.scale_p, lambda a: amplitude_scale(a, rng, self.scale_low, self.scale_high)),
            (self.wander_p, lambda a: baseline_wander(a, fs, rng, self.wander_mv, self.wander_max_hz)),
            (self.noise_p, lambda a: gaussian_noise(a, rng, self.noise_std_mv)),
            (self.shift_p, lambda a: time_shift(a, fs, rng, self.shift_max_s)),
            (self.lead_scale_p, lambda a: amplitude_scale(a, rng, self.lead_scale_low, self.lead_scale_high,
                                                          per_lead=True)),
            (self.lowpass_p, lambda a: lowpass(a, fs, rng, self.lowpass_low_hz, self.lowpass_high_hz)),
            (self.resample_p, lambda a: resample_roundtrip(a, fs, rng)),
            (self.powerline_p, lambda a: powerline(a, fs, rng, self.powerline_mv)),
            (self.limb_swap_p, limb_lead_swap),
            (self.chest_swap_p, lambda a: precordial_swap(a, rng)),
            (self.dropout_p, lambda a: lead_dropout(a, rng, self.dropout_max_leads)),
            (self.chest_gain_p, lambda a: chest_gain(a, rng, self.chest_gain_low, self.chest_gain_high)),
        )
        for prob, step in steps:
            if prob > 0 and rng.random() < prob:
                out = step(out)
        return out
