"""Model-free facial expressivity: how much each face region moves, from the face mesh alone.

No expression model is needed (compare OpenWillis' and OpenDBM's landmark-based facial
expressivity). Per tracked frame of the shared MediaPipe face track
(:mod:`cdrscreen.tracking.face`):

1. **Rigid motion out.** The 468 mesh landmarks (x, y and MediaPipe's relative depth z) are
   aligned to the video's reference shape by a 3-D similarity (rotation, scale,
   translation; Umeyama) fitted on :data:`ANCHORS`, points of the forehead, temples and nose
   bridge that expressions barely move. Head turns, nods, shifts and distance changes are
   thereby removed; what remains is non-rigid motion.
2. **Reference.** The per-landmark median of the aligned shapes over the video (or over
   the first ``baseline_s`` seconds, a neutral stretch as in OpenWillis, when given).
3. **Region displacement.** For the brows and cheeks (:data:`REGIONS`), the mean image-plane
   distance of their landmarks from their reference positions. For the mouth, the jaw and the
   eyelids, the mean absolute change of distances *within* the region
   (:data:`DISTANCE_REGIONS`: mouth width, openings and corner-to-lip distances; chin and jaw to
   the nose, with depth; the three lid apertures per eye, i.e. blinks, widening, squinting):
   such distances barely change when the head turns, while positions keep a non-rigid residue
   of large head rotations after the alignment. Divided by the reference inter-ocular distance
   (between the eye centres), per frame.
4. **Eye-in-head motion out.** MediaPipe's mesh moves with the iris: with the head still and
   only the eyes moving, the landmarks around the eyes follow the iris (measured by
   ``benchmarks/bench_expressivity_iris.py``: on rendered real faces, iris-only motion moves
   lid *positions* about five times the tracking noise, brows about twice, the mouth, jaw
   and cheeks little). Lid apertures halve that; in addition the eye regions' values
   (:data:`EYE_REGIONS`) are regressed on the iris position in the face (mean of both iris
   centres after the rigid alignment, in inter-ocular distances; x, y and a constant) over
   the video's tracked frames, and only the residual counts (``remove_gaze=True``, default).
   The lower-face regions are not regressed: the iris estimate itself moves when the jaw
   drops (the coupling runs both ways), and regressing them on it removed half of a planted
   mouth movement. Consequence: brow or lid motion that always goes with the gaze is
   removed too.

Columns (prefix ``expressivity__``; ``<r>`` is a region name, displacements in inter-ocular
distances (IOD), speeds in IOD per second):

``n_frames``, ``valid_fraction``
    Tracked rows and the fraction with a face.
``<r>_mean``, ``<r>_sd``, ``<r>_p50``, ``<r>_p90``
    Mean, standard deviation, median and 90th percentile of the region's displacement.
``<r>_speed``
    Mean absolute frame-to-frame change of the displacement, per second.
``<r>_active``
    Fraction of frames whose displacement exceeds ``active_iod`` (default 0.02 IOD).
``overall_mean``, ``overall_active``
    The same two over all regions (mean of the region displacements per frame).

Signal ``regions`` (per tracked frame): ``success`` and ``<r>_iod``, the displacement of
each region (NaN without a face).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.features.base import TrackedExtractor
from cdrscreen.tracking.face import EYE_L_CORNERS, EYE_R_CORNERS, IRIS_L, IRIS_R, FaceTrack

#: Rigid anchors: forehead (10, 151, 9, 8, 108, 337, 67, 297, 109, 338), temples / upper face
#: oval (127, 356, 162, 389, 21, 251), nose bridge and tip (168, 6, 197, 195, 5, 4, 1).
ANCHORS: tuple[int, ...] = (10, 151, 9, 8, 108, 337, 67, 297, 109, 338, 127, 356, 162, 389, 21, 251,
                            168, 6, 197, 195, 5, 4, 1)
#: Eyelid pairs (upper, lower) whose distance is the eye aperture, three per eye.
LID_PAIRS: tuple[tuple[int, int], ...] = ((159, 145), (158, 153), (160, 144), (386, 374), (385, 380), (387, 373))
#: Mouth shape: width, inner and outer opening, lip heights, corner-to-lip-midpoint distances.
MOUTH_PAIRS: tuple[tuple[int, int], ...] = ((61, 291), (13, 14), (0, 17), (37, 84), (267, 314), (81, 178),
                                           (311, 402), (61, 0), (291, 0), (61, 17), (291, 17))
#: Jaw: chin and lower jaw to the nose tip and bridge.
JAW_PAIRS: tuple[tuple[int, int], ...] = ((152, 1), (152, 6), (148, 1), (377, 1), (176, 6), (400, 6))
#: Regions measured by distances between their landmarks (pairs, and 2 = image plane or 3 = with
#: depth), not by positions: such distances do not change when the head turns, so they resist the
#: non-rigid residue that large head rotations leave after the alignment.
DISTANCE_REGIONS: dict[str, tuple[tuple[tuple[int, int], ...], int]] = {
    "mouth": (MOUTH_PAIRS, 2), "jaw": (JAW_PAIRS, 3), "eyelids": (LID_PAIRS, 2)}
#: Regions near the eyes, whose landmarks follow the iris most (gaze regression applies to these).
EYE_REGIONS = ("brows", "eyelids")

#: Face regions (MediaPipe face-mesh indices).
REGIONS: dict[str, tuple[int, ...]] = {
    # lip contours (measured as MOUTH_PAIRS distances)
    "mouth": tuple(dict.fromkeys(i for pair in MOUTH_PAIRS for i in pair)),
    # both eyebrows (upper and lower edges)
    "brows": (70, 63, 105, 66, 107, 46, 53, 52, 65, 55, 300, 293, 334, 296, 336, 276, 283, 282, 295, 285),
    # upper and lower eyelid edges of both eyes (measured as apertures, see LID_PAIRS)
    "eyelids": tuple(i for pair in LID_PAIRS for i in pair),
    # chin and lower jaw (measured as JAW_PAIRS distances)
    "jaw": tuple(dict.fromkeys(i for pair in JAW_PAIRS for i in pair)),
    # cheeks (zygomatic area and nasolabial region)
    "cheeks": (50, 280, 101, 330, 205, 425, 187, 411, 117, 346, 123, 352, 147, 376),
}


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity ``dst ~ s * R @ src + t`` (any dimension) by least squares: ``(s, R, t)``."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    cov = b.T @ a / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(len(sig))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var = (a**2).sum() / len(src)
    s = float((sig * d).sum() / var) if var > 0 else 1.0
    return s, rot, md - s * rot @ ms


def align_shapes(landmarks: np.ndarray, valid: np.ndarray, reference: np.ndarray | None = None,
                 anchors: tuple[int, ...] = ANCHORS) -> tuple[np.ndarray, np.ndarray]:
    """Remove rigid motion: every valid frame's 468 landmarks aligned (3-D similarity on ``anchors``).

    Parameters
    ----------
    landmarks : ndarray (N, >=468, 3)
    valid : bool ndarray (N,)
    reference : ndarray (468, 3), optional
        Shape to align to (default: median of the valid frames, refined once).

    Returns
    -------
    aligned : ndarray (N, 478, 3)
        NaN on invalid frames; iris landmarks (468-477) follow the same transform when present.
    reference : ndarray (468, 3)
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    out = np.full(lm.shape, np.nan)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out, np.full((468, 3), np.nan)
    ref = np.median(lm[idx, :468], axis=0) if reference is None else np.asarray(reference, float)
    anc = list(anchors)
    for _ in range(2 if reference is None else 1):
        for i in idx:
            s, r, t = umeyama(lm[i, anc], ref[anc])
            out[i] = s * lm[i] @ r.T + t
        if reference is None:
            ref = np.median(out[idx, :468], axis=0)
    return out, ref


def iris_in_face(aligned: np.ndarray) -> np.ndarray:
    """``(N, 2)`` mean position of both iris centres in the rigidly aligned face (px).

    The anchors of the alignment exclude the eyes, so this is the eyes' motion in the head
    (plus tracking noise), whatever the eye corners do.
    """
    return (aligned[:, IRIS_R, :2] + aligned[:, IRIS_L, :2]) / 2


def inter_ocular(shape: np.ndarray) -> float:
    """Distance between the two eye centres (corner midpoints) of one shape."""
    a = shape[list(EYE_R_CORNERS), :2].mean(0)
    b = shape[list(EYE_L_CORNERS), :2].mean(0)
    return float(np.linalg.norm(a - b))


def region_displacements(aligned: np.ndarray, valid: np.ndarray, reference: np.ndarray,
                         regions: dict[str, tuple[int, ...]] = REGIONS, remove_gaze: bool = True,
                         baseline: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-frame displacement of each region from its reference, in inter-ocular distances.

    Parameters
    ----------
    aligned, reference
        From :func:`align_shapes` (``aligned`` must include the iris landmarks for ``remove_gaze``).
    valid : bool ndarray (N,)
    remove_gaze : bool
        Regress each region coordinate on the iris-in-face position (x, y, 1) over the valid
        frames and keep the residual (see module docstring).
    baseline : bool ndarray (N,), optional
        Frames whose median shape is the neutral reference (default: all valid frames).

    Returns
    -------
    dict
        Region name -> ``(N,)`` displacement (NaN on invalid frames).
    """
    n = aligned.shape[0]
    idx = np.flatnonzero(valid)
    iod = inter_ocular(reference)
    out = {name: np.full(n, np.nan) for name in regions}
    if idx.size == 0 or not np.isfinite(iod) or iod <= 0:
        return out
    design = None
    if remove_gaze and aligned.shape[1] > IRIS_L:
        g = iris_in_face(aligned[idx]) / iod
        design = np.c_[g - g.mean(0), np.ones(len(idx))]
    base = idx if baseline is None else np.flatnonzero(np.asarray(baseline, bool) & valid)
    if base.size == 0:
        base = idx
    ref_rows = np.searchsorted(idx, base)
    a = aligned[idx]
    for name, pts in regions.items():
        if name in DISTANCE_REGIONS:  # distances within the region (lid apertures, mouth shape, jaw drop)
            pairs, dims = DISTANCE_REGIONS[name]
            val = np.stack([np.linalg.norm(a[:, u, :dims] - a[:, v, :dims], axis=1) for u, v in pairs], axis=1)
        else:
            val = aligned[idx][:, list(pts), :2].reshape(len(idx), -1)  # (n_valid, 2 * n_pts)
        if design is not None and name in EYE_REGIONS and len(idx) > 3:
            coef, *_ = np.linalg.lstsq(design, val, rcond=None)
            val = val - design[:, :2] @ coef[:2]  # remove the gaze-coupled part, keep the level
        dev = val - np.median(val[ref_rows], axis=0)
        if name in DISTANCE_REGIONS:
            out[name][idx] = np.abs(dev).mean(1) / iod
        else:
            out[name][idx] = np.linalg.norm(dev.reshape(len(idx), len(pts), 2), axis=2).mean(1) / iod
    return out


def summarise(disp: dict[str, np.ndarray], valid: np.ndarray, rate: float, active_iod: float) -> dict[str, float]:
    """Pooled columns (without prefix) from :func:`region_displacements`; ``rate`` = rows per second."""
    n = len(valid)
    nan = float("nan")
    out: dict[str, float] = {"n_frames": float(n), "valid_fraction": float(np.mean(valid)) if n else 0.0}
    stack = []
    for name, d in disp.items():
        v = d[np.isfinite(d)]
        stack.append(d)
        if v.size == 0:
            out.update({f"{name}_{k}": nan for k in ("mean", "sd", "p50", "p90", "speed", "active")})
            continue
        step = np.abs(np.diff(d))  # consecutive tracked rows only (NaN across gaps)
        step = step[np.isfinite(step)]
        out[f"{name}_mean"] = float(v.mean())
        out[f"{name}_sd"] = float(v.std())
        out[f"{name}_p50"] = float(np.percentile(v, 50))
        out[f"{name}_p90"] = float(np.percentile(v, 90))
        out[f"{name}_speed"] = float(step.mean() * rate) if step.size else nan
        out[f"{name}_active"] = float((v > active_iod).mean())
    m = np.vstack(stack) if stack else np.empty((0, 0))
    seen = np.isfinite(m).any(axis=0) if m.size else np.zeros(0, bool)
    if not seen.any():
        out["overall_mean"] = out["overall_active"] = nan
    else:
        # frame-wise mean over the regions measured in that frame (frames with none are skipped,
        # so numpy never averages an empty slice)
        a = np.nanmean(m[:, seen], axis=0)
        out["overall_mean"] = float(a.mean())
        out["overall_active"] = float((a > active_iod).mean())
    return out


def expressivity_signals(track: FaceTrack, remove_gaze: bool = True,
                         baseline_s: float | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-frame region displacements of a track (and its ``valid`` mask)."""
    import warnings

    valid = track.table["success"].to_numpy(bool) & np.isfinite(track.landmarks[:, :468]).all((1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        aligned, ref = align_shapes(track.landmarks, valid)
        base = None
        if baseline_s is not None:
            t = track.table["time"].to_numpy(float)
            base = t < (t[0] + baseline_s) if t.size else None
        return region_displacements(aligned, valid, ref, remove_gaze=remove_gaze, baseline=base), valid


class ExpressivityParams(StrictModel):
    """Settings of the ``expressivity`` group (spec section ``groups.expressivity``)."""

    active_iod: float = Field(0.02, gt=0, description="Displacement (inter-ocular distances) above which a "
                              "region counts as active.")
    remove_gaze: bool = Field(True, description="Regress the eye regions on the iris position in the face.")
    baseline_s: float | None = Field(None, gt=0, description="Neutral reference = the first baseline_s seconds "
                                     "(default: the whole video's median shape).")


class ExpressivityExtractor(TrackedExtractor):
    """Model-free facial expressivity of a video (columns ``expressivity__*``).

    Parameters
    ----------
    active_iod : float, default 0.02
        A region is active in a frame when it is displaced by more than this many inter-ocular
        distances from its reference.
    remove_gaze : bool, default True
        Remove the part of the landmark motion that follows the iris (see module docstring).
    baseline_s : float, optional
        Use the first ``baseline_s`` seconds as the neutral reference (default: the whole video's median).
    stride : int, default 1
    max_faces : int, default 2
    cache_dir : path, optional
    """

    name: ClassVar[str] = "expressivity"
    prefix: ClassVar[str] = "expressivity"
    version: ClassVar[int] = 1
    Params = ExpressivityParams
    signal_names: ClassVar[tuple[str, ...]] = ("regions",)
    key_features: ClassVar[tuple[tuple[str, str], ...]] = (
        ("mouth_active", "mouth active (fraction of frames)"), ("overall_mean", "facial movement (IOD)"))

    def __init__(self, active_iod: float = 0.02, remove_gaze: bool = True, baseline_s: float | None = None,
                 stride: int = 1, max_faces: int = 2, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.active_iod = active_iod
        self.remove_gaze = remove_gaze
        self.baseline_s = baseline_s
        self.stride = stride
        self.max_faces = max_faces
        self.cache_dir = cache_dir

    def compute(self, track: FaceTrack) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        """Pooled expressivity of one track, and the per-frame region displacements (signal ``regions``)."""
        disp, valid = expressivity_signals(track, self.remove_gaze, self.baseline_s)
        frames = pd.DataFrame({"frame": track.table["frame"].to_numpy(), "time": track.table["time"].to_numpy(),
                               "success": valid, **{f"{k}_iod": v for k, v in disp.items()}})
        return summarise(disp, valid, track.track_fps, self.active_iod), {"regions": frames}
