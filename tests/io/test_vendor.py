"""Tests of the vendor readers (DICOM waveform, GE MUSE XML, HL7 aECG) and the raw-array readers.

How the expected values are made:

* DICOM: the real ``waveform_ecg.dcm`` that pydicom ships as test data (12-lead ECG Waveform Storage,
  Mortara el250, 1000 Hz). The oracle is pydicom's own, independent conversion ``ds.waveform_array(i)`` (in uV)
  and the Einthoven / Goldberger identities, which the recorded limb leads of a real ECG must satisfy.
* MUSE and aECG: written here from a synthetic 12-lead ECG (sums of sines and Gaussian "beats" for I, II and
  V1-V6; III, aVR, aVL, aVF by Einthoven / Goldberger). We quantise to integers ourselves (int16 counts at
  4.88 uV/bit for MUSE; aECG digits with a known origin and scale), so the expected mV of every sample is
  ``count * resolution`` computed here independently of the readers.
* Arrays: random arrays saved with NumPy / written as text; expected values are the arrays themselves.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecglens.exceptions import (
    CorruptRecordError,
    LeadError,
    SamplingRateError,
    UnitError,
    UnsupportedFormatError,
)
from ecglens.io import detect_format, list_readers, read_ecg
from ecglens.io.array import ecg_from_array
from ecglens.io.dicom import read_dicom
from ecglens.io.hl7aecg import read_hl7aecg
from ecglens.io.muse import read_muse
from ecglens.leads import CANONICAL_LEADS

EIGHT = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
FS = 250.0
N = 500  # 2 s at 250 Hz: small files (a few KB per lead)


# ------------------------------------------------------------------------------------------ synthetic ECG
def synthetic_mv(n: int = N, fs: float = FS, seed: int = 0) -> dict[str, np.ndarray]:
    """A 12-lead ECG in mV: independent I, II, V1-V6; limb leads by Einthoven / Goldberger."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    leads: dict[str, np.ndarray] = {}
    for i, name in enumerate(EIGHT):
        beats = sum(np.exp(-(((t - c) / 0.012) ** 2)) for c in np.arange(0.3, t[-1], 0.8))
        leads[name] = (
            (0.8 + 0.1 * i) * beats + 0.1 * np.sin(2 * np.pi * (1 + i) * t) + 0.01 * rng.standard_normal(n)
        )
    one, two = leads["I"], leads["II"]
    leads.update(III=two - one, aVR=-(one + two) / 2, aVL=one - two / 2, aVF=two - one / 2)
    return leads


def quantise(mv: dict[str, np.ndarray], resolution_mv: float) -> dict[str, np.ndarray]:
    """Integer counts of each lead at ``resolution_mv`` per count."""
    return {k: np.round(v / resolution_mv).astype(np.int64) for k, v in mv.items()}


# ------------------------------------------------------------------------------------------ MUSE writer
def _muse_lead(name: str, counts: np.ndarray, per_bit: str, units: str) -> str:
    b64 = base64.encodebytes(counts.astype("<i2").tobytes()).decode("ascii")  # line breaks, as GE writes
    return f"""      <LeadData>
         <LeadByteCountTotal>{2 * counts.size}</LeadByteCountTotal>
         <LeadTimeOffset>0</LeadTimeOffset>
         <LeadSampleCountTotal>{counts.size}</LeadSampleCountTotal>
         <LeadAmplitudeUnitsPerBit>{per_bit}</LeadAmplitudeUnitsPerBit>
         <LeadAmplitudeUnits>{units}</LeadAmplitudeUnits>
         <LeadHighLimit>32767</LeadHighLimit>
         <LeadLowLimit>-32768</LeadLowLimit>
         <LeadID>{name}</LeadID>
         <LeadOffsetFirstSample>0</LeadOffsetFirstSample>
         <FirstSampleBaseline>0</FirstSampleBaseline>
         <LeadSampleSize>2</LeadSampleSize>
         <LeadOff>FALSE</LeadOff>
         <BaselineSway>FALSE</BaselineSway>
         <WaveFormData>{b64}</WaveFormData>
      </LeadData>
"""


def _muse_waveform(kind: str, counts: dict[str, np.ndarray], fs: float, per_bit: str, units: str) -> str:
    leads = "".join(_muse_lead(k, v, per_bit, units) for k, v in counts.items())
    return f"""   <Waveform>
      <WaveformType>{kind}</WaveformType>
      <WaveformStartTime>0</WaveformStartTime>
      <NumberofLeads>{len(counts)}</NumberofLeads>
      <SampleType>CONTINUOUS_SAMPLES</SampleType>
      <SampleBase>{fs:g}</SampleBase>
      <SampleExponent>0</SampleExponent>
      <HighPassFilter>16</HighPassFilter>
      <LowPassFilter>150</LowPassFilter>
      <ACFilter>60</ACFilter>
{leads}   </Waveform>
"""


def muse_xml(
    counts: dict[str, np.ndarray],
    fs: float = FS,
    per_bit: str = "4.88",
    units: str = "MICROVOLTS",
    median: dict[str, np.ndarray] | None = None,
    rhythm: bool = True,
    doctype: str = '<!DOCTYPE RestingECG SYSTEM "restecg.dtd">',
) -> bytes:
    """A GE MUSE RestingECG export (ISO-8859-1), median waveform before the rhythm one as GE writes them."""
    waves = _muse_waveform("Median", median, fs, per_bit, units) if median is not None else ""
    waves += _muse_waveform("Rhythm", counts, fs, per_bit, units) if rhythm else ""
    text = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
{doctype}
<RestingECG>
   <MuseInfo><MuseVersion>8.0.2.10132</MuseVersion></MuseInfo>
   <PatientDemographics>
      <PatientID>MUSE-0042</PatientID>
      <PatientAge>67</PatientAge>
      <AgeUnits>YEARS</AgeUnits>
      <DateofBirth>03-14-1954</DateofBirth>
      <Gender>FEMALE</Gender>
      <PatientLastName>Müller</PatientLastName>
   </PatientDemographics>
   <TestDemographics>
      <DataType>RESTING</DataType>
      <AcquisitionDevice>MAC55</AcquisitionDevice>
      <AcquisitionTime>09:30:00</AcquisitionTime>
      <AcquisitionDate>05-02-2021</AcquisitionDate>
   </TestDemographics>
   <Diagnosis>
      <DiagnosisStatement><StmtFlag>ENDSLINE</StmtFlag><StmtText>Normal sinus rhythm</StmtText></DiagnosisStatement>
      <DiagnosisStatement><StmtText>Normal ECG</StmtText></DiagnosisStatement>
   </Diagnosis>
{waves}</RestingECG>
"""
    return text.encode("iso-8859-1")


# ------------------------------------------------------------------------------------------ aECG writer
def _aecg_lead(name: str, digits: np.ndarray, origin: tuple[float, str], scale: tuple[float, str]) -> str:
    return f"""          <component><sequence>
            <code code="MDC_ECG_LEAD_{name.upper()}" codeSystem="2.16.840.1.113883.6.24" codeSystemName="MDC"/>
            <value xsi:type="SLIST_PQ">
              <origin value="{origin[0]:g}" unit="{origin[1]}"/>
              <scale value="{scale[0]:g}" unit="{scale[1]}"/>
              <digits>{" ".join(map(str, digits.tolist()))}</digits>
            </value>
          </sequence></component>
"""


def _aecg_time(fs: float, relative: bool) -> str:
    if relative:  # GLIST_PQ in milliseconds
        return f"""          <component><sequence>
            <code code="TIME_RELATIVE" codeSystem="2.16.840.1.113883.5.4"/>
            <value xsi:type="GLIST_PQ"><head value="0" unit="ms"/><increment value="{1000 / fs:g}" unit="ms"/></value>
          </sequence></component>
"""
    return f"""          <component><sequence>
            <code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>
            <value xsi:type="GLIST_TS"><head value="20210502093000.000"/>
              <increment value="{1 / fs:g}" unit="s"/></value>
          </sequence></component>
"""


def aecg_xml(
    digits: dict[str, np.ndarray],
    fs: float = FS,
    origin: tuple[float, str] = (-20.0, "uV"),
    scale: tuple[float, str] = (5.0, "uV"),
    relative_time: bool = False,
    prefix: str = "",
    namespace: str = "urn:hl7-org:v3",
) -> bytes:
    """An HL7 aECG (FDA) file with one rhythm series; ``prefix="hl7"`` writes a prefixed namespace."""
    p = f"{prefix}:" if prefix else ""
    leads = "".join(_aecg_lead(k, v, origin, scale) for k, v in digits.items())
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<AnnotatedECG xmlns{":" + prefix if prefix else ""}="{namespace}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    type="Observation" classCode="OBS" moodCode="EVN">
  <id root="61d1a24f-b47e-41aa-ae95-f8ac302f4eeb"/>
  <code code="93000" codeSystem="2.16.840.1.113883.6.12" codeSystemName="CPT-4"/>
  <effectiveTime><low value="20210502093000"/><high value="20210502093002"/></effectiveTime>
  <componentOf><timepointEvent><componentOf><subjectAssignment><subject><trialSubject>
    <id root="2.16.840.1.113883.3.1" extension="SUBJ-007"/>
    <subjectDemographicPerson>
      <administrativeGenderCode code="M" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="19540503"/>
    </subjectDemographicPerson>
  </trialSubject></subject></subjectAssignment></componentOf></timepointEvent></componentOf>
  <component>
    <series>
      <id root="a1"/>
      <code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/>
      <effectiveTime><low value="20210502093000"/></effectiveTime>
      <component>
        <sequenceSet>
{_aecg_time(fs, relative_time)}{leads}        </sequenceSet>
      </component>
    </series>
  </component>
</AnnotatedECG>
"""
    if prefix:  # put every element in the prefixed namespace
        body = body.replace("<", f"<{p}").replace(f"<{p}/", f"</{p}").replace(f"<{p}?", "<?")
    return body.encode("utf-8")


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def mv12() -> dict[str, np.ndarray]:
    return synthetic_mv()


@pytest.fixture(scope="module")
def dicom_path() -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("waveform_ecg.dcm")
    if path is None:
        pytest.skip("pydicom's test file waveform_ecg.dcm is not installed with this pydicom")
    return Path(path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ========================================================================================== DICOM
def test_registry_lists_vendor_and_array_readers():
    names = {r.name for r in list_readers()}
    assert {"dicom", "muse", "hl7aecg", "numpy", "csv"} <= names


def test_dicom_real_file_matches_pydicom(dicom_path):
    import pydicom

    assert detect_format(dicom_path)[0] == "dicom"
    ecg = read_ecg(dicom_path)
    assert ecg.leads == CANONICAL_LEADS and ecg.derived_leads == ()
    assert ecg.fs == 1000.0 and ecg.n_samples == 10000
    assert (ecg.age, ecg.sex, ecg.meta["patient_id"]) == (42.0, "F", "642341")
    assert ecg.meta["waveform"] == "rhythm" and ecg.meta["group_label"] == "RHYTHM"
    # oracle: pydicom's own conversion (uV, file order = canonical order in this file)
    expected = pydicom.dcmread(dicom_path).waveform_array(0).T / 1000.0
    np.testing.assert_allclose(ecg.signal, expected, atol=1e-6)
    peak = np.abs(ecg.signal).max()
    assert 0.5 < peak < 5.0, "a resting ECG in mV peaks at a few mV"
    # lead names mapped right: the recorded limb leads obey Einthoven / Goldberger
    one, two = ecg.lead("I"), ecg.lead("II")
    np.testing.assert_allclose(ecg.lead("III"), two - one, atol=0.01)
    np.testing.assert_allclose(ecg.lead("aVR"), -(one + two) / 2, atol=0.01)


def test_dicom_median_group(dicom_path):
    ecg = read_dicom(dicom_path, waveform="median")
    assert ecg.n_samples == 1200 and ecg.meta["group_label"] == "MEDIAN BEAT"
    assert ecg.meta["waveform"] == "median"
    assert read_dicom(dicom_path, group=1).n_samples == 1200


def _modified_dicom(src: Path, dst: Path, edit) -> Path:
    import pydicom

    ds = pydicom.dcmread(src)
    for channel in ds.WaveformSequence[0].ChannelDefinitionSequence:
        edit(channel)
    ds.save_as(dst)
    return dst


def test_dicom_units_correction_and_baseline(dicom_path, tmp_path):
    ref = read_dicom(dicom_path)

    def to_mv(ch):  # same numbers expressed in mV, with a correction factor 2 and a baseline of 0.5 mV
        ch.ChannelSensitivityUnitsSequence[0].CodeValue = "mV"
        ch.ChannelSensitivity = 0.00125
        ch.ChannelSensitivityCorrectionFactor = 2
        ch.ChannelBaseline = 0.5

    ecg = read_dicom(_modified_dicom(dicom_path, tmp_path / "mv.dcm", to_mv))
    recorded = [ecg.leads.index(n) for n in CANONICAL_LEADS]
    np.testing.assert_allclose(ecg.signal[recorded], 2 * ref.signal + 0.5, atol=1e-5)


def test_dicom_uncalibrated_or_unknown_units_refused(dicom_path, tmp_path):
    def drop_sensitivity(ch):
        del ch.ChannelSensitivity

    with pytest.raises(UnitError, match="ChannelSensitivity"):
        read_dicom(_modified_dicom(dicom_path, tmp_path / "raw.dcm", drop_sensitivity))

    def mmhg(ch):
        ch.ChannelSensitivityUnitsSequence[0].CodeValue = "mm[Hg]"

    with pytest.raises(UnitError, match="mm\\[Hg\\]"):
        read_dicom(_modified_dicom(dicom_path, tmp_path / "mmhg.dcm", mmhg))


def test_dicom_image_and_garbage_refused(tmp_path):
    from pydicom.data import get_testdata_file

    ct = Path(shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm"))
    with pytest.raises(UnsupportedFormatError, match="dicom"):
        detect_format(ct)  # sniffed by content: a DICOM image is not an ECG
    with pytest.raises(UnsupportedFormatError, match="no WaveformSequence"):
        read_dicom(ct)
    junk = _write(tmp_path / "junk.dcm", b"\x00" * 128 + b"NOPE" + b"\x01" * 300)
    with pytest.raises(UnsupportedFormatError, match="DICOM"):
        read_dicom(junk)


# ========================================================================================== MUSE
def test_muse_8_lead_round_trip_and_derivation(tmp_path, mv12):
    counts = quantise({k: mv12[k] for k in EIGHT}, 4.88e-3)
    median = {k: v[:150] for k, v in counts.items()}
    path = _write(tmp_path / "muse.xml", muse_xml(counts, median=median))
    assert detect_format(path)[0] == "muse"
    ecg = read_ecg(path)
    assert ecg.leads == CANONICAL_LEADS and ecg.fs == FS and ecg.n_samples == N
    assert ecg.derived_leads == ("III", "aVR", "aVL", "aVF")
    for name in EIGHT:  # sample for sample: count * 4.88 uV
        np.testing.assert_allclose(ecg.lead(name), counts[name] * 4.88e-3, rtol=1e-6, atol=1e-6)
    one, two = counts["I"] * 4.88e-3, counts["II"] * 4.88e-3
    np.testing.assert_allclose(ecg.lead("aVL"), one - two / 2, atol=1e-5)
    np.testing.assert_allclose(ecg.lead("III"), mv12["III"], atol=6e-3)  # quantisation only
    assert (ecg.age, ecg.sex, ecg.meta["patient_id"]) == (67.0, "F", "MUSE-0042")
    assert ecg.meta["waveform"] == "rhythm" and ecg.meta["diagnosis"] == ["Normal sinus rhythm", "Normal ECG"]
    assert read_muse(path, waveform="median").n_samples == 150


def test_muse_12_leads_millivolts_and_median_fallback(tmp_path, mv12):
    order = ("V6", "aVF", "I", "III", "aVR", "II", "aVL", "V1", "V2", "V3", "V4", "V5")
    counts = quantise({k: mv12[k] for k in order}, 0.001)
    path = _write(tmp_path / "m12.xml", muse_xml(counts, fs=500, per_bit="0.001", units="MILLIVOLTS"))
    ecg = read_muse(path)
    assert ecg.leads == CANONICAL_LEADS and ecg.derived_leads == () and ecg.fs == 500.0
    for name in order:
        np.testing.assert_allclose(ecg.lead(name), counts[name] * 0.001, atol=1e-6)
    only_median = _write(tmp_path / "median.xml", muse_xml(counts, median=counts, rhythm=False))
    assert read_muse(only_median).meta["waveform"] == "median"
    with pytest.raises(CorruptRecordError, match="waveform='median'"):
        read_muse(only_median, waveform="rhythm")


def test_muse_missing_resolution_needs_units_per_bit(tmp_path, mv12):
    counts = quantise({k: mv12[k] for k in EIGHT}, 4.88e-3)
    text = muse_xml(counts).replace(b"<LeadAmplitudeUnitsPerBit>4.88</LeadAmplitudeUnitsPerBit>", b"")
    path = _write(tmp_path / "noscale.xml", text)
    with pytest.raises(CorruptRecordError, match="units_per_bit=4.88"):
        read_muse(path)
    np.testing.assert_allclose(
        read_muse(path, units_per_bit=4.88).lead("V2"), counts["V2"] * 4.88e-3, atol=1e-6
    )


# ========================================================================================== aECG
def test_aecg_round_trip_uv_with_origin(tmp_path, mv12):
    digits = quantise(mv12, 5e-3)  # 5 uV per digit
    digits = {k: v + 4 for k, v in digits.items()}  # origin -20 uV = -4 digits
    path = _write(tmp_path / "aecg.xml", aecg_xml(digits))
    assert detect_format(path)[0] == "hl7aecg"
    ecg = read_ecg(path)
    assert ecg.leads == CANONICAL_LEADS and ecg.derived_leads == () and ecg.fs == FS
    for name in CANONICAL_LEADS:  # (-20 uV + 5 uV * digit) -> mV
        np.testing.assert_allclose(ecg.lead(name), (-20 + 5 * digits[name]) / 1000, atol=1e-6)
    assert (ecg.age, ecg.sex, ecg.meta["patient_id"]) == (66.0, "M", "SUBJ-007")


def test_aecg_8_leads_mv_relative_time_prefixed_namespace(tmp_path, mv12):
    digits = quantise({k: mv12[k] for k in EIGHT}, 0.002)
    data = aecg_xml(digits, fs=500, origin=(0.1, "mV"), scale=(0.002, "mV"), relative_time=True, prefix="hl7")
    path = _write(tmp_path / "prefixed.xml", data)
    assert detect_format(path)[0] == "hl7aecg"
    ecg = read_ecg(path)
    assert ecg.fs == 500.0 and ecg.derived_leads == ("III", "aVR", "aVL", "aVF")
    np.testing.assert_allclose(ecg.lead("V4"), 0.1 + 0.002 * digits["V4"], atol=1e-6)
    one, two = 0.1 + 0.002 * digits["I"], 0.1 + 0.002 * digits["II"]
    np.testing.assert_allclose(ecg.lead("aVF"), two - one / 2, atol=1e-5)


def test_aecg_damaged_files(tmp_path, mv12):
    digits = quantise({k: mv12[k] for k in EIGHT}, 5e-3)
    good = aecg_xml(digits).decode()
    short = good.replace(
        " ".join(map(str, digits["V3"].tolist())), " ".join(map(str, digits["V3"][:-5].tolist()))
    )
    with pytest.raises(CorruptRecordError, match="different lengths"):
        read_hl7aecg(_write(tmp_path / "short.xml", short.encode()))
    with pytest.raises(CorruptRecordError, match="digits"):
        read_hl7aecg(_write(tmp_path / "nan.xml", good.replace("<digits>", "<digits>x1 ", 1).encode()))
    with pytest.raises(SamplingRateError, match="increment"):
        read_hl7aecg(_write(tmp_path / "notime.xml", good.replace('unit="s"', 'unit="fortnight"').encode()))
    with pytest.raises(UnitError, match="mmHg"):
        read_hl7aecg(
            _write(
                tmp_path / "unit.xml",
                good.replace(
                    'unit="uV"/>\n              <digits', 'unit="mmHg"/>\n              <digits', 1
                ).encode(),
            )
        )


# ========================================================================================== sniffing
def test_content_not_suffix_decides(tmp_path, mv12):
    counts = quantise({k: mv12[k] for k in EIGHT}, 4.88e-3)
    muse = muse_xml(counts)
    aecg = aecg_xml(quantise({k: mv12[k] for k in EIGHT}, 5e-3))
    # two .xml files go to their own readers
    assert detect_format(_write(tmp_path / "a.xml", muse))[0] == "muse"
    assert detect_format(_write(tmp_path / "b.xml", aecg))[0] == "hl7aecg"
    # a MUSE export renamed to .txt is recognised by its content, not taken for a text table
    renamed = _write(tmp_path / "export.txt", muse)
    assert detect_format(renamed)[0] == "muse"
    np.testing.assert_array_equal(read_ecg(renamed).signal, read_ecg(tmp_path / "a.xml").signal)
    # ... and renamed to .csv it is refused rather than parsed as numbers
    with pytest.raises(UnsupportedFormatError, match="csv"):
        detect_format(_write(tmp_path / "export.csv", muse))
    # an explicit format reads any suffix
    assert read_ecg(_write(tmp_path / "muse.export", muse), format="muse").n_leads == 12


def test_xml_that_is_neither_lists_both_formats(tmp_path):
    other = _write(tmp_path / "other.xml", b'<?xml version="1.0"?>\n<PhilipsECG><x>1</x></PhilipsECG>\n')
    with pytest.raises(UnsupportedFormatError) as err:
        read_ecg(other)
    assert "muse" in str(err.value) and "hl7aecg" in str(err.value)
    with pytest.raises(UnsupportedFormatError, match="RestingECG"):
        read_muse(other)
    with pytest.raises(UnsupportedFormatError, match="AnnotatedECG"):
        read_hl7aecg(other)
    # AnnotatedECG outside the HL7 namespace is not sniffed as aECG
    wrong_ns = _write(tmp_path / "ns.xml", aecg_xml({"I": np.zeros(4, int)}, namespace="urn:example"))
    with pytest.raises(UnsupportedFormatError, match="hl7aecg"):
        detect_format(wrong_ns)


def test_malformed_muse_files(tmp_path, mv12):
    counts = quantise({k: mv12[k] for k in EIGHT}, 4.88e-3)
    good = muse_xml(counts)
    with pytest.raises(CorruptRecordError, match="not well-formed XML.*GE MUSE"):
        read_muse(_write(tmp_path / "trunc.xml", good[: len(good) // 2]))
    b64 = base64.encodebytes(counts["V1"].astype("<i2").tobytes())
    with pytest.raises(CorruptRecordError, match="base64"):
        read_muse(_write(tmp_path / "b64.xml", good.replace(b64, b"@@not-base64@@", 1)))
    shorter = base64.encodebytes(counts["V1"][:-10].astype("<i2").tobytes())
    with pytest.raises(CorruptRecordError, match="truncated"):
        read_muse(_write(tmp_path / "short.xml", good.replace(b64, shorter, 1)))
    with pytest.raises(CorruptRecordError, match="SampleBase"):
        read_muse(_write(tmp_path / "nofs.xml", good.replace(b"<SampleBase>250</SampleBase>", b"")))


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE RestingECG [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        '<!DOCTYPE RestingECG [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    ],
    ids=["entity-bomb", "external-entity"],
)
def test_xml_entities_refused(tmp_path, mv12, doctype):
    counts = quantise({k: mv12[k] for k in EIGHT}, 4.88e-3)
    data = muse_xml(counts, doctype=doctype).replace(
        b"MUSE-0042", b"&b;" if b"&a;" in doctype.encode() else b"&xxe;"
    )
    with pytest.raises(UnsupportedFormatError, match="entit|internal subset"):
        read_ecg(_write(tmp_path / "bomb.xml", data))


@pytest.mark.parametrize("inside", ['<!ENTITY a "aaaa">', '<!DOCTYPE RestingECG [<!ENTITY a "aaaa">]>', "&a;"])
def test_declarations_after_the_root_are_refused_as_malformed(tmp_path, mv12, inside):
    """The entity scan stops at the root element; what follows it is refused by the full parse, never expanded."""
    counts = quantise({k: mv12[k] for k in EIGHT}, 4.88e-3)
    data = muse_xml(counts).replace(b"MUSE-0042", inside.encode())
    with pytest.raises(CorruptRecordError, match="not well-formed XML"):
        read_muse(_write(tmp_path / "late.xml", data))


# ========================================================================================== arrays
def test_numpy_leads_first_default_12_and_microvolts(tmp_path, rng):
    x = rng.standard_normal((12, 300))
    np.save(tmp_path / "x.npy", x * 1000)
    ecg = read_ecg(tmp_path / "x.npy", fs=100, units="uV")
    assert ecg.leads == CANONICAL_LEADS and ecg.fs == 100.0 and ecg.n_samples == 300
    np.testing.assert_allclose(ecg.signal, x, atol=1e-5)


def test_numpy_samples_first_with_8_leads_and_layout(tmp_path, rng):
    x = rng.standard_normal((400, 8))
    np.save(tmp_path / "t.npy", x)
    ecg = read_ecg(tmp_path / "t.npy", fs=400, leads=["i", "ii", "v1", "v2", "v3", "v4", "v5", "v6"])
    assert ecg.leads == CANONICAL_LEADS and ecg.derived_leads == ("III", "aVR", "aVL", "aVF")
    np.testing.assert_allclose(ecg.lead("V5"), x[:, 6], atol=1e-6)
    np.testing.assert_allclose(ecg.lead("III"), x[:, 1] - x[:, 0], atol=1e-6)
    square = rng.standard_normal((12, 12))
    with pytest.raises(LeadError, match="layout="):
        ecg_from_array(square, fs=100)
    flipped = ecg_from_array(square, fs=100, layout="samples_first")
    np.testing.assert_allclose(flipped.signal, square.T, atol=1e-6)


def test_npz_keys(tmp_path, rng):
    x = rng.standard_normal((12, 200))
    np.savez(tmp_path / "one.npz", x)
    np.testing.assert_allclose(read_ecg(tmp_path / "one.npz", fs=200).signal, x, atol=1e-6)
    np.savez(tmp_path / "two.npz", ecg=x, labels=np.arange(3))
    np.testing.assert_allclose(read_ecg(tmp_path / "two.npz", fs=200).signal, x, atol=1e-6)
    np.savez(tmp_path / "odd.npz", a=x, b=x)
    with pytest.raises(UnsupportedFormatError, match="key="):
        read_ecg(tmp_path / "odd.npz", fs=200)
    np.testing.assert_allclose(read_ecg(tmp_path / "odd.npz", fs=200, key="b").signal, x, atol=1e-6)


def test_array_errors(tmp_path, rng):
    np.save(tmp_path / "x.npy", rng.standard_normal((12, 100)))
    with pytest.raises(SamplingRateError, match="raw arrays carry no sampling rate; pass fs="):
        read_ecg(tmp_path / "x.npy")
    np.save(tmp_path / "five.npy", rng.standard_normal((5, 100)))
    with pytest.raises(LeadError, match="leads="):
        read_ecg(tmp_path / "five.npy", fs=100)
    with pytest.raises(UnitError, match="units="):
        read_ecg(tmp_path / "x.npy", fs=100, units="counts")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CorruptRecordError, match="allow_pickle=False"):
        read_ecg(tmp_path / "obj.npy", fs=100)


def test_csv_header_names_and_time_column(tmp_path, rng):
    x = np.round(rng.standard_normal((50, 12)), 4)
    names = ["v6", "AVF", "i", "iii", "avr", "II", "aVL", "V1", "V2", "V3", "V4", "V5"]
    rows = "\n".join(",".join([f"{i / 500:.3f}"] + [f"{v:.4f}" for v in row]) for i, row in enumerate(x))
    path = tmp_path / "ecg.csv"
    path.write_text("time," + ",".join(names) + "\n" + rows + "\n")
    assert detect_format(path)[0] == "csv"
    ecg = read_ecg(path, fs=500)
    assert ecg.leads == CANONICAL_LEADS and ecg.n_samples == 50
    np.testing.assert_allclose(ecg.lead("V6"), x[:, 0], atol=1e-6)
    np.testing.assert_allclose(ecg.lead("aVR"), x[:, 4], atol=1e-6)
    with pytest.raises(SamplingRateError, match="pass fs="):
        read_ecg(path)


def test_tsv_and_txt_without_header(tmp_path, rng):
    x = np.round(rng.standard_normal((12, 40)), 3)  # rows are leads
    tsv = tmp_path / "ecg.tsv"
    tsv.write_text("\n".join("\t".join(f"{v:.3f}" for v in row) for row in x) + "\n")
    np.testing.assert_allclose(read_ecg(tsv, fs=250, units="mV").signal, x, atol=1e-6)
    txt = tmp_path / "ecg.txt"
    txt.write_text(
        "# exported samples in uV\n" + "\n".join(" ".join(f"{v * 1000:.0f}" for v in row) for row in x.T)
    )
    assert detect_format(txt)[0] == "csv"
    np.testing.assert_allclose(read_ecg(txt, fs=250, units="uV").signal, x, atol=1e-6)


# ------------------------------------------------------------------------------------------------ text numbers
@pytest.mark.parametrize("text", [
    "1 2 -3 +4 0005", "-2\n-2\t-3 ", "", None, "1.5 2", "1e3 -2.5E-1", "-0 0", "nan 1 inf",
    "9223372036854775808 1", "-9223372036854775809", " 12 ", "3 1_000",
])
def test_text_numbers_equal_the_float_parse(text):
    """Integers first, floats where needed: the same values as parsing every token as a float."""
    from ecglens.io._vendor import text_numbers

    got = text_numbers(text)
    expected = np.array((text or "").split(), dtype=np.float64)
    assert got.dtype == np.float64 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("text", ["1,2,3", "1, 2 ,3", "1,,2\n3", "9223372036854775808,1", ",1,2,"])
def test_text_numbers_integers_only_as_cardiosoft_separates(text):
    """CardioSoft's samples: commas or whitespace between integers, values as ``int()`` gives them."""
    import re

    from ecglens.io._vendor import text_numbers

    tokens = [t for t in re.split(r"[,\s]+", text) if t]
    got = text_numbers(text.replace(",", " "), integers_only=True)
    np.testing.assert_array_equal(got, np.array([int(t) for t in tokens], dtype=np.float64))


@pytest.mark.parametrize(("text", "integers_only"), [("1 x 3", False), ("1 2.5", True), ("0x10", False),
                                                      ("1 1e3", True)])
def test_text_numbers_refuse_what_is_no_number(text, integers_only):
    from ecglens.io._vendor import text_numbers

    with pytest.raises(ValueError):
        text_numbers(text, integers_only=integers_only)


def test_children_match_local_names_exactly():
    """``children`` / ``child`` match a tag's local name in any namespace, never a name that merely ends alike."""
    import xml.etree.ElementTree as ET

    from ecglens.io._vendor import child, children, local_name

    root = ET.fromstring('<r xmlns:a="urn:a"><SampleRate>1</SampleRate><Rate>2</Rate><a:Rate>3</a:Rate>'
                         '<b xmlns="urn:b"><Rate>4</Rate></b><xRate>5</xRate></r>')
    for name in ("Rate", "SampleRate", "b", "xRate", "ate", "r"):
        assert [c.text for c in children(root, name)] == [c.text for c in root if local_name(c.tag) == name]
    assert child(root, "b", "Rate").text == "4"
    assert child(root, "Rate").text == "2" and child(root, "missing", "Rate") is None
