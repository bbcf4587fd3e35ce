"""Pupil trajectory: STFT superposition, gap handling, and a planted iris oscillation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cdrscreen.demo import Trajectories, render_face_video
from cdrscreen.features import get_extractor
from cdrscreen.features.pupil import superposed_spectrum
from cdrscreen.tracking.gaps import segments, split_signals

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


def test_regular_grid_interpolates_in_time_and_keeps_lost_stretches_lost() -> None:
    import pandas as pd

    from cdrscreen.tracking.resample import is_regular, regular_grid

    t = np.r_[np.arange(10) * 0.04, 0.4 + np.arange(1, 6) * 0.1]  # 25 fps, then 10 fps
    ok = np.ones(t.size, bool)
    ok[12] = False
    x = 2.0 * t
    x[~ok] = np.nan
    table = pd.DataFrame({"frame": np.arange(t.size), "time": t, "success": ok, "gaze_h": x})
    assert not is_regular(t, 0.04) and is_regular(np.arange(20) * 0.08, 0.08)
    g = regular_grid(table, 0.04)
    assert g["time"].to_numpy() == pytest.approx(np.arange(23) * 0.04)
    tracked = g["success"].to_numpy(bool)
    assert g["gaze_h"].to_numpy()[tracked] == pytest.approx(2.0 * g["time"].to_numpy()[tracked])
    assert np.isnan(g["gaze_h"].to_numpy()[~tracked]).all() and (~tracked).sum() >= 2
    assert list(g.columns) == list(table.columns) and g["frame"].dtype == table["frame"].dtype


def test_variable_frame_rate_track_is_resampled_before_velocities_and_stft() -> None:
    """Half the frames of the second half dropped (25 -> 12.5 fps): the planted 5 Hz stays at 5 Hz."""
    import dataclasses

    from cdrscreen.tracking.face import track_video

    t = np.arange(150) / FPS
    path = Path(__import__("tempfile").mkdtemp()) / "osc5.mp4"
    render_face_video(path, "astronaut", Trajectories.constant(len(t), iris_dx=0.15 * np.sin(2 * np.pi * 5 * t)),
                      fps=FPS)
    cfr = track_video(path)
    keep = np.r_[np.arange(75), np.arange(75, 150, 2)]
    table = cfr.table.iloc[keep].reset_index(drop=True)
    duration = table["time"].iloc[-1] - table["time"].iloc[0]
    vfr = dataclasses.replace(cfr, table=table, landmarks=cfr.landmarks[keep], fps=(len(keep) - 1) / duration)
    ex = get_extractor("pupil")
    f_vfr, f_cfr = ex.features_from_track(vfr), ex.features_from_track(cfr)
    spec = np.array([f_vfr[f"stft_eye_dh_b{k}"] for k in range(6)])
    assert int(np.argmax(spec)) == round(5 / f_vfr["stft_bin_hz"])
    assert f_vfr["stft_bin_hz"] == pytest.approx(f_cfr["stft_bin_hz"] * vfr.fps / cfr.fps)
