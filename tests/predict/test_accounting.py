"""Batch prediction accounts for every input (issue #22 item 3): each record that discovery finds appears in
``predict``'s output exactly once, ``ok`` or ``error`` with a message, and the summary counts inputs = ok + error.

The folder mixes real fixtures, special WFDB records (signal files named ``~`` or empty, a self-referencing, a
cyclic and a broken multi-segment header, a valid multi-segment record with its segment and layout headers, a
signal file without header) and mutated copies from ``tests/fuzzing.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from fuzzing import build_case, sources

from ecglens.cli import app
from ecglens.examples import example_paths
from ecglens.predict import Predictor, find_records
from ecglens.predict.records import unpacked_archives

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_MUTATED = 40


def _copy_record(fixtures: Path, rec: str, folder: Path) -> Path:
    """Copy the files of the fixture record ``rec`` into ``folder``; returns the copied header."""
    folder.mkdir(parents=True, exist_ok=True)
    base = fixtures / rec
    for f in base.parent.glob(base.name + ".*"):
        shutil.copyfile(f, folder / f.name)
    return folder / f"{base.name}.hea"


def _signal_files_named(hea: Path, name: str) -> None:
    lines = hea.read_text().splitlines()
    n_sig = int(lines[0].split()[1])
    lines[1:1 + n_sig] = [" ".join([name, *ln.split()[1:]]) for ln in lines[1:1 + n_sig]]
    hea.write_text("\n".join(lines) + "\n")


def _special_records(fixtures: Path, root: Path) -> dict[str, str]:
    """Write the special records under ``root``; returns record name -> expected status."""
    expect = {}
    for rec in ("code15/100003", "georgia/E07500", "ptbxl_official/records100/00000/00001_lr"):
        hea = _copy_record(fixtures, rec, root / "good" / rec.split("/")[0])
        expect[str(hea.with_suffix(""))] = "ok"
    tilde = _copy_record(fixtures, "code15/100003", root / "tilde")
    _signal_files_named(tilde, "~")
    expect[str(tilde.with_suffix(""))] = "error"
    empty = _copy_record(fixtures, "code15/100003", root / "empty")
    _signal_files_named(empty, "")
    expect[str(empty.with_suffix(""))] = "error"
    multi = root / "multi"
    segment = _copy_record(fixtures, "code15/100003", multi)
    _, n_sig, fs, n = segment.read_text().split("\n")[0].split()[:4]
    (multi / "layout.hea").write_text(f"layout {n_sig} {fs} 0\n" + "".join(
        f"~ 0 1000/mV 16 0 0 0 0 {lead}\n" for lead in ("I", "II", "III", "aVR", "aVL", "aVF",
                                                          "V1", "V2", "V3", "V4", "V5", "V6")))
    (multi / "whole.hea").write_text(f"whole/2 {n_sig} {fs} {n}\nlayout 0\n100003 {n}\n")
    expect[str(multi / "whole")] = "ok"      # its segment and layout headers are read through it
    (root / "self").mkdir()
    (root / "self" / "me.hea").write_text("me/2 12 500 2000\nme 1000\nme 1000\n")
    expect[str(root / "self" / "me")] = "error"
    (root / "cycle").mkdir()
    (root / "cycle" / "a.hea").write_text("a/1 12 500 2000\nb 2000\n")
    (root / "cycle" / "b.hea").write_text("b/1 12 500 2000\na 2000\n")
    expect[str(root / "cycle" / "a")] = "error"
    (root / "broken").mkdir()
    (root / "broken" / "gap.hea").write_text("gap/2 12 500 2000\nnothere 1000\n~ 1000\n")
    expect[str(root / "broken" / "gap")] = "error"
    (root / "orphan").mkdir()
    shutil.copyfile(fixtures / "code15" / "100003.dat", root / "orphan" / "lonely.dat")
    expect[str(root / "orphan" / "lonely.dat")] = "error"
    return expect


@pytest.fixture(scope="module")
def mixed_folder(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("mixed")
    expect = _special_records(fixtures_dir, root / "special")
    # raw arrays (.npy, .csv) need fs= and are not records of a folder search: only the self-describing formats
    srcs = [s for s in sources(fixtures_dir, tmp_path_factory.mktemp("fuzz-cache")) if not s.read_kwargs]
    for index in range(N_MUTATED):
        folder = root / "mutated" / f"case{index:03d}"
        folder.mkdir(parents=True)
        build_case(srcs[index % len(srcs)], index, seed=22, folder=folder)
    return root, expect


def test_discovery_lists_special_records_once(mixed_folder: tuple[Path, dict[str, str]]) -> None:
    root, expect = mixed_folder
    with unpacked_archives():
        names = [name for name, _ in find_records(root / "special")]
    assert sorted(names) == sorted(expect)
    assert str(root / "special" / "multi" / "100003") not in names
    assert str(root / "special" / "cycle" / "b") not in names


def _find_by_paths(folder: Path, with_arrays: bool) -> list[tuple[str, Path]]:
    """Discovery of a folder as it was written before the string listing (one ``Path`` per file, the public
    per-file rules): the reference that :func:`find_records` must equal."""
    from ecglens.io.paths import walk_files
    from ecglens.io.registry import is_record_file
    from ecglens.io.wfdb import signal_records
    from ecglens.predict.records import record_key

    listing = walk_files(folder)
    present = set(listing)
    files = [f for f in listing if is_record_file(f, raw=with_arrays, present=present)]
    kept = set(signal_records([f for f in files if f.suffix.lower() == ".hea"]))
    found = sorted((f for f in files if f.suffix.lower() != ".hea" or f in kept), key=lambda f: f.parts)
    present = set(found)
    return [record_key(f, present if f.suffix.lower() == ".hea" else None) for f in found]


def _odd_names(root: Path, fixtures: Path) -> None:
    """Names whose suffixes pathlib and naive string code read differently, upper-case WFDB files, arrays."""
    _copy_record(fixtures, "code15/100003", root / "odd")
    for name in ("UPPER.HEA", "UPPER.DAT"):
        shutil.copyfile(fixtures / "code15" / f"100003{Path(name).suffix.lower()}", root / "odd" / name)
    shutil.copyfile(fixtures / "code15" / "100003.dat", root / "odd" / "mixed.DAT")  # its header: mixed.hea
    shutil.copyfile(fixtures / "code15" / "100003.hea", root / "odd" / "mixed.hea")
    for name in (".hea", "..hea", "rec.", "a.b.hea.txt", "x.npy", "table.csv", "notes.txt", "dot.dir.xml"):
        (root / "odd" / name).write_bytes(b"1,2\n3,4\n")
    (root / "odd" / "folder.hea").mkdir()
    (root / "odd" / "folder.hea" / "inner.hea").write_bytes(b"inner 1 500 10\n")


@pytest.mark.parametrize("with_arrays", [False, True])
def test_discovery_equals_the_per_path_rules(mixed_folder: tuple[Path, dict[str, str]], fixtures_dir: Path,
                                             with_arrays: bool, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder listing works on strings for speed; it lists the same records, named and ordered the same,
    as the per-file rules on ``Path`` objects, also for a folder given as ``.`` or with a trailing slash."""
    root, _ = mixed_folder
    _odd_names(tmp_path, fixtures_dir)
    with unpacked_archives():
        assert find_records(root, with_arrays=with_arrays) == _find_by_paths(root, with_arrays)
        assert find_records(f"{tmp_path}/", with_arrays=with_arrays) == _find_by_paths(tmp_path, with_arrays)
        monkeypatch.chdir(tmp_path / "odd")
        here = find_records(".", with_arrays=with_arrays)
        assert here == _find_by_paths(Path("."), with_arrays)
    assert ("UPPER", Path("UPPER.HEA")) in here and ("mixed", Path("mixed.hea")) in here
    assert not any(name.startswith("./") for name, _ in here)


def test_every_input_appears_once(mixed_folder: tuple[Path, dict[str, str]]) -> None:
    root, expect = mixed_folder
    predictor = Predictor.from_pretrained("age-sex")
    with unpacked_archives():
        names = [name for name, _ in find_records(root)]
        table = predictor.predict_paths([root], progress=False, workers=0)
    assert len(names) == len(set(names)) >= N_MUTATED + len(expect)
    assert len(table) == len(names)
    assert sorted(table["record"]) == sorted(names)
    assert set(table["status"]) <= {"ok", "error"}
    assert table.attrs["n_ok"] + table.attrs["n_error"] == len(names)
    errors = table[table["status"] == "error"]
    assert errors["message"].fillna("").str.len().gt(0).all()
    status = table.set_index("record")["status"]
    for record, wanted in expect.items():
        assert status[record] == wanted, (record, table.set_index("record").loc[record, "message"])


def test_cli_summary_counts_inputs(mixed_folder: tuple[Path, dict[str, str]], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    root, expect = mixed_folder
    out = tmp_path / "preds.csv"
    assert app(["predict", str(root / "special"), "--output", str(out), "--no-progress",
                     "--workers", "2"]) == 0
    table = pd.read_csv(out)
    n_ok = sum(v == "ok" for v in expect.values())
    assert len(table) == len(expect)
    text = capsys.readouterr().out
    assert f"{len(expect)} input(s): {n_ok} ok, {len(expect) - n_ok} error" in text


# ----------------------------------------------------------------------------------------------- CLI output
def test_single_record_prints_its_table_and_writes_only_with_output(tmp_path: Path, monkeypatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    record = example_paths()[0]
    assert app(["predict", str(record), "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert list(tmp_path.iterdir()) == []  # no ./preds.csv
    values = dict(line.split(maxsplit=1) for line in printed)
    assert values["record"] == str(record.with_suffix("")) and values["status"] == "ok"
    assert 0 < float(values["age"]) < 120 and "p_female" in values and "wrote" not in values
    assert app(["predict", str(record), "--no-progress", "--output", "one.csv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "wrote one.csv"
    assert len(pd.read_csv(tmp_path / "one.csv")) == 1


def test_several_records_write_the_default_file(tmp_path: Path, monkeypatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    records = example_paths()
    assert app(["predict", *map(str, records), "--no-progress", "--workers", "0"]) == 0
    assert len(pd.read_csv(tmp_path / "preds.csv")) == len(records)
    text = capsys.readouterr().out
    assert f"{len(records)} input(s): {len(records)} ok, 0 error" in text and "wrote preds.csv" in text


@pytest.mark.parametrize("command", [["predict"], ["prepare", "ptbxl"], ["prepare", "wfdb"]])
def test_help_is_true_and_has_examples(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        app([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "xamples" in text and f"ecglens {' '.join(command)} " in text
    assert "10 s window" not in text
    if command == ["predict"]:
        assert "4 s for the shipped models" in text and "a single record" in text and "preds.csv" in text
