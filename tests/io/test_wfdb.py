"""WFDB / PhysioNet-challenge reader and header metadata, on the real fixtures in ../shared/data/fixtures.

Expected demographics (``EXPECTED``) were copied by hand from the ``# Age`` / ``# Sex`` comment lines of each
fixture header; the amplitude oracle for parity is ``wfdb.rdsamp`` itself (PTB-XL) or the digital samples and
the header's gain/baseline (LUDB).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecglens.io import detect_format, read_ecg
from ecglens.io.metadata import parse_age, parse_header_comments, parse_sex, read_header_comments
from ecglens.io.wfdb import find_wfdb_records, read_wfdb, resolve_header, wfdb_catalogue
from ecglens.leads import CANONICAL_LEADS

# folder -> fs; record -> (age, sex) from the header comments
FOLDER_FS = {
    "code15": 400,
    "code15b": 400,
    "ludb": 500,
    "georgia": 500,
    "chapman": 500,
    "cpsc": 500,
    "ptb": 1000,
}
EXPECTED = {
    "code15/1000001": (22, "F"),
    "code15/1000010": (40, "F"),
    "code15/100003": (64, "M"),
    "code15/1000049": (51, "F"),
    "code15b/2508934": (51, "M"),
    "code15b/2767003": (67, "F"),
    "ludb/1": (51, "F"),
    "ludb/10": (79, "F"),
    "ludb/100": (76, "F"),
    "georgia/E07500": (78, "M"),
    "georgia/E07501": (65, "M"),
    "chapman/JS20000": (84, "F"),
    "chapman/JS20001": (77, "M"),
    "cpsc/A0001": (74, "M"),
    "cpsc/A0002": (49, "F"),
    "ptb/S0001": (81, "F"),
}


def _robust_amplitude(signal: np.ndarray) -> float:
    """Median over leads of the 99th percentile of |x - median| (mV)."""
    centred = signal - np.median(signal, axis=1, keepdims=True)
    return float(np.median(np.percentile(np.abs(centred), 99, axis=1)))


# --------------------------------------------------------------------------- metadata
@pytest.mark.parametrize(
    "line, age",
    [
        ("# Age: 51", 51.0),
        ("#Age: 74", 74.0),
        ("#<age>: 51", 51.0),
        ("# Age: 51.5", 51.5),
        ("# Age: 300", 90.0),
        ("# Age: >89", 90.0),
        ("# Age: Unknown", None),
        ("# Age: NaN", None),
        ("# Age: ", None),
        ("# Age: -1", None),
    ],
)
def test_parse_age_spellings(line, age):
    assert parse_header_comments([line]).age == age


@pytest.mark.parametrize(
    "line, sex",
    [
        ("# Sex: Male", "M"),
        ("#Sex: female", "F"),
        ("#<sex>: F", "F"),
        ("#<sex>: M", "M"),
        ("# Sex: Female", "F"),
        ("# Gender: male", "M"),
        ("# Sex: Unknown", None),
        ("# Sex: 1", None),  # numeric codings differ between data sets: never guessed
    ],
)
def test_parse_sex_spellings(line, sex):
    assert parse_header_comments([line]).sex == sex


def test_parse_ids_dx_and_sections():
    info = parse_header_comments(
        [
            "# Exam ID: 2508934",
            "# Patient ID: 82907.0",
            "# Dx: 67741000119109,426177001",
            "# Chagas label: True",
            "# Rx: Unknown",
            "#<diagnoses>:",
            "#Rhythm: Sinus rhythm.",
            "#Left ventricular hypertrophy.",
        ]
    )
    assert info.exam_id == "2508934" and info.patient_id == "82907"
    assert info.dx == ["67741000119109", "426177001"]
    assert info.chagas is True
    assert info.extra == {"Rx": "Unknown"}
    assert info.diagnoses == ["Rhythm: Sinus rhythm.", "Left ventricular hypertrophy."]
    assert parse_header_comments(["#Dx: "]).dx == []


def test_parse_scalars_directly():
    assert parse_age(300) == 90.0 and parse_age(float("nan")) is None and parse_age("51 years") == 51.0
    assert parse_sex(" FEMALE ") == "F" and parse_sex(None) is None


def test_read_header_comments_ludb(fixtures_dir):
    info = read_header_comments(fixtures_dir / "ludb" / "1.hea")
    assert (info.age, info.sex) == (51.0, "F")
    assert info.diagnoses[0] == "Rhythm: Sinus bradycardia."


# --------------------------------------------------------------------------- every fixture folder
@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_reads_every_fixture_record(fixtures_dir, key):
    folder, name = key.split("/")
    ecg = read_ecg(fixtures_dir / folder / name)
    header = wfdb.rdheader(str(fixtures_dir / folder / name))
    assert ecg.leads == CANONICAL_LEADS
    assert ecg.signal.dtype == np.float32 and ecg.signal.shape == (12, header.sig_len)
    assert ecg.fs == FOLDER_FS[folder]
    assert ecg.derived_leads == ()
    amp = _robust_amplitude(ecg.signal)
    assert 0.05 < amp < 5.0, f"{key}: robust amplitude {amp:.3f} mV is not physiological"
    age, sex = EXPECTED[key]
    assert (ecg.age, ecg.sex) == (float(age), sex)
    assert ecg.record_id == name and ecg.meta["format"] == "wfdb"


@pytest.mark.parametrize(
    "rate, suffix, n_samples", [("records100", "_lr", 1000), ("records500", "_hr", 5000)]
)
def test_ptbxl_parity_with_rdsamp(fixtures_dir, rate, suffix, n_samples):
    """Sample-for-sample equality with wfdb.rdsamp (the PTB-XL headers are mV, canonical order but 'AVR')."""
    heads = sorted((fixtures_dir / "ptbxl_official" / rate).rglob(f"*{suffix}.hea"))
    assert len(heads) == 40
    for hea in heads:
        expected, fields = wfdb.rdsamp(str(hea.with_suffix("")))
        ecg = read_ecg(hea)
        assert ecg.fs == fields["fs"] and ecg.n_samples == n_samples
        assert [n.upper() for n in ecg.leads] == [n.upper() for n in fields["sig_name"]]
        np.testing.assert_array_equal(ecg.signal, expected.T.astype(np.float32))


def test_ludb_per_lead_gain_and_baseline(fixtures_dir):
    """Physical = (digital - baseline) / gain, with a different gain and baseline on each lead."""
    rec = wfdb.rdrecord(str(fixtures_dir / "ludb" / "1"), physical=False)
    assert len(set(rec.adc_gain)) > 1 and len(set(rec.baseline)) > 1
    expected = (rec.d_signal - np.asarray(rec.baseline)) / np.asarray(rec.adc_gain)
    ecg = read_ecg(fixtures_dir / "ludb" / "1")
    assert rec.sig_name[:4] == ["i", "ii", "iii", "avr"]
    np.testing.assert_allclose(ecg.signal, expected.T, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("form", ["", ".hea", ".dat"])
def test_path_forms_wfdb(fixtures_dir, form):
    base = fixtures_dir / "code15" / "100003"
    name, resolved = detect_format(f"{base}{form}")
    assert name == "wfdb" and resolved == Path(f"{base}{form}" if form else f"{base}.hea")
    ecg = read_ecg(f"{base}{form}")
    np.testing.assert_array_equal(ecg.signal, read_ecg(base.with_suffix(".hea")).signal)


@pytest.mark.parametrize("form", ["", ".hea", ".mat"])
def test_path_forms_mat(fixtures_dir, form):
    base = fixtures_dir / "georgia" / "E07500"
    assert detect_format(f"{base}{form}")[0] == "wfdb"
    assert read_ecg(f"{base}{form}").n_samples == 5000
    assert resolve_header(f"{base}{form}") == base.with_suffix(".hea")


def test_ptb_per_volt_gain_is_repaired(fixtures_dir):
    """S0001.hea says 2000000/mV; the data are the original PTB counts at 2000/mV (0.5 uV resolution)."""
    fixed = read_ecg(fixtures_dir / "ptb" / "S0001")
    literal = read_wfdb(fixtures_dir / "ptb" / "S0001", fix_volt_gain=False)
    assert "gain_correction" in fixed.meta and "gain_correction" not in literal.meta
    np.testing.assert_allclose(fixed.signal, literal.signal * 1000, rtol=1e-5)
    span = np.percentile(fixed.signal, 99.9, axis=1) - np.percentile(fixed.signal, 0.1, axis=1)
    assert 0.2 < np.median(span) < 3.0  # peak-to-peak QRS in mV
    assert np.max(np.abs(literal.signal)) < 0.01


def test_normal_mv_records_are_not_rescaled(fixtures_dir):
    for key in ("cpsc/A0002", "ludb/10", "code15/100003"):
        assert "gain_correction" not in read_ecg(fixtures_dir / key).meta


def test_metadata_in_meta(fixtures_dir):
    ecg = read_ecg(fixtures_dir / "code15b" / "2508934")
    assert ecg.meta["patient_id"] == "82907" and ecg.meta["exam_id"] == "2508934"
    assert ecg.meta["chagas"] is True and "Age: 51" in ecg.meta["comments"]
    assert read_ecg(fixtures_dir / "chapman" / "JS20000").meta["dx"] == [
        "284470004",
        "427084000",
        "698252002",
        "55930002",
    ]


# --------------------------------------------------------------------------- synthetic records
def _write(folder: Path, name: str, signal: np.ndarray, leads, fs=500, units="mV", gain=1000.0) -> Path:
    """Write a format-16 WFDB record by hand (no wfdb writer): signal [n_samples, n_leads] in `units`."""
    digital = np.round(signal * gain).astype("<i2")
    digital.tofile(folder / f"{name}.dat")
    lines = [f"{name} {len(leads)} {fs} {len(signal)}"]
    lines += [
        f"{name}.dat 16 {gain:g}/{units} 16 0 {digital[0, i]} 0 0 {lead}" for i, lead in enumerate(leads)
    ]
    lines += ["# Age: 60", "# Sex: F"]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / f"{name}.hea"


def test_eight_leads_get_limb_leads_derived(fixtures_dir, tmp_path):
    full = read_ecg(fixtures_dir / "georgia" / "E07501")
    keep = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    eight = np.stack([full.lead(n) for n in keep], axis=1)
    ecg = read_ecg(_write(tmp_path, "eight", eight, keep))
    assert ecg.leads == CANONICAL_LEADS
    assert ecg.derived_leads == ("III", "aVR", "aVL", "aVF")
    np.testing.assert_allclose(ecg.lead("III"), ecg.lead("II") - ecg.lead("I"), atol=1e-6)
    np.testing.assert_allclose(ecg.lead("aVR"), -(ecg.lead("I") + ecg.lead("II")) / 2, atol=1e-6)
    # against the recorded limb leads of the original record (Einthoven holds up to quantisation noise)
    assert np.corrcoef(ecg.lead("III"), full.lead("III"))[0, 1] > 0.98
    assert np.corrcoef(ecg.lead("aVF"), full.lead("aVF"))[0, 1] > 0.98


@pytest.mark.parametrize("units, factor", [("uV", 1000.0), ("V", 0.001), ("mV", 1.0)])
def test_units_converted_to_mv(tmp_path, rng, units, factor):
    mv = np.round(rng.normal(0, 0.5, size=(1000, 2)), 3)
    gain = {"uV": 1.0, "V": 1e6, "mV": 1000.0}[units]
    ecg = read_ecg(_write(tmp_path, "u", mv * factor, ["I", "V1"], units=units, gain=gain))
    np.testing.assert_allclose(ecg.signal, mv.T, atol=1e-5)
    assert ecg.meta["header_units"] == [units, units]


def test_non_standard_leads_are_kept(tmp_path, rng):
    ecg = read_ecg(_write(tmp_path, "holter", rng.normal(0, 0.5, size=(500, 2)), ["MLII", "V5"]))
    assert ecg.leads == ("II", "V5") and (ecg.age, ecg.sex) == (60.0, "F")
    assert read_wfdb(tmp_path / "holter", standard_leads=False).leads == ("II", "V5")


# --------------------------------------------------------------------------- folders and catalogue
def test_find_wfdb_records(fixtures_dir, tmp_path):
    found = find_wfdb_records(fixtures_dir)
    assert len(found) == 16 + 80  # 16 challenge/LUDB/CODE records + 40 PTB-XL records at 100 and 500 Hz
    assert all(p.suffix == ".hea" for p in found) and found == sorted(found)
    (tmp_path / "layout.hea").write_text(
        "layout 2 250 0\n~ 0 200/mV 16 0 0 0 0 I\n~ 0 200/mV 16 0 0 0 0 II\n"
    )
    (tmp_path / "multi.hea").write_text("multi/3 1 250 20\nlayout 0\nseg1 10\nseg2 10\n")
    for seg in ("seg1", "seg2"):
        _write(tmp_path, seg, np.arange(10.0)[:, None] / 10, ["I"], fs=250)
    assert find_wfdb_records(tmp_path) == [tmp_path / "multi.hea"]  # segment and layout headers: through it
    (tmp_path / "orphan.hea").write_text("orphan 1 250 10\n~ 0 200/mV 16 0 0 0 0 I\n")
    assert find_wfdb_records(tmp_path) == [tmp_path / "multi.hea", tmp_path / "orphan.hea"]  # reported, not dropped
    multi = read_ecg(tmp_path / "multi")
    assert multi.n_samples == 20 and multi.leads == ("I",)

@pytest.mark.parametrize("comment_bytes", [0, 4000, 4093, 5000])
def test_find_wfdb_records_headers_beyond_the_first_bytes_read(tmp_path, comment_bytes):
    """Listing reads a header's first 4,096 bytes; a record line after long comments, or cut at that boundary,
    is still read as what it is (multi-segment: its segments are not listed)."""
    comments = f"# {'x' * (comment_bytes - 3)}\n" if comment_bytes else ""  # the record line starts after them
    (tmp_path / "multi.hea").write_text(comments + "multi/2 1 250 20\nseg1 10\nseg2 10\n")
    for seg in ("seg1", "seg2"):
        _write(tmp_path, seg, np.arange(10.0)[:, None] / 10, ["I"], fs=250)
    (tmp_path / "single.hea").write_text(comments + "single 1 250 10\nsingle.dat 16 200/mV 16 0 0 0 0 I\n")
    assert find_wfdb_records(tmp_path) == [tmp_path / "multi.hea", tmp_path / "single.hea"]


def test_wfdb_catalogue(fixtures_dir):
    cat = wfdb_catalogue(fixtures_dir / "code15b")
    assert list(cat["record_id"]) == ["2508934", "2767003"]
    assert list(cat["sex"]) == [0.0, 1.0] and list(cat["age"]) == [51.0, 67.0]
    assert list(cat["patient_id"]) == ["82907", "64756"] and set(cat["source"]) == {"wfdb"}
    for path in cat["path"]:
        assert Path(path).is_absolute() and read_ecg(path).fs == 400


def test_wfdb_catalogue_unknown_values(fixtures_dir):
    cat = wfdb_catalogue(fixtures_dir / "ptbxl_official" / "records100")
    assert len(cat) == 40 and cat["age"].isna().all() and cat["sex"].isna().all()
    assert (cat["fs"] == 100).all() and (cat["error"] == "").all()
    assert all(math.isnan(p) for p in cat["patient_id"])


def test_a_calibration_pulse_is_cut_as_by_the_vendor_readers(tmp_path):
    """A WFDB conversion of a cart's file keeps its calibration pulse; the reader cuts it, like the XML ones."""
    from synthetic_signals import synthetic_ecg

    from ecglens.io.wfdb_write import write_wfdb_records

    fs = 500.0
    ecg = synthetic_ecg(fs, 10.0) + np.random.default_rng(0).normal(0, 0.01, (12, 5000)).astype(np.float32)
    tail = np.zeros((12, 500), np.float32)
    tail[:, 150:250] = 1.0                                    # zeros, 0.2 s at 1 mV on every lead, zeros
    [plain, pulsed] = write_wfdb_records(np.stack([ecg, np.concatenate([ecg[:, :4500], tail], axis=1)]), fs,
                                         ["plain", "pulsed"], tmp_path)
    assert "calibration_removed_s" not in read_ecg(plain).meta
    read = read_ecg(pulsed)
    assert read.meta["calibration_removed_s"][0] == 0.0 and 4490 <= read.n_samples <= 4500
    assert not (read.signal >= 0.98).all(axis=0).any()
