"""The quick fuzzing profile: a few hundred mutated copies of the real-format fixtures, 0 defects allowed.

The mutator and the outcome classes are in ``tests/fuzzing.py``; the long profile (>= 10,000 cases) is
``python benchmarks/fuzz_readers.py``. Also here: the Predictor never answers ``ok`` for records that are
garbage by construction, nor for outputs outside their plausible range.
"""

from __future__ import annotations

import fuzzing
import numpy as np
import pytest

from ecglens.ecg import Ecg
from ecglens.exceptions import EcglensError, SamplingRateError, SignalQualityError, UnitError
from ecglens.leads import CANONICAL_LEADS

QUICK_CASES = 400


@pytest.fixture(scope="module")
def fuzz_sources(fixtures_dir, tmp_path_factory):
    return fuzzing.sources(fixtures_dir, tmp_path_factory.mktemp("fuzz-sources"))


def test_quick_profile_finds_no_defect(fuzz_sources):
    rows = list(fuzzing.run_cases(fuzz_sources, range(QUICK_CASES), seed=20261204, workers=2, timeout=10.0))
    assert len(rows) == QUICK_CASES
    counts = fuzzing.tally(rows)
    defects = [r for r in rows if r[3] in fuzzing.DEFECTS]
    assert not defects, f"{len(defects)} defects, e.g. {defects[:5]}; counts {counts}"
    assert sum(c["ok"] for c in counts.values()) > QUICK_CASES // 10  # mutations also leave readable files
    assert {s.label for s in fuzz_sources} <= set(counts)


@pytest.mark.parametrize(("seed", "index", "what"), [
    (7, 3347, "CardioSoft <SampleRate> 1e-308 Hz read as an Ecg"),
    (3032, 3109, "MUSE <SampleExponent> beyond the float range: OverflowError"),
    (3032, 5633, "DICOM element of impossible length: pydicom's BytesLengthException"),
    (20261208, 8393, "DICOM value representation pydicom does not know: NotImplementedError"),
    (20261208, 17475, "EDF signal header edfio 0.4.18 fails on: UnboundLocalError"),
    (5, 26910, "Philips XML declaring the encoding 'UTG-8': LookupError"),
])
def test_defects_the_long_profile_found_stay_fixed(fuzz_sources, seed, index, what):
    """Cases ``index`` of ``python benchmarks/fuzz_readers.py --seed SEED`` (enough ``--cases``) that were defects
    (2026-12-08)."""
    rows = list(fuzzing.run_cases(fuzz_sources, [index], seed=seed, workers=1, timeout=10.0))
    assert rows[0][3] not in fuzzing.DEFECTS, (what, rows[0])


def test_mutations_are_reproducible(fuzz_sources, tmp_path):
    src = fuzz_sources[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = fuzzing.build_case(src, 11, 3, tmp_path / "a")
    two = fuzzing.build_case(src, 11, 3, tmp_path / "b")
    assert one.family == two.family
    assert all((tmp_path / "a" / f.name).read_bytes() == (tmp_path / "b" / f.name).read_bytes() for f in src.files)


def test_hangs_are_caught_by_the_runner(fuzz_sources, monkeypatch):
    import time

    monkeypatch.setattr(fuzzing, "run_case", lambda *a: time.sleep(30))
    rows = list(fuzzing.run_cases(fuzz_sources[:1], [0], workers=1, timeout=1.0))
    assert [r[3] for r in rows] == ["hang"]


@pytest.mark.parametrize(
    ("signal", "reason"),
    [(np.full((2, 100), np.nan), "non-finite"), (np.zeros((2, 100)), "all-zero"),
     (np.full((2, 100), 80.0), "peak")],
)
def test_garbage_reason(signal, reason):
    class Fake:
        fs = 500.0

    Fake.signal = signal
    assert reason in fuzzing.garbage_reason(Fake(), None)


def test_garbage_reason_fs():
    ecg = Ecg(np.ones((1, 10)), 250.0, ("I",))
    assert fuzzing.garbage_reason(ecg, 250.0) is None
    assert "must be refused" in fuzzing.garbage_reason(ecg, -1.0)
    assert "says 400" in fuzzing.garbage_reason(ecg, 400.0)


# ------------------------------------------------------------------------------------------------ the Predictor
@pytest.fixture(scope="module")
def predictor():
    from ecglens.predict import Predictor

    return Predictor.from_pretrained("age-sex-fast", num_threads=1)


def _ecg(scale_per_lead=None, fs=500.0) -> Ecg:
    t = np.arange(int(10 * min(fs, 2000))) / min(fs, 2000)
    x = np.stack([np.sin(2 * np.pi * 1.2 * t + k) * 0.8 for k in range(12)])
    if scale_per_lead is not None:
        x = x * np.asarray(scale_per_lead)[:, None]
    return Ecg(x, fs, CANONICAL_LEADS, record_id="garbage")


@pytest.mark.parametrize(
    ("ecg", "error"),
    [
        (lambda: _ecg([1] * 3 + [1e6] + [1] * 8), UnitError),  # one absurd lead: the median lead looks fine
        (lambda: _ecg([1] * 11 + [70]), UnitError),  # one lead of 56 mV peak
        (lambda: _ecg([1e9] * 12), UnitError),
        (lambda: _ecg([0] * 12), SignalQualityError),
        (lambda: _ecg(fs=1e6), SamplingRateError),
        (lambda: _ecg(fs=10.0), SamplingRateError),
    ],
)
def test_predictor_refuses_garbage_records(predictor, ecg, error):
    with pytest.raises(error):
        predictor.predict_ecg(ecg())


class _AbsurdBackend:
    """Returns the same raw outputs for every window (raw[:, 0] age z-score, raw[:, 1] log-variance, logit)."""

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float32)

    def run(self, x):
        return np.tile(self.raw, (len(x), 1))


@pytest.mark.parametrize("raw", [[-1e6, 0.0, 0.0], [0.0, np.inf, 0.0], [np.nan, 0.0, 0.0], [50.0, 0.0, 0.0]])
def test_implausible_outputs_are_errors_not_ok(predictor, raw, tmp_path):
    from ecglens.io.wfdb_write import write_wfdb_records
    from ecglens.predict import Predictor

    absurd = Predictor(predictor.checkpoint, backend=_AbsurdBackend(raw))
    with pytest.raises(EcglensError, match="implausible model outputs"):
        absurd.predict_ecg(_ecg())
    write_wfdb_records(_ecg().signal[None], 500.0, ["rec"], tmp_path)
    table = absurd.predict_paths(tmp_path, progress=False, workers=0)
    assert list(table["status"]) == ["error"]
    assert "implausible model outputs" in table["message"].iloc[0] and np.isnan(table["age"].iloc[0])


def test_plausible_outputs_stay_ok(predictor):
    pred = predictor.predict_ecg(_ecg())
    assert 0 <= pred.outputs["age"] <= 120 and pred.outputs["age_std"] > 0 and 0 <= pred.outputs["p_female"] <= 1
    assert predictor.implausible_outputs(pred.outputs) is None


def test_implausible_mask_agrees_with_implausible_outputs(predictor):
    outputs = {"age": np.array([50.0, 130.0, np.nan, 40.0, 60.0]), "age_std": np.array([5.0, 5.0, 5.0, 0.0, 4.0]),
               "p_female": np.array([0.5, 0.5, 0.5, 0.5, 1.5])}
    mask = predictor.implausible_mask(outputs)
    each = [predictor.implausible_outputs({k: float(v[i]) for k, v in outputs.items()}) is not None for i in range(5)]
    assert mask.tolist() == each == [False, True, True, True, True]
