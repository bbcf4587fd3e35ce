"""Significance tests: permutation p-values and paired comparisons of two models."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binom

from cdrscreen.evaluation.metrics import (
    _from_confusion,
    bootstrap_weights,
    interval,
    predict_from_proba,
)


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """One-sided p-value ``(1 + #{null >= observed}) / (1 + n)`` (never 0)."""
    null = np.asarray(null, dtype=float)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


def subject_permutations(y_subject: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``n`` label permutations across subjects; permutation i depends only on (seed, i)."""
    return [np.random.default_rng([seed, 0x9E3, i]).permutation(y_subject) for i in range(n)]


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """Exact (binomial) McNemar test on per-subject correctness of two models."""
    a_only = int(np.sum(correct_a & ~correct_b))
    b_only = int(np.sum(~correct_a & correct_b))
    n_disc = a_only + b_only
    p = 1.0 if n_disc == 0 else float(min(1.0, 2 * binom.cdf(min(a_only, b_only), n_disc, 0.5)))
    stat = 0.0 if n_disc == 0 else (abs(a_only - b_only) - 1) ** 2 / n_disc
    return {"test": "mcnemar", "n_a_only_correct": a_only, "n_b_only_correct": b_only,
            "statistic": float(stat), "p_value": p}


def _metric_per_row(metric: str, y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Metric for every row of a (R, n) prediction matrix."""
    idx = y[None, :] * k + pred
    cm = np.stack([np.bincount(r, minlength=k * k) for r in idx]).reshape(-1, k, k)
    return _from_confusion(cm)[metric]


def paired_permutation(
    y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, metric: str, n: int, seed: int
) -> dict[str, Any]:
    """Two-sided paired permutation test: swap the two models' predictions per subject."""
    k = proba_a.shape[1]
    pa, pb = predict_from_proba(proba_a), predict_from_proba(proba_b)
    observed = float(_metric_per_row(metric, y, np.stack([pa]), k)[0] - _metric_per_row(metric, y, np.stack([pb]), k)[0])
    rng = np.random.default_rng([seed, 0x5A9])
    swap = rng.random((n, len(y))) < 0.5
    ma = _metric_per_row(metric, y, np.where(swap, pb, pa), k)
    mb = _metric_per_row(metric, y, np.where(swap, pa, pb), k)
    null = ma - mb
    p = float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + n))
    return {"test": "paired_permutation", "statistic": observed, "p_value": p, "n_permutations": n}


def paired_difference(
    y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, metric: str, n_boot: int, ci: float, seed: int
) -> dict[str, Any]:
    """Metric(a) - metric(b) with a paired bootstrap CI over subjects."""
    k = proba_a.shape[1]
    pa, pb = predict_from_proba(proba_a), predict_from_proba(proba_b)
    value = float(_metric_per_row(metric, y, pa[None], k)[0] - _metric_per_row(metric, y, pb[None], k)[0])
    if not n_boot:
        return {"value": value, "ci_low": None, "ci_high": None}
    w = bootstrap_weights(len(y), n_boot, seed)
    diffs = []
    for pred in (pa, pb):
        onehot = np.zeros((len(y), k * k))
        onehot[np.arange(len(y)), y * k + pred] = 1.0
        cm = (w @ onehot).reshape(-1, k, k)
        vals = _from_confusion(cm)[metric]
        vals = np.where((cm.sum(-1) > 0).all(-1), vals, np.nan)
        diffs.append(vals)
    lo, hi = interval(diffs[0] - diffs[1], ci)
    return {"value": value, "ci_low": lo, "ci_high": hi}
