"""Tests of the Philips SierraECG XML reader (``ecglens.io.philips``).

How the expected values are made:

* Real files (``../shared/data/fixtures/vendor``): ``philips_ad4d3d80_104.xml`` (PhilipsECG 1.04, UTF-16, XLI)
  against the same ECG converted to HL7 aECG by Philips' translator (``philips_ad4d3d80_104_as_aecg.xml``), read
  by the independent HL7 reader. The aECG declares an "Adaptive" 60 Hz notch filter (its controlVariable) that
  the XML's ``notchfiltered="False"`` data did not have, so the two agree within one quantisation step (5 uV)
  on most samples, never by more than 4 steps, with a correlation above 0.995 on every lead (the XLI decode itself
  was checked offline to be identical, sample for sample, to the ``sierraecg`` package's decode of this file).
* Synthetic files: integer counts of a synthetic 12-lead ECG, encoded here with an XLI *encoder* written from the
  format description (second differences, high/low byte planes, 10-bit LZW) and the Philips limb-lead residuals,
  or stored uncompressed; the reader must return exactly ``count * resolution``.
* LZW expansion: the vectorised ``_lzw_expand`` against ``_reference_lzw_expand``, the old pure-Python loop kept
  here as the oracle (same bytes, or the same ``_XliError`` message), on the real chunks, on streams made by the
  encoder below from random and ECG-like bytes, and on damaged streams.
"""

from __future__ import annotations

import base64
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ecglens.exceptions import CorruptRecordError, LeadError, UnsupportedFormatError
from ecglens.io import detect_format, philips, read_ecg
from ecglens.io._vendor import child, decode_base64, parse_xml_safely
from ecglens.io.philips import _lzw_expand, _xli_codes, _XliError, read_philips, xli_decode
from ecglens.leads import CANONICAL_LEADS

FS = 250
N = 500  # 2 s
RES_UV = 5.0


# ------------------------------------------------------------------------------------------ synthetic counts
def synthetic_counts(n: int = N, seed: int = 0) -> np.ndarray:
    """int64 [12, n]: independent I, II, V1-V6 counts; limb leads by Einthoven / Goldberger (rounded down)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    beats = sum(np.exp(-(((t - c) / 0.012) ** 2)) for c in np.arange(0.3, t[-1], 0.8))
    free = np.stack([(150 + 20 * i) * beats + 30 * np.sin(2 * np.pi * (1 + i) * t) for i in range(8)])
    free = np.round(free + 3 * rng.standard_normal(free.shape)).astype(np.int64)
    one, two = free[0], free[1]
    limb = [two - one, -((one + two) // 2), one - two // 2, two - one // 2]
    return np.vstack([one, two, *limb, free[2:]])


# ------------------------------------------------------------------------------------------ LZW oracle
def _reference_lzw_expand(codes: np.ndarray, max_bytes: int) -> bytes:
    """The OLD pure-Python ``ecglens.io.philips._lzw_expand`` loop, kept verbatim as the test oracle.

    The module's vectorised ``_lzw_expand`` must return the same bytes and raise ``_XliError`` where this does.
    """
    table = [bytes([i]) for i in range(256)]
    out = bytearray()
    previous = b""
    for code in codes.tolist():
        if code > 1022:
            break
        if code < len(table):
            entry = table[code]
        elif code == len(table) and previous:
            entry = previous + previous[:1]
        else:
            raise _XliError(f"LZW code {code} is not yet defined (table has {len(table)} entries)")
        if previous and len(table) <= 1022:
            table.append(previous + entry[:1])
        out += entry
        previous = entry
        if len(out) > max_bytes:
            raise _XliError(f"a lead chunk expands to more than the {max_bytes} bytes its samples need")
    return bytes(out)


# ------------------------------------------------------------------------------------------ XLI encoder
def lzw_codes(data: bytes) -> list[int]:
    """The 10-bit LZW codes of ``data`` (table 256..1022, then fixed), without the 1023 end code."""
    table = {bytes([i]): i for i in range(256)}
    codes, word = [], b""
    for value in data:
        candidate = word + bytes([value])
        if candidate in table:
            word = candidate
            continue
        codes.append(table[word])
        if len(table) <= 1022:
            table[candidate] = len(table)
        word = bytes([value])
    if word:
        codes.append(table[word])
    return codes


def _lzw_compress(data: bytes) -> bytes:
    """10-bit LZW, MSB-first bit packing, table 256..1022 (the decoder's rules)."""
    bits = "".join(f"{c:010b}" for c in lzw_codes(data))
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def byte_planes(x: np.ndarray) -> tuple[bytes, int]:
    """What XLI LZW-compresses for one lead (high bytes, then low bytes) and the third-sample residual."""
    x = x.astype(np.int64)
    residual = 2 * x[1:-1] - x[:-2] - x[2:]  # r[i] for i = 2..n-1
    stored = np.concatenate([x[:2], residual[1:] + 64, [64]])  # v[i] = r[i+1] + 64 for i >= 2
    planes = bytes(((stored >> 8) & 0xFF).astype(np.uint8)) + bytes((stored & 0xFF).astype(np.uint8))
    return planes, int(residual[0])


def xli_encode_lead(x: np.ndarray) -> bytes:
    """One XLI chunk: header (size, 2 unused bytes, third-sample residual) + LZW of the byte planes."""
    planes, first = byte_planes(x)
    body = _lzw_compress(planes)
    return len(body).to_bytes(4, "little") + b"\x01\x00" + first.to_bytes(2, "little", signed=True) + body


def limb_residuals(counts: np.ndarray) -> np.ndarray:
    """What a Philips cart stores for III, aVR, aVL, aVF in an XLI file (the inverse of the reader's restore)."""
    out = counts.copy()
    one, two, three = counts[0], counts[1], counts[2]
    out[2] = two - one - three
    out[3] = -counts[3] - (one + two) // 2
    out[4] = (one - three) // 2 - counts[4]
    out[5] = (two + three) // 2 - counts[5]
    return out


# ------------------------------------------------------------------------------------------ XML writer
def philips_xml(
    payload: bytes,
    version: str = "1.04",
    compression: str | None = "XLI",
    resolution: str = "5",
    labels: str | None = " ".join(CANONICAL_LEADS),
    number_of_leads: str = "12",
    encoding: str = "utf-8",
    age: str = "<age><years>61</years></age>",
) -> bytes:
    """A PhilipsECG 1.04-style (or SierraECG 1.03-style, ``labels=None``) document around ``payload``."""
    attrs = f'dataencoding="Base64" durationperchannel="{N * 1000 // FS}"'
    if compression:
        attrs += (
            f' compression="{compression}"'
            if labels
            else f' compressflag="True" compressmethod="{compression}"'
        )
    if labels is not None:
        attrs += f' numberofleads="{number_of_leads}" leadlabels="{labels}" samplespersecond="{FS}"'
        attrs += f' resolution="{resolution}" signaloffset="0" signalsigned="True" bitspersample="16"'
    text = f"""<?xml version="1.0" encoding="{encoding}"?>
<!-- written by tests/test_io_philips.py -->
<restingecgdata xmlns="http://www3.medical.philips.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <documentinfo><documenttype>PhilipsECG</documenttype><documentversion>{version}</documentversion></documentinfo>
  <dataacquisition date="2020-06-01" time="10:00:00">
    <machine machineid="1">PageWriter TC70</machine>
    <signalcharacteristics>
      <samplingrate>{FS}</samplingrate><resolution>{resolution.split()[0]}</resolution>
      <acquisitiontype>STD-12</acquisitiontype><bitspersample>16</bitspersample>
      <numberchannelsallocated>12</numberchannelsallocated><numberchannelsvalid>12</numberchannelsvalid>
    </signalcharacteristics>
  </dataacquisition>
  <patient><generalpatientdata>
    <patientid>P-1</patientid>{age}<sex>Female</sex>
  </generalpatientdata></patient>
  <interpretations><interpretation><statement><leftstatement>Sinus rhythm</leftstatement></statement>
  </interpretation></interpretations>
  <waveforms><parsedwaveforms {attrs}>{base64.encodebytes(payload).decode("ascii")}</parsedwaveforms></waveforms>
</restingecgdata>
"""
    return text.encode(encoding)


def xli_payload(counts: np.ndarray) -> bytes:
    return b"".join(xli_encode_lead(row) for row in limb_residuals(counts))


@pytest.fixture(scope="module")
def counts() -> np.ndarray:
    return synthetic_counts()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ========================================================================================== synthetic
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_xli_round_trip_exact(tmp_path, counts, encoding):
    path = _write(tmp_path / "ecg.xml", philips_xml(xli_payload(counts), encoding=encoding))
    assert detect_format(path)[0] == "philips"
    ecg = read_ecg(path)
    assert ecg.leads == CANONICAL_LEADS and ecg.fs == FS and ecg.derived_leads == ()
    np.testing.assert_allclose(ecg.signal, counts * RES_UV / 1000, atol=1e-6)
    assert (ecg.age, ecg.sex, ecg.meta["patient_id"]) == (61.0, "F", "P-1")
    assert ecg.meta["compression"] == "XLI" and ecg.meta["diagnosis"] == ["Sinus rhythm"]


def test_xli_decoder_alone_and_extra_chunks_ignored(counts):
    payload = b"".join(xli_encode_lead(row) for row in counts) + xli_encode_lead(counts[0])  # a 13th chunk
    np.testing.assert_array_equal(xli_decode(payload, 12, N), counts)


def test_uncompressed_per_lead_scale_and_zero_limb_leads_derived(tmp_path, counts):
    stored = counts.copy()
    stored[2:6] = 0  # III, aVR, aVL, aVF not recorded
    scale = " ".join(["5"] * 6 + ["2.5"] * 6)
    data = philips_xml(stored.astype("<i2").tobytes(), compression=None, resolution=scale)
    ecg = read_philips(_write(tmp_path / "u.xml", data))
    assert ecg.derived_leads == ("III", "aVR", "aVL", "aVF")
    np.testing.assert_allclose(ecg.lead("V1"), counts[6] * 2.5e-3, atol=1e-6)
    np.testing.assert_allclose(ecg.lead("III"), (counts[1] - counts[0]) * 5e-3, atol=1e-5)


def test_sierra_103_layout_and_age_units(tmp_path, counts):
    path = _write(
        tmp_path / "s.xml",
        philips_xml(xli_payload(counts), version="1.03", labels=None, age="<age><months>18</months></age>"),
    )
    ecg = read_philips(path)
    assert ecg.leads == CANONICAL_LEADS and ecg.age == 1.5
    np.testing.assert_allclose(ecg.signal, counts * 5e-3, atol=1e-6)


def test_date_of_birth_gives_age(tmp_path, counts):
    age = '<age defaultage="50"><dateofbirth>1960-06-02</dateofbirth></age>'
    ecg = read_philips(_write(tmp_path / "d.xml", philips_xml(xli_payload(counts), age=age)))
    assert ecg.age == 59.0  # the day before the 60th birthday; defaultage is not the patient's age


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"number_of_leads": "11"}, CorruptRecordError, "numberofleads"),
        ({"compression": "ZIP"}, UnsupportedFormatError, "compression"),
        ({"resolution": "0"}, CorruptRecordError, "resolution"),
        ({"resolution": "5 5 5"}, CorruptRecordError, "one per lead"),
        ({"labels": "I X0 V1 V2 V3 V4 V5 V6 X1 X2 X3 X4"}, LeadError, "12-lead"),
    ],
)
def test_inconsistent_headers_refused(tmp_path, counts, change, error, match):
    path = _write(tmp_path / "bad.xml", philips_xml(xli_payload(counts), **change))
    with pytest.raises(error, match=match) as err:
        read_philips(path)
    assert "Philips" in str(err.value)


def test_damaged_xli_refused(tmp_path, counts):
    payload = xli_payload(counts)
    with pytest.raises(CorruptRecordError, match="XLI"):
        read_philips(_write(tmp_path / "t.xml", philips_xml(payload[: len(payload) // 2])))
    huge = bytearray(payload)
    huge[0:4] = (10**6).to_bytes(4, "little")  # first chunk claims more bytes than the payload has
    with pytest.raises(CorruptRecordError, match="claims"):
        read_philips(_write(tmp_path / "h.xml", philips_xml(bytes(huge))))
    with pytest.raises(CorruptRecordError, match="truncated"):
        read_philips(
            _write(tmp_path / "u.xml", philips_xml(counts.astype("<i2").tobytes()[:-10], compression=None))
        )


# ========================================================================================== real files
@pytest.fixture(scope="module")
def vendor(fixtures_dir) -> Path:
    path = fixtures_dir / "vendor"
    if not (path / "philips_ad4d3d80_104.xml").is_file():
        pytest.skip(f"Philips fixtures not found in {path}")
    return path


def test_real_103_and_104(vendor):
    old = read_ecg(vendor / "philips_129DYPRG_103.xml")
    new = read_ecg(vendor / "philips_ad4d3d80_104.xml")
    # 11 s per lead in the file; the cart's calibration pulse (zeros, 0.2 s at 1 mV on every lead, zeros) is cut
    for ecg, age, sex, version, n in ((old, 50.0, "M", "1.03", 5264), (new, 32.0, "F", "1.04", 5300)):
        assert ecg.leads == CANONICAL_LEADS and ecg.fs == 500 and ecg.n_samples == n
        assert ecg.meta["calibration_removed_s"] == [0.0, (5500 - n) / 500]
        assert not (ecg.signal == 1.0).all(axis=0).any()  # no sample left with every lead at 1 mV
        assert (ecg.age, ecg.sex, ecg.meta["document_version"]) == (age, sex, version)
        peak = np.abs(ecg.signal).max(axis=1)
        assert (peak > 0.05).all() and (peak < 20).all()  # plausible mV on every lead
    # restored limb leads follow Einthoven within the rounding of the residual code
    np.testing.assert_allclose(new.lead("III"), new.lead("II") - new.lead("I"), atol=0.0051)


def test_calibration_pulse_kept_in_the_decoded_waveform(vendor):
    """Below the reader's last step the 11 s are there, pulse included: what was cut is exactly that."""
    from ecglens.io._vendor import strip_calibration

    ecg = read_ecg(vendor / "philips_ad4d3d80_104.xml")
    full = ecg.replace(signal=np.concatenate([ecg.signal, np.zeros((12, 200), np.float32)], axis=1), meta={})
    full.signal[:, 5350:5450] = 1.0
    again = strip_calibration(full, vendor / "x.xml", "test")
    assert np.array_equal(again.signal, ecg.signal) and again.meta["calibration_removed_s"] == [0.0, 0.4]
    assert strip_calibration(ecg, vendor / "x.xml", "test") is ecg  # nothing (left) to cut


def test_real_104_matches_its_hl7_conversion(vendor):
    philips = read_ecg(vendor / "philips_ad4d3d80_104.xml")
    aecg = read_ecg(vendor / "philips_ad4d3d80_104_as_aecg.xml")
    assert detect_format(vendor / "philips_ad4d3d80_104_as_aecg.xml")[0] == "hl7aecg"
    assert (philips.leads, philips.fs, philips.n_samples) == (aecg.leads, aecg.fs, aecg.n_samples)
    assert (philips.age, philips.sex) == (aecg.age, aecg.sex)
    steps = np.abs(philips.signal - aecg.signal) / (RES_UV / 1000)
    assert (steps <= 1 + 1e-3).mean(
        axis=1
    ).min() > 0.85  # within one 5 uV step on > 85 % of samples, every lead (V5: 89.8 %)
    assert steps.max() <= 4 + 1e-3
    # (0.996 on the quietest lead once the calibration pulse, common to both, is cut)
    assert min(np.corrcoef(p, a)[0, 1] for p, a in zip(philips.signal, aecg.signal, strict=True)) > 0.995


# ========================================================================================== LZW: new vs old loop
# ``_lzw_expand`` is vectorised (pointer doubling, with a loop for very long entries); ``_reference_lzw_expand``
# above is the old loop it replaced. Both must give the same bytes, or the same _XliError message, on every input.
REAL_PHILIPS = ("philips_129DYPRG_103.xml", "philips_ad4d3d80_104.xml")
REAL_SAMPLES = 5500  # durationperchannel 11000 ms at 500 Hz in both files


def _outcome(expand, codes: np.ndarray, max_bytes: int) -> bytes | tuple[str, str]:
    """The expanded bytes, or ("error", message) for an _XliError."""
    try:
        return expand(codes, max_bytes)
    except _XliError as err:
        return ("error", str(err))


def _same_as_old(codes: np.ndarray, max_bytes: int) -> bytes | tuple[str, str]:
    old = _outcome(_reference_lzw_expand, codes, max_bytes)
    assert _outcome(_lzw_expand, codes, max_bytes) == old, (codes[:12], codes.size, max_bytes)
    return old


def _no_loop(codes: np.ndarray) -> bytes:
    raise AssertionError("the loop fallback ran where the vectorised expansion was expected")


def byte_strings(seed: int) -> list[bytes]:
    """Random and ECG-like byte strings (long runs give deep table entries; most fill the table to 1022)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4000))
    alphabet = rng.integers(0, int(rng.integers(2, 9)), n)
    runs = np.repeat(rng.integers(0, 4, n), rng.geometric(1 / int(rng.integers(2, 300)), n))[:n]
    lead = synthetic_counts(n=int(rng.integers(3, 2500)), seed=seed)[int(rng.integers(0, 12))]
    return [
        rng.integers(0, 256, n).astype(np.uint8).tobytes(),
        alphabet.astype(np.uint8).tobytes(),
        runs.astype(np.uint8).tobytes(),
        byte_planes(lead)[0],  # what a Philips cart compresses: high bytes (mostly 0) then low bytes
        bytes([seed % 256]) * n,  # one byte repeated: each code is the entry being added (KwKwK)
    ]


@pytest.mark.parametrize("path", ["as chosen", "vectorised", "loop"])
def test_lzw_expand_matches_old_loop_on_encoded_streams(monkeypatch, path):
    if path != "as chosen":
        monkeypatch.setattr(philips, "_LZW_LOOP_FACTOR", 0 if path == "loop" else 10**18)
    rng = np.random.default_rng(7)
    seen = {"KwKwK": 0, "table full": 0, "deep entry": 0}
    for seed in range(12):
        for data in byte_strings(seed):
            codes = np.array(lzw_codes(data), dtype=np.uint32)
            seen["KwKwK"] += bool((codes[1:] == 256 + np.arange(codes.size - 1)).any())
            seen["table full"] += codes.size > 800
            seen["deep entry"] += len(data) / max(codes.size, 1) > 40
            ended = np.concatenate([codes, [1023], rng.integers(0, 1024, 6)]).astype(np.uint32)  # tail ignored
            for stream in (codes, np.append(codes, 1023).astype(np.uint32), ended, codes.astype(np.int64)):
                assert _same_as_old(stream, 2 * len(data) + 2) == data
            for max_bytes in (len(data), len(data) - 1, int(rng.integers(-1, len(data) + 1))):
                _same_as_old(ended, max_bytes)
    assert all(count >= 3 for count in seen.values()), seen


def test_lzw_expand_same_error_on_damaged_streams():
    rng = np.random.default_rng(11)
    kinds = {"ok": 0, "not yet defined": 0, "more than": 0}
    for trial in range(400):
        data = byte_strings(trial % 40)[trial % 5]
        codes = np.array(lzw_codes(data) + [1023], dtype=np.uint32)
        damaged = codes.copy()
        where = rng.integers(0, codes.size, int(rng.integers(1, 4)))
        if trial % 2:
            damaged[where] = rng.integers(0, 1024, where.size)  # any code, 1023 (an early end) included
        else:
            damaged[where] = np.minimum(256 + where + rng.integers(0, 4, where.size), 1022)  # just undefined
        out = _same_as_old(damaged, int(rng.integers(0, 2 * len(data) + 3)))
        kinds[next((k for k in kinds if k in out[1]), "?") if isinstance(out, tuple) else "ok"] += 1
    assert min(kinds.values()) >= 30 and sum(kinds.values()) == 400, kinds


@pytest.mark.parametrize(
    ("codes", "max_bytes", "expected"),
    [
        ([], 10, b""),
        ([1023], 10, b""),
        ([1023, 999, 5], 10, b""),  # nothing after the end code is read
        ([65, 66, 256, 258, 1023, 1000], 10, b"ABABABA"),  # 258 is being added at its step (KwKwK)
        ([65, 66, 256, 258], 7, b"ABABABA"),  # exactly max_bytes
        ([65, 66, 256, 258], 6, "more than the 6 bytes"),
        ([256], 10, "LZW code 256 is not yet defined (table has 256 entries)"),
        ([65, 258], 10, "LZW code 258 is not yet defined (table has 256 entries)"),
        ([65, 66, 67, 260, 65], 10, "LZW code 260 is not yet defined (table has 258 entries)"),
        ([65, 66, 67, 260], 2, "more than the 2 bytes"),  # the overflow comes at an earlier code
        ([65, 66, 256, 257, 300], 4, "more than the 4 bytes"),
        ([65, 66, 256, 257, 300], 100, "LZW code 300 is not yet defined (table has 259 entries)"),
        ([65], 0, "more than the 0 bytes"),
        ([65], -3, "more than the -3 bytes"),
        ([300], -3, "LZW code 300 is not yet defined"),
    ],
)
def test_lzw_expand_edge_cases(codes, max_bytes, expected):
    out = _same_as_old(np.array(codes, dtype=np.uint32), max_bytes)
    assert out == expected if isinstance(expected, bytes) else expected in out[1]


def test_lzw_expand_refuses_negative_codes():
    # the old loop indexed its table from the end for a negative code (Python's negative indexing); codes from
    # _xli_codes are 0..1023, and the new expansion refuses anything else as a damaged chunk
    with pytest.raises(_XliError, match="LZW code -2 is not a 10-bit code"):
        _lzw_expand(np.array([65, 66, -2]), 10)


def test_lzw_expand_deep_chains_identical_and_bounded(monkeypatch):
    # a hostile chunk: each code is the entry being added (lengths 1, 2, ..., 768), then the deepest one again
    chain = np.array([7, *range(256, 1023)] + [1022] * 2000, dtype=np.uint32)
    expected = _reference_lzw_expand(chain, 2_000_000)
    assert len(expected) == 768 * 769 // 2 + 2000 * 768
    tracemalloc.start()
    assert _lzw_expand(chain, 2_000_000) == expected  # long entries: the loop, in memory like the old one
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * len(expected), peak
    assert _same_as_old(chain, 300_000)[0] == "error"  # refused from the lengths, before any byte is made
    monkeypatch.setattr(philips, "_LZW_LOOP_FACTOR", 10**18)  # the vectorised path on the deepest entries too
    assert _lzw_expand(chain[:900], 10**6) == _reference_lzw_expand(chain[:900], 10**6)


def _real_payload(path: Path) -> bytes:
    root = parse_xml_safely(path, "Philips")
    return decode_base64(child(root, "waveforms", "parsedwaveforms").text, path, "Philips", "waveform")


def _real_chunks(payload: bytes) -> list[np.ndarray]:
    """The LZW codes of every lead chunk (including any beyond the 12 leads)."""
    chunks, offset = [], 0
    while offset + 8 <= len(payload):
        size = int.from_bytes(payload[offset : offset + 4], "little", signed=True)
        chunks.append(_xli_codes(payload[offset + 8 : offset + 8 + size]))
        offset += 8 + size
    return chunks


@pytest.mark.parametrize("name", REAL_PHILIPS)
def test_lzw_expand_matches_old_loop_on_real_chunks(vendor, monkeypatch, name):
    chunks = _real_chunks(_real_payload(vendor / name))
    assert len(chunks) == 16  # 12 leads, then 4 all-zero chunks (not decoded by the reader; long entries: loop)
    for lead, codes in enumerate(chunks):
        with monkeypatch.context() as patch:
            if lead < 12:  # the ECG chunks take the vectorised path
                patch.setattr(philips, "_lzw_expand_loop", _no_loop)
            expected = _same_as_old(codes, 2 * REAL_SAMPLES + 2)
            assert isinstance(expected, bytes) and len(expected) == 2 * REAL_SAMPLES
            assert _same_as_old(codes, len(expected) - 1)[0] == "error"


@pytest.mark.parametrize("name", REAL_PHILIPS)
def test_xli_decode_matches_old_loop_on_real_files(vendor, monkeypatch, name):
    payload = _real_payload(vendor / name)
    new = xli_decode(payload, 12, REAL_SAMPLES)
    monkeypatch.setattr(philips, "_lzw_expand", _reference_lzw_expand)
    old = xli_decode(payload, 12, REAL_SAMPLES)
    assert new.dtype == old.dtype == np.int64 and new.shape == (12, REAL_SAMPLES)
    np.testing.assert_array_equal(new, old)
