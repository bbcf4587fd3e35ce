"""Run model plans over the folds and permutations, in parallel, deterministically.

Work is cut into tasks (a chunk of outer folds, or a chunk of label permutations, of one
model) and handed to joblib. Every task is a pure function of its inputs, so the result
does not depend on ``n_jobs`` or on the order tasks finish in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from cdrscreen.evaluation import cv
from cdrscreen.evaluation.data import Dataset
from cdrscreen.evaluation.metrics import score
from cdrscreen.evaluation.protocol import Protocol
from cdrscreen.evaluation.stats import permutation_p_value, subject_permutations
from cdrscreen.progress import track


@dataclass
class ModelRun:
    """Out-of-fold results of one model plan."""

    plan: cv.ModelPlan
    row_proba: np.ndarray  #: (n_rows, K), NaN for rows never tested
    fold_of_row: np.ndarray
    subjects: np.ndarray  #: subject codes scored
    subject_proba: np.ndarray  #: (n_scored_subjects, K)
    chosen: list[dict[str, Any]]
    null: np.ndarray = field(default_factory=lambda: np.empty(0))
    observed: float = float("nan")
    p_value: float | None = None


def _chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


def _fold_task(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, protocol: Protocol, ids: list[int]):
    return cv.run_folds(plan, folds, data, data.y, protocol, ids)


def _perm_task(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, protocol: Protocol,
               perms: list[np.ndarray], metric: str):
    return cv.permutation_scores(plan, folds, data, protocol, perms, metric)


def run_plans(
    plans: list[cv.ModelPlan],
    data: Dataset,
    protocol: Protocol,
    folds: list[cv.Fold],
    n_permutations: int,
    n_jobs: int = 1,
    progress: bool = True,
    description: str = "evaluating",
) -> list[ModelRun]:
    """Evaluate every plan on ``folds`` and run ``n_permutations`` label permutations each."""
    metric = protocol.statistics.permutation_metric
    perms = subject_permutations(data.subject_y, n_permutations, protocol.seed)
    n_workers = max(1, n_jobs if n_jobs > 0 else 1)
    fold_size = max(1, -(-len(folds) // (4 * n_workers)))
    perm_size = max(1, -(-n_permutations // (8 * n_workers))) if n_permutations else 1
    tasks = []
    for p, plan in enumerate(plans):
        for ids in _chunks(len(folds), fold_size):
            tasks.append((("fold", p, len(ids)), delayed(_fold_task)(plan, folds, data, protocol, ids)))
        for ids in _chunks(n_permutations, perm_size):
            chunk = [perms[i] for i in ids]
            tasks.append((("perm", p, len(ids)), delayed(_perm_task)(plan, folds, data, protocol, chunk, metric)))
    if n_jobs == 1:
        results = (call[0](*call[1], **call[2]) for _, call in tasks)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(call for _, call in tasks)
    collected: list[Any] = list(track(results, description=description, total=len(tasks), disable=not progress))

    runs = []
    k = len(data.classes)
    for p, plan in enumerate(plans):
        fold_results = [r for ((kind, i, _), _c), res in zip(tasks, collected, strict=True)
                        if kind == "fold" and i == p for r in res]
        null = [s for ((kind, i, _), _c), res in zip(tasks, collected, strict=True)
                if kind == "perm" and i == p for s in res]
        row_proba, fold_of_row = cv.assemble(folds, fold_results, len(data.y), k)
        subj, sp = cv.subject_predictions(row_proba, data, protocol.subject_aggregation)
        run = ModelRun(plan, row_proba, fold_of_row, subj, sp, [r[1] for r in fold_results])
        run.observed = score(metric, data.subject_y[subj], sp)
        if null:
            run.null = np.asarray(null)
            run.p_value = permutation_p_value(run.observed, run.null)
        runs.append(run)
    return runs
