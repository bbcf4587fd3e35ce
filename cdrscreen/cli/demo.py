"""Build the synthetic demo cohort and run the whole pipeline on it.

Stages: build cohort (real face photos animated with planted, class-dependent eye/head
motion; espeak-ng speech with planted pause structure) -> extract features -> evaluate
the default CDR protocol (leave-one-subject-out) -> write study and per-patient reports.
Every stage is cached/resumable: re-running reuses finished work. The cohort is
SYNTHETIC, for pipeline checking only; its results say nothing about dementia.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from cdrscreen.resources import resource_path

NAME = "demo"

DEFAULT_FEATURES = "pupil,headpose,mfcc,gemaps,timing"
DEFAULT_PROTOCOL = resource_path("protocols", "cdr_binary_loso.yaml")
ABLATION_PROTOCOL = resource_path("protocols", "ablation_all_groups.yaml")


def command(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Folder for the cohort, features, run and reports."),
    subjects: int = typer.Option(24, "--subjects", "-n", min=6, help="Number of synthetic subjects (>= 6)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives identical videos and results."),
    imbalance: str = typer.Option(
        "balanced", "--imbalance",
        help="Class mix over CDR 0.5/1/2: 'balanced', or 'prototype' (17/19/4 proportions of the clinical prototype).",
    ),
    features: str = typer.Option(DEFAULT_FEATURES, "--features", help="Comma-separated feature groups to extract."),
    protocol: Path = typer.Option(DEFAULT_PROTOCOL, "--protocol", help="Evaluation protocol YAML."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Parallel worker processes."),
    ablation: bool = typer.Option(
        False, "--ablation/--no-ablation",
        help="Also run the feature-group ablation (each group alone, each group left out; adds minutes) "
             "so that the patient reports show per-group contributions.",
    ),
) -> None:
    """Build the synthetic demo cohort and run extract -> evaluate -> report on it."""
    from cdrscreen.demo import build_cohort
    from cdrscreen.evaluation import ablate, evaluate
    from cdrscreen.extract import extract_study
    from cdrscreen.reports import build_reports

    con = Console(stderr=True)
    out = out.resolve()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str, t: float) -> None:
        timings[name] = time.perf_counter() - t
        con.print(f"[green]done[/] {name} in {timings[name]:.1f} s")

    con.rule("[bold]cdrscreen demo (SYNTHETIC data, pipeline check only)")
    t = time.perf_counter()
    con.print(f"1/4 building {subjects}-subject cohort in {out / 'cohort'} (seed {seed}, {imbalance})")
    manifest = build_cohort(out / "cohort", n_subjects=subjects, seed=seed, imbalance=imbalance, n_jobs=jobs)
    stage("cohort", t)

    t = time.perf_counter()
    groups = [g.strip() for g in features.split(",") if g.strip()]
    feat_path = out / "features.parquet"
    con.print(f"2/4 extracting {', '.join(groups)} -> {feat_path}")
    extract_study(manifest, groups, feat_path, cache_dir=out / "cache", n_jobs=jobs)
    stage("features", t)

    t = time.perf_counter()
    run_dir = out / "run"
    con.print(f"3/4 evaluating {protocol.name} -> {run_dir}")
    evaluate(protocol, feat_path, run_dir, n_jobs=jobs)
    abl_dir = None
    if ablation:
        abl_dir = out / "ablation"
        con.print(f"    ablation of {ABLATION_PROTOCOL.name} (singles + leave-one-group-out) -> {abl_dir}")
        ablate(ABLATION_PROTOCOL, feat_path, abl_dir, n_jobs=jobs, progress=True, all_subsets=False)
    stage("evaluation", t)

    t = time.perf_counter()
    con.print(f"4/4 writing reports -> {run_dir / 'reports'}")
    reports = build_reports(run_dir, ablation=abl_dir, features=feat_path, n_jobs=jobs)
    stage("reports", t)

    con.rule("[bold green]demo finished")
    con.print(f"manifest:     {manifest}")
    con.print(f"features:     {feat_path}")
    con.print(f"results:      {run_dir}")
    for r in reports[:1] if isinstance(reports, list) else [reports]:
        con.print(f"study report: {r}")
    con.print(f"total: {time.perf_counter() - t0:.1f} s  ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
    con.print("[yellow]Synthetic cohort: these numbers check the pipeline; they are not evidence about dementia.")
