"""The package's public surface as a user meets it in a notebook: ``dir(ecglens)`` and callable transforms."""

from __future__ import annotations

import numpy as np
from synthetic_signals import synthetic_ecg

import ecglens
from ecglens.ecg import Ecg
from ecglens.leads import CANONICAL_LEADS
from ecglens.signal.transforms import Preprocess


def test_dir_lists_the_public_names_including_the_lazy_ones_and_hides_helpers():
    names = dir(ecglens)
    assert set(ecglens.__all__) <= set(names)
    assert {"Predictor", "Preprocess", "create_model", "load_checkpoint"} <= set(names)
    assert {"io", "signal", "models"} <= set(names)
    assert not {"Any", "annotations", "_LAZY", "_version"} & set(names)
    for name in ecglens.__all__:  # every listed name resolves
        assert getattr(ecglens, name) is not None


def test_preprocess_is_callable_like_apply():
    ecg = Ecg(synthetic_ecg(fs=500.0, seconds=10.0), fs=500.0, leads=CANONICAL_LEADS)
    pre = Preprocess(fs=100.0, seconds=5.0)
    x = pre(ecg)
    assert x.shape == (12, 500) and x.dtype == np.float32
    np.testing.assert_array_equal(x, pre.apply(ecg))
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    rand = Preprocess(fs=100.0, seconds=2.0, crop="random")
    np.testing.assert_array_equal(rand(ecg, rng_a), rand.apply(ecg, rng_b))
