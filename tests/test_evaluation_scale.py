"""Permutation tests at study scale: cached-kernel SVM path and evaluation on a Dask cluster."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import SVC

from cdrscreen.evaluation import cv, evaluate, fast_svm
from cdrscreen.evaluation.data import load_dataset
from cdrscreen.evaluation.protocol import load_protocol
from cdrscreen.evaluation.stats import subject_permutations
from tests.fixtures_evaluation import make_feature_table, small_protocol

SVM = {"name": "s", "learner": "svm", "params": {"kernel": "rbf", "gamma": "scale"}, "grid": {"C": [0.1, 1.0, 10.0]}}


def _case(scheme: str, model: dict, augmented: int = 1, n: int = 15, **proto_kw):
    df = make_feature_table(n, signal={"pupil": 0.7}, augmented_copies=augmented, seed=8)
    proto = load_protocol(small_protocol(labels={"scheme": scheme}, models=[model], **proto_kw))
    data = load_dataset(proto, df)
    return proto, data, cv.make_folds(proto, data), cv.plan_model(proto.models[0], data, 0)


@pytest.mark.parametrize("scheme,model,cv_spec", [
    ("binary", SVM, {}),
    ("3class", dict(SVM, grid={"C": [0.5, 5.0]}), {"outer": "group_kfold", "n_splits": 4, "repeats": 2}),
    ("binary", dict(SVM, grid={}, params={"C": 2.0, "gamma": 0.05}), {}),
])
def test_cached_kernel_permutations_equal_from_scratch_bit_for_bit(scheme, model, cv_spec):
    """The reused-kernel path = every permutation recomputed from scratch (scaler, gamma, kernel, libsvm)."""
    proto, data, folds, plan = _case(scheme, model, cv=cv_spec)
    assert fast_svm.supports(plan, proto)
    perms = [data.subject_y] + subject_permutations(data.subject_y, 3, seed=1)
    reference = fast_svm.reference_plan(plan)
    scratch = []
    for y_subj in perms:  # nothing shared between permutations: fresh blocks, fresh kernels
        cv.MEMO.store.clear()
        cv.MEMO.nbytes = 0
        scratch += cv.permutation_scores(reference, folds, data, proto, [y_subj], "balanced_accuracy",
                                         cv.Prepared(data.X))
    quick = fast_svm.permutation_scores(plan, folds, data, proto, perms, "balanced_accuracy")
    assert quick == scratch  # (metric, AUC) per permutation, exactly
    assert len({m for m, _ in scratch}) > 1 and len({a for _, a in scratch}) > 1


def test_libsvm_calls_equal_svc_on_a_precomputed_kernel():
    rng = np.random.default_rng(0)
    Z, Zt = rng.normal(size=(30, 5)), rng.normal(size=(7, 5))
    y = (Z[:, 0] + rng.normal(size=30) > 0).astype(int)
    g = fast_svm.gamma_value("scale", Z)
    K, Kt = fast_svm.rbf_kernel(Z, Z, g), fast_svm.rbf_kernel(Zt, Z, g)
    svc = SVC(kernel="precomputed", C=3.0, probability=True, random_state=4).fit(K, y)
    lean = fast_svm._Libsvm(SVC(kernel="precomputed", probability=True, random_state=4))
    cls, model = lean.fit(K, y, 3.0, True)
    assert np.array_equal(cls, svc.classes_)
    assert np.array_equal(lean.decision(model, cls, Kt), svc.decision_function(Kt))
    assert np.array_equal(lean.proba(model, Kt), svc.predict_proba(Kt))
    assert np.array_equal(lean.intercept(model, cls), svc.intercept_)


def test_precomputed_kernel_agrees_with_libsvm_rbf_to_float_tolerance():
    """Kernel values computed outside libsvm move decision values by ~1e-13, not the decisions."""
    proto, data, folds, plan = _case("binary", SVM, augmented=0)
    fold = folds[0]
    ztr, zte = cv.Prepared(data.X).get(plan, (0, -1), fold.train, fold.test)
    ztr, zte = np.vstack([ztr, zte[:0]]), np.vstack([zte, ztr[:5]])
    rbf = SVC(kernel="rbf", gamma="scale", C=1.0, probability=True, random_state=0).fit(ztr, data.y[fold.train])
    pre = fast_svm.RBFKernelSVC(gamma="scale", C=1.0, probability=True, random_state=0).fit(ztr, data.y[fold.train])
    np.testing.assert_allclose(pre.decision_function(zte), rbf.decision_function(zte), rtol=0, atol=1e-10)
    np.testing.assert_allclose(pre.predict_proba(zte), rbf.predict_proba(zte), rtol=0, atol=1e-10)
    # the whole permutation test: the libsvm-RBF estimator path gives the same scores
    perms = subject_permutations(data.subject_y, 4, seed=2)
    slow = cv.permutation_scores(plan, folds, data, proto, perms, "balanced_accuracy")
    quick = fast_svm.permutation_scores(plan, folds, data, proto, perms, "balanced_accuracy")
    np.testing.assert_allclose(np.asarray(quick), np.asarray(slow), rtol=0, atol=1e-12)


def test_evaluate_on_a_local_dask_cluster_equals_the_local_run(monkeypatch):
    pytest.importorskip("distributed")
    from cdrscreen.evaluation import engine, runner

    df = make_feature_table(12, signal={"pupil": 0.8}, seed=2)
    proto = small_protocol(models=[SVM, {"name": "lr", "learner": "logreg"}],
                           statistics={"n_bootstrap": 50, "n_permutations": 4})
    local = evaluate(proto, df, progress=False)
    sent: list[tuple[str, bool]] = []

    def spy(fn, args, n_jobs=1, progress=False, description="", client=None):
        sent.append((fn.__name__, client is not None))
        return engine.map_tasks(fn, args, n_jobs, progress, description, client)

    monkeypatch.setattr(runner, "map_tasks", spy)
    on_cluster = evaluate(proto, df, progress=False, scheduler="local:2")
    # the bootstrap CIs (model_metrics) and the paired comparison ran as cluster tasks
    assert sent == [("model_metrics", True), ("compare", True)]
    assert on_cluster.metrics == local.metrics
    assert on_cluster.predictions.equals(local.predictions)
    assert on_cluster.row_predictions.equals(local.row_predictions)
    assert local.primary["permutation"]["p_value"] is not None


def test_scheduler_errors_are_one_line_and_come_before_any_work(tmp_path):
    from cdrscreen.cluster import SchedulerError
    from cdrscreen.core.errors import CdrscreenError

    with pytest.raises(SchedulerError, match="not understood"):
        evaluate(small_protocol(), tmp_path / "missing.parquet", progress=False, scheduler="local")
    with pytest.raises(CdrscreenError, match="exclude each other"):
        evaluate(small_protocol(), tmp_path / "missing.parquet", n_jobs=2, progress=False, scheduler="local:2")


def test_threaded_permutations_equal_one_at_a_time_and_start_no_process(monkeypatch):
    """--jobs 2 runs the cached-kernel permutations in threads: same null, p-values and predictions as --jobs 1."""
    from cdrscreen.evaluation import engine

    proto, data, folds, plan = _case("binary", SVM, augmented=0, n=14)
    assert engine.thread_safe(plan, proto)
    one = engine.run_plans([plan], data, proto, folds, 12, n_jobs=1, progress=False)[0]

    def no_processes(*args, **kwargs):
        raise AssertionError("joblib processes started for a thread-safe permutation test")

    monkeypatch.setattr(engine, "Parallel", no_processes)
    two = engine.run_plans([plan], data, proto, folds, 12, n_jobs=2, progress=False)[0]
    assert np.array_equal(two.null, one.null) and np.array_equal(two.auc_null, one.auc_null)
    assert (two.p_value, two.auc_p_value) == (one.p_value, one.auc_p_value)
    assert np.array_equal(two.row_proba, one.row_proba) and np.array_equal(two.subject_scores, one.subject_scores)
    assert len(set(one.null)) > 1  # the permutations differ: the comparison means something


def test_calibrated_libsvm_fits_in_two_threads_equal_one_at_a_time():
    """Platt scaling draws from libsvm's one process-wide generator: concurrent fits must not interleave."""
    from concurrent.futures import ThreadPoolExecutor

    fast_svm.libsvm.set_verbosity_wrap(0)
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(40, 4))
    K = fast_svm.rbf_kernel(Z, Z, fast_svm.gamma_value("scale", Z))
    ys = [rng.permutation(np.arange(40) % 2) for _ in range(600)]
    lean = fast_svm._Libsvm(SVC(kernel="precomputed", probability=True, random_state=4))

    def job(i: int) -> np.ndarray:
        cls, model = lean.fit(K, ys[i], 1.0, i % 4 != 3)  # calibrated and uncalibrated fits interleaved
        return lean.proba(model, K) if i % 4 != 3 else lean.decision(model, cls, K)

    alone = [job(i) for i in range(len(ys))]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(job, range(len(ys))))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
