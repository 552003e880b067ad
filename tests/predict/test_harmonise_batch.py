"""``InputAdapter.prepare_many`` (records harmonised together as one array) equals ``prepare`` record by record.

Oracle: :meth:`InputAdapter.prepare` on each record alone; windows must be bit-identical (``array_equal``, same
dtype) and flags, starts, warnings, names and recorded demographics equal, for one-window (10 s) and
several-window (4 s) contracts, with records that must leave the batch (microvolts, flat, a lead beyond 50 mV,
another fs) and records with a saturated, a flat and a noisy lead mixed in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecglens import Ecg
from ecglens.examples import example_paths
from ecglens.io import read_ecg
from ecglens.leads import CANONICAL_LEADS
from ecglens.predict import InputAdapter
from ecglens.signal.functional import robust_peak_to_peak, robust_peak_to_peak_batch
from ecglens.signal.transforms import Preprocess


def _records(seed: int = 0) -> list[Ecg]:
    rng = np.random.default_rng(seed)
    t = np.arange(1000) / 100.0
    base = (np.sin(2 * np.pi * 1.2 * t) ** 15)[None] * rng.uniform(0.5, 1.5, (12, 1))
    out = []
    for i in range(12):
        x = (base + rng.normal(0, 0.03, (12, 1000))).astype(np.float32)
        out.append(Ecg(x, 100.0, CANONICAL_LEADS, record_id=f"r{i}", age=40.0 + i, sex="F" if i % 2 else "M",
                       meta={"patient_id": f"p{i}"}))
    clipped = out[0].signal.copy()
    clipped[3] = np.clip(clipped[3], None, np.percentile(clipped[3], 50))
    out.append(Ecg(clipped, 100.0, CANONICAL_LEADS, record_id="saturated"))             # a quality flag
    one_flat = out[6].signal.copy()
    one_flat[8] = 0.2
    out.append(Ecg(one_flat, 100.0, CANONICAL_LEADS, record_id="flat-V3"))              # flat:V3, stays in
    noisy = out[7].signal.copy()
    noisy[1] += rng.normal(0, 2.0, noisy.shape[1]).astype(np.float32)
    out.append(Ecg(noisy, 100.0, CANONICAL_LEADS, record_id="noisy-II"))                # noisy:II, stays in
    out.append(Ecg(out[1].signal * 1000, 100.0, CANONICAL_LEADS, record_id="uV"))       # unit converted alone
    flat = np.zeros_like(out[2].signal)
    out.append(Ecg(flat, 100.0, CANONICAL_LEADS, record_id="flat"))                     # an error
    loud = out[3].signal.copy()
    loud[5] *= 200
    out.append(Ecg(loud, 100.0, CANONICAL_LEADS, record_id="loud"))                     # an error
    out.append(Ecg(np.repeat(out[4].signal, 5, axis=1), 500.0, CANONICAL_LEADS, record_id="500hz"))
    out.append(Ecg(np.repeat(out[5].signal, 5, axis=1), 500.0, CANONICAL_LEADS, record_id="500hz-b"))  # a pair
    out.append(Ecg(out[5].signal[[0, 1, 6, 7, 8, 9, 10, 11]], 100.0,
                   ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"), record_id="8lead"))  # limb leads derived
    out.append(Ecg(out[5].signal[[0, 1, 6, 7, 8, 9, 10, 11]] * 1.1, 100.0,
                   ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"), record_id="8lead-b"))
    out.append(out[9].replace(record_id="calibrated", meta={"calibration_removed_s": [0.0, 0.47]}))
    return out + [read_ecg(p) for p in example_paths()]


def _assert_same(one, many) -> None:
    assert len(one) == len(many)
    for a, b in zip(one, many, strict=True):
        if isinstance(a, Exception):
            assert type(a) is type(b) and str(a) == str(b)
            continue
        assert a.windows.dtype == b.windows.dtype and np.array_equal(a.windows, b.windows), a.record
        assert (a.record, a.flags, a.starts, a.n_resampled, a.warnings) == (
            b.record, b.flags, b.starts, b.n_resampled, b.warnings)
        assert str(a.recorded) == str(b.recorded)


@pytest.mark.parametrize("seconds", [10.0, 4.0])
@pytest.mark.parametrize("quality", [True, False])
def test_prepare_many_equals_prepare(seconds: float, quality: bool) -> None:
    adapter = InputAdapter(Preprocess(seconds=seconds), quality=quality)
    ecgs = _records()
    one = []
    for ecg in ecgs:
        try:
            one.append(adapter.prepare(ecg))
        except Exception as err:  # noqa: BLE001 - compared with what prepare_many returns
            one.append(err)
    many = adapter.prepare_many(ecgs)
    _assert_same(one, many)
    assert sum(isinstance(r, Exception) for r in many) == 2  # flat and loud
    ok = {r.record: r for r in many if not isinstance(r, Exception)}
    assert ok["r1"].recorded == {"age_recorded": 41.0, "sex_recorded": "F", "patient_id": "p1", "exam_id": ""}
    assert "unit_converted:uV->mV" in ok["uV"].flags and "derived:III,aVR,aVL,aVF" in ok["8lead-b"].flags
    assert ok["calibrated"].flags[0] == "calibration_removed" and "calibration_removed" not in ok["r9"].flags
    assert ok["r0"].n_windows == (1 if seconds == 10.0 else 3)
    assert not quality or "saturated:aVR" in ok["saturated"].flags
    assert not quality or ("flat:V3" in ok["flat-V3"].flags and "noisy:II" in ok["noisy-II"].flags)


def test_prepare_many_on_real_records(fixtures_dir: Path) -> None:
    adapter = InputAdapter(Preprocess(seconds=10.0))
    ecgs = [read_ecg(p) for p in sorted(fixtures_dir.rglob("*.hea"))[:40]]
    _assert_same([adapter._prepare_one(e, None) for e in ecgs], adapter.prepare_many(ecgs))


def test_robust_peak_to_peak_batch_equals_per_record() -> None:
    x = np.random.default_rng(1).normal(0, 1, (5, 12, 300))
    x[1, 3] = 0.0  # a constant lead is ignored
    x[2] = 0.0     # no varying lead: 0
    assert np.array_equal(robust_peak_to_peak_batch(x), [robust_peak_to_peak(r) for r in x])
    x32 = x.astype(np.float32)  # what the batched harmonising passes
    assert np.array_equal(robust_peak_to_peak_batch(x32), [robust_peak_to_peak(r) for r in x32])
    x[3, 0, 5] = np.nan
    assert np.array_equal(robust_peak_to_peak_batch(x), [robust_peak_to_peak(r) for r in x])


def test_a_group_that_cannot_be_harmonised_reports_each_record() -> None:
    adapter = InputAdapter(Preprocess(seconds=10.0))
    two_leads = [Ecg(np.random.default_rng(i).normal(0, 0.3, (2, 1000)).astype(np.float32), 100.0, ("V1", "V2"),
                     record_id=f"v{i}") for i in range(3)]
    results = adapter.prepare_many(two_leads)
    assert all(isinstance(r, Exception) and "lead" in str(r).lower() for r in results)


def test_groups_are_cut_to_cache_size_and_still_equal_prepare(monkeypatch: pytest.MonkeyPatch) -> None:
    from ecglens.predict import harmonise

    adapter = InputAdapter(Preprocess(seconds=10.0))
    ecgs = _records()
    one = [adapter._prepare_one(e, None) for e in ecgs]
    sizes: list[int] = []
    group = InputAdapter._prepare_group
    monkeypatch.setattr(InputAdapter, "_prepare_group", lambda self, e, n: sizes.append(len(e)) or group(self, e, n))
    monkeypatch.setattr(harmonise, "GROUP_RECORDS", 3)  # three records per group
    _assert_same(one, adapter.prepare_many(ecgs))
    assert max(sizes) <= 4 and len(sizes) >= 4  # the 12 + 4 grouped 100 Hz records, in groups of 3 (+ 1 kept)


def test_cache_sized_groups_never_leave_a_record_alone() -> None:
    from ecglens.predict.harmonise import _cache_sized

    assert _cache_sized(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5, 6]]
    assert _cache_sized(list(range(5)), 1) == [[0, 1], [2, 3, 4]]  # at least 2 per group
    assert _cache_sized(list(range(5)), 8) == [list(range(5))]
    assert _cache_sized([4]) == [[4]]
