"""Study-level extraction: table layout, shared tracking, flags, CLI, and resume after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdrscreen.cli import main
from cdrscreen.core.errors import CdrscreenError
from cdrscreen.demo import Trajectories, render_face_video
from cdrscreen.extract import extract_study
from cdrscreen.tracking import face as face_mod

FPS = 25


def _video(path: Path, n: int, *, amp: float, face: str = "astronaut", visible: bool = True) -> Path:
    t = np.arange(n) / FPS
    traj = Trajectories.constant(n, yaw=amp * np.sin(2 * np.pi * 0.5 * t),
                                 iris_dx=0.1 * np.sin(2 * np.pi * 2 * t), face_visible=visible)
    render_face_video(path, face, traj, fps=FPS)
    return path


def _manifest(folder: Path, videos: list[Path]) -> Path:
    rows = ["subject,session,video,cdr,age,sex,mmse"]
    for i, v in enumerate(videos):
        rows.append(f"S{i + 1},1,{v.name},{[0.5, 1, 2][i % 3]},{70 + i},{'FM'[i % 2]},{25 - i}")
    path = folder / "study.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("study")
    videos = [_video(d / "a.mp4", 50, amp=5), _video(d / "b.mp4", 50, amp=10, face="grace_hopper"),
              _video(d / "noface.mp4", 30, amp=0, visible=False)]
    return _manifest(d, videos)


def test_table_layout_labels_and_rerun_from_cache(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = face_mod._compute_track
    monkeypatch.setattr(face_mod, "_compute_track", lambda p, c, *a: calls.append(p) or real(p, c, *a))
    face_mod._MEMO.clear()
    out = tmp_path / "features.parquet"
    df = extract_study(study, ["pupil", "headpose"], out, cache_dir=tmp_path / "cache", progress=False)
    assert len(calls) == 3, "pupil and headpose must share one tracking pass per video"
    assert list(df.index.names) == ["subject", "session", "file"]
    assert df.index.get_level_values("subject").tolist() == ["S1", "S2", "S3"]
    assert df["meta__cdr"].tolist() == [0.5, 1.0, 2.0]
    assert df["meta__age"].tolist() == [70, 71, 72] and df["meta__sex"].tolist() == ["F", "M", "F"]
    assert df["meta__mmse"].tolist() == [25, 24, 23]
    groups = {c.split("__")[0] for c in df.columns}
    assert groups == {"pupil", "headpose", "meta"}
    pd.testing.assert_frame_equal(pd.read_parquet(out), df)
    assert df.attrs["extract"]["computed"] == 6

    face_mod._MEMO.clear()
    again = extract_study(study, "pupil,headpose", None, cache_dir=tmp_path / "cache", progress=False)
    assert again.attrs["extract"]["computed"] == 0 and len(calls) == 3
    pd.testing.assert_frame_equal(again, df)


def test_missing_face_is_flagged_never_silent_nan(study: Path, tmp_path: Path) -> None:
    df = extract_study(study, ["pupil", "headpose"], None, cache_dir=tmp_path, progress=False)
    for group in ("pupil", "headpose"):
        block = df.filter(like=f"{group}__")
        valid = block[f"{group}__valid"]
        assert valid.tolist() == [1.0, 1.0, 0.0]
        # undefined by design on short clips: band powers (a 2-s stretch), saccade means (a saccade)
        # and co-movement with a head that did not move (its SD below the reporting floor)
        by_design = [c for c in block if any(k in c for k in ("__band_", "__saccade_amplitude", "__saccade_peak"))]
        ok = block.loc[valid == 1]
        if group == "headpose":
            for axis, sd, floor in (("h", "x_std", 0.2), ("v", "y_std", 0.2), ("h", "yaw_std", 0.1),
                                    ("v", "pitch_std", 0.1)):
                kind = "img_corr" if sd in ("x_std", "y_std") else "corr"
                cols = [c for c in block if c.startswith(f"headpose__{kind}_") and f"_{axis}_" in c
                        and not c.endswith("_n")]
                still = ok[f"headpose__{sd}"] < floor
                assert ok.loc[~still, cols].notna().all().all()
                assert ok.loc[still, cols].isna().all().all()
                by_design += cols
        assert ok.drop(columns=by_design).notna().all().all()
        assert block.loc[valid == 0, f"{group}__tracked_fraction"].eq(0).all()


def test_bad_requests_fail_with_one_clear_line(study: Path, tmp_path: Path) -> None:
    with pytest.raises(CdrscreenError, match="did you mean 'pupil'"):
        extract_study(study, ["pupill"], None, cache_dir=tmp_path)
    with pytest.raises(CdrscreenError, match="stride"):
        extract_study(study, ["pupil"], None, cache_dir=tmp_path, stride=0)


def test_cli_writes_parquet(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f.parquet"
    code = main(["extract", str(study), "--features", "headpose", "--out", str(out),
                 "--cache", str(tmp_path / "c"), "--stride", "2", "--max-faces", "1", "--no-progress"])
    assert code == 0
    df = pd.read_parquet(out)
    assert len(df) == 3 and "headpose__yaw_std" in df and "meta__cdr" in df
    assert "3 recordings" in capsys.readouterr().err


def _entries(cache: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for sub in ("pupil", "headpose", "facetrack")
            if (cache / sub).exists() for p in (cache / sub).glob("*.parquet")}


@pytest.mark.slow
def test_kill_9_then_rerun_gives_identical_features_recomputing_only_unfinished(tmp_path: Path) -> None:
    videos = [_video(tmp_path / f"v{i}.mp4", 75, amp=3 + 3 * i, face=("astronaut", "grace_hopper")[i % 2])
              for i in range(4)]
    manifest = _manifest(tmp_path, videos)
    cache, out = tmp_path / "cache", tmp_path / "features.parquet"
    cmd = [sys.executable, "-m", "cdrscreen", "extract", str(manifest), "--features", "pupil,headpose",
           "--out", str(out), "--cache", str(cache), "--jobs", "1", "--no-progress"]
    env = {**os.environ, "CDRSCREEN_NO_PROGRESS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((cache / "headpose").glob("*.parquet"))) >= 1:  # first video finished
            break
        time.sleep(0.02)
    assert proc.poll() is None, "extraction finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    before = _entries(cache)
    n_done = sum(1 for p in before if p.parent.name in ("pupil", "headpose"))
    assert 1 <= n_done < 8

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({8 - n_done} results computed, {n_done} from cache)" in rerun.stderr
    after = _entries(cache)
    assert all(after[p] == m for p, m in before.items()), "finished results were recomputed"

    face_mod._MEMO.clear()
    fresh = extract_study(manifest, ["pupil", "headpose"], None, cache_dir=tmp_path / "fresh", progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(out), fresh)


def test_a_failing_recording_is_listed_and_the_others_stay_cached(study: Path, tmp_path: Path) -> None:
    from cdrscreen.study import Study

    good = study.parent / "a.mp4"
    rows = [("line 2", {"subject": "S1", "video": str(good), "cdr": "0.5"}),
            ("line 3", {"subject": "S2", "video": str(tmp_path / "gone.mp4"), "cdr": "1"})]
    st = Study.from_rows(rows, base=tmp_path, check_media=False)
    with pytest.raises(CdrscreenError) as ei:
        extract_study(st, ["pupil"], tmp_path / "f.parquet", cache_dir=tmp_path / "c", progress=False)
    lines = str(ei.value).splitlines()
    assert len(lines) == 1 and "gone.mp4" in lines[0] and "not found" in lines[0]
    assert "(1 of 2 recordings failed;" in lines[0]
    assert not (tmp_path / "f.parquet").exists()
    assert len(list((tmp_path / "c" / "pupil").glob("*.parquet"))) == 1  # the good one is kept


def test_extractor_process_study_accepts_a_manifest_path(study: Path, tmp_path: Path) -> None:
    from cdrscreen.features import get_extractor

    df = get_extractor("pupil").process_study(study, cache=tmp_path, progress=False)
    assert df.index.get_level_values("subject").tolist() == ["S1", "S2", "S3"]
    assert df["pupil__valid"].tolist() == [1.0, 1.0, 0.0]


def test_cache_hits_take_the_current_recordings_index(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A content-keyed hit computed for another path (moved file, byte-identical copy) is re-indexed."""
    import shutil

    d = tmp_path / "moved"
    d.mkdir()
    shutil.copy(study.parent / "a.mp4", d / "a.mp4")
    shutil.copy(study.parent / "a.mp4", d / "a_copy.mp4")  # same bytes under a second subject
    m = _manifest(d, [d / "a.mp4", d / "a_copy.mp4"])
    cache = tmp_path / "cache"
    extract_study(study, ["pupil"], None, cache_dir=cache, progress=False)
    df = extract_study(m, ["pupil"], None, cache_dir=cache, progress=False)
    assert df.attrs["extract"]["computed"] == 0  # both rows came from the cache
    assert df.index.get_level_values("subject").tolist() == ["S1", "S2"]
    assert df.index.get_level_values("file").tolist() == [str(d / "a.mp4"), str(d / "a_copy.mp4")]
    feats = [c for c in df.columns if not c.startswith("meta__")]
    pd.testing.assert_series_equal(df[feats].iloc[0], df[feats].iloc[1], check_names=False)
    assert df.attrs["extract"]["shared_media"] == [[f"S1/1: {d / 'a.mp4'}", f"S2/1: {d / 'a_copy.mp4'}"]]
    capsys.readouterr()
    assert main(["extract", str(m), "--features", "pupil", "--out", str(tmp_path / "f.parquet"),
                 "--cache", str(cache), "--no-progress"]) == 0
    warn = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "byte-identical" in warn[0] and "a_copy.mp4" in warn[0]
