"""Tests of the EDF / EDF+ reader (``ecglens.io.edf``).

How the expected values are made: EDF files are written in tmp_path by ``edfio`` (the library the reader uses,
but its writer) from a synthetic 12-lead ECG in mV made here (sums of Gaussian beats and sines; III, aVR, aVL,
aVF by Einthoven / Goldberger), scaled to the channel's physical dimension. EDF stores 16-bit digital values over
the physical range, so the expected mV of every sample is the synthetic value within one digital step
(physical range / 65535), computed here.
"""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from ecglens.exceptions import (
    CorruptRecordError,
    LeadError,
    SamplingRateError,
    UnitError,
    UnsupportedFormatError,
)
from ecglens.io import detect_format, read_ecg
from ecglens.io.edf import edf_lead_name, read_edf
from ecglens.leads import CANONICAL_LEADS

edfio = pytest.importorskip("edfio", reason="the EDF reader needs edfio (pip install edfio)")

FS, N = 250, 1000  # 4 s


def synthetic_mv(n: int = N, fs: float = FS) -> dict[str, np.ndarray]:
    """A 12-lead ECG in mV: independent I, II, V1-V6; limb leads by Einthoven / Goldberger."""
    t = np.arange(n) / fs
    leads = {}
    for i, name in enumerate(("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")):
        beats = sum(np.exp(-(((t - c) / 0.012) ** 2)) for c in np.arange(0.3, t[-1], 0.8))
        leads[name] = (0.5 + 0.1 * i) * beats + 0.1 * np.sin(2 * np.pi * (1 + i) * t)
    one, two = leads["I"], leads["II"]
    leads.update(III=two - one, aVR=-(one + two) / 2, aVL=one - two / 2, aVF=two - one / 2)
    return leads


def edf_signal(label: str, mv: np.ndarray, unit: str = "uV", fs: float = FS) -> edfio.EdfSignal:
    scale = {"uV": 1000.0, "mV": 1.0, "V": 0.001}[unit]
    return edfio.EdfSignal(
        mv * scale, fs, label=label, physical_dimension=unit, physical_range=(-5 * scale, 5 * scale)
    )


STEP_MV = 10 / 65535  # one digital step over a physical range of -5..5 mV

LABELS = (
    "ECG I",
    "EKG II",
    "III-ref",
    "ECG aVR",
    "AVL",
    "ECG_AVF",
    "V1",
    "EKG V2",
    "ECG V3-REF",
    "Lead V4",
    "V5",
    "ECG V6",
)


@pytest.fixture
def mv() -> dict[str, np.ndarray]:
    return synthetic_mv()


def test_usual_label_spellings():
    assert [edf_lead_name(label) for label in LABELS] == list(CANONICAL_LEADS)
    assert [edf_lead_name(label) for label in ("Resp", "ECG1", "EDF Annotations", "SpO2", "")] == [None] * 5


@pytest.mark.parametrize("unit", ["uV", "mV", "V"])
def test_12_leads_in_any_voltage_unit(tmp_path, mv, unit):
    signals = [edf_signal(label, mv[name], unit) for label, name in zip(LABELS, CANONICAL_LEADS, strict=True)]
    signals.append(edfio.EdfSignal(np.zeros(N // 5) + 0.5, FS / 5, label="Resp", physical_range=(-1, 1)))
    path = tmp_path / "rec.edf"
    edfio.Edf(signals[::-1]).write(path)  # file order reversed: the reader puts leads in canonical order
    assert detect_format(path)[0] == "edf"
    ecg = read_ecg(path)
    assert ecg.leads == CANONICAL_LEADS and ecg.fs == FS and ecg.n_samples == N and ecg.derived_leads == ()
    expected = np.stack([mv[name] for name in CANONICAL_LEADS])
    np.testing.assert_allclose(ecg.signal, expected, atol=STEP_MV)


def test_edf_plus_with_annotations_patient_and_derived_limb_leads(tmp_path, mv):
    eight = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    edf = edfio.Edf(
        [edf_signal(f"ECG {name}", mv[name], "mV") for name in eight],
        patient=edfio.Patient(code="P-17", sex="F", birthdate=datetime.date(1950, 5, 2)),
        recording=edfio.Recording(startdate=datetime.date(2020, 1, 1)),
        annotations=[edfio.EdfAnnotation(0.3, None, "QRS"), edfio.EdfAnnotation(1.1, 0.5, "artefact")],
    )
    path = tmp_path / "plus.edf"
    edf.write(path)
    ecg = read_edf(path)
    assert (ecg.age, ecg.sex, ecg.meta["patient_id"]) == (69.0, "F", "P-17")
    assert ecg.leads == CANONICAL_LEADS and set(ecg.derived_leads) == {"III", "aVR", "aVL", "aVF"}
    np.testing.assert_allclose(ecg.lead("aVF"), mv["aVF"], atol=2 * STEP_MV)


def test_mixed_rates_missing_leads_units_and_duplicates_are_refused(tmp_path, mv):
    cases = {
        "rates": ([edf_signal("I", mv["I"]), edf_signal("II", mv["II"][::2], fs=FS / 2)], SamplingRateError),
        "no leads": ([edfio.EdfSignal(mv["I"], FS, label="Resp")], LeadError),
        "unit": ([edfio.EdfSignal(mv["I"], FS, label="ECG I", physical_dimension="degC")], UnitError),
        "duplicate": ([edf_signal("ECG I", mv["I"]), edf_signal("I-ref", mv["I"])], LeadError),
    }
    for name, (signals, error) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.edf"
        edfio.Edf(signals).write(path)
        with pytest.raises(error, match="EDF"):
            read_edf(path)


def test_truncated_malformed_and_flat_files_are_refused(tmp_path, mv):
    path = tmp_path / "good.edf"
    edfio.Edf([edf_signal("I", mv["I"]), edf_signal("II", mv["II"])], data_record_duration=1).write(path)
    data = path.read_bytes()
    bad = {
        "half": data[: len(data) // 2],
        "header only": data[:300],
        "signal count": data[:252] + b"9999" + data[256:],
        "no header": b"0       ",
        "record count": data[:236] + b"x7      " + data[244:],
    }
    for name, content in bad.items():
        broken = tmp_path / f"{name.replace(' ', '_')}.edf"
        broken.write_bytes(content)
        with pytest.raises(CorruptRecordError, match="EDF"):
            read_ecg(broken)
    flat = tmp_path / "flat.edf"
    edfio.Edf([edf_signal("I", np.zeros(N)), edf_signal("II", np.zeros(N))]).write(flat)
    with pytest.raises(CorruptRecordError, match="flat"):
        read_edf(flat)


def test_discontinuous_edf_plus_is_refused(tmp_path, mv):
    path = tmp_path / "d.edf"
    edfio.Edf([edf_signal("I", mv["I"]), edf_signal("II", mv["II"])]).write(path)
    data = bytearray(path.read_bytes())
    data[192:236] = b"EDF+D".ljust(44)
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedFormatError, match="discontinuous"):
        read_edf(path)
