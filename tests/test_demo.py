"""Demo cohort builder: real decodable videos with the planted motion, speech and manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")
mp = pytest.importorskip("mediapipe")


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def _track(path: Path, static: bool = False) -> list[np.ndarray | None]:
    """MediaPipe FaceMesh (iris refinement) landmarks in pixels per decoded frame."""
    out: list[np.ndarray | None] = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=static, refine_landmarks=True,
                                         max_num_faces=1) as fm, av.open(str(path)) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            r = fm.process(img)
            out.append(None if not r.multi_face_landmarks else
                       np.array([[p.x * w, p.y * h] for p in r.multi_face_landmarks[0].landmark]))
    return out


def _audio_seconds(path: Path) -> float:
    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        n = sum(fr.samples for fr in c.decode(st))
        return n / st.rate


# -- files decode as promised -----------------------------------------------------------
def test_face_video_decodes_with_pyav_and_opencv(face_video, face_video_truth):
    gt = face_video_truth
    assert gt.n_frames == 75 and gt.fps == 25.0 and gt.size == (320, 240)
    with av.open(str(face_video)) as c:
        assert "SYNTHETIC" in c.metadata.get("comment", "")
        vs = c.streams.video[0]
        assert float(vs.average_rate) == pytest.approx(25.0)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(vs)]
    assert len(frames) == 75
    assert frames[0].shape == (240, 320, 3)
    cap = cv2.VideoCapture(str(face_video))
    try:
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
        n = 0
        while True:
            ok, fr = cap.read()
            if not ok:
                break
            n += 1
    finally:
        cap.release()
    assert n == 75
    # The picture changes over time (planted motion), and is not blank.
    assert np.abs(frames[0].astype(int) - frames[40].astype(int)).mean() > 1.0
    assert 40 < frames[0].mean() < 220


def test_audio_has_expected_duration(face_video, demo_cohort_small):
    assert _audio_seconds(face_video) == pytest.approx(3.0, abs=0.07)
    for v in sorted((demo_cohort_small.parent / "videos").glob("*.mp4")):
        assert _audio_seconds(v) == pytest.approx(3.0, abs=0.07)


def test_mediapipe_finds_the_face_in_cohort_videos(demo_cohort_small):
    videos = sorted((demo_cohort_small.parent / "videos").glob("*.mp4"))
    assert len(videos) == 6
    for v in videos[:3]:
        found = np.array([lm is not None for lm in _track(v)])
        truth = pd.read_csv(demo_cohort_small.parent / "ground_truth" / f"{v.stem}.frames.csv")
        visible = truth.face_visible.to_numpy(bool)
        assert len(found) == len(truth) == 75
        assert found.mean() >= 0.95 or found[visible].mean() >= 0.98, v.name
        assert found[visible].mean() >= 0.95, v.name


# -- determinism -----------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    from cdrscreen.demo import make_clip

    a = make_clip(tmp_path / "a.mp4", duration_s=1.0, seed=5)
    make_clip(tmp_path / "b.mp4", duration_s=1.0, seed=5)
    c = make_clip(tmp_path / "c.mp4", duration_s=1.0, seed=6)
    assert _md5(tmp_path / "a.mp4") == _md5(tmp_path / "b.mp4")
    assert _md5(tmp_path / "a.mp4") != _md5(tmp_path / "c.mp4")
    assert not np.allclose(a.table.yaw, c.table.yaw)


def test_cohort_identical_whatever_n_jobs(tmp_path):
    from cdrscreen.demo import build_cohort

    m1 = build_cohort(tmp_path / "one", n_subjects=3, seed=1, duration_s=1.0, n_jobs=1)
    m2 = build_cohort(tmp_path / "two", n_subjects=3, seed=1, duration_s=1.0, n_jobs=2)
    for f in ("manifest.csv", "cohort.json", "ground_truth/subjects.csv", "videos/DEMO01.mp4",
              "videos/DEMO03.mp4", "ground_truth/DEMO02.frames.csv"):
        assert _md5(m1.parent / f) == _md5(m2.parent / f), f
    # Re-running with the same settings reuses the cohort instead of rebuilding it.
    before = (m1.parent / "videos" / "DEMO01.mp4").stat().st_mtime_ns
    assert build_cohort(tmp_path / "one", n_subjects=3, seed=1, duration_s=1.0, n_jobs=1) == m1
    assert (m1.parent / "videos" / "DEMO01.mp4").stat().st_mtime_ns == before
    # An interrupted build resumes: finished subjects are kept, the missing one is redone.
    digest = _md5(m1.parent / "videos" / "DEMO02.mp4")
    subjects_csv = _md5(m1.parent / "ground_truth" / "subjects.csv")
    (m1.parent / "cohort.json").unlink()
    (m1.parent / "videos" / "DEMO02.mp4").unlink()
    build_cohort(tmp_path / "one", n_subjects=3, seed=1, duration_s=1.0, n_jobs=1)
    assert (m1.parent / "videos" / "DEMO01.mp4").stat().st_mtime_ns == before
    assert _md5(m1.parent / "videos" / "DEMO02.mp4") == digest
    assert _md5(m1.parent / "ground_truth" / "subjects.csv") == subjects_csv


# -- the planted motion is really in the pixels ------------------------------------------
def _planted_clip(tmp_path: Path, face: str = "astronaut"):
    from cdrscreen.demo import Trajectories, render_face_video

    n = 100
    t = np.arange(n) / 25.0
    traj = Trajectories.constant(
        n, yaw=8 * np.sin(2 * np.pi * 0.3 * t), pitch=5 * np.sin(2 * np.pi * 0.2 * t + 0.5),
        tx=6 * np.sin(2 * np.pi * 0.15 * t), iris_dx=0.18 * np.sin(2 * np.pi * 1.1 * t),
        iris_dy=0.3 * np.sin(2 * np.pi * 0.7 * t + 1.0), noise_sigma=2.0)
    path = tmp_path / f"{face}.mp4"
    gt = render_face_video(path, face, traj, fps=25, size=(320, 240), seed=3)
    return path, gt


def test_iris_moves_relative_to_the_head(tmp_path):
    path, gt = _planted_clip(tmp_path)
    lms = _track(path)
    assert all(lm is not None for lm in lms)
    lm = np.stack(lms)
    tab = gt.table
    for iris, a, b, tag in ((468, 33, 133, "r"), (473, 263, 362, "l")):
        mid = (lm[:, a] + lm[:, b]) / 2
        width = np.linalg.norm(lm[:, a] - lm[:, b], axis=1)
        rel = (lm[:, iris] - mid) / width[:, None]
        r_dx = np.corrcoef(rel[:, 0], tab.iris_dx)[0, 1]
        r_dy = np.corrcoef(rel[:, 1], tab.iris_dy)[0, 1]
        assert r_dx > 0.8, (tag, r_dx)
        assert r_dy > 0.8, (tag, r_dy)
        # Eye-in-head position is not just head motion leaking through.
        assert abs(np.corrcoef(rel[:, 0], tab.yaw)[0, 1]) < 0.4
        # The image position of the iris lands where the ground truth says (pixels).
        err = np.hypot(lm[:, iris, 0] - tab[f"iris_{tag}_x"], lm[:, iris, 1] - tab[f"iris_{tag}_y"])
        assert np.median(err) < 1.5


def test_head_pose_conventions_and_tracked_nose(tmp_path):
    from cdrscreen.demo import Trajectories, load_face, render_frames, rotation_matrix

    r = rotation_matrix(10, -5, 3)
    assert np.allclose(r @ r.T, np.eye(3)) and np.linalg.det(r) == pytest.approx(1.0)
    face = load_face("grace_hopper", (320, 240))
    traj = Trajectories.constant(5, yaw=[0, 15, 0, 0, 0], pitch=[0, 0, 12, 0, 0], roll=[0, 0, 0, 10, 0],
                                 tx=[0, 0, 0, 0, 7], ty=[0, 0, 0, 0, -4])
    frames, gt = render_frames(face, traj)
    t = gt.table
    assert t.nose_x[1] > t.nose_x[0] + 5  # yaw > 0: nose to the image right
    assert t.nose_y[2] < t.nose_y[0] - 5  # pitch > 0: nose up
    # roll > 0: head tilts towards the image right; the eye on the image right drops.
    left_img = min(("r", "l"), key=lambda k: t[f"corner_{k}_mid_x"][0])
    right_img = "l" if left_img == "r" else "r"
    assert (t[f"corner_{right_img}_mid_y"][3] - t[f"corner_{left_img}_mid_y"][3]) > (
        t[f"corner_{right_img}_mid_y"][0] - t[f"corner_{left_img}_mid_y"][0]) + 3
    assert t.head_x[4] - t.head_x[0] == pytest.approx(7, abs=1e-6)
    assert t.head_y[4] - t.head_y[0] == pytest.approx(-4, abs=1e-6)
    assert t.nose_x[4] - t.nose_x[0] > 7  # the nose is nearer the camera than the pivot
    # MediaPipe finds the nose tip where the ground truth put it.
    fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True)
    for i, fr in enumerate(frames):
        res = fm.process(fr)
        p = res.multi_face_landmarks[0].landmark[1]
        assert np.hypot(p.x * 320 - t.nose_x[i], p.y * 240 - t.nose_y[i]) < 5  # face ~150 px tall
    fm.close()


def test_blinks_and_occlusion_are_visible(tmp_path):
    from cdrscreen.demo import Trajectories, load_face, render_frames

    face = load_face("astronaut", (320, 240))
    traj = Trajectories.constant(4, closure=[0, 1, 0, 0], face_visible=[True, True, False, True])
    frames, _ = render_frames(face, traj)
    fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True)
    res = [fm.process(f).multi_face_landmarks for f in frames]
    fm.close()
    assert res[2] is None and res[0] is not None and res[3] is not None

    def ear(lms):  # eye opening height / width for both eyes
        p = np.array([[q.x * 320, q.y * 240] for q in lms[0].landmark])
        return np.mean([np.linalg.norm(p[159] - p[145]) / np.linalg.norm(p[33] - p[133]),
                        np.linalg.norm(p[386] - p[374]) / np.linalg.norm(p[263] - p[362])])

    assert ear(res[1]) < 0.6 * ear(res[0])


# -- speech ---------------------------------------------------------------------------
def test_speech_track_has_the_planted_pauses(speech_wav, speech_wav_track):
    import soundfile as sf

    y, sr = sf.read(speech_wav)
    tr = speech_wav_track
    assert sr == 16000 and len(y) == 6 * 16000
    seg = tr.segments
    assert seg.start.iloc[0] == 0 and seg.end.iloc[-1] == pytest.approx(6.0)
    assert np.allclose(seg.end.to_numpy()[:-1], seg.start.to_numpy()[1:])  # contiguous
    assert (seg.kind == "pause").sum() >= 1
    for row in seg.itertuples():
        chunk = tr.audio[int(round(row.start * sr)):int(round(row.end * sr))]
        if row.kind in ("pause", "silence"):
            assert np.abs(chunk).max() == 0
        else:
            assert np.sqrt(np.mean(chunk ** 2)) > 0.02
    assert np.abs(y - tr.audio).max() < 1e-3  # the wav holds the track


def test_speech_rate_pause_and_pitch_parameters_act():
    from cdrscreen.demo import VoiceParams, speech_track

    fast = speech_track(12, VoiceParams(rate_wpm=190, pause_mean_s=0.3, pitch_sd=10), seed=4)
    slow = speech_track(12, VoiceParams(rate_wpm=120, pause_mean_s=1.2, pitch_sd=2), seed=4)
    sf_, ss = fast.summary(), slow.summary()
    assert sf_["speech_rate_wps"] > 1.3 * ss["speech_rate_wps"]
    assert ss["pause_ratio"] > sf_["pause_ratio"] + 0.1
    assert sf_["phrase_pitch_sd"] > ss["phrase_pitch_sd"]
    again = speech_track(12, VoiceParams(rate_wpm=190, pause_mean_s=0.3, pitch_sd=10), seed=4)
    assert np.array_equal(again.audio, fast.audio)


# -- cohort ---------------------------------------------------------------------------
def test_cohort_manifest_validates_and_says_synthetic(demo_cohort_small):
    from cdrscreen.study import Study

    root = demo_cohort_small.parent
    study = Study.from_file(demo_cohort_small)
    assert len(study) == 6 and len(study.subjects) == 6
    assert sorted(study.labels().value_counts().items()) == [(0.5, 2), (1.0, 2), (2.0, 2)]
    assert all(r.video.exists() and r.age and r.sex and r.mmse is not None for r in study)
    assert "SYNTHETIC" in (root / "README.txt").read_text()
    subj = pd.read_csv(root / "ground_truth" / "subjects.csv")
    assert set(subj.subject) == set(study.subjects)
    for col in ("motion_vertical_coupling", "motion_saccade_rate", "voice_rate_wpm",
                "voice_pause_mean_s", "voice_pitch_sd", "planted_r_vertical", "n_saccades"):
        assert subj[col].notna().all(), col
    # The realised vertical coupling follows the planted parameter.
    assert np.corrcoef(subj.motion_vertical_coupling, subj.planted_r_vertical)[0, 1] > 0.9


def test_class_effects_ordered_but_overlapping():
    from cdrscreen.demo import draw_cohort

    specs = draw_cohort(90, seed=3)
    df = pd.DataFrame([{"cdr": s.cdr, "vc": s.motion.vertical_coupling, "rate": s.voice.rate_wpm,
                        "pause": s.voice.pause_mean_s, "sacc": s.motion.saccade_rate} for s in specs])
    means = df.groupby("cdr").mean()
    assert means.vc.is_monotonic_increasing and means.pause.is_monotonic_increasing
    assert means.rate.is_monotonic_decreasing and means.sacc.is_monotonic_decreasing
    lo, hi = df[df.cdr == 0.5], df[df.cdr == 2.0]
    assert hi.vc.min() < lo.vc.max()  # classes overlap: no single perfect threshold
    assert hi.rate.max() > lo.rate.min()


def test_class_counts_and_bad_arguments():
    from cdrscreen.core.errors import CdrscreenError
    from cdrscreen.demo import Trajectories, build_cohort, class_counts, load_face

    assert class_counts(24) == {0.5: 8, 1.0: 8, 2.0: 8}
    assert class_counts(40, "prototype") == {0.5: 17, 1.0: 19, 2.0: 4}
    assert sum(class_counts(24, "prototype").values()) == 24
    with pytest.raises(CdrscreenError, match="imbalance"):
        class_counts(24, "skewed")  # type: ignore[arg-type]
    with pytest.raises(CdrscreenError, match="shape"):
        Trajectories(**(Trajectories.constant(5).__dict__ | {"yaw": np.zeros(4)}))
    with pytest.raises(CdrscreenError, match="NaN"):
        Trajectories.constant(3, pitch=[0.0, np.nan, 0.0])
    with pytest.raises(CdrscreenError, match="closure"):
        Trajectories.constant(3, closure=1.5)
    with pytest.raises(CdrscreenError, match="unknown demo face"):
        load_face("mona_lisa")
    with pytest.raises(CdrscreenError, match="at least 3 subjects"):
        build_cohort("/nonexistent/never", n_subjects=2)


def test_lfw_face_and_ground_truth_files(tmp_path):
    import json

    from cdrscreen.demo import Trajectories, load_face, render_frames

    face = load_face("lfw:0", (160, 120))
    assert face.landmarks.shape == (478, 3) and face.image.shape == (120, 160, 3)
    frames, gt = render_frames(face, Trajectories.constant(2, yaw=[0, 10]))
    assert frames[0].shape == (120, 160, 3) and gt.table.nose_x[1] > gt.table.nose_x[0]
    csv_path, json_path = gt.save(tmp_path / "clip")
    meta = json.loads(json_path.read_text())
    assert "SYNTHETIC" in meta["synthetic"] and meta["n_frames"] == 2 and meta["face"] == "lfw:0"
    assert len(pd.read_csv(csv_path)) == 2


@pytest.mark.skipif(not Path("/usr/share/sounds/alsa/Front_Left.wav").exists(), reason="alsa-utils not installed")
def test_real_human_clips_as_other_speaker():
    from cdrscreen.demo import VoiceParams, speech_track

    tr = speech_track(14, VoiceParams(rate_wpm=200, pause_mean_s=0.3), seed=1, other_speaker_turns=2)
    other = tr.segments[tr.segments.kind == "other"]
    assert len(other) == 2
    for row in other.itertuples():
        chunk = tr.audio[int(row.start * tr.sr):int(row.end * tr.sr)]
        assert row.end - row.start > 0.4 and np.sqrt(np.mean(chunk ** 2)) > 0.01
