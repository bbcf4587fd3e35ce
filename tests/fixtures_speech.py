"""Speech test data generated on the fly: espeak-ng speech and the alsa-utils human clips.

Needs the Debian packages ``espeak-ng`` (synthetic speech with controlled rate, pitch and
voice) and ``alsa-utils`` (nine ~1.4 s real human recordings in /usr/share/sounds/alsa).
Tests that need them are skipped with a clear reason when they are missing.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SR = 16000
ALSA_DIR = Path("/usr/share/sounds/alsa")

#: Phrases without punctuation (espeak inserts no long pauses inside them).
PHRASES = (
    "I went to the market in the morning",
    "we bought some apples and fresh bread",
    "then my daughter called me on the phone",
    "she asked about the garden and the weather",
    "after lunch I took a short walk outside",
    "the neighbours were painting their front door",
)
#: Silences (s) planted between consecutive phrases of :data:`PHRASES`.
PLANTED_PAUSES = (0.4, 0.8, 1.2, 0.6, 1.5)


def espeak(text: str, *, voice: str = "en-us", speed: int = 150, pitch: int = 50, sr: int = SR,
           trim: bool = True) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng; mono float32 at ``sr``, edge silence trimmed."""
    import soundfile as sf

    from cdrscreen.media.audio import resample

    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    wav = subprocess.run(
        [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    x, native = sf.read(io.BytesIO(wav), dtype="float32")
    x = resample(x, native, sr)
    if trim:
        idx = np.flatnonzero(np.abs(x) > 1e-3)
        x = x[idx[0] : idx[-1] + 1] if idx.size else x[:0]
    return np.ascontiguousarray(x)


def silence(seconds: float, sr: int = SR) -> np.ndarray:
    """Digital silence."""
    return np.zeros(int(round(seconds * sr)), dtype=np.float32)


def write_wav(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    """16-bit PCM WAV."""
    import soundfile as sf

    sf.write(str(path), x, sr, subtype="PCM_16")
    return path


def mux_video(path: Path, x: np.ndarray | None, sr: int = SR, *, seconds: float | None = None,
              audio_codec: str = "aac", fps: int = 10) -> Path:
    """Write a small real video file (mpeg4 frames) with ``x`` as its mono audio track.

    ``x`` is float in [-1, 1] (rounded to 16-bit) or int16 PCM (written as is);
    ``x=None`` writes a video without audio (``seconds`` long).
    """
    import av

    dur = seconds if seconds is not None else len(x) / sr
    n_frames = max(1, int(dur * fps))
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        ast = None
        if x is not None:
            ast = c.add_stream(audio_codec, rate=sr)
            ast.layout = "mono"
            if audio_codec == "aac":
                ast.bit_rate = 128000
        for i in range(n_frames):
            img = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in vs.encode(None):
            c.mux(pkt)
        if ast is not None:
            if x.dtype == np.int16:
                pcm = x
            else:
                pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
            step = 1024
            for i in range(0, len(pcm), step):
                fr = av.AudioFrame.from_ndarray(pcm[None, i : i + step], format="s16", layout="mono")
                fr.sample_rate = sr
                fr.pts = i
                for pkt in ast.encode(fr):
                    c.mux(pkt)
            for pkt in ast.encode(None):
                c.mux(pkt)
    return path


@dataclass(frozen=True)
class TwoVoice:
    """A planted interview: alternating interviewer/patient turns."""

    signal: np.ndarray
    sr: int
    segments: pd.DataFrame  # start, end, speaker
    patient_alone: np.ndarray  # the patient's turns concatenated
    interviewer_alone: np.ndarray


@pytest.fixture(scope="session")
def planted_pauses() -> tuple[np.ndarray, tuple[float, ...], pd.DataFrame]:
    """Espeak phrases separated by the silences :data:`PLANTED_PAUSES` (0.3 s lead/tail).

    Returns the signal, the planted pauses and the phrases as patient segments.
    """
    parts, rows, t = [silence(0.3)], [], 0.3
    for i, text in enumerate(PHRASES):
        s = espeak(text, speed=140)
        parts.append(s)
        rows.append((t, t + len(s) / SR, "patient"))
        t += len(s) / SR
        if i < len(PLANTED_PAUSES):
            parts.append(silence(PLANTED_PAUSES[i]))
            t += PLANTED_PAUSES[i]
    parts.append(silence(0.3))
    segs = pd.DataFrame(rows, columns=["start", "end", "speaker"])
    return np.concatenate(parts), PLANTED_PAUSES, segs


@pytest.fixture(scope="session")
def two_voice() -> TwoVoice:
    """Interviewer (female voice, high pitch, fast) and patient (male, low, slow)."""
    q = ["how have you been sleeping lately", "tell me about your morning",
         "what did you have for lunch today"]
    a = ["I have been sleeping well most nights", "I made tea and read the newspaper",
         "we had soup and some bread at home"]
    parts, rows, t = [], [], 0.0
    pat, itv = [], []
    for qi, ai in zip(q, a, strict=True):
        for text, who in ((qi, "interviewer"), (ai, "patient")):
            if who == "patient":
                s = espeak(text, voice="en-us+m3", speed=110, pitch=25)
                pat.append(s)
            else:
                s = espeak(text, voice="en-us+f3", speed=190, pitch=85)
                itv.append(s)
            rows.append((t, t + len(s) / SR, who))
            parts += [s, silence(0.5)]
            t += len(s) / SR + 0.5
    segs = pd.DataFrame(rows, columns=["start", "end", "speaker"])
    return TwoVoice(np.concatenate(parts), SR, segs, np.concatenate(pat), np.concatenate(itv))


@pytest.fixture(scope="session")
def speech_signal() -> np.ndarray:
    """About 8 s of espeak speech with natural phrase breaks, at :data:`SR`."""
    return np.concatenate(
        [silence(0.2), espeak(PHRASES[0]), silence(0.5), espeak(PHRASES[1]), silence(0.7),
         espeak(PHRASES[2]), silence(0.2)]
    )


@pytest.fixture(scope="session")
def speech_media(tmp_path_factory, speech_signal) -> dict[str, Path]:
    """The :func:`speech_signal` as a 16 kHz WAV, an MP4 (mpeg4 + AAC) and an MKV (mpeg4 +
    the WAV's own 16-bit PCM samples)."""
    import soundfile as sf

    d = tmp_path_factory.mktemp("speech_media")
    wav = write_wav(d / "speech.wav", speech_signal)
    pcm, _ = sf.read(str(wav), dtype="int16")  # the very samples stored in the WAV
    return {
        "wav": wav,
        "mp4": mux_video(d / "speech.mp4", speech_signal),
        "mkv": mux_video(d / "speech.mkv", pcm, audio_codec="pcm_s16le"),
    }


def looped_voice(clips: list[Path], seconds: float, sr: int = 48000) -> np.ndarray:
    """The real-voice ``clips``, each followed by 0.5 s of silence, looped to ``seconds`` (float32, ``sr``)."""
    import soundfile as sf

    parts = []
    for p in clips:
        y, clip_sr = sf.read(str(p), dtype="float32")
        parts += [y, np.zeros(int(0.5 * clip_sr), np.float32)]
    clip = np.concatenate(parts)
    n = int(seconds * sr)
    return np.tile(clip, int(np.ceil(n / clip.size)))[:n]


@pytest.fixture(scope="session")
def alsa_clips() -> list[Path]:
    """Real human speech clips shipped by alsa-utils (48 kHz mono WAV, ~1.4 s each)."""
    clips = sorted(p for p in ALSA_DIR.glob("*.wav") if p.stem != "Noise")
    if not clips:
        pytest.skip("alsa-utils sound clips not installed (apt-get install -y alsa-utils)")
    return clips


# -- real human voice with planted pauses (alsa-utils clips) ---------------------------------
#: Words spoken in each alsa-utils clip and their syllables (dictionary syllabification:
#: front 1, center 2, left 1, right 1, rear 1, side 1). 18 syllables in the 8 clips.
ALSA_SYLLABLES: dict[str, tuple[str, int]] = {
    "Front_Center": ("front center", 3),
    "Front_Left": ("front left", 2),
    "Front_Right": ("front right", 2),
    "Rear_Center": ("rear center", 3),
    "Rear_Left": ("rear left", 2),
    "Rear_Right": ("rear right", 2),
    "Side_Left": ("side left", 2),
    "Side_Right": ("side right", 2),
}
#: Silences (s) planted between consecutive clips, in clip order.
REAL_PLANTED_PAUSES = (0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
#: Annotation rule for the words of a clip (see :func:`annotate_words`).
ANNOTATION_LEVEL_DB = -55.0
ANNOTATION_FRAME_S = 0.005
ANNOTATION_CLOSURE_S = 0.15


def annotate_words(x: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """Reference word extents of a clean alsa clip, in seconds.

    The clips are studio recordings whose gaps are digital silence (-120 dBFS) or room
    tone below -60 dBFS, so a word is where the 5 ms level exceeds -55 dBFS (this keeps the
    weak final /t/ bursts and /f/ frication at -30 to -50 dBFS, and drops only the
    aspiration and reverberation decaying under -55 dBFS); gaps shorter than 0.15 s (stop
    closures) stay inside the word. Independent of the detector under test: a fixed
    absolute level on the clean clip, 5 ms resolution.
    """
    w = max(1, int(round(ANNOTATION_FRAME_S * sr)))
    n = len(x) // w
    level = 10 * np.log10(np.mean(np.asarray(x[: n * w], np.float64).reshape(n, w) ** 2, axis=1) + 1e-12)
    m = np.diff(np.concatenate([[0], (level > ANNOTATION_LEVEL_DB).astype(int), [0]]))
    words: list[list[float]] = []
    for a, b in zip(np.flatnonzero(m == 1) * w / sr, np.flatnonzero(m == -1) * w / sr, strict=True):
        if words and a - words[-1][1] < ANNOTATION_CLOSURE_S:
            words[-1][1] = float(b)
        else:
            words.append([float(a), float(b)])
    return [(a, b) for a, b in words]


@dataclass(frozen=True)
class RealVoice:
    """The eight alsa clips, trimmed to their annotated speech, with planted silences."""

    signal: np.ndarray
    sr: int
    planted: np.ndarray  # (7, 2) start, end of the planted pauses (s)
    words: np.ndarray  # (n, 2) annotated word extents in the assembled signal (s)
    syllables: int  # true syllable count (18)
    clips: tuple[str, ...]


def real_voice(clip_paths: list[Path], *, sr: int = SR, noise_db: float | None = None, lead_s: float = 0.5,
               seed: int = 0) -> RealVoice:
    """Assemble the alsa clips (trimmed to their annotated words) with :data:`REAL_PLANTED_PAUSES`.

    Each clip is cut at its first word's onset and last word's offset, so a planted pause
    runs exactly from the end of one clip's last word (a weak final consonant in 6 of 8
    clips) to the start of the next clip's first word. ``noise_db`` adds white noise of
    that RMS level (dBFS) to the whole signal after resampling to ``sr``.
    """
    import soundfile as sf

    from cdrscreen.media.audio import resample

    paths = [p for p in clip_paths if p.stem in ALSA_SYLLABLES]
    if len(paths) != len(ALSA_SYLLABLES):
        pytest.skip("the eight alsa-utils voice clips are not all installed")
    parts, words, planted, t, native = [], [], [], lead_s, None
    for i, p in enumerate(paths):
        x, native = sf.read(str(p), dtype="float32")
        ws = annotate_words(x, native)
        on, off = ws[0][0], ws[-1][1]
        if i == 0:
            parts.append(np.zeros(int(round(lead_s * native)), np.float32))
        seg = x[int(round(on * native)) : int(round(off * native))]
        words += [(t + a - on, t + b - on) for a, b in ws]
        parts.append(seg)
        t += len(seg) / native
        if i < len(REAL_PLANTED_PAUSES):
            gap = REAL_PLANTED_PAUSES[i]
            planted.append((t, t + gap))
            parts.append(np.zeros(int(round(gap * native)), np.float32))
            t += int(round(gap * native)) / native
    parts.append(np.zeros(int(round(lead_s * native)), np.float32))
    y = resample(np.concatenate(parts), native, sr)
    if noise_db is not None:
        rng = np.random.default_rng(seed)
        y = (y + np.float32(10 ** (noise_db / 20)) * rng.standard_normal(y.size).astype(np.float32)).astype(np.float32)
    return RealVoice(y, sr, np.asarray(planted), np.asarray(words), sum(s for _, s in ALSA_SYLLABLES.values()),
                     tuple(p.stem for p in paths))
