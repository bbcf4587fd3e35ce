"""Run model plans over the folds and permutations, in parallel, deterministically.

Work is cut into tasks (a chunk of outer folds, or a chunk of label permutations, of one
model) and handed to a thread pool (a permutation test whose plans are all
:func:`thread_safe`), to joblib worker processes, or to a Dask cluster (``client``, see
:mod:`cdrscreen.cluster`). Every task is a pure function of its inputs and returns only
small arrays (scores, never fitted models), so the result does not depend on ``n_jobs``,
on the cluster or on the order tasks finish in.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from cdrscreen.core.progress import track
from cdrscreen.evaluation import cv, fast, fast_svm
from cdrscreen.evaluation.data import Dataset
from cdrscreen.evaluation.metrics import auc_value, score
from cdrscreen.evaluation.protocol import Protocol
from cdrscreen.evaluation.stats import permutation_p_value, subject_permutations
from cdrscreen.models import make_early_fusion


@dataclass
class ModelRun:
    """Out-of-fold results of one model plan."""

    plan: cv.ModelPlan
    row_proba: np.ndarray  #: (n_rows, K), NaN for rows never tested
    fold_of_row: np.ndarray
    subjects: np.ndarray  #: subject codes scored
    subject_proba: np.ndarray  #: (n_scored_subjects, K)
    chosen: list[dict[str, Any]]
    subject_scores: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  #: ranking scores (AUC)
    null: np.ndarray = field(default_factory=lambda: np.empty(0))
    observed: float = float("nan")
    p_value: float | None = None
    auc_null: np.ndarray = field(default_factory=lambda: np.empty(0))
    auc_observed: float = float("nan")
    auc_p_value: float | None = None


def _chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


def _fold_task(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, protocol: Protocol, ids: list[int],
               prepared: cv.Prepared | None = None):
    with threadpool_limits(1):  # tiny matrices: BLAS threads only add overhead
        prepared = prepared if prepared is not None else cv.Prepared(data.X)
        run = fast.run_folds if fast.supports(plan, protocol) else cv.run_folds
        return run(plan, folds, data, data.y, protocol, ids, prepared), prepared.blocks


def _blocks_task(plans: list[cv.ModelPlan], folds: list[cv.Fold], X: np.ndarray, ids: list[int]) -> dict:
    """Fit every distinct per-group block of ``plans`` on the training sets of folds ``ids``."""
    with threadpool_limits(1):
        prepared = cv.Prepared(X)
        for f in ids:
            for plan in plans:
                for j, (itr, iva) in enumerate(folds[f].inner):
                    prepared.get(plan, (f, j), itr, iva)
                prepared.get(plan, (f, -1), folds[f].train, folds[f].test)
        return prepared.blocks


def _plan_blocks(plan: cv.ModelPlan) -> set[tuple[str, tuple]]:
    return {(n, tuple(c)) for n, _, c in plan.prep.transformers} if plan.prep is not None else set()


def _permutation_path(plan: cv.ModelPlan, protocol: Protocol) -> Any:
    """Return the permutation function of ``plan``: batched ridge, cached-kernel SVM or the estimator path."""
    if fast.supports(plan, protocol):
        return fast.permutation_scores
    if fast_svm.supports(plan, protocol):
        return fast_svm.permutation_scores
    return cv.permutation_scores


def _perm_task(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, protocol: Protocol,
               perms: list[np.ndarray], metric: str, blocks: dict):
    with threadpool_limits(1):
        run = _permutation_path(plan, protocol)
        return run(plan, folds, data, protocol, perms, metric, cv.Prepared(data.X, blocks))


def _apply(fn: Any, *args: Any) -> Any:
    """``fn(*args)``: one task on a Dask worker (arguments scattered earlier arrive resolved)."""
    return fn(*args)


def thread_safe(plan: cv.ModelPlan, protocol: Protocol) -> bool:
    """Whether ``plan``'s tasks may run in threads of one process (same results as one at a time).

    True for the batched ridge path (NumPy only) and the cached-kernel SVM path (libsvm
    releases the GIL while it trains and predicts; fits that seed its process-wide random
    generator hold :data:`cdrscreen.evaluation.cv.LIBSVM_RNG`).
    """
    return fast.supports(plan, protocol) or fast_svm.supports(plan, protocol)


def _n_workers(n_jobs: int) -> int:
    return max(1, n_jobs if n_jobs > 0 else (os.cpu_count() or 1))


def _run(tasks: list[Any], n_jobs: int, progress: bool, description: str, sizes: list[int] | None = None,
         unit: str = "", client: Any = None, threads: bool = False) -> list[Any]:
    if client is not None:
        from cdrscreen.cluster import run_tasks

        return run_tasks(client, _apply, [(fn, *args) for fn, args, _ in tasks], progress=progress,
                         description=description)
    if n_jobs == 1:
        results = (fn(*args, **kw) for fn, args, kw in tasks)
    elif threads:  # one process: the data and fitted blocks are shared, not copied per worker
        with ThreadPoolExecutor(_n_workers(n_jobs)) as pool, threadpool_limits(1):
            futures = [pool.submit(fn, *args, **kw) for fn, args, kw in tasks]
            return list(track((f.result() for f in futures), description=description, total=len(tasks),
                              disable=not progress, sizes=sizes, unit=unit))
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    return list(track(results, description=description, total=len(tasks), disable=not progress,
                      sizes=sizes, unit=unit))


def map_tasks(fn: Any, args: list[tuple], n_jobs: int = 1, progress: bool = False, description: str = "",
              client: Any = None) -> list[Any]:
    """``[fn(*a) for a in args]``: here, in ``n_jobs`` threads, or as tasks on the Dask ``client``.

    For pure, thread-safe functions of small inputs (the bootstrap CIs and paired
    comparisons of finished runs); results in the order of ``args``, whatever runs them.
    """
    if client is not None and args:
        shared: dict[int, Any] = {}  # an object passed to several tasks is sent to the workers once
        for a in args:
            for x in a:
                if sum(x is y for b in args for y in b) > 1 and id(x) not in shared:
                    shared[id(x)] = client.scatter([x], broadcast=True, hash=False)[0]
        args = [tuple(shared.get(id(x), x) for x in a) for a in args]
    tasks = [delayed(fn)(*a) for a in args]
    return _run(tasks, n_jobs, progress, description, client=client, threads=True)


def run_plans(
    plans: list[cv.ModelPlan],
    data: Dataset,
    protocol: Protocol,
    folds: list[cv.Fold],
    n_permutations: int,
    n_jobs: int = 1,
    progress: bool = True,
    description: str = "evaluating",
    client: Any = None,
) -> list[ModelRun]:
    """Evaluate every plan on ``folds`` and run ``n_permutations`` label permutations each.

    Phase 1 runs the folds (fitting and caching the label-independent blocks); phase 2
    repeats the whole nested procedure for each label permutation, reusing those blocks.
    With a Dask ``client`` (``distributed.Client``) the same tasks run on its cluster
    (``n_jobs`` is then ignored); the dataset, folds and fitted blocks are sent to the
    workers once, not with every task.
    """
    metric = protocol.statistics.permutation_metric
    perms = subject_permutations(data.subject_y, n_permutations, protocol.seed)
    if client is not None:
        n_jobs = max(1, len(client.scheduler_info().get("workers", {})))
        n_workers = n_jobs
        n_jobs = max(n_jobs, 2)  # never the in-process path
    else:
        n_workers = _n_workers(n_jobs)
    # a permutation test of thread-safe plans runs every phase in threads of this process
    # (one process's memory); otherwise joblib processes (a plain evaluation or ablation of
    # SVMs would serialise its libsvm fits on the seeded-generator lock in threads)
    threads = client is None and n_permutations > 0 and all(thread_safe(p, protocol) for p in plans)
    shared = cv.Prepared(data.X) if n_jobs == 1 else None  # in-process: one cache for everything

    def put(obj: Any) -> Any:  # on a cluster: ship once, refer to it from every task
        return client.scatter([obj], broadcast=True, hash=False)[0] if client is not None else obj

    data_ref = put(data)
    folds_ref = put(folds)
    # enough tasks for a progress bar that moves (>= ~20 steps); results do not depend on it
    fold_size = max(1, min(-(-len(folds) // (2 * n_workers)), -(-len(folds) // 20)))
    blocks: dict = {}
    if shared is None and any(plan.prep is not None for plan in plans):
        # phase 0: fit each distinct group block once per training set (shared by all plans)
        distinct: dict[frozenset, cv.ModelPlan] = {}
        for plan in plans:
            for name, _trans, cols in (plan.prep.transformers if plan.prep is not None else []):
                key = frozenset([(name, tuple(cols))])
                if key not in distinct:
                    one = cv.ModelPlan(name, make_early_fusion({name: cols}), {}, [name])
                    distinct[key] = one
        block_plans = list(distinct.values())
        parent = cv.Prepared(data.X)  # blocks already in this process's memo need no work

        def keys(f: int) -> list[tuple[tuple[int, int], np.ndarray, np.ndarray]]:
            fold = folds[f]
            return [((f, j), tr, va) for j, (tr, va) in enumerate(fold.inner)] + [((f, -1), fold.train, fold.test)]

        missing = [f for f in range(len(folds))
                   if not all([parent.lookup(bp, k, tr, te) for bp in block_plans for k, tr, te in keys(f)])]
        blocks.update(parent.blocks)
        chunks = _chunks(len(missing), fold_size)
        tasks = [delayed(_blocks_task)(block_plans, folds_ref, data.X, [missing[i] for i in ids]) for ids in chunks]
        for blk in _run(tasks, n_jobs, progress, f"{description}: scaling features", [len(c) for c in chunks],
                        "folds", client, threads):
            blocks.update(blk)
        memo = cv.Prepared(data.X, blocks)
        for f in missing:
            for bp in block_plans:
                for k, tr, te in keys(f):
                    memo.remember(bp, k, tr, te)
    tasks, owners, sizes = [], [], []
    for p, plan in enumerate(plans):
        mine = {k: v for k, v in blocks.items() if (k[0], k[1]) in _plan_blocks(plan)}
        for ids in _chunks(len(folds), fold_size):
            sizes.append(len(ids))
            prepared = shared
            if shared is None:
                prepared = cv.Prepared(data.X, {k: v for k, v in mine.items() if k[2][0] in ids})
            tasks.append(delayed(_fold_task)(plan, folds_ref, data_ref, protocol, ids, prepared))
            owners.append(p)
    fold_out = _run(tasks, n_jobs, progress, f"{description}: training and testing", sizes,
                    "folds (all models)", client, threads)
    if shared is not None:
        blocks = dict(shared.blocks)
    fold_results: list[list[Any]] = [[] for _ in plans]
    for p, (res, blk) in zip(owners, fold_out, strict=True):
        fold_results[p] += res
        if shared is None:  # keep the arrays already here (phase 0): the returned ones are equal copies
            for key, value in blk.items():
                blocks.setdefault(key, value)

    null: list[list[tuple[float, float]]] = [[] for _ in plans]
    if n_permutations:
        tasks, owners, sizes = [], [], []
        for p, plan in enumerate(plans):
            per_task = n_workers if fast.supports(plan, protocol) else 2 * n_workers
            # the batched ridge path solves a whole chunk at once, the cached-kernel SVM path
            # computes each fold's kernels once per chunk: fewer, larger chunks
            steps = 10 if fast.supports(plan, protocol) else 20 if fast_svm.supports(plan, protocol) else 50
            perm_size = max(1, min(-(-n_permutations // per_task), -(-n_permutations // steps)))
            ids_of_plan = _plan_blocks(plan)
            mine = put({k: v for k, v in blocks.items() if (k[0], k[1]) in ids_of_plan})
            for ids in _chunks(n_permutations, perm_size):
                sizes.append(len(ids))
                tasks.append(delayed(_perm_task)(plan, folds_ref, data_ref, protocol, [perms[i] for i in ids], metric,
                                                 mine))
                owners.append(p)
        done = _run(tasks, n_jobs, progress, f"{description}: label permutations", sizes,
                    f"permutations ({len(plans)} model{'s' if len(plans) > 1 else ''})", client, threads)
        for p, scores in zip(owners, done, strict=True):
            null[p] += scores

    runs = []
    k = len(data.classes)
    for p, plan in enumerate(plans):
        row_proba, fold_of_row, row_scores = cv.assemble(folds, fold_results[p], len(data.y), k)
        subj, sp = cv.subject_predictions(row_proba, data, protocol.subject_aggregation)
        _, ss = cv.subject_scores(row_scores, data, protocol.subject_aggregation)
        run = ModelRun(plan, row_proba, fold_of_row, subj, sp, [r[1] for r in fold_results[p]], ss)
        run.observed = score(metric, data.subject_y[subj], sp)
        run.auc_observed = auc_value(data.subject_y[subj], ss)
        if null[p]:
            both = np.asarray(null[p], dtype=float)
            run.null = both[:, 0]
            run.p_value = permutation_p_value(run.observed, run.null)
            run.auc_null = both[:, 1]
            finite = run.auc_null[np.isfinite(run.auc_null)]
            if np.isfinite(run.auc_observed) and finite.size:
                run.auc_p_value = permutation_p_value(run.auc_observed, finite)
        runs.append(run)
    return runs
