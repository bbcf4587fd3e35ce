"""Head pose (yaw, pitch, roll, translation) of one frame by ``cv2.solvePnP``.

A rigid 3-D face model (:data:`FACE_MODEL`) is fitted to MediaPipe's 478 landmarks;
:func:`cdrscreen.tracking.face.track_video` calls :func:`solve_pose` on every tracked frame
(columns ``yaw``, ``pitch``, ``roll``, ``tx``, ``ty``, ``tz``, ``pose_err``).

Sign conventions (camera looking at the subject, image x to the right, y down):

* ``yaw`` > 0: the nose points toward image right (the subject turns to their left).
* ``pitch`` > 0: the nose points up.
* ``roll`` > 0: the head tilts toward the subject's left shoulder (the top of the head
  moves toward image right; clockwise as seen on screen).
* ``tx, ty, tz``: position of the model origin (midway between the inner eye corners) in
  camera coordinates, millimetres, assuming an outer-eye-corner distance of 90 mm and a
  focal length equal to the frame width (about a 53 degree horizontal field of view).

These match the planted-motion conventions of :mod:`cdrscreen.demo.trajectories`
(angles decompose ``R = Rz(roll) @ Rx(-pitch) @ Ry(-yaw)``, see :func:`rotation_to_angles`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: MediaPipe face-mesh indices used for the rigid fit: forehead, nose, eye corners and
#: cheekbones. Left out: eyelids, lips and jaw (they move when speaking or blinking) and
#: the face outline (it slides over the head as the head turns).
RIGID_LANDMARKS: tuple[int, ...] = (
    1, 2, 4, 5, 6, 9, 10, 151, 168, 195, 197, 98, 327, 33, 133, 362, 263,
    116, 345, 50, 280, 67, 297, 109, 338,
)

#: Assumed distance between the outer eye corners (landmarks 33 and 263), in mm.
OUTER_CANTHAL_MM = 90.0

#: Symmetric landmark pairs (subject's right, subject's left) defining the face's x axis.
_PAIRS = ((33, 263), (133, 362), (234, 454), (127, 356), (116, 345), (50, 280))
_MIRROR_PAIRS = _PAIRS + ((98, 327), (67, 297), (109, 338))
_MIRROR = {a: b for a, b in _MIRROR_PAIRS} | {b: a for a, b in _MIRROR_PAIRS}


def face_frame_model(points: np.ndarray) -> np.ndarray:
    """Express a 478x3 landmark cloud (x right, y down, z away) in the face's own frame.

    The face frame has its origin midway between the inner eye corners, x toward the
    subject's left (the mean direction of six symmetric landmark pairs), y from the top
    of the forehead (landmark 10) toward the chin (152) made orthogonal to x, and z = x × y
    (into the head). Units are scaled so that the outer eye corners are
    :data:`OUTER_CANTHAL_MM` apart.
    """
    p = np.asarray(points, dtype=np.float64)
    ax = np.mean([(p[b] - p[a]) / np.linalg.norm(p[b] - p[a]) for a, b in _PAIRS], axis=0)
    ax /= np.linalg.norm(ax)
    ay = p[152] - p[10]
    ay -= ay.dot(ax) * ax
    ay /= np.linalg.norm(ay)
    az = np.cross(ax, ay)
    origin = (p[133] + p[362]) / 2
    model = (p - origin) @ np.stack([ax, ay, az], axis=1)
    return model * (OUTER_CANTHAL_MM / np.linalg.norm(model[263] - model[33]))


def build_face_model(landmark_sets: list[np.ndarray]) -> np.ndarray:
    """Average face model (rigid landmarks only, mm) from MediaPipe landmark clouds.

    Each cloud is a ``(478, 3)`` array in pixels (``z`` scaled like ``x``, as MediaPipe
    reports it). Used to derive :data:`FACE_MODEL` from the real face photos bundled
    with scikit-image and matplotlib; see ``docs/features-visual.md``.
    """
    models = [face_frame_model(p)[list(RIGID_LANDMARKS)] for p in landmark_sets]
    m = np.mean(models, axis=0)
    # make it exactly left-right symmetric about the midline x = 0
    row = {k: i for i, k in enumerate(RIGID_LANDMARKS)}
    sym = m.copy()
    for k, i in row.items():
        if k in _MIRROR:
            j = row[_MIRROR[k]]
            sym[i] = (m[i] + m[j] * np.array([-1.0, 1.0, 1.0])) / 2
        else:
            sym[i, 0] = 0.0
    return sym


#: Rigid 3-D face model in mm (rows follow :data:`RIGID_LANDMARKS`); x to the subject's
#: left, y down, z into the head. Built with :func:`build_face_model` from MediaPipe's
#: landmarks on ``skimage.data.astronaut()`` and matplotlib's ``grace_hopper.jpg``.
FACE_MODEL: np.ndarray = np.array([
    (0.0, 33.9, -40.9), (0.0, 40.5, -25.4), (0.0, 27.4, -42.4), (0.0, 19.1, -39.3),
    (0.0, 0.1, -21.4), (0.0, -22.0, -16.7), (0.0, -48.7, -8.7), (0.0, -35.5, -13.0),
    (0.0, -6.9, -16.4), (0.0, 12.5, -33.0), (0.0, 6.5, -27.0), (-19.4, 37.7, -17.0),
    (19.4, 37.7, -17.0), (-45.0, -1.3, 5.3), (-17.2, 0.0, 0.0), (17.2, 0.0, 0.0),
    (45.0, -1.3, 5.3), (-62.6, 15.6, 16.3), (62.6, 15.6, 16.3), (-49.3, 27.4, -2.8),
    (49.3, 27.4, -2.8), (-35.5, -45.0, -1.1), (35.5, -45.0, -1.1), (-19.3, -48.0, -7.2),
    (19.3, -48.0, -7.2),
])


@dataclass(frozen=True)
class Pose:
    """Head pose of one frame: angles in degrees, translation in mm, fit error."""

    yaw: float
    pitch: float
    roll: float
    tx: float
    ty: float
    tz: float
    err: float


def camera_matrix(width: int, height: int) -> np.ndarray:
    """Pinhole camera with focal length = frame width and the principal point at the centre."""
    f = float(width)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def rotation_to_angles(rmat: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll (degrees, conventions in the module docstring) of a face rotation.

    ``rmat`` maps face-frame coordinates to camera coordinates (identity for a frontal
    face). It is decomposed as ``R = Rz(roll) @ Rx(-pitch) @ Ry(-yaw)`` with the usual
    right-handed rotations about the camera axes, the same decomposition as
    :func:`cdrscreen.demo.rotation_matrix`, so planted and measured angles compare directly.
    """
    m = np.asarray(rmat, dtype=float)
    p = np.arcsin(np.clip(m[2, 1], -1.0, 1.0))
    y = np.arctan2(-m[2, 0], m[2, 2])
    c = np.arctan2(-m[0, 1], m[1, 1])
    return float(-np.degrees(y)), float(-np.degrees(p)), float(np.degrees(c))


def solve_pose(points_px: np.ndarray, width: int, height: int) -> Pose:
    """Head pose of one frame from its 478 landmarks (pixels) by ``cv2.solvePnP`` (SQPnP).

    Returns
    -------
    Pose
        ``err`` is the RMS reprojection error of the rigid landmarks divided by the
        outer-eye-corner distance in pixels (scale free; ~0.01 for a well-tracked face).
    """
    import cv2

    img = np.ascontiguousarray(points_px[list(RIGID_LANDMARKS), :2], dtype=np.float64)
    cam = camera_matrix(width, height)
    ok, rvec, tvec = cv2.solvePnP(FACE_MODEL, img, cam, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        nan = float("nan")
        return Pose(nan, nan, nan, nan, nan, nan, nan)
    rvec, tvec = cv2.solvePnPRefineLM(FACE_MODEL, img, cam, None, rvec, tvec)
    iod = float(np.linalg.norm(points_px[263, :2] - points_px[33, :2])) or 1.0
    return _pose_of(FACE_MODEL, img, cam, rvec, tvec, iod)


def _pose_of(model: np.ndarray, img: np.ndarray, cam: np.ndarray, rvec: np.ndarray, tvec: np.ndarray,
             iod: float) -> Pose:
    """:class:`Pose` of a solved ``rvec``, ``tvec`` with its RMS reprojection error over ``iod`` pixels."""
    import cv2

    proj, _ = cv2.projectPoints(model, rvec, tvec, cam, None)
    err = float(np.sqrt(np.mean(np.sum((proj[:, 0, :] - img) ** 2, axis=1)))) / iod
    rmat, _ = cv2.Rodrigues(rvec)
    yaw, pitch, roll = rotation_to_angles(rmat)
    t = tvec.ravel()
    return Pose(yaw, pitch, roll, float(t[0]), float(t[1]), float(t[2]), err)


class PoseTracker:
    """:func:`solve_pose` over the frames of one video, each refined from the previous frame's pose.

    The first frame, a frame after :meth:`reset` (face lost), and a frame whose refined fit
    is poor (``err`` above ``retry_err``) are solved from scratch (SQPnP), as
    :func:`solve_pose` does; the others start Levenberg-Marquardt from the previous pose.

    Parameters
    ----------
    width, height : int
        Frame size (the pinhole camera of :func:`camera_matrix`).
    retry_err : float
        Fit error above which a warm-started frame is solved again from scratch (a
        well-tracked face fits to about 0.01).
    """

    def __init__(self, width: int, height: int, retry_err: float = 0.03) -> None:
        self.cam = camera_matrix(width, height)
        self.retry_err = retry_err
        self._model = np.ascontiguousarray(FACE_MODEL)
        self._idx = np.array(RIGID_LANDMARKS)
        self.reset()

    def reset(self) -> None:
        """Forget the previous pose (the next frame is solved from scratch)."""
        self.rvec: np.ndarray | None = None
        self.tvec: np.ndarray | None = None

    def solve(self, points_px: np.ndarray) -> Pose:
        """Pose of the next frame from its 478 landmarks (pixels); see :func:`solve_pose`."""
        import cv2

        img = np.ascontiguousarray(points_px[self._idx, :2], dtype=np.float64)
        iod = float(np.hypot(*(points_px[263, :2] - points_px[33, :2]))) or 1.0
        if self.rvec is not None:
            pose = self._refine(img, self.rvec.copy(), self.tvec.copy(), iod)
            if pose is not None and pose.err <= self.retry_err:
                return pose
        ok, rvec, tvec = cv2.solvePnP(self._model, img, self.cam, None, flags=cv2.SOLVEPNP_SQPNP)
        pose = self._refine(img, rvec, tvec, iod) if ok else None
        if pose is None:
            self.reset()
            nan = float("nan")
            return Pose(nan, nan, nan, nan, nan, nan, nan)
        return pose

    def _refine(self, img: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, iod: float) -> Pose | None:
        import cv2

        rvec, tvec = cv2.solvePnPRefineLM(self._model, img, self.cam, None, rvec, tvec)
        if not (np.all(np.isfinite(rvec)) and np.all(np.isfinite(tvec))):
            return None
        self.rvec, self.tvec = rvec, tvec
        return _pose_of(self._model, img, self.cam, rvec, tvec, iod)
