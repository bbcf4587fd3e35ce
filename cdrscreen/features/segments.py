"""Speaker segments: who speaks when, so speech features use the patient's voice only.

Two file formats are read (by suffix):

* **RTTM** (``.rttm``, NIST): whitespace-separated lines
  ``SPEAKER <file> <channel> <onset> <duration> <NA> <NA> <speaker> <NA> <NA>``;
  other line types (``SPKR-INFO``, ...) and ``;;`` comments are skipped.
* **CSV** (``.csv``/``.tsv``/``.txt``): a header with columns ``start,end,speaker``
  (seconds; any order, extra columns ignored).

:func:`patient_intervals` turns a segments table into the time intervals used for
features (the patient's *turns*): the union of the patient's segments, minus (by default)
any time where another speaker overlaps, so cross-talk is not attributed to the patient;
then consecutive patient segments with no other speaker in between are joined, so the
silence between them counts as the patient's pause (diarisation tools split a speaker's
speech at pauses), unless that gap is longer than ``max_gap_s``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cdrscreen.core.errors import InputError

#: Default label of the patient in a segments file.
DEFAULT_PATIENT = "patient"

Intervals = np.ndarray  # shape (n, 2), float seconds, sorted, non-overlapping


def read_segments(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an RTTM or CSV speaker-segments file.

    Returns
    -------
    pandas.DataFrame
        Columns ``start``, ``end`` (float seconds) and ``speaker`` (str), sorted by start.

    Raises
    ------
    InputError
        Missing/empty file, unknown format, a malformed line (named by number), a
        negative time or an end not after its start.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "segments file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, expected a segments file (.rttm or .csv)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "segments file is not UTF-8 text") from None
    except OSError as err:
        raise InputError(path, f"segments file cannot be read ({err.strerror})") from None
    if not text.strip():
        raise InputError(path, "segments file is empty")
    suffix = path.suffix.lower()
    if suffix == ".rttm":
        rows = _parse_rttm(path, text)
    elif suffix in (".csv", ".tsv", ".txt"):
        rows = _parse_csv(path, text, delimiter="\t" if suffix == ".tsv" else None)
    else:
        raise InputError(path, f"unsupported segments format '{suffix}' (use .rttm or .csv)")
    if not rows:
        raise InputError(path, "segments file has no segments")
    df = pd.DataFrame(rows, columns=["start", "end", "speaker", "line"])
    bad = df[(df["start"] < 0) | (df["end"] <= df["start"])]
    if len(bad):
        r = bad.iloc[0]
        raise InputError(
            path, f"line {r['line']}: segment must have 0 <= start < end, got start={r['start']}, end={r['end']}"
        )
    return df.drop(columns="line").sort_values(["start", "end"], kind="stable").reset_index(drop=True)


def _num(path: Path, lineno: int, field: str, value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise InputError(path, f"line {lineno}: {field} is not a number: {value!r}") from None
    if not np.isfinite(v):
        raise InputError(path, f"line {lineno}: {field} is not finite: {value!r}")
    return v


def _parse_rttm(path: Path, text: str) -> list[tuple[float, float, str, int]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith(";;") or parts[0] != "SPEAKER":
            continue
        if len(parts) < 8:
            raise InputError(path, f"line {lineno}: RTTM SPEAKER line needs at least 8 fields, has {len(parts)}")
        onset = _num(path, lineno, "onset", parts[3])
        dur = _num(path, lineno, "duration", parts[4])
        rows.append((onset, onset + dur, parts[7], lineno))
    return rows


def _parse_csv(path: Path, text: str, delimiter: str | None) -> list[tuple[float, float, str, int]]:
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    lines = list(reader)
    header = [h.strip().lower() for h in lines[0]]
    missing = [c for c in ("start", "end", "speaker") if c not in header]
    if missing:
        raise InputError(
            path, f"segments CSV header must name start, end, speaker; missing {', '.join(missing)}"
        )
    i_s, i_e, i_k = (header.index(c) for c in ("start", "end", "speaker"))
    rows = []
    for lineno, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < len(header):
            raise InputError(path, f"line {lineno}: has {len(cells)} fields, header has {len(header)}")
        spk = cells[i_k].strip()
        if not spk:
            raise InputError(path, f"line {lineno}: speaker is empty")
        rows.append((_num(path, lineno, "start", cells[i_s]), _num(path, lineno, "end", cells[i_e]), spk, lineno))
    return rows


def merge_intervals(iv: np.ndarray | Sequence[Sequence[float]]) -> Intervals:
    """Sort intervals and merge overlapping or touching ones; shape ``(n, 2)``."""
    a = np.asarray(iv, dtype=float).reshape(-1, 2)
    a = a[a[:, 1] > a[:, 0]]
    if len(a) == 0:
        return np.zeros((0, 2))
    a = a[np.argsort(a[:, 0], kind="stable")]
    out = [a[0].copy()]
    for s, e in a[1:]:
        if s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append(np.array([s, e]))
    return np.vstack(out)


def subtract_intervals(a: Intervals, b: Intervals) -> Intervals:
    """Parts of the intervals ``a`` not covered by ``b`` (both merged)."""
    a, b = merge_intervals(a), merge_intervals(b)
    out = []
    j = 0
    for s, e in a:
        cur = s
        while j < len(b) and b[j, 1] <= cur:
            j += 1
        k = j
        while k < len(b) and b[k, 0] < e:
            if b[k, 0] > cur:
                out.append((cur, b[k, 0]))
            cur = max(cur, b[k, 1])
            k += 1
        if cur < e:
            out.append((cur, e))
    return merge_intervals(out)


def patient_intervals(
    segments: pd.DataFrame,
    patient: str = DEFAULT_PATIENT,
    *,
    exclude_overlap: bool = True,
    max_gap_s: float = float("inf"),
    source: str | os.PathLike[str] | None = None,
) -> Intervals:
    """Time intervals (seconds) where the patient speaks.

    Parameters
    ----------
    segments : DataFrame
        As returned by :func:`read_segments` (``start``, ``end``, ``speaker``).
    patient : str
        The patient's speaker label (compared after stripping, case-sensitively).
    exclude_overlap : bool, default True
        Remove time where any other speaker's segment overlaps the patient's.
    max_gap_s : float, default inf
        Join consecutive patient intervals whose gap holds no other speaker and is at
        most this long (0 never joins).
    source : path-like, optional
        The segments file, named in the error message.

    Raises
    ------
    InputError
        If no segment carries the label ``patient`` (the labels present are listed).
    """
    spk = segments["speaker"].astype(str).str.strip()
    mine = segments[spk == patient]
    if mine.empty:
        labels = ", ".join(sorted(spk.unique()))
        raise InputError(
            source if source is not None else "<segments>",
            f"no segment has the patient's speaker label '{patient}' (labels: {labels}); "
            "set the extractor's patient= parameter",
        )
    iv = merge_intervals(mine[["start", "end"]].to_numpy(float))
    others = merge_intervals(segments[spk != patient][["start", "end"]].to_numpy(float))
    if exclude_overlap:
        iv = subtract_intervals(iv, others)
    if len(iv) > 1 and max_gap_s > 0:
        joined = [iv[0].copy()]
        for s, e in iv[1:]:
            gap_s, gap_e = joined[-1][1], s
            k = int(np.searchsorted(others[:, 0], gap_e, side="left"))
            busy = k > 0 and others[k - 1, 1] > gap_s  # others are merged: ends sorted too
            if not busy and gap_e - gap_s <= max_gap_s:
                joined[-1][1] = e
            else:
                joined.append(np.array([s, e]))
        iv = np.vstack(joined)
    return iv


def intervals_to_mask(iv: Intervals, times: np.ndarray) -> np.ndarray:
    """Boolean mask of the ``times`` (seconds) that fall inside any interval ``[s, e)``."""
    times = np.asarray(times, dtype=float)
    iv = merge_intervals(iv)
    if len(iv) == 0:
        return np.zeros(times.shape, dtype=bool)
    idx = np.searchsorted(iv[:, 0], times, side="right") - 1
    ok = idx >= 0
    mask = np.zeros(times.shape, dtype=bool)
    mask[ok] = times[ok] < iv[idx[ok], 1]
    return mask


__all__ = [
    "DEFAULT_PATIENT",
    "intervals_to_mask",
    "merge_intervals",
    "patient_intervals",
    "read_segments",
    "subtract_intervals",
]
