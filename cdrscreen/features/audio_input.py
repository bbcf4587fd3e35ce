"""Shared audio preparation of the speech groups (``mfcc``, ``gemaps``, ``egemaps``, ``timing``).

:class:`SpeechExtractor` is the base of the speech extractors (one module per group:
:mod:`~cdrscreen.features.mfcc`, :mod:`~cdrscreen.features.gemaps`,
:mod:`~cdrscreen.features.timing`). Every speech extractor follows the same steps (details in ``docs/features-speech.md``):

1. decode the recording's audio to disk once (:func:`cdrscreen.media.audio_stream.decoded`:
   mono, the same samples as :func:`cdrscreen.media.audio.load_audio`, at ``sr`` = 16 kHz
   by default for the VAD, MFCC and timing; GeMAPS/eGeMAPS see the file's own sample rate
   unless ``opensmile_sr`` is set) and read it back in blocks, so memory does not grow
   with the recording's length; or take a signal given in memory to
   :meth:`SpeechExtractor.process_signal`;
2. measure quality: the fraction of clipped samples, and the DC offset, which is
   subtracted when larger than ``dc_threshold``;
3. choose the analysed time: the patient's segments when a speaker-segments file (RTTM
   or CSV) is given (label ``patient``, time overlapped by other speakers removed),
   otherwise the whole recording;
4. detect speech (energy VAD, :mod:`cdrscreen.features.vad`) inside that time;
5. if at least ``min_speech_s`` of speech was found, compute the group's features;
   otherwise every feature is NaN and ``quality_ok`` is 0.

Each output row also carries the quality columns :data:`QUALITY_COLUMNS`, prefixed like
the features: ``quality_ok`` (1.0/0.0), ``speech_seconds``, ``patient_only`` (1.0 when
the features were computed on the patient's segments only), ``clipped_fraction``,
``dc_offset``, ``source_sr`` (the recording's own sample rate: audio recorded below
``sr``, e.g. 8 kHz telephone audio, has no content above ``source_sr / 2`` although it is
resampled to ``sr``, so its features are computed but ``quality_ok`` is 0), and the three
warning columns ``quality_no_speech`` (1.0 when less than ``min_speech_s`` of speech was
found), ``quality_low_sr`` (1.0 when ``source_sr`` < 16 kHz) and ``quality_audio_s``
(seconds of audio in the file). Drop them (e.g. with :func:`feature_columns`) before
modelling.

>>> from cdrscreen.features import get_extractor
>>> get_extractor("egemaps").process_file("S01.mp4", segments="S01.rttm")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.core.errors import InputError
from cdrscreen.features.base import Extractor
from cdrscreen.features.segments import (
    DEFAULT_PATIENT,
    Intervals,
    merge_intervals,
    patient_intervals,
    read_segments,
)
from cdrscreen.features.vad import VADParams, VADResult, detect_speech, speech_runs_s
from cdrscreen.media.audio import DEFAULT_SR, resample
from cdrscreen.media.audio_stream import AudioSignal, decoded
from cdrscreen.study import Recording

#: Quality columns (without prefix) every speech extractor adds to its row.
QUALITY_COLUMNS: tuple[str, ...] = (
    "quality_ok", "speech_seconds", "patient_only", "clipped_fraction", "dc_offset", "source_sr",
    "quality_no_speech", "quality_low_sr", "quality_audio_s",
)

#: Below this source sample rate (Hz) ``quality_low_sr`` is set: no wide-band speech content.
LOW_SAMPLE_RATE_HZ = 16000

Segments = pd.DataFrame | np.ndarray | Sequence[Sequence[float]] | str | os.PathLike[str] | None


def feature_columns(df: pd.DataFrame) -> list[str]:
    """Columns of ``df`` that are features (not speech quality columns)."""
    return [c for c in df.columns if str(c).split("__", 1)[-1] not in QUALITY_COLUMNS]


def speech_warnings(row: pd.Series) -> list[str]:
    """Warning texts of one feature-table row from its speech ``quality_*`` columns.

    Reads ``<group>__quality_no_speech`` and ``<group>__quality_low_sr`` (with
    ``<group>__source_sr``) of whichever speech groups the row has; every speech group
    carries the same values, so each warning appears once. Returns e.g.
    ``["no speech found", "audio sample rate 8000 Hz is below 16 kHz"]``; empty when all
    is well or the row has no speech group. (Audio against video duration needs the
    video's length: ``<group>__quality_audio_s`` holds the audio's.)
    """
    out: list[str] = []
    cols = [str(c) for c in row.index]
    for c in cols:
        if c.endswith("__quality_no_speech") and row[c] == 1.0 and "no speech found" not in out:
            out.append("no speech found")
    for c in cols:
        if c.endswith("__quality_low_sr") and row[c] == 1.0:
            sr = row.get(c.replace("__quality_low_sr", "__source_sr"), np.nan)
            text = (f"audio sample rate {sr:.0f} Hz is below 16 kHz" if np.isfinite(sr)
                    else "audio sample rate is below 16 kHz")
            if text not in out:
                out.append(text)
    return out


def clipped_fraction(x: np.ndarray) -> float:
    """Fraction of samples that sit on a clipping plateau.

    A sample counts as clipped when its magnitude is within 2% of the signal's peak and
    it equals a neighbouring sample exactly (flat tops are what clipping produces;
    unclipped speech at 16 kHz never repeats a peak value).
    """
    x = np.asarray(x)
    if x.size < 2:
        return 0.0
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        return 0.0
    near = np.abs(x) >= 0.98 * peak
    flat = np.zeros(x.size, dtype=bool)
    eq = x[1:] == x[:-1]
    flat[1:] |= eq
    flat[:-1] |= eq
    return float(np.mean(near & flat))


class SignalStats:
    """Clipped fraction and mean of a signal fed block by block.

    The clipped fraction equals :func:`clipped_fraction` of the whole signal: a sample's
    flatness is decided once its right neighbour is seen, and only flat samples within
    2% of the running peak are kept (the running peak never exceeds the final one, so
    no sample that counts is dropped); they are counted against the final peak at the
    end. The mean is a float64 sum of block sums (equal to ``numpy.mean`` of the whole
    signal up to rounding).
    """

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.peak = 0.0
        self._prev: np.ndarray | None = None  # the last sample, its flatness undecided
        self._prev_left_eq = False
        self._cand = np.zeros(0, np.float32)

    def _keep(self, values: np.ndarray) -> None:
        self._cand = np.concatenate([self._cand, values.astype(np.float32)])
        self._cand = self._cand[self._cand >= 0.98 * self.peak]

    def feed(self, x: np.ndarray) -> None:
        """Add the next samples."""
        x = np.asarray(x, dtype=np.float32)
        if not x.size:
            return
        self.total += float(np.sum(x, dtype=np.float64))
        self.n += x.size
        self.peak = max(self.peak, float(np.max(np.abs(x))))
        ext = x if self._prev is None else np.concatenate([self._prev, x])
        eq = ext[1:] == ext[:-1]
        left = np.concatenate([[self._prev_left_eq if self._prev is not None else False], eq])
        right = np.concatenate([eq, [False]])
        flat = (left | right)[:-1]
        mag = np.abs(ext[:-1])
        self._keep(mag[flat & (mag >= 0.98 * self.peak)])
        self._prev, self._prev_left_eq = ext[-1:].copy(), bool(left[-1])

    def clipped_fraction(self) -> float:
        """Fraction of clipped samples of everything fed."""
        if self.n < 2 or self.peak <= 0:
            return 0.0
        cand = self._cand
        if self._prev is not None and self._prev_left_eq:
            cand = np.concatenate([cand, np.abs(self._prev)])
        return float(np.count_nonzero(cand >= 0.98 * self.peak)) / self.n

    def mean(self) -> float:
        """Mean of everything fed (0.0 for nothing)."""
        return self.total / self.n if self.n else 0.0


@dataclass(frozen=True)
class Prepared:
    """A signal ready for feature computation (see :meth:`SpeechExtractor.prepare`).

    ``x`` is the signal at the extractor's ``sr``; ``native`` the same audio (same DC
    correction) at the rate it was given in, ``native_sr``. Both are
    :class:`~cdrscreen.media.audio_stream.AudioSignal`: in memory for a signal given in
    memory, on disk (read in blocks) for a decoded file.
    """

    x: AudioSignal
    sr: int
    intervals: Intervals | None
    vad: VADResult
    speech_seconds: float
    clipped_fraction: float
    dc_offset: float
    native: AudioSignal | None = None
    native_sr: int | None = None

    def signal(self) -> np.ndarray | AudioSignal:
        """``x`` as an array when it is in memory, else the on-disk signal (read in blocks)."""
        return self.x.to_array() if self.x.array is not None else self.x

    def analysed_blocks(self, native: bool = False) -> Iterator[np.ndarray]:
        """Yield the signal restricted to the analysed intervals, in time order, in blocks.

        ``native=True`` cuts the signal at its given rate instead of at ``sr``.
        """
        x = self.native if native and self.native is not None else self.x
        if self.intervals is None:
            for _, block in x.blocks():
                yield block
            return
        for s, e in self.intervals:
            for _, block in x.blocks(start=int(round(s * x.sr)), stop=int(round(e * x.sr))):
                yield block

    def analysed_signal(self, native: bool = False) -> tuple[np.ndarray, int]:
        """Return the signal (and its rate) restricted to the analysed intervals, in memory."""
        x = self.native if native and self.native is not None else self.x
        parts = list(self.analysed_blocks(native))
        return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), x.sr


class SpeechParams(StrictModel):
    """Audio settings every speech group takes (spec section ``audio``, or per group)."""

    sr: int = Field(DEFAULT_SR, ge=1000, description="Sample rate every feature is computed at.")
    patient: str = Field(DEFAULT_PATIENT, description="Speaker label of the patient in segments files.")
    exclude_overlap: bool = Field(True, description="Drop time where another speaker overlaps the patient.")
    max_gap_s: float = Field(float("inf"), ge=0, description="Silence within the patient's turn, at most this long.")
    min_speech_s: float = Field(1.0, ge=0, description="Less detected speech gives NaN features.")
    min_pause_s: float = Field(0.25, gt=0, description="Shortest silence that is a pause (shorter gaps are bridged).")
    max_clipped: float = Field(0.01, ge=0, le=1, description="Clipped fraction above this sets quality_ok = 0.")
    dc_threshold: float = Field(1e-3, ge=0, description="A DC offset larger than this is subtracted.")


class SpeechExtractor(Extractor):
    """Common behaviour of the speech extractors (not registered itself).

    Parameters
    ----------
    sr : int, default 16000
        Sample rate every feature is computed at.
    patient : str, default "patient"
        Speaker label of the patient in segments files.
    exclude_overlap : bool, default True
        Drop time where another speaker overlaps the patient.
    max_gap_s : float, default inf
        Silence between two patient segments with no other speaker in between is part
        of the patient's turn (a pause) when at most this long.
    min_speech_s : float, default 1.0
        Less detected speech than this gives NaN features and ``quality_ok = 0``.
    min_pause_s : float, default 0.25
        Shortest silence the voice-activity detector keeps as a gap: shorter gaps are
        bridged (speech for MFCC), longer ones inside a turn are the timing group's pauses.
    max_clipped : float, default 0.01
        A clipped fraction above this sets ``quality_ok = 0`` (features are still computed).
        So does a source sample rate below ``sr`` (band-limited audio).
    dc_threshold : float, default 1e-3
        A DC offset (signal mean) larger than this is subtracted first.
    """

    prefix: ClassVar[str]
    #: 2: ``source_sr`` quality column; band-limited audio sets ``quality_ok = 0``.
    #: 3: two-threshold VAD, ``quality_no_speech`` / ``quality_low_sr`` / ``quality_audio_s``,
    #: openSMILE at the file's own rate.
    version: ClassVar[int] = 3
    Params: ClassVar[type[StrictModel]] = SpeechParams
    shared: ClassVar[str | None] = "audio"
    #: Whether :meth:`compute` needs the signal at its native rate (openSMILE groups).
    needs_native: ClassVar[bool] = False

    def __init__(
        self,
        *,
        sr: int = DEFAULT_SR,
        patient: str = DEFAULT_PATIENT,
        exclude_overlap: bool = True,
        max_gap_s: float = float("inf"),
        min_speech_s: float = 1.0,
        min_pause_s: float = 0.25,
        max_clipped: float = 0.01,
        dc_threshold: float = 1e-3,
    ) -> None:
        self.sr = sr
        self.patient = patient
        self.exclude_overlap = exclude_overlap
        self.max_gap_s = max_gap_s
        self.min_speech_s = min_speech_s
        self.min_pause_s = min_pause_s
        self.max_clipped = max_clipped
        self.dc_threshold = dc_threshold

    def vad_params(self) -> VADParams:
        """Voice-activity settings of this extractor (defaults, and its ``min_pause_s``)."""
        return VADParams(min_pause_s=self.min_pause_s)

    # -- what subclasses provide ------------------------------------------------------
    def feature_names(self) -> list[str]:
        """Names of the group's features, without prefix, in output order."""
        raise NotImplementedError

    def compute(self, prep: Prepared) -> dict[str, float]:
        """Compute the group's features of a prepared signal (enough speech guaranteed)."""
        raise NotImplementedError

    def signals_from_prepared(self, prep: Prepared, file: str) -> dict[str, pd.DataFrame]:
        """Return the signals of a prepared signal, indexed by ``(file, frame, time)`` or ``(file, start, end)`` (default: none)."""
        return {}

    # -- contract ------------------------------------------------------------------
    def inputs(self, rec: Recording) -> list[Path | None]:
        """Return the audio source and the speaker-segments file (both are in the cache key)."""
        return [rec.audio_source, rec.segments]

    def process_recording(self, rec: Recording) -> pd.DataFrame:
        """Features of a manifest row: its audio source, restricted by its segments file."""
        if rec.audio_source is None:
            raise InputError(f"{rec.subject}/{rec.session}", "recording has no video or audio file")
        return self.process_file(rec.audio_source, segments=rec.segments)

    def process_recording_with_signals(self, rec: Recording) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        """Row and signals of a manifest row (see :meth:`process_recording`)."""
        if rec.audio_source is None:
            raise InputError(f"{rec.subject}/{rec.session}", "recording has no video or audio file")
        path = rec.audio_source
        segs = read_segments(rec.segments) if rec.segments is not None else None
        row, prep = self._analyse_file(path, segs, segments_source=rec.segments)
        return row, self.signals_from_prepared(prep, str(path))

    def process_file(self, path: str | os.PathLike[str], segments: Segments = None, **_: Any) -> pd.DataFrame:
        """Features of a video's audio track or an audio file.

        Parameters
        ----------
        path : path-like
            Video (first audio track) or audio file.
        segments : path-like, DataFrame or (n, 2) array, optional
            Speaker segments (RTTM/CSV file or table with ``start, end, speaker``), or
            already-selected ``(start, end)`` intervals in seconds.
        """
        seg_source = None
        if isinstance(segments, str | os.PathLike):
            seg_source, segments = segments, read_segments(segments)
        return self._analyse_file(path, segments, segments_source=seg_source)[0]

    def _analyse_file(
        self, path: str | os.PathLike[str], segments: Segments, *, segments_source: str | os.PathLike[str] | None
    ) -> tuple[pd.DataFrame, Prepared]:
        """Decode ``path`` to disk once (at its own rate and at :attr:`sr`) and analyse it in blocks."""
        native, x = decoded(path, self.sr)
        prep = self.prepare_signals(native, x, segments, source=str(path), segments_source=segments_source)
        return self._row(prep, file=str(path)), prep

    def process_signal(
        self,
        signal: np.ndarray,
        sr: int,
        segments: Segments = None,
        *,
        file: str = "",
        _segments_source: str | os.PathLike[str] | None = None,
        _resampled: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Features of a signal, as in opensmile-python's ``Smile.process_signal``.

        Parameters
        ----------
        signal : ndarray
            ``(samples,)`` or ``(channels, samples)``; channels are averaged.
        sr : int
            Its sample rate (reported as ``source_sr``); resampled to :attr:`sr` for the
            VAD, MFCC and timing, kept for openSMILE unless ``opensmile_sr`` is set.
        segments : DataFrame, (n, 2) array or path-like, optional
            See :meth:`process_file`.
        file : str
            Index value of the returned row.

        Returns
        -------
        pandas.DataFrame
            One row indexed by ``file``; features then quality columns, all prefixed.
        """
        if isinstance(segments, str | os.PathLike):
            _segments_source, segments = segments, read_segments(segments)
        return self._analyse(signal, sr, segments, file=file, segments_source=_segments_source,
                             resampled=_resampled)[0]

    def _analyse(
        self, signal: np.ndarray, sr: int, segments: Segments, *, file: str,
        segments_source: str | os.PathLike[str] | None, resampled: np.ndarray | None = None,
    ) -> tuple[pd.DataFrame, Prepared]:
        """Return the row of :meth:`process_signal` and the prepared signal it was computed from.

        ``sr`` is the signal's own rate (reported as ``source_sr``); ``resampled`` may hold
        the signal already at :attr:`sr`.
        """
        prep = self.prepare(signal, sr, segments, source=file or "<signal>", segments_source=segments_source,
                            resampled=resampled)
        return self._row(prep, file=file), prep

    def _row(self, prep: Prepared, *, file: str) -> pd.DataFrame:
        """Return the output row (features, then quality columns) of a prepared signal."""
        names = self.feature_names()
        enough = prep.speech_seconds >= self.min_speech_s
        if enough:
            values = self.compute(prep)
            feats = {n: float(values.get(n, np.nan)) for n in names}
        else:
            feats = dict.fromkeys(names, float("nan"))
        source_sr = int(prep.native_sr)
        ok = enough and prep.clipped_fraction <= self.max_clipped and source_sr >= self.sr
        quality = {
            "quality_ok": float(ok),
            "speech_seconds": prep.speech_seconds,
            "patient_only": float(prep.intervals is not None),
            "clipped_fraction": prep.clipped_fraction,
            "dc_offset": prep.dc_offset,
            "source_sr": float(source_sr),
            "quality_no_speech": float(not enough),
            "quality_low_sr": float(source_sr < LOW_SAMPLE_RATE_HZ),
            "quality_audio_s": len(prep.x) / prep.sr,
        }
        row = {f"{self.prefix}__{k}": v for k, v in (feats | quality).items()}
        return pd.DataFrame([row], index=pd.Index([file], name="file"))

    # -- shared preparation -------------------------------------------------------------
    def prepare(
        self,
        signal: np.ndarray,
        sr: int,
        segments: Segments = None,
        *,
        source: str = "<signal>",
        segments_source: str | os.PathLike[str] | None = None,
        resampled: np.ndarray | None = None,
    ) -> Prepared:
        """Mono/resample, quality measures, DC removal, patient intervals and VAD of an in-memory signal.

        ``resampled`` may hold ``signal`` already resampled to :attr:`sr`.
        """
        native = np.asarray(signal, dtype=np.float32)
        if native.ndim == 2:
            native = native.mean(axis=0)
        if native.ndim != 1:
            raise InputError(source, f"signal must be 1-D or (channels, samples), got shape {native.shape}")
        if not np.all(np.isfinite(native)):
            raise InputError(source, "signal contains NaN or infinite samples")
        x = resampled if resampled is not None else resample(native, int(sr), self.sr)
        return self.prepare_signals(AudioSignal(int(sr), array=native), AudioSignal(self.sr, array=x), segments,
                                    source=source, segments_source=segments_source)

    def prepare_signals(
        self,
        native: AudioSignal,
        x: AudioSignal,
        segments: Segments = None,
        *,
        source: str = "<signal>",
        segments_source: str | os.PathLike[str] | None = None,
    ) -> Prepared:
        """Quality measures, DC removal, patient intervals and VAD of ``x`` (at :attr:`sr`), in blocks.

        ``native`` is the same audio at its own rate (kept for the openSMILE groups).
        Nothing here holds more than a block of samples and the 10 ms frame arrays.
        """
        if x.array is not None:  # in memory: the whole-signal measures
            clip = clipped_fraction(x.array)
            dc = float(np.mean(x.array, dtype=np.float64)) if len(x) else 0.0
        else:
            stats = SignalStats()
            for _, block in x.blocks():
                stats.feed(block)
            clip, dc = stats.clipped_fraction(), stats.mean()
        if abs(dc) > self.dc_threshold:
            x, native = x.with_dc(dc), native.with_dc(dc)
        intervals = self._intervals(segments, len(x) / self.sr, segments_source)
        vad = detect_speech(x, self.sr, intervals, self.vad_params())
        speech = float(speech_runs_s(vad).sum())
        keep = native if self.needs_native else None
        return Prepared(x, self.sr, intervals, vad, speech, clip, dc, keep, native.sr)

    def _intervals(
        self, segments: Segments, duration: float, source: str | os.PathLike[str] | None
    ) -> Intervals | None:
        if segments is None:
            return None
        if isinstance(segments, pd.DataFrame):
            if "speaker" in segments.columns:
                iv = patient_intervals(segments, self.patient, exclude_overlap=self.exclude_overlap,
                                       max_gap_s=self.max_gap_s, source=source)
            else:
                iv = merge_intervals(segments[["start", "end"]].to_numpy(float))
        else:
            iv = merge_intervals(np.asarray(segments, dtype=float))
        iv = np.clip(iv, 0.0, duration)
        return iv[iv[:, 1] > iv[:, 0]]


__all__ = [
    "LOW_SAMPLE_RATE_HZ",
    "QUALITY_COLUMNS",
    "Prepared",
    "Segments",
    "SpeechExtractor",
    "SignalStats",
    "SpeechParams",
    "clipped_fraction",
    "feature_columns",
    "speech_warnings",
]
