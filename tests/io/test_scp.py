"""Tests of the SCP-ECG reader (``ecglens.io.scp``) and its Huffman decoder.

How the expected values are made:

* Real files (``../shared/data/fixtures/vendor``): ``toolkit_example.scp`` is the same ECG as
  ``toolkit_example.dcm`` and ``aecg_hl7_example.xml`` (ECG Toolkit's example exports), read by the independent
  DICOM and HL7 aECG readers; the three must agree within one quantisation step (2.5 uV). ``contec_demo.scp``
  (8 stored leads, int16 samples) must give a plausible 12-lead ECG in mV.
* Synthetic files are written here by a small SCP-ECG encoder that follows the standard's layout (section
  headers with CRC-CCITT, pointer table, custom Huffman tables with base codes stored bit-reversed, first
  differences, reference-beat subtraction, bimodal decimation) from integer signals chosen here, so the expected
  mV of every sample is ``count * multiplier`` computed in the test.
* The default Huffman table is checked against the base codes printed in the standard (0, 1, 5, 3, 11, ...).
* Damaged files are seeded mutations of the two real files (truncation, byte flips with and without repaired
  CRCs, section lengths, pointer table entries): each must raise an ecglens error naming SCP-ECG.
* The numpy Huffman decoder (``decode_values``) is compared with the Python loop it replaced, kept here as an
  oracle (``_reference_decode_values``): same int64 values, or the same error class and message, on every lead
  of the real files (also truncated and with flipped bytes), on seeded random streams of the default table
  (written by a small encoder here from known values, escapes and int8/int16 extremes included) and on seeded
  random custom tables with table switches, missing tables, bit patterns without a code and damaged streams.
"""

from __future__ import annotations

import binascii
import struct
from pathlib import Path

import numpy as np
import pytest

from ecglens.exceptions import CorruptRecordError, EcglensError, LeadError, UnsupportedFormatError
from ecglens.io import detect_format, read_ecg, scp_huffman
from ecglens.io.scp import read_scp
from ecglens.io.scp_huffman import DEFAULT_TABLE, HuffmanCode, decode_values, parse_tables

FIXTURES = ("toolkit_example.scp", "contec_demo.scp")


# ------------------------------------------------------------------------------------------ a tiny SCP writer
def _crc(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def _section(number: int, body: bytes) -> bytes:
    head = struct.pack("<HIBB6s", number, 16 + len(body), 20, 20, b"SCPECG" if number == 0 else bytes(6))
    return struct.pack("<H", _crc(head + body)) + head + body


def scp_record(sections: dict[int, bytes]) -> bytes:
    """A whole record: section 0 pointing to ``sections`` (numbers 1-11, absent ones with length 0)."""
    pointer_len = 16 + 10 * 12
    pos, blobs, pointers = 7 + pointer_len, [], b""
    for number in range(1, 12):
        if number in sections:
            blob = _section(number, sections[number])
            pointers += struct.pack("<HII", number, len(blob), pos)
            blobs.append(blob)
            pos += len(blob)
        else:
            pointers += struct.pack("<HII", number, 0, 0)
    body = _section(0, struct.pack("<HII", 0, pointer_len, 7) + pointers) + b"".join(blobs)
    size = 6 + len(body)
    rest = struct.pack("<I", size) + body
    return struct.pack("<H", _crc(rest)) + rest


def patient(age: int, unit: int, sex: int) -> bytes:
    return (
        struct.pack("<BH", 2, 4)
        + b"ID7\0"
        + struct.pack("<BHHB", 4, 3, age, unit)
        + struct.pack("<BHB", 8, 1, sex)
        + struct.pack("<BH", 255, 0)
    )


def leads(codes: list[int], n: int, flags: int = 0x04) -> bytes:
    return struct.pack("<BB", len(codes), flags) + b"".join(struct.pack("<IIB", 1, n, c) for c in codes)


def samples(avm: int, interval: int, diff: int, bimodal: int, chunks: list[bytes]) -> bytes:
    lengths = struct.pack(f"<{len(chunks)}H", *map(len, chunks))
    return struct.pack("<HHBB", avm, interval, diff, bimodal) + lengths + b"".join(chunks)


def int16(values: np.ndarray) -> bytes:
    return np.asarray(values, dtype="<i2").tobytes()


# Two custom tables: table 1 codes 0 / +1 / -1, a 16-bit escape and a switch to table 2; table 2 a code for
# +7, an 8-bit escape and a switch back. (prefix bits, total bits, is value, base value, code as sent)
TABLES = [
    [
        (1, 1, 1, 0, "0"),
        (2, 2, 1, 1, "10"),
        (3, 3, 1, -1, "110"),
        (4, 20, 1, 0, "1110"),
        (4, 4, 0, 2, "1111"),
    ],
    [(1, 1, 1, 7, "0"), (2, 10, 1, 0, "10"), (2, 2, 0, 1, "11")],
]


def section2(tables: list) -> bytes:
    out = struct.pack("<H", len(tables))
    for table in tables:
        out += struct.pack("<H", len(table))
        for prefix, total, mode, base, code in table:
            out += struct.pack("<BBBhI", prefix, total, mode, base, int(code[::-1], 2))  # stored bit-reversed
    return out


def huffman(values: np.ndarray, tables: list) -> bytes:
    """Encode with ``tables``: a direct code, else a switch to a table with one, else the current escape."""
    bits, current = [], 0
    for v in np.asarray(values).tolist():
        while True:
            direct = [c for c in tables[current] if c[2] and c[0] == c[1] and c[3] == v]
            if direct:
                bits.append(direct[0][4])
                break
            other = [
                t for t, table in enumerate(tables) if any(c[2] and c[0] == c[1] and c[3] == v for c in table)
            ]
            switch = [c for c in tables[current] if not c[2]]
            if other and switch and switch[0][3] - 1 == other[0]:
                bits.append(switch[0][4])
                current = other[0]
                continue
            escape = next(c for c in tables[current] if c[2] and c[1] > c[0])
            extra = escape[1] - escape[0]
            bits.append(escape[4] + format(v & ((1 << extra) - 1), f"0{extra}b"))
            break
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def write(tmp_path: Path, sections: dict[int, bytes], name: str = "x.scp") -> Path:
    path = tmp_path / name
    path.write_bytes(scp_record(sections))
    return path


# ------------------------------------------------------------------------------------------ the old decoder (oracle)
# ``decode_values`` as it was before it was vectorised: a Python loop over codes. It and the helpers it used are
# copied here unchanged and kept only for testing; the numpy decoder must give the same int64 values and raise
# the same errors (same class and message) on every input.
def _reference_lookup(table: tuple[HuffmanCode, ...], width: int, where: str) -> list[int]:
    lut = np.full(1 << width, -1, dtype=np.int32)
    for i, code in enumerate(table):
        lo = code.code << (width - code.prefix_bits)
        hi = (code.code + 1) << (width - code.prefix_bits)
        if (lut[lo:hi] != -1).any():
            raise CorruptRecordError(
                f"{where}: SCP-ECG Huffman table is not prefix-free (code {i + 1} is ambiguous)."
            )
        lut[lo:hi] = i
    return lut.tolist()


def _reference_windows(data: bytes) -> list[int]:
    n = len(data)
    padded = np.zeros(n + 5, dtype=np.uint64)
    padded[:n] = np.frombuffer(data, dtype=np.uint8)
    forty = sum(padded[k : k + n] << np.uint64(8 * (4 - k)) for k in range(5))  # bytes i..i+4, big endian
    win = np.zeros(8 * n + 64, dtype=np.uint64)
    for r in range(8):
        win[r : 8 * n : 8] = (forty >> np.uint64(8 - r)) & np.uint64(0xFFFFFFFF)
    return win.tolist()


def _reference_max_values(n_bytes: int, tables: list[tuple[HuffmanCode, ...]] | None) -> int:
    return n_bytes // 2 if tables is None else 8 * n_bytes // min(c.total_bits for t in tables for c in t)


def _reference_decode_values(
    data: bytes, n_values: int, tables: list[tuple[HuffmanCode, ...]] | None, where: str
) -> np.ndarray:
    if n_values > _reference_max_values(len(data), tables):
        raise CorruptRecordError(
            f"{where}: {len(data)} bytes cannot hold {n_values} values; the file is truncated or damaged."
        )
    if tables is None:
        return np.frombuffer(data, dtype="<i2", count=n_values).astype(np.int64)
    width = max(c.prefix_bits for table in tables for c in table)
    luts = [_reference_lookup(table, width, where) for table in tables]
    win, nbits, shift = _reference_windows(data), 8 * len(data), 32 - width
    out = np.empty(n_values, dtype=np.int64)
    codes, lut, pos, k = tables[0], luts[0], 0, 0
    while k < n_values:
        if pos >= nbits:
            break
        i = lut[win[pos] >> shift]
        if i < 0:
            raise CorruptRecordError(
                f"{where}: bit {pos} starts no code of the Huffman table; the data are damaged."
            )
        code = codes[i]
        if not code.is_value:
            if not 1 <= code.base_value <= len(tables):
                raise CorruptRecordError(
                    f"{where}: switch to Huffman table {code.base_value}, which does not exist."
                )
            codes, lut = tables[code.base_value - 1], luts[code.base_value - 1]
            pos += code.prefix_bits
            continue
        extra = code.total_bits - code.prefix_bits
        if extra:
            value = win[pos + code.prefix_bits] >> (32 - extra)
            out[k] = value - (1 << extra) if value >> (extra - 1) else value
        else:
            out[k] = code.base_value
        pos += code.total_bits
        k += 1
    if k < n_values or pos > nbits:
        raise CorruptRecordError(
            f"{where}: the encoded data end after {k} of {n_values} values; the file is truncated or damaged."
        )
    return out


# ------------------------------------------------------------------------------------------ real files
@pytest.fixture(scope="module")
def vendor(fixtures_dir) -> Path:
    return fixtures_dir / "vendor"


def test_default_table_matches_the_standard():
    reversed_codes = [int(format(c.code, f"0{c.prefix_bits}b")[::-1], 2) for c in DEFAULT_TABLE]
    assert reversed_codes == [0, 1, 5, 3, 11, 7, 23, 15, 47, 31, 95, 63, 191, 127, 383, 255, 767, 511, 1023]
    assert [c.base_value for c in DEFAULT_TABLE[:5]] == [0, 1, -1, 2, -2]
    assert [c.total_bits - c.prefix_bits for c in DEFAULT_TABLE[-2:]] == [8, 16]


def test_toolkit_example_equals_its_dicom_and_hl7_exports(vendor):
    scp = read_ecg(vendor / "toolkit_example.scp")
    assert detect_format(vendor / "toolkit_example.scp")[0] == "scp"
    assert (scp.fs, scp.n_leads, scp.n_samples, scp.age, scp.sex) == (500.0, 12, 5000, 49.0, "M")
    assert scp.meta["patient_id"] == "SBJ-123" and scp.derived_leads == ()
    for other in ("toolkit_example.dcm", "aecg_hl7_example.xml"):
        ref = read_ecg(vendor / other)
        assert ref.fs == scp.fs
        common = [lead for lead in scp.leads if lead in ref.leads]
        assert len(common) == 12
        n = min(scp.n_samples, ref.n_samples)
        a = np.stack([scp.lead(lead)[:n] for lead in common])
        b = np.stack([ref.lead(lead)[:n] for lead in common])
        np.testing.assert_allclose(a, b, atol=0.0025 + 1e-6)  # one step of 2.5 uV


def test_contec_demo_is_a_plausible_12_lead_ecg(vendor):
    ecg = read_ecg(vendor / "contec_demo.scp")
    assert (ecg.fs, ecg.n_leads, ecg.n_samples, ecg.age, ecg.sex) == (1000.0, 12, 10000, 47.0, "M")
    assert set(ecg.derived_leads) == {"III", "aVR", "aVL", "aVF"}
    peak = np.abs(ecg.signal - np.median(ecg.signal, axis=1, keepdims=True)).max(axis=1)
    assert np.all(peak > 0.1) and np.all(peak < 10)  # mV, not uV or counts
    assert np.isfinite(ecg.signal).all()


# ------------------------------------------------------------------------------------------ synthetic files
def test_custom_huffman_tables_with_switches_and_first_differences(tmp_path):
    rng = np.random.default_rng(1)
    counts = np.cumsum(rng.choice([-1, 0, 1, 7, 7, 100], size=(2, 400)), axis=1)
    counts[:, 0] = [-2000, 15]
    diffs = np.diff(counts, axis=1, prepend=0)
    path = write(
        tmp_path,
        {
            1: patient(30, 2, 2),  # 30 months, female
            2: section2(TABLES),
            3: leads([1, 2], 400),
            6: samples(5000, 4000, 1, 0, [huffman(d, TABLES) for d in diffs]),
        },
    )
    ecg = read_scp(path)
    assert ecg.fs == 250.0 and ecg.sex == "F" and ecg.age == pytest.approx(2.5)
    np.testing.assert_allclose(ecg.lead("I"), counts[0] * 0.005, atol=1e-6)
    np.testing.assert_allclose(ecg.lead("III"), (counts[1] - counts[0]) * 0.005, atol=1e-5)


_DEFAULT = [
    (c.prefix_bits, c.total_bits, int(c.is_value), c.base_value, format(c.code, f"0{c.prefix_bits}b"))
    for c in DEFAULT_TABLE
]
_DEFAULT = [[c for c in _DEFAULT if c[1] == c[0] or c[1] - c[0] == 16]]  # one escape: the 16-bit one


def _second(x: np.ndarray) -> np.ndarray:
    """Second differences as the standard defines them: the first two values are kept."""
    d = np.asarray(x, dtype=np.int64).copy()
    d[2:] = x[2:] - 2 * x[1:-1] + x[:-2]
    return d


def test_reference_beat_subtraction_is_undone(tmp_path):
    n, beat_n, fiducial = 1000, 100, 40
    t = np.arange(n)
    rhythm = np.round(200 * np.sin(t / 30)).astype(int)
    beat = np.round(800 * np.exp(-(((np.arange(beat_n) - fiducial) / 6.0) ** 2))).astype(int)
    original = np.tile(rhythm, (3, 1))
    zones = [(0, 201, 240, 300), (1, 501, 540, 600), (0, 801, 840, 900)]  # type 1 is not subtracted
    residual = original.copy()
    for beat_type, start, centre, end in zones:
        original[:, start - 1 : end] += beat[start - centre + fiducial - 1 : end - centre + fiducial]
        if beat_type == 0:
            continue
        residual[:, start - 1 : end] += beat[start - centre + fiducial - 1 : end - centre + fiducial]
    qrs = struct.pack("<HHH", 200, fiducial, len(zones)) + b"".join(struct.pack("<HIII", *z) for z in zones)
    path = write(
        tmp_path,
        {
            2: struct.pack("<H", 19999),  # the default table
            3: leads([3, 4, 5], n, flags=0x05),
            4: qrs + b"".join(struct.pack("<II", z[1], z[3]) for z in zones),
            5: samples(1000, 2000, 0, 0, [huffman(beat, _DEFAULT)] * 3),
            6: samples(1000, 2000, 2, 0, [huffman(_second(r), _DEFAULT) for r in residual]),
        },
    )
    ecg = read_scp(path)
    assert ecg.leads == ("V1", "V2", "V3") and ecg.fs == 500.0
    np.testing.assert_allclose(ecg.signal, original * 0.001, atol=1e-6)


def test_bimodal_compression_restores_a_ramp(tmp_path):
    n, factor = 600, 4
    ramp = np.arange(n) * 3 - 900
    protected = [(101, 160), (401, 460)]
    stored, pos = [], 1
    for begin, end in protected + [(n + 1, n)]:
        for block in range(pos, begin, factor):  # block means outside the protected zones
            stored.append(ramp[block - 1 : min(block + factor, begin) - 1].mean())
        stored.extend(ramp[begin - 1 : end])
        pos = end + 1
    qrs = struct.pack("<HHH", 100, 20, 2) + b"".join(
        struct.pack("<HIII", 1, b, b + 20, e) for b, e in protected
    )
    path = write(
        tmp_path,
        {
            3: leads([1], n),
            4: qrs + b"".join(struct.pack("<II", b, e) for b, e in protected),
            5: samples(1000, 1000, 0, 0, [int16(np.zeros(100))]),
            6: samples(1000, 4000, 0, 1, [int16(np.round(stored))]),
        },
    )
    ecg = read_scp(path)
    assert ecg.fs == 1000.0
    np.testing.assert_allclose(ecg.lead("I")[2:-2], ramp[2:-2] * 0.001, atol=1e-3)


def test_sequential_leads_and_missing_rhythm_are_refused(tmp_path):
    sequential = struct.pack("<BB", 2, 0) + struct.pack("<IIB", 1, 100, 1) + struct.pack("<IIB", 101, 200, 2)
    path = write(tmp_path, {3: sequential, 6: samples(1000, 2000, 0, 0, [int16(np.ones(100))] * 2)})
    with pytest.raises(UnsupportedFormatError, match="one group after another"):
        read_scp(path)
    with pytest.raises(UnsupportedFormatError, match="section 6"):
        read_scp(write(tmp_path, {3: leads([1], 10)}, "y.scp"))


def test_duplicate_and_unspecified_lead_codes(tmp_path):
    ramp = [int16(np.arange(50) * k) for k in (1, 2, 3)]
    with pytest.raises(LeadError, match="SCP-ECG section 3"):
        read_scp(write(tmp_path, {3: leads([1, 3, 1], 50), 6: samples(1000, 2000, 0, 0, ramp)}))
    ecg = read_scp(write(tmp_path, {3: leads([0, 0, 66], 50), 6: samples(1000, 2000, 0, 0, ramp)}, "u.scp"))
    assert ecg.leads == ("lead1", "lead2", "V8")


def test_flat_rhythm_is_refused(tmp_path):
    path = write(tmp_path, {3: leads([1, 2], 50), 6: samples(1000, 2000, 0, 0, [int16(np.zeros(50))] * 2)})
    with pytest.raises(CorruptRecordError, match="flat"):
        read_scp(path)


# ------------------------------------------------------------------------------------------ numpy decoder vs the loop
def _same_as_reference(data: bytes, n_values: int, tables: list | None) -> str:
    """Decode with the numpy decoder and the old loop: the same int64 values or the same error. What happened."""
    where = "x.scp: SCP-ECG section 6, lead V1"
    try:
        expected = _reference_decode_values(data, n_values, tables, where)
    except CorruptRecordError as err:
        with pytest.raises(CorruptRecordError) as got:
            decode_values(data, n_values, tables, where)
        assert str(got.value) == str(err)
        kinds = ("cannot hold", "starts no code", "which does not exist", "data end after", "prefix-free")
        return next(kind for kind in kinds if kind in str(err))
    got = decode_values(data, n_values, tables, where)
    assert got.dtype == np.int64 and got.shape == (n_values,)
    np.testing.assert_array_equal(got, expected)
    return "ok"


@pytest.fixture(params=["numpy", "loop"])
def decoder(request, monkeypatch) -> str:
    """Both ways of ``decode_values``: numpy (pointer doubling), and its loop for too many decoder states."""
    if request.param == "loop":
        monkeypatch.setattr(scp_huffman, "_MAX_STATES", 0)
    return request.param


def _recorded_calls(path: Path, monkeypatch) -> list[tuple]:
    """The arguments of every ``decode_values`` call made while reading ``path``."""
    calls = []

    def record(*args):
        calls.append(args)
        return decode_values(*args)

    with monkeypatch.context() as m:
        m.setattr("ecglens.io.scp.decode_values", record)
        read_scp(path)
    return calls


@pytest.mark.parametrize("name", FIXTURES)
def test_decoder_matches_the_reference_loop_on_the_real_files(vendor, monkeypatch, decoder, name):
    calls = _recorded_calls(vendor / name, monkeypatch)
    assert len(calls) == (12 if name == "toolkit_example.scp" else 8)
    rng = np.random.default_rng(len(name))
    seen = set()
    for data, n_values, tables, _ in calls:
        assert _same_as_reference(data, n_values, tables) == "ok"
        seen.add(_same_as_reference(data, n_values + 1, tables))
        for cut in (len(data) - 1, len(data) // 2, 3, 0):
            seen.add(_same_as_reference(data[:cut], n_values, tables))
            seen.add(_same_as_reference(data[:cut], min(n_values, 2 * cut), tables))
        for pos in rng.integers(0, len(data), 3).tolist():
            flipped = bytearray(data)
            flipped[pos] ^= int(rng.integers(1, 256))
            seen.add(_same_as_reference(bytes(flipped), n_values, tables))
    with monkeypatch.context() as m:
        m.setattr("ecglens.io.scp.decode_values", _reference_decode_values)
        expected = read_scp(vendor / name).signal
    np.testing.assert_array_equal(read_scp(vendor / name).signal, expected)
    if name == "toolkit_example.scp":  # Huffman coded (contec_demo.scp holds int16 samples)
        assert {"cannot hold", "data end after"} <= seen


def _encode_default(values: list[int], rng: np.random.Generator) -> bytes:
    """Encode with the default table: 0, k ones + 0 + sign (|v| <= 8), else an 8- or 16-bit escape; random tail."""
    bits = []
    for v in values:
        if -8 <= v <= 8 and rng.random() < 0.9:
            bits.append("0" if v == 0 else "1" * abs(v) + ("01" if v < 0 else "00"))
        elif -128 <= v <= 127 and rng.random() < 0.8:
            bits.append("1111111110" + format(v & 0xFF, "08b"))
        else:
            bits.append("1111111111" + format(v & 0xFFFF, "016b"))
    text = "".join(bits)
    text += "".join(rng.choice(["0", "1"], size=-len(text) % 8))
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def test_default_table_encoder_and_decoder_agree_on_known_values():
    rng = np.random.default_rng(5)
    values = [0, 1, -1, 8, -8, 9, -9, 127, -128, 128, -129, 32767, -32768, 0]
    data = _encode_default(values, rng)
    np.testing.assert_array_equal(decode_values(data, len(values), [DEFAULT_TABLE], "x"), values)


def test_decoder_matches_the_reference_loop_on_random_default_table_streams(decoder):
    rng = np.random.default_rng(11)
    extremes = [-32768, -32767, -129, -128, -127, -9, -8, 8, 9, 126, 127, 128, 32766, 32767]
    seen: dict[str, int] = {}
    for case in range(150):
        n = int(rng.integers(0, 300))
        kind = rng.random(n)
        values = np.where(
            kind < 0.6,
            rng.integers(-8, 9, n),
            np.where(kind < 0.8, rng.integers(-128, 128, n), rng.integers(-32768, 32768, n)),
        )
        values[rng.random(n) < 0.05] = rng.choice(extremes)
        values = values.tolist()
        data = _encode_default(values, rng)
        np.testing.assert_array_equal(decode_values(data, n, [DEFAULT_TABLE], "x"), values)
        assert _same_as_reference(data, n, [DEFAULT_TABLE]) == "ok"
        cut = data[: int(rng.integers(0, len(data) + 1))]
        damaged = bytearray(data + rng.bytes(int(rng.integers(0, 4))))
        if damaged:
            damaged[int(rng.integers(len(damaged)))] ^= 1 << int(rng.integers(8))
        for stream, count in ((cut, n), (bytes(damaged), n), (data, n + int(rng.integers(1, 4))), (cut, case % 7)):
            outcome = _same_as_reference(stream, count, [DEFAULT_TABLE])
            seen[outcome] = seen.get(outcome, 0) + 1
    assert {"ok", "data end after", "cannot hold"} <= set(seen), seen


def _random_tables(rng: np.random.Generator, n_tables: int) -> list:
    """Random prefix codes (section 2 form, like ``TABLES``): values with 0-32 trailing bits, switches (some to
    tables that do not exist, some longer than their prefix), prefixes up to 16 bits, some patterns without a code.
    """
    tables = []
    for _ in range(n_tables):
        leaves = ["0", "1"]
        for _ in range(int(rng.integers(0, 10))):
            leaf = leaves.pop(int(rng.integers(len(leaves))))
            leaves += [leaf + "0", leaf + "1"]
        if rng.random() < 0.1:  # one long prefix (a lookup of up to 2**16 entries)
            leaf = leaves.pop(int(rng.integers(len(leaves))))
            leaves += [leaf + "0" * (int(rng.integers(12, 17)) - len(leaf)), leaf + "1"]
        if len(leaves) > 2 and rng.random() < 0.3:  # some bit patterns start no code
            leaves.pop(int(rng.integers(len(leaves))))
        table = []
        for leaf in leaves:
            if rng.random() < 0.25:
                target = int(rng.integers(1, n_tables + 1)) if rng.random() < 0.9 else int(rng.choice([0, 9]))
                table.append((len(leaf), len(leaf) + int(rng.random() < 0.2), 0, target, leaf))
            else:
                extra = int(rng.choice([0, 0, 0, 0, 0, 1, 2, 5, 8, 16, 31, 32]))
                table.append((len(leaf), len(leaf) + extra, 1, int(rng.integers(-32768, 32768)), leaf))
        tables.append(table)
    return tables


def _random_stream(rng: np.random.Generator, tables: list) -> tuple[str, int]:
    """Bits of random codes walked through ``tables`` from table 1 (switches followed); the values they hold."""
    bits, current, n_values = [], 0, 0
    for _ in range(int(rng.integers(0, 200))):
        prefix, total, is_value, base, code = tables[current][int(rng.integers(len(tables[current])))]
        bits.append(code + "".join(rng.choice(["0", "1"], size=total - prefix)))
        if is_value:
            n_values += 1
        elif 1 <= base <= len(tables):
            current = base - 1
            bits[-1] = code  # a switch is its prefix alone
        else:
            break
    return "".join(bits), n_values


def test_decoder_matches_the_reference_loop_on_random_tables_with_switches(decoder):
    rng = np.random.default_rng(23)
    seen: dict[str, int] = {}
    for _ in range(100):
        raw = _random_tables(rng, int(rng.integers(1, 4)))
        tables = parse_tables(section2(raw), "x")
        text, n = _random_stream(rng, raw)
        text += "".join(rng.choice(["0", "1"], size=int(rng.integers(0, 12))))
        text += "0" * (-len(text) % 8)
        data = int(text, 2).to_bytes(len(text) // 8, "big") if text else b""
        cut = data[: int(rng.integers(0, len(data) + 1))]
        damaged = bytearray(data)
        if damaged:
            damaged[int(rng.integers(len(damaged)))] ^= int(rng.integers(1, 256))
        cases = [(data, n), (data, max(n - 1, 0)), (data, n + 1), (cut, n), (bytes(damaged), n), (rng.bytes(40), n)]
        for stream, count in cases:
            outcome = _same_as_reference(stream, count, tables)
            seen[outcome] = seen.get(outcome, 0) + 1
    assert {"ok", "data end after", "cannot hold", "starts no code", "which does not exist"} <= set(seen), seen


def test_decoder_errors_name_the_position_table_and_count(decoder):
    one = parse_tables(section2([[(1, 1, 1, 5, "0"), (2, 2, 0, 3, "10")]]), "x")  # "11" starts no code
    with pytest.raises(CorruptRecordError, match=r"^x: bit 2 starts no code of the Huffman table"):
        decode_values(b"\x30", 4, one, "x")  # 0 0 11...
    with pytest.raises(CorruptRecordError, match=r"^x: switch to Huffman table 3, which does not exist"):
        decode_values(b"\x20", 4, one, "x")  # 0 0 10...
    with pytest.raises(CorruptRecordError, match=r"^x: the encoded data end after 1 of 2 values"):
        decode_values(b"\xff\xff", 2, [DEFAULT_TABLE], "x")  # a 16-bit escape needs 26 bits
    with pytest.raises(CorruptRecordError, match=r"^x: the encoded data end after 1 of 1 values"):
        decode_values(b"\xff\xc0\x00", 1, [DEFAULT_TABLE], "x")  # the last code runs past the data
    with pytest.raises(CorruptRecordError, match=r"^x: 2 bytes cannot hold 17 values"):
        decode_values(b"\x00\x00", 17, [DEFAULT_TABLE], "x")
    ambiguous = parse_tables(section2([[(1, 1, 1, 0, "0"), (2, 2, 1, 1, "01")]]), "x")
    for n in (0, 1):
        assert _same_as_reference(b"\x00", n, ambiguous) == "prefix-free"
    np.testing.assert_array_equal(decode_values(b"\x00", 8, [DEFAULT_TABLE], "x"), np.zeros(8, np.int64))
    raw = [[(1, 1, 1, 0, "0"), (20, 20, 1, 9, "1" * 20), (20, 24, 1, 0, "1" * 19 + "0")]]  # 20-bit prefixes
    longest = parse_tables(section2(raw), "x")
    stream = int("0" + "1" * 20 + "1" * 19 + "0" + "1010" + "0" + "00", 2).to_bytes(6, "big")  # 0, 9, -6, 0
    np.testing.assert_array_equal(decode_values(stream, 4, longest, "x"), [0, 9, -6, 0])
    for n in (4, 5, 11):
        _same_as_reference(stream, n, longest)
    assert decode_values(b"", 0, [DEFAULT_TABLE], "x").shape == (0,)


def test_decoding_is_bounded_on_tables_that_only_switch(decoder):
    """Codes that never give a value (switches back and forth, or to the same table) end with the data."""
    raw = [[(1, 1, 0, 2, "0"), (1, 1, 0, 1, "1")], [(1, 3, 0, 1, "0"), (1, 1, 0, 2, "1")]]
    only_switches = parse_tables(section2(raw), "x")
    data = np.random.default_rng(3).bytes(2000)
    assert _same_as_reference(data, 5, only_switches) == "data end after"
    with pytest.raises(CorruptRecordError, match="end after 0 of 5 values"):
        decode_values(data, 5, only_switches, "x")


def test_many_reachable_tables_fall_back_to_the_loop(monkeypatch):
    """A chain of 300 tables (hostile) is more decoder states than numpy decodes at once: the loop, same result."""
    raw = [[(1, 1, 1, t, "0"), (1, 1, 0, t % 300 + 1, "1")] for t in range(1, 301)]  # table t switches to t + 1
    tables = parse_tables(section2(raw), "x")
    data = np.random.default_rng(4).bytes(1000)
    assert 300 * 8 * len(data) > scp_huffman._MAX_STATES
    monkeypatch.setattr(scp_huffman, "_states", None)  # the numpy path is not taken
    assert _same_as_reference(data, 3000, tables) == "ok"
    assert _same_as_reference(data, 7000, tables) == "data end after"


# ------------------------------------------------------------------------------------------ damaged real files
def _refix_crcs(data: bytearray) -> bytearray:
    """Recompute every section CRC named in section 0 and the record CRC, so only structure is wrong."""
    pointer_len = struct.unpack_from("<I", data, 10)[0]
    for pos in range(22, 6 + pointer_len, 10):
        _, length, index = struct.unpack_from("<HII", data, pos)
        if length and 7 <= index and index - 1 + length <= len(data):
            struct.pack_into("<H", data, index - 1, _crc(bytes(data[index + 1 : index - 1 + length])))
    struct.pack_into("<H", data, 6, _crc(bytes(data[8 : 6 + pointer_len])))
    struct.pack_into("<H", data, 0, _crc(bytes(data[2:])))
    return data


def _mutations(data: bytes, seed: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    out = [(f"truncated to {k}", data[:k]) for k in sorted(rng.integers(0, len(data), 6).tolist())]
    for pos in rng.integers(6, len(data), 5).tolist():
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        out.append((f"byte {pos} flipped", bytes(flipped)))
    pointer_len = struct.unpack_from("<I", data, 10)[0]
    entries = [p for p in range(22, 6 + pointer_len, 10) if struct.unpack_from("<I", data, p + 2)[0]]
    for p in entries:
        for what, offset, value in (("length", 2, 0x7FFFFFFF), ("index", 6, len(data) - 3), ("number", 0, 9)):
            bad = bytearray(data)
            struct.pack_into("<H" if offset == 0 else "<I", bad, p + offset, value)
            out.append((f"pointer {p} {what}", bytes(_refix_crcs(bad))))
    return out


@pytest.mark.parametrize("name", FIXTURES)
def test_damaged_copies_are_refused_with_an_scp_error(vendor, tmp_path, name):
    data = (vendor / name).read_bytes()
    for i, (what, bad) in enumerate(_mutations(data, seed=len(name))):
        path = tmp_path / f"bad{i}.scp"
        path.write_bytes(bad)
        with pytest.raises(EcglensError, match="SCP-ECG") as err:
            read_scp(path)
            pytest.fail(f"{name} with {what} was read")
        assert type(err.value) is not EcglensError, what


@pytest.mark.parametrize("name", FIXTURES)
def test_inconsistent_lead_data_behind_valid_crcs(vendor, tmp_path, name):
    """Section 6 lead lengths and section 3 sample counts changed, CRCs repaired: refused, never a hang."""
    data = (vendor / name).read_bytes()
    index6 = next(
        struct.unpack_from("<I", data, p + 6)[0]
        for p in range(22, 142, 10)
        if struct.unpack_from("<H", data, p)[0] == 6
    )
    index3 = next(
        struct.unpack_from("<I", data, p + 6)[0]
        for p in range(22, 142, 10)
        if struct.unpack_from("<H", data, p)[0] == 3
    )
    cases = []
    for value in (0, 1, 0xFFFF):  # first lead's byte length in section 6
        bad = bytearray(data)
        struct.pack_into("<H", bad, index6 - 1 + 16 + 6, value)
        cases.append(bad)
    for value in (10**6, 2**32 - 1):  # first lead's last sample number in section 3
        bad = bytearray(data)
        struct.pack_into("<I", bad, index3 - 1 + 16 + 2 + 4, value)
        cases.append(bad)
    bad = bytearray(data)
    bad[index3 - 1 + 16] = 200  # 200 leads
    cases.append(bad)
    for i, bad in enumerate(cases):
        path = tmp_path / f"bad{i}.scp"
        path.write_bytes(bytes(_refix_crcs(bad)))
        with pytest.raises(CorruptRecordError, match="SCP-ECG"):
            read_scp(path)


def test_non_scp_file_is_not_sniffed_as_scp(tmp_path):
    path = tmp_path / "notes.scp"
    path.write_bytes(b"hello, this is not an ECG" * 4)
    with pytest.raises(UnsupportedFormatError, match="not a recognised ECG file"):
        read_ecg(path)


@pytest.mark.parametrize("name", FIXTURES)
def test_byte_flips_behind_valid_crcs_never_crash(vendor, tmp_path, name):
    """Flipped bytes in section headers and bodies with all CRCs repaired: an SCP-ECG error or a finite ECG."""
    data = (vendor / name).read_bytes()
    rng = np.random.default_rng(7)
    for i, pos in enumerate(rng.integers(22, min(len(data), 4000), 30).tolist()):
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip{i}.scp"
        path.write_bytes(bytes(_refix_crcs(bad)))
        try:
            ecg = read_scp(path)
        except EcglensError as err:
            assert "SCP-ECG" in str(err)
            continue
        assert np.isfinite(ecg.signal).all() and np.ptp(ecg.signal, axis=1).any()
