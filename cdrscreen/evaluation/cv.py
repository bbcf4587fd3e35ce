"""Subject-wise cross-validation with nested hyperparameter tuning.

Outer splits are ``LeaveOneGroupOut`` on subject (LOSO) or a shuffled ``GroupKFold``
(optionally repeated). Inner splits (tuning) are a shuffled ``GroupKFold`` over the
outer training subjects. Both are label-independent, so they are computed once and
reused by every permutation of the labels. Every estimator (imputation, scaling,
selection, classifier, calibration, stacking) is cloned and fitted on training rows
only; a subject's rows (sessions, augmented copies) are always on one side of a split.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, ParameterGrid
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from cdrscreen.core.errors import ConfigError
from cdrscreen.evaluation.data import Dataset
from cdrscreen.evaluation.metrics import auc_value, score
from cdrscreen.evaluation.protocol import ModelSpec, Protocol
from cdrscreen.models import build_model, grid_param_name

#: Held around every libsvm fit that seeds libsvm's random generator, which is one
#: process-wide generator (Platt scaling draws its internal 5-fold split from it): with
#: fits in several threads, an unguarded fit could reseed or draw from another's stream.
LIBSVM_RNG = threading.Lock()


@dataclass(frozen=True)
class Fold:
    """One outer split as row indices, with its inner (tuning) splits."""

    repeat: int
    index: int
    train: np.ndarray
    test: np.ndarray
    inner: tuple[tuple[np.ndarray, np.ndarray], ...]


def make_folds(protocol: Protocol, data: Dataset, with_inner: bool = True) -> list[Fold]:
    """Outer and inner splits for ``data`` (label-independent, seeded)."""
    cv, aug = protocol.cv, protocol.augmentation
    rows = np.arange(len(data.y))
    train_ok = np.ones(len(rows), bool) if aug.train else ~data.augmented
    test_ok = np.ones(len(rows), bool) if aug.test else ~data.augmented
    n_subj = len(data.subject_ids)
    outer: list[tuple[int, np.ndarray]] = []
    if cv.outer == "loso":
        outer = [(0, te) for _, te in LeaveOneGroupOut().split(rows, groups=data.subjects)]
    else:
        k = min(cv.n_splits, n_subj)
        for r in range(cv.repeats):
            splitter = GroupKFold(k, shuffle=True, random_state=protocol.seed + r)
            outer += [(r, te) for _, te in splitter.split(rows, groups=data.subjects)]
    folds = []
    counter: dict[int, int] = {}
    for r, te_rows in outer:
        test_subj = np.zeros(n_subj, bool)
        test_subj[np.unique(data.subjects[te_rows])] = True
        in_test = test_subj[data.subjects]
        train = rows[~in_test & train_ok]
        test = rows[in_test & test_ok]
        inner: list[tuple[np.ndarray, np.ndarray]] = []
        train_subj_rows = rows[~in_test]
        n_train_subj = len(np.unique(data.subjects[train_subj_rows]))
        if with_inner and n_train_subj >= 2:
            splitter = GroupKFold(min(cv.inner_splits, n_train_subj), shuffle=True, random_state=protocol.seed)
            for itr, iva in splitter.split(train_subj_rows, groups=data.subjects[train_subj_rows]):
                a, b = train_subj_rows[itr], train_subj_rows[iva]
                inner.append((a[train_ok[a]], b[test_ok[b]]))
        i = counter.get(r, 0)
        counter[r] = i + 1
        folds.append(Fold(r, i, train, test, tuple(inner)))
    return folds


@dataclass(frozen=True, eq=False)
class ModelPlan:
    """A protocol model turned into an estimator, its grid and its groups.

    For early fusion the estimator is ``Pipeline([features, select, clf])``; its first
    step (imputation + scaling per group) does not look at labels, so the engine fits it
    once per training set and reuses the transformed arrays for every grid point and
    every label permutation (``prep`` / ``head``). Fitting ``head`` on the output of a
    fitted ``prep`` is exactly what ``Pipeline.fit`` does.
    """

    name: str
    estimator: BaseEstimator
    grid: dict[str, list[Any]]
    groups: list[str]

    @property
    def prep(self) -> BaseEstimator | None:
        """The label-independent first step, or None."""
        est = self.estimator
        if isinstance(est, Pipeline) and est.steps[0][0] == "features":
            return est.steps[0][1]
        return None

    @cached_property
    def head(self) -> BaseEstimator:
        """What is fitted on the output of ``prep`` (the whole estimator if no prep).

        A ``Pipeline([select="passthrough", clf])`` is just ``clf`` (same numbers, less
        overhead); grid names ``clf__*`` are then applied to ``clf`` directly.
        """
        est = self.estimator
        if self.prep is None:
            return est
        rest = [(n, s) for n, s in est.steps[1:] if s != "passthrough"]
        if len(rest) == 1 and rest[0][0] == "clf":
            return rest[0][1]
        return Pipeline(est.steps[1:])

    def head_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Grid parameters renamed for ``head``."""
        if isinstance(self.head, Pipeline) or self.prep is None:
            return params
        return {k.removeprefix("clf__"): v for k, v in params.items()}

    @cached_property
    def takes_groups(self) -> bool:
        """Whether ``head.fit`` accepts subject ``groups`` (stacking does)."""
        return "groups" in inspect.signature(self.head.fit).parameters

    @cached_property
    def decision_inner(self) -> bool:
        """Tune an SVM on its decision function (no Platt calibration needed to rank C)."""
        head = self.head
        clf = head.steps[-1][1] if isinstance(head, Pipeline) else head
        svm = isinstance(clf, SVC) or getattr(clf, "tunes_on_decision", False)
        return self.prep is not None and svm and bool(clf.probability)


def plan_model(spec: ModelSpec, data: Dataset, seed: int, groups: list[str] | None = None) -> ModelPlan:
    """Build the estimator of a protocol model over ``groups`` (default: its own / the run's)."""
    names = list(groups or spec.groups or data.default_groups)
    select_k = spec.select_k
    if select_k is None and "select_k" in spec.grid:
        select_k = int(spec.grid["select_k"][0])
    est, prefix = build_model(
        spec.fusion, data.select_groups(names), spec.learner, spec.params, select_k,
        spec.weights, spec.stacking_splits, seed, spec.meta_learner,
    )
    grid = {grid_param_name(k, prefix): list(v) for k, v in spec.grid.items()}
    valid = est.get_params(deep=True)
    for key, pname in zip(spec.grid, grid, strict=True):
        if pname not in valid:
            raise ConfigError(f"model '{spec.name}': grid key '{key}' is not a parameter of learner '{spec.learner}'")
    return ModelPlan(spec.name, est, grid, names)


def _fit(plan: ModelPlan, params: dict[str, Any], X: np.ndarray, y: np.ndarray, subjects: np.ndarray
         ) -> BaseEstimator:
    est = clone(plan.head).set_params(**plan.head_params(params))
    if plan.takes_groups:
        return est.fit(X, y, groups=subjects)
    if isinstance(est, SVC):  # seeds libsvm's process-wide generator
        with LIBSVM_RNG:
            return est.fit(X, y)
    return est.fit(X, y)


def _proba(est: BaseEstimator, X: np.ndarray, k: int) -> np.ndarray:
    proba = est.predict_proba(X)
    out = np.zeros((X.shape[0], k))
    out[:, np.asarray(est.classes_, dtype=int)] = proba
    return out


def rank_scores(est: BaseEstimator, X: np.ndarray, k: int, proba: np.ndarray) -> np.ndarray:
    """Scores that rank test rows for ROC AUC, as a (n, k) matrix.

    For two classes and a model with a decision function and an intercept (SVM,
    logistic regression, ridge) this is the decision value minus the intercept, as
    ``[-s, s]``: the intercept follows the training set's class balance, which in
    leave-one-subject-out moves against the held-out subject's class and makes pooled
    out-of-fold scores anti-predictive on null data; probability calibration fitted
    inside the fold can then invert them. Other models (and more than two classes)
    rank by their probabilities.
    """
    clf = est.steps[-1][1] if isinstance(est, Pipeline) else est
    if k != 2 or not hasattr(est, "decision_function") or not hasattr(clf, "intercept_") \
            or len(getattr(clf, "classes_", ())) != 2:
        return proba
    d = np.asarray(est.decision_function(X), dtype=float)
    if d.ndim == 2:
        d = d[:, -1]
    s = d - float(np.ravel(clf.intercept_)[-1])
    return np.stack([-s, s], axis=1)


def _decision(est: BaseEstimator, X: np.ndarray, k: int) -> np.ndarray:
    """Decision values as a (n, k) score matrix (absent classes: -inf)."""
    return decision_matrix(est.decision_function(X), est.classes_, k)


def decision_matrix(d: np.ndarray, classes: np.ndarray, k: int) -> np.ndarray:
    """Decision values ``d`` of a model fitted on class codes ``classes`` as a (n, k) score matrix.

    Two classes (``d`` of shape (n,)) give ``[-d, d]``; absent classes get -inf.
    """
    cls = np.asarray(classes, dtype=int)
    out = np.full((d.shape[0], k), -np.inf)
    if d.ndim == 1:
        out[:, cls[0]], out[:, cls[1]] = -d, d
    else:
        out[:, cls] = d
    return out


def aggregate(proba: np.ndarray, subjects: np.ndarray, how: str = "mean", normalize: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per-subject values: mean (or median) over a subject's rows (probabilities renormalised)."""
    uniq, inv = np.unique(subjects, return_inverse=True)
    if how == "mean":
        out = np.zeros((len(uniq), proba.shape[1]))
        np.add.at(out, inv, proba)
        out /= np.bincount(inv)[:, None]
    else:
        out = np.stack([np.median(proba[inv == i], axis=0) for i in range(len(uniq))])
    if not normalize:
        return uniq, out
    s = out.sum(1, keepdims=True)
    return uniq, np.divide(out, s, out=np.full_like(out, 1.0 / out.shape[1]), where=s > 0)


class _Memo:
    """Process-wide, content-addressed store of fitted blocks (bounded, oldest dropped first).

    The key hashes the block's transformer, its input columns' values and the train/test
    row indices, so a hit is the same computation with the same inputs (e.g. the same
    folds of the same table in an evaluation and then an ablation).
    """

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes, self.nbytes, self.store = max_bytes, 0, OrderedDict()
        self._lock = threading.Lock()  # tasks in threads share this store

    #: ``repr`` of each block transformer, computed once per object (scikit-learn's pretty
    #: printer costs milliseconds; block transformers are never re-parameterised)
    _reprs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @classmethod
    def key(cls, trans: Any, X: np.ndarray, cols: Any, train: np.ndarray, test: np.ndarray) -> bytes:
        text = cls._reprs.get(trans)
        if text is None:
            text = cls._reprs[trans] = repr(trans).encode()
        h = hashlib.blake2b(digest_size=20)
        for part in (text, np.ascontiguousarray(X[:, cols]).tobytes(), np.asarray(cols).tobytes(),
                     np.asarray(train).tobytes(), b"|", np.asarray(test).tobytes()):
            h.update(part)
        return h.digest()

    def get(self, key: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        return self.store.get(key)

    def put(self, key: bytes, value: tuple[np.ndarray, np.ndarray]) -> None:
        with self._lock:
            if key in self.store:
                return
            self.store[key] = value
            self.nbytes += value[0].nbytes + value[1].nbytes
            while self.nbytes > self.max_bytes and self.store:
                _, old = self.store.popitem(last=False)
                self.nbytes -= old[0].nbytes + old[1].nbytes


MEMO = _Memo()


class Prepared:
    """Cache of fitted label-independent blocks (per group, per training set).

    Shared by every model, grid point and label permutation (and, through ``MEMO``, by
    later runs on the same table and folds).

    ``ColumnTransformer.fit_transform`` fits each block on its own columns and
    concatenates the outputs with ``np.hstack``; doing the same per block and caching
    the result gives the same arrays without refitting. A block is identified by its
    name and columns (all blocks are the same imputer + scaler pipeline).
    """

    def __init__(self, X: np.ndarray, blocks: dict | None = None) -> None:
        self.X = X
        self.blocks: dict = dict(blocks or {})
        self._stacked: dict = {}

    def lookup(self, plan: ModelPlan, key: tuple[int, int], train: np.ndarray, test: np.ndarray) -> bool:
        """Fill this plan's blocks for one training set from ``MEMO``; True if all were there."""
        ok = True
        for name, trans, cols in (plan.prep.transformers if plan.prep is not None else []):
            bkey = (name, tuple(cols), key)
            if bkey not in self.blocks:
                hit = MEMO.get(MEMO.key(trans, self.X, cols, train, test))
                if hit is None:
                    ok = False
                else:
                    self.blocks[bkey] = hit
        return ok

    def remember(self, plan: ModelPlan, key: tuple[int, int], train: np.ndarray, test: np.ndarray) -> None:
        """Store this plan's fitted blocks for one training set in ``MEMO``."""
        for name, trans, cols in (plan.prep.transformers if plan.prep is not None else []):
            bkey = (name, tuple(cols), key)
            if bkey in self.blocks:
                MEMO.put(MEMO.key(trans, self.X, cols, train, test), self.blocks[bkey])

    def get(self, plan: ModelPlan, key: tuple[int, int], train: np.ndarray, test: np.ndarray, keep: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
        """Return the transformed (train, test) arrays of ``plan`` for one training set.

        ``keep=False`` does not keep the concatenated arrays (only the per-group blocks),
        for a caller that uses them once (the cached-kernel path keeps the kernel instead).
        """
        if plan.prep is None:
            return self.X[train], self.X[test]
        bkeys = []
        for name, trans, cols in plan.prep.transformers:
            bkey = (name, tuple(cols), key)
            if bkey not in self.blocks:
                mkey = MEMO.key(trans, self.X, cols, train, test)
                hit = MEMO.get(mkey)
                if hit is None:
                    # same selection (and memory layout) as Pipeline + ColumnTransformer
                    xtr, xte = self.X[train][:, cols], self.X[test][:, cols]
                    fitted = clone(trans).fit(xtr)
                    hit = (fitted.transform(xtr), fitted.transform(xte))
                    MEMO.put(mkey, hit)
                self.blocks[bkey] = hit
            bkeys.append(bkey)
        skey = tuple(bkeys)
        hit = self._stacked.get(skey)  # type: ignore[assignment]
        if hit is None:
            parts = [self.blocks[k] for k in bkeys]
            hit = (np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts]))
            if keep:
                self._stacked[skey] = hit
        return hit


def _tune(plan: ModelPlan, fold_id: int, fold: Fold, prepared: Prepared, y: np.ndarray, subjects: np.ndarray,
          k: int, scoring: str, how: str) -> dict[str, Any]:
    """Pick the grid point with the best mean inner subject-level score (first on ties)."""
    best, best_score = {}, -np.inf
    decision = plan.decision_inner
    extra = {"clf__probability": False} if decision else {}
    for params in ParameterGrid(plan.grid):
        scores = []
        for j, (itr, iva) in enumerate(fold.inner):
            if len(np.unique(y[itr])) < 2 or len(iva) == 0:
                continue
            ztr, zva = prepared.get(plan, (fold_id, j), itr, iva)
            est = _fit(plan, {**params, **extra}, ztr, y[itr], subjects[itr])
            rows = _decision(est, zva, k) if decision else _proba(est, zva, k)
            subj, sp = aggregate(rows, subjects[iva], how, normalize=not decision)
            y_subj = np.zeros(len(subj), int)
            y_subj[np.searchsorted(subj, subjects[iva])] = y[iva]
            scores.append(score(scoring, y_subj, sp))
        mean = float(np.mean(scores)) if scores else -np.inf
        if mean > best_score or not best:
            best, best_score = params, mean
    return dict(best)


FoldResult = tuple[np.ndarray, dict[str, Any], np.ndarray]  #: (test-row proba, chosen params, rank scores)


def fit_predict_fold(plan: ModelPlan, fold_id: int, fold: Fold, prepared: Prepared, y: np.ndarray,
                     subjects: np.ndarray, k: int, scoring: str, how: str) -> FoldResult:
    """Tune on the inner splits, refit on the outer training rows, predict the test rows.

    Returns the test rows' probabilities, the chosen parameters and the rows' ranking
    scores (:func:`rank_scores`).
    """
    params = _tune(plan, fold_id, fold, prepared, y, subjects, k, scoring, how) if plan.grid else {}
    ztr, zte = prepared.get(plan, (fold_id, -1), fold.train, fold.test)
    est = _fit(plan, params, ztr, y[fold.train], subjects[fold.train])
    proba = _proba(est, zte, k)
    return proba, params, rank_scores(est, zte, k, proba)


def run_folds(plan: ModelPlan, folds: list[Fold], data: Dataset, y: np.ndarray, protocol: Protocol,
              fold_ids: list[int] | None = None, prepared: Prepared | None = None
              ) -> list[FoldResult]:
    """``fit_predict_fold`` for the given folds (all by default), sequentially."""
    k = len(data.classes)
    ids = range(len(folds)) if fold_ids is None else fold_ids
    prepared = prepared if prepared is not None else Prepared(data.X)
    return [fit_predict_fold(plan, i, folds[i], prepared, y, data.subjects, k, protocol.cv.inner_scoring,
                             protocol.subject_aggregation) for i in ids]


def assemble(folds: list[Fold], results: list[FoldResult], n_rows: int, k: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row probabilities and ranking scores (mean over repeats; NaN = never tested), fold per row."""
    total = np.zeros((n_rows, k))
    total_s = np.zeros((n_rows, k))
    count = np.zeros(n_rows)
    fold_of_row = np.full(n_rows, -1)
    for fold, (proba, _, scores) in zip(folds, results, strict=True):
        total[fold.test] += proba
        total_s[fold.test] += scores
        count[fold.test] += 1
        if fold.repeat == 0:
            fold_of_row[fold.test] = fold.index
    with np.errstate(invalid="ignore"):
        return total / count[:, None], fold_of_row, total_s / count[:, None]


def subject_predictions(row_proba: np.ndarray, data: Dataset, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Subject codes that were scored and their aggregated probabilities."""
    scored = ~np.isnan(row_proba[:, 0])
    return aggregate(row_proba[scored], data.subjects[scored], how)


def subject_scores(row_scores: np.ndarray, data: Dataset, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Subject codes that were scored and their aggregated ranking scores (not renormalised)."""
    scored = ~np.isnan(row_scores[:, 0])
    return aggregate(row_scores[scored], data.subjects[scored], how, normalize=False)


def permutation_scores(plan: ModelPlan, folds: list[Fold], data: Dataset, protocol: Protocol,
                       perms: list[np.ndarray], metric: str, prepared: Prepared | None = None
                       ) -> list[tuple[float, float]]:
    """Repeat the whole nested procedure for each subject-label permutation.

    Returns ``(metric, ROC AUC)`` per permutation (AUC from the ranking scores).
    """
    k, how = len(data.classes), protocol.subject_aggregation
    prepared = prepared if prepared is not None else Prepared(data.X)
    out = []
    for y_subj in perms:
        y = y_subj[data.subjects]
        row_proba, _, row_scores = assemble(folds, run_folds(plan, folds, data, y, protocol, prepared=prepared),
                                            len(y), k)
        subj, sp = subject_predictions(row_proba, data, how)
        _, ss = subject_scores(row_scores, data, how)
        out.append((score(metric, y_subj[subj], sp), auc_value(y_subj[subj], ss)))
    return out
