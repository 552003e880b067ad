"""Variants of the vendor XML formats, and seeded damaged copies of the real vendor files.

How the expected values are made:

* Variants: files written here from the HL7 aECG and GE MUSE layouts (the writers of ``test_io_vendor.py``), then
  changed as real exports differ: comments, processing instructions and a DOCTYPE before the root; a vendor
  ``age`` element in its own namespace (as Mindray adds to ``subjectDemographicPerson``); ``effectiveTime`` as
  ``<center>``; median-beat series before the rhythm; MUSE at 250 and 240 Hz with a median waveform first. The
  expected mV are the integers the writers encoded, times their resolution.
* Damage: copies of the real files in ``../shared/data/fixtures/vendor`` truncated, with bytes flipped at seeded
  random places, with broken Base64 or XLI data, or with a lead count that disagrees with the leads. Each must
  either read as a finite, non-zero 12-lead ECG or be refused with an ``EcglensError`` naming the format, fast.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import numpy as np
import pytest
from test_vendor import aecg_xml, muse_xml, quantise, synthetic_mv

from ecglens.exceptions import CorruptRecordError, EcglensError, LeadError, UnsupportedFormatError
from ecglens.io import detect_format, read_ecg
from ecglens.io._vendor import xml_root
from ecglens.io.hl7aecg import read_hl7aecg
from ecglens.io.muse import read_muse
from ecglens.leads import CANONICAL_LEADS

SCALE_UV = 5.0
ORIGIN_UV = -20.0


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    return quantise(synthetic_mv(), SCALE_UV / 1000)


def _expected_mv(digits: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([(ORIGIN_UV + SCALE_UV * digits[n]) / 1000 for n in CANONICAL_LEADS])


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# ========================================================================================== sniffing
PROLOG = (
    "<!-- exported by a cart; comment before the root element -->\n"
    '<?xml-stylesheet type="text/xsl" href="aecg.xsl"?>\n'
    "<!-- a second comment: <AnnotatedECG> inside a comment is not the root -->\n"
)


def test_prolog_before_root_is_skipped(tmp_path, digits):
    text = aecg_xml(digits).decode("utf-8")
    declaration, body = text.split("\n", 1)
    path = _write(tmp_path / "c.xml", f"{declaration}\n{PROLOG}{body}")
    assert detect_format(path)[0] == "hl7aecg"
    np.testing.assert_allclose(read_ecg(path).signal, _expected_mv(digits), atol=1e-6)
    no_declaration = _write(tmp_path / "n.xml", PROLOG + body)  # comment as the very first bytes
    assert xml_root(no_declaration) == ("AnnotatedECG", "urn:hl7-org:v3")


def test_sniffing_reads_a_bounded_head(tmp_path, digits):
    text = aecg_xml(digits).decode("utf-8")
    declaration, body = text.split("\n", 1)
    long_comment = "<!--" + "x" * 20_000 + "-->\n"
    path = _write(tmp_path / "long.xml", f"{declaration}\n{long_comment}{body}")
    assert xml_root(path) is None  # the root lies beyond the 8 KB head: not guessed
    with pytest.raises(UnsupportedFormatError, match="not a recognised"):
        detect_format(path)
    assert read_ecg(path, format="hl7aecg").n_leads == 12  # the reader itself parses the whole file


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-16", "utf-8-sig"])
def test_sniffing_utf16_and_bom(tmp_path, codec):
    path = _write(tmp_path / "u.xml", '<?xml version="1.0"?>\n<restingecgdata xmlns="urn:x"/>'.encode(codec))
    assert xml_root(path) == ("restingecgdata", "urn:x")


# ========================================================================================== HL7 aECG
def test_vendor_age_extension_and_center_time(tmp_path, digits):
    text = aecg_xml(digits).decode("utf-8")
    text = text.replace(
        '<birthTime value="19540503"/>',
        '<mdr:age xmlns:mdr="urn:example:mindray-aecg" value="63" unit="a"/>',
    ).replace(
        '<effectiveTime><low value="20210502093000"/><high value="20210502093002"/></effectiveTime>', ""
    )
    ecg = read_hl7aecg(_write(tmp_path / "m.xml", text))
    assert (ecg.age, ecg.sex) == (63.0, "M")
    centred = aecg_xml(digits).decode("utf-8").replace("<low value=", "<center value=")
    assert read_hl7aecg(_write(tmp_path / "c.xml", centred)).age == 66.0  # born 1954-05-03, ECG 2021-05-02


def _median_series(digits: dict[str, np.ndarray], code: str) -> str:
    """A series of 100-sample beats (the writer's lead layout) coded ``code``."""
    beat = {k: v[:100] for k, v in digits.items()}
    body = aecg_xml(beat).decode("utf-8")
    series = body[body.index("<series>") : body.index("</series>") + len("</series>")]
    return series.replace('code="RHYTHM"', f'code="{code}"')


def test_rhythm_is_read_not_the_median_beats(tmp_path, digits):
    text = aecg_xml(digits).decode("utf-8")
    median = _median_series(digits, "REPRESENTATIVE_BEAT")
    # a median series first, as its own component, and a derivation before the rhythm sequenceSet
    text = text.replace(
        "<component>\n    <series>", f"<component>{median}</component>\n  <component>\n    <series>", 1
    )
    derivation = (
        "<derivation><derivedSeries>"
        + median[len("<series>") : -len("</series>")]
        + "</derivedSeries></derivation>"
    )
    text = text.replace('<effectiveTime><low value="20210502093000"/></effectiveTime>', derivation, 1)
    path = _write(tmp_path / "r.xml", text)
    ecg = read_hl7aecg(path)
    assert ecg.n_samples == 500 and ecg.meta["series_code"] == "RHYTHM"
    np.testing.assert_allclose(ecg.signal, _expected_mv(digits), atol=1e-6)
    assert read_hl7aecg(path, waveform="median").n_samples == 100


def test_one_lead_aecg_is_refused(tmp_path, digits, fixtures_dir):
    one = _write(tmp_path / "one.xml", aecg_xml({"II": digits["II"]}))
    with pytest.raises(LeadError, match="not a 12-lead ECG"):
        read_ecg(one)
    real = fixtures_dir / "vendor" / "aecg_minimum_one_lead.xml"
    if real.is_file():
        with pytest.raises(LeadError, match=r"HL7 aECG.*\['II'\]"):
            read_ecg(real)


# ========================================================================================== GE MUSE
@pytest.mark.parametrize("fs", [250.0, 240.0])
def test_muse_low_rates_and_median_first(tmp_path, fs):
    mv = synthetic_mv(n=int(2 * fs), fs=fs)
    counts = quantise({k: mv[k] for k in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")}, 4.88e-3)
    median = {k: v[:120] for k, v in counts.items()}
    path = _write(tmp_path / "m.xml", muse_xml(counts, fs=fs, median=median))
    ecg = read_ecg(path)
    assert ecg.fs == fs and ecg.n_samples == int(2 * fs) and ecg.meta["waveform"] == "rhythm"
    np.testing.assert_allclose(ecg.lead("V4"), counts["V4"] * 4.88e-3, atol=1e-6)
    assert read_muse(path, waveform="median").n_samples == 120


def test_muse_lead_count_must_match(tmp_path, digits):
    counts = {k: digits[k] for k in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")}
    text = muse_xml(counts).replace(b"<NumberofLeads>8</NumberofLeads>", b"<NumberofLeads>12</NumberofLeads>")
    with pytest.raises(CorruptRecordError, match="NumberofLeads"):
        read_muse(_write(tmp_path / "n.xml", text))


# ========================================================================================== damaged real files
#: real file -> (reader, a word every refusal must contain)
REAL_FILES: dict[str, tuple[str, str]] = {
    "muse_phi1.xml": ("muse", "MUSE"),
    "cardiosoft_dummy.xml": ("cardiosoft", "CardioSoft"),
    "philips_129DYPRG_103.xml": ("philips", "Philips"),
    "philips_ad4d3d80_104.xml": ("philips", "Philips"),
    "aecg_hl7_example.xml": ("hl7aecg", "HL7 aECG"),
    "philips_ad4d3d80_104_as_aecg.xml": ("hl7aecg", "HL7 aECG"),
}


def _outcome(path: Path, reader: str, word: str) -> str:
    """``"read"`` (a finite, non-zero 12-lead ECG) or ``"refused"`` (an EcglensError naming the format)."""
    start = time.perf_counter()
    try:
        ecg = read_ecg(path, format=reader)
    except EcglensError as err:
        assert word in str(err), f"refusal does not name the format: {err}"
        return "refused"
    finally:
        assert time.perf_counter() - start < 10, "reading a damaged file took too long"
    assert ecg.leads[:12] == CANONICAL_LEADS
    assert np.isfinite(ecg.signal).all() and ecg.signal.any()
    return "read"


def _real(fixtures_dir: Path, name: str) -> bytes:
    path = fixtures_dir / "vendor" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path.read_bytes()


@pytest.mark.parametrize("name", sorted(REAL_FILES))
@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.97])
def test_truncated_copies_refused(tmp_path, fixtures_dir, name, fraction):
    data = _real(fixtures_dir, name)
    path = _write(tmp_path / name, data[: int(len(data) * fraction)])
    assert _outcome(path, *REAL_FILES[name]) == "refused"


@pytest.mark.parametrize("name", sorted(REAL_FILES))
@pytest.mark.parametrize(
    ("seed", "n_bytes", "max_flip"), [(0, 8, 255), (1, 8, 255), (2, 1, 7), (3, 1, 7), (4, 1, 7)]
)
def test_byte_flipped_copies_read_or_refused(tmp_path, fixtures_dir, name, seed, n_bytes, max_flip):
    """Eight bytes scrambled (mostly breaks the XML), or one byte's low bits flipped (mostly a digit or letter
    changed: reaches the decoders)."""
    data = bytearray(_real(fixtures_dir, name))
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, len(data), size=n_bytes):
        data[pos] ^= int(rng.integers(1, max_flip + 1))
    _outcome(_write(tmp_path / name, bytes(data)), *REAL_FILES[name])


def _payload_span(text: str, tag: str) -> tuple[int, int]:
    """Start and end of the text of the first element ``tag`` of the rhythm waveform (the Base64 data)."""
    rhythm = text.find("<WaveformType>Rhythm")  # MUSE: after the median waveform; -1 (whole file) elsewhere
    match = re.compile(rf"<{tag}\b[^>]*>([^<]*)<").search(text, max(rhythm, 0))
    assert match is not None
    return match.start(1), match.end(1)


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("muse_phi1.xml", "WaveFormData"),
        ("philips_129DYPRG_103.xml", "parsedwaveforms"),
        ("philips_ad4d3d80_104.xml", "parsedwaveforms"),
    ],
)
def test_broken_base64_refused(tmp_path, fixtures_dir, name, tag):
    raw = _real(fixtures_dir, name)
    codec = "utf-16" if raw.startswith(b"\xff\xfe") else "latin-1"
    text = raw.decode(codec)
    start, end = _payload_span(text, tag)
    broken = text[: (start + end) // 2] + "*?" + text[(start + end) // 2 :]
    path = _write(tmp_path / name, broken.encode(codec))
    with pytest.raises(CorruptRecordError, match="Base64"):
        read_ecg(path)


@pytest.mark.parametrize("name", ["philips_129DYPRG_103.xml", "philips_ad4d3d80_104.xml"])
@pytest.mark.parametrize("damage", ["cut", "size", "scramble"])
def test_broken_xli_refused(tmp_path, fixtures_dir, name, damage):
    raw = _real(fixtures_dir, name)
    codec = "utf-16" if raw.startswith(b"\xff\xfe") else "utf-8"
    text = raw.decode(codec)
    start, end = _payload_span(text, "parsedwaveforms")
    payload = bytearray(base64.b64decode("".join(text[start:end].split())))
    if damage == "cut":  # the payload stops inside the fifth lead chunk
        payload = payload[: len(payload) // 3]
    elif damage == "size":  # the first chunk claims a negative size
        payload[0:4] = (-5).to_bytes(4, "little", signed=True)
    else:  # the first chunk's LZW codes overwritten with ones not yet defined
        payload[8:40] = b"\xff\xbf" * 16
    damaged = text[:start] + base64.b64encode(bytes(payload)).decode("ascii") + text[end:]
    path = _write(tmp_path / name, damaged.encode(codec))
    with pytest.raises(CorruptRecordError, match="XLI"):
        read_ecg(path)


@pytest.mark.parametrize(
    ("name", "pattern", "replacement"),
    [
        ("muse_phi1.xml", r"<NumberofLeads>\d+</NumberofLeads>", "<NumberofLeads>7</NumberofLeads>"),
        (
            "cardiosoft_dummy.xml",
            r"<NumberOfLeads>12</NumberOfLeads>(\s*<SampleRate[^>]*>500</SampleRate>\s*<ChannelSampleCountTotal>5000)",
            r"<NumberOfLeads>13</NumberOfLeads>\1",
        ),
        ("philips_ad4d3d80_104.xml", r'numberofleads="12"', 'numberofleads="15"'),
        (
            "aecg_hl7_example.xml",
            r"<component>\s*<sequence[^>]*>\s*<code code=\"MDC_ECG_LEAD_V6\".*?</component>",
            "",
        ),
    ],
)
def test_wrong_lead_counts_refused(tmp_path, fixtures_dir, name, pattern, replacement):
    raw = _real(fixtures_dir, name)
    codec = "utf-16" if raw.startswith(b"\xff\xfe") else "latin-1"
    text = raw.decode(codec)
    rhythm = max(text.find("<WaveformType>Rhythm"), 0)  # MUSE: change the rhythm waveform, not the median
    tail, n = re.subn(pattern, replacement, text[rhythm:], count=1, flags=re.DOTALL)
    assert n == 1, f"the pattern did not match {name}"
    text = text[:rhythm] + tail
    path = _write(tmp_path / name, text.encode(codec))
    with pytest.raises((CorruptRecordError, LeadError)) as err:
        read_ecg(path)
    assert REAL_FILES[name][1] in str(err.value)
