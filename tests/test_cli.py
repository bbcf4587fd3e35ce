"""The command-line shell: every verb has a useful --help, errors are one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cdrscreen.cli import app, main

VERBS = ["demo", "info", "extract", "evaluate", "ablate", "report"]


def test_all_verbs_registered() -> None:
    names = {c.name for c in app.registered_commands}
    assert set(VERBS) <= names


@pytest.mark.parametrize("verb", VERBS)
def test_help_is_useful(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"cdrscreen {verb}" in out
    assert "placeholder" not in out and "not available yet" not in out
    # a useful help names at least one option besides --help, and explains the verb
    assert out.count("--") >= 2, out
    assert len(out.split()) > 25


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parts"]["manifest + evaluation"]["available"] is True
    assert data["python"].startswith("3.11")


def test_user_error_is_one_line_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "cdrscreen", "extract", str(missing), "--features", "pupil",
         "--out", str(tmp_path / "f.parquet")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in proc.stderr


def test_unknown_verb_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extrct"]) == 2
    assert "extrct" in capsys.readouterr().err


def test_ctrl_c_prints_aborted_and_exits_130(monkeypatch, capsys):
    import cdrscreen.extract as extract_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(extract_mod, "extract_study", interrupted)
    assert main(["extract", "study.csv"]) == 130
    assert capsys.readouterr().err.strip() == "aborted"


def test_ctrl_c_during_fer_training_is_not_reported_as_success(monkeypatch, capsys, tmp_path):
    import fer_backbone.build as build
    from fer_backbone.cli import main as fer_main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "run_recipe", interrupted)
    assert fer_main(["train", "recipes/fer_baseline_digits.yaml", "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err.strip().startswith("aborted")
