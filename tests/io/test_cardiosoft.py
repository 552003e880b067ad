"""Tests of the GE CardioSoft XML reader (``ecglens.io.cardiosoft``).

How the expected values are made:

* Synthetic files: integer counts of a synthetic 12-lead ECG written here in the CardioSoft layout
  (comma-separated, wrapped over lines without a trailing comma as CardioSoft does); the reader must return
  ``count * resolution`` exactly.
* The real ``cardiosoft_dummy.xml`` (UK Biobank-format example): the file's own counts, parsed here independently
  with a regular expression, times its 5 uV resolution; its recorded limb leads must follow Einthoven's law.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ecglens.exceptions import ConfigError, CorruptRecordError, LeadError, UnitError
from ecglens.io import detect_format, read_ecg
from ecglens.io.cardiosoft import read_cardiosoft
from ecglens.leads import CANONICAL_LEADS

N = 600


def counts12(n: int = N, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 500
    free = {
        name: np.round(200 * np.exp(-(((t - 0.5) / 0.02) ** 2)) * (1 + i / 8) + 5 * rng.standard_normal(n))
        for i, name in enumerate(("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"))
    }
    one, two = free["I"], free["II"]
    limb = {"III": two - one, "aVR": -np.round((one + two) / 2), "aVL": one - two // 2, "aVF": two - one // 2}
    return {name: {**free, **limb}[name].astype(np.int64) for name in CANONICAL_LEADS}


def _strip(
    tag: str, counts: dict[str, np.ndarray], fs: str, resolution: str, units: str, n_leads: str
) -> str:
    def wrapped(values: np.ndarray) -> str:  # 250 values a line, no comma at the line break
        lines = [",".join(map(str, values[i : i + 250].tolist())) for i in range(0, values.size, 250)]
        return "\n\t\t".join(lines)

    leads = "".join(
        f'\t\t<WaveformData lead="{k}">\t\t{wrapped(v)}\n\t\t</WaveformData>\n' for k, v in counts.items()
    )
    n = len(next(iter(counts.values())))
    return f"""<{tag}>
		<NumberOfLeads>{n_leads}</NumberOfLeads>
		<SampleRate units="Hz">{fs}</SampleRate>
		<ChannelSampleCountTotal>{n}</ChannelSampleCountTotal>
		<Resolution units="{units}">{resolution}</Resolution>
{leads}	</{tag}>"""


def cardiosoft_xml(
    counts: dict[str, np.ndarray],
    fs: str = "500",
    resolution: str = "5",
    units: str = "uVperLsb",
    n_leads: str = "12",
    patient: str = '<Age units="years">63</Age><Gender>FEMALE</Gender>',
    median: bool = True,
) -> bytes:
    beat = {k: v[:100] for k, v in counts.items()}
    medians = _strip("MedianSamples", beat, fs, resolution, units, n_leads) if median else ""
    return f"""<?xml version="1.0" encoding="ISO8859-1" ?>
<CardiologyXML>
	<ObservationType>RestECG</ObservationType>
	<ObservationDateTime><Hour>9</Hour><Minute>0</Minute><Second>0</Second><Day>2</Day><Month>5</Month><Year>2015</Year></ObservationDateTime>
	<ClinicalInfo><DeviceInfo><Desc>CardioSoft</Desc><SoftwareVer>V6.73</SoftwareVer></DeviceInfo></ClinicalInfo>
	<PatientInfo><PID>UKB-1</PID>{patient}</PatientInfo>
	<Interpretation><Diagnosis><DiagnosisText>Normal ECG</DiagnosisText></Diagnosis></Interpretation>
	<RestingECGMeasurements><VentricularRate units="BPM">60</VentricularRate>{medians}</RestingECGMeasurements>
{_strip("StripData", counts, fs, resolution, units, n_leads)}
</CardiologyXML>
""".encode("iso-8859-1")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def counts() -> dict[str, np.ndarray]:
    return counts12()


def test_round_trip_rhythm_and_median(tmp_path, counts):
    path = _write(tmp_path / "ukb.xml", cardiosoft_xml(counts))
    assert detect_format(path)[0] == "cardiosoft"
    ecg = read_ecg(path)
    assert ecg.leads == CANONICAL_LEADS and ecg.fs == 500 and ecg.n_samples == N
    np.testing.assert_allclose(ecg.signal, np.stack(list(counts.values())) * 5e-3, atol=1e-6)
    assert (ecg.age, ecg.sex, ecg.meta["patient_id"], ecg.meta["waveform"]) == (63.0, "F", "UKB-1", "rhythm")
    assert ecg.meta["diagnosis"] == ["Normal ECG"] and ecg.meta["device"] == "CardioSoft V6.73"
    median = read_cardiosoft(path, waveform="median")
    assert median.n_samples == 100 and median.meta["waveform"] == "median"
    with pytest.raises(ConfigError):
        read_cardiosoft(path, waveform="beat")


def test_units_and_birth_date(tmp_path, counts):
    birth = (
        "<BirthDateTime><Day>3</Day><Month>5</Month><Year>1950</Year></BirthDateTime><Gender>MALE</Gender>"
    )
    data = cardiosoft_xml(counts, resolution="0.01", units="mVperLsb", patient=birth, fs="250")
    ecg = read_cardiosoft(_write(tmp_path / "mv.xml", data))
    assert (ecg.age, ecg.sex, ecg.fs) == (64.0, "M", 250.0)  # one day before the 65th birthday
    np.testing.assert_allclose(ecg.lead("V6"), counts["V6"] * 0.01, atol=1e-6)


def test_eight_leads_are_completed(tmp_path, counts):
    eight = {k: v for k, v in counts.items() if k not in ("III", "aVR", "aVL", "aVF")}
    ecg = read_cardiosoft(_write(tmp_path / "8.xml", cardiosoft_xml(eight, n_leads="8")))
    assert ecg.leads == CANONICAL_LEADS and ecg.derived_leads == ("III", "aVR", "aVL", "aVF")


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"n_leads": "11"}, CorruptRecordError, "NumberOfLeads"),
        ({"units": "furlongs"}, UnitError, "Resolution"),
        ({"resolution": "-5"}, CorruptRecordError, "Resolution"),
        ({"fs": "abc"}, CorruptRecordError, "SampleRate"),
    ],
)
def test_inconsistent_files_refused(tmp_path, counts, change, error, match):
    with pytest.raises(error, match=match) as err:
        read_cardiosoft(_write(tmp_path / "bad.xml", cardiosoft_xml(counts, **change)))
    assert "CardioSoft" in str(err.value)


def test_damaged_samples_refused(tmp_path, counts):
    good = cardiosoft_xml(counts).decode("iso-8859-1")
    start = good.index('<WaveformData lead="V3">', good.index("<StripData>"))
    end = good.index("\n\t\t</WaveformData>", start)
    short = good[: good.rindex(",", start, end)] + good[end:]  # V3 loses its last sample
    with pytest.raises(CorruptRecordError, match="ChannelSampleCountTotal"):
        read_cardiosoft(_write(tmp_path / "short.xml", short.encode("iso-8859-1")))
    with pytest.raises(CorruptRecordError, match="integers"):
        strip = good.index("<StripData>")
        bad = good[:strip] + good[strip:].replace('">\t\t', '">\t\tx', 1)
        read_cardiosoft(_write(tmp_path / "nan.xml", bad.encode("iso-8859-1")))
    two = {k: v for k, v in counts.items() if k in ("I", "II")}
    with pytest.raises(LeadError, match="12-lead"):
        read_cardiosoft(_write(tmp_path / "two.xml", cardiosoft_xml(two, n_leads="2")))


def test_real_cardiosoft_export(fixtures_dir):
    path = fixtures_dir / "vendor" / "cardiosoft_dummy.xml"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    ecg = read_ecg(path)
    assert ecg.leads == CANONICAL_LEADS and ecg.fs == 500 and ecg.n_samples == 5000
    assert ecg.derived_leads == () and ecg.sex is None  # the file's Gender is UNKNOWN
    text = path.read_text("iso-8859-1")
    strip = text[text.index("<StripData>") :]
    lead_v1 = re.search(r'<WaveformData lead="V1">([^<]*)<', strip).group(1)
    expected = np.array([int(x) for x in re.findall(r"-?\d+", lead_v1)]) * 5e-3
    np.testing.assert_allclose(ecg.lead("V1"), expected, atol=1e-6)
    peak = np.abs(ecg.signal).max(axis=1)
    assert (peak > 0.1).all() and (peak < 10).all()
    np.testing.assert_allclose(ecg.lead("III"), ecg.lead("II") - ecg.lead("I"), atol=0.021)
