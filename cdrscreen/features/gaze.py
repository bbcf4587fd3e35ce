"""Eye-in-head gaze in the head's own coordinates (the iris against a head-fixed plane).

The eye-corner-relative ``gaze_h``, ``gaze_v`` of a face track are measured in the image.
When the head pitches, the iris, which lies in front of the line through the eye corners,
moves in the image relative to them (parallax, about 0.12 eye widths per radian on the
validation faces), and MediaPipe's eye corners follow the iris by 10-20 % of its motion
and the head's pitch by a face-dependent amount. Vertical eye-in-head motion is small
(a ±10 degree eye rotation moves the iris ±2 mm), so these errors are of the order of the
signal and make ``gaze_v`` correlate with head pitch when eye and head move
independently (``docs/validation-visual.md``).

:func:`eye_in_head` measures the iris in the head instead, from the track's table and
stored landmarks (nothing per frame is added to tracking):

1. **Head pose** of each frame: the skin-point optical-flow pose of the track
   (:mod:`cdrscreen.tracking.flow`; ``yaw``, ``pitch``, ``roll`` and the position
   ``tx``, ``ty``, ``tz`` of its reference point, mm), which the iris cannot move.
2. **Iris plane**: a plane fixed in the head, perpendicular to the face's forward axis,
   at the iris depth. The depth (mm behind the reference point, along the head's own
   z axis) is taken from the face's mesh: each tracked frame's iris landmarks (468, 473)
   are back-projected with MediaPipe's relative depth exactly as the skin points are
   (:meth:`cdrscreen.tracking.flow.SkinFlow.backproject`) and rotated into the head; the
   median over frames and both eyes is the depth (both irises lie at one depth in a
   symmetric head). It is a property of the face, not fitted to the gaze. With
   ``depth_from="lids"`` the depth is instead that of the surface of the eye-contour
   landmarks at the iris (measured against the default in ``docs/features-visual.md``:
   it lowers the vertical leak but does not remove it, so the default stays ``"iris"``).
3. **Iris in the head**: the camera ray through each observed iris centre is cut with
   that plane and the cut point is expressed in head coordinates (x toward the
   subject's left, y down). Head rotation and translation change the ray and the plane
   together, so a head-fixed iris gives the same head coordinates whatever the pose:
   the parallax of the image-space measure is gone by construction.
4. **Angles**: each eye's offset from its median position over the video, averaged over
   both eyes, is turned into degrees with a 12 mm eyeball radius
   (:data:`cdrscreen.tracking.flow.EYE_RADIUS_MM`): ``eye_yaw`` > 0 toward image right
   and ``eye_pitch`` > 0 up for a face looking at the camera (the signs of ``yaw`` and
   ``pitch``).

What remains: the measure is exact for an exact pose and iris depth; an error of
``d`` mm in the iris depth relative to the pose's rotation (or the equivalent pose error)
moves the iris by ``d * sin(head angle)`` mm, i.e. a 3 mm error reads 0.4 mm (about
2 degrees of eye rotation) at 8 degrees of head pitch. On a real head the iris centre
sits on the cornea side of the eyeball, a few mm in front of the lid margins, which is
where MediaPipe's iris landmark and the mesh's eye contour place it; monocular depth of
the face is only known to a few mm, so this is the accuracy limit of any single-camera
eye-in-head measure (measured in ``docs/validation-visual.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

#: Iris centre landmarks (subject's right, left).
IRIS_CENTRES: tuple[int, int] = (468, 473)

#: Columns returned by :func:`eye_in_head`.
EYE_IN_HEAD_COLUMNS: tuple[str, ...] = ("eye_yaw", "eye_pitch")


def _rotations(table: pd.DataFrame) -> np.ndarray:
    """Head rotations (n, 3, 3), face frame to camera, from the table's ``yaw``/``pitch``/``roll``.

    Vectorised :func:`cdrscreen.tracking.flow.angles_to_rotation` (``Rz(roll) Rx(-pitch) Ry(-yaw)``).
    """
    y, p, r = (np.deg2rad(table[c].to_numpy(float)) * s for c, s in (("yaw", -1), ("pitch", -1), ("roll", 1)))
    n = len(table)
    ry = np.zeros((n, 3, 3))
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = np.cos(y), np.sin(y), 1, -np.sin(y), np.cos(y)
    rx = np.zeros((n, 3, 3))
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1, np.cos(p), -np.sin(p), np.sin(p), np.cos(p)
    rz = np.zeros((n, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = np.cos(r), -np.sin(r), np.sin(r), np.cos(r), 1
    return rz @ rx @ ry


#: Eye-contour landmarks per eye (subject's right, left; 16 each, as in the face mesh).
EYE_CONTOURS: tuple[tuple[int, ...], tuple[int, ...]] = (
    (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
    (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249),
)

#: Where :func:`iris_depth_mm` takes the iris depth from.
DEPTH_SOURCES: tuple[str, ...] = ("iris", "lids")


#: Frames read (and computed on) at a time: about 6 MB of mapped landmark pages resident at once.
_GATHER_ROWS = 1024


def _gather_landmarks(landmarks: np.ndarray, rows: np.ndarray, index: list[int],
                      median_z: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks ``index`` (float64 ``(n, k, 3)``) and the median ``z`` of ``median_z`` (``(n,)``).

    Only the frames where ``rows`` is True, read in blocks: only the selected points are
    ever held in float64 (not all 478 of every frame). A memory-mapped landmark file's
    pages are released after each block, so reading an hour of landmarks (0.5 GB at
    25 fps) does not leave them all resident in this process.
    """
    idx, zi = np.asarray(index), np.asarray(median_z)
    n = int(np.count_nonzero(rows))
    out, z = np.empty((n, len(idx), 3)), np.empty(n)
    mm = getattr(landmarks, "_mmap", None) if isinstance(landmarks, np.memmap) else None
    done = 0
    for a in range(0, len(landmarks), _GATHER_ROWS):
        b = min(len(landmarks), a + _GATHER_ROWS)
        keep = rows[a:b]
        k = int(np.count_nonzero(keep))
        if k:
            at = a + np.flatnonzero(keep)[:, None]
            out[done:done + k] = landmarks[at, idx[None, :]]
            z[done:done + k] = np.median(np.asarray(landmarks[at, zi[None, :], 2], float), axis=1)
            done += k
        if mm is not None:
            _release(landmarks, mm, a, b)
    return out, z


def _release(landmarks: np.memmap, mm: Any, a: int, b: int) -> None:
    """Drop the mapped pages of frames ``a:b`` from this process (the file's cache is kept)."""
    import mmap

    if not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        origin = np.frombuffer(mm, dtype=np.uint8).ctypes.data  # the mapping's first byte
        first = landmarks.ctypes.data - origin + a * landmarks.strides[0]
        last = min(len(mm), landmarks.ctypes.data - origin + b * landmarks.strides[0])
        start = max(0, first // mmap.PAGESIZE * mmap.PAGESIZE)
        if last > start:
            mm.madvise(mmap.MADV_DONTNEED, start, last - start)
    except (OSError, ValueError, TypeError):
        pass  # not releasable here: the pages stay mapped, the values are the same


def _head_point_blocks(table: pd.DataFrame, landmarks: np.ndarray, width: int, height: int,
                       index: list[int]) -> Iterator[np.ndarray]:
    """Landmarks ``index`` of the posed frames back-projected into head coordinates, in blocks.

    Yields ``(m, k, 3)`` mm arrays for successive blocks of at most :data:`_GATHER_ROWS`
    frames (posed frames only, in order), so that an hour of frames never holds more than
    one block's rotations and points.
    """
    from cdrscreen.tracking.flow import SKIN_LANDMARKS
    from cdrscreen.tracking.pose import OUTER_CANTHAL_MM, camera_matrix

    ok = _posed(table)
    cam = camera_matrix(width, height)
    f, c = cam[0, 0], cam[:2, 2]
    for a in range(0, len(table), _GATHER_ROWS):
        b = min(len(table), a + _GATHER_ROWS)
        keep = ok[a:b]
        if not keep.any():
            continue
        lm, z_ref = _gather_landmarks(landmarks[a:b], keep, [263, 33, *index], list(SKIN_LANDMARKS))
        mm = OUTER_CANTHAL_MM / np.linalg.norm(lm[:, 0, :2] - lm[:, 1, :2], axis=1)
        sel = lm[:, 2:]  # (m, k, 3)
        depth = f + sel[..., 2] - z_ref[:, None]
        pts = np.concatenate([(sel[..., :2] - c) * (depth / f)[..., None], depth[..., None]], axis=-1)
        pts = pts * mm[:, None, None]
        block = table.iloc[a:b].loc[keep, ["yaw", "pitch", "roll", "tx", "ty", "tz"]]
        rot = _rotations(block)
        ref = block[["tx", "ty", "tz"]].to_numpy(float)
        yield np.einsum("nji,nej->nei", rot, pts - ref[:, None, :])  # R^T (p - ref), per point


def _head_points(table: pd.DataFrame, landmarks: np.ndarray, width: int, height: int,
                 index: list[int]) -> np.ndarray:
    """Landmarks ``index`` of the posed frames back-projected into head coordinates (n, k, 3) mm."""
    blocks = list(_head_point_blocks(table, landmarks, width, height, index))
    return np.concatenate(blocks) if blocks else np.empty((0, len(index), 3))


def iris_depth_mm(table: pd.DataFrame, landmarks: np.ndarray, width: int, height: int, *,
                  depth_from: str = "iris") -> float:
    """Depth (mm) of the irises behind the pose's reference point, along the head's forward axis.

    Median over tracked frames and both eyes (step 2 of the module notes); NaN when no
    frame has a pose.

    Parameters
    ----------
    table, landmarks, width, height
        As for :func:`eye_in_head_piece`.
    depth_from : {"iris", "lids"}
        ``"iris"``: the back-projected iris centre landmarks (468, 473). ``"lids"``: the
        depth of the surface of the eye-contour landmarks at the iris, interpolated with
        inverse squared distance weights in the head's x, y.
    """
    if depth_from not in DEPTH_SOURCES:
        raise ValueError(f"depth_from must be one of {DEPTH_SOURCES}, not {depth_from!r}")
    if not _posed(table).any():
        return float("nan")
    if depth_from == "iris":
        blocks = _head_point_blocks(table, landmarks, width, height, list(IRIS_CENTRES))
        return float(np.nanmedian(np.concatenate([head[..., 2] for head in blocks])))
    eyes = [[centre, *contour] for centre, contour in zip(IRIS_CENTRES, EYE_CONTOURS, strict=True)]
    depths: list[list[np.ndarray]] = [[] for _ in eyes]
    # one pass over the file for both eyes
    for both in _head_point_blocks(table, landmarks, width, height, [i for eye in eyes for i in eye]):
        start = 0
        for eye, out in zip(eyes, depths, strict=True):
            pts, start = both[:, start:start + len(eye)], start + len(eye)
            d2 = np.sum((pts[:, 1:, :2] - pts[:, :1, :2]) ** 2, axis=-1)
            w = 1.0 / np.maximum(d2, 1e-6)
            out.append(np.sum(w * pts[:, 1:, 2], axis=1) / np.sum(w, axis=1))
    return float(np.nanmedian(np.concatenate([np.concatenate(d) for d in depths])))


def _posed(table: pd.DataFrame) -> np.ndarray:
    """Frames with a face, a pose and both iris centres (column by column: no float64 copy of the table)."""
    ok = table["success"].to_numpy(bool).copy()
    for col in ("yaw", "pitch", "roll", "tx", "ty", "tz", "iris_r_x", "iris_r_y", "iris_l_x", "iris_l_y"):
        ok &= np.isfinite(table[col].to_numpy())
    return ok


def eye_in_head(table: pd.DataFrame, landmarks: np.ndarray, width: int, height: int, *,
                depth_mm: float | None = None, eye_radius_mm: float | None = None,
                depth_from: str = "iris") -> pd.DataFrame:
    """Eye-in-head rotation per frame, computed per stretch of continuously tracked frames.

    The skin-flow pose starts afresh (new reference point, new points) after every frame
    without a face, so each such stretch gets its own iris depth and median; see
    :func:`eye_in_head_piece` for the parameters.
    """
    n = len(table)
    out = pd.DataFrame({c: np.full(n, np.nan) for c in EYE_IN_HEAD_COLUMNS}, index=table.index)
    if n == 0 or len(landmarks) != n:
        return out
    ok = _posed(table)
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(int), 0]))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= 3:
            part = eye_in_head_piece(table.iloc[a:b], landmarks[a:b], width, height,
                                     depth_mm=depth_mm, eye_radius_mm=eye_radius_mm, depth_from=depth_from)
            out.iloc[a:b] = part.to_numpy()
    return out


def eye_in_head_piece(table: pd.DataFrame, landmarks: np.ndarray, width: int, height: int, *,
                      depth_mm: float | None = None, eye_radius_mm: float | None = None,
                      depth_from: str = "iris") -> pd.DataFrame:
    """Eye-in-head rotation per frame from a face track's table and landmarks.

    Parameters
    ----------
    table : DataFrame
        A face track's table (:attr:`cdrscreen.tracking.face.FaceTrack.table`).
    landmarks : ndarray (n, 478, 3)
        The track's landmarks (px), one per table row.
    width, height : int
        Frame size (the tracker's pinhole camera).
    depth_mm : float, optional
        Iris depth behind the pose reference point (default: :func:`iris_depth_mm`).
    eye_radius_mm : float, optional
        Eyeball radius for the angles (default 12 mm).
    depth_from : {"iris", "lids"}
        Source of the default iris depth (:func:`iris_depth_mm`).

    Returns
    -------
    DataFrame
        Columns ``eye_yaw``, ``eye_pitch`` (degrees, relative to the median over the
        video; NaN where the face or its pose is missing), index of ``table``.
    """
    from cdrscreen.tracking.flow import EYE_RADIUS_MM
    from cdrscreen.tracking.pose import camera_matrix

    n = len(table)
    out = pd.DataFrame({c: np.full(n, np.nan) for c in EYE_IN_HEAD_COLUMNS}, index=table.index)
    if n == 0 or len(landmarks) != n:
        return out
    ok = _posed(table)
    depth = iris_depth_mm(table, landmarks, width, height, depth_from=depth_from) if depth_mm is None else float(depth_mm)
    if not ok.any() or not np.isfinite(depth):
        return out
    radius = EYE_RADIUS_MM if eye_radius_mm is None else float(eye_radius_mm)
    cam = camera_matrix(width, height)
    f, c = cam[0, 0], cam[:2, 2]
    rows = np.flatnonzero(ok)
    head = np.empty((rows.size, 2, 2))  # head mm of both irises, filled a block of frames at a time
    cols = ["iris_r_x", "iris_r_y", "iris_l_x", "iris_l_y", "yaw", "pitch", "roll", "tx", "ty", "tz"]
    for a in range(0, rows.size, _GATHER_ROWS):
        t = table.iloc[rows[a:a + _GATHER_ROWS]][cols]
        iris = np.stack([t[["iris_r_x", "iris_r_y"]].to_numpy(float),
                         t[["iris_l_x", "iris_l_y"]].to_numpy(float)], axis=1)  # (m, 2, 2) px
        ray = np.concatenate([(iris - c) / f, np.ones(iris.shape[:2] + (1,))], axis=-1)
        rot = _rotations(t)
        ref = t[["tx", "ty", "tz"]].to_numpy(float)
        normal = rot[:, :, 2]  # the head's forward axis in camera coordinates
        on_plane = ref + normal * depth  # a point of the iris plane
        s = np.einsum("nj,nj->n", normal, on_plane)[:, None] / np.einsum("nj,nej->ne", normal, ray)
        cut = s[..., None] * ray  # (m, 2, 3) camera mm
        head[a:a + len(t)] = np.einsum("nji,nej->nei", rot, cut - ref[:, None, :])[..., :2]  # (m, 2, 2) head mm
    offset = (head - np.median(head, axis=0)).mean(axis=1)
    ang = np.degrees(np.arcsin(np.clip(offset / radius, -1, 1)))
    out.loc[ok, "eye_yaw"] = ang[:, 0]
    out.loc[ok, "eye_pitch"] = -ang[:, 1]
    return out


__all__ = ["EYE_IN_HEAD_COLUMNS", "IRIS_CENTRES", "eye_in_head", "iris_depth_mm"]
