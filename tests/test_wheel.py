"""The built wheel carries its protocols and presets: installed alone, ``evaluate`` and ``demo`` run.

``pip wheel --no-deps .`` on a copy of the source tree, installed with ``--no-deps`` into a
fresh virtual environment that sees the test environment's third-party packages through a
plain path entry (no editable hook, so the source tree is not importable there). Then,
from a folder outside the repository, ``cdrscreen evaluate`` runs the default shipped
protocol on a small feature table, and ``cdrscreen demo`` runs end to end (cohort, extraction,
the shipped demo protocol, reports).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.fixtures_reports import make_feature_table

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res


@pytest.mark.slow
def test_wheel_installed_alone_runs_evaluate_and_the_demo(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for part in ("cdrscreen", "fer_backbone"):
        shutil.copytree(ROOT / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          str(tmp_path / "dist"), str(src)], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("cdrscreen-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path, env).stdout.strip())
    (site / "shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # numpy, sklearn, ...
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
         tmp_path, env)

    work = tmp_path / "work"
    work.mkdir()
    where = _run([str(py), "-c", "import cdrscreen, cdrscreen.resources as r; print(cdrscreen.__file__); "
                  "print(r.resource_path('protocols', 'cdr_binary_loso.yaml').is_file(), "
                  "r.resource_path('extraction', 'default.yaml').is_file()); "
                  "print(r.list_resources('protocols'))"], work, env).stdout.splitlines()
    assert where[0].startswith(str(site)), "the wheel, not the source tree, must be imported"
    assert where[1] == "True True"
    assert "ablation_all_groups" in where[2] and "fusion_compare" in where[2]

    make_feature_table(16, seed=2).to_parquet(work / "features.parquet")
    _run([str(venv / "bin" / "cdrscreen"), "evaluate", "--features", "features.parquet", "--out", "run",
          "--jobs", "2"], work, env, timeout=1500)
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert metrics["protocol"] == "cdr_binary_loso" and metrics["models"]

    # the demo end to end from the wheel (cohort -> extraction -> evaluation with the shipped demo
    # protocol -> reports); without `expr`, so no expression model is trained here
    _run([str(venv / "bin" / "cdrscreen"), "demo", "--out", "demo", "--subjects", "6", "--jobs", "2",
          "--no-ablation", "--features", "pupil,headpose,timing,language"], work, env, timeout=1500)
    demo = json.loads((work / "demo" / "run" / "metrics.json").read_text())
    assert demo["protocol"] == "demo_fusion_loso" and demo["models"]
    assert (work / "demo" / "run" / "reports" / "study.html").is_file()
    assert len(list((work / "demo" / "run" / "reports").rglob("*.html"))) >= 7  # study + 6 patients
