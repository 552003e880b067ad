"""The demo ECGs shipped in ``ecglens/examples`` (written by ``scripts/make_examples.py``) look like a normal ECG.

Checked on each record as read by ``read_ecg``: the format each was made for, a normal frontal axis (QRS
dominantly positive in I, II and aVF, negative in aVR), and in II and V4-V6 the tallest wave is a narrow QRS,
not a T wave (the fault of NeuroKit2's ``multileads`` simulation, which made T taller than R there).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks, peak_widths

from ecglens import read_ecg
from ecglens.examples import example_paths

FORMATS = {"sim_500hz_12lead": (500.0, 10.0, ()), "sim_400hz_15s": (400.0, 15.0, ()),
           "sim_250hz_8lead": (250.0, 10.0, ("III", "aVR", "aVL", "aVF"))}


@pytest.fixture(scope="module", params=sorted(FORMATS))
def example(request: pytest.FixtureRequest):
    (path,) = [p for p in example_paths() if p.stem == request.param]
    return read_ecg(path)


def test_examples_keep_their_rates_durations_and_lead_sets(example):
    fs, seconds, derived = FORMATS[example.record_id]
    assert (example.fs, example.duration, example.derived_leads) == (fs, seconds, derived)
    assert example.n_leads == 12 and example.age is not None and example.sex in ("F", "M")


def test_examples_have_a_normal_frontal_axis(example):
    for lead, sign in (("I", 1), ("II", 1), ("aVF", 1), ("aVR", -1)):
        x = example.lead(lead) * sign
        assert x.max() > -x.min(), lead


@pytest.mark.parametrize("lead", ["II", "V4", "V5", "V6"])
def test_the_tallest_wave_is_a_narrow_qrs_not_a_t_wave(example, lead):
    x = example.lead(lead) - np.median(example.lead(lead))
    peaks, _ = find_peaks(x, distance=int(0.3 * example.fs), prominence=0.5 * x.max())
    widths = peak_widths(x, peaks, rel_height=0.5)[0] / example.fs
    assert len(peaks) >= example.duration * 0.9  # one R per beat (>= 54 bpm), no T among them
    assert np.all(widths < 0.05), widths  # QRS: tens of ms at half height; a T wave is > 100 ms
    assert 0.5 < x.max() < 3.0  # mV
