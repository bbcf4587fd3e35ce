"""Head motion from optical flow of rigid skin points (the eyes cannot move it).

MediaPipe's face mesh moves with the iris: with the head still and only the iris moving,
the eye corners follow the iris (r about 0.95), nose landmarks move the other way, and a
rigid fit to the mesh (:func:`cdrscreen.tracking.pose.solve_pose`) reads about 1 degree of
false yaw or pitch. Lucas-Kanade optical flow (``cv2.calcOpticalFlowPyrLK``) of
skin texture away from the eyes does not see the iris, so :class:`SkinFlow` uses the mesh
only to *place* points on forehead, nose and cheekbones and to give them 3-D coordinates;
from then on the points follow the skin texture and the pose is solved from them.

How one video is followed (one :class:`SkinFlow` per video):

1. **Seed** (first tracked frame, and again after the face was lost): candidate landmarks
   (:data:`SKIN_LANDMARKS`) whose flow window would touch an eye opening (its contour's
   bounding box, grown by half the window and ``margin`` pixels) are dropped; the rest are
   the points. Their 3-D coordinates are the mesh of that frame in the face's own frame
   (:func:`cdrscreen.tracking.pose.face_frame_model`, mm), each slid along its camera ray
   onto its image position so that the seed frame fits exactly; they stay fixed until the
   next seed, so the pose has one constant offset per seed.
2. **Follow**: points are tracked from a *key frame* to the current frame at full
   resolution, each search starting from the point's previous position moved as its mesh
   landmark moved since the previous frame (no drift while the key frame holds; the mesh
   only sets where the search starts, the skin texture where it ends); a forward-backward check
   (``fb_max`` px) and the rigid fit's residual (``max(resid_px, 4 x median)``) drop points
   for the frame.
3. **Re-key**: when fewer than ``keep_fraction`` of the key frame's points survive (large
   turns change the texture), the current frame becomes the key frame and the survivors
   go on with their 3-D points. When fewer than ``reseed_fraction`` of the seeded points
   are left, fresh points are seeded from the mesh with the current rotation, reference
   point and head-fixed irises carried over, so no output jumps.
4. **Pose**: ``cv2.solvePnP`` (iterative, from the previous pose) of the 3-D points
   against the tracked points gives ``yaw``, ``pitch``, ``roll`` (degrees) and ``tx``,
   ``ty``, ``tz`` (mm) with the conventions of :mod:`cdrscreen.tracking.pose`;
   ``head_x``, ``head_y`` are where that pose projects the points' centroid (px: the
   image-space face position of Nam et al. 2020, independent of which points survive).
5. **Eye in head**: the iris centres of the seed frame are kept as head-fixed 3-D points.
   Each frame, the mesh's iris centres are compared with where the pose projects those
   points; the difference, scaled to mm at the iris depth and turned into the head's
   axes, is the iris displacement *in the head*, and ``gaze_yaw``, ``gaze_pitch``
   (degrees, > 0 toward image right / up for a frontal face, like ``yaw``/``pitch``) are
   ``arcsin(displacement / EYE_RADIUS_MM)``, averaged over both eyes, relative to the
   gaze of the seed frame. Unlike the eye-corner-relative ``gaze_h``/``gaze_v``, this does
   not change when the head turns with the eye still in it (the iris sits in front of the
   eye corners, so head pitch moves it relative to them) and is not shrunk by the eye
   corners following the iris.

Measured choice (``docs/validation-visual.md``): on still-head renders with the iris moving
±0.35 iris widths, the mesh fit reads 0.9-1.0 degrees of false yaw/pitch (0.5 with the eye
corners dropped); skin-point flow reads under 0.05 degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cdrscreen.tracking.pose import OUTER_CANTHAL_MM, camera_matrix, rotation_to_angles


def _median(x: np.ndarray) -> float:
    """``np.median`` of a small 1-D float array in fewer steps (the same value; NaN if any is NaN)."""
    s = np.sort(x)
    n = s.size
    if n == 0 or s[-1] != s[-1]:
        return float(np.median(x))
    h = n // 2
    return float(s[h]) if n % 2 else float((s[h - 1] + s[h]) / 2)

#: Candidate skin landmarks: forehead, glabella, nose bridge and tip, cheekbones (no
#: eyelids, brows, lips or jaw; no face outline).
SKIN_LANDMARKS: tuple[int, ...] = (
    10, 151, 9, 8, 108, 337, 67, 297, 109, 338, 69, 299, 104, 333,
    168, 6, 197, 195, 5, 4, 1, 45, 275, 98, 327, 129, 358,
    116, 345, 117, 346, 118, 347, 50, 280, 123, 352, 101, 330, 36, 266,
)

#: Eye-opening and brow-free eye region contours (subject's right, left), mesh indices.
EYE_CONTOURS: tuple[tuple[int, ...], ...] = (
    (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
    (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249),
)

#: Iris centre landmarks (subject's right, left).
IRIS_CENTRES: tuple[int, int] = (468, 473)

#: Eyeball radius (centre of rotation to the iris centre), mm, for eye-in-head angles.
EYE_RADIUS_MM = 12.0

#: Per-frame columns produced by :meth:`SkinFlow.update`.
FLOW_COLUMNS: tuple[str, ...] = (
    "yaw", "pitch", "roll", "tx", "ty", "tz", "head_x", "head_y", "flow_points", "flow_err",
    "gaze_yaw", "gaze_pitch",
)

_NAN_VALUES: tuple[float, ...] = (float("nan"),) * len(FLOW_COLUMNS)
_IRIS_IDX = np.array(IRIS_CENTRES)


@dataclass(frozen=True)
class FlowParams:
    """Settings of :class:`SkinFlow` (part of the track's cache key).

    Parameters
    ----------
    win : int
        Lucas-Kanade window side, pixels.
    levels : int
        Pyramid levels above the full-resolution image (0: full resolution only). The
        search starts from each point's previous position moved as its mesh landmark
        moved (``mesh_guess``), so it starts within a pixel or two of the answer and
        needs no coarser level; 0 levels tracked the planted pose sweeps as well as 1
        (better on ``lfw:0``) at about 0.3-0.5 CPU-ms less per 640x360 frame.
    margin : float
        Extra clearance (px) between a point's window and an eye opening's bounding box.
    fb_max : float
        Largest forward-backward error (px) of a kept point.
    resid_px : float
        Smallest residual (px) at which a point is dropped from the rigid fit (the limit
        is ``max(resid_px, 4 * median residual)``).
    keep_fraction : float
        Start a new key frame when fewer than this fraction of the key frame's points
        survive (the survivors stay, at their current positions, with their 3-D points).
    reseed_fraction : float
        Seed fresh points from the mesh (continuing every output) when fewer than this
        fraction of the seeded points survive.
    min_points : int
        Fewest points for a pose; fewer means no pose for the frame and a new seed.
    fb_every : int
        Run the forward-backward check on every ``fb_every``-th frame (1, the default:
        every frame; without it the planted pose sweep's yaw error doubled).
    mesh_guess : bool
        Start each point's search from its previous position plus its mesh landmark's
        motion since the previous frame. The mesh only sets where the search starts: the
        point ends where the skin texture matches (to LK's 0.01 px convergence), so the
        iris motion the mesh carries does not reach the pose (still-head SDs unchanged),
        while fast turns (3-4 degrees per frame) no longer lose the points.
    roi_grow, roi_wins : float
        Each frame's flow runs in the box of the key frame's and the previous frame's points
        grown by ``roi_grow`` of its size and ``roi_wins`` windows on each side (OpenCV's
        Lucas-Kanade computes derivatives of the whole image it is given: cost grows with
        this area; a fixed box grown by half its size cost 1.15-1.4 times as much).
    """

    win: int = 15
    levels: int = 0
    margin: float = 2.0
    fb_max: float = 1.0
    resid_px: float = 1.0
    keep_fraction: float = 0.5
    reseed_fraction: float = 0.5
    min_points: int = 8
    fb_every: int = 1
    roi_grow: float = 0.1
    roi_wins: float = 2.0
    mesh_guess: bool = True


def seed_points(mesh: np.ndarray, params: FlowParams) -> np.ndarray:
    """Return the indices (into :data:`SKIN_LANDMARKS`) of candidates whose window clears both eyes."""
    half = params.win / 2 + params.margin
    p = np.asarray(mesh, float)[list(SKIN_LANDMARKS), :2]
    keep = np.ones(len(SKIN_LANDMARKS), bool)
    for contour in EYE_CONTOURS:
        c = np.asarray(mesh, float)[list(contour), :2]
        lo, hi = c.min(axis=0) - half, c.max(axis=0) + half
        keep &= ~np.all((p >= lo) & (p <= hi), axis=1)
    return np.flatnonzero(keep)


def angles_to_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Return ``Rz(roll) @ Rx(-pitch) @ Ry(-yaw)`` (degrees in, 3x3 out).

    This is the inverse of :func:`cdrscreen.tracking.pose.rotation_to_angles`.
    """
    y, p, r = np.deg2rad([-yaw, -pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


class SkinFlow:
    """Follow rigid skin points through a video and solve the head pose from them.

    Parameters
    ----------
    width, height : int
        Frame size (the pinhole camera of :func:`cdrscreen.tracking.pose.camera_matrix`).
    params : FlowParams, optional

    Notes
    -----
    Call :meth:`update` once per processed frame, in order, with the frame's grey image
    and the mesh landmarks (``None`` where the face was not tracked: the points are
    dropped and the next tracked frame seeds again).
    """

    def __init__(self, width: int, height: int, params: FlowParams | None = None) -> None:
        import cv2

        self.params = params or FlowParams()
        self.cam = camera_matrix(width, height)
        self._lk = dict(winSize=(self.params.win, self.params.win), maxLevel=self.params.levels,
                        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
        self.reset()

    def reset(self) -> None:
        """Forget the points (the next tracked frame seeds anew)."""
        self.model: np.ndarray | None = None  # (n, 3) mm, camera coordinates of the seed frame
        self.iris: np.ndarray | None = None  # (2, 3) mm, head-fixed iris centres of the seed
        self.r_seed: np.ndarray | None = None  # head rotation of the seed frame (mesh fit)
        self.key_pyr: np.ndarray | None = None  # the key frame in grey, in its region of interest
        self.roi: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of that region
        self.key_pts: np.ndarray | None = None  # (n, 2) px in the key frame
        self._key_box: tuple[float, float, float, float] | None = None  # their min x, min y, max x, max y
        self._ref_iris: np.ndarray | None = None  # (3, 3) mm, reference point and irises stacked
        self.pts: np.ndarray | None = None  # (n, 2) px in the last frame
        self.rvec: np.ndarray | None = None
        self.tvec: np.ndarray | None = None
        self.ref: np.ndarray | None = None  # (3,) mm, reference point (head_x/y, tx/ty/tz)
        self.n_seeds = 0
        self.n_rekeys = 0
        self._since_check = 0

    # --- geometry -------------------------------------------------------------------
    def backproject(self, mesh: np.ndarray, idx: list[int]) -> np.ndarray:
        """3-D camera coordinates (mm) of mesh landmarks ``idx`` in the frame they come from.

        MediaPipe gives image ``x, y`` and a relative depth ``z`` in pixels. The face is put
        at the depth where one pixel is ``OUTER_CANTHAL_MM / canthal distance (px)`` mm,
        i.e. at ``f`` pixel-units, and each landmark on its camera ray at depth
        ``f + z - z_ref``: the points reproject exactly onto the landmarks, and the shape is
        a perspective one (treating the mesh as orthographic misreads pitch by up to 30 %).
        """
        m = np.asarray(mesh, float)
        f, c = self.cam[0, 0], self.cam[:2, 2]
        z_ref = float(np.median(m[list(SKIN_LANDMARKS), 2]))
        depth = f + (m[idx, 2] - z_ref)
        xy = (m[idx, :2] - c) * (depth / f)[:, None]
        mm = OUTER_CANTHAL_MM / float(np.linalg.norm(m[263, :2] - m[33, :2]) or np.nan)
        return np.c_[xy, depth] * mm

    def _solve(self, model: np.ndarray, img: np.ndarray) -> bool:
        import cv2

        rvec, tvec = cv2.solvePnPRefineLM(model, img, self.cam, None, self.rvec.copy(), self.tvec.copy())
        if not (np.all(np.isfinite(rvec)) and np.all(np.isfinite(tvec))):
            return False
        self.rvec, self.tvec = rvec, tvec
        return True

    def _project(self, model: np.ndarray) -> np.ndarray:
        import cv2

        proj, _ = cv2.projectPoints(model, self.rvec, self.tvec, self.cam, None)
        return proj[:, 0, :]

    def _row(self, n_points: int, err: float, mesh: np.ndarray) -> tuple[float, ...]:
        """Values of :data:`FLOW_COLUMNS` for the current pose (``mesh``: float64 px)."""
        import cv2

        r_rel, _ = cv2.Rodrigues(self.rvec)
        r_abs = r_rel @ self.r_seed
        yaw, pitch, roll = rotation_to_angles(r_abs)
        t = self.tvec.ravel()
        px, py, pz = (r_rel @ self.ref + t).tolist()
        if self._ref_iris is None:
            self._ref_iris = np.vstack([self.ref[None], self.iris])
        # one projection: the reference point, then both head-fixed irises
        proj = cv2.projectPoints(self._ref_iris, self.rvec, self.tvec, self.cam, None)[0][:, 0, :]
        cx, cy = proj[0].tolist()
        # iris displacement in the head: observed minus head-fixed prediction, mm, head axes
        depth = (self.iris @ r_rel.T + t)[:, 2]
        d_cam = np.zeros((2, 3))
        d_cam[:, :2] = (mesh[_IRIS_IDX, :2] - proj[1:]) * (depth / self.cam[0, 0])[:, None]
        d_head = (d_cam @ r_abs).mean(axis=0)  # R_abs^T applied to each eye, then averaged
        g = np.degrees(np.arcsin(np.clip(d_head[:2] / EYE_RADIUS_MM, -1, 1))).tolist()
        return (yaw, pitch, roll, px, py, pz, cx, cy, float(n_points), float(err), g[0], -g[1])

    def _carry(self, rvec: np.ndarray | None = None,
               tvec: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the absolute rotation, reference point and head-fixed irises in camera coordinates.

        Of the current pose, or of the pose ``rvec``, ``tvec`` relative to the seed.
        """
        import cv2

        r_rel, _ = cv2.Rodrigues(self.rvec if rvec is None else rvec)
        t = (self.tvec if tvec is None else tvec).ravel()
        return r_rel @ self.r_seed, r_rel @ self.ref + t, self.iris @ r_rel.T + t

    # --- per frame --------------------------------------------------------------------
    def _seed(self, gray: np.ndarray, mesh: np.ndarray,
              carry: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[float, ...]:
        """Place new points from the mesh; with ``carry`` (a re-seed) every output continues."""
        from cdrscreen.tracking.pose import solve_pose

        n_seeds = self.n_seeds
        self.reset()
        idx = seed_points(mesh, self.params)
        if idx.size < self.params.min_points:
            return _NAN_VALUES
        lm = [SKIN_LANDMARKS[i] for i in idx]
        model = self.backproject(mesh, lm)
        if not np.all(np.isfinite(model)):
            return _NAN_VALUES
        if carry is None:
            h, w = int(round(self.cam[1, 2] * 2)), int(round(self.cam[0, 2] * 2))
            seed_pose = solve_pose(np.asarray(mesh, float), w, h)
            if not np.isfinite(seed_pose.yaw):
                return _NAN_VALUES
            self.r_seed = angles_to_rotation(seed_pose.yaw, seed_pose.pitch, seed_pose.roll)
            self.ref = model.mean(axis=0)
            # head-fixed iris points: at the iris centres, at the depth of their eye openings
            eye_mesh = np.array(mesh, float)
            for c, contour in zip(IRIS_CENTRES, EYE_CONTOURS, strict=True):
                eye_mesh[c, 2] = eye_mesh[list(contour), 2].mean()
            self.iris = self.backproject(eye_mesh, list(IRIS_CENTRES))
        else:
            self.r_seed, self.ref, self.iris = carry
        self.model = model
        self.rvec, self.tvec = np.zeros((3, 1)), np.zeros((3, 1))
        pts = np.ascontiguousarray(np.asarray(mesh, float)[lm, :2])
        self._set_key(gray, pts)
        self.pts = pts
        self.n_seeds = n_seeds + 1
        self.n_seeded = len(lm)
        self._lm = np.array(lm)  # each point's mesh landmark
        self._prev_mesh = mesh[self._lm, :2]  # where those landmarks were in the previous frame
        return self._row(len(lm), 0.0, mesh)

    def _grey(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """``image`` (RGB or grey) cropped to ``box`` (x0, y0, x1, y1), in grey."""
        import cv2

        x0, y0, x1, y1 = box
        crop = image[y0:y1, x0:x1]
        if crop.ndim == 3:
            crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        return np.ascontiguousarray(crop)

    def _set_key(self, image: np.ndarray, pts: np.ndarray) -> None:
        """Make ``image`` the key frame, kept in grey in the points' box grown by half its size and two windows."""
        h, w = image.shape[:2]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        grow = 0.5 * (hi - lo) + 2 * self.params.win
        x0, y0 = np.maximum(np.floor(lo - grow), 0).astype(int)
        x1, y1 = np.minimum(np.ceil(hi + grow), [w, h]).astype(int)
        self.roi = (int(x0), int(y0), int(x1), int(y1))
        self.key_pyr = self._grey(image, self.roi)
        self.key_pts = np.asarray(pts, np.float32)
        (kx0, ky0), (kx1, ky1) = self.key_pts.min(axis=0).tolist(), self.key_pts.max(axis=0).tolist()
        self._key_box = (kx0, ky0, kx1, ky1)

    def _box(self) -> tuple[int, int, int, int]:
        """Return this frame's flow region (x0, y0, x1, y1), inside the key frame's.

        The key and previous points' box grown by ``roi_grow`` of its size and ``roi_wins``
        windows on each side. OpenCV's Lucas-Kanade computes derivatives of the
        whole image it is given, so its cost grows with this area.
        """
        (px0, py0), (px1, py1) = self.pts.min(axis=0).tolist(), self.pts.max(axis=0).tolist()
        kx0, ky0, kx1, ky1 = self._key_box
        lox, loy, hix, hiy = min(kx0, px0), min(ky0, py0), max(kx1, px1), max(ky1, py1)
        p = self.params
        gx = p.roi_grow * (hix - lox) + p.roi_wins * p.win
        gy = p.roi_grow * (hiy - loy) + p.roi_wins * p.win
        rx0, ry0, rx1, ry1 = self.roi
        x0, y0 = max(math.floor(lox - gx), rx0), max(math.floor(loy - gy), ry0)
        x1, y1 = min(math.ceil(hix + gx), rx1), min(math.ceil(hiy + gy), ry1)
        # even offsets into the key region: the half-resolution level then samples the same pixels
        x0, y0 = rx0 + 2 * ((x0 - rx0) // 2), ry0 + 2 * ((y0 - ry0) // 2)
        return int(x0), int(y0), int(x1), int(y1)

    def _track(self, image: np.ndarray, check: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Flow of the key frame's points into ``image``; with ``check`` also the backward flow."""
        import cv2

        box = self._box()
        off = np.array(box[:2], np.float32)
        cur = self._grey(image, box)
        kx, ky = box[0] - self.roi[0], box[1] - self.roi[1]
        key_img = self.key_pyr[ky:ky + cur.shape[0], kx:kx + cur.shape[1]]  # a view: OpenCV takes row strides
        guess = (self.pts.astype(np.float32) - off).reshape(-1, 1, 2)
        key = (self.key_pts - off).reshape(-1, 1, 2)
        threads = cv2.getNumThreads()
        if threads != 1:
            cv2.setNumThreads(1)  # ~40 points: OpenCV's worker threads cost more than they save
        try:
            fwd, st1, _ = cv2.calcOpticalFlowPyrLK(key_img, cur, key, guess,
                                                   flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **self._lk)
            good = st1.ravel() == 1
            if check:
                back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, key_img, fwd, key.copy(),
                                                        flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **self._lk)
                fb = np.linalg.norm((back - key).reshape(-1, 2), axis=1)
                good &= (st2.ravel() == 1) & (fb <= self.params.fb_max)
        finally:
            if threads != 1:
                cv2.setNumThreads(threads)
        return fwd.reshape(-1, 2).astype(np.float64) + off, good

    def update(self, gray: np.ndarray, mesh: np.ndarray | None) -> dict[str, float]:
        """Pose of one frame (columns :data:`FLOW_COLUMNS`); NaN where none.

        Parameters
        ----------
        gray : ndarray (H, W) or (H, W, 3) uint8
            The frame, grey or RGB (only the face's region is converted to grey).
        mesh : ndarray (478, 3) or None
            MediaPipe landmarks of the tracked face (px), None where it was not tracked.
        """
        return dict(zip(FLOW_COLUMNS, self.update_values(gray, mesh), strict=True))

    def update_values(self, image: np.ndarray, mesh: np.ndarray | None) -> tuple[float, ...]:
        """:meth:`update` as a tuple of floats in :data:`FLOW_COLUMNS` order (no dict per frame)."""
        import cv2

        if mesh is None:
            self.reset()
            return _NAN_VALUES
        mesh = np.asarray(mesh, float)
        if self.model is None:
            return self._seed(image, mesh)
        p = self.params
        self._since_check += 1
        check = p.fb_every <= 1 or self._since_check >= p.fb_every
        if p.mesh_guess:  # start where the mesh says the points went (the texture decides where they end)
            now = mesh[self._lm, :2]
            self.pts = self.pts + (now - self._prev_mesh)
            self._prev_mesh = now
        pts, good = self._track(image, check)
        if check:
            self._since_check = 0
        prev = self.rvec, self.tvec  # the previous frame's pose, carried if this frame cannot be solved
        model = self.model
        n_good = int(np.count_nonzero(good))
        for _ in range(2):  # one or two passes: drop points the rigid fit cannot explain
            if n_good < p.min_points or not self._solve(model[good], pts[good]):
                return self._seed(image, mesh, self._carry(*prev))
            proj = cv2.projectPoints(model, self.rvec, self.tvec, self.cam, None)[0][:, 0, :]
            resid = np.linalg.norm(proj - pts, axis=1)
            limit = max(p.resid_px, 4 * _median(resid[good]))
            bad = good & (resid > limit)
            if not bad.any():
                break
            good &= ~bad
            n_good = int(np.count_nonzero(good))
        if n_good < p.min_points:
            return self._seed(image, mesh, self._carry(*prev))
        err = float(np.sqrt(np.mean(resid[good] ** 2)))
        self.pts = np.where(good[:, None], pts, proj)
        row = self._row(n_good, err, mesh)
        if n_good / good.size < p.keep_fraction:
            if n_good >= max(p.min_points, p.reseed_fraction * self.n_seeded):
                # new key frame: the surviving points where they are now, same 3-D points
                self.model, self.pts = model[good], self.pts[good]
                self._lm, self._prev_mesh = self._lm[good], self._prev_mesh[good]
                self._set_key(image, self.pts)
                self.n_rekeys += 1
            else:  # too few left (large turn): fresh points, every output continues
                self._seed(image, mesh, self._carry())
        return row
