"""Knowledge distillation: a teacher's predictions blended into the training labels only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecglens.data.dataset import EcgDataModule
from ecglens.data.distill import blend_labels, read_teacher, teacher_labels
from ecglens.data.targets import task_from_name
from ecglens.exceptions import ConfigError
from ecglens.train.module import hard_labels


def _cache(n: int = 40):
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"record_id": [str(i) for i in range(n)], "age": rng.uniform(20, 80, n),
                         "sex": (np.arange(n) % 2).astype(float), "fold": np.where(np.arange(n) < 30, 1, 9),
                         "patient_id": [str(i) for i in range(n)]})

    class Cache:
        pass

    cache = Cache()
    cache.meta, cache.signals, cache.fs = meta, rng.normal(size=(n, 12, 50)).astype(np.float32), 100.0
    cache.preprocess = None
    return cache


def _teacher(tmp_path, meta, age_shift=10.0):
    table = pd.DataFrame({"record_id": meta["record_id"], "age": meta["age"] + age_shift,
                          "age_std": 5.0, "p_female": 0.25})
    table = table.iloc[:-3]  # the teacher does not cover every record
    path = tmp_path / "predictions.csv"
    table.to_csv(path, index=False)
    return path


def test_blend_labels_weights_and_keeps_truth_where_teacher_missing():
    y = np.array([[50.0, 1.0], [np.nan, 0.0], [30.0, 0.0]])
    soft = np.array([[60.0, 0.5], [40.0, 0.2], [np.nan, np.nan]])
    out = blend_labels(y, soft, 0.5)
    np.testing.assert_allclose(out[0], [55.0, 0.75])
    assert np.isnan(out[1, 0]) and out[1, 1] == pytest.approx(0.1)
    np.testing.assert_allclose(out[2], [30.0, 0.0])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        blend_labels(y, soft, 1.5)


def test_datamodule_blends_training_labels_only(tmp_path):
    cache = _cache()
    path = _teacher(tmp_path, cache.meta)
    task = task_from_name("age_sex")
    plain = EcgDataModule(cache, task, train_folds=[1], val_folds=[9], num_workers=0)
    dm = EcgDataModule(cache, task, train_folds=[1], val_folds=[9], num_workers=0, teacher=str(path),
                       teacher_weight=0.5)
    tr, va = dm.train_indices, dm.val_indices
    np.testing.assert_allclose(dm.train_labels[tr, 0], plain.labels[tr, 0] + 5.0, rtol=1e-5)
    np.testing.assert_allclose(dm.train_labels[tr, 1], 0.5 * plain.labels[tr, 1] + 0.125, rtol=1e-5)
    np.testing.assert_array_equal(dm.val_dataset().labels[va], plain.labels[va])  # truth for selection
    assert dm.task == plain.task  # label statistics fitted on the true labels
    assert dm.split_info["teacher"] == str(path) and dm.split_info["teacher_weight"] == 0.5
    x, y = dm.train_dataset()[0]
    assert y[1] in (0.125, 0.625)


def test_teacher_errors_say_how_to_fix(tmp_path):
    cache = _cache()
    with pytest.raises(ConfigError, match="ecglens evaluate"):
        read_teacher(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"record_id": ["0"], "age": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(ConfigError, match="p_female"):
        teacher_labels(task_from_name("age_sex"), cache.meta, read_teacher(bad))
    other = tmp_path / "other.csv"
    pd.DataFrame({"record_id": ["x"], "age": [1.0], "p_female": [0.5]}).to_csv(other, index=False)
    with pytest.raises(ConfigError, match="none of the training records"):
        EcgDataModule(cache, task_from_name("age_sex"), train_folds=[1], val_folds=[9], num_workers=0,
                      teacher=str(other))


def test_metrics_score_soft_binary_labels_against_the_nearer_class():
    task = task_from_name("age_sex")
    y = np.array([[50.0, 0.7], [60.0, 0.2], [np.nan, np.nan]])
    out = hard_labels(task, y)
    np.testing.assert_array_equal(out[:2, 1], [1.0, 0.0])
    assert out[0, 0] == 50.0 and np.isnan(out[2]).all()
