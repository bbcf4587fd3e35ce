"""Subject-level metrics and percentile bootstrap CIs over subjects (vectorised).

All metrics take one prediction per SUBJECT: ``y_true`` (class codes ``0..K-1``) and
``proba`` (subject probabilities, ``(n_subjects, K)``); the predicted class is the
argmax of ``proba`` (first class on ties).
"""

from __future__ import annotations

from typing import Any

import numpy as np

POINT_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")


def _from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics from confusion matrices ``(..., K, K)`` (rows = true, cols = predicted)."""
    cm = cm.astype(float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(-1)
    predicted = cm.sum(-2)
    n = support.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
        return {
            "accuracy": tp.sum(-1) / n,
            "balanced_accuracy": np.nanmean(recall, axis=-1),
            "macro_f1": f1.mean(-1),
            "recall": recall,
        }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrix ``(k, k)``; rows = true class, columns = predicted class."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def _pair_matrix(scores: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """M[i, j] = 1 if pos i outranks neg j, 0.5 on ties (Mann-Whitney kernel)."""
    s_pos, s_neg = scores[pos][:, None], scores[~pos][None, :]
    return (s_pos > s_neg) + 0.5 * (s_pos == s_neg)


def _auc_weighted(scores: np.ndarray, pos: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of subject weights ``w`` (``(B, n)``); NaN if a side is empty."""
    m = _pair_matrix(scores, pos)
    wp, wn = w[:, pos], w[:, ~pos]
    num = ((wp @ m) * wn).sum(-1)
    den = wp.sum(-1) * wn.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _auc(y_true: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    k = proba.shape[1]
    if k == 2:
        return _auc_weighted(proba[:, 1], y_true == 1, w)
    per_class = [_auc_weighted(proba[:, c], y_true == c, w) for c in range(k)]
    return np.mean(per_class, axis=0)  # macro one-vs-rest; NaN if any class is absent


def auc_value(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of subject scores ``(n, K)`` (macro one-vs-rest for K > 2); NaN if undefined."""
    return float(_auc(y_true, scores, np.ones((1, len(y_true))))[0])


def predict_from_proba(proba: np.ndarray) -> np.ndarray:
    """Argmax over classes (first class on ties)."""
    return np.argmax(proba, axis=1)


def point_metrics(y_true: np.ndarray, proba: np.ndarray, scores: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, ROC-AUC and per-class recall.

    ROC-AUC ranks subjects by ``scores`` when given (ranking scores, see
    :func:`cdrscreen.evaluation.cv.rank_scores`), else by ``proba``.
    """
    k = proba.shape[1]
    cm = confusion(y_true, predict_from_proba(proba), k)
    m = _from_confusion(cm)
    auc = _auc(y_true, proba if scores is None else scores, np.ones((1, len(y_true))))[0]
    return {
        "accuracy": float(m["accuracy"]),
        "balanced_accuracy": float(m["balanced_accuracy"]),
        "macro_f1": float(m["macro_f1"]),
        "roc_auc": None if np.isnan(auc) else float(auc),
        "recall": [None if np.isnan(r) else float(r) for r in m["recall"]],
        "confusion": cm,
    }


def score(metric: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    """One metric (accuracy, balanced_accuracy, macro_f1) for subject predictions."""
    cm = confusion(y_true, predict_from_proba(proba), proba.shape[1])
    return float(_from_confusion(cm)[metric])


def bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` multiplicities of each subject in each resample (with replacement)."""
    rng = np.random.default_rng([seed, 0xB007])
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (np.arange(n_boot)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)


def bootstrap_metrics(y_true: np.ndarray, proba: np.ndarray, w: np.ndarray, scores: np.ndarray | None = None
                      ) -> dict[str, np.ndarray]:
    """Metric values for each resample (rows of ``w``); resamples lacking a class are NaN."""
    k = proba.shape[1]
    y_pred = predict_from_proba(proba)
    onehot = np.zeros((len(y_true), k * k))
    onehot[np.arange(len(y_true)), y_true * k + y_pred] = 1.0
    cm = (w @ onehot).reshape(-1, k, k)
    out = _from_confusion(cm)
    out["roc_auc"] = _auc(y_true, proba if scores is None else scores, w)
    complete = (cm.sum(-1) > 0).all(-1)  # every class present among the resampled subjects
    for key in out:
        out[key] = np.where(complete if out[key].ndim == 1 else complete[:, None], out[key], np.nan)
    return out


def interval(values: np.ndarray, ci: float) -> tuple[float | None, float | None]:
    """Percentile interval of the finite values (None if there are none)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None, None
    lo, hi = np.quantile(v, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(lo), float(hi)


def with_cis(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str], n_boot: int, ci: float, seed: int,
    scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """Point metrics with percentile bootstrap CIs over subjects (JSON-ready)."""
    pm = point_metrics(y_true, proba, scores)
    boot = (bootstrap_metrics(y_true, proba, bootstrap_weights(len(y_true), n_boot, seed), scores)
            if n_boot else None)

    def entry(value: float | None, samples: np.ndarray | None) -> dict[str, Any]:
        lo, hi = interval(samples, ci) if samples is not None and value is not None else (None, None)
        return {"value": value, "ci_low": lo, "ci_high": hi}

    out: dict[str, Any] = {
        m: entry(pm[m], None if boot is None else boot[m]) for m in POINT_METRICS
    }
    out["recall"] = {
        c: entry(pm["recall"][i], None if boot is None else boot["recall"][:, i]) for i, c in enumerate(classes)
    }
    out["n_bootstrap_valid"] = 0 if boot is None else int(np.isfinite(boot["accuracy"]).sum())
    return out


def majority_baseline(y_true: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Scores of always predicting the most frequent class (ties: first in class order)."""
    k = len(classes)
    counts = np.bincount(y_true, minlength=k)
    major = int(np.argmax(counts))
    m = _from_confusion(confusion(y_true, np.full_like(y_true, major), k))
    return {
        "majority_class": classes[major],
        "accuracy": float(m["accuracy"]),
        "balanced_accuracy": float(m["balanced_accuracy"]),
        "macro_f1": float(m["macro_f1"]),
    }
