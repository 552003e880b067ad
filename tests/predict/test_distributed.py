"""Distributed prediction on a real local Dask cluster (two worker processes, one thread each): the table equals
the single-process ``Predictor.predict_paths`` table, row for row, with the same accounting."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

import torch

from ecglens.artifact import save_checkpoint
from ecglens.data.targets import task_from_name
from ecglens.examples import example_paths
from ecglens.exceptions import CheckpointError
from ecglens.models import create_model
from ecglens.predict import Predictor
from ecglens.predict.distributed import _partitions, predict_distributed
from ecglens.signal.transforms import Preprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [60.0, 0.0], [80.0, 1.0]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(8, 16))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model, task=task,
                           preprocess=Preprocess())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped example records, twice each (in two sub-folders), and a file that is no ECG."""
    folder = tmp_path_factory.mktemp("records")
    for copy in ("a", "b"):
        (folder / copy).mkdir()
        for hea in example_paths():
            for f in hea.parent.glob(hea.stem + ".*"):
                shutil.copyfile(f, folder / copy / f.name)
    (folder / "broken.xml").write_text("<not an ecg/>")
    return folder


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def test_distributed_table_equals_the_single_process_table(checkpoint_path: Path, inputs: Path, client) -> None:
    local = Predictor.from_pretrained(checkpoint_path).predict_paths([inputs], progress=False, workers=0)
    table = predict_distributed(checkpoint_path, [inputs], client=client, partitions=3, num_threads=1)
    assert list(table.columns) == list(local.columns)
    assert list(table["record"]) == list(local["record"]) and len(table) == 7
    pd.testing.assert_frame_equal(table[["record", "status", "n_windows", "flags"]],
                                  local[["record", "status", "n_windows", "flags"]])
    for column in ("age", "age_std", "p_female"):
        np.testing.assert_allclose(table[column], local[column], rtol=1e-4, atol=1e-5)
    assert table.attrs["n_ok"] == local.attrs["n_ok"] == 6 and table.attrs["n_error"] == 1
    assert table.attrs["n_workers"] == 2 and table.attrs["n_partitions"] == 3
    assert table.attrs["model"] == local.attrs["model"]
    error = table[table["status"] == "error"].iloc[0]
    assert error["record"].endswith("broken.xml") and error["message"]


def test_a_model_that_cannot_be_loaded_is_one_clear_error(inputs: Path, client, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        predict_distributed(tmp_path / "absent.safetensors", [inputs], client=client)


def test_partitions_cover_the_records_in_order() -> None:
    records = [(f"r{i}", Path(f"r{i}.hea")) for i in range(10)]
    parts = _partitions(records, 4)
    assert [len(p) for p in parts] == [3, 3, 2, 2]
    assert [name for part in parts for name, _ in part] == [name for name, _ in records]
    assert len(_partitions(records[:2], 8)) == 2
