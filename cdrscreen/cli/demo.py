"""Build the synthetic demo cohort and run the whole pipeline on it.

Stages: train the demo expression model (SCN under 20 % synthetic label noise on expression
images warped onto real photographs; exported as an ONNX embedder) -> build the cohort (real
face photos animated with planted, class-dependent eye/head motion and smile episodes;
espeak-ng interviews with planted pause structure and speech content, with transcripts) ->
extract features (eye/head, ``expr`` with the demo model, model-free ``expressivity``, speech,
language) -> evaluate early and late fusion (leave-one-subject-out) and the feature-group
ablation -> write study and per-patient reports. Every stage is cached/resumable: re-running
reuses finished work. The cohort and the expression images are SYNTHETIC, for pipeline
checking only; their results say nothing about dementia or about facial-expression
recognition.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from cdrscreen.resources import resource_path

NAME = "demo"

DEFAULT_FEATURES = "pupil,headpose,expr,expressivity,mfcc,gemaps,timing,language"
DEFAULT_PROTOCOL = resource_path("protocols", "demo_fusion_loso.yaml")


def command(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Folder for the cohort, features, run and reports."),
    subjects: int = typer.Option(24, "--subjects", "-n", min=6, help="Number of synthetic subjects (>= 6)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives identical videos and results."),
    imbalance: str = typer.Option(
        "balanced", "--imbalance",
        help="Class mix over CDR 0.5/1/2: 'balanced', or 'prototype' (17/19/4 proportions of the clinical prototype).",
    ),
    features: str = typer.Option(DEFAULT_FEATURES, "--features", help="Comma-separated feature groups to extract."),
    protocol: Path = typer.Option(DEFAULT_PROTOCOL, "--protocol", help="Evaluation protocol YAML (its ablation block is used too)."),
    embedder: Path = typer.Option(
        None, "--embedder",
        help="Use this ONNX expression embedder (e.g. from 'cdrscreen-fer import fer2013') instead of "
             "training the demo's synthetic-expression model.",
    ),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Parallel worker processes."),
    ablation: bool = typer.Option(
        True, "--ablation/--no-ablation",
        help="Run the feature-group ablation (each group alone, each group left out), so that the "
             "study report ranks the groups and patient reports show per-group contributions.",
    ),
) -> None:
    """Train the demo expression model, build the synthetic cohort, extract, evaluate, ablate, report."""
    from cdrscreen.core.io import write_json
    from cdrscreen.demo import build_cohort
    from cdrscreen.demo.recovery import expression_recovery
    from cdrscreen.evaluation import ablate, evaluate
    from cdrscreen.extract import extract_study
    from cdrscreen.reports import build_reports

    con = Console(stderr=True)
    out = out.resolve()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    groups = [g.strip() for g in features.split(",") if g.strip()]
    summary: dict[str, object] = {"synthetic": "SYNTHETIC demo run: a pipeline check, not evidence about dementia"}

    def stage(name: str, t: float) -> None:
        timings[name] = time.perf_counter() - t
        con.print(f"[green]done[/] {name} in {timings[name]:.1f} s")

    con.rule("[bold]cdrscreen demo (SYNTHETIC data, pipeline check only)")
    overrides: list[str] = []
    if "expr" in groups:
        t = time.perf_counter()
        if embedder is None:
            from cdrscreen.demo.expression_model import train_expression_model

            con.print(f"1/5 training the demo expression model (SCN, 20 % label noise, synthetic expressions) "
                      f"-> {out / 'expression_model'}")
            fer = train_expression_model(out / "expression_model", n_jobs=jobs)
            embedder = Path(fer["onnx"])
            summary["expression_model"] = {k: v for k, v in fer.items() if k not in ("test_confusion",)}
            con.print(f"    clean test accuracy {fer['test_accuracy']:.1%} on {fer['n_test']} synthetic images "
                      f"of unseen photographs (5 classes); relabel precision {fer['relabel_precision']:.1%} "
                      f"({fer['relabelled']} relabels); not a FER benchmark")
        else:
            con.print(f"1/5 using the expression embedder {embedder}")
        overrides.append(f"groups.expr.embedder={str(embedder.resolve())!r}")
        stage("expression_model", t)

    t = time.perf_counter()
    con.print(f"2/5 building {subjects}-subject cohort in {out / 'cohort'} (seed {seed}, {imbalance})")
    manifest = build_cohort(out / "cohort", n_subjects=subjects, seed=seed, imbalance=imbalance, n_jobs=jobs)
    stage("cohort", t)

    t = time.perf_counter()
    feat_path = out / "features.parquet"
    con.print(f"3/5 extracting {', '.join(groups)} -> {feat_path}")
    extract_study(manifest, groups, feat_path, overrides=overrides, cache_dir=out / "cache", n_jobs=jobs)
    stage("features", t)
    if "expr" in groups:
        rec = expression_recovery(feat_path, out / "cohort")
        summary["expression_recovery"] = {k: v for k, v in rec.items() if k != "per_subject"}
        r_rate = rec.get("r_expr__episode_rate_happy", float("nan"))
        r_frac = rec.get("r_expr__hist_happy", float("nan"))
        con.print(f"    planted vs measured smiles over {rec['n_subjects']} subjects: r = {r_rate:.2f} "
                  f"(happy-episode rate), r = {r_frac:.2f} (happy fraction)")

    t = time.perf_counter()
    run_dir = out / "run"
    con.print(f"4/5 evaluating {protocol.name} (early and late fusion) -> {run_dir}")
    res = evaluate(protocol, feat_path, run_dir, n_jobs=jobs, overwrite=True)
    summary["models"] = {name: {k: m.get("metrics", {}).get(k) for k in ("balanced_accuracy", "roc_auc", "accuracy")}
                         for name, m in res.metrics.get("models", {}).items()}
    for name, m in summary["models"].items():
        ba = (m.get("balanced_accuracy") or {}).get("value")
        con.print(f"    {name}: balanced accuracy {ba:.3f}" if ba is not None else f"    {name}: -")
    abl_dir = None
    if ablation:
        abl_dir = out / "ablation"
        con.print(f"    ablation (each group alone, each group left out) -> {abl_dir}")
        abl = ablate(protocol, feat_path, abl_dir, n_jobs=jobs, progress=True, all_subsets=False,
                     overwrite=True)
        if abl.ablation is not None:
            cols = [c for c in ("rank", "variant", "kind", "balanced_accuracy", "balanced_accuracy_ci_low",
                                "balanced_accuracy_ci_high", "roc_auc", "delta_vs_full") if c in abl.ablation]
            summary["ablation"] = abl.ablation[cols].to_dict(orient="records")
            con.print(abl.ablation[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"),
                      soft_wrap=True, highlight=False, markup=False)
    stage("evaluation", t)

    t = time.perf_counter()
    con.print(f"5/5 writing reports -> {run_dir / 'reports'}")
    reports = build_reports(run_dir, ablation=abl_dir, features=feat_path, n_jobs=jobs)
    stage("reports", t)

    total = time.perf_counter() - t0
    summary["seconds"] = {**{k: round(v, 1) for k, v in timings.items()}, "total": round(total, 1)}
    write_json(out / "demo_summary.json", summary)
    con.rule("[bold green]demo finished")
    con.print(f"manifest:     {manifest}")
    con.print(f"features:     {feat_path}")
    con.print(f"results:      {run_dir}")
    for r in reports[:1] if isinstance(reports, list) else [reports]:
        con.print(f"study report: {r}")
    con.print(f"summary:      {out / 'demo_summary.json'}")
    con.print(f"total: {total:.1f} s  ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
    con.print("[yellow]Synthetic cohort: these numbers check the pipeline; they are not evidence about dementia.")
