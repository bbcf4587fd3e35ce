"""Per-recording series for patient reports, read from what extraction wrote.

Reports never recompute a feature: the per-frame and per-segment series come from the
``signals/`` folder beside the feature table (:mod:`cdrscreen.core.signals`), the
spectra and correlations from the feature table's own columns. A signal is used only when
its ``config_sha`` equals the one the feature table records for its group
(``features.attrs["extractors"]``), so a stale signal (another stride, another tracker
setting, another extraction) is never drawn next to the table's numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cdrscreen.core.signals import read_signal, signal_path


def extractor_records(features: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """Return what the feature table records about each extractor (``attrs["extractors"]``; empty if none)."""
    if features is None:
        return {}
    rec = features.attrs.get("extractors")
    return dict(rec) if isinstance(rec, Mapping) else {}


def key_feature_hints(features: pd.DataFrame | None) -> list[tuple[str, str]]:
    """``(column, display name)`` of the key features every extractor declared, in table order."""
    out = []
    for group, rec in extractor_records(features).items():
        prefix = group
        cols = set(features.columns) if features is not None else set()
        for name, label in rec.get("key_features", []):
            col = f"{prefix}__{name}"
            if col in cols:
                out.append((col, str(label)))
    return out


@dataclass
class RecordingSignals:
    """The signal tables of one recording.

    Attributes
    ----------
    tables : dict
        ``(group, signal name) -> DataFrame`` (the recording's files concatenated).
    missing : list of str
        ``group.signal`` names the feature table declares but that were not found (or
        were made with another configuration).
    """

    tables: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def get(self, group: str, name: str) -> pd.DataFrame | None:
        """One signal table, or None."""
        return self.tables.get((group, name))


def load_recording_signals(features: pd.DataFrame | None, root: Path | None, subject: str,
                           session: str | None) -> RecordingSignals:
    """Read every declared signal of one recording (subject × session).

    Raises
    ------
    InputError
        A signal file exists but cannot be read (one line naming it).
    """
    out = RecordingSignals()
    records = extractor_records(features)
    if features is None or root is None or not records or session is None:
        out.missing = [f"{g}.{n}" for g, r in records.items() for n in r.get("signals", [])]
        return out
    idx = features.index
    sel = (idx.get_level_values("subject").astype(str) == subject) & (
        idx.get_level_values("session").astype(str) == session)
    files = list(dict.fromkeys(idx[sel].get_level_values("file").astype(str)))
    for group, rec in records.items():
        for name in rec.get("signals", []):
            parts = [read_signal(signal_path(root, subject, session, f, group, name), rec.get("config_sha"))
                     for f in files]
            got = [p for p in parts if p is not None]
            if got and len(got) == len(parts):
                out.tables[(group, name)] = pd.concat(got) if len(got) > 1 else got[0]
            else:
                out.missing.append(f"{group}.{name}")
    return out


# --- what the figures draw ----------------------------------------------------------------
def frame_time(df: pd.DataFrame) -> np.ndarray:
    """Seconds of a per-frame signal (its ``time`` index level)."""
    return df.index.get_level_values("time").to_numpy(float)


def pupil_spectra(own: pd.Series | None) -> dict[str, np.ndarray] | None:
    """Return the superposed STFT spectra of the eye-relative pupil motion, as the feature table holds them.

    ``pupil__stft_eye_dh_b<k>`` and ``pupil__stft_eye_dv_b<k>`` at ``k * pupil__stft_bin_hz``
    Hz: exactly the numbers the pupil features computed. None when the table has none or no
    STFT window fitted.
    """
    if own is None:
        return None
    rx = re.compile(r"^pupil__stft_eye_d([hv])_b(\d+)$")
    bins: dict[str, dict[int, float]] = {"h": {}, "v": {}}
    for c in own.index:
        m = rx.match(str(c))
        if m:
            bins[m.group(1)][int(m.group(2))] = float(own[c])
    step = float(own.get("pupil__stft_bin_hz", np.nan))
    if not bins["h"] or not bins["v"] or not np.isfinite(step):
        return None
    k = np.arange(max(bins["h"]) + 1)
    dh = np.array([bins["h"].get(i, np.nan) for i in k])
    dv = np.array([bins["v"].get(i, np.nan) for i in k])
    if not (np.isfinite(dh).any() and np.isfinite(dv).any()):
        return None
    return {"freqs": k * step, "dh": dh, "dv": dv}


def pupil_head_motion(headpose_frames: pd.DataFrame) -> dict[str, Any]:
    """Frame-to-frame pupil and (smoothed) head movement, the series ``headpose__corr_vel_*`` correlate.

    Differences are taken within each gap-free piece of the ``headpose`` ``frames``
    signal (``piece`` >= 0), exactly as the features do. The eye columns are the ones the
    features used (``attrs["eye_columns"]`` of the signal; ``gaze_h``, ``gaze_v`` for
    signals written before ``headpose`` v6, when that was the default); ``eye_in_head`` in
    the result names the setting (None when not recorded).
    """
    t = headpose_frames
    eye_h, eye_v = t.attrs.get("eye_columns") or ("gaze_h", "gaze_v")
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("pupil_h", "head_h", "pupil_v", "head_v")}
    piece = t["piece"].to_numpy()
    for i in np.unique(piece[piece >= 0]):
        sel = piece == i
        out["pupil_h"].append(np.diff(t[eye_h].to_numpy(float)[sel]))
        out["pupil_v"].append(np.diff(t[eye_v].to_numpy(float)[sel]))
        out["head_h"].append(np.diff(t["yaw_s"].to_numpy(float)[sel]))
        out["head_v"].append(np.diff(t["pitch_s"].to_numpy(float)[sel]))
    res: dict = {k: (np.concatenate(v) if v else np.array([])) for k, v in out.items()}
    res["eye_in_head"] = t.attrs.get("eye_in_head")
    return res


@dataclass
class SpeechActivity:
    """Voice activity of a recording, as the timing features saw it.

    Attributes
    ----------
    intervals : list of (start, end)
        Detected speech, seconds.
    duration : float
        Length of the audio, seconds.
    analysed : list of (start, end) or None
        The patient's turns when a segments file was given (None: whole recording).
    pauses : list of (start, end)
        The pauses the timing features counted.
    level_gap_db : float
        Median frame level of speech minus that of non-speech frames (within the
        analysed time): a simple speech-to-background ratio (an SNR estimate).
    """

    intervals: list[tuple[float, float]]
    duration: float
    analysed: list[tuple[float, float]] | None
    pauses: list[tuple[float, float]]
    level_gap_db: float


def speech_activity(segments: pd.DataFrame, frames: pd.DataFrame | None) -> SpeechActivity:
    """Speech, pauses and the speech-to-background level from the ``timing`` signals."""
    seg = segments.reset_index()

    def spans(kind: str) -> list[tuple[float, float]]:
        s = seg[seg["kind"] == kind]
        return [(float(a), float(b)) for a, b in zip(s["start"], s["end"], strict=True)]

    rec = spans("recording")
    duration = max((b for _, b in rec), default=0.0)
    analysed = spans("analysed")
    gap = float("nan")
    if frames is not None and len(frames):
        inside = frames["analysed"].to_numpy(bool)
        speech = frames["speech"].to_numpy(bool)
        level = frames["level_db"].to_numpy(float)
        sp, bg = level[speech & inside], level[~speech & inside]
        gap = float(np.median(sp) - np.median(bg)) if sp.size and bg.size else float("nan")
    return SpeechActivity(spans("speech"), duration, analysed or None, spans("pause"), gap)


def expression_timeline(frames: pd.DataFrame) -> dict[str, Any] | None:
    """Read the expression timeline from the ``expr`` ``frames`` signal.

    Returns ``time``, one probability array per class (``probs``) and the class name after the
    majority vote per frame (``smoothed``; None for signals written before the timeline was
    smoothed), or None without probabilities.
    """
    probs = {c.removeprefix("prob_"): frames[c].to_numpy(float) for c in frames.columns if c.startswith("prob_")}
    if not probs:
        return None
    smoothed = frames["expression"].astype(str).to_numpy() if "expression" in frames.columns else None
    return {"time": frame_time(frames), "probs": probs, "smoothed": smoothed}


def plottable_columns(df: pd.DataFrame, limit: int = 6) -> list[str]:
    """Float columns of a per-frame signal worth a line each (flags and counters left out)."""
    return [c for c in df.columns if pd.api.types.is_float_dtype(df[c])][:limit]


__all__ = [
    "RecordingSignals",
    "SpeechActivity",
    "expression_timeline",
    "extractor_records",
    "frame_time",
    "key_feature_hints",
    "load_recording_signals",
    "plottable_columns",
    "pupil_head_motion",
    "pupil_spectra",
    "speech_activity",
]
