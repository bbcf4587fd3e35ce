"""Video probing and frame decoding with PyAV, with one-line errors naming the file.

>>> from cdrscreen.media.video import probe_video, iter_frames
>>> info = probe_video("interview.mp4")            # doctest: +SKIP
>>> for frame in iter_frames("interview.mp4", stride=2):  # doctest: +SKIP
...     frame.index, frame.time, frame.rgb.shape
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdrscreen.errors import InputError


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds.

    Attributes
    ----------
    path : Path
    width, height : int
        Frame size in pixels.
    fps : float
        Average frame rate (frames per second).
    n_frames : int
        Number of frames (from the container; estimated from duration x fps when the
        container does not say).
    duration : float
        Seconds.
    codec : str
    """

    path: Path
    width: int
    height: int
    fps: float
    n_frames: int
    duration: float
    codec: str


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``index`` counts decoded frames from 0, ``time`` is in seconds."""

    index: int
    time: float
    rgb: np.ndarray


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "video file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, expected a video file")
    if not os.access(path, os.R_OK):
        raise InputError(path, "video file is not readable (permissions)")
    if path.stat().st_size == 0:
        raise InputError(path, "video file is empty (0 bytes)")


def _open(path: Path):  # noqa: ANN202 - av.container.InputContainer
    import av

    _check_file(path)
    try:
        container = av.open(str(path))
    except Exception as err:  # noqa: BLE001 - anything the demuxer raises means unreadable
        raise InputError(path, f"cannot be opened as a video ({type(err).__name__})") from None
    if not container.streams.video:
        container.close()
        raise InputError(path, "has no video stream")
    return container


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's size, frame rate, frame count and duration without decoding it.

    Raises
    ------
    InputError
        If the file is missing, empty, not a container PyAV can open, or has no video.
    """
    path = Path(path)
    container = _open(path)
    try:
        st = container.streams.video[0]
        rate = st.average_rate or st.guessed_rate or st.base_rate
        fps = float(rate) if rate else 0.0
        if st.duration is not None and st.time_base is not None:
            duration = float(st.duration * st.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        n = int(st.frames or 0)
        if n <= 0 and fps > 0:
            n = int(round(duration * fps))
        width, height = int(st.codec_context.width), int(st.codec_context.height)
        codec = st.codec_context.name
    finally:
        container.close()
    if width <= 0 or height <= 0:
        raise InputError(path, "video stream has no frame size (corrupt header?)")
    if fps <= 0:
        raise InputError(path, "video stream has no frame rate")
    return VideoInfo(path, width, height, fps, n, duration, codec)


def iter_frames(
    path: str | os.PathLike[str], *, stride: int = 1, max_frames: int | None = None
) -> Iterator[Frame]:
    """Decode frames as RGB ``uint8`` arrays of shape ``(height, width, 3)``.

    Parameters
    ----------
    path : path-like
    stride : int, default 1
        Yield every ``stride``-th frame (indices 0, stride, 2*stride, ...). Every frame is
        still decoded (inter-frame codecs need it) but skipped frames are not converted.
    max_frames : int, optional
        Stop after this many decoded frames.

    Raises
    ------
    InputError
        If the file cannot be opened, or decoding fails before any frame was produced.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    path = Path(path)
    container = _open(path)
    try:
        st = container.streams.video[0]
        st.thread_type = "AUTO"
        rate = st.average_rate or st.guessed_rate
        fps = float(rate) if rate else 0.0
        i = 0
        try:
            for vf in container.decode(st):
                if max_frames is not None and i >= max_frames:
                    break
                if i % stride == 0:
                    t = float(vf.time) if vf.time is not None else (i / fps if fps else float(i))
                    yield Frame(i, t, vf.to_ndarray(format="rgb24"))
                i += 1
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - decoder errors become one line
            if i == 0:
                raise InputError(path, f"video cannot be decoded ({type(err).__name__}: {err})") from None
            raise InputError(
                path, f"video is truncated or corrupt: decoding failed after frame {i} ({type(err).__name__})"
            ) from None
        if i == 0:
            raise InputError(path, "video stream contains no decodable frames")
    finally:
        container.close()
