"""ecglens: deep learning on resting 12-lead ECGs.

The public API is what this module exports; everything else is an implementation detail.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .ecg import Ecg
from .exceptions import EcglensError
from .io import list_readers, read_ecg
from .leads import CANONICAL_LEADS

__all__ = ["__version__", "Ecg", "EcglensError", "read_ecg", "list_readers", "CANONICAL_LEADS"]
