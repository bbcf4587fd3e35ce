"""Figures of a run: confusion matrix, ROC curves (drawn by :mod:`cdrscreen.plotting`), ablation plot with CIs (PNG)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from cdrscreen.core.io import atomic_path
from cdrscreen.plotting import confusion_matrix_figure, save_png
from cdrscreen.plotting import roc_figure as plot_roc


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def safe_name(name: str) -> str:
    """Return a model name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _plt().close(fig)
    return path


def confusion_figure(path: Path, labels: list[str], matrix: list[list[int]], title: str) -> Path:
    """Confusion matrix of subject counts with row percentages (rows = true class), as PNG.

    The drawing is :func:`cdrscreen.plotting.confusion_matrix_figure`, the one the reports use.
    """
    return save_png(confusion_matrix_figure(np.asarray(matrix), labels, f"{title} (subjects, out-of-fold)"), path)


def roc_figure(path: Path, roc: pd.DataFrame, title: str) -> Path:
    """ROC curve(s) of one model with AUC in the legend, as PNG (:func:`cdrscreen.plotting.roc_figure`)."""
    curves = [{"label": str(cls), "fpr": d["fpr"].to_numpy(float), "tpr": d["tpr"].to_numpy(float),
               "auc": float(d["auc"].iloc[0])} for cls, d in roc.groupby("class", sort=False)]
    return save_png(plot_roc(curves, title), path)


def ablation_figure(path: Path, table: pd.DataFrame, metric: str, chance: float | None) -> Path:
    """Point estimate and CI of ``metric`` for every ablation variant."""
    plt = _plt()
    t = table.sort_values(metric, ascending=True, na_position="first")
    colors = {"full": "black", "single": "tab:blue", "leave_one_out": "tab:orange", "subset": "tab:green"}
    fig, ax = plt.subplots(figsize=(6.0, 0.32 * len(t) + 1.4))
    y = np.arange(len(t))
    val = t[metric].to_numpy(float)
    lo = val - t[f"{metric}_ci_low"].to_numpy(float)
    hi = t[f"{metric}_ci_high"].to_numpy(float) - val
    for kind, c in colors.items():
        sel = (t["kind"] == kind).to_numpy()
        if sel.any():
            ax.errorbar(val[sel], y[sel], xerr=np.nan_to_num(np.vstack([lo[sel], hi[sel]])), fmt="o",
                        color=c, capsize=3, label=kind.replace("_", "-"))
    if chance is not None:
        ax.axvline(chance, ls="--", c="grey", lw=0.8, label="chance")
    ax.set_yticks(y, t["variant"])
    ax.set_xlabel(f"{metric.replace('_', ' ')} (95% bootstrap CI over subjects)")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)
