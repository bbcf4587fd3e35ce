"""A torch ``Dataset`` over :class:`~fer_backbone.data.samples.Samples`.

Items are dicts (the batch keys of :mod:`fer_backbone.tasks.base`)::

    {"image": uint8 (3, S, S), "label": int64, "index": int64, ["soft": float32 (K,)]}

Images stay ``uint8`` until they reach the device: the training loop converts, normalises
and augments whole batches there (flip, Gaussian noise, random erasing), which is cheaper
than per-sample work in loader workers and runs on the GPU when there is one. Only
resizing (PIL, bilinear, to a square ``resize`` or ``image_size``) and the crop happen
here; in-memory images (arrays) are resized once and cached.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cdrscreen.core.errors import InputError
from fer_backbone.data.sampler import split_key
from fer_backbone.data.samples import Samples


def seeded_call(seed: int | None, fn: Callable[[], dict]) -> dict:
    """Run ``fn`` on torch's CPU generator seeded with ``seed`` (restored afterwards); plain if None."""
    if seed is None:
        return fn()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def load_image(path: str | Path, size: int | None = None,
               box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """Read an image file as a uint8 RGB tensor ``(3, H, W)``; one clear error if unreadable.

    ``box = (x, y, width, height)`` crops that region first (clipped to the image); with
    ``size`` the result is resized to ``size`` x ``size`` (PIL, bilinear).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if box is not None:
                x, y, w, h = (int(v) for v in box)
                x0, y0 = max(x, 0), max(y, 0)
                x1, y1 = min(x + w, im.width), min(y + h, im.height)
                if x1 <= x0 or y1 <= y0:
                    raise InputError(path, f"face box {tuple(box)} lies outside the {im.width}x{im.height} image")
                im = im.crop((x0, y0, x1, y1))
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
            arr = np.asarray(im)
    except FileNotFoundError:
        raise InputError(path, "image file not found") from None
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(path, f"cannot read image ({err})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def array_to_tensor(arr: np.ndarray, size: int | None = None) -> torch.Tensor:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` array -> uint8 tensor ``(3, H, W)`` (resized with ``size``)."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if size is not None and arr.shape[:2] != (size, size):
        from PIL import Image

        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
    return torch.from_numpy(np.array(arr, dtype=np.uint8, order="C")).permute(2, 0, 1).contiguous()


def random_or_center_crop(img: torch.Tensor, size: int, train: bool,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop ``size`` x ``size`` from a square image: random in training, central otherwise."""
    side = img.shape[-1]
    if side == size:
        return img
    if train:
        top = int(torch.randint(0, side - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, side - size + 1, (1,), generator=generator))
    else:
        top = left = (side - size) // 2
    return img[:, top : top + size, left : left + size]


def resize_crop(img: torch.Tensor, size: int, resize: int | None, train: bool,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Resize a uint8 ``(3, H, W)`` tensor to ``resize`` (default ``size``) square, then crop ``size``.

    The crop is random in training (the "256 -> crop 224" recipe) and central otherwise.
    """
    from torchvision.transforms.v2 import functional as F

    img = F.resize(img, [resize or size, resize or size], antialias=True)
    return random_or_center_crop(img, size, train, generator)


class FERDataset(Dataset):
    """Labelled face images as batches of dicts.

    Parameters
    ----------
    samples : Samples
    image_size : int
        Side of the square crop fed to the network.
    resize : int, optional
        Resize to this square side first, then crop ``image_size`` (random crop when
        ``train``, central otherwise). Default: resize straight to ``image_size``.
    train : bool
        Random crop (if ``resize > image_size``); evaluation crops the centre.
    transform : callable, optional
        Replaces the resize/crop step: ``uint8 (3, H, W) -> tensor``. Other tasks use it to
        produce extra views.
    cache : path, optional
        A pre-shrunk image cache of these samples at side ``resize or image_size``
        (:func:`fer_backbone.data.cache.build_shrunk_cache`); items are then read from the
        memory-mapped file instead of decoding and resizing the image files.
    """

    def __init__(self, samples: Samples, image_size: int = 224, resize: int | None = None,
                 train: bool = False, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 cache: str | Path | None = None) -> None:
        self.samples = samples
        self.image_size = image_size
        self.resize = resize
        self.train = train
        self.transform = transform
        self.cache = Path(cache) if cache is not None else None
        self._mm: np.ndarray | None = None  # opened lazily, in each loader worker

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def class_names(self) -> list[str]:
        """Class names of the underlying samples."""
        return self.samples.class_names

    def raw_image(self, i: int, size: int | None = None) -> torch.Tensor:
        """Sample ``i`` as a uint8 ``(3, H, W)`` tensor, at its stored size or ``size`` x ``size``."""
        imgs = self.samples.images
        if isinstance(imgs, np.ndarray):
            return array_to_tensor(imgs[i], size)
        box = None if self.samples.boxes is None else tuple(self.samples.boxes[i])
        return load_image(imgs[i], size, box)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mm"] = None  # workers re-open the memory map instead of receiving a copy
        return state

    def _resized(self, i: int) -> torch.Tensor:
        side = self.resize or self.image_size
        if self.cache is not None:
            if self._mm is None:
                from fer_backbone.data.cache import open_cache

                self._mm = open_cache(self.cache)
                if self._mm.shape != (len(self), 3, side, side):
                    raise InputError(self.cache, f"image cache holds {self._mm.shape}, expected "
                                                 f"{(len(self), 3, side, side)}")
            return torch.from_numpy(np.array(self._mm[i]))
        if not isinstance(self.samples.images, np.ndarray):
            return self.raw_image(i, side)
        # in-memory images: resize all once, then only crop per access
        if getattr(self, "_cache", None) is None:
            self._cache = torch.stack([self.raw_image(j, side) for j in range(len(self))])
        return self._cache[i]

    #: ``__getitem__`` takes ``(index, seed)`` pairs from :class:`~fer_backbone.data.SeededSampler`.
    accepts_seeded_index = True

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        i, seed = split_key(key)
        return seeded_call(seed, lambda: self._item(i))

    def _item(self, i: int) -> dict[str, torch.Tensor]:
        if self.transform is not None:
            img = self.transform(self.raw_image(i))
        else:
            img = random_or_center_crop(self._resized(i), self.image_size, self.train)
        item = {
            "image": img,
            "label": torch.tensor(int(self.samples.labels[i]), dtype=torch.long),
            "index": torch.tensor(i, dtype=torch.long),
        }
        if self.samples.soft is not None:
            soft = torch.as_tensor(self.samples.soft[i], dtype=torch.float32)
            if self.samples.sample_soft_label and self.train:
                # FERPlus "probability" mode (microsoft/FERPlus src/ferplus.py, _process_target):
                # a one-hot target drawn from the vote distribution each time the image is read
                item["label"] = torch.multinomial(soft, 1)[0]
            elif not self.samples.sample_soft_label:
                item["soft"] = soft
        return item
