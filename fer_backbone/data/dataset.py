"""A torch ``Dataset`` over :class:`~fer_backbone.data.samples.Samples`.

Items are dicts (the batch keys of :mod:`fer_backbone.tasks.base`)::

    {"image": uint8 (3, S, S), "label": int64, "index": int64, ["soft": float32 (K,)]}

Images stay ``uint8`` until they reach the device: the training loop converts, normalises
and augments whole batches there (flip, Gaussian noise, random erasing), which is cheaper
than per-sample work in loader workers and runs on the GPU when there is one. Only
resizing and the random crop happen here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cdrscreen.errors import InputError
from fer_backbone.data.samples import Samples


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a uint8 RGB tensor ``(3, H, W)``; one clear error if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise InputError(path, "image file not found") from None
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(path, f"cannot read image ({err})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` array -> uint8 tensor ``(3, H, W)``."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def resize_crop(img: torch.Tensor, size: int, resize: int | None, train: bool,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Resize the short side to ``resize`` (default ``size``), then crop ``size`` x ``size``.

    The crop is random in training (the "256 -> crop 224" recipe) and central otherwise.
    """
    from torchvision.transforms.v2 import functional as F

    resize = resize or size
    img = F.resize(img, [resize, resize], antialias=True)
    if resize == size:
        return img
    if train:
        top = int(torch.randint(0, resize - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, resize - size + 1, (1,), generator=generator))
    else:
        top = left = (resize - size) // 2
    return img[:, top : top + size, left : left + size]


class FERDataset(Dataset):
    """Labelled face images as batches of dicts.

    Parameters
    ----------
    samples : Samples
    image_size : int
        Side of the square crop fed to the network.
    resize : int, optional
        Resize to this side first, then crop ``image_size`` (random crop when ``train``).
    train : bool
        Random crop (if ``resize > image_size``); evaluation crops the centre.
    transform : callable, optional
        Replaces the resize/crop step: ``uint8 (3, H, W) -> tensor``. Other tasks use it to
        produce extra views.
    """

    def __init__(self, samples: Samples, image_size: int = 224, resize: int | None = None,
                 train: bool = False, transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.samples = samples
        self.image_size = image_size
        self.resize = resize
        self.train = train
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def class_names(self) -> list[str]:
        """Class names of the underlying samples."""
        return self.samples.class_names

    def raw_image(self, i: int) -> torch.Tensor:
        """Sample ``i`` as a uint8 ``(3, H, W)`` tensor at its stored size."""
        imgs = self.samples.images
        if isinstance(imgs, np.ndarray):
            return array_to_tensor(imgs[i])
        return load_image(imgs[i])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img = self.raw_image(i)
        if self.transform is not None:
            img = self.transform(img)
        else:
            img = resize_crop(img, self.image_size, self.resize, self.train)
        item = {
            "image": img,
            "label": torch.tensor(int(self.samples.labels[i]), dtype=torch.long),
            "index": torch.tensor(i, dtype=torch.long),
        }
        if self.samples.soft is not None:
            item["soft"] = torch.as_tensor(self.samples.soft[i], dtype=torch.float32)
        return item
