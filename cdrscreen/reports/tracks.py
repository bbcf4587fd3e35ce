"""Per-recording time series for patient reports: face track, pupil spectrum, speech timing.

Reports never run face tracking by default: they reuse the per-frame tracks that
``cdrscreen extract`` cached (content-hash keyed, see :mod:`cdrscreen.features.face`).
When a track is not cached, the report says so instead of silently spending minutes
(``tracks="compute"`` computes missing ones). Speech timing is recomputed from the
audio with the speech extractor's own voice-activity detector (fast: milliseconds per
minute of audio).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Strides tried when looking a cached track up (extraction's ``--stride``).
_STRIDES = (1, 2, 3, 4, 5, 6, 8, 10)


@dataclass
class RecordingMedia:
    """Media files of one recording (None when unknown or missing)."""

    video: Path | None = None
    audio: Path | None = None
    segments: Path | None = None


def recording_media(files: Sequence[str], manifest_row: Any | None = None) -> RecordingMedia:
    """Locate a recording's media from the feature table's ``file`` entries or a manifest row.

    Parameters
    ----------
    files : sequence of str
        Values of the feature table's ``file`` index level for the recording.
    manifest_row : cdrscreen.study.Recording, optional
        The recording's manifest entry (preferred when given).
    """
    from cdrscreen.study import AUDIO_SUFFIXES, VIDEO_SUFFIXES

    media = RecordingMedia()
    if manifest_row is not None:
        media.video = _existing(getattr(manifest_row, "video", None))
        media.audio = _existing(getattr(manifest_row, "audio", None))
        media.segments = _existing(getattr(manifest_row, "segments", None))
    for f in files:
        p = _existing(f)
        if p is None:
            continue
        if p.suffix.lower() in VIDEO_SUFFIXES and media.video is None:
            media.video = p
        elif p.suffix.lower() in AUDIO_SUFFIXES and media.audio is None:
            media.audio = p
    if media.audio is None:
        media.audio = media.video
    return media


def _existing(p: str | os.PathLike[str] | None) -> Path | None:
    if p is None or (isinstance(p, float) and p != p) or str(p) in ("", "None", "nan"):
        return None
    path = Path(p)
    return path if path.is_file() else None


def cached_face_track(video: Path, cache_roots: Sequence[Path], compute: bool = False) -> Any | None:
    """The cached per-frame face track of ``video``, or None when no cache holds it.

    Parameters
    ----------
    video : Path
        The video file.
    cache_roots : sequence of Path
        Cache folders to look in (existing ones only), in order.
    compute : bool
        Track the video when no cached track is found (slow: MediaPipe on every frame).
    """
    try:
        from cdrscreen.cache import FeatureCache
        from cdrscreen.features import face
    except Exception:  # video extra not installed
        return None
    roots = [Path(r) for r in cache_roots if Path(r).is_dir()]
    for root in roots:
        cache = FeatureCache(root)
        if not (root / "facetrack").is_dir():
            continue
        for stride in _STRIDES:
            key = cache.key("facetrack", face.TrackConfig(stride=stride).as_dict(), [video])
            if cache.path_for("facetrack", key).exists():
                return face.load_track(video, stride=stride, cache=cache)
    if compute:
        return face.load_track(video, cache=roots[0] if roots else None)
    return None


def superposed_spectrum(signal: np.ndarray, fs: float, nperseg: int = 10,
                        noverlap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame-to-frame differences -> STFT -> magnitudes averaged over windows.

    Uses :func:`cdrscreen.features.pupil.superposed_stft` when available so that the
    plotted spectrum is the one the features summarise; otherwise the same recipe with
    :func:`scipy.signal.stft` (gaps are linearly interpolated first).
    """
    x = np.asarray(signal, float)
    ok = np.isfinite(x)
    if ok.sum() < nperseg + 1:
        return np.array([]), np.array([])
    idx = np.arange(x.size)
    x = np.interp(idx, idx[ok], x[ok])
    d = np.diff(x)
    try:
        from cdrscreen.features import pupil

        fn = getattr(pupil, "superposed_stft", None)
        if fn is not None:
            freqs, mag = fn(d, fs=fs, nperseg=nperseg)
            return np.asarray(freqs), np.asarray(mag)
    except Exception:
        pass
    from scipy.signal import stft

    freqs, _, z = stft(d, fs=fs, nperseg=nperseg, noverlap=noverlap, boundary=None, padded=False)
    return freqs, np.abs(z).mean(axis=1)


def track_series(track: Any) -> dict[str, np.ndarray]:
    """Arrays for the patient plots from a :class:`~cdrscreen.features.face.FaceTrack`."""
    t: pd.DataFrame = track.table
    out = {"time": t["time"].to_numpy(float), "success": t["success"].to_numpy(bool)}
    for c in ("gaze_h", "gaze_v", "yaw", "pitch", "roll", "confidence"):
        if c in t:
            out[c] = t[c].to_numpy(float)
    out["fps"] = np.asarray(track.track_fps)
    return out


def speech_intervals(audio: Path, segments: Path | None = None) -> tuple[list[tuple[float, float]], float] | None:
    """Speech intervals (s) of a recording's patient speech and the audio duration.

    Uses the speech extractor's voice-activity detector; returns None when the audio
    extra is not installed or the recording has no usable audio.
    """
    try:
        from cdrscreen.features import speech
        from cdrscreen.media.audio import load_audio
    except Exception:
        return None
    vad = getattr(speech, "speech_intervals", None) or getattr(speech, "vad_intervals", None)
    if vad is None:
        return None
    try:
        x, sr = load_audio(audio)
        iv = vad(x, sr)
    except Exception:
        return None
    iv = np.asarray(iv, float).reshape(-1, 2)
    if segments is not None:
        try:
            from cdrscreen.features.segments import patient_intervals, read_segments

            keep = np.asarray(patient_intervals(read_segments(segments)), float).reshape(-1, 2)
            iv = _intersect(iv, keep)
        except Exception:
            pass
    return [(float(a), float(b)) for a, b in iv], float(len(x) / sr)


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = []
    for s0, e0 in a:
        for s1, e1 in b:
            s, e = max(s0, s1), min(e0, e1)
            if e > s:
                out.append((s, e))
    return np.asarray(out, float).reshape(-1, 2)
