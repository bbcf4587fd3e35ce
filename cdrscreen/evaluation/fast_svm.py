"""Permutation test for early-fusion RBF-SVMs on cached kernel matrices.

For ``learner: svm`` with an RBF kernel, everything before the SVM solver is label-free:
the per-group imputation + scaling of a training set, ``gamma='scale'`` (it depends on
the scaled training matrix only) and therefore the whole RBF kernel matrix. For each
(outer fold, inner split) this module computes the kernel once and fits libsvm on it
(``SVC(kernel="precomputed")``) for every grid value of ``C`` and every label
permutation of a task. Inner splits are subject-grouped ``GroupKFold`` splits, label
independent by construction (:func:`cdrscreen.evaluation.cv.make_folds`), so no cache
key depends on the labels.

The procedure per permutation is the nested one of :mod:`cdrscreen.evaluation.cv`
(:func:`~cdrscreen.evaluation.cv.fit_predict_fold`: inner tuning on the decision
function at subject level, refit with Platt probabilities, ranking scores); only the
kernel evaluation moved out of libsvm. Its results are bit-identical to recomputing
every permutation from scratch with :class:`RBFKernelSVC` inside the scikit-learn
pipeline (tested). libsvm computes RBF values itself in a slightly different floating
point order (and two different orders for training and prediction), so against
``SVC(kernel="rbf")`` decision values agree to about 1e-14, not bit for bit; the
observed (unpermuted) run therefore keeps the ``kernel="rbf"`` estimator, whose
probabilities equal scikit-learn's ``cross_val_predict``.

Loops run fold by fold and, inside a fold, permutation by permutation, so only one
fold's kernels are alive at a time: memory does not grow with the number of
permutations or folds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.svm import _libsvm as libsvm
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import _ovr_decision_function
from sklearn.utils.validation import check_is_fitted, validate_data

from cdrscreen.evaluation import cv
from cdrscreen.evaluation.data import Dataset
from cdrscreen.evaluation.metrics import auc_value, score
from cdrscreen.evaluation.protocol import Protocol

#: ``SVC`` parameters this path handles (others keep the estimator path).
_SVC_PARAMS = ("C", "probability", "random_state", "tol", "shrinking", "cache_size", "class_weight",
               "max_iter", "decision_function_shape", "break_ties")


def gamma_value(gamma: Any, Z: np.ndarray) -> float:
    """``gamma`` as ``SVC`` resolves it for the training matrix ``Z`` ('scale', 'auto' or a number)."""
    if gamma == "scale":
        var = Z.var()
        return 1.0 / (Z.shape[1] * var) if var != 0 else 1.0
    if gamma == "auto":
        return 1.0 / Z.shape[1]
    return float(gamma)


def rbf_kernel(A: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    """``exp(-gamma * ||a - b||^2)`` for every row pair (deterministic: no BLAS, no threads)."""
    return np.exp(-gamma * cdist(A, B, "sqeuclidean"))


class RBFKernelSVC(ClassifierMixin, BaseEstimator):
    """RBF-kernel SVM computing its kernel matrix itself, then ``SVC(kernel="precomputed")``.

    The same model as ``SVC(kernel="rbf")`` (same ``gamma`` resolution, same libsvm
    solver, Platt scaling and seed); only the kernel values are computed by
    :func:`rbf_kernel` instead of inside libsvm, which changes them in the last bits.
    It is the from-scratch reference of the cached-kernel permutation path.

    Parameters
    ----------
    C, gamma, probability, random_state, tol, shrinking, cache_size, class_weight, max_iter,
    decision_function_shape, break_ties
        As in :class:`sklearn.svm.SVC`.

    Attributes
    ----------
    svc_ : SVC
        The fitted precomputed-kernel SVM.
    gamma_ : float
        The resolved kernel width.
    X_fit_ : ndarray
        Training rows (needed to evaluate the kernel of new rows).
    """

    #: tuned on its decision function like ``SVC`` (:attr:`cdrscreen.evaluation.cv.ModelPlan.decision_inner`)
    tunes_on_decision = True

    def __init__(self, C: float = 1.0, gamma: Any = "scale", probability: bool = False, random_state: Any = None,
                 tol: float = 1e-3, shrinking: bool = True, cache_size: float = 200, class_weight: Any = None,
                 max_iter: int = -1, decision_function_shape: str = "ovr", break_ties: bool = False):
        self.C = C
        self.gamma = gamma
        self.probability = probability
        self.random_state = random_state
        self.tol = tol
        self.shrinking = shrinking
        self.cache_size = cache_size
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.decision_function_shape = decision_function_shape
        self.break_ties = break_ties

    def fit(self, X: Any, y: Any) -> RBFKernelSVC:
        """Resolve ``gamma`` on ``X``, compute the training kernel and fit libsvm on it."""
        X, y = validate_data(self, X, y, dtype=np.float64, order="C")
        self.gamma_ = gamma_value(self.gamma, X)
        self.X_fit_ = X
        params = {p: getattr(self, p) for p in _SVC_PARAMS}
        self.svc_ = SVC(kernel="precomputed", **params).fit(rbf_kernel(X, X, self.gamma_), y)
        return self

    def _kernel(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, order="C")
        return rbf_kernel(X, self.X_fit_, self.gamma_)

    @property
    def classes_(self) -> np.ndarray:
        """Class labels (of the fitted SVM)."""
        return self.svc_.classes_

    @property
    def intercept_(self) -> np.ndarray:
        """Intercept(s) of the fitted SVM's decision function."""
        return self.svc_.intercept_

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values of ``SVC`` on the kernel of ``X`` against the training rows."""
        return self.svc_.decision_function(self._kernel(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Platt probabilities (``probability=True`` only)."""
        return self.svc_.predict_proba(self._kernel(X))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted classes."""
        return self.svc_.predict(self._kernel(X))


def supports(plan: cv.ModelPlan, protocol: Protocol) -> bool:
    """Whether ``plan`` can use the cached-kernel path.

    Early fusion with no selection step, an RBF ``SVC`` with Platt probabilities, a
    fixed integer seed and no class weights, and a grid over ``C`` only.
    """
    head = plan.head
    return (
        plan.prep is not None
        and type(head) is SVC
        and head.kernel == "rbf"
        and (head.gamma in ("scale", "auto") or isinstance(head.gamma, (int, float)))
        and bool(head.probability)
        and head.class_weight is None
        and isinstance(head.random_state, (int, np.integer))
        and set(plan.grid) <= {"clf__C"}
    )


def reference_plan(plan: cv.ModelPlan) -> cv.ModelPlan:
    """``plan`` with its ``SVC`` replaced by the equivalent :class:`RBFKernelSVC` (from-scratch reference)."""
    head = plan.head
    clf = RBFKernelSVC(gamma=head.gamma, **{p: getattr(head, p) for p in _SVC_PARAMS})
    est = Pipeline([("features", plan.prep), ("select", "passthrough"), ("clf", clf)])
    return cv.ModelPlan(plan.name, est, dict(plan.grid), list(plan.groups))


class _Libsvm:
    """``SVC(kernel="precomputed")`` of one plan, called through scikit-learn's libsvm binding.

    Does what ``SVC.fit`` / ``decision_function`` / ``predict_proba`` do for a dense
    precomputed kernel (same arguments, same seed, same sign conventions) without the
    per-call validation and cloning, which cost more than the solver on these small
    matrices. Bit-identity with ``SVC`` is tested.
    """

    def __init__(self, svc: SVC) -> None:
        self.svc = svc
        self.seed = int(check_random_state(svc.random_state).randint(np.iinfo("i").max))

    def fit(self, K: np.ndarray, y: np.ndarray, C: float, probability: bool) -> tuple:
        present = np.bincount(y) > 0  # np.unique(y, return_inverse=True) for class codes, faster
        cls = np.flatnonzero(present)
        codes = (np.cumsum(present) - 1)[y]
        if len(cls) < 2:
            raise ValueError(f"The number of classes has to be greater than one; got {len(cls)} class")
        s = self.svc
        args = dict(
            svm_type=0, sample_weight=np.empty(0), class_weight=np.ones(len(cls), dtype=np.float64),
            kernel="precomputed", C=float(C), nu=s.nu, probability=bool(probability), degree=s.degree,
            shrinking=s.shrinking, tol=s.tol, cache_size=s.cache_size, coef0=s.coef0, gamma=0.0,
            epsilon=s.epsilon, max_iter=s.max_iter,
        )
        y_codes = np.asarray(codes, dtype=np.float64, order="C")
        if probability:  # Platt scaling draws its 5-fold split from libsvm's process-wide generator
            with cv.LIBSVM_RNG:
                model = libsvm.fit(K, y_codes, random_seed=self.seed, **args)
        else:  # C-SVC training draws no random numbers: no seed, so no reseeding of the shared generator
            model = libsvm.fit(K, y_codes, random_seed=-1, **args)
        support, sv, n_support, dual_coef, intercept, prob_a, prob_b, _status, _ = model
        if not (np.isfinite(intercept).all() and np.isfinite(dual_coef).all()):
            raise ValueError("The dual coefficients or intercepts are not finite. The input data may contain "
                             "large values and need to be preprocessed.")
        return cls, (support, sv, n_support, dual_coef, intercept, prob_a, prob_b)

    def _args(self) -> dict[str, Any]:
        s = self.svc
        return {"svm_type": 0, "kernel": "precomputed", "degree": s.degree, "cache_size": s.cache_size,
                "coef0": s.coef0, "gamma": 0.0}

    def decision(self, model: tuple, cls: np.ndarray, K: np.ndarray) -> np.ndarray:
        """``SVC.decision_function``: (n,) for two classes, else (n, K) (``'ovr'``) or ovo."""
        dec = libsvm.decision_function(K, *model, **self._args())
        if len(cls) == 2:
            return -dec.ravel()
        if self.svc.decision_function_shape == "ovr":
            return _ovr_decision_function(dec < 0, -dec, len(cls))
        return dec

    def proba(self, model: tuple, K: np.ndarray) -> np.ndarray:
        """``SVC.predict_proba``."""
        return libsvm.predict_proba(K, *model, **self._args())

    @staticmethod
    def intercept(model: tuple, cls: np.ndarray) -> np.ndarray:
        """``SVC.intercept_`` (sign flipped for two classes, as scikit-learn does)."""
        return -model[4] if len(cls) == 2 else model[4].copy()


class _Kernels:
    """Kernel matrices of one outer fold, keyed like :class:`cv.Prepared` (``(fold, split)``).

    Also holds the label-free part of the subject aggregation of each inner validation
    set (:func:`cdrscreen.evaluation.cv.aggregate`).
    """

    def __init__(self, prepared: cv.Prepared, plan: cv.ModelPlan) -> None:
        self.prepared, self.plan, self.gamma = prepared, plan, plan.head.gamma
        self.cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.groups: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def subjects(self, key: tuple[int, int], subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row -> subject index, rows per subject, and each row's position (``searchsorted``)."""
        hit = self.groups.get(key)
        if hit is None:
            uniq, inv = np.unique(subjects, return_inverse=True)
            hit = self.groups[key] = (inv, np.bincount(inv)[:, None], np.searchsorted(uniq, subjects))
        return hit

    def get(self, key: tuple[int, int], train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hit = self.cache.get(key)
        if hit is None:
            ztr, zte = self.prepared.get(self.plan, key, train, test, keep=False)  # only the kernels are kept
            g = gamma_value(self.gamma, ztr)
            hit = self.cache[key] = (rbf_kernel(ztr, ztr, g), rbf_kernel(zte, ztr, g))
        return hit


class _ScoreMemo:
    """:func:`cdrscreen.evaluation.metrics.score` remembered by confusion matrix (its only input)."""

    def __init__(self) -> None:
        self.memo: dict[tuple[str, int, bytes], float] = {}

    def __call__(self, metric: str, y_true: np.ndarray, proba: np.ndarray) -> float:
        k = proba.shape[1]
        cm = np.bincount(y_true * k + np.argmax(proba, axis=1), minlength=k * k)
        key = (metric, k, cm.tobytes())
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = score(metric, y_true, proba)
        return hit


def _fold(svm: _Libsvm, Cs: list[float], default_C: float, f: int, fold: cv.Fold, kernels: _Kernels,
          y: np.ndarray, subjects: np.ndarray, k: int, scoring: str, how: str, memo_score: _ScoreMemo
          ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cdrscreen.evaluation.cv.fit_predict_fold` for this plan: (test-row proba, rank scores)."""
    C = default_C
    if Cs:  # cv._tune: best mean inner subject-level score of the decision function, first on ties
        best, best_score = None, -np.inf
        for c in Cs:
            scores = []
            for j, (itr, iva) in enumerate(fold.inner):
                if np.count_nonzero(np.bincount(y[itr])) < 2 or len(iva) == 0:
                    continue
                ktr, kva = kernels.get((f, j), itr, iva)
                cls, model = svm.fit(ktr, y[itr], c, False)
                rows = cv.decision_matrix(svm.decision(model, cls, kva), cls, k)
                if how == "mean":  # cv.aggregate(rows, subjects[iva], "mean", normalize=False)
                    inv, per_subject, pos = kernels.subjects((f, j), subjects[iva])
                    sp = np.zeros((len(per_subject), k))
                    np.add.at(sp, inv, rows)
                    sp /= per_subject
                else:
                    subj, sp = cv.aggregate(rows, subjects[iva], how, normalize=False)
                    pos = np.searchsorted(subj, subjects[iva])
                y_subj = np.zeros(len(sp), int)
                y_subj[pos] = y[iva]
                scores.append(memo_score(scoring, y_subj, sp))
            mean = float(np.mean(scores)) if scores else -np.inf
            if mean > best_score or best is None:
                best, best_score = c, mean
        C = best
    ktr, kte = kernels.get((f, -1), fold.train, fold.test)
    cls, model = svm.fit(ktr, y[fold.train], C, True)
    proba = np.zeros((kte.shape[0], k))
    proba[:, np.asarray(cls, dtype=int)] = svm.proba(model, kte)
    if k != 2 or len(cls) != 2:  # cv.rank_scores: probabilities unless two classes
        return proba, proba
    s = np.asarray(svm.decision(model, cls, kte), dtype=float) - float(np.ravel(svm.intercept(model, cls))[-1])
    return proba, np.stack([-s, s], axis=1)


def permutation_scores(plan: cv.ModelPlan, folds: list[cv.Fold], data: Dataset, protocol: Protocol,
                       perms: list[np.ndarray], metric: str, prepared: cv.Prepared | None = None
                       ) -> list[tuple[float, float]]:
    """``(metric, ROC AUC)`` of the whole nested procedure for each permutation (kernels reused).

    Same output as :func:`cdrscreen.evaluation.cv.permutation_scores` on
    :func:`reference_plan` (bit for bit, tested).
    """
    if not perms:
        return []
    prepared = prepared if prepared is not None else cv.Prepared(data.X)
    head = plan.head
    libsvm.set_verbosity_wrap(0)  # what SVC.fit does before every fit (verbose=False)
    svm = _Libsvm(SVC(kernel="precomputed", **{p: getattr(head, p) for p in _SVC_PARAMS}))
    Cs = [float(p["clf__C"]) for p in ParameterGrid(plan.grid)] if plan.grid else []
    k, how, n = len(data.classes), protocol.subject_aggregation, len(data.y)
    scoring = protocol.cv.inner_scoring
    ys = [y_subj[data.subjects] for y_subj in perms]
    total = np.zeros((len(perms), n, k))
    total_s = np.zeros((len(perms), n, k))
    count = np.zeros(n)
    memo = _ScoreMemo()
    for f, fold in enumerate(folds):
        kernels = _Kernels(prepared, plan)  # this fold's kernels only: freed after it
        for i, y in enumerate(ys):
            proba, scores = _fold(svm, Cs, head.C, f, fold, kernels, y, data.subjects, k, scoring, how, memo)
            total[i, fold.test] += proba
            total_s[i, fold.test] += scores
        count[fold.test] += 1
    out = []
    with np.errstate(invalid="ignore"):
        for i, y_subj in enumerate(perms):
            row_proba, row_scores = total[i] / count[:, None], total_s[i] / count[:, None]
            subj, sp = cv.subject_predictions(row_proba, data, how)
            _, ss = cv.subject_scores(row_scores, data, how)
            out.append((score(metric, y_subj[subj], sp), auc_value(y_subj[subj], ss)))
    return out
