"""Example ECGs shipped with ecglens: simulated with NeuroKit2 by ``scripts/make_examples.py`` (no patient data).

>>> from ecglens.examples import example_paths
>>> [p.name for p in example_paths()]  # doctest: +SKIP
['sim_250hz_8lead.hea', 'sim_400hz_15s.hea', 'sim_500hz_12lead.hea']
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["example_dir", "example_paths"]


def example_dir() -> Path:
    """The folder holding the example records (inside the installed package)."""
    return Path(str(resources.files(__name__)))


def example_paths() -> list[Path]:
    """Header paths (``.hea``) of every shipped example record, sorted by name."""
    return sorted(example_dir().glob("*.hea"))
