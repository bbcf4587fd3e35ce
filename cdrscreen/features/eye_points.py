"""Periocular reference points of one eye and the iris in the seed frame (used by :mod:`cdrscreen.features.eye_texture`).

:class:`_EyePoints` lays the points of one eye on its seed frame, follows them into later
frames (:meth:`_EyePoints.to_seed`: the map from a frame to the seed frame) and finds the
iris in a frame warped into the seed frame (:meth:`_EyePoints.iris`, a dark-centre mean
shift, then :meth:`_EyePoints.iris_circle`, a circle fitted to the iris's side edges from
both sides, :func:`_circle_centre`). :func:`_robust_shift` and :func:`_affine` are the
two ways the map is fitted. The steps are described in the notes of
:mod:`cdrscreen.features.eye_texture`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from cdrscreen.features.gaze import EYE_CONTOURS

if TYPE_CHECKING:
    from cdrscreen.features.eye_texture import EyeTextureParams

#: Iris centre and its four edge landmarks (subject's right, left).
IRIS_RINGS: tuple[tuple[int, ...], tuple[int, ...]] = ((468, 469, 470, 471, 472), (473, 474, 475, 476, 477))


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
        self.u, self.v = u, v
        # mesh landmarks on the skin of the key box (clear of the opening like the points):
        # their motion predicts the map of a frame that follows a lost one
        lm = mesh[:468, :2]
        inbox = np.flatnonzero(np.all((lm >= [x0, y0]) & (lm <= [x1, y1]), axis=1))
        guide = inbox[_polygon_distance(poly, lm[inbox]) > clear]
        self.guide = guide if len(guide) >= 3 else inbox
        self.guide_prev = lm[self.guide].copy()  # at the last frame with a map
        self.m_prev = np.array([[1.0, 0, 0], [0, 1.0, 0]])  # that frame's map (the seed: identity)
        self.misses = 0  # frames in a row without a map
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

    def to_seed(self, gray: np.ndarray, mesh: np.ndarray, lin: np.ndarray | None = None) -> np.ndarray | None:
        """Affine map (2x3) from this frame's pixels to the seed frame's, or None.

        The frame is warped into the key box with a guess of the map (the last frame's
        map, moved with the mesh's landmarks on the box's skin since then), and the
        points are tracked from the key image into that warp: only the guess's error is
        left to Lucas-Kanade, and the key image is compared with a frame that has the
        seed frame's rotation and scale, so the points hold over large head motion and
        are found again after a frame without a map (a blink, a lost face).
        """
        import cv2

        x0, y0, x1, y1 = self.box
        lm = mesh[self.guide, :2]
        try:  # the mesh's motion since the last frame with a map, composed with that map
            step = _affine(lm, self.guide_prev)
            guess = np.c_[self.m_prev[:, :2] @ step[:, :2], self.m_prev[:, :2] @ step[:, 2] + self.m_prev[:, 2]]
        except np.linalg.LinAlgError:
            return self._miss()
        if not np.all(np.isfinite(guess)):
            return self._miss()
        a = guess.copy()
        a[:, 2] -= [x0, y0]
        cur = cv2.warpAffine(gray, a, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
        key = self.key_pts.reshape(-1, 1, 2)
        fwd, st1, _ = cv2.calcOpticalFlowPyrLK(self.key, cur, key, key.copy(),
                                               flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **self.lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, self.key, fwd, key.copy(),
                                                flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **self.lk)
        fb = np.linalg.norm((back - key).reshape(-1, 2), axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb <= self.p.fb_max)
        if good.sum() < self.p.min_points:
            return self._miss()
        # the followed points in this frame's pixels: the warp undone
        g = np.vstack([guess, [0.0, 0.0, 1.0]])
        back_map = np.linalg.inv(g)[:2]
        q = fwd.reshape(-1, 2).astype(float) + [x0, y0]
        src = q @ back_map[:, :2].T + back_map[:, 2]
        dst = self.key_pts.astype(float) + [x0, y0]
        if lin is not None:  # the pose's linear part; the shift from the texture, robustly
            shift, inl = _robust_shift(src[good], dst[good], lin)
            if inl.sum() < self.p.min_points:
                return self._miss()
            m = np.c_[lin, shift]
        else:
            m, inl = cv2.estimateAffine2D(src[good], dst[good], method=cv2.LMEDS)
            if m is None:
                return self._miss()
            inl = inl.ravel().astype(bool)
            if inl.sum() >= self.p.min_points:  # least squares on the inliers
                m = _affine(src[good][inl], dst[good][inl])
        idx = np.flatnonzero(good)
        self.good = good
        self.fit = good.copy()  # the points of the fit: inliers of the robust one
        if inl.sum() >= self.p.min_points:
            self.fit[idx[~inl]] = False
        self.cur = src  # this frame's positions (px)
        self.m_prev, self.guide_prev, self.misses = m, lm.copy(), 0
        return m

    def _miss(self) -> None:
        self.misses += 1
        return None

    def opening_patch(self, gray: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Return the frame warped into the seed frame's eye opening with ``m`` (this frame to the seed frame), float32.

        Both iris finders read it: the opening's mask and rows are the seed frame's.
        """
        import cv2

        ox, oy, bw, bh = self.opening
        a = m.copy()
        a[:, 2] -= [ox, oy]
        return cv2.warpAffine(gray, a, (bw, bh), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE).astype(np.float32)

    def iris(self, patch: np.ndarray, start: np.ndarray) -> np.ndarray | None:
        """Iris centre (px of the seed frame): the centre of darkness in the seed frame's eye opening.

        ``patch`` is :meth:`opening_patch`; each pixel weighs how much darker than
        :attr:`dark` it is. From ``start`` (seed-frame px), the centroid of the weights within
        one iris radius is taken until it moves less than 0.01 px (mean shift).
        """
        ox, oy = self.opening[:2]
        wgt = np.clip(self.dark - patch, 0, None) * self.mask
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


    def iris_circle(self, patch: np.ndarray, start: np.ndarray) -> np.ndarray | None:
        """Iris centre (px of the seed frame) from a circle fitted to the iris's side edges.

        ``patch`` is :meth:`opening_patch`. On each row of the seed
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
        # the rows of an iris clipped by the lids fix the centre's height only up to a
        # reflection about the rows (a chord has the same width above and below the
        # centre): the fit starts on both sides and keeps the better one
        fits = [_circle_centre(qx, qy, r, float(c[0]), float(c[1]) + side * r / 2) for side in (-1, 1)]
        cx, cy, _ = min(fits, key=lambda f: f[2])
        return np.array([cx + ox, cy + oy])


def _circle_centre(qx: np.ndarray, qy: np.ndarray, r: float, cx: float, cy: float) -> tuple[float, float, float]:
    """Centre of the circle of radius ``r`` nearest the points (Gauss-Newton from ``cx, cy``) and its squared error."""
    for _ in range(10):  # 2x2 normal equations
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
    res = np.sqrt((qx - cx) ** 2 + (qy - cy) ** 2) - r
    return cx, cy, float(res @ res)


def _robust_shift(src: np.ndarray, dst: np.ndarray, lin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift ``t`` of the map ``x -> lin @ x + t`` taking ``src`` to ``dst``, and its inliers.

    The points' median shift, then the mean over those within 3 robust SDs of it (at
    least 0.3 px): points moved by something else (an expression) on up to half of them
    are left out.
    """
    res = dst - src @ lin.T
    dev = np.linalg.norm(res - np.median(res, axis=0), axis=1)
    inl = dev <= max(3 * 1.4826 * float(np.median(dev)), 0.3)
    return res[inl].mean(axis=0), inl


def _affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares affine map (2x3) taking ``src`` to ``dst``."""
    return np.linalg.lstsq(np.c_[src, np.ones(len(src))], dst, rcond=None)[0].T
