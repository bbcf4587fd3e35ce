"""The texture eye signal's pieces: the clipped-iris circle fit, level chaining, and seeds kept through blinks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from cdrscreen.features.eye_points import _circle_centre, _robust_shift
from cdrscreen.features.eye_texture import EyeTextureParams, _chain_angles, eye_in_texture


def _clipped_circle(cx: float, cy: float, r: float, rows: np.ndarray, noise: float = 0.0,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Left and right edge points of a circle on the given rows (an iris clipped by the lids)."""
    rng = np.random.default_rng(seed)
    half = np.sqrt(r ** 2 - (rows - cy) ** 2)
    qx = np.r_[cx - half, cx + half] + rng.normal(0, noise, 2 * len(rows))
    return qx, np.r_[rows, rows].astype(float)


def test_clipped_iris_fit_is_ambiguous_from_one_side_and_resolved_from_both() -> None:
    # the lids show rows 6-9 of an iris of radius 4.65 px centred at row 10.4 (below them),
    # like a demo eye looking down: a chord has the same width above and below the centre
    cx, cy, r = 22.0, 10.4, 4.65
    qx, qy = _clipped_circle(cx, cy, r, np.arange(6, 10))
    start = (22.3, 7.0)  # the dark centre: in the visible rows
    up = _circle_centre(qx, qy, r, start[0], start[1] - r / 2)
    down = _circle_centre(qx, qy, r, start[0], start[1] + r / 2)
    assert abs(up[1] - cy) > 1.0  # from above, the fit lands on the reflection
    best = min((up, down), key=lambda f: f[2])
    assert abs(best[0] - cx) < 0.01 and abs(best[1] - cy) < 0.01
    # with edge noise the better of the two stays on the right side
    for seed in range(20):
        qx, qy = _clipped_circle(cx, cy, r, np.arange(6, 10), noise=0.15, seed=seed)
        fits = [_circle_centre(qx, qy, r, start[0], start[1] + s * r / 2) for s in (-1, 1)]
        assert abs(min(fits, key=lambda f: f[2])[1] - cy) < 1.0, seed


def _seed(start: int, stop: int, slot: int) -> SimpleNamespace:
    axes = (np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    return SimpleNamespace(start=start, stop=stop, slot=slot, axes=[axes, axes], scale=1.0, agree=0.0, power=0.0,
                           linked=False, p=EyeTextureParams(calibrate=False))


def test_a_handover_ties_the_new_seed_to_the_old_level() -> None:
    n = 60
    t = np.arange(n)
    y = 2.0 * np.sin(t / 6.0) + np.where(t > 35, 1.5, 0.0)  # the iris (px, down), with a step
    raw = np.full((n, 2, 2, 2), np.nan)
    corr = np.zeros((n, 2, 2, 2))
    # seed A reads frames 0-29 in slot 0, seed B (laid at 24) frames 24-59 in slot 1: each
    # against its own reference, so their readings differ by a constant
    for sd, ref in ((_seed(0, 30, 0), 40.0), (_seed(24, 60, 1), 17.5)):
        raw[sd.start:sd.stop, sd.slot, :, 0] = 30.0
        raw[sd.start:sd.stop, sd.slot, :, 1] = ref + y[sd.start:sd.stop, None]
    radius = 12.0
    want = np.degrees(np.arcsin((y - np.median(y)) / radius))
    out = np.full((n, 2), np.nan)
    chain = [_seed(0, 30, 0), _seed(24, 60, 1)]
    _chain_angles(chain, raw, corr, out, radius)
    np.testing.assert_allclose(out[:, 1], want, atol=1e-4)  # float32 storage: 1e-5 degrees
    np.testing.assert_allclose(out[:, 0], 0.0, atol=1e-4)
    assert chain[1].linked and not chain[0].linked
    # the same seeds as two chains (no handover): each has its own median, the level jumps
    apart = np.full((n, 2), np.nan)
    _chain_angles([_seed(0, 30, 0)], raw, corr, apart, radius)
    _chain_angles([_seed(30, 60, 1)], raw, corr, apart, radius)
    assert np.max(np.abs(apart[:, 1] - want)) > 1.0


def test_seeds_are_kept_through_blinks_on_a_rendered_clip(face_video, face_video_truth) -> None:  # noqa: ANN001
    from cdrscreen.tracking.face import track_video

    tr = track_video(face_video)
    g = face_video_truth.table
    assert g["closure"].max() > 0.9  # the clip blinks
    res = eye_in_texture(face_video, tr.table, tr.landmarks)
    seeds = res.attrs["seeds"]
    assert seeds[0][0] == int(np.flatnonzero(~tr.table["blink"].to_numpy(bool))[0])
    assert all(linked for _, _, linked in seeds[1:])  # one chain: one reference level for the clip
    assert len(res.attrs["parallax_gain"]) == len(seeds)
    ok = res["eye_pitch"].notna().to_numpy() & (g["closure"].to_numpy() < 0.05)
    assert ok.mean() > 0.7
    assert np.corrcoef(res["eye_pitch"].to_numpy()[ok], -g["iris_dy"].to_numpy()[ok])[0, 1] > 0.7
    # frames next to a detected blink are not read
    blink = tr.table["blink"].to_numpy(bool)
    if blink.any():
        near = np.convolve(blink.astype(float), np.ones(5), mode="same") > 0
        assert res["eye_pitch"].to_numpy()[near].size and np.isnan(res["eye_pitch"].to_numpy()[near]).all()


def test_patience_ends_a_chain(face_video) -> None:  # noqa: ANN001
    from cdrscreen.tracking.face import track_video

    tr = track_video(face_video)
    # no patience and points that can never all be followed: every miss starts a new chain
    res = eye_in_texture(face_video, tr.table, tr.landmarks,
                         params=EyeTextureParams(patience_s=0.0, fb_max=0.02, min_points=20))
    kept = eye_in_texture(face_video, tr.table, tr.landmarks)
    assert sum(not linked for *_, linked in res.attrs["seeds"]) > sum(not linked for *_, linked in kept.attrs["seeds"])


def test_texture_settings_come_from_the_extraction_spec_and_are_recorded() -> None:
    from cdrscreen.core.config import ConfigError
    from cdrscreen.extract_spec import load_spec, make_extractors
    from cdrscreen.features.headpose import HeadPoseExtractor

    spec = load_spec(None, ["groups.headpose.eye_texture.patience_s=2.5", "groups.headpose.eye_texture.renew=0.4"],
                     features=["headpose"])
    (hp,) = make_extractors(spec)
    cfg = hp.describe()["config"]["eye_texture"]
    assert cfg["patience_s"] == 2.5 and cfg["renew"] == 0.4
    assert cfg["overlap_s"] == EyeTextureParams().overlap_s  # the rest completed with the defaults
    assert hp.describe()["config_sha"] != HeadPoseExtractor().describe()["config_sha"]  # part of the cache key
    with pytest.raises(ConfigError, match="patience_s"):  # a misspelt key is named, with the valid one
        load_spec(None, ["groups.headpose.eye_texture.patience=2"], features=["headpose"])
    with pytest.raises(ValueError, match="renew"):
        HeadPoseExtractor(eye_texture={"renew": 1.5})


def test_a_brow_raise_on_the_upper_points_moves_an_affine_map_but_not_the_pose_linear_one() -> None:
    import cv2

    rng = np.random.default_rng(0)
    # 24 points in a ring around an eye centred at (100, 80); the head shifted by (3, -2) px
    ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    seed = np.c_[100 + 18 * np.cos(ang), 80 + 9 * np.sin(ang)]
    lin = np.array([[np.cos(0.02), -np.sin(0.02)], [np.sin(0.02), np.cos(0.02)]])  # a 1.1 degree roll
    true_t = np.array([-3.0, 2.0])
    cur = (seed - true_t) @ np.linalg.inv(lin).T + rng.normal(0, 0.05, seed.shape)
    # a brow raise: the upper points (image y above the eye) move up, more the higher they are
    up = seed[:, 1] < 80
    cur[up, 1] -= 0.25 * (80 - seed[up, 1])
    iris = np.array([101.0, 80.0])
    t, inl = _robust_shift(cur, seed, lin)
    pose_map = np.c_[lin, t]
    assert not inl[up].all() and inl[~up].all()
    # where the iris of this frame lands in the seed frame: within 0.05 px with the pose's
    # linear part; the affine map absorbs the raise as a vertical stretch and shifts it
    want = lin @ iris + true_t
    assert np.linalg.norm(pose_map @ np.r_[iris, 1.0] - want) < 0.05
    aff, _ = cv2.estimateAffine2D(cur, seed, method=cv2.LMEDS)
    assert np.linalg.norm(aff @ np.r_[iris, 1.0] - want) > 0.3
