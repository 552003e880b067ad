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
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from ecglens.exceptions import CorruptRecordError, LeadError, UnsupportedFormatError
from ecglens.io import detect_format, read_ecg
from ecglens.io.philips import read_philips, xli_decode
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


# ------------------------------------------------------------------------------------------ XLI encoder
def _lzw_compress(data: bytes) -> bytes:
    """10-bit LZW, MSB-first bit packing, table 256..1022 (the decoder's rules)."""
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
    codes.append(table[word])
    bits = "".join(f"{c:010b}" for c in codes)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def xli_encode_lead(x: np.ndarray) -> bytes:
    """One XLI chunk: header (size, 2 unused bytes, third-sample residual) + LZW of the byte planes."""
    x = x.astype(np.int64)
    residual = 2 * x[1:-1] - x[:-2] - x[2:]  # r[i] for i = 2..n-1
    stored = np.concatenate([x[:2], residual[1:] + 64, [64]])  # v[i] = r[i+1] + 64 for i >= 2
    planes = bytes(((stored >> 8) & 0xFF).astype(np.uint8)) + bytes((stored & 0xFF).astype(np.uint8))
    body = _lzw_compress(planes)
    header = (
        len(body).to_bytes(4, "little") + b"\x01\x00" + int(residual[0]).to_bytes(2, "little", signed=True)
    )
    return header + body


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
