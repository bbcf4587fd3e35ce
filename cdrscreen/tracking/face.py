"""Per-frame face, iris and head-pose tracking, computed once per video and shared.

:func:`track_video` decodes a video (PyAV) and runs MediaPipe's bundled face mesh with
iris refinement (478 landmarks) in video (tracking) mode on every ``stride``-th frame. It
returns a :class:`FaceTrack`: an OpenFace-like per-frame table plus the landmarks. With a
``cache`` the track is stored under the video's content hash and the tracking
configuration, so the ``pupil``, ``headpose`` and ``expr`` extractors reuse one tracking
pass (and :func:`load_track` gives it back for interactive plots).

Columns of :attr:`FaceTrack.table` (pixels are in the decoded frame; ``r``/``l`` are the
subject's right/left eye, i.e. image left/right for a face looking at the camera):

``frame``, ``time``
    Decoded frame index (0-based, counting every frame even with a stride) and seconds.
``success``, ``confidence``
    A face was tracked; ``confidence = exp(-(pose_err / 0.1)**2)`` in [0, 1], from how
    well a rigid 3-D face fits the landmarks (about 0.85 or more for a well-tracked face, low when
    the mesh is distorted or lies on a non-face; 0 when not tracked).
``n_faces``
    Faces the mesh reported in the frame (the tracked one is kept, see below); at most 1
    until a second person has been noticed.
``face_x, face_y, face_w, face_h``
    Bounding box of the 478 landmarks (px).
``iris_r_x, iris_r_y, iris_l_x, iris_l_y``
    Iris centres (landmarks 468 and 473), px.
``iris_r_xn, iris_r_yn, iris_l_xn, iris_l_yn``
    Iris centres relative to the midpoint of the two eyes, divided by the inter-ocular
    distance (between the eye centres); image axes (x right, y down).
``gaze_h, gaze_v``
    Pupil position relative to the eye corners, averaged over both eyes: the iris centre's
    offset from the midpoint of the eye corners, along (``h``, toward image right) and
    perpendicular to (``v``, upward) the corner-to-corner line, in eye widths. Head
    translation and in-plane rotation cancel out.
``ear_r, ear_l, ear, blink``
    Eye aspect ratio (six-point, Soukupová & Čech 2016) per eye and mean; ``blink`` is
    ``ear < blink_ratio * median(ear)`` over the video's tracked frames.
``yaw, pitch, roll, tx, ty, tz``
    Head pose from optical flow of rigid skin points (forehead, nose, cheekbones; see
    :mod:`cdrscreen.tracking.flow`): the iris cannot move it. Conventions as in
    :mod:`cdrscreen.tracking.pose` (degrees, mm).
``head_x, head_y``
    Image position (px) of the centre of those skin points under that pose: the
    image-space face position used for face-eye co-movement (Nam et al. 2020).
``flow_points, flow_err``
    Skin points used for the frame's pose and their RMS residual (px).
``gaze_yaw, gaze_pitch``
    Eye-in-head rotation (degrees, > 0 toward image right / up), both eyes averaged: the
    iris's displacement from where the skin-flow pose puts a head-fixed iris, relative to
    the gaze when the points were seeded (see :mod:`cdrscreen.tracking.flow`).
``mesh_yaw, mesh_pitch, mesh_roll, mesh_tx, mesh_ty, mesh_tz, pose_err``
    Head pose of a rigid fit to the mesh landmarks (:func:`cdrscreen.tracking.pose.solve_pose`)
    and its scale-free fit error. The mesh moves with the iris, so these angles follow the
    gaze by up to about 1 degree; kept for comparison and for ``confidence``.

Several faces in view: tracking starts with a one-face mesh (fast: MediaPipe's detector
then runs only when the face is lost). A face-detector check every ``verify_every``
frames, on suspicious frames and on every re-acquisition counts the faces in view; once it
sees two, the mesh tracks up to ``max_faces`` faces and the kept face is the one
overlapping the previously kept face most (IoU >= 0.3), else the largest. An interviewer
entering the frame therefore does not take over from the tracked subject.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cdrscreen.cache import FeatureCache, default_cache_dir
from cdrscreen.core.errors import MissingDependencyError
from cdrscreen.core.native import quiet_native_stderr
from cdrscreen.tracking.pose import solve_pose

#: Bump when the per-frame computation changes (invalidates cached tracks).
TRACK_VERSION = 4  # 3: rotated videos uprighted, truncated videos refused (tracks made before may be wrong)
# 4: head pose from optical flow of skin points (mesh pose kept as mesh_*); head_x, head_y

IRIS_R, IRIS_L = 468, 473
#: Eye corners, image-left then image-right: subject's right eye (33 outer, 133 inner),
#: subject's left eye (362 inner, 263 outer).
EYE_R_CORNERS, EYE_L_CORNERS = (33, 133), (362, 263)
#: Six-point eye-aspect-ratio contours (p1..p6: corner, upper, upper, corner, lower, lower).
EAR_R = (33, 160, 158, 133, 153, 144)
EAR_L = (362, 385, 387, 263, 373, 380)

COLUMNS = (
    "frame", "time", "success", "confidence", "n_faces",
    "face_x", "face_y", "face_w", "face_h",
    "iris_r_x", "iris_r_y", "iris_l_x", "iris_l_y",
    "iris_r_xn", "iris_r_yn", "iris_l_xn", "iris_l_yn",
    "gaze_h", "gaze_v", "ear_r", "ear_l", "ear", "blink",
    "yaw", "pitch", "roll", "tx", "ty", "tz", "head_x", "head_y", "flow_points", "flow_err",
    "gaze_yaw", "gaze_pitch", "mesh_yaw", "mesh_pitch", "mesh_roll", "mesh_tx", "mesh_ty", "mesh_tz", "pose_err",
)


@dataclass(frozen=True)
class TrackConfig:
    """Everything that changes a track (part of its cache key).

    Parameters
    ----------
    stride : int
        Track every ``stride``-th frame.
    max_faces : int
        Faces the mesh may track at once (>= 2 lets a second person be told apart).
    min_detection_confidence, min_tracking_confidence : float
        MediaPipe thresholds.
    blink_ratio : float
        A frame is a blink when its EAR is below this fraction of the video's median EAR.
    flow_win : int
        Lucas-Kanade window (px) of the skin-point head pose (:mod:`cdrscreen.tracking.flow`).
    flow_levels : int
        Pyramid levels of that optical flow.
    verify_every : int
        The mesh tracker can cling for a few frames to something that is no longer a face
        (a hand or an object in front of it). A tracked face is therefore confirmed by
        MediaPipe's face detector on every ``verify_every``-th processed frame and on every
        suspicious frame (rigid-fit confidence < 0.85 or eye aspect ratio < 0.22, which
        includes real blinks); unconfirmed frames get ``success`` False. 0 disables it.
    """

    stride: int = 1
    max_faces: int = 2
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.9
    blink_ratio: float = 0.8
    verify_every: int = 10
    flow_win: int = 15
    flow_levels: int = 3

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form including the track format version."""
        return {**self.__dict__, "version": TRACK_VERSION}


@dataclass
class FaceTrack:
    """Per-frame tracking of one video.

    Attributes
    ----------
    path : Path
    fps : float
        The video's frame rate (the track's rate is ``fps / config.stride``).
    width, height : int
    config : TrackConfig
    table : pandas.DataFrame
        One row per tracked frame, columns :data:`COLUMNS` (see module docstring); values
        are NaN where ``success`` is False.
    landmarks : numpy.ndarray
        ``(n_rows, 478, 3)`` float32, px (``z`` scaled like ``x``); NaN where not tracked.
    """

    path: Path
    fps: float
    width: int
    height: int
    config: TrackConfig
    table: pd.DataFrame
    landmarks: np.ndarray = field(repr=False)

    @property
    def track_fps(self) -> float:
        """Rows per second of video (``fps / stride``)."""
        return self.fps / self.config.stride

    def to_frame(self) -> pd.DataFrame:
        """Return the table indexed by ``(file, frame, time)`` (the per-frame track contract)."""
        df = self.table.copy()
        df.insert(0, "file", str(self.path))
        return df.set_index(["file", "frame", "time"])


# --- per-frame geometry ---------------------------------------------------------------
def _ear(p: np.ndarray, idx: tuple[int, ...]) -> float:
    p1, p2, p3, p4, p5, p6 = (p[i, :2] for i in idx)
    horiz = np.linalg.norm(p1 - p4)
    return float((np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5)) / (2 * horiz)) if horiz else np.nan


def _eye_relative(p: np.ndarray, corners: tuple[int, int], iris: int) -> tuple[float, float]:
    a, b = p[corners[0], :2], p[corners[1], :2]
    e = b - a
    w = float(np.hypot(*e))
    if w == 0:
        return np.nan, np.nan
    u = e / w
    up = np.array([u[1], -u[0]])  # u rotated so that it points up in the image
    d = p[iris, :2] - (a + b) / 2
    return float(d @ u / w), float(d @ up / w)


def frame_features(p: np.ndarray, width: int, height: int) -> dict[str, float]:
    """Per-frame columns from 478 landmarks.

    All but frame/time/success/n_faces/blink and the skin-flow pose columns of
    :mod:`cdrscreen.tracking.flow`.
    """
    out: dict[str, float] = {}
    lo, hi = p[:, :2].min(axis=0), p[:, :2].max(axis=0)
    out.update(face_x=lo[0], face_y=lo[1], face_w=hi[0] - lo[0], face_h=hi[1] - lo[1])
    cr = p[list(EYE_R_CORNERS), :2].mean(axis=0)
    cl = p[list(EYE_L_CORNERS), :2].mean(axis=0)
    mid, iod = (cr + cl) / 2, float(np.linalg.norm(cl - cr)) or np.nan
    for side, idx in (("r", IRIS_R), ("l", IRIS_L)):
        out[f"iris_{side}_x"], out[f"iris_{side}_y"] = p[idx, 0], p[idx, 1]
        out[f"iris_{side}_xn"] = (p[idx, 0] - mid[0]) / iod
        out[f"iris_{side}_yn"] = (p[idx, 1] - mid[1]) / iod
    hr, vr = _eye_relative(p, EYE_R_CORNERS, IRIS_R)
    hl, vl = _eye_relative(p, EYE_L_CORNERS, IRIS_L)
    out.update(gaze_h=(hr + hl) / 2, gaze_v=(vr + vl) / 2)
    out["ear_r"], out["ear_l"] = _ear(p, EAR_R), _ear(p, EAR_L)
    out["ear"] = (out["ear_r"] + out["ear_l"]) / 2
    pose = solve_pose(p, width, height)
    out.update(mesh_yaw=pose.yaw, mesh_pitch=pose.pitch, mesh_roll=pose.roll, mesh_tx=pose.tx,
               mesh_ty=pose.ty, mesh_tz=pose.tz, pose_err=pose.err)
    out["confidence"] = float(np.exp(-((pose.err / 0.1) ** 2))) if np.isfinite(pose.err) else 0.0
    return {k: float(v) for k, v in out.items()}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def choose_face(faces: list[np.ndarray], previous_box: np.ndarray | None) -> int:
    """Index of the face to keep: best overlap (IoU >= 0.3) with the last kept box, else largest."""
    boxes = []
    for p in faces:
        lo, hi = p[:, :2].min(axis=0), p[:, :2].max(axis=0)
        boxes.append(np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]))
    if previous_box is not None:
        ious = [_iou(b, previous_box) for b in boxes]
        best = int(np.argmax(ious))
        if ious[best] >= 0.3:
            return best
    return int(np.argmax([b[2] * b[3] for b in boxes]))


def _detect(detector: Any, rgb: np.ndarray) -> list[tuple[float, float]]:
    """Centres (px) of the faces MediaPipe's face detector finds in a frame."""
    h, w = rgb.shape[:2]
    out = []
    with quiet_native_stderr():  # first runs of the detector graph log on fd 2
        detections = detector.process(rgb).detections
    for d in detections or []:
        b = d.location_data.relative_bounding_box
        out.append(((b.xmin + b.width / 2) * w, (b.ymin + b.height / 2) * h))
    return out


def _inside(centres: list[tuple[float, float]], box: np.ndarray) -> bool:
    return any(box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3] for cx, cy in centres)


# --- tracking ---------------------------------------------------------------------------
def _prefetch(it: Any, size: int = 8) -> Any:
    """Decode in a background thread so decoding overlaps with landmark inference."""
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()

    def run() -> None:
        try:
            for item in it:
                q.put(item)
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
            q.put(err)
        q.put(done)

    threading.Thread(target=run, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _landmarks(res: Any, w: int, h: int) -> list[np.ndarray]:
    return [
        np.array([(q.x * w, q.y * h, q.z * w) for q in f.landmark], np.float32)
        for f in (res.multi_face_landmarks or [])
        if len(f.landmark) == 478
    ]


def _compute_track(path: Path, cfg: TrackConfig) -> FaceTrack:
    """Track one video (see :func:`track_video`).

    Speed: with several faces allowed, MediaPipe runs its face detector on every frame in
    which fewer faces than allowed are tracked. So tracking starts with a one-face mesh,
    and the periodic detector check (``verify_every``, suspicious frames, and every
    re-acquisition after a lost face) counts the faces in view; as soon as it sees two or
    more, the rest of the video (from that frame on) is tracked by a ``max_faces`` mesh and
    the face is chosen by :func:`choose_face`.
    """
    try:
        import mediapipe as mp
    except ImportError as err:
        raise MissingDependencyError("face tracking", "video", err) from None
    import cv2

    from cdrscreen.media.video import iter_frames, probe_video
    from cdrscreen.tracking.flow import FlowParams, SkinFlow

    info = probe_video(path)
    flow: SkinFlow | None = None
    flow_params = FlowParams(win=cfg.flow_win, levels=cfg.flow_levels)
    rows: list[dict[str, float]] = []
    lms: list[np.ndarray] = []
    nan_lm = np.full((478, 3), np.nan, np.float32)
    prev_box: np.ndarray | None = None

    def new_mesh(n: int) -> Any:
        with quiet_native_stderr():  # graph start-up chatter on fd 2
            return mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=n, refine_landmarks=True,
                min_detection_confidence=cfg.min_detection_confidence,
                min_tracking_confidence=cfg.min_tracking_confidence,
            )

    with quiet_native_stderr():
        detector = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=cfg.min_detection_confidence
        ) if cfg.verify_every else None
    # without the detector check a second face could not be noticed: allow it from the start
    multi = cfg.max_faces < 2 or detector is None
    mesh = new_mesh(cfg.max_faces if multi else 1)
    lost = True
    # the graphs' calculators open asynchronously and log on fd 2 from their own threads
    # during the first frames: keep fd 2 quiet over that whole stretch (>= 30 frames and
    # >= 1 s after a graph starts), not only during each call
    start_up = contextlib.ExitStack()
    start_up.enter_context(quiet_native_stderr())
    quiet_until = (30, time.monotonic() + 1.0)
    try:
        for fr in _prefetch(iter_frames(path, stride=cfg.stride)):
            h, w = fr.rgb.shape[:2]
            if len(rows) >= quiet_until[0] and time.monotonic() >= quiet_until[1]:
                start_up.close()
            faces = _landmarks(mesh.process(fr.rgb), w, h)
            ok = False
            if faces:
                p = faces[choose_face(faces, prev_box)]
                feats = frame_features(p.astype(np.float64), w, h)
                box = np.array([feats["face_x"], feats["face_y"], feats["face_w"], feats["face_h"]])
                suspicious = feats["confidence"] < 0.85 or not feats["ear"] >= 0.22
                if detector is not None and (suspicious or lost or len(lms) % cfg.verify_every == 0):
                    centres = _detect(detector, fr.rgb)
                    if not multi and len(centres) >= 2:  # a second person: track several faces
                        multi = True
                        start_up.close()
                        start_up.enter_context(quiet_native_stderr())  # the new graph's start-up
                        quiet_until = (len(rows) + 30, time.monotonic() + 1.0)
                        mesh.close()
                        mesh = new_mesh(cfg.max_faces)
                        faces = _landmarks(mesh.process(fr.rgb), w, h) or faces
                        p = faces[choose_face(faces, prev_box)]
                        feats = frame_features(p.astype(np.float64), w, h)
                        box = np.array([feats["face_x"], feats["face_y"], feats["face_w"], feats["face_h"]])
                    ok = _inside(centres, box)
                else:
                    ok = True
                prev_box = box
                ok = ok and all(np.isfinite(v) for v in feats.values())  # e.g. a failed PnP solve
            row: dict[str, float] = {"frame": fr.index, "time": fr.time, "n_faces": len(faces)}
            if flow is None:
                flow = SkinFlow(w, h, flow_params)
            head = flow.update(cv2.cvtColor(fr.rgb, cv2.COLOR_RGB2GRAY), p if ok else None)
            if ok:
                row.update(feats, **head, success=1.0)
                lms.append(p)
            else:
                row["success"] = 0.0
                lms.append(nan_lm)
            lost = not ok
            rows.append(row)
    finally:
        start_up.close()
        with quiet_native_stderr():
            mesh.close()
            if detector is not None:
                detector.close()
    table = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    table["frame"] = table["frame"].astype(np.int64)
    table["n_faces"] = table["n_faces"].astype(np.int64)
    table["success"] = table["success"].astype(bool)
    table.loc[~table["success"], "confidence"] = 0.0
    med = table.loc[table["success"], "ear"].median()
    table["blink"] = table["success"] & (table["ear"] < cfg.blink_ratio * med)
    landmarks = np.stack(lms) if lms else np.zeros((0, 478, 3), np.float32)
    return FaceTrack(path, info.fps, info.width, info.height, cfg, table, landmarks)


# --- caching ----------------------------------------------------------------------------
_MEMO: OrderedDict[tuple, FaceTrack] = OrderedDict()
_MEMO_SIZE = 2
_CACHE_NAME = "facetrack"


def _memo_key(path: Path, cfg: TrackConfig) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, tuple(sorted(cfg.as_dict().items())))


def _save(cache: FeatureCache, key: str, track: FaceTrack) -> None:
    from cdrscreen.core.io import atomic_path, write_json

    base = cache.path_for(_CACHE_NAME, key)
    with cache.writing():
        with atomic_path(base.with_suffix(".npy")) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, track.landmarks)
        write_json(base.with_suffix(".json"), {"fps": track.fps, "width": track.width,
                                               "height": track.height})
    cache.save(_CACHE_NAME, key, track.table)  # written last: its presence marks completion


def _load(cache: FeatureCache, key: str, path: Path, cfg: TrackConfig) -> FaceTrack | None:
    import json

    table = cache.load(_CACHE_NAME, key)
    if table is None:
        return None
    base = cache.path_for(_CACHE_NAME, key)
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
        landmarks = np.load(base.with_suffix(".npy"))
    except (OSError, ValueError):
        return None
    if landmarks.shape[0] != len(table):
        return None
    return FaceTrack(path, float(meta["fps"]), int(meta["width"]), int(meta["height"]), cfg,
                     table, landmarks)


def track_video(
    path: str | os.PathLike[str],
    *,
    stride: int = 1,
    cache: FeatureCache | str | os.PathLike[str] | None = None,
    **config: Any,
) -> FaceTrack:
    """Track the face, irises and head pose on every ``stride``-th frame of a video.

    Parameters
    ----------
    path : path-like
        Video file.
    stride : int, default 1
        Track every ``stride``-th decoded frame.
    cache : FeatureCache, path or None
        Store/reuse the track keyed by the video's content hash and the configuration.
        Tracks are also memoised in-process (last two), so several extractors in one
        process share a pass even without a disk cache.
    **config
        Other :class:`TrackConfig` fields (``max_faces``, ``blink_ratio``, ...).

    Returns
    -------
    FaceTrack

    Raises
    ------
    InputError
        If the video is missing or cannot be decoded.
    """
    from cdrscreen.media.video import probe_video

    path = Path(path)
    cfg = TrackConfig(stride=stride, **config)
    probe_video(path)  # one clear error for missing/unreadable files
    mkey = _memo_key(path, cfg)
    if isinstance(cache, str | os.PathLike):
        cache = FeatureCache(cache)
    key = cache.key(_CACHE_NAME, cfg.as_dict(), [path]) if cache is not None else None
    track = _MEMO.get(mkey)
    if track is not None:
        _MEMO.move_to_end(mkey)
        if cache is not None and key is not None and not cache.path_for(_CACHE_NAME, key).exists():
            _save(cache, key, track)
        return track
    if cache is not None and key is not None:
        track = _load(cache, key, path, cfg)
    if track is None:
        track = _compute_track(path, cfg)
        if cache is not None and key is not None:
            _save(cache, key, track)
    _MEMO[mkey] = track
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return track


def load_track(
    path: str | os.PathLike[str],
    *,
    stride: int = 1,
    cache: FeatureCache | str | os.PathLike[str] | None = None,
    **config: Any,
) -> FaceTrack:
    """Per-frame track of a video for interactive plots: cached if available, else computed.

    Same arguments as :func:`track_video`; ``cache`` defaults to
    :func:`cdrscreen.cache.default_cache_dir` (``$CDRSCREEN_CACHE``), where
    ``cdrscreen extract`` stores tracks unless given ``--cache``.
    """
    return track_video(path, stride=stride, cache=cache if cache is not None else default_cache_dir(),
                       **config)
