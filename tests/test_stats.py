"""Metrics, bootstrap CIs and significance tests against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
)

from cdrscreen.evaluation.metrics import (
    bootstrap_metrics,
    bootstrap_weights,
    majority_baseline,
    point_metrics,
    with_cis,
)
from cdrscreen.evaluation.stats import (
    mcnemar,
    paired_difference,
    paired_permutation,
    permutation_p_value,
    subject_permutations,
)


def _cohort(k, n=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    logits = rng.normal(size=(n, k)) + 1.2 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, proba


@pytest.mark.parametrize("k", [2, 3])
def test_point_metrics_match_sklearn(k):
    y, proba = _cohort(k)
    pred = proba.argmax(1)
    m = point_metrics(y, proba)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["recall"] == pytest.approx(list(recall_score(y, pred, average=None)))
    ref_auc = roc_auc_score(y, proba[:, 1]) if k == 2 else roc_auc_score(y, proba, multi_class="ovr")
    assert m["roc_auc"] == pytest.approx(ref_auc)


@pytest.mark.parametrize("k", [2, 3])
def test_vectorised_bootstrap_equals_recomputing_each_resample(k):
    y, proba = _cohort(k, n=25, seed=k)
    w = bootstrap_weights(len(y), 40, seed=3)
    boot = bootstrap_metrics(y, proba, w)
    rng = np.random.default_rng([3, 0xB007])
    idx = rng.integers(0, len(y), size=(40, len(y)))
    for b in range(40):
        yb, pb = y[idx[b]], proba[idx[b]]
        if len(np.unique(yb)) < k:
            assert np.isnan(boot["accuracy"][b])
            continue
        pred = pb.argmax(1)
        assert boot["accuracy"][b] == pytest.approx(accuracy_score(yb, pred))
        assert boot["balanced_accuracy"][b] == pytest.approx(balanced_accuracy_score(yb, pred))
        assert boot["macro_f1"][b] == pytest.approx(f1_score(yb, pred, average="macro", labels=range(k)))
        ref = roc_auc_score(yb, pb[:, 1]) if k == 2 else roc_auc_score(yb, pb, multi_class="ovr")
        assert boot["roc_auc"][b] == pytest.approx(ref)


def test_ci_brackets_the_estimate_and_narrows_with_more_subjects():
    widths = []
    for n in (20, 200):
        y, proba = _cohort(2, n=n, seed=1)
        m = with_cis(y, proba, ["a", "b"], n_boot=500, ci=0.95, seed=0)
        acc = m["accuracy"]
        assert acc["ci_low"] <= acc["value"] <= acc["ci_high"]
        widths.append(acc["ci_high"] - acc["ci_low"])
    assert widths[1] < widths[0] / 2
    # n = 40 at 70% accuracy -> roughly 55-82% (Wilson); the percentile bootstrap agrees to a few points
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    pred = y.copy()
    pred[:6], pred[20:26] = 1, 0  # 28/40 correct
    m = with_cis(y, np.eye(2)[pred], ["a", "b"], n_boot=2000, ci=0.95, seed=0)
    assert m["accuracy"]["value"] == pytest.approx(0.7)
    assert 0.50 < m["accuracy"]["ci_low"] < 0.60 and 0.80 < m["accuracy"]["ci_high"] < 0.88


def test_majority_baseline():
    y = np.array([0, 1, 1, 1, 2])
    b = majority_baseline(y, ["0.5", "1", "2"])
    assert b["majority_class"] == "1" and b["accuracy"] == pytest.approx(0.6)
    assert b["balanced_accuracy"] == pytest.approx(1 / 3)


def test_permutation_p_value_and_permutations():
    assert permutation_p_value(0.9, np.full(99, 0.5)) == pytest.approx(0.01)
    assert permutation_p_value(0.5, np.full(99, 0.5)) == pytest.approx(1.0)
    y = np.array([0, 0, 1, 1, 1])
    perms = subject_permutations(y, 5, seed=1)
    assert all(sorted(p) == sorted(y) for p in perms)
    again = subject_permutations(y, 7, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(perms, again, strict=False))  # prefix-stable


def test_mcnemar_exact():
    a = np.array([True] * 6 + [False] * 4)
    b = np.array([False] * 6 + [False] * 4)
    r = mcnemar(a, b)
    assert (r["n_a_only_correct"], r["n_b_only_correct"]) == (6, 0)
    assert r["p_value"] == pytest.approx(2 * 0.5**6)
    assert mcnemar(a, a)["p_value"] == 1.0


def test_paired_tests():
    y, pa = _cohort(2, n=40, seed=4)
    same = paired_permutation(y, pa, pa, "balanced_accuracy", 200, seed=0)
    assert same["statistic"] == 0 and same["p_value"] == 1.0
    wrong = np.eye(2)[1 - y]
    diff = paired_permutation(y, np.eye(2)[y], wrong, "accuracy", 200, seed=0)
    assert diff["statistic"] == pytest.approx(1.0) and diff["p_value"] < 0.01
    d = paired_difference(y, np.eye(2)[y], wrong, "accuracy", 200, 0.95, seed=0)
    assert d["value"] == pytest.approx(1.0) and d["ci_low"] == pytest.approx(1.0)
