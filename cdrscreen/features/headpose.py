"""Head-pose features (``headpose__*``): a smoothed pose trajectory and pupil–head correlations.

Per-frame pose is computed once per video inside :func:`cdrscreen.tracking.face.track_video`
(columns ``yaw``, ``pitch``, ``roll``, ``tx``, ``ty``, ``tz``, ``pose_err``; geometry and sign
conventions in :mod:`cdrscreen.tracking.pose`); this module summarises it in
:class:`HeadPoseExtractor`.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.features.base import TrackedExtractor
from cdrscreen.features.eye_texture import EyeTextureParams
from cdrscreen.features.recording_warnings import video_seconds, visual_quality


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


def co_movement(
    pieces: list[dict[str, np.ndarray]], eye: str, head: str, *, min_head_sd: float
) -> dict[str, dict[str, float]]:
    """Position and velocity correlations of an eye signal with a head signal.

    Returns ``{"pos": correlate(...), "vel": correlate(...)}``. When the head signal's SD over
    all pieces is below ``min_head_sd`` the head did not move measurably: the coefficients
    are NaN (n is kept), since a correlation with tracking noise says nothing about
    co-movement.
    """
    out = {}
    h = np.concatenate([p[head] for p in pieces]) if pieces else np.array([])
    still = h.size == 0 or float(h.std()) < min_head_sd
    for kind in ("pos", "vel"):
        tf = (lambda x: x) if kind == "pos" else np.diff
        c = correlate([tf(p[eye]) for p in pieces], [tf(p[head]) for p in pieces])
        if still:
            c.update(r=np.nan, p=np.nan, rho=np.nan, rho_p=np.nan)
        out[kind] = c
    return out


class HeadPoseParams(StrictModel):
    """Settings of the ``headpose`` group (spec section ``groups.headpose``)."""

    smooth_s: float = Field(0.15, ge=0, description="Width of the moving average on the pose angles, seconds.")
    max_gap_s: float = Field(0.25, ge=0, description="Longest gap bridged by interpolation, seconds.")
    min_rotation_deg: float = Field(
        0.1, ge=0, description="Rotation-based co-movement is NaN when the head angle's SD is below this, degrees.")
    min_translation_px: float = Field(
        0.2, ge=0, description="Image-space co-movement is NaN when the face position's SD is below this, pixels.")
    eye_in_head: Literal["corners", "head", "texture"] = Field(
        "texture", description="Eye-in-head signal of the rotation-based co-movement: 'texture' (the default: "
                               "iris against the tracked skin texture around each eye, "
                               "cdrscreen.features.eye_texture; decodes the video again), 'corners' (gaze_h/gaze_v, "
                               "pupil relative to the eye corners; no second decoding) or 'head' (iris in head "
                               "coordinates, cdrscreen.features.gaze).")
    eye_texture: EyeTextureParams | None = Field(
        None, description="Settings of the texture eye signal (eye_in_head: texture): "
                          "cdrscreen.features.eye_texture.EyeTextureParams, e.g. patience_s, renew, overlap_s; "
                          "keys not given keep their defaults.")


class HeadPoseExtractor(TrackedExtractor):
    """Head-pose and face-eye co-movement features (columns ``headpose__*``).

    Parameters
    ----------
    stride : int, default 1
        Track every ``stride``-th frame (shared with ``pupil``).
    smooth_s : float, default 0.15
        Width of the centred moving average applied to the pose angles, seconds.
    max_gap_s : float, default 0.25
        Longest gap (lost face, blink) bridged by linear interpolation, seconds.
    min_rotation_deg : float, default 0.1
        Rotation-based co-movement is reported (not NaN) only when the head angle's SD
        reaches this (degrees); measured tracking noise of a still head is 0.003-0.02.
    min_translation_px : float, default 0.2
        Image-space co-movement is reported only when the face position's SD reaches this
        (pixels); measured noise of a still head is 0.001-0.01 px.
    eye_in_head : {"texture", "corners", "head"}, default "texture"
        Eye signal of the rotation-based co-movement: ``"texture"`` the iris against the
        optical-flow-tracked skin around each eye (``eye_yaw``, ``eye_pitch``, degrees,
        :func:`cdrscreen.features.eye_texture.eye_in_texture`; a second pass over the
        video's frames), the only one of the three that reads independent head and eye
        motion as uncorrelated on every validation face (``docs/validation-visual.md``);
        ``"corners"`` the track's ``gaze_h``, ``gaze_v`` (pupil relative to the eye corners,
        eye widths; no second pass, but the parallax of the iris in front of the corners
        correlates it with head pitch); ``"head"`` the iris in head coordinates (same
        columns as texture, :func:`cdrscreen.features.gaze.eye_in_head`), which head
        rotation cannot move for an exact pose and iris depth but which takes every pose
        error with it.
    eye_texture : EyeTextureParams or dict, optional
        Settings of the texture eye signal
        (:class:`cdrscreen.features.eye_texture.EyeTextureParams`; a dict of some of its
        fields is completed with the defaults). Stored, and recorded with the table, as the
        complete dict.
    max_faces : int, default 2
        Faces tracked at once.
    cache_dir : path, optional
        Where the shared face track is cached.

    Notes
    -----
    The head pose is the skin-point optical-flow pose of the track
    (:mod:`cdrscreen.tracking.flow`), which the iris cannot move. Two co-movement
    definitions pair eye and head on frames where both exist (blinks excluded); ``pos``
    uses the trajectories, ``vel`` their frame-to-frame differences; same signs mean
    co-movement in the same direction (right / up):

    * ``corr_*`` (rotation-based, the package's original definition): eye-in-head gaze
      vs head ``yaw`` / ``pitch``. The eye signal is the iris against the skin texture
      around each eye (``eye_yaw``, ``eye_pitch``) by default, or with
      ``eye_in_head="corners"`` ``gaze_h``, ``gaze_v`` (the pupil relative to the eye
      corners), or with ``eye_in_head="head"`` the iris in head coordinates (``eye_yaw``,
      ``eye_pitch``). Near 0 when eye and head move independently (texture: |r|, |rho|
      <= 0.19 on the validation faces), up to the parallax of the iris in front of the eye
      corners (``"corners"``) or the pose error at the iris (``"head"``); measured in
      ``docs/validation-visual.md``.
    * ``img_corr_*`` (image-space, Nam et al. 2020): the pupil's position in the image (mean
      of both iris centres) vs the face's position in the image (``head_x``, ``head_y``:
      centre of the rigid skin points). Head motion moves both, so this is high whenever
      the head moves and the eyes do not counter-rotate.

    Signals: ``frames``, the (evenly resampled) per-frame pose ``yaw``, ``pitch``, ``roll``
    with ``success``, and the exact series the correlations use: ``piece`` (number of the
    gap-free piece, -1 outside), ``gaze_h``, ``gaze_v`` (eye widths), ``yaw_s``, ``pitch_s``
    (head angles smoothed), ``pupil_x``,
    ``pupil_y``, ``head_x``, ``head_y`` (image px, y up); gaps interpolated, NaN outside a
    piece. ``corr_vel_*`` correlate their differences within each piece. ``attrs["fps"]``
    is the rate; ``attrs["eye_columns"]`` names the eye columns ``corr_*`` used (``eye_yaw``,
    ``eye_pitch`` unless ``eye_in_head="corners"``) and ``attrs["eye_in_head"]`` the setting.
    """

    name: ClassVar[str] = "headpose"
    prefix: ClassVar[str] = "headpose"
    #: 2: pieces shorter than the smoothing window keep their length (was a length mismatch).
    #: 3: variable-frame-rate tracks resampled onto even time steps.
    #: 4: pose from skin-point optical flow (not the mesh); image-space co-movement
    #:    (img_corr_*), face position x/y; correlations NaN for a still head.
    #: 5: eye_in_head option (iris in head coordinates, features/gaze.py); eye_yaw,
    #:    eye_pitch in the frames signal (with eye_in_head="texture": that signal's values).
    #: 6: eye_in_head defaults to "texture" (was "corners").
    #: 7: eye_texture settings; texture signal: seeds kept through blinks and handed over with a linked level
    #:    (one reference level per chain, not per seed), two-sided circle fit, the map's
    #:    linear part from the pose (linear="pose").
    version: ClassVar[int] = 7
    Params = HeadPoseParams
    signal_names: ClassVar[tuple[str, ...]] = ("frames",)
    key_features: ClassVar[tuple[tuple[str, str], ...]] = (
        ("corr_vel_v_r", "pupil–head correlation, vertical"),
        ("corr_vel_h_r", "pupil–head correlation, horizontal"),
    )

    def __init__(
        self,
        stride: int = 1,
        smooth_s: float = 0.15,
        max_gap_s: float = 0.25,
        min_rotation_deg: float = 0.1,
        min_translation_px: float = 0.2,
        eye_in_head: Literal["corners", "head", "texture"] = "texture",
        eye_texture: EyeTextureParams | dict[str, Any] | None = None,
        max_faces: int = 2,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.stride = stride
        self.smooth_s = smooth_s
        self.max_gap_s = max_gap_s
        self.min_rotation_deg = min_rotation_deg
        self.min_translation_px = min_translation_px
        if eye_in_head not in ("corners", "head", "texture"):
            raise ValueError(f"eye_in_head must be 'corners', 'head' or 'texture', not {eye_in_head!r}")
        self.eye_in_head = eye_in_head
        if not isinstance(eye_texture, EyeTextureParams):
            eye_texture = EyeTextureParams(**(eye_texture or {}))
        self.eye_texture = eye_texture.model_dump()
        self.max_faces = max_faces
        self.cache_dir = cache_dir

    def compute(self, track: Any) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        """Compute every ``headpose__`` feature (without prefix) and the ``frames`` signal of a face track."""
        from cdrscreen.features.gaze import eye_in_head
        from cdrscreen.tracking.gaps import pieces_to_columns, signal_pieces, split_signals
        from cdrscreen.tracking.resample import even_table

        fs = track.track_fps
        if self.eye_in_head == "texture":
            from cdrscreen.features.eye_texture import eye_in_texture

            eih = eye_in_texture(track.path, track.table, track.landmarks, stride=track.config.stride,
                                 params=EyeTextureParams(**self.eye_texture))
        else:
            eih = eye_in_head(track.table, track.landmarks, track.width, track.height)
        used = ["time", "frame", "success", "blink", "yaw", "pitch", "roll", "tx", "ty", "tz", "head_x", "head_y",
                "gaze_h", "gaze_v", "iris_r_x", "iris_r_y", "iris_l_x", "iris_l_y"]  # not the whole table
        # the track's own column arrays, not a copy of them (copy=False: no consolidated block)
        t = pd.DataFrame({**{c: track.table[c].to_numpy() for c in used},
                          "eye_yaw": eih["eye_yaw"].to_numpy(), "eye_pitch": eih["eye_pitch"].to_numpy()},
                         index=track.table.index, copy=False)
        del eih
        t = even_table(track, t)  # variable frame rate: resampled to even steps
        success = t["success"].to_numpy(bool)
        max_gap = int(np.floor(self.max_gap_s * fs))
        win = max(1, int(round(self.smooth_s * fs)) | 1)
        names = ("yaw", "pitch", "roll", "tx", "ty", "tz", "head_x", "head_y")
        pieces = split_signals({k: t[k].to_numpy(float) for k in names}, success, max_gap)
        for p in pieces:
            for k in ("yaw", "pitch", "roll"):
                p[k] = smooth(p[k], win)
        f: dict[str, Any] = {"tracked_fraction": float(success.mean()) if len(t) else 0.0}
        f["n_segments"] = float(len(pieces))
        f.update(visual_quality(float(success.mean()) if len(t) else 0.0, len(t), video_seconds(track)))
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
                key = {"head_x": "x", "head_y": "y"}.get(k, k)
                f[f"{key}_std"] = float(v.std()) if v.size else np.nan
        any_piece = bool(pieces)
        del pieces, v

        # face-eye co-movement on frames with both (no blinks); image axes: x right, y up
        both = success & ~t["blink"].to_numpy(bool)
        # each column computed when signal_pieces needs it: not all ten full-length at once
        sig = {"gaze_h": lambda: t["gaze_h"].to_numpy(float), "gaze_v": lambda: t["gaze_v"].to_numpy(float),
               "eye_yaw": lambda: t["eye_yaw"].to_numpy(float), "eye_pitch": lambda: t["eye_pitch"].to_numpy(float),
               "yaw": lambda: t["yaw"].to_numpy(float), "pitch": lambda: t["pitch"].to_numpy(float),
               "pupil_x": lambda: ((t["iris_r_x"] + t["iris_l_x"]) / 2).to_numpy(float),
               "pupil_y": lambda: -((t["iris_r_y"] + t["iris_l_y"]) / 2).to_numpy(float),
               "head_x": lambda: t["head_x"].to_numpy(float), "head_y": lambda: -t["head_y"].to_numpy(float)}
        bounded = signal_pieces(sig, both, max_gap, min_len=3)
        pp = [p for _, _, p in bounded]
        for p in pp:
            p["yaw"], p["pitch"] = smooth(p["yaw"], win), smooth(p["pitch"], win)
        eye_h, eye_v = ("gaze_h", "gaze_v") if self.eye_in_head == "corners" else ("eye_yaw", "eye_pitch")
        pairs = (("corr", "h", eye_h, "yaw", self.min_rotation_deg),
                 ("corr", "v", eye_v, "pitch", self.min_rotation_deg),
                 ("img_corr", "h", "pupil_x", "head_x", self.min_translation_px),
                 ("img_corr", "v", "pupil_y", "head_y", self.min_translation_px))
        for name, axis, eye, head, floor in pairs:
            for kind, c in co_movement(pp, eye, head, min_head_sd=floor).items():
                for stat, val in c.items():
                    f[f"{name}_{kind}_{axis}_{stat}"] = val
        f["valid"] = float(any_piece and all(
            f[f"corr_{k}_{a}_n"] >= 3 for k in ("pos", "vel") for a in ("h", "v")))
        laid = pieces_to_columns(bounded, len(t), ("gaze_h", "gaze_v", "eye_yaw", "eye_pitch", "yaw", "pitch",
                                                   "pupil_x", "pupil_y", "head_x", "head_y"), consume=True)
        del bounded, pp
        frames = pd.DataFrame({
            "frame": t["frame"].to_numpy(), "time": t["time"].to_numpy(float), "success": success,
            "yaw": t["yaw"].to_numpy(float), "pitch": t["pitch"].to_numpy(float),
            "roll": t["roll"].to_numpy(float), "piece": laid["piece"],
            "gaze_h": laid["gaze_h"], "gaze_v": laid["gaze_v"], "eye_yaw": laid["eye_yaw"],
            "eye_pitch": laid["eye_pitch"], "yaw_s": laid["yaw"], "pitch_s": laid["pitch"],
            **{k: laid[k] for k in ("pupil_x", "pupil_y", "head_x", "head_y")},
        }, copy=False)  # the arrays above, not a consolidated copy of them
        frames.attrs["fps"] = float(fs)
        frames.attrs["eye_in_head"] = self.eye_in_head  # which eye columns corr_* correlated
        frames.attrs["eye_columns"] = [eye_h, eye_v]
        return f, {"frames": frames}
