"""Content-hashed cache and the extractor runner (resume, atomicity, validation)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cdrscreen.cache import FeatureCache
from cdrscreen.core.errors import CdrscreenError
from cdrscreen.core.io import atomic_path, write_json
from cdrscreen.features import get_extractor
from cdrscreen.features.base import Extractor, run_extractors
from cdrscreen.study import Study


class ByteStats(Extractor):
    """A tiny real extractor over file bytes; counts its calls to observe caching."""

    name = "bytes"
    prefix = "bytes"
    calls: list[str] = []

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def process_file(self, path: Any, **kwargs: Any) -> pd.DataFrame:
        ByteStats.calls.append(str(path))
        b = np.frombuffer(Path(path).read_bytes(), np.uint8).astype(float)
        return pd.DataFrame({"bytes__mean": [b.mean() * self.scale], "bytes__n": [b.size]}, index=[str(path)])


@pytest.fixture()
def study(tmp_path: Path, tiny_media: dict[str, Path]) -> Study:
    shutil.copy(tiny_media["video"], tmp_path / "a.mp4")
    shutil.copy(tiny_media["video_b"], tmp_path / "b.mp4")
    m = tmp_path / "m.csv"
    m.write_text("subject,video,cdr\nS1,a.mp4,0.5\nS2,b.mp4,1\n")
    return Study.from_file(m)


def test_runner_indexes_by_subject_session_file(study: Study, tmp_path: Path) -> None:
    df = run_extractors([ByteStats()], study, cache=tmp_path / "cache", progress=False)
    assert df.index.names == ["subject", "session", "file"]
    assert list(df.index.get_level_values("subject")) == ["S1", "S2"]
    assert df["bytes__n"].tolist() == [r.video.stat().st_size for r in study]


def test_cache_hit_skips_work_and_config_change_recomputes(study: Study, tmp_path: Path) -> None:
    ByteStats.calls = []
    a = run_extractors([ByteStats()], study, cache=tmp_path / "c", progress=False)
    assert len(ByteStats.calls) == 2
    b = run_extractors([ByteStats()], study, cache=tmp_path / "c", progress=False)
    assert len(ByteStats.calls) == 2  # all from cache
    pd.testing.assert_frame_equal(a, b)
    run_extractors([ByteStats(scale=2.0)], study, cache=tmp_path / "c", progress=False)
    assert len(ByteStats.calls) == 4  # new config -> recomputed


def test_cache_keyed_by_content_not_path(study: Study, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    rec = study.recordings[0]
    moved = tmp_path / "moved.mp4"
    shutil.copy(rec.video, moved)
    k1 = cache.key("bytes", {"x": 1}, [rec.video])
    assert cache.key("bytes", {"x": 1}, [moved]) == k1
    with open(moved, "ab") as fh:
        fh.write(b"\0")
    assert cache.key("bytes", {"x": 1}, [moved]) != k1
    assert cache.key("bytes", {"x": 2}, [rec.video]) != k1


def test_resume_recomputes_only_missing(study: Study, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    ex = ByteStats()
    full = run_extractors([ex], study, cache=cache, progress=False)
    # simulate a run killed after the first file: drop the second entry
    k2 = cache.key(ex.name, ex.get_config(), ex.inputs(study.recordings[1]))
    cache.path_for(ex.name, k2).unlink()
    ByteStats.calls = []
    again = run_extractors([ex], study, cache=cache, progress=False)
    assert ByteStats.calls == [str(study.recordings[1].video)]
    pd.testing.assert_frame_equal(full, again)


def test_corrupt_entry_is_recomputed(study: Study, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    ex = ByteStats()
    run_extractors([ex], study, cache=cache, progress=False)
    k = cache.key(ex.name, ex.get_config(), ex.inputs(study.recordings[0]))
    cache.path_for(ex.name, k).write_bytes(b"truncated")
    ByteStats.calls = []
    run_extractors([ex], study, cache=cache, progress=False)
    assert ByteStats.calls == [str(study.recordings[0].video)]


def test_parallel_equals_serial(study: Study, tmp_path: Path) -> None:
    a = run_extractors([ByteStats()], study, cache=None, progress=False)
    b = run_extractors([ByteStats()], study, cache=None, n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(a, b)


def test_unprefixed_columns_rejected(study: Study) -> None:
    class Bad(ByteStats):
        name = "bad"
        prefix = "bad"

    with pytest.raises(CdrscreenError, match="unprefixed columns"):
        run_extractors([Bad()], study, progress=False)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert target.read_text().strip().startswith("{") and '"v": 1' in target.read_text()
    assert list(tmp_path.iterdir()) == [target]


def test_unknown_feature_group_suggests() -> None:
    with pytest.raises(CdrscreenError, match="did you mean 'pupil'"):
        get_extractor("pupl")


def test_atomic_write_has_normal_permissions(tmp_path: Path) -> None:
    import os

    target = write_json(tmp_path / "p.json", {})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert os.stat(target).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
