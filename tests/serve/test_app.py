"""Tests of the web service (``ecglens.serve``) with FastAPI's TestClient.

The app serves a tiny random checkpoint written here with ``save_checkpoint``; each successful ``/predict`` is
compared with ``Predictor.predict_file`` on the same record read from disk (an independent path through the
library), never with hard-coded numbers. Uploads cover WFDB ``.hea`` + ``.dat`` (written with ``wfdb.wrsamp``),
a ``.zip`` of one record, and pydicom's real DICOM ECG test file; refusals cover size, file count, type,
corrupt records, zip path traversal and zip bombs, and the temporary folders are checked to be gone.
"""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
wfdb = pytest.importorskip("wfdb")

with warnings.catch_warnings():  # starlette's notice about httpx versions (a UserWarning subclass)
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient

from ecglens.artifact import save_checkpoint
from ecglens.data.targets import task_from_name
from ecglens.models import create_model
from ecglens.predict import Predictor
from ecglens.serve import create_app
from ecglens.serve.app import accepted_suffixes, safe_filename
from ecglens.signal.transforms import Preprocess

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
MAX_MB = 1


def write_record(folder: Path, name: str = "rec", fs: int = 500, seconds: float = 10.0, seed: int = 0) -> Path:
    """A synthetic 12-lead WFDB record (mV sinusoids + noise, age 61, female); returns the .hea path."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(fs * seconds)
    t = np.arange(n) / fs
    rng = np.random.default_rng(seed)
    sig = np.stack([0.6 * np.sin(2 * np.pi * 1.1 * t + k) + 0.03 * rng.standard_normal(n) for k in range(12)], 1)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * 12, sig_name=LEADS, p_signal=sig, fmt=["16"] * 12,
                comments=["Age: 61", "Sex: Female"], write_dir=str(folder))
    return folder / f"{name}.hea"


def muse_xml(fs: int = 500, seconds: float = 10.0) -> bytes:
    """A minimal GE MUSE RestingECG export: 8 recorded leads (I, II, V1-V6) as base64 int16 at 4.88 uV/bit."""
    n = int(fs * seconds)
    t = np.arange(n) / fs
    leads = ""
    for k, name in enumerate(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]):
        counts = np.round(0.5 * np.sin(2 * np.pi * 1.2 * t + k) / 0.00488).astype("<i2")
        leads += (f"<LeadData><LeadSampleCountTotal>{n}</LeadSampleCountTotal><LeadAmplitudeUnitsPerBit>4.88"
                  f"</LeadAmplitudeUnitsPerBit><LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadID>{name}"
                  f"</LeadID><WaveFormData>{base64.b64encode(counts.tobytes()).decode()}</WaveFormData></LeadData>")
    return (f'<?xml version="1.0" encoding="ISO-8859-1"?><RestingECG><PatientDemographics><PatientAge>67'
            f"</PatientAge><AgeUnits>YEARS</AgeUnits><Gender>FEMALE</Gender></PatientDemographics><Waveform>"
            f"<WaveformType>Rhythm</WaveformType><SampleBase>{fs}</SampleBase>{leads}</Waveform>"
            f"</RestingECG>").encode("iso-8859-1")


def files_of(*paths: Path) -> list[tuple[str, tuple[str, bytes]]]:
    return [("file", (p.name, p.read_bytes())) for p in paths]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    task = task_from_name("age_sex").fit(np.c_[rng.uniform(20, 90, 64), rng.integers(0, 2, 64)])
    torch.manual_seed(0)
    model = create_model("cnn_baseline", num_outputs=task.num_outputs, channels=(8, 16))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model, task=task,
                           preprocess=Preprocess())


@pytest.fixture(scope="module")
def uploads_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op torch thread


@pytest.fixture(scope="module")
def client(ckpt: Path, uploads_dir: Path) -> TestClient:
    app = create_app(ckpt, max_upload_mb=MAX_MB, max_files=3, max_zip_entries=8, max_unzipped_mb=2,
                     tmp_dir=uploads_dir, plot_dpi=60)
    return TestClient(app)


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_record(tmp_path_factory.mktemp("rec"))


@pytest.fixture(scope="module")
def expected(ckpt: Path, record: Path) -> dict[str, float]:
    return dict(Predictor.from_pretrained(ckpt).predict_file(record).outputs)


def assert_error(response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["status"] == status
    for word in words:
        assert word in body["detail"]
    assert "ecglens-upload-" not in body["detail"]  # no server folder leaks into messages


# ---------------------------------------------------------------------------------------------------------
# info routes and the page
# ---------------------------------------------------------------------------------------------------------


def test_health(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model"] == "tiny" and body["backend"] == "torch"
    assert body["limits"]["max_upload_mb"] == MAX_MB and body["limits"]["max_files"] == 3


def test_models_lists_the_served_model_and_its_contract(client: TestClient) -> None:
    served = client.get("/models").json()["served"]
    assert served["architecture"] == "cnn_baseline" and served["task"] == "age_sex"
    assert served["outputs"] == ["age", "age_std", "p_female"]
    contract = served["input_contract"]
    assert contract["fs"] == 100.0 and contract["n_samples"] == 1000 and contract["leads"] == LEADS


def test_page_has_the_upload_form(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<form id="upload-form"' in html
    assert '<input type="file" id="file" name="file" multiple' in html
    assert f'accept="{",".join(accepted_suffixes())}"' in html and ".scp" in accepted_suffixes()
    assert '<button type="submit" id="submit">Predict</button>' in html
    assert 'fetch("/predict"' in html and '<img id="plot"' in html


# ---------------------------------------------------------------------------------------------------------
# successful predictions
# ---------------------------------------------------------------------------------------------------------


def test_predict_wfdb_hea_dat(client: TestClient, record: Path, expected: dict[str, float]) -> None:
    response = client.post("/predict", files=files_of(record, record.with_suffix(".dat")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["record"] == "rec" and body["format"] == "wfdb"
    assert body["outputs"] == pytest.approx(expected, rel=1e-6)
    assert body["uncertainty"] == {"age": pytest.approx(expected["age_std"], rel=1e-6)}
    assert body["n_windows"] == 1 and "resampled:500->100" in body["flags"]
    assert body["recorded"] == {"age": 61.0, "sex": "F"}
    assert body["ecg"]["fs"] == 500.0 and body["ecg"]["n_samples"] == 5000 and body["ecg"]["leads"] == LEADS
    assert body["model"]["name"] == "tiny" and body["input_contract"]["n_samples"] == 1000
    width, height = png_size(base64.b64decode(body["plot_png"]))
    assert width > 400 and height > 250


def test_predict_zip_of_one_record(client: TestClient, record: Path, expected: dict[str, float]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(record, "export/rec.hea")
        zf.write(record.with_suffix(".dat"), "export/rec.dat")
        zf.writestr("__MACOSX/export/._rec.hea", b"resource fork")
    response = client.post("/predict", files=[("file", ("record.zip", buf.getvalue()))])
    assert response.status_code == 200, response.text
    assert response.json()["record"] == "rec"
    assert response.json()["outputs"] == pytest.approx(expected, rel=1e-6)


def test_predict_real_dicom(client: TestClient, ckpt: Path) -> None:
    pydicom_data = pytest.importorskip("pydicom.data")
    path = Path(pydicom_data.get_testdata_file("waveform_ecg.dcm"))
    response = client.post("/predict", files=files_of(path))
    assert response.status_code == 200, response.text
    body = response.json()
    ref = Predictor.from_pretrained(ckpt).predict_file(path)
    assert body["format"] == "dicom" and body["record"] == "waveform_ecg"
    assert body["outputs"] == pytest.approx(dict(ref.outputs), rel=1e-6)
    assert body["ecg"]["fs"] == 1000.0 and len(body["ecg"]["leads"]) == 12
    assert body["recorded"]["sex"] == "F"


def test_predict_muse_xml_with_derived_leads(client: TestClient, ckpt: Path, tmp_path: Path) -> None:
    path = tmp_path / "muse.xml"
    path.write_bytes(muse_xml())
    response = client.post("/predict", files=files_of(path))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["format"] == "muse" and body["recorded"] == {"age": 67.0, "sex": "F"}
    assert "derived:III,aVR,aVL,aVF" in body["flags"]
    ref = Predictor.from_pretrained(ckpt).predict_file(path)
    assert body["outputs"] == pytest.approx(dict(ref.outputs), rel=1e-6)


def test_predict_real_challenge_record_hea_mat(client: TestClient, ckpt: Path, fixtures_dir: Path) -> None:
    hea = fixtures_dir / "cpsc" / "A0001.hea"
    response = client.post("/predict", files=files_of(hea, hea.with_suffix(".mat")))
    assert response.status_code == 200, response.text
    ref = Predictor.from_pretrained(ckpt).predict_file(hea)
    assert response.json()["outputs"] == pytest.approx(dict(ref.outputs), rel=1e-6)
    assert response.json()["n_windows"] == ref.n_windows


def test_long_record_reports_window_spread(client: TestClient, tmp_path: Path, ckpt: Path) -> None:
    hea = write_record(tmp_path, "long", fs=250, seconds=30.0, seed=4)
    body = client.post("/predict", files=files_of(hea, hea.with_suffix(".dat"))).json()
    ref = Predictor.from_pretrained(ckpt).predict_file(hea)
    assert body["n_windows"] == ref.n_windows == 3
    assert body["window_spread"]["age"] == pytest.approx(ref.window_spread["age"], rel=1e-6)


# ---------------------------------------------------------------------------------------------------------
# refusals: 4xx JSON, never 500
# ---------------------------------------------------------------------------------------------------------


def test_oversized_upload_is_413(client: TestClient) -> None:
    big = b"\0" * (MAX_MB * 1024 * 1024 + 10)
    assert_error(client.post("/predict", files=[("file", ("big.dat", big))]), 413, "upload_too_large", "1 MB")


def test_oversized_streamed_upload_without_length_is_413(client: TestClient) -> None:
    """No Content-Length (chunked body): the streamed bytes are counted and reading stops at the limit."""
    boundary = "ecglensboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.dat\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    sent = []

    def body():
        yield head
        for _ in range(4 * MAX_MB):  # 4x the limit in 256 KiB chunks
            sent.append(1)
            yield b"\0" * (256 * 1024) * 1
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post("/predict", content=body(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert_error(response, 413, "upload_too_large")
    assert len(sent) <= 4 * MAX_MB + 1


def test_too_many_files(client: TestClient, record: Path) -> None:
    files = [("file", (f"r{i}.dat", b"0")) for i in range(4)]
    assert_error(client.post("/predict", files=files), 400, "too_many_files", "at most 3")


def test_unsupported_file_type_is_415(client: TestClient) -> None:
    assert_error(client.post("/predict", files=[("file", ("photo.png", b"\x89PNG...."))]), 415,
                 "unsupported_file_type", "photo.png")
    assert_error(client.post("/predict", json={"file": "x"}), 415, "unsupported_media_type", "multipart")


def test_xml_that_is_no_ecg_is_415(client: TestClient) -> None:
    response = client.post("/predict", files=[("file", ("note.xml", b"<?xml version='1.0'?><note>hi</note>"))])
    assert_error(response, 415, "unsupported_format", "note.xml")


def test_corrupt_record_is_422(client: TestClient, record: Path) -> None:
    garbage = [("file", ("bad.hea", b"this is not a header\n")), ("file", ("bad.dat", b"\x00\x01"))]
    assert_error(client.post("/predict", files=garbage), 422, "corrupt_record", "bad")
    truncated = [("file", ("rec.hea", record.read_bytes())), ("file", ("rec.dat", b"\x00\x01\x02"))]
    response = client.post("/predict", files=truncated)
    assert 400 <= response.status_code < 500 and response.json()["error"]
    pydicom_data = pytest.importorskip("pydicom.data")
    dicom = Path(pydicom_data.get_testdata_file("waveform_ecg.dcm")).read_bytes()
    response = client.post("/predict", files=[("file", ("cut.dcm", dicom[: len(dicom) // 3]))])
    assert_error(response, 422, "corrupt_record", "cut.dcm")
    assert_error(client.post("/predict", files=[("file", ("x.dcm", b"DICM" * 40))]), 415, "unsupported_format")


def test_incomplete_wfdb_record_is_422(client: TestClient, record: Path) -> None:
    assert_error(client.post("/predict", files=files_of(record)), 422, "missing_signal_file", "rec.dat")
    assert_error(client.post("/predict", files=files_of(record.with_suffix(".dat"))), 422, "missing_header",
                 ".hea")


def test_a_header_naming_a_server_file_is_answered_as_if_it_did_not_exist(client: TestClient, record: Path,
                                                                           tmp_path: Path) -> None:
    # the server must never look at a path an upload names outside its temporary folder: a header naming an
    # existing server file gets the same answer as one naming a file that does not exist
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 651)
    header = record.read_text()

    def answer(signal_file: str) -> tuple[int, dict]:
        text = header.replace("rec.dat", signal_file)
        files = [("file", ("rec.hea", text.encode())), ("file", ("rec.dat", record.with_suffix(".dat").read_bytes()))]
        response = client.post("/predict", files=files)
        body = response.json()
        return response.status_code, {**body, "detail": body.get("detail", "").replace(signal_file, "NAME")}

    existing, absent = answer(str(secret)), answer(str(tmp_path / "no-such-file.bin"))
    assert existing == absent and existing[0] == 422 and existing[1]["error"] == "missing_signal_file"
    for name in ("../secret.bin", "/etc/passwd", "sub/rec.dat"):
        assert answer(name) == absent
    assert "651" not in str(existing)
    multi = "multi/1 12 500 10\n" + f"{tmp_path}/seg 10\n"  # a segment header outside the upload
    response = client.post("/predict", files=[("file", ("multi.hea", multi.encode()))])
    assert response.status_code == 422 and response.json()["error"] == "missing_signal_file"


def test_wfdb_reader_refuses_signal_files_and_segments_outside_the_header_folder(record: Path,
                                                                                 tmp_path: Path) -> None:
    from ecglens.exceptions import CorruptRecordError
    from ecglens.io import read_ecg

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "rec.dat").write_bytes(record.with_suffix(".dat").read_bytes())
    for name in (str(outside / "rec.dat"), "../elsewhere/rec.dat"):
        folder = tmp_path / f"case{len(name)}"
        folder.mkdir()
        (folder / "rec.hea").write_text(record.read_text().replace("rec.dat", name))
        with pytest.raises(CorruptRecordError, match="not a file name in the header's folder"):
            read_ecg(folder / "rec.hea")
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "self.hea").write_text("self/1 12 500 10\nself 10\n")  # a multi-segment record naming itself
    with pytest.raises(CorruptRecordError, match="multi-segment"):
        read_ecg(loop / "self.hea")


def test_several_records_are_refused(client: TestClient, record: Path, tmp_path: Path) -> None:
    other = write_record(tmp_path, "other")
    response = client.post("/predict", files=files_of(record, record.with_suffix(".dat"), other))
    assert_error(response, 400, "several_records", "one record per request")


def test_no_file_is_400(client: TestClient) -> None:
    response = client.post("/predict", files=[("other", ("", b""))], data={"x": "1"})
    assert 400 <= response.status_code < 500
    response = client.post("/predict", data={"x": "1"}, files={})
    assert 400 <= response.status_code < 500


def test_zip_with_parent_path_is_refused(client: TestClient, record: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(record, "../../rec.hea")
        zf.write(record.with_suffix(".dat"), "../../rec.dat")
    assert_error(client.post("/predict", files=[("file", ("evil.zip", buf.getvalue()))]), 400, "unsafe_zip",
                 "../../rec.hea")


def test_zip_bomb_is_refused(client: TestClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("rec.dat", b"\0" * (3 * 1024 * 1024))  # 3 MB of zeros compress to a few KB
    assert len(buf.getvalue()) < 50_000
    assert_error(client.post("/predict", files=[("file", ("bomb.zip", buf.getvalue()))]), 413, "zip_too_large")
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(20):
            zf.writestr(f"f{i}.dat", b"0")
    assert_error(client.post("/predict", files=[("file", ("many.zip", many.getvalue()))]), 413,
                 "zip_too_many_entries")


def test_broken_zip_is_422(client: TestClient) -> None:
    assert_error(client.post("/predict", files=[("file", ("x.zip", b"PK\x03\x04 broken"))]), 422, "corrupt_zip")


def test_model_failure_is_a_json_error_not_500(ckpt: Path, record: Path, tmp_path: Path) -> None:
    class Exploding:
        def run(self, x: np.ndarray) -> np.ndarray:
            raise RuntimeError("boom")

    app = create_app(Predictor.from_pretrained(ckpt, backend=Exploding()), tmp_dir=tmp_path)
    response = TestClient(app).post("/predict", files=files_of(record, record.with_suffix(".dat")))
    assert_error(response, 422, "processing_failed", "RuntimeError", "boom")
    assert list(tmp_path.iterdir()) == []


def test_no_temporary_files_left_behind(client: TestClient, uploads_dir: Path, record: Path) -> None:
    """Runs after the tests above (same module-scoped app): every request removed its folder."""
    client.post("/predict", files=files_of(record, record.with_suffix(".dat")))
    client.post("/predict", files=[("file", ("x.hea", b"junk"))])
    assert list(uploads_dir.iterdir()) == []


def test_unknown_model_fails_at_startup(tmp_path: Path) -> None:
    from ecglens.exceptions import CheckpointError

    with pytest.raises(CheckpointError, match="Unknown model name"):
        create_app("no-such-model")


@pytest.mark.parametrize(("raw", "safe"), [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\x\\rec 1.hea", "rec_1.hea"),
    (".hidden.dat", "hidden.dat"),
    ("..", "upload"),
    ("", "upload"),
    ("ré$c;rm -rf.mat", "r_c_rm_-rf.mat"),
])
def test_safe_filename(raw: str, safe: str) -> None:
    assert safe_filename(raw) == safe


def test_safe_filename_is_bounded() -> None:
    name = safe_filename("a" * 500 + ".hea")
    assert len(name) <= 120 and name.endswith(".hea")


def test_cli_serve_builds_the_app_and_runs_uvicorn(ckpt: Path, monkeypatch, capsys) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    from ecglens.cli import app as cli

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    assert cli(["serve", "--model", str(ckpt), "--port", "8123", "--max-files", "2"]) == 0
    (served, kwargs), = calls
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8123
    assert served.state.ecglens.limits.max_files == 2
    assert "model tiny (cnn_baseline, torch)" in capsys.readouterr().out
    assert cli(["serve", "--model", "no-such-model"]) == 2  # a clean error, not a traceback


# ---------------------------------------------------------------------------------------------------------
# every format of the reader registry, and archives (the shared implementation of ecglens.io.archive)
# ---------------------------------------------------------------------------------------------------------


def edf_bytes(tmp_path: Path) -> bytes:
    """A synthetic 12-lead EDF written by edfio (the library the reader uses), 10 s at 250 Hz, in uV."""
    edfio = pytest.importorskip("edfio", reason="the EDF reader needs edfio (pip install edfio)")
    t = np.arange(2500) / 250.0
    one, two = 0.8 * np.sin(2 * np.pi * 1.2 * t), np.sin(2 * np.pi * 1.2 * t + 0.3)
    leads = {"I": one, "II": two, "III": two - one, "aVR": -(one + two) / 2, "aVL": one - two / 2,
             "aVF": two - one / 2, **{f"V{k}": (0.3 + 0.1 * k) * one for k in range(1, 7)}}
    signals = [edfio.EdfSignal(1000 * mv, 250, label=f"ECG {name}", physical_dimension="uV",
                               physical_range=(-5000, 5000)) for name, mv in leads.items()]
    edfio.Edf(signals).write(tmp_path / "rec.edf")
    return (tmp_path / "rec.edf").read_bytes()


@pytest.mark.parametrize("name", ["toolkit_example.scp", "philips_ad4d3d80_104.xml", "cardiosoft_dummy.xml",
                                  "rec.edf"])
def test_every_registered_format_is_accepted(client: TestClient, fixtures_dir: Path, tmp_path: Path,
                                             name: str) -> None:
    data = edf_bytes(tmp_path) if name == "rec.edf" else (fixtures_dir / "vendor" / name).read_bytes()
    expected_format = {"scp": "scp", "edf": "edf"}.get(name.rsplit(".", 1)[1], name.split("_")[0])
    body = client.post("/predict", files=[("file", (name, data))]).json()
    assert body.get("format") == expected_format, body
    assert body["ecg"]["leads"][:2] == ["I", "II"] and np.isfinite(body["outputs"]["age"])
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"export/{name}", data)
    from_zip = client.post("/predict", files=[("file", ("export.zip", zipped.getvalue()))]).json()
    assert from_zip["outputs"] == body["outputs"] and from_zip["format"] == expected_format


def test_tar_gz_upload_and_symlink_member_refused(client: TestClient, record: Path,
                                                  expected: dict[str, float]) -> None:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(record, "rec/rec.hea")
        tf.add(record.with_suffix(".dat"), "rec/rec.dat")
    body = client.post("/predict", files=[("file", ("rec.tar.gz", buf.getvalue()))]).json()
    assert body["outputs"] == pytest.approx(expected)
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tf:
        link = tarfile.TarInfo("rec.hea")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    assert_error(client.post("/predict", files=[("file", ("evil.tgz", evil.getvalue()))]), 400, "unsafe_zip",
                 "link")


def test_calibrated_model_shows_calibrated_outputs_gaps_metrics_and_calibration(ckpt: Path, record: Path,
                                                                               tmp_path: Path) -> None:
    from ecglens.artifact.calibration import Calibration, binary_label
    from ecglens.artifact.checkpoint import update_checkpoint

    cal = Calibration(age_slope=0.7, age_intercept=18.0, age_std_scale=1.5, temperatures={"p_female": 2.0},
                      folds=[9], n=100)
    calibrated = update_checkpoint(ckpt, tmp_path / "tiny-cal.safetensors", calibration=cal,
                                   metrics={"age_mae": 7.0, "folds": [9], "calibration_in_sample": True})
    raw = dict(Predictor.from_pretrained(ckpt).predict_file(record).outputs)
    client = TestClient(create_app(calibrated, plot_dpi=40))
    served = client.get("/models").json()["served"]
    assert served["metrics"]["age_mae"] == 7.0 and served["calibration"]["age_std_scale"] == 1.5
    body = client.post("/predict", files=files_of(record, record.with_suffix(".dat"))).json()
    assert body["outputs"]["age"] == pytest.approx(raw["age"], rel=1e-6)  # the predicted age is never changed
    assert body["outputs"]["age_std"] == pytest.approx(1.5 * raw["age_std"], rel=1e-6)
    assert body["raw_outputs"] == pytest.approx({"age_std": raw["age_std"], "p_female": raw["p_female"]}, rel=1e-6)
    assert body["uncertainty"] == {"age": pytest.approx(1.5 * raw["age_std"], rel=1e-6)}
    assert body["age_gap"] == pytest.approx(raw["age"] - 61.0, rel=1e-6)  # the header says 61
    assert body["age_gap_corrected"] == pytest.approx(raw["age"] - (0.7 * 61.0 + 18.0), rel=1e-6)
    assert body["calls"] == {"p_female": binary_label(body["outputs"]["p_female"])}
    assert body["uncertain_band"] == [0.35, 0.65] and body["calibration"]["folds"] == [9]


def test_a_predictor_with_a_site_gain_flags_what_the_page_returns(ckpt: Path, record: Path, uploads_dir: Path,
                                                                  expected: dict[str, float]) -> None:
    # `ecglens serve --site-gain FILE`: the gain reaches every upload and the response says so
    from ecglens.leads import CANONICAL_LEADS
    from ecglens.predict.site import SiteGain

    gain = SiteGain(CANONICAL_LEADS, (1.0,) * 6 + (2.0,) * 6, 50, (0.1,) * 12, (0.2,) * 12)
    app = create_app(Predictor(ckpt, site_gain=gain), tmp_dir=uploads_dir, plot_dpi=60)
    body = TestClient(app).post("/predict", files=files_of(record, record.with_suffix(".dat"))).json()
    assert "site_gain" in body["flags"]
    assert body["outputs"]["age"] != pytest.approx(expected["age"], rel=1e-6)  # the chest leads were doubled
