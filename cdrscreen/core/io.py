"""Atomic file writes: a crash mid-write never leaves a half-written result behind."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The rename is atomic on POSIX file systems, so readers see either the old file
    or the complete new one. On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the permissions a plain open() would
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented, key-sorted JSON."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


#: Rows per Parquet row group; longer tables are converted and written a group at a time.
PARQUET_ROWS_PER_GROUP = 16384


def write_parquet(path: str | os.PathLike[str], df: pd.DataFrame) -> Path:
    """Atomically write a DataFrame (index included) to Parquet.

    A table longer than :data:`PARQUET_ROWS_PER_GROUP` rows (e.g. 10 ms frames of a long recording) is
    converted to Arrow and written one row group at a time, so writing it costs memory
    for one group rather than a second copy of the whole table; the file reads back the
    same (``df.attrs`` included, as ``DataFrame.to_parquet`` stores them). Each group is
    converted on the calling thread: Arrow's conversion threads each keep their own heap,
    which left tens of MB resident after writing an hour's per-frame table.
    """
    with atomic_path(path) as tmp:
        if len(df) <= PARQUET_ROWS_PER_GROUP:
            df.to_parquet(tmp, index=True)
        else:
            _write_parquet_groups(tmp, df)
    return Path(path)


def _write_parquet_groups(path: Path, df: pd.DataFrame) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    step = PARQUET_ROWS_PER_GROUP
    # the schema from the first group (inferring it from the whole table would convert
    # every object column); a later group that does not fit it (e.g. strings after a
    # first group of None) falls back to writing the whole table at once
    with _system_arrow_pool(pa):
        schema = pa.Schema.from_pandas(df.iloc[:step], preserve_index=True)
        if df.attrs:
            schema = schema.with_metadata({**(schema.metadata or {}), b"PANDAS_ATTRS": json.dumps(df.attrs).encode()})
        try:
            with pq.ParquetWriter(path, schema) as writer:
                for start in range(0, len(df), step):
                    table = pa.Table.from_pandas(df.iloc[start : start + step], schema=schema, preserve_index=True,
                                                 nthreads=1)
                    writer.write_table(table.replace_schema_metadata(schema.metadata))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError):
            df.to_parquet(path, index=True)


_POOL_LOCK = threading.Lock()


@contextlib.contextmanager
def _system_arrow_pool(pa: Any) -> Iterator[None]:
    """Arrow allocates from the C library's heap inside the block (its default pool is restored after).

    Arrow's default allocator (mimalloc or jemalloc) keeps the pages of freed row groups
    for reuse, about 17 MB more resident after writing an hour's per-frame table than
    after a minute's; the C heap's free pages are reused by the next allocation and
    returned by :func:`cdrscreen.core.memory.release_free_memory`. Only where the memory
    comes from changes, not the file.
    """
    with _POOL_LOCK:
        previous = pa.default_memory_pool()
        pa.set_memory_pool(pa.system_memory_pool())
        try:
            yield
        finally:
            pa.set_memory_pool(previous)


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Return the SHA-256 hex digest of a file's content."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_input_file(path: Path, what: str, expected: str) -> None:
    """Raise a one-line :class:`~cdrscreen.core.errors.InputError` unless ``path`` is a readable, non-empty file.

    ``what`` names the file in messages ("video file"), ``expected`` says what a folder
    should have been ("a video file").
    """
    from cdrscreen.core.errors import InputError

    if not path.exists():
        raise InputError(path, f"{what} not found")
    if path.is_dir():
        raise InputError(path, f"is a folder, expected {expected}")
    if not os.access(path, os.R_OK):
        raise InputError(path, f"{what} is not readable (permissions)")
    if path.stat().st_size == 0:
        raise InputError(path, f"{what} is empty (0 bytes)")
