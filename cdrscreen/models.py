"""scikit-learn estimators for CDR classification from grouped feature tables.

* :func:`make_group_pipeline` - one feature group: median imputation -> standard scaling
  -> optional univariate selection -> classifier (SVM with Platt-calibrated
  probabilities, logistic regression or random forest). Every step learns only from the
  rows it is fitted on, so used inside a cross-validation fold nothing leaks.
* :func:`make_early_fusion` - groups concatenated by a ``ColumnTransformer`` (one block
  per group, each imputed and scaled on its own); an ablation drops a block.
* :class:`LateFusionClassifier` - one classifier per group; probabilities averaged
  (optionally weighted).
* :class:`StackingGroupsClassifier` - one classifier per group; a meta-learner is fitted
  on *out-of-fold* per-group probabilities computed by a subject-grouped CV over the
  training rows only (the outer test subject is never touched).

Columns are addressed by integer position (``groups`` maps a group name to column
indices), so every estimator works on plain NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

Groups = Mapping[str, Sequence[int]]


def make_learner(learner: str = "svm", params: Mapping[str, Any] | None = None, seed: int = 0) -> BaseEstimator:
    """Return an unfitted classifier.

    Parameters
    ----------
    learner : {"svm", "logreg", "rf", "ridge"}
        ``svm``: :class:`~sklearn.svm.SVC` with ``probability=True`` (Platt scaling by
        libsvm's internal 5-fold CV over the training rows, seeded by ``seed``), RBF
        kernel unless ``params`` says otherwise. The Platt probabilities are what people
        see and what decides the predicted class; ROC AUC ranks by the decision value
        instead (:func:`cdrscreen.evaluation.cv.rank_scores`), because Platt scaling
        fitted on anti-predictive leave-one-subject-out scores can invert them. ``logreg``: L2 logistic regression. ``rf``: random
        forest (200 trees unless ``params`` says otherwise). ``ridge``:
        :class:`RidgeScoreClassifier` (closed form; fast permutation tests).
    params : mapping, optional
        Constructor parameters of the classifier.
    seed : int
        ``random_state`` of the classifier.
    """
    params = dict(params or {})
    if learner == "svm":
        return SVC(**{"probability": True, "random_state": seed, **params})
    if learner == "logreg":
        return LogisticRegression(**{"max_iter": 2000, "random_state": seed, **params})
    if learner == "rf":
        return RandomForestClassifier(**{"n_estimators": 200, "random_state": seed, "n_jobs": 1, **params})
    if learner == "ridge":
        return RidgeScoreClassifier(**params)
    raise ValueError(f"unknown learner {learner!r}; use 'svm', 'logreg', 'rf' or 'ridge'")


class RidgeScoreClassifier(ClassifierMixin, BaseEstimator):
    """Ridge least-squares classifier (one-vs-rest targets +-1) with softmax scores.

    Solves ``min ||Y - X W - b||^2 + alpha ||W||^2`` (intercept unpenalised, via the SVD
    of the centred ``X``) for one-vs-rest targets (+1 for the class, -1 otherwise), like
    scikit-learn's ``RidgeClassifier``. ``predict_proba`` is the softmax of the decision
    values: a monotone score in [0, 1], NOT a calibrated probability. Its closed form
    lets the permutation test solve all permutations of a fold at once.

    Parameters
    ----------
    alpha : float
        L2 penalty (> 0).

    Attributes
    ----------
    classes_ : ndarray
    coef_ : ndarray of shape (n_features, n_classes)
    intercept_ : ndarray of shape (n_classes,)
    """

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X: Any, y: Any) -> RidgeScoreClassifier:
        """Fit by the SVD of the centred design matrix."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if not self.alpha > 0:
            raise ValueError("alpha must be > 0")
        self.classes_, codes = np.unique(y, return_inverse=True)
        Y = np.where(codes[:, None] == np.arange(len(self.classes_))[None, :], 1.0, -1.0)
        x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)
        U, s, Vt = np.linalg.svd(X - x_mean, full_matrices=False)
        d = s / (s**2 + self.alpha)
        self.coef_ = Vt.T @ (d[:, None] * (U.T @ (Y - y_mean)))
        self.intercept_ = y_mean - x_mean @ self.coef_
        return self

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_ + self.intercept_

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values: (n_samples,) for 2 classes (positive = ``classes_[1]``), else per class."""
        d = self._scores(X)
        return d[:, 1] if d.shape[1] == 2 else d

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the per-class decision values (scores, not calibrated probabilities)."""
        return softmax(self._scores(X))

    def predict(self, X: Any) -> np.ndarray:
        """Class with the largest decision value."""
        d = self._scores(X)
        return self.classes_[np.argmax(d, axis=1)]


def softmax(d: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis (numerically stable)."""
    e = np.exp(d - d.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _prep() -> Pipeline:
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
    ])


def make_group_pipeline(
    learner: str = "svm", params: Mapping[str, Any] | None = None, select_k: int | None = None, seed: int = 0
) -> Pipeline:
    """Imputation -> scaling -> optional ``SelectKBest(f_classif, k)`` -> classifier.

    ``select_k`` larger than the number of columns keeps all columns.
    """
    steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
    ]
    steps.append(("select", SelectKBest(f_classif, k=select_k) if select_k else "passthrough"))
    steps.append(("clf", make_learner(learner, params, seed)))
    return Pipeline(steps)


def make_early_fusion(
    groups: Groups,
    learner: str = "svm",
    params: Mapping[str, Any] | None = None,
    select_k: int | None = None,
    seed: int = 0,
) -> Pipeline:
    """Early fusion: a ``ColumnTransformer`` with one imputed + scaled block per group.

    Dropping a group from ``groups`` drops its block (that is what an ablation does).
    """
    if not groups:
        raise ValueError("early fusion needs at least one feature group")
    blocks = ColumnTransformer(
        [(name, _prep(), list(cols)) for name, cols in groups.items()], remainder="drop"
    )
    return Pipeline([
        ("features", blocks),
        ("select", SelectKBest(f_classif, k=select_k) if select_k else "passthrough"),
        ("clf", make_learner(learner, params, seed)),
    ])


def _resolve_groups(groups: Groups | None, n_features: int) -> dict[str, np.ndarray]:
    if groups is None:
        return {"all": np.arange(n_features)}
    out = {}
    for name, cols in groups.items():
        idx = np.asarray(list(cols), dtype=int)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n_features:
            raise ValueError(f"group {name!r} has column indices outside 0..{n_features - 1}")
        out[str(name)] = idx
    if not out:
        raise ValueError("at least one feature group is needed")
    return out


def _aligned_proba(est: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``est.predict_proba(X)`` with columns aligned to ``classes`` (absent ones = 0)."""
    proba = est.predict_proba(X)
    if len(est.classes_) == len(classes) and np.array_equal(est.classes_, classes):
        return proba
    out = np.zeros((X.shape[0], len(classes)))
    pos = np.searchsorted(classes, est.classes_)
    out[:, pos] = proba
    return out


class _GroupEnsemble(ClassifierMixin, BaseEstimator):
    """Shared machinery: one clone of ``estimator`` per feature group."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # members impute missing values inside the fit
        return tags

    def _fit_members(self, X: np.ndarray, y: np.ndarray) -> None:
        template = self.estimator if self.estimator is not None else make_group_pipeline("logreg")
        self.groups_ = _resolve_groups(self.groups, X.shape[1])
        self.estimators_ = {g: clone(template).fit(X[:, cols], y) for g, cols in self.groups_.items()}

    def _member_proba(self, X: np.ndarray) -> np.ndarray:
        """Per-group probabilities stacked as (n_samples, n_groups, n_classes)."""
        return np.stack(
            [_aligned_proba(est, X[:, self.groups_[g]], self.classes_) for g, est in self.estimators_.items()],
            axis=1,
        )

    def predict(self, X: Any) -> np.ndarray:
        """Class with the highest probability (first class on ties)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class LateFusionClassifier(_GroupEnsemble):
    """Late fusion: one classifier per feature group, probabilities (weighted) averaged.

    Parameters
    ----------
    estimator : estimator, optional
        Template cloned for every group (default: logistic-regression group pipeline).
    groups : mapping of str to sequence of int, optional
        Group name -> column indices. ``None`` treats all columns as one group.
    weights : mapping of str to float, optional
        Weight per group (missing groups weigh 1). ``None`` = equal weights.

    Attributes
    ----------
    classes_ : ndarray
        Class labels.
    estimators_ : dict
        Fitted classifier per group.
    groups_ : dict
        Resolved column indices per group.
    weights_ : ndarray
        Normalised weight per group, in ``estimators_`` order.
    """

    def __init__(self, estimator: Any = None, groups: Groups | None = None, weights: Mapping[str, float] | None = None):
        self.estimator = estimator
        self.groups = groups
        self.weights = weights

    def fit(self, X: Any, y: Any) -> LateFusionClassifier:
        """Fit one classifier per group on all rows given."""
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        self._fit_members(X, y)
        w = np.array([float((self.weights or {}).get(g, 1.0)) for g in self.estimators_])
        if np.any(w < 0) or w.sum() <= 0:
            raise ValueError("late-fusion weights must be >= 0 and not all 0")
        self.weights_ = w / w.sum()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Weighted mean of the per-group class probabilities."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return np.einsum("ngk,g->nk", self._member_proba(X), self.weights_)


class StackingGroupsClassifier(_GroupEnsemble):
    """Stacking: a meta-learner on out-of-fold per-group probabilities.

    ``fit(X, y, groups=subject_ids)`` computes each group classifier's out-of-fold
    probabilities with a ``GroupKFold`` over the rows it is given (rows of one subject
    stay together), fits the meta-learner on them, then refits every group classifier on
    all rows. Inside an outer CV fold the outer test subject is never touched. Without
    ``groups`` each row is its own group (stratified folds).

    Parameters
    ----------
    estimator : estimator, optional
        Template cloned for every group (default: logistic-regression group pipeline).
    groups : mapping of str to sequence of int, optional
        Group name -> column indices; ``None`` treats all columns as one group.
    final_estimator : estimator, optional
        Meta-learner (default: ``LogisticRegression(C=1.0)``).
    n_splits : int
        Folds of the internal out-of-fold CV.

    Attributes
    ----------
    classes_ : ndarray
    estimators_ : dict
    groups_ : dict
    final_estimator_ : estimator
        The fitted meta-learner.
    """

    def __init__(
        self, estimator: Any = None, groups: Groups | None = None, final_estimator: Any = None, n_splits: int = 3
    ):
        self.estimator = estimator
        self.groups = groups
        self.final_estimator = final_estimator
        self.n_splits = n_splits

    def _meta(self, member_proba: np.ndarray) -> np.ndarray:
        return member_proba.reshape(member_proba.shape[0], -1)

    def fit(self, X: Any, y: Any, groups: Any = None) -> StackingGroupsClassifier:
        """Fit the group classifiers and the meta-learner (see class docstring)."""
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        template = self.estimator if self.estimator is not None else make_group_pipeline("logreg")
        cols = _resolve_groups(self.groups, X.shape[1])
        if groups is None:
            _, counts = np.unique(y, return_counts=True)
            k = int(min(self.n_splits, counts.min()))
            splits = list(StratifiedKFold(k).split(X, y)) if k >= 2 else []
        else:
            groups = np.asarray(groups)
            k = int(min(self.n_splits, len(np.unique(groups))))
            splits = list(GroupKFold(k).split(X, y, groups)) if k >= 2 else []
        oof = np.full((X.shape[0], len(cols), len(self.classes_)), 1.0 / len(self.classes_))
        for train, test in splits:
            if len(np.unique(y[train])) < 2:
                continue
            for gi, (_, c) in enumerate(cols.items()):
                est = clone(template).fit(X[np.ix_(train, c)], y[train])
                oof[test, gi] = _aligned_proba(est, X[np.ix_(test, c)], self.classes_)
        meta = self.final_estimator if self.final_estimator is not None else LogisticRegression(max_iter=2000)
        self.final_estimator_ = clone(meta).fit(self._meta(oof), y)
        self._fit_members(X, y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Meta-learner probabilities from the group classifiers' probabilities."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return _aligned_proba(self.final_estimator_, self._meta(self._member_proba(X)), self.classes_)


def build_model(
    fusion: str,
    groups: Groups,
    learner: str = "svm",
    params: Mapping[str, Any] | None = None,
    select_k: int | None = None,
    weights: Mapping[str, float] | None = None,
    stacking_splits: int = 3,
    seed: int = 0,
    meta_learner: str = "logreg",
) -> tuple[BaseEstimator, str]:
    """Build the estimator for a protocol model; also return its grid-parameter prefix.

    A grid key ``C`` becomes ``<prefix>clf__C``; the key ``select_k`` becomes
    ``<prefix>select__k``.
    """
    if fusion == "early":
        return make_early_fusion(groups, learner, params, select_k, seed), ""
    member = make_group_pipeline(learner, params, select_k, seed)
    if fusion == "late":
        return LateFusionClassifier(member, dict(groups), dict(weights) if weights else None), "estimator__"
    if fusion == "stacking":
        meta = make_learner(meta_learner, None, seed)
        return StackingGroupsClassifier(member, dict(groups), meta, stacking_splits), "estimator__"
    raise ValueError(f"unknown fusion {fusion!r}; use 'early', 'late' or 'stacking'")


def grid_param_name(key: str, prefix: str) -> str:
    """Estimator parameter name for a protocol grid key (``select_k`` or a learner parameter)."""
    return f"{prefix}select__k" if key == "select_k" else f"{prefix}clf__{key}"
