"""Dataset catalogues: PTB-XL (official and shared schemas) and CODE-15% (HDF5 release layout).

The official PTB-XL rows come from ../shared/data/fixtures/ptbxl_official (v1.0.1 schema); the shared schema
is the real ../shared/data/ptbxl/labels.csv (19,601 records, folds 1-9). The two are checked against each
other on the records both list (independent derivations of the superclasses must agree). CODE-15% files
are written here with h5py in the exact release layout (``tracings`` [N, 4096, 12] float32, ``exam_id`` [N]).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from ecglens.exceptions import ConfigError, CorruptRecordError, UnsupportedFormatError
from ecglens.io import detect_format, read_ecg
from ecglens.io.code15 import (
    code15_catalogue,
    exam_reference,
    iter_code15_hdf5,
    parse_exam_reference,
    read_code15_exam,
)
from ecglens.io.ptbxl import SUPERCLASSES, parse_folds, ptbxl_catalogue
from ecglens.leads import CANONICAL_LEADS

COLUMNS = ["record_id", "path", "source", "age", "sex", "fold", "patient_id", "statements", *SUPERCLASSES]


# --------------------------------------------------------------------------- parse_folds
@pytest.mark.parametrize(
    "spec, folds",
    [
        ("1-8", [1, 2, 3, 4, 5, 6, 7, 8]),
        ("1-4,9", [1, 2, 3, 4, 9]),
        ("10", [10]),
        (" 9, 3 ", [3, 9]),
        ([9, 1, 1], [1, 9]),
        (7, [7]),
        (None, None),
    ],
)
def test_parse_folds(spec, folds):
    assert parse_folds(spec) == folds


@pytest.mark.parametrize("spec", ["8-1", "a", "", "1-", ["x"]])
def test_parse_folds_rejects(spec):
    with pytest.raises(ConfigError, match="fold"):
        parse_folds(spec)


# --------------------------------------------------------------------------- PTB-XL official schema
def test_ptbxl_official_schema(fixtures_dir):
    root = fixtures_dir / "ptbxl_official"
    cat = ptbxl_catalogue(root)
    raw = pd.read_csv(root / "ptbxl_database.csv")
    assert list(cat.columns) == COLUMNS and len(cat) == len(raw) == 40
    assert list(cat["record_id"]) == [str(i) for i in raw["ecg_id"]]
    np.testing.assert_array_equal(cat["sex"], raw["sex"])  # PTB-XL 1 = female is ecglens's coding
    assert cat["patient_id"].iloc[0] == "15709" and set(cat["source"]) == {"ptbxl"}
    first = cat.set_index("record_id")
    # ecg_id 1: {'NORM': 100, 'LVOLT': 0, 'SR': 0}; ecg_id 8: {'IMI': 35, 'ABQRS': 0, 'SR': 0}
    assert first.loc["1", "statements"] == "LVOLT;NORM;SR"
    assert first.loc["1", list(SUPERCLASSES)].tolist() == [1, 0, 0, 0, 0]
    assert first.loc["8", list(SUPERCLASSES)].tolist() == [0, 1, 0, 0, 0]
    assert cat[list(SUPERCLASSES)].dtypes.map(lambda d: d.kind).eq("i").all()


@pytest.mark.parametrize("sampling, fs", [("lr", 100), ("hr", 500)])
def test_ptbxl_official_paths_are_readable(fixtures_dir, sampling, fs):
    cat = ptbxl_catalogue(fixtures_dir / "ptbxl_official", sampling=sampling)
    for path in cat["path"].iloc[:5]:
        assert Path(path).is_absolute()
        ecg = read_ecg(path)
        assert ecg.fs == fs and ecg.leads == CANONICAL_LEADS


def test_ptbxl_folds_filter(fixtures_dir):
    root = fixtures_dir / "ptbxl_official"
    full = ptbxl_catalogue(root)
    nine = ptbxl_catalogue(root, folds="9")
    assert set(nine["fold"]) == {9} and len(nine) == (full["fold"] == 9).sum()
    train = ptbxl_catalogue(root, folds=[1, 2, 3, 4, 5, 6, 7, 8])
    assert len(train) + len(nine) == len(full)


def test_ptbxl_csv_path_as_root(fixtures_dir):
    root = fixtures_dir / "ptbxl_official"
    pd.testing.assert_frame_equal(ptbxl_catalogue(root / "ptbxl_database.csv"), ptbxl_catalogue(root))


# --------------------------------------------------------------------------- PTB-XL shared labels.csv
def test_ptbxl_labels_schema(ptbxl_labels):
    cat = ptbxl_catalogue(ptbxl_labels.parent)
    raw = pd.read_csv(ptbxl_labels)
    assert list(cat.columns) == COLUMNS and len(cat) == 19_601
    assert (raw["age"] == 300).sum() == 259
    assert (cat["age"] == 90).sum() == 259 + (raw["age"] == 90).sum() and cat["age"].max() <= 90
    np.testing.assert_array_equal(cat["sex"], raw["sex"])
    assert set(cat["sex"]) == {0.0, 1.0} and sorted(set(cat["fold"])) == list(range(1, 10))
    assert cat["patient_id"].isna().all()
    for cls in SUPERCLASSES:
        np.testing.assert_array_equal(cat[cls], raw[f"diagnostic_superclass_{cls}"])
    assert cat["path"].iloc[0] == str(ptbxl_labels.parent.resolve() / "records100/00000/00001_lr")
    train = ptbxl_catalogue(ptbxl_labels.parent, folds="1-8")
    assert len(train) == (raw["strat_fold"] <= 8).sum()


def test_ptbxl_schemas_agree(fixtures_dir, ptbxl_labels):
    """Superclasses derived from scp_codes + scp_statements.csv equal the shared table's columns."""
    official = ptbxl_catalogue(fixtures_dir / "ptbxl_official").set_index("record_id")
    shared = ptbxl_catalogue(ptbxl_labels.parent).set_index("record_id").loc[official.index]
    for col in ["age", "sex", "fold", "statements", *SUPERCLASSES]:
        assert (official[col] == shared[col]).all(), col


def test_ptbxl_errors(fixtures_dir, ptbxl_labels, tmp_path):
    with pytest.raises(UnsupportedFormatError, match="ptbxl_database.csv"):
        ptbxl_catalogue(tmp_path)
    with pytest.raises(ConfigError, match="filename_hr"):
        ptbxl_catalogue(ptbxl_labels.parent, sampling="hr")
    with pytest.raises(ConfigError, match="folds"):
        ptbxl_catalogue(ptbxl_labels.parent, folds=10)  # fold 10 is held out of the shared table
    with pytest.raises(ConfigError, match="sampling"):
        ptbxl_catalogue(ptbxl_labels.parent, sampling="250")
    # official table without scp_statements.csv
    (tmp_path / "ptbxl_database.csv").write_bytes(
        (fixtures_dir / "ptbxl_official" / "ptbxl_database.csv").read_bytes()
    )
    with pytest.raises(UnsupportedFormatError, match="scp_statements.csv"):
        ptbxl_catalogue(tmp_path)


# --------------------------------------------------------------------------- CODE-15% (HDF5 release layout)
def _code15_release(root: Path, tracings: np.ndarray, exam_ids, part: str = "exams_part0.hdf5") -> Path:
    with h5py.File(root / part, "w") as f:
        f.create_dataset("tracings", data=tracings.astype(np.float32))
        f.create_dataset("exam_id", data=np.asarray(exam_ids, dtype=np.int64))
    return root / part


@pytest.fixture
def code15_root(tmp_path, fixtures_dir):
    """Two real exams (CODE-15% fixtures, 2934 and 4096 samples) zero-padded centrally to 4096 like the
    release, a padding row with exam id 0, and an exams.csv that also lists an exam of a part not
    downloaded."""
    short = read_ecg(fixtures_dir / "code15" / "100003")  # 2934 samples
    full = read_ecg(fixtures_dir / "code15" / "1000001")  # 4096 samples
    tracings = np.zeros((3, 4096, 12), np.float32)
    pad = (4096 - short.n_samples) // 2
    tracings[0, pad : pad + short.n_samples] = short.signal.T
    tracings[1] = full.signal.T
    _code15_release(tmp_path, tracings, [100003, 1000001, 0])
    pd.DataFrame(
        {
            "exam_id": [100003, 1000001, 555],
            "age": [64, 22, 300],
            "is_male": [True, False, False],
            "nn_predicted_age": [61.5, 30.1, 80.0],
            "1dAVb": [False, True, False],
            "RBBB": False,
            "LBBB": False,
            "SB": False,
            "ST": False,
            "AF": [False, False, True],
            "patient_id": [11, 22, 33],
            "death": [False, np.nan, True],
            "timey": [5.2, np.nan, 1.5],
            "normal_ecg": [True, False, False],
            "trace_file": ["exams_part0.hdf5", "exams_part0.hdf5", "exams_part1.hdf5"],
        }
    ).to_csv(tmp_path / "exams.csv", index=False)
    return tmp_path, short, full, pad


def test_code15_catalogue(code15_root):
    root, *_ = code15_root
    with pytest.warns(UserWarning, match="1 of 3 exams left out"):
        cat = code15_catalogue(root)
    assert list(cat["record_id"]) == ["100003", "1000001"]
    assert list(cat["sex"]) == [0.0, 1.0] and list(cat["age"]) == [64.0, 22.0]
    assert list(cat["patient_id"]) == ["11", "22"] and set(cat["source"]) == {"code15"}
    assert list(cat["1dAVb"]) == [0.0, 1.0] and cat["death"].iloc[0] == 0.0 and np.isnan(cat["death"].iloc[1])
    assert cat["path"].iloc[0] == f"{root.resolve()}/exams_part0.hdf5/100003.code15"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        everything = code15_catalogue(root / "exams.csv", only_available=False)
    assert len(everything) == 3 and everything["age"].iloc[2] == 90.0


def test_code15_catalogue_paths_read_like_the_wfdb_fixtures(code15_root):
    root, short, full, pad = code15_root
    with pytest.warns(UserWarning):
        cat = code15_catalogue(root)
    assert detect_format(cat["path"].iloc[0])[0] == "code15"
    ecg = read_ecg(cat["path"].iloc[0])
    assert ecg.fs == 400 and ecg.leads == CANONICAL_LEADS and ecg.n_samples == short.n_samples
    np.testing.assert_array_equal(ecg.signal, short.signal)  # padding stripped exactly
    assert (ecg.meta["pad_start"], ecg.meta["pad_end"]) == (pad, 4096 - pad - short.n_samples)
    assert (ecg.age, ecg.sex, ecg.meta["patient_id"]) == (64.0, "M", "11")
    other = read_ecg(cat["path"].iloc[1])
    np.testing.assert_array_equal(other.signal, full.signal)
    assert other.sex == "F" and other.meta["labels"]["1dAVb"] is True and other.meta["pad_start"] == 0


def test_read_code15_exam_by_id_index_and_scale(code15_root):
    root, *_ = code15_root
    part = root / "exams_part0.hdf5"
    by_id = read_code15_exam(part, 100003)
    by_index = read_code15_exam(part, index=0)
    np.testing.assert_array_equal(by_id.signal, by_index.signal)
    assert by_index.record_id == "100003"
    tenth = read_code15_exam(part, 100003, scale_mv=0.1)
    np.testing.assert_allclose(tenth.signal, by_id.signal * 0.1, rtol=1e-6)
    padded = read_ecg(part, exam_id=100003, strip_padding=False)
    assert padded.n_samples == 4096 and padded.meta["pad_start"] == 0
    assert parse_exam_reference(exam_reference(part, 100003)) == (part, 100003)


def test_iter_code15_skips_padding_rows(code15_root):
    root, short, full, _ = code15_root
    exams = list(iter_code15_hdf5(root, chunk_size=2))
    assert [e.record_id for e in exams] == ["100003", "1000001"]
    assert [e.n_samples for e in exams] == [short.n_samples, full.n_samples]


def test_code15_errors(code15_root, tmp_path_factory):
    root, *_ = code15_root
    part = root / "exams_part0.hdf5"
    with pytest.raises(ConfigError, match="exam_id="):
        read_ecg(part)  # three rows: which one?
    with pytest.raises(CorruptRecordError, match="exam 42 is not in this file"):
        read_ecg(f"{part}/42.code15")
    with pytest.raises(ConfigError, match="out of range"):
        read_code15_exam(part, index=3)
    with pytest.raises(UnsupportedFormatError, match="exams.csv"):
        code15_catalogue(tmp_path_factory.mktemp("empty"))
