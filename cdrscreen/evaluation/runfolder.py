"""Run-folder integrity: a run folder holds one run, and reports only mix matching runs.

* :func:`prepare_out_dir` is called before any work: it refuses an output that is a
  file, an unwritable place, or a non-empty folder (unless ``overwrite``, which clears
  the folder first, so no file of an earlier run survives).
* :func:`check_same_inputs` compares the input hashes that two runs (or a run and a
  feature table) recorded in ``inputs.json`` and refuses a mismatch with one line.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from cdrscreen.core.errors import InputError


def writable_dir(path: Path, what: str = "output folder") -> None:
    """Raise a one-line :class:`InputError` unless ``path`` can be created and written to."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(path, f"{what}: '{probe}' is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(path, f"{what} is not writable (permissions on '{probe}')")


def prepare_out_dir(out: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Check (and with ``overwrite`` clear) a run folder before a run starts.

    Raises
    ------
    InputError
        ``out`` is an existing file, is not writable, or is a non-empty folder and
        ``overwrite`` is false.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "is an existing file; the run folder must be a folder (choose another --out)")
    writable_dir(out, "run folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(out, "run folder is not empty (it holds an earlier run); choose a new folder or "
                                  "pass --overwrite to clear it first")
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    return out


def input_hashes(inputs: dict[str, Any]) -> dict[str, str | None]:
    """Return the hashes a run recorded in ``inputs.json`` (feature table)."""
    return {"features": (inputs.get("features") or {}).get("sha256")}


def check_same_inputs(run_dir: Path, run_inputs: dict[str, Any], other_dir: Path, other_inputs: dict[str, Any],
                      what: str) -> None:
    """Refuse a second run (e.g. an ablation) whose feature table differs from the run's.

    Raises
    ------
    InputError
        Naming ``other_dir`` and both hashes' first characters.
    """
    a = input_hashes(run_inputs)["features"]
    b = input_hashes(other_inputs)["features"]
    if a is None or b is None:
        raise InputError(other_dir / "inputs.json",
                         f"{what} has no feature-table hash to compare with {run_dir} (was it written by "
                         "'cdrscreen evaluate' or 'cdrscreen ablate'?)")
    if a != b:
        raise InputError(other_dir, f"{what} was computed on another feature table than {run_dir} "
                                    f"(sha256 {b[:12]}… vs {a[:12]}…); use the {what} of the same study")


def check_table_hash(path: Path, sha256: str, run_dir: Path, recorded: str | None) -> None:
    """Refuse a feature table whose content hash is not the one the run recorded."""
    if recorded is None:
        return
    if sha256 != recorded:
        raise InputError(path, f"is not the feature table run {run_dir} was computed on "
                               f"(sha256 {sha256[:12]}… vs {recorded[:12]}… in inputs.json)")
