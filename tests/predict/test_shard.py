"""Sharded prediction (issue #21 item 5): the partition, atomic tables, resumable shards and the checked merge.

The shard logic is tested with a stand-in ``predict`` (no model: fast and exact); the command line with a real
model is in ``tests/cli/test_scale.py``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecglens.exceptions import ConfigError, EcglensError, MissingDependencyError
from ecglens.predict.shard import (
    merge_shards,
    parse_shard,
    read_table,
    records_digest,
    run_shard,
    select_shard,
    shard_of,
    shard_paths,
    write_table,
)

NAMES = [f"data/{i // 100:05d}/{i:05d}_lr" for i in range(300)]
RECORDS = [(name, Path(name + ".hea")) for name in NAMES]
IDENTITY = {"model": "tiny.safetensors", "backend": "torch", "inputs": ["data"], "options": {"max_windows": 30}}


class FakePredict:
    """``predict(records) -> table``: one row per record (``bad`` in the name -> an error row); counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, records):
        self.calls += 1
        rows = [{"record": name, "status": "error" if "bad" in name else "ok",
                 "message": "unreadable" if "bad" in name else "", "age": float(len(name)), "n_windows": 1,
                 "flags": ""} for name, _ in records]
        return pd.DataFrame(rows, columns=["record", "status", "message", "age", "n_windows", "flags"])


def _run_all(out: Path, n: int, records=RECORDS, identity=IDENTITY, fmt: str = "csv") -> FakePredict:
    predict = FakePredict()
    for k in range(1, n + 1):
        run_shard(records, k, n, out, predict, identity, fmt=fmt)
    return predict


# ----------------------------------------------------------------------------------------------- partition
@pytest.mark.parametrize("text, expected", [("3/10", (3, 10)), ("1/1", (1, 1)), (" 10 / 10 ", (10, 10))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text, fragment", [("0/3", "between 1 and N"), ("4/3", "between 1 and N"),
                                            ("1/0", "between 1 and N"), ("3", "write K/N"), ("a/b", "write K/N"),
                                            ("-1/3", "write K/N")])
def test_parse_shard_refuses_with_a_fix(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_shard(text)


@pytest.mark.parametrize("n", [1, 3, 10])
def test_every_record_in_exactly_one_shard_whatever_the_order(n: int) -> None:
    shuffled = RECORDS[:]
    random.Random(0).shuffle(shuffled)
    parts = [select_shard(RECORDS, k, n) for k in range(1, n + 1)]
    parts_shuffled = [select_shard(shuffled, k, n) for k in range(1, n + 1)]
    names = [name for part in parts for name, _ in part]
    assert sorted(names) == sorted(NAMES) and len(set(names)) == len(NAMES)
    assert [sorted(p) for p in parts] == [sorted(p) for p in parts_shuffled]  # discovery order is irrelevant
    if n > 1:
        assert all(len(p) > 0 for p in parts)


def test_shard_of_is_a_fixed_function_of_the_name() -> None:
    # fixed values: a change of the hash would silently reshuffle the shards of half-finished jobs
    names = [f"records100/00000/{i:05d}_lr" for i in range(1, 9)]
    assert [shard_of(name, 10) for name in names] == [2, 7, 10, 2, 10, 9, 4, 9]
    assert {shard_of(name, 7) for name in NAMES} == set(range(1, 8))
    assert records_digest(NAMES) == records_digest(list(reversed(NAMES)))


def test_shard_paths() -> None:
    table, side = shard_paths(Path("out"), 3, 10, "parquet")
    assert table == Path("out/shard-00003-of-00010.parquet") and side == Path("out/shard-00003-of-00010.json")


# ----------------------------------------------------------------------------------------------- tables
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_round_trip(tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    table = FakePredict()(RECORDS[:5] + [("data/bad", Path("data/bad.hea"))])
    table.attrs["n_ok"] = 5
    path = write_table(table, tmp_path / f"sub/preds{suffix}")
    back = read_table(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert back.loc[0, "message"] == "" and back.loc[5, "status"] == "error"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_write_table_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "preds.csv"
    write_table(FakePredict()(RECORDS[:3]), path)
    before = path.read_bytes()

    def boom(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError, match="disk full"):
        write_table(FakePredict()(RECORDS[:10]), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["preds.csv"]


def test_table_suffix_and_missing_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = FakePredict()(RECORDS[:2])
    with pytest.raises(ConfigError, match=r"\.csv or \.parquet"):
        write_table(table, tmp_path / "preds.xlsx")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ModuleNotFoundError
    with pytest.raises(MissingDependencyError, match=r'ecglens\[parquet\]'):
        write_table(table, tmp_path / "preds.parquet")
    assert not (tmp_path / "preds.parquet").exists()


# ----------------------------------------------------------------------------------------------- run_shard
def test_run_shard_writes_table_and_sidecar_then_skips(tmp_path: Path) -> None:
    predict = FakePredict()
    first = run_shard(RECORDS, 2, 3, tmp_path, predict, IDENTITY, describe=lambda: {"model_label": "tiny"})
    assert not first.skipped and predict.calls == 1
    side = json.loads((tmp_path / "shard-00002-of-00003.json").read_text())
    mine = select_shard(RECORDS, 2, 3)
    assert side["n_records"] == len(mine) == len(read_table(first.path)) and side["n_inputs"] == len(RECORDS)
    assert side["shard"] == 2 and side["n_shards"] == 3 and side["model_label"] == "tiny"
    assert {"ecglens_version", "inputs", "inputs_digest", "model", "n_ok", "n_error"} <= set(side)
    again = run_shard(RECORDS, 2, 3, tmp_path, predict, IDENTITY)
    assert again.skipped and again.table is None and predict.calls == 1  # finished: not predicted again
    redo = run_shard(RECORDS, 2, 3, tmp_path, predict, IDENTITY, force=True)
    assert not redo.skipped and predict.calls == 2


def test_a_table_without_sidecar_is_redone(tmp_path: Path) -> None:
    predict = FakePredict()
    run_shard(RECORDS, 1, 2, tmp_path, predict, IDENTITY)
    (tmp_path / "shard-00001-of-00002.json").unlink()  # killed between the table and the sidecar
    assert not run_shard(RECORDS, 1, 2, tmp_path, predict, IDENTITY).skipped and predict.calls == 2


@pytest.mark.parametrize("change", [{"model": "other.safetensors"}, {"options": {"max_windows": 5}}])
def test_a_shard_of_another_job_is_refused(tmp_path: Path, change: dict) -> None:
    run_shard(RECORDS, 1, 2, tmp_path, FakePredict(), IDENTITY)
    with pytest.raises(ConfigError, match="another job"):
        run_shard(RECORDS, 1, 2, tmp_path, FakePredict(), {**IDENTITY, **change})
    with pytest.raises(ConfigError, match="another job"):  # other inputs
        run_shard(RECORDS[:-1], 1, 2, tmp_path, FakePredict(), IDENTITY)


def test_a_predict_that_loses_records_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(EcglensError, match="nothing was written"):
        run_shard(RECORDS, 1, 2, tmp_path, lambda recs: FakePredict()(recs[1:]), IDENTITY)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------- merge
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_merge_gives_every_record_once(tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    records = RECORDS + [("data/bad", Path("data/bad.hea"))]
    _run_all(tmp_path, 4, records, fmt=fmt)
    merged = merge_shards(tmp_path)
    expected = FakePredict()(records).sort_values("record").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, expected, check_dtype=False)
    assert merged.attrs["n_ok"] == len(RECORDS) and merged.attrs["n_error"] == 1 and merged.attrs["n_shards"] == 4


def test_merge_names_the_missing_shards(tmp_path: Path) -> None:
    predict = FakePredict()
    for k in (1, 3):
        run_shard(RECORDS, k, 4, tmp_path, predict, IDENTITY)
    with pytest.raises(ConfigError, match=r"2 of 4 shards are not finished .*: 2, 4\. .*--shard 2/4"):
        merge_shards(tmp_path)


def test_merge_refuses_mixed_jobs(tmp_path: Path) -> None:
    _run_all(tmp_path, 2)
    side = tmp_path / "shard-00002-of-00002.json"
    data = json.loads(side.read_text())
    side.write_text(json.dumps({**data, "model": "other.safetensors"}))
    with pytest.raises(ConfigError, match="differs from shard 1/2 in model"):
        merge_shards(tmp_path)
    side.write_text(json.dumps(data))
    run_shard(RECORDS, 1, 3, tmp_path, FakePredict(), IDENTITY)
    with pytest.raises(ConfigError, match="several jobs"):
        merge_shards(tmp_path)


def test_merge_refuses_a_tampered_table(tmp_path: Path) -> None:
    _run_all(tmp_path, 2)
    path = tmp_path / "shard-00001-of-00002.csv"
    table = read_table(path)
    table.iloc[:-1].to_csv(path, index=False)  # a row lost
    with pytest.raises(ConfigError, match="does not match its sidecar"):
        merge_shards(tmp_path)
    other = read_table(tmp_path / "shard-00002-of-00002.csv")
    pd.concat([table.iloc[:-1], other.iloc[:1]]).to_csv(path, index=False)  # a record of shard 2 twice
    with pytest.raises(ConfigError, match="records of other shards"):
        merge_shards(tmp_path)


def test_merge_of_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no finished shards"):
        merge_shards(tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        merge_shards(tmp_path / "absent")


def test_empty_shard(tmp_path: Path) -> None:
    result = run_shard(RECORDS[:1], 1, 2, tmp_path, FakePredict(), IDENTITY)
    other = run_shard(RECORDS[:1], 2, 2, tmp_path, FakePredict(), IDENTITY)
    assert sorted([result.sidecar["n_records"], other.sidecar["n_records"]]) == [0, 1]
    merged = merge_shards(tmp_path)
    assert list(merged["record"]) == [RECORDS[0][0]] and np.isfinite(merged["age"]).all()
