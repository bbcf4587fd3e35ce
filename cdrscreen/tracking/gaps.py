"""Gap handling for per-frame signals: interpolate short gaps, split at long ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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
    columns: Mapping[str, np.ndarray | Callable[[], np.ndarray]], usable: np.ndarray, max_gap: int,
    min_len: int = 2,
) -> list[tuple[int, int, dict[str, np.ndarray]]]:
    """Like :func:`split_signals`, with each piece's half-open sample range ``(start, stop)``.

    A column may also be given as a function returning it: it is then computed when needed
    (twice) and dropped after use, so a long recording never holds all its full-length
    columns at once besides the pieces.
    """
    def get(v: np.ndarray | Callable[[], np.ndarray]) -> np.ndarray:
        return v() if callable(v) else v

    ok = np.asarray(usable, bool).copy()
    for v in columns.values():
        ok &= np.isfinite(np.asarray(get(v), float))
    spans = [(a, b) for a, b in segments(ok, max_gap) if b - a >= min_len]
    out: list[tuple[int, int, dict[str, np.ndarray]]] = [(a, b, {}) for a, b in spans]
    for k, v in columns.items():  # column by column: one full-length column alive at a time
        col = get(v)
        for a, b, piece in out:
            piece[k] = fill_segment(col, ok, a, b)
        del col
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
    pieces: list[tuple[int, int, dict[str, np.ndarray]]], n: int, names: list[str] | tuple[str, ...],
    *, consume: bool = False,
) -> dict[str, np.ndarray]:
    """Lay pieces back on the ``n`` samples: ``piece`` (its number, -1 outside) and one column per name (NaN outside).

    With ``consume`` each piece's arrays are removed from it once laid out, so the pieces
    and the columns are not both held in full.
    """
    out = {"piece": np.full(n, -1, np.int64)}
    for i, (a, b, _) in enumerate(pieces):
        out["piece"][a:b] = i
    for k in names:
        col = np.full(n, np.nan)
        for a, b, p in pieces:
            col[a:b] = p.pop(k) if consume else p[k]
        out[k] = col
    return out
