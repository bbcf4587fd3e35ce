"""Batched permutation test for early-fusion ridge models (closed form).

For ``learner: ridge`` the nested procedure is linear algebra: in every training set the
SVD of the centred, scaled design matrix does not depend on the labels, so one SVD per
(outer fold, inner split) serves every grid value of ``alpha`` and every label
permutation at once. This module repeats the *whole* nested procedure (inner tuning at
subject level, refit, subject aggregation, scoring) for a batch of permutations and
gives the same scores as running :func:`cdrscreen.evaluation.cv.permutation_scores`
permutation by permutation (tested), orders of magnitude faster.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import ParameterGrid

from cdrscreen.evaluation import cv
from cdrscreen.evaluation.data import Dataset
from cdrscreen.evaluation.metrics import _from_confusion, auc_value
from cdrscreen.evaluation.protocol import Protocol
from cdrscreen.models import RidgeScoreClassifier


def supports(plan: cv.ModelPlan, protocol: Protocol) -> bool:
    """Whether ``plan`` can use the batched path (early-fusion ridge, mean aggregation)."""
    return (
        plan.prep is not None
        and isinstance(plan.head, RidgeScoreClassifier)
        and protocol.subject_aggregation == "mean"
        and set(plan.grid) <= {"clf__alpha"}
    )


def _alphas(plan: cv.ModelPlan) -> list[float]:
    if not plan.grid:
        return [float(plan.head.alpha)]
    return [float(p["clf__alpha"]) for p in ParameterGrid(plan.grid)]


def _metric(metric: str, y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Metric per permutation; ``y``, ``pred``: (P, S) class codes."""
    p = y.shape[0]
    flat = (np.arange(p)[:, None] * k * k + y * k + pred).ravel()
    cm = np.bincount(flat, minlength=p * k * k).reshape(p, k, k)
    return _from_confusion(cm)[metric]


def _proba(U: np.ndarray, s: np.ndarray, B: np.ndarray, Y: np.ndarray, present: np.ndarray,
           alpha: float, m: np.ndarray | None = None) -> np.ndarray:
    """Softmax scores (m, P, K) of ridge fits for all permutations; absent classes get 0.

    With ``m`` (the training mean projected like ``B``) return instead the ranking
    scores of :func:`cdrscreen.evaluation.cv.rank_scores`: ``x @ coef`` without the
    intercept, as ``[-s, s]`` for two classes (the probabilities otherwise).
    """
    n, P, K = Y.shape
    ym = Y.mean(axis=0)  # (P, K)
    d = s / (s**2 + alpha)
    T = U.T @ (Y - ym).reshape(n, P * K)  # (r, P*K)
    if m is not None and K == 2:
        raw = ((B + m) * d) @ T[:, 1::2] if P > 0 else np.zeros((B.shape[0], 0))  # x @ coef of class 1
        return np.stack([-raw, raw], axis=-1)
    dec = ((B * d) @ T).reshape(-1, P, K) + ym
    dec = np.where(present[None], dec, -np.inf)
    e = np.exp(dec - dec.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _solver(prepared: cv.Prepared, plan: cv.ModelPlan, key: tuple[int, int], train: np.ndarray,
            test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ztr, zte = prepared.get(plan, key, train, test)
    xm = ztr.mean(axis=0)
    U, s, Vt = np.linalg.svd(ztr - xm, full_matrices=False)
    return U, s, (zte - xm) @ Vt.T, xm @ Vt.T


def _targets(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """+-1 one-vs-rest targets (n, P, K) for codes (n, P), and class presence (P, K)."""
    onehot = codes[..., None] == np.arange(k)
    return np.where(onehot, 1.0, -1.0), onehot.any(axis=0)


def _subject_mean(proba: np.ndarray, subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(subjects, return_inverse=True)
    out = np.zeros((len(uniq),) + proba.shape[1:])
    np.add.at(out, inv, proba)
    return uniq, out / np.bincount(inv).reshape((-1,) + (1,) * (proba.ndim - 1))


def _nested(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, protocol: Protocol, ysub: np.ndarray,
            prepared: cv.Prepared, fold_ids: list[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per fold: test-row probabilities, chosen grid index per permutation, ranking scores.

    Shapes (m, P, K), (P,) and (m, P, K).
    """
    k = len(data.classes)
    Yrows = ysub[:, data.subjects].T  # (n_rows, P) class code per row under each labelling
    alphas = _alphas(plan)
    scoring = protocol.cv.inner_scoring
    P = ysub.shape[0]
    results = []
    for f in fold_ids:
        fold = folds[f]
        best = np.zeros(P, dtype=int)
        if plan.grid and len(alphas) > 1:
            scores = np.full((len(fold.inner), len(alphas), P), np.nan)
            for j, (itr, iva) in enumerate(fold.inner):
                if len(iva) == 0:
                    continue
                Y, present = _targets(Yrows[itr], k)
                valid = present.sum(axis=1) >= 2  # the estimator path skips one-class training sets
                U, s, B, _ = _solver(prepared, plan, (f, j), itr, iva)
                y_val = ysub[:, np.unique(data.subjects[iva])]
                for a, alpha in enumerate(alphas):
                    _, sp = _subject_mean(_proba(U, s, B, Y, present, alpha), data.subjects[iva])
                    m = _metric(scoring, y_val, np.argmax(sp, axis=-1).T, k)
                    scores[j, a] = np.where(valid, m, np.nan)
            n_valid = np.sum(~np.isnan(scores), axis=0)  # (A, P)
            mean = np.where(n_valid > 0, np.nansum(scores, axis=0) / np.maximum(n_valid, 1), -np.inf)
            best = np.argmax(mean, axis=0)  # first grid point on ties, like the estimator path
        Y, present = _targets(Yrows[fold.train], k)
        U, s, B, m = _solver(prepared, plan, (f, -1), fold.train, fold.test)
        out = np.empty((len(fold.test), P, k))
        rank = np.empty((len(fold.test), P, k))
        for a in np.unique(best):
            sel = best == a
            out[:, sel] = _proba(U, s, B, Y[:, sel], present[sel], alphas[a])
            rank[:, sel] = _proba(U, s, B, Y[:, sel], present[sel], alphas[a], m=m)
        results.append((out, best, rank))
    return results


def run_folds(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, y: np.ndarray, protocol: Protocol,
              fold_ids: list[int] | None = None, prepared: cv.Prepared | None = None
              ) -> list[cv.FoldResult]:
    """Compute the same output as :func:`cdrscreen.evaluation.cv.run_folds` (row scores, chosen params)."""
    prepared = prepared if prepared is not None else cv.Prepared(data.X)
    ids = list(range(len(folds))) if fold_ids is None else list(fold_ids)
    y_subject = np.zeros(len(data.subject_ids), dtype=int)
    y_subject[data.subjects] = y
    grid = list(ParameterGrid(plan.grid)) if plan.grid else []
    out = []
    for proba, best, rank in _nested(plan, folds, data, protocol, y_subject[None], prepared, ids):
        out.append((proba[:, 0], dict(grid[best[0]]) if grid else {}, rank[:, 0]))
    return out


def permutation_scores(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, protocol: Protocol,
                       perms: list[np.ndarray], metric: str, prepared: cv.Prepared | None = None
                       ) -> list[tuple[float, float]]:
    """``(metric, ROC AUC)`` of the whole nested procedure for each permutation (batched)."""
    if not perms:
        return []
    prepared = prepared if prepared is not None else cv.Prepared(data.X)
    k = len(data.classes)
    ysub = np.stack(perms)  # (P, n_subjects)
    total = np.zeros((len(data.y), ysub.shape[0], k))
    total_r = np.zeros((len(data.y), ysub.shape[0], k))
    count = np.zeros(len(data.y))
    for fold, (out, _, rank) in zip(folds, _nested(plan, folds, data, protocol, ysub, prepared,
                                                    list(range(len(folds)))), strict=True):
        total[fold.test] += out
        total_r[fold.test] += rank
        count[fold.test] += 1
    scored = count > 0
    rows = total[scored] / count[scored, None, None]
    subj, sp = _subject_mean(rows, data.subjects[scored])
    _, sr = _subject_mean(total_r[scored] / count[scored, None, None], data.subjects[scored])
    metric_values = _metric(metric, ysub[:, subj], np.argmax(sp, axis=-1).T, k)
    aucs = [auc_value(ysub[i, subj], sr[:, i]) for i in range(ysub.shape[0])]
    return [(float(v), float(a)) for v, a in zip(metric_values, aucs, strict=True)]
