"""Batch-wise image preparation and augmentation on the training device.

Images travel from the loader as uint8; :func:`prepare_batch` moves them to the device,
converts to float, applies :class:`BatchAugment` (random horizontal flip, Gaussian noise,
random erasing — the SCN recipe's augmentations, vectorised over the batch) and normalises.
On a GPU this removes the per-sample augmentation work from the loader workers.
"""

from __future__ import annotations

import dataclasses

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class BatchAugment:
    """Per-sample random augmentations applied to a whole float batch in ``[0, 1]``.

    Parameters
    ----------
    flip : bool
        Horizontal flip.
    noise_std : float
        Std of additive Gaussian noise (in ``[0, 1]`` pixel units; SCN adds variance-30 noise
        on 0..255, i.e. std ~0.021). 0 disables it.
    flip_noise : {"one_of", "independent"}
        How flip and noise combine when both are on. ``one_of`` (default) is the official
        SCN code (``RafDataSet.__getitem__`` in kaiwang960112/Self-Cure-Network
        ``src/train.py``: with probability 0.5 one of ``flip_image`` / ``add_gaussian_noise``
        of ``src/image_utils.py``, chosen uniformly): flip 0.25, noise 0.25, never both.
        ``independent``: flip with p = 0.5 and noise with p = 0.5, independently. With only
        one of them on, it is applied with p = 0.5 (torchvision's ``RandomHorizontalFlip``).
    erase_p : float
        Probability of erasing one random rectangle (area 2-25%, aspect 0.3-3.3) per sample,
        filled with 0 after normalisation, as torchvision's ``RandomErasing`` does.
    """

    flip: bool = True
    noise_std: float = 0.0
    erase_p: float = 0.0
    flip_noise: str = "one_of"

    def __post_init__(self) -> None:
        if self.flip_noise not in ("one_of", "independent"):
            raise ValueError(f"flip_noise must be 'one_of' or 'independent', got {self.flip_noise!r}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 shard: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment ``x`` ``(B, C, H, W)``; return it and the erase mask (applied after normalising).

        ``shard=(offset, total)``: ``x`` holds rows ``offset .. offset + B`` of a batch of
        ``total`` images split over processes; the random numbers of the whole batch are drawn
        and this slice is used, so every image is augmented as in a one-process run.
        """
        b, _, h, w = x.shape
        dev = x.device
        lo, n = shard if shard is not None else (0, b)
        rand = lambda k: torch.rand(n, device=dev, generator=generator)[lo : lo + k]  # noqa: E731
        do_flip = do_noise = None
        if self.flip and self.noise_std > 0 and self.flip_noise == "one_of":
            apply, pick = rand(b) > 0.5, rand(b) < 0.5
            do_flip, do_noise = apply & pick, apply & ~pick
        if self.flip:
            do = do_flip if do_flip is not None else rand(b) < 0.5
            x = torch.where(do[:, None, None, None], x.flip(-1), x)
        if self.noise_std > 0:
            do = (do_noise if do_noise is not None else rand(b) < 0.5).to(x.dtype)[:, None, None, None]
            noise = torch.randn((n, *x.shape[1:]), device=dev, generator=generator, dtype=x.dtype)[lo : lo + b]
            x = (x + do * self.noise_std * noise).clamp_(0, 1)
        mask = None
        if self.erase_p > 0:
            area = (0.02 + 0.23 * rand(b)) * h * w
            log_r = torch.log(torch.tensor(0.3, device=dev)) + rand(b) * (
                torch.log(torch.tensor(3.3, device=dev)) - torch.log(torch.tensor(0.3, device=dev)))
            ratio = torch.exp(log_r)
            eh = torch.sqrt(area * ratio).clamp(1, h).floor()
            ew = torch.sqrt(area / ratio).clamp(1, w).floor()
            top = (rand(b) * (h - eh + 1)).floor()
            left = (rand(b) * (w - ew + 1)).floor()
            ys = torch.arange(h, device=dev)[None, :, None]
            xs = torch.arange(w, device=dev)[None, None, :]
            inside = ((ys >= top[:, None, None]) & (ys < (top + eh)[:, None, None])
                      & (xs >= left[:, None, None]) & (xs < (left + ew)[:, None, None]))
            do = rand(b) < self.erase_p
            mask = (inside & do[:, None, None])[:, None]
        return x, mask


def is_image_batch(t: torch.Tensor) -> bool:
    """Tell whether ``t`` is a uint8 ``(B, 3, H, W)`` image batch (the loop prepares those)."""
    return t.dtype == torch.uint8 and t.ndim == 4 and t.shape[1] in (1, 3)


def prepare_batch(batch: dict[str, torch.Tensor], device: torch.device, mean: tuple[float, ...],
                  std: tuple[float, ...], *, augment: BatchAugment | None = None,
                  augment_keys: tuple[str, ...] = ("image",), channels_last: bool = False,
                  generator: torch.Generator | None = None,
                  shard: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """Move a batch to ``device``; convert, augment (``augment_keys`` only) and normalise images.

    ``shard`` is passed to :class:`BatchAugment` (multi-process training).
    """
    out: dict[str, torch.Tensor] = {}
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    for k, v in batch.items():
        if not isinstance(v, torch.Tensor):
            out[k] = v
            continue
        v = v.to(device, non_blocking=True)
        if is_image_batch(v):
            x = v.float().div_(255.0)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            mask = None
            if augment is not None and k in augment_keys:
                x, mask = augment(x, generator, shard)
            x = (x - m) / s
            if mask is not None:
                x = x.masked_fill(mask, 0.0)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            v = x
        out[k] = v
    return out
