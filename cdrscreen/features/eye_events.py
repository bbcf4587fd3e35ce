"""Saccades (Engbert & Kliegl 2003, adapted to video rates) and eye-movement band powers in Hz.

Pure functions used by :class:`cdrscreen.features.pupil.PupilExtractor`.

Saccades
    :func:`detect_saccades` takes a gap-free 2-D eye-in-head trace in degrees. Velocity is
    the central difference ``(x[n+1] - x[n-1]) / (2 dt)`` (Engbert & Kliegl's 5-sample
    window spans 160 ms at 25 fps, longer than a saccade; the 3-sample one spans 80 ms).
    The noise of each axis is the median-based ``sigma = sqrt(median(v**2) - median(v)**2)``
    over all pieces of the recording, the threshold ``eta = max(lambda * sigma, v_min)``;
    a saccade is a run of samples with ``(vx/eta_x)**2 + (vy/eta_y)**2 > 1`` lasting at
    least ``min_duration_s`` (at least one sample) and at most ``max_duration_s`` (smooth
    pursuit stays above threshold for longer), with an amplitude of at least
    ``min_amplitude`` degrees. Not counted either: a run touching the end of a piece (its
    duration is unknown) or starting in its first ``settle_s`` seconds (the tracker
    settles after acquiring a face). Onset is the run's first sample, i.e. the last frame
    before the eye moves or the first moving one. At video rates the central difference
    of a 1-frame step is ``amplitude * fs / 2``, so the smallest saccade seen is about
    ``2 * min_velocity / fs`` degrees (2.4 degrees at 25 fps).
Band powers
    :func:`band_powers` integrates a Welch power spectral density (Hann window of
    ``window_s`` seconds, half overlap, linear detrend per window; pieces shorter than one
    window are skipped) over fixed bands in Hz, so recordings at different frame rates
    compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Eye model for degrees: iris radius and eyeball (centre of rotation to iris) radius, mm.
IRIS_RADIUS_MM, EYE_RADIUS_MM = 5.9, 12.0

#: Default bands (Hz) of the eye-movement spectrum.
DEFAULT_BANDS: tuple[tuple[float, float], ...] = ((0.1, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0))


def radii_to_degrees(x: np.ndarray) -> np.ndarray:
    """Eye rotation (degrees) for an iris-centre offset in iris radii (spherical eye model)."""
    return np.degrees(np.arcsin(np.clip(np.asarray(x, float) * IRIS_RADIUS_MM / EYE_RADIUS_MM, -1, 1)))


@dataclass(frozen=True)
class Saccade:
    """One detected saccade (sample indices into its piece)."""

    piece: int
    start: int
    stop: int  # exclusive
    amplitude: float  # degrees, from the sample before to the sample after the run
    peak_velocity: float  # degrees per second


def velocity(x: np.ndarray, fs: float) -> np.ndarray:
    """Central-difference velocity (units per second); the two end samples are NaN."""
    x = np.asarray(x, float)
    v = np.full(x.shape, np.nan)
    if x.shape[0] >= 3:
        v[1:-1] = (x[2:] - x[:-2]) * fs / 2
    return v


def noise_sigma(v: np.ndarray) -> float:
    """Median-based velocity noise ``sqrt(median(v^2) - median(v)^2)`` (NaNs ignored)."""
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(np.sqrt(max(np.median(v**2) - np.median(v) ** 2, 0.0)))


def detect_saccades(
    pieces: list[tuple[np.ndarray, np.ndarray]], fs: float, *, lam: float = 6.0,
    min_velocity: float = 30.0, min_duration_s: float = 0.01, max_duration_s: float = 0.15,
    min_amplitude: float = 1.0, settle_s: float = 0.2,
) -> tuple[list[Saccade], tuple[float, float]]:
    """Detect saccades in gap-free ``(x, y)`` pieces (degrees) sampled at ``fs`` Hz.

    Parameters
    ----------
    pieces : list of (x, y)
        Eye-in-head position per piece, degrees.
    fs : float
        Sample rate, Hz.
    lam : float
        Threshold multiple of the median-based velocity noise (Engbert & Kliegl's lambda).
    min_velocity : float
        Lowest threshold, degrees/s (a perfectly still trace has zero noise).
    min_duration_s, max_duration_s : float
        Shortest and longest run counted (at least one sample).
    min_amplitude : float
        Smallest amplitude counted, degrees.
    settle_s : float
        Runs starting within this time of a piece's start are not counted: the face
        tracker settles over its first frames after (re)acquiring a face.

    Returns
    -------
    saccades : list of Saccade
    thresholds : (eta_x, eta_y), degrees/s
    """
    vel = [(velocity(x, fs), velocity(y, fs)) for x, y in pieces]
    vx = np.concatenate([a for a, _ in vel]) if vel else np.array([])
    vy = np.concatenate([b for _, b in vel]) if vel else np.array([])
    eta = tuple(max(lam * s, min_velocity) if np.isfinite(s) else float("nan")
                for s in (noise_sigma(vx), noise_sigma(vy)))
    lo = max(1, int(np.ceil(min_duration_s * fs - 1e-9)))
    hi = max(lo, int(np.floor(max_duration_s * fs + 1e-9)))
    settle = max(2, int(round(settle_s * fs)))
    out: list[Saccade] = []
    for k, ((x, y), (a, b)) in enumerate(zip(pieces, vel, strict=True)):
        fast = np.nan_to_num((a / eta[0]) ** 2 + (b / eta[1]) ** 2) > 1
        edges = np.flatnonzero(np.diff(np.r_[0, fast.astype(int), 0]))
        for s, e in zip(edges[::2], edges[1::2], strict=True):
            if not lo <= e - s <= hi or s < settle or e >= len(x) - 1:
                continue
            amp = float(np.hypot(x[e] - x[s - 1], y[e] - y[s - 1]))
            if amp < min_amplitude:
                continue
            peak = float(np.nanmax(np.hypot(a[s:e], b[s:e])))
            out.append(Saccade(k, int(s), int(e), amp, peak))
    return out, (float(eta[0]), float(eta[1]))


def band_powers(
    pieces: list[np.ndarray], fs: float, bands: tuple[tuple[float, float], ...] = DEFAULT_BANDS,
    *, window_s: float = 2.0,
) -> tuple[np.ndarray, float, int]:
    """Power of a signal in fixed frequency bands (Welch PSD integrated over each band).

    Parameters
    ----------
    pieces : list of 1-D arrays
        Gap-free pieces of the signal.
    fs : float
        Sample rate, Hz.
    bands : sequence of (lo, hi)
        Band edges in Hz; a bin at ``f`` belongs to a band when ``lo <= f < hi``.
    window_s : float
        Welch window length, seconds.

    Returns
    -------
    powers : ndarray (n_bands,)
        Mean over windows of the integrated PSD (signal units squared); NaN for a band above
        the Nyquist frequency or when no piece holds a full window.
    peak_hz : float
        Frequency of the PSD maximum above the first non-zero bin.
    n_windows : int
    """
    from scipy.signal import welch

    nperseg = int(round(window_s * fs))
    out = np.full(len(bands), np.nan)
    if nperseg < 4:
        return out, float("nan"), 0
    total, n = None, 0
    freqs = np.fft.rfftfreq(nperseg, 1 / fs)
    for x in pieces:
        if len(x) < nperseg:
            continue
        m = 1 + (len(x) - nperseg) // (nperseg // 2)
        _, pxx = welch(x, fs=fs, window="hann", nperseg=nperseg, noverlap=nperseg // 2,
                       detrend="linear", average="mean")
        total = pxx * m if total is None else total + pxx * m
        n += m
    if not n:
        return out, float("nan"), 0
    psd = total / n
    df = fs / nperseg
    for i, (lo, hi) in enumerate(bands):
        if hi <= fs / 2 + 1e-9:
            sel = (freqs >= lo) & (freqs < hi)
            out[i] = float(psd[sel].sum() * df)
    peak = float(freqs[1:][np.argmax(psd[1:])]) if psd.size > 1 else float("nan")
    return out, peak, n


def band_name(lo: float, hi: float) -> str:
    """Column-name form of a band: ``(0.5, 1)`` -> ``"0p5_1hz"``."""
    return f"{lo:g}_{hi:g}hz".replace(".", "p")
