"""The figures a run folder and the reports share: confusion matrix and ROC curves.

Each function returns a matplotlib ``Figure`` built with the object-oriented API (no
pyplot state), with fixed sizes and one colour per class. :mod:`cdrscreen.evaluation`
saves them as PNGs into the run folder (:func:`save_png`); :mod:`cdrscreen.reports`
embeds them in HTML. One implementation, so a run folder's figure and its report's figure
are the same drawing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cdrscreen.core.io import atomic_path

#: One colour per class, in class order (colour-blind friendly: Okabe–Ito).
CLASS_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
PATIENT_COLOUR = "#C0392B"
WIDE = 9.6  # inches: a full-width figure


def fixed_figure(width: float, height: float, ncols: int = 1, nrows: int = 1, *, left: float = 0.75,
         right: float = 0.2, bottom: float = 0.5, top: float = 0.3, wspace: float = 0.3,
         hspace: float = 0.35, **kw) -> tuple[Figure, np.ndarray]:
    """Create a figure with fixed margins given in inches.

    Fixed margins instead of a layout engine: constrained layout doubles the drawing
    time, and reports draw hundreds of figures.
    """
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wspace, hspace=hspace)
    for ax in axes.ravel():  # fewer ticks: cheaper to draw, easier to read on paper
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    return fig, axes


def confusion_matrix_figure(cm: np.ndarray, labels: Sequence[str], title: str = "") -> Figure:
    """Confusion matrix: counts with row percentages (rows = true class)."""
    cm = np.asarray(cm, dtype=float)
    k = cm.shape[0]
    size = 0.85 * k
    fig, ax = fixed_figure(size + 1.1, size + 1.0 + (0.25 if title else 0.0), left=0.85, right=0.25,
                   bottom=0.75, top=0.25 + (0.25 if title else 0.0))
    a = ax[0, 0]
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    a.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            colour = "white" if frac[i, j] > 0.6 else "#1d232b"
            a.text(j, i, f"{int(cm[i, j])}\n{100 * frac[i, j]:.0f}%", ha="center", va="center",
                   color=colour, fontsize=9)
    a.set_xticks(range(k), labels, rotation=0)
    a.set_yticks(range(k), labels)
    a.set_xlabel("predicted")
    a.set_ylabel("true")
    if title:
        a.set_title(title, fontsize=10)
    return fig


def roc_figure(curves: Sequence[Mapping[str, object]], title: str = "") -> Figure:
    """ROC curves; each mapping has ``label``, ``fpr``, ``tpr`` and optionally ``auc``."""
    fig, ax = fixed_figure(4.6, 4.2, left=0.7, bottom=0.6, top=0.3 if title else 0.15, right=0.15)
    a = ax[0, 0]
    a.plot([0, 1], [0, 1], ls="--", color="#999", lw=1, label="chance")
    for i, c in enumerate(curves):
        auc = c.get("auc")
        lab = str(c.get("label", f"curve {i + 1}"))
        if auc is not None and np.isfinite(float(auc)):  # type: ignore[arg-type]
            lab += f" (AUC {float(auc):.2f})"  # type: ignore[arg-type]
        a.step(np.asarray(c["fpr"], float), np.asarray(c["tpr"], float), where="post",
               color=CLASS_COLOURS[i % len(CLASS_COLOURS)], lw=1.8, label=lab)
    a.set_xlim(-0.02, 1.02)
    a.set_ylim(-0.02, 1.02)
    a.set_aspect("equal")
    a.set_xlabel("false positive rate")
    a.set_ylabel("true positive rate")
    a.legend(loc="lower right", fontsize=8, frameon=False)
    if title:
        a.set_title(title, fontsize=10)
    return fig


def save_png(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG atomically and return the path."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)


__all__ = ["CLASS_COLOURS", "PATIENT_COLOUR", "WIDE", "confusion_matrix_figure", "fixed_figure", "roc_figure",
           "save_png"]
