"""Validation splits carved from the training data (model selection never sees the test set)."""

from __future__ import annotations

import numpy as np

from fer_backbone.data.samples import Samples


def train_val_split(samples: Samples, val_fraction: float = 0.1, seed: int = 0) -> tuple[Samples, Samples]:
    """Split training samples into a training part and a validation part.

    Stratified by label; when ``samples.groups`` is set (e.g. video ids), whole groups go to
    one side so frames of one video never straddle the split.

    Parameters
    ----------
    samples : Samples
    val_fraction : float
        Fraction in ``(0, 1)`` held out for validation.
    seed : int

    Returns
    -------
    train, val : Samples
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(samples)
    idx = np.arange(n)
    if samples.groups is not None:
        from sklearn.model_selection import GroupShuffleSplit

        gss = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        tr, va = next(gss.split(idx, samples.labels, samples.groups))
    else:
        from sklearn.model_selection import train_test_split

        counts = np.bincount(samples.labels)
        strat = samples.labels if counts[counts > 0].min() >= 2 else None
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=strat)
    return samples.subset(np.sort(tr)), samples.subset(np.sort(va))
