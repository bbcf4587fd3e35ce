"""One warning line per recording, read from the feature table's quality columns.

After extraction every row carries its groups' quality columns; :func:`recording_warnings`
turns them into short texts and :func:`add_warnings` stores them in the table's
``meta__warnings`` column ("; "-joined, empty when all is well), which ``cdrscreen
extract`` prints, one line per recording. The five cases:

* ``no face found``: a visual group's ``quality_no_face`` is 1 (no frame tracked);
* ``face tracked in only N% of frames``: ``quality_low_tracking`` is 1 (tracked fraction
  below :data:`MIN_TRACKED_FRACTION`);
* ``no speech found`` and ``audio sample rate N Hz is below 16 kHz``: the speech groups'
  ``quality_no_speech`` / ``quality_low_sr`` (:func:`cdrscreen.features.audio_input.speech_warnings`);
* ``audio and video durations differ by N%``: a visual group's ``quality_video_s`` and a
  speech group's ``quality_audio_s`` differ by more than :data:`MAX_DURATION_MISMATCH`
  of the longer one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Below this tracked fraction a visual row is flagged ``quality_low_tracking``.
MIN_TRACKED_FRACTION = 0.5
#: Largest relative difference between audio and video durations without a warning.
MAX_DURATION_MISMATCH = 0.05


def visual_quality(tracked_fraction: float, n_rows: int, video_s: float) -> dict[str, float]:
    """Quality columns of a visual group's row (``quality_no_face``, ``quality_low_tracking``, ``quality_video_s``)."""
    no_face = n_rows == 0 or not tracked_fraction > 0
    return {
        "quality_no_face": float(no_face),
        "quality_low_tracking": float(not no_face and tracked_fraction < MIN_TRACKED_FRACTION),
        "quality_video_s": float(video_s),
    }


def video_seconds(track: object) -> float:
    """Duration (s) of a face track's video: its decoded frames times the frame period."""
    t = track.table  # type: ignore[attr-defined]
    if len(t) == 0 or not track.fps:  # type: ignore[attr-defined]
        return 0.0
    return float(t["time"].iloc[-1]) + track.config.stride / track.fps  # type: ignore[attr-defined]


def _first(row: pd.Series, suffix: str) -> tuple[str | None, float]:
    for c in map(str, row.index):
        if c.endswith(suffix):
            v = row[c]
            if v is not None and np.isfinite(float(v)):
                return c, float(v)
    return None, float("nan")


def recording_warnings(row: pd.Series) -> list[str]:
    """Warning texts of one feature-table row (see the module docstring); empty when all is well."""
    from cdrscreen.features.audio_input import speech_warnings

    out: list[str] = []
    _, no_face = _first(row, "__quality_no_face")
    col, low = _first(row, "__quality_low_tracking")
    if no_face == 1.0:
        out.append("no face found")
    elif low == 1.0:
        _, frac = _first(row, col.split("__", 1)[0] + "__tracked_fraction") if col else (None, np.nan)
        out.append(f"face tracked in only {frac:.0%} of frames" if np.isfinite(frac)
                   else "face tracked in fewer than half of the frames")
    out += speech_warnings(row)
    _, video_s = _first(row, "__quality_video_s")
    _, audio_s = _first(row, "__quality_audio_s")
    if np.isfinite(video_s) and np.isfinite(audio_s) and max(video_s, audio_s) > 0:
        diff = abs(video_s - audio_s) / max(video_s, audio_s)
        if diff > MAX_DURATION_MISMATCH:
            out.append(f"audio ({audio_s:.1f} s) and video ({video_s:.1f} s) durations differ by {diff:.0%}")
    return out


def add_warnings(df: pd.DataFrame) -> pd.DataFrame:
    """Set ``meta__warnings`` (``"; "``-joined texts, ``""`` when none) on every row; returns ``df``."""
    df["meta__warnings"] = pd.Series(
        ["; ".join(recording_warnings(row)) for _, row in df.iterrows()], index=df.index, dtype="string")
    return df


__all__ = ["MAX_DURATION_MISMATCH", "MIN_TRACKED_FRACTION", "add_warnings", "recording_warnings",
           "video_seconds", "visual_quality"]
