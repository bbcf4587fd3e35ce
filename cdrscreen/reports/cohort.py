"""Cohort distributions for patient reports, summarised so that no individual shows.

Privacy rule
------------
A patient's report may place the patient's own values against the cohort, but it
must never contain another participant's individual value. The only cohort
information that reaches a patient report is a :class:`FeatureDistribution` per
feature, computed once for the whole cohort (the same object for every patient, so
comparing two patients' reports reveals nothing either report does not):

* per class: the number of recordings with a value ``n``, their mean and standard
  deviation, and a smoothed density (Gaussian kernel, bandwidth at least half the
  class standard deviation, evaluated on a fixed grid);
* classes with fewer than ``min_class_n`` values (default 5) are *suppressed*: only
  their ``n`` is shown, because a mean of two people is nearly a personal value;
* the grid spans the pooled mean ± 4 pooled standard deviations, never the cohort's
  minimum or maximum (an axis limit at the extreme value would reveal that person).

Quantiles (medians, quartiles, ranges) are deliberately not used: with small classes
they are, by construction, individual participants' values. Other participants' ids
never appear in a patient report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Classes with fewer values than this show only their count in patient reports.
MIN_CLASS_N = 5
#: Grid points of each smoothed density.
GRID_POINTS = 128


@dataclass(frozen=True)
class ClassDistribution:
    """Aggregate description of one class's values for one feature.

    Attributes
    ----------
    label : str
        Class label as shown (e.g. ``"CDR 0.5"``).
    n : int
        Number of recordings of the class with a finite value.
    suppressed : bool
        True when ``n < min_class_n``; then ``mean``, ``sd`` and ``density`` are None.
    mean, sd : float or None
        Class mean and standard deviation (ddof=1; 0 if all values are equal).
    density : ndarray or None
        Smoothed density on :attr:`FeatureDistribution.grid` (integrates to ~1).
    """

    label: str
    n: int
    suppressed: bool
    mean: float | None = None
    sd: float | None = None
    density: np.ndarray | None = None


@dataclass(frozen=True)
class FeatureDistribution:
    """Per-class aggregate distribution of one feature over the cohort.

    ``center`` and ``scale`` are the pooled mean and standard deviation of the cohort
    (aggregates); the ``grid`` spans ``center ± 4 scale``.
    """

    feature: str
    name: str
    grid: np.ndarray
    classes: tuple[ClassDistribution, ...]
    center: float = 0.0
    scale: float = 1.0

    @property
    def shown(self) -> tuple[ClassDistribution, ...]:
        """Classes that are not suppressed."""
        return tuple(c for c in self.classes if not c.suppressed)


def _kde(values: np.ndarray, grid: np.ndarray, sd: float, pooled_sd: float) -> np.ndarray:
    n = values.size
    # Silverman's normal-reference bandwidth, floored at half the class SD (and at a
    # small fraction of the pooled SD when a class is constant) so no single value
    # shows as its own bump.
    h = max(1.06 * sd * n ** (-0.2), 0.5 * sd, 0.05 * pooled_sd, 1e-12)
    z = (grid[:, None] - values[None, :]) / h
    return np.exp(-0.5 * z * z).sum(axis=1) / (n * h * np.sqrt(2 * np.pi))


def summarize_feature(
    values: pd.Series | np.ndarray,
    labels: Sequence[object],
    class_order: Iterable[object],
    feature: str,
    name: str | None = None,
    label_format: str = "CDR {}",
    min_class_n: int = MIN_CLASS_N,
) -> FeatureDistribution:
    """Summarise one feature per class, following the module's privacy rule.

    Parameters
    ----------
    values : array-like
        One value per recording (NaN allowed: ignored).
    labels : sequence
        Class of each recording (same length as ``values``).
    class_order : iterable
        Classes to report, in display order.
    feature : str
        Column name of the feature.
    name : str, optional
        Display name (defaults to ``feature``).
    label_format : str
        How a class value is shown.
    min_class_n : int
        Classes with fewer finite values are suppressed.

    Returns
    -------
    FeatureDistribution
    """
    v = np.asarray(values, dtype=float)
    lab = np.asarray(list(labels), dtype=object)
    if v.shape[0] != lab.shape[0]:
        raise ValueError(f"{feature}: {v.shape[0]} values but {lab.shape[0]} labels")
    finite = np.isfinite(v)
    pooled = v[finite]
    if pooled.size >= 2:
        pm, ps = float(pooled.mean()), float(pooled.std(ddof=1))
    elif pooled.size == 1:
        pm, ps = float(pooled[0]), 0.0
    else:
        pm, ps = 0.0, 0.0
    if ps == 0.0:
        ps = max(abs(pm) * 0.1, 1.0)
    grid = np.linspace(pm - 4 * ps, pm + 4 * ps, GRID_POINTS)
    out = []
    for cls in class_order:
        sel = finite & np.array([_same(x, cls) for x in lab], dtype=bool)
        x = v[sel]
        label = label_format.format(_label(cls))
        if x.size < min_class_n:
            out.append(ClassDistribution(label, int(x.size), True))
            continue
        sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
        out.append(ClassDistribution(label, int(x.size), False, float(x.mean()), sd,
                                     _kde(x, grid, sd, ps)))
    return FeatureDistribution(feature, name or feature, grid, tuple(out), pm, ps)


def summarize_cohort(
    table: pd.DataFrame,
    features: Sequence[str],
    class_column: str = "meta__cdr",
    names: dict[str, str] | None = None,
    min_class_n: int = MIN_CLASS_N,
) -> dict[str, FeatureDistribution]:
    """Summarise several features of a cohort table (one row per recording).

    Parameters
    ----------
    table : DataFrame
        Feature table with ``class_column`` holding each recording's class.
    features : sequence of str
        Columns to summarise; missing columns are skipped.
    class_column : str
        Column with the class (CDR) of each row.
    names : dict, optional
        Display names per column.
    min_class_n : int
        See :func:`summarize_feature`.

    Returns
    -------
    dict
        Column name -> :class:`FeatureDistribution`.
    """
    labels = table[class_column].to_numpy()
    order = sorted({x for x in labels if not _isnan(x)}, key=_sort_key)
    names = names or {}
    return {
        f: summarize_feature(table[f].to_numpy(dtype=float), labels, order, f,
                             names.get(f, f), min_class_n=min_class_n)
        for f in features if f in table.columns
    }


def _isnan(x: object) -> bool:
    return isinstance(x, float) and x != x


def _sort_key(x: object) -> tuple[int, float, str]:
    try:
        return (0, float(x), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(x))


def _same(a: object, b: object) -> bool:
    try:
        return float(a) == float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(a) == str(b)


def _label(cls: object) -> str:
    try:
        f = float(cls)  # type: ignore[arg-type]
        return str(int(f)) if f.is_integer() else f"{f:g}"
    except (TypeError, ValueError):
        return str(cls)
