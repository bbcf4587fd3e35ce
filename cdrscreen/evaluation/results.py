"""Turn model runs into the tables and JSON of the run folder (see docs/run-folder.md)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from cdrscreen.evaluation.data import Dataset
from cdrscreen.evaluation.engine import ModelRun
from cdrscreen.evaluation.metrics import (
    majority_baseline,
    point_metrics,
    predict_from_proba,
    with_cis,
)
from cdrscreen.evaluation.protocol import Protocol
from cdrscreen.evaluation.stats import mcnemar, paired_difference, paired_permutation
from cdrscreen.evaluation.verdicts import baseline_test, model_verdicts, widen_with_null


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def model_metrics(run: ModelRun, data: Dataset, protocol: Protocol) -> dict[str, Any]:
    """Build the ``metrics.json`` entry of one model."""
    st = protocol.statistics
    y = data.subject_y[run.subjects]
    classes = data.classes
    pm = point_metrics(y, run.subject_proba)
    chosen = Counter(tuple(sorted(p.items())) for p in run.chosen if p)
    scored_rows = int((~np.isnan(run.row_proba[:, 0])).sum())
    perm = None
    scores = run.subject_scores if run.subject_scores.size else None
    metrics = with_cis(y, run.subject_proba, classes, st.n_bootstrap, st.ci, protocol.seed, scores)
    metrics["roc_auc"]["ranked_by"] = ("decision value without intercept"
                                       if scores is not None and not np.allclose(scores, run.subject_proba)
                                       else "probability")
    if run.null.size:
        finite_auc = run.auc_null[np.isfinite(run.auc_null)]
        perm = {"p_value": run.p_value, "observed": run.observed, "null_mean": float(run.null.mean()),
                "null_sd": float(run.null.std(ddof=1)) if run.null.size > 1 else 0.0,
                "n": int(run.null.size), "metric": st.permutation_metric,
                "auc_p_value": run.auc_p_value,
                "auc_null_mean": float(finite_auc.mean()) if finite_auc.size else None,
                "auc_null_sd": float(finite_auc.std(ddof=1)) if finite_auc.size > 1 else None}
        metrics[st.permutation_metric] = widen_with_null(metrics[st.permutation_metric], run.null, st.ci)
        metrics["roc_auc"] = widen_with_null(metrics["roc_auc"], finite_auc, st.ci)
    base = majority_baseline(y, classes)
    pred = predict_from_proba(run.subject_proba)
    entry = {
        "groups": run.plan.groups,
        "n_subjects": int(len(y)),
        "n_rows": scored_rows,
        "n_per_class": {c: int(np.sum(y == i)) for i, c in enumerate(classes)},
        "metrics": metrics,
        "baseline": base,
        "baseline_test": baseline_test(int(np.sum(pred == y)), int(len(y)), base["accuracy"]),
        "permutation": perm,
        "confusion_matrix": {"labels": classes, "matrix": pm["confusion"].tolist()},
        "chosen_params": [{"params": dict(k), "n_folds": n} for k, n in chosen.most_common()],
    }
    entry = _jsonable(entry)
    entry["verdicts"] = model_verdicts(entry, len(classes), protocol.cv.outer == "loso", st.ci)
    return _jsonable(entry)


def compare(a: ModelRun, b: ModelRun, data: Dataset, protocol: Protocol) -> dict[str, Any]:
    """Paired comparison of two models on the same subjects."""
    st = protocol.statistics
    if not np.array_equal(a.subjects, b.subjects):
        raise ValueError("models were scored on different subjects")
    y = data.subject_y[a.subjects]
    pa, pb = predict_from_proba(a.subject_proba), predict_from_proba(b.subject_proba)
    if st.compare == "mcnemar":
        test = mcnemar(pa == y, pb == y)
    else:
        test = paired_permutation(y, a.subject_proba, b.subject_proba, st.permutation_metric,
                                  st.n_compare_permutations, protocol.seed)
    diff = paired_difference(y, a.subject_proba, b.subject_proba, st.permutation_metric,
                             st.n_bootstrap, st.ci, protocol.seed)
    return _jsonable({"a": a.plan.name, "b": b.plan.name, "n": int(len(y)), **test,
                      "metric": st.permutation_metric, "difference": diff})


def prediction_tables(runs: list[ModelRun], data: Dataset, aug_column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-subject and per-row prediction tables of all models."""
    classes = np.asarray(data.classes, dtype=object)
    cov = data.covariates.drop(columns=[aug_column], errors="ignore")
    cov = cov[[c for c in cov.columns if not str(c).endswith("_path")]]
    subj_frames, row_frames = [], []
    for run in runs:
        y = data.subject_y[run.subjects]
        pred = predict_from_proba(run.subject_proba)
        first_row = {s: i for i, s in reversed(list(enumerate(data.subjects)))}
        df = pd.DataFrame({
            "model": run.plan.name,
            "subject": data.subject_ids[run.subjects],
            "y_true": classes[y],
            "y_pred": classes[pred],
            **{f"proba__{c}": run.subject_proba[:, i] for i, c in enumerate(data.classes)},
            "correct": pred == y,
            "fold": [int(run.fold_of_row[first_row[s]]) for s in run.subjects],
            "n_rows": np.bincount(data.subjects[~np.isnan(run.row_proba[:, 0])],
                                  minlength=len(data.subject_ids))[run.subjects],
            "imputed_fraction": imputed_fraction(run, data),
        })
        df = df.join(cov, on="subject")
        subj_frames.append(df.set_index(["model", "subject"]))
        scored = ~np.isnan(run.row_proba[:, 0])
        idx = data.index[scored]
        rp = run.row_proba[scored]
        rdf = pd.DataFrame({
            "model": run.plan.name,
            "subject": idx.get_level_values("subject").astype(str),
            "session": idx.get_level_values("session").astype(str),
            "file": idx.get_level_values("file").astype(str),
            "y_true": classes[data.y[scored]],
            "y_pred": classes[predict_from_proba(rp)],
            **{f"proba__{c}": rp[:, i] for i, c in enumerate(data.classes)},
            "fold": run.fold_of_row[scored],
            "augmented": data.augmented[scored],
        })
        row_frames.append(rdf.set_index(["model", "subject", "session", "file"]))
    return pd.concat(subj_frames), pd.concat(row_frames)


def imputed_fraction(run: ModelRun, data: Dataset) -> np.ndarray:
    """Per scored subject: fraction of the model's input values that were missing (imputed).

    Over the subject's scored rows and the columns of the model's feature groups, before
    imputation (a missing value is filled with the training median inside the fold).
    """
    cols = [c for g in run.plan.groups for c in data.groups.get(g, [])]
    scored = ~np.isnan(run.row_proba[:, 0])
    if not cols:
        return np.zeros(len(run.subjects))
    miss = np.isnan(data.X[np.ix_(scored, cols)]).mean(axis=1)
    subj = data.subjects[scored]
    total = np.bincount(subj, weights=miss, minlength=len(data.subject_ids))
    count = np.bincount(subj, minlength=len(data.subject_ids))
    with np.errstate(invalid="ignore"):
        return (total / np.maximum(count, 1))[run.subjects]


def roc_table(runs: list[ModelRun], data: Dataset) -> pd.DataFrame:
    """ROC points: the positive class for 2 classes, one-vs-rest curves otherwise."""
    frames = []
    k = len(data.classes)
    for run in runs:
        y = data.subject_y[run.subjects]
        for c in ([1] if k == 2 else range(k)):
            pos = y == c
            if pos.all() or not pos.any():
                continue
            ranks = run.subject_scores if run.subject_scores.size else run.subject_proba
            fpr, tpr, thr = roc_curve(pos, ranks[:, c])
            from sklearn.metrics import auc

            frames.append(pd.DataFrame({"model": run.plan.name, "class": data.classes[c], "fpr": fpr,
                                        "tpr": tpr, "threshold": thr, "auc": auc(fpr, tpr)}))
    cols = ["model", "class", "fpr", "tpr", "threshold", "auc"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
