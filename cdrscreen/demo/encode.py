"""Write RGB frames (and optional mono audio) to an H.264 + AAC mp4 with PyAV.

The encoders run single-threaded with fixed options, so the same frames and samples
give a byte-identical file. The container's ``comment`` tag marks the file as synthetic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from cdrscreen._io import atomic_path
from cdrscreen.errors import CdrscreenError

SYNTHETIC_TAG = "SYNTHETIC demo recording made by cdrscreen for pipeline checking only; not patient data"
_AUDIO_CHUNK = 1024  # AAC frame size


def write_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    fps: float,
    audio: np.ndarray | None = None,
    sr: int = 16000,
    crf: int = 20,
    comment: str = SYNTHETIC_TAG,
) -> int:
    """Encode frames to ``path`` atomically; return the number of frames written.

    Parameters
    ----------
    path : path-like
        Output ``.mp4``.
    frames : iterable of ndarray (H, W, 3) uint8
        RGB frames, all the same size (width and height even).
    fps : float
        Frame rate.
    audio : ndarray (n,), float in [-1, 1], optional
        Mono audio; muxed as AAC, interleaved with the video.
    sr : int
        Audio sample rate (Hz).
    crf : int
        x264 constant rate factor (lower = better quality, larger file).
    comment : str
        Container ``comment`` metadata.
    """
    import av

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(audio)):
            raise CdrscreenError(f"{path}: audio contains NaN or infinite samples")
        audio = np.clip(audio, -1.0, 1.0)
    n_written = 0
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            container.metadata["comment"] = comment
            vstream = None
            astream = None
            a_done = 0
            for frame in frames:
                if vstream is None:
                    h, w = frame.shape[:2]
                    if w % 2 or h % 2:
                        raise CdrscreenError(f"{path}: frame size {w}x{h} must be even for H.264 (yuv420p)")
                    vstream = container.add_stream("libx264", rate=rate)
                    vstream.width, vstream.height = w, h
                    vstream.pix_fmt = "yuv420p"
                    vstream.codec_context.thread_count = 1
                    vstream.codec_context.thread_type = "NONE"
                    vstream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1",
                                       "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0"}
                    if audio is not None:
                        astream = container.add_stream("aac", rate=sr)
                        astream.codec_context.layout = "mono"
                        astream.codec_context.thread_count = 1
                        astream.bit_rate = 64000
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                vf.pts = n_written
                for pkt in vstream.encode(vf):
                    container.mux(pkt)
                n_written += 1
                if astream is not None:
                    a_done = _encode_audio(container, astream, audio, sr, a_done,
                                           int(round(n_written / float(rate) * sr)))
            if vstream is None:
                raise CdrscreenError(f"{path}: no frames to write")
            for pkt in vstream.encode(None):
                container.mux(pkt)
            if astream is not None:
                a_done = _encode_audio(container, astream, audio, sr, a_done, len(audio))
                for pkt in astream.encode(None):
                    container.mux(pkt)
        finally:
            with contextlib.suppress(Exception):
                container.close()
    return n_written


def _encode_audio(container, astream, audio: np.ndarray, sr: int, start: int, stop: int) -> int:
    """Encode whole AAC-sized chunks of ``audio[start:stop]`` (the tail when stop == len)."""
    import av

    stop = min(stop, len(audio))
    end = stop if stop == len(audio) else start + (stop - start) // _AUDIO_CHUNK * _AUDIO_CHUNK
    pos = start
    while pos < end:
        chunk = audio[pos:min(pos + _AUDIO_CHUNK, end)]
        af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        af.sample_rate = sr
        af.pts = pos
        for pkt in astream.encode(af):
            container.mux(pkt)
        pos += len(chunk)
    return pos
