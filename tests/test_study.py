"""Study manifest validation: every problem reported at once, one clear line each."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cdrscreen.core.errors import CdrscreenError, InputError, ManifestError
from cdrscreen.study import Study

HEADER = "subject,session,video,cdr,age,sex,mmse\n"


@pytest.fixture()
def mdir(tmp_path: Path, tiny_media: dict[str, Path]) -> Path:
    """A study folder with media in a subfolder, so relative paths are exercised."""
    (tmp_path / "media").mkdir()
    for k in ("video", "video_b", "silent_video", "wav"):
        shutil.copy(tiny_media[k], tmp_path / "media" / tiny_media[k].name)
    return tmp_path


def write(mdir: Path, text: str, name: str = "manifest.csv") -> Path:
    p = mdir / name
    p.write_text(text)
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as exc:
        Study.from_file(path)
    lines = str(exc.value).splitlines()
    assert len(lines) == len(exc.value.problems) >= 1
    assert all(ln.startswith(f"{path}: ") for ln in lines), lines
    return lines


def test_valid_csv_resolves_relative_paths(mdir: Path) -> None:
    p = write(mdir, HEADER + "S01,1,media/a.mp4,0.5,71,f,27\nS02,,media/b.mp4,2,80,Male,\n")
    study = Study.from_file(p)
    assert len(study) == 2
    r1, r2 = study.recordings
    assert r1.video == (mdir / "media" / "a.mp4").resolve() and r1.video.is_absolute()
    assert r1.sex == "F" and r2.sex == "M" and r2.session == "1" and r2.mmse is None
    assert r1.cdr == 0.5 and r2.cdr == 2.0
    assert study.subjects == ["S01", "S02"]
    assert list(study.labels()) == [0.5, 2.0]


def test_manifest_relative_to_its_folder_not_cwd(mdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    p = write(mdir, HEADER + "S01,1,media/a.mp4,1,,,\n")
    elsewhere = tmp_path_factory.mktemp("cwd")
    old = os.getcwd()
    os.chdir(elsewhere)
    try:
        assert Study.from_file(p).recordings[0].video == (mdir / "media/a.mp4").resolve()
    finally:
        os.chdir(old)


def test_valid_yaml_with_audio_and_covariates(mdir: Path) -> None:
    p = write(mdir, """
recordings:
  - {subject: S01, video: media/a.mp4, audio: media/a.wav, cdr: 1, cov_education: 12}
  - {subject: 7, session: 2, video: media/b.mp4, cdr: 0}
""", "study.yaml")
    s = Study.from_file(p)
    assert s.recordings[0].audio == (mdir / "media/a.wav").resolve()
    assert s.recordings[0].audio_source == s.recordings[0].audio
    assert s.recordings[1].audio_source == s.recordings[1].video
    assert s.recordings[0].covariates == {"education": 12}
    assert s.recordings[1].subject == "7" and s.recordings[1].session == "2"


# ---- the bad cases: each names the row and the field -----------------------------------
BAD_CASES = {
    "missing_file": ("S01,1,media/nope.mp4,1,,,\n", ["line 2", "'video'", "file not found", "nope.mp4"]),
    "unknown_cdr": ("S01,1,media/a.mp4,1.5,,,\n", ["line 2", "'cdr'", "0, 0.5, 1, 2, 3", "1.5"]),
    "cdr_text": ("S01,1,media/a.mp4,mild,,,\n", ["line 2", "'cdr'", "'mild'"]),
    "cdr_empty": ("S01,1,media/a.mp4,,,,\n", ["line 2", "'cdr'", "required"]),
    "duplicate": ("S01,1,media/a.mp4,1,,,\nS01,1,media/b.mp4,1,,,\n", ["line 3", "duplicate", "(S01, 1)", "line 2"]),
    "age_range": ("S01,1,media/a.mp4,1,150,,\n", ["line 2", "'age'", "120"]),
    "age_text": ("S01,1,media/a.mp4,1,old,,\n", ["line 2", "'age'", "'old'"]),
    "sex_invalid": ("S01,1,media/a.mp4,1,70,q,\n", ["line 2", "'sex'", "'q'"]),
    "mmse_range": ("S01,1,media/a.mp4,1,70,F,31\n", ["line 2", "'mmse'", "30"]),
    "empty_subject": (",1,media/a.mp4,1,,,\n", ["line 2", "'subject'"]),
    "no_video_stream": ("S01,1,media/a.wav,1,,,\n", ["line 2", "'video'", "no video stream"]),
    "folder_not_file": ("S01,1,media,1,,,\n", ["line 2", "'video'", "folder"]),
    "empty_video": ("S01,1,media/empty.mp4,1,,,\n", ["line 2", "'video'", "empty (0 bytes)"]),
    "garbage_video": ("S01,1,media/garbage.mp4,1,,,\n", ["line 2", "'video'", "cannot be decoded"]),
    "no_media": ("S01,1,,1,,,\n", ["line 2", "'video'", "empty"]),
    "field_count": ("S01,1,media/a.mp4\n", ["line 2", "3 fields", "header has 7"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_manifest_case(mdir: Path, case: str) -> None:
    (mdir / "media" / "empty.mp4").write_bytes(b"")
    (mdir / "media" / "garbage.mp4").write_bytes(b"this is not a video" * 50)
    body, expected = BAD_CASES[case]
    lines = problems(write(mdir, HEADER + body))
    text = "\n".join(lines)
    for needle in expected:
        assert needle in text, f"{case}: {needle!r} not in {text!r}"


def test_all_problems_reported_at_once(mdir: Path) -> None:
    body = "S01,1,media/nope.mp4,4,,,\nS02,1,media/a.mp4,1,200,,\nS03,1,media/b.mp4,0.5,,,\n"
    lines = problems(write(mdir, HEADER + body))
    assert len(lines) == 3
    assert any("line 2" in ln and "'video'" in ln for ln in lines)
    assert any("line 2" in ln and "'cdr'" in ln for ln in lines)
    assert any("line 3" in ln and "'age'" in ln for ln in lines)
    assert not any("line 4" in ln for ln in lines)


def test_unknown_column_suggests_close_match(mdir: Path) -> None:
    lines = problems(write(mdir, "subject,session,vidoe,cdr\nS01,1,media/a.mp4,1\n"))
    assert any("unknown column 'vidoe'" in ln and "did you mean 'video'" in ln for ln in lines)


def test_missing_required_column(mdir: Path) -> None:
    lines = problems(write(mdir, "subject,video\nS01,media/a.mp4\n"))
    assert any("missing required column 'cdr'" in ln for ln in lines)


def test_empty_and_missing_manifest(mdir: Path) -> None:
    with pytest.raises(ManifestError, match="no recordings"):
        Study.from_file(write(mdir, HEADER))
    with pytest.raises(InputError, match="manifest file not found"):
        Study.from_file(mdir / "absent.csv")
    with pytest.raises(InputError, match="unsupported manifest format"):
        Study.from_file(write(mdir, "x", "m.xlsx"))
    with pytest.raises(CdrscreenError, match="not valid YAML at line"):
        Study.from_file(write(mdir, "recordings: [\n  {a: 1\n", "m.yaml"))


def test_unreadable_file_permissions(mdir: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read files without read permission")
    f = mdir / "media" / "a.mp4"
    f.chmod(0)
    try:
        lines = problems(write(mdir, HEADER + "S01,1,media/a.mp4,1,,,\n"))
        assert "not readable" in lines[0]
    finally:
        f.chmod(0o644)


def test_check_media_can_be_skipped(mdir: Path) -> None:
    p = write(mdir, HEADER + "S01,1,media/nope.mp4,1,,,\n")
    assert len(Study.from_file(p, check_media=False)) == 1
