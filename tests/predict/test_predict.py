"""Tests of ecglens.predict (Predictor, input harmonisation, batch prediction) and ``ecglens predict``.

The model is a tiny, randomly initialised ``cnn_baseline`` saved with ``save_checkpoint`` in the test: the
expected values are always what the checkpoint gives on the *manually* preprocessed array
(``checkpoint.preprocess.apply(ecg)``), never hard-coded numbers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecglens import Ecg
from ecglens.artifact import load_checkpoint, save_checkpoint
from ecglens.cli import app
from ecglens.cli.demo import demo_predictions
from ecglens.data.targets import task_from_name
from ecglens.examples import example_paths
from ecglens.exceptions import ConfigError, EcglensError, LeadError, UnitError
from ecglens.leads import CANONICAL_LEADS, derive_limb_leads
from ecglens.models import create_model
from ecglens.predict import (
    Backend,
    InputAdapter,
    Prediction,
    Predictor,
    create_backend,
    find_records,
    list_backends,
    plan_windows,
    register_backend,
)
from ecglens.signal.transforms import Preprocess

OUTPUTS = ("age", "age_std", "p_female")


# ----------------------------------------------------------------------------------------------- helpers
def synthetic_signal(fs: float, seconds: float, leads=CANONICAL_LEADS, seed: int = 0) -> np.ndarray:
    """A plausible 12-lead ECG in mV [n_leads, n_samples]: Gaussian QRS / T waves every 0.8 s, Einthoven-
    consistent limb leads, some baseline wander. A function of time only, so every fs samples the same ECG."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(fs * seconds)) / fs
    beats = np.arange(0.3, seconds, 0.8)
    qrs = np.exp(-(((t[:, None] - beats) / 0.02) ** 2)).sum(axis=1)
    twave = np.exp(-(((t[:, None] - beats - 0.25) / 0.06) ** 2)).sum(axis=1)
    wander = 0.1 * np.sin(2 * np.pi * 0.25 * t)
    lead_i = 0.7 * qrs + 0.15 * twave + wander
    lead_ii = 1.1 * qrs + 0.3 * twave - 0.5 * wander
    sig = {"I": lead_i, "II": lead_ii, **derive_limb_leads(lead_i, lead_ii)}
    for k in range(1, 7):
        gain, shift = rng.uniform(-1.2, 1.5), rng.uniform(-0.01, 0.01)
        sig[f"V{k}"] = gain * np.interp(t - shift, t, qrs) + 0.2 * twave
    return np.stack([sig[name] for name in leads]).astype(np.float32)


def synthetic_ecg(fs: float = 500.0, seconds: float = 10.0, leads=CANONICAL_LEADS, scale: float = 1.0) -> Ecg:
    return Ecg(signal=synthetic_signal(fs, seconds, leads) * scale, fs=fs, leads=leads, record_id=f"syn{fs:g}")


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [60.0, 0.0], [80.0, 1.0]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(8, 16))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return save_checkpoint(path, model, task=task, preprocess=Preprocess(), metrics={"age_mae": 9.0})


@pytest.fixture(scope="module")
def predictor(checkpoint_path: Path) -> Predictor:
    return Predictor.from_pretrained(checkpoint_path)


def manual(predictor: Predictor, ecg: Ecg) -> dict[str, float]:
    """What the checkpoint gives on the manually preprocessed array (the oracle)."""
    ck = predictor.checkpoint
    out = ck.predict(ck.preprocess.apply(ecg)[None])
    return {k: float(v[0]) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------- one record
@pytest.mark.parametrize("fs", [100.0, 257.0, 400.0, 500.0, 1000.0])
def test_any_sampling_rate_matches_manual_preprocessing(predictor: Predictor, fs: float) -> None:
    ecg = synthetic_ecg(fs)
    pred = predictor.predict_ecg(ecg)
    assert isinstance(pred, Prediction) and pred.n_windows == 1
    expected = manual(predictor, ecg)
    assert set(pred.outputs) == set(OUTPUTS)
    for name in OUTPUTS:
        assert pred.outputs[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-6)
    assert all(np.isnan(v) for v in pred.window_spread.values())  # one window: no spread
    assert (f"resampled:{fs:g}->100" in pred.flags) == (fs != 100.0)
    assert not any(f.startswith(("padded", "cropped", "unit_converted", "derived")) for f in pred.flags)


def test_sampling_rates_agree_with_each_other(predictor: Predictor) -> None:
    """The same ECG sampled at 500 and 1000 Hz gives nearly the same prediction after resampling to 100 Hz."""
    a = predictor.predict_ecg(synthetic_ecg(500.0)).outputs["age"]
    b = predictor.predict_ecg(synthetic_ecg(1000.0)).outputs["age"]
    assert a == pytest.approx(b, abs=0.05)


def test_long_record_is_split_into_windows_with_spread(predictor: Predictor) -> None:
    ecg = synthetic_ecg(500.0, seconds=35.0)
    prepared = predictor.adapter.prepare(ecg)
    assert prepared.windows.shape == (4, 12, 1000)  # 35 s -> 4 windows of 10 s covering it (overlapping)
    assert prepared.starts[0] == 0 and prepared.starts[-1] + 1000 <= prepared.n_resampled == 3500
    assert prepared.starts[-1] + 1000 > 3500 - 4  # the last window reaches the end
    pred = predictor.predict_ecg(ecg)
    per_window = predictor.checkpoint.predict(prepared.windows)
    assert pred.n_windows == 4
    for name in OUTPUTS:
        assert pred.outputs[name] == pytest.approx(float(per_window[name].mean()), rel=1e-6)
        assert pred.window_spread[name] == pytest.approx(float(per_window[name].std(ddof=1)), rel=1e-5, abs=1e-9)
        assert np.isfinite(pred.window_spread[name]) and pred.window_spread[name] > 0
    assert "cropped" not in pred.flags


def test_short_record_is_padded(predictor: Predictor) -> None:
    ecg = synthetic_ecg(500.0, seconds=7.0)
    pred = predictor.predict_ecg(ecg)
    assert "padded" in pred.flags and pred.n_windows == 1
    assert pred.outputs["age"] == pytest.approx(manual(predictor, ecg)["age"], rel=1e-5)


def test_eight_leads_get_derived_limb_leads(predictor: Predictor) -> None:
    eight = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    full, part = synthetic_ecg(500.0), synthetic_ecg(500.0, leads=eight)
    pred = predictor.predict_ecg(part)
    assert "derived:III,aVR,aVL,aVF" in pred.flags
    assert pred.outputs["age"] == pytest.approx(predictor.predict_ecg(full).outputs["age"], rel=1e-5)


def test_shuffled_and_aliased_lead_names_are_reordered(predictor: Predictor) -> None:
    ecg = synthetic_ecg(500.0)
    order = np.random.default_rng(1).permutation(12)
    names = [ecg.leads[i].upper() if ecg.leads[i].startswith("a") else ecg.leads[i].lower() for i in order]
    shuffled = Ecg(signal=ecg.signal[order], fs=500.0, leads=names)
    assert predictor.predict_ecg(shuffled).outputs["age"] == pytest.approx(
        predictor.predict_ecg(ecg).outputs["age"], rel=1e-6)


def test_microvolts_are_converted_with_a_flag(predictor: Predictor) -> None:
    mv = synthetic_ecg(500.0)
    uv = synthetic_ecg(500.0, scale=1000.0)
    pred = predictor.predict_ecg(uv)
    assert "unit_converted:uV->mV" in pred.flags
    assert pred.outputs["age"] == pytest.approx(predictor.predict_ecg(mv).outputs["age"], rel=1e-4)
    with pytest.raises(UnitError, match="microvolts"):
        Predictor(predictor.checkpoint, convert_units=False).predict_ecg(uv)


def test_counts_at_unknown_gain_are_refused(predictor: Predictor) -> None:
    with pytest.raises(UnitError, match="unknown gain"):
        predictor.predict_ecg(synthetic_ecg(500.0, scale=37.0))


@pytest.mark.parametrize("leads", [("I", "V1", "V2", "V3", "V4", "V5", "V6"), ("I", "II", "III")])
def test_missing_leads_are_refused(predictor: Predictor, leads: tuple[str, ...]) -> None:
    with pytest.raises(LeadError, match="missing"):
        predictor.predict_ecg(synthetic_ecg(500.0, leads=leads))


def test_quality_flags(predictor: Predictor) -> None:
    sig = synthetic_signal(500.0, 10.0)
    sig[8] = 0.0  # V3 disconnected
    pred = predictor.predict_ecg(Ecg(signal=sig, fs=500.0, leads=CANONICAL_LEADS))
    assert "flat:V3" in pred.flags


def test_plan_windows() -> None:
    assert plan_windows(1000, 1000) == ([0], False)
    assert plan_windows(700, 1000) == ([-150], False)          # centred padding
    assert plan_windows(1050, 1000) == ([25], True)            # < 10 % longer: one centre crop
    assert plan_windows(1500, 1000) == ([0, 500], False)       # two overlapping windows cover it
    starts, cropped = plan_windows(100_000, 1000, max_windows=5)
    assert len(starts) == 5 and starts[-1] + 1000 <= 100_000 and cropped


def test_random_crop_contract_predicts_deterministically(predictor: Predictor) -> None:
    pre = Preprocess(crop="random")
    adapter = InputAdapter(pre)
    ecg = synthetic_ecg(500.0, seconds=10.5)
    a, b = adapter.prepare(ecg).windows, adapter.prepare(ecg).windows
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------------------------- backends
class _ConstantBackend:
    """Returns zeros: the raw outputs of a model that predicts the training mean."""

    def __init__(self, checkpoint, value: float = 0.0) -> None:
        self.n_out = checkpoint.task.num_outputs
        self.value = value

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), self.n_out), self.value, dtype=np.float32)


def test_backend_registry(checkpoint_path: Path) -> None:
    register_backend("constant-test", _ConstantBackend, overwrite=True)
    assert {"torch", "onnx", "constant-test"} <= set(list_backends())
    ck = load_checkpoint(checkpoint_path)
    backend = create_backend("constant-test", ck)
    assert isinstance(backend, Backend)
    pred = Predictor(ck, backend="constant-test").predict_ecg(synthetic_ecg(100.0))
    assert pred.outputs["age"] == pytest.approx(60.0)  # mean of the fitted labels 40, 60, 80
    assert pred.outputs["p_female"] == pytest.approx(0.5)
    assert Predictor(ck, backend=_ConstantBackend(ck)).predict_ecg(synthetic_ecg(100.0)).outputs["age"] == \
        pytest.approx(60.0)
    with pytest.raises(ConfigError, match="unknown prediction backend"):
        Predictor(ck, backend="no-such-backend")
    with pytest.raises(ConfigError, match="already registered"):
        register_backend("constant-test", lambda ck: _ConstantBackend(ck))


def test_torch_backend_shares_cores_with_reading_workers(checkpoint_path: Path, monkeypatch) -> None:
    """While reading workers run, the torch backend uses the cores they leave (>= 1), then restores its setting;
    threads set explicitly are never changed."""
    monkeypatch.setattr("ecglens.predict.backends.usable_cores", lambda: 4)  # cores this process may use
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        backend = create_backend("torch", load_checkpoint(checkpoint_path))
        with backend.sharing_cores(3):
            assert torch.get_num_threads() == 1
        with backend.sharing_cores(2):
            assert torch.get_num_threads() == 2
        with backend.sharing_cores(0):
            assert torch.get_num_threads() == 4
        assert torch.get_num_threads() == 4
        fixed = create_backend("torch", load_checkpoint(checkpoint_path), num_threads=3)
        with fixed.sharing_cores(3):
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------- folders
def _copy_record(src_hea: Path, folder: Path) -> None:
    for part in src_hea.parent.glob(src_hea.stem + ".*"):
        shutil.copy(part, folder / part.name)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """Three good WFDB records (one in a sub-folder) and four broken files."""
    root = tmp_path_factory.mktemp("mixed")
    (root / "sub").mkdir()
    examples = example_paths()
    _copy_record(examples[0], root)
    _copy_record(examples[1], root / "sub")
    _copy_record(examples[2], root)
    (root / "garbage.hea").write_text("this is not a header\n")
    (root / "orphan.dat").write_bytes(b"\x00\x01" * 100)
    (root / "broken.xml").write_text("<RestingECG><Waveform>")
    truncated = root / "sub" / "short.hea"
    truncated.write_text(examples[2].read_text().replace("sim_500hz_12lead", "short"))
    (root / "sub" / "short.dat").write_bytes((examples[2].with_suffix(".dat")).read_bytes()[:100])
    (root / "notes.txt").write_text("ignored: not an ECG suffix")
    return root, 3, 4


def test_find_records_counts_a_wfdb_record_once(mixed_folder, tmp_path: Path) -> None:
    root, n_good, n_bad = mixed_folder
    records = find_records([root, root / "sim_500hz_12lead.dat", root / "sim_500hz_12lead.hea"])
    names = [Path(r).name for r, _ in records]
    assert len(records) == n_good + n_bad and names.count("sim_500hz_12lead") == 1
    assert "notes.txt" not in names


def test_find_records_walks_a_folder_once(mixed_folder, monkeypatch) -> None:
    from ecglens.io import paths

    scans, real_scandir = [], paths.os.scandir
    monkeypatch.setattr(paths.os, "scandir", lambda top: (scans.append(str(top)), real_scandir(top))[1])
    root, n_good, n_bad = mixed_folder
    assert len(find_records(root)) == n_good + n_bad
    assert scans[0] == str(root) and len(scans) == len(set(scans)) == 2  # the folder and "sub", each once


@pytest.mark.parametrize("workers", [0, 2])
def test_folder_with_good_and_broken_files(predictor: Predictor, mixed_folder, workers: int) -> None:
    root, n_good, n_bad = mixed_folder
    table = predictor.predict_paths([root], progress=False, workers=workers, chunk_size=2, batch_size=2)
    # an uncalibrated checkpoint: the derived columns only (the sex call, the raw gap next to the recorded age)
    assert list(table.columns) == ["record", "status", "message", *OUTPUTS, "sex_call", "age_recorded", "age_gap",
                                   "sex_recorded", "patient_id", "exam_id", "n_windows", "flags"]
    assert (table["status"] == "ok").sum() == n_good and (table["status"] == "error").sum() == n_bad
    assert table.attrs["n_ok"] == n_good and table.attrs["n_error"] == n_bad
    errors = table[table["status"] == "error"]
    assert errors["message"].str.len().min() > 10 and errors["age"].isna().all()
    ok = table[table["status"] == "ok"]
    ok = ok.set_index(ok["record"].map(lambda r: Path(r).name))
    assert ok.loc["sim_400hz_15s", "n_windows"] == 2  # 15 s -> two windows
    # what the headers state (# Age: / # Sex: comments of the examples), not what the model predicts
    assert ok.loc["sim_500hz_12lead", ["age_recorded", "sex_recorded"]].tolist() == [63.0, "F"]
    assert ok.loc["sim_400hz_15s", ["age_recorded", "sex_recorded"]].tolist() == [45.0, "M"]
    assert (ok["patient_id"] == "").all() and (errors["sex_recorded"] == "").all()
    assert errors["age_recorded"].isna().all()
    assert "derived:III,aVR,aVL,aVF" in ok.loc["sim_250hz_8lead", "flags"]
    single = predictor.predict_file(root / "sim_500hz_12lead.hea")
    assert ok.loc["sim_500hz_12lead", "age"] == pytest.approx(single.outputs["age"], rel=1e-6)


def test_reading_workers_run_the_model_with_the_same_results(checkpoint_path: Path, mixed_folder) -> None:
    """With two reading workers the model runs in them (the main process's backend never runs) and the table is
    the one the main process computes alone, row for row (outputs to float32 rounding: the batches differ)."""
    root, _, _ = mixed_folder
    alone = Predictor.from_pretrained(checkpoint_path).predict_paths([root], progress=False, workers=0)
    predictor = Predictor.from_pretrained(checkpoint_path)
    calls: list[int] = []
    real_run = predictor.backend.run
    predictor.backend.run = lambda x: (calls.append(len(x)), real_run(x))[1]  # type: ignore[method-assign]
    pooled = predictor.predict_paths([root], progress=False, workers=2, chunk_size=1, batch_size=2)
    assert calls == []  # the workers' calls happened in their own (forked) copies
    pd.testing.assert_frame_equal(pooled, alone, check_exact=False, rtol=1e-6)
    predictor.predict_paths([root], progress=False, workers=0)
    assert calls  # and in this process when it reads alone


def test_raw_arrays_with_reader_options_beside_wfdb(predictor: Predictor, tmp_path: Path) -> None:
    _copy_record(example_paths()[2], tmp_path)
    eight = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    np.save(tmp_path / "arr.npy", synthetic_signal(250.0, 10.0, eight))
    table = predictor.predict_paths([tmp_path], progress=False, workers=0,
                                    read_kwargs={"fs": 250.0, "leads": eight})
    assert list(table["status"]) == ["ok", "ok"], table["message"].tolist()
    arr = table[table["record"].str.endswith("arr.npy")].iloc[0]
    assert "resampled:250->100" in arr["flags"] and "derived:III,aVR,aVL,aVF" in arr["flags"]


def test_real_records_at_100_and_500_hz_agree(predictor: Predictor, fixtures_dir: Path) -> None:
    """PTB-XL ships every record at 500 Hz and downsampled to 100 Hz: both must give nearly the same prediction
    (pair differences far smaller than the differences between records)."""
    root = fixtures_dir / "ptbxl_official"
    low = predictor.predict_paths(root / "records100", progress=False, workers=0)
    high = predictor.predict_paths(root / "records500", progress=False, workers=0)
    assert len(low) == len(high) >= 20 and (low["status"] == "ok").all() and (high["status"] == "ok").all()
    assert [Path(r).name[:5] for r in low["record"]] == [Path(r).name[:5] for r in high["record"]]
    assert high["flags"].str.contains("resampled:500->100").all()
    a, b = low["age"].to_numpy(), high["age"].to_numpy()
    assert np.corrcoef(a, b)[0, 1] > 0.95 and (a - b).std() < 0.25 * a.std()


def test_no_records_is_a_clear_error(predictor: Predictor, tmp_path: Path) -> None:
    with pytest.raises(EcglensError, match="no ECG records found"):
        predictor.predict_paths([tmp_path], progress=False)


# ----------------------------------------------------------------------------------------------- CLI, demo
def test_cli_predict_end_to_end(checkpoint_path: Path, mixed_folder, tmp_path: Path, capsys) -> None:
    root, n_good, n_bad = mixed_folder
    out = tmp_path / "preds.csv"
    code = app(["predict", str(root), "--model", str(checkpoint_path), "--output", str(out), "--workers", "1",
                "--no-progress"])
    assert code == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["record", "status", "message", "age", "age_std", "p_female", "sex_call",
                                   "age_recorded", "age_gap", "sex_recorded", "patient_id", "exam_id", "n_windows",
                                   "flags"]
    assert (table["status"] == "ok").sum() == n_good and (table["status"] == "error").sum() == n_bad
    printed = capsys.readouterr().out
    assert f"{n_good} ok, {n_bad} error" in printed and "ECGs/s" in printed


def test_cli_predict_unknown_model_is_a_clean_error(tmp_path: Path, capsys) -> None:
    code = app(["predict", str(tmp_path), "--model", "no-such-model", "--output", str(tmp_path / "p.csv")])
    assert code == 2 and "Unknown model name" in capsys.readouterr().err


def test_cli_output_into_a_closed_pipe_stops_quietly(monkeypatch, capsys) -> None:
    import ecglens.cli.predict as cli_predict

    def closed_pipe(args):  # what print() raises when the reader of `ecglens predict ... | head` has gone
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli_predict, "run_predict", closed_pipe)
    assert app(["predict", "x.hea", "--model", "age-sex"]) == 141
    assert "Traceback" not in capsys.readouterr().err


def test_demo_predictions_without_model_prints_a_note(tmp_path: Path, capsys) -> None:
    assert demo_predictions("no-such-model", tmp_path) is None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "not installed" in out[0]
    assert not (tmp_path / "preds.csv").exists()
