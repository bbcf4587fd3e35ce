"""Per-recording time series for patient reports: face track, pupil spectrum, speech timing.

Reports never run face tracking by default: they reuse the per-frame tracks that
``cdrscreen extract`` cached (content-hash keyed, see :mod:`cdrscreen.tracking.face`).
When a track is not cached, the report says so instead of silently spending minutes
(``tracks="compute"`` computes missing ones). Speech timing is recomputed from the
audio with the timing extractor's own voice-activity detector (fast: milliseconds per
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
#: ``max_faces`` values tried (extraction's default first).
_MAX_FACES = (2, 1, 3, 4)


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
    """Return the cached per-frame face track of ``video``, or None when no cache holds it.

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
        from cdrscreen.tracking import face
    except Exception:  # video extra not installed
        return None
    roots = [Path(r) for r in cache_roots if Path(r).is_dir()]
    for root in roots:
        cache = FeatureCache(root)
        if not (root / "facetrack").is_dir():
            continue
        for max_faces in _MAX_FACES:
            for stride in _STRIDES:
                cfg = face.TrackConfig(stride=stride, max_faces=max_faces)
                key = cache.key("facetrack", cfg.as_dict(), [video])
                if cache.path_for("facetrack", key).exists():
                    return face.load_track(video, stride=stride, max_faces=max_faces, cache=cache)
    if compute:
        return face.load_track(video, cache=roots[0] if roots else None)
    return None


def pupil_spectra(track: Any, nperseg: int = 10, noverlap: int = 5) -> dict[str, np.ndarray] | None:
    """Superposed STFT spectra of the eye-relative pupil motion, as the pupil features do.

    Frames where the face is lost or the eyes are closed are gaps; short gaps
    (<= 0.25 s) are interpolated and longer ones split the signal
    (:func:`cdrscreen.tracking.gaps.split_signals`), then
    :func:`cdrscreen.features.pupil.superposed_spectrum` averages the STFT magnitudes of
    ``dx``/``dy`` over all windows. Returns ``freqs``, ``dx`` and ``dy`` arrays, or None
    when no piece is long enough.
    """
    from cdrscreen.features.pupil import superposed_spectrum
    from cdrscreen.tracking.gaps import split_signals

    t = track.table
    fs = float(track.track_fps)
    usable = t["success"].to_numpy(bool)
    if "blink" in t:
        usable &= ~t["blink"].to_numpy(bool)
    pieces = split_signals({"h": t["gaze_h"].to_numpy(float), "v": t["gaze_v"].to_numpy(float)},
                           usable, int(np.floor(0.25 * fs)), min_len=2)
    out: dict[str, np.ndarray] = {}
    for ax in ("h", "v"):
        freqs, spec, n = superposed_spectrum([np.diff(p[ax]) for p in pieces], fs,
                                             nperseg=nperseg, noverlap=noverlap)
        if n == 0:
            return None
        out["freqs"], out[f"d{ax}"] = freqs, spec
    return out


def pupil_head_motion(track: Any) -> dict[str, np.ndarray]:
    """Frame-to-frame pupil (eye-relative) and head (smoothed angle) movement per axis.

    Same frames and smoothing as the ``headpose__corr_vel_*`` features: tracked frames
    without blinks, gaps split as in the extractors, head angles smoothed with the head
    pose extractor's default window.
    """
    from cdrscreen.features.headpose import HeadPoseExtractor, smooth
    from cdrscreen.tracking.gaps import split_signals

    t = track.table
    fs = float(track.track_fps)
    hp = HeadPoseExtractor()
    both = t["success"].to_numpy(bool)
    if "blink" in t:
        both &= ~t["blink"].to_numpy(bool)
    win = max(1, int(round(hp.smooth_s * fs)) | 1)
    sig = {k: t[k].to_numpy(float) for k in ("gaze_h", "gaze_v", "yaw", "pitch")}
    pieces = split_signals(sig, both, int(np.floor(hp.max_gap_s * fs)), min_len=3)
    out = {k: [] for k in ("pupil_h", "head_h", "pupil_v", "head_v")}
    for p in pieces:
        out["pupil_h"].append(np.diff(p["gaze_h"]))
        out["pupil_v"].append(np.diff(p["gaze_v"]))
        out["head_h"].append(np.diff(smooth(p["yaw"], win)))
        out["head_v"].append(np.diff(smooth(p["pitch"], win)))
    return {k: (np.concatenate(v) if v else np.array([])) for k, v in out.items()}


def track_series(track: Any) -> dict[str, np.ndarray]:
    """Arrays for the patient plots from a :class:`~cdrscreen.tracking.face.FaceTrack`."""
    t: pd.DataFrame = track.table
    out = {"time": t["time"].to_numpy(float), "success": t["success"].to_numpy(bool)}
    for c in ("gaze_h", "gaze_v", "yaw", "pitch", "roll", "confidence"):
        if c in t:
            out[c] = t[c].to_numpy(float)
    out["fps"] = np.asarray(track.track_fps)
    return out


@dataclass
class SpeechActivity:
    """Voice activity of a recording's analysed (patient) audio.

    Attributes
    ----------
    intervals : list of (start, end)
        Detected speech, seconds.
    duration : float
        Length of the audio, seconds.
    analysed : list of (start, end) or None
        The patient's turns when a segments file was given (None: whole recording).
    level_gap_db : float
        Median frame level of speech minus that of non-speech frames (within the
        analysed time): a simple speech-to-background ratio (an SNR estimate).
    """

    intervals: list[tuple[float, float]]
    duration: float
    analysed: list[tuple[float, float]] | None
    level_gap_db: float


def speech_activity(audio: Path, segments: Path | None = None) -> SpeechActivity | None:
    """Detect speech with the timing extractor's own detector.

    :func:`cdrscreen.features.timing.detect_speech` with default parameters, restricted
    to the patient's turns when a segments file is given. None when the audio extra is
    missing or the audio cannot be read.
    """
    try:
        from cdrscreen.features.vad import detect_speech
        from cdrscreen.features.vad import true_runs as _runs
        from cdrscreen.media.audio import load_audio
    except Exception:
        return None
    try:
        x, sr = load_audio(audio)
    except Exception:
        return None
    analysed = None
    if segments is not None:
        try:
            from cdrscreen.features.segments import patient_intervals, read_segments

            analysed = np.asarray(patient_intervals(read_segments(segments)), float).reshape(-1, 2)
        except Exception:
            analysed = None
    vad = detect_speech(x, sr, analysed)
    runs = _runs(vad.speech)
    iv = [(float(vad.times[a]), float(vad.times[b - 1] + vad.hop_s)) for a, b in runs]
    inside = np.ones(vad.speech.size, bool)
    if analysed is not None:
        from cdrscreen.features.segments import intervals_to_mask

        inside = intervals_to_mask(analysed, vad.times)
    sp, bg = vad.level_db[vad.speech & inside], vad.level_db[~vad.speech & inside]
    gap = float(np.median(sp) - np.median(bg)) if sp.size and bg.size else float("nan")
    return SpeechActivity(iv, float(len(x) / sr),
                          None if analysed is None else [(float(a), float(b)) for a, b in analysed], gap)


def expression_timeline(track: Any, embedder: Path, every: int = 5) -> dict[str, Any] | None:
    """Per-frame expression probabilities of a tracked video from an exported embedder.

    Runs :func:`cdrscreen.features.expression.embed_track` (aligned face crops of every
    ``every``-th tracked frame through the ONNX embedder, as the ``expr`` features do).
    Returns ``time`` and one probability array per class, or None when onnxruntime is
    missing or the embedder cannot be used.
    """
    try:
        from cdrscreen.features.expression import Embedder, embed_track

        table = embed_track(track, Embedder(embedder), every=every)
    except Exception:
        return None
    probs = {c.removeprefix("prob_"): table[c].to_numpy(float) for c in table.columns if c.startswith("prob_")}
    if not probs:
        return None
    return {"time": table.index.get_level_values("time").to_numpy(float), "probs": probs}
