"""Tests of archives (ecglens.io.archive, find_records on archives, ``ecglens predict/info/prepare`` on them)
and of folder discovery through the reader registry.

How the expected values are made: the real vendor files of ``../shared/data/fixtures/vendor`` and a few WFDB
fixtures are copied into tmp_path, packed there into a zip and a tar.gz with the standard library, and the
predictions of a tiny random checkpoint on the archive are compared with its predictions on the files
themselves (same model, same records): no hard-coded numbers. Unsafe archives (``..`` and absolute names,
links, devices, bombs) are built member by member with zipfile / tarfile.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecglens.artifact import save_checkpoint
from ecglens.cli import app
from ecglens.data.targets import task_from_name
from ecglens.exceptions import CorruptRecordError
from ecglens.io.archive import ArchiveError, ArchiveLimits, extract_archive, is_archive
from ecglens.io.registry import is_record_file, record_file
from ecglens.models import create_model
from ecglens.predict import Predictor
from ecglens.predict.records import _UNPACKED, find_records, unpacked_archives
from ecglens.signal.transforms import Preprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op torch thread

VENDOR_OK = ("aecg_hl7_example.xml", "cardiosoft_dummy.xml", "contec_demo.scp", "muse_phi1.xml",
             "philips_129DYPRG_103.xml", "philips_ad4d3d80_104.xml", "philips_ad4d3d80_104_as_aecg.xml",
             "toolkit_example.dcm", "toolkit_example.scp")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [60.0, 0.0], [80.0, 1.0]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(8, 16))
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model, task=task,
                           preprocess=Preprocess())
    return Predictor.from_pretrained(path)


@pytest.fixture
def export(fixtures_dir: Path, tmp_path: Path) -> Path:
    """A folder like a hospital export: every vendor file, two WFDB records in a subfolder, one broken file."""
    root = tmp_path / "export"
    shutil.copytree(fixtures_dir / "vendor", root)
    (root / "SOURCES.csv").unlink()
    wfdb = root / "wfdb"
    wfdb.mkdir()
    for path in sorted((fixtures_dir / "georgia").iterdir())[:4]:
        shutil.copy(path, wfdb / path.name)
    (root / "broken.xml").write_text("<RestingECG><Waveform>")
    return root


def make_zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return target


def make_tgz(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return target


def by_member(table: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """The table indexed by the record's name below ``prefix`` (archive or folder path)."""
    return table.assign(record=table["record"].str.removeprefix(prefix)).set_index("record").sort_index()


# ----------------------------------------------------------------------------------------------- discovery
def test_every_vendor_fixture_and_wfdb_record_is_found_in_a_folder(export: Path) -> None:
    names = {Path(name).relative_to(export).as_posix() for name, _ in find_records(export)}
    assert set(VENDOR_OK) | {"aecg_minimum_one_lead.xml", "broken.xml"} <= names
    assert {n for n in names if n.startswith("wfdb/")} == {"wfdb/E07500", "wfdb/E07501"}  # .hea + .mat: once
    assert "SOURCES.csv" not in names


def test_registry_tells_record_files_from_companions_and_tables(tmp_path: Path) -> None:
    (tmp_path / "rec.hea").write_text("rec 1 500 10\nrec.dat 16 1000/mV 16 0 0 0 0 I\n")
    (tmp_path / "rec.dat").write_bytes(b"\0" * 20)
    (tmp_path / "orphan.dat").write_bytes(b"\0" * 20)
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    assert record_file(tmp_path / "rec.dat") == tmp_path / "rec.hea" == record_file(tmp_path / "rec.hea")
    assert is_record_file(tmp_path / "rec.hea") and not is_record_file(tmp_path / "rec.dat")
    assert is_record_file(tmp_path / "orphan.dat")  # kept, so that its error is reported
    assert not is_record_file(tmp_path / "notes.txt") and not is_record_file(tmp_path / "table.csv")
    assert is_record_file(tmp_path / "table.csv", raw=True)


# ----------------------------------------------------------------------------------------------- predict
@pytest.mark.parametrize("pack", [make_zip, make_tgz], ids=["zip", "tar.gz"])
def test_an_archive_predicts_like_its_files(predictor: Predictor, export: Path, tmp_path: Path, pack) -> None:
    archive = pack(export, tmp_path / ("export.zip" if pack is make_zip else "export.tar.gz"))
    files = predictor.predict_paths([export], progress=False, workers=0)
    with unpacked_archives():
        packed = predictor.predict_paths([archive], progress=False, workers=0)
        unpacked = Path(_UNPACKED[-1].name)
    assert not unpacked.exists()  # the temporary folder is gone
    assert packed["record"].str.startswith(f"{archive}/export/").all()
    a, b = by_member(files, f"{export}/"), by_member(packed, f"{archive}/export/")
    assert list(a.index) == list(b.index) and len(a) == len(VENDOR_OK) + 2 + 2  # + the one-lead aECG and broken.xml
    assert (a["status"] == b["status"]).all()
    ok = a["status"] == "ok"
    assert set(a.index[ok]) == set(VENDOR_OK) | {"wfdb/E07500", "wfdb/E07501"}
    np.testing.assert_allclose(a.loc[ok, list(predictor.output_names)], b.loc[ok, list(predictor.output_names)],
                               rtol=1e-5, atol=1e-5)
    assert str(archive) in b.loc["broken.xml", "message"] and "ecglens-archive-" not in b.loc["broken.xml", "message"]


def test_cli_predict_info_and_prepare_accept_archives(export: Path, tmp_path: Path, capsys) -> None:
    archive = make_zip(export, tmp_path / "export.zip")
    n_unpacked = len(_UNPACKED)
    out = tmp_path / "preds.csv"
    assert app(["predict", str(archive), "--model", "age-sex-fast", "--output", str(out), "--workers", "0",
                "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert f"{archive}/export/toolkit_example.scp" in set(table["record"])
    assert (table["status"] == "ok").sum() == len(VENDOR_OK) + 2
    capsys.readouterr()
    assert app(["info", str(archive), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_records"] == len(table) and info["n_error"] == 2
    assert app(["prepare", "wfdb", str(archive), "--out", str(tmp_path / "cache"), "--quiet", "--workers", "1"]) == 0
    assert len(pd.read_csv(tmp_path / "cache" / "meta.csv")) == 2
    assert len(_UNPACKED) == n_unpacked  # every command removed the folders it unpacked into


# ----------------------------------------------------------------------------------------------- refusals
def zip_bytes(*members: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(*members: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


def symlink_zip_member() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("link.xml")
    info.external_attr = (0o120777 << 16)  # a Unix symbolic link, as `zip --symlinks` stores it
    return info


UNSAFE = {
    "zip ..": (".zip", zip_bytes(("../../evil.xml", b"<x/>")), "unsafe"),
    "zip absolute": (".zip", zip_bytes(("/etc/evil.xml", b"<x/>")), "unsafe"),
    "zip drive": (".zip", zip_bytes(("C:\\evil.xml", b"<x/>")), "unsafe"),
    "zip symlink": (".zip", zip_bytes((symlink_zip_member(), b"/etc/passwd")), "unsafe"),
    "zip bomb": (".zip", zip_bytes(("bomb.dat", b"\0" * (8 << 20))), "too_large"),
    "zip many": (".zip", zip_bytes(*[(f"f{i}.xml", b"x") for i in range(12)]), "too_many_members"),
    "zip broken": (".zip", b"PK\x03\x04 broken", "corrupt"),
    "tar ..": (".tar.gz", tar_bytes(tar_member("../evil.xml", size=3), data=b"abc"), "unsafe"),
    "tar absolute": (".tgz", tar_bytes(tar_member("/tmp/evil.xml", size=3), data=b"abc"), "unsafe"),
    "tar symlink": (".tar.gz", tar_bytes(tar_member("a.xml", tarfile.SYMTYPE, link="/etc/passwd")), "unsafe"),
    "tar hardlink": (".tar.gz", tar_bytes(tar_member("a.xml", tarfile.LNKTYPE, link="/etc/passwd")), "unsafe"),
    "tar device": (".tar.gz", tar_bytes(tar_member("dev", tarfile.CHRTYPE)), "unsafe"),
    "tar bomb": (".tar.gz", tar_bytes(tar_member("bomb.dat", size=8 << 20), data=b"\0" * (8 << 20)), "too_large"),
    "tar truncated": (".tar.gz", tar_bytes(tar_member("a.xml", size=3), data=b"abc")[:30], "corrupt"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_are_refused_before_anything_is_written_outside(case: str, tmp_path: Path) -> None:
    suffix, data, kind = UNSAFE[case]
    archive = tmp_path / f"case{suffix}"
    archive.write_bytes(data)
    folder = tmp_path / "deep" / "out"
    limits = ArchiveLimits(max_members=10, max_bytes=4 << 20, max_ratio=50)
    with pytest.raises(ArchiveError) as err:
        extract_archive(archive, folder, limits)
    assert err.value.kind == kind and isinstance(err.value, CorruptRecordError) and archive.name in str(err.value)
    assert not (tmp_path / "evil.xml").exists() and not (tmp_path / "deep" / "evil.xml").exists()
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))
    with pytest.raises(ArchiveError), unpacked_archives():  # the same refusal through find_records
        find_records(archive, limits=limits)


def test_archive_names_are_kept_but_made_safe(tmp_path: Path) -> None:
    archive = tmp_path / "x.zip"
    archive.write_bytes(zip_bytes(("a dir/rec one.xml", b"1"), ("./b.xml", b"2"), ("__MACOSX/._b.xml", b"3"),
                                  (".hidden", b"4"), ("dir/", b"")))
    written = extract_archive(archive, tmp_path / "out")
    assert {p.relative_to(tmp_path / "out").as_posix(): m for p, m in written.items()} == {
        "a_dir/rec_one.xml": "a dir/rec one.xml", "b.xml": "./b.xml"}
    assert is_archive("X.TAR.GZ") and is_archive("a.tgz") and not is_archive("a.xml")


def test_a_missing_archive_is_an_error_row_not_a_crash(predictor: Predictor, tmp_path: Path) -> None:
    table = predictor.predict_paths([tmp_path / "absent.zip"], progress=False, workers=0)
    assert list(table["status"]) == ["error"] and "absent.zip" in table["message"].iat[0]


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_a_bomb_is_stopped_by_its_ratio_before_the_size_limit(suffix: str, tmp_path: Path) -> None:
    zeros = b"\0" * (16 << 20)
    data = (zip_bytes(("bomb.dat", zeros)) if suffix == ".zip"
            else tar_bytes(tar_member("bomb.dat", size=len(zeros)), data=zeros))
    archive = tmp_path / f"bomb{suffix}"
    archive.write_bytes(data)
    with pytest.raises(ArchiveError, match="compresses more than 50:1") as err:
        extract_archive(archive, tmp_path / "out", ArchiveLimits(max_bytes=1 << 30, max_ratio=50))
    assert err.value.kind == "too_large"
    assert (tmp_path / "out" / "bomb.dat").stat().st_size <= 2 << 20  # stopped after about 1 MB, not 16 MB
