"""Rendered clips with planted visual truth, for validating the visual measurements.

Each :class:`VisualCase` is one short clip of a real face photo with exactly known head
rotation, head translation and eye-in-head motion (:mod:`cdrscreen.demo.trajectories`
conventions). The test suite (``tests/test_validation_visual.py``) and the accuracy table
(``benchmarks/validate_visual.py`` -> ``docs/validation-visual.md``) use the same cases.

Amplitudes: ``iris_dx = 0.15`` eye widths and ``iris_dy = 0.25`` eye-opening heights are
about ±0.35 iris diameters; head rotations ±8 degrees, translations ±6 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cdrscreen.demo.trajectories import GroundTruth, Trajectories

#: Real face photos used by the validation (see :mod:`cdrscreen.demo.faces`).
VALIDATION_FACES: tuple[str, ...] = ("astronaut", "grace_hopper", "lfw:0")


@dataclass(frozen=True)
class VisualCase:
    """One clip: a face, a frame rate, a length, and the planted per-frame motion."""

    name: str
    face: str
    fps: float
    n_frames: int
    motion: dict[str, np.ndarray] = field(repr=False)
    #: What the case checks and anything planted beyond the trajectories (e.g. step onsets).
    truth: dict[str, Any] = field(default_factory=dict)

    def trajectories(self) -> Trajectories:
        """Per-frame trajectories of the clip."""
        return Trajectories.constant(self.n_frames, **self.motion)

    def render(self, path: str | Path, size: tuple[int, int] = (320, 240)) -> GroundTruth:
        """Render the clip to ``path`` (mp4) and return its ground truth."""
        from cdrscreen.demo.render import render_face_video

        return render_face_video(path, self.face, self.trajectories(), fps=self.fps, size=size)


def _t(fps: float, duration_s: float) -> np.ndarray:
    return np.arange(int(round(fps * duration_s))) / fps


def still_head_cases(faces: tuple[str, ...] = VALIDATION_FACES, freqs: tuple[float, ...] = (1.5,),
                     fps: float = 25.0, duration_s: float = 2.4) -> list[VisualCase]:
    """Head perfectly still, iris oscillating horizontally or vertically (±0.35 iris diameters)."""
    out = []
    t = _t(fps, duration_s)
    for face in faces:
        for f in freqs:
            s = np.sin(2 * np.pi * f * t)
            for axis, key, amp in (("h", "iris_dx", 0.15), ("v", "iris_dy", 0.25)):
                out.append(VisualCase(f"still_head_{axis}_{f:g}hz", face, fps, t.size, {key: amp * s},
                                      {"axis": axis, "freq": f}))
    return out


def co_movement_cases(face: str = "astronaut", fps: float = 25.0, duration_s: float = 4.0) -> list[VisualCase]:
    """Head rotating or translating with the eyes co-moving, and head and eyes independent.

    ``co_rot_*``: the head turns (±8 deg at 0.6 Hz) and the eye turns in the head the
    same way (rotation-based co-movement, planted r = +1). ``co_trans_*``: the head shifts
    (±6 px at 0.6 Hz) with the eyes still in the head, so pupil and face move together in
    the image (image-space co-movement, planted r = +1). ``ind_rot_*``: the head turns at
    0.5 Hz and the eye moves in the head at 1.75 Hz (planted r = 0 for the rotation-based
    definition). Over the default 4 s both make whole cycles (2 and 7) and the eye's phase
    is chosen so that the planted signals are uncorrelated in the sample itself: Pearson r
    and Spearman rho of positions and of frame-to-frame velocities all within ±0.004
    (:func:`planted_correlations`). (Frequencies that do not fit the clip, such as 0.6 and
    1.7 Hz over 4 s, correlate by chance: rho = -0.12, which the measurement would inherit.)
    """
    t = _t(fps, duration_s)
    s06 = np.sin(2 * np.pi * 0.6 * t)
    s05, s175 = np.sin(2 * np.pi * 0.5 * t), np.sin(2 * np.pi * 1.75 * t + np.deg2rad(100))
    n = t.size
    return [
        VisualCase("co_rot_v", face, fps, n, {"pitch": 8 * s06, "iris_dy": -8 * s06 / 40}, {"axis": "v", "r": 1.0}),
        VisualCase("co_rot_h", face, fps, n, {"yaw": 8 * s06, "iris_dx": 8 * s06 / 60}, {"axis": "h", "r": 1.0}),
        VisualCase("co_trans_v", face, fps, n, {"ty": 6 * s06}, {"axis": "v", "r": 1.0}),
        VisualCase("co_trans_h", face, fps, n, {"tx": 6 * s06}, {"axis": "h", "r": 1.0}),
        VisualCase("ind_rot_v", face, fps, n, {"pitch": 8 * s05, "iris_dy": 0.25 * s175}, {"axis": "v", "r": 0.0}),
        VisualCase("ind_rot_h", face, fps, n, {"yaw": 8 * s05, "iris_dx": 0.15 * s175}, {"axis": "h", "r": 0.0}),
    ]


def planted_correlations(case: VisualCase) -> dict[str, float]:
    """In-sample Pearson r and Spearman rho of a case's planted head and eye-in-head signals.

    Positions and frame-to-frame velocities (``pos_r``, ``pos_rho``, ``vel_r``, ``vel_rho``)
    of the head angle (``pitch`` or ``yaw``) against the eye-in-head motion on the case's
    axis (``truth["axis"]``): what a perfect measurement would report.
    """
    from scipy.stats import pearsonr, spearmanr

    v = case.truth["axis"] == "v"
    head = case.motion.get("pitch" if v else "yaw", np.zeros(case.n_frames))
    eye = case.motion.get("iris_dy" if v else "iris_dx", np.zeros(case.n_frames))
    eye = -eye if v else eye  # iris_dy > 0 is down in the image; pitch > 0 is up
    out = {}
    for kind, a, b in (("pos", head, eye), ("vel", np.diff(head), np.diff(eye))):
        out[f"{kind}_r"] = float(pearsonr(a, b)[0])
        out[f"{kind}_rho"] = float(spearmanr(a, b)[0])
    return out


def saccade_cases(face: str = "astronaut", fps: float = 25.0, duration_s: float = 4.0) -> list[VisualCase]:
    """Return a still eye, a smooth 1.5 Hz sinusoid (pursuit), and planted 1-frame step saccades.

    Steps alternate between -0.12 and +0.12 eye widths every 0.5 s; ``truth["onsets"]``
    holds the first frame at the new position.
    """
    t = _t(fps, duration_s)
    steps = np.where((np.floor(t / 0.5) % 2) == 0, -0.12, 0.12)
    onsets = (np.flatnonzero(np.diff(steps)) + 1).tolist()
    return [
        VisualCase("eye_still", face, fps, t.size, {}, {"saccades": 0}),
        VisualCase("eye_pursuit_1.5hz", face, fps, t.size, {"iris_dx": 0.15 * np.sin(2 * np.pi * 1.5 * t)},
                   {"saccades": 0, "freq": 1.5}),
        VisualCase("eye_steps", face, fps, t.size, {"iris_dx": steps}, {"saccades": len(onsets), "onsets": onsets}),
    ]


__all__ = ["VALIDATION_FACES", "VisualCase", "co_movement_cases", "planted_correlations", "saccade_cases",
           "still_head_cases"]
