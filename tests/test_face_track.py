"""Per-frame face/iris tracking on rendered videos with planted blinks, occlusion and a second face."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from cdrscreen.demo import Trajectories, load_face, render_face_video, render_frames
from cdrscreen.features.headpose import HeadPoseExtractor
from cdrscreen.features.pupil import PupilExtractor
from cdrscreen.tracking import face as face_mod
from cdrscreen.tracking.face import COLUMNS, load_track, track_video

N, HIDDEN, BLINK = 125, range(60, 80), range(30, 34)


@pytest.fixture(scope="module")
def gap_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 s at 25 fps: a blink at frames 30-33 and the face covered on frames 60-79."""
    t = np.arange(N) / 25
    closure = np.zeros(N)
    closure[list(BLINK)] = [0.5, 1, 1, 0.5]
    visible = np.ones(N, bool)
    visible[list(HIDDEN)] = False
    traj = Trajectories.constant(N, yaw=6 * np.sin(2 * np.pi * 0.4 * t),
                                 iris_dx=0.1 * np.sin(2 * np.pi * 1.5 * t),
                                 closure=closure, face_visible=visible)
    path = tmp_path_factory.mktemp("face") / "gap.mp4"
    render_face_video(path, "grace_hopper", traj, fps=25)
    return path


@pytest.fixture(scope="module")
def gap_track(gap_video: Path) -> face_mod.FaceTrack:
    return track_video(gap_video)


def test_success_flags_follow_the_hidden_face(gap_track: face_mod.FaceTrack) -> None:
    t = gap_track.table
    assert list(t.columns) == list(COLUMNS) and len(t) == N
    assert t["frame"].tolist() == list(range(N))
    fails = set(np.flatnonzero(~t["success"].to_numpy()))
    assert set(HIDDEN) <= fails, sorted(set(HIDDEN) - fails)
    assert fails <= set(range(HIDDEN.start - 1, HIDDEN.stop + 1)), sorted(fails)
    blinks = set(np.flatnonzero(t["blink"].to_numpy()))
    assert blinks and blinks <= set(range(BLINK.start - 1, BLINK.stop + 1)), sorted(blinks)


def test_no_unflagged_nan_in_track(gap_track: face_mod.FaceTrack) -> None:
    t = gap_track.table
    ok = t["success"].to_numpy()
    values = t.drop(columns=["frame", "time", "success", "blink", "n_faces", "confidence"])
    assert np.isfinite(values[ok].to_numpy()).all()
    assert values[~ok].isna().all().all()
    assert (t.loc[~ok, "confidence"] == 0).all() and (t.loc[ok, "confidence"] > 0.5).all()
    lm = gap_track.landmarks
    assert lm.shape == (N, 478, 3)
    assert np.isfinite(lm[ok]).all() and np.isnan(lm[~ok]).all()
    idx = gap_track.to_frame().index
    assert list(idx.names) == ["file", "frame", "time"]


def test_features_flag_the_gap_instead_of_leaking_nan(gap_track: face_mod.FaceTrack) -> None:
    pupil = PupilExtractor().features_from_track(gap_track)
    head = HeadPoseExtractor().features_from_track(gap_track)
    for feats in (pupil, head):
        # mean saccade amplitude / peak velocity are undefined (NaN) when no saccade was found
        no_events = ("saccade_amplitude_deg", "saccade_peak_velocity_deg_s")
        bad = [k for k, v in feats.items() if not np.isfinite(v)
               and not (k in no_events and feats.get("saccade_rate_per_min") == 0)]
        assert not bad, bad
        assert feats["tracked_fraction"] == pytest.approx((N - len(HIDDEN)) / N, abs=1.5 / N)
        assert feats["n_segments"] == 2  # the 0.8 s gap splits; the blink is bridged
        assert feats["valid"] == 1.0
    assert pupil["usable_fraction"] < pupil["tracked_fraction"]  # blink frames not usable
    assert pupil["blink_rate_per_min"] > 0


def test_track_is_cached_and_reloaded_without_retracking(
    gap_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = track_video(gap_video, cache=tmp_path)
    entries = sorted(p.suffix for p in (tmp_path / "facetrack").iterdir())
    assert entries == [".json", ".npy", ".parquet"]
    face_mod._MEMO.clear()

    def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("re-tracked although a cached track exists")

    monkeypatch.setattr(face_mod, "_compute_track", boom)
    again = track_video(gap_video, cache=tmp_path)
    pd.testing.assert_frame_equal(first.table, again.table)
    np.testing.assert_array_equal(first.landmarks, again.landmarks)
    # reports load the same track through $CDRSCREEN_CACHE
    face_mod._MEMO.clear()
    monkeypatch.setenv("CDRSCREEN_CACHE", str(tmp_path))
    pd.testing.assert_frame_equal(load_track(gap_video).table, first.table)
    # another configuration is a different entry: it must track again
    with pytest.raises(AssertionError, match="re-tracked"):
        track_video(gap_video, cache=tmp_path, stride=2)


def test_a_larger_second_face_does_not_take_over(tmp_path: Path) -> None:
    n, enter = 60, 20
    subject, _ = render_frames(load_face("grace_hopper", (320, 240)),
                               Trajectories.constant(n, yaw=np.linspace(-5, 5, n)), fps=25)
    visitor, _ = render_frames(load_face("astronaut", (320, 240), face_height=0.8),
                               Trajectories.constant(n, roll=np.linspace(0, 5, n)), fps=25)
    path = tmp_path / "two.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 640, 240, "yuv420p"
        for i in range(n):
            right = visitor[i] if i >= enter else np.full_like(visitor[i], 90)
            frame = np.ascontiguousarray(np.hstack([subject[i], right]))
            for pkt in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    t = track_video(path).table
    assert t["success"].all()
    # the visitor is noticed at the next periodic detector check and then tracked too
    assert (t.loc[t["frame"] >= enter + face_mod.TrackConfig().verify_every, "n_faces"] == 2).mean() > 0.9
    centre = t["face_x"] + t["face_w"] / 2
    assert (centre < 320).all(), "the tracked face jumped to the second person"


def test_graph_runner_returns_what_process_returns(gap_video: Path) -> None:
    """The lean graph call gives the landmarks and detections ``process`` gives, frame for frame."""
    import mediapipe as mp

    from cdrscreen.media.video import iter_frames

    frames = [fr.rgb for fr in iter_frames(gap_video) if fr.index in (0, 10, 20, 31, 60, 70, 90)]
    frames.append(np.full_like(frames[0], 128))  # no face at all
    h, w = frames[0].shape[:2]

    def mesh() -> object:
        return mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True)

    with mesh() as a, mesh() as b, mp.solutions.face_detection.FaceDetection(model_selection=0) as d1, \
            mp.solutions.face_detection.FaceDetection(model_selection=0) as d2:
        lean = face_mod._GraphRunner(a, "multi_face_landmarks")
        assert lean._lean  # the pinned MediaPipe: the lean path is the one in use
        n_faces = []
        for rgb in frames:
            got = face_mod._landmarks(lean, rgb, w, h)
            want = [face_mod.landmark_array(f, w, h) for f in (b.process(rgb).multi_face_landmarks or [])]
            assert len(got) == len(want)
            for g, x in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, x)
            n_faces.append(len(got))
            boxes = [det.location_data.relative_bounding_box for det in d2.process(rgb).detections or []]
            centres = [((q.xmin + q.width / 2) * w, (q.ymin + q.height / 2) * h) for q in boxes]
            assert face_mod._detect(face_mod._GraphRunner(d1, "detections"), rgb) == centres
    assert 1 in n_faces and 0 in n_faces, n_faces  # frames with and without a face: both compared


def test_graph_runner_falls_back_to_process(gap_video: Path) -> None:
    import mediapipe as mp

    from cdrscreen.media.video import iter_frames

    rgb = next(iter(iter_frames(gap_video))).rgb
    h, w = rgb.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as m:
        runner = face_mod._GraphRunner(m, "multi_face_landmarks")
        runner._lean = False  # as with a MediaPipe release without the internals it reads
        slow = face_mod._landmarks(runner, rgb, w, h)
        runner._lean = True
        fast = face_mod._landmarks(runner, rgb, w, h)
    assert len(slow) == len(fast) == 1
    np.testing.assert_array_equal(slow[0], fast[0])
