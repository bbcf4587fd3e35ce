"""Estimator contracts and behaviour of the fusion models."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from cdrscreen.models import (
    LateFusionClassifier,
    RidgeScoreClassifier,
    StackingGroupsClassifier,
    build_model,
    grid_param_name,
    make_group_pipeline,
)


def _fast_member():
    return make_group_pipeline("logreg", {"max_iter": 200})


@parametrize_with_checks(
    [
        LateFusionClassifier(_fast_member()),
        StackingGroupsClassifier(_fast_member(), final_estimator=LogisticRegression(max_iter=200), n_splits=2),
        RidgeScoreClassifier(),
    ]
)
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)


def _two_groups(seed=0, n=60):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    signal = rng.normal(size=(n, 3)) + 2.0 * y[:, None]
    noise = rng.normal(size=(n, 4))
    return np.hstack([signal, noise]), y, {"sig": [0, 1, 2], "noise": [3, 4, 5, 6]}


def test_late_fusion_is_weighted_mean_of_group_probabilities():
    X, y, groups = _two_groups()
    lf = LateFusionClassifier(_fast_member(), groups, weights={"sig": 3.0, "noise": 1.0}).fit(X, y)
    p_sig = lf.estimators_["sig"].predict_proba(X[:, groups["sig"]])
    p_noise = lf.estimators_["noise"].predict_proba(X[:, groups["noise"]])
    np.testing.assert_allclose(lf.predict_proba(X), 0.75 * p_sig + 0.25 * p_noise)


def test_stacking_meta_learner_prefers_the_informative_group():
    X, y, groups = _two_groups(n=80)
    subjects = np.repeat(np.arange(40), 2)
    st = StackingGroupsClassifier(_fast_member(), groups, n_splits=4).fit(X, y, groups=subjects)
    coef = np.abs(st.final_estimator_.coef_).reshape(2, 2)  # (group, class)
    assert coef[0].sum() > coef[1].sum()
    assert (st.predict(X) == y).mean() > 0.9


def test_stacking_oof_folds_keep_subjects_together(monkeypatch):
    """Every internal fold holds all rows of a subject on one side."""
    from sklearn import model_selection

    seen = []
    orig = model_selection.GroupKFold.split

    def spy(self, X, y=None, groups=None):
        for tr, te in orig(self, X, y, groups):
            seen.append((set(groups[tr]), set(groups[te])))
            yield tr, te

    monkeypatch.setattr(model_selection.GroupKFold, "split", spy)
    X, y, groups = _two_groups(n=80)
    subjects = np.repeat(np.arange(40), 2)
    StackingGroupsClassifier(_fast_member(), groups, n_splits=4).fit(X, y, groups=subjects)
    assert len(seen) == 4
    assert all(not (tr & te) for tr, te in seen)


def test_build_model_grid_names_are_valid_parameters():
    groups = {"a": [0, 1], "b": [2]}
    for fusion in ("early", "late", "stacking"):
        est, prefix = build_model(fusion, groups, "svm", select_k=1)
        names = est.get_params(deep=True)
        assert grid_param_name("C", prefix) in names
        assert grid_param_name("select_k", prefix) in names


def test_unknown_learner_is_rejected():
    with pytest.raises(ValueError, match="unknown learner"):
        make_group_pipeline("xgboost")


def test_ridge_matches_sklearn_ridge_classifier():
    from sklearn.linear_model import RidgeClassifier

    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 6))
    for k in (2, 3):
        y = np.arange(50) % k
        X[:, 0] += y
        ours = RidgeScoreClassifier(alpha=3.0).fit(X, y)
        ref = RidgeClassifier(alpha=3.0).fit(X, y)
        dref = ref.decision_function(X)
        np.testing.assert_allclose(ours.decision_function(X), dref, atol=1e-10)
        np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
        np.testing.assert_allclose(ours.predict_proba(X).sum(1), 1.0)
