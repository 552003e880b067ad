"""The ``acute_mi`` task (ecglens.data.targets): PTB-XL's subendocardial-injury statements (issue #23, item 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecglens.data.targets import ACUTE_MI_CODES, TaskSpec, acute_mi_codes, statement_labels, task_from_name


def test_the_codes_follow_from_scp_statements_columns(fixtures_dir):
    table = pd.read_csv(fixtures_dir / "ptbxl_official" / "scp_statements.csv", index_col=0)
    assert acute_mi_codes(table) == ACUTE_MI_CODES == ("INJAL", "INJAS", "INJIL", "INJIN", "INJLA")
    assert set(table.loc[list(ACUTE_MI_CODES), "diagnostic_class"]) == {"MI"}


def test_labels_come_from_statements_and_the_task_round_trips_as_a_plain_binary_target():
    meta = pd.DataFrame({"statements": ["NORM;SR", "IMI;INJIN;SR", "INJAS", None, "ASMI"]})
    np.testing.assert_array_equal(statement_labels(meta, ACUTE_MI_CODES), [0, 1, 1, np.nan, 0])
    task = task_from_name("acute_mi")
    np.testing.assert_array_equal(task.labels_from_meta(meta)[:, 0], [0, 1, 1, np.nan, 0])
    # a cache with the column itself (e.g. a synthetic cohort) is read as it is
    own = meta.assign(acute_mi=[1, 0, 0, 0, 1])
    np.testing.assert_array_equal(task.labels_from_meta(own)[:, 0], [1, 0, 0, 0, 1])
    assert task.to_dict()["targets"][0]["kind"] == "binary" and task.output_names == ("p_acute_mi",)
    assert TaskSpec.from_dict(task.to_dict()) == task


def test_prevalence_on_ptbxl_folds_1_to_9(ptbxl_labels):
    """292 of 19,601 ECGs (1.49 %); folds 1-8: 256 of 17,418; fold 9: 36 of 2,183 (counted once, here)."""
    meta = pd.read_csv(ptbxl_labels)
    y = task_from_name("acute_mi").labels_from_meta(meta)[:, 0]
    assert int(y.sum()) == 292 and len(y) == 19_601
    assert int(y[meta["strat_fold"].isin(range(1, 9)).to_numpy()].sum()) == 256
    assert int(y[(meta["strat_fold"] == 9).to_numpy()].sum()) == 36
