"""Shared pytest fixtures.

Tests that need the real data in ``../shared`` use the ``fixtures_dir`` / ``ptbxl_dir`` fixtures, which skip the
test with a clear reason when ``../shared`` is absent. Set ``ECGLENS_SHARED`` to point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ECGLENS_SHARED", REPO.parent / "shared")).resolve()
FIXTURES = SHARED / "data" / "fixtures"
PTBXL_SHARED = SHARED / "data" / "ptbxl"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/data/fixtures`` (real files in every format); skips when absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real-format fixtures not found at {FIXTURES} (needs ../shared beside the repo)")
    return FIXTURES


@pytest.fixture(scope="session")
def ptbxl_labels() -> Path:
    """``../shared/data/ptbxl/labels.csv``; skips when absent."""
    path = PTBXL_SHARED / "labels.csv"
    if not path.is_file():
        pytest.skip(f"PTB-XL labels not found at {path} (needs ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def ludb_dir() -> Path:
    """``../shared/data/external/ludb`` (the external development set, 197 WFDB records); skips when absent."""
    path = SHARED / "data" / "external" / "ludb"
    if not (path / "labels.csv").is_file():
        pytest.skip(f"LUDB not found at {path} (needs ../shared beside the repo)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    tiny models gain nothing from more, and a shared CPU loses a lot. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

