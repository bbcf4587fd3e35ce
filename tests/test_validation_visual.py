"""Visual measurements against planted truth on rendered real faces (issue: eyes must not move the head).

Clips come from :mod:`cdrscreen.demo.planted` (the same cases as
``benchmarks/validate_visual.py``, which writes the full table to ``docs/validation-visual.md``);
each is rendered once per test run, 320x240, 2.4-4 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdrscreen.demo.planted import (
    VALIDATION_FACES,
    co_movement_cases,
    saccade_cases,
    still_head_cases,
)
from cdrscreen.features import get_extractor
from cdrscreen.features.eye_events import band_powers, detect_saccades
from cdrscreen.features.recording_warnings import add_warnings, recording_warnings
from cdrscreen.tracking.face import track_video

STILL = {(c.face, c.truth["axis"]): c for c in still_head_cases()}
CO = {c.name: c for c in co_movement_cases()}
CO_FACES = {(face, c.name): c for face in VALIDATION_FACES for c in co_movement_cases(face)}
SACC = {c.name: c for c in saccade_cases()}


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("planted")


def _clip(clip_dir: Path, case) -> Path:  # noqa: ANN001
    path = clip_dir / f"{case.name}_{case.face.replace(':', '')}_{case.fps:g}.mp4"
    if not path.exists():
        case.render(path)
    return path


def _row(extractor: str, path: Path) -> pd.Series:
    return get_extractor(extractor).process_file(path).iloc[0]


# --- head motion that eye motion cannot move -----------------------------------------------
@pytest.mark.parametrize("face", VALIDATION_FACES)
@pytest.mark.parametrize("axis", ["h", "v"])
def test_still_head_with_moving_iris_reads_no_head_motion(clip_dir: Path, face: str, axis: str) -> None:
    path = _clip(clip_dir, STILL[(face, axis)])
    t = track_video(path).table
    assert t["success"].all()
    for col in ("yaw", "pitch", "roll"):
        assert t[col].std() <= 0.25, (col, t[col].std())
    for col in ("head_x", "head_y"):
        assert t[col].std() <= 0.5, (col, t[col].std())
    hp = _row("headpose", path)
    corr = [c for c in hp.index if "corr_" in c and c.endswith(("_r", "_rho"))]
    assert len(corr) == 16
    for c in corr:  # NaN: the head did not move measurably, no correlation is reported
        assert np.isnan(hp[c]) or abs(hp[c]) <= 0.2, (c, hp[c])


@pytest.mark.parametrize("name, column", [("co_rot_v", "corr_pos_v"), ("co_rot_h", "corr_pos_h"),
                                          ("co_trans_v", "img_corr_pos_v"), ("co_trans_h", "img_corr_pos_h")])
def test_co_movement_is_read_by_the_matching_definition(clip_dir: Path, name: str, column: str) -> None:
    hp = _row("headpose", _clip(clip_dir, CO[name]))
    assert hp[f"headpose__{column}_r"] >= 0.9 and hp[f"headpose__{column}_rho"] >= 0.9
    assert hp[f"headpose__{column}_p"] < 1e-6 and hp[f"headpose__{column}_n"] == CO[name].n_frames


@pytest.mark.parametrize("name", ["ind_rot_v", "ind_rot_h"])
def test_independent_head_and_eye_give_rotation_based_r_near_zero(clip_dir: Path, name: str) -> None:
    axis = CO[name].truth["axis"]
    hp = _row("headpose", _clip(clip_dir, CO[name]))
    assert abs(hp[f"headpose__corr_pos_{axis}_r"]) <= 0.2
    assert abs(hp[f"headpose__corr_vel_{axis}_r"]) <= 0.2


# The done-when criteria on every validation face, for the three eye-in-head signals. Where
# a criterion is not met the test is a strict xfail with the measured value: it fails as
# soon as the measurement changes, so the table in docs/validation-visual.md stays true.
EYE_SIGNALS = ("corners", "head", "texture")
_V_OPEN = {  # (face, eye_in_head) -> measured largest |r|, |rho| of ind_rot_v (target <= 0.2)
    ("grace_hopper", "corners"): 0.78, ("lfw:0", "corners"): 0.41,
    ("grace_hopper", "head"): 0.52, ("lfw:0", "head"): 0.44,
}  # ("astronaut", "head") read 0.21 before TRACK_VERSION 7 (full-resolution flow from mesh-predicted starts)
_H_OPEN = {  # the same for ind_rot_h
    ("grace_hopper", "corners"): 0.26,
    ("astronaut", "head"): 0.21, ("grace_hopper", "head"): 0.33, ("lfw:0", "head"): 0.29,
}


def test_the_independent_cases_plant_uncorrelated_head_and_eye_motion() -> None:
    from cdrscreen.demo.planted import planted_correlations

    for face in VALIDATION_FACES:
        for axis in ("h", "v"):
            case = CO_FACES[(face, f"ind_rot_{axis}")]
            assert case.motion["pitch" if axis == "v" else "yaw"].std() > 5  # the head does move
            vals = planted_correlations(case)
            assert set(vals) == {"pos_r", "pos_rho", "vel_r", "vel_rho"}
            assert max(map(abs, vals.values())) <= 0.005, vals
    # the co-moving cases plant r = 1 (the check is not blind to correlation)
    assert planted_correlations(CO["co_rot_v"])["pos_r"] == pytest.approx(1.0)


def _v_cases(open_: dict[tuple[str, str], float], what: str) -> list:  # noqa: ANN401
    out = []
    for face in VALIDATION_FACES:
        for mode in EYE_SIGNALS:
            marks = [pytest.mark.xfail(strict=True, reason=f"measured {what} {open_[(face, mode)]:.2f}")] \
                if (face, mode) in open_ else []
            out.append(pytest.param(face, mode, marks=marks, id=f"{face}-{mode}"))
    return out


def _independent(clip_dir: Path, face: str, mode: str, axis: str) -> None:
    from cdrscreen.features.headpose import HeadPoseExtractor

    case = CO_FACES[(face, f"ind_rot_{axis}")]
    hp = HeadPoseExtractor(eye_in_head=mode).process_file(_clip(clip_dir, case)).iloc[0]
    for c in (f"corr_pos_{axis}_r", f"corr_pos_{axis}_rho", f"corr_vel_{axis}_r", f"corr_vel_{axis}_rho"):
        assert abs(hp[f"headpose__{c}"]) <= 0.2, (c, hp[f"headpose__{c}"])


@pytest.mark.parametrize("face, mode", _v_cases(_V_OPEN, "max |r|, |rho|"))
def test_independent_head_pitch_and_vertical_eye_motion_do_not_correlate(clip_dir: Path, face: str,
                                                                          mode: str) -> None:
    _independent(clip_dir, face, mode, "v")


@pytest.mark.parametrize("face, mode", _v_cases(_H_OPEN, "max |r|, |rho|"))
def test_independent_head_yaw_and_horizontal_eye_motion_do_not_correlate(clip_dir: Path, face: str,
                                                                         mode: str) -> None:
    _independent(clip_dir, face, mode, "h")


@pytest.mark.parametrize("face, mode", _v_cases({("lfw:0", "corners"): 0.79}, "r"))
def test_co_moving_vertical_rotation_is_read_on_every_face(clip_dir: Path, face: str, mode: str) -> None:
    from cdrscreen.features.headpose import HeadPoseExtractor

    hp = HeadPoseExtractor(eye_in_head=mode).process_file(_clip(clip_dir, CO_FACES[(face, "co_rot_v")])).iloc[0]
    assert hp["headpose__corr_pos_v_r"] >= 0.9 and hp["headpose__corr_pos_v_rho"] >= 0.9


def test_texture_eye_signal_follows_the_planted_iris_with_the_head_still(clip_dir: Path) -> None:
    from cdrscreen.features.eye_texture import EyeTextureParams, eye_in_texture

    case = STILL[("grace_hopper", "v")]
    path = _clip(clip_dir, case)
    tr = track_video(path)
    planted_up = -case.motion["iris_dy"]
    sig = eye_in_texture(path, tr.table, tr.landmarks)
    assert sig["eye_pitch"].notna().all()
    assert np.corrcoef(sig["eye_pitch"], planted_up)[0, 1] > 0.95
    assert sig["eye_yaw"].std() < 0.3 * sig["eye_pitch"].std()
    # MediaPipe's iris landmark against the same reference sees less of the movement
    mesh = eye_in_texture(path, tr.table, tr.landmarks, params=EyeTextureParams(iris_from="mesh"))
    assert np.polyfit(planted_up, mesh["eye_pitch"], 1)[0] < np.polyfit(planted_up, sig["eye_pitch"], 1)[0]
    with pytest.raises(ValueError, match="iris_from"):
        eye_in_texture(path, tr.table, tr.landmarks, params=EyeTextureParams(iris_from="pupil"))


def test_the_still_head_reporting_floor_is_a_recorded_setting(clip_dir: Path) -> None:
    from cdrscreen.features.headpose import HeadPoseExtractor

    path = _clip(clip_dir, STILL[("astronaut", "v")])
    floored = HeadPoseExtractor()
    cfg = floored.describe()["config"]
    assert cfg["min_rotation_deg"] == 0.1 and cfg["min_translation_px"] == 0.2 and cfg["eye_in_head"] == "texture"
    assert np.isnan(floored.process_file(path).iloc[0]["headpose__corr_pos_v_r"])
    # without the floor the correlation with a still head's tracking noise is reported
    raw = HeadPoseExtractor(min_rotation_deg=0.0, min_translation_px=0.0)
    assert raw.describe()["config"]["min_rotation_deg"] == 0.0
    row = raw.process_file(path).iloc[0]
    assert np.isfinite(row["headpose__corr_pos_v_r"]) and row["headpose__corr_pos_v_n"] == STILL[("astronaut", "v")].n_frames


# --- saccades --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["eye_still", "eye_pursuit_1.5hz"])
def test_still_eye_and_smooth_pursuit_are_not_saccades(clip_dir: Path, name: str) -> None:
    assert _row("pupil", _clip(clip_dir, SACC[name]))["pupil__saccade_rate_per_min"] <= 5


def test_planted_step_saccades_are_counted_with_onsets_within_one_frame(clip_dir: Path) -> None:
    case = SACC["eye_steps"]
    path = _clip(clip_dir, case)
    ex = get_extractor("pupil")
    table = ex.saccade_table(track_video(path))
    planted = np.array(case.truth["onsets"]) / case.fps
    assert abs(len(table) - len(planted)) <= 0.1 * len(planted)
    nearest = np.abs(table["onset"].to_numpy()[:, None] - planted[None]).min(axis=0)
    assert nearest.max() <= 1 / case.fps + 1e-9
    row = ex.process_file(path).iloc[0]
    assert row["pupil__saccade_rate_per_min"] == pytest.approx(len(table) / (case.n_frames / case.fps / 60))
    assert row["pupil__saccade_amplitude_deg"] > 5 and row["pupil__saccade_peak_velocity_deg_s"] > 100


def test_saccade_detector_on_synthetic_traces() -> None:
    fs = 30.0
    rng = np.random.default_rng(0)
    x = np.repeat([0.0, 6.0, 1.0, 9.0], 30) + rng.normal(0, 0.1, 120)
    y = rng.normal(0, 0.1, 120)
    sacc, (eta_x, _) = detect_saccades([(x, y)], fs)
    assert [s.start for s in sacc] == [29, 59, 89]  # the frame before each step
    assert [round(s.amplitude) for s in sacc] == [6, 5, 8]
    assert eta_x == 30.0  # the noise is far below the floor
    pursuit = 5 * np.sin(2 * np.pi * 1.5 * np.arange(120) / fs)
    assert detect_saccades([(pursuit, y)], fs)[0] == []


# --- band powers in Hz -----------------------------------------------------------------------
@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_band_powers_put_a_1p5_hz_oscillation_in_the_1_2_hz_band(clip_dir: Path, fps: float) -> None:
    case = saccade_cases(fps=fps)[1]  # iris_dx 1.5 Hz, head still
    row = _row("pupil", _clip(clip_dir, case))
    bands = {c.split("band_eye_h_")[1]: row[c] for c in row.index
             if c.startswith("pupil__band_eye_h_") and c.endswith("hz") and "peak" not in c}
    assert max(bands, key=bands.get) == "1_2hz"
    assert row["pupil__band_eye_h_peak_hz"] == pytest.approx(1.5)


def test_band_powers_are_in_hertz_whatever_the_frame_rate() -> None:
    for fs in (25.0, 30.0, 60.0):
        x = np.sin(2 * np.pi * 1.5 * np.arange(int(6 * fs)) / fs)
        p, peak, n = band_powers([x], fs)
        assert int(np.argmax(p)) == 2 and peak == pytest.approx(1.5) and n == 5
        assert p.sum() == pytest.approx(0.5, rel=0.05)  # a unit sine has power 1/2
    p, _, n = band_powers([np.ones(10)], 25.0)  # shorter than one window
    assert n == 0 and np.isnan(p).all()


# --- warnings --------------------------------------------------------------------------------
def test_warning_texts_for_the_five_cases() -> None:
    row = pd.Series({"pupil__quality_no_face": 1.0, "pupil__quality_low_tracking": 0.0,
                     "pupil__quality_video_s": 60.0, "timing__quality_no_speech": 1.0,
                     "timing__quality_low_sr": 1.0, "timing__source_sr": 8000.0,
                     "timing__quality_audio_s": 120.0})
    w = recording_warnings(row)
    assert w[0] == "no face found" and "no speech found" in w
    assert "audio sample rate 8000 Hz is below 16 kHz" in w
    assert any(s.startswith("audio (120.0 s) and video (60.0 s) durations differ by 50%") for s in w)
    low = pd.Series({"headpose__quality_no_face": 0.0, "headpose__quality_low_tracking": 1.0,
                     "headpose__tracked_fraction": 0.3, "headpose__quality_video_s": 10.0,
                     "mfcc__quality_audio_s": 10.4})
    assert recording_warnings(low) == ["face tracked in only 30% of frames"]
    df = add_warnings(pd.DataFrame([row, low]))
    assert df["meta__warnings"].iloc[1] == "face tracked in only 30% of frames"


def test_a_video_without_a_face_is_flagged(clip_dir: Path) -> None:
    from cdrscreen.demo.planted import VisualCase

    case = VisualCase("no_face", "astronaut", 25.0, 25, {"face_visible": False})
    row = _row("pupil", _clip(clip_dir, case))
    assert row["pupil__quality_no_face"] == 1.0 and row["pupil__quality_video_s"] == pytest.approx(1.0)
    assert recording_warnings(row) == ["no face found"]
