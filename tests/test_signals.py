"""Extraction records its configuration and writes signals; reports draw them, never recompute.

Real videos (a real face photo animated, H.264 via PyAV), real MediaPipe tracking, real
extractors. The variable-frame-rate video has 25 fps for its first half and 12.5 fps for
its second: a report that re-derived the spectra from the raw track (as reports once did)
gets other numbers than the features.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.core.signals import FRAME_INDEX, read_signal, signal_path, signals_root
from cdrscreen.extract import extract_study
from cdrscreen.reports import patient as patient_mod
from cdrscreen.reports.builder import Report
from cdrscreen.reports.signals import load_recording_signals

FPS = 25
N = 80


def _write(path: Path, frames: list[np.ndarray], pts_ms: list[int]) -> Path:
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt = "yuv420p"
        tb = Fraction(1, 1000)
        vs.time_base = vs.codec_context.time_base = tb
        for img, pts in zip(frames, pts_ms, strict=True):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts, vf.time_base = pts, tb
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def vfr_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two recordings: a variable-frame-rate video (S1) and a constant-rate one (S2)."""
    from cdrscreen.demo import Trajectories, load_face, render_frames

    d = tmp_path_factory.mktemp("vfr")
    pts = [40 * i if i < N // 2 else 40 * (N // 2) + 80 * (i - N // 2) for i in range(N)]
    t = np.asarray(pts) / 1000
    traj = Trajectories.constant(N, yaw=5 * np.sin(2 * np.pi * 0.7 * t), pitch=3 * np.sin(2 * np.pi * 0.4 * t),
                                 iris_dx=0.12 * np.sin(2 * np.pi * 3 * t))
    frames, _ = render_frames(load_face("astronaut", (320, 240)), traj, fps=FPS)
    _write(d / "vfr.mp4", frames, pts)
    _write(d / "cfr.mp4", frames, [40 * i for i in range(N)])
    m = d / "study.csv"
    m.write_text("subject,session,video,cdr\nS1,1,vfr.mp4,0.5\nS2,1,cfr.mp4,1\n")
    return m


def test_table_records_every_extractor_config_and_the_signals_match(vfr_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    df = extract_study(vfr_study, "pupil,headpose", out, cache_dir=tmp_path / "cache", stride=2,
                       overrides=["groups.pupil.nperseg=8"], progress=False)
    rec = df.attrs["extractors"]
    assert rec["pupil"]["config"]["nperseg"] == 8 and rec["pupil"]["config"]["stride"] == 2
    assert rec["headpose"]["config"]["smooth_s"] == 0.15 and rec["headpose"]["signals"] == ["frames"]
    assert df.attrs["extract"]["spec"]["groups"]["pupil"]["nperseg"] == 8
    back = pd.read_parquet(out)
    assert back.attrs["extractors"] == rec and back.attrs["extract"]["spec"] == df.attrs["extract"]["spec"]
    for subject, file in (("S1", "vfr.mp4"), ("S2", "cfr.mp4")):
        for group in ("pupil", "headpose"):
            p = signal_path(signals_root(out), subject, "1", str(vfr_study.parent / file), group, "frames")
            sig = read_signal(p, rec[group]["config_sha"])
            assert sig is not None and tuple(sig.index.names) == FRAME_INDEX
            assert read_signal(p, "another-config") is None  # a stale signal is never taken
    # from the cache: same table, and the signals come back with it
    shutil.rmtree(signals_root(out))
    again = extract_study(vfr_study, "pupil,headpose", out, cache_dir=tmp_path / "cache", stride=2,
                          overrides=["groups.pupil.nperseg=8"], progress=False)
    assert again.attrs["extract"]["computed"] == 0
    assert len(list(signals_root(out).rglob("*.parquet"))) == 4


@pytest.mark.parametrize(("stride", "max_faces"), [(1, 2), (2, 1)])
def test_vfr_report_draws_exactly_what_the_features_computed(vfr_study: Path, tmp_path: Path, stride: int,
                                                             max_faces: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy.stats import pearsonr

    from cdrscreen.features.pupil import superposed_spectrum
    from cdrscreen.tracking.face import track_video
    from cdrscreen.tracking.gaps import split_signals

    out = tmp_path / "features.parquet"
    extract_study(vfr_study, "pupil,headpose", out, cache_dir=tmp_path / "cache", stride=stride,
                  max_faces=max_faces, progress=False)
    table = pd.read_parquet(out)
    drawn: dict[str, tuple] = {}
    for name in ("pupil_figure", "pupil_head_scatter", "headpose_figure"):
        real = getattr(patient_mod.F, name)
        monkeypatch.setattr(patient_mod.F, name,
                            lambda *a, _n=name, _r=real, **k: drawn.__setitem__(_n, (a, k)) or _r(*a, **k))
    sig = load_recording_signals(table, signals_root(out), "S1", "1")
    own = patient_mod.patient_values(table, "S1", "1")
    rep = Report(title="t")
    patient_mod._signals(rep, own, sig)
    assert "Pupil trajectory and its superposed spectrum" in rep.render()

    # the spectrum drawn is the pupil features' own spectrum, bin for bin
    t, _, _, freqs, dh, dv = drawn["pupil_figure"][0]
    k = np.arange(len(dh))
    np.testing.assert_array_equal(dh, [own[f"pupil__stft_eye_dh_b{i}"] for i in k])
    np.testing.assert_array_equal(dv, [own[f"pupil__stft_eye_dv_b{i}"] for i in k])
    np.testing.assert_allclose(freqs, k * own["pupil__stft_bin_hz"])
    # the time series drawn are the evenly resampled ones the features used
    steps = np.diff(t)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-6)
    # the pupil-head scatter is the series the correlation feature correlated
    (ph, hh, pv, hv), kw = drawn["pupil_head_scatter"]
    assert pearsonr(ph, hh).statistic == pytest.approx(own["headpose__corr_vel_h_r"], abs=1e-9)
    assert pearsonr(pv, hv).statistic == pytest.approx(own["headpose__corr_vel_v_r"], abs=1e-9)
    assert kw["r_x"] == own["headpose__corr_vel_h_r"]

    # the case matters: the raw (not resampled) VFR track gives another spectrum
    track = track_video(vfr_study.parent / "vfr.mp4", stride=stride, max_faces=max_faces)
    raw = track.table
    usable = raw["success"].to_numpy(bool) & ~raw["blink"].to_numpy(bool)
    pieces = split_signals({"h": raw["gaze_h"].to_numpy(float)}, usable, int(0.25 * track.track_fps))
    _, naive, n = superposed_spectrum([np.diff(p["h"]) for p in pieces], track.track_fps)
    assert n > 0 and not np.allclose(naive, dh, rtol=0.01)


def test_report_without_signals_says_why(vfr_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    extract_study(vfr_study, "pupil", out, cache_dir=tmp_path / "cache", progress=False, signals=False)
    table = pd.read_parquet(out)
    sig = load_recording_signals(table, signals_root(out), "S1", "1")
    assert sig.tables == {} and sig.missing == ["pupil.frames"]
    rep = Report(title="t")
    patient_mod._signals(rep, patient_mod.patient_values(table, "S1", "1"), sig)
    assert "Per-frame plots are not shown: the feature table has no per-frame signals" in rep.render()


def test_corrupt_signal_is_one_clear_line(vfr_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    extract_study(vfr_study, "pupil", out, cache_dir=tmp_path / "cache", progress=False)
    p = next(signals_root(out).rglob("pupil.frames.parquet"))
    p.write_bytes(b"not parquet")
    from cdrscreen.core.errors import InputError

    with pytest.raises(InputError, match=r"pupil\.frames\.parquet: cannot be read as a signal table"):
        load_recording_signals(pd.read_parquet(out), signals_root(out), *p.parts[-4:-2])


def test_timing_signals_hold_the_pauses_the_features_counted(planted_pauses, tmp_path: Path) -> None:
    from tests.fixtures_speech import SR, write_wav

    x, _, segs = planted_pauses
    write_wav(tmp_path / "a.wav", x, SR)
    segs.to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "m.csv").write_text("subject,audio,segments,cdr\nS1,a.wav,a.csv,0.5\n")
    out = tmp_path / "f.parquet"
    df = extract_study(tmp_path / "m.csv", "timing", out, cache_dir=tmp_path / "c", progress=False)
    row = df.iloc[0]
    seg = read_signal(next(signals_root(out).rglob("timing.segments.parquet"))).reset_index()
    pauses = seg[seg["kind"] == "pause"]
    assert len(pauses) == row["timing__pause_count"] > 0
    assert (pauses["end"] - pauses["start"]).sum() == pytest.approx(row["timing__pause_total_s"])
    analysed = seg[seg["kind"] == "analysed"]  # the patient's turns (pauses within a turn kept)
    assert analysed["start"].min() == pytest.approx(segs["start"].min(), abs=1e-3)
    assert analysed["end"].max() == pytest.approx(segs["end"].max(), abs=1e-3)


# --- extraction specs ----------------------------------------------------------------------
def test_spec_file_errors_name_the_key_and_suggest(tmp_path: Path) -> None:
    from cdrscreen.extract_spec import load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text("features: [pupil]\ngroups:\n  pupil: {npersg: 8}\n")
    with pytest.raises(CdrscreenError, match=r"spec\.yaml: unknown key 'groups\.pupil\.npersg' - did you mean 'nperseg'\?"):
        load_spec(spec)
    spec.write_text("features: [pupil]\ntracking: {strid: 2}\n")
    with pytest.raises(CdrscreenError, match=r"unknown key 'tracking\.strid' - did you mean 'stride'\?"):
        load_spec(spec)
    spec.write_text("features: [pupil]\ngroups:\n  headpos: {}\n")
    with pytest.raises(CdrscreenError, match=r"unknown key 'groups\.headpos' - did you mean 'headpose'\?"):
        load_spec(spec)
    with pytest.raises(CdrscreenError, match=r"groups\.pupil\.nperseg: Input should be greater than or equal to 2"):
        load_spec(None, ["groups.pupil.nperseg=1"])


def test_every_group_params_match_its_constructor() -> None:
    """A spec's keys are the extractor's keyword arguments, with the same defaults (no drift)."""
    import inspect

    from cdrscreen.features.registry import REGISTRY, extractor_class

    shared = {"cache_dir", "stride", "max_faces"}  # the tracking section and a run-time folder
    for name in REGISTRY:
        cls = extractor_class(name)
        init: dict[str, object] = {}
        for klass in reversed(cls.__mro__):
            fn = klass.__dict__.get("__init__")
            if fn is None or klass is object:
                continue
            for k, p in inspect.signature(fn).parameters.items():
                if k != "self" and k not in shared and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    init[k] = p.default
        fields = {k: f.default for k, f in cls.Params.model_fields.items()}
        assert fields == init, name


def test_cli_set_and_spec(vfr_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cdrscreen.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text("features: [pupil]\ntracking: {stride: 2}\n")
    out = tmp_path / "f.parquet"
    code = main(["extract", str(vfr_study), "--spec", str(spec), "--set", "groups.pupil.noverlap=2",
                 "--out", str(out), "--cache", str(tmp_path / "c"), "--no-progress"])
    assert code == 0
    cfg = pd.read_parquet(out).attrs["extractors"]["pupil"]["config"]
    assert (cfg["stride"], cfg["noverlap"]) == (2, 2)
    capsys.readouterr()
    code = main(["extract", str(vfr_study), "--set", "groups.pupil.windw=hann", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].endswith("extraction preset 'default' (with --set overrides): unknown key 'groups.pupil.windw' - "
                           "did you mean 'window'?")
