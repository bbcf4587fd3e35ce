"""Head pose by solvePnP and pupil–head correlations, on rendered videos with planted motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cdrscreen.demo import Trajectories, render_face_video
from cdrscreen.features import get_extractor
from cdrscreen.features.headpose import correlate
from cdrscreen.tracking.face import track_video
from cdrscreen.tracking.pose import FACE_MODEL, RIGID_LANDMARKS, camera_matrix, solve_pose

FPS = 25
#: Stated accuracy on rendered video (planted change from the neutral pose, every frame).
#: Pitch is the harder axis: its gain varies by face photo (1.3x on grace_hopper: the
#: renderer's head is deeper than MediaPipe's depth estimate; docs/validation-visual.md).
YAW_TOL, PITCH_TOL, RMSE_TOL = 3.0, 6.5, 2.5


def _project(yaw: float, pitch: float, roll: float, w: int = 640, h: int = 480) -> np.ndarray:
    from cdrscreen.demo import rotation_matrix

    rvec, _ = cv2.Rodrigues(rotation_matrix(yaw, pitch, roll))
    pts, _ = cv2.projectPoints(FACE_MODEL, rvec, np.array([10.0, -20.0, 600.0]), camera_matrix(w, h), None)
    full = np.zeros((478, 3))
    full[list(RIGID_LANDMARKS), :2] = pts[:, 0]
    full[263, :2], full[33, :2] = pts[RIGID_LANDMARKS.index(263), 0], pts[RIGID_LANDMARKS.index(33), 0]
    return full


@pytest.mark.parametrize("angles", [(20, 0, 0), (0, 15, 0), (0, 0, 10), (-15, -10, 5), (30, 10, -8)])
def test_solve_pose_inverts_a_projection_with_the_demo_sign_conventions(angles) -> None:  # noqa: ANN001
    # The demo renderer's rotation matrix (its documented conventions) round-trips exactly.
    pose = solve_pose(_project(*angles), 640, 480)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx(angles, abs=0.05)
    assert pose.tz == pytest.approx(600, rel=1e-3) and pose.err < 1e-3


@pytest.fixture(scope="module")
def pose_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    yaw = np.r_[np.zeros(15), np.linspace(0, 15, 20), np.linspace(15, -15, 30), np.linspace(-15, 0, 15), np.zeros(40)]
    pitch = np.r_[np.zeros(80), np.linspace(0, 10, 10), np.linspace(10, -10, 20), np.linspace(-10, 0, 10)]
    path = tmp_path_factory.mktemp("pose") / "pose.mp4"
    render_face_video(path, "grace_hopper", Trajectories.constant(len(yaw), yaw=yaw, pitch=pitch), fps=FPS)
    return path, yaw, pitch


def test_planted_yaw_and_pitch_are_recovered(pose_video: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, yaw, pitch = pose_video
    t = track_video(path).table
    assert t["success"].all()
    for name, planted, tol in (("yaw", yaw, YAW_TOL), ("pitch", pitch, PITCH_TOL)):
        est = t[name].to_numpy()
        err = est - np.median(est[:15]) - planted  # the photo's own pose is the neutral one
        assert np.abs(err).max() <= tol, (name, np.abs(err).max())
        assert np.sqrt(np.mean(err**2)) <= RMSE_TOL, name
    # a planted yaw barely leaks into pitch while pitch is neutral
    assert np.ptp(t["pitch"].to_numpy()[:80]) < 6


def _corr_video(tmp: Path, name: str, iris_dy: np.ndarray, pitch: np.ndarray) -> dict[str, float]:
    path = tmp / f"{name}.mp4"
    render_face_video(path, "astronaut", Trajectories.constant(len(pitch), pitch=pitch, iris_dy=iris_dy), fps=FPS)
    return get_extractor("headpose").process_file(path).iloc[0].to_dict()


@pytest.mark.slow
def test_vertical_co_movement_gives_high_r_and_independent_motion_r_near_zero(tmp_path: Path) -> None:
    n = 150
    t = np.arange(n) / FPS
    pitch = 8 * np.sin(2 * np.pi * 0.6 * t)
    # iris_dy > 0 is downward in the renderer: -pitch/40 moves the eyes up as the head tilts up
    co = _corr_video(tmp_path, "co", -pitch / 40, pitch)
    ind = _corr_video(tmp_path, "ind", 0.25 * np.sin(2 * np.pi * 1.7 * t + 1), pitch)
    assert co["headpose__corr_pos_v_r"] > 0.9 and co["headpose__corr_pos_v_p"] < 1e-6
    assert co["headpose__corr_pos_v_rho"] > 0.9
    assert co["headpose__corr_vel_v_r"] > 0.4
    assert co["headpose__corr_pos_v_n"] == n
    assert abs(ind["headpose__corr_pos_v_r"]) < 0.25
    assert abs(ind["headpose__corr_vel_v_r"]) < 0.25
    for f in (co, ind):
        assert f["headpose__valid"] == 1.0
        assert f["headpose__pitch_std"] == pytest.approx(np.std(pitch), rel=0.3)


def test_correlate_handles_constant_and_short_input() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    c = correlate([a[:100], a[100:]], [2 * a[:100] + 1, 2 * a[100:] + 1])
    assert c["r"] == pytest.approx(1.0) and c["rho"] == pytest.approx(1.0) and c["n"] == 200
    assert np.isnan(correlate([np.ones(50)], [a[:50]])["r"])
    assert np.isnan(correlate([a[:2]], [a[:2]])["r"])


def test_small_array_median_equals_numpy() -> None:
    from cdrscreen.tracking.flow import _median

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 8, 41, 40):
        x = rng.normal(size=n)
        assert _median(x) == float(np.median(x))
    x = rng.normal(size=9)
    x[4] = np.nan
    assert np.isnan(_median(x)) and np.isnan(np.median(x))
