"""Head-pose features (``headpose__*``): a smoothed pose trajectory and pupil–head correlations.

Per-frame pose is computed once per video inside :func:`cdrscreen.tracking.face.track_video`
(columns ``yaw``, ``pitch``, ``roll``, ``tx``, ``ty``, ``tz``, ``pose_err``; geometry and sign
conventions in :mod:`cdrscreen.tracking.pose`); this module summarises it in
:class:`HeadPoseExtractor`.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.features.base import TrackedExtractor


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


class HeadPoseParams(StrictModel):
    """Settings of the ``headpose`` group (spec section ``groups.headpose``)."""

    smooth_s: float = Field(0.15, ge=0, description="Width of the moving average on the pose angles, seconds.")
    max_gap_s: float = Field(0.25, ge=0, description="Longest gap bridged by interpolation, seconds.")


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
    Signals: ``frames``, the (evenly resampled) per-frame pose ``yaw``, ``pitch``, ``roll``
    with ``success``, and the exact series the correlations use: ``piece`` (number of the
    gap-free piece, -1 outside) and ``gaze_h``, ``gaze_v``, ``yaw_s``, ``pitch_s`` (gaps
    interpolated, head angles smoothed; NaN outside a piece). ``corr_vel_*`` correlate their
    differences within each piece. ``attrs["fps"]`` is the rate.

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
        max_faces: int = 2,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.stride = stride
        self.smooth_s = smooth_s
        self.max_gap_s = max_gap_s
        self.max_faces = max_faces
        self.cache_dir = cache_dir

    def compute(self, track: Any) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        """Compute every ``headpose__`` feature (without prefix) and the ``frames`` signal of a face track."""
        from cdrscreen.tracking.gaps import pieces_to_columns, signal_pieces, split_signals
        from cdrscreen.tracking.resample import even_table

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
        bounded = signal_pieces(sig, both, max_gap, min_len=3)
        pp = [p for _, _, p in bounded]
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
        laid = pieces_to_columns(bounded, len(t), ("gaze_h", "gaze_v", "yaw", "pitch"))
        frames = pd.DataFrame({
            "frame": t["frame"].to_numpy(), "time": t["time"].to_numpy(float), "success": success,
            "yaw": t["yaw"].to_numpy(float), "pitch": t["pitch"].to_numpy(float),
            "roll": t["roll"].to_numpy(float), "piece": laid["piece"],
            "gaze_h": laid["gaze_h"], "gaze_v": laid["gaze_v"], "yaw_s": laid["yaw"], "pitch_s": laid["pitch"],
        })
        frames.attrs["fps"] = float(fs)
        return f, {"frames": frames}
