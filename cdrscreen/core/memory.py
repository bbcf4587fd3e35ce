"""Give freed heap memory back to the operating system between the steps of a long recording.

After a step frees its arrays (tracking's MediaPipe graphs and frame buffers, a feature
group's per-frame columns), glibc's allocator keeps much of the freed memory mapped in its
arenas, so the resident size of a worker stays at its high-water mark and the next step
stacks on top of it. :func:`release_free_memory` asks glibc (``malloc_trim``) to return
those pages; where the C library has no ``malloc_trim`` (macOS, musl, Windows) it does
nothing. It changes no result, only the process's resident memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


@functools.cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the C heap's free pages to the operating system; True where that was possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


__all__ = ["release_free_memory"]
