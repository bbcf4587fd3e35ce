"""Facial expressions for the demo faces: landmark-driven warps and planted expression episodes.

An expression is rendered by moving face-mesh landmarks of the still photograph before the
head warp of :class:`~cdrscreen.demo.render.FaceAnimator` (the texture follows the mesh,
as it does for the jaw). Four *controls*, loosely after FACS action units, are per-frame
trajectory fields (:data:`CONTROLS`, intensity 0 = neutral, 1 = full):

``smile``
    AU6 + AU12: mouth corners pulled up and out, cheeks raised, lower lids pushed up.
``brow_raise``
    AU1 + AU2 + AU5: whole brows raised, upper lids lifted.
``brow_lower``
    AU4 + AU7 + AU24: brows pulled down and together, lower lids tightened, lips pressed.
``frown``
    AU1 + AU15 + AU17: inner brows raised, mouth corners pulled down, chin raised.

Each control is a set of *handles*: landmarks that move by a fixed offset (in face widths,
"out" = away from the face's vertical midline, "down" = along the face's downward axis,
taken from the eye line, so roll and mirroring of the photograph do not matter). Every
other head point moves by the Gaussian-weighted (sigma in face widths) average of nearby
handle offsets, so the skin around a handle follows it smoothly. :data:`EXPRESSIONS` maps
the class names used by the demo's expression model to control intensities (``surprise``
also drops the jaw through ``mouth_open``).

:func:`plant_episodes` draws expression episodes (raised-cosine onset and offset, a
plateau) at a given rate; :func:`expression_trajectories` turns an
:class:`ExpressionParams` into per-frame control values and reports what was planted.
Everything made here is SYNTHETIC and serves pipeline checks only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Per-frame expression controls (fields of :class:`~cdrscreen.demo.trajectories.Trajectories`).
CONTROLS: tuple[str, ...] = ("smile", "brow_raise", "brow_lower", "frown")

#: Expression classes of the demo's expression model, as control intensities at full
#: strength (``mouth_open`` is the jaw drop as a fraction of the face height).
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"smile": 1.0},
    "sad": {"frown": 1.0},
    "surprise": {"brow_raise": 1.0, "mouth_open": 0.045},
    "angry": {"brow_lower": 1.0},
}

_R_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
_L_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
_INNER_BROW = (107, 55, 66, 65, 336, 285, 296, 295)
_OUTER_BROW = (70, 46, 63, 53, 300, 276, 293, 283)
_UPPER_LID = (159, 158, 160, 157, 161, 386, 385, 387, 384, 388)
_LOWER_LID = (145, 144, 153, 154, 163, 374, 373, 380, 381, 390)
_CHEEK = (50, 280, 205, 425, 187, 411, 123, 352, 117, 346)
_MOUTH_CORNER = (61, 291, 78, 308)
_NEAR_CORNER = (40, 270, 91, 321, 185, 409, 146, 375)
_UPPER_LIP_MID = (0, 13, 37, 267)
_LOWER_LIP_MID = (17, 14, 84, 314)
_CHIN = (152, 175, 199, 200, 148, 377)

#: Handles per control: (landmarks, offset out, offset down, sigma), lengths in face widths.
HANDLES: dict[str, tuple[tuple[tuple[int, ...], float, float, float], ...]] = {
    "smile": (
        (_MOUTH_CORNER, 0.050, -0.060, 0.060),
        (_NEAR_CORNER, 0.030, -0.030, 0.040),
        (_CHEEK, 0.012, -0.035, 0.060),
        (_LOWER_LID, 0.0, -0.012, 0.020),
        (_UPPER_LIP_MID, 0.0, -0.006, 0.030),
    ),
    "brow_raise": (
        (_R_BROW + _L_BROW, 0.0, -0.060, 0.050),
        (_UPPER_LID, 0.0, -0.016, 0.016),
    ),
    "brow_lower": (
        (_INNER_BROW, -0.040, 0.055, 0.040),
        (_OUTER_BROW, 0.0, 0.020, 0.040),
        (_LOWER_LID, 0.0, -0.012, 0.018),
        (_UPPER_LIP_MID, 0.0, 0.010, 0.025),
        (_LOWER_LIP_MID, 0.0, -0.012, 0.025),
        (_MOUTH_CORNER, -0.012, 0.0, 0.035),
    ),
    "frown": (
        (_MOUTH_CORNER, -0.010, 0.050, 0.060),
        (_NEAR_CORNER, 0.0, 0.025, 0.040),
        (_INNER_BROW, -0.008, -0.040, 0.035),
        (_OUTER_BROW, 0.0, 0.012, 0.035),
        (_CHIN, 0.0, -0.018, 0.050),
    ),
}


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face midline point and unit axes of a 478-landmark mesh (pixels).

    Returns
    -------
    centre : ndarray (2,)
        Midpoint between the two eye-corner midpoints (on the face's vertical midline).
    u : ndarray (2,)
        Along the eye line, towards the image right.
    v : ndarray (2,)
        Perpendicular to it, pointing down the face.
    """
    p = np.asarray(landmarks, float)[:, :2]
    eye_a = (p[33] + p[133]) / 2
    eye_b = (p[362] + p[263]) / 2
    u = eye_b - eye_a
    if u[0] < 0:
        u = -u
    u = u / max(float(np.hypot(*u)), 1e-9)
    v = np.array([-u[1], u[0]])
    return (eye_a + eye_b) / 2, u, v


def control_basis(landmarks: np.ndarray, points: np.ndarray, face_width: float) -> np.ndarray:
    """Pixel offsets of ``points`` at full intensity of every control.

    Parameters
    ----------
    landmarks : ndarray (478, 2 or 3)
        The still's landmarks (pixels); handles sit on them.
    points : ndarray (n, 2)
        Points to move (pixels), e.g. the animator's head points.
    face_width : float
        Pixels per face width.

    Returns
    -------
    ndarray, shape (len(CONTROLS), n, 2)
    """
    lm = np.asarray(landmarks, float)[:, :2]
    pts = np.asarray(points, float)[:, :2]
    centre, u, v = face_axes(lm)
    out = np.zeros((len(CONTROLS), len(pts), 2))
    for k, name in enumerate(CONTROLS):
        num = np.zeros((len(pts), 2))
        den = np.zeros(len(pts))
        for idx, d_out, d_down, sigma in HANDLES[name]:
            for i in idx:
                h = lm[i]
                side = float(np.clip((h - centre) @ u / (0.08 * face_width), -1, 1))
                offset = (d_out * side * u + d_down * v) * face_width
                w = np.exp(-((pts - h) ** 2).sum(1) / (2 * (sigma * face_width) ** 2))
                num += w[:, None] * offset
                den += w
        out[k] = num / np.maximum(den, 1.0)[:, None]
    return out


def expression_controls(name: str, intensity: float = 1.0) -> dict[str, float]:
    """Control values (and ``mouth_open``) of expression ``name`` at ``intensity``."""
    from cdrscreen.core.errors import CdrscreenError

    if name not in EXPRESSIONS:
        raise CdrscreenError(f"unknown demo expression '{name}' (use one of {', '.join(EXPRESSIONS)})")
    return {k: v * float(intensity) for k, v in EXPRESSIONS[name].items()}


@dataclass(frozen=True)
class ExpressionParams:
    """One subject's planted expression behaviour.

    Attributes
    ----------
    smile_rate : float
        Smile episodes per minute (Poisson).
    smile_intensity : float
        Mean peak intensity of a smile (0-1; each episode varies by +-15 %).
    brow_rate : float
        Brow-raise episodes ("eyebrow flashes", no jaw drop) per minute.
    brow_intensity : float
        Mean peak intensity of a brow raise.
    """

    smile_rate: float = 6.0
    smile_intensity: float = 0.8
    brow_rate: float = 2.0
    brow_intensity: float = 0.6

    def to_dict(self) -> dict[str, float]:
        """Return the parameters as a plain dict."""
        return asdict(self)


def plant_episodes(n_frames: int, fps: float, rate_per_min: float, intensity: float,
                   rng: np.random.Generator, *, duration_s: tuple[float, float] = (1.2, 2.6),
                   ramp_s: float = 0.3, gap_s: float = 1.0,
                   busy: np.ndarray | None = None) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """Draw non-overlapping expression episodes.

    The number of episodes is Poisson with mean ``rate_per_min * minutes``; each lasts
    ``duration_s`` (uniform), rises and falls over ``ramp_s`` (raised cosine) and peaks at
    ``intensity * U(0.85, 1.15)`` (clipped to 1). Episodes keep ``gap_s`` apart from each
    other and from frames marked in ``busy``; an episode that cannot be placed after 50
    tries is dropped (the returned list holds what was planted).

    Returns
    -------
    values : ndarray (n_frames,)
        Per-frame intensity.
    episodes : list of (start_s, end_s, peak)
    """
    values = np.zeros(n_frames)
    taken = np.zeros(n_frames, bool) if busy is None else np.asarray(busy, bool).copy()
    minutes = n_frames / fps / 60
    n = int(rng.poisson(max(rate_per_min, 0.0) * minutes))
    gap = int(round(gap_s * fps))
    out: list[tuple[float, float, float]] = []
    for _ in range(n):
        length = max(int(round(rng.uniform(*duration_s) * fps)), 3)
        peak = float(np.clip(intensity * rng.uniform(0.85, 1.15), 0, 1))
        for _try in range(50):
            if n_frames - length <= 0:
                break
            t0 = int(rng.integers(0, n_frames - length + 1))
            lo, hi = max(t0 - gap, 0), min(t0 + length + gap, n_frames)
            if not taken[lo:hi].any():
                break
        else:
            continue
        if n_frames - length <= 0:
            continue
        ramp = min(max(int(round(ramp_s * fps)), 1), length // 2)
        prof = np.ones(length)
        edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp + 2)[1:-1])
        prof[:ramp] = edge
        prof[length - ramp:] = edge[::-1]
        values[t0:t0 + length] = peak * prof
        taken[t0:t0 + length] = True
        out.append((t0 / fps, (t0 + length) / fps, peak))
    out.sort()
    return values, out


def expression_trajectories(p: ExpressionParams, n_frames: int, fps: float,
                            rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, float],
                                                                dict[str, list[tuple[float, float, float]]]]:
    """Per-frame expression controls for one subject.

    Returns
    -------
    controls : dict
        ``smile`` and ``brow_raise`` arrays (``brow_lower`` and ``frown`` stay 0 in the
        demo cohort).
    realised : dict
        ``n_smiles``, ``planted_smile_rate`` (episodes per minute actually planted),
        ``planted_smile_fraction`` (fraction of frames with smile intensity > 0.25),
        ``planted_smile_peak`` (mean peak, NaN without episodes), ``n_brow_raises``.
    episodes : dict
        ``smile`` and ``brow_raise`` episode lists ``(start_s, end_s, peak)``.
    """
    smile, smiles = plant_episodes(n_frames, fps, p.smile_rate, p.smile_intensity, rng)
    brow, brows = plant_episodes(n_frames, fps, p.brow_rate, p.brow_intensity, rng,
                                 duration_s=(0.5, 0.9), ramp_s=0.15, busy=smile > 0)
    minutes = n_frames / fps / 60
    realised = {
        "n_smiles": float(len(smiles)),
        "planted_smile_rate": len(smiles) / minutes if minutes > 0 else float("nan"),
        "planted_smile_fraction": float((smile > 0.25).mean()) if n_frames else float("nan"),
        "planted_smile_peak": float(np.mean([e[2] for e in smiles])) if smiles else float("nan"),
        "n_brow_raises": float(len(brows)),
    }
    return {"smile": smile, "brow_raise": brow}, realised, {"smile": smiles, "brow_raise": brows}
