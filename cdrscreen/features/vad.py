"""Energy-based voice-activity detection shared by every speech group (numpy only).

Frame energy in dBFS over 25 ms windows every 10 ms (frames centred on ``t * hop``,
zero-padded at the ends). ``p99``/``p5`` are percentiles of the frame levels inside the
analysed intervals. Two thresholds:

* high: ``max(p99 - dynamic_range_db, min(p5 + noise_margin_db, p99 - 10), floor_db)``;
  frames above it are certainly speech;
* low: ``min(high, max(p99 - low_range_db, p5 + low_noise_margin_db))``; a run of frames
  above it is speech when it holds at least one frame above the high threshold
  (hysteresis, as in a Schmitt trigger).

The low threshold keeps the weak edges of words (final /t/ bursts, /f/, nasals, breathy
onsets: 25-45 dB below the vowels) that a single threshold cuts off, while staying
``low_noise_margin_db`` above the noise floor. Silent gaps shorter than ``min_pause_s``
are then bridged (stop closures, inter-word gaps), and only after that are speech runs
shorter than ``min_speech_s`` dropped (clicks), so a final stop burst after its closure
stays part of its word. A signal whose level hardly varies (``p99 - p5 <
min_dynamic_db``, 15 dB: stationary noise, a hum, a tone) is taken to contain no speech,
since speech always alternates syllables and gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cdrscreen.features.segments import Intervals, intervals_to_mask
from cdrscreen.media.audio_stream import AudioSignal


@dataclass(frozen=True)
class VADParams:
    """Parameters of :func:`detect_speech` (defaults suit 16 kHz interview audio).

    ``dynamic_range_db``, ``noise_margin_db`` and ``floor_db`` set the high threshold,
    ``low_range_db`` and ``low_noise_margin_db`` the low (hysteresis) one; see the
    module docstring.
    """

    frame_s: float = 0.025
    hop_s: float = 0.010
    dynamic_range_db: float = 30.0
    noise_margin_db: float = 6.0
    floor_db: float = -70.0
    low_range_db: float = 45.0
    low_noise_margin_db: float = 6.0
    min_dynamic_db: float = 15.0
    min_speech_s: float = 0.05
    min_pause_s: float = 0.25


@dataclass(frozen=True)
class VADResult:
    """Frame-level voice activity.

    Attributes
    ----------
    times : ndarray
        Frame centres in seconds (``i * hop / sr``).
    level_db : ndarray
        Frame energy in dBFS.
    speech : ndarray of bool
        Smoothed speech mask (restricted to the analysed intervals).
    threshold_db : float
        High threshold (dBFS); ``inf`` when nothing was analysed.
    hop_s, frame_s : float
    low_threshold_db : float
        Low (hysteresis) threshold (dBFS); NaN when no threshold was set.
    """

    times: np.ndarray
    level_db: np.ndarray
    speech: np.ndarray
    threshold_db: float
    hop_s: float
    frame_s: float
    low_threshold_db: float = float("nan")


class FrameEnergy:
    """Mean-square energy (dBFS) of centred frames ``i * hop``, fed a block at a time.

    Reproduces :func:`frame_level_db` of the whole signal exactly: the running sum is
    carried from block to block in the same order (``numpy.cumsum`` is sequential), so
    every frame's energy is the same difference of the same two partial sums.

    Parameters
    ----------
    frame, hop : int
        Frame length and hop in samples.
    n : int
        Length of the whole signal (samples), fixing the number of frames, ``1 + n // hop``.
    """

    def __init__(self, frame: int, hop: int, n: int) -> None:
        self.frame, self.hop, self.n_frames = int(frame), int(hop), 1 + int(n) // int(hop)
        self.out = np.empty(self.n_frames)
        self._cs = np.zeros(0)  # partial sums from index self._base on
        self._base = 0
        self._last = 0.0
        self._done = 0
        self._fed = 0
        self._feed_sq(np.zeros(self.frame // 2 + 1))

    def _feed_sq(self, sq: np.ndarray) -> None:
        cs = np.cumsum(np.concatenate([[self._last], sq]))[1:]
        self._last = float(cs[-1]) if cs.size else self._last
        self._cs = np.concatenate([self._cs, cs])
        self._fed += sq.size
        # frame i needs partial sums at i*hop and i*hop + frame (whole-signal indices)
        last = min(self.n_frames, (self._fed - 1 - self.frame) // self.hop + 1) if self._fed > self.frame else 0
        if last > self._done:
            starts = np.arange(self._done, last) * self.hop - self._base
            self.out[self._done:last] = (self._cs[starts + self.frame] - self._cs[starts]) / self.frame
            self._done = last
        keep_from = self._done * self.hop
        if keep_from > self._base:
            self._cs = self._cs[keep_from - self._base:]
            self._base = keep_from

    def feed(self, x: np.ndarray) -> None:
        """Add the next samples of the signal."""
        x = np.asarray(x, dtype=np.float64)
        self._feed_sq(x * x)

    def finish(self) -> np.ndarray:
        """Return the frame levels (dBFS) once the whole signal was fed."""
        self._feed_sq(np.zeros(self.frame))
        if self._done != self.n_frames:
            raise ValueError(f"fed {self._fed} padded samples, expected a signal of {self.n_frames} frames")
        return 10.0 * np.log10(self.out + 1e-12)


def frame_level_db(x: np.ndarray | AudioSignal, frame: int, hop: int) -> np.ndarray:
    """Mean-square energy (dBFS) of centred frames ``i * hop``; ``1 + len(x) // hop`` frames.

    ``x`` may be an array or an :class:`~cdrscreen.media.audio_stream.AudioSignal`
    (read in blocks; the result is the same).
    """
    if isinstance(x, AudioSignal):
        fe = FrameEnergy(frame, hop, len(x))
        for _, b in x.blocks():
            fe.feed(b)
        return fe.finish()
    x = np.asarray(x, dtype=np.float64)
    n_frames = 1 + len(x) // hop
    pad = frame // 2
    sq = np.concatenate([np.zeros(pad + 1), x * x, np.zeros(frame)])
    cs = np.cumsum(sq)
    starts = np.arange(n_frames) * hop
    energy = (cs[starts + frame] - cs[starts]) / frame
    return 10.0 * np.log10(energy + 1e-12)


def true_runs(mask: np.ndarray) -> np.ndarray:
    """``(start, stop)`` frame indices (stop exclusive) of the True runs of ``mask``."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.diff(m.astype(np.int8))
    return np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1)], axis=1)


def detect_speech(
    x: np.ndarray | AudioSignal, sr: int, intervals: Intervals | None = None, params: VADParams | None = None
) -> VADResult:
    """Energy-based voice-activity detection (see the module docstring).

    Parameters
    ----------
    x : ndarray or AudioSignal
        Mono signal (an :class:`~cdrscreen.media.audio_stream.AudioSignal` is read in blocks).
    sr : int
        Sample rate.
    intervals : (n, 2) array, optional
        Analysed time intervals in seconds (e.g. the patient's turns); frames outside
        are never speech. ``None`` analyses the whole signal.
    params : VADParams, optional
    """
    p = params or VADParams()
    frame, hop = max(1, round(p.frame_s * sr)), max(1, round(p.hop_s * sr))
    level = frame_level_db(x, frame, hop)
    times = np.arange(level.size) * hop / sr
    inside = np.ones(level.size, bool) if intervals is None else intervals_to_mask(intervals, times)
    if not inside.any():
        return VADResult(times, level, np.zeros(level.size, bool), np.inf, hop / sr, frame / sr)
    p99, p5 = np.percentile(level[inside], [99, 5])
    if p99 - p5 < p.min_dynamic_db:
        return VADResult(times, level, np.zeros(level.size, bool), float(p99), hop / sr, frame / sr)
    thr = max(p99 - p.dynamic_range_db, min(p5 + p.noise_margin_db, p99 - 10.0), p.floor_db)
    low = min(thr, max(p99 - p.low_range_db, p5 + p.low_noise_margin_db))
    core = (level > thr) & inside
    speech = np.zeros(level.size, bool)
    # hysteresis: a run above the low threshold is speech if it reaches the high one
    for s, e in true_runs((level > low) & inside):
        if core[s:e].any():
            speech[s:e] = True
    # bridge short gaps between speech runs, never across an interval boundary
    runs = true_runs(speech)
    for (_, e0), (s1, _) in zip(runs[:-1], runs[1:], strict=False):
        gap = (s1 - e0 - 1) * hop / sr + frame / sr
        if gap < p.min_pause_s and inside[e0:s1].all():
            speech[e0:s1] = True
    # then drop what is still too short to be speech (clicks)
    for s, e in true_runs(speech):
        if (e - s) * hop / sr < p.min_speech_s:
            speech[s:e] = False
    return VADResult(times, level, speech, float(thr), hop / sr, frame / sr, float(low))


def speech_runs_s(vad: VADResult) -> np.ndarray:
    """Durations (s) of the speech runs: ``m`` frames last ``m * hop - (frame - hop)``."""
    runs = true_runs(vad.speech)
    if not len(runs):
        return np.zeros(0)
    d = (runs[:, 1] - runs[:, 0]) * vad.hop_s - (vad.frame_s - vad.hop_s)
    return np.clip(d, vad.hop_s, None)


__all__ = ["FrameEnergy", "VADParams", "VADResult", "detect_speech", "frame_level_db", "speech_runs_s", "true_runs"]
