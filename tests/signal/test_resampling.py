"""Integer decimation (:func:`ecglens.signal.resampling._decimate`) against ``scipy.signal.resample_poly``.

The reference is scipy itself with the filter and edge mode :func:`~ecglens.signal.functional.resample` uses: the
vectorised form must give the same samples (to the rounding of the input's precision) for every length, factor,
leading shape and dtype, including the lengths where it hands over to scipy.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from ecglens.signal import resampling as R
from ecglens.signal.functional import resample


def _scipy(x: np.ndarray, fs: float, target: float) -> np.ndarray:
    up, down = R.resample_factors(fs, target)
    y = sps.resample_poly(x, up, down, axis=-1, window=R._polyphase_fir(up, down), padtype="antireflect")
    return np.asarray(y, dtype=x.dtype)


@pytest.mark.parametrize("dtype, atol", [(np.float64, 5e-15), (np.float32, 2e-6)])
@pytest.mark.parametrize("fs", [200.0, 300.0, 500.0, 1000.0])
def test_decimation_equals_scipy_at_every_length(dtype, atol, fs):
    rng = np.random.default_rng(int(fs))
    for n in [2, 3, 10, 100, 110, 111, 119, 221, 222, 223, 555, 999, 1000, 1001, 5000]:
        x = (rng.normal(0.5, 1.0, (2, 3, n))).astype(dtype)
        got, want = resample(x, fs, 100.0), _scipy(x, fs, 100.0)
        assert got.shape == want.shape and got.dtype == dtype, n
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"n={n}")


def test_decimate_declines_what_it_cannot_do_and_scipy_takes_it():
    x = np.random.default_rng(0).normal(size=(3, 40))
    assert R._decimate(x, 5) is None  # shorter than the edge extension
    assert R._decimate(np.zeros((1, R._DECIMATE_BLOCK_VALUES + 1)), 5) is None  # one row too long for a block
    np.testing.assert_allclose(resample(x, 500.0, 100.0), _scipy(x, 500.0, 100.0), atol=1e-15)


def test_rows_in_several_blocks_equal_one_block(monkeypatch):
    x = np.random.default_rng(1).normal(size=(7, 1200)).astype(np.float32)
    whole = R._decimate(x, 5)
    monkeypatch.setattr(R, "_DECIMATE_BLOCK_VALUES", 2500)  # two rows per block, the last one alone
    assert np.array_equal(R._decimate(x, 5), whole)
    assert whole.flags.c_contiguous and not np.shares_memory(whole, x)


def test_input_is_not_modified_and_strided_input_works():
    x = np.random.default_rng(2).normal(size=(12, 10000))[:, ::2]  # a non-contiguous view, 5000 samples
    before = x.copy()
    np.testing.assert_allclose(resample(x, 500.0, 100.0), _scipy(np.ascontiguousarray(x), 500.0, 100.0),
                               atol=5e-15)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("fs, target, n_out", [(500.0, 100.0, 1), (257.0, 100.0, 1), (50.0, 100.0, 2)])
def test_one_sample_is_a_constant_not_a_crash(fs, target, n_out):
    # scipy's upfirdn ends the process with SIGFPE on a one-sample signal in a reflecting mode
    y = resample(np.array([[1.5], [-0.25]], dtype=np.float32), fs, target)
    assert y.dtype == np.float32 and y.shape == (2, n_out)
    assert np.all(y[0] == 1.5) and np.all(y[1] == -0.25)
