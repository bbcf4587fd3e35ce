"""Evaluate a protocol (leave-one-subject-out, nested CV, CIs, permutation test) on a feature table."""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "evaluate"


def command(
    protocol: str = typer.Argument(
        "cdr_binary_loso",
        help="Protocol YAML file, or the name of a shipped protocol (default: cdr_binary_loso; see docs/protocols.md).",
    ),
    features: Path = typer.Option(..., "--features", "-f", help="Feature table (Parquet) from 'cdrscreen extract'."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (see docs/run-folder.md)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel workers for folds and permutations (-1 = all cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Clear a non-empty run folder first (refused otherwise)."),
    scheduler: str = typer.Option(
        None, "--scheduler",
        help="Run the folds, label permutations and ablation variants as tasks on a Dask cluster: local:N "
             "(N worker processes here) or tcp://HOST:PORT (a running scheduler). Replaces --jobs; same results.",
    ),
) -> None:
    """Evaluate a protocol (leave-one-subject-out, nested CV, CIs, permutation test) on a feature table."""
    from cdrscreen.cli._summary import print_excluded, print_metrics
    from cdrscreen.evaluation import evaluate

    result = evaluate(protocol, features, out, n_jobs=jobs, progress=True, overwrite=overwrite, scheduler=scheduler)
    print_excluded(result.inputs)
    print_metrics(result.metrics, out)
