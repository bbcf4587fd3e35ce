"""The ``signals/`` folder: per-frame and per-segment series that extraction computed.

Extraction (``cdrscreen extract ... --out DIR/features.parquet``) writes, next to the
feature table, one Parquet file per recording, feature group and signal::

    DIR/signals/<subject>/<session>/<file stem>-<8 hex>/<group>.<signal>.parquet

Each table is indexed like audinterface's results: per-frame series by
``(file, frame, time)``, per-segment series by ``(file, start, end)`` (seconds). Its
``attrs`` hold the group name, the signal name and ``config_sha``, the hash of the
extractor configuration that made it, which the feature table records too
(``df.attrs["extractors"][group]["config_sha"]``), so a reader can tell a signal that
belongs to the table from a stale one.

Writers are :mod:`cdrscreen.features` (through the study runner); readers are the
reports. This module is the only place that knows the layout, and it imports nothing
but :mod:`cdrscreen.core`.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pandas as pd

from cdrscreen.core.errors import InputError
from cdrscreen.core.io import write_parquet

#: Name of the folder beside the feature table.
SIGNALS_FOLDER = "signals"
#: Index level names of a per-frame and of a per-segment signal.
FRAME_INDEX = ("file", "frame", "time")
SEGMENT_INDEX = ("file", "start", "end")


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(part)).strip("._") or "x"


def signals_root(table: str | os.PathLike[str]) -> Path:
    """Return the ``signals/`` folder that belongs to the feature table at ``table``."""
    return Path(table).parent / SIGNALS_FOLDER


def recording_dir(root: str | os.PathLike[str], subject: str, session: str, file: str) -> Path:
    """Folder of one recording's signals (the file's full path is hashed into the name)."""
    digest = hashlib.sha1(str(file).encode("utf-8")).hexdigest()[:8]
    return Path(root) / _safe(subject) / _safe(session) / f"{_safe(Path(str(file)).stem)}-{digest}"


def signal_path(root: str | os.PathLike[str], subject: str, session: str, file: str, group: str,
                name: str) -> Path:
    """Path of one signal table of one recording."""
    return recording_dir(root, subject, session, file) / f"{group}.{name}.parquet"


def check_signal(df: pd.DataFrame, where: str) -> None:
    """Refuse a signal table that is not indexed by :data:`FRAME_INDEX` or :data:`SEGMENT_INDEX`."""
    names = tuple(df.index.names)
    if names not in (FRAME_INDEX, SEGMENT_INDEX):
        raise InputError(where, f"signal index must be {FRAME_INDEX} or {SEGMENT_INDEX}, got {names}")


def write_signal(path: str | os.PathLike[str], df: pd.DataFrame, *, group: str, name: str,
                 config_sha: str) -> Path:
    """Write one signal table atomically, with its group, name and ``config_sha`` in ``attrs``."""
    check_signal(df, str(path))
    df = df.copy(deep=False)  # new attrs only: the data are not copied
    df.attrs = {**df.attrs, "group": group, "signal": name, "config_sha": config_sha}
    return write_parquet(path, df)


def read_signal(path: str | os.PathLike[str], config_sha: str | None = None) -> pd.DataFrame | None:
    """Read one signal table; None when it does not exist or was made with another configuration.

    Raises
    ------
    InputError
        The file exists but is not a readable signal table (one line naming it).
    """
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        return None
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as err:  # what pyarrow raises for a bad file
        raise InputError(path, f"cannot be read as a signal table ({type(err).__name__})") from None
    check_signal(df, str(path))
    if config_sha is not None and df.attrs.get("config_sha") != config_sha:
        return None
    return df


__all__ = [
    "FRAME_INDEX",
    "SEGMENT_INDEX",
    "SIGNALS_FOLDER",
    "check_signal",
    "read_signal",
    "recording_dir",
    "signal_path",
    "signals_root",
    "write_signal",
]
