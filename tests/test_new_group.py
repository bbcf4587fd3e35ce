"""A new feature group needs one module (here: this test) and one registry line (here: ``register``).

Nothing else changes: the extraction spec accepts its settings, the feature table gets its
columns and records its configuration, its signal is written beside the table, and the
patient report places its key feature against the cohort and draws its signal.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.features.base import Extractor
from cdrscreen.study import Recording
from tests.fixtures_reports import make_feature_table, make_runs


# --- the whole new group: pure function, params, extractor ---------------------------------
def frame_brightness(path: str | os.PathLike[str], every: int = 1) -> pd.DataFrame:
    """Mean grey level (0-255) of every ``every``-th decoded frame: ``frame``, ``time``, ``brightness``."""
    from cdrscreen.media.video import iter_frames

    rows = [(fr.index, fr.time, float(fr.rgb.mean())) for fr in iter_frames(path, stride=every)]
    return pd.DataFrame(rows, columns=["frame", "time", "brightness"])


class BrightnessParams(StrictModel):
    every: int = Field(1, ge=1)


class BrightnessExtractor(Extractor):
    """Video brightness (``bright__mean``, ``bright__std``) and its per-frame signal."""

    name = "bright"
    prefix = "bright"
    Params = BrightnessParams
    signal_names: ClassVar[tuple[str, ...]] = ("frames",)
    key_features: ClassVar[tuple[tuple[str, str], ...]] = (("mean", "mean brightness (grey level)"),)

    def __init__(self, every: int = 1) -> None:
        self.every = every

    def _compute(self, path: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        frames = frame_brightness(path, self.every)
        row = pd.DataFrame({"bright__mean": [frames["brightness"].mean()],
                            "bright__std": [frames["brightness"].std()]}, index=pd.Index([str(path)], name="file"))
        frames.insert(0, "file", str(path))
        return row, frames.set_index(["file", "frame", "time"])

    def process_file(self, path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
        return self._compute(path)[0]

    def process_recording_with_signals(self, rec: Recording) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        row, frames = self._compute(rec.media)
        return row, {"frames": frames}


@pytest.fixture()
def registered() -> Any:
    from cdrscreen.features.registry import REGISTRY, register

    register("bright", f"{__name__}:BrightnessExtractor")  # the one registry line
    yield
    REGISTRY.pop("bright")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cdrscreen.demo import Trajectories, render_face_video

    d = tmp_path_factory.mktemp("bright")
    for i, name in enumerate(("a.mp4", "b.mp4")):
        render_face_video(d / name, ["astronaut", "grace_hopper"][i], Trajectories.constant(12), fps=25)
    (d / "study.csv").write_text("subject,session,video,cdr\nS1,1,a.mp4,0.5\nS2,1,b.mp4,1\n")
    return d


def test_new_group_extracts_with_spec_columns_config_and_signal(registered, videos: Path, tmp_path: Path) -> None:
    from cdrscreen.core.signals import read_signal, signal_path, signals_root
    from cdrscreen.extract import extract_study

    out = tmp_path / "features.parquet"
    df = extract_study(videos / "study.csv", "bright", out, overrides=["groups.bright.every=2"],
                       cache_dir=tmp_path / "cache", progress=False)
    assert [c for c in df.columns if c.startswith("bright__")] == ["bright__mean", "bright__std"]
    rec = pd.read_parquet(out).attrs["extractors"]["bright"]
    assert rec["config"]["every"] == 2 and rec["key_features"] == [["mean", "mean brightness (grey level)"]]
    sig = read_signal(signal_path(signals_root(out), "S1", "1", str(videos / "a.mp4"), "bright", "frames"),
                      rec["config_sha"])
    assert sig is not None and sig.index.get_level_values("frame").tolist()[:3] == [0, 2, 4]
    assert df["bright__mean"].iloc[0] == pytest.approx(sig["brightness"].mean())


def test_new_group_shows_in_the_patient_report(registered, videos: Path, tmp_path: Path) -> None:
    from cdrscreen.core.signals import signal_path, write_signal
    from cdrscreen.reports import build_reports

    ex = BrightnessExtractor()
    real_row, real_sig = ex.process_recording_with_signals(
        Recording(subject="P001", session="1", video=videos / "a.mp4", cdr=0.5))
    table = make_feature_table(16, seed=3)
    rng = np.random.default_rng(0)
    table["bright__mean"] = 100 + rng.normal(0, 5, len(table))
    table["bright__std"] = 10 + rng.normal(0, 1, len(table))
    own = table.index.get_level_values("subject") == "P001"
    table.loc[own, "bright__mean"] = float(real_row["bright__mean"].iloc[0])
    table.attrs["extractors"]["bright"] = ex.describe()
    root = tmp_path / "study"
    run, _ = make_runs(root, table, ablation=False)
    file = table.index[own][0][2]
    write_signal(signal_path(root / "signals", "P001", "1", file, "bright", "frames"),
                 real_sig["frames"], group="bright", name="frames", config_sha=ex.describe()["config_sha"])
    (path,) = build_reports(run, tmp_path / "reports", subject="P001", n_jobs=1)
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", path.read_text())
    assert "mean brightness (grey level)" in html  # the declared key feature, against the cohort
    assert "bright: frames over time" in html      # the signal, drawn from signals/
