"""Pupil trajectory: STFT superposition, gap handling, and a planted iris oscillation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cdrscreen.demo import Trajectories, render_face_video
from cdrscreen.features import get_extractor
from cdrscreen.features.pupil import superposed_spectrum
from cdrscreen.features.tracks import segments, split_signals

FPS = 25


def test_superposed_spectrum_peaks_at_the_sine_frequency_and_uses_full_windows_only() -> None:
    fs = 30.0
    x = np.sin(2 * np.pi * 9.0 * np.arange(95) / fs)  # 0.3 cycles/sample -> bin 3 of 10
    freqs, spec, n = superposed_spectrum([x[:50], x[50:], x[:7]], fs, nperseg=10, noverlap=5)
    assert freqs.tolist() == pytest.approx([0, 3, 6, 9, 12, 15])
    assert int(np.argmax(spec)) == 3
    assert n == 9 + 8  # (50-10)/5+1 and (45-10)/5+1 windows; the 7-sample piece has none
    _, empty, n0 = superposed_spectrum([x[:5]], fs)
    assert n0 == 0 and np.isnan(empty).all()


def test_short_gaps_are_bridged_and_long_gaps_split() -> None:
    ok = np.ones(30, bool)
    ok[5:7] = False  # 2-sample gap: bridged with max_gap=3
    ok[15:20] = False  # 5-sample gap: splits
    assert segments(ok, 3) == [(0, 15), (20, 30)]
    v = np.arange(30, dtype=float)
    v[5:7] = np.nan
    pieces = split_signals({"v": v}, ok, 3)
    assert [len(p["v"]) for p in pieces] == [15, 10]
    assert pieces[0]["v"] == pytest.approx(np.arange(15))  # linear interpolation
    assert segments(np.zeros(5, bool), 3) == []


@pytest.fixture(scope="module", params=[5.0, 10.0], ids=["5Hz", "10Hz"])
def oscillation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    f = request.param
    t = np.arange(100) / FPS
    path = tmp_path_factory.mktemp("osc") / f"osc_{f:g}.mp4"
    traj = Trajectories.constant(len(t), iris_dx=0.15 * np.sin(2 * np.pi * f * t),
                                 yaw=4 * np.sin(2 * np.pi * 0.3 * t))
    render_face_video(path, "astronaut", traj, fps=FPS)
    return path, f


def test_planted_iris_oscillation_is_the_stft_peak(oscillation: tuple[Path, float]) -> None:
    path, f = oscillation
    feats = get_extractor("pupil").process_file(path).iloc[0]
    bin_hz = feats["pupil__stft_bin_hz"]
    assert bin_hz == pytest.approx(FPS / 10)
    spec = np.array([feats[f"pupil__stft_eye_dh_b{k}"] for k in range(6)])
    assert int(np.argmax(spec)) == round(f / bin_hz)
    # horizontal, not vertical, eye motion was planted
    vert = np.array([feats[f"pupil__stft_eye_dv_b{k}"] for k in range(6)])
    assert spec.max() > 3 * vert.max()
    assert feats["pupil__valid"] == 1.0 and feats["pupil__usable_fraction"] > 0.95
    assert feats["pupil__eye_h_std"] == pytest.approx(0.15 / np.sqrt(2) * 0.6, rel=0.5)


def test_stride_halves_the_rate_and_moves_the_peak(oscillation: tuple[Path, float]) -> None:
    path, f = oscillation
    feats = get_extractor("pupil", stride=2).process_file(path).iloc[0]
    fs = FPS / 2
    assert feats["pupil__stft_bin_hz"] == pytest.approx(fs / 10)
    spec = np.array([feats[f"pupil__stft_eye_dh_b{k}"] for k in range(6)])
    # 5 Hz is still resolved (bin 4 of 1.25 Hz); 10 Hz is above Nyquist and aliases to 2.5 Hz
    expected = abs(f - fs * round(f / fs))
    assert int(np.argmax(spec)) == round(expected / (fs / 10))
