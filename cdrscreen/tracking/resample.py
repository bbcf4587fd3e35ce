"""Even-time resampling of per-frame tracks (variable-frame-rate videos).

Velocities, STFTs and smoothing windows count samples, so they need evenly spaced
samples; the frames of a variable-frame-rate video are not. :func:`even_table` returns a
face track's table unchanged for a constant frame rate (also with a stride) and resampled
onto even steps at the average rate otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def is_regular(times: np.ndarray, step: float, tol: float = 0.25) -> bool:
    """Whether successive ``times`` are ``step`` apart within ``tol`` steps (constant frame rate)."""
    t = np.asarray(times, float)
    if t.size < 3 or not np.isfinite(step) or step <= 0:
        return True
    return bool(np.all(np.abs(np.diff(t) - step) <= tol * step))


def regular_grid(table: pd.DataFrame, step: float) -> pd.DataFrame:
    """Resample a per-frame track table onto times ``t0, t0 + step, ...`` (variable frame rate).

    Velocities, STFTs and smoothing windows count samples, so they need evenly spaced
    samples; a variable-frame-rate video's frames are not. Numeric columns are linearly
    interpolated in time between *tracked* frames; ``success`` and ``blink`` come from the
    nearest frame (so a lost or blinking stretch stays lost), and untracked grid points are
    NaN as in the original. ``frame`` is the nearest original frame.
    """
    t = table["time"].to_numpy(float)
    if t.size == 0:
        return table
    grid = t[0] + step * np.arange(int(np.floor((t[-1] - t[0]) / step + 1e-9)) + 1)
    if t.size == 1:
        return table.reset_index(drop=True)
    after = np.clip(np.searchsorted(t, grid), 1, t.size - 1)
    nearest = after - ((grid - t[after - 1]) < (t[after] - grid)).astype(int)
    tracked = table["success"].to_numpy(bool)[nearest]
    good_rows = table["success"].to_numpy(bool)
    out: dict[str, np.ndarray] = {}
    for col in table.columns:
        v = table[col].to_numpy()
        if col == "time":
            out[col] = grid
        elif not np.issubdtype(v.dtype, np.floating):  # flags, counts, frame numbers
            out[col] = v[nearest]
        else:
            good = good_rows & np.isfinite(v)
            w = np.interp(grid, t[good], v[good]) if good.sum() >= 2 else np.full(grid.size, np.nan)
            w[~tracked] = np.nan
            out[col] = w
    return pd.DataFrame(out, columns=table.columns)


def even_table(track: Any, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return a face track's table on evenly spaced times (resampled only for variable frame rate).

    Constant-frame-rate tracks (also with ``--stride``) are returned unchanged. ``table``
    (default ``track.table``) is a table of the track's frames to use instead, e.g. a
    subset of its columns.
    """
    step = 1.0 / track.track_fps if track.track_fps else np.nan
    t = track.table if table is None else table
    return t if is_regular(t["time"].to_numpy(float), step) else regular_grid(t, step)
