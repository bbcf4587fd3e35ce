"""Content-addressed, atomic, resumable per-file feature cache.

A cached result is keyed by the SHA-256 of every input file's *content* plus the
extractor's name and configuration, so renaming or moving a video reuses its
features, while editing a single byte or changing one parameter recomputes them.
Each entry is written atomically (temporary file + rename): a run killed with
``kill -9`` leaves only complete entries, and a rerun recomputes just the missing ones.
A write that fails (disk full, read-only folder) leaves no partial entry and is reported
as one line naming the cache folder and the system's reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.core.io import file_sha256, write_json, write_parquet

#: Bump when the on-disk layout of cache entries changes.
CACHE_FORMAT = 1

_hash_lock = threading.Lock()


def default_cache_dir() -> Path:
    """Return ``$CDRSCREEN_CACHE`` or ``~/.cache/cdrscreen``."""
    env = os.environ.get("CDRSCREEN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cdrscreen"


def config_hash(name: str, config: dict[str, Any]) -> str:
    """Stable short hash of an extractor's name and JSON-serialisable configuration."""
    blob = json.dumps({"name": name, "config": config, "format": CACHE_FORMAT},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class CacheWriteError(CdrscreenError):
    """A cache entry could not be written (disk full, permissions); nothing partial is kept."""


class FeatureCache:
    """Per-file cache of feature DataFrames stored as Parquet.

    Parameters
    ----------
    root : path-like
        Cache folder. Entries live in ``root/<extractor>/<key>.parquet``.

    Notes
    -----
    File hashes are memoised in ``root/file_hashes.json`` by (absolute path, size,
    mtime), so an unchanged multi-GB video is hashed once, not on every run.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._hash_index_path = self.root / "file_hashes.json"

    # -- hashing ---------------------------------------------------------------------
    def _load_hash_index(self) -> dict[str, str]:
        try:
            return json.loads(self._hash_index_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def content_hash(self, path: str | os.PathLike[str]) -> str:
        """SHA-256 of a file's content, memoised by path, size and mtime."""
        p = Path(path).resolve()
        st = p.stat()
        stamp = f"{p}|{st.st_size}|{st.st_mtime_ns}"
        with _hash_lock:
            index = self._load_hash_index()
            if stamp in index:
                return index[stamp]
        digest = file_sha256(p)
        with _hash_lock, self.writing():
            index = self._load_hash_index()
            index[stamp] = digest
            write_json(self._hash_index_path, index)
        return digest

    def key(self, name: str, config: dict[str, Any], inputs: list[str | os.PathLike[str] | None]) -> str:
        """Cache key for extractor ``name`` with ``config`` applied to ``inputs``."""
        parts = [config_hash(name, config)]
        parts += [self.content_hash(p) if p is not None else "-" for p in inputs]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    # -- entries ---------------------------------------------------------------------
    def path_for(self, name: str, key: str) -> Path:
        """Location of an entry."""
        return self.root / name / f"{key}.parquet"

    def load(self, name: str, key: str) -> pd.DataFrame | None:
        """Return the cached DataFrame, or ``None`` if absent or unreadable."""
        p = self.path_for(name, key)
        if not p.exists():
            return None
        try:
            return pd.read_parquet(p)
        except Exception:  # a corrupt entry is recomputed, never trusted
            return None

    def save(self, name: str, key: str, df: pd.DataFrame) -> Path:
        """Atomically store ``df`` under ``key``.

        Raises
        ------
        CacheWriteError
            If the file system refuses the write (e.g. no space left); the entry is absent.
        """
        with self.writing():
            return write_parquet(self.path_for(name, key), df)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Turn an ``OSError`` raised while writing into the cache into a :class:`CacheWriteError`."""
        try:
            yield
        except OSError as err:
            why = err.strerror or type(err).__name__
            raise CacheWriteError(
                f"{self.root}: cannot write to the feature cache ({why}); free space there or "
                "choose another cache folder (--cache), then rerun: finished results are kept"
            ) from None
