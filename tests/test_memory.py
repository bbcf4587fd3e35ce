"""Bounded memory on long recordings: the pieces of a signal and the C heap between steps."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from cdrscreen.core.memory import release_free_memory
from cdrscreen.tracking.gaps import pieces_to_columns, signal_pieces


def _columns(n: int = 500) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(1)
    cols = {"a": np.cumsum(rng.normal(size=n)), "b": rng.normal(size=n).astype(np.float32)}
    cols["a"][[10, 11, 300]] = np.nan
    usable = rng.random(n) > 0.05
    usable[100:130] = False  # a gap longer than max_gap: two pieces at least
    return cols, usable


def test_columns_given_as_functions_give_the_same_pieces() -> None:
    cols, usable = _columns()
    calls = {"a": 0, "b": 0}

    def lazy(k: str):  # noqa: ANN202
        def get() -> np.ndarray:
            calls[k] += 1
            return cols[k]
        return get

    eager = signal_pieces(cols, usable, max_gap=3, min_len=3)
    lazily = signal_pieces({k: lazy(k) for k in cols}, usable, max_gap=3, min_len=3)
    assert len(eager) >= 2 and calls == {"a": 2, "b": 2}
    assert [(a, b) for a, b, _ in lazily] == [(a, b) for a, b, _ in eager]
    for (_, _, p), (_, _, q) in zip(lazily, eager, strict=True):
        assert all(np.array_equal(p[k], q[k]) for k in cols)


def test_laying_out_pieces_consumes_them_only_when_asked() -> None:
    cols, usable = _columns()
    pieces = signal_pieces(cols, usable, max_gap=3, min_len=3)
    kept = pieces_to_columns(pieces, len(usable), ("a", "b"))
    assert all(set(p) == {"a", "b"} for _, _, p in pieces)
    consumed = pieces_to_columns(pieces, len(usable), ("a", "b"), consume=True)
    assert all(not p for _, _, p in pieces)
    for k in ("piece", "a", "b"):
        assert np.array_equal(kept[k], consumed[k], equal_nan=True)
    assert (kept["piece"] >= 0).sum() == sum(b - a for a, b, _ in signal_pieces(cols, usable, 3, 3))


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_heap_memory_goes_back_to_the_system_on_glibc() -> None:
    def rss_kb() -> int:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))

    # many small blocks (below the mmap threshold) freed in the middle of the heap: glibc keeps them
    # mapped until trimmed
    keep, blocks = [], [bytearray(64 * 1024) for _ in range(800)]
    for i in range(0, len(blocks), 2):
        keep.append(blocks[i])
    del blocks
    before = rss_kb()
    assert release_free_memory() is True
    assert rss_kb() < before - 10_000  # at least 10 MB of the ~25 MB freed returned
    del keep


@pytest.mark.parametrize(("preset", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_the_command_line_puts_arrow_on_the_c_heap_unless_told_otherwise(preset, expected) -> None:  # noqa: ANN001
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if preset is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    code = "import cdrscreen.cli, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == expected
