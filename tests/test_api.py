"""The package's public surface as a user meets it in a notebook: ``dir(ecglens)``, callable transforms,
``create_model(name, pretrained=True)``, ``Predictor.predict`` on in-memory ECGs, the ``Ecg`` conveniences
(``to_dataframe``, ``plot``, ``from_wfdb``) and the Jupyter reprs.

Predictions use a tiny, randomly initialised ``cnn_baseline`` saved in the test; expected values are what the same
predictor gives on the same data through files (``predict_paths``), never hard-coded numbers.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from synthetic_signals import synthetic_ecg

import ecglens
from ecglens.artifact import save_checkpoint
from ecglens.data.targets import task_from_name
from ecglens.ecg import Ecg
from ecglens.exceptions import EcglensError
from ecglens.leads import CANONICAL_LEADS
from ecglens.predict import Predictor
from ecglens.signal.transforms import Preprocess


@pytest.fixture(scope="module")
def tiny_predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [60.0, 0.0], [80.0, 1.0]]))
    model = ecglens.models.create_model("cnn_baseline", num_outputs=task.num_outputs, channels=(8, 16))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return Predictor(save_checkpoint(path, model, task=task, preprocess=Preprocess(), metrics={"age_mae": 9.0}))


def test_dir_lists_the_public_names_including_the_lazy_ones_and_hides_helpers():
    names = dir(ecglens)
    assert set(ecglens.__all__) <= set(names)
    assert {"Predictor", "Preprocess", "create_model", "load_checkpoint"} <= set(names)
    assert {"io", "signal", "models"} <= set(names)
    assert not {"Any", "annotations", "_LAZY", "_version"} & set(names)
    for name in ecglens.__all__:  # every listed name resolves
        assert getattr(ecglens, name) is not None


def test_preprocess_is_callable_like_apply():
    ecg = Ecg(synthetic_ecg(fs=500.0, seconds=10.0), fs=500.0, leads=CANONICAL_LEADS)
    pre = Preprocess(fs=100.0, seconds=5.0)
    x = pre(ecg)
    assert x.shape == (12, 500) and x.dtype == np.float32
    np.testing.assert_array_equal(x, pre.apply(ecg))
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    rand = Preprocess(fs=100.0, seconds=2.0, crop="random")
    np.testing.assert_array_equal(rand(ecg, rng_a), rand.apply(ecg, rng_b))


# ----------------------------------------------------------------------------------------------- create_model
def test_create_model_pretrained_loads_the_shipped_weights_in_eval_mode():
    model = ecglens.create_model("age-sex-fast", pretrained=True)
    shipped = ecglens.load_checkpoint("age-sex-fast").model
    assert not model.training
    for (name, p), (_, q) in zip(model.state_dict().items(), shipped.state_dict().items(), strict=True):
        assert torch.equal(p, q), name
    fresh = ecglens.create_model("resnet1d_ribeiro", num_outputs=3, filters=[32, 48, 64, 96, 128])  # no weights
    assert fresh.training
    assert not all(torch.equal(p, q) for p, q in zip(fresh.parameters(), shipped.parameters(), strict=True))


def test_create_model_pretrained_by_architecture_or_path_and_with_a_new_head(tmp_path, monkeypatch):
    from ecglens.artifact import list_pretrained, pretrained_architectures, resolve_checkpoint
    from ecglens.artifact import pretrained as pretrained_mod
    from ecglens.exceptions import CheckpointError

    archs = pretrained_architectures()
    assert set(archs) == set(list_pretrained()) and archs["age-sex-fast"] == "resnet1d_ribeiro"
    two = {"age-sex-fast": "resnet1d_ribeiro", "other": "resnet1d_ribeiro"}
    monkeypatch.setattr(pretrained_mod, "pretrained_architectures", lambda: two)
    with pytest.raises(CheckpointError, match=r"2 shipped checkpoints use architecture 'resnet1d_ribeiro'"):
        ecglens.create_model("resnet1d_ribeiro", pretrained=True)
    monkeypatch.setattr(pretrained_mod, "pretrained_architectures", lambda: {"age-sex-fast": "resnet1d_ribeiro"})
    by_arch = ecglens.create_model("resnet1d_ribeiro", pretrained=True)  # the one shipped resnet1d_ribeiro
    by_path = ecglens.create_model(resolve_checkpoint("age-sex-fast"), pretrained=True)
    x = np.random.default_rng(0).normal(size=(2, 12, 400)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(by_arch(torch.from_numpy(x)).numpy(), by_path(torch.from_numpy(x)).numpy())
        head = ecglens.create_model("age-sex-fast", pretrained=True, num_outputs=2)
        assert head(torch.from_numpy(x)).shape == (2, 2)


def test_create_model_pretrained_errors_name_the_shipped_models():
    from ecglens.exceptions import CheckpointError, ConfigError

    with pytest.raises(CheckpointError, match=r"age-sex-fast \(resnet1d_ribeiro\)"):
        ecglens.create_model("xresnet1d50", pretrained=True)
    with pytest.raises(ConfigError, match="pretrained=False"):
        ecglens.create_model("age-sex", pretrained=True, dropout=0.5)
    with pytest.raises(ConfigError, match=r"ecglens.create_model\('resnet1d_ribeiro', pretrained=True\)"):
        ecglens.models.create_model("resnet1d_ribeiro", pretrained=True)
    assert ecglens.models.create_model("cnn_baseline", pretrained=False).training


# ----------------------------------------------------------------------------------------------- Predictor.predict
def test_predict_in_memory_ecgs_and_arrays_matches_the_file_path(tiny_predictor, tmp_path):
    ecg = Ecg(synthetic_ecg(fs=500.0, seconds=10.0), fs=500.0, leads=CANONICAL_LEADS, record_id="a")
    path = tmp_path / "a.npy"
    np.save(path, ecg.signal)
    by_file = tiny_predictor.predict_paths([path], progress=False, workers=0,
                                           read_kwargs={"fs": 500.0, "leads": CANONICAL_LEADS})
    table = tiny_predictor.predict([ecg, ecg.signal], fs=500.0, leads=CANONICAL_LEADS)
    assert list(table.columns) == list(by_file.columns)
    assert [c for c in table.columns if c in tiny_predictor.columns] == tiny_predictor.columns  # + derived ones
    assert list(table["record"]) == ["a", "1"] and list(table["status"]) == ["ok", "ok"]
    for name in tiny_predictor.output_names:
        assert table[name].tolist() == pytest.approx([by_file.loc[0, name]] * 2, rel=1e-6)
    assert table.attrs["n_ok"] == 2 and table.attrs["n_error"] == 0
    stacked = tiny_predictor.predict(np.stack([ecg.signal, ecg.signal]), fs=500.0, leads=CANONICAL_LEADS)
    assert list(stacked["record"]) == ["0", "1"] and stacked["age"].tolist() == pytest.approx(table["age"].tolist())
    one = tiny_predictor.predict(ecg)  # a single Ecg needs no fs / leads
    assert len(one) == 1 and one.loc[0, "status"] == "ok"


def test_predict_reports_bad_inputs_as_error_rows_in_order(tiny_predictor):
    good = synthetic_ecg(fs=250.0, seconds=10.0)
    nan = good.copy()
    nan[:, :] = np.nan
    table = tiny_predictor.predict([good, nan, good[:2], "record.hea", good], fs=250.0, leads=CANONICAL_LEADS)
    assert list(table["status"]) == ["ok", "error", "error", "error", "ok"]
    assert "NaN" in table.loc[1, "message"] and "lead names" in table.loc[2, "message"]
    assert "predict_paths" in table.loc[3, "message"]
    assert table.loc[1:3, "age"].isna().all() and table.attrs["n_error"] == 3


def test_predict_arrays_need_fs_and_leads(tiny_predictor):
    with pytest.raises(EcglensError, match="fs=500"):
        tiny_predictor.predict(synthetic_ecg(fs=500.0, seconds=10.0))


# ----------------------------------------------------------------------------------------------- Ecg conveniences
def test_ecg_to_dataframe_has_time_in_seconds_and_one_column_per_lead():
    ecg = Ecg(synthetic_ecg(fs=250.0, seconds=2.0), fs=250.0, leads=CANONICAL_LEADS)
    df = ecg.to_dataframe()
    assert list(df.columns) == list(CANONICAL_LEADS) and df.shape == (500, 12)
    assert df.index.name == "time_s" and df.index[1] == pytest.approx(1 / 250) and df.index[-1] == pytest.approx(1.996)
    np.testing.assert_array_equal(df["V3"].to_numpy(), ecg.lead("V3"))


def test_an_ecg_holds_its_signal_time_contiguous(fixtures_dir):
    # readers hand over [samples, leads] transposed; batch checks along time ran 11-12x slower on such views
    signal = np.asfortranarray(synthetic_ecg(fs=500.0, seconds=2.0))  # [12, 1000], time the slow axis
    ecg = Ecg(signal, fs=500.0, leads=CANONICAL_LEADS)
    assert ecg.signal.flags.c_contiguous and ecg.signal.dtype == np.float32
    np.testing.assert_array_equal(ecg.signal, signal.astype(np.float32))
    for path in sorted(fixtures_dir.rglob("*.hea"))[:5]:
        assert ecglens.read_ecg(path).signal.flags.c_contiguous, path


def test_ecg_plot_returns_the_paper_figure(tmp_path):
    ecg = Ecg(synthetic_ecg(fs=500.0, seconds=10.0), fs=500.0, leads=CANONICAL_LEADS, record_id="p")
    fig = ecg.plot(title="demo", path=tmp_path / "p.png", dpi=50)
    assert fig.__class__.__name__ == "Figure" and (tmp_path / "p.png").stat().st_size > 1000
    assert any(t.get_text() == "demo" for t in fig.axes[0].texts)


def test_ecg_from_wfdb_matches_read_ecg(tmp_path):
    import wfdb

    signal = synthetic_ecg(fs=500.0, seconds=4.0, n_leads=8).T.astype(np.float64)  # [n, 8] mV
    names = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    wfdb.wrsamp("rec", fs=500, units=["uV"] * 8, sig_name=names, p_signal=signal * 1000, fmt=["16"] * 8,
                adc_gain=[1.0] * 8, baseline=[0] * 8, comments=["Age: 57", "Sex: Female"], write_dir=str(tmp_path))
    ecg = Ecg.from_wfdb(wfdb.rdrecord(str(tmp_path / "rec"), physical=True))
    read = ecglens.read_ecg(tmp_path / "rec.hea")
    assert ecg.leads == read.leads == CANONICAL_LEADS and ecg.derived_leads == read.derived_leads
    assert (ecg.age, ecg.sex, ecg.fs, ecg.record_id) == (57.0, "F", 500.0, "rec")
    np.testing.assert_allclose(ecg.signal, read.signal, atol=1e-6)  # uV -> mV
    np.testing.assert_allclose(ecg.lead("V2"), signal[:, 3], atol=1e-3)
    with pytest.raises(EcglensError, match="physical=True"):
        Ecg.from_wfdb(wfdb.rdrecord(str(tmp_path / "rec"), physical=False))


def test_importing_ecg_loads_neither_matplotlib_nor_pandas():
    code = "import sys, ecglens.ecg; print(sorted({'matplotlib', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_jupyter_reprs_summarise_without_a_plot(tiny_predictor):
    ecg = Ecg(synthetic_ecg(fs=500.0, seconds=10.0), fs=500.0, leads=CANONICAL_LEADS, record_id="<r>", age=63, sex="F")
    html = ecg._repr_html_()
    assert "500 Hz" in html and "10 s" in html and "63 y" in html and "&lt;r&gt;" in html and "<img" not in html
    assert html.count("<td>") >= 12 + 7  # the fields and one cell per lead
    card = tiny_predictor.checkpoint._repr_html_()
    assert all(s in card for s in ("tiny (cnn_baseline)", "age, age_std, p_female", "100 Hz", "age_mae 9"))
