"""Site gain (``ecglens.predict.site``): per-lead amplitude matching of another site's ECGs to a model's reference.

Oracles: RMS of sinusoids (A / sqrt 2); a synthetic site whose V-leads are recorded at half size must get gains of
2 on those leads and 1 elsewhere; predicting with a gain equals predicting inputs scaled by hand (filters and
resampling are linear); ``--site-gain auto`` writes the gain it used, flags every row, and a shard refuses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import wfdb

from ecglens import Ecg
from ecglens.artifact import save_checkpoint
from ecglens.artifact.calibration import Calibration
from ecglens.cli import app
from ecglens.data.targets import task_from_name
from ecglens.evaluate.runner import evaluate_checkpoint
from ecglens.exceptions import ConfigError
from ecglens.leads import CANONICAL_LEADS
from ecglens.models import create_model
from ecglens.predict import Predictor
from ecglens.predict.site import (
    GAIN_RANGE,
    MIN_SITE_RECORDS,
    SiteGain,
    estimate_site_gain,
    lead_rms,
    reference_rms,
    signals_rms,
)
from ecglens.signal.transforms import Preprocess

REFERENCE = dict.fromkeys(CANONICAL_LEADS, 0.2)
HALF = ("V1", "V2", "V3", "V4", "V5", "V6")  # the leads the synthetic site records at half size


def test_lead_rms_of_sinusoids_over_windows():
    t = np.arange(1000) / 100.0
    x = np.stack([a * np.sin(2 * np.pi * 5 * t) for a in (1.0, 2.0, 0.0)])
    np.testing.assert_allclose(lead_rms(x), [1 / np.sqrt(2), 2 / np.sqrt(2), 0.0], atol=1e-9)
    np.testing.assert_allclose(lead_rms(np.stack([x, 3 * x])), np.sqrt(5) * lead_rms(x))  # RMS over both windows
    np.testing.assert_allclose(signals_rms(np.stack([x, 3 * x]), [1, 0], chunk=1), [3 * lead_rms(x), lead_rms(x)])
    with pytest.raises(ValueError, match="L, T"):
        lead_rms(np.zeros(5))


def _site_rms(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rms = 0.2 * np.exp(rng.normal(0, 0.3, (n, 12)))  # person-to-person spread around the reference
    rms[:, [CANONICAL_LEADS.index(lead) for lead in HALF]] *= 0.5
    return rms


def test_a_site_recording_the_chest_leads_at_half_size_gets_a_gain_of_two_there():
    rms = _site_rms(400)
    rms[:40, 3] = 0.0  # aVR missing in some records (zero-filled): left out of its median, not read as small
    gain = estimate_site_gain(rms, REFERENCE, CANONICAL_LEADS)
    expected = [2.0 if lead in HALF else 1.0 for lead in CANONICAL_LEADS]
    np.testing.assert_allclose(gain.gains, expected, rtol=0.06)
    assert gain.n_records == 400 and gain.describe().startswith("site gain from 400 records: I x1.00")
    again = SiteGain.from_dict(json.loads(json.dumps(gain.to_dict())))
    np.testing.assert_allclose(again.gains, gain.gains, rtol=1e-5)
    assert again.leads == CANONICAL_LEADS


def test_site_gain_limits_and_errors(tmp_path):
    rms = _site_rms(MIN_SITE_RECORDS)
    rms[:, 0] *= 100.0  # a lead 100x too large: clipped, not trusted
    gain = estimate_site_gain(rms, {k: v for k, v in REFERENCE.items() if k != "V6"}, CANONICAL_LEADS)
    assert gain.gains[0] == GAIN_RANGE[0] and gain.gains[-1] == 1.0  # no reference for V6: left alone
    with pytest.raises(ConfigError, match="at least 20"):
        estimate_site_gain(rms[:5], REFERENCE, CANONICAL_LEADS)
    with pytest.raises(ConfigError, match="ecglens calibrate"):
        estimate_site_gain(rms, {}, CANONICAL_LEADS)
    with pytest.raises(ConfigError, match="the model takes"):
        gain.check_leads(("I", "II"))
    (tmp_path / "bad.json").write_text('{"leads": ["I"]}')
    with pytest.raises(ConfigError, match="not a site gain"):
        SiteGain.load(tmp_path / "bad.json")
    assert reference_rms(np.full((MIN_SITE_RECORDS, 2), 0.3), ("I", "II")) == {"I": 0.3, "II": 0.3}
    assert reference_rms(np.full((MIN_SITE_RECORDS - 1, 2), 0.3), ("I", "II")) == {}  # too few to be a reference


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A tiny age/sex checkpoint (100 Hz, 10 s, 12 leads) whose calibration holds reference amplitudes."""
    task = task_from_name("age_sex").fit(np.array([[30.0, 1.0], [70.0, 0.0]]))
    torch.manual_seed(0)
    model = create_model("cnn_baseline", num_outputs=task.num_outputs, channels=(4, 8))
    cal = Calibration(folds=[9], n=100, lead_rms_mv=REFERENCE)
    return save_checkpoint(tmp_path / "tiny", model, task=task, preprocess=Preprocess(), calibration=cal)


def _record(seed: int) -> np.ndarray:
    """10 s at 500 Hz, 12 leads in mV: a beat train whose chest leads are half as large (the synthetic site)."""
    rng = np.random.default_rng(seed)
    t = np.arange(5000) / 500.0
    beat = np.sin(2 * np.pi * 1.1 * t + rng.uniform(0, 6)) ** 21
    x = np.stack([rng.uniform(0.6, 1.4) * beat + 0.02 * rng.standard_normal(5000) for _ in range(12)])
    x[6:] *= 0.5
    return x


def test_predicting_with_a_gain_equals_predicting_inputs_scaled_by_hand(checkpoint):
    gain = SiteGain(CANONICAL_LEADS, tuple(2.0 if lead in HALF else 1.0 for lead in CANONICAL_LEADS), 50,
                    (0.1,) * 12, (0.2,) * 12)
    ecg = Ecg(_record(1), 500.0, CANONICAL_LEADS)
    scaled = Ecg(ecg.signal * np.asarray(gain.gains)[:, None], 500.0, CANONICAL_LEADS)
    with_gain = Predictor(checkpoint, site_gain=gain).predict_ecg(ecg)
    by_hand = Predictor(checkpoint).predict_ecg(scaled)
    assert with_gain.outputs == pytest.approx(by_hand.outputs, rel=1e-4)
    assert "site_gain" in with_gain.flags and "site_gain" not in by_hand.flags
    with pytest.raises(ConfigError, match="the model takes"):
        Predictor(checkpoint, site_gain=SiteGain(("I",), (1.0,), 20, (0.1,), (0.1,)))
    with pytest.raises(ConfigError, match="estimate_site_gain"):
        Predictor(checkpoint, site_gain="auto")


def test_reading_workers_that_run_the_model_apply_the_site_gain(checkpoint, tmp_path):
    """With two reading workers the model runs in them, on inputs scaled by the gain, as in this process alone."""
    gain = SiteGain(CANONICAL_LEADS, tuple(2.0 if lead in HALF else 1.0 for lead in CANONICAL_LEADS), 50,
                    (0.1,) * 12, (0.2,) * 12)
    site = _write_site(tmp_path / "site", 4)
    alone = Predictor(checkpoint, site_gain=gain).predict_paths(site, progress=False, workers=0)
    pooled = Predictor(checkpoint, site_gain=gain).predict_paths(site, progress=False, workers=2, chunk_size=1)
    plain = Predictor(checkpoint).predict_paths(site, progress=False, workers=2, chunk_size=1)
    assert (pooled["flags"].str.contains("site_gain")).all() and not plain["flags"].str.contains("site_gain").any()
    pd.testing.assert_frame_equal(pooled, alone, check_exact=False, rtol=1e-6)
    assert not np.allclose(pooled["age"], plain["age"])


def _write_site(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        wfdb.wrsamp(f"r{i:02d}", fs=500, units=["mV"] * 12, sig_name=list(CANONICAL_LEADS), p_signal=_record(i).T,
                    fmt=["16"] * 12, write_dir=str(folder))
    return folder


def test_cli_site_gain_auto_writes_the_gain_flags_rows_and_a_shard_reuses_the_file(checkpoint, tmp_path, capsys):
    site = _write_site(tmp_path / "site", MIN_SITE_RECORDS + 2)
    out = tmp_path / "preds.csv"
    base = ["predict", str(site), "--model", str(checkpoint), "--workers", "0", "--no-progress"]
    assert app([*base, "--site-gain", "auto", "-o", str(out)]) == 0
    assert "site gain from 22 records" in capsys.readouterr().out
    gain = SiteGain.load(tmp_path / "preds.site-gain.json")
    chest = [g for lead, g in zip(gain.leads, gain.gains, strict=True) if lead in HALF]
    limbs = [g for lead, g in zip(gain.leads, gain.gains, strict=True) if lead not in HALF]
    assert min(chest) > 1.5 * max(limbs)  # the chest leads were recorded at half size
    table = pd.read_csv(out)
    assert (table["status"] == "ok").all() and table["flags"].str.contains("site_gain").all()
    plain = tmp_path / "plain.csv"
    assert app([*base, "-o", str(plain)]) == 0
    assert not pd.read_csv(plain)["age"].equals(table["age"])  # the gain changed the inputs
    again = tmp_path / "again.csv"  # the saved file gives the same predictions
    assert app([*base, "--site-gain", str(tmp_path / "preds.site-gain.json"), "-o", str(again)]) == 0
    np.testing.assert_allclose(pd.read_csv(again)["age"], table["age"], rtol=1e-5)
    shards = tmp_path / "shards"
    assert app([*base, "--site-gain", str(tmp_path / "preds.site-gain.json"), "--shard", "1/1", "-o",
                str(shards)]) == 0
    assert pd.concat(pd.read_csv(p) for p in shards.glob("*.csv"))["flags"].str.contains("site_gain").all()
    other = SiteGain.load(tmp_path / "preds.site-gain.json")
    other = SiteGain(other.leads, (1.0,) * 12, other.n_records, other.site_rms_mv, other.reference_rms_mv)
    capsys.readouterr()
    assert app([*base, "--site-gain", str(other.save(tmp_path / "other.json")), "--shard", "1/1", "-o",
                str(shards)]) == 2  # a shard made with another gain is not taken for this job's
    assert "another job" in capsys.readouterr().err
    assert app([*base, "--site-gain", "auto", "--shard", "1/2", "-o", str(shards)]) == 2
    assert "different gain in every shard" in capsys.readouterr().err
    few = _write_site(tmp_path / "few", 3)
    assert app(["predict", str(few), "--model", str(checkpoint), "--workers", "0", "--no-progress",
                "--site-gain", "auto", "-o", str(tmp_path / "few.csv")]) == 2
    assert "at least 20" in capsys.readouterr().err


def _site_cache(meta: pd.DataFrame) -> SimpleNamespace:
    """Looks like a PreparedCache: 2 leads of noise, the site records lead II at half size."""
    x = np.random.default_rng(0).standard_normal((len(meta), 2, 200)).astype(np.float32) * 0.2
    x[:, 1] *= 0.5
    return SimpleNamespace(meta=meta, signals=x, preprocess=None, path=Path("fake-cache"), manifest={},
                           indices=lambda folds=None: np.arange(len(meta)))


@dataclass
class _Checkpoint:
    """Predicts ``age`` = 100 x the RMS of lead II of what it is given."""

    calibration: Any
    preprocess: Any = field(default_factory=lambda: SimpleNamespace(leads=("I", "II")))
    task: Any = None
    path: Path = Path("fake.safetensors")
    model_name: str = "fake"
    config: dict | None = None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"age": 100.0 * np.sqrt(np.mean(np.asarray(x, dtype=np.float64)[:, 1] ** 2, axis=-1))}


def test_evaluate_with_site_gain_auto_scales_the_inputs_and_records_the_gain():
    n = 60
    meta = pd.DataFrame({"record_id": [f"r{i}" for i in range(n)], "age": np.full(n, 20.0), "fold": 10})
    ck = _Checkpoint(Calibration(folds=[9], n=100, lead_rms_mv={"I": 0.2, "II": 0.2}))
    plain = evaluate_checkpoint(ck, _site_cache(meta), n_boot=10, progress=False)
    gained = evaluate_checkpoint(ck, _site_cache(meta), n_boot=10, progress=False, site_gain="auto")
    mae = {name: r["outputs"]["age"]["subsets"]["all"]["metrics"]["mae"]["value"]
           for name, r in (("plain", plain), ("gained", gained))}
    rms = np.sqrt(np.mean(_site_cache(meta).signals[:, 1].astype(np.float64) ** 2, axis=-1))
    expected = 100.0 * rms * 0.2 / np.median(rms)  # lead II scaled to the reference's median
    assert mae["plain"] == pytest.approx(np.mean(np.abs(100.0 * rms - 20.0)), rel=1e-4)  # about 10 y
    assert mae["gained"] == pytest.approx(np.mean(np.abs(expected - 20.0)), rel=1e-4)    # about 1 y
    assert gained["provenance"]["site_gain"]["gains"] == pytest.approx([1.0, 2.0], rel=0.05)
    assert "site_gain" not in plain["provenance"] and any("site gain" in n for n in gained["notes"])


def test_on_ludb_the_shipped_model_gets_a_chest_lead_gain_of_about_two(ludb_dir):
    # the documented finding (docs/results.md, "Other hospitals"), on the real external files
    from ecglens.artifact import list_pretrained
    from ecglens.predict import find_records

    if "age-sex-fast" not in list_pretrained():
        pytest.skip("age-sex-fast is not shipped in this install")
    pred = Predictor.from_pretrained("age-sex-fast")
    gain = pred.estimate_site_gain(find_records([str(ludb_dir)]), workers=0, progress=False)
    assert pred.estimate_site_gain(ludb_dir, sample=60, workers=0, progress=False).n_records == 60  # a folder
    by_lead = dict(zip(gain.leads, gain.gains, strict=True))
    assert gain.n_records == 197
    assert all(0.85 < by_lead[lead] < 1.3 for lead in ("I", "II", "III", "aVR", "aVL", "aVF")), by_lead
    assert all(by_lead[lead] > 2.0 for lead in ("V2", "V3", "V4")), by_lead
