"""Matplotlib figure helpers for reports; each returns a ``Figure`` (never shows it).

The confusion matrix and ROC figures live in :mod:`cdrscreen.plotting`, shared with the
run folder's PNGs, and are re-exported here.

Figures use the object-oriented API only (no pyplot state besides creation), fixed
sizes (so reports lay out predictably at 1280 px and on A4 paper) and one colour per
class throughout a report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cdrscreen.plotting import CLASS_COLOURS, PATIENT_COLOUR, WIDE
from cdrscreen.plotting import confusion_matrix_figure as confusion_matrix_figure  # re-exported
from cdrscreen.plotting import fixed_figure as _fig
from cdrscreen.plotting import roc_figure as roc_figure  # re-exported
from cdrscreen.reports.cohort import FeatureDistribution


def _label_margin(labels: Sequence[str], fontsize: float = 8) -> float:
    """Left margin (inches) that fits the longest tick label."""
    longest = max((len(str(s)) for s in labels), default=4)
    return 0.25 + longest * fontsize * 0.0085


def no_data_figure(message: str, width: float = WIDE, height: float = 1.2) -> Figure:
    """Draw a small placeholder figure that states why a plot is missing."""
    fig, ax = _fig(width, height, left=0.1, right=0.1, bottom=0.1, top=0.1)
    a = ax[0, 0]
    a.axis("off")
    a.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#4a5565", wrap=True)
    return fig


# --------------------------------------------------------------------------- study
def interval_figure(
    table: pd.DataFrame,
    label: str = "label",
    value: str = "value",
    lo: str = "ci_low",
    hi: str = "ci_high",
    reference: float | None = None,
    reference_label: str = "majority baseline",
    xlabel: str = "balanced accuracy",
    highlight: Sequence[str] = (),
) -> Figure:
    """Point estimates with 95% CIs, one row per configuration (ablation, fusion)."""
    df = table.reset_index(drop=True)
    n = len(df)
    fig, ax = _fig(WIDE, 0.9 + 0.3 * max(n, 1), left=_label_margin([str(s) for s in df[label]]),
                   bottom=0.55, top=0.25)
    a = ax[0, 0]
    y = np.arange(n)[::-1]
    v = df[value].to_numpy(float)
    err_lo = np.clip(v - df[lo].to_numpy(float), 0, None) if lo in df else None
    err_hi = np.clip(df[hi].to_numpy(float) - v, 0, None) if hi in df else None
    colours = [PATIENT_COLOUR if str(s) in set(highlight) else CLASS_COLOURS[0] for s in df[label]]
    for yi, vi, el, eh, c in zip(
        y, v,
        err_lo if err_lo is not None else [0] * n,
        err_hi if err_hi is not None else [0] * n,
        colours, strict=True,
    ):
        a.errorbar(vi, yi, xerr=[[el], [eh]], fmt="o", color=c, ecolor=c, capsize=3, ms=5)
    if reference is not None and np.isfinite(reference):
        a.axvline(reference, color="#777", ls="--", lw=1)
        a.text(reference, n - 0.4, f" {reference_label}", color="#555", fontsize=8, va="bottom")
    a.set_yticks(y, [str(s) for s in df[label]], fontsize=8)
    a.set_ylim(-0.7, n - 0.1 + 0.5)
    a.set_xlim(0, 1)
    a.set_xlabel(xlabel)
    a.grid(axis="x", color="#eee")
    return fig


def class_count_figure(counts: Mapping[str, int]) -> Figure:
    """Bar chart of recordings per class."""
    fig, ax = _fig(4.2, 2.4, left=0.75, bottom=0.4, top=0.15)
    a = ax[0, 0]
    keys = list(counts)
    a.bar(keys, [counts[k] for k in keys], color=CLASS_COLOURS[: len(keys)])
    for i, k in enumerate(keys):
        a.text(i, counts[k], str(counts[k]), ha="center", va="bottom", fontsize=9)
    a.set_ylabel("recordings")
    a.margins(y=0.2)
    return fig


# -------------------------------------------------------------------------- patient
def probability_figure(classes: Sequence[str], probs: Sequence[float], predicted: str | None = None) -> Figure:
    """Horizontal bars of the model's class probabilities for one recording."""
    fig, ax = _fig(WIDE * 0.55, 0.75 + 0.38 * len(classes), left=_label_margin(classes, 10),
                   bottom=0.55, top=0.15)
    a = ax[0, 0]
    p = np.asarray(probs, float)
    y = np.arange(len(classes))[::-1]
    colours = [PATIENT_COLOUR if c == predicted else "#9aa7b5" for c in classes]
    a.barh(y, p, color=colours)
    for yi, pi in zip(y, p, strict=True):
        inside = pi > 0.85
        a.text(pi - 0.02 if inside else pi + 0.02, yi, f"{100 * pi:.0f}%", va="center", fontsize=9,
               ha="right" if inside else "left", color="white" if inside else "#1d232b")
    a.set_yticks(y, list(classes))
    a.set_xlim(0, 1)
    a.set_xlabel("model probability")
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float], xlabel: str,
               lo: Sequence[float] | None = None, hi: Sequence[float] | None = None,
               signed: bool = False) -> Figure:
    """Horizontal bars (optionally with error bars), e.g. feature-group importance."""
    n = len(labels)
    fig, ax = _fig(WIDE * 0.7, 0.8 + 0.34 * max(n, 1), left=_label_margin(labels, 9), bottom=0.55,
                   top=0.15)
    a = ax[0, 0]
    v = np.asarray(values, float)
    y = np.arange(n)[::-1]
    colours = [PATIENT_COLOUR if (signed and x > 0) else CLASS_COLOURS[0] for x in v]
    xerr = None
    if lo is not None and hi is not None:
        xerr = [np.clip(v - np.asarray(lo, float), 0, None), np.clip(np.asarray(hi, float) - v, 0, None)]
    a.barh(y, v, color=colours, xerr=xerr, ecolor="#555", capsize=3)
    a.axvline(0, color="#555", lw=0.8)
    a.set_yticks(y, list(labels), fontsize=9)
    a.set_xlabel(xlabel)
    a.grid(axis="x", color="#eee")
    return fig


ZMAX = 3.5  # cohort plot x-range, cohort SDs either side of the mean


def _cohort_background(dists: Sequence[FeatureDistribution], patient_label: str) -> tuple[Figure, Any]:
    """Everything of the cohort plot that is the same for every patient."""
    k = max(len(dists), 1)
    names = [d.name for d in dists]
    fig, ax = _fig(WIDE, 0.95 + 0.62 * k, left=_label_margin(names, 9), bottom=0.5, top=0.45)
    a = ax[0, 0]
    legend_done: list[str] = []
    for row, d in enumerate(dists):
        base = k - 1 - row
        z = (d.grid - d.center) / d.scale
        tops = [float(c.density.max()) for c in d.shown if c.density is not None]
        norm = 0.85 / max(tops) if tops and max(tops) > 0 else 1.0
        for i, c in enumerate(d.classes):
            colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
            if c.label not in legend_done:
                a.fill_between([], [], color=colour, alpha=0.35, lw=0, label=c.label)
                legend_done.append(c.label)
            if c.suppressed or c.density is None:
                continue
            y = base + c.density * norm
            a.fill_between(z, base, y, color=colour, alpha=0.18, lw=0)
            a.plot(z, y, color=colour, lw=1.2)
            zm = (c.mean - d.center) / d.scale
            a.plot([zm], [base + 0.04], marker="^", color=colour, ms=6, clip_on=False)
        a.axhline(base, color="#ccc", lw=0.6)
    a.plot([], [], color=PATIENT_COLOUR, lw=2.4, label=patient_label)
    a.set_yticks([k - 1 - r + 0.3 for r in range(len(dists))], names, fontsize=9)
    a.set_ylim(-0.1, k)
    a.set_xlim(-ZMAX, ZMAX)
    a.set_xlabel("cohort standard deviations from the cohort mean (each feature on its own scale)")
    a.grid(axis="x", color="#eee")
    a.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0),
             ncols=min(6, len(legend_done) + 1))
    return fig, a


def _patient_marks(a: Any, dists: Sequence[FeatureDistribution], values: Mapping[str, float]) -> list[Any]:
    """Add the patient's value lines (and out-of-range flags) to the cohort plot."""
    k = max(len(dists), 1)
    arts = []
    for row, d in enumerate(dists):
        base = k - 1 - row
        pv = values.get(d.feature)
        if pv is None or not np.isfinite(pv):
            continue
        zp = (pv - d.center) / d.scale
        shown = float(np.clip(zp, -ZMAX, ZMAX))
        arts += a.plot([shown, shown], [base, base + 0.92], color=PATIENT_COLOUR, lw=2.4)
        if shown != zp:
            arts.append(a.annotate("beyond axis", (shown, base + 0.5), fontsize=7, color=PATIENT_COLOUR,
                                   ha="right" if zp > 0 else "left"))
    return arts


def cohort_position_figure(
    dists: Sequence[FeatureDistribution],
    patient_values: Mapping[str, float],
    patient_label: str = "this recording",
) -> Figure:
    """Place a patient's values against per-class cohort densities, one row per feature.

    A ridgeline plot on a common standardised axis (cohort standard deviations from the
    cohort mean of each feature), so features with different units share one panel.
    Only aggregate :class:`FeatureDistribution` objects are accepted, so the figure can
    show no other participant's individual value: per class a smoothed density and a
    mean marker; suppressed (small) classes are not drawn (the report's table gives their n).
    """
    fig, a = _cohort_background(dists, patient_label)
    _patient_marks(a, dists, patient_values)
    return fig


class CohortPlot:
    """:func:`cohort_position_figure` for many patients: the cohort part is drawn once.

    The shared background (densities, means, axes, legend) is rendered once; each
    patient's lines are drawn on a copy of it (matplotlib blitting), which makes the
    figure about ten times cheaper per patient. The output is the same picture.

    Parameters
    ----------
    dists : sequence of FeatureDistribution
    dpi : int
    patient_label : str
    """

    def __init__(self, dists: Sequence[FeatureDistribution], dpi: int = 96,
                 patient_label: str = "this recording") -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.dists = list(dists)
        self.fig, self.ax = _cohort_background(self.dists, patient_label)
        self.fig.set_dpi(dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        self.fig.set_facecolor("white")
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)

    def png(self, patient_values: Mapping[str, float]) -> tuple[bytes, int, int]:
        """PNG bytes, width and height of the plot with this patient's values."""
        import io

        from PIL import Image

        self.canvas.restore_region(self.background)
        arts = _patient_marks(self.ax, self.dists, patient_values)
        try:
            for art in arts:
                self.ax.draw_artist(art)
            w, h = self.canvas.get_width_height()
            img = Image.frombuffer("RGBA", (w, h), bytes(self.canvas.buffer_rgba()), "raw", "RGBA", 0, 1)
        finally:
            for art in arts:
                art.remove()
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
        return buf.getvalue(), w, h


# --------------------------------------------------------------------------- tracks
def tracking_figure(t: np.ndarray, success: np.ndarray, window_s: float = 1.0) -> Figure:
    """Face-tracking success over time: per-frame flags and a rolling success rate."""
    fig, ax = _fig(WIDE, 2.0, bottom=0.5, top=0.15)
    a = ax[0, 0]
    t = np.asarray(t, float)
    s = np.asarray(success, float)
    if t.size:
        dt = np.median(np.diff(t)) if t.size > 1 else 1.0
        win = max(1, int(round(window_s / max(dt, 1e-6))))
        rate = pd.Series(s).rolling(win, min_periods=1, center=True).mean().to_numpy()
        a.fill_between(t, 0, 1, where=s < 0.5, color=PATIENT_COLOUR, alpha=0.25, lw=0,
                       step="mid", label="face lost")
        a.plot(t, rate, color=CLASS_COLOURS[0], lw=1.5, label=f"success rate ({window_s:g} s window)")
    a.set_ylim(-0.05, 1.05)
    a.set_yticks([0, 0.5, 1])
    a.set_xlabel("time (s)")
    a.set_ylabel("tracked")
    a.legend(fontsize=8, frameon=False, loc="lower left")
    return fig


def pupil_figure(
    t: np.ndarray, x: np.ndarray, y: np.ndarray,
    freqs: np.ndarray | None = None, spec_x: np.ndarray | None = None,
    spec_y: np.ndarray | None = None, unit: str = "eye widths",
) -> Figure:
    """Pupil trajectory over time and its superposed STFT spectrum per axis."""
    has_spec = freqs is not None and (spec_x is not None or spec_y is not None)
    fig, ax = _fig(WIDE, 2.6, ncols=2 if has_spec else 1, width_ratios=[2, 1] if has_spec else None,
                   top=0.15, wspace=0.3)
    a = ax[0, 0]
    a.plot(t, x, color=CLASS_COLOURS[0], lw=1, label="horizontal")
    a.plot(t, y, color=CLASS_COLOURS[1], lw=1, label="vertical")
    a.set_xlabel("time (s)")
    a.set_ylabel(f"pupil position ({unit})")
    a.legend(fontsize=8, frameon=False, loc="upper right")
    if has_spec:
        b = ax[0, 1]
        if spec_x is not None:
            b.plot(freqs, spec_x, color=CLASS_COLOURS[0], lw=1.4, label="dx")
        if spec_y is not None:
            b.plot(freqs, spec_y, color=CLASS_COLOURS[1], lw=1.4, label="dy")
        b.set_xlabel("frequency (Hz)")
        b.set_ylabel("superposed |STFT|")
        b.legend(fontsize=8, frameon=False)
    return fig


def headpose_figure(t: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray | None = None) -> Figure:
    """Head yaw, pitch (and roll) in degrees over time."""
    fig, ax = _fig(WIDE, 2.4, top=0.15)
    a = ax[0, 0]
    a.plot(t, yaw, color=CLASS_COLOURS[0], lw=1, label="yaw")
    a.plot(t, pitch, color=CLASS_COLOURS[1], lw=1, label="pitch")
    if roll is not None:
        a.plot(t, roll, color=CLASS_COLOURS[2], lw=1, label="roll")
    a.axhline(0, color="#999", lw=0.7)
    a.set_xlabel("time (s)")
    a.set_ylabel("angle (°)")
    a.legend(fontsize=8, frameon=False, loc="upper right", ncols=3)
    return fig


def _pearson(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    m = np.isfinite(a) & np.isfinite(b)
    n = int(m.sum())
    if n < 3 or np.std(a[m]) == 0 or np.std(b[m]) == 0:
        return float("nan"), n
    return float(np.corrcoef(a[m], b[m])[0, 1]), n


def pupil_head_scatter(
    pupil_x: np.ndarray, head_x: np.ndarray, pupil_y: np.ndarray, head_y: np.ndarray,
    r_x: float | None = None, r_y: float | None = None,
) -> Figure:
    """Pupil vs head movement per axis, with Pearson r (given, or computed here)."""
    fig, ax = _fig(WIDE, 3.2, ncols=2, top=0.35, wspace=0.3)
    for a, (px, hx, r, name) in zip(
        ax[0], ((pupil_x, head_x, r_x, "horizontal"), (pupil_y, head_y, r_y, "vertical")), strict=True
    ):
        px, hx = np.asarray(px, float), np.asarray(hx, float)
        rr, n = _pearson(px, hx)
        if r is not None:
            rr = float(r)
        a.scatter(hx, px, s=5, alpha=0.35, color=CLASS_COLOURS[0 if name == "horizontal" else 1], lw=0)
        a.set_title(f"{name}: Pearson r = {rr:.2f} (n = {n} frames)", fontsize=9)
        a.set_xlabel("head movement (°/frame)")
        a.set_ylabel("pupil movement")
    return fig


def speech_timing_figure(duration: float, speech: Sequence[tuple[float, float]],
                         min_pause: float = 0.25,
                         pauses: Sequence[tuple[float, float]] | None = None) -> Figure:
    """Speech/pause timeline with pause lengths.

    ``pauses`` (start, end) are drawn as given (the timing features' own pauses); without
    them, gaps of at least ``min_pause`` between speech stretches are drawn.
    """
    fig, ax = _fig(WIDE, 2.2, nrows=2, height_ratios=[1, 2], sharex=True,
                   left=0.8, top=0.15, hspace=0.12)
    a, b = ax[0, 0], ax[1, 0]
    segs = sorted((float(s), float(e)) for s, e in speech)
    a.broken_barh([(s, e - s) for s, e in segs], (0, 1), color=CLASS_COLOURS[2])
    a.set_yticks([])
    a.set_ylabel("speech", rotation=0, ha="right", va="center", fontsize=8)
    if pauses is None:
        bars = [(e0, s1 - e0) for (_, e0), (s1, _) in zip(segs[:-1], segs[1:], strict=True)
                if s1 - e0 >= min_pause]
    else:
        bars = [(float(s), float(e) - float(s)) for s, e in pauses]
    if bars:
        b.bar([p[0] + p[1] / 2 for p in bars], [p[1] for p in bars], width=[p[1] for p in bars],
              color=PATIENT_COLOUR, alpha=0.8)
    b.set_ylabel("pause (s)")
    b.set_xlabel("time (s)")
    b.set_xlim(0, max(duration, segs[-1][1] if segs else 1.0))
    return fig


def expression_figure(t: np.ndarray, values: Mapping[str, np.ndarray], ylabel: str = "probability",
                      labels: np.ndarray | None = None) -> Figure:
    """Expression timeline: one line per expression class (or embedding component).

    With ``labels`` (one class name per time point, e.g. the smoothed expression; anything
    not in ``values`` is left blank) a strip above the lines shows which class holds when,
    in the colour of that class's line.
    """
    names = list(values)
    if labels is None:
        fig, ax = _fig(WIDE, 2.4, top=0.15)
        a = ax[0, 0]
    else:
        fig, ax = _fig(WIDE, 2.9, nrows=2, height_ratios=[1, 5], sharex=True, top=0.15, hspace=0.08)
        strip, a = ax[0, 0], ax[1, 0]
        lab = np.asarray(labels, dtype=object)
        tt = np.asarray(t, float)
        step = float(np.median(np.diff(tt))) if tt.size > 1 else 1.0
        for i, name in enumerate(names):
            on = lab == name
            if not on.any():
                continue
            starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
            ends = np.flatnonzero(on & ~np.r_[on[1:], False])
            strip.broken_barh([(tt[s0] - step / 2, tt[e0] - tt[s0] + step) for s0, e0 in zip(starts, ends, strict=True)],
                              (0, 1), color=CLASS_COLOURS[i % len(CLASS_COLOURS)])
        strip.set_yticks([0.5], ["smoothed"])
        strip.set_ylim(0, 1)
        strip.tick_params(axis="x", labelbottom=False)
    for i, (name, v) in enumerate(values.items()):
        a.plot(t, v, lw=1, color=CLASS_COLOURS[i % len(CLASS_COLOURS)], label=name)
    a.set_xlabel("time (s)")
    a.set_ylabel(ylabel)
    a.legend(fontsize=7, frameon=False, ncols=min(4, max(1, len(values))), loc="upper right")
    return fig
