"""Extract feature groups (visual, speech, expression) for every recording of a study into one Parquet table.

The table has one row per recording, indexed by (subject, session, file), with columns
prefixed by group (pupil__, headpose__, mfcc__, ...) and the manifest's label and
covariates as meta__cdr, meta__age, meta__sex, meta__mmse. Results are cached per file
by content hash and configuration: an interrupted run resumes, and rerunning after adding
a group computes only that group. Example:
cdrscreen extract study.csv --features pupil,headpose,mfcc --out features.parquet --jobs 2
Every extractor parameter can be set in a spec file (--spec; default the shipped preset,
docs/extraction.md) or with --set key.path=value, e.g. --set groups.pupil.nperseg=16.
Per-frame and per-segment signals go to signals/ beside the table (reports read them).
On a Dask cluster (needs the cluster extra; docs/scale-out.md):
cdrscreen extract study.csv --scheduler tcp://HOST:8786 --cache /shared/cache
"""

# ruff: noqa: B008  (typer declares options as argument defaults)
from __future__ import annotations

from pathlib import Path

import typer

NAME = "extract"


def command(
    manifest: Path = typer.Argument(..., help="Study manifest (.csv, .tsv or .yaml), one row per recording."),
    features: str | None = typer.Option(
        None, "--features", "-f",
        help="Comma-separated feature groups: pupil, headpose, mfcc, gemaps, egemaps, timing, expr, language "
             "(default: the spec's; the preset's are pupil,headpose).",
    ),
    spec: Path | None = typer.Option(
        None, "--spec", help="Extraction spec YAML (default: the shipped preset; see docs/extraction.md)."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Change one spec key: key.path=value (repeatable), e.g. groups.pupil.nperseg=16."),
    embedder: Path | None = typer.Option(
        None, "--embedder", help="ONNX expression embedder for the expr group, e.g. from 'cdrscreen-fer import "
                                 "fer2013' (same as --set groups.expr.embedder=PATH)."),
    allow_non_expression: bool = typer.Option(
        False, "--allow-non-expression",
        help="Let expr use an embedder whose classes are not facial expressions (e.g. a digits model)."),
    out: Path = typer.Option(Path("features.parquet"), "--out", "-o", help="Parquet file to write (atomically)."),
    cache: Path | None = typer.Option(
        None, "--cache", help="Cache folder for per-file results and face tracks (default $CDRSCREEN_CACHE or ~/.cache/cdrscreen).",
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Parallel worker processes (one recording each)."),
    stride: int | None = typer.Option(
        None, "--stride", min=1,
        help="Visual groups track every K-th frame (default 1; faster; see docs/features-visual.md for the effect).",
    ),
    max_faces: int | None = typer.Option(
        None, "--max-faces", min=1,
        help="Faces the visual groups may track at once after a second person is seen (default 2, so that person cannot take over).",
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler",
        help="Run the recordings on a Dask cluster: local:N (N worker processes here) or tcp://HOST:PORT "
             "(a running scheduler; workers must see the media and --cache at the same paths). Replaces --jobs.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    decimal: str = typer.Option(".", "--decimal", help="Decimal mark of numbers in a CSV manifest: '.' or ','."),
) -> None:
    """Extract features for every recording of MANIFEST into one Parquet table."""
    from rich.console import Console

    from cdrscreen.cli._checks import check_cache_dir, check_output_file
    from cdrscreen.extract import extract_study
    from cdrscreen.study import Study

    check_output_file(out, [manifest] + ([spec] if spec else []), "--out")  # before work: never overwrite an input
    check_cache_dir(cache)
    source = Study.from_file(manifest, decimal=decimal) if decimal != "." else manifest
    overrides = list(set_ or [])
    if embedder is not None:
        overrides.append(f"groups.expr.embedder={str(embedder)!r}")
    if allow_non_expression:
        overrides.append("groups.expr.allow_non_expression=true")
    df = extract_study(source, features, out, spec=spec, overrides=overrides, cache_dir=cache, n_jobs=jobs,
                       stride=stride, progress=progress, max_faces=max_faces, scheduler=scheduler)
    st = df.attrs.get("extract", {})
    n_feat = sum(not str(c).startswith("meta__") for c in df.columns)
    con = Console(stderr=True, soft_wrap=True)
    con.print(
        f"wrote {out}: {len(df)} recordings x {n_feat} features "
        f"({st.get('computed', '?')} results computed, {st.get('cached', '?')} from cache)"
    )
    for (subject, session, file), text in df.get("meta__warnings", {}).items():
        if text:
            con.print(f"[yellow]warning:[/] {subject}/{session} ({file}): {text}", markup=True, highlight=False)
    for group in st.get("shared_media", []):
        con.print(f"[yellow]warning:[/] byte-identical media under different subjects "
                  f"({'; '.join(group)}): check the manifest", markup=True, highlight=False)
