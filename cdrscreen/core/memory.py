"""Give freed heap memory back to the operating system between the steps of a long recording.

After a step frees its arrays (tracking's MediaPipe graphs and frame buffers, a feature
group's per-frame columns), glibc's allocator keeps much of the freed memory mapped in its
arenas, so the resident size of a worker stays at its high-water mark and the next step
stacks on top of it. :func:`release_free_memory` asks glibc (``malloc_trim``) to return
those pages; where the C library has no ``malloc_trim`` (macOS, musl, Windows) it does
nothing. It changes no result, only the process's resident memory. :func:`arrow_on_the_c_heap`
puts Arrow's buffers on that heap too (the command line does it before anything else).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Any


@functools.cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the C heap's free pages (and Arrow's unused ones) to the system; True where ``malloc_trim`` exists."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:  # Arrow's own allocator (mimalloc/jemalloc) keeps freed pages for reuse
        arrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def arrow_on_the_c_heap() -> bool:
    """Let Arrow (Parquet reads and writes) allocate from the C library's heap in this process and its workers.

    Arrow's default allocator (mimalloc or jemalloc) keeps the pages of freed buffers for
    reuse: writing an hour's per-frame signals left about 15-20 MB more resident than a
    minute's. On the C heap those pages are reused by the next allocation and returned by
    :func:`release_free_memory`. Sets ``ARROW_DEFAULT_MEMORY_POOL=system``, which Arrow
    reads when it first allocates, so call this before anything imports ``pyarrow``
    (``pandas`` does): the command line does it first thing. A value the user set is kept.
    Returns whether the variable now says ``system``.
    """
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    return os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system"


__all__ = ["arrow_on_the_c_heap", "release_free_memory"]
