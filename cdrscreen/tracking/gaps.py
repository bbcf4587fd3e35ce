"""Gap handling for per-frame signals: interpolate short gaps, split at long ones."""

from __future__ import annotations

import numpy as np


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


def signal_pieces(
    columns: dict[str, np.ndarray], usable: np.ndarray, max_gap: int, min_len: int = 2
) -> list[tuple[int, int, dict[str, np.ndarray]]]:
    """Like :func:`split_signals`, with each piece's half-open sample range ``(start, stop)``."""
    ok = np.asarray(usable, bool).copy()
    for v in columns.values():
        ok &= np.isfinite(np.asarray(v, float))
    out = []
    for a, b in segments(ok, max_gap):
        if b - a >= min_len:
            out.append((a, b, {k: fill_segment(v, ok, a, b) for k, v in columns.items()}))
    return out


def split_signals(
    columns: dict[str, np.ndarray], usable: np.ndarray, max_gap: int, min_len: int = 2
) -> list[dict[str, np.ndarray]]:
    """Cut several aligned signals into gap-free pieces (short gaps interpolated).

    A sample is usable when ``usable`` is true and every column is finite there.
    Pieces shorter than ``min_len`` samples are dropped.
    """
    return [p for _, _, p in signal_pieces(columns, usable, max_gap, min_len)]


def pieces_to_columns(
    pieces: list[tuple[int, int, dict[str, np.ndarray]]], n: int, names: list[str] | tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Lay pieces back on the ``n`` samples: ``piece`` (its number, -1 outside) and one column per name (NaN outside)."""
    out = {"piece": np.full(n, -1, np.int64)} | {k: np.full(n, np.nan) for k in names}
    for i, (a, b, p) in enumerate(pieces):
        out["piece"][a:b] = i
        for k in names:
            out[k][a:b] = p[k]
    return out
