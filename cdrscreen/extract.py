"""Study-level feature extraction: every feature group over every recording, resumably.

>>> from cdrscreen.extract import extract_study
>>> df = extract_study("study.csv", ["pupil", "headpose", "mfcc"], "features.parquet")  # doctest: +SKIP

The result is one row per recording, indexed by ``(subject, session, file)``, with the
feature columns of each group (``pupil__*``, ``headpose__*``, ``mfcc__*``, ...) and the
manifest's label and covariates as ``meta__cdr``, ``meta__age``, ``meta__sex``,
``meta__mmse`` (and ``meta__cov_<name>`` for extra ``cov_*`` columns), so the Parquet file
is self-contained for evaluation.

Work is scheduled per recording: all requested groups of one recording run in the same
worker, so the face track that ``pupil``, ``headpose`` and ``expr`` share is computed
once. Each (recording, group) result is cached by content hash and configuration as soon
as it is finished (atomic writes), so a run killed at any point resumes where it stopped.

Recordings run one after another (``n_jobs=1``), in local joblib worker processes
(``n_jobs > 1``), or as tasks on a Dask cluster (``scheduler="local:N"`` or
``"tcp://HOST:PORT"``, see :mod:`cdrscreen.cluster` and ``docs/scale-out.md``); the table
is the same either way.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cdrscreen.core.io import write_parquet
from cdrscreen.cache import FeatureCache, default_cache_dir
from cdrscreen.core.errors import CdrscreenError
from cdrscreen.features import REGISTRY, Extractor, get_extractor
from cdrscreen.features.base import INDEX_NAMES, _one
from cdrscreen.study import Recording, Study

META_COLUMNS = ("cdr", "age", "sex", "mmse")


class ExtractionError(CdrscreenError):
    """Some recordings failed; the message has one line per failed recording."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = list(lines)
        Exception.__init__(self, "\n".join(" ".join(str(x).split()) for x in self.lines))


def parse_features(features: str | Sequence[str]) -> list[str]:
    """Feature-group names from a list or a comma-separated string (duplicates removed)."""
    items = features.split(",") if isinstance(features, str) else list(features)
    names = list(dict.fromkeys(s.strip() for s in items if s and s.strip()))
    if not names:
        raise CdrscreenError(f"no feature groups given; available: {', '.join(REGISTRY)}")
    return names


def make_extractors(
    names: Sequence[str],
    *,
    stride: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    max_faces: int | None = None,
    embedder: str | os.PathLike[str] | None = None,
    allow_non_expression: bool = False,
) -> list[Extractor]:
    """Instantiate the named extractors, passing ``stride``/``cache_dir``/``max_faces``/``embedder`` where accepted."""
    out = []
    for name in names:
        ex = get_extractor(name)
        accepted = inspect.signature(type(ex).__init__).parameters
        params: dict[str, Any] = {}
        if "stride" in accepted:
            params["stride"] = stride
        if "cache_dir" in accepted and cache_dir is not None:
            params["cache_dir"] = str(cache_dir)
        if "max_faces" in accepted and max_faces is not None:
            params["max_faces"] = max_faces
        if "embedder" in accepted and embedder is not None:
            params["embedder"] = str(embedder)
        if "allow_non_expression" in accepted and allow_non_expression:
            params["allow_non_expression"] = True
        out.append(get_extractor(name, **params) if params else ex)
    return out


def _worker_task(*args: Any) -> Any:
    """:func:`_recording_task` in a worker process, without MediaPipe's start-up log lines."""
    from cdrscreen.core.native import filter_native_stderr

    filter_native_stderr()
    return _recording_task(*args)


def _recording_task(
    extractors: Sequence[Extractor], rec: Recording, cache: FeatureCache
) -> tuple[list[pd.DataFrame] | None, int, str | None]:
    """Run every extractor on one recording; returns (frames, n computed, error line)."""
    computed = 0
    dfs = []
    try:
        for ex in extractors:
            key = cache.key(ex.name, ex.get_config(), ex.inputs(rec))
            if not cache.path_for(ex.name, key).exists():
                computed += 1
            dfs.append(_one(ex, rec, cache))
    except CdrscreenError as err:  # sent back as text: custom exceptions may not unpickle
        return None, computed, str(err)
    except OSError as err:  # e.g. a media file deleted or unreadable since the manifest check
        where = err.filename or rec.media
        why = "file not found" if isinstance(err, FileNotFoundError) else f"cannot be read ({err.strerror})"
        return None, computed, f"{where}: {why}"
    return dfs, computed, None


def _run_on_cluster(
    sched: Any, extractors: Sequence[Extractor], recs: Sequence[Recording], cache: FeatureCache,
    *, progress: bool,
) -> list[tuple[list[pd.DataFrame] | None, int, str | None]]:
    """One :func:`_worker_task` per recording on a Dask cluster; results in ``recs`` order."""
    from cdrscreen.cluster import check_shared_folder, open_client, run_tasks

    with open_client(sched) as client:
        check_shared_folder(client, cache.root)
        return run_tasks(
            client, _worker_task, [(extractors, r, cache) for r in recs],
            labels=[str(r.media) for r in recs], progress=progress,
            on_lost=lambda why: (None, 0, why),
        )


def shared_media(recs: Sequence[Recording], cache: FeatureCache) -> list[list[str]]:
    """Return the groups of recordings of *different* subjects whose media are byte-identical.

    A copied file under a second subject puts the same measurements on both sides of a
    leave-one-subject-out split; this is almost always a manifest mistake. Hashes come from
    the cache's memo, so this costs nothing after extraction.
    """
    by_hash: dict[str, list[Recording]] = {}
    for r in recs:
        by_hash.setdefault(cache.content_hash(r.media), []).append(r)
    return [[f"{r.subject}/{r.session}: {r.media}" for r in group] for group in by_hash.values()
            if len({r.subject for r in group}) > 1]


def meta_frame(recs: Sequence[Recording]) -> pd.DataFrame:
    """``meta__*`` columns (label and covariates) indexed like the feature table."""
    rows, index = [], []
    for r in recs:
        row: dict[str, Any] = {f"meta__{c}": getattr(r, c) for c in META_COLUMNS}
        row.update({f"meta__cov_{k}": v for k, v in r.covariates.items()})
        rows.append(row)
        index.append((r.subject, r.session, str(r.media)))
    df = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=list(INDEX_NAMES)))
    df["meta__cdr"] = df["meta__cdr"].astype(float)
    for c in ("meta__age", "meta__mmse"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["meta__sex"] = df["meta__sex"].astype("string")
    return df


def extract_study(
    manifest: str | os.PathLike[str] | Study,
    features: str | Sequence[str],
    out: str | os.PathLike[str] | None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    stride: int = 1,
    progress: bool = True,
    max_faces: int | None = None,
    scheduler: str | None = None,
    embedder: str | os.PathLike[str] | None = None,
    allow_non_expression: bool = False,
) -> pd.DataFrame:
    """Extract feature groups for every recording of a study and write them to Parquet.

    Parameters
    ----------
    manifest : path or Study
        Study manifest (CSV/TSV/YAML) or an already loaded :class:`~cdrscreen.study.Study`.
    features : list of str or str
        Registered feature-group names (``pupil``, ``headpose``, ``mfcc``, ...), or a
        comma-separated string.
    out : path or None
        Parquet file to write (atomically); ``None`` writes nothing.
    cache_dir : path, optional
        Per-file cache (default ``$CDRSCREEN_CACHE`` or ``~/.cache/cdrscreen``). Finished
        results are reused on the next run; the face tracks of visual groups live there too.
    n_jobs : int, default 1
        Worker processes (joblib, one recording per task).
    stride : int, default 1
        Frame stride for the visual groups (track every ``stride``-th frame).
    progress : bool, default True
        Show a progress bar on a terminal.
    max_faces : int, optional
        Faces the visual groups may track at once after a second person is seen (default
        2; see ``docs/features-visual.md``).
    scheduler : str, optional
        Run the recordings as tasks on a Dask cluster: ``"local:N"`` starts ``N`` worker
        processes on this machine, ``"tcp://HOST:PORT"`` uses a running scheduler whose
        workers must see the media files and ``cache_dir`` at the same paths (shared file
        system). ``None`` (default) uses ``n_jobs`` local processes. Needs the
        ``cluster`` extra.
    embedder : path, optional
        Expression embedder (ONNX) for the ``expr`` group (default
        ``$CDRSCREEN_EXPR_EMBEDDER``).
    allow_non_expression : bool, default False
        Let ``expr`` use an embedder whose classes are not facial expressions.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(subject, session, file)``; feature columns prefixed by group, plus
        ``meta__*`` columns. ``df.attrs["extract"]`` records the groups, stride and how
        many (recording, group) results were computed versus taken from the cache.

    Raises
    ------
    ExtractionError
        Listing every recording that failed (one line each); results of the recordings
        that succeeded stay cached.
    cdrscreen.cluster.SchedulerError
        A malformed ``scheduler``, an unreachable scheduler, or a cache folder the
        workers cannot see (one line naming it).
    """
    from joblib import Parallel, delayed

    from cdrscreen.core.progress import track

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
    study = manifest if isinstance(manifest, Study) else Study.from_file(manifest)
    names = parse_features(features)
    if stride < 1:
        raise CdrscreenError(f"stride must be >= 1, got {stride}")
    if n_jobs < 1:
        raise CdrscreenError(f"jobs must be >= 1, got {n_jobs}")
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if sched is not None:  # workers have their own working directory
        cache_root = cache_root.resolve()
    cache = FeatureCache(cache_root)
    extractors = make_extractors(names, stride=stride, cache_dir=cache_root, max_faces=max_faces,
                                 embedder=embedder, allow_non_expression=allow_non_expression)
    for ex in extractors:  # a missing model or an unsuitable embedder fails once, before any recording
        check = getattr(ex, "check", None)
        if callable(check):
            check()
    recs = list(study)

    if sched is not None:
        results = _run_on_cluster(sched, extractors, recs, cache, progress=progress)
    else:
        if n_jobs == 1:
            gen = (_recording_task(extractors, r, cache) for r in recs)
        else:
            gen = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_worker_task)(extractors, r, cache) for r in recs
            )
        with warnings.catch_warnings():
            # loky replaces a worker whose memory grew (MediaPipe graphs) and says so; every
            # task still runs exactly once, so the note is noise for the user
            warnings.filterwarnings("ignore", message="A worker stopped while some jobs", category=UserWarning)
            results = list(track(gen, description="extracting", total=len(recs), disable=not progress))

    errors = [f"{r.media}: {e.removeprefix(str(r.media) + ': ')}" for r, (_, _, e) in
              zip(recs, results, strict=True) if e is not None]
    if errors:
        what = f"{len(errors)} of {len(recs)} recordings failed"
        advice = "finished ones are cached; fix and rerun"
        if len(errors) == 1:  # one line: the recording, its problem, and what to do
            raise ExtractionError([f"{errors[0]} ({what}; {advice})"])
        raise ExtractionError([f"{what} ({advice})", *errors])

    blocks = []
    for i, _ in enumerate(extractors):
        blocks.append(pd.concat([res[0][i] for res in results]))  # type: ignore[index]
    feats = pd.concat(blocks, axis=1) if blocks else pd.DataFrame()
    meta = meta_frame(recs)
    df = pd.concat([feats, meta], axis=1).loc[meta.index]
    computed = sum(res[1] for res in results)
    df.attrs["extract"] = {
        "features": names, "stride": stride, "n_recordings": len(recs),
        "computed": computed, "cached": len(recs) * len(extractors) - computed,
        "shared_media": shared_media(recs, cache),
    }
    if out is not None:
        write_parquet(out, df)
    return df
