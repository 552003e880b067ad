"""The WFDB fast path (:mod:`ecglens.io.wfdb_fast`) against ``wfdb.rdrecord`` itself, sample for sample.

Oracle: ``wfdb.rdrecord(name, physical=True).p_signal`` (NaN where wfdb marks invalid samples), on every WFDB
fixture under ``../shared/data/fixtures``, the package examples, and synthetic records written here with
``wfdb.wrsamp`` in each format the fast path takes (odd lengths, negative values, baselines, gains != 1000,
several signals per file, several files, byte offsets, invalid samples). Equality is exact (``array_equal``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecglens.exceptions import CorruptRecordError
from ecglens.io.wfdb import read_wfdb
from ecglens.io.wfdb_fast import parse_header, read_fast
from ecglens.io.wfdb_header import fast_facts, header_facts

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "ecglens" / "examples"


def _assert_same_as_wfdb(hea: Path) -> None:
    fast = read_fast(hea)
    assert fast is not None, f"{hea}: the fast path declined a record it should read"
    ref = wfdb.rdrecord(str(hea)[:-4], physical=True)
    assert fast.p_signal is not None and fast.p_signal.dtype == np.float64
    assert fast.p_signal.shape == ref.p_signal.shape
    assert np.array_equal(fast.p_signal, ref.p_signal, equal_nan=True), hea
    assert (fast.record_name, fast.fs, fast.sig_name, fast.comments) == (
        ref.record_name, float(ref.fs), ref.sig_name, ref.comments)


def test_every_fixture_and_example_equals_wfdb(fixtures_dir: Path) -> None:
    headers = sorted(fixtures_dir.rglob("*.hea")) + sorted(EXAMPLES.rglob("*.hea"))
    assert len(headers) > 50
    for hea in headers:
        _assert_same_as_wfdb(hea)


def test_read_wfdb_fast_and_slow_give_the_same_ecg(fixtures_dir: Path) -> None:
    for hea in sorted(fixtures_dir.rglob("*.hea"))[::7]:
        a, b = read_wfdb(hea), read_wfdb(hea, fast=False)
        assert np.array_equal(a.signal, b.signal, equal_nan=True), hea
        assert (a.leads, a.fs, a.age, a.sex, a.record_id, a.meta) == (b.leads, b.fs, b.age, b.sex, b.record_id,
                                                                        b.meta)


def test_one_parse_gives_the_facts_of_the_checks(fixtures_dir: Path) -> None:
    """read_wfdb parses a header the fast path takes once: the facts its checks then see equal the checks' own
    parser's, on every fixture and example header."""
    headers = sorted(fixtures_dir.rglob("*.hea")) + sorted(EXAMPLES.rglob("*.hea"))
    taken = 0
    for hea in headers:
        raw = hea.read_bytes()
        parsed = fast_facts(raw)
        if parsed is not None:
            taken += 1
            assert parsed[0] == header_facts(hea), hea
    assert taken > 50


def test_non_ascii_header_keeps_its_written_unit(tmp_path: Path) -> None:
    """A header with a byte outside ASCII (here the micro sign of the unit) is not taken by the one-parse path,
    so the unit stays microvolts as written, and the record reads as with wfdb."""
    (tmp_path / "rec.dat").write_bytes(np.array([1000, -500, 250, 0], "<i2").tobytes())
    (tmp_path / "rec.hea").write_bytes("rec 1 500 4\nrec.dat 16 1/\u00b5V 16 0 0 0 0 I\n".encode("utf-8"))
    assert fast_facts((tmp_path / "rec.hea").read_bytes()) is None
    ecg = read_wfdb(tmp_path / "rec.hea", standard_leads=False)
    assert ecg.meta["header_units"] == ["\u00b5V"]
    assert np.allclose(ecg.signal[0], [1.0, -0.5, 0.25, 0.0])


def _digital(n: int, n_sig: int, lo: int, hi: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.integers(lo, hi, size=(n, n_sig)).astype(np.int64)
    d[0] = lo  # the extremes of the format's range (lo is one above the invalid value)
    d[-1] = hi - 1
    return d


# format -> (lowest valid, highest valid + 1) digital value
_RANGES = {"16": (-32767, 32768), "212": (-2047, 2048), "24": (-8388607, 8388608), "32": (-2**31 + 1, 2**31 - 1),
           "80": (-127, 128), "8": (-60, 60)}


def _pack212(flat: np.ndarray) -> bytes:
    """Format 212: two 12-bit two's-complement samples in three bytes (an odd count padded with a zero)."""
    v = np.append(flat, 0) if flat.size % 2 else flat
    v = v.astype(np.int64) & 0xFFF
    a, b = v[0::2], v[1::2]
    out = np.stack([a & 0xFF, (a >> 8) | ((b >> 8) << 4), b & 0xFF], axis=1).astype(np.uint8)
    return out.tobytes()


def _write(tmp_path: Path, name: str, d: np.ndarray, fmt: str) -> Path:
    """A record of digital samples ``d`` [n, 3] in ``fmt``: wfdb.wrsamp writes it (formats 212 and 8, which
    wfdb cannot write, are written as 16 by wfdb and their signal file re-encoded here)."""
    written = "16" if fmt in ("212", "8") else fmt
    wfdb.wrsamp(name, fs=500, units=["mV", "uV", "mV"], sig_name=["I", "II", "V1"], d_signal=d,
                fmt=[written] * 3, adc_gain=[200.0, 1000.0, 12.5], baseline=[0, -37, 5], write_dir=str(tmp_path),
                comments=["Age: 61", "Sex: F"])
    hea, dat = tmp_path / f"{name}.hea", tmp_path / f"{name}.dat"
    if fmt == "212":
        dat.write_bytes(_pack212(d.reshape(-1)))
    elif fmt == "8":  # first differences from the initial value (the header's init field is d[0])
        diffs = np.diff(d, axis=0, prepend=d[:1])
        assert np.abs(diffs).max() < 128
        dat.write_bytes(diffs.astype(np.int8).tobytes())
    if fmt != written:
        hea.write_text(hea.read_text().replace(f"{name}.dat 16 ", f"{name}.dat {fmt} "))
    return hea


@pytest.mark.parametrize("fmt", sorted(_RANGES))
@pytest.mark.parametrize("n", [1, 7, 1000, 1001])
def test_synthetic_formats_equal_wfdb(tmp_path: Path, fmt: str, n: int) -> None:
    lo, hi = _RANGES[fmt]
    d = _digital(n, 3, lo, hi)
    if fmt == "8":  # first differences: keep each step within one signed byte
        d = np.cumsum(np.clip(d - d.mean(axis=0, dtype=np.int64), -50, 50), axis=0)
    hea = _write(tmp_path, f"r{fmt}", d, fmt)
    _assert_same_as_wfdb(hea)
    assert np.array_equal(wfdb.rdrecord(str(hea)[:-4], physical=False).d_signal, d)  # the oracle reads d back


@pytest.mark.parametrize("fmt", ["16", "212", "80"])
def test_invalid_samples_are_nan_like_wfdb(tmp_path: Path, fmt: str) -> None:
    lo, hi = _RANGES[fmt]
    d = _digital(50, 3, lo, hi)
    d[10, 0] = d[11, 1] = lo - 1  # WFDB's invalid-sample value
    hea = _write(tmp_path, "nan", d, fmt)
    _assert_same_as_wfdb(hea)
    assert np.isnan(read_fast(hea).p_signal[[10, 11], [0, 1]]).all()


def test_several_files_and_byte_offsets(tmp_path: Path) -> None:
    d = _digital(333, 4, -2000, 2000)
    record = wfdb.Record(record_name="multi", n_sig=4, fs=360, sig_len=333, file_name=["a.dat", "a.dat", "b.dat",
                         "b.dat"], fmt=["212", "212", "16", "16"], adc_gain=[200.0, 200.0, 400.0, 50.0],
                         baseline=[10, -10, 0, 3], units=["mV"] * 4, sig_name=["I", "II", "V1", "V2"], d_signal=d,
                         adc_res=[12, 12, 16, 16], adc_zero=[0] * 4, block_size=[0] * 4)
    record.set_d_features(do_adc=False)
    record.wrsamp(write_dir=str(tmp_path))
    _assert_same_as_wfdb(tmp_path / "multi.hea")
    # prepend 24 bytes to b.dat and declare them as a byte offset (like the challenge .mat files)
    data = (tmp_path / "b.dat").read_bytes()
    (tmp_path / "b.dat").write_bytes(b"\x01" * 24 + data)
    hea = tmp_path / "multi.hea"
    hea.write_text(hea.read_text().replace("b.dat 16 ", "b.dat 16+24 "))
    assert "16+24" in hea.read_text()
    _assert_same_as_wfdb(hea)


@pytest.mark.parametrize("text", [
    "rec/2 12 500 5000\nseg1 2500\nseg2 2500\n",                                # multi-segment
    "rec 1 500 100\nrec.dat 310 200/mV 12 0 0 0 0 I\n",                        # format the fast path leaves
    "rec 1 500 100\nrec.dat 16x2 200/mV 16 0 0 0 0 I\n",                       # two samples per frame
    "rec 1 500 100\nrec.dat 16:3 200/mV 16 0 0 0 0 I\n",                       # skew
    "rec 1 500/250 100\nrec.dat 16 200/mV 16 0 0 0 0 I\n",                     # counter frequency
    "rec 1 500\nrec.dat 16 200/mV 16 0 0 0 0 I\n",                             # no length: wfdb sizes it
    "rec 1 500 100\nrec.dat 16 200/mV 16 0 0 0\n",                             # no description
    "rec 2 500 100\na.dat 16 200/mV 16 0 0 0 0 I\nb.dat 16 200/mV 16 0 0 0 0 II\na.dat 16 200/mV 16 0 0 0 0 V1\n",
    "rec 2 500 100\na.dat 16 200/mV 16 0 0 0 0 I\na.dat 212 200/mV 16 0 0 0 0 II\n",  # mixed formats in one file
    "rec 1 500 100\nrec.dat 16 200/mV 16 0 0 0 0 I # note\n",                  # inline comment
    "rec 1 500 100\n../rec.dat 16 200/mV 16 0 0 0 0 I\n",                      # a path, not a bare name
    "rec 1 500 100\nrec.dat 16 0/mV 16 0 0 0 0 I\n",                           # gain 0 (uncalibrated)
])
def test_headers_left_to_wfdb(text: str) -> None:
    assert parse_header(text) is None


def test_short_signal_file_falls_back(tmp_path: Path) -> None:
    (tmp_path / "rec.hea").write_text("rec 1 500 100\nrec.dat 16 200/mV 16 0 0 0 0 I\n")
    (tmp_path / "rec.dat").write_bytes(b"\x00" * 10)
    assert read_fast(tmp_path / "rec.hea") is None
    with pytest.raises(CorruptRecordError, match="truncated"):  # read_wfdb's own check still speaks first
        read_wfdb(tmp_path / "rec.hea")


def test_signal_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "x.dat").write_bytes(np.zeros(24, "<i2").tobytes())
    (tmp_path / "sub" / "rec.hea").write_text("rec 1 500 12\n../x.dat 16 200/mV 16 0 0 0 0 I\n")
    with pytest.raises(CorruptRecordError, match="bare file name"):
        read_wfdb(tmp_path / "sub" / "rec.hea")
