"""Pupil-trajectory features: STFT of frame-to-frame motion, saccades, fixation, quality.

The pupil (iris centre) trajectory is taken from the shared face track in two
coordinate systems (both with ``h`` toward image right and ``v`` upward):

* ``eye``: relative to the eye corners, in eye widths (``gaze_h``, ``gaze_v`` of the track),
  so head translation and in-plane rotation do not masquerade as eye motion;
* ``img``: the mean of both iris centres in the image, in units of the video's median
  inter-ocular distance.

Frames where the face was lost or the eyes were closed (blink) are gaps. Gaps of up to
``max_gap_s`` seconds are linearly interpolated; longer gaps split the signal into
segments. For each segment, ``dx, dy`` (frame-to-frame differences) go through
``scipy.signal.stft`` over ``nperseg``-sample windows (``noverlap`` overlap, only full
windows); the magnitude spectra of all windows of all segments are averaged
("superposed") into one ``nperseg // 2 + 1``-bin spectrum per axis. Bin ``k`` is at
``k * fps / (stride * nperseg)`` Hz. Column reference: ``docs/features-visual.md``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.features.base import TrackedExtractor
from cdrscreen.tracking.face import FaceTrack
from cdrscreen.tracking.gaps import split_signals
from cdrscreen.tracking.resample import even_table


def superposed_spectrum(
    pieces: list[np.ndarray], fs: float, *, nperseg: int = 10, noverlap: int = 5,
    window: str = "hann",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean STFT magnitude over all full windows of several signal pieces.

    Parameters
    ----------
    pieces : list of 1-D arrays
        Gap-free signal pieces (e.g. frame-to-frame ``dx``).
    fs : float
        Sample rate (Hz).
    nperseg, noverlap, window
        Passed to :func:`scipy.signal.stft` (``boundary=None, padded=False``).

    Returns
    -------
    freqs : ndarray, shape (nperseg // 2 + 1,)
    spectrum : ndarray
        Mean magnitude per bin (NaN when no piece holds a full window).
    n_windows : int
    """
    from scipy.signal import stft

    nbins = nperseg // 2 + 1
    freqs = np.arange(nbins) * fs / nperseg
    total = np.zeros(nbins)
    n = 0
    for x in pieces:
        if len(x) < nperseg:
            continue
        _, _, z = stft(x, fs=fs, window=window, nperseg=nperseg, noverlap=noverlap,
                       boundary=None, padded=False, detrend=False)
        total += np.abs(z).sum(axis=1)
        n += z.shape[1]
    return freqs, (total / n if n else np.full(nbins, np.nan)), n


class PupilParams(StrictModel):
    """Settings of the ``pupil`` group (spec section ``groups.pupil``)."""

    nperseg: int = Field(10, ge=2, description="STFT window length in track samples.")
    noverlap: int = Field(5, ge=0, description="Overlap between STFT windows.")
    window: str = Field("hann", description="STFT window (scipy.signal.get_window name).")
    max_gap_s: float = Field(0.25, ge=0, description="Longest gap bridged by interpolation, seconds.")
    saccade_velocity: float = Field(0.75, gt=0, description="Eye-relative speed above which a step is saccade-like.")


class PupilExtractor(TrackedExtractor):
    """Pupil trajectory features of a video (columns ``pupil__*``).

    Signals: ``frames``, the (evenly resampled) per-frame table the features are computed
    from: ``success``, ``blink``, ``usable``, the eye-relative (``eye_h``, ``eye_v``) and
    image (``img_h``, ``img_v``) pupil positions; ``attrs["fps"]`` is its rate. The spectra
    are feature columns (``stft_eye_dh_b<k>``, bin ``k`` at ``k * stft_bin_hz`` Hz).

    Parameters
    ----------
    stride : int, default 1
        Track every ``stride``-th frame (shared with ``headpose``).
    nperseg : int, default 10
        STFT window length in track samples.
    noverlap : int, default 5
        Overlap between STFT windows.
    window : str, default "hann"
        STFT window.
    max_gap_s : float, default 0.25
        Longest gap (lost face, blink) bridged by linear interpolation, seconds.
    saccade_velocity : float, default 0.75
        Eye-relative speed (eye widths per second) above which a step is saccade-like.
    max_faces : int, default 2
        Faces tracked at once (see :func:`cdrscreen.tracking.face.track_video`).
    cache_dir : path, optional
        Where the shared face track is cached.
    """

    name: ClassVar[str] = "pupil"
    prefix: ClassVar[str] = "pupil"
    #: 2: variable-frame-rate tracks resampled onto even time steps.
    version: ClassVar[int] = 2
    Params = PupilParams
    signal_names: ClassVar[tuple[str, ...]] = ("frames",)
    key_features: ClassVar[tuple[tuple[str, str], ...]] = (
        ("saccade_rate_per_min", "saccade-like events per minute"),
        ("fixation_jitter", "fixation jitter (eye widths)"),
    )

    def __init__(
        self,
        stride: int = 1,
        nperseg: int = 10,
        noverlap: int = 5,
        window: str = "hann",
        max_gap_s: float = 0.25,
        saccade_velocity: float = 0.75,
        max_faces: int = 2,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.stride = stride
        self.nperseg = nperseg
        self.noverlap = noverlap
        self.window = window
        self.max_gap_s = max_gap_s
        self.saccade_velocity = saccade_velocity
        self.max_faces = max_faces
        self.cache_dir = cache_dir

    def compute(self, track: FaceTrack) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        """Compute every ``pupil__`` feature (without prefix) and the ``frames`` signal of a face track."""
        t = even_table(track)  # variable frame rate: resampled to even steps
        fs = track.track_fps
        n_rows = len(t)
        success = t["success"].to_numpy(bool)
        usable = success & ~t["blink"].to_numpy(bool)
        iod = np.hypot(t["iris_l_x"] - t["iris_r_x"], t["iris_l_y"] - t["iris_r_y"]).to_numpy()
        scale = float(np.nanmedian(iod[usable])) if usable.any() else np.nan
        cols = {
            "eye_h": t["gaze_h"].to_numpy(float),
            "eye_v": t["gaze_v"].to_numpy(float),
            "img_h": ((t["iris_r_x"] + t["iris_l_x"]) / 2).to_numpy(float) / scale,
            "img_v": -((t["iris_r_y"] + t["iris_l_y"]) / 2).to_numpy(float) / scale,
        }
        max_gap = int(np.floor(self.max_gap_s * fs))
        pieces = split_signals(cols, usable, max_gap, min_len=2)
        seconds = sum(len(p["eye_h"]) for p in pieces) / fs if fs else 0.0

        f: dict[str, Any] = {}
        f["tracked_fraction"] = float(success.mean()) if n_rows else 0.0
        f["usable_fraction"] = float(usable.mean()) if n_rows else 0.0
        f["n_segments"] = float(len(pieces))
        f["segment_seconds"] = seconds
        blinks = t["blink"].to_numpy(bool)
        onsets = int(np.sum(blinks[1:] & ~blinks[:-1]) + (blinks[0] if n_rows else 0))
        tracked_min = success.sum() / fs / 60 if fs else 0.0
        f["blink_rate_per_min"] = onsets / tracked_min if tracked_min else np.nan

        # positions and steps
        for sys_ in ("eye", "img"):
            for ax in ("h", "v"):
                v = np.concatenate([p[f"{sys_}_{ax}"] for p in pieces]) if pieces else np.array([])
                d = [np.diff(p[f"{sys_}_{ax}"]) for p in pieces]
                f[f"{sys_}_{ax}_mean"] = float(v.mean()) if v.size else np.nan
                f[f"{sys_}_{ax}_std"] = float(v.std()) if v.size else np.nan
                dd = np.concatenate(d) if d else np.array([])
                f[f"{sys_}_d{ax}_std"] = float(dd.std()) if dd.size else np.nan

        # saccade-like events and fixation stability (eye-relative)
        speeds, n_events = [], 0
        for p in pieces:
            sp = np.hypot(np.diff(p["eye_h"]), np.diff(p["eye_v"])) * fs
            fast = sp > self.saccade_velocity
            n_events += int(np.sum(fast[1:] & ~fast[:-1]) + (fast[0] if fast.size else 0))
            speeds.append(sp)
        sp = np.concatenate(speeds) if speeds else np.array([])
        f["eye_speed_mean"] = float(sp.mean()) if sp.size else np.nan
        f["saccade_rate_per_min"] = n_events / (seconds / 60) if seconds else np.nan
        slow = sp[sp <= self.saccade_velocity]
        f["fixation_fraction"] = float(slow.size / sp.size) if sp.size else np.nan
        f["fixation_jitter"] = float(np.sqrt(np.mean((slow / fs) ** 2))) if slow.size else np.nan

        # superposed STFT spectra of dx, dy
        n_windows = 0
        for sys_ in ("eye", "img"):
            for ax in ("h", "v"):
                d = [np.diff(p[f"{sys_}_{ax}"]) for p in pieces]
                _, spec, n_windows = superposed_spectrum(
                    d, fs, nperseg=self.nperseg, noverlap=self.noverlap, window=self.window
                )
                for k, m in enumerate(spec):
                    f[f"stft_{sys_}_d{ax}_b{k}"] = float(m)
        f["stft_windows"] = float(n_windows)
        f["stft_bin_hz"] = fs / self.nperseg if fs else np.nan
        f["valid"] = float(n_windows > 0 and np.isfinite(sp).any() and sp.size > 0)
        frames = pd.DataFrame({
            "frame": t["frame"].to_numpy(), "time": t["time"].to_numpy(float), "success": success,
            "blink": t["blink"].to_numpy(bool), "usable": usable,
            "eye_h": cols["eye_h"], "eye_v": cols["eye_v"], "img_h": cols["img_h"], "img_v": cols["img_v"],
        })
        frames.attrs["fps"] = float(fs)
        return f, {"frames": frames}
