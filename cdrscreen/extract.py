"""Study-level feature extraction: every feature group over every recording, resumably.

>>> from cdrscreen.extract import extract_study
>>> df = extract_study("study.csv", ["pupil", "headpose", "mfcc"], "features.parquet")  # doctest: +SKIP

The result is one row per recording, indexed by ``(subject, session, file)``, with the
feature columns of each group (``pupil__*``, ``headpose__*``, ``mfcc__*``, ...) and the
manifest's label and covariates as ``meta__cdr``, ``meta__age``, ``meta__sex``,
``meta__mmse`` (and ``meta__cov_<name>`` for extra ``cov_*`` columns), so the Parquet file
is self-contained for evaluation.

Work is scheduled per recording by the one study runner
(:func:`cdrscreen.features.base.run_study`): all requested groups of one recording run in
the same worker, so the face track that ``pupil``, ``headpose`` and ``expr`` share is
computed once. Each (recording, group) result is cached by content hash and configuration as soon
as it is finished (atomic writes), so a run killed at any point resumes where it stopped.

Recordings run one after another (``n_jobs=1``), in local joblib worker processes
(``n_jobs > 1``), or as tasks on a Dask cluster (``scheduler="local:N"`` or
``"tcp://HOST:PORT"``, see :mod:`cdrscreen.cluster` and ``docs/scale-out.md``); the table
is the same either way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cdrscreen.cache import FeatureCache, default_cache_dir
from cdrscreen.core.errors import CdrscreenError
from cdrscreen.core.io import write_parquet
from cdrscreen.core.signals import signals_root
from cdrscreen.extract_spec import ExtractionSpec, load_spec, make_extractors
from cdrscreen.features.base import INDEX_NAMES, ExtractionError, run_study
from cdrscreen.features.recording_warnings import add_warnings
from cdrscreen.features.registry import REGISTRY
from cdrscreen.study import Recording, Study

META_COLUMNS = ("cdr", "age", "sex", "mmse")


def parse_features(features: str | Sequence[str]) -> list[str]:
    """Feature-group names from a list or a comma-separated string (duplicates removed)."""
    items = features.split(",") if isinstance(features, str) else list(features)
    names = list(dict.fromkeys(s.strip() for s in items if s and s.strip()))
    if not names:
        raise CdrscreenError(f"no feature groups given; available: {', '.join(REGISTRY)}")
    return names


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
        # where the media are, so that reports read the same files (never features)
        row.update({f"meta__{m}_path": str(getattr(r, m)) if getattr(r, m) is not None else None
                    for m in ("video", "audio", "segments")})
        rows.append(row)
        index.append((r.subject, r.session, str(r.media)))
    df = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=list(INDEX_NAMES)))
    df["meta__cdr"] = df["meta__cdr"].astype(float)
    for c in ("meta__age", "meta__mmse"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["meta__sex"] = df["meta__sex"].astype("string")
    for m in ("video", "audio", "segments"):
        df[f"meta__{m}_path"] = df[f"meta__{m}_path"].astype("string")
    return df


def extract_study(
    manifest: str | os.PathLike[str] | Study,
    features: str | Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    spec: str | os.PathLike[str] | dict[str, Any] | ExtractionSpec | None = None,
    overrides: Sequence[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    stride: int | None = None,
    progress: bool = True,
    max_faces: int | None = None,
    scheduler: str | None = None,
    signals: bool = True,
) -> pd.DataFrame:
    """Extract feature groups for every recording of a study and write them to Parquet.

    Parameters
    ----------
    manifest : path or Study
        Study manifest (CSV/TSV/YAML) or an already loaded :class:`~cdrscreen.study.Study`.
    features : list of str or str, optional
        Registered feature-group names (``pupil``, ``headpose``, ``mfcc``, ...), or a
        comma-separated string; replaces the spec's ``features``.
    out : path or None
        Parquet file to write (atomically); ``None`` writes nothing. The signals go to
        ``signals/`` beside it (:mod:`cdrscreen.core.signals`).
    spec : path, dict or ExtractionSpec, optional
        Extraction spec (:mod:`cdrscreen.extract_spec`); default the shipped preset
        ``cdrscreen/resources/extraction/default.yaml``.
    overrides : list of str, optional
        ``key.path=value`` changes to the spec (``cdrscreen extract --set``).
    cache_dir : path, optional
        Per-file cache (default ``$CDRSCREEN_CACHE`` or ``~/.cache/cdrscreen``). Finished
        results are reused on the next run; the face tracks of visual groups live there too.
    n_jobs : int, default 1
        Worker processes (joblib, one recording per task).
    stride : int, optional
        Frame stride for the visual groups (track every ``stride``-th frame); replaces
        the spec's ``tracking.stride`` (default 1).
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
    signals : bool, default True
        Write the extractors' per-frame / per-segment signals beside ``out``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(subject, session, file)``; feature columns prefixed by group, plus
        ``meta__*`` columns. ``df.attrs["extractors"]`` records every extractor's
        configuration (:meth:`~cdrscreen.features.base.Extractor.describe`);
        ``df.attrs["extract"]`` the resolved spec, the groups, stride, the signals folder
        and how many (recording, group) results were computed versus taken from the
        cache. Both survive the Parquet round trip.

    Raises
    ------
    ExtractionError
        Listing every recording that failed (one line each); results of the recordings
        that succeeded stay cached.
    cdrscreen.cluster.SchedulerError
        A malformed ``scheduler``, an unreachable scheduler, or a cache folder the
        workers cannot see (one line naming it).
    """
    if scheduler is not None:  # checked before any work: a malformed value, jobs, dask missing
        from cdrscreen.cluster import parse_scheduler, require_dask

        parse_scheduler(scheduler)
        if n_jobs != 1:
            raise CdrscreenError(
                f"jobs={n_jobs} and scheduler={scheduler!r} exclude each other; "
                "for N local processes on a cluster use scheduler local:N"
            )
        require_dask()
    if features is not None:
        features = parse_features(features)
    resolved = load_spec(spec, overrides, features=features, stride=stride, max_faces=max_faces)
    study = manifest if isinstance(manifest, Study) else Study.from_file(manifest)
    names = resolved.features
    if n_jobs < 1:
        raise CdrscreenError(f"jobs must be >= 1, got {n_jobs}")
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if scheduler is not None:  # workers have their own working directory
        cache_root = cache_root.resolve()
    cache = FeatureCache(cache_root)
    extractors = make_extractors(resolved, cache_dir=cache_root)
    for ex in extractors:  # a missing model or an unsuitable embedder fails once, before any recording
        check = getattr(ex, "check", None)
        if callable(check):
            check()
    recs = list(study)
    sig_dir = signals_root(out) if out is not None and signals else None
    run = run_study(extractors, recs, cache=cache, n_jobs=n_jobs, scheduler=scheduler, progress=progress,
                    signals_dir=sig_dir)
    feats = run.table
    meta = meta_frame(recs)
    df = add_warnings(pd.concat([feats, meta], axis=1).loc[meta.index])
    df.attrs["extractors"] = {ex.name: ex.describe() for ex in extractors}
    df.attrs["extract"] = {
        "features": names, "stride": resolved.tracking.stride, "n_recordings": len(recs),
        "computed": run.computed, "cached": run.n_tasks - run.computed,
        "shared_media": shared_media(recs, cache), "spec": resolved.to_dict(),
        "signals": sig_dir.name if sig_dir is not None else None,
    }
    if out is not None:
        write_parquet(out, df)
    return df


__all__ = ["META_COLUMNS", "ExtractionError", "ExtractionSpec", "extract_study", "load_spec",
           "make_extractors", "meta_frame", "parse_features", "shared_media"]
