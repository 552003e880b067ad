"""Tests of ``ecglens.data.cache``: prepare a cache from a synthetic mixed WFDB folder, atomicity, idempotency,
``open_cache`` and ``PreparedCache.indices``.

The synthetic records are written with ``wfdb.wrsamp`` (12 leads, mV, sinusoids of lead-specific frequency and
amplitude) at different sampling rates and lengths; the broken ones are made from good ones by truncating the
``.dat``, deleting it, garbling the header, or writing an all-zero signal. The expected cached signal of every
good record is computed independently of the cache code, as ``preprocess.apply(read_ecg(path))``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

wfdb = pytest.importorskip("wfdb")

from ecglens.data import cache as cache_mod
from ecglens.data._atomic import shrink_npy
from ecglens.data.cache import PreparedCache, is_cache, open_cache, prepare_cache, write_cache
from ecglens.exceptions import ConfigError, CorruptRecordError, EcglensError
from ecglens.io import read_ecg
from ecglens.leads import CANONICAL_LEADS
from ecglens.signal.transforms import Preprocess

#: (name, fs in Hz, seconds, age, sex) of the good synthetic records
GOOD = [
    ("rec100", 100, 10.0, 63, "Female"),
    ("rec250", 250, 8.0, 41, "Male"),
    ("rec500", 500, 12.0, 77, "Female"),
    ("rec500b", 500, 10.0, 55, "Male"),
    ("rec400", 400, 7.3, 30, "Male"),
]
BROKEN = ("trunc", "badheader", "nodat", "zeros")


def synth_signal(fs: float, seconds: float, seed: int = 0) -> np.ndarray:
    """[n_samples, 12] in mV: per-lead sinusoid (1-3 Hz, 0.3-1.5 mV) plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(fs * seconds)) / fs
    freqs = np.linspace(1.0, 3.0, 12)
    amps = np.linspace(0.3, 1.5, 12)
    x = amps * np.sin(2 * np.pi * freqs * t[:, None]) + 0.02 * rng.standard_normal((t.size, 12))
    return x.astype(np.float64)


def write_record(folder: Path, name: str, fs: float, seconds: float, age: int = 50, sex: str = "Male",
                 signal: np.ndarray | None = None, seed: int = 0) -> Path:
    """Write a 12-lead WFDB record (format 16, 1000 adu/mV); returns the ``.hea`` path."""
    folder.mkdir(parents=True, exist_ok=True)
    sig = synth_signal(fs, seconds, seed) if signal is None else signal
    wfdb.wrsamp(name, fs=fs, units=["mV"] * 12, sig_name=list(CANONICAL_LEADS), p_signal=sig, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12,
                comments=[f"Age: {age}", f"Sex: {sex}", "Dx: 426783006"], write_dir=str(folder))
    return folder / f"{name}.hea"


def make_broken(folder: Path) -> dict[str, Path]:
    """Write the four broken records; returns name -> ``.hea`` path."""
    out = {}
    hea = write_record(folder, "trunc", 500, 10.0, seed=7)
    dat = hea.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 3])
    out["trunc"] = hea
    hea = folder / "badheader.hea"
    hea.write_text("this is not a WFDB header\nbadheader.dat sixteen 200/mV I\n")
    (folder / "badheader.dat").write_bytes(b"\x00" * 64)
    out["badheader"] = hea
    hea = write_record(folder, "nodat", 250, 10.0, seed=8)
    hea.with_suffix(".dat").unlink()
    out["nodat"] = hea
    out["zeros"] = write_record(folder, "zeros", 500, 10.0, signal=np.zeros((5000, 12)))
    return out


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A folder with the good records (in two sub-folders) and the broken ones."""
    root = tmp_path_factory.mktemp("mixed")
    good = {}
    for i, (name, fs, seconds, age, sex) in enumerate(GOOD):
        good[name] = write_record(root / ("a" if i % 2 else "b"), name, fs, seconds, age, sex, seed=i)
    broken = make_broken(root / "broken")
    return {"root": root, "good": good, "broken": broken}


@pytest.fixture(scope="module")
def preprocess() -> Preprocess:
    return Preprocess(fs=100, seconds=10)


def catalogue_of(paths: dict[str, Path], **columns) -> pd.DataFrame:
    """A minimal catalogue: record_id, path, source (+ extra columns)."""
    df = pd.DataFrame({"record_id": list(paths), "path": [str(p) for p in paths.values()], "source": "synth"})
    for key, value in columns.items():
        df[key] = value
    return df


@pytest.fixture(scope="module")
def mixed_catalogue(mixed_folder: dict) -> pd.DataFrame:
    paths = {**mixed_folder["good"], **mixed_folder["broken"]}
    n = len(paths)
    return catalogue_of(paths, fold=[1 + i % 3 for i in range(n)], MI=[i % 2 for i in range(n)])


@pytest.fixture(scope="module")
def prepared(mixed_catalogue: pd.DataFrame, preprocess: Preprocess, tmp_path_factory: pytest.TempPathFactory):
    """The mixed catalogue prepared once with 2 workers (chunk size 2, so several chunks go to the pool)."""
    out = tmp_path_factory.mktemp("prep") / "cache"
    manifest = prepare_cache(mixed_catalogue, out, preprocess, workers=2, source="synth", progress=False,
                             chunk_size=2)
    return out, manifest


# ------------------------------------------------------------------------------------------------ prepare
def test_counts_and_rejected_reasons(prepared, mixed_folder):
    out, manifest = prepared
    assert manifest["n_records"] == len(GOOD) + len(BROKEN)
    assert manifest["n_accepted"] == len(GOOD)
    assert manifest["n_rejected"] == len(BROKEN)
    rejected = {row["record"]: row for row in manifest["rejected"]}
    assert set(rejected) == set(BROKEN)
    for row in rejected.values():
        assert row["reason"].strip(), row
        assert row["path"] == str(mixed_folder["broken"][row["record"]])
    # the same list is in rejected.csv and in manifest.json on disk
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["rejected"] == manifest["rejected"]
    assert set(pd.read_csv(out / "rejected.csv")["record"]) == set(BROKEN)
    assert manifest["records_per_s"] > 0 and manifest["elapsed_s"] > 0


def test_signals_equal_preprocess_of_read(prepared, preprocess, mixed_folder):
    out, _ = prepared
    cache = open_cache(out)
    assert isinstance(cache, PreparedCache)
    assert cache.signals.shape == (len(GOOD), 12, 1000)
    assert cache.signals.dtype == np.float32
    assert list(cache.meta["record_id"]) == [g[0] for g in GOOD]  # catalogue order is kept
    for i, rid in enumerate(cache.meta["record_id"]):
        expected = preprocess.apply(read_ecg(mixed_folder["good"][rid]))
        np.testing.assert_allclose(cache.signals[i], expected, rtol=1e-6, atol=1e-6)


def test_meta_columns(prepared):
    out, _ = prepared
    meta = open_cache(out).meta
    for column in ("record_id", "source", "path", "age", "sex", "fold", "patient_id", "MI", "fs_native",
                   "n_samples_native", "n_valid", "derived_leads", "quality_flags"):
        assert column in meta, column
    by_id = meta.set_index("record_id")
    for name, fs, seconds, age, sex in GOOD:
        row = by_id.loc[name]
        assert row["fs_native"] == fs
        assert row["n_samples_native"] == round(fs * seconds)
        # real samples after resampling to 100 Hz and crop/pad to 10 s
        assert row["n_valid"] == pytest.approx(min(1000, round(100 * seconds)), abs=1)
        assert row["age"] == age  # filled from the header when the catalogue has no age
        assert row["sex"] == (1.0 if sex == "Female" else 0.0)
        assert row["source"] == "synth"


def test_workers_1_and_2_identical(mixed_catalogue, preprocess, prepared, tmp_path):
    out1 = tmp_path / "one"
    manifest = prepare_cache(mixed_catalogue, out1, preprocess, workers=1, source="synth", progress=False)
    assert manifest["n_accepted"] == len(GOOD)
    a, b = open_cache(out1), open_cache(prepared[0])
    np.testing.assert_array_equal(np.asarray(a.signals), np.asarray(b.signals))
    pd.testing.assert_frame_equal(a.meta, b.meta)


def test_float16(mixed_catalogue, preprocess, prepared, tmp_path):
    manifest = prepare_cache(mixed_catalogue, tmp_path / "f16", preprocess, workers=1, progress=False,
                             dtype="float16")
    half = open_cache(tmp_path / "f16")
    assert half.signals.dtype == np.float16 and manifest["dtype"] == "float16"
    np.testing.assert_allclose(half.signals.astype(np.float32), open_cache(prepared[0]).signals, atol=2e-3)


def test_unexpected_exception_is_recorded_with_its_type(mixed_folder, preprocess, tmp_path, monkeypatch):
    real = cache_mod._prepare_one

    def flaky(path):
        if path.endswith("rec250.hea"):
            raise RuntimeError("boom")
        return real(path)

    monkeypatch.setattr(cache_mod, "_prepare_one", flaky)
    manifest = prepare_cache(catalogue_of(mixed_folder["good"]), tmp_path / "c", preprocess, workers=1,
                             progress=False)
    (row,) = manifest["rejected"]
    assert row["record"] == "rec250" and row["error"] == "RuntimeError" and "boom" in row["reason"]
    assert manifest["n_accepted"] == len(GOOD) - 1
    assert open_cache(tmp_path / "c").signals.shape[0] == len(GOOD) - 1


def test_nothing_accepted_raises_and_writes_nothing(mixed_folder, preprocess, tmp_path):
    out = tmp_path / "none"
    with pytest.raises(EcglensError, match="none of the 4 records"):
        prepare_cache(catalogue_of(mixed_folder["broken"]), out, preprocess, workers=1, progress=False)
    assert not out.exists()
    assert not list(tmp_path.glob("none.tmp-*"))


def test_bad_catalogue_and_dtype(preprocess, tmp_path, mixed_folder):
    with pytest.raises(ConfigError, match="'path' column"):
        prepare_cache(pd.DataFrame({"x": [1]}), tmp_path / "c", preprocess, progress=False)
    with pytest.raises(ConfigError, match="empty"):
        prepare_cache(pd.DataFrame({"path": []}), tmp_path / "c", preprocess, progress=False)
    with pytest.raises(ConfigError, match="dtype"):
        prepare_cache(catalogue_of(mixed_folder["good"]), tmp_path / "c", preprocess, dtype="int8")


# ------------------------------------------------------------------------------------------------ atomicity
def test_crash_mid_write_leaves_no_complete_cache(mixed_folder, preprocess, tmp_path, monkeypatch):
    out = tmp_path / "crash"
    calls = {"n": 0}
    real = cache_mod._process_chunk

    def crash_on_second_chunk(task):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(task)

    monkeypatch.setattr(cache_mod, "_process_chunk", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(catalogue_of(mixed_folder["good"]), out, preprocess, workers=1, progress=False,
                      chunk_size=2)
    assert calls["n"] == 2
    assert not out.exists() and not is_cache(out)
    assert not list(tmp_path.glob("crash.tmp-*"))  # the temp folder was removed


def test_crash_while_writing_meta(mixed_folder, preprocess, tmp_path, monkeypatch):
    out = tmp_path / "crash2"

    def fail(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    with pytest.raises(OSError, match="disk full"):
        prepare_cache(catalogue_of(mixed_folder["good"]), out, preprocess, workers=1, progress=False)
    assert not out.exists()
    with pytest.raises(ConfigError, match="no cache"):
        open_cache(out)


def test_leftover_temp_dir_is_cleaned(mixed_folder, preprocess, tmp_path):
    out = tmp_path / "c"
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: no such process
    leftover = tmp_path / f"c.tmp-{dead_pid}"
    leftover.mkdir()
    (leftover / "signals.npy").write_bytes(b"partial")
    prepare_cache(catalogue_of(mixed_folder["good"]), out, preprocess, workers=1, progress=False)
    assert not leftover.exists()
    assert is_cache(out)


# ------------------------------------------------------------------------------------------------ idempotency
def test_second_run_does_no_work(mixed_folder, preprocess, tmp_path, monkeypatch, caplog):
    cat = catalogue_of(mixed_folder["good"])
    out = tmp_path / "c"
    first = prepare_cache(cat, out, preprocess, workers=1, progress=False)
    mtime = (out / "signals.npy").stat().st_mtime_ns

    def must_not_run(task):
        raise AssertionError("prepare did work on an up-to-date cache")

    monkeypatch.setattr(cache_mod, "_process_chunk", must_not_run)
    with caplog.at_level("INFO", logger="ecglens.data.cache"):
        second = prepare_cache(cat, out, preprocess, workers=1, progress=True)
    assert second.pop("up_to_date") is True
    assert second == first and "up_to_date" not in first
    assert "up to date" in caplog.text
    assert (out / "signals.npy").stat().st_mtime_ns == mtime


def test_different_settings_refused_unless_force(mixed_folder, preprocess, tmp_path):
    cat = catalogue_of(mixed_folder["good"])
    out = tmp_path / "c"
    prepare_cache(cat, out, preprocess, workers=1, progress=False)
    other = Preprocess(fs=50, seconds=10)
    with pytest.raises(ConfigError, match="force"):
        prepare_cache(cat, out, other, workers=1, progress=False)
    assert open_cache(out).signals.shape[-1] == 1000  # untouched
    manifest = prepare_cache(cat, out, other, workers=1, progress=False, force=True)
    assert manifest["shape"] == [len(GOOD), 12, 500]
    assert open_cache(out).signals.shape == (len(GOOD), 12, 500)
    assert not list(tmp_path.glob("c.old-*")) and not list(tmp_path.glob("c.tmp-*"))


def test_refuses_non_cache_folder(mixed_folder, preprocess, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("not a cache")
    with pytest.raises(ConfigError, match="not an ecglens cache"):
        prepare_cache(catalogue_of(mixed_folder["good"]), out, preprocess, workers=1, progress=False,
                      force=True)
    assert (out / "notes.txt").read_text() == "not a cache"


# ------------------------------------------------------------------------------------------------ open_cache
def test_open_cache_errors(prepared, tmp_path):
    with pytest.raises(ConfigError, match="no cache"):
        open_cache(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorruptRecordError, match="missing signals.npy, meta.csv, manifest.json"):
        open_cache(empty)
    src = prepared[0]
    broken = tmp_path / "short_meta"
    broken.mkdir()
    for name in ("signals.npy", "manifest.json"):
        os.symlink(src / name, broken / name)
    pd.read_csv(src / "meta.csv").iloc[:2].to_csv(broken / "meta.csv", index=False)
    with pytest.raises(CorruptRecordError, match="meta.csv has 2 rows"):
        open_cache(broken)


def test_open_cache_is_read_only_memmap(prepared):
    cache = open_cache(prepared[0])
    assert isinstance(cache.signals, np.memmap) and not cache.signals.flags.writeable
    assert len(cache) == len(GOOD)
    assert cache.fs == 100.0 and cache.leads == CANONICAL_LEADS
    assert cache.preprocess.to_dict() == Preprocess(fs=100, seconds=10).to_dict()


def test_indices_by_fold_and_query(prepared):
    cache = open_cache(prepared[0])
    folds = cache.meta["fold"].to_numpy()
    np.testing.assert_array_equal(cache.indices(folds=1), np.flatnonzero(folds == 1))
    np.testing.assert_array_equal(cache.indices(folds=[1, 3]), np.flatnonzero(np.isin(folds, [1, 3])))
    np.testing.assert_array_equal(cache.indices(folds="2-3"), np.flatnonzero(np.isin(folds, [2, 3])))
    np.testing.assert_array_equal(cache.indices(), np.arange(len(GOOD)))
    mi = cache.meta["MI"].to_numpy()
    np.testing.assert_array_equal(cache.indices(query={"MI": 1}), np.flatnonzero(mi == 1))
    both = cache.indices(folds=[1, 2], query=lambda m: m["age"] > 50)
    expected = np.flatnonzero(np.isin(folds, [1, 2]) & (cache.meta["age"].to_numpy() > 50))
    np.testing.assert_array_equal(both, expected)
    with pytest.raises(ConfigError, match="no column"):
        cache.indices(query={"nope": 1})


def test_summary(prepared):
    summary = open_cache(prepared[0]).summary()
    assert summary["n_accepted"] == len(GOOD) and summary["n_rejected"] == len(BROKEN)
    assert summary["shape"] == [len(GOOD), 12, 1000]
    assert sum(summary["folds"].values()) == len(GOOD)
    assert "MI" in summary["labels_prevalence"]


def test_shrink_npy_keeps_data(tmp_path):
    path = tmp_path / "a.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(12345, 3, 4))
    arr[:] = np.arange(arr.size, dtype=np.float32).reshape(arr.shape)
    arr.flush()
    del arr
    shrink_npy(path, 7)
    out = np.load(path)
    assert out.shape == (7, 3, 4)
    np.testing.assert_array_equal(out, np.arange(7 * 12, dtype=np.float32).reshape(7, 3, 4))
    assert path.stat().st_size < 7 * 12 * 4 + 1024


def test_incomplete_cache_is_not_up_to_date(mixed_folder, preprocess, tmp_path):
    cat = catalogue_of(mixed_folder["good"])
    out = tmp_path / "c"
    prepare_cache(cat, out, preprocess, workers=1, progress=False)
    (out / "signals.npy").unlink()  # damaged by hand; the manifest still matches
    with pytest.raises(ConfigError, match="incomplete"):
        prepare_cache(cat, out, preprocess, workers=1, progress=False)
    manifest = prepare_cache(cat, out, preprocess, workers=1, progress=False, force=True)
    assert "up_to_date" not in manifest and open_cache(out).signals.shape[0] == len(GOOD)


def test_force_rebuilds_an_up_to_date_cache(mixed_folder, preprocess, tmp_path):
    cat = catalogue_of(mixed_folder["good"])
    out = tmp_path / "c"
    prepare_cache(cat, out, preprocess, workers=1, progress=False)
    (out / "meta.csv").write_text((out / "meta.csv").read_text().replace("synth", "edited"))
    manifest = prepare_cache(cat, out, preprocess, workers=1, progress=False, force=True)
    assert "up_to_date" not in manifest
    assert set(open_cache(out).meta["source"]) == {"synth"}  # rewritten, not reused


def test_write_cache_round_trip_atomic_and_refusals(tmp_path, preprocess):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (5, len(preprocess.leads), preprocess.n_samples)).astype(np.float64)
    meta = pd.DataFrame({"record_id": [f"r{i}" for i in range(5)], "fold": [1, 1, 2, 2, 3], "MI": [0, 1, 0, 1, 0]})
    manifest = write_cache(tmp_path / "c", x, meta, preprocess, source="sim", extra={"synthetic": {"seed": 0}})
    cache = open_cache(tmp_path / "c")
    np.testing.assert_allclose(cache.signals, x.astype(np.float32))
    assert cache.signals.dtype == np.float32 and list(cache.meta["MI"]) == [0, 1, 0, 1, 0]
    assert {"source", "path", "age", "sex", "patient_id"} <= set(cache.meta.columns)
    assert cache.manifest["synthetic"] == {"seed": 0} == manifest["synthetic"] and manifest["n_rejected"] == 0
    assert cache.preprocess.to_dict() == preprocess.to_dict() and cache.manifest["source"] == "sim"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temp folder left
    write_cache(tmp_path / "c", x[:2], meta.iloc[:2], preprocess)  # a cache is replaced
    assert len(open_cache(tmp_path / "c")) == 2
    with pytest.raises(ConfigError, match="samples"):
        write_cache(tmp_path / "d", x[:, :, :10], meta, preprocess)
    with pytest.raises(ConfigError, match="rows"):
        write_cache(tmp_path / "d", x, meta.iloc[:3], preprocess)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an ecglens cache"):
        write_cache(tmp_path / "other", x, meta, preprocess)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine" and not (tmp_path / "d").exists()
