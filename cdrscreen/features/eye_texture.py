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
2. **Follow.** The points are tracked by pyramidal Lucas-Kanade optical flow from the
   seed frame to each frame (from their previous positions; a forward-backward check
   drops points for the frame), like the skin points of the head pose
   (:mod:`cdrscreen.tracking.flow`), in a crop that moves with them. When fewer than
   ``min_points`` are followed, the next frame seeds again.
3. **Local frame.** An affine map from the frame to the seed frame is fitted to the
   followed points (least median of squares, then least squares on the inliers): the
   head's rotation, translation and scale *at the eye*, measured on the texture.
4. **Iris.** The frame is warped into the seed frame with that map (the opening and the
   lids stand still there) and the iris is found in it: a mean shift on the pixels darker
   than halfway between the opening's dark and bright ends gives a start, and a circle of
   the iris radius (MediaPipe's iris landmarks of the seed frame) is fitted to the iris's
   left and right edges on the rows of the opening (:meth:`_EyePoints.iris_circle`).
   ``iris_from="mesh"`` takes MediaPipe's iris landmark mapped into the seed frame.
5. **Parallax.** The iris lies on the eye opening's surface, the reference points on the
   skin around it, at other depths: a head turn moves one against the other. The seed
   frame's reference points (at the mesh surface's depth) and iris (at the depth of the
   eye-contour surface) become head-fixed 3-D points, moved with the skin-flow pose and
   projected; the affine map fitted to the projected reference points says where a
   head-fixed iris would read, and that reading is subtracted. The correction is scaled,
   per seed, by how well the same model predicts the reference points' *own* departures
   from their affine map (least squares, pulled toward 1 by ``prior_px2`` when the head
   hardly turns): this calibrates the pose's rotation gain and the mesh's depth scale on
   head-fixed texture only, never on the iris, so true eye-head co-movement is kept.
6. **Angles.** Each eye's offset from its median over the seed's frames, in the seed
   frame's eye axes (along and across the line through the eye corners), is turned into
   mm with the seed frame's scale (outer canthal distance
   :data:`cdrscreen.tracking.pose.OUTER_CANTHAL_MM`) and into degrees with a 12 mm
   eyeball radius, averaged over both eyes: ``eye_yaw`` > 0 toward image right,
   ``eye_pitch`` > 0 up (the signs of ``yaw`` and ``pitch``).

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

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cdrscreen.features.gaze import (
    _GATHER_ROWS,
    EYE_CONTOURS,
    EYE_IN_HEAD_COLUMNS,
    IRIS_CENTRES,
    _posed,
    _release,
)
from cdrscreen.tracking.flow import angles_to_rotation

#: Iris centre and its four edge landmarks (subject's right, left).
IRIS_RINGS: tuple[tuple[int, ...], tuple[int, ...]] = ((468, 469, 470, 471, 472), (473, 474, 475, 476, 477))


@dataclass(frozen=True)
class EyeTextureParams:
    """Settings of :func:`eye_in_texture`.

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
        Fewest followed points for a frame's affine map (fewer: NaN for the frame, and
        the next frame seeds again).
    fb_max : float
        Largest forward-backward error (px) of a kept point.
    parallax : bool
        Correct the parallax between the iris and the reference points with the head pose
        and the mesh's depths (module notes, step 5).
    iris_from : {"circle", "mesh"}
        The iris centre: a circle fitted to the iris's edges in the frame warped into the
        seed frame (``"circle"``, :meth:`_EyePoints.iris_circle`), or MediaPipe's iris
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
    """

    win: int = 9
    margin: float = 1.0
    reach: float = 0.6
    brow: float = 0.35
    band: float = 0.2
    points: int = 24
    min_points: int = 6
    fb_max: float = 0.5
    parallax: bool = True
    calibrate: bool = True
    prior_px2: float = 1.0
    iris_from: str = "circle"
    shift_steps: int = 10


def _polygon_distance(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Signed distance (px, > 0 outside) of each point from a closed polygon."""
    import cv2

    c = poly.astype(np.float32).reshape(-1, 1, 2)
    return np.array([-cv2.pointPolygonTest(c, (float(x), float(y)), True) for x, y in pts])


def _eye_axes(mesh: np.ndarray, contour: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, float]:
    """Return unit vectors along (image right) and across (down) the eye, and its width (px)."""
    a, b = mesh[contour[0], :2], mesh[contour[8], :2]  # the two corners
    u = b - a if b[0] > a[0] else a - b
    width = float(np.linalg.norm(u))
    u = u / width
    return u, np.array([-u[1], u[0]]), width


class _EyePoints:
    """Periocular points of one eye, tracked from the seed frame (one stretch of frames)."""

    def __init__(self, gray: np.ndarray, mesh: np.ndarray, contour: tuple[int, ...],
                 params: EyeTextureParams) -> None:
        import cv2

        self.p = params
        poly = mesh[list(contour), :2]
        u, v, width = _eye_axes(mesh, contour)
        centre = poly.mean(axis=0)
        # grid in the eye's own axes, spacing half a window
        step = max(2.0, params.win / 2)
        top = float(np.min((poly - centre) @ v))
        ra = params.reach * width
        a = np.arange(-ra - width / 2, ra + width / 2 + 1e-9, step)
        b = np.arange(top - params.brow * width, ra + 1e-9, step)
        aa, bb = np.meshgrid(a, b)
        cand = centre + aa.reshape(-1, 1) * u + bb.reshape(-1, 1) * v
        h, w = gray.shape[:2]
        half = params.win / 2 + 1
        inside = np.all((cand >= half) & (cand <= np.array([w, h]) - half), axis=1)
        cand = cand[inside]
        dist = _polygon_distance(poly, cand)
        clear = params.win / 2 * np.sqrt(2) + params.margin
        cand = cand[(dist > clear) & (dist <= clear + params.band * width)]
        if len(cand) < params.min_points:
            self.key = None
            return
        x0, y0 = np.floor(cand.min(axis=0) - 3 * params.win).astype(int).clip(0)
        x1, y1 = np.ceil(cand.max(axis=0) + 3 * params.win).astype(int)
        x1, y1 = min(x1, w), min(y1, h)
        self.box = (int(x0), int(y0), int(x1), int(y1))
        self.key = np.ascontiguousarray(gray[y0:y1, x0:x1])
        eig = cv2.cornerMinEigenVal(self.key, params.win)
        ij = np.round(cand - [x0, y0]).astype(int)
        score = eig[ij[:, 1].clip(0, eig.shape[0] - 1), ij[:, 0].clip(0, eig.shape[1] - 1)]
        # the most textured points of each of 8 sectors around the eye: balanced on all sides
        rel = cand - centre
        sector = np.floor((np.arctan2(rel @ v, rel @ u) + np.pi) / (2 * np.pi) * 8).astype(int) % 8
        per = max(1, params.points // 8)
        keep = np.concatenate([np.flatnonzero(sector == k)[np.argsort(-score[sector == k])[:per]]
                               for k in range(8)])
        self.key_pts = (cand[keep] - [x0, y0]).astype(np.float32)
        self.seed_xy = cand[keep]
        self.good = np.ones(len(keep), bool)
        self.pts = self.key_pts.copy()
        self.u, self.v = u, v
        # the eye opening of the seed frame, for finding the iris in seed-frame pixels
        ox, oy = np.floor(poly.min(axis=0) - 2).astype(int).clip(0)
        ex, ey = np.ceil(poly.max(axis=0) + 2).astype(int)
        ex, ey = min(ex, w), min(ey, h)
        mask = np.zeros((ey - oy, ex - ox), np.uint8)
        cv2.fillPoly(mask, [np.round((poly - [ox, oy]) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
        self.opening = (int(ox), int(oy), int(ex - ox), int(ey - oy))
        self.mask = mask.astype(np.float32)
        self._ys, self._xs = np.mgrid[0:ey - oy, 0:ex - ox]  # pixel grid of the opening (mean shift)
        self._inner = cv2.erode(self.mask, np.ones((3, 3), np.uint8)) > 0  # rows of the circle fit
        ring = IRIS_RINGS[contour is EYE_CONTOURS[1]]
        self.radius = float(np.mean(np.linalg.norm(mesh[list(ring[1:]), :2] - mesh[ring[0], :2], axis=1)))
        vals = gray[oy:ey, ox:ex][mask > 0].astype(np.float32)
        # darker than halfway between the iris (dark end) and the sclera (bright end)
        self.dark = float(np.mean(np.percentile(vals, [10, 90]))) if vals.size else np.nan
        self.lk = dict(winSize=(params.win, params.win), maxLevel=2,
                       criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))

    def to_seed(self, gray: np.ndarray) -> np.ndarray | None:
        """Affine map (2x3) from this frame's pixels to the seed frame's, or None."""
        import cv2

        # the key frame's box, moved with the points (whole pixels), in this frame
        x0, y0, x1, y1 = self.box
        sx, sy = np.round(np.median(self.pts - self.key_pts, axis=0)).astype(int)
        if x0 + sx < 0 or y0 + sy < 0 or x1 + sx > gray.shape[1] or y1 + sy > gray.shape[0]:
            return None
        cur = np.ascontiguousarray(gray[y0 + sy:y1 + sy, x0 + sx:x1 + sx])
        shift = np.array([sx, sy], np.float32)
        key = self.key_pts.reshape(-1, 1, 2)
        fwd, st1, _ = cv2.calcOpticalFlowPyrLK(self.key, cur, key, (self.pts - shift).reshape(-1, 1, 2),
                                               flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **self.lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, self.key, fwd, key.copy(),
                                                flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **self.lk)
        fb = np.linalg.norm((back - key).reshape(-1, 2), axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb <= self.p.fb_max)
        fwd = fwd.reshape(-1, 2) + shift
        if good.sum() < self.p.min_points:
            return None
        src, dst = fwd[good] + [x0, y0], self.key_pts[good] + [x0, y0]
        m, inl = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
        if m is None:
            return None
        inl = inl.ravel().astype(bool)
        if inl.sum() >= self.p.min_points:  # least squares on the inliers
            a = np.c_[src[inl], np.ones(inl.sum())]
            m = np.linalg.lstsq(a, dst[inl], rcond=None)[0].T
        idx = np.flatnonzero(good)
        self.pts[idx] = fwd[good]
        self.good = good
        self.fit = good.copy()  # the points of the fit: inliers of the robust one
        if inl.sum() >= self.p.min_points:
            self.fit[idx[~inl]] = False
        self.cur = fwd + [x0, y0]  # this frame's positions (px)
        return m


    def iris(self, gray: np.ndarray, m: np.ndarray, start: np.ndarray) -> np.ndarray | None:
        """Iris centre (px of the seed frame): the centre of darkness in the seed frame's eye opening.

        The frame is warped into the seed frame with ``m`` (this frame to the seed frame),
        so the opening's mask is the seed frame's; each pixel weighs how much darker than
        :attr:`dark` it is. From ``start`` (seed-frame px), the centroid of the weights within
        one iris radius is taken until it moves less than 0.01 px (mean shift).
        """
        import cv2

        ox, oy, bw, bh = self.opening
        a = m.copy()
        a[:, 2] -= [ox, oy]
        patch = cv2.warpAffine(gray, a, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        wgt = np.clip(self.dark - patch.astype(np.float32), 0, None) * self.mask
        ys, xs = self._ys, self._xs
        c = np.asarray(start, float) - [ox, oy]
        for _ in range(self.p.shift_steps):
            near = wgt * (((xs - c[0]) ** 2 + (ys - c[1]) ** 2) <= self.radius ** 2)
            total = float(near.sum())
            if not total > 0:
                return None
            new = np.array([float((near * xs).sum()), float((near * ys).sum())]) / total
            done = np.hypot(*(new - c)) < 0.01
            c = new
            if done:
                break
        return c + [ox, oy]


    def iris_circle(self, gray: np.ndarray, m: np.ndarray, start: np.ndarray) -> np.ndarray | None:
        """Iris centre (px of the seed frame) from a circle fitted to the iris's side edges.

        The frame is warped into the seed frame with ``m``. On each row of the seed
        frame's eye opening (one pixel in from its border, so not on the lids), the iris's
        left edge (the most negative horizontal gradient, bright to dark) and right edge
        (the most positive) are found near ``start`` (the dark-centre estimate), to
        sub-pixel precision (parabola), where the gradient reaches a quarter of the
        opening's largest. A circle of the iris radius (MediaPipe's iris landmarks of the
        seed frame) is fitted to them (Gauss-Newton): the lids clip the iris's top and
        bottom, but the widths of the visible rows still fix the centre's height.
        """
        import cv2

        ox, oy, bw, bh = self.opening
        a = m.copy()
        a[:, 2] -= [ox, oy]
        patch = cv2.warpAffine(gray, a, (bw, bh), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        gx = cv2.Sobel(patch, cv2.CV_32F, 1, 0, ksize=3)
        inner = self._inner
        if not inner.any():
            return None
        c = np.asarray(start, float) - [ox, oy]
        r = self.radius
        g_min = 0.25 * float(np.abs(gx[inner]).max())
        px: list[np.ndarray] = []
        py: list[np.ndarray] = []
        for sign, lo, hi in ((-1, c[0] - 1.6 * r, c[0] - 0.3 * r), (1, c[0] + 0.3 * r, c[0] + 1.6 * r)):
            x0, x1 = max(1, int(np.floor(lo))), min(bw - 2, int(np.ceil(hi)))
            if x1 <= x0:
                continue
            v = np.where(inner[:, x0:x1 + 1], sign * gx[:, x0:x1 + 1], -np.inf)  # every row at once
            j = np.argmax(v, axis=1)
            x = x0 + j
            rows = np.arange(bh)
            best = v[rows, j]
            keep = (best >= g_min) & inner[rows, x - 1] & inner[rows, np.minimum(x + 1, bw - 1)]
            lv, rv = sign * gx[rows, x - 1], sign * gx[rows, np.minimum(x + 1, bw - 1)]
            den = lv - 2 * best + rv
            with np.errstate(invalid="ignore", divide="ignore"):
                off = np.where(den < 0, 0.5 * (lv - rv) / np.where(den < 0, den, -1.0), 0.0)
            px.append(x[keep] + np.clip(off[keep], -0.5, 0.5))
            py.append(rows[keep].astype(float))
        qx, qy = np.concatenate(px) if px else np.empty(0), np.concatenate(py) if py else np.empty(0)
        if qx.size < 4:
            return None
        cx, cy = float(c[0]), float(c[1])
        for _ in range(10):  # Gauss-Newton for the centre, radius fixed (2x2 normal equations)
            dx, dy = qx - cx, qy - cy
            n = np.maximum(np.sqrt(dx * dx + dy * dy), 1e-9)
            jx, jy, res = -dx / n, -dy / n, n - r  # Jacobian of the residuals n - r in (cx, cy)
            a11, a12, a22 = float(jx @ jx), float(jx @ jy), float(jy @ jy)
            b1, b2 = -float(jx @ res), -float(jy @ res)
            det = a11 * a22 - a12 * a12
            if not abs(det) > 1e-12 * max(a11 * a22, 1e-300):
                ux, uy = np.linalg.lstsq(np.c_[jx, jy], -res, rcond=None)[0]  # degenerate: minimum norm
            else:
                ux, uy = (a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det
            cx, cy = cx + float(ux), cy + float(uy)
            if math.hypot(ux, uy) < 1e-3:
                break
        return np.array([cx + ox, cy + oy])


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


def _affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares affine map (2x3) taking ``src`` to ``dst``."""
    return np.linalg.lstsq(np.c_[src, np.ones(len(src))], dst, rcond=None)[0].T


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
        seed's frames; NaN where the face, its pose or the reference is missing), index of
        ``table``; ``attrs["parallax_gain"]`` holds each seed's parallax scale (step 5 of
        the module notes).
    """
    import cv2

    from cdrscreen.media.video import iter_frames
    from cdrscreen.tracking.flow import EYE_RADIUS_MM
    from cdrscreen.tracking.pose import OUTER_CANTHAL_MM, camera_matrix

    p = params or EyeTextureParams()
    if p.iris_from not in ("circle", "mesh"):
        raise ValueError(f"iris_from must be 'circle' or 'mesh', not {p.iris_from!r}")
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

    eyes: list[_EyePoints] | None = None
    gains: list[float] = []
    raw = np.full((n, 2, 2), np.nan)  # iris in seed-frame px, per frame and eye
    corr = np.zeros((n, 2, 2))  # parallax of a head-fixed iris against the points (model), px
    # a seed's frames are contiguous; each seed is finished (offsets, angles) when the next
    # starts, so only its own temporaries exist besides the two arrays above
    seg: dict = {}

    def finish_seed() -> None:
        if not seg or seg["stop"] <= seg["start"]:
            return
        at = slice(seg["start"], seg["stop"])
        n_at = seg["stop"] - seg["start"]
        # the model's parallax, scaled by how well it predicts the points' own departures
        # (least squares, pulled toward 1 by prior_px2 when the head hardly turned; kept in
        # [0, 2]: it never reverses the correction or more than doubles it)
        gain = float(np.clip((seg["agree"] + p.prior_px2) / (seg["power"] + p.prior_px2), 0, 2)) \
            if p.calibrate else 1.0
        q = raw[at] - gain * corr[at]
        disp = np.full((n_at, 2, 2), np.nan)  # per frame, per eye: (along, across) px of the seed frame
        for e in range(2):
            eye = seg["axes"][e]
            disp[:, e] = q[:, e] @ np.c_[eye[0], eye[1]] if eye is not None else np.nan
        if not np.isfinite(disp).any():
            return
        with warnings.catch_warnings():  # an eye without any reading in this seed: NaN, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            d = disp - np.nanmedian(disp, axis=0)
            mm = np.nanmean(d, axis=1) * seg["scale"]  # mean of both eyes (one where only one)
        out[at] = np.degrees(np.arcsin(np.clip(mm / radius, -1, 1)))
        gains.append(gain)

    rot_seed = np.eye(3)
    surface = np.setdiff1d(np.arange(468), [*IRIS_CENTRES])
    # a memory-mapped landmark file: its pages are released every _GATHER_ROWS frames, so
    # an hour of landmarks (0.5 GB at 25 fps) is never resident in this process at once
    mapped = getattr(landmarks, "_mmap", None) if isinstance(landmarks, np.memmap) else None
    if isinstance(landmarks, np.memmap):  # rows of a plain view: no memmap object per frame
        landmarks = landmarks.view(np.ndarray)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for i, fr in enumerate(iter_frames(path, stride=stride)):
            if i >= n:
                break
            if mapped is not None and i and i % _GATHER_ROWS == 0:
                _release(landmarks, mapped, i - _GATHER_ROWS, i)
            if not usable[i]:
                eyes = None
                continue
            lost = False
            gray = cv2.cvtColor(fr.rgb, cv2.COLOR_RGB2GRAY)
            mesh = np.asarray(landmarks[i], float)
            if eyes is None:
                finish_seed()
                cam = camera_matrix(gray.shape[1], gray.shape[0])
                eyes = [_EyePoints(gray, mesh, c, p) for c in EYE_CONTOURS]
                rot_seed, ref_seed = rot(i), ref(i)
                seg = {"start": i, "stop": i, "agree": 0.0, "power": 0.0,
                       "scale": OUTER_CANTHAL_MM / float(np.linalg.norm(mesh[263, :2] - mesh[33, :2])),
                       "axes": [(e.u, e.v) if e.key is not None else None for e in eyes]}
                for e, c, contour in zip(eyes, IRIS_CENTRES, EYE_CONTOURS, strict=True):
                    if e.key is None:
                        continue
                    # head-fixed 3-D points of the seed frame: the reference points on the mesh
                    # surface, the iris on the surface of its eye opening (module notes)
                    iris_xy = mesh[[c], :2]
                    e.iris0 = iris_xy[0]
                    e.model = _backproject(mesh, np.vstack([e.seed_xy, iris_xy]),
                                           np.r_[_surface_z(mesh, e.seed_xy, surface),
                                                 _surface_z(mesh, iris_xy, np.array(contour))], cam)
            raw_i, corr_i = raw[i], corr[i]  # views: this frame's rows
            for k, (e, c) in enumerate(zip(eyes, IRIS_CENTRES, strict=True)):
                if e.key is None:
                    continue
                m = e.to_seed(gray)
                if m is None:  # too few points followed: a fresh seed on the next frame
                    lost = True
                    continue
                if p.iris_from == "circle":
                    q = e.iris(gray, m, m @ np.r_[mesh[c, :2], 1.0])
                    if q is not None:
                        q = e.iris_circle(gray, m, q)
                    if q is None:
                        continue
                else:
                    q = m @ np.r_[mesh[c, :2], 1.0]
                raw_i[k] = q
                if p.parallax:  # where a head-fixed iris would read against the same points
                    x = (e.model - ref_seed) @ rot_seed @ rot(i).T + ref(i)
                    x = cam[0, 0] * x[:, :2] / x[:, 2:] + cam[:2, 2]
                    f = e.fit
                    a = _affine(x[:-1][f], e.seed_xy[f])
                    corr_i[k] = a @ np.r_[x[-1], 1.0] - e.iris0
                    # what the model and the texture say of the points' own departure from the affine map
                    res_mod = x[:-1][f] @ a[:, :2].T + a[:, 2] - e.seed_xy[f]
                    res_obs = e.cur[f] @ m[:, :2].T + m[:, 2] - e.seed_xy[f]
                    seg["agree"] += float(np.sum(res_mod * res_obs))
                    seg["power"] += float(np.sum(res_mod * res_mod))
            seg["stop"] = i + 1
            if lost:
                eyes = None
        finish_seed()
    finally:
        cv2.setNumThreads(threads)
    res = pd.DataFrame(index=table.index)
    res.attrs["parallax_gain"] = gains
    res[EYE_IN_HEAD_COLUMNS[0]] = out[:, 0]
    res[EYE_IN_HEAD_COLUMNS[1]] = -out[:, 1]
    return res


__all__ = ["EyeTextureParams", "eye_in_texture"]
