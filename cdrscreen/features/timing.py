"""Pause, phonation and speech-rate measures (``timing__*``) from an energy contour (numpy/scipy only).

Voice-activity detection (:mod:`cdrscreen.features.vad`)
    Energy-based, with two thresholds (hysteresis) so the weak edges of words (final
    /t/ bursts, /f/, nasals) stay speech; short gaps bridged before clicks are dropped.

Pauses and speech segments
    A pause is a silent gap of at least ``min_pause_s`` (default 0.25 s) between two
    speech runs inside the same analysed interval (a patient turn, or the whole file
    when there are no speaker segments). Leading/trailing silence and the gaps between
    turns are not pauses. Silent frames ``i..j`` span ``[i*hop - frame/2, j*hop + frame/2]``
    (each such frame's window is entirely silent), so a gap of ``n`` silent frames lasts
    ``(n - 1) * hop + frame`` seconds; a speech run is the complement, ``m`` frames last
    ``m * hop - (frame - hop)``. :func:`timing_tables` gives them per recording (``start``,
    ``end``, ``duration`` in seconds).

Speech-rate proxy (syllable nuclei)
    After de Jong & Wempe (2009): peaks of a 50 ms intensity contour of the signal
    band-passed to 300-3000 Hz (4th-order Butterworth, zero phase: the vowel formant
    region, where nasals and fricatives are weak) that stand at least
    ``prominence_db`` (3 dB) above the surrounding dips, lie at least 0.1 s apart and
    within 25 dB of the contour's 99th percentile over speech (de Jong & Wempe's silence
    threshold), fall in speech frames, and are voiced (normalised autocorrelation
    >= 0.45 at a lag of 60-400 Hz in a 40 ms window). Speech rate = nuclei / analysed
    seconds; articulation rate = nuclei / phonation seconds. Band, window and 3 dB were
    chosen on the real voice clips and espeak-ng voices of ``docs/validation-speech.md``.

Without any speech (silence, noise only) every measure except ``analysed_s`` and
``phonation_s`` (0.0) is NaN: zero pauses and zero syllables in silence are not
measurements.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from cdrscreen.features.audio_input import Prepared, SpeechExtractor
from cdrscreen.features.segments import Intervals, intervals_to_mask, merge_intervals
from cdrscreen.features.vad import (
    FrameEnergy,
    VADParams,
    VADResult,
    detect_speech,
    frame_level_db,
    speech_runs_s,
)
from cdrscreen.features.vad import true_runs as _runs
from cdrscreen.media.audio_stream import BLOCK, AudioSignal

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


def _voiced(x: np.ndarray | AudioSignal, sr: int, centre: int, threshold: float = 0.45) -> bool:
    half = int(0.02 * sr)
    lo_i = max(0, centre - half)
    seg = x.read(lo_i, centre + half) if isinstance(x, AudioSignal) else x[lo_i : centre + half]
    seg = np.asarray(seg, dtype=np.float64)
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


def sosfiltfilt_level_db(x: AudioSignal, sos: np.ndarray, frame: int, hop: int, folder: str | os.PathLike[str]) -> np.ndarray:
    """:func:`~cdrscreen.features.vad.frame_level_db` of ``sosfiltfilt(sos, x)``, in blocks.

    Exactly :func:`scipy.signal.sosfiltfilt` (odd extension, ``sosfilt_zi`` initial
    states): the forward pass is run block by block with its state carried and written
    to a float64 file in ``folder``; the backward pass reads it from the end, block by
    block, and overwrites each block with its result; the frame energies are then
    accumulated from the start.
    """
    from scipy.signal import sosfilt, sosfilt_zi

    n = len(x)
    n_sections = sos.shape[0]
    ntaps = 2 * n_sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    edge = 3 * ntaps
    if n <= edge:
        raise ValueError(f"The length of the input vector x must be greater than padlen, which is {edge}.")
    zi0 = sosfilt_zi(sos)
    head = x.read(0, edge + 1).astype(np.float64)
    tail = x.read(n - edge - 1, n).astype(np.float64)
    left = 2 * head[0] - head[edge:0:-1]
    right = 2 * tail[-1] - tail[-2::-1]
    path = Path(folder) / "filtfilt.f64"
    total = n + 2 * edge
    zi = None
    with open(path, "wb") as fh:
        def forward(block: np.ndarray) -> None:
            nonlocal zi
            if zi is None:
                zi = zi0 * block[0]
            y, zi = sosfilt(sos, block, zi=zi)
            y.astype("<f8", copy=False).tofile(fh)
        forward(left)
        for _, b in x.blocks():
            forward(b.astype(np.float64))
        forward(right)
    step = BLOCK
    with open(path, "r+b") as fh:
        zi = None
        for stop in range(total, 0, -step):
            start = max(0, stop - step)
            fh.seek(8 * start)
            y = np.fromfile(fh, dtype="<f8", count=stop - start)[::-1]
            if zi is None:
                zi = zi0 * y[0]
            z, zi = sosfilt(sos, y, zi=zi)
            fh.seek(8 * start)
            z[::-1].astype("<f8").tofile(fh)
    fe = FrameEnergy(frame, hop, n)
    with open(path, "rb") as fh:
        fh.seek(8 * edge)
        left_n = n
        while left_n > 0:
            k = min(step, left_n)
            fe.feed(np.fromfile(fh, dtype="<f8", count=k))
            left_n -= k
    path.unlink()
    return fe.finish()


@dataclass(frozen=True)
class NucleiParams:
    """Parameters of :func:`syllable_nuclei` (see the module docstring)."""

    band_hz: tuple[float, float] = (300.0, 3000.0)
    window_s: float = 0.05
    prominence_db: float = 3.0
    min_distance_s: float = 0.1
    silence_db: float = 25.0


def syllable_nuclei(
    x: np.ndarray | AudioSignal, sr: int, vad: VADResult, params: NucleiParams | None = None
) -> np.ndarray:
    """Return the times (s) of syllable nuclei: voiced intensity peaks in speech frames.

    ``x`` may be an :class:`~cdrscreen.media.audio_stream.AudioSignal`: it is then
    band-passed and measured in blocks (a temporary float64 file holds the filter's
    intermediate output), with the same result.
    """
    from scipy.signal import butter, find_peaks, sosfiltfilt

    p = params or NucleiParams()
    if not vad.speech.any():
        return np.zeros(0)
    hop = max(1, round(vad.hop_s * sr))
    lo, hi = p.band_hz
    hi = min(hi, 0.45 * sr)
    win = max(1, round(p.window_s * sr))
    sos = butter(4, (lo, hi), btype="band", fs=sr, output="sos")
    if isinstance(x, AudioSignal) and len(x) > 30:
        with tempfile.TemporaryDirectory(prefix="cdrscreen-nuclei-") as folder:
            level = sosfiltfilt_level_db(x, sos, win, hop, folder)
    else:
        y = np.asarray(x.to_array() if isinstance(x, AudioSignal) else x, dtype=np.float64)
        if y.size > 30:
            y = sosfiltfilt(sos, y)
        level = frame_level_db(y, win, hop)
    level = level[: vad.speech.size]
    speech = vad.speech[: level.size]
    peaks, _ = find_peaks(level, prominence=p.prominence_db, distance=max(1, round(p.min_distance_s / vad.hop_s)))
    peaks = peaks[speech[peaks]]
    peaks = peaks[level[peaks] > np.percentile(level[speech], 99) - p.silence_db]
    keep = [i for i in peaks if _voiced(x, sr, i * hop)]
    return vad.times[np.asarray(keep, dtype=int)]


def speech_segment_intervals(vad: VADResult) -> np.ndarray:
    """Return the ``(start, end)`` times (s) of the speech runs (complement of silent frames).

    Frames ``s..e-1`` span ``[(s-1)*hop + frame/2, e*hop - frame/2]`` clipped to the
    signal, where the silent frames around them end and begin.
    """
    runs = _runs(vad.speech)
    if not len(runs):
        return np.zeros((0, 2))
    end_s = (vad.speech.size - 1) * vad.hop_s
    start = np.clip((runs[:, 0] - 1) * vad.hop_s + vad.frame_s / 2, 0.0, end_s)
    end = np.clip(runs[:, 1] * vad.hop_s - vad.frame_s / 2, 0.0, end_s)
    end = np.maximum(end, start + vad.hop_s)
    return np.stack([start, end], axis=1)


def _table(iv: np.ndarray) -> pd.DataFrame:
    iv = np.asarray(iv, dtype=float).reshape(-1, 2)
    return pd.DataFrame({"start": iv[:, 0], "end": iv[:, 1], "duration": iv[:, 1] - iv[:, 0]})


def pause_table(vad: VADResult, intervals: Intervals | None = None, min_pause_s: float = 0.25) -> pd.DataFrame:
    """One row per pause: ``start``, ``end``, ``duration`` in seconds (see :func:`pause_intervals`)."""
    return _table(pause_intervals(vad, intervals, min_pause_s))


def speech_segment_table(vad: VADResult) -> pd.DataFrame:
    """One row per speech segment: ``start``, ``end``, ``duration`` in seconds."""
    return _table(speech_segment_intervals(vad))


def timing_tables(
    x: np.ndarray, sr: int, intervals: Intervals | None = None, params: VADParams | None = None
) -> dict[str, pd.DataFrame]:
    """Per-recording tables behind the timing features: ``{"pauses": ..., "speech_segments": ...}``.

    Both have columns ``start``, ``end``, ``duration`` (seconds from the start of ``x``).
    Silence gives two empty tables.
    """
    p = params or VADParams()
    vad = detect_speech(x, sr, intervals, p)
    return {"pauses": pause_table(vad, intervals, p.min_pause_s), "speech_segments": speech_segment_table(vad)}


def timing_features(
    x: np.ndarray | AudioSignal,
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
        (e.g. speech-to-pause ratio without pauses) are NaN; without any speech every
        value but ``analysed_s`` and ``phonation_s`` is NaN.
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
    nan = float("nan")
    if not run_s.size:
        f = dict.fromkeys(TIMING_FEATURES, nan)
        f.update(analysed_s=analysed, phonation_s=0.0)
        return f, vad
    ps = pauses(vad, intervals, p.min_pause_s)
    nuclei = syllable_nuclei(x, sr, vad)

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

    Signals: ``segments``, indexed by ``(file, start, end)`` (seconds) with columns
    ``kind`` and ``duration``: ``recording`` (the whole audio), ``analysed`` (the
    patient's turns, when a segments file is given), ``speech`` (the speech segments of
    :func:`speech_segment_intervals`, whose durations sum to ``phonation_s``) and
    ``pause`` (exactly the pauses the features count, :func:`pause_intervals`); the
    speech and pause rows share their boundaries. ``frames``, the detector's 10 ms
    frames indexed by ``(file, frame, time)``: ``level_db``, ``speech`` and ``analysed``.
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
        feats, _ = timing_features(prep.signal(), prep.sr, prep.intervals, self.vad_params(), vad=prep.vad)
        return feats

    def signals_from_prepared(self, prep: Prepared, file: str) -> dict[str, pd.DataFrame]:
        """Speech, pause and analysed intervals, and the detector's frame levels."""
        vad = prep.vad
        rows = [("recording", 0.0, len(prep.x) / prep.sr)]
        if prep.intervals is not None:
            rows += [("analysed", float(a), float(b)) for a, b in prep.intervals]
        rows += [("speech", float(a), float(b)) for a, b in speech_segment_intervals(vad)]
        rows += [("pause", float(a), float(b))
                 for a, b in pause_intervals(vad, prep.intervals, self.min_pause_s)]
        seg = pd.DataFrame(rows, columns=["kind", "start", "end"])
        seg["duration"] = seg["end"] - seg["start"]
        seg.insert(0, "file", file)
        n = vad.times.size
        inside = np.ones(n, bool) if prep.intervals is None else intervals_to_mask(prep.intervals, vad.times)
        # the index built from its levels directly (times are increasing and distinct):
        # no per-row Python objects and no hashing, which matter for an hour of 10 ms frames
        index = pd.MultiIndex(levels=[pd.Index([file], dtype=object), np.arange(n), vad.times],
                              codes=[np.zeros(n, np.int8), np.arange(n), np.arange(n)],
                              names=["file", "frame", "time"], verify_integrity=False)
        frames = pd.DataFrame({"level_db": vad.level_db, "speech": vad.speech, "analysed": inside}, index=index)
        return {"segments": seg.set_index(["file", "start", "end"]), "frames": frames}


__all__ = [
    "TIMING_FEATURES",
    "NucleiParams",
    "TimingExtractor",
    "VADParams",
    "VADResult",
    "detect_speech",
    "frame_level_db",
    "pause_intervals",
    "pause_table",
    "pauses",
    "speech_runs_s",
    "speech_segment_intervals",
    "speech_segment_table",
    "syllable_nuclei",
    "timing_features",
    "timing_tables",
]
