"""Task specs: losses and metrics against independent oracles (numpy, scikit-learn, torch.nn losses).

Every oracle works on the rows with a known label only, computed without ecglens code, so a test fails when a
missing (NaN) label leaks into a loss or a metric, or when standardisation / postprocessing is wrong.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error, roc_auc_score

from ecglens.data.targets import (
    PTBXL_SUPERCLASSES,
    BinaryTarget,
    MultilabelTarget,
    RegressionTarget,
    TaskSpec,
    list_tasks,
    target_from_dict,
    task_from_name,
)
from ecglens.evaluate.metrics import task_metrics
from ecglens.exceptions import ConfigError


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def cohort(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """40 rows: age (years) with 5 NaN, sex (1 F / 0 M) with 4 NaN, raw outputs for an age_sex NLL task."""
    n = 40
    age = rng.uniform(20, 90, n)
    age[[1, 7, 13, 22, 30]] = np.nan
    sex = (rng.random(n) < 0.5).astype(float)
    sex[[2, 7, 19, 33]] = np.nan
    raw = rng.normal(0, 1, (n, 3))
    return {"age": age, "sex": sex, "y": np.stack([age, sex], axis=1).astype(np.float32), "raw": raw}


# ----------------------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("loss, oracle", [("mse", lambda d: d**2), ("l1", np.abs)])
def test_regression_loss_matches_numpy_on_standardised_known_labels(cohort, loss, oracle):
    task = TaskSpec((RegressionTarget("age", loss=loss),)).fit(cohort["y"][:, :1])
    ok = ~np.isnan(cohort["age"])
    mean, std = cohort["age"][ok].mean(), cohort["age"][ok].std()
    assert task.targets[0].mean == pytest.approx(mean) and task.targets[0].std == pytest.approx(std)
    raw = cohort["raw"][:, :1]
    expected = oracle(raw[ok, 0] - (cohort["age"][ok] - mean) / std).mean()
    got = task.loss(
        torch.tensor(raw, dtype=torch.float64), torch.tensor(cohort["y"][:, :1], dtype=torch.float64)
    )
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_gaussian_nll_matches_torch_gaussian_nll_loss(cohort):
    task = task_from_name("age", loss="gaussian_nll").fit(cohort["y"][:, :1])
    t = task.targets[0]
    ok = ~np.isnan(cohort["age"])
    raw = torch.tensor(cohort["raw"][:, :2], dtype=torch.float64)
    z = torch.tensor((cohort["age"][ok] - t.mean) / t.std)
    oracle = torch.nn.GaussianNLLLoss(full=False, reduction="mean")(raw[ok, 0], z, torch.exp(raw[ok, 1]))
    got = task.loss(raw, torch.tensor(cohort["y"][:, :1], dtype=torch.float64))
    assert float(got) == pytest.approx(float(oracle), rel=1e-6)
    assert task.num_outputs == 2 and task.output_names == ("age", "age_std")


def test_binary_loss_matches_sklearn_log_loss_and_pos_weight_matches_torch(cohort):
    ok = ~np.isnan(cohort["sex"])
    raw = cohort["raw"][:, :1]
    y = torch.tensor(cohort["y"][:, 1:], dtype=torch.float64)
    got = task_from_name("sex").loss(torch.tensor(raw, dtype=torch.float64), y)
    assert float(got) == pytest.approx(
        log_loss(cohort["sex"][ok], _sigmoid(raw[ok, 0]), labels=[0, 1]), rel=1e-6
    )
    weighted = task_from_name("sex", pos_weight=3.0).loss(torch.tensor(raw, dtype=torch.float64), y)
    oracle = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0, dtype=torch.float64))(
        torch.tensor(raw[ok, 0]), torch.tensor(cohort["sex"][ok])
    )
    assert float(weighted) == pytest.approx(float(oracle), rel=1e-6)


def test_multitask_loss_is_the_weighted_sum_of_the_target_losses(cohort):
    task = task_from_name("age_sex", age_loss="l1", weights=[0.3, 2.0]).fit(cohort["y"])
    raw, y = torch.tensor(cohort["raw"][:, :2]), torch.tensor(cohort["y"], dtype=torch.float64)
    age_only = TaskSpec((task.targets[0],)).loss(raw[:, :1], y[:, :1])
    sex_only = TaskSpec((task.targets[1],)).loss(raw[:, 1:], y[:, 1:])
    assert float(task.loss(raw, y)) == pytest.approx(0.3 * float(age_only) + 2.0 * float(sex_only))
    assert set(task.loss_components(raw, y)) == {"age", "sex"}


def test_multilabel_loss_ignores_missing_entries_elementwise(rng):
    y = (rng.random((30, 3)) < 0.4).astype(float)
    y[rng.random((30, 3)) < 0.2] = np.nan
    raw = rng.normal(size=(30, 3))
    task = TaskSpec((MultilabelTarget(("A", "B", "C")),))
    ok = ~np.isnan(y)
    p = _sigmoid(raw[ok])
    expected = -np.mean(y[ok] * np.log(p) + (1 - y[ok]) * np.log(1 - p))
    assert float(task.loss(torch.tensor(raw), torch.tensor(y))) == pytest.approx(expected, rel=1e-6)


def test_missing_labels_give_no_gradient_and_an_all_missing_batch_gives_zero_loss(cohort):
    task = task_from_name("age_sex").fit(cohort["y"])
    raw = torch.tensor(cohort["raw"], requires_grad=True)
    task.loss(raw, torch.tensor(cohort["y"], dtype=torch.float64)).backward()
    assert torch.isfinite(raw.grad).all()
    assert torch.all(raw.grad[7] == 0)  # row 7: age and sex both missing
    assert torch.all(raw.grad[1, :2] == 0) and raw.grad[1, 2] != 0  # row 1: age missing, sex known
    empty = torch.full((4, 2), float("nan"), dtype=torch.float64)
    raw2 = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    loss = task.loss(raw2, empty)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.all(raw2.grad == 0)


def test_extra_mask_excludes_labels_like_nan(cohort):
    task = task_from_name("age_sex", age_loss="mse").fit(cohort["y"])
    raw, y = torch.tensor(cohort["raw"][:, :2]), torch.tensor(cohort["y"], dtype=torch.float64)
    mask = torch.ones_like(y, dtype=torch.bool)
    mask[:10, 0] = False
    y_nan = y.clone()
    y_nan[:10, 0] = float("nan")
    assert float(task.loss(raw, y, mask)) == pytest.approx(float(task.loss(raw, y_nan)))


def test_unfitted_regression_refuses_to_compute_a_loss():
    with pytest.raises(ConfigError, match="task.fit"):
        task_from_name("age").loss(torch.zeros(2, 2), torch.ones(2, 1))


# ----------------------------------------------------------------------------------- postprocess / metrics


def test_postprocess_returns_years_and_probabilities(cohort):
    task = task_from_name("age_sex").fit(cohort["y"])
    t = task.targets[0]
    out = task.postprocess(torch.tensor(cohort["raw"]))
    assert set(out) == {"age", "age_std", "p_female"}
    np.testing.assert_allclose(out["age"], cohort["raw"][:, 0] * t.std + t.mean)
    np.testing.assert_allclose(out["age_std"], np.exp(0.5 * cohort["raw"][:, 1]) * t.std)
    np.testing.assert_allclose(out["p_female"], _sigmoid(cohort["raw"][:, 2]))


def test_regression_and_binary_metrics_match_sklearn_on_known_labels(cohort, rng):
    task = task_from_name("age_sex").fit(cohort["y"])
    out = {
        "age": cohort["age"] + rng.normal(0, 8, len(cohort["age"])),
        "age_std": np.ones(len(cohort["age"])),
        "p_female": rng.random(len(cohort["sex"])),
    }
    out["age"][1] = 50.0  # a prediction where the label is missing: must not count
    m = task_metrics(task, out, cohort["y"])
    a, s = ~np.isnan(cohort["age"]), ~np.isnan(cohort["sex"])
    assert m["age_mae"] == pytest.approx(mean_absolute_error(cohort["age"][a], out["age"][a]))
    assert m["age_rmse"] == pytest.approx(math.sqrt(mean_squared_error(cohort["age"][a], out["age"][a])))
    assert m["age_r"] == pytest.approx(pearsonr(cohort["age"][a], out["age"][a])[0])
    assert m["sex_auroc"] == pytest.approx(roc_auc_score(cohort["sex"][s], out["p_female"][s]))
    assert m["sex_accuracy"] == pytest.approx(accuracy_score(cohort["sex"][s], out["p_female"][s] >= 0.5))


def test_multilabel_macro_auroc_matches_sklearn(rng):
    y = (rng.random((60, 5)) < 0.3).astype(float)
    p = np.clip(y * 0.3 + rng.random((60, 5)) * 0.7, 0, 1)
    task = task_from_name("ptbxl_superclasses")
    out = task.postprocess(np.log(p / (1 - p + 1e-12) + 1e-12))
    m = task_metrics(task, out, y)
    probs = np.stack([out[f"p_{c}"] for c in PTBXL_SUPERCLASSES], axis=1)
    assert m["superclass_macro_auroc"] == pytest.approx(roc_auc_score(y, probs, average="macro"))
    assert m["MI_auroc"] == pytest.approx(roc_auc_score(y[:, 1], probs[:, 1]))


def test_metrics_with_one_class_are_nan_not_errors():
    task = task_from_name("sex")
    m = task_metrics(task, {"p_female": np.array([0.2, 0.9, 0.4])}, np.array([[1.0], [1.0], [np.nan]]))
    assert math.isnan(m["sex_auroc"]) and m["sex_accuracy"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------- labels


def test_labels_from_meta_keeps_nan_and_checks_binary_columns():
    meta = pd.DataFrame({"age": [50, None, 70.5], "sex": [1, 0, None], "MI": [0, 1, 1]})
    y = task_from_name("age_sex").labels_from_meta(meta)
    assert y.dtype == np.float32 and y.shape == (3, 2)
    np.testing.assert_array_equal(np.isnan(y), [[False, False], [True, False], [False, True]])
    assert y[2, 0] == pytest.approx(70.5)
    with pytest.raises(ConfigError, match="0/1"):
        task_from_name("sex").labels_from_meta(pd.DataFrame({"sex": [1, 2]}))
    with pytest.raises(ConfigError, match="not in the cache metadata.*age, sex, MI"):
        task_from_name("HYP").labels_from_meta(meta)


def test_fit_uses_the_given_labels_only_and_keeps_explicit_statistics():
    task = task_from_name("age").fit(np.array([[20.0], [40.0], [np.nan]]))
    assert (task.targets[0].mean, task.targets[0].std) == (30.0, 10.0)
    fixed = task_from_name("age", mean=55.0, std=15.0).fit(np.array([[20.0], [40.0]]))
    assert (fixed.targets[0].mean, fixed.targets[0].std) == (55.0, 15.0)
    with pytest.raises(ConfigError, match="every value is missing"):
        task_from_name("age").fit(np.array([[np.nan]]))


# ----------------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize("name", list_tasks())
def test_every_preset_round_trips_through_json(name):
    task = task_from_name(name)
    y = np.ones((3, task.num_labels))
    y[0] = 0
    task = task.fit(y)
    again = TaskSpec.from_dict(json.loads(json.dumps(task.to_dict())))
    assert again == task
    assert tuple(task.postprocess(np.zeros((2, task.num_outputs)))) == task.output_names


def test_presets_named_in_the_brief_exist_with_their_outputs():
    assert task_from_name("age_sex").output_names == ("age", "age_std", "p_female")
    assert task_from_name("age", loss="l1").output_names == ("age",)
    assert task_from_name("sex").output_names == ("p_female",)
    assert task_from_name("MI").output_names == ("p_MI",)
    assert task_from_name("age-sex").name == "age_sex"
    assert task_from_name("ptbxl_superclasses").num_outputs == 5


def test_unknown_names_options_and_kinds_are_config_errors_naming_valid_choices():
    with pytest.raises(ConfigError, match="Did you mean 'age_sex'"):
        task_from_name("age_sexx")
    with pytest.raises(ConfigError, match="Valid options.*age_loss"):
        task_from_name("age_sex", loss="l1")
    with pytest.raises(ConfigError, match="regression loss.*gaussian_nll"):
        RegressionTarget("age", loss="huber")
    with pytest.raises(ConfigError, match="kind"):
        target_from_dict({"kind": "survival"})
    with pytest.raises(ConfigError, match="weights"):
        TaskSpec((BinaryTarget("sex"),), weights=(1.0, 2.0))
    with pytest.raises(ConfigError, match="repeat"):
        TaskSpec((BinaryTarget("sex"), BinaryTarget("sex")))
