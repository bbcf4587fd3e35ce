"""Gap handling for per-frame signals: interpolate short gaps, split at long ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def segments(usable: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Return runs of usable samples joined across gaps of at most ``max_gap`` samples.

    Parameters
    ----------
    usable : bool array
    max_gap : int
        Longest run of unusable samples that is bridged (by interpolation) rather than
        splitting the signal.

    Returns
    -------
    list of (start, stop)
        Half-open index ranges; each starts and ends on a usable sample.
    """
    idx = np.flatnonzero(np.asarray(usable, bool))
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    stops = np.r_[idx[breaks], idx[-1]] + 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def fill_segment(values: np.ndarray, usable: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``values[start:stop]`` with unusable samples linearly interpolated (1-D)."""
    v = np.asarray(values[start:stop], float).copy()
    ok = np.asarray(usable[start:stop], bool) & np.isfinite(v)
    if not ok.all():
        x = np.arange(v.size)
        v[~ok] = np.interp(x[~ok], x[ok], v[ok])
    return v


def split_signals(
    columns: dict[str, np.ndarray], usable: np.ndarray, max_gap: int, min_len: int = 2
) -> list[dict[str, np.ndarray]]:
    """Cut several aligned signals into gap-free pieces (short gaps interpolated).

    A sample is usable when ``usable`` is true and every column is finite there.
    Pieces shorter than ``min_len`` samples are dropped.
    """
    ok = np.asarray(usable, bool).copy()
    for v in columns.values():
        ok &= np.isfinite(np.asarray(v, float))
    out = []
    for a, b in segments(ok, max_gap):
        if b - a >= min_len:
            out.append({k: fill_segment(v, ok, a, b) for k, v in columns.items()})
    return out


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


def even_table(track: Any) -> pd.DataFrame:
    """Return a face track's table on evenly spaced times (resampled only for variable frame rate).

    Constant-frame-rate tracks (also with ``--stride``) are returned unchanged.
    """
    step = 1.0 / track.track_fps if track.track_fps else np.nan
    t = track.table
    return t if is_regular(t["time"].to_numpy(float), step) else regular_grid(t, step)
