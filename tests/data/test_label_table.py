"""``prepare ... --labels TABLE --id-column COL``: a user's own label table joined onto the records."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from ecglens.cli import app
from ecglens.data.label_table import attach_labels, read_label_table
from ecglens.exceptions import ConfigError


def catalogue() -> pd.DataFrame:
    return pd.DataFrame({"record_id": ["E1", "E2", "E3"], "path": ["/d/E1", "/d/E2", "/d/E3"],
                         "age": [50.0, 60.0, 70.0], "sex": [0.0, 1.0, float("nan")]})


def test_table_values_replace_header_values_and_records_missing_from_it_keep_theirs():
    table = pd.DataFrame({"ecg": ["E1.hea", "sub/E3", "E9"], "sex": ["female", "M", "F"], "MI": ["1", "0", "1"],
                          "fold": ["1", "2", "3"], "age": [None, "81", "40"]})
    out = attach_labels(catalogue(), table, "ecg")
    assert out["record_id"].tolist() == ["E1", "E2", "E3"]  # order and rows of the catalogue
    assert out["sex"].tolist()[0] == 1.0 and out["sex"].tolist()[2] == 0.0 and out["sex"].tolist()[1] == 1.0
    assert out["age"].tolist() == [50.0, 60.0, 81.0]  # no value in the table: the header's stays
    assert out["MI"].tolist()[0] == 1.0 and pd.isna(out["MI"].iloc[1]) and out["MI"].iloc[2] == 0.0
    assert out["fold"].dtype.kind == "f" and out.attrs == {"labels_matched": 2, "labels_unmatched": 1}


def test_bad_tables_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="no column 'id'"):
        attach_labels(catalogue(), pd.DataFrame({"ecg": ["E1"]}), "id")
    with pytest.raises(ConfigError, match="more than once: E1"):
        attach_labels(catalogue(), pd.DataFrame({"ecg": ["E1", "E1.hea"], "MI": ["0", "1"]}), "ecg")
    with pytest.raises(ConfigError, match="no record of the catalogue"):
        attach_labels(catalogue(), pd.DataFrame({"ecg": ["X"], "MI": ["0"]}), "ecg")
    with pytest.raises(ConfigError, match="not found"):
        read_label_table(tmp_path / "missing.csv")


def test_cli_prepare_wfdb_with_a_label_table(fixtures_dir, tmp_path, capsys):
    data = tmp_path / "georgia"
    shutil.copytree(fixtures_dir / "georgia", data)
    records = sorted(p.stem for p in data.glob("*.hea"))
    labels = tmp_path / "labels.tsv"
    pd.DataFrame({"ecg_id": [f"{r}.hea" for r in records], "MI": [i % 2 for i in range(len(records))],
                  "fold": [1] * len(records)}).to_csv(labels, sep="\t", index=False)
    out = tmp_path / "cache"
    code = app(["prepare", "wfdb", str(data), "--out", str(out), "--fs", "100", "--seconds", "10",
                "--workers", "1", "--quiet", "--labels", str(labels), "--id-column", "ecg_id"])
    assert code == 0
    assert f"{len(records)} of {len(records)} records named in the table" in capsys.readouterr().out
    meta = pd.read_csv(out / "meta.csv")
    assert sorted(meta["MI"].tolist()) == sorted(i % 2 for i in range(len(records))) and set(meta["fold"]) == {1}
    assert json.loads((out / "manifest.json").read_text())["n_accepted"] == len(records)
