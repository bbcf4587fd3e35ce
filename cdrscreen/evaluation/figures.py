"""Figures of a run: confusion matrix, ROC curves, ablation plot with CIs (PNG)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from cdrscreen.core.io import atomic_path


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
    """Heat map of subject counts, rows = true class, columns = predicted class."""
    plt = _plt()
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2.0, 1.1 * len(labels) + 1.6))
    ax.imshow(m, cmap="Blues", vmin=0)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (CDR)")
    ax.set_title(f"{title}\n(subjects, out-of-fold)", fontsize=9)
    return _save(fig, path)


def roc_figure(path: Path, roc: pd.DataFrame, title: str) -> Path:
    """ROC curve(s) of one model with AUC in the legend."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for cls, d in roc.groupby("class", sort=False):
        ax.plot(d["fpr"], d["tpr"], drawstyle="steps-post", label=f"{cls} (AUC {d['auc'].iloc[0]:.2f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


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
