"""Deterministic synthetic signals shared by the signal tests (imported as ``from synthetic_signals import ...``;
pytest puts this folder on ``sys.path``).

Both return arrays in mV: a sine of known frequency and amplitude, and an ECG-like signal whose beat shape,
rate (60/min) and lead gains are known by construction.
"""

from __future__ import annotations

import numpy as np


def sine(fs: float, seconds: float, freq: float, amp: float = 1.0, phase: float = 0.3) -> np.ndarray:
    """``amp * sin(2 pi freq t + phase)``, shape ``(round(fs * seconds),)``; fs and freq in Hz."""
    t = np.arange(round(fs * seconds)) / fs
    return amp * np.sin(2 * np.pi * freq * t + phase)


def synthetic_ecg(fs: float, seconds: float = 10.0, n_leads: int = 12, seed: int = 0) -> np.ndarray:
    """Beats at 60/min built from Gaussian P, QRS and T waves; per-lead gains 0.5-1.5 (p2p about 1-2 mV).

    Returns float32, shape ``(n_leads, round(fs * seconds))``; ``seed`` draws the lead gains and signs.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(round(fs * seconds)) / fs
    phase = t % 1.0
    waves = [
        (0.15, 0.2, 0.025),
        (-0.1, 0.33, 0.008),
        (1.0, 0.35, 0.01),
        (-0.2, 0.37, 0.008),
        (0.3, 0.6, 0.04),
    ]
    beat = sum(a * np.exp(-((phase - c) ** 2) / (2 * w**2)) for a, c, w in waves)
    gains = rng.uniform(0.5, 1.5, size=(n_leads, 1)) * rng.choice([-1.0, 1.0], size=(n_leads, 1))
    return (gains * beat).astype(np.float32)
