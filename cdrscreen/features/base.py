"""The extractor contract shared by every feature group.

An extractor is a pure function (in its own module) plus a thin object, in the style
of audinterface/opensmile-python:

* ``process_file(path, ...) -> DataFrame``: one row, indexed by ``file``, columns
  prefixed ``<prefix>__``.
* ``process_recording(rec) -> DataFrame``: same, for one manifest row (chooses the
  video, the audio source and the speaker-segments file).
* ``process_study(study, cache=..., n_jobs=...) -> DataFrame``: one row per recording,
  indexed by ``(subject, session, file)``; per-file results are cached by content hash
  and configuration and written atomically, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from cdrscreen.cache import FeatureCache
from cdrscreen.core.errors import CdrscreenError
from cdrscreen.study import Recording, Study

INDEX_NAMES = ("subject", "session", "file")


class Extractor(ABC):
    """Base class of feature extractors.

    Subclasses set :attr:`name` (registry name and cache folder) and :attr:`prefix`
    (column prefix), store their parameters in ``__init__`` only, and implement
    :meth:`process_file`. :meth:`get_config` returns the parameters that change the
    output; it is part of the cache key.
    """

    name: ClassVar[str]
    prefix: ClassVar[str]
    #: Bump when the computation changes so that cached results are invalidated.
    version: ClassVar[int] = 1

    def get_config(self) -> dict[str, Any]:
        """Parameters that determine the output (default: public instance attributes)."""
        if dataclasses.is_dataclass(self):
            cfg = dataclasses.asdict(self)
        else:
            cfg = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        cfg["__version__"] = self.version
        return cfg

    @abstractmethod
    def process_file(self, path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
        """Features of one media file: a one-row DataFrame indexed by ``file``."""

    # -- recordings ------------------------------------------------------------------
    def inputs(self, rec: Recording) -> list[Path | None]:
        """Files whose content determines this extractor's output for ``rec``."""
        return [rec.video if rec.video is not None else rec.audio]

    def process_recording(self, rec: Recording) -> pd.DataFrame:
        """Features of one manifest row (default: ``process_file`` on the main media)."""
        return self.process_file(rec.media)

    def process_study(
        self,
        study: Study | Sequence[Recording],
        *,
        cache: FeatureCache | str | os.PathLike[str] | None = None,
        n_jobs: int = 1,
        progress: bool = True,
    ) -> pd.DataFrame:
        """Run over every recording; see :func:`run_extractors`."""
        return run_extractors([self], study, cache=cache, n_jobs=n_jobs, progress=progress)


def _index_for(rec: Recording) -> pd.MultiIndex:
    return pd.MultiIndex.from_tuples([(rec.subject, rec.session, str(rec.media))], names=list(INDEX_NAMES))


def _one(extractor: Extractor, rec: Recording, cache: FeatureCache | None) -> pd.DataFrame:
    key = None
    if cache is not None:
        key = cache.key(extractor.name, extractor.get_config(), extractor.inputs(rec))
        hit = cache.load(extractor.name, key)
        if hit is not None:
            # the entry is keyed by content: it may have been computed for a moved, renamed
            # or byte-identical file, so it gets this recording's index
            hit.index = _index_for(rec)
            return hit
    df = extractor.process_recording(rec)
    if len(df) != 1:
        raise CdrscreenError(f"{rec.media}: extractor '{extractor.name}' returned {len(df)} rows, expected 1")
    bad = [c for c in df.columns if not str(c).startswith(f"{extractor.prefix}__")]
    if bad:
        raise CdrscreenError(f"extractor '{extractor.name}' produced unprefixed columns {bad[:3]}")
    df = df.reset_index(drop=True)
    df.index = _index_for(rec)
    if cache is not None and key is not None:
        cache.save(extractor.name, key, df)
    return df


def run_extractors(
    extractors: Sequence[Extractor],
    study: Study | Sequence[Recording],
    *,
    cache: FeatureCache | str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Run several extractors over a study; return one wide feature table.

    Parameters
    ----------
    extractors : sequence of Extractor
    study : Study or sequence of Recording
    cache : FeatureCache, path or None
        Per-file cache. Finished (recording, extractor) pairs are stored as soon as they
        complete, so a crash loses nothing already computed.
    n_jobs : int
        Worker processes (joblib, ``loky`` backend); 1 runs in-process.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(subject, session, file)``, columns prefixed by feature group.
    """
    from joblib import Parallel, delayed

    from cdrscreen.core.progress import track

    recs = list(study)
    if isinstance(cache, str | os.PathLike):
        cache = FeatureCache(cache)
    tasks = [(ex, rec) for rec in recs for ex in extractors]
    if n_jobs == 1:
        results = [
            _one(ex, rec, cache)
            for ex, rec in track(tasks, description="extracting", total=len(tasks), disable=not progress)
        ]
    else:
        gen = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_one)(ex, rec, cache) for ex, rec in tasks
        )
        results = list(track(gen, description="extracting", total=len(tasks), disable=not progress))
    by_ex: dict[str, list[pd.DataFrame]] = {}
    for (ex, _), df in zip(tasks, results, strict=True):
        by_ex.setdefault(ex.name, []).append(df)
    blocks = [pd.concat(dfs) for dfs in by_ex.values()]
    if not blocks:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=list(INDEX_NAMES)))
    return pd.concat(blocks, axis=1)
