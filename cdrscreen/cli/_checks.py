"""Output checks done before any work starts (shared by the verbs that write files)."""

from __future__ import annotations

import os
from pathlib import Path

from cdrscreen.core.errors import InputError
from cdrscreen.evaluation.runfolder import writable_dir


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(out: Path, inputs: list[Path], what: str = "output file") -> None:
    """Refuse an output file that would destroy an input or a non-Parquet file, or cannot be written.

    Raises
    ------
    InputError
        ``out`` is a folder, is one of ``inputs``, is an existing file that is not
        Parquet, or its folder cannot be created or written.
    """
    if out.is_dir():
        raise InputError(out, f"{what} is an existing folder; give a file name such as {out / 'features.parquet'}")
    for src in inputs:
        if _same(out, src) or out.resolve() == src.resolve():
            raise InputError(out, f"{what} is the input {src.name}; writing it would overwrite the input "
                                  "(choose another --out)")
    if out.is_file() and out.stat().st_size > 0:
        with open(out, "rb") as fh:
            magic = fh.read(4)
        if magic != b"PAR1":
            raise InputError(out, f"{what} exists and is not a Parquet file; refusing to overwrite it "
                                  "(choose another --out or remove it)")
    writable_dir(out.parent if str(out.parent) else Path("."), f"folder of the {what}")


def check_cache_dir(cache: Path | None) -> None:
    """Refuse a cache folder that is a file or cannot be created or written."""
    if cache is None:
        return
    if cache.exists() and not cache.is_dir():
        raise InputError(cache, "cache folder is an existing file")
    writable_dir(cache, "cache folder")
