"""Evaluation engine: equality with scikit-learn, leakage, null cohorts, run folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, GroupKFold, LeaveOneGroupOut, cross_val_predict

from cdrscreen.core.errors import ConfigError, InputError
from cdrscreen.evaluation import evaluate
from cdrscreen.evaluation.data import load_dataset
from cdrscreen.evaluation.protocol import load_protocol
from cdrscreen.models import make_early_fusion
from tests.fixtures_evaluation import make_feature_table, small_protocol


def _arrays(df, proto):
    data = load_dataset(load_protocol(proto), df)
    return data, data.X, data.y, data.subjects


def test_loso_equals_cross_val_predict_with_leave_one_group_out():
    df = make_feature_table(20, signal={"pupil": 1.0}, sessions=2, seed=3).drop(columns="meta__augmented")
    proto = small_protocol()
    result = evaluate(proto, df, progress=False)
    data, X, y, subjects = _arrays(df, proto)
    ref = cross_val_predict(make_early_fusion(data.groups, "svm", {"C": 1.0}, seed=0), X, y,
                            groups=subjects, cv=LeaveOneGroupOut(), method="predict_proba")
    rows = result.row_predictions.loc["svm"]
    ours = rows[[f"proba__{c}" for c in data.classes]].to_numpy()
    # same row order: the table keeps the feature table's row order
    assert list(rows.index.get_level_values("file")) == list(df.index.get_level_values("file"))
    np.testing.assert_array_equal(ours, ref)
    # subject probabilities = mean of the subject's rows
    subj = result.predictions.loc["svm"]
    means = rows.groupby(level="subject")[[f"proba__{c}" for c in data.classes]].mean()
    np.testing.assert_allclose(subj[means.columns].to_numpy(), means.loc[subj.index].to_numpy(), atol=1e-12)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # sklearn's inner scoring
def test_nested_tuning_equals_gridsearchcv_inside_cross_val_predict():
    """One row per subject: our nested LOSO = cross_val_predict(GridSearchCV(GroupKFold))."""
    df = make_feature_table(16, signal={"pupil": 0.8}, seed=5).drop(columns="meta__augmented")
    grid = [0.01, 1.0]
    proto = small_protocol(models=[{"name": "lr", "learner": "logreg", "grid": {"C": grid}}],
                           cv={"inner_splits": 3, "inner_scoring": "balanced_accuracy"})
    result = evaluate(proto, df, progress=False)
    data, X, y, subjects = _arrays(df, proto)
    pipe = make_early_fusion(data.groups, "logreg", seed=0)
    search = GridSearchCV(pipe, {"clf__C": grid}, scoring="balanced_accuracy",
                          cv=GroupKFold(3, shuffle=True, random_state=0))
    ref = cross_val_predict(search, X, y, groups=subjects, cv=LeaveOneGroupOut(),
                            method="predict_proba", params={"groups": subjects})
    ours = result.row_predictions.loc["lr"][[f"proba__{c}" for c in data.classes]].to_numpy()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert sum(p["n_folds"] for p in result.primary["chosen_params"]) == 16


def _identity_cohort(n_subjects=40, seed=0):
    """Features that encode only the subject's identity; labels random across subjects;
    every recording duplicated as an augmented copy (like flipped videos)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat([0.5, 1.0], n_subjects // 2))
    records, index = [], []
    for s in range(n_subjects):
        identity = rng.normal(size=12)
        for copy in range(2):
            row = {f"expr__id{j:02d}": v + (rng.normal() * 0.01 if copy else 0.0) for j, v in enumerate(identity)}
            row.update({"meta__cdr": labels[s], "meta__augmented": bool(copy)})
            records.append(row)
            index.append((f"S{s:02d}", "1", f"S{s:02d}{'_flip' * copy}.mp4"))
    return pd.DataFrame.from_records(records, index=pd.MultiIndex.from_tuples(index, names=["subject", "session", "file"]))


def test_planted_leakage_cannot_lift_loso_but_lifts_a_record_wise_split():
    df = _identity_cohort()
    proto = small_protocol(models=[{"name": "svm", "learner": "svm", "params": {"C": 100.0}}],
                           augmentation={"train": True, "test": True})
    loso = evaluate(proto, df, progress=False).primary
    # Record-wise control: the same rows, but every row claims to be its own subject, so the
    # splitter cannot keep a recording and its augmented copy together.
    record_wise = df.reset_index()
    record_wise["subject"] = record_wise["subject"] + "_" + record_wise["file"]
    record = evaluate(proto, record_wise.set_index(["subject", "session", "file"]), progress=False).primary
    assert record["metrics"]["balanced_accuracy"]["value"] > 0.9  # the leak is real and detectable
    assert loso["metrics"]["balanced_accuracy"]["value"] < 0.7
    assert loso["metrics"]["balanced_accuracy"]["ci_low"] < 0.5 < record["metrics"]["balanced_accuracy"]["ci_low"]


def test_augmented_rows_stay_with_their_subject_and_are_not_scored(feature_table):
    proto = small_protocol(augmentation={"train": True, "test": False})
    result = evaluate(proto, feature_table, progress=False)
    rows = result.row_predictions.loc["svm"]
    assert not rows["augmented"].any()
    assert (result.predictions.loc["svm", "n_rows"] == 1).all()
    # each subject's fold is the fold its rows were tested in; folds are one subject each (LOSO)
    assert result.predictions.loc["svm", "fold"].is_unique
    from cdrscreen.evaluation import cv

    data = load_dataset(load_protocol(proto), feature_table)
    for fold in cv.make_folds(load_protocol(proto), data):
        assert not set(data.subjects[fold.train]) & set(data.subjects[fold.test])
        for tr, va in fold.inner:
            assert not set(data.subjects[tr]) & set(data.subjects[va])
            assert not set(data.subjects[va]) & set(data.subjects[fold.test])


@pytest.mark.slow
def test_null_cohort_is_at_chance_with_nonsignificant_permutation_p():
    """Random labels: balanced accuracy's CI covers chance and p > 0.05 in most seeds."""
    outcomes = []
    for seed in range(5):
        df = make_feature_table(20, signal={"pupil": 2.0}, random_labels=True, seed=100 + seed)
        proto = small_protocol(seed=seed, models=[{"name": "lr", "learner": "logreg", "params": {"C": 0.5}}],
                               statistics={"n_bootstrap": 300, "n_permutations": 19})
        m = evaluate(proto, df, progress=False).primary
        ba = m["metrics"]["balanced_accuracy"]
        outcomes.append(ba["ci_low"] <= 0.5 <= ba["ci_high"] and m["permutation"]["p_value"] > 0.05)
    assert sum(outcomes) >= 4, outcomes


def test_planted_signal_is_significant(feature_table):
    proto = small_protocol(statistics={"n_bootstrap": 200, "n_permutations": 9})
    m = evaluate(proto, feature_table, n_jobs=1, progress=False).primary
    assert m["metrics"]["balanced_accuracy"]["value"] > 0.75
    assert m["permutation"]["p_value"] == pytest.approx(0.1)  # nothing in 9 permutations beat it
    assert m["n_per_class"] == {"0.5": 8, "1+": 16}
    assert m["baseline"] == {"majority_class": "1+", "accuracy": pytest.approx(16 / 24),
                             "balanced_accuracy": 0.5, "macro_f1": pytest.approx(0.4)}


@pytest.mark.slow
def test_rerun_is_bit_identical_whatever_n_jobs(tmp_path, feature_parquet):
    proto = small_protocol(models=[{"name": "svm", "grid": {"C": [0.1, 1.0]}},
                                   {"name": "late", "fusion": "late", "learner": "logreg"}],
                           statistics={"n_bootstrap": 100, "n_permutations": 2})
    evaluate(proto, feature_parquet, tmp_path / "a", n_jobs=1, progress=False)
    evaluate(proto, feature_parquet, tmp_path / "b", n_jobs=2, progress=False)
    for name in ("predictions.parquet", "row_predictions.parquet", "metrics.json", "roc.parquet", "protocol.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_run_folder_follows_the_documented_contract(tmp_path, feature_parquet):
    proto = small_protocol(models=[{"name": "svm"}, {"name": "rf", "learner": "rf", "params": {"n_estimators": 20}}],
                           labels={"scheme": "3class"}, statistics={"n_bootstrap": 50, "n_permutations": 2})
    out = tmp_path / "run"
    evaluate(proto, feature_parquet, out, progress=False)
    for name in ("run.json", "protocol.yaml", "environment.json", "inputs.json", "predictions.parquet",
                 "row_predictions.parquet", "metrics.json", "roc.parquet", "figures/confusion_svm.png",
                 "figures/roc_svm.png", "figures/confusion_rf.png"):
        assert (out / name).is_file(), name
    preds = pd.read_parquet(out / "predictions.parquet")
    assert preds.index.names == ["model", "subject"]
    for col in ("y_true", "y_pred", "proba__0.5", "proba__1", "proba__2", "correct", "fold", "n_rows",
                "meta__cdr", "meta__age", "meta__sex", "meta__mmse"):
        assert col in preds.columns, col
    np.testing.assert_allclose(preds.filter(like="proba__").sum(axis=1), 1.0)
    rows = pd.read_parquet(out / "row_predictions.parquet")
    assert rows.index.names == ["model", "subject", "session", "file"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == ["0.5", "1", "2"] and metrics["positive_class"] is None
    svm = metrics["models"]["svm"]
    assert set(svm["metrics"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "recall"}
    assert np.sum(svm["confusion_matrix"]["matrix"]) == 24
    assert svm["permutation"]["n"] == 2
    assert metrics["comparisons"][0]["a"] == "svm" and metrics["comparisons"][0]["b"] == "rf"
    inputs = json.loads((out / "inputs.json").read_text())
    assert len(inputs["features"]["sha256"]) == 64 and inputs["features"]["n_subjects"] == 24
    roc = pd.read_parquet(out / "roc.parquet")
    assert set(roc["class"]) == {"0.5", "1", "2"}


def test_grouped_kfold_repeats_average_over_repeats(feature_table):
    proto = small_protocol(cv={"outer": "group_kfold", "n_splits": 4, "repeats": 2})
    result = evaluate(proto, feature_table, progress=False)
    assert len(result.predictions) == 24
    assert result.primary["metrics"]["accuracy"]["value"] > 0.6


def test_bad_inputs_are_one_line_errors(tmp_path, feature_table):
    with pytest.raises(InputError, match="feature group.*voice.*not in the table"):
        evaluate(small_protocol(features={"groups": ["pupil", "voice"]}), feature_table, progress=False)
    bad = feature_table.copy()
    bad.loc[bad.index[1], "meta__cdr"] = 2.0  # S000's flipped copy gets another label
    with pytest.raises(InputError, match="S000.*different labels"):
        evaluate(small_protocol(), bad, progress=False)
    lonely = feature_table.copy()
    lonely.loc[lonely.index.get_level_values("subject") != "S002", "meta__cdr"] = 0.5  # only S002 is CDR 2
    with pytest.raises(InputError, match="class.*1\\+.*fewer than 2 subjects"):
        evaluate(small_protocol(), lonely, progress=False)
    path = tmp_path / "broken.parquet"
    path.write_text("not parquet")
    with pytest.raises(InputError, match="broken.parquet: not a readable Parquet"):
        evaluate(small_protocol(), path, progress=False)
    with pytest.raises(ConfigError, match="grid key 'Cc'"):
        evaluate(small_protocol(models=[{"name": "s", "grid": {"Cc": [1]}}]), feature_table, progress=False)


@pytest.mark.parametrize("scheme,grid,cv_spec", [
    ("binary", {"alpha": [0.1, 10.0, 1000.0]}, {}),
    ("3class", {"alpha": [1.0, 100.0]}, {"outer": "group_kfold", "n_splits": 4, "repeats": 2}),
    ("binary", {}, {}),
])
def test_batched_ridge_permutations_equal_the_estimator_path(scheme, grid, cv_spec):
    from cdrscreen.evaluation import cv, fast
    from cdrscreen.evaluation.stats import subject_permutations

    df = make_feature_table(18, signal={"pupil": 0.7}, augmented_copies=1, seed=8)
    proto = load_protocol(small_protocol(labels={"scheme": scheme}, cv=cv_spec,
                                         models=[{"name": "r", "learner": "ridge", "grid": grid}]))
    data = load_dataset(proto, df)
    folds = cv.make_folds(proto, data)
    plan = cv.plan_model(proto.models[0], data, 0)
    assert fast.supports(plan, proto)
    perms = [data.subject_y] + subject_permutations(data.subject_y, 6, seed=1)
    slow = cv.permutation_scores(plan, folds, data, proto, perms, "balanced_accuracy")
    quick = fast.permutation_scores(plan, folds, data, proto, perms, "balanced_accuracy")
    # (metric, ROC AUC) per permutation
    np.testing.assert_allclose(np.asarray(quick), np.asarray(slow), rtol=0, atol=1e-12)
    assert len({m for m, _ in slow}) > 1  # the permutations do change the score
    assert len({a for _, a in slow}) > 1  # ... and the AUC
    # the observed run: same row probabilities, ranking scores and chosen alpha in every fold
    ref = cv.run_folds(plan, folds, data, data.y, proto)
    ours = fast.run_folds(plan, folds, data, data.y, proto)
    for (p_ref, c_ref, r_ref), (p_ours, c_ours, r_ours) in zip(ref, ours, strict=True):
        np.testing.assert_allclose(p_ours, p_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(r_ours, r_ref, rtol=0, atol=1e-10)
        assert c_ours == c_ref
