"""Post-processing of per-frame expression predictions, and frame-level macro-F1.

Yu et al. (ABAW6 2024, section 3.5) smooth the predicted labels of a video with a sliding
window: the labels predicted inside a window are counted and the most frequent one becomes
the label of every frame of that window. The paper gives neither the window length nor the
stride nor a tie rule. Two readings are offered here:

``mode="centered"`` (default)
    every frame takes the majority label of the window centred on it (a mode filter);
    windows overlap with stride 1, so no frame's label depends on window placement.
``mode="block"``
    the literal reading: the video is tiled by consecutive windows (stride = window) and every
    frame of a window takes that window's majority label.

Frames without a prediction (no face found, label ``-1``) do not vote. Ties are broken in
favour of the frame's own label when it is among the tied labels, else the lowest class id.

:func:`smooth_probabilities` is the soft alternative (moving average / Gaussian / causal
exponential average over class probabilities, ignoring frames without a face), and
:func:`expression_timeline` turns one video's per-frame probabilities into a per-frame
table (and :func:`timeline_segments` into runs of one expression).

Only numpy, pandas and scikit-learn (for :func:`macro_f1`) are needed: no torch. The FER
training side (:mod:`fer_backbone.temporal`) uses these functions through
:mod:`fer_backbone.smoothing`, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from cdrscreen.core.errors import CdrscreenError

MISSING = -1
"""Label of a frame without a prediction (no face detected, or unannotated)."""


def _check_labels(labels: np.ndarray | Sequence[int], n_classes: int | None) -> tuple[np.ndarray, int]:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise CdrscreenError(f"labels: expected a 1-D sequence of frame labels, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise CdrscreenError("labels: frame labels must be integers (-1 for frames without a face)")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < MISSING:
        raise CdrscreenError(f"labels: negative label {arr.min()} (only -1 marks a missing frame)")
    k = int(arr.max()) + 1 if n_classes is None else int(n_classes)
    if arr.size and arr.max() >= max(k, 1):
        raise CdrscreenError(f"labels: label {arr.max()} out of range for {k} classes")
    return arr, max(k, 1)


def _window_counts(onehot: np.ndarray, window: int) -> np.ndarray:
    """Count each class in the window centred on every frame, shape ``(T, K)``."""
    t = onehot.shape[0]
    left, right = (window - 1) // 2, window // 2
    csum = np.vstack([np.zeros((1, onehot.shape[1])), np.cumsum(onehot, axis=0)])
    lo = np.clip(np.arange(t) - left, 0, t)
    hi = np.clip(np.arange(t) + right + 1, 0, t)
    return csum[hi] - csum[lo]


def _argmax_prefer_own(counts: np.ndarray, own: np.ndarray) -> np.ndarray:
    best = counts.max(axis=1)
    winner = np.argmax(counts, axis=1)  # lowest class id among ties
    has_own = own >= 0
    own_is_tied = np.zeros_like(has_own)
    own_is_tied[has_own] = counts[np.flatnonzero(has_own), own[has_own]] == best[has_own]
    out = np.where(own_is_tied, own, winner)
    return np.where(best > 0, out, MISSING)


def majority_vote(
    labels: np.ndarray | Sequence[int],
    window: int,
    *,
    mode: Literal["centered", "block"] = "centered",
    n_classes: int | None = None,
    fill_missing: bool = False,
) -> np.ndarray:
    """Sliding-window majority vote over one video's predicted frame labels.

    Parameters
    ----------
    labels : array-like of int, shape (T,)
        Predicted class per frame in temporal order; ``-1`` marks frames without a prediction.
    window : int
        Window length in frames (>= 1; 1 returns the labels unchanged).
    mode : {"centered", "block"}
        ``"centered"``: mode filter over the window centred on each frame (for an even
        window the centre frame has one more frame after it than before it).
        ``"block"``: consecutive non-overlapping windows, each frame takes its block's majority.
    n_classes : int, optional
        Number of classes (default: ``max(labels) + 1``).
    fill_missing : bool
        If True, a frame without a prediction takes the majority of its window when the window
        holds any prediction; if False (default) it stays ``-1``.

    Returns
    -------
    numpy.ndarray of int64, shape (T,)
        Smoothed labels.
    """
    arr, k = _check_labels(labels, n_classes)
    if int(window) != window or window < 1:
        raise CdrscreenError(f"window must be a positive integer, got {window!r}")
    window = int(window)
    if arr.size == 0 or window == 1:
        return arr.copy()
    valid = arr >= 0
    onehot = np.zeros((arr.size, k))
    onehot[np.flatnonzero(valid), arr[valid]] = 1.0
    if mode == "centered":
        counts = _window_counts(onehot, window)
        out = _argmax_prefer_own(counts, arr)
    elif mode == "block":
        n_blocks = -(-arr.size // window)
        block_of = np.arange(arr.size) // window
        block_counts = np.zeros((n_blocks, k))
        np.add.at(block_counts, block_of, onehot)
        # within a block there is no "own" frame: ties go to the lowest class id
        winner = np.where(block_counts.max(axis=1) > 0, np.argmax(block_counts, axis=1), MISSING)
        out = winner[block_of]
    else:
        raise CdrscreenError(f"mode must be 'centered' or 'block', got {mode!r}")
    if not fill_missing:
        out = np.where(valid, out, MISSING)
    return out.astype(np.int64)


def smooth_probabilities(
    probs: np.ndarray,
    window: int,
    *,
    method: Literal["mean", "gaussian", "ema"] = "mean",
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Smooth per-frame class probabilities over time.

    Parameters
    ----------
    probs : numpy.ndarray, shape (T, K)
        Per-frame class probabilities (rows of frames without a face may hold NaN).
    window : int
        ``"mean"``: length of the centred box window; ``"gaussian"``: the window spans about
        ±2 sigma (sigma = window / 4); ``"ema"``: causal exponential average with
        ``alpha = 2 / (window + 1)``.
    method : {"mean", "gaussian", "ema"}
        Smoothing kernel. ``"mean"`` and ``"gaussian"`` are non-causal.
    valid : numpy.ndarray of bool, shape (T,), optional
        Frames holding a prediction (default: rows without NaN). Invalid frames do not
        contribute; they receive the smoothed value of their neighbourhood, or NaN when
        their window holds no valid frame.

    Returns
    -------
    numpy.ndarray, shape (T, K)
        Smoothed probabilities; each valid row sums to 1.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise CdrscreenError(f"probs: expected shape (frames, classes), got {p.shape}")
    if int(window) != window or window < 1:
        raise CdrscreenError(f"window must be a positive integer, got {window!r}")
    ok = ~np.isnan(p).any(axis=1) if valid is None else np.asarray(valid, dtype=bool)
    if ok.shape != (p.shape[0],):
        raise CdrscreenError(f"valid: expected shape ({p.shape[0]},), got {ok.shape}")
    x = np.where(ok[:, None], np.nan_to_num(p), 0.0)
    w = ok.astype(np.float64)
    t = p.shape[0]
    if method == "ema":
        alpha = 2.0 / (window + 1.0)
        num = np.zeros_like(x)
        den = np.zeros(t)
        acc_n, acc_d = np.zeros(p.shape[1]), 0.0
        for i in range(t):
            acc_n = (1 - alpha) * acc_n + alpha * x[i]
            acc_d = (1 - alpha) * acc_d + alpha * w[i]
            num[i], den[i] = acc_n, acc_d
    else:
        if method == "mean":
            left, right = (window - 1) // 2, window // 2
            kernel = np.ones(left + right + 1)
        elif method == "gaussian":
            sigma = max(window / 4.0, 1e-6)
            left = right = max(int(np.ceil(2 * sigma)), 0)
            kernel = np.exp(-0.5 * (np.arange(-left, right + 1) / sigma) ** 2)
        else:
            raise CdrscreenError(f"method must be 'mean', 'gaussian' or 'ema', got {method!r}")
        xp = np.pad(x, ((right, left), (0, 0)))
        wp = np.pad(w, (right, left))
        num = np.stack([np.convolve(xp[:, j], kernel, mode="valid") for j in range(p.shape[1])], axis=1)
        den = np.convolve(wp, kernel, mode="valid")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den[:, None]
    out[den <= 1e-12] = np.nan
    rowsum = out.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / rowsum


def macro_f1(
    y_true: np.ndarray | Sequence[int],
    y_pred: np.ndarray | Sequence[int],
    n_classes: int,
) -> float:
    """Macro-F1 over ``n_classes`` classes, the ABAW expression metric (Yu et al., eqs. 7-8).

    Frames whose true label is ``-1`` (unannotated) are skipped; a predicted ``-1`` (no face)
    counts as a wrong prediction. Each class's F1 enters the mean, 0 when it is undefined.
    """
    from sklearn.metrics import f1_score

    yt = np.asarray(y_true).astype(np.int64).ravel()
    yp = np.asarray(y_pred).astype(np.int64).ravel()
    if yt.shape != yp.shape:
        raise CdrscreenError(f"macro_f1: y_true has {yt.size} frames but y_pred has {yp.size}")
    keep = yt >= 0
    if not keep.any():
        raise CdrscreenError("macro_f1: no annotated frame (all true labels are -1)")
    return float(
        f1_score(yt[keep], yp[keep], labels=list(range(n_classes)), average="macro", zero_division=0)
    )


def expression_timeline(
    probs: np.ndarray,
    *,
    fps: float,
    class_names: Sequence[str],
    window: int = 1,
    method: Literal["vote", "mean", "gaussian", "ema"] = "vote",
    valid: np.ndarray | None = None,
    fill_missing: bool = False,
) -> pd.DataFrame:
    """Per-frame expression timeline of one video from per-frame class probabilities.

    Parameters
    ----------
    probs : numpy.ndarray, shape (T, K)
        Per-frame class probabilities (from the embedder or the temporal encoder); rows of
        frames without a face may hold NaN.
    fps : float
        Frame rate, for the ``time`` column.
    class_names : sequence of str
        ``K`` class names.
    window : int
        Smoothing window in frames (1 = no smoothing).
    method : {"vote", "mean", "gaussian", "ema"}
        ``"vote"``: sliding-window majority vote of the per-frame argmax (the paper's
        post-processing); the others smooth the probabilities first (:func:`smooth_probabilities`).
    valid : numpy.ndarray of bool, optional
        Frames with a face (default: rows without NaN).
    fill_missing : bool
        Give frames without a face the label of their window (else label -1, name "none").

    Returns
    -------
    pandas.DataFrame
        One row per frame: ``frame``, ``time``, ``success`` (face present), ``label``,
        ``expression`` (name or "none"), ``confidence`` (probability of the label after
        smoothing) and one ``p_<name>`` column per class (smoothed probabilities).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(class_names):
        raise CdrscreenError(
            f"probs: expected shape (frames, {len(class_names)}) for the given class names, got {p.shape}"
        )
    if fps <= 0:
        raise CdrscreenError(f"fps must be positive, got {fps}")
    ok = ~np.isnan(p).any(axis=1) if valid is None else np.asarray(valid, dtype=bool)
    if method == "vote":
        raw = np.where(ok, np.argmax(np.nan_to_num(p, nan=-1.0), axis=1), MISSING)
        labels = majority_vote(raw, window, n_classes=p.shape[1], fill_missing=fill_missing)
        sp = np.where(ok[:, None], p, np.nan)
    else:
        sp = smooth_probabilities(p, window, method=method, valid=ok)
        has = ~np.isnan(sp).any(axis=1)
        labels = np.where(has, np.argmax(np.nan_to_num(sp, nan=-1.0), axis=1), MISSING)
        if not fill_missing:
            labels = np.where(ok, labels, MISSING)
            sp = np.where(ok[:, None], sp, np.nan)
    idx = np.arange(p.shape[0])
    conf = np.full(p.shape[0], np.nan)
    has_label = labels >= 0
    if has_label.any():
        conf[has_label] = sp[idx[has_label], labels[has_label]]
    names = np.asarray(list(class_names) + ["none"], dtype=object)
    frame = pd.DataFrame(
        {
            "frame": idx,
            "time": idx / float(fps),
            "success": ok,
            "label": labels,
            "expression": names[np.where(has_label, labels, len(class_names))],
            "confidence": conf,
        }
    )
    for j, name in enumerate(class_names):
        frame[f"p_{name}"] = sp[:, j]
    return frame


def timeline_segments(timeline: pd.DataFrame) -> pd.DataFrame:
    """Split a timeline from :func:`expression_timeline` into runs of constant expression.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``start_frame``, ``end_frame`` (inclusive), ``start_time``,
        ``duration`` (seconds, end frame included), ``label``, ``expression``.
    """
    if timeline.empty:
        return pd.DataFrame(columns=["start_frame", "end_frame", "start_time", "duration", "label", "expression"])
    lab = timeline["label"].to_numpy()
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:] - 1, lab.size - 1]
    t = timeline["time"].to_numpy()
    step = float(t[1] - t[0]) if t.size > 1 else 0.0
    return pd.DataFrame(
        {
            "start_frame": timeline["frame"].to_numpy()[starts],
            "end_frame": timeline["frame"].to_numpy()[ends],
            "start_time": t[starts],
            "duration": t[ends] - t[starts] + step,
            "label": lab[starts],
            "expression": timeline["expression"].to_numpy()[starts],
        }
    )


def timeline_summary(timeline: pd.DataFrame, class_names: Sequence[str]) -> dict[str, float]:
    """Per-video numbers from a timeline of :func:`expression_timeline`.

    Returns
    -------
    dict
        ``frac_<name>``: share of frames with a face labelled ``name``; ``transitions_per_min``:
        label changes between consecutive labelled frames per minute of video; ``mean_run_s``:
        mean duration of runs of one expression (frames without a face end a run);
        ``face_frac``: share of frames with a face. NaN where undefined (no labelled frame).
    """
    lab = timeline["label"].to_numpy()
    t = timeline["time"].to_numpy()
    labelled = lab >= 0
    out: dict[str, float] = {}
    n_lab = int(labelled.sum())
    for k, name in enumerate(class_names):
        out[f"frac_{name}"] = float((lab == k).sum() / n_lab) if n_lab else float("nan")
    seq = lab[labelled]
    duration = float(t[-1] - t[0] + (t[1] - t[0] if t.size > 1 else 0.0)) if t.size else 0.0
    changes = int((seq[1:] != seq[:-1]).sum()) if seq.size > 1 else 0
    out["transitions_per_min"] = changes / (duration / 60.0) if duration > 0 and n_lab else float("nan")
    seg = timeline_segments(timeline)
    runs = seg[seg["label"] >= 0]
    out["mean_run_s"] = float(runs["duration"].mean()) if len(runs) else float("nan")
    out["face_frac"] = float(timeline["success"].mean()) if len(timeline) else float("nan")
    return out
