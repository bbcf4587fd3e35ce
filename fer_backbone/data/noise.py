"""Synthetic label noise (the SCN protocol).

Each training label is flipped with probability ``p`` to a uniformly random *other*
class, once, before training, with a seeded generator. The realised rate is returned
because with few samples it differs from ``p``.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class NoiseReport:
    """What :func:`inject_label_noise` did.

    Attributes
    ----------
    requested_rate : float
    realised_rate : float
        Fraction of labels that differ from the clean ones.
    flipped : int
        Number of flipped labels.
    n : int
        Number of labels.
    """

    requested_rate: float
    realised_rate: float
    flipped: int
    n: int


def inject_label_noise(
    labels: np.ndarray, rate: float, num_classes: int, seed: int = 0
) -> tuple[np.ndarray, NoiseReport]:
    """Flip each label with probability ``rate`` to a uniformly drawn different class.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
        Clean labels in ``[0, num_classes)``.
    rate : float
        Flip probability in ``[0, 1]``.
    num_classes : int
        ``K >= 2``.
    seed : int
        Seed of the generator (same seed, same flips).

    Returns
    -------
    noisy : ndarray of int64
        A new array; ``labels`` is not modified.
    report : NoiseReport
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate must be in [0, 1], got {rate}")
    if num_classes < 2:
        raise ValueError("label noise needs at least 2 classes")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    flip = rng.random(len(labels)) < rate
    # An offset in 1..K-1 added modulo K is a uniform draw over the other classes.
    offset = rng.integers(1, num_classes, size=len(labels))
    noisy = labels.copy()
    noisy[flip] = (labels[flip] + offset[flip]) % num_classes
    n_flip = int((noisy != labels).sum())
    report = NoiseReport(rate, n_flip / max(len(labels), 1), n_flip, len(labels))
    return noisy, report
