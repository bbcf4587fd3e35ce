"""Audio loading with PyAV: the audio track of a video, or a separate audio file.

Every file goes through the same path, so a WAV and the same samples inside an MP4/MKV
give the same signal:

1. decode the first audio stream with PyAV (FFmpeg) and convert it to 32-bit float
   (integer PCM is scaled by ``1 / 2**(bits-1)``, as ``soundfile`` does);
2. mix down to mono by averaging the channels;
3. resample to ``sr`` (default :data:`DEFAULT_SR` = 16 kHz) with a polyphase
   anti-aliasing filter (:func:`scipy.signal.resample_poly`, Kaiser window ``beta=5``).
   A file already at ``sr`` is returned unchanged, sample for sample, and ``sr=None``
   keeps the file's own (native) rate.

Problems are raised as :class:`~cdrscreen.core.errors.InputError`, one line naming the file:
missing/empty file, not a media file, a video without an audio track, an audio codec
FFmpeg cannot decode, a truncated file (fewer samples than its header declares, or a
decoding error part-way), and a stream with no samples.

>>> from cdrscreen.media.audio import load_audio
>>> x, sr = load_audio("interview.mp4")      # doctest: +SKIP
>>> x.dtype, x.ndim, sr
(dtype('float32'), 1, 16000)
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from cdrscreen.core.errors import InputError
from cdrscreen.core.io import check_input_file

#: Sample rate (Hz) every speech feature is computed at unless configured otherwise.
DEFAULT_SR = 16000

#: A file is reported as truncated when it decodes to less than this fraction of the
#: duration its header declares (and at least :data:`_TRUNCATION_SLACK_S` less).
TRUNCATION_RATIO = 0.95
_TRUNCATION_SLACK_S = 0.1

_MEMO_SIZE = 4
_memo: OrderedDict[tuple, tuple[np.ndarray, int]] = OrderedDict()
_memo_lock = threading.Lock()


@dataclass(frozen=True)
class AudioInfo:
    """What the first audio stream of a file holds.

    Attributes
    ----------
    path : Path
    sample_rate : int
        Native sample rate in Hz.
    channels : int
    duration : float
        Seconds declared by the container/stream header (0.0 when it does not say).
    codec : str
        FFmpeg decoder name, e.g. ``pcm_s16le``, ``aac``, ``flac``.
    """

    path: Path
    sample_rate: int
    channels: int
    duration: float
    codec: str


def _check_file(path: Path) -> None:
    check_input_file(path, "audio source", "an audio or video file")


def _open(path: Path):  # noqa: ANN202 - av.container.InputContainer
    import av

    _check_file(path)
    try:
        container = av.open(str(path))
    except Exception as err:  # noqa: BLE001 - anything the demuxer raises means unreadable
        raise InputError(
            path, f"cannot be opened as audio or video (truncated or not a media file: {type(err).__name__})"
        ) from None
    if not container.streams.audio:
        kind = "video has no audio track" if container.streams.video else "contains no audio stream"
        container.close()
        raise InputError(path, kind)
    return container


def _declared_duration(container, stream) -> float:  # noqa: ANN001
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the first audio stream's rate, channels, duration and codec without decoding.

    Raises
    ------
    InputError
        If the file is missing, empty, not a media file, or has no audio stream.
    """
    path = Path(path)
    container = _open(path)
    try:
        st = container.streams.audio[0]
        cc = st.codec_context
        if cc is None:
            raise InputError(path, "audio codec 'unknown' is not supported by the decoder (FFmpeg)")
        info = AudioInfo(
            path=path,
            sample_rate=int(cc.sample_rate or 0),
            channels=int(cc.channels or 0),
            duration=_declared_duration(container, st),
            codec=str(cc.name),
        )
    finally:
        container.close()
    return info


def resample(x: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    """Resample a 1-D signal from ``orig_sr`` to ``sr`` (polyphase, Kaiser ``beta=5``).

    Returns ``x`` itself (as float32) when the rates are equal.
    """
    x = np.asarray(x, dtype=np.float32)
    if orig_sr == sr:
        return x
    from scipy.signal import resample_poly

    frac = Fraction(int(sr), int(orig_sr))
    y = resample_poly(x, frac.numerator, frac.denominator, window=("kaiser", 5.0))
    return y.astype(np.float32, copy=False)


def _riff_missing_fraction(path: Path) -> float:
    """For a RIFF/WAVE file, the fraction of the declared ``data`` bytes absent from disk.

    FFmpeg silently reports a truncated WAV's duration from the bytes present, so the
    header is read here. Returns 0.0 for other files or streamed (unknown-size) WAVs.
    """
    import struct

    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return 0.0
        fmt = "<I" if head[:4] == b"RIFF" else ">I"
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            hdr = fh.read(8)
            if len(hdr) < 8:
                return 0.0
            (n,) = struct.unpack(fmt, hdr[4:])
            if hdr[:4] == b"data":
                if n in (0, 0xFFFFFFFF):
                    return 0.0
                return max(0.0, 1.0 - (size - pos - 8) / n)
            pos += 8 + n + (n & 1)
    return 0.0


def iter_decoded(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the first audio stream frame by frame: yield ``(native_sr, mono float32 chunk)``.

    The checks of :func:`load_audio` are made as the stream goes (a truncated file raises
    after its last chunk); the chunks are not checked for NaN.
    """
    import av

    container = _open(path)
    try:
        st = container.streams.audio[0]
        cc = st.codec_context
        if cc is None or cc.name in ("", "none") or not cc.sample_rate:
            name = getattr(cc, "name", None) or "unknown"
            raise InputError(path, f"audio codec '{name}' is not supported by the decoder (FFmpeg)")
        native_sr = int(cc.sample_rate)
        missing = _riff_missing_fraction(path)
        if missing > 1.0 - TRUNCATION_RATIO:
            raise InputError(
                path, f"audio is truncated: {100 * missing:.0f}% of the samples its WAV header declares are missing"
            )
        declared = _declared_duration(container, st)
        converter = av.AudioResampler(format="fltp", layout=None, rate=native_sr)
        n = 0
        try:
            for frame in container.decode(st):
                for out in converter.resample(frame):
                    a = out.to_ndarray()  # (channels, samples), float32
                    a = a.mean(axis=0) if a.shape[0] > 1 else a[0]
                    n += a.size
                    yield native_sr, a
            for out in converter.resample(None):
                a = out.to_ndarray()
                a = a.mean(axis=0) if a.shape[0] > 1 else a[0]
                n += a.size
                yield native_sr, a
        except InputError:
            raise
        except GeneratorExit:
            raise
        except Exception as err:  # noqa: BLE001 - decoder errors become one line
            if n == 0:
                raise InputError(
                    path, f"audio codec '{cc.name}' cannot be decoded ({type(err).__name__})"
                ) from None
            raise InputError(
                path,
                f"audio is truncated or corrupt: decoding failed after {n / native_sr:.2f} s "
                f"({type(err).__name__})",
            ) from None
    finally:
        container.close()
    if n == 0:
        raise InputError(path, "audio stream contains no samples (empty or truncated file)")
    got = n / native_sr
    if declared > 0 and got < TRUNCATION_RATIO * declared and declared - got > _TRUNCATION_SLACK_S:
        raise InputError(
            path, f"audio is truncated: header declares {declared:.2f} s but only {got:.2f} s decode"
        )


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream to a mono float32 signal at its native rate."""
    chunks: list[np.ndarray] = []
    native_sr = 0
    for rate, a in iter_decoded(path):
        native_sr = rate
        chunks.append(a)
    x = np.concatenate(chunks).astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise InputError(path, "audio contains NaN or infinite samples")
    return x, native_sr


def load_audio(
    path: str | os.PathLike[str], sr: int | None = DEFAULT_SR, *, memo: bool = True
) -> tuple[np.ndarray, int]:
    """Load the audio of a video or audio file as a mono float32 signal at ``sr`` Hz.

    Parameters
    ----------
    path : path-like
        mp4/mkv/avi/mov/webm video (its first audio track) or wav/flac/ogg/mp3/m4a audio.
    sr : int or None, default :data:`DEFAULT_SR`
        Target sample rate in Hz; ``None`` keeps the file's native rate.
    memo : bool, default True
        Keep the last four decoded signals in memory (keyed by path, size, mtime and
        ``sr``), so several feature groups computed on the same file decode it once.

    Returns
    -------
    signal : numpy.ndarray
        1-D float32, read-only, nominally in [-1, 1].
    sr : int
        The sample rate of ``signal`` (the ``sr`` argument, or the native rate).

    Raises
    ------
    InputError
        One line naming the file and the problem (see the module docstring).
    """
    if sr is not None and sr <= 0:
        raise ValueError(f"sr must be positive, got {sr}")
    p = Path(path)
    key = hit = None
    if memo:
        _check_file(p)
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, None if sr is None else int(sr))
        with _memo_lock:
            if key in _memo:
                _memo.move_to_end(key)
                return _memo[key]
            native_key = (*key[:3], None)
            hit = _memo.get(native_key)
    if memo and hit is not None:  # decoded already: only resample
        x, native_sr = hit
    else:
        x, native_sr = _decode(p)
    out_sr = native_sr if sr is None else int(sr)
    y = resample(x, native_sr, out_sr)
    y.setflags(write=False)
    if key is not None:
        with _memo_lock:
            _memo[key] = (y, out_sr)
            while len(_memo) > _MEMO_SIZE:
                _memo.popitem(last=False)
    return y, out_sr


def clear_memo() -> None:
    """Forget the decoded signals kept by :func:`load_audio`."""
    with _memo_lock:
        _memo.clear()


__all__ = ["DEFAULT_SR", "AudioInfo", "clear_memo", "iter_decoded", "load_audio", "probe_audio", "resample"]
