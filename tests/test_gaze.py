"""Iris in head coordinates (``cdrscreen.features.gaze``) on exact synthetic geometry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cdrscreen.features.gaze import eye_in_head, iris_depth_mm
from cdrscreen.tracking.flow import SKIN_LANDMARKS, angles_to_rotation
from cdrscreen.tracking.pose import OUTER_CANTHAL_MM, camera_matrix

W, H = 640, 480
CAM = camera_matrix(W, H)
F = CAM[0, 0]
#: Head-frame iris centres (mm from the pose's reference point; x to the subject's left, y down, z into the head).
IRIS_HEAD = np.array([[-32.0, -4.0, 12.0], [32.0, -4.0, 12.0]])


def _scene(yaw: np.ndarray, pitch: np.ndarray, eye_x_mm: np.ndarray, eye_y_mm: np.ndarray,
           shift: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Frames of a head at 600 mm posed by ``yaw``/``pitch`` with the irises displaced in the head."""
    n = len(yaw)
    shift = np.zeros((n, 3)) if shift is None else shift
    rows, lms = [], []
    for k in range(n):
        rot = angles_to_rotation(yaw[k], pitch[k], 0.0)
        ref = np.array([0.0, 0.0, 600.0]) + shift[k]
        iris = IRIS_HEAD + [eye_x_mm[k], eye_y_mm[k], 0.0]
        cam = ref + iris @ rot.T
        px = CAM[:2, 2] + F * cam[:, :2] / cam[:, 2:3]
        lm = np.zeros((478, 3))
        lm[[468, 473], :2] = px
        rows.append({"success": True, "yaw": yaw[k], "pitch": pitch[k], "roll": 0.0,
                     "tx": ref[0], "ty": ref[1], "tz": ref[2],
                     "iris_r_x": px[0, 0], "iris_r_y": px[0, 1], "iris_l_x": px[1, 0], "iris_l_y": px[1, 1]})
        lms.append(lm)
    return pd.DataFrame(rows), np.array(lms)


def test_a_head_fixed_iris_reads_no_eye_motion_whatever_the_head_does() -> None:
    t = np.linspace(0, 4, 100)
    yaw, pitch = 15 * np.sin(2 * np.pi * 0.6 * t), 10 * np.sin(2 * np.pi * 0.4 * t + 1)
    shift = np.c_[20 * np.sin(t), 10 * np.cos(t), 30 * np.sin(0.5 * t)]
    table, lm = _scene(yaw, pitch, np.zeros_like(t), np.zeros_like(t), shift)
    e = eye_in_head(table, lm, W, H, depth_mm=12.0)
    assert np.abs(e["eye_yaw"]).max() < 1e-6 and np.abs(e["eye_pitch"]).max() < 1e-6
    # a 3 mm error in the iris depth reads 3 mm x sin(pitch) of false eye motion
    wrong = eye_in_head(table, lm, W, H, depth_mm=9.0)
    assert abs(np.corrcoef(wrong["eye_pitch"], pitch)[0, 1]) > 0.9
    expected = np.degrees(np.arcsin(3 * np.sin(np.radians(10)) / 12))
    assert np.ptp(wrong["eye_pitch"]) / 2 == pytest.approx(expected, rel=0.2)


def test_eye_rotation_in_the_head_is_recovered_in_degrees_and_sign() -> None:
    t = np.linspace(0, 4, 100)
    yaw, pitch = 12 * np.sin(2 * np.pi * 0.6 * t), 8 * np.sin(2 * np.pi * 0.6 * t)
    ang_h, ang_v = 10 * np.sin(2 * np.pi * 1.7 * t), 6 * np.cos(2 * np.pi * 1.3 * t)
    r = 12.0
    # x toward the subject's left = image right for a frontal face; eye up = -y
    table, lm = _scene(yaw, pitch, r * np.sin(np.radians(ang_h)), -r * np.sin(np.radians(ang_v)))
    e = eye_in_head(table, lm, W, H, depth_mm=12.0)
    np.testing.assert_allclose(e["eye_yaw"] - np.median(e["eye_yaw"]), ang_h - np.median(ang_h), atol=0.3)
    np.testing.assert_allclose(e["eye_pitch"] - np.median(e["eye_pitch"]), ang_v - np.median(ang_v), atol=0.3)
    assert abs(np.corrcoef(e["eye_pitch"], pitch)[0, 1]) < 0.1


def test_iris_depth_comes_from_the_back_projected_mesh() -> None:
    # one frontal frame whose mesh puts the irises 12 mm behind the skin points' median depth
    table, lm = _scene(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3))
    canthal_px = 100.0
    mm = OUTER_CANTHAL_MM / canthal_px
    lm[:, 33, :2] = [CAM[0, 2] - 50, CAM[1, 2]]
    lm[:, 263, :2] = [CAM[0, 2] + 50, CAM[1, 2]]
    lm[:, list(SKIN_LANDMARKS), 2] = 0.0
    lm[:, [468, 473], 2] = 12.0 / mm
    depth_ref = F * mm  # where the back-projection puts the skin points, mm
    table[["tx", "ty", "tz"]] = [0.0, 0.0, depth_ref]
    px = (table[["iris_r_x", "iris_r_y"]].to_numpy()[0] - CAM[:2, 2])
    assert np.isfinite(px).all()
    assert iris_depth_mm(table, lm, W, H) == pytest.approx(12.0, abs=1e-6)


def test_iris_depth_from_the_lids_is_the_eye_contour_surface_at_the_iris() -> None:
    from cdrscreen.features.gaze import EYE_CONTOURS, IRIS_CENTRES

    table, lm = _scene(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3))
    mm = OUTER_CANTHAL_MM / 100.0
    lm[:, list(SKIN_LANDMARKS), 2] = 0.0
    lm[:, [468, 473], 2] = 12.0 / mm
    ring = np.c_[np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
                 np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))] * 6.0
    for centre, contour in zip(IRIS_CENTRES, EYE_CONTOURS, strict=True):
        lm[:, list(contour), :2] = lm[:, [centre], :2] + ring
        lm[:, list(contour), 2] = 9.0 / mm
    # the outer corners set the mm scale: 100 px apart, still on the contour surface
    lm[:, 33, :2] = [CAM[0, 2] - 50, CAM[1, 2]]
    lm[:, 263, :2] = [CAM[0, 2] + 50, CAM[1, 2]]
    table[["tx", "ty", "tz"]] = [0.0, 0.0, F * mm]
    assert iris_depth_mm(table, lm, W, H, depth_from="lids") == pytest.approx(9.0, abs=1e-6)
    assert iris_depth_mm(table, lm, W, H) == pytest.approx(12.0, abs=1e-6)
    with pytest.raises(ValueError, match="depth_from must be one of"):
        iris_depth_mm(table, lm, W, H, depth_from="pupil")


def test_frames_without_a_face_or_pose_are_nan_and_split_the_video() -> None:
    t = np.linspace(0, 2, 50)
    table, lm = _scene(5 * np.sin(t), 5 * np.cos(t), np.zeros_like(t), np.zeros_like(t))
    table.loc[20:22, "success"] = False
    table.loc[30, "yaw"] = np.nan
    e = eye_in_head(table, lm, W, H, depth_mm=12.0)
    assert e.loc[20:22].isna().all().all() and e.loc[30].isna().all()
    assert e.drop(index=[20, 21, 22, 30]).notna().all().all()
    empty = eye_in_head(table.iloc[:0], lm[:0], W, H)
    assert list(empty.columns) == ["eye_yaw", "eye_pitch"] and empty.empty


def test_the_eye_signal_is_a_spec_setting_checked_in_one_line() -> None:
    from cdrscreen.core.errors import CdrscreenError
    from cdrscreen.extract_spec import load_spec
    from cdrscreen.features.headpose import HeadPoseExtractor

    spec = load_spec(None, ["groups.headpose.eye_in_head=head"], features="headpose")
    params = spec.group_params("headpose")
    assert params["eye_in_head"] == "head"
    assert HeadPoseExtractor(**params).describe()["config"]["eye_in_head"] == "head"
    tex = load_spec(None, ["groups.headpose.eye_in_head=texture"], features="headpose").group_params("headpose")
    assert HeadPoseExtractor(**tex).describe()["config"]["eye_in_head"] == "texture"
    with pytest.raises(CdrscreenError,
                       match="groups.headpose.eye_in_head: Input should be 'corners', 'head' or 'texture'"):
        load_spec(None, ["groups.headpose.eye_in_head=eyes"], features="headpose")
    with pytest.raises(ValueError, match="'corners', 'head' or 'texture'"):
        HeadPoseExtractor(eye_in_head="eyes")


@pytest.mark.parametrize("depth_from", ["iris", "lids"])
def test_blocks_of_frames_give_exactly_the_whole_video_computation(monkeypatch, depth_from) -> None:  # noqa: ANN001
    from cdrscreen.features import gaze

    t = np.linspace(0, 4, 120)
    rng = np.random.default_rng(0)
    table, lm = _scene(12 * np.sin(t), 8 * np.cos(t), 2 * np.sin(3 * t), np.cos(2 * t),
                       np.c_[5 * np.sin(t), 3 * np.cos(t), 10 * np.sin(0.5 * t)])
    lm[:, :468, :] += rng.normal(0, 1, (len(t), 468, 3))  # skin and lid points, so both depths are defined
    table.loc[40:41, "success"] = False  # two stretches
    table.loc[77, "pitch"] = np.nan
    monkeypatch.setattr(gaze, "_GATHER_ROWS", 10**6)
    whole = (gaze.eye_in_head(table, lm, W, H, depth_from=depth_from),
             gaze.iris_depth_mm(table, lm, W, H, depth_from=depth_from))
    monkeypatch.setattr(gaze, "_GATHER_ROWS", 7)  # blocks that cut stretches anywhere
    blocks = (gaze.eye_in_head(table, lm, W, H, depth_from=depth_from),
              gaze.iris_depth_mm(table, lm, W, H, depth_from=depth_from))
    assert np.isfinite(whole[1]) and blocks[1] == whole[1]
    assert whole[0].notna().sum().sum() > 200
    assert np.array_equal(blocks[0].to_numpy(), whole[0].to_numpy(), equal_nan=True)
