"""Model-free facial expressivity: rigid motion and eye-in-head motion are not expression."""

from __future__ import annotations

import numpy as np
import pytest

from cdrscreen.features import get_extractor
from cdrscreen.features.expressivity import (
    EYE_REGIONS,
    REGIONS,
    ExpressivityExtractor,
    align_shapes,
    inter_ocular,
    region_displacements,
    summarise,
)

#: Lower-lip landmarks (outer 17, 84, 314; inner 14, 178, 402).
LOWER_LIP = [17, 84, 314, 14, 178, 402]


@pytest.fixture(scope="module")
def still_shape():
    """478 landmarks of a real face (MediaPipe on scikit-image's astronaut), px."""
    from cdrscreen.demo.faces import load_face

    return load_face("astronaut", (320, 240)).landmarks.astype(np.float64)


def _rot(yaw: float, pitch: float, roll: float) -> np.ndarray:
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _moving_head(shape: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = shape.mean(0)
    out = []
    for _ in range(n):
        r = _rot(*rng.uniform(-20, 20, 3))
        out.append((shape - c) @ r.T * rng.uniform(0.8, 1.2) + c + rng.uniform(-30, 30, 3))
    return np.stack(out)


def test_rigid_head_motion_is_not_expression(still_shape):
    lm = _moving_head(still_shape, 40)
    valid = np.ones(40, bool)
    aligned, ref = align_shapes(lm, valid)
    disp = region_displacements(aligned, valid, ref)
    for name, d in disp.items():
        assert np.nanmax(d) < 1e-6, name


def test_planted_mouth_movement_is_measured_in_iod(still_shape):
    n = 60
    lm = _moving_head(still_shape, n, seed=1)
    iod = inter_ocular(still_shape)
    moved = np.zeros(n, bool)
    moved[10:25] = True
    shifted = still_shape.copy()
    shifted[LOWER_LIP, 1] += 0.05 * iod  # the mouth opens: lower lip 0.05 IOD down
    lm2 = lm.copy()
    c = still_shape.mean(0)
    rng = np.random.default_rng(1)  # the same head motion applied to the changed face
    for i in range(n):
        r = _rot(*rng.uniform(-20, 20, 3))
        s, t = rng.uniform(0.8, 1.2), rng.uniform(-30, 30, 3)
        lm2[i] = ((shifted if moved[i] else still_shape) - c) @ r.T * s + c + t
    valid = np.ones(n, bool)
    aligned, ref = align_shapes(lm2, valid)
    disp = region_displacements(aligned, valid, ref)
    # 6 of the 11 mouth distances lengthen by about 0.05 IOD, 2 by less, 3 not at all
    m = disp["mouth"][moved]
    assert 0.025 < m.min() and m.max() < 0.05 and np.ptp(m) < 1e-3
    assert np.abs(disp["mouth"][~moved]).max() < 1e-3
    assert np.nanmax(disp["brows"]) < 1e-3 and np.nanmax(disp["eyelids"]) < 1e-3  # other regions untouched
    f = summarise(disp, valid, rate=25.0, active_iod=0.02)
    assert f["mouth_active"] == pytest.approx(15 / 60) and f["brows_active"] == 0.0
    assert f["mouth_p90"] == pytest.approx(m.mean(), rel=0.02) and f["mouth_speed"] > 0


def test_brow_motion_that_follows_the_iris_is_removed(still_shape):
    """A mesh whose brows and lids follow the iris (as MediaPipe's do) reads no brow/lid activity."""
    n = 80
    rng = np.random.default_rng(2)
    iod = inter_ocular(still_shape)
    gaze = rng.uniform(-0.1, 0.1, (n, 2)) * iod
    lm = np.repeat(still_shape[None], n, axis=0)
    iris = list(range(468, 478))
    lm[:, iris, :2] += gaze[:, None]
    for region in EYE_REGIONS:
        lm[:, list(REGIONS[region]), :2] += 0.3 * gaze[:, None]  # coupled to the iris
    lm[:, LOWER_LIP, 1] += np.where(np.arange(n) % 20 < 5, 0.04 * iod, 0.0)[:, None]
    valid = np.ones(n, bool)
    aligned, ref = align_shapes(lm, valid)
    with_reg = region_displacements(aligned, valid, ref, remove_gaze=True)
    without = region_displacements(aligned, valid, ref, remove_gaze=False)
    assert np.nanmax(with_reg["brows"]) < 1e-3 and np.nanmax(without["brows"]) > 0.02
    # the mouth is never regressed on the gaze: its planted movement is intact
    np.testing.assert_allclose(with_reg["mouth"], without["mouth"])
    assert with_reg["mouth"].max() > 0.02


def test_blink_moves_the_eyelid_aperture(still_shape):
    n = 30
    lm = np.repeat(still_shape[None], n, axis=0)
    from cdrscreen.features.expressivity import LID_PAIRS

    upper = [u for u, _ in LID_PAIRS]
    lower = [lo for _, lo in LID_PAIRS]
    lm[10:13, upper, 1] = lm[10:13][:, lower, 1]  # lids closed for 3 frames
    valid = np.ones(n, bool)
    aligned, ref = align_shapes(lm, valid)
    d = region_displacements(aligned, valid, ref, remove_gaze=False)["eyelids"]
    assert d[10:13].min() > 0.05 and np.abs(np.delete(d, [10, 11, 12])).max() < 1e-6


def test_no_face_gives_nan_columns():
    lm = np.full((5, 478, 3), np.nan)
    valid = np.zeros(5, bool)
    aligned, ref = align_shapes(lm, valid)
    f = summarise(region_displacements(aligned, valid, ref), valid, 25.0, 0.02)
    assert f["valid_fraction"] == 0.0 and np.isnan(f["mouth_mean"]) and np.isnan(f["overall_mean"])


def test_extractor_on_a_real_face_video(face_video):
    ex = get_extractor("expressivity")
    assert isinstance(ex, ExpressivityExtractor)
    df = ex.process_file(face_video)
    row = df.iloc[0]
    assert all(c.startswith("expressivity__") for c in df.columns)
    assert row["expressivity__valid_fraction"] > 0.8
    for region in REGIONS:
        assert np.isfinite(row[f"expressivity__{region}_mean"]) and 0 <= row[f"expressivity__{region}_active"] <= 1
    assert row["expressivity__mouth_p90"] >= row["expressivity__mouth_p50"] >= 0
