"""Tiny generated media files for manifest and CLI tests (not faces; see fixtures_media)."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest


def write_tiny_video(path: Path, *, frames: int = 10, audio: bool = True) -> Path:
    """Write a 64x48 H.264 mp4 (optionally with a 440 Hz AAC tone)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        as_ = out.add_stream("aac", rate=16000) if audio else None
        for i in range(frames):
            img = np.full((48, 64, 3), (i * 20) % 255, np.uint8)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if as_ is not None:
            t = np.arange(16000) / 16000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for pkt in as_.encode(frame):
                out.mux(pkt)
            for pkt in as_.encode():
                out.mux(pkt)
    return path


def write_tiny_wav(path: Path, seconds: float = 1.0, sr: int = 16000) -> Path:
    """Write a mono 16-bit wav with a quiet tone."""
    t = np.arange(int(seconds * sr)) / sr
    pcm = (0.1 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="session")
def tiny_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder with a tiny video, a video without audio, a wav and a non-media file."""
    d = tmp_path_factory.mktemp("tiny_media")
    return {
        "dir": d,
        "video": write_tiny_video(d / "a.mp4"),
        "video_b": write_tiny_video(d / "b.mp4", frames=12),
        "silent_video": write_tiny_video(d / "noaudio.mp4", audio=False),
        "wav": write_tiny_wav(d / "a.wav"),
    }
