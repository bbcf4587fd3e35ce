"""Write RGB frames (and optional mono audio) to an H.264 + AAC mp4 with PyAV.

The encoders run single-threaded with fixed options (see ``_X264_PARAMS`` for why
macroblock-tree and B-frames are off), so the same frames and samples give a
byte-identical file. The container's ``comment`` tag marks the file as synthetic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.core.io import atomic_path

SYNTHETIC_TAG = "SYNTHETIC demo recording made by cdrscreen for pipeline checking only; not patient data"
_AUDIO_CHUNK = 1024  # AAC frame size
#: x264 settings that make the output byte-identical run to run. Macroblock-tree rate
#: control with B-frames reads memory it never wrote: once the process heap holds other
#: data (e.g. after MediaPipe ran) the bytes change between runs. Without mbtree and
#: B-frames the output was identical in every trial; quality cost at 320x240 is small.
_X264_PARAMS = "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0:bframes=0"


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
                                       "x264-params": _X264_PARAMS}
                    if audio is not None:
                        astream = container.add_stream("aac", rate=sr)
                        astream.codec_context.layout = "mono"
                        astream.codec_context.thread_count = 1
                        astream.bit_rate = 64000
                vf = _yuv_frame(frame)
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


def _yuv_frame(rgb: np.ndarray):
    """RGB uint8 -> yuv420p VideoFrame with every byte (row padding included) set.

    Letting FFmpeg convert RGB frames leaves the padding at the end of each plane row
    uninitialised; x264 then gives different bytes run to run once the heap holds
    other data (seen after MediaPipe ran in the same process). Converting here (BT.601,
    limited range, like FFmpeg's default) and zero-filling the padding keeps the output
    byte-identical.
    """
    import av
    import cv2

    h, w = rgb.shape[:2]
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
    planes = (yuv[:h], yuv[h:h + h // 4].reshape(h // 2, w // 2), yuv[h + h // 4:].reshape(h // 2, w // 2))
    vf = av.VideoFrame(w, h, "yuv420p")
    for plane, arr in zip(vf.planes, planes, strict=True):
        buf = np.zeros((plane.height, plane.line_size), np.uint8)
        buf[:, :arr.shape[1]] = arr
        plane.update(buf)
    return vf


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
