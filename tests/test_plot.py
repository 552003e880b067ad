"""Tests of ecglens.plot.plot_ecg (12-lead ECG on ECG paper)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from ecglens import CANONICAL_LEADS, Ecg
from ecglens.exceptions import EcglensError, SignalQualityWarning
from ecglens.plot import PaperSpec, plot_ecg
from ecglens.signal import fill_nans

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _synthetic(fs: float = 500.0, seconds: float = 10.0, leads=CANONICAL_LEADS) -> Ecg:
    """Beats at 72/min: a 1.5 mV triangle 'QRS' and a 0.3 mV 'T' wave, scaled per lead."""
    t = np.arange(round(fs * seconds)) / fs
    phase = (t * 1.2) % 1.0
    qrs = np.clip(1.0 - np.abs(phase - 0.2) / 0.02, 0, None) * 1.5
    twave = 0.3 * np.exp(-(((phase - 0.45) / 0.05) ** 2))
    sig = np.stack([(qrs + twave) * (1 - 0.1 * i) for i in range(len(leads))])
    return Ecg(sig, fs, leads, record_id="synthetic", age=50, sex="M")


def _trace_lines(fig: Figure) -> list:
    return [ln for ln in fig.axes[0].get_lines() if ln.get_zorder() == 4]


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_png_written_with_physical_size(tmp_path):
    ecg = _synthetic()
    path = tmp_path / "ecg.png"
    fig = plot_ecg(ecg, path=path, dpi=100)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert 20_000 < len(data) < 5_000_000
    # 10 s at 25 mm/s + 15 mm margins, 4 rows of 40 mm + 15 mm margins; 1 mm of paper = 1 mm of figure
    width_mm, height_mm = PaperSpec().size_mm(10.0, 4)
    assert (width_mm, height_mm) == (265.0, 175.0)
    np.testing.assert_allclose(fig.get_size_inches(), [width_mm / 25.4, height_mm / 25.4])
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.0, width_mm) and ax.get_ylim() == (0.0, height_mm)
    # PNG header: width and height in pixels match mm / 25.4 * dpi
    w_px, h_px = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert abs(w_px - width_mm / 25.4 * 100) <= 1 and abs(h_px - height_mm / 25.4 * 100) <= 1


def test_layout_segments_and_scale():
    ecg = _synthetic(fs=250.0)
    fig = plot_ecg(ecg)
    lines = _trace_lines(fig)
    assert len(lines) == 13  # 12 panels + rhythm strip
    texts = _texts(fig)
    for lead in CANONICAL_LEADS:
        assert lead in texts
    # 3x4 block: each column is 2.5 s = 62.5 mm wide and shows the next 2.5 s of the record
    first = lines[0].get_xdata()  # lead I, column 0
    assert first[0] == pytest.approx(10.0) and first[-1] == pytest.approx(10.0 + 62.5)
    avr = lines[1].get_xdata()  # aVR, column 1 (drawn second)
    assert avr[0] == pytest.approx(10.0 + 62.5)
    strip = lines[-1].get_xdata()
    assert strip[-1] - strip[0] == pytest.approx(250.0 - 25.0 / 250.0, abs=1e-6)
    # 10 mm/mV: lead I's peak-to-trough (1.8 mV, QRS + T) is 18 mm on paper
    y = lines[0].get_ydata()
    sig = ecg.signal[0, : len(y)]
    assert (y.max() - y.min()) == pytest.approx(10.0 * (sig.max() - sig.min()), rel=1e-5)


def test_missing_leads_and_short_record(tmp_path):
    ecg = _synthetic(fs=100.0, seconds=7.0, leads=("I", "II", "V1", "V2", "V3"))
    fig = plot_ecg(ecg, path=tmp_path / "short.png")
    texts = _texts(fig)
    for lead in ("aVR", "III", "V4", "V6"):
        assert f"{lead} (missing)" in texts
    # column 3 (7.5-10 s) is beyond the 7 s record: nothing drawn for V4-V6, strip ends at 7 s
    lines = _trace_lines(fig)
    assert len(lines) == 5 + 1
    assert lines[-1].get_xdata()[-1] == pytest.approx(10.0 + 6.99 * 25.0)
    assert (tmp_path / "short.png").stat().st_size > 10_000


def test_long_record_start_and_missing_rhythm_lead():
    ecg = _synthetic(fs=400.0, seconds=15.0, leads=("I", "aVR", "V1", "V4"))
    fig = plot_ecg(ecg, start=5.0, rhythm_lead="II")
    assert "II (missing)" in _texts(fig)
    lines = _trace_lines(fig)
    assert len(lines) == 4  # one per present lead; no rhythm strip trace
    assert lines[0].get_xdata()[0] == pytest.approx(10.0)  # t = 5 s at the left edge


def test_derived_leads_marked_and_title():
    ecg = _synthetic().replace(derived_leads=("III", "aVR", "aVL", "aVF"))
    fig = plot_ecg(ecg, title="my title", rhythm_lead=None)
    texts = _texts(fig)
    assert "III*" in texts and "my title" in texts
    assert len(_trace_lines(fig)) == 12
    assert fig.get_size_inches()[1] == pytest.approx(PaperSpec().size_mm(10.0, 3)[1] / 25.4)


@pytest.mark.parametrize("mode", ["background", "line"])
@pytest.mark.parametrize("signed", [False, True])
def test_overlay(mode, signed):
    ecg = _synthetic(fs=100.0)
    overlay = np.abs(np.gradient(ecg.signal, axis=1))
    if signed:
        overlay = overlay - overlay.mean()
    fig = plot_ecg(ecg, overlay=overlay, overlay_mode=mode)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:8] == PNG_MAGIC
    ax = fig.axes[0]
    if mode == "background":
        assert len(ax.images) == 13
    else:
        assert len(ax.collections) == 2 + 13  # the two grid collections + one coloured trace per panel
    assert ax.get_aspect() == 1.0


def test_draw_into_given_axes():
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot(111)
    out = plot_ecg(_synthetic(fs=100.0), ax=ax)
    assert out is fig
    assert ax.get_aspect() == 1.0 and len(ax.get_lines()) > 12


def test_bad_inputs_raise_clear_errors():
    ecg = _synthetic(fs=100.0)
    with pytest.raises(EcglensError, match="Ecg"):
        plot_ecg(ecg.signal)
    with pytest.raises(EcglensError, match="overlay has shape"):
        plot_ecg(ecg, overlay=np.zeros((12, 10)))
    with pytest.raises(EcglensError, match="overlay_mode"):
        plot_ecg(ecg, overlay=np.zeros(ecg.signal.shape), overlay_mode="glow")
    with pytest.raises(EcglensError, match="seconds"):
        plot_ecg(ecg, seconds=0)


def test_nan_samples_do_not_crash(tmp_path):
    ecg = _synthetic(fs=100.0)
    sig = ecg.signal.copy()
    sig[3, 100:200] = np.nan
    sig[5] = np.nan
    with pytest.warns(SignalQualityWarning):  # an Ecg holds finite samples: NaNs are repaired as readers do
        sig = fill_nans(sig, ecg.leads)
    plot_ecg(ecg.replace(signal=sig), path=tmp_path / "nan.png")
    assert (tmp_path / "nan.png").stat().st_size > 10_000


def test_real_ptbxl_fixture(fixtures_dir, tmp_path):
    """A real PTB-XL record (500 Hz) read with the wfdb package plots to a sane PNG."""
    wfdb = pytest.importorskip("wfdb")
    rec = wfdb.rdrecord(str(fixtures_dir / "ptbxl_official" / "records500" / "00000" / "00022_hr"))
    ecg = Ecg(rec.p_signal.T, rec.fs, rec.sig_name, record_id="00022_hr")
    fig = plot_ecg(ecg, path=tmp_path / "real.png")
    assert len(_trace_lines(fig)) == 13
    assert 50_000 < (tmp_path / "real.png").stat().st_size < 5_000_000
