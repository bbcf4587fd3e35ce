"""A pre-shrunk uint8 image cache: decode and resize every image once, then memory-map it.

Training at 224 px from RAF-DB-size JPEGs spends most of the loader's time decoding and
resizing (measured: ~700 images/s per process for 100 px JPEGs, ~80 for 1024 px). The cache
does that work once: every image of a :class:`~fer_backbone.data.samples.Samples` is
decoded (face box applied), resized to the square side the dataset needs before its crop
(``resize`` or ``image_size``) and stored as one ``(N, 3, S, S)`` uint8 ``.npy`` file.
:class:`~fer_backbone.data.FERDataset` then reads items from the memory-mapped file (the
page cache shares it between loader workers) and only crops.

The file name holds a hash of the image paths, face boxes and side, so a different data
set or size never reuses a stale cache; it is written to a temporary name and renamed when
complete (an interrupted build leaves nothing that could be mistaken for a cache).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from fer_backbone.data.samples import Samples


def cache_path(samples: Samples, side: int, cache_dir: str | Path) -> Path:
    """Where the cache of ``samples`` at ``side`` lives (content-addressed by paths, boxes, side)."""
    h = hashlib.sha1(f"side={int(side)}\n".encode())
    for p in samples.images:
        h.update(str(p).encode() + b"\n")
    if samples.boxes is not None:
        h.update(np.ascontiguousarray(samples.boxes, dtype=np.int64).tobytes())
    return Path(cache_dir) / f"shrunk_{int(side)}px_{len(samples)}_{h.hexdigest()[:16]}.npy"


def build_shrunk_cache(samples: Samples, side: int, cache_dir: str | Path) -> Path:
    """Decode and resize every image of ``samples`` to ``side`` once; return the ``.npy`` path.

    Reuses an existing complete cache. In-memory samples (arrays) need no cache and are
    refused.

    Raises
    ------
    ValueError
        ``samples`` holds arrays, not files.
    InputError
        An image cannot be read (file named, one line).
    """
    if isinstance(samples.images, np.ndarray):
        raise ValueError("in-memory samples need no image cache")
    from fer_backbone.data.dataset import load_image

    path = cache_path(samples, side, cache_dir)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(samples), 3, side, side))
    try:
        for i, p in enumerate(samples.images):
            box = None if samples.boxes is None else tuple(samples.boxes[i])
            arr[i] = load_image(p, side, box).numpy()
        arr.flush()
        del arr
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def open_cache(path: str | Path) -> np.ndarray:
    """Memory-map a cache written by :func:`build_shrunk_cache` (read-only)."""
    return np.load(path, mmap_mode="r")
