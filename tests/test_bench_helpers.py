"""Helpers of the benchmark scripts whose numbers the README reports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))  # the scripts import their _common helpers by name
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_multiply_adds_counts_convolutions_and_linear_layers_per_input():
    bench = _load("bench_export")
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 5, padding=2), torch.nn.Conv1d(3, 6, 3, stride=2, groups=3),
                                torch.nn.Flatten(), torch.nn.Linear(24, 4))
    x = np.zeros((7, 2, 10), dtype=np.float32)  # a batch of 7: the count is per input
    # conv 1: 3 x 10 outputs x (2 x 5); conv 2: 6 x 4 outputs x (1 x 3); linear: 4 x 24
    assert bench.multiply_adds(model, x) == 3 * 10 * 10 + 6 * 4 * 3 + 4 * 24
    assert not any(m._forward_hooks for m in model.modules())  # the hooks are removed
