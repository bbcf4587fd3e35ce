"""Video probing and frame decoding with PyAV, with one-line errors naming the file.

>>> from cdrscreen.media.video import probe_video, iter_frames
>>> info = probe_video("interview.mp4")            # doctest: +SKIP
>>> for frame in iter_frames("interview.mp4", stride=2):  # doctest: +SKIP
...     frame.index, frame.time, frame.rgb.shape

Frame times come from each frame's presentation timestamp (variable-frame-rate phone
videos get their real times, not ``index / fps``). A video with a rotation in its display
matrix (a phone held upright records landscape pixels plus "rotate 90°") is uprighted as a
player shows it: frames are rotated by the stored angle and :class:`VideoInfo` reports the
displayed width and height. A still image renamed to a video extension is refused, and
a file that decodes to fewer frames than its header declares is reported as truncated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdrscreen.core.errors import InputError
from cdrscreen.core.io import check_input_file

#: A video is reported as truncated when fewer than this fraction of the frames its header
#: declares decode (and more than 2 are missing): a cut-off file must not pass as a short one.
TRUNCATION_RATIO = 0.95


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
    rotation : int
        Counter-clockwise rotation (0, 90, 180 or 270 degrees) of the stored pixels that
        the display matrix asks for; :func:`iter_frames` applies it, and ``width`` and
        ``height`` are those of the uprighted frames.
    """

    path: Path
    width: int
    height: int
    fps: float
    n_frames: int
    duration: float
    codec: str
    rotation: int = 0


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``index`` counts decoded frames from 0, ``time`` is in seconds."""

    index: int
    time: float
    rgb: np.ndarray


def _check_file(path: Path) -> None:
    check_input_file(path, "video file", "a video file")


def _open(path: Path):  # noqa: ANN202 - av.container.InputContainer
    import av

    _check_file(path)
    try:
        container = av.open(str(path))
    except Exception as err:  # noqa: BLE001 - anything the demuxer raises means unreadable
        raise InputError(path, f"cannot be opened as a video ({type(err).__name__})") from None
    why = not_a_video(container)
    if why:
        container.close()
        raise InputError(path, why)
    return container


def not_a_video(container) -> str | None:  # noqa: ANN001 - av.container.InputContainer
    """Why an opened container cannot serve as a video (no video stream, a still image), or None."""
    if not container.streams.video:
        return "has no video stream"
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):
        return f"is a still image ({fmt.removesuffix('_pipe')}), not a video"
    return None


def _declared_frames(container, stream, fps: float) -> int:  # noqa: ANN001
    """Frames the header declares: the stream's count, else its duration x ``fps`` (0 if unknown)."""
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        return 0
    return int(round(duration * fps)) if fps > 0 else 0


def _quarter_turns(degrees: float | int | None) -> int:
    """Counter-clockwise quarter turns (0-3) nearest to a display-matrix rotation."""
    return int(round((degrees or 0) / 90.0)) % 4


def _first_rotation(container, stream) -> int:  # noqa: ANN001
    """Display rotation (degrees CCW) of the first decoded frame; 0 when it has none."""
    try:
        for vf in container.decode(stream):
            return 90 * _quarter_turns(vf.rotation)
    except Exception:  # noqa: BLE001 - undecodable files are reported by iter_frames
        return 0
    return 0


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's size, frame rate, frame count, duration and display rotation.

    Only the header and the first frame (for its display matrix) are decoded.

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
        rotation = _first_rotation(container, st) if width > 0 and height > 0 else 0
    finally:
        container.close()
    if width <= 0 or height <= 0:
        raise InputError(path, "video stream has no frame size (corrupt header?)")
    if fps <= 0:
        raise InputError(path, "video stream has no frame rate")
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(path, width, height, fps, n, duration, codec, rotation)


def iter_frames(
    path: str | os.PathLike[str], *, stride: int = 1, max_frames: int | None = None
) -> Iterator[Frame]:
    """Decode frames as RGB ``uint8`` arrays of shape ``(height, width, 3)``, uprighted.

    A frame whose display matrix asks for a rotation (phone videos) is rotated as a player
    would show it, so ``height`` and ``width`` are those of :func:`probe_video`.

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
        declared = _declared_frames(container, st, fps)
        i = 0
        try:
            for vf in container.decode(st):
                if max_frames is not None and i >= max_frames:
                    break
                if i % stride == 0:
                    t = float(vf.time) if vf.time is not None else (i / fps if fps else float(i))
                    rgb = vf.to_ndarray(format="rgb24")
                    turns = _quarter_turns(vf.rotation)
                    if turns:
                        rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                    yield Frame(i, t, rgb)
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
        if max_frames is None and declared > 0 and i < TRUNCATION_RATIO * declared and declared - i > 2:
            raise InputError(path, f"video is truncated: its header declares {declared} frames but only {i} decode")
    finally:
        container.close()
