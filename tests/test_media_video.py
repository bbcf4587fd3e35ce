"""Video probing/decoding: real H.264 files, one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cdrscreen.core.errors import InputError
from cdrscreen.media.video import iter_frames, probe_video
from tests.fixtures_core import write_tiny_video, write_tiny_wav


def test_probe_reports_size_rate_and_count(tmp_path: Path) -> None:
    v = write_tiny_video(tmp_path / "a.mp4", frames=12, audio=False)
    info = probe_video(v)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(10.0)
    assert info.n_frames == 12
    assert info.duration == pytest.approx(1.2, abs=0.15)


def test_iter_frames_stride_keeps_original_indices_and_times(tmp_path: Path) -> None:
    v = write_tiny_video(tmp_path / "a.mp4", frames=10, audio=False)
    all_frames = list(iter_frames(v))
    assert [f.index for f in all_frames] == list(range(10))
    strided = list(iter_frames(v, stride=3))
    assert [f.index for f in strided] == [0, 3, 6, 9]
    assert [f.time for f in strided] == pytest.approx([0.0, 0.3, 0.6, 0.9], abs=1e-6)
    assert strided[0].rgb.shape == (48, 64, 3) and strided[0].rgb.dtype == np.uint8
    # the tiny video's frames are grey levels (i * 20): decoding returns those pixels
    assert abs(float(strided[1].rgb.mean()) - 60) < 4
    assert len(list(iter_frames(v, max_frames=4))) == 4


def _one_line_error(fn, path: Path, words: str) -> None:  # noqa: ANN001
    with pytest.raises(InputError) as ei:
        fn(path)
    msg = str(ei.value)
    assert "\n" not in msg and str(path) in msg and words in msg, msg


@pytest.mark.parametrize("fn", [probe_video, lambda p: list(iter_frames(p))])
def test_bad_files_give_one_clear_line(tmp_path: Path, fn) -> None:  # noqa: ANN001
    _one_line_error(fn, tmp_path / "missing.mp4", "not found")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _one_line_error(fn, empty, "empty")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    _one_line_error(fn, text, "cannot be opened")
    _one_line_error(fn, write_tiny_wav(tmp_path / "a.wav"), "no video stream")
    _one_line_error(fn, tmp_path, "folder")


def test_truncated_video_is_reported_not_silently_short(tmp_path: Path) -> None:
    v = write_tiny_video(tmp_path / "a.mp4", frames=40, audio=False)
    data = v.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.8)])  # the index (moov) is at the end: lost
    _one_line_error(lambda p: list(iter_frames(p)), cut, "cannot be opened")
