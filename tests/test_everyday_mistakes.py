"""Everyday mistakes with a manifest or an output path: one error line, exit 2, nothing overwritten.

Each case goes through ``cdrscreen`` in-process on real files (tiny H.264 videos and WAV
files written here). The table of cases and what the user sees is ``docs/bad-input.md``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cdrscreen.cli import main
from cdrscreen.study import Study


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, list[str]]:
    """Run ``cdrscreen ARGS`` in-process: exit status, stdout, non-empty stderr lines."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, cap.out, [ln for ln in cap.err.splitlines() if ln.strip()]


@pytest.fixture()
def study(tmp_path: Path, tiny_media: dict[str, Path]) -> Path:
    """A study folder: two subjects' videos and one separate audio file."""
    (tmp_path / "media").mkdir()
    for k in ("video", "video_b", "wav"):
        shutil.copy(tiny_media[k], tmp_path / "media" / tiny_media[k].name)
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_error(code: int, err: list[str], *needles: str) -> None:
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for n in needles:
        assert n in err[0], (n, err[0])


# --- European spreadsheets, comments, duplicate keys ----------------------------------------
EURO = "subject;video;audio;cdr;age;mmse\nS01;media/a.mp4;media/a.wav;0,5;71,5;26\nS02;media/b.mp4;;1;80;21\n"


def test_semicolon_csv_with_decimal_commas_is_refused_with_the_cause(study, capsys):
    m = study / "study.csv"
    m.write_text(EURO)
    code, _, err = cli(capsys, "check", m)
    assert code == 2
    # a manifest lists every problem, one line each, naming the file, the line and the field
    assert len(err) == 2 and all(e.startswith(f"error: {m}: line 2: field ") for e in err), err
    assert "'cdr': '0,5' has a decimal comma" in err[0] and "'age': '71,5' has a decimal comma" in err[1]
    assert all("--decimal ," in e for e in err)


def test_semicolon_csv_with_decimal_commas_is_read_with_decimal_comma(study, capsys):
    m = study / "study.csv"
    m.write_text(EURO)
    code, out, err = cli(capsys, "check", m, "--decimal", ",")
    assert code == 0, err
    st = Study.from_file(m, decimal=",")
    assert [r.cdr for r in st] == [0.5, 1.0] and st.recordings[0].age == 71.5
    assert "separate audio files: 1" in out and "CDR 0.5: 1" in out


def test_comma_csv_with_decimal_commas_names_the_likely_cause(study, capsys):
    m = study / "study.csv"
    m.write_text("subject,video,cdr\nS01,media/a.mp4,0,5\n")
    code, _, err = cli(capsys, "check", m)
    assert_one_error(code, err, str(m), "line 2: has 4 fields, header has 3", "decimal commas")


def test_comment_lines_are_skipped_and_line_numbers_kept(study, capsys):
    m = study / "study.csv"
    m.write_text("# exported 2026-12-01\nsubject,video,cdr\n# S00 withdrew\nS01,media/a.mp4,0.5\nS02,media/b.mp4,7\n")
    code, _, err = cli(capsys, "check", m)
    assert_one_error(code, err, str(m), "line 5", "field 'cdr'")  # the file's own line number
    m.write_text("# exported 2026-12-01\nsubject,video,cdr\n# S00 withdrew\nS01,media/a.mp4,0.5\nS02,media/b.mp4,1\n")
    assert cli(capsys, "check", m)[0] == 0


def test_yaml_manifest_with_a_duplicate_key_is_refused(study, capsys):
    m = study / "study.yaml"
    m.write_text("- subject: S01\n  video: media/a.mp4\n  cdr: 0.5\n  cdr: 2\n- {subject: S02, video: media/b.mp4, cdr: 1}\n")
    code, _, err = cli(capsys, "check", m)
    assert_one_error(code, err, str(m), "duplicate key 'cdr'", "line 4")


def test_symlink_loop_as_video_path(study, capsys):
    (study / "media" / "loop.mp4").symlink_to(study / "media" / "loop.mp4")
    m = study / "study.csv"
    m.write_text("subject,video,cdr\nS01,media/loop.mp4,0.5\nS02,media/b.mp4,1\n")
    code, _, err = cli(capsys, "check", m)
    assert_one_error(code, err, str(m), "line 2", "field 'video'", "loop.mp4")


def test_check_with_a_protocol_lists_left_out_subjects(study, capsys, tmp_path):
    m = study / "study.csv"
    m.write_text("subject,video,cdr\nS01,media/a.mp4,0\nS02,media/b.mp4,0.5\nS03,media/a.mp4,1\n"
                 "S04,media/b.mp4,1\nS05,media/a.mp4,0.5\n")
    proto = tmp_path / "p.yaml"
    proto.write_text("name: p\nlabels: {scheme: cdr05_vs_1plus}\nmodels: [{name: m}]\n")
    code, out, err = cli(capsys, "check", m, "--protocol", proto, "--no-media")
    assert code == 0, err
    assert "1 subject(s) left out, CDR 0 is not in label scheme 'cdr05_vs_1plus': S01" in out
    assert "class 0.5: 2 subject(s)" in out and "class 1+: 2 subject(s)" in out
    proto.write_text("name: p\nlabels: {scheme: cdr0_vs_impaired}\nmodels: [{name: m}]\n")
    code, _, err = cli(capsys, "check", m, "--protocol", proto, "--no-media")
    assert_one_error(code, err, "class(es) 0", "fewer than 2 subjects")


# --- outputs checked before any work --------------------------------------------------------
@pytest.fixture()
def manifest(study: Path) -> Path:
    m = study / "study.csv"
    m.write_text("subject,video,cdr\nS01,media/a.mp4,0.5\nS02,media/b.mp4,1\n")
    return m


def test_extract_onto_its_own_manifest_is_refused(manifest, capsys):
    before = manifest.read_bytes()
    code, _, err = cli(capsys, "extract", manifest, "-f", "mfcc", "-o", manifest, "--no-progress")
    assert_one_error(code, err, str(manifest), "overwrite the input")
    assert manifest.read_bytes() == before


def test_extract_out_that_is_a_folder_or_a_non_parquet_file(manifest, study, capsys):
    before = snapshot(study)
    code, _, err = cli(capsys, "extract", manifest, "-f", "mfcc", "-o", study / "media", "--no-progress")
    assert_one_error(code, err, str(study / "media"), "existing folder")
    notes = study / "notes.txt"
    notes.write_text("my notes")
    code, _, err = cli(capsys, "extract", manifest, "-f", "mfcc", "-o", notes, "--no-progress")
    assert_one_error(code, err, str(notes), "not a Parquet file")
    assert notes.read_text() == "my notes"
    assert {k: v for k, v in snapshot(study).items() if k != "notes.txt"} == before


def test_extract_unwritable_output_or_cache_folder(manifest, study, capsys):
    blocker = study / "afile"
    blocker.write_text("x")
    code, _, err = cli(capsys, "extract", manifest, "-f", "mfcc", "-o", blocker / "f.parquet", "--no-progress")
    assert_one_error(code, err, "is a file, not a folder")
    code, _, err = cli(capsys, "extract", manifest, "-f", "mfcc", "-o", study / "f.parquet",
                       "--cache", blocker, "--no-progress")
    assert_one_error(code, err, str(blocker), "cache folder is an existing file")
    code, _, err = cli(capsys, "extract", manifest, "-f", "mfcc", "-o", study / "f.parquet",
                       "--cache", blocker / "cache", "--no-progress")
    assert_one_error(code, err, "cache folder", "is a file, not a folder")
    assert not (study / "f.parquet").exists()
