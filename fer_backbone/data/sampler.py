"""Class-balanced sampling with a per-epoch seed (so a resumed run draws the same order)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


class ClassBalancedSampler(Sampler[int]):
    """Draw indices so that every class is equally likely, with replacement.

    Each draw picks a class uniformly, then a sample of that class uniformly
    (equivalently: sample ``i`` has weight ``1 / count(label_i)``). The order depends only
    on ``seed`` and the epoch set with :meth:`set_epoch`, so a run resumed at epoch ``e``
    sees exactly the batches the uninterrupted run would have seen.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Class of each sample. Classes without samples are ignored.
    num_samples : int, optional
        Indices per epoch (default ``N``).
    seed : int
        Base seed.

    Examples
    --------
    >>> s = ClassBalancedSampler([0, 0, 0, 1], num_samples=4000, seed=0)
    >>> labels = np.array([0, 0, 0, 1])[list(s)]
    >>> 0.45 < labels.mean() < 0.55
    True
    """

    def __init__(self, labels: np.ndarray | list[int], num_samples: int | None = None, seed: int = 0) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_samples = int(num_samples if num_samples is not None else len(self.labels))
        self.seed = int(seed)
        self.epoch = 0
        counts = np.bincount(self.labels)
        w = 1.0 / counts[self.labels]
        self._weights = torch.as_tensor(w / w.sum(), dtype=torch.double)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order :meth:`__iter__` yields next."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        idx = torch.multinomial(self._weights, self.num_samples, replacement=True, generator=g)
        yield from idx.tolist()


class EpochRandomSampler(Sampler[int]):
    """A random permutation per epoch, seeded by ``(seed, epoch)`` (resumable shuffling)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation :meth:`__iter__` yields next."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        yield from torch.randperm(self.n, generator=g).tolist()


def item_seed(seed: int, epoch: int, position: int) -> int:
    """Seed of the item drawn at ``position`` of ``epoch`` (a pure function: resumable)."""
    return ((int(seed) * 1_000_003 + int(epoch)) * 10_000_019 + int(position)) % (2**63 - 1)


class SeededSampler(Sampler[tuple[int, int]]):
    """Pair every index of ``base`` with the seed of its random work: ``(index, seed)``.

    A data set that accepts such pairs (``accepts_seeded_index = True``, e.g.
    :class:`~fer_backbone.data.FERDataset`) runs its random crops and augmentations on that
    seed, so an item's randomness depends only on ``(seed, epoch, position)``: the same with
    0 or N loader workers, persistent or not, and in a run resumed at any epoch boundary
    (the checkpointed epoch is the loader's whole random state).

    Examples
    --------
    >>> s = SeededSampler(range(3), seed=1)
    >>> [i for i, _ in s], len({k for _, k in s})
    ([0, 1, 2], 3)
    """

    def __init__(self, base: Sampler[int] | range, seed: int = 0) -> None:
        self.base, self.seed, self.epoch = base, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch here and on the wrapped sampler."""
        self.epoch = int(epoch)
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def state_dict(self) -> dict[str, int]:
        """Return the whole random state of the items' work: base seed and epoch."""
        return {"seed": self.seed, "epoch": self.epoch}

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for pos, i in enumerate(self.base):
            yield int(i), item_seed(self.seed, self.epoch, pos)


def split_key(key: int | tuple[int, int]) -> tuple[int, int | None]:
    """``(index, seed or None)`` from a plain index or a :class:`SeededSampler` pair."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return int(key), None
