"""Eye-in-head motion against the texture around each eye (a post-pass over the video).

MediaPipe's eye corners follow the iris, so the corner-relative ``gaze_h``, ``gaze_v``
see only part of a vertical eye movement; the iris in head coordinates
(:func:`cdrscreen.features.gaze.eye_in_head`) needs the iris depth, which monocular
landmarks do not give to better than a few mm. :func:`eye_in_texture` measures the iris
against the skin *around* the eye instead, from the track's table and landmarks and the
video's frames, decoded again (nothing is added to tracking):

1. **Reference points.** On the first frame of each stretch of tracked, posed frames (the
   *seed*), points are laid on a grid around each eye opening (MediaPipe's eye contour):
   each point's Lucas-Kanade window clears the opening by ``margin`` pixels (no window
   holds iris or sclera), the points lie at most ``band`` eye widths beyond that
   clearance, and not higher than ``brow`` eye widths above the opening. The most
   textured points (smaller eigenvalue of the structure tensor) of each of 8 sectors
   around the eye are kept, ``points`` in all.
2. **Follow.** Each frame is warped into the seed frame with a guess of its map (the
   last map found, moved with the mesh's landmarks on the same skin since then), and the
   points are tracked by pyramidal Lucas-Kanade optical flow from the seed frame into
   that warp (a forward-backward check drops points for the frame): the key image is
   always compared with a view in the seed's pose, so the points hold over large head
   motion, and after a blink or a lost frame they are found again where they were. An
   eye whose points are not found (fewer than ``min_points``) reads NaN for the frame;
   after ``patience_s`` of usable frames without them, the next frame seeds again.
   **Handover.** When an eye follows fewer than ``renew`` of its points (the head has
   turned far from the seed's pose, an expression moved the skin), a new seed is laid
   (never on a blink) while the old one still reads; after ``overlap_s`` the new one
   takes over, and its reference level is tied to the old one's by the median
   difference of their readings on the shared frames. Seeds linked this way form a
   *chain* with one reference level (step 6).
3. **Local frame.** The map from the frame to the seed frame: its linear part
   (rotation, scale, shear) is where the skin-flow pose moves the seed's head-fixed
   reference points (step 5's model: an affine fit to their projections), its shift the
   followed points' own (their median shift, then the mean of those within 3 robust SDs
   of it), so skin moved by an expression (a brow raise, a smile) on up to half of the
   points can neither tilt, stretch nor shift the map. ``linear="texture"`` fits the
   whole affine map to the points instead (least median of squares, then least squares
   on the inliers).
4. **Iris.** The frame is warped into the seed frame with that map (the opening and the
   lids stand still there) and the iris is found in it: a mean shift on the pixels darker
   than halfway between the opening's dark and bright ends gives a start, and a circle of
   the iris radius (MediaPipe's iris landmarks of the seed frame) is fitted to the iris's
   left and right edges on the rows of the opening (:meth:`cdrscreen.features.eye_points._EyePoints.iris_circle`;
   started above and below the dark centre, the better fit kept: the rows of a clipped
   iris fix its centre's height only up to a reflection about them).
   ``iris_from="mesh"`` takes MediaPipe's iris landmark mapped into the seed frame.
5. **Parallax.** The iris lies on the eye opening's surface, the reference points on the
   skin around it, at other depths: a head turn moves one against the other. The seed
   frame's reference points (at the mesh surface's depth) and iris (at the depth of the
   eye-contour surface) become head-fixed 3-D points, moved with the skin-flow pose and
   projected; the affine map fitted to the projected reference points says where a
   head-fixed iris would read, and that reading is subtracted. The correction is scaled,
   per chain of seeds (step 2), by how well the same model predicts the reference
   points' *own* departures from their affine map (least squares, pulled toward 1 by
   ``prior_px2`` when the head hardly turns): this calibrates the pose's rotation gain
   and the mesh's depth scale on head-fixed texture only, never on the iris, so true
   eye-head co-movement is kept.
6. **Angles.** Each eye's offset, in its seed frame's eye axes (along and across the line
   through the eye corners) and in mm (the seed frame's scale, outer canthal distance
   :data:`cdrscreen.tracking.pose.OUTER_CANTHAL_MM`), is shifted to its chain's level
   (step 2), taken from its median over the chain's frames, turned into degrees with a
   12 mm eyeball radius and averaged over both eyes: ``eye_yaw`` > 0 toward image right,
   ``eye_pitch`` > 0 up (the signs of ``yaw`` and ``pitch``). A chain ends only when the
   points stay lost for ``patience_s``; a new chain has its own median.

What it assumes: the iris is read against the skin next to the opening, corrected to the
opening's surface by the mesh's depth difference. The validation renderer paints the iris
on that surface, so there the assumption is exact. On a real eye the entrance pupil (the
iris centre seen through the cornea) lies about 3 mm behind the corneal apex, within
1-3 mm of the surface of the lid margins: at 8 degrees of head pitch that is 0.1-0.4 mm of
false movement, against 2 mm of iris travel for a 10 degree eye rotation. Lids that follow
vertical gaze and brows that move with an expression would move the reference; the grid
keeps off the brows and off the lid margins by the window clearance only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field

from cdrscreen.core.config import StrictModel
from cdrscreen.features.eye_points import _affine, _EyePoints
from cdrscreen.features.gaze import (
    _GATHER_ROWS,
    EYE_CONTOURS,
    EYE_IN_HEAD_COLUMNS,
    IRIS_CENTRES,
    _posed,
    _release,
)
from cdrscreen.tracking.flow import angles_to_rotation


class EyeTextureParams(StrictModel):
    """Settings of :func:`eye_in_texture` (``groups.headpose.eye_texture`` of an extraction spec).

    Parameters
    ----------
    win : int
        Lucas-Kanade window side, pixels.
    margin : float
        Clearance (px) between a point's window and the eye opening.
    reach : float
        Half-size of the box around the eye opening where points are laid, eye widths.
    brow : float
        Highest point above the opening's top edge, eye widths (keeps the grid off the brow).
    band : float
        Points lie at most this far (eye widths) beyond the clearance from the opening.
    points : int
        Points kept per eye (the most textured).
    min_points : int
        Fewest followed points for a frame's affine map (fewer: NaN for the eye in that
        frame).
    fb_max : float
        Largest forward-backward error (px) of a kept point.
    parallax : bool
        Correct the parallax between the iris and the reference points with the head pose
        and the mesh's depths (module notes, step 5).
    iris_from : {"circle", "mesh"}
        The iris centre: a circle fitted to the iris's edges in the frame warped into the
        seed frame (``"circle"``, :mod:`cdrscreen.features.eye_points`), or MediaPipe's iris
        landmark mapped into the seed frame (``"mesh"``; on the validation faces it moves by
        only 45-71 % of a vertical iris movement and by 0.7-2.4 px per unit sin(pitch) with
        the head alone, ``benchmarks/eye_texture_leak.py``).
    shift_steps : int
        Mean-shift steps of the dark-centre start of the circle fit.
    calibrate : bool
        Scale the parallax correction by how well it predicts the reference points' own
        departures from the affine map (module notes, step 5).
    prior_px2 : float
        Weight (px squared) pulling that scale toward 1 when the head hardly turns (the
        scale is kept in [0, 2]).
    patience_s : float
        How long (seconds of usable frames) an eye's points may go unfound (a blink, a
        fast turn) before they are laid again as a new chain; until then each usable frame
        looks for them again from the mesh's motion, so the seed and its level are kept.
    renew : float
        Below this fraction of an eye's points followed (or after 3 frames without its
        map), the next seed is laid alongside (the handover of step 2).
    overlap_s : float
        Length of a handover: the frames on which both seeds read, to tie their levels.
    blink_margin_s : float
        Frames this close to a detected blink (the track's ``blink``) are not read: lids
        partly closed over the iris (the start and end of a blink) bend the circle fit.
    linear : {"pose", "texture"}
        The linear part (rotation, scale, shear) of the map from a frame to the seed frame:
        ``"pose"`` takes it from the seed's head-fixed reference points moved with the
        skin-flow pose and projected, and the texture gives only the shift (the points'
        median shift, then the mean of those within 3 robust SDs): skin that an
        expression moves on up to half the points cannot tilt or stretch the map.
        ``"texture"`` fits the whole affine map to the points (least median of squares,
        then least squares on the inliers); it is also used when ``parallax`` is off.
    """

    model_config = ConfigDict(frozen=True)  # StrictModel: unknown keys refused

    win: int = Field(9, ge=3, description="Lucas-Kanade window side, pixels.")
    margin: float = Field(1.0, ge=0, description="Clearance between a point's window and the eye opening, px.")
    reach: float = Field(0.6, gt=0, description="Half-size of the box where points are laid, eye widths.")
    brow: float = Field(0.35, ge=0, description="Highest point above the opening's top edge, eye widths.")
    band: float = Field(0.2, gt=0, description="Points lie at most this far beyond the clearance, eye widths.")
    points: int = Field(24, ge=8, description="Points kept per eye (the most textured, balanced over 8 sectors).")
    min_points: int = Field(6, ge=3, description="Fewest followed points for a frame's map.")
    fb_max: float = Field(0.5, gt=0, description="Largest forward-backward error of a kept point, px.")
    parallax: bool = Field(True, description="Correct the parallax between the iris and the reference points.")
    calibrate: bool = Field(True, description="Scale the parallax correction on the points' own departures.")
    prior_px2: float = Field(1.0, ge=0, description="Weight pulling that scale toward 1, px squared.")
    iris_from: Literal["circle", "mesh"] = Field("circle", description="Iris centre: circle fit or MediaPipe's.")
    shift_steps: int = Field(10, ge=1, description="Mean-shift steps of the circle fit's start.")
    patience_s: float = Field(1.0, ge=0, description="Usable seconds without an eye's points before a new chain.")
    renew: float = Field(0.6, ge=0, le=1, description="Fraction of followed points below which a handover starts.")
    overlap_s: float = Field(0.3, ge=0, description="Length of a handover, seconds.")
    blink_margin_s: float = Field(0.08, ge=0, description="Frames this close to a detected blink are not read, s.")
    linear: Literal["pose", "texture"] = Field(
        "pose", description="The map's rotation and scale: from the pose (the texture gives the shift) or an affine fit.")


def _backproject(mesh: np.ndarray, xy: np.ndarray, z: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Camera coordinates (mm) of image points ``xy`` with MediaPipe depths ``z`` (px) in one frame.

    The convention of :meth:`cdrscreen.tracking.flow.SkinFlow.backproject` (the skin-flow
    pose's own 3-D points), so the points and the pose share one frame.
    """
    from cdrscreen.tracking.flow import SKIN_LANDMARKS
    from cdrscreen.tracking.pose import OUTER_CANTHAL_MM

    f, c = cam[0, 0], cam[:2, 2]
    depth = f + (z - float(np.median(mesh[list(SKIN_LANDMARKS), 2])))
    mm = OUTER_CANTHAL_MM / float(np.linalg.norm(mesh[263, :2] - mesh[33, :2]))
    return np.c_[(xy - c) * (depth / f)[:, None], depth] * mm


def _surface_z(mesh: np.ndarray, xy: np.ndarray, index: np.ndarray, k: int = 4) -> np.ndarray:
    """MediaPipe depth (px) of the mesh surface at image points ``xy``.

    Inverse squared distance weights of the ``k`` nearest landmarks of ``index``.
    """
    lm = mesh[index]
    d2 = np.sum((xy[:, None, :] - lm[None, :, :2]) ** 2, axis=-1)
    near = np.argsort(d2, axis=1)[:, :k]
    w = 1.0 / np.maximum(np.take_along_axis(d2, near, axis=1), 1e-6)
    return np.sum(w * lm[near, 2], axis=1) / w.sum(axis=1)


class _Seed:
    """Both eyes' reference points, laid on one frame, with their head-fixed 3-D model.

    :meth:`step` writes each frame's iris (seed-frame px) and the parallax a head-fixed
    iris would show into the rows of its slot, and accumulates the parallax calibration.
    """

    def __init__(self, i: int, gray: np.ndarray, mesh: np.ndarray, cam: np.ndarray, rot0: np.ndarray,
                 ref0: np.ndarray, *, slot: int, surface: np.ndarray, params: EyeTextureParams) -> None:
        from cdrscreen.tracking.pose import OUTER_CANTHAL_MM

        self.start = self.stop = i
        self.slot, self.p, self.cam = slot, params, cam
        self.rot0, self.ref0 = rot0, ref0
        self.eyes = [_EyePoints(gray, mesh, c, params) for c in EYE_CONTOURS]
        self.scale = OUTER_CANTHAL_MM / float(np.linalg.norm(mesh[263, :2] - mesh[33, :2]))  # mm per px
        self.axes = [(e.u, e.v) if e.key is not None else None for e in self.eyes]
        self.agree = self.power = 0.0
        self.lost = False
        self.linked = False  # its level tied to the previous seed's (set by _chain_angles)
        for e, c, contour in zip(self.eyes, IRIS_CENTRES, EYE_CONTOURS, strict=True):
            if e.key is None:
                continue
            # head-fixed 3-D points of the seed frame: the reference points on the mesh
            # surface, the iris on the surface of its eye opening (module notes)
            iris_xy = mesh[[c], :2]
            e.iris0 = iris_xy[0]
            e.model = _backproject(mesh, np.vstack([e.seed_xy, iris_xy]),
                                   np.r_[_surface_z(mesh, e.seed_xy, surface),
                                         _surface_z(mesh, iris_xy, np.array(contour))], cam)

    @property
    def gain(self) -> float:
        """The model's parallax scale: how well it predicts the points' own departures.

        Least squares, pulled toward 1 by ``prior_px2`` when the head hardly turned; kept
        in [0, 2]: it never reverses the correction or more than doubles it.
        """
        return _Seed.pooled_gain([self])

    @staticmethod
    def pooled_gain(seeds: list[_Seed]) -> float:
        """Return the parallax scale of :attr:`gain` from the sums of several seeds."""
        if not seeds or not seeds[0].p.calibrate:
            return 1.0
        agree, power, prior = sum(sd.agree for sd in seeds), sum(sd.power for sd in seeds), seeds[0].p.prior_px2
        return float(np.clip((agree + prior) / (power + prior), 0, 2))

    def retire(self) -> None:
        """Drop the points and images once the seed reads no more (a chain of an hour holds thousands)."""
        self.eyes = []

    def worn(self, renew: float) -> bool:
        """Whether an eye missed its map or follows fewer than ``renew`` of its points."""
        return any(e.key is not None and (e.misses >= 3 or e.good.sum() < renew * len(e.good)) for e in self.eyes)

    def step(self, i: int, gray: np.ndarray, mesh: np.ndarray, rot_i: np.ndarray, ref_i: np.ndarray,
             raw: np.ndarray, corr: np.ndarray, patience: int) -> None:
        """Read frame ``i`` into ``raw[i, slot]``, ``corr[i, slot]``; ``lost`` after ``patience`` misses."""
        cam, p = self.cam, self.p
        for k, (e, c) in enumerate(zip(self.eyes, IRIS_CENTRES, strict=True)):
            if e.key is None:
                continue
            if p.parallax:  # the seed's head-fixed points, moved with the pose and projected
                x = (e.model - self.ref0) @ self.rot0 @ rot_i.T + ref_i
                x = cam[0, 0] * x[:, :2] / x[:, 2:] + cam[:2, 2]
            lin = _affine(x[:-1], e.seed_xy)[:, :2] if p.parallax and p.linear == "pose" else None
            m = e.to_seed(gray, mesh, lin)
            if m is None:  # too few points followed: NaN here; given up after `patience` misses
                self.lost = self.lost or e.misses > patience
                continue
            if p.iris_from == "circle":
                patch = e.opening_patch(gray, m)
                q = e.iris(patch, m @ np.r_[mesh[c, :2], 1.0])
                if q is not None:
                    q = e.iris_circle(patch, q)
                if q is None:
                    continue
            else:
                q = m @ np.r_[mesh[c, :2], 1.0]
            raw[i, self.slot, k] = q
            if p.parallax:  # where a head-fixed iris would read against the same points
                f = e.fit
                a = _affine(x[:-1][f], e.seed_xy[f])
                corr[i, self.slot, k] = a @ np.r_[x[-1], 1.0] - e.iris0
                # what the model and the texture say of the points' own departure from the affine map
                res_mod = x[:-1][f] @ a[:, :2].T + a[:, 2] - e.seed_xy[f]
                res_obs = e.cur[f] @ m[:, :2].T + m[:, 2] - e.seed_xy[f]
                self.agree += float(np.sum(res_mod * res_obs))
                self.power += float(np.sum(res_mod * res_mod))
        self.stop = i + 1


def _chain_angles(chain: list[_Seed], raw: np.ndarray, corr: np.ndarray, out: np.ndarray, radius: float) -> None:
    """Write the angles of a chain of seeds (each laid during the previous one's handover) into ``out``.

    Each seed's iris, parallax-corrected with its gain, is turned into mm along and across
    each eye of its seed frame. A seed after the first is shifted by the median difference
    from the previous seed's values over the frames both read (per eye and axis; where an
    eye has no such frame, by the difference of their medians), so the chain shares one
    reference level; each eye's offset from its median over the chain becomes an angle, and
    the two eyes are averaged (one where only one reads).
    """
    lo, hi = chain[0].start, max(sd.stop for sd in chain)
    gain = _Seed.pooled_gain(chain)
    vals = np.full((hi - lo, 2, 2), np.nan, np.float32)  # mm per frame, eye and (along, across)
    with warnings.catch_warnings():  # an eye without any reading: NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        for j, sd in enumerate(chain):
            if sd.stop <= sd.start:
                continue
            q = raw[sd.start:sd.stop, sd.slot].astype(float) - gain * corr[sd.start:sd.stop, sd.slot]
            local = np.full(q.shape, np.nan)
            for e, ax in enumerate(sd.axes):
                if ax is not None:
                    local[:, e] = q[:, e] @ np.c_[ax[0], ax[1]] * sd.scale
            here = vals[sd.start - lo:sd.stop - lo]
            if j:
                sd.linked = True
                both = here[:max(0, min(chain[j - 1].stop, sd.stop) - sd.start)]
                off = np.nanmedian(both - local[:len(both)], axis=0) if len(both) else np.full((2, 2), np.nan)
                if not np.isfinite(off).all():  # no shared reading for an eye: the medians' difference
                    free = np.nanmedian(vals[:sd.start - lo], axis=0) - np.nanmedian(local, axis=0)
                    off = np.where(np.isfinite(off), off, np.where(np.isfinite(free), free, 0.0))
                local += off
            np.copyto(here, local, where=np.isnan(here))  # the older seed's reading is kept on shared frames
        vals -= np.nanmedian(vals, axis=0)  # in place: a chain can span an hour
        mm = np.nanmean(vals, axis=1, dtype=float)
    out[lo:hi] = np.degrees(np.arcsin(np.clip(mm / radius, -1, 1)))


def eye_in_texture(path: str | Path, table: pd.DataFrame, landmarks: np.ndarray, *, stride: int = 1,
                   eye_radius_mm: float | None = None,
                   params: EyeTextureParams | None = None) -> pd.DataFrame:
    """Eye-in-head rotation per frame, against the tracked texture around each eye.

    Parameters
    ----------
    path : path-like
        The video the track was made from (decoded again, frame by frame).
    table : DataFrame
        The face track's table (:attr:`cdrscreen.tracking.face.FaceTrack.table`).
    landmarks : ndarray (n, 478, 3)
        The track's landmarks (px), one per table row.
    stride : int
        The track's stride (every ``stride``-th decoded frame is a table row).
    eye_radius_mm : float, optional
        Eyeball radius for the angles (default 12 mm).
    params : EyeTextureParams, optional

    Returns
    -------
    DataFrame
        Columns ``eye_yaw``, ``eye_pitch`` (degrees, relative to the median over each
        chain's frames; NaN where the face, its pose or the reference is missing), index
        of ``table``; ``attrs["seeds"]`` lists each seed as ``(first row, end row, linked)``
        (``linked``: its level tied to the previous seed's by a handover),
        ``attrs["parallax_gain"]`` each seed's own parallax scale (step 5 of the module
        notes; the correction uses the scale pooled over the seed's chain).
    """
    import cv2
    from threadpoolctl import threadpool_limits

    from cdrscreen.media.video import iter_frames
    from cdrscreen.tracking.flow import EYE_RADIUS_MM
    from cdrscreen.tracking.pose import camera_matrix

    p = params or EyeTextureParams()
    radius = EYE_RADIUS_MM if eye_radius_mm is None else float(eye_radius_mm)
    n = len(table)
    out = np.full((n, 2), np.nan)
    # frames to read: a face with both irises, and a pose when the parallax is corrected
    # (column by column, views of the track's float32 columns: no float64 copy of the table)
    if p.parallax:
        usable = _posed(table)
    else:
        usable = table["success"].to_numpy(bool).copy()
        for col in ("iris_r_x", "iris_r_y", "iris_l_x", "iris_l_y"):
            usable &= np.isfinite(table[col].to_numpy())
    yaw, pitch, roll, tx, ty, tz = (table[c].to_numpy() for c in ("yaw", "pitch", "roll", "tx", "ty", "tz"))
    rot_cache: dict[int, np.ndarray] = {}

    def rot(i: int) -> np.ndarray:
        """Head rotation of frame ``i`` (NaN angles as 0), made when needed."""
        if i not in rot_cache:
            rot_cache.clear()
            rot_cache[i] = angles_to_rotation(*np.nan_to_num(np.array([yaw[i], pitch[i], roll[i]], np.float64)).tolist())
        return rot_cache[i]

    def ref(i: int) -> np.ndarray:
        return np.array([tx[i], ty[i], tz[i]], np.float64)

    # usable frames in a row without a map before a seed is given up; frames of a handover
    dt = np.diff(table["time"].to_numpy(float)) if "time" in table and n > 1 else np.array([])
    dt = dt[np.isfinite(dt) & (dt > 0)]
    frame_s = float(np.median(dt)) if dt.size else 0.0
    patience = int(round(p.patience_s / frame_s)) if frame_s else 0
    blink = table["blink"].to_numpy(bool) if "blink" in table else np.zeros(n, bool)
    if p.blink_margin_s > 0 and blink.any() and frame_s:
        # the frames next to a detected blink: lids partly closed over the iris are not read
        k = int(round(p.blink_margin_s / frame_s))
        near = np.convolve(blink.astype(float), np.ones(2 * k + 1), mode="same") > 0
        usable = usable & ~near
    # the iris in seed-frame px and the parallax of a head-fixed iris (model, px), per frame,
    # seed slot and eye: consecutive seeds overlap during a handover and alternate slots
    # (float32: 64 bytes a frame for both, 5.8 MB for an hour at 25 fps)
    raw = np.full((n, 2, 2, 2), np.nan, np.float32)
    corr = np.zeros((n, 2, 2, 2), np.float32)
    chain: list[_Seed] = []  # seeds whose reference levels are linked, not yet turned into angles
    done: list[_Seed] = []
    handover = max(1, int(round(p.overlap_s / frame_s))) if frame_s else 1

    def finish_chain() -> None:
        if chain:
            _chain_angles(chain, raw, corr, out, radius)
            done.extend(chain)
            chain.clear()

    surface = np.setdiff1d(np.arange(468), [*IRIS_CENTRES])
    # a memory-mapped landmark file: its pages are released every _GATHER_ROWS frames, so
    # an hour of landmarks (0.5 GB at 25 fps) is never resident in this process at once
    mapped = getattr(landmarks, "_mmap", None) if isinstance(landmarks, np.memmap) else None
    if isinstance(landmarks, np.memmap):  # rows of a plain view: no memmap object per frame
        landmarks = landmarks.view(np.ndarray)
    cur: _Seed | None = None
    nxt: _Seed | None = None  # the next seed, laid while the current one still follows its points
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    blas = threadpool_limits(1, user_api="blas")  # tiny matrices: BLAS threads only spin (2x the CPU)
    try:
        for i, fr in enumerate(iter_frames(path, stride=stride)):
            if i >= n:
                break
            if mapped is not None and i and i % _GATHER_ROWS == 0:
                _release(landmarks, mapped, i - _GATHER_ROWS, i)
            if not usable[i]:  # the seeds are kept: their points are looked for again on the next usable frame
                continue
            gray = cv2.cvtColor(fr.rgb, cv2.COLOR_RGB2GRAY)
            mesh = np.asarray(landmarks[i], float)
            if cur is None:  # nothing to link to: a new chain (never laid on a blink)
                if blink[i]:
                    continue
                finish_chain()
                cam = camera_matrix(gray.shape[1], gray.shape[0])
                cur = _Seed(i, gray, mesh, cam, rot(i), ref(i), slot=0, surface=surface, params=p)
                chain.append(cur)
            cur.step(i, gray, mesh, rot(i), ref(i), raw, corr, patience)
            if nxt is not None:
                nxt.step(i, gray, mesh, rot(i), ref(i), raw, corr, patience)
                if nxt.lost:  # given up before its handover: not part of the chain
                    chain.remove(nxt)
                    nxt.retire()
                    nxt = None
            if cur.lost or (nxt is not None and i - nxt.start + 1 >= handover):
                cur.retire()
                cur = nxt  # None when it was lost: a new chain on the next usable frame
                nxt = None
            elif nxt is None and cur.worn(p.renew) and not blink[i] and i + 1 < n:
                # few of its points still followed: the next seed is laid now, and its
                # level is tied to this one's over the frames both read (the handover)
                nxt = _Seed(i, gray, mesh, cam, rot(i), ref(i),
                            slot=1 - cur.slot, surface=surface, params=p)
                nxt.step(i, gray, mesh, rot(i), ref(i), raw, corr, patience)
                chain.append(nxt)
        finish_chain()
    finally:
        cv2.setNumThreads(threads)
        blas.restore_original_limits()
    res = pd.DataFrame(index=table.index)
    res.attrs["parallax_gain"] = [sd.gain for sd in done]
    res.attrs["seeds"] = [(sd.start, sd.stop, sd.linked) for sd in done]
    res[EYE_IN_HEAD_COLUMNS[0]] = out[:, 0]
    res[EYE_IN_HEAD_COLUMNS[1]] = -out[:, 1]
    return res


__all__ = ["EyeTextureParams", "eye_in_texture"]
