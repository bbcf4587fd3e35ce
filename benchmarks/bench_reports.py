"""Report build time for a 40-subject study (target: < 30 s on 2 cores).

Usage: python benchmarks/bench_reports.py [--subjects 40] [--jobs 2] [--work DIR] [--ablation]

Prepares, once and cached in ``--work`` (default ``$TMPDIR/cdrscreen-bench-reports``): the
synthetic demo cohort, its features (pupil, headpose, mfcc, gemaps, timing; face tracks
cached), and a binary leave-one-subject-out evaluation (the demo's path). Then times
``build_reports(run_dir)``: the study report plus one patient report per subject with
every per-frame plot (from the cached tracks) and speech timing, with ``--jobs`` worker
processes (wall time), then once in a single process (CPU time, which other load on a
shared machine distorts far less than wall time). Prints the numbers and writes
benchmarks/results/bench_reports.json with the load average at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parent
PROTOCOL = {
    "name": "bench_binary_loso", "seed": 0, "labels": {"scheme": "binary"},
    "models": [{"name": "svm_early", "learner": "svm", "params": {"kernel": "rbf", "gamma": "scale"},
                "grid": {"C": [0.1, 1.0, 10.0]}},
               {"name": "logreg_early", "learner": "logreg", "params": {"C": 0.1}}],
    "statistics": {"n_bootstrap": 1000, "n_permutations": 0},
    "ablation": {"model": "svm_early", "n_permutations": 0},
}


def prepare(work: Path, n: int, jobs: int, ablation: bool, duration: float) -> tuple[Path, Path | None, dict]:
    from cdrscreen.demo import build_cohort
    from cdrscreen.evaluation import ablate, evaluate
    from cdrscreen.extract import extract_study

    prep: dict[str, float] = {}
    t = time.perf_counter()
    manifest = build_cohort(work / "cohort", n_subjects=n, seed=0, n_jobs=jobs, duration_s=duration)
    prep["cohort_s"] = time.perf_counter() - t
    feats = work / "features.parquet"
    t = time.perf_counter()
    extract_study(manifest, "pupil,headpose,mfcc,gemaps,timing", feats, cache_dir=work / "cache",
                  n_jobs=jobs, progress=False)
    prep["extract_s"] = time.perf_counter() - t
    run = work / "run"
    if not (run / "metrics.json").exists():
        t = time.perf_counter()
        evaluate(PROTOCOL, feats, run, n_jobs=jobs, progress=False)
        prep["evaluate_s"] = time.perf_counter() - t
    abl = None
    if ablation:
        abl = work / "ablation"
        if not (abl / "metrics.json").exists():
            t = time.perf_counter()
            ablate(PROTOCOL, feats, abl, n_jobs=jobs, progress=False)
            prep["ablate_s"] = time.perf_counter() - t
    return run, abl, prep


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cdrscreen-bench-reports")
    ap.add_argument("--ablation", action="store_true", help="also pass an ablation run (contributions)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--duration", type=float, default=8.0,
                    help="seconds per demo video (report time barely depends on it; preparing does)")
    args = ap.parse_args()

    from cdrscreen.reports import build_reports

    work = args.work / f"n{args.subjects}_d{args.duration:g}"
    run, abl, prep = prepare(work, args.subjects, args.jobs, args.ablation, args.duration)
    times = []
    for i in range(args.repeat):
        out = work / f"reports_{i}"
        t = time.perf_counter()
        paths = build_reports(run, out, ablation=abl, n_jobs=args.jobs)
        times.append(time.perf_counter() - t)
    # CPU cost, independent of other load on the machine: everything in this process
    t = time.process_time()
    build_reports(run, work / "reports_cpu", ablation=abl, n_jobs=1)
    cpu = time.process_time() - t
    patients = [p for p in paths if p.parent.name == "patients"]
    html = patients[0].read_text()
    n_img = html.count("<img ")
    res = {
        "subjects": args.subjects, "video_s": args.duration, "jobs": args.jobs, "ablation": bool(abl),
        "reports": len(paths), "patient_reports": len(patients),
        "images_per_patient_report": n_img,
        "per_frame_plots": "Face tracking over time" in html,
        "seconds": [round(x, 2) for x in times], "best_s": round(min(times), 2),
        "target_s": 30.0, "meets_target": min(times) < 30.0,
        "cpu_s_single_process": round(cpu, 2),
        "cpu_s_per_patient_report": round(cpu / max(len(patients), 1), 3),
        "mean_patient_report_kb": round(sum(p.stat().st_size for p in patients) / len(patients) / 1024, 1),
        "prepare": {k: round(v, 1) for k, v in prep.items()},
        "loadavg_1m": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
    }
    print(json.dumps(res, indent=2))
    out = ROOT / "results" / "bench_reports.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
