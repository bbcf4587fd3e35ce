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
``eye_w_r, eye_w_l, iris_rad_r, iris_rad_l``
    Each eye's corner-to-corner width and iris radius (mean distance of the four iris rim
    landmarks from the iris centre), px: the scale of the pupil features' degrees, so that
    they never need the landmarks of every frame.

Storage: the table is float32 but for ``frame``, ``n_faces`` (int64), ``time`` (float64)
and ``success``, ``blink`` (bool), built in preallocated blocks (no per-frame Python
objects). The landmarks are written to disk as they are produced and read back
memory-mapped (:attr:`FaceTrack.landmarks`), so memory does not grow with the length of the
video by more than the table (about 170 bytes per frame).

Several faces in view: tracking starts with a one-face mesh (fast: MediaPipe's detector
then runs only when the face is lost). A face-detector check every ``verify_every``
frames, on suspicious frames and on every re-acquisition counts the faces in view; once it
sees two, the mesh tracks up to ``max_faces`` faces and the kept face is the one
overlapping the previously kept face most (IoU >= 0.3), else the largest. An interviewer
entering the frame therefore does not take over from the tracked subject.
"""

from __future__ import annotations

import contextlib
import math
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
from cdrscreen.tracking.pose import PoseTracker, solve_pose

#: Bump when the per-frame computation changes (invalidates cached tracks).
TRACK_VERSION = 7  # 3: rotated videos uprighted, truncated videos refused (tracks made before may be wrong)
# 4: head pose from optical flow of skin points (mesh pose kept as mesh_*); head_x, head_y
# 5: float32 table with eye widths and iris radii, landmarks streamed to disk, mesh pose warm-started
# 6: skin-point flow in a tighter per-frame box (key and previous points grown by 0.1 of its size + 2 windows)
# 7: skin-point flow at full resolution only (flow_levels 0), started from the mesh-predicted positions;
#    detector check on every 30th frame (was 10th)

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
    "eye_w_r", "eye_w_l", "iris_rad_r", "iris_rad_l",
)
#: Columns stored as float64 (the others are float32, or bool / int64 as below).
_F64_COLUMNS = ("time",)
_INT_COLUMNS = ("frame", "n_faces")
_BOOL_COLUMNS = ("success", "blink")


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
        Pyramid levels of that optical flow above full resolution (0: full resolution
        only; each search starts where the mesh predicts the point, so no coarser level is
        needed: 1 and 3 tracked the planted pose sweeps no better and cost more CPU, see
        ``docs/features-visual.md``).
    verify_every : int
        The mesh tracker can cling for a few frames to something that is no longer a face
        (a hand or an object in front of it). A tracked face is therefore confirmed by
        MediaPipe's face detector on every ``verify_every``-th processed frame and on every
        suspicious frame (rigid-fit confidence < 0.85 or eye aspect ratio < 0.22, which
        includes real blinks); unconfirmed frames get ``success`` False. 0 disables it.
        30 (one check per second at 30 fps; it was 10): a detector call costs about half a
        mesh frame's CPU, so checks on every 10th frame (plus suspicious ones) cost about
        0.45 CPU-ms per frame on average, every 30th about 0.23.
    """

    stride: int = 1
    max_faces: int = 2
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.9
    blink_ratio: float = 0.8
    verify_every: int = 30
    flow_win: int = 15
    flow_levels: int = 0

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
        A tracked video's landmarks are memory-mapped from disk (the cache entry, or an
        unnamed temporary file), so reading a few frames costs only those; a feature that
        reads them all (``expressivity``) holds them all.
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
#: Landmarks read by the per-frame geometry, in this order: eye corners (33, 133, 362, 263),
#: the two six-point EAR contours, and both irises (centre then four rim points).
_GEOM_IDX = np.array([*EYE_R_CORNERS, *EYE_L_CORNERS, *EAR_R, *EAR_L,
                      *range(IRIS_R, IRIS_R + 5), *range(IRIS_L, IRIS_L + 5)])
#: Columns of :func:`frame_values`, in its order.
GEOMETRY_COLUMNS: tuple[str, ...] = (
    "face_x", "face_y", "face_w", "face_h",
    "iris_r_x", "iris_r_y", "iris_l_x", "iris_l_y",
    "iris_r_xn", "iris_r_yn", "iris_l_xn", "iris_l_yn",
    "gaze_h", "gaze_v", "ear_r", "ear_l", "ear",
    "mesh_yaw", "mesh_pitch", "mesh_roll", "mesh_tx", "mesh_ty", "mesh_tz", "pose_err", "confidence",
    "eye_w_r", "eye_w_l", "iris_rad_r", "iris_rad_l",
)


def _eye_relative(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> tuple[float, float]:
    """Iris ``c`` relative to the midpoint of corners ``a``, ``b``: along and up, in eye widths."""
    ex, ey = b[0] - a[0], b[1] - a[1]
    w = math.hypot(ex, ey)
    if w == 0:
        return math.nan, math.nan
    ux, uy = ex / w, ey / w  # (uy, -ux) is u rotated so that it points up in the image
    dx, dy = c[0] - (a[0] + b[0]) / 2, c[1] - (a[1] + b[1]) / 2
    return (dx * ux + dy * uy) / w, (dx * uy - dy * ux) / w


def _ear6(q: list[list[float]]) -> float:
    p1, p2, p3, p4, p5, p6 = q
    horiz = math.hypot(p1[0] - p4[0], p1[1] - p4[1])
    if not horiz:
        return math.nan
    return (math.hypot(p2[0] - p6[0], p2[1] - p6[1]) + math.hypot(p3[0] - p5[0], p3[1] - p5[1])) / (2 * horiz)


def _rim_radius(q: list[list[float]]) -> float:
    """Mean distance of four iris rim points from the iris centre ``q[0]``."""
    c = q[0]
    return sum(math.hypot(r[0] - c[0], r[1] - c[1]) for r in q[1:5]) / 4


def frame_values(p: np.ndarray, width: int, height: int, pose_solver: Any = None) -> tuple[float, ...]:
    """Per-frame geometry of 478 landmarks (px), in the order of :data:`GEOMETRY_COLUMNS`.

    Plain floats from a handful of landmarks (no per-frame arrays beyond one index).
    ``eye_w_*`` is each eye's corner-to-corner width and ``iris_rad_*`` its iris radius (mean
    distance of the four rim landmarks from the centre), px. ``pose_solver`` (a
    :class:`cdrscreen.tracking.pose.PoseTracker`) solves the mesh pose from the previous
    frame's; without it each frame is solved from scratch (:func:`solve_pose`).
    """
    xy = p[:, :2]
    lo, hi = xy.min(axis=0).tolist(), xy.max(axis=0).tolist()
    k = xy[_GEOM_IDX].tolist()
    c33, c133, c362, c263 = k[0:4]
    ir, il = k[16], k[21]
    cr = ((c33[0] + c133[0]) / 2, (c33[1] + c133[1]) / 2)
    cl = ((c362[0] + c263[0]) / 2, (c362[1] + c263[1]) / 2)
    mid = ((cr[0] + cl[0]) / 2, (cr[1] + cl[1]) / 2)
    iod = math.hypot(cl[0] - cr[0], cl[1] - cr[1]) or math.nan
    hr, vr = _eye_relative(c33, c133, ir)
    hl, vl = _eye_relative(c362, c263, il)
    ear_r, ear_l = _ear6(k[4:10]), _ear6(k[10:16])
    pose = pose_solver.solve(p) if pose_solver is not None else solve_pose(p, width, height)
    conf = math.exp(-((pose.err / 0.1) ** 2)) if math.isfinite(pose.err) else 0.0
    return (
        lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1],
        ir[0], ir[1], il[0], il[1],
        (ir[0] - mid[0]) / iod, (ir[1] - mid[1]) / iod, (il[0] - mid[0]) / iod, (il[1] - mid[1]) / iod,
        (hr + hl) / 2, (vr + vl) / 2, ear_r, ear_l, (ear_r + ear_l) / 2,
        pose.yaw, pose.pitch, pose.roll, pose.tx, pose.ty, pose.tz, pose.err, conf,
        math.hypot(c33[0] - c133[0], c33[1] - c133[1]), math.hypot(c362[0] - c263[0], c362[1] - c263[1]),
        _rim_radius(k[16:21]), _rim_radius(k[21:26]),
    )


def frame_features(p: np.ndarray, width: int, height: int) -> dict[str, float]:
    """Per-frame columns from 478 landmarks, as a dict (see :func:`frame_values`).

    All but frame/time/success/n_faces/blink and the skin-flow pose columns of
    :mod:`cdrscreen.tracking.flow`.
    """
    return dict(zip(GEOMETRY_COLUMNS, map(float, frame_values(np.asarray(p, np.float64), width, height)),
                    strict=True))


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
    """Centres (px) of the faces MediaPipe's face detector (or its :class:`_GraphRunner`) finds in a frame."""
    h, w = rgb.shape[:2]
    out = []
    runner = detector if isinstance(detector, _GraphRunner) else _GraphRunner(detector, "detections")
    with quiet_native_stderr():  # first runs of the detector graph log on fd 2
        detections = runner.messages(rgb)
    for d in detections:
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


class _GraphRunner:
    """One RGB frame through a MediaPipe solution's graph; its output as serialised protos.

    Does what the solution's ``process`` does (the same graph, the same image packet at the
    same simulated 30 fps timestamps, so the two can be mixed on one solution) without
    building a namedtuple class and Python protobuf messages on every call (about 0.2
    CPU-ms per frame). Falls back to ``process`` when the solution lacks the internals of
    the pinned MediaPipe release (``_graph``, ``_graph_outputs``, ``_simulated_timestamp``).
    """

    def __init__(self, solution: Any, output: str) -> None:
        self.solution, self.output = solution, output
        try:
            from mediapipe.python import packet_creator
            from mediapipe.python._framework_bindings import _packet_getter, image_frame

            self._lean = (
                solution._input_stream_type_info is not None
                and [(k, v.value) for k, v in solution._input_stream_type_info.items()] == [("image", "image")]
                and output in solution._output_stream_type_info
                and isinstance(solution._graph_outputs, dict)
                and isinstance(solution._simulated_timestamp, int)
            )
            self._create = packet_creator.create_image
            self._srgb = image_frame.ImageFormat.SRGB
            self._serialised = _packet_getter._get_serialized_proto_list
        except (ImportError, AttributeError):
            self._lean = False

    def serialised(self, rgb: np.ndarray) -> list[bytes]:
        """Return the serialised output messages of one frame (an empty list when there are none)."""
        s = self.solution
        if not self._lean:
            return [m.SerializeToString() for m in getattr(s.process(rgb), self.output) or []]
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("Input image must contain three channel rgb data.")
        s._graph_outputs.clear()
        s._simulated_timestamp += 33333
        s._graph.add_packet_to_input_stream(
            stream="image", packet=self._create(rgb, image_format=self._srgb).at(s._simulated_timestamp))
        s._graph.wait_until_idle()
        packet = s._graph_outputs.get(self.output)
        if packet is None or packet.is_empty():
            return []
        return self._serialised(packet)

    def messages(self, rgb: np.ndarray) -> list[Any]:
        """Return the output messages of one frame as Python protobuf messages (for rare calls)."""
        if not self._lean:
            return list(getattr(self.solution.process(rgb), self.output) or [])
        from mediapipe.framework.formats import detection_pb2, landmark_pb2

        cls = {"detections": detection_pb2.Detection,
               "multi_face_landmarks": landmark_pb2.NormalizedLandmarkList}[self.output]
        return [cls.FromString(b) for b in self.serialised(rgb)]


#: Wire layout of one ``NormalizedLandmark`` holding only x, y, z (what the face mesh sets):
#: a 17-byte length-delimited field whose three floats follow their one-byte tags.
_PB_SIZE = 17
_PB_TAG_COLS = np.array([0, 1, 2, 7, 12])
_PB_TAGS = np.array([0x0A, 15, 0x0D, 0x15, 0x1D], np.uint8)
_PB_FLOAT_COLS = np.r_[3:7, 8:12, 13:17]


def landmark_array(face: Any, width: int, height: int) -> np.ndarray | None:
    """``(478, 3)`` float32 pixels of one MediaPipe ``NormalizedLandmarkList`` (None if not 478 points).

    ``face`` is the message or its serialised bytes. The bytes are read as one array when
    every landmark holds exactly ``x, y, z`` (as the face mesh writes them); otherwise the
    message is read field by field. Both give the same values: ``(x * width, y * height,
    z * width)`` rounded to float32.
    """
    buf = face if isinstance(face, bytes) else face.SerializeToString()
    if len(buf) == 478 * _PB_SIZE:
        u = np.frombuffer(buf, np.uint8).reshape(478, _PB_SIZE)
        if (u[:, _PB_TAG_COLS] == _PB_TAGS).all():
            xyz = np.ascontiguousarray(u[:, _PB_FLOAT_COLS]).view("<f4")
            return xyz * np.array([width, height, width], np.float32)
    if isinstance(face, bytes):
        from mediapipe.framework.formats import landmark_pb2

        face = landmark_pb2.NormalizedLandmarkList.FromString(face)
    if len(face.landmark) != 478:
        return None
    return np.array([(q.x * width, q.y * height, q.z * width) for q in face.landmark], np.float32)


def _landmarks(mesh: _GraphRunner, rgb: np.ndarray, w: int, h: int) -> list[np.ndarray]:
    faces = (landmark_array(f, w, h) for f in mesh.serialised(rgb))
    return [p for p in faces if p is not None]


class _TableBuilder:
    """Per-frame values in preallocated blocks, typed per column when a block fills up.

    Memory per frame: float32 for most columns (see :data:`COLUMNS`), no Python objects.
    """

    BLOCK = 2048

    def __init__(self) -> None:
        self.n = 0
        self._i = 0
        self._block = np.full((self.BLOCK, len(COLUMNS)), np.nan)
        self._done: list[dict[str, np.ndarray]] = []

    def next_row(self) -> np.ndarray:
        """Return the next row (float64, all NaN, :data:`COLUMNS` order) to fill in place."""
        if self._i == self.BLOCK:
            self._flush()
        row = self._block[self._i]
        self._i += 1
        self.n += 1
        return row

    def _flush(self) -> None:
        b = self._block[: self._i]
        self._done.append({c: _typed(c, b[:, j]) for j, c in enumerate(COLUMNS)})
        self._block.fill(np.nan)
        self._i = 0

    def table(self) -> pd.DataFrame:
        """Return the rows so far as a DataFrame with :data:`COLUMNS`."""
        self._flush()
        cols = {c: np.concatenate([d.pop(c) for d in self._done]) for c in COLUMNS}
        self._done = []
        return pd.DataFrame(cols, columns=list(COLUMNS), copy=False)  # the columns as built, not a consolidated copy


def _typed(col: str, v: np.ndarray) -> np.ndarray:
    if col in _INT_COLUMNS:
        return v.astype(np.int64)
    if col in _BOOL_COLUMNS:
        return v == 1.0
    return v.copy() if col in _F64_COLUMNS else v.astype(np.float32)


class _LandmarkSink:
    """Write ``(478, 3)`` float32 landmarks to an ``.npy`` file as frames are produced.

    The file starts with a 128-byte gap that :meth:`finish` fills with the ``.npy`` header
    once the number of frames is known, so memory never holds more than one block.
    """

    HEADER = 128
    BLOCK = 256

    def __init__(self, path: Path, guard: Any = None) -> None:
        self.path = path
        self.n = 0
        self._guard = guard or contextlib.nullcontext
        self._buf = np.empty((self.BLOCK, 478, 3), "<f4")
        self._i = 0
        with self._guard():
            self._fh = open(path, "wb")  # noqa: SIM115 - closed in finish/abort
            self._fh.write(b"\0" * self.HEADER)

    def append(self, lm: np.ndarray | None) -> None:
        """Add one frame's landmarks (None: not tracked, stored as NaN)."""
        if lm is None:
            self._buf[self._i] = np.nan
        else:
            self._buf[self._i] = lm
        self._i += 1
        self.n += 1
        if self._i == self.BLOCK:
            self._write()

    def _write(self) -> None:
        with self._guard():
            self._fh.write(self._buf[: self._i].tobytes())
        self._i = 0

    def finish(self) -> np.ndarray:
        """Complete the file; return its landmarks, memory-mapped read-only."""
        import io

        self._write()
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            head, {"descr": "<f4", "fortran_order": False, "shape": (self.n, 478, 3)})
        with self._guard():
            if len(head.getvalue()) == self.HEADER:
                self._fh.seek(0)
                self._fh.write(head.getvalue())
                self._fh.close()
            else:  # a header of another length (not seen with 3-D float32): rewrite the file
                self._fh.close()
                self._rewrite(head.getvalue())
        return np.load(self.path, mmap_mode="r")

    def _rewrite(self, header: bytes) -> None:
        tmp = self.path.with_name(self.path.name + ".rewrite")
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            src.seek(self.HEADER)
            dst.write(header)
            while chunk := src.read(1 << 24):
                dst.write(chunk)
        os.replace(tmp, self.path)

    def abort(self) -> None:
        """Close and remove the file (tracking failed)."""
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


_COL = {c: j for j, c in enumerate(COLUMNS)}
_GEOM_AT = np.array([_COL[c] for c in GEOMETRY_COLUMNS])
_CONF, _EAR = GEOMETRY_COLUMNS.index("confidence"), GEOMETRY_COLUMNS.index("ear")


def _compute_track(path: Path, cfg: TrackConfig, landmark_file: Path | None = None,
                   guard: Any = None) -> FaceTrack:
    """Track one video (see :func:`track_video`).

    The landmarks are written to ``landmark_file`` (a temporary file, removed once mapped,
    when None) as frames are produced; ``guard`` wraps those writes (the cache's error
    reporting).

    Speed: with several faces allowed, MediaPipe runs its face detector on every frame in
    which fewer faces than allowed are tracked. So tracking starts with a one-face mesh,
    and the periodic detector check (``verify_every``, suspicious frames, and every
    re-acquisition after a lost face) counts the faces in view; as soon as it sees two or
    more, the rest of the video (from that frame on) is tracked by a ``max_faces`` mesh and
    the face is chosen by :func:`choose_face`. Per frame, after MediaPipe, the work is a
    handful of landmarks read as plain floats, the mesh pose refined from the previous
    frame's, the skin-point flow, and one row written into a preallocated block.
    """
    try:
        import mediapipe as mp
    except ImportError as err:
        raise MissingDependencyError("face tracking", "video", err) from None
    import cv2

    from cdrscreen.media.video import iter_frames, probe_video
    from cdrscreen.tracking.flow import FLOW_COLUMNS, FlowParams, SkinFlow

    info = probe_video(path)
    flow: SkinFlow | None = None
    poser: PoseTracker | None = None
    flow_params = FlowParams(win=cfg.flow_win, levels=cfg.flow_levels)
    flow_at = slice(_COL[FLOW_COLUMNS[0]], _COL[FLOW_COLUMNS[-1]] + 1)  # adjacent in COLUMNS
    assert [_COL[c] for c in FLOW_COLUMNS] == list(range(flow_at.start, flow_at.stop))
    i_frame, i_time, i_n, i_ok = _COL["frame"], _COL["time"], _COL["n_faces"], _COL["success"]
    rows = _TableBuilder()
    temporary = landmark_file is None
    if landmark_file is None:
        import tempfile

        fd, name = tempfile.mkstemp(prefix="cdrscreen-landmarks-", suffix=".npy")
        os.close(fd)
        landmark_file = Path(name)
    sink = _LandmarkSink(landmark_file, guard)
    prev_box: np.ndarray | None = None

    def new_mesh(n: int) -> Any:
        with quiet_native_stderr():  # graph start-up chatter on fd 2
            return mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=n, refine_landmarks=True,
                min_detection_confidence=cfg.min_detection_confidence,
                min_tracking_confidence=cfg.min_tracking_confidence,
            )

    def choose(faces: list[np.ndarray]) -> np.ndarray:
        return faces[choose_face(faces, prev_box)] if len(faces) > 1 else faces[0]

    with quiet_native_stderr():
        detector = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=cfg.min_detection_confidence
        ) if cfg.verify_every else None
    # without the detector check a second face could not be noticed: allow it from the start
    multi = cfg.max_faces < 2 or detector is None
    mesh = new_mesh(cfg.max_faces if multi else 1)
    runner = _GraphRunner(mesh, "multi_face_landmarks")
    det_runner = _GraphRunner(detector, "detections") if detector is not None else None
    lost = True
    # the graphs' calculators open asynchronously and log on fd 2 from their own threads
    # during the first frames: keep fd 2 quiet over that whole stretch (>= 30 frames and
    # >= 1 s after a graph starts), not only during each call
    start_up = contextlib.ExitStack()
    start_up.enter_context(quiet_native_stderr())
    quiet_until = (30, time.monotonic() + 1.0)
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # ~40 points and small images per frame: worker threads cost more than they save
    try:
        for fr in _prefetch(iter_frames(path, stride=cfg.stride)):
            h, w = fr.rgb.shape[:2]
            if rows.n >= quiet_until[0] and time.monotonic() >= quiet_until[1]:
                start_up.close()
            if flow is None:
                flow = SkinFlow(w, h, flow_params)
                poser = PoseTracker(w, h)
            faces = _landmarks(runner, fr.rgb, w, h)
            ok = False
            if faces:
                p = choose(faces)
                q = p.astype(np.float64)
                g = frame_values(q, w, h, poser)
                box = np.array(g[:4])
                suspicious = g[_CONF] < 0.85 or not g[_EAR] >= 0.22
                if detector is not None and (suspicious or lost or sink.n % cfg.verify_every == 0):
                    centres = _detect(det_runner, fr.rgb)
                    if not multi and len(centres) >= 2:  # a second person: track several faces
                        multi = True
                        start_up.close()
                        start_up.enter_context(quiet_native_stderr())  # the new graph's start-up
                        quiet_until = (rows.n + 30, time.monotonic() + 1.0)
                        mesh.close()
                        mesh = new_mesh(cfg.max_faces)
                        runner = _GraphRunner(mesh, "multi_face_landmarks")
                        faces = _landmarks(runner, fr.rgb, w, h) or faces
                        p = choose(faces)
                        q = p.astype(np.float64)
                        poser.reset()
                        g = frame_values(q, w, h, poser)
                        box = np.array(g[:4])
                    ok = _inside(centres, box)
                else:
                    ok = True
                prev_box = box
                ok = ok and all(map(math.isfinite, g))  # e.g. a failed PnP solve
            row = rows.next_row()
            row[i_frame], row[i_time], row[i_n] = fr.index, fr.time, len(faces)
            head = flow.update_values(fr.rgb, q if ok else None)
            if ok:
                row[_GEOM_AT] = g
                row[flow_at] = head
                row[i_ok] = 1.0
                sink.append(p)
            else:
                row[i_ok] = 0.0
                sink.append(None)
                poser.reset()
            lost = not ok
        landmarks = sink.finish()
    except BaseException:
        sink.abort()
        raise
    finally:
        cv2.setNumThreads(cv_threads)
        start_up.close()
        with quiet_native_stderr():
            mesh.close()
            if detector is not None:
                detector.close()
    if temporary:  # the mapping keeps the data; the name goes (POSIX)
        with contextlib.suppress(OSError):
            landmark_file.unlink()
    table = rows.table()
    success = table["success"].to_numpy()
    table.loc[~success, "confidence"] = np.float32(0.0)
    med = table.loc[success, "ear"].median()
    table["blink"] = success & (table["ear"] < cfg.blink_ratio * med).to_numpy()
    return FaceTrack(path, info.fps, info.width, info.height, cfg, table, landmarks)


# --- caching ----------------------------------------------------------------------------
_MEMO: OrderedDict[tuple, FaceTrack] = OrderedDict()
_MEMO_SIZE = 2
_CACHE_NAME = "facetrack"


def _memo_key(path: Path, cfg: TrackConfig) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, tuple(sorted(cfg.as_dict().items())))


def _save(cache: FeatureCache, key: str, track: FaceTrack, landmark_file: Path | None = None) -> None:
    """Store a track; ``landmark_file`` (a complete ``.npy`` beside the entry) is renamed into place."""
    from cdrscreen.core.io import atomic_path, write_json

    base = cache.path_for(_CACHE_NAME, key)
    with cache.writing():
        if landmark_file is not None:
            os.replace(landmark_file, base.with_suffix(".npy"))
        else:
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
        landmarks = np.load(base.with_suffix(".npy"), mmap_mode="r")
    except (OSError, ValueError):
        return None
    if landmarks.shape[0] != len(table) or list(table.columns) != list(COLUMNS):
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
        if cache is not None and key is not None:
            import tempfile

            folder = cache.path_for(_CACHE_NAME, key).parent
            with cache.writing():
                folder.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy.tmp", dir=folder)
                os.close(fd)
            tmp = Path(name)
            try:
                track = _compute_track(path, cfg, tmp, cache.writing)
                _save(cache, key, track, tmp)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()  # gone already unless something failed
        else:
            track = _compute_track(path, cfg)
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
