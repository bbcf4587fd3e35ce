"""Per-frame motion that the renderer plants, and the ground truth it hands back.

Sign conventions (camera coordinates: x to the image right, y down, z away from the
camera; the subject faces the camera):

- ``yaw`` (degrees) > 0: the subject turns to *their* left, so the nose moves towards
  the image right.
- ``pitch`` (degrees) > 0: the subject looks up (chin up), the nose moves up the image.
- ``roll`` (degrees) > 0: the head tilts towards the subject's left shoulder (the top of
  the head moves towards the image right; clockwise as seen on screen).
- The head rotation matrix is ``R = Rz(roll) @ Rx(-pitch) @ Ry(-yaw)`` with the usual
  right-handed ``Rx, Ry, Rz`` in camera coordinates; it maps the neutral (photographed)
  head to the rendered one and is stored per frame in :attr:`GroundTruth.rotation`.
- ``tx, ty`` (pixels): image-plane shift of the head's pivot (x right, y down).
- ``iris_dx`` (fraction of the eye width, corner to corner) > 0: the iris moves towards
  the image right *within the eye opening* (the subject looks to their left);
  ``iris_dy`` (fraction of the eye-opening height) > 0: the iris moves down (looks
  down). Offsets are in head coordinates (they turn with the head) and both eyes move
  together. ``(0, 0)`` is the iris centred in the opening.
- ``closure`` in [0, 1]: eyelid closure (0 open, 1 shut); a blink is a brief rise to 1.
- ``face_visible``: False paints an opaque occluder over the whole head for that frame.
- ``gain``: multiplicative lighting gain; ``noise_sigma``: Gaussian pixel noise (0-255 scale).
- ``mouth_open``: jaw drop as a fraction of the face height (0 closed; ~0.03 speaking).
- ``smile``, ``brow_raise``, ``brow_lower``, ``frown``: facial-expression controls,
  intensity 0 (neutral) to 1 (full); what each moves is in :mod:`cdrscreen.demo.expressions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cdrscreen.core.errors import CdrscreenError

#: Trajectory fields and their neutral values.
DEFAULTS: dict[str, float | bool] = {
    "yaw": 0.0, "pitch": 0.0, "roll": 0.0, "tx": 0.0, "ty": 0.0,
    "iris_dx": 0.0, "iris_dy": 0.0, "closure": 0.0, "face_visible": True,
    "gain": 1.0, "noise_sigma": 0.0, "mouth_open": 0.0,
    "smile": 0.0, "brow_raise": 0.0, "brow_lower": 0.0, "frown": 0.0,
}


@dataclass
class Trajectories:
    """Per-frame planted parameters; every field is an array of length ``n_frames``.

    Build with :meth:`constant` (scalars broadcast) or pass arrays of equal length.
    See the module docstring for units and sign conventions.
    """

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    iris_dx: np.ndarray
    iris_dy: np.ndarray
    closure: np.ndarray
    face_visible: np.ndarray
    gain: np.ndarray
    noise_sigma: np.ndarray
    mouth_open: np.ndarray
    smile: np.ndarray | float = 0.0
    brow_raise: np.ndarray | float = 0.0
    brow_lower: np.ndarray | float = 0.0
    frown: np.ndarray | float = 0.0

    def __post_init__(self) -> None:
        lengths = {f.name: np.size(getattr(self, f.name)) for f in fields(self)}
        n = max(lengths.values())
        for f in fields(self):
            v = np.asarray(getattr(self, f.name))
            dtype = bool if f.name == "face_visible" else np.float64
            if v.ndim == 0:
                v = np.full(n, v, dtype=dtype)
            elif v.ndim != 1 or len(v) != n:
                raise CdrscreenError(f"trajectory '{f.name}' has shape {v.shape}, expected ({n},)")
            v = v.astype(dtype)
            if dtype is np.float64 and not np.all(np.isfinite(v)):
                raise CdrscreenError(f"trajectory '{f.name}' contains NaN or infinite values")
            setattr(self, f.name, v)
        if np.any((self.closure < 0) | (self.closure > 1)):
            raise CdrscreenError("trajectory 'closure' must lie in [0, 1]")
        if np.any(self.gain <= 0) or np.any(self.noise_sigma < 0):
            raise CdrscreenError("trajectory 'gain' must be > 0 and 'noise_sigma' >= 0")
        for name in ("smile", "brow_raise", "brow_lower", "frown"):
            if np.any((getattr(self, name) < 0) | (getattr(self, name) > 1)):
                raise CdrscreenError(f"trajectory '{name}' (expression intensity) must lie in [0, 1]")

    @classmethod
    def constant(cls, n_frames: int, **values: Any) -> Trajectories:
        """Neutral trajectories of ``n_frames`` frames; keyword arrays/scalars override fields."""
        unknown = set(values) - set(DEFAULTS)
        if unknown:
            raise CdrscreenError(f"unknown trajectory field(s): {', '.join(sorted(unknown))}")
        if n_frames < 1:
            raise CdrscreenError(f"n_frames must be >= 1, got {n_frames}")
        data = {k: np.full(n_frames, DEFAULTS[k]) for k in DEFAULTS}
        for k, v in values.items():
            data[k] = np.broadcast_to(np.asarray(v), (n_frames,)).copy()
        return cls(**data)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.yaw)

    def to_frame(self) -> pd.DataFrame:
        """Return the trajectories as a DataFrame, one row per frame."""
        return pd.DataFrame({f.name: getattr(self, f.name) for f in fields(self)})


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation ``Rz(roll) @ Rx(-pitch) @ Ry(-yaw)`` (degrees in, 3x3 out).

    See the module docstring for the sign conventions.
    """
    y, p, r = np.deg2rad([-yaw, -pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass
class GroundTruth:
    """Exactly what was planted in a rendered video.

    Attributes
    ----------
    table : DataFrame
        One row per frame: ``frame``, ``time`` (s), every :class:`Trajectories` field,
        and where things landed in the image (pixels): ``head_x, head_y`` (the rotation
        pivot, behind the face: it moves exactly by ``tx, ty``), ``nose_x, nose_y``
        (nose tip; it moves more than the pivot under translation, by parallax),
        ``iris_r_x, iris_r_y, iris_l_x, iris_l_y`` (rendered iris centres),
        ``corner_r_mid_x, ...`` (midpoint of each eye's two corners) and
        ``eye_r_width, eye_l_width`` (corner-to-corner distance in the image).
    rotation : ndarray, shape (n_frames, 3, 3)
        Head rotation per frame (see :func:`rotation_matrix`).
    fps : float
    size : (int, int)
        ``(width, height)``.
    focal : float
        Focal length (pixels) of the pinhole camera used for projection; principal
        point at the frame centre.
    face : str
        Source photograph.
    seed : int
    audio_duration : float or None
        Seconds of audio muxed in (None when the video has no audio).
    meta : dict
        Anything else worth keeping (e.g. planted speech pauses).
    """

    table: pd.DataFrame
    rotation: np.ndarray
    fps: float
    size: tuple[int, int]
    focal: float
    face: str
    seed: int
    audio_duration: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.table)

    def save(self, prefix: str | Path) -> tuple[Path, Path]:
        """Write ``<prefix>.frames.csv`` (the table) and ``<prefix>.json`` (the rest)."""
        from cdrscreen.core.io import atomic_path, write_json

        prefix = Path(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        csv_path = prefix.with_name(prefix.name + ".frames.csv")
        json_path = prefix.with_name(prefix.name + ".json")
        with atomic_path(csv_path) as tmp:
            self.table.to_csv(tmp, index=False, float_format="%.5g")
        write_json(json_path, {
            "synthetic": "SYNTHETIC demo data for pipeline checking only; not patient data",
            "fps": self.fps, "size": list(self.size), "focal": self.focal, "face": self.face,
            "seed": self.seed, "n_frames": self.n_frames, "audio_duration": self.audio_duration,
            "conventions": "see cdrscreen.demo.trajectories module docstring",
            **self.meta,
        })
        return csv_path, json_path
