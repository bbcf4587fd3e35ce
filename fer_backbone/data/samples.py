"""The in-memory description of a labelled image set, shared by every reader.

A reader turns a dataset's on-disk layout into :class:`Samples`; :class:`FERDataset`
turns ``Samples`` into the batches the training loop consumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: RAF-DB basic emotion order (labels 1..7 in list_patition_label.txt map to 0..6).
RAFDB_CLASSES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
#: AffectNet expression order (0..7); the 7-class setting drops "contempt".
AFFECTNET_CLASSES = ["neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt"]
#: FERPlus vote columns, in the order of fer2013new.csv.
FERPLUS_CLASSES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
#: Aff-Wild2 expression order (ABAW challenge): 0..7, ``-1`` marks unannotated frames.
AFFWILD2_CLASSES = ["neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise", "other"]


@dataclasses.dataclass
class Samples:
    """A labelled image set.

    Attributes
    ----------
    images : list of Path, or ndarray
        Image file paths, or an array ``(N, H, W)`` / ``(N, H, W, 3)`` of uint8 pixels.
    labels : ndarray of int64, shape (N,)
        Hard labels in ``[0, K)``.
    class_names : list of str
        ``K`` names; ``labels`` index into it.
    soft : ndarray of float32, shape (N, K), optional
        Label distributions (e.g. FERPlus vote proportions).
    groups : ndarray, optional
        A group id per sample (e.g. the video of an Aff-Wild2 frame); splits keep groups whole.
    frames : ndarray of int64, optional
        Frame numbers (per-video datasets).
    boxes : ndarray of int64, shape (N, 4), optional
        Face box ``(x, y, width, height)`` in pixels, cropped before resizing (AffectNet).
    sample_soft_label : bool
        Draw a one-hot training label from ``soft`` every time an item is read (FERPlus
        ``probability`` mode) instead of training on the distribution itself.
    """

    images: list[Path] | np.ndarray
    labels: np.ndarray
    class_names: list[str]
    soft: np.ndarray | None = None
    groups: np.ndarray | None = None
    frames: np.ndarray | None = None
    boxes: np.ndarray | None = None
    sample_soft_label: bool = False

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.class_names)

    def subset(self, index: Sequence[int] | np.ndarray) -> Samples:
        """Return the samples at ``index`` (a new object; arrays are copied)."""
        idx = np.asarray(index, dtype=np.int64)
        images = self.images[idx] if isinstance(self.images, np.ndarray) else [self.images[i] for i in idx]
        pick = lambda a: None if a is None else np.asarray(a)[idx]  # noqa: E731
        return Samples(images, self.labels[idx].copy(), list(self.class_names), pick(self.soft),
                       pick(self.groups), pick(self.frames), pick(self.boxes), self.sample_soft_label)

    def with_labels(self, labels: np.ndarray) -> Samples:
        """Return a copy whose hard labels are replaced (e.g. after noise injection)."""
        return dataclasses.replace(self, labels=np.asarray(labels, dtype=np.int64).copy())

    def class_counts(self) -> np.ndarray:
        """Count samples per class, shape ``(K,)``."""
        return np.bincount(self.labels, minlength=self.num_classes)
