"""The extractor contract shared by every feature group, and the one study runner.

An extractor is a pure function (in its own module) plus a thin object, in the style
of audinterface/opensmile-python:

* ``process_file(path, ...) -> DataFrame``: one row, indexed by ``file``, columns
  prefixed ``<prefix>__``.
* ``process_recording(rec) -> DataFrame``: same, for one manifest row (chooses the
  video, the audio source and the speaker-segments file).
* ``process_study(study, cache=..., n_jobs=...) -> DataFrame``: one row per recording,
  indexed by ``(subject, session, file)``; per-file results are cached by content hash
  and configuration and written atomically, so an interrupted run resumes.

Besides its row, an extractor can return its *signals*: the per-frame or per-segment
series it computed (:meth:`Extractor.process_recording_with_signals`), indexed by
``(file, frame, time)`` or ``(file, start, end)`` as audinterface does. The runner
writes them under a ``signals/`` folder (:mod:`cdrscreen.core.signals`), so reports plot
what the features were computed from instead of recomputing it.

Each extractor class declares what a spec file may set (:attr:`Extractor.Params`, a
strict pydantic model), which shared spec section it takes (:attr:`Extractor.shared`:
``"tracking"`` or ``"audio"``), its signals (:attr:`Extractor.signal_names`) and the
features a patient report places against the cohort (:attr:`Extractor.key_features`);
:meth:`Extractor.describe` is what the feature table records about it.

:func:`run_study` is the one runner behind ``process_study``, :func:`run_extractors` and
:func:`cdrscreen.extract.extract_study`: it schedules one task per recording (all
requested groups of a recording run in the same worker, so the face track that the visual
groups share is computed once), in-process, in local joblib workers or on a Dask cluster.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.cache import FeatureCache, config_hash
from cdrscreen.core.config import StrictModel
from cdrscreen.core.errors import CdrscreenError
from cdrscreen.core.memory import release_free_memory
from cdrscreen.core.signals import check_signal, signal_path, write_signal
from cdrscreen.study import Recording, Study
from cdrscreen.tracking.face import TRACK_VERSION, FaceTrack, track_video

INDEX_NAMES = ("subject", "session", "file")


class ExtractionError(CdrscreenError):
    """Some recordings failed; the message has one line per failed recording."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = list(lines)
        Exception.__init__(self, "\n".join(" ".join(str(x).split()) for x in self.lines))


class NoParams(StrictModel):
    """An extractor without settings of its own."""


class TrackingParams(StrictModel):
    """Settings of the face track that the visual groups share (spec section ``tracking``)."""

    stride: int = Field(1, ge=1, description="Track every stride-th frame.")
    max_faces: int = Field(2, ge=1, description="Faces tracked at once after a second person is seen.")


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as strings (``"inf"``) and paths as text, for JSON files."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else str(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


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
    #: What an extraction spec may set under ``groups.<name>`` (keyword arguments of ``__init__``).
    Params: ClassVar[type[StrictModel]] = NoParams
    #: Shared spec section whose settings this extractor also takes: ``"tracking"``
    #: (:class:`TrackingParams`), ``"audio"`` or None.
    shared: ClassVar[str | None] = None
    #: Names of the signal tables :meth:`process_recording_with_signals` returns.
    signal_names: ClassVar[tuple[str, ...]] = ()
    #: ``(column without prefix, display name)`` of the features a patient report places
    #: against the cohort, most telling first.
    key_features: ClassVar[tuple[tuple[str, str], ...]] = ()

    def describe(self) -> dict[str, Any]:
        """Return what the feature table records about this extractor (JSON-able).

        ``class``, ``version``, ``config`` (:meth:`get_config`), ``config_sha`` (its hash,
        also stamped on every signal table), ``signals`` and ``key_features``.
        """
        cfg = self.get_config()
        return {
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "version": self.version,
            "config": jsonable(cfg),
            "config_sha": config_hash(self.name, cfg),
            "signals": list(self.signal_names),
            "key_features": [list(k) for k in self.key_features],
        }

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

    def process_recording_with_signals(self, rec: Recording) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        """Return the row of :meth:`process_recording` and the signals computed on the way.

        Signals are ``{name: DataFrame}`` for the names in :attr:`signal_names`, each
        indexed by ``(file, frame, time)`` or ``(file, start, end)``. Default: no signals.
        """
        return self.process_recording(rec), {}

    def signals(self, rec: Recording) -> dict[str, pd.DataFrame]:
        """Return the per-frame / per-segment series of one recording (see :meth:`process_recording_with_signals`)."""
        return self.process_recording_with_signals(rec)[1]

    def process_study(
        self,
        study: Study | Sequence[Recording] | str | os.PathLike[str],
        *,
        cache: FeatureCache | str | os.PathLike[str] | None = None,
        n_jobs: int = 1,
        progress: bool = True,
    ) -> pd.DataFrame:
        """Run over every recording of a study (a :class:`~cdrscreen.study.Study`, recordings or a manifest path).

        See :func:`run_study`; for several groups at once use
        :func:`cdrscreen.extract.extract_study`.
        """
        return run_extractors([self], study, cache=cache, n_jobs=n_jobs, progress=progress)


class TrackedExtractor(Extractor):
    """Base of extractors computed from a :class:`~cdrscreen.tracking.face.FaceTrack` (``pupil``, ``headpose``, ``expr``).

    Subclasses implement :meth:`compute` (features and per-frame signals of a track), or only
    :meth:`features_from_track` when they have no signals. ``stride`` and ``max_faces`` select
    the shared track; ``cache_dir`` is where tracks are cached (not part of the
    configuration: moving the cache does not change results).
    """

    shared: ClassVar[str | None] = "tracking"
    stride: int
    max_faces: int
    cache_dir: str | os.PathLike[str] | None

    def get_config(self) -> dict[str, Any]:
        """Parameters that change the output (everything but ``cache_dir``)."""
        cfg = super().get_config()
        cfg.pop("cache_dir", None)
        cfg["__track_version__"] = TRACK_VERSION
        return cfg

    def track(self, path: str | os.PathLike[str]) -> FaceTrack:
        """Return the shared per-frame track of ``path`` (cached in ``cache_dir`` if set)."""
        return track_video(path, stride=self.stride, max_faces=self.max_faces, cache=self.cache_dir)

    def compute(self, track: FaceTrack) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        """Feature values (without prefix) and signals of one track.

        Signals are DataFrames with ``frame`` and ``time`` columns (the runner indexes them
        by ``(file, frame, time)``). Default: :meth:`features_from_track`, no signals.
        """
        return self.features_from_track(track), {}

    def features_from_track(self, track: FaceTrack) -> dict[str, float]:
        """Feature values (without prefix) of one track."""
        return self.compute(track)[0]

    def _row(self, path: str | os.PathLike[str], feats: dict[str, float]) -> pd.DataFrame:
        row = {f"{self.prefix}__{k}": float(v) for k, v in feats.items()}
        return pd.DataFrame([row], index=pd.Index([str(path)], name="file"))

    def process_file(self, path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
        """One-row DataFrame indexed by ``file`` with ``<prefix>__`` columns."""
        return self._row(path, self.features_from_track(self.track(path)))

    def process_recording_with_signals(self, rec: Recording) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        """Row and per-frame signals (indexed by ``(file, frame, time)``) of a recording's video."""
        track = self.track(rec.media)
        release_free_memory()  # what tracking freed (MediaPipe's graphs, frame buffers), before the features
        feats, sig = self.compute(track)
        del track
        out = {}
        for k in list(sig):
            v = sig.pop(k)  # one copy of a long recording's signal alive at a time, not three
            file = np.empty(len(v), dtype=object)
            file[:] = str(rec.media)
            index = pd.MultiIndex.from_arrays([file, v["frame"].to_numpy(), v["time"].to_numpy()],
                                              names=["file", "frame", "time"])
            # the columns' arrays themselves (copy=False), not a copy of the table without frame/time
            data = pd.DataFrame({c: v[c].to_numpy() for c in v.columns if c not in ("frame", "time")},
                                index=index, copy=False)
            data.attrs = dict(v.attrs)
            out[k] = data
            del v
        return self._row(rec.media, feats), out


# --- the study runner -------------------------------------------------------------------
def _index_for(rec: Recording) -> pd.MultiIndex:
    return pd.MultiIndex.from_tuples([(rec.subject, rec.session, str(rec.media))], names=list(INDEX_NAMES))


def _signal_cache_name(extractor: Extractor, name: str) -> str:
    return f"{extractor.name}.signals.{name}"


def _write_signals(extractor: Extractor, rec: Recording, sig: dict[str, pd.DataFrame],
                   signals_dir: Path) -> None:
    sha = config_hash(extractor.name, extractor.get_config())
    for name, df in sig.items():
        write_signal(signal_path(signals_dir, rec.subject, rec.session, str(rec.media), extractor.name, name),
                     df, group=extractor.name, name=name, config_sha=sha)


def _with_file(df: pd.DataFrame, file: str) -> pd.DataFrame:
    """Return a cached signal (computed for a byte-identical file, maybe elsewhere) re-labelled for ``file``."""
    names = list(df.index.names)
    df = df.reset_index()
    df["file"] = file
    return df.set_index(names)


def run_one(extractor: Extractor, rec: Recording, cache: FeatureCache | None,
            signals_dir: str | os.PathLike[str] | None = None, keep_signals: bool = False) -> pd.DataFrame:
    """One extractor on one recording: the cached row if present, else computed and cached.

    With ``signals_dir`` the extractor's signals are written there too; with it or
    ``keep_signals`` they are kept in the cache next to the row, so a cached row comes with
    its signals.

    Returns a one-row DataFrame indexed by ``(subject, session, file)``.
    """
    key = None
    want = (signals_dir is not None or keep_signals) and bool(extractor.signal_names)
    if cache is not None:
        key = cache.key(extractor.name, extractor.get_config(), extractor.inputs(rec))
        hit = cache.load(extractor.name, key)
        cached_sig: dict[str, pd.DataFrame] = {}
        if hit is not None and want:
            for name in extractor.signal_names:
                got = cache.load(_signal_cache_name(extractor, name), key)
                if got is None:
                    hit = None  # made before signals were kept, or removed: recompute
                    break
                cached_sig[name] = _with_file(got, str(rec.media))
        if hit is not None:
            # the entry is keyed by content: it may have been computed for a moved, renamed
            # or byte-identical file, so it gets this recording's index
            hit.index = _index_for(rec)
            if signals_dir is not None:
                _write_signals(extractor, rec, cached_sig, Path(signals_dir))
            return hit
    if want:
        df, sig = extractor.process_recording_with_signals(rec)
        missing = [n for n in extractor.signal_names if n not in sig]
        if missing or set(sig) - set(extractor.signal_names):
            raise CdrscreenError(f"extractor '{extractor.name}' returned signals {sorted(sig)}, "
                                 f"declared {list(extractor.signal_names)}")
        for name, v in sig.items():
            check_signal(v, f"extractor '{extractor.name}' signal '{name}'")
    else:
        df, sig = extractor.process_recording(rec), {}
    if len(df) != 1:
        raise CdrscreenError(f"{rec.media}: extractor '{extractor.name}' returned {len(df)} rows, expected 1")
    bad = [c for c in df.columns if not str(c).startswith(f"{extractor.prefix}__")]
    if bad:
        raise CdrscreenError(f"extractor '{extractor.name}' produced unprefixed columns {bad[:3]}")
    df = df.reset_index(drop=True)
    df.index = _index_for(rec)
    if signals_dir is not None:
        _write_signals(extractor, rec, sig, Path(signals_dir))
    if cache is not None and key is not None:
        for name, v in sig.items():  # signals first: the row's presence marks a complete entry
            cache.save(_signal_cache_name(extractor, name), key, v)
        cache.save(extractor.name, key, df)
    del sig
    release_free_memory()  # the signals' columns: the next group starts from a small heap
    return df


#: What one recording's task returns: (one frame per extractor or None, n computed, error line).
TaskResult = tuple[list[pd.DataFrame] | None, int, str | None]


def _recording_task(extractors: Sequence[Extractor], rec: Recording, cache: FeatureCache | None,
                    signals_dir: Path | None = None, keep_signals: bool = False) -> TaskResult:
    """Run every extractor on one recording; returns (frames, n computed, error line)."""
    computed = 0
    dfs = []
    try:
        for ex in extractors:
            if cache is None or not cache.path_for(ex.name, cache.key(ex.name, ex.get_config(), ex.inputs(rec))).exists():
                computed += 1
            dfs.append(run_one(ex, rec, cache, signals_dir, keep_signals))
    except CdrscreenError as err:  # sent back as text: custom exceptions may not unpickle
        return None, computed, str(err)
    except OSError as err:  # e.g. a media file deleted or unreadable since the manifest check
        where = err.filename or rec.media
        why = "file not found" if isinstance(err, FileNotFoundError) else f"cannot be read ({err.strerror})"
        return None, computed, f"{where}: {why}"
    return dfs, computed, None


def _worker_task(*args: Any) -> TaskResult:
    """:func:`_recording_task` in a worker process, without MediaPipe's start-up log lines."""
    from cdrscreen.core.native import filter_native_stderr

    filter_native_stderr()
    return _recording_task(*args)


def _run_on_cluster(
    sched: Any, extractors: Sequence[Extractor], recs: Sequence[Recording], cache: FeatureCache,
    *, progress: bool, keep_signals: bool = False,
) -> list[TaskResult]:
    """One :func:`_worker_task` per recording on a Dask cluster; results in ``recs`` order.

    Workers keep signals in the (shared, checked) cache only; the client copies them out.
    """
    from cdrscreen.cluster import check_shared_folder, open_client, run_tasks

    with open_client(sched) as client:
        check_shared_folder(client, cache.root)
        return run_tasks(
            client, _worker_task, [(extractors, r, cache, None, keep_signals) for r in recs],
            labels=[str(r.media) for r in recs], progress=progress,
            on_lost=lambda why: (None, 0, why),
        )


@dataclass
class StudyRun:
    """What :func:`run_study` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per recording (manifest order), indexed by ``(subject, session, file)``,
        the extractors' columns side by side.
    computed : int
        (recording, extractor) results computed in this run; the others came from the cache.
    n_tasks : int
        Recordings times extractors.
    """

    table: pd.DataFrame
    computed: int
    n_tasks: int


def run_study(
    extractors: Sequence[Extractor],
    study: Study | Sequence[Recording] | str | os.PathLike[str],
    *,
    cache: FeatureCache | str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    signals_dir: str | os.PathLike[str] | None = None,
) -> StudyRun:
    """Run several extractors over every recording of a study (the one study runner).

    Parameters
    ----------
    extractors : sequence of Extractor
    study : Study, sequence of Recording, or a manifest path
    cache : FeatureCache, path or None
        Per-file cache. Finished (recording, extractor) pairs are stored as soon as they
        complete, so a crash loses nothing already computed.
    n_jobs : int
        Worker processes (joblib, one recording per task); 1 runs in-process.
    scheduler : str, optional
        Dask cluster (``"local:N"`` or ``"tcp://HOST:PORT"``, see :mod:`cdrscreen.cluster`);
        needs a ``cache`` that the workers see at the same path. Excludes ``n_jobs > 1``.
    progress : bool
        Show a progress bar.
    signals_dir : path, optional
        Write every extractor's signals there (:mod:`cdrscreen.core.signals` layout).

    Returns
    -------
    StudyRun

    Raises
    ------
    ExtractionError
        Listing every recording that failed (one line each); results of the recordings
        that succeeded stay cached.
    """
    from joblib import Parallel, delayed

    from cdrscreen.core.progress import media_seconds, track

    if n_jobs < 1:
        raise CdrscreenError(f"jobs must be >= 1, got {n_jobs}")
    sched = None
    if scheduler is not None:
        from cdrscreen.cluster import parse_scheduler, require_dask

        sched = parse_scheduler(scheduler)
        if n_jobs != 1:
            raise CdrscreenError(
                f"jobs={n_jobs} and scheduler={scheduler!r} exclude each other; "
                "for N local processes on a cluster use scheduler local:N"
            )
        require_dask()
        if cache is None:
            raise CdrscreenError("a run on a cluster needs a cache folder that every worker sees")
    if isinstance(study, str | os.PathLike):
        study = Study.from_file(study)
    recs = list(study)
    if isinstance(cache, str | os.PathLike):
        cache = FeatureCache(cache)
    sig_dir = Path(signals_dir) if signals_dir is not None else None

    if sched is not None:
        assert cache is not None
        results = _run_on_cluster(sched, extractors, recs, cache, progress=progress,
                                  keep_signals=sig_dir is not None)
        if sig_dir is not None:  # the workers' signals are in the shared cache: copy them here
            for r, (frames, _, err) in zip(recs, results, strict=True):
                if err is None and frames is not None:
                    for ex in extractors:
                        run_one(ex, r, cache, sig_dir)
    else:
        if n_jobs == 1:
            gen = (_recording_task(extractors, r, cache, sig_dir) for r in recs)
        else:
            gen = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_worker_task)(extractors, r, cache, sig_dir) for r in recs
            )
        with warnings.catch_warnings():
            # loky replaces a worker whose memory grew (MediaPipe graphs) and says so; every
            # task still runs exactly once, so the note is noise for the user
            warnings.filterwarnings("ignore", message="A worker stopped while some jobs", category=UserWarning)
            sizes = media_seconds([r.media for r in recs]) if progress else None
            results = list(track(gen, description="extracting", total=len(recs), disable=not progress,
                                 sizes=sizes, unit="s of media"))

    errors = [f"{r.media}: {e.removeprefix(str(r.media) + ': ')}" for r, (_, _, e) in
              zip(recs, results, strict=True) if e is not None]
    if errors:
        what = f"{len(errors)} of {len(recs)} recordings failed"
        advice = "finished ones are cached; fix and rerun" if cache is not None else "fix and rerun"
        if len(errors) == 1:  # one line: the recording, its problem, and what to do
            raise ExtractionError([f"{errors[0]} ({what}; {advice})"])
        raise ExtractionError([f"{what} ({advice})", *errors])

    blocks = [pd.concat([res[0][i] for res in results]) for i in range(len(extractors)) if recs]  # type: ignore[index]
    if blocks:
        table = pd.concat(blocks, axis=1)
    else:
        table = pd.DataFrame(index=pd.MultiIndex.from_tuples(
            [(r.subject, r.session, str(r.media)) for r in recs], names=list(INDEX_NAMES)))
    computed = sum(res[1] for res in results)
    return StudyRun(table, computed, len(recs) * len(extractors))


def run_extractors(
    extractors: Sequence[Extractor],
    study: Study | Sequence[Recording] | str | os.PathLike[str],
    *,
    cache: FeatureCache | str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Run several extractors over a study; return one wide feature table.

    Shorthand for ``run_study(...).table`` (see :func:`run_study`).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(subject, session, file)``, columns prefixed by feature group.
    """
    return run_study(extractors, study, cache=cache, n_jobs=n_jobs, progress=progress).table


__all__ = [
    "INDEX_NAMES",
    "ExtractionError",
    "Extractor",
    "NoParams",
    "StudyRun",
    "TrackedExtractor",
    "TrackingParams",
    "jsonable",
    "run_extractors",
    "run_one",
    "run_study",
]
