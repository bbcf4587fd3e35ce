"""Render a still face photograph as a video with planted head, eye and lid motion.

How a frame is made (see :class:`FaceAnimator`):

1. **Eyes, in the still's texture.** Each eye opening (the polygon of MediaPipe's
   eye-contour landmarks) is repainted with the sclera colour measured in the photo; an
   iris disc (radius and colour measured from iris landmarks 468-477, dark pupil,
   darker limbus) is drawn at the planted offset, with sub-pixel anti-aliasing and clipped
   to the opening, so the iris really moves relative to the eye corners. Eyelid closure
   fills the opening from the upper lid down with skin colour sampled above the eye.
2. **Expression.** The face-mesh landmarks move by the planted expression controls
   (smile, brow raise, ...; :mod:`cdrscreen.demo.expressions`) before the head warp, and
   the texture follows them like it follows the jaw.
3. **Head, as a 3-D warp.** The 468 mesh landmarks (with MediaPipe's relative depth z),
   a ring of points around the face (hair, ears, neck: they move with the head) and
   fixed points on the frame border (background: it stays still) are triangulated
   once (Delaunay on the still). Per frame the head points are back-projected with a
   pinhole camera (focal ``f``, default the frame width), rotated by the planted yaw,
   pitch and roll about a pivot behind the face, shifted and projected again. A triangle
   id map is rasterised in depth order (far first, so the nose hides the far cheek) and
   each pixel's source position follows from its triangle's affine map: one
   ``cv2.remap`` per frame.
4. **Camera.** Optional occluder (``face_visible`` False), lighting gain, Gaussian noise.

All randomness (pixel noise) comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.spatial import Delaunay

from cdrscreen.demo.expressions import CONTROLS, control_basis
from cdrscreen.demo.faces import (
    EYE_UPPER_LEN,
    FACE_OVAL,
    LEFT_EYE,
    LEFT_IRIS,
    LOWER_FACE,
    NOSE_TIP,
    RIGHT_EYE,
    RIGHT_IRIS,
    FaceSource,
)
from cdrscreen.demo.trajectories import GroundTruth, Trajectories, rotation_matrix

_RING_SCALE = 1.4  # head ring around the face oval (moves with the head)
_PIVOT_DEPTH = 0.6  # pivot behind the nose tip, in face widths
_RING_DEPTH = 0.0  # depth of the head ring behind the face oval, in face widths
_SS = 8  # supersampling factor for anti-aliased eye masks
_BANK, _PAD = 12, 24  # pixel noise: fields in the bank, random-offset margin (pixels)


@dataclass
class _Eye:
    """Precomputed geometry and colours of one eye opening, in texture pixels."""

    x0: int
    y0: int
    mask: np.ndarray  # (h, w) float32 in [0, 1]: inside the eye opening
    xs: np.ndarray  # (h, w) pixel-centre x coordinates of the ROI
    ys: np.ndarray
    t: np.ndarray  # (h, w) fraction of the opening height below the upper lid
    col_h: np.ndarray  # (h, w) opening height (px) of each pixel's column
    centre: np.ndarray  # neutral iris centre (x, y)
    u: np.ndarray  # unit vector along the eye (towards image right)
    v: np.ndarray  # unit vector across the eye (down)
    width: float
    height: float
    radius: float
    iris_rgb: np.ndarray
    sclera_rgb: np.ndarray
    lid_rgb: np.ndarray
    z: float  # depth of the iris landmark


def _eye_geometry(tex: np.ndarray, lm: np.ndarray, poly_idx: tuple[int, ...], iris_idx: tuple[int, ...]) -> _Eye:
    poly = lm[list(poly_idx), :2]
    c_a, c_b = poly[0], poly[EYE_UPPER_LEN - 1]
    u = c_b - c_a
    if u[0] < 0:
        u = -u
    width = float(np.hypot(*u))
    u = u / width
    v = np.array([-u[1], u[0]])  # rotate +90 deg in image coords: points down for u = +x
    upper = poly[:EYE_UPPER_LEN]
    lower = np.vstack([poly[EYE_UPPER_LEN - 1:], poly[:1]])
    mid = (c_a + c_b) / 2
    # Local coordinates (along, across) of lid curves relative to the corner midpoint.
    up_l = (upper - mid) @ np.stack([u, v], 1)
    lo_l = (lower - mid) @ np.stack([u, v], 1)
    up_l = up_l[np.argsort(up_l[:, 0])]
    lo_l = lo_l[np.argsort(lo_l[:, 0])]
    height = float(np.max(np.interp(np.linspace(-width / 3, width / 3, 9), lo_l[:, 0], lo_l[:, 1])
                          - np.interp(np.linspace(-width / 3, width / 3, 9), up_l[:, 0], up_l[:, 1])))
    height = max(height, 1.0)
    iris = lm[list(iris_idx), :2]
    radius = float(np.mean(np.hypot(*(iris[1:] - iris[0]).T)))
    radius = float(np.clip(radius, 0.16 * width, 0.26 * width))
    # Neutral centre: middle of the opening at the corner midpoint's column.
    a = 0.0
    centre = mid + v * (np.interp(a, up_l[:, 0], up_l[:, 1]) + np.interp(a, lo_l[:, 0], lo_l[:, 1])) / 2
    # ROI with margin for iris travel.
    pad = int(np.ceil(radius)) + 3
    x0 = int(np.floor(poly[:, 0].min())) - pad
    y0 = int(np.floor(poly[:, 1].min())) - pad
    x1 = int(np.ceil(poly[:, 0].max())) + pad
    y1 = int(np.ceil(poly[:, 1].max())) + pad
    h_img, w_img = tex.shape[:2]
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, w_img - 1), min(y1, h_img - 1)
    h, w = y1 - y0 + 1, x1 - x0 + 1
    big = np.zeros((h * _SS, w * _SS), np.uint8)
    pts = np.round(((poly - [x0, y0]) * _SS + (_SS - 1) / 2) * 16).astype(np.int32)
    cv2.fillPoly(big, [pts], 255, lineType=cv2.LINE_8, shift=4)
    mask = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1].astype(np.float32)
    loc_a = (xs - mid[0]) * u[0] + (ys - mid[1]) * u[1]
    loc_b = (xs - mid[0]) * v[0] + (ys - mid[1]) * v[1]
    yu = np.interp(loc_a, up_l[:, 0], up_l[:, 1])
    yl = np.interp(loc_a, lo_l[:, 0], lo_l[:, 1])
    col_h = np.maximum(yl - yu, 0.5).astype(np.float32)
    t = ((loc_b - yu) / col_h).astype(np.float32)
    # Colours measured in the photograph.
    roi = tex[y0:y1 + 1, x0:x1 + 1].astype(np.float32)
    d_iris = np.hypot(xs - iris[0, 0], ys - iris[0, 1])
    inside = mask > 0.9
    sclera_px = roi[inside & (d_iris > radius * 1.1)]
    iris_px = roi[inside & (d_iris < radius * 0.9) & (d_iris > radius * 0.4)]
    lum = sclera_px.mean(1) if len(sclera_px) else np.zeros(0)
    if len(sclera_px) >= 3:
        sclera = sclera_px[lum >= np.percentile(lum, 70)].mean(0)
    else:
        sclera = np.array([215.0, 205.0, 200.0])
    # Small scleras come out dark and tinted by lids and lashes in photographs: keep 30%
    # of the measured tint and lift the brightness into a plausible range.
    lum_s = float(np.clip(sclera.mean() * 1.1 + 15, 175, 235))
    sclera = 0.3 * sclera * (lum_s / max(sclera.mean(), 1.0)) + 0.7 * np.array([lum_s, lum_s * 0.98, lum_s * 0.96])
    iris_rgb = np.median(iris_px, 0) if len(iris_px) >= 3 else np.array([90.0, 70.0, 55.0])
    iris_rgb = np.minimum(iris_rgb, sclera * 0.7)
    band = (loc_b < yu - 0.35 * height) & (loc_b > yu - 1.1 * height) & (np.abs(loc_a) < width / 3)
    lid_px = roi[band]
    lid_rgb = np.median(lid_px, 0) if len(lid_px) >= 3 else roi.reshape(-1, 3).mean(0)
    return _Eye(
        x0=x0, y0=y0, mask=mask, xs=xs, ys=ys, t=t, col_h=col_h, centre=centre, u=u, v=v,
        width=width, height=height, radius=radius, iris_rgb=iris_rgb.astype(np.float32),
        sclera_rgb=sclera.astype(np.float32), lid_rgb=lid_rgb.astype(np.float32),
        z=float(lm[iris_idx[0], 2]),
    )


class FaceAnimator:
    """Render frames of one :class:`FaceSource` under planted :class:`Trajectories`.

    Parameters
    ----------
    face : FaceSource
        The prepared still (its size is the frame size).
    focal : float, optional
        Pinhole focal length in pixels (default: the frame width), principal point at
        the frame centre.
    seed : int
        Seed of the pixel-noise generator.
    occluder_rgb : tuple of 3 ints
        Colour of the occluder painted when the face is not visible.
    """

    def __init__(self, face: FaceSource, *, focal: float | None = None, seed: int = 0,
                 occluder_rgb: tuple[int, int, int] = (96, 84, 78)) -> None:
        self.face = face
        w, h = face.size
        self.size = (w, h)
        self.focal = float(focal if focal is not None else w)
        self.seed = seed
        self.occluder_rgb = occluder_rgb
        lm = face.landmarks
        tex = face.image
        self.eyes = [_eye_geometry(tex, lm, RIGHT_EYE, RIGHT_IRIS), _eye_geometry(tex, lm, LEFT_EYE, LEFT_IRIS)]
        # Texture with both eye openings repainted as bare sclera (iris drawn per frame).
        base = tex.astype(np.float32)
        for e in self.eyes:
            roi = base[e.y0:e.y0 + e.mask.shape[0], e.x0:e.x0 + e.mask.shape[1]]
            shade = 1.0 - 0.18 * np.clip(np.abs(e.t - 0.5) * 2, 0, 1)  # darker towards the lids
            scl = e.sclera_rgb[None, None, :] * shade[..., None]
            m = e.mask[..., None]
            roi[:] = roi * (1 - m) + scl * m
        self._base = base
        # Head points: mesh landmarks (no iris), ring around the face; fixed border points.
        mesh = lm[:468].astype(np.float64)
        oval = lm[list(FACE_OVAL)]
        ctr = mesh[:, :2].mean(0)
        ring = oval.copy()
        ring[:, :2] = ctr + (oval[:, :2] - ctr) * _RING_SCALE
        ring[:, 0] = np.clip(ring[:, 0], 2, w - 3)
        ring[:, 1] = np.clip(ring[:, 1], 2, h - 3)
        ring[:, 2] = oval[:, 2] + _RING_DEPTH * face.face_width
        head = np.vstack([mesh, ring])
        nb = 8
        bx = np.linspace(0, w - 1, nb + 1)
        by = np.linspace(0, h - 1, nb + 1)
        border = np.unique(np.vstack([
            np.c_[bx, np.zeros_like(bx)], np.c_[bx, np.full_like(bx, h - 1)],
            np.c_[np.zeros_like(by), by], np.c_[np.full_like(by, w - 1), by],
        ]), axis=0)
        self._n_head = len(head)
        self._src2d = np.vstack([head[:, :2], border]).astype(np.float64)
        self._tri = Delaunay(self._src2d).simplices.astype(np.int64)
        self._src_sign = np.sign(_signed_area(self._src2d[self._tri]))
        self._is_mesh = np.all(self._tri < 468, axis=1)  # triangles of the face surface
        self._border = border
        # 3-D head points in camera space: pivot at depth f.
        z_pivot = lm[NOSE_TIP, 2] + _PIVOT_DEPTH * face.face_width
        self._cxy = np.array([w / 2, h / 2])
        self._pivot = np.array([ctr[0] - w / 2, ctr[1] - h / 2, self.focal])
        extra = [lm[NOSE_TIP], lm[RIGHT_IRIS[0]], lm[LEFT_IRIS[0]], lm[33], lm[133], lm[263], lm[362]]
        pts = np.vstack([head, np.array(extra)])
        self._head3d = self._backproject(pts, z_pivot)
        self._z_pivot = z_pivot
        self._jaw = np.zeros(len(pts), bool)
        self._jaw[list(LOWER_FACE)] = True
        # Expression controls: per-point pixel offsets at full intensity (the ring around
        # the face stays put, so the head outline does not move with the expression).
        self._expr = control_basis(lm, pts[:, :2], face.face_width)
        self._expr[:, len(mesh):len(head)] = 0.0
        self._face_h = float(np.ptp(mesh[:, 1]))
        self._ys, self._xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self._bank: np.ndarray | None = None

    def _backproject(self, pts: np.ndarray, z_pivot: float) -> np.ndarray:
        depth = self.focal + (pts[:, 2] - z_pivot)
        xy = (pts[:, :2] - self._cxy) * (depth / self.focal)[:, None]
        return np.c_[xy, depth]

    def _project(self, p3: np.ndarray) -> np.ndarray:
        return self._cxy + self.focal * p3[:, :2] / p3[:, 2:3]

    def head_points(self, yaw: float, pitch: float, roll: float, tx: float, ty: float,
                    mouth_open: float = 0.0,
                    expression: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Project the head points for one pose (and facial expression).

        ``expression`` holds the intensities of :data:`~cdrscreen.demo.expressions.CONTROLS`.

        Returns
        -------
        xy : ndarray (n, 2)
            Image positions of head points (mesh, ring, then 7 probe points: nose tip,
            right/left iris centres, right eye corners 33/133, left eye corners 263/362).
        z : ndarray (n,)
            Camera depth of each point.
        rot : ndarray (3, 3)
            The rotation used.
        """
        rot = rotation_matrix(yaw, pitch, roll)
        p = self._head3d.copy()
        if mouth_open:
            p[self._jaw, 1] += mouth_open * self._face_h
        if expression is not None and np.any(expression):
            shift = np.tensordot(np.asarray(expression, float), self._expr, axes=1)
            p[:, :2] += shift * (p[:, 2:3] / self.focal)  # image offsets at each point's depth
        p = (p - self._pivot) @ rot.T + self._pivot
        p[:, 0] += tx
        p[:, 1] += ty
        return self._project(p), p[:, 2], rot

    def _noise(self, rng: np.random.Generator) -> np.ndarray:
        """Return unit Gaussian pixel noise: a random window of a seeded bank of fields."""
        w, h = self.size
        if self._bank is None:
            bank_rng = np.random.default_rng([self.seed, 1])
            self._bank = bank_rng.standard_normal((_BANK, h + _PAD, w + _PAD, 3), dtype=np.float32)
        k, oy, ox = rng.integers(0, [_BANK, _PAD, _PAD])
        return self._bank[k, oy:oy + h, ox:ox + w]

    def _paint_eyes(self, tex: np.ndarray, dx: float, dy: float, closure: float) -> None:
        for e in self.eyes:
            hh, ww = e.mask.shape
            roi = tex[e.y0:e.y0 + hh, e.x0:e.x0 + ww]
            c = e.centre + e.u * (dx * e.width) + e.v * (dy * e.height)
            d = np.hypot(e.xs - c[0], e.ys - c[1])
            a_iris = np.clip(e.radius - d + 0.5, 0, 1)
            a_pupil = np.clip(0.42 * e.radius - d + 0.5, 0, 1)
            limbus = 1 - 0.35 * np.clip(d / e.radius, 0, 1) ** 3
            col = e.iris_rgb[None, None, :] * limbus[..., None]
            col = col * (1 - a_pupil[..., None]) + np.float32(18) * a_pupil[..., None]
            m = (a_iris * e.mask)[..., None]
            roi[:] = roi * (1 - m) + col * m
            if closure > 0:
                a_lid = np.clip((closure - e.t) * e.col_h + 0.5, 0, 1) * e.mask
                lash = np.exp(-(((e.t - closure) * e.col_h) ** 2) / 0.6) * e.mask * min(1.0, closure * 4)
                roi[:] = roi * (1 - a_lid[..., None]) + e.lid_rgb * a_lid[..., None]
                roi[:] = roi * (1 - 0.55 * lash[..., None])

    def render(self, traj: Trajectories) -> Iterator[tuple[np.ndarray, dict[str, float], np.ndarray]]:
        """Yield ``(rgb_frame_uint8, probe_positions, rotation)`` for every frame."""
        w, h = self.size
        rng = np.random.default_rng(self.seed)
        n_head = self._n_head
        nb = len(self._border)
        tri = self._tri
        src = self._src2d
        # Source vertex matrices for the affine maps: (T, 3, 2).
        s_tri = src[tri]
        ids = np.empty((h, w), np.int32)
        expr = np.stack([getattr(traj, c) for c in CONTROLS], axis=1)
        for i in range(traj.n_frames):
            xy, z, rot = self.head_points(traj.yaw[i], traj.pitch[i], traj.roll[i], traj.tx[i],
                                          traj.ty[i], traj.mouth_open[i], expr[i])
            dst = np.vstack([xy[:n_head], self._border])
            depth = np.r_[z[:n_head], np.full(nb, 1e9)]
            d_tri = dst[tri]
            tex = self._base.copy()
            self._paint_eyes(tex, traj.iris_dx[i], traj.iris_dy[i], traj.closure[i])
            # Affine dst -> src per triangle.
            aff, ok = _affine_maps(d_tri, s_tri)
            # Back-face culling: face-surface triangles turned away from the camera are
            # hidden (otherwise the far cheek's folded triangles make a jagged silhouette).
            ok &= ~(self._is_mesh & (np.sign(_signed_area(d_tri)) != self._src_sign))
            order = np.argsort(-depth[tri].mean(1))  # far first
            ids.fill(-1)
            pts16 = np.round(d_tri * 16).astype(np.int32)
            for k in order:
                if ok[k]:
                    cv2.fillConvexPoly(ids, pts16[k], int(k), lineType=cv2.LINE_8, shift=4)
            valid = ids >= 0
            a = aff[np.where(valid, ids, 0)].astype(np.float32)
            mx = np.where(valid, self._xs * a[..., 0, 0] + self._ys * a[..., 1, 0] + a[..., 2, 0], self._xs)
            my = np.where(valid, self._xs * a[..., 0, 1] + self._ys * a[..., 1, 1] + a[..., 2, 1], self._ys)
            frame = cv2.remap(tex, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
            if not traj.face_visible[i]:
                ring = xy[468:n_head]
                c = ring.mean(0)
                hull = cv2.convexHull(((ring - c) * 1.08 + c).astype(np.float32)).astype(np.int32)
                cv2.fillConvexPoly(frame, hull, tuple(float(v) for v in self.occluder_rgb))
            if traj.gain[i] != 1.0:
                frame *= np.float32(traj.gain[i])
            if traj.noise_sigma[i] > 0:
                frame += self._noise(rng) * np.float32(traj.noise_sigma[i])
            out = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
            probes = xy[n_head:]
            pivot = self._project((self._pivot + [traj.tx[i], traj.ty[i], 0.0])[None])[0]
            info = {
                "head_x": float(pivot[0]), "head_y": float(pivot[1]),
                "nose_x": probes[0, 0], "nose_y": probes[0, 1],
                "iris_r_x": np.nan, "iris_r_y": np.nan, "iris_l_x": np.nan, "iris_l_y": np.nan,
                "corner_r_mid_x": (probes[3, 0] + probes[4, 0]) / 2, "corner_r_mid_y": (probes[3, 1] + probes[4, 1]) / 2,
                "corner_l_mid_x": (probes[5, 0] + probes[6, 0]) / 2, "corner_l_mid_y": (probes[5, 1] + probes[6, 1]) / 2,
                "eye_r_width": float(np.hypot(*(probes[3] - probes[4]))),
                "eye_l_width": float(np.hypot(*(probes[5] - probes[6]))),
            }
            for tag, e in zip(("r", "l"), self.eyes, strict=True):
                c = e.centre + e.u * (traj.iris_dx[i] * e.width) + e.v * (traj.iris_dy[i] * e.height)
                p3 = self._backproject(np.array([[c[0], c[1], e.z]]), self._z_pivot)
                p3 = (p3 - self._pivot) @ rot.T + self._pivot
                p3[:, 0] += traj.tx[i]
                p3[:, 1] += traj.ty[i]
                q = self._project(p3)[0]
                info[f"iris_{tag}_x"], info[f"iris_{tag}_y"] = float(q[0]), float(q[1])
            yield out, info, rot


def _signed_area(tri: np.ndarray) -> np.ndarray:
    """Twice the signed area of triangles of shape (T, 3, 2)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def _affine_maps(d_tri: np.ndarray, s_tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle affine maps from destination to source pixels (closed-form 3x3 inverse).

    Returns ``aff`` of shape (T, 3, 2) with ``[x, y, 1] @ aff[k] = source (x, y)`` and a
    mask of non-degenerate triangles.
    """
    x0, y0 = d_tri[:, 0, 0], d_tri[:, 0, 1]
    x1, y1 = d_tri[:, 1, 0], d_tri[:, 1, 1]
    x2, y2 = d_tri[:, 2, 0], d_tri[:, 2, 1]
    det = x0 * (y1 - y2) + x1 * (y2 - y0) + x2 * (y0 - y1)
    ok = np.abs(det) > 1e-6
    inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    # Inverse of [[x0, y0, 1], [x1, y1, 1], [x2, y2, 1]] (rows = vertices).
    inv = np.empty((len(d_tri), 3, 3))
    inv[:, 0] = np.c_[y1 - y2, y2 - y0, y0 - y1]
    inv[:, 1] = np.c_[x2 - x1, x0 - x2, x1 - x0]
    inv[:, 2] = np.c_[x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0]
    inv *= inv_det[:, None, None]
    return inv @ s_tri, ok


def render_frames(face: FaceSource, traj: Trajectories, *, seed: int = 0,
                  focal: float | None = None, fps: float = 25.0) -> tuple[list[np.ndarray], GroundTruth]:
    """Render all frames into memory (for tests and previews); see :func:`render_face_video`."""
    anim = FaceAnimator(face, focal=focal, seed=seed)
    frames, infos, rots = [], [], []
    for fr, info, rot in anim.render(traj):
        frames.append(fr)
        infos.append(info)
        rots.append(rot)
    gt = _ground_truth(anim, traj, infos, rots, fps=fps, seed=seed)
    return frames, gt


def _ground_truth(anim: FaceAnimator, traj: Trajectories, infos: list[dict[str, float]],
                  rots: list[np.ndarray], *, fps: float, seed: int,
                  audio_duration: float | None = None) -> GroundTruth:
    n = traj.n_frames
    table = pd.concat([
        pd.DataFrame({"frame": np.arange(n), "time": np.arange(n) / fps}),
        traj.to_frame(), pd.DataFrame(infos),
    ], axis=1)
    return GroundTruth(table=table, rotation=np.array(rots), fps=fps, size=anim.size, focal=anim.focal,
                       face=anim.face.name, seed=seed, audio_duration=audio_duration)


def render_face_video(
    path: str | Path,
    face: FaceSource | str,
    traj: Trajectories,
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (320, 240),
    audio: np.ndarray | None = None,
    sr: int = 16000,
    seed: int = 0,
    focal: float | None = None,
    crf: int = 20,
) -> GroundTruth:
    """Render a face video with planted motion to an H.264/AAC mp4.

    Parameters
    ----------
    path : path-like
        Output ``.mp4`` (written atomically).
    face : FaceSource or str
        A prepared face, or a built-in face name (``"astronaut"``, ``"grace_hopper"``,
        ``"lfw:<i>"``) prepared at ``size``.
    traj : Trajectories
        Per-frame planted parameters (one frame per entry). Units and sign conventions
        are in :mod:`cdrscreen.demo.trajectories`.
    fps : float
        Frame rate.
    size : (int, int)
        ``(width, height)``; used only when ``face`` is a name (a FaceSource has its size).
    audio : ndarray, optional
        Mono float audio in [-1, 1] at ``sr`` Hz, muxed as AAC.
    sr : int
        Audio sample rate.
    seed : int
        Seed of the pixel noise; the same inputs and seed give a byte-identical file.
    focal : float, optional
        Pinhole focal length in pixels (default: frame width).
    crf : int
        x264 quality (lower is better).

    Returns
    -------
    GroundTruth
        Exactly what was planted, per frame, plus where the nose tip, iris centres and
        eye corners landed in the image.
    """
    from cdrscreen.demo.encode import write_mp4
    from cdrscreen.demo.faces import load_face

    if isinstance(face, str):
        face = load_face(face, size)
    anim = FaceAnimator(face, focal=focal, seed=seed)
    infos: list[dict[str, float]] = []
    rots: list[np.ndarray] = []

    def frames() -> Iterator[np.ndarray]:
        for fr, info, rot in anim.render(traj):
            infos.append(info)
            rots.append(rot)
            yield fr

    write_mp4(path, frames(), fps=fps, audio=audio, sr=sr, crf=crf)
    dur = None if audio is None else len(audio) / sr
    return _ground_truth(anim, traj, infos, rots, fps=fps, seed=seed, audio_duration=dur)
