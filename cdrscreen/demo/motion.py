"""Per-subject motion model: head movement, saccades and fixations, blinks, coupling.

:class:`MotionParams` holds one subject's planted behaviour; :func:`make_trajectories`
turns it into per-frame :class:`~cdrscreen.demo.trajectories.Trajectories`.

- **Head**: yaw, pitch, roll and image-plane shift are smooth random processes (sums of
  slow sinusoids with random phases, 0.05-0.6 Hz) with the subject's amplitudes.
- **Eyes**: gaze-in-head follows fixations separated by saccades (Poisson times at
  ``saccade_rate`` per second; each saccade takes 3 frames at 25 fps; targets drawn with
  standard deviation ``saccade_amp`` in eye widths horizontally, ``1.4 * saccade_amp``
  in eye heights vertically), plus a small fixational drift.
- **Vertical co-movement** (after Nam et al., Sensors 2020): the vertical iris offset is
  ``dy = s * (c * z_head + sqrt(1 - c**2) * z_eye)`` where ``z_head`` is the standardised
  *upward* head pitch sign-flipped to the image's downward ``dy`` axis (so eyes look up
  as the head pitches up), ``z_eye`` the standardised saccadic trace made exactly
  uncorrelated with ``z_head`` (before clipping to the eye opening), and ``c =
  vertical_coupling``: the planted Pearson r between upward gaze-in-head (``-dy``) and
  upward head pitch is ``c`` (so r(``dy``, ``pitch``) = ``-c`` in the trajectories' own
  signs). The horizontal axis has the same construction with ``horizontal_coupling``
  (r(``dx``, ``yaw``) = ``c_h``: eyes follow the head turn).
- **Blinks**: Poisson at ``blink_rate`` per minute, 150-250 ms each (closure rises and
  falls like a raised cosine).
- **Occlusions**: optionally one short stretch with the face covered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cdrscreen.demo.trajectories import Trajectories


@dataclass(frozen=True)
class MotionParams:
    """One subject's planted visual behaviour (units in the module docstring)."""

    yaw_amp: float = 6.0
    pitch_amp: float = 4.0
    roll_amp: float = 2.0
    shift_amp: float = 4.0
    saccade_rate: float = 1.2
    saccade_amp: float = 0.16
    vertical_coupling: float = 0.3
    horizontal_coupling: float = 0.2
    blink_rate: float = 17.0
    occlusion_s: float = 0.0
    gain_drift: float = 0.04
    noise_sigma: float = 2.0
    mouth_gain: float = 0.035

    def to_dict(self) -> dict[str, float]:
        """Return the parameters as a plain dict."""
        return asdict(self)


def _smooth(n: int, fps: float, rng: np.random.Generator, n_comp: int = 5,
            fmin: float = 0.05, fmax: float = 0.6) -> np.ndarray:
    """Zero-mean, unit-sd smooth random signal: a sum of sinusoids with random phases."""
    t = np.arange(n) / fps
    freqs = np.exp(rng.uniform(np.log(fmin), np.log(fmax), n_comp))
    amps = 1 / np.sqrt(freqs)
    x = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for a, f in zip(amps, freqs, strict=True))
    x = np.asarray(x, dtype=float)
    return _standardise(x)


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = float(np.std(x))
    return (x - np.mean(x)) / sd if sd > 1e-12 else np.zeros_like(x)


def _mix(z_head: np.ndarray, eye: np.ndarray, c: float) -> np.ndarray:
    """Unit-sd mix whose Pearson r with ``z_head`` is exactly ``c``.

    The eye trace is first made uncorrelated with the head trace (two slow random
    signals of a few seconds correlate by chance, often |r| > 0.3).
    """
    z_eye = _standardise(eye)
    z_eye = _standardise(z_eye - np.mean(z_eye * z_head) * z_head)
    return c * z_head + np.sqrt(1 - c ** 2) * z_eye


def _saccades(n: int, fps: float, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Unit-scale fixation/saccade traces (x, y) and the number of saccades planted."""
    n_sacc = rng.poisson(rate * n / fps)
    times = np.sort(rng.integers(1, max(n - 3, 2), size=n_sacc))
    gx, gy = np.zeros(n), np.zeros(n)
    cur = rng.normal(0, 1, 2)
    last = 0
    ramp = np.array([0.2, 0.6, 0.9])
    for t0 in times:
        gx[last:t0], gy[last:t0] = cur
        new = rng.normal(0, 1, 2)
        k = min(3, n - t0)
        gx[t0:t0 + k] = cur[0] + (new[0] - cur[0]) * ramp[:k]
        gy[t0:t0 + k] = cur[1] + (new[1] - cur[1]) * ramp[:k]
        cur, last = new, t0 + k
    gx[last:], gy[last:] = cur
    drift = 0.08
    gx += drift * np.cumsum(rng.normal(0, 1, n)) / np.sqrt(n)
    gy += drift * np.cumsum(rng.normal(0, 1, n)) / np.sqrt(n)
    return gx, gy, int(n_sacc)


def _blinks(n: int, fps: float, rate_per_min: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    closure = np.zeros(n)
    n_blink = rng.poisson(rate_per_min / 60 * n / fps)
    for t0 in rng.integers(0, n, size=n_blink):
        dur = max(int(round(rng.uniform(0.15, 0.25) * fps)), 3)
        prof = np.sin(np.linspace(0, np.pi, dur + 2)[1:-1]) ** 0.7
        seg = slice(t0, min(t0 + dur, n))
        closure[seg] = np.maximum(closure[seg], prof[: seg.stop - seg.start])
    return np.clip(closure, 0, 1), int(n_blink)


def make_trajectories(p: MotionParams, n_frames: int, fps: float, rng: np.random.Generator,
                      envelope: np.ndarray | None = None) -> tuple[Trajectories, dict[str, float]]:
    """Draw per-frame trajectories for one subject.

    Parameters
    ----------
    p : MotionParams
    n_frames : int
    fps : float
    rng : numpy Generator
    envelope : ndarray, optional
        Speech loudness per frame in [0, 1]; drives the jaw (``mouth_open``).

    Returns
    -------
    traj : Trajectories
    realised : dict
        What the draw actually planted: ``n_saccades``, ``n_blinks``,
        ``planted_r_vertical`` (Pearson of ``iris_dy`` with ``-pitch``),
        ``planted_r_horizontal`` (``iris_dx`` with ``yaw``).
    """
    n = n_frames
    yaw = p.yaw_amp * _smooth(n, fps, rng)
    pitch = p.pitch_amp * _smooth(n, fps, rng)
    roll = p.roll_amp * _smooth(n, fps, rng)
    tx = p.shift_amp * _smooth(n, fps, rng, fmax=0.3)
    ty = 0.5 * p.shift_amp * _smooth(n, fps, rng, fmax=0.3)
    sx, sy, n_sacc = _saccades(n, fps, p.saccade_rate, rng)
    cv, ch = float(np.clip(p.vertical_coupling, 0, 1)), float(np.clip(p.horizontal_coupling, 0, 1))
    # Yaw > 0 turns the face to the image right; the eyes following it also move right (dx > 0).
    dx = p.saccade_amp * _mix(_standardise(yaw), sx, ch)
    dy = 1.4 * p.saccade_amp * _mix(_standardise(-pitch), sy, cv)
    dx, dy = np.clip(dx, -0.33, 0.33), np.clip(dy, -0.45, 0.45)
    closure, n_blink = _blinks(n, fps, p.blink_rate, rng)
    visible = np.ones(n, bool)
    if p.occlusion_s > 0 and n > 4:
        k = min(max(int(round(p.occlusion_s * fps)), 1), n // 2)
        t0 = int(rng.integers(n // 4, max(n - k - 1, n // 4 + 1)))
        visible[t0:t0 + k] = False
    gain = 1 + p.gain_drift * _smooth(n, fps, rng, fmax=0.2)
    mouth = np.zeros(n) if envelope is None else p.mouth_gain * np.asarray(envelope, float)[:n]
    traj = Trajectories(yaw=yaw, pitch=pitch, roll=roll, tx=tx, ty=ty, iris_dx=dx, iris_dy=dy,
                        closure=closure, face_visible=visible, gain=gain,
                        noise_sigma=np.full(n, p.noise_sigma), mouth_open=mouth)
    realised = {
        "n_saccades": float(n_sacc), "n_blinks": float(n_blink),
        "planted_r_vertical": float(np.corrcoef(dy, -pitch)[0, 1]) if n > 2 else float("nan"),
        "planted_r_horizontal": float(np.corrcoef(dx, yaw)[0, 1]) if n > 2 else float("nan"),
    }
    return traj, realised
