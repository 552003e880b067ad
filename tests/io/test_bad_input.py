"""Every kind of bad input raises its specific ecglens error, naming the file and saying what to do.

Broken records are copies of a real CODE-15% fixture (``code15/100003``: 12 leads, 2934 samples, format 16)
damaged in tmp_path, or small records written by hand.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from ecglens.exceptions import (
    CorruptRecordError,
    EcglensError,
    LeadError,
    SamplingRateError,
    SignalQualityError,
    SignalQualityWarning,
    UnitError,
    UnsupportedFormatError,
)
from ecglens.io import read_ecg
from ecglens.io.code15 import iter_code15_hdf5, read_code15_exam
from ecglens.io.ptbxl import ptbxl_catalogue
from ecglens.io.wfdb import wfdb_catalogue

N_SAMPLES, N_LEADS = 2934, 12


@pytest.fixture
def record(fixtures_dir, tmp_path) -> Path:
    """A writable copy of code15/100003 in tmp_path; returns the record path without suffix."""
    for suffix in (".hea", ".dat"):
        dst = tmp_path / f"100003{suffix}"
        shutil.copyfile(fixtures_dir / "code15" / f"100003{suffix}", dst)
        dst.chmod(0o644)
    return tmp_path / "100003"


def _edit_header(record: Path, old: str, new: str, count: int = 1) -> None:
    hea = record.with_suffix(".hea")
    text = hea.read_text()
    assert old in text
    hea.write_text(text.replace(old, new, count))


def _write_dat(record: Path, values: np.ndarray) -> None:
    np.asarray(values, dtype="<i2").tofile(record.with_suffix(".dat"))


def test_good_copy_reads(record):
    assert read_ecg(record).n_samples == N_SAMPLES  # the damage below is the only difference


def test_truncated_dat(record):
    dat = record.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:10_000])
    with pytest.raises(CorruptRecordError, match="truncated") as err:
        read_ecg(record)
    assert "100003.dat" in str(err.value) and "10000 bytes" in str(err.value)
    assert f"{N_SAMPLES * N_LEADS * 2} bytes" in str(err.value) and "again" in str(err.value)


def test_malformed_record_line(record):
    record.with_suffix(".hea").write_text("this is not a WFDB header\n")
    with pytest.raises(CorruptRecordError, match="malformed WFDB header") as err:
        read_ecg(record)
    assert "100003.hea" in str(err.value) and "NAME N_SIGNALS FS N_SAMPLES" in str(err.value)


def test_missing_signal_lines(record):
    hea = record.with_suffix(".hea")
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join(lines[:5]) + "\n")  # record line says 12 signals, 4 follow
    with pytest.raises(CorruptRecordError, match="declares 12 signals but 4"):
        read_ecg(record)


def test_empty_header(record):
    record.with_suffix(".hea").write_text("")
    with pytest.raises(CorruptRecordError, match="malformed"):
        read_ecg(record.with_suffix(".hea"))


def test_header_missing(record):
    record.with_suffix(".hea").unlink()
    with pytest.raises(CorruptRecordError, match="header file missing") as err:
        read_ecg(record.with_suffix(".dat"))
    assert "100003.hea" in str(err.value)
    with pytest.raises(UnsupportedFormatError, match="no such file"):
        read_ecg(record)  # bare record name, nothing called that exists
    with pytest.raises(CorruptRecordError, match="header file missing"):
        read_ecg(record, format="wfdb")


def test_dat_missing(record):
    record.with_suffix(".dat").unlink()
    with pytest.raises(CorruptRecordError, match=r"signal file '100003\.dat' is missing") as err:
        read_ecg(record)
    assert "Copy the .dat" in str(err.value)


def test_mat_missing(fixtures_dir, tmp_path):
    shutil.copyfile(fixtures_dir / "georgia" / "E07500.hea", tmp_path / "E07500.hea")
    with pytest.raises(CorruptRecordError, match=r"'E07500\.mat' is missing"):
        read_ecg(tmp_path / "E07500")


def test_challenge_mat_without_header(fixtures_dir, tmp_path):
    shutil.copyfile(fixtures_dir / "cpsc" / "A0002.mat", tmp_path / "A0002.mat")
    with pytest.raises(CorruptRecordError, match="header file missing"):
        read_ecg(tmp_path / "A0002.mat")


def test_all_zero_signal(record):
    _write_dat(record, np.zeros(N_SAMPLES * N_LEADS))
    with pytest.raises(SignalQualityError, match="all zeros") as err:
        read_ecg(record)
    assert "Exclude" in str(err.value)


def test_all_nan_signal(record):
    _write_dat(record, np.full(N_SAMPLES * N_LEADS, -32768))  # WFDB's invalid-sample value for format 16
    with pytest.raises(SignalQualityError, match="NaN"):
        read_ecg(record)


def test_flat_signal(record):
    _write_dat(record, np.full(N_SAMPLES * N_LEADS, 250))
    with pytest.raises(SignalQualityError, match="flat"):
        read_ecg(record)


@pytest.mark.parametrize("fs", ["0", "-500"])
def test_non_positive_sampling_rate(record, fs):
    _edit_header(record, "100003 12 400 2934", f"100003 12 {fs} 2934")
    with pytest.raises(SamplingRateError, match="sampling rate") as err:
        read_ecg(record)
    assert "real sampling rate" in str(err.value)


def test_unknown_unit(record):
    _edit_header(record, "1000(0)/mV", "1000(0)/mmHg", count=N_LEADS)
    with pytest.raises(UnitError, match="mmHg"):
        read_ecg(record)


def test_duplicate_leads(record):
    _edit_header(record, " V6\n", " V5\n")
    with pytest.raises(LeadError, match="duplicate"):
        read_ecg(record)


def test_other_wfdb_failures_are_wrapped(record):
    _edit_header(record, ".dat 16 ", ".dat 999 ", count=N_LEADS)  # a format wfdb does not know
    with pytest.raises(CorruptRecordError, match="wfdb could not read") as err:
        read_ecg(record)
    assert "100003.hea" in str(err.value) and "999" in str(err.value)
    assert isinstance(err.value.__cause__, Exception)


@pytest.mark.parametrize(
    "name, content", [("ecg.xyz", b"hello"), ("data.mat", b"MATLAB 5.0 MAT-file" + bytes(200))]
)
def test_unknown_format(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UnsupportedFormatError, match="not a recognised ECG file") as err:
        read_ecg(tmp_path / name)
    assert "Supported formats" in str(err.value)


def test_all_errors_are_value_errors(record):
    """Batch jobs catch EcglensError (a ValueError) and record the reason."""
    record.with_suffix(".dat").unlink()
    with pytest.raises(EcglensError):
        read_ecg(record)
    with pytest.raises(ValueError):
        read_ecg(record)


def test_catalogue_keeps_broken_headers(record):
    record.with_suffix(".hea").write_text("garbage\n")
    cat = wfdb_catalogue(record.parent)
    assert len(cat) == 1 and "malformed" in cat["error"].iloc[0]


def test_ptbxl_malformed_scp_codes(fixtures_dir, tmp_path):
    src = fixtures_dir / "ptbxl_official"
    table = pd.read_csv(src / "ptbxl_database.csv")
    table.loc[0, "scp_codes"] = "__import__('os').system('echo no')"
    table.to_csv(tmp_path / "ptbxl_database.csv", index=False)
    shutil.copyfile(src / "scp_statements.csv", tmp_path / "scp_statements.csv")
    with pytest.raises(CorruptRecordError, match="ecg_id 1: scp_codes"):
        ptbxl_catalogue(tmp_path)


def test_code15_all_zero_exam(tmp_path, rng):
    tracings = np.zeros((2, 4096, 12), np.float32)
    tracings[1] = rng.normal(size=(4096, 12))
    with h5py.File(tmp_path / "exams_part0.hdf5", "w") as f:
        f["tracings"] = tracings
        f["exam_id"] = np.array([7, 8])
    with pytest.raises(SignalQualityError, match="all zeros"):
        read_code15_exam(tmp_path / "exams_part0.hdf5", 7)
    with pytest.warns(SignalQualityWarning, match="/7.code15"):
        exams = list(iter_code15_hdf5(tmp_path))
    assert [e.record_id for e in exams] == ["8"]
    with warnings.catch_warnings(), pytest.raises(SignalQualityError):
        warnings.simplefilter("ignore")
        list(iter_code15_hdf5(tmp_path, on_error="raise"))


# ------------------------------------------------------------------------------ validation at the boundary (#22)
@pytest.mark.parametrize("fs", ["+400", "4e2", "1_000", "1e9", "NaN", "1e-308", "25", "25000"])
def test_sampling_rate_written_oddly_is_refused_not_coerced(record, fs):
    _edit_header(record, "100003 12 400 2934", f"100003 12 {fs} 2934")
    with pytest.raises(SamplingRateError, match="sampling rate field") as err:
        read_ecg(record)
    assert repr(fs) in str(err.value) and "third field of the first header line" in str(err.value)


def test_sampling_rate_with_counter_frequency_is_read_exactly(record):
    _edit_header(record, "100003 12 400 2934", "100003 12 400.0/1 2934")
    assert read_ecg(record).fs == 400.0


@pytest.mark.parametrize("unit", ["µV", "μV", "uV"])
def test_microvolt_units_stay_microvolts(record, unit):
    """wfdb drops the non-ASCII µ (reading 'µV' as 'V', x1e6): the unit comes from the header text."""
    literal = read_ecg(record).signal
    hea = record.with_suffix(".hea")
    hea.write_bytes(hea.read_text().replace("1000(0)/mV", f"1(0)/{unit}").encode("utf-8"))
    np.testing.assert_allclose(read_ecg(record).signal, literal, rtol=1e-5)


@pytest.mark.parametrize("gain", ["0", "-200", "1e-308", "nan", "inf", "1e308", "abc"])
def test_unusable_gain_is_refused(record, gain):
    _edit_header(record, "1000(0)/mV", f"{gain}(0)/mV")
    with pytest.raises(UnitError, match="gain field"):
        read_ecg(record)


@pytest.mark.parametrize("baseline", ["1e308", "nan", "99999999999", "x"])
def test_unusable_baseline_is_refused(record, baseline):
    _edit_header(record, "1000(0)/mV", f"1000({baseline})/mV")
    with pytest.raises(UnitError, match="integer baseline"):
        read_ecg(record)


def test_absurd_amplitude_is_refused(record):
    _edit_header(record, "1000(0)/mV", "1(0)/mV")  # x1000: several hundred mV
    with pytest.raises(UnitError, match=r"beyond the \+-50 mV") as err:
        read_ecg(record)
    assert "100003.hea" in str(err.value)


def test_twenty_thousand_signals_are_refused_fast(record):
    import time

    hea = record.with_suffix(".hea")
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join(["100003 20000 400 2934"] + [lines[1]] * 20_000) + "\n")
    start = time.perf_counter()
    with pytest.raises(CorruptRecordError, match="20000 signals"):
        read_ecg(record)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("name", ["~", ""])
def test_signal_file_named_tilde_or_empty(record, name):
    hea = record.with_suffix(".hea")
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join([lines[0]] + [f"{name} " + ln.split(" ", 1)[1] for ln in lines[1:13]]) + "\n")
    with pytest.raises(EcglensError):
        read_ecg(record)


def test_self_referencing_multi_segment_record(tmp_path):
    (tmp_path / "loop.hea").write_text("loop/2 12 500 2000\nloop 1000\nloop 1000\n")
    with pytest.raises(CorruptRecordError, match="multi-segment"):
        read_ecg(tmp_path / "loop.hea")


def test_huge_gap_segment_is_refused_before_allocating(record):
    """A gap ('~') segment is filled by wfdb from the header's word alone: 10^9 samples x 12 leads = 96 GB."""
    (record.parent / "big.hea").write_text(f"big/2 12 400 {2934 + 10**9}\n100003 2934\n~ {10**9}\n")
    with pytest.raises(CorruptRecordError, match="segments hold 2934"):
        read_ecg(record.parent / "big.hea")


def test_segment_longer_than_its_header_is_refused(record):
    (record.parent / "long.hea").write_text("long/1 12 400 5000\n100003 5000\n")
    with pytest.raises(CorruptRecordError, match="listed with 5000 samples"):
        read_ecg(record.parent / "long.hea")


def test_invalid_samples_are_interpolated_with_a_warning(record):
    x = np.fromfile(record.with_suffix(".dat"), dtype="<i2").reshape(N_SAMPLES, N_LEADS).copy()
    x[1000:1010, 1] = -32768  # WFDB's invalid-sample value for format 16
    _write_dat(record, x.ravel())
    with pytest.warns(SignalQualityWarning, match="interpolated"):
        ecg = read_ecg(record)
    assert np.isfinite(ecg.signal).all()


def test_ecg_refuses_non_finite_samples():
    from ecglens.ecg import Ecg

    sig = np.ones((2, 10))
    sig[1, 3] = np.nan
    with pytest.raises(SignalQualityError, match="NaN or infinite"):
        Ecg(sig, 500.0, ("I", "II"), record_id="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reason is the error's, with no overflow warning before it
        with pytest.raises(SignalQualityError, match="beyond float32"):
            Ecg(np.full((1, 10), 1e39), 500.0, ("I",))


@pytest.mark.parametrize("cut", [0, 128, 132, 1000, 20_000])
def test_truncated_dicom_is_an_ecglens_error(fixtures_dir, tmp_path, cut):
    data = (fixtures_dir / "vendor" / "toolkit_example.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:cut])
    with pytest.raises(EcglensError):
        read_ecg(tmp_path / "cut.dcm", format="dicom")


@pytest.mark.parametrize(("key", "value", "error"), [("SamplingFrequency", "1e9", SamplingRateError),
                                                     ("SamplingFrequency", "0", SamplingRateError),
                                                     ("ChannelSensitivity", "1e308", UnitError),
                                                     ("ChannelSensitivity", "0", UnitError)])
def test_dicom_fields_are_checked(fixtures_dir, tmp_path, key, value, error):
    import pydicom

    ds = pydicom.dcmread(fixtures_dir / "vendor" / "toolkit_example.dcm")
    group = ds.WaveformSequence[0]
    for item in [group] if key == "SamplingFrequency" else group.ChannelDefinitionSequence:
        setattr(item, key, value)
    ds.save_as(tmp_path / "x.dcm")
    with pytest.raises(error, match="x.dcm"):
        read_ecg(tmp_path / "x.dcm")


def test_damaged_code15_hdf5_is_an_ecglens_error(tmp_path):
    good = tmp_path / "exams_part0.hdf5"
    with h5py.File(good, "w") as f:
        f["tracings"] = np.ones((1, 4096, 12), dtype=np.float32)
        f["exam_id"] = np.array([7])
    data = bytearray(good.read_bytes())
    data[800:1800] = bytes(1000)
    good.write_bytes(bytes(data))
    with pytest.raises(EcglensError):
        read_ecg(good)


def test_code15_absurd_or_non_finite_tracing(tmp_path):
    for value, error in ((1e5, UnitError), (np.inf, CorruptRecordError)):
        path = tmp_path / f"exams_{value}.hdf5"
        tr = np.sin(np.arange(4096))[None, :, None].repeat(12, axis=2).astype(np.float32)
        tr[0, 100, 3] = value
        with h5py.File(path, "w") as f:
            f["tracings"] = tr
            f["exam_id"] = np.array([7])
        with pytest.raises(error):
            read_ecg(path)


def test_missing_array_values_are_filled_with_a_warning(tmp_path):
    x = np.sin(np.arange(2000) / 20.0)[None].repeat(12, axis=0)
    x[2, 100:105] = np.nan
    np.save(tmp_path / "x.npy", x)
    with pytest.warns(SignalQualityWarning, match="interpolated"):
        ecg = read_ecg(tmp_path / "x.npy", fs=500)
    assert np.isfinite(ecg.signal).all()


def test_edf_with_zero_samples_per_record_is_an_ecglens_error(tmp_path):
    edfio = pytest.importorskip("edfio")
    t = np.arange(5000) / 500.0
    signals = [edfio.EdfSignal(np.sin(t + k) * 1000, 500, label=f"ECG {n}", physical_dimension="uV",
                               physical_range=(-5000, 5000)) for k, n in enumerate(("I", "II", "V1"))]
    edfio.Edf(signals).write(tmp_path / "x.edf")
    data = bytearray((tmp_path / "x.edf").read_bytes())
    n_sig = int(data[252:256])
    start = 256 + n_sig * 216  # "number of samples in each data record", 8 characters per signal
    data[start:start + 8 * n_sig] = b"0       " * n_sig
    (tmp_path / "x.edf").write_bytes(bytes(data))
    with pytest.raises(EcglensError):
        read_ecg(tmp_path / "x.edf")


def test_an_unexpected_reader_failure_becomes_a_corrupt_record_error(tmp_path, monkeypatch):
    # the last-resort guard of read_ecg: a reader's unforeseen exception names the reader and the file
    import dataclasses
    import struct

    from ecglens.io import get_reader, registry

    path = tmp_path / "x.npy"
    np.save(path, np.zeros((12, 100), np.float32))

    def broken(*args, **kwargs):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setitem(registry._READERS, "numpy", dataclasses.replace(get_reader("numpy"), read=broken))
    with pytest.raises(CorruptRecordError, match=r"x\.npy: the numpy reader could not read this file \(error"):
        read_ecg(path, format="numpy", fs=100)


@pytest.mark.parametrize(
    ("peak", "zero", "nan", "error"),
    [(49.9, False, False, None), (50.1, False, False, UnitError), (-50.1, False, False, UnitError),
     (1.0, True, False, SignalQualityError), (1.0, False, True, UnitError)],
)
def test_check_recorded_signal_bounds(peak, zero, nan, error):
    """The shared check of every reader, on a lead-major view of a sample-major array (as WFDB passes it)."""
    from ecglens.ecg import check_recorded_signal

    x = np.zeros((500, 12)) if zero else np.random.default_rng(0).uniform(-1, 1, (500, 12))
    if not zero:
        x[100, 4] = peak
    if nan:
        x[7, 2] = np.nan
    if error is None:
        check_recorded_signal(x.T, "rec", "WFDB")
    else:
        with pytest.raises(error, match="zero on every|beyond") as err:
            check_recorded_signal(x.T, "rec", "WFDB")
        assert "rec" in str(err.value)


@pytest.mark.parametrize(("name", "old", "new", "field"), [
    ("muse_phi1.xml", b"<SampleBase>500</SampleBase>", b"<SampleBase>5</SampleBase>", "SampleBase"),
    ("muse_phi1.xml", b"<SampleBase>500</SampleBase>", b"<SampleBase>1e-308</SampleBase>", "SampleBase"),
    ("cardiosoft_dummy.xml", b'<SampleRate units="Hz">500</SampleRate>', b'<SampleRate units="Hz">1e-308</SampleRate>',
     "SampleRate"),
    ("cardiosoft_dummy.xml", b'<SampleRate units="Hz">500</SampleRate>', b'<SampleRate units="kHz">500</SampleRate>',
     "SampleRate"),
    ("aecg_hl7_example.xml", b'<increment value="0.002" unit="s"/>', b'<increment value="2" unit="s"/>', "increment"),
    ("philips_129DYPRG_103.xml", b"<samplingrate>500", b"<samplingrate>5", "samplingrate"),
])
def test_vendor_sampling_rate_outside_the_ecg_range_is_refused(fixtures_dir, tmp_path, name, old, new, field):
    """Every vendor reader refuses a stated rate outside 50 Hz - 20 kHz when reading, naming the field (a fuzzed
    CardioSoft file once came out of the reader as an Ecg at 1e-308 Hz)."""
    data = (fixtures_dir / "vendor" / name).read_bytes()
    assert old in data
    (tmp_path / name).write_bytes(data.replace(old, new))
    with pytest.raises(SamplingRateError, match=field):
        read_ecg(tmp_path / name)


def test_npz_with_an_unsupported_zip_feature_is_a_corrupt_record(tmp_path):
    """zipfile raises NotImplementedError for a zip version or compression method it does not know (a fuzzed
    .npz once escaped as that)."""
    from ecglens.io.array import read_numpy

    np.savez(tmp_path / "a.npz", ecg=np.ones((12, 100)))
    data = bytearray((tmp_path / "a.npz").read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 8: local + 10] = (99).to_bytes(2, "little")  # compression method 99: not one zipfile knows
    data[central + 10: central + 12] = (99).to_bytes(2, "little")
    (tmp_path / "b.npz").write_bytes(bytes(data))
    with pytest.raises(CorruptRecordError, match="cannot load the array"):
        read_numpy(tmp_path / "b.npz", fs=500.0)


def test_volt_gain_check_is_quiet_about_an_all_nan_lead():
    """A lead of NaN only (a multi-segment record's absent signal) gives the span check no NumPy warning."""
    from ecglens.io.wfdb_content import repair_volt_gain

    signal = np.random.default_rng(0).normal(0, 1e-3, (1000, 3))
    signal[:, 1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, note = repair_volt_gain(signal, [2e5, 2e5, 2e5], ["mV", "mV", "mV"])
    assert note is not None and np.allclose(out[:, 0], signal[:, 0] * 1e3)
    # the absent signal's gain is None: the other gains decide (here plausible ones: nothing to repair)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, note = repair_volt_gain(signal, [1000.0, None, 1000.0], ["mV", None, "mV"])
    assert note is None and out is signal
