"""Exceptions raised by ecglens.

Every error a user can cause derives from :class:`EcglensError` (itself a ``ValueError``), and every message
says what is wrong *and* what to do about it. Batch jobs (``prepare``, ``predict``) catch ``EcglensError``,
record ``str(err)`` as the reason, and go on with the next record.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "CorruptRecordError",
    "EcglensError",
    "LeadError",
    "MissingDependencyError",
    "SamplingRateError",
    "SignalQualityError",
    "SignalQualityWarning",
    "UnitError",
    "UnsupportedFormatError",
]


class EcglensError(ValueError):
    """Base class of all ecglens errors caused by input data, files or settings."""


class UnsupportedFormatError(EcglensError):
    """No registered reader recognises the file, or the chosen reader cannot read it."""


class CorruptRecordError(EcglensError):
    """A record's files exist but are malformed, truncated or missing a part (e.g. the ``.dat`` of a ``.hea``)."""


class LeadError(EcglensError):
    """Unknown lead names, duplicated leads, or fewer leads than a model needs."""


class SamplingRateError(EcglensError):
    """A sampling rate that is missing, non-positive, or too low to resample from."""


class UnitError(EcglensError):
    """Amplitudes that are not plausible millivolts (e.g. microvolts or raw ADC counts passed as mV)."""


class SignalQualityError(EcglensError):
    """A signal that carries no usable information: all zeros, all NaN, or flat on every lead."""


class CheckpointError(EcglensError):
    """A checkpoint or pretrained-model name that cannot be found or loaded."""


class ConfigError(EcglensError):
    """An invalid configuration value or an unknown configuration key."""


class MissingDependencyError(EcglensError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it.

    Also an ``ImportError``, so ``except ImportError`` around an optional import keeps working.
    """


class SignalQualityWarning(UserWarning):
    """A usable signal with a quality problem (a flat or noisy lead, a few NaNs that were filled, ...)."""
