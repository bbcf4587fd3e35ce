"""scikit-learn's handwritten digits as a small, real, labelled image set.

1,797 real 8x8 grey-level scans of handwritten digits (10 classes). They are the only
labelled images available offline, so tests and the noisy-label benchmark use them in
place of a face data set; :class:`~fer_backbone.data.dataset.FERDataset` upsamples them
to the network's input size and repeats the grey channel.
"""

from __future__ import annotations

import numpy as np

from fer_backbone.data.samples import Samples


def load_digits_samples() -> Samples:
    """All 1,797 digits as uint8 ``(8, 8)`` images (0..16 scaled to 0..255)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return Samples(images, d.target.astype(np.int64), [str(c) for c in range(10)])


def digits_train_test(test_fraction: float = 0.3, seed: int = 0) -> tuple[Samples, Samples]:
    """Return a stratified, seeded train/test split of the digits."""
    from sklearn.model_selection import train_test_split

    s = load_digits_samples()
    tr, te = train_test_split(np.arange(len(s)), test_size=test_fraction, random_state=seed,
                              stratify=s.labels)
    return s.subset(np.sort(tr)), s.subset(np.sort(te))
