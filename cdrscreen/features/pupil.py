"""Pupil-trajectory features: STFT of frame-to-frame motion, band powers in Hz, saccades, quality.

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
``k * fps / (stride * nperseg)`` Hz (the prototype's spectrum, kept as it is).

Because those bins move with the frame rate and cannot resolve slow motion, the positions
``eye_h``, ``eye_v`` (and ``img_h``, ``img_v``) also get band powers in fixed bands in Hz
from a Welch spectrum of ``band_window_s``-second windows
(:func:`cdrscreen.features.eye_events.band_powers`). Saccades are detected on the
eye-in-head trace in degrees (:func:`cdrscreen.features.eye_events.detect_saccades`,
Engbert & Kliegl's median-based threshold; iris radius measured in the video, spherical
eye model). Column reference: ``docs/features-visual.md``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.features.base import TrackedExtractor
from cdrscreen.features.eye_events import (
    DEFAULT_BANDS,
    band_name,
    band_powers,
    detect_saccades,
    radii_to_degrees,
)
from cdrscreen.features.recording_warnings import video_seconds, visual_quality
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
    bands: list[tuple[float, float]] = Field(
        DEFAULT_BANDS, description="Band-power bands [lo, hi) in Hz.")
    band_window_s: float = Field(2.0, gt=0, description="Welch window of the band powers, seconds.")
    saccade_lambda: float = Field(6.0, gt=0, description="Saccade threshold, multiples of the median-based velocity noise.")
    saccade_min_velocity: float = Field(30.0, ge=0, description="Lowest saccade threshold, degrees per second.")
    saccade_min_duration_s: float = Field(0.01, ge=0, description="Shortest saccade, seconds (at least one sample).")
    saccade_max_duration_s: float = Field(0.15, gt=0, description="Longest saccade (longer runs are pursuit), seconds.")
    saccade_min_amplitude: float = Field(1.0, ge=0, description="Smallest saccade counted, degrees.")


class PupilExtractor(TrackedExtractor):
    """Pupil trajectory features of a video (columns ``pupil__*``).

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
    bands : sequence of (lo, hi), default ((0.1, 0.5), (0.5, 1), (1, 2), (2, 4), (4, 8))
        Frequency bands (Hz) of the band-power spectrum.
    band_window_s : float, default 2.0
        Welch window of the band powers, seconds (resolution ``1 / band_window_s`` Hz).
    saccade_lambda : float, default 6.0
        Saccade threshold in multiples of the median-based velocity noise.
    saccade_min_velocity : float, default 30.0
        Lowest saccade threshold, degrees per second.
    saccade_min_duration_s, saccade_max_duration_s : float, default 0.01, 0.15
        Shortest and longest above-threshold run counted as a saccade (longer runs are
        smooth pursuit).
    saccade_min_amplitude : float, default 1.0
        Smallest saccade counted, degrees.
    max_faces : int, default 2
        Faces tracked at once (see :func:`cdrscreen.tracking.face.track_video`).
    cache_dir : path, optional
        Where the shared face track is cached.

    Notes
    -----
    Signals: ``frames``, the (evenly resampled) per-frame table the features are computed
    from: ``success``, ``blink``, ``usable``, the eye-relative (``eye_h``, ``eye_v``) and
    image (``img_h``, ``img_v``) pupil positions; ``attrs["fps"]`` is its rate. The spectra
    are feature columns (``stft_eye_dh_b<k>``, bin ``k`` at ``k * stft_bin_hz`` Hz; band
    powers ``band_<sys>_<axis>_<lo>_<hi>hz``). Per-saccade events: :meth:`saccade_table`.
    """

    name: ClassVar[str] = "pupil"
    prefix: ClassVar[str] = "pupil"
    #: 2: variable-frame-rate tracks resampled onto even time steps.
    #: 3: saccades by a median-based velocity threshold in degrees; band powers in Hz.
    #: 4: eye widths and iris radii from the track's columns (float32 track table).
    version: ClassVar[int] = 4
    Params = PupilParams
    signal_names: ClassVar[tuple[str, ...]] = ("frames",)
    key_features: ClassVar[tuple[tuple[str, str], ...]] = (
        ("saccade_rate_per_min", "saccades per minute"),
        ("fixation_jitter_deg", "fixation jitter (degrees)"),
    )

    def __init__(
        self,
        stride: int = 1,
        nperseg: int = 10,
        noverlap: int = 5,
        window: str = "hann",
        max_gap_s: float = 0.25,
        bands: tuple[tuple[float, float], ...] | list[list[float]] = DEFAULT_BANDS,
        band_window_s: float = 2.0,
        saccade_lambda: float = 6.0,
        saccade_min_velocity: float = 30.0,
        saccade_min_duration_s: float = 0.01,
        saccade_max_duration_s: float = 0.15,
        saccade_min_amplitude: float = 1.0,
        max_faces: int = 2,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.stride = stride
        self.nperseg = nperseg
        self.noverlap = noverlap
        self.window = window
        self.max_gap_s = max_gap_s
        self.bands = [[float(lo), float(hi)] for lo, hi in bands]
        self.band_window_s = band_window_s
        self.saccade_lambda = saccade_lambda
        self.saccade_min_velocity = saccade_min_velocity
        self.saccade_min_duration_s = saccade_min_duration_s
        self.saccade_max_duration_s = saccade_max_duration_s
        self.saccade_min_amplitude = saccade_min_amplitude
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
            "time": t["time"].to_numpy(float),
        }
        max_gap = int(np.floor(self.max_gap_s * fs))
        pieces = split_signals(cols, usable, max_gap, min_len=2)
        seconds = sum(len(p["eye_h"]) for p in pieces) / fs if fs else 0.0

        f: dict[str, Any] = {}
        f["tracked_fraction"] = float(success.mean()) if n_rows else 0.0
        f["usable_fraction"] = float(usable.mean()) if n_rows else 0.0
        f["n_segments"] = float(len(pieces))
        f.update(visual_quality(float(success.mean()) if len(t) else 0.0, len(t), video_seconds(track)))
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

        # saccades (Engbert & Kliegl) on the eye-in-head trace in degrees
        k = eye_widths_per_iris_radius(track)
        deg, sacc, (eta_h, eta_v) = self._saccades(pieces, fs, k)
        f["iris_radius_eye_widths"] = 1 / k if np.isfinite(k) else np.nan
        f["saccade_threshold_h_deg_s"], f["saccade_threshold_v_deg_s"] = eta_h, eta_v
        f["saccade_rate_per_min"] = len(sacc) / (seconds / 60) if seconds else np.nan
        f["saccade_amplitude_deg"] = float(np.mean([s_.amplitude for s_ in sacc])) if sacc else np.nan
        f["saccade_peak_velocity_deg_s"] = (float(np.mean([s_.peak_velocity for s_ in sacc]))
                                            if sacc else np.nan)
        speeds, slow_steps, n_slow = [], [], 0
        for x, y in deg:
            sp = np.hypot(np.diff(x), np.diff(y)) * fs
            speeds.append(sp)
        in_sacc = [np.zeros(len(x), bool) for x, _ in deg]
        for s_ in sacc:
            in_sacc[s_.piece][max(s_.start - 1, 0):s_.stop + 1] = True
        for (x, y), m in zip(deg, in_sacc, strict=True):
            still = ~(m[1:] | m[:-1])
            slow_steps.append(np.hypot(np.diff(x), np.diff(y))[still])
            n_slow += int(still.sum())
        sp = np.concatenate(speeds) if speeds else np.array([])
        slow = np.concatenate(slow_steps) if slow_steps else np.array([])
        f["eye_speed_mean_deg_s"] = float(sp.mean()) if sp.size else np.nan
        f["fixation_fraction"] = float(n_slow / sp.size) if sp.size else np.nan
        f["fixation_jitter_deg"] = float(np.sqrt(np.mean(slow**2))) if slow.size else np.nan
        speed_ok = bool(np.isfinite(sp).any() and sp.size > 0)
        del deg, speeds, slow_steps, sp, slow, in_sacc  # an hour's per-frame arrays: not kept to the end

        # band powers in Hz (Welch) of the positions
        n_band_windows = 0
        for sys_ in ("eye", "img"):
            for ax in ("h", "v"):
                pw, peak, n_band_windows = band_powers(
                    [p[f"{sys_}_{ax}"] for p in pieces], fs,
                    tuple(tuple(b) for b in self.bands), window_s=self.band_window_s)
                for (lo, hi), val in zip(self.bands, pw, strict=True):
                    f[f"band_{sys_}_{ax}_{band_name(lo, hi)}"] = float(val)
                f[f"band_{sys_}_{ax}_peak_hz"] = peak
        f["band_windows"] = float(n_band_windows)

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
        f["valid"] = float(n_windows > 0 and speed_ok)
        frames = pd.DataFrame({
            "frame": t["frame"].to_numpy(), "time": t["time"].to_numpy(float), "success": success,
            "blink": t["blink"].to_numpy(bool), "usable": usable,
            "eye_h": cols["eye_h"], "eye_v": cols["eye_v"], "img_h": cols["img_h"], "img_v": cols["img_v"],
        }, copy=False)  # the arrays above, not a consolidated copy of them
        frames.attrs["fps"] = float(fs)
        return f, {"frames": frames}

    def _saccades(self, pieces: list[dict[str, np.ndarray]], fs: float, k: float) -> tuple:
        deg = [(radii_to_degrees(p["eye_h"] * k), radii_to_degrees(p["eye_v"] * k)) for p in pieces]
        sacc, eta = detect_saccades(
            deg, fs, lam=self.saccade_lambda, min_velocity=self.saccade_min_velocity,
            min_duration_s=self.saccade_min_duration_s, max_duration_s=self.saccade_max_duration_s,
            min_amplitude=self.saccade_min_amplitude,
        )
        return deg, sacc, eta

    def saccade_table(self, track: FaceTrack) -> pd.DataFrame:
        """One row per detected saccade of a face track (the events behind ``saccade_*``).

        Columns: ``onset`` (s, time of the run's first sample), ``offset`` (s, its last
        sample), ``amplitude_deg``, ``peak_velocity_deg_s``.
        """
        t = even_table(track)
        fs = track.track_fps
        usable = t["success"].to_numpy(bool) & ~t["blink"].to_numpy(bool)
        cols = {"eye_h": t["gaze_h"].to_numpy(float), "eye_v": t["gaze_v"].to_numpy(float),
                "time": t["time"].to_numpy(float)}
        pieces = split_signals(cols, usable, int(np.floor(self.max_gap_s * fs)), min_len=2)
        _, sacc, _ = self._saccades(pieces, fs, eye_widths_per_iris_radius(track))
        return pd.DataFrame({
            "onset": [pieces[s.piece]["time"][s.start] for s in sacc],
            "offset": [pieces[s.piece]["time"][s.stop - 1] for s in sacc],
            "amplitude_deg": [s.amplitude for s in sacc],
            "peak_velocity_deg_s": [s.peak_velocity for s in sacc],
        }, columns=["onset", "offset", "amplitude_deg", "peak_velocity_deg_s"])


def eye_widths_per_iris_radius(track: FaceTrack) -> float:
    """Median eye width (corner to corner) over median iris radius, from the track.

    Converts the track's eye-relative pupil position (eye widths) to iris radii. Uses the
    track's per-frame ``eye_w_*`` and ``iris_rad_*`` columns (no landmarks are read), or
    the landmarks of a table without them. NaN when no frame was tracked.
    """
    from cdrscreen.tracking.face import EYE_L_CORNERS, EYE_R_CORNERS, IRIS_L, IRIS_R

    table = track.table
    ok = table["success"].to_numpy(bool) & ~table["blink"].to_numpy(bool)
    if not ok.any():
        return float("nan")
    if {"eye_w_r", "eye_w_l", "iris_rad_r", "iris_rad_l"} <= set(table.columns):
        widths = [table[c].to_numpy(np.float64)[ok] for c in ("eye_w_r", "eye_w_l")]
        radii = [table[c].to_numpy(np.float64)[ok] for c in ("iris_rad_r", "iris_rad_l")]
    else:
        lm = np.asarray(track.landmarks)
        if lm.ndim != 3 or lm.shape[0] != ok.size:
            return float("nan")
        lm = lm[ok][:, :, :2].astype(np.float64)
        widths, radii = [], []
        for (a, b), c in ((EYE_R_CORNERS, IRIS_R), (EYE_L_CORNERS, IRIS_L)):
            widths.append(np.linalg.norm(lm[:, a] - lm[:, b], axis=1))
            radii.append(np.linalg.norm(lm[:, c + 1:c + 5] - lm[:, c:c + 1], axis=2).mean(axis=1))
    w, r = float(np.median(np.concatenate(widths))), float(np.median(np.concatenate(radii)))
    return w / r if r > 0 else float("nan")
