"""Generated feature tables for the evaluation-engine tests (no patient data).

Shapes follow the extractor contract: index (subject, session, file), group-prefixed
feature columns, ``meta__cdr/age/sex/mmse`` and an optional ``meta__augmented`` flag.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest

#: Real-shaped group widths (GeMAPS functionals 62, MFCC stats, pupil spectrum, ...), kept small.
DEFAULT_GROUPS: dict[str, int] = {"pupil": 6, "headpose": 4, "mfcc": 8, "gemaps": 10}


def make_feature_table(
    n_subjects: int = 24,
    groups: Mapping[str, int] | None = None,
    signal: Mapping[str, float] | None = None,
    cdr_cycle: tuple[float, ...] = (0.5, 1.0, 2.0),
    sessions: int = 1,
    augmented_copies: int = 0,
    random_labels: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """A feature table with optional planted class differences.

    Parameters
    ----------
    signal : mapping group -> effect size
        Mean shift (in SD units) of every column of that group for subjects with
        CDR >= 1 relative to CDR 0.5.
    sessions : int
        Rows per subject that are distinct recordings (independent noise around the
        subject's own mean).
    augmented_copies : int
        Extra rows per recording that copy it with tiny noise, flagged ``meta__augmented``.
    random_labels : bool
        Shuffle CDR labels across subjects AFTER features were made (null cohort).
    """
    groups = dict(groups or DEFAULT_GROUPS)
    signal = dict(signal or {})
    rng = np.random.default_rng(seed)
    cdr = np.array([cdr_cycle[i % len(cdr_cycle)] for i in range(n_subjects)])
    feat_cdr = cdr.copy()
    if random_labels:
        cdr = rng.permutation(cdr)
    records, index = [], []
    for s in range(n_subjects):
        subject_mean = {g: rng.normal(size=w) * 0.7 + signal.get(g, 0.0) * (feat_cdr[s] >= 1.0)
                        for g, w in groups.items()}
        for sess in range(sessions):
            base = {f"{g}__f{j:02d}": subject_mean[g][j] + rng.normal() * 0.7
                    for g, w in groups.items() for j in range(w)}
            for copy in range(1 + augmented_copies):
                row = {k: v + (rng.normal() * 0.01 if copy else 0.0) for k, v in base.items()}
                row.update({"meta__cdr": cdr[s], "meta__age": float(60 + s % 25), "meta__sex": "FM"[s % 2],
                            "meta__mmse": float(28 - 3 * cdr[s]), "meta__augmented": bool(copy)})
                records.append(row)
                index.append((f"S{s:03d}", f"{sess + 1}", f"S{s:03d}_{sess + 1}{'_flip' * copy}.mp4"))
    return pd.DataFrame.from_records(records, index=pd.MultiIndex.from_tuples(index, names=["subject", "session", "file"]))


def small_protocol(**overrides) -> dict:
    """A fast protocol dict (few bootstraps/permutations) for tests."""
    proto = {
        "name": "test",
        "seed": 0,
        "labels": {"scheme": "binary"},
        "models": [{"name": "svm", "learner": "svm", "params": {"C": 1.0}}],
        "statistics": {"n_bootstrap": 200, "n_permutations": 0},
    }
    for key, value in overrides.items():
        proto[key] = value
    return proto


@pytest.fixture
def feature_table() -> pd.DataFrame:
    """24 subjects, CDR 0.5/1/2, planted signal in the pupil group, one flipped copy each."""
    return make_feature_table(24, signal={"pupil": 1.5}, augmented_copies=1, seed=1)


@pytest.fixture
def feature_parquet(tmp_path, feature_table) -> str:
    """``feature_table`` written to Parquet."""
    path = tmp_path / "features.parquet"
    feature_table.to_parquet(path)
    return str(path)
