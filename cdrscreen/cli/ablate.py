"""Feature-group ablation: every group alone, every leave-one-group-out set (optionally all subsets)."""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "ablate"


def command(
    protocol: str = typer.Argument(
        "ablation_all_groups",
        help="Protocol YAML file or the name of a shipped protocol (default: ablation_all_groups); its 'ablation' section applies.",
    ),
    features: Path = typer.Option(..., "--features", "-f", help="Feature table (Parquet) from 'cdrscreen extract'."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (see docs/run-folder.md)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel workers (-1 = all cores)."),
    all_subsets: bool = typer.Option(None, "--all-subsets/--no-all-subsets",
                                     help="Also evaluate every other non-empty subset (default: the protocol's setting)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Clear a non-empty run folder first (refused otherwise)."),
    scheduler: str = typer.Option(
        None, "--scheduler",
        help="Run the folds, label permutations and ablation variants as tasks on a Dask cluster: local:N "
             "(N worker processes here) or tcp://HOST:PORT (a running scheduler). Replaces --jobs; same results.",
    ),
) -> None:
    """Feature-group ablation: every group alone, every leave-one-group-out set (optionally all subsets)."""
    from cdrscreen.cli._summary import print_ablation, print_excluded
    from cdrscreen.evaluation import ablate

    result = ablate(protocol, features, out, n_jobs=jobs, progress=True, all_subsets=all_subsets,
                    overwrite=overwrite, scheduler=scheduler)
    print_excluded(result.inputs)
    print_ablation(result.ablation, result.metrics["ablation"]["rank_by"])
    typer.echo(f"run folder: {out}")
