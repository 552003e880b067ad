"""Helpers of the benchmark scripts whose numbers the README reports."""

from __future__ import annotations

import importlib.util
import json
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


def test_bench_predict_reports_the_median_round_and_the_range():
    bench = _load("bench_predict")
    runs = [{"wall_s": w, "ecgs_per_s": 1000 / w, "cpu_ms_per_ecg": c} for w, c in ((12.0, 4.0), (10.0, 3.5),
                                                                                   (20.0, 5.0))]
    mid = bench.median_run(runs)
    assert mid["wall_s"] == 12.0 and mid["rounds_ecgs_per_s"] == [1000 / 12, 100.0, 50.0]
    assert mid["rounds_cpu_ms_per_ecg"] == [4.0, 3.5, 5.0]
    assert bench._spread(mid) == "; 3 rounds 50-100"
    assert bench.median_run(runs[:2])["wall_s"] == 10.0  # an even count: the faster of the middle two
    assert bench._spread(bench.median_run(runs[:1])) == ""


def test_bench_layout_times_both_paths_and_restores_the_switch(tmp_path, capsys):
    bench = _load("bench_layout")
    from ecglens.models import _layout

    out = tmp_path / "layout.json"
    assert bench.main(["--model", "age-sex-fast", "--batch", "2", "--rounds", "1", "--calls", "1",
                       "--json", str(out)]) == 0
    row = json.loads(out.read_text())["results"][0]
    assert row["model"] == "age-sex-fast" and row["window_samples"] == 400
    assert row["ms_per_window_1d"] > 0 and row["ms_per_window_2d"] > 0
    assert row["max_abs_diff"] < 1e-4  # the two paths give the same outputs
    assert _layout.ENABLED  # the benchmark leaves the path switched on
    assert "age-sex-fast" in capsys.readouterr().out
    assert bench.main(["--model", "age-sex-fast", "--batch", "2", "--rounds", "1", "--calls", "1", "--profile", "3",
                       "--json", str(out)]) == 0
    ops = json.loads(out.read_text())["results"][0]["top_operators_2d"]
    assert len(ops) == 3 and all(op["ms_per_window"] > 0 and 0 < op["share"] <= 1 for op in ops)
    assert ops[0]["share"] >= ops[-1]["share"]  # most time first
    assert "operators of the 2-D path" in capsys.readouterr().out
    assert _layout.ENABLED
    assert bench.main(["--model", "age-sex-fast", "--batch", "2", "--rounds", "1", "--calls", "1", "--train",
                       "--json", str(out)]) == 0
    row = json.loads(out.read_text())["results"][0]
    assert row["train"] and row["ms_per_window_1d"] > 0 and row["ms_per_window_2d"] > 0
    assert "training steps" in capsys.readouterr().out


def test_bench_stages_splits_the_cpu_time_of_predict_by_stage(tmp_path, capsys):
    """Three example records through ``ecglens predict`` with two reading workers (three chunks of one record,
    so the forked workers read, harmonise and predict): every record counted, reading, harmonising and the model
    timed in the workers, the rows adding up to the total."""
    from ecglens.examples import example_paths

    folder = tmp_path / "records"
    folder.mkdir()
    for hea in example_paths():
        for part in hea.parent.glob(hea.stem + ".*"):
            (folder / part.name).write_bytes(part.read_bytes())
    bench = _load("bench_stages")
    out = tmp_path / "stages.json"
    assert bench.main([str(folder), "--model", "age-sex-fast", "--workers", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["records"] == 3
    rows = result["cpu_ms_per_ecg"]
    assert result["workers"] >= 1 and not result["chunks_in_main_process"]
    assert rows["read"] > 0 and rows["harmonise"] > 0 and rows["model (in workers)"] > 0
    assert rows["main process, the rest"] > 0
    assert abs(sum(rows.values()) - result["cpu_ms_per_ecg_total"]) < 1e-9
    assert "CPU ms per ECG" in capsys.readouterr().out
