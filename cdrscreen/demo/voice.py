"""Synthetic speech with a planted pause structure (Debian ``espeak-ng``).

Each phrase is synthesised separately with the subject's voice, speaking rate and a
phrase-level pitch drawn around the subject's base pitch (``pitch_sd`` sets the pitch
variability), trimmed of espeak's own leading/trailing silence and joined with silences
of planted, known durations. The returned :class:`SpeechTrack` lists every segment
(speech or pause) with its exact start and end, so pause-ratio and speech-rate features
can be checked against what was planted.

Optionally, real human speech clips from Debian ``alsa-utils``
(``/usr/share/sounds/alsa/*.wav``) are inserted as another speaker's turns
(``kind == "other"``), e.g. to exercise speaker handling.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cdrscreen.core.errors import CdrscreenError

ALSA_CLIPS = Path("/usr/share/sounds/alsa")
_ESPEAK_SR = 22050

#: Everyday answers of the kind given in a clinical interview (no patient content).
PHRASES: tuple[str, ...] = (
    "I went to the market on Tuesday with my daughter.",
    "We bought some apples and a loaf of bread.",
    "My garden has roses and a small apple tree.",
    "In the morning I usually read the newspaper.",
    "I used to work as a teacher for many years.",
    "My grandson visits me every Sunday afternoon.",
    "We lived near the river when I was young.",
    "I like to listen to the radio in the evening.",
    "The weather was cold and it rained all week.",
    "I take the bus to the town centre.",
    "My sister lives by the sea, not far from here.",
    "On holidays we cooked a big dinner for everyone.",
    "I walk the dog around the park twice a day.",
    "The doctor said I should drink more water.",
    "We had a cat called Misty for sixteen years.",
    "I remember the old school with the red door.",
    "Sometimes I forget where I put my glasses.",
    "My husband built the kitchen table himself.",
    "We went to the mountains in the summer.",
    "I enjoy making soup when the days are short.",
)


@dataclass(frozen=True)
class VoiceParams:
    """How one synthetic speaker talks.

    Attributes
    ----------
    voice : str
        espeak-ng voice with optional variant, e.g. ``"en-us+f3"`` or ``"en-gb+m2"``.
    rate_wpm : float
        Speaking rate passed to espeak-ng (words per minute, 80-450).
    pitch : float
        Base pitch on espeak-ng's 0-99 scale.
    pitch_sd : float
        Standard deviation of the per-phrase pitch around ``pitch`` (same scale).
    pause_mean_s : float
        Mean planted pause between phrases (seconds; log-normal, CV 0.5).
    amplitude : float
        Peak level of the speech in [0, 1].
    """

    voice: str = "en-us"
    rate_wpm: float = 160.0
    pitch: float = 50.0
    pitch_sd: float = 6.0
    pause_mean_s: float = 0.6
    amplitude: float = 0.6


@dataclass
class SpeechTrack:
    """Synthetic speech plus the planted segment list.

    Attributes
    ----------
    audio : ndarray (n,), float32 in [-1, 1]
    sr : int
    segments : DataFrame
        Columns ``start, end`` (s), ``kind`` (``speech``; ``pause`` = planted pause
        between turns; ``silence`` = lead-in and tail; ``other`` = another speaker),
        ``text``, ``pitch`` (espeak scale; NaN for pauses) and ``words``.
    """

    audio: np.ndarray
    sr: int
    segments: pd.DataFrame

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.sr

    def summary(self) -> dict[str, float]:
        """Planted speech statistics: pause ratio, speech rate, pause count, pitch spread.

        ``pause_ratio`` is pause time over (pause + speech) time between the first and the
        last speech segment; ``speech_rate_wps`` is words per second of speech.
        """
        seg = self.segments
        sp = seg[seg.kind == "speech"]
        if sp.empty:
            return {"pause_ratio": float("nan"), "speech_rate_wps": float("nan"),
                    "n_pauses": 0.0, "phrase_pitch_sd": float("nan"), "speech_s": 0.0}
        inner = seg[(seg.start >= sp.start.min()) & (seg.end <= sp.end.max())]
        p = inner[inner.kind == "pause"]
        speech_s = float((sp.end - sp.start).sum())
        pause_s = float((p.end - p.start).sum())
        return {
            "pause_ratio": pause_s / max(pause_s + speech_s, 1e-9),
            "speech_rate_wps": float(sp.words.sum()) / max(speech_s, 1e-9),
            "n_pauses": float(len(p)),
            "phrase_pitch_sd": float(sp.pitch.std(ddof=0)) if len(sp) > 1 else 0.0,
            "speech_s": speech_s,
        }

    def envelope(self, fps: float, n_frames: int) -> np.ndarray:
        """Speech loudness per video frame in [0, 1] (RMS, normalised by its 95th percentile)."""
        hop = self.sr / fps
        out = np.zeros(n_frames)
        for i in range(n_frames):
            a, b = int(i * hop), int((i + 1) * hop)
            seg = self.audio[a:b]
            out[i] = float(np.sqrt(np.mean(seg ** 2))) if len(seg) else 0.0
        top = np.percentile(out, 95) if np.any(out > 0) else 1.0
        return np.clip(out / max(top, 1e-9), 0, 1)


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is on PATH."""
    return shutil.which("espeak-ng") is not None


def _resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return y
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(y, sr_out // g, sr_in // g).astype(np.float32)


@functools.lru_cache(maxsize=512)
def _espeak(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise CdrscreenError("demo speech needs the espeak-ng program: apt-get install -y espeak-ng")
    proc = subprocess.run(
        [exe, "-v", voice, "-s", str(rate), "-p", str(pitch), "-z", "--stdout", text],
        capture_output=True, check=False, timeout=60,
    )
    if proc.returncode != 0 or len(proc.stdout) < 100:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise CdrscreenError(f"espeak-ng failed for voice '{voice}': {msg[-1] if msg else 'no audio'}")
    raw = proc.stdout
    # WAV from espeak-ng --stdout: 44-byte header, 16-bit mono PCM at 22050 Hz.
    pcm = np.frombuffer(raw[44:len(raw) - (len(raw) - 44) % 2], dtype="<i2")
    y = pcm.astype(np.float32) / 32768.0
    y.setflags(write=False)
    return y


def synthesize(text: str, voice: str = "en-us", rate_wpm: float = 160, pitch: float = 50,
               sr: int = 16000) -> np.ndarray:
    """Speak ``text`` with espeak-ng; return mono float32 at ``sr`` with silence trimmed."""
    y = _espeak(text, voice, int(np.clip(round(rate_wpm), 80, 450)), int(np.clip(round(pitch), 0, 99)))
    y = _resample(np.asarray(y), _ESPEAK_SR, sr)
    nz = np.flatnonzero(np.abs(y) > 0.01 * max(float(np.abs(y).max()), 1e-6))
    if len(nz) == 0:
        return y[:0]
    return y[nz[0]:nz[-1] + 1]


def human_clips(sr: int = 16000) -> list[tuple[str, np.ndarray]]:
    """Real human speech clips from ``alsa-utils`` (name, mono float32 at ``sr``)."""
    import soundfile as sf

    out = []
    for p in sorted(ALSA_CLIPS.glob("*.wav")):
        if p.stem == "Noise":
            continue
        y, r = sf.read(p, dtype="float32", always_2d=True)
        y = _resample(y.mean(1), r, sr)
        nz = np.flatnonzero(np.abs(y) > 0.01 * float(np.abs(y).max()))
        out.append((p.stem.replace("_", " "), y[nz[0]:nz[-1] + 1] if len(nz) else y))
    return out


def speech_track(duration_s: float, params: VoiceParams, *, seed: int = 0, sr: int = 16000,
                 lead_in_s: float = 0.4, other_speaker_turns: int = 0) -> SpeechTrack:
    """Build ``duration_s`` seconds of speech with planted pauses.

    Parameters
    ----------
    duration_s : float
        Exact length of the returned audio.
    params : VoiceParams
        Voice, rate, pitch, pitch variability and mean pause.
    seed : int
        Seed for phrase order, phrase pitches and pause durations.
    sr : int
        Sample rate.
    lead_in_s : float
        Silence before the first phrase.
    other_speaker_turns : int
        Insert this many (at most 4) real human clips (alsa-utils) as another speaker's
        turns among the first phrases; needs ``/usr/share/sounds/alsa``.

    Returns
    -------
    SpeechTrack
    """
    rng = np.random.default_rng(seed)
    n_total = int(round(duration_s * sr))
    others = human_clips(sr) if other_speaker_turns else []
    if other_speaker_turns and not others:
        raise CdrscreenError(f"no human speech clips in {ALSA_CLIPS}: apt-get install -y alsa-utils")
    order = rng.permutation(len(PHRASES))
    pieces: list[np.ndarray] = [np.zeros(int(lead_in_s * sr), np.float32)]
    pos = len(pieces[0])
    rows: list[dict[str, object]] = [{"start": 0.0, "end": pos / sr, "kind": "silence", "text": "",
                                      "pitch": np.nan, "words": 0}] if pos else []
    other_at = set(rng.choice(np.arange(1, 5), size=min(other_speaker_turns, 4), replace=False).tolist()) if others else set()
    k = 0
    while True:
        if k in other_at:
            name, clip = others[int(rng.integers(len(others)))]
            text, y, pitch, kind, words = name, clip * 0.8, np.nan, "other", len(name.split())
        else:
            text = PHRASES[order[k % len(order)]]
            pitch = float(np.clip(rng.normal(params.pitch, params.pitch_sd), 0, 99))
            y = synthesize(text, params.voice, params.rate_wpm, pitch, sr)
            y = y / max(float(np.abs(y).max()), 1e-6) * params.amplitude
            kind, words = "speech", len(text.split())
        pause = float(rng.lognormal(np.log(params.pause_mean_s) - 0.5 * np.log(1.25), np.sqrt(np.log(1.25))))
        n_pause = max(int(round(pause * sr)), 1)
        if pos + len(y) > n_total:
            break
        rows.append({"start": pos / sr, "end": (pos + len(y)) / sr, "kind": kind, "text": text,
                     "pitch": pitch, "words": words})
        pieces.append(y.astype(np.float32))
        pos += len(y)
        if pos + n_pause >= n_total:
            break
        rows.append({"start": pos / sr, "end": (pos + n_pause) / sr, "kind": "pause", "text": "",
                     "pitch": np.nan, "words": 0})
        pieces.append(np.zeros(n_pause, np.float32))
        pos += n_pause
        k += 1
    if rows and rows[-1]["kind"] == "pause":  # a pause with nothing after it is tail silence
        pos = int(round(float(rows.pop()["start"]) * sr))  # type: ignore[arg-type]
        pieces.pop()
    if pos < n_total:
        rows.append({"start": pos / sr, "end": n_total / sr, "kind": "silence", "text": "",
                     "pitch": np.nan, "words": 0})
    audio = np.concatenate(pieces)
    audio = np.pad(audio, (0, max(n_total - len(audio), 0)))[:n_total]
    seg = pd.DataFrame(rows, columns=["start", "end", "kind", "text", "pitch", "words"])
    return SpeechTrack(audio=audio.astype(np.float32), sr=sr, segments=seg)
