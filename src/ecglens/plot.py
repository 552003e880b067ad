"""12-lead ECG plots on ECG paper.

:func:`plot_ecg` draws an :class:`~ecglens.ecg.Ecg` the way an electrocardiograph prints it:

* paper speed 25 mm/s and gain 10 mm/mV; minor grid every 1 mm (light red), major grid every 5 mm (darker red);
* the standard 3x4 layout (``I, aVR, V1, V4`` / ``II, aVL, V2, V5`` / ``III, aVF, V3, V6``), each column showing
  the next consecutive quarter of the page time (2.5 s of a 10 s page), as on a printed ECG;
* a full-length rhythm strip (lead II by default) under the 3x4 block;
* a 1 mV calibration pulse (10 mm high, 0.2 s wide) at the start of every row, lead labels, and a short header
  stating record, age, sex, sampling rate, speed and gain.

Everything is drawn in millimetres of paper and the figure size is derived from the paper size, so 1 mm on the
page is square (``figsize = paper_mm / 25.4``). Matplotlib's object API is used with the Agg canvas (no
``pyplot``, no global state), so plotting is headless and thread-safe and figures are freed when dropped.

Any sampling rate works; records shorter than the page leave the rest of the page blank, longer ones show
``[start, start + seconds)``. Leads missing from the record are left blank and labelled ``(missing)``; leads
derived from I and II are marked ``*``. An optional ``overlay`` ([n_leads, n_samples], e.g. an attribution map
from :mod:`ecglens.evaluate.explain`) is drawn as a coloured background behind each trace or as the trace colour.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from .ecg import Ecg
from .exceptions import EcglensError
from .leads import normalize_lead_name

__all__ = ["ECG_LAYOUT_3X4", "PaperSpec", "plot_ecg"]

#: the standard printed layout: rows of leads, each column a consecutive quarter of the page time
ECG_LAYOUT_3X4: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)

_MM_PER_INCH = 25.4
_TRACE_COLOR = "#111111"
_MINOR_COLOR = "#f6c3c3"
_MAJOR_COLOR = "#e27d7d"
_PAPER_COLOR = "#fffafa"
#: default overlay colormaps per mode: (non-negative values, signed values); light colours suit a background,
#: dark-ended ones a trace
_DEFAULT_CMAPS: dict[str, tuple[str, str]] = {"background": ("Blues", "PuOr_r"), "line": ("plasma", "coolwarm")}


@dataclass(frozen=True)
class PaperSpec:
    """Geometry of the printed page, in millimetres (and mm/s, mm/mV).

    Parameters
    ----------
    speed_mm_s : float
        Paper speed (25 mm/s is the clinical standard).
    gain_mm_mv : float
        Amplitude scale (10 mm/mV is the clinical standard).
    row_mm : float
        Height of each row (three lead rows plus the rhythm strip).
    left_mm : float
        Left margin holding the calibration pulse.
    right_mm, bottom_mm, top_mm : float
        Other margins; the top margin holds the header.
    """

    speed_mm_s: float = 25.0
    gain_mm_mv: float = 10.0
    row_mm: float = 40.0
    left_mm: float = 10.0
    right_mm: float = 5.0
    bottom_mm: float = 5.0
    top_mm: float = 10.0

    def size_mm(self, seconds: float, n_rows: int) -> tuple[float, float]:
        """Paper (width, height) in mm for ``seconds`` of trace and ``n_rows`` rows."""
        width = self.left_mm + seconds * self.speed_mm_s + self.right_mm
        height = self.bottom_mm + n_rows * self.row_mm + self.top_mm
        return width, height


def plot_ecg(
    ecg: Ecg,
    path: str | os.PathLike | IO[bytes] | None = None,
    title: str | None = None,
    rhythm_lead: str | None = "II",
    ax: Axes | None = None,
    dpi: float = 150.0,
    overlay: np.ndarray | None = None,
    overlay_mode: str = "background",
    overlay_cmap: str | None = None,
    seconds: float = 10.0,
    start: float = 0.0,
    layout: Sequence[Sequence[str]] = ECG_LAYOUT_3X4,
    paper: PaperSpec = PaperSpec(),
) -> Figure:
    """Draw a 12-lead ECG on ECG paper (25 mm/s, 10 mm/mV, 3x4 layout + rhythm strip).

    Parameters
    ----------
    ecg : Ecg
        The ECG; ``signal`` [n_leads, n_samples] in mV at ``ecg.fs`` Hz (any fs, any duration, any subset of
        leads).
    path : str, path or binary file object, optional
        When given, the figure is saved there (PNG unless the suffix says otherwise) at ``dpi``.
    title : str, optional
        Header text; default: record id, age and sex.
    rhythm_lead : str or None
        Lead of the full-length rhythm strip under the 3x4 block (default ``"II"``); ``None`` for no strip.
    ax : matplotlib Axes, optional
        Draw into this axes (its figure is returned and not resized); default: a new figure sized so 1 mm of
        paper is 1 mm of figure.
    dpi : float
        Resolution of the new figure and of the saved file (dots per inch).
    overlay : np.ndarray, shape (n_leads, n_samples), optional
        Per-lead per-sample values aligned with ``ecg.signal`` (e.g. attributions); coloured behind or along the
        traces. Non-negative values use a sequential colormap, signed values a diverging one centred on 0.
    overlay_mode : {"background", "line"}
        Draw ``overlay`` as a coloured band behind each trace, or as the trace colour.
    overlay_cmap : str, optional
        Matplotlib colormap name for ``overlay`` (default: ``"Blues"`` / ``"PuOr_r"`` for non-negative / signed
        values as a background, ``"plasma"`` / ``"coolwarm"`` as the trace colour).
    seconds : float
        Page duration in s (each of the 4 columns shows ``seconds / 4``; the rhythm strip all of it).
    start : float
        Time in s of the record at the left edge of the page (for records longer than ``seconds``).
    layout : sequence of sequence of str
        Rows of lead names (default :data:`ECG_LAYOUT_3X4`); every row must have the same number of columns.
    paper : PaperSpec
        Paper speed, gain and margins.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (Agg canvas). Save it with ``fig.savefig(path)``.

    Raises
    ------
    EcglensError
        When ``ecg`` is not an :class:`Ecg`, ``overlay`` does not match the signal's shape, or an option is
        invalid.
    """
    _check_inputs(ecg, overlay, overlay_mode, seconds, start, layout)
    rows = [tuple(normalize_lead_name(n) for n in row) for row in layout]
    strip = normalize_lead_name(rhythm_lead) if rhythm_lead else None
    n_rows = len(rows) + (1 if strip else 0)
    width, height = paper.size_mm(seconds, n_rows)
    fig, ax = _figure_and_axes(ax, width, height, dpi)
    _draw_grid(ax, width, height)
    style = _overlay_style(overlay, overlay_cmap, overlay_mode)
    ctx = _Context(ecg, paper, seconds, start, width, height, style, overlay_mode)
    n_cols = len(rows[0])
    for r, row in enumerate(rows):
        for c, lead in enumerate(row):
            t0 = start + c * seconds / n_cols
            ctx.draw_lead(ax, lead, r, t0, seconds / n_cols, separator=c > 0)
    if strip:
        ctx.draw_lead(ax, strip, len(rows), start, seconds, separator=False)
    for r in range(n_rows):
        _draw_calibration(ax, paper, ctx.baseline(r))
    _draw_header(ax, ecg, title, paper, seconds, width, height)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if path is not None:
        fig.savefig(path, dpi=dpi, facecolor=fig.get_facecolor())
    return fig


# ---------------------------------------------------------------------------------------------------- internals
def _check_inputs(
    ecg: Any, overlay: np.ndarray | None, mode: str, seconds: float, start: float, layout: Sequence[Sequence[str]]
) -> None:
    if not isinstance(ecg, Ecg):
        raise EcglensError(
            f"plot_ecg expects an ecglens.Ecg, got {type(ecg).__name__}; wrap an array with "
            "ecglens.Ecg(signal=[n_leads, n_samples] in mV, fs=..., leads=[...])."
        )
    if overlay is not None and np.shape(overlay) != ecg.signal.shape:
        raise EcglensError(
            f"overlay has shape {np.shape(overlay)} but the ECG signal has shape {ecg.signal.shape}; give one "
            "value per lead and sample, aligned with ecg.signal (resample the attribution to ecg.fs first)."
        )
    if mode not in _OVERLAY_DRAWERS:
        raise EcglensError(f"overlay_mode must be one of {sorted(_OVERLAY_DRAWERS)}, got {mode!r}.")
    if not (np.isfinite(seconds) and seconds > 0 and np.isfinite(start) and start >= 0):
        raise EcglensError(f"seconds must be > 0 and start >= 0 (got seconds={seconds}, start={start}).")
    if not layout or len({len(row) for row in layout}) != 1 or len(layout[0]) == 0:
        raise EcglensError("layout must be a non-empty list of rows with the same number of leads in each.")


def _figure_and_axes(ax: Axes | None, width: float, height: float, dpi: float) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=(width / _MM_PER_INCH, height / _MM_PER_INCH), dpi=dpi, facecolor=_PAPER_COLOR)
    FigureCanvasAgg(fig)
    return fig, fig.add_axes((0.0, 0.0, 1.0, 1.0))


def _draw_grid(ax: Axes, width: float, height: float) -> None:
    """Minor (1 mm) and major (5 mm) grid lines over the whole page."""
    ax.add_patch(_rect(0, 0, width, height, _PAPER_COLOR))
    xs = np.arange(0, np.floor(width) + 1)
    ys = np.arange(0, np.floor(height) + 1)
    for step, color, lw, z in ((1, _MINOR_COLOR, 0.3, 0.1), (5, _MAJOR_COLOR, 0.6, 0.2)):
        vx = xs[(xs % step) == 0]
        hy = ys[(ys % step) == 0]
        segs = [((x, 0), (x, height)) for x in vx] + [((0, y), (width, y)) for y in hy]
        ax.add_collection(LineCollection(segs, colors=color, linewidths=lw, zorder=z))


def _rect(x: float, y: float, w: float, h: float, color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=color, edgecolor="none", zorder=0)


def _draw_calibration(ax: Axes, paper: PaperSpec, baseline: float) -> None:
    """A 1 mV, 0.2 s calibration pulse in the left margin."""
    up = paper.gain_mm_mv  # 1 mV
    wide = 0.2 * paper.speed_mm_s
    x0 = paper.left_mm - wide - 3.0
    xs = [x0 - 1.0, x0, x0, x0 + wide, x0 + wide, paper.left_mm - 1.0]
    ys = [baseline, baseline, baseline + up, baseline + up, baseline, baseline]
    ax.plot(xs, ys, color=_TRACE_COLOR, lw=0.8, zorder=3, solid_joinstyle="miter")


def _draw_header(
    ax: Axes, ecg: Ecg, title: str | None, paper: PaperSpec, seconds: float, width: float, height: float
) -> None:
    if title is None:
        bits = [ecg.record_id or "ECG"]
        bits += [f"age {ecg.age:g}"] if ecg.age is not None else []
        bits += [f"sex {ecg.sex}"] if ecg.sex else []
        title = "   ".join(bits)
    y = height - paper.top_mm / 2
    ax.text(paper.left_mm, y, title, fontsize=10, va="center", ha="left", zorder=5, fontweight="bold")
    info = f"{paper.speed_mm_s:g} mm/s   {paper.gain_mm_mv:g} mm/mV   {ecg.fs:g} Hz   {ecg.duration:.2f} s recorded"
    if ecg.derived_leads:
        info += "   * derived from I and II"
    ax.text(width - paper.right_mm, y, info, fontsize=8, va="center", ha="right", zorder=5)


def _overlay_style(overlay: np.ndarray | None, cmap: str | None, mode: str) -> dict[str, Any] | None:
    """Colormap and normalisation of the overlay (robust: 99th percentile of |values|)."""
    if overlay is None:
        return None
    values = np.asarray(overlay, dtype=np.float64)
    finite = values[np.isfinite(values)]
    signed = bool(finite.size > 0 and finite.min() < 0)
    vmax = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    norm = TwoSlopeNorm(0.0, -vmax, vmax) if signed else Normalize(0.0, vmax, clip=True)
    name = cmap or _DEFAULT_CMAPS[mode][int(signed)]
    return {"values": values, "norm": norm, "cmap": colormaps[name]}


@dataclass
class _Context:
    """What every lead panel needs: the record, paper geometry and the overlay style."""

    ecg: Ecg
    paper: PaperSpec
    seconds: float
    start: float
    width: float
    height: float
    overlay: dict[str, Any] | None
    overlay_mode: str

    def baseline(self, row: int) -> float:
        """Baseline (0 mV) of ``row`` (0 = top) in mm from the bottom of the page."""
        return self.height - self.paper.top_mm - (row + 0.5) * self.paper.row_mm

    def x_of(self, t: np.ndarray | float) -> np.ndarray | float:
        """Page x (mm) of record time ``t`` (s)."""
        return self.paper.left_mm + (np.asarray(t) - self.start) * self.paper.speed_mm_s

    def draw_lead(self, ax: Axes, lead: str, row: int, t0: float, dur: float, separator: bool) -> None:
        """Draw ``lead`` from record time ``t0`` for ``dur`` s on ``row``, with its label."""
        base = self.baseline(row)
        x_label = float(self.x_of(t0)) + 1.0
        y_label = base + 0.3 * self.paper.row_mm
        if separator:
            ax.plot([self.x_of(t0)] * 2, [base - 3, base + 3], color=_TRACE_COLOR, lw=0.8, zorder=3)
        if lead not in self.ecg.leads:
            ax.text(x_label, y_label, f"{lead} (missing)", fontsize=8, color="#777777", zorder=5)
            return
        star = "*" if lead in self.ecg.derived_leads else ""
        ax.text(x_label, y_label, lead + star, fontsize=9, fontweight="bold", zorder=5)
        idx = self.ecg.leads.index(lead)
        fs = self.ecg.fs
        i0 = max(int(np.ceil(t0 * fs - 1e-9)), 0)
        i1 = min(int(np.ceil((t0 + dur) * fs - 1e-9)) + 1, self.ecg.n_samples)  # +1: join the next column
        if i1 - i0 < 2:
            return
        t = np.arange(i0, i1) / fs
        x = self.x_of(t)
        y = base + (self.ecg.signal[idx, i0:i1] - self._offset(idx)) * self.paper.gain_mm_mv
        if self.overlay is not None:
            values = self.overlay["values"][idx, i0:i1]
            _OVERLAY_DRAWERS[self.overlay_mode](ax, x, y, values, base, self.paper.row_mm, self.overlay)
            if self.overlay_mode == "line":
                return
        ax.plot(x, y, color=_TRACE_COLOR, lw=0.7, zorder=4, solid_joinstyle="round")

    def _offset(self, idx: int) -> float:
        """Baseline offset of a lead (median over the page window), so every trace sits on its baseline."""
        fs = self.ecg.fs
        i0 = int(self.start * fs)
        seg = self.ecg.signal[idx, i0 : i0 + int(np.ceil(self.seconds * fs))]
        seg = seg[np.isfinite(seg)]
        return float(np.median(seg)) if seg.size else 0.0


def _overlay_background(
    ax: Axes, x: np.ndarray, y: np.ndarray, values: np.ndarray, base: float, row_mm: float, style: dict
) -> None:
    """A band of colour behind the trace, one column per sample."""
    half = 0.45 * row_mm
    ax.imshow(
        values[np.newaxis, :],
        extent=(float(x[0]), float(x[-1]), base - half, base + half),
        cmap=style["cmap"],
        norm=style["norm"],
        aspect="auto",
        interpolation="nearest",
        alpha=0.75,
        zorder=1,
    )


def _overlay_line(
    ax: Axes, x: np.ndarray, y: np.ndarray, values: np.ndarray, base: float, row_mm: float, style: dict
) -> None:
    """The trace itself coloured by the overlay (segment colour = mean of its two end samples)."""
    pts = np.column_stack([x, y])
    segs = np.stack([pts[:-1], pts[1:]], axis=1)
    seg_values = 0.5 * (values[:-1] + values[1:])
    lc = LineCollection(segs, cmap=style["cmap"], norm=style["norm"], linewidths=1.2, zorder=4)
    lc.set_array(np.nan_to_num(seg_values))
    ax.add_collection(lc)


_OVERLAY_DRAWERS: dict[str, Callable[..., None]] = {
    "background": _overlay_background,
    "line": _overlay_line,
}
