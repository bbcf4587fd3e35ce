"""Write the study report and per-patient reports (self-contained HTML, opens offline) of a run folder: RUN_DIR/reports/study.html and RUN_DIR/reports/patients/<subject>.html. Research output, not a diagnosis."""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "report"


def command(
    run_dir: Path = typer.Argument(..., help="Run folder written by 'cdrscreen evaluate' or 'cdrscreen ablate'."),
    subject: str | None = typer.Option(None, "--subject", "-s", help="Only this subject's patient report(s)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: RUN_DIR/reports)."),
    ablation: Path | None = typer.Option(
        None, "--ablation",
        help="Ablation run folder of the same features: adds the ablation to the study report and "
             "per-group contributions to each patient report."),
    features: Path | None = typer.Option(
        None, "--features", "-f", help="Feature table, when it moved since the run (default: the run's)."),
    signals: Path | None = typer.Option(
        None, "--signals",
        help="The signals/ folder extraction wrote (default: beside the feature table); per-frame and "
             "speech plots come from there, nothing is recomputed."),
    pdf: bool = typer.Option(False, "--pdf", help="Also print each report to an A4 PDF (needs Chromium)."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Worker processes."),
) -> None:
    """Write the study report and per-patient reports of a run folder."""
    from cdrscreen.reports import build_reports

    paths = build_reports(run_dir, out, subject, ablation=ablation, features=features, signals=signals,
                          n_jobs=jobs)
    if pdf:
        from cdrscreen.reports.browser import html_to_pdf

        paths += [html_to_pdf(p) for p in list(paths)]
    n_pat = sum(1 for p in paths if p.parent.name == "patients" and p.suffix == ".html")
    study = [p for p in paths if p.name == "study.html"]
    if study:
        typer.echo(f"study report:    {study[0]}")
    if n_pat:
        first = next(p for p in paths if p.parent.name == "patients")
        typer.echo(f"patient reports: {n_pat} in {first.parent}")
    for p in paths:
        if p.suffix == ".pdf":
            typer.echo(f"pdf:             {p}")
