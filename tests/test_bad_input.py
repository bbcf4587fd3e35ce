"""Bad inputs, one test per case: each ends in one clear error line or a documented NaN + flag.

Every case goes through the user's path (``cdrscreen extract`` / ``cdrscreen evaluate``
through :func:`cdrscreen.cli.main`) on real files generated here: H.264 videos of a real
face photo (the demo renderer), espeak-ng speech, Parquet feature tables. A user error
must give exit status 2 and ``error: <file>: <problem in words>`` on stderr, never a
traceback. Extraction failures are a one-line summary plus one line per failed recording.
The table of cases and what the user sees is ``docs/bad-input.md``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import yaml

from cdrscreen.cli import main
from cdrscreen.core.errors import printable
from cdrscreen.features.quality import split_quality
from tests.fixtures_core import write_tiny_video, write_tiny_wav
from tests.fixtures_evaluation import make_feature_table, small_protocol
from tests.fixtures_speech import PHRASES, espeak, silence, write_wav

FPS, N = 25, 40
SIZE = (320, 240)


# --- generated media ------------------------------------------------------------------
def write_video(path: Path, frames: list[np.ndarray], *, pts_ms: list[int] | None = None,
                rotation: int | None = None) -> Path:
    """Encode RGB frames to H.264 (mp4/mkv by suffix); optional per-frame pts (ms) and display rotation."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt = "yuv420p"
        tb = Fraction(1, 1000)
        if pts_ms is not None:
            vs.time_base = vs.codec_context.time_base = tb
        if rotation is not None:
            vs.set_display_rotation(rotation)
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if pts_ms is not None:
                vf.pts, vf.time_base = pts_ms[i], tb
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def face_frames() -> list[np.ndarray]:
    """40 frames (1.6 s at 25 fps) of a real face photo turning its head and moving its eyes."""
    from cdrscreen.demo import Trajectories, load_face, render_frames

    t = np.arange(N) / FPS
    traj = Trajectories.constant(N, yaw=6 * np.sin(2 * np.pi * 0.6 * t), pitch=3 * np.sin(2 * np.pi * 0.4 * t),
                                 iris_dx=0.1 * np.sin(2 * np.pi * 2 * t))
    frames, _ = render_frames(load_face("astronaut", SIZE), traj, fps=FPS)
    return frames


@pytest.fixture(scope="module")
def no_face_frames() -> list[np.ndarray]:
    """A real photograph without a face (scikit-image's coffee cup), panning slowly."""
    import cv2
    from skimage import data

    img = cv2.resize(data.coffee(), (SIZE[0] + N, SIZE[1]))
    return [np.ascontiguousarray(img[:, i : i + SIZE[0]]) for i in range(N)]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad_media")


@pytest.fixture(scope="module")
def upright(media: Path, face_frames: list[np.ndarray]) -> Path:
    return write_video(media / "upright.mp4", face_frames)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 4.5 s of espeak-ng speech at 16 kHz."""
    return np.concatenate([silence(0.2), espeak(PHRASES[0]), silence(0.5), espeak(PHRASES[1]), silence(0.2)])


# --- driving the CLI --------------------------------------------------------------------
def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, list[str]]:
    """Run ``cdrscreen ARGS`` in-process; return the exit status and the non-empty stderr lines."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, [ln for ln in err.splitlines() if ln.strip()]


def manifest(folder: Path, rows: list[str], header: str = "subject,video,cdr") -> Path:
    path = folder / "study.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def extract(capsys: pytest.CaptureFixture[str], folder: Path, rows: list[str], features: str,
            header: str = "subject,video,cdr") -> tuple[int, list[str], Path]:
    """``cdrscreen extract`` of a manifest written in ``folder``; returns (status, stderr lines, table path)."""
    m = manifest(folder, rows, header)
    out = folder / "features.parquet"
    code, lines = cli(capsys, "extract", m, "--features", features, "--out", out,
                      "--cache", folder / "cache", "--no-progress")
    return code, lines, out


def assert_error_line(code: int, lines: list[str], path: Path | str, *words: str) -> str:
    """Exit status 2 and exactly one ``error:`` line naming ``path`` and the problem."""
    assert code == 2, lines
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: "), line
    assert printable(str(path)) in line, line
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    return line


def assert_recording_failed(code: int, lines: list[str], path: Path, *words: str, of: int = 1) -> str:
    """Exit status 2 and one line naming the recording, the problem and the count of failures."""
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}: "), lines
    assert f"(1 of {of} recordings failed;" in lines[0], lines
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    return lines[0]


def nan_with_flag(df: pd.DataFrame, group: str, flag: str) -> pd.Series:
    """Assert every feature (non-quality) column of ``group`` is NaN; return the flag column."""
    feats, _ = split_quality([c for c in df.columns if c.startswith(f"{group}__")])
    assert feats and df[feats].isna().all().all(), df[feats].notna().sum().loc[lambda s: s > 0]
    return df[f"{group}__{flag}"]


#: Features that are undefined by design on a short clip: band powers need a 2-s gap-free
#: stretch, saccade means need a saccade.
UNDEFINED_ON_SHORT_CLIPS = ("__band_", "__saccade_amplitude", "__saccade_peak")


def finite_features(df: pd.DataFrame, group: str) -> None:
    feats, _ = split_quality([c for c in df.columns if c.startswith(f"{group}__")])
    feats = [c for c in feats if not any(k in c for k in UNDEFINED_ON_SHORT_CLIPS)]
    assert feats and np.isfinite(df[feats].to_numpy(float)).all()


# === video files ========================================================================
def test_corrupt_video(tmp_path: Path, capsys, upright: Path) -> None:
    bad = tmp_path / "corrupt.mp4"
    data = bytearray(upright.read_bytes())
    data[:256] = np.random.default_rng(0).integers(0, 256, 256, dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    code, lines, _ = extract(capsys, tmp_path, ["S1,corrupt.mp4,1"], "pupil")
    assert_error_line(code, lines, bad, "line 2", "field 'video'", "cannot be decoded")


def test_zero_byte_video(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    code, lines, _ = extract(capsys, tmp_path, ["S1,empty.mp4,1"], "pupil")
    assert_error_line(code, lines, tmp_path / "empty.mp4", "field 'video'", "empty (0 bytes)")


def test_truncated_video_mp4_index_lost(tmp_path: Path, capsys, upright: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(upright.read_bytes()[: upright.stat().st_size * 6 // 10])  # moov atom is at the end
    code, lines, _ = extract(capsys, tmp_path, ["S1,cut.mp4,1"], "pupil")
    assert_error_line(code, lines, cut, "field 'video'", "cannot be decoded")


def test_truncated_video_mkv_not_silently_short(tmp_path: Path, capsys, face_frames) -> None:
    # Matroska needs no index: a cut file opens and decodes its first half without error,
    # which would give features of half an interview
    full = write_video(tmp_path / "full.mkv", face_frames)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    code, lines, out = extract(capsys, tmp_path, ["S1,cut.mkv,1"], "pupil")
    assert_recording_failed(code, lines, cut, "truncated", f"declares {N} frames")
    assert not out.exists()


def test_wrong_extension_wav_named_mp4(tmp_path: Path, capsys) -> None:
    fake = tmp_path / "interview.mp4"
    write_tiny_wav(fake)
    code, lines, _ = extract(capsys, tmp_path, ["S1,interview.mp4,1"], "pupil")
    assert_error_line(code, lines, fake, "field 'video'", "has no video stream")


def test_wrong_extension_photo_named_mp4(tmp_path: Path, capsys, face_frames) -> None:
    import cv2

    photo = tmp_path / "interview.mp4"
    ok, jpg = cv2.imencode(".jpg", face_frames[0][:, :, ::-1])
    photo.write_bytes(jpg.tobytes())
    code, lines, _ = extract(capsys, tmp_path, ["S1,interview.mp4,1"], "pupil")
    assert_error_line(code, lines, photo, "field 'video'", "still image (jpeg), not a video")


def test_no_video_stream(tmp_path: Path, capsys, speech) -> None:
    audio_only = tmp_path / "audio_only.mp4"  # a valid mp4 holding only an AAC track
    with av.open(str(audio_only), "w") as out:
        st = out.add_stream("aac", rate=16000)
        st.layout = "mono"
        fr = av.AudioFrame.from_ndarray(speech[None, :].astype(np.float32), format="fltp", layout="mono")
        fr.sample_rate = 16000
        for pkt in [*st.encode(fr), *st.encode(None)]:
            out.mux(pkt)
    code, lines, _ = extract(capsys, tmp_path, ["S1,audio_only.mp4,1"], "headpose")
    assert_error_line(code, lines, audio_only, "field 'video'", "has no video stream")


def test_no_audio_stream(tmp_path: Path, capsys) -> None:
    mute = write_tiny_video(tmp_path / "mute.mp4", audio=False)
    code, lines, out = extract(capsys, tmp_path, ["S1,mute.mp4,1"], "mfcc")
    assert_recording_failed(code, lines, mute, "video has no audio track")
    assert not out.exists()


def test_variable_frame_rate_times_come_from_pts(media: Path, face_frames) -> None:
    from cdrscreen.media.video import probe_video
    from cdrscreen.tracking.face import track_video

    # 25 fps for 20 frames, then 10 fps: frame index / average fps would be off by up to 0.4 s
    pts = [40 * i if i < 20 else 800 + 100 * (i - 20) for i in range(N)]
    vfr = write_video(media / "vfr.mp4", face_frames, pts_ms=pts)
    info = probe_video(vfr)
    assert abs(info.fps - FPS) > 5  # the average rate is not the real rate of either half
    track = track_video(vfr)
    np.testing.assert_allclose(track.table["time"], np.array(pts) / 1000, atol=1e-6)
    assert track.table["success"].all()


def test_rotated_video_metadata_is_uprighted(media: Path, face_frames, upright: Path) -> None:
    from cdrscreen.media.video import iter_frames, probe_video
    from cdrscreen.tracking.face import track_video

    # a phone held upright: landscape pixels turned a quarter clockwise, plus "rotate 90° CCW to display"
    turned = [np.ascontiguousarray(np.rot90(f, -1)) for f in face_frames]
    phone = write_video(media / "phone.mp4", turned, rotation=90)
    info = probe_video(phone)
    assert (info.width, info.height, info.rotation) == (*SIZE, 90)
    first = next(iter_frames(phone)).rgb
    assert first.shape == (SIZE[1], SIZE[0], 3)
    assert np.abs(first.astype(int) - face_frames[0].astype(int)).mean() < 6  # upright, as a player shows it
    a, b = track_video(phone).table, track_video(upright).table
    assert a["success"].all() and b["success"].all()
    for angle in ("roll", "yaw", "pitch"):  # sideways, roll would read ~90 degrees
        assert np.abs(a[angle] - b[angle]).median() < 2.0, angle


def test_tiny_resolution(tmp_path: Path, capsys, face_frames) -> None:
    import cv2

    # 20 x 16 pixels: nothing to track (at 24 x 18 MediaPipe still tracks a few frames, which
    # tracked_fraction reports; see docs/bad-input.md)
    write_video(tmp_path / "tiny.mp4", [cv2.resize(f, (20, 16), interpolation=cv2.INTER_AREA) for f in face_frames])
    code, lines, out = extract(capsys, tmp_path, ["S1,tiny.mp4,1"], "pupil,headpose")
    assert code == 0, lines
    df = pd.read_parquet(out)
    for g in ("pupil", "headpose"):
        assert nan_with_flag(df, g, "valid").tolist() == [0.0]
        assert df[f"{g}__tracked_fraction"].tolist() == [0.0]


def test_face_barely_trackable(tmp_path: Path, capsys, face_frames) -> None:
    from cdrscreen.features.headpose import smooth

    # 24 x 18 pixels: MediaPipe tracks the face on a few frames only; the pose of such a short
    # stretch used to come back one sample longer than the gaze it is correlated with
    assert smooth(np.arange(4.0), 5).shape == (4,)
    import cv2

    write_video(tmp_path / "small.mp4", [cv2.resize(f, (24, 18), interpolation=cv2.INTER_AREA) for f in face_frames])
    code, lines, out = extract(capsys, tmp_path, ["S1,small.mp4,1"], "pupil,headpose")
    assert code == 0, lines
    df = pd.read_parquet(out)
    for g in ("pupil", "headpose"):
        assert df[f"{g}__tracked_fraction"].item() < 0.5  # how little was tracked is in the row
        assert df[f"{g}__quality_low_tracking"].item() == 1.0
    frac = df["pupil__tracked_fraction"].item()
    assert df["meta__warnings"].item() == f"face tracked in only {frac:.0%} of frames"
    assert any(ln.startswith("warning: S1/") and "face tracked in only" in ln for ln in lines), lines
    spectrum, _ = split_quality([c for c in df.columns if c.startswith("pupil__stft_")])
    assert df["pupil__valid"].item() == float(df[spectrum].notna().any(axis=None))  # valid says if there is one


def test_no_face_at_all(tmp_path: Path, capsys, no_face_frames) -> None:
    write_video(tmp_path / "noface.mp4", no_face_frames)
    code, lines, out = extract(capsys, tmp_path, ["S1,noface.mp4,1"], "pupil,headpose")
    assert code == 0, lines
    df = pd.read_parquet(out)
    for g in ("pupil", "headpose"):
        assert nan_with_flag(df, g, "valid").tolist() == [0.0]
        assert df[f"{g}__tracked_fraction"].tolist() == [0.0]
        assert df[f"{g}__quality_no_face"].tolist() == [1.0]
    assert df["meta__warnings"].tolist() == ["no face found"]
    assert [ln for ln in lines if ln.startswith("warning:")] == [f"warning: S1/1 ({tmp_path / 'noface.mp4'}): no face found"]


def test_face_lost_mid_video(tmp_path: Path, capsys, face_frames, no_face_frames) -> None:
    lost = range(15, 30)  # 0.6 s without the face
    frames = [no_face_frames[i] if i in lost else f for i, f in enumerate(face_frames)]
    write_video(tmp_path / "lost.mp4", frames)
    code, lines, out = extract(capsys, tmp_path, ["S1,lost.mp4,1"], "pupil,headpose")
    assert code == 0, lines
    df = pd.read_parquet(out)
    for g in ("pupil", "headpose"):
        assert df[f"{g}__valid"].tolist() == [1.0]
        assert df[f"{g}__tracked_fraction"].item() == pytest.approx((N - len(lost)) / N, abs=1.5 / N)
        assert df[f"{g}__n_segments"].tolist() == [2.0]
        finite_features(df, g)  # computed on the tracked stretches, the gap is not interpolated into NaN


def test_two_faces(tmp_path: Path, face_frames) -> None:
    from cdrscreen.demo import Trajectories, load_face, render_frames
    from cdrscreen.features.headpose import HeadPoseExtractor
    from cdrscreen.tracking.face import TrackConfig, track_video

    enter = 8
    visitor, _ = render_frames(load_face("grace_hopper", SIZE, face_height=0.7),
                               Trajectories.constant(N, roll=np.linspace(0, 8, N)), fps=FPS)
    frames = [np.hstack([f, visitor[i] if i >= enter else np.full_like(f, 90)]) for i, f in enumerate(face_frames)]
    two = write_video(tmp_path / "two.mp4", frames)
    t = track_video(two).table
    assert t["success"].all()
    assert (t.loc[t["frame"] >= enter + TrackConfig().verify_every, "n_faces"] == 2).mean() > 0.9
    assert ((t["face_x"] + t["face_w"] / 2) < SIZE[0]).all(), "the second person took over the track"
    # the subject's numbers are those of the subject alone in the same frame
    alone = track_video(write_video(tmp_path / "alone.mp4", [np.hstack([f, np.full_like(f, 90)])
                                                              for f in face_frames])).table
    assert np.abs(t["yaw"] - alone["yaw"]).median() < 1.0
    head = HeadPoseExtractor().features_from_track(track_video(two))
    assert head["valid"] == 1.0


def test_all_black_frames(tmp_path: Path, capsys, face_frames) -> None:
    write_video(tmp_path / "black.mp4", [np.zeros_like(f) for f in face_frames])
    code, lines, out = extract(capsys, tmp_path, ["S1,black.mp4,1"], "pupil,headpose")
    assert code == 0, lines
    df = pd.read_parquet(out)
    for g in ("pupil", "headpose"):
        assert nan_with_flag(df, g, "valid").tolist() == [0.0]


# === audio ===============================================================================
SPEECH_GROUPS = ("mfcc", "gemaps", "timing")


def _speech_table(capsys, folder: Path, name: str, signal: np.ndarray, sr: int = 16000) -> pd.DataFrame:
    write_wav(folder / name, signal, sr)
    code, lines, out = extract(capsys, folder, [f"S1,{name},1"], ",".join(SPEECH_GROUPS), header="subject,audio,cdr")
    assert code == 0, lines
    return pd.read_parquet(out)


def test_silent_audio(tmp_path: Path, capsys) -> None:
    df = _speech_table(capsys, tmp_path, "silent.wav", silence(5.0))
    for g in SPEECH_GROUPS:
        assert nan_with_flag(df, g, "quality_ok").tolist() == [0.0]
        assert df[f"{g}__speech_seconds"].tolist() == [0.0]


def test_audio_of_0_1_seconds(tmp_path: Path, capsys, speech) -> None:
    df = _speech_table(capsys, tmp_path, "short.wav", speech[3200:4800])
    for g in SPEECH_GROUPS:
        assert nan_with_flag(df, g, "quality_ok").tolist() == [0.0]
        assert df[f"{g}__speech_seconds"].item() < 1.0


def test_clipped_audio(tmp_path: Path, capsys, speech) -> None:
    df = _speech_table(capsys, tmp_path, "clipped.wav", np.clip(speech * 8, -0.5, 0.5))
    for g in SPEECH_GROUPS:
        if g != "timing":  # (pause statistics may be NaN in any recording without pauses)
            finite_features(df, g)  # computed, but flagged
        assert df[f"{g}__quality_ok"].tolist() == [0.0]
        assert df[f"{g}__clipped_fraction"].item() > 0.01


def test_audio_at_8_khz(tmp_path: Path, capsys, speech) -> None:
    from cdrscreen.media.audio import resample

    df = _speech_table(capsys, tmp_path, "phone.wav", resample(speech, 16000, 8000), sr=8000)
    wide = _speech_table(capsys, tmp_path, "wide.wav", speech)
    for g in ("mfcc", "gemaps"):
        finite_features(df, g)  # resampled to 16 kHz and computed...
        assert df[f"{g}__quality_ok"].tolist() == [0.0]  # ...but flagged: nothing above 4 kHz was recorded
        assert df[f"{g}__source_sr"].tolist() == [8000.0]
        assert wide[f"{g}__quality_ok"].tolist() == [1.0] and wide[f"{g}__source_sr"].tolist() == [16000.0]


# === files and paths ======================================================================
def test_missing_file(tmp_path: Path, capsys) -> None:
    code, lines, _ = extract(capsys, tmp_path, ["S1,videos/S1.mp4,1"], "pupil")
    assert_error_line(code, lines, tmp_path / "videos" / "S1.mp4", "line 2", "field 'video'", "file not found")


#: Capabilities that let root read any file; dropped to test permissions when running as root.
_ROOT_READ_CAPS = "-dac_override,-dac_read_search"


def test_unreadable_permissions(tmp_path: Path, capsys) -> None:
    locked = write_tiny_video(tmp_path / "locked.mp4")
    locked.chmod(0)
    try:
        if os.geteuid() != 0:
            code, lines, _ = extract(capsys, tmp_path, ["S1,locked.mp4,1"], "pupil")
        else:  # root reads any file: run the CLI without the capabilities that allow it
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root and util-linux 'setpriv' is missing: chmod 000 cannot block root")
            m = manifest(tmp_path, ["S1,locked.mp4,1"])
            proc = subprocess.run(
                [setpriv, f"--bounding-set={_ROOT_READ_CAPS}", f"--inh-caps={_ROOT_READ_CAPS}",
                 sys.executable, "-m", "cdrscreen", "extract", str(m), "--features", "pupil",
                 "--out", str(tmp_path / "f.parquet"), "--cache", str(tmp_path / "cache"), "--no-progress"],
                capture_output=True, text=True, timeout=300,
            )
            assert "Traceback" not in proc.stderr, proc.stderr
            code, lines = proc.returncode, [ln for ln in proc.stderr.splitlines() if ln.strip()]
    finally:
        locked.chmod(0o644)
    assert_error_line(code, lines, locked, "field 'video'", "not readable (permissions)")


def test_non_utf8_path(tmp_path: Path, capsys) -> None:
    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))  # Latin-1 e-acute: not UTF-8
    folder.mkdir()
    write_tiny_video(folder / "S1.mp4")
    code, lines, _ = extract(capsys, folder, ["S1,S1.mp4,1"], "pupil")
    line = assert_error_line(code, lines, folder / "S1.mp4", "field 'video'", "not valid UTF-8", "rename")
    assert "caf\\xe9" in line  # the file is named by its bytes
    line.encode("utf-8")  # and the line itself prints anywhere


def test_manifest_not_utf8_text(tmp_path: Path, capsys) -> None:
    write_tiny_video(tmp_path / "a.mp4")
    m = tmp_path / "study.csv"
    m.write_bytes("subject,video,cdr,cov_site\nS1,a.mp4,1,Malmö\n".encode("latin-1"))
    code, lines = cli(capsys, "extract", m, "-f", "pupil", "-o", tmp_path / "f.parquet", "--no-progress")
    assert_error_line(code, lines, m, "not UTF-8 text")


# === manifest ============================================================================
def test_manifest_bad_cdr_value(tmp_path: Path, capsys) -> None:
    write_tiny_video(tmp_path / "a.mp4")
    code, lines, _ = extract(capsys, tmp_path, ["S1,a.mp4,1.5"], "pupil")
    assert_error_line(code, lines, tmp_path / "study.csv", "line 2", "field 'cdr'", "0, 0.5, 1, 2, 3", "1.5")


def test_manifest_duplicate_recording(tmp_path: Path, capsys) -> None:
    write_tiny_video(tmp_path / "a.mp4")
    write_tiny_video(tmp_path / "b.mp4", frames=12)
    code, lines, _ = extract(capsys, tmp_path, ["S1,a.mp4,1", "S1,b.mp4,1"], "pupil")
    assert_error_line(code, lines, tmp_path / "study.csv", "line 3", "duplicate subject+session", "(S1, 1)", "line 2")


def test_manifest_one_class_only(tmp_path: Path, capsys, speech) -> None:
    rows = []
    for i in range(4):
        write_wav(tmp_path / f"s{i}.wav", speech[i * 800 :])
        rows.append(f"S{i},s{i}.wav,1")  # everybody CDR 1
    code, lines, table = extract(capsys, tmp_path, rows, "timing", header="subject,audio,cdr")
    assert code == 0, lines
    proto = tmp_path / "p.yaml"
    proto.write_text(yaml.safe_dump(small_protocol()))
    code, lines = cli(capsys, "evaluate", proto, "--features", table, "--out", tmp_path / "run")
    assert_error_line(code, lines, table, "need subjects of at least 2 classes", "1+")
    assert not (tmp_path / "run" / "metrics.json").exists()


# === protocols and feature tables ===========================================================
def _evaluate(capsys, tmp_path: Path, table: pd.DataFrame, protocol: dict) -> tuple[int, list[str], Path, Path]:
    t, p, run = tmp_path / "features.parquet", tmp_path / "protocol.yaml", tmp_path / "run"
    table.to_parquet(t)
    p.write_text(yaml.safe_dump(protocol))
    code, lines = cli(capsys, "evaluate", p, "--features", t, "--out", run)
    return code, lines, p, t


def test_protocol_typo(tmp_path: Path, capsys) -> None:
    proto = small_protocol()
    proto["models"] = [{"name": "svm", "learner": "svm", "parms": {"C": 1.0}}]
    code, lines, p, _ = _evaluate(capsys, tmp_path, make_feature_table(12, seed=0), proto)
    assert_error_line(code, lines, p, "parms", "did you mean 'params'")


def test_feature_table_missing_a_group(tmp_path: Path, capsys) -> None:
    table = make_feature_table(12, groups={"pupil": 4, "headpose": 3}, seed=0)
    code, lines, _, t = _evaluate(capsys, tmp_path, table, small_protocol(features={"groups": ["pupil", "mfcc"]}))
    assert_error_line(code, lines, t, "feature group(s) mfcc not in the table", "available: headpose, pupil")


def test_subject_with_all_nan_features(tmp_path: Path, capsys) -> None:
    table = make_feature_table(12, signal={"pupil": 1.5}, seed=1)
    lost = table.index.get_level_values("subject") == "S003"
    table.loc[lost, [c for c in table.columns if not c.startswith("meta__")]] = np.nan
    code, lines, _, _ = _evaluate(capsys, tmp_path, table, small_protocol())
    assert code == 0, lines
    inputs = json.loads((tmp_path / "run" / "inputs.json").read_text())
    assert inputs["excluded_rows"]["no_features"] == 1
    assert inputs["subjects_without_features"] == ["S003"]
    pred = pd.read_parquet(tmp_path / "run" / "predictions.parquet")
    subjects = set(pred.index.get_level_values("subject"))
    assert "S003" not in subjects and len(subjects) == 11  # no prediction made from imputed medians


# === faults during a run ===================================================================
def _speech_study(folder: Path, speech: np.ndarray, n: int = 3) -> Path:
    for i in range(n):
        write_wav(folder / f"s{i}.wav", speech[i * 1600 :])
    return manifest(folder, [f"S{i},s{i}.wav,{[0.5, 1][i % 2]}" for i in range(n)], "subject,audio,cdr")


def test_disk_full_during_cache_write(tmp_path: Path, capsys, speech, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _speech_study(tmp_path, speech)
    cache, out = tmp_path / "cache", tmp_path / "features.parquet"
    args = ("extract", m, "--features", "mfcc", "--out", out, "--cache", cache, "--no-progress")
    real = pd.DataFrame.to_parquet
    writes: list[str] = []

    def disk_fills_on_second_entry(self: pd.DataFrame, path, *a, **k):  # noqa: ANN001, ANN002, ANN003
        if Path(path).parent == cache / "mfcc":
            writes.append(str(path))
            if len(writes) == 2:  # half the bytes land, then the device is full
                Path(path).write_bytes(b"PAR1" + b"\0" * 64)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_fills_on_second_entry)
    code, lines = cli(capsys, *args)
    line = assert_recording_failed(code, lines, tmp_path / "s1.wav", "No space left on device", str(cache),
                                   of=3)
    assert "cannot write to the feature cache" in line and "cannot be read" not in line
    assert not out.exists()
    entries = {p: p.stat().st_mtime_ns for p in (cache / "mfcc").iterdir()}
    assert len(entries) == 2 and all(p.suffix == ".parquet" for p in entries), entries  # no partial file left
    for p in entries:
        pd.read_parquet(p)  # the earlier (and later) results are complete

    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    code, lines = cli(capsys, *args)
    assert code == 0, lines
    assert "(1 results computed, 2 from cache)" in lines[-1]
    assert all(p.stat().st_mtime_ns == t for p, t in entries.items())
    code, _ = cli(capsys, "extract", m, "--features", "mfcc", "--out", tmp_path / "clean.parquet",
                  "--cache", tmp_path / "clean_cache", "--no-progress")
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "clean.parquet"))


def test_kill_9_mid_cache_write_leftovers_are_ignored(tmp_path: Path, capsys, speech) -> None:
    # What SIGKILL during an entry's write leaves: a temporary file beside the missing entry
    # (a real SIGKILL of `cdrscreen extract` is tests/test_extract.py::
    # test_kill_9_then_rerun_gives_identical_features_recomputing_only_unfinished).
    m = _speech_study(tmp_path, speech, n=2)
    cache, out = tmp_path / "cache", tmp_path / "features.parquet"
    args = ("extract", m, "--features", "mfcc", "--out", out, "--cache", cache, "--no-progress")
    assert cli(capsys, *args)[0] == 0
    clean = pd.read_parquet(out)
    entry = sorted((cache / "mfcc").glob("*.parquet"))[0]
    (cache / "mfcc" / f".{entry.name}.k9x2z.tmp").write_bytes(entry.read_bytes()[:100])
    entry.unlink()
    out.unlink()
    code, lines = cli(capsys, *args)
    assert code == 0, lines
    assert "(1 results computed, 1 from cache)" in lines[-1]
    pd.testing.assert_frame_equal(pd.read_parquet(out), clean)
    assert entry.exists()

