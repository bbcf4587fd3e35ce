"""Run model plans over the folds and permutations, in parallel, deterministically.

Work is cut into tasks (a chunk of outer folds, or a chunk of label permutations, of one
model) and handed to joblib. Every task is a pure function of its inputs, so the result
does not depend on ``n_jobs`` or on the order tasks finish in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

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


def _fold_task(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, protocol: Protocol, ids: list[int],
               prepared: cv.Prepared | None = None):
    with threadpool_limits(1):  # tiny matrices: BLAS threads only add overhead
        prepared = prepared if prepared is not None else cv.Prepared(data.X)
        return cv.run_folds(plan, folds, data, data.y, protocol, ids, prepared), prepared.blocks


def _perm_task(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, protocol: Protocol,
               perms: list[np.ndarray], metric: str, blocks: dict):
    with threadpool_limits(1):
        return cv.permutation_scores(plan, folds, data, protocol, perms, metric, cv.Prepared(data.X, blocks))


def _run(tasks: list[Any], n_jobs: int, progress: bool, description: str) -> list[Any]:
    if n_jobs == 1:
        results = (fn(*args, **kw) for fn, args, kw in tasks)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    return list(track(results, description=description, total=len(tasks), disable=not progress))


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
    """Evaluate every plan on ``folds`` and run ``n_permutations`` label permutations each.

    Phase 1 runs the folds (fitting and caching the label-independent blocks); phase 2
    repeats the whole nested procedure for each label permutation, reusing those blocks.
    """
    metric = protocol.statistics.permutation_metric
    perms = subject_permutations(data.subject_y, n_permutations, protocol.seed)
    n_workers = max(1, n_jobs if n_jobs > 0 else (os.cpu_count() or 1))
    shared = cv.Prepared(data.X) if n_jobs == 1 else None  # in-process: one cache for everything
    fold_size = max(1, -(-len(folds) // (2 * n_workers)))
    tasks, owners = [], []
    for p, plan in enumerate(plans):
        for ids in _chunks(len(folds), fold_size):
            tasks.append(delayed(_fold_task)(plan, folds, data, protocol, ids, shared))
            owners.append(p)
    fold_out = _run(tasks, n_jobs, progress, f"{description} (folds)")
    blocks: dict = dict(shared.blocks) if shared is not None else {}
    fold_results: list[list[Any]] = [[] for _ in plans]
    for p, (res, blk) in zip(owners, fold_out, strict=True):
        fold_results[p] += res
        if shared is None:
            blocks.update(blk)

    null: list[list[float]] = [[] for _ in plans]
    if n_permutations:
        perm_size = max(1, -(-n_permutations // (2 * n_workers)))
        tasks, owners = [], []
        for p, plan in enumerate(plans):
            ids_of_plan = {(n, tuple(c)) for n, _, c in plan.prep.transformers} if plan.prep is not None else set()
            mine = {k: v for k, v in blocks.items() if (k[0], k[1]) in ids_of_plan}
            for ids in _chunks(n_permutations, perm_size):
                tasks.append(delayed(_perm_task)(plan, folds, data, protocol, [perms[i] for i in ids], metric, mine))
                owners.append(p)
        for p, scores in zip(owners, _run(tasks, n_jobs, progress, f"{description} (permutations)"), strict=True):
            null[p] += scores

    runs = []
    k = len(data.classes)
    for p, plan in enumerate(plans):
        row_proba, fold_of_row = cv.assemble(folds, fold_results[p], len(data.y), k)
        subj, sp = cv.subject_predictions(row_proba, data, protocol.subject_aggregation)
        run = ModelRun(plan, row_proba, fold_of_row, subj, sp, [r[1] for r in fold_results[p]])
        run.observed = score(metric, data.subject_y[subj], sp)
        if null[p]:
            run.null = np.asarray(null[p])
            run.p_value = permutation_p_value(run.observed, run.null)
        runs.append(run)
    return runs
