"""Head pose (yaw, pitch, roll, translation) by ``cv2.solvePnP`` and head-pose features.

Per-frame pose is computed once per video inside :func:`cdrscreen.features.face.track_video`
(columns ``yaw``, ``pitch``, ``roll``, ``tx``, ``ty``, ``tz``, ``pose_err``); this module holds
the geometry (a rigid 3-D face model and the PnP solve) and the :class:`HeadPoseExtractor`,
which summarises a smoothed pose trajectory and the pupil–head correlations.

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

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from cdrscreen.features.face import TrackedExtractor

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
    proj, _ = cv2.projectPoints(FACE_MODEL, rvec, tvec, cam, None)
    iod = float(np.linalg.norm(points_px[263, :2] - points_px[33, :2])) or 1.0
    err = float(np.sqrt(np.mean(np.sum((proj[:, 0, :] - img) ** 2, axis=1)))) / iod
    rmat, _ = cv2.Rodrigues(rvec)
    yaw, pitch, roll = rotation_to_angles(rmat)
    t = tvec.ravel()
    return Pose(yaw, pitch, roll, float(t[0]), float(t[1]), float(t[2]), err)


# --- features -----------------------------------------------------------------------------
def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` samples (odd), shrinking at the ends.

    A piece shorter than ``window`` is smoothed over its own length (rounded down to odd),
    so the output always has the length of ``x``.
    """
    window = min(window, x.size - (1 - x.size % 2))
    if window <= 1 or x.size < 2:
        return x.astype(float)
    k = np.ones(window)
    num = np.convolve(x, k, mode="same")
    den = np.convolve(np.ones_like(x, dtype=float), k, mode="same")
    return num / den


def correlate(a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, float]:
    """Pearson and Spearman correlation of concatenated paired pieces, with p and n.

    Returns NaN coefficients (and the number of pairs) when fewer than 3 pairs or either
    signal is constant.
    """
    from scipy.stats import pearsonr, spearmanr

    x = np.concatenate(a) if a else np.array([])
    y = np.concatenate(b) if b else np.array([])
    out = {"r": np.nan, "p": np.nan, "rho": np.nan, "rho_p": np.nan, "n": float(x.size)}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    r = pearsonr(x, y)
    s = spearmanr(x, y)
    out.update(r=float(r.statistic), p=float(r.pvalue), rho=float(s.statistic),
               rho_p=float(s.pvalue))
    return out


class HeadPoseExtractor(TrackedExtractor):
    """Head-pose and pupil–head correlation features (columns ``headpose__*``).

    Parameters
    ----------
    stride : int, default 1
        Track every ``stride``-th frame (shared with ``pupil``).
    smooth_s : float, default 0.15
        Width of the centred moving average applied to the pose angles, seconds.
    max_gap_s : float, default 0.25
        Longest gap (lost face, blink) bridged by linear interpolation, seconds.
    max_faces : int, default 2
        Faces tracked at once.
    cache_dir : path, optional
        Where the shared face track is cached.

    Notes
    -----
    Correlations pair the eye-relative pupil position with head pose on frames where
    both exist (blinks excluded): horizontal = ``gaze_h`` with ``yaw``, vertical =
    ``gaze_v`` with ``pitch``; ``pos`` uses the trajectories, ``vel`` their frame-to-frame
    differences (robust to slow drifts). Same signs mean co-movement in the same direction.
    """

    name: ClassVar[str] = "headpose"
    prefix: ClassVar[str] = "headpose"
    #: 2: pieces shorter than the smoothing window keep their length (was a length mismatch).
    #: 3: variable-frame-rate tracks resampled onto even time steps.
    version: ClassVar[int] = 3

    def __init__(
        self,
        stride: int = 1,
        smooth_s: float = 0.15,
        max_gap_s: float = 0.25,
        max_faces: int = 2,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.stride = stride
        self.smooth_s = smooth_s
        self.max_gap_s = max_gap_s
        self.max_faces = max_faces
        self.cache_dir = cache_dir

    def features_from_track(self, track: Any) -> dict[str, Any]:
        """Compute every ``headpose__`` feature (without prefix) from a face track."""
        from cdrscreen.features.tracks import even_table, split_signals

        t = even_table(track)  # variable frame rate: resampled to even steps
        fs = track.track_fps
        success = t["success"].to_numpy(bool)
        max_gap = int(np.floor(self.max_gap_s * fs))
        win = max(1, int(round(self.smooth_s * fs)) | 1)
        names = ("yaw", "pitch", "roll", "tx", "ty", "tz")
        pieces = split_signals({k: t[k].to_numpy(float) for k in names}, success, max_gap)
        for p in pieces:
            for k in ("yaw", "pitch", "roll"):
                p[k] = smooth(p[k], win)
        f: dict[str, Any] = {"tracked_fraction": float(success.mean()) if len(t) else 0.0}
        f["n_segments"] = float(len(pieces))
        for k in names:
            v = np.concatenate([p[k] for p in pieces]) if pieces else np.array([])
            if k in ("yaw", "pitch", "roll"):
                f[f"{k}_mean"] = float(v.mean()) if v.size else np.nan
                f[f"{k}_std"] = float(v.std()) if v.size else np.nan
                f[f"{k}_range"] = float(np.subtract(*np.percentile(v, [95, 5]))) if v.size else np.nan
                sp = [np.abs(np.diff(p[k])) * fs for p in pieces]
                spc = np.concatenate(sp) if sp else np.array([])
                f[f"{k}_speed_mean"] = float(spc.mean()) if spc.size else np.nan
            else:
                f[f"{k}_std"] = float(v.std()) if v.size else np.nan

        # pupil–head correlations on frames with both (no blinks)
        both = success & ~t["blink"].to_numpy(bool)
        sig = {"gaze_h": t["gaze_h"].to_numpy(float), "gaze_v": t["gaze_v"].to_numpy(float),
               "yaw": t["yaw"].to_numpy(float), "pitch": t["pitch"].to_numpy(float)}
        pp = split_signals(sig, both, max_gap, min_len=3)
        for p in pp:
            p["yaw"], p["pitch"] = smooth(p["yaw"], win), smooth(p["pitch"], win)
        for axis, eye, head in (("h", "gaze_h", "yaw"), ("v", "gaze_v", "pitch")):
            for kind in ("pos", "vel"):
                tf = (lambda x: x) if kind == "pos" else np.diff
                c = correlate([tf(p[eye]) for p in pp], [tf(p[head]) for p in pp])
                for stat, val in c.items():
                    f[f"corr_{kind}_{axis}_{stat}"] = val
        f["valid"] = float(bool(pieces) and all(
            np.isfinite(f[f"corr_{k}_{a}_r"]) for k in ("pos", "vel") for a in ("h", "v")))
        return f
