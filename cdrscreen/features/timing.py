"""Pause, phonation and speech-rate measures (``timing__*``) from an energy contour (numpy/scipy only).

Voice-activity detection (energy-based, :mod:`cdrscreen.features.vad`)
    Frame energy in dBFS over 25 ms windows every 10 ms (frames centred on ``t * hop``,
    zero-padded at the ends). A frame is speech when its level exceeds
    ``max(p99 - dynamic_range_db, p5 + noise_margin_db, floor_db)`` where ``p99``/``p5``
    are percentiles of the frame levels inside the analysed intervals (the noise-floor
    term is capped at ``p99 - 10 dB``). A signal whose level hardly varies
    (``p99 - p5 < min_dynamic_db``, 15 dB: stationary noise, a hum, a tone) is taken to
    contain no speech, since speech always alternates syllables and gaps. Speech runs shorter than ``min_speech_s`` are
    dropped (clicks), then silent gaps shorter than ``min_pause_s`` are bridged (stop
    closures, inter-word gaps).

Pauses
    A pause is a silent gap of at least ``min_pause_s`` (default 0.25 s) between two
    speech runs inside the same analysed interval (a patient turn, or the whole file
    when there are no speaker segments). Leading/trailing silence and the gaps between
    turns are not pauses. A gap of ``n`` silent frames lasts ``(n - 1) * hop + frame``
    seconds (each silent frame's window is entirely silent).

Speech-rate proxy (syllable nuclei)
    After de Jong & Wempe (2009): peaks of a 50 ms intensity contour that rise at least
    ``peak_prominence_db`` (2 dB) above the surrounding dips, lie at least 0.1 s apart,
    fall in speech frames, and are voiced (normalised autocorrelation >= 0.45 at a lag of
    60-400 Hz in a 40 ms window). Speech rate = nuclei / analysed seconds; articulation
    rate = nuclei / phonation seconds.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from cdrscreen.features.audio_input import Prepared, SpeechExtractor
from cdrscreen.features.segments import Intervals, intervals_to_mask, merge_intervals
from cdrscreen.features.vad import (
    VADParams,
    VADResult,
    detect_speech,
    frame_level_db,
    speech_runs_s,
)
from cdrscreen.features.vad import true_runs as _runs

#: Names (without prefix) of the timing features, in output order.
TIMING_FEATURES: tuple[str, ...] = (
    "analysed_s",
    "phonation_s",
    "phonation_ratio",
    "pause_count",
    "pause_rate_per_min",
    "pause_total_s",
    "pause_mean_s",
    "pause_median_s",
    "pause_std_s",
    "pause_max_s",
    "speech_to_pause_ratio",
    "speech_run_mean_s",
    "syllable_count",
    "speech_rate_syl_per_s",
    "articulation_rate_syl_per_s",
)


def pauses(vad: VADResult, intervals: Intervals | None, min_pause_s: float) -> np.ndarray:
    """Durations (s) of the pauses: silent gaps between speech runs within one interval."""
    iv = pause_intervals(vad, intervals, min_pause_s)
    return iv[:, 1] - iv[:, 0]


def pause_intervals(vad: VADResult, intervals: Intervals | None, min_pause_s: float) -> np.ndarray:
    """Return the ``(start, end)`` times (s) of the pauses.

    Silent frames ``i..j`` span ``[i * hop - frame / 2, j * hop + frame / 2]``.
    """
    runs = _runs(vad.speech)
    if len(runs) < 2:
        return np.zeros((0, 2))
    if intervals is None:
        turn = np.zeros(vad.times.size, dtype=int)
    else:
        iv = merge_intervals(intervals)
        turn = np.searchsorted(iv[:, 0], vad.times, side="right") - 1
    out = []
    for (_, e0), (s1, _) in zip(runs[:-1], runs[1:], strict=True):
        if turn[e0 - 1] != turn[s1]:
            continue  # the gap spans a turn boundary: not a pause
        start, end = e0 * vad.hop_s - vad.frame_s / 2, (s1 - 1) * vad.hop_s + vad.frame_s / 2
        if end - start >= min_pause_s - 1e-9:
            out.append((start, end))
    return np.asarray(out, dtype=float).reshape(-1, 2)


def _voiced(x: np.ndarray, sr: int, centre: int, threshold: float = 0.45) -> bool:
    half = int(0.02 * sr)
    seg = np.asarray(x[max(0, centre - half) : centre + half], dtype=np.float64)
    lo, hi = int(sr / 400), int(sr / 60)
    if seg.size < 2 * hi:
        return False
    seg = seg - seg.mean()
    n = 1 << int(np.ceil(np.log2(2 * seg.size)))
    spec = np.fft.rfft(seg, n)
    ac = np.fft.irfft(spec * np.conj(spec), n)[: seg.size]
    if ac[0] <= 0:
        return False
    # unbiased normalisation so long lags are not penalised
    norm = ac / ac[0] * seg.size / (seg.size - np.arange(seg.size))
    return bool(norm[lo:hi].max() >= threshold)


def syllable_nuclei(
    x: np.ndarray, sr: int, vad: VADResult, *, prominence_db: float = 2.0, min_distance_s: float = 0.1
) -> np.ndarray:
    """Return the times (s) of syllable nuclei: voiced intensity peaks in speech frames."""
    from scipy.signal import find_peaks

    hop = max(1, round(vad.hop_s * sr))
    level = frame_level_db(x, max(1, round(0.05 * sr)), hop)[: vad.speech.size]
    if not vad.speech.any():
        return np.zeros(0)
    peaks, _ = find_peaks(
        level,
        height=vad.threshold_db,
        prominence=prominence_db,
        distance=max(1, round(min_distance_s / vad.hop_s)),
    )
    peaks = peaks[vad.speech[peaks]]
    keep = [i for i in peaks if _voiced(x, sr, i * hop)]
    return vad.times[np.asarray(keep, dtype=int)]


def timing_features(
    x: np.ndarray,
    sr: int,
    intervals: Intervals | None = None,
    params: VADParams | None = None,
    vad: VADResult | None = None,
) -> tuple[dict[str, float], VADResult]:
    """Pause and rate measures of ``x`` restricted to ``intervals``.

    Returns
    -------
    features : dict
        Keys :data:`TIMING_FEATURES` (no prefix). Ratios whose denominator is zero
        (e.g. speech-to-pause ratio without pauses) are NaN.
    vad : VADResult
        The voice activity used (``vad`` if given, else computed with ``params``).
    """
    p = params or VADParams()
    if vad is None:
        vad = detect_speech(x, sr, intervals, p)
    if intervals is None:
        analysed = len(x) / sr
    else:
        iv = merge_intervals(intervals)
        iv = np.clip(iv, 0.0, len(x) / sr)
        analysed = float(np.sum(iv[:, 1] - iv[:, 0]))
    run_s = speech_runs_s(vad)
    phon = float(run_s.sum())
    ps = pauses(vad, intervals, p.min_pause_s)
    nuclei = syllable_nuclei(x, sr, vad)
    nan = float("nan")

    def div(a: float, b: float) -> float:
        return a / b if b > 0 else nan

    f = {
        "analysed_s": analysed,
        "phonation_s": phon,
        "phonation_ratio": div(phon, analysed),
        "pause_count": float(ps.size),
        "pause_rate_per_min": div(60.0 * ps.size, analysed),
        "pause_total_s": float(ps.sum()),
        "pause_mean_s": float(ps.mean()) if ps.size else nan,
        "pause_median_s": float(np.median(ps)) if ps.size else nan,
        "pause_std_s": float(ps.std()) if ps.size else nan,
        "pause_max_s": float(ps.max()) if ps.size else nan,
        "speech_to_pause_ratio": div(phon, float(ps.sum())),
        "speech_run_mean_s": float(run_s.mean()) if run_s.size else nan,
        "syllable_count": float(nuclei.size),
        "speech_rate_syl_per_s": div(nuclei.size, analysed),
        "articulation_rate_syl_per_s": div(nuclei.size, phon),
    }
    return f, vad


class TimingExtractor(SpeechExtractor):
    """Pause, phonation and speech-rate measures (``timing__``).

    Signals: ``segments``, indexed by ``(file, start, end)`` (seconds) with a ``kind``
    column: ``recording`` (the whole audio), ``analysed`` (the patient's turns, when a
    segments file is given), ``speech`` (the detected speech runs) and ``pause`` (exactly
    the pauses the features count); ``frames``, the detector's 10 ms frames indexed by
    ``(file, frame, time)``: ``level_db``, ``speech`` and ``analysed``.
    """

    name = "timing"
    prefix = "timing"
    signal_names: ClassVar[tuple[str, ...]] = ("segments", "frames")
    key_features: ClassVar[tuple[tuple[str, str], ...]] = (
        ("pause_rate_per_min", "pauses per minute"),
        ("pause_mean_s", "mean pause (s)"),
        ("speech_rate_syl_per_s", "speech rate (syllables/s)"),
        ("speech_to_pause_ratio", "speech-to-pause ratio"),
    )

    def feature_names(self) -> list[str]:
        """:data:`TIMING_FEATURES`."""
        return list(TIMING_FEATURES)

    def compute(self, prep: Prepared) -> dict[str, float]:
        """Compute timing features from the prepared signal's VAD."""
        feats, _ = timing_features(prep.x, prep.sr, prep.intervals, VADParams(), vad=prep.vad)
        return feats

    def signals_from_prepared(self, prep: Prepared, file: str) -> dict[str, pd.DataFrame]:
        """Speech, pause and analysed intervals, and the detector's frame levels."""
        vad = prep.vad
        rows = [("recording", 0.0, len(prep.x) / prep.sr)]
        if prep.intervals is not None:
            rows += [("analysed", float(a), float(b)) for a, b in prep.intervals]
        rows += [("speech", float(vad.times[a]), float(vad.times[b - 1] + vad.hop_s)) for a, b in _runs(vad.speech)]
        rows += [("pause", float(a), float(b))
                 for a, b in pause_intervals(vad, prep.intervals, VADParams().min_pause_s)]
        seg = pd.DataFrame(rows, columns=["kind", "start", "end"])
        seg.insert(0, "file", file)
        inside = (np.ones(vad.times.size, bool) if prep.intervals is None
                  else intervals_to_mask(prep.intervals, vad.times))
        frames = pd.DataFrame({"file": file, "frame": np.arange(vad.times.size), "time": vad.times,
                               "level_db": vad.level_db, "speech": vad.speech, "analysed": inside})
        return {"segments": seg.set_index(["file", "start", "end"]),
                "frames": frames.set_index(["file", "frame", "time"])}


__all__ = [
    "TIMING_FEATURES",
    "TimingExtractor",
    "VADParams",
    "VADResult",
    "detect_speech",
    "frame_level_db",
    "pause_intervals",
    "pauses",
    "speech_runs_s",
    "syllable_nuclei",
    "timing_features",
]
