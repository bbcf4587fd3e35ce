"""Benchmark: full evaluation on 100 subjects x 5 feature groups of cached features.

Binary + 3-class LOSO evaluation with nested CV (RBF-SVM, C tuned over 3 values by a
3-fold subject-grouped inner CV), 1,000 subject bootstraps, N label permutations (each
repeating the whole nested procedure), plus every single-group and leave-one-group-out
ablation (bootstrap CIs, no permutations), with joblib on ``--jobs`` workers.

    python benchmarks/bench_evaluation.py --jobs 2 --permutations 1000

Prints the timings and writes them to benchmarks/results/bench_evaluation_<learner>.json
(``--learner svm`` or ``ridge``; ridge runs its permutations batched in closed form). The
permutation test is linear in N (every permutation is the same amount of work), so a
run with fewer permutations also reports the measured time per permutation and the
extrapolation to 1,000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUPS = {"pupil": 12, "headpose": 8, "mfcc": 26, "gemaps": 62, "timing": 6}


def cohort(n_subjects: int = 100, seed: int = 0) -> pd.DataFrame:
    """Cached-feature-like table: 100 subjects, CDR 0.5/1/2 = 45/40/15, 5 groups."""
    rng = np.random.default_rng(seed)
    cdr = np.array([0.5] * 45 + [1.0] * 40 + [2.0] * 15)[:n_subjects]
    rows = {}
    for g, w in GROUPS.items():
        effect = {"pupil": 0.5, "timing": 0.4}.get(g, 0.0)
        x = rng.normal(size=(n_subjects, w)) + effect * (cdr[:, None] >= 1.0) + 0.3 * effect * (cdr[:, None] >= 2.0)
        for j in range(w):
            rows[f"{g}__f{j:02d}"] = x[:, j]
    df = pd.DataFrame(rows)
    df["meta__cdr"] = cdr
    df["meta__age"] = rng.integers(60, 90, n_subjects).astype(float)
    df["meta__sex"] = rng.choice(["F", "M"], n_subjects)
    df["meta__mmse"] = np.round(29 - 4 * cdr + rng.normal(size=n_subjects), 0)
    idx = pd.MultiIndex.from_arrays([[f"S{i:03d}" for i in range(n_subjects)], ["1"] * n_subjects,
                                     [f"S{i:03d}.mp4" for i in range(n_subjects)]], names=["subject", "session", "file"])
    return df.set_index(idx)


LEARNERS = {
    "svm": {"name": "svm", "learner": "svm", "params": {"gamma": "scale"}, "grid": {"C": [0.1, 1.0, 10.0]}},
    "ridge": {"name": "ridge", "learner": "ridge", "grid": {"alpha": [1.0, 10.0, 100.0]}},
}
LEARNER = "svm"


def protocol(scheme: str, n_perm: int, n_boot: int) -> dict:
    return {
        "name": f"bench_{scheme}",
        "seed": 0,
        "labels": {"scheme": scheme},
        "models": [LEARNERS[LEARNER]],
        "cv": {"outer": "loso", "inner_splits": 3},
        "statistics": {"n_bootstrap": n_boot, "n_permutations": n_perm},
        "ablation": {"singles": True, "leave_one_out": True, "n_permutations": 0},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--bootstraps", type=int, default=1000)
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--learner", choices=sorted(LEARNERS), default="svm",
                    help="svm: RBF-SVM, C tuned; ridge: closed-form ridge, alpha tuned (batched permutations)")
    args = ap.parse_args()
    global LEARNER
    LEARNER = args.learner
    os.environ.setdefault("CDRSCREEN_NO_PROGRESS", "1")
    from cdrscreen.evaluation import ablate, evaluate

    feats = cohort(args.subjects)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    timings: dict[str, float] = {}
    summary: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.parquet"
        feats.to_parquet(path)
        # the benchmark itself, from a cold start (fresh process: no fitted blocks cached)
        t_all = time.perf_counter()
        for scheme in ("binary", "3class"):
            t0 = time.perf_counter()
            res = evaluate(protocol(scheme, args.permutations, args.bootstraps), path, Path(tmp) / scheme,
                           n_jobs=args.jobs, progress=False)
            timings[f"{scheme}_evaluate_s"] = time.perf_counter() - t0
            m = res.primary
            summary[scheme] = {"balanced_accuracy": m["metrics"]["balanced_accuracy"],
                               "p_value": (m["permutation"] or {}).get("p_value")}
            t0 = time.perf_counter()
            ab = ablate(protocol(scheme, 0, args.bootstraps), path, Path(tmp) / f"ab_{scheme}",
                        n_jobs=args.jobs, progress=False)
            timings[f"{scheme}_ablation_s"] = time.perf_counter() - t0
            summary[f"{scheme}_ablation_top"] = ab.ablation["variant"].head(3).tolist()
        spec_total = time.perf_counter() - t_all
        # afterwards, to estimate the cost of one permutation: the same evaluations without
        # permutations (conservative: these reuse the scaling fitted above)
        for scheme in ("binary", "3class"):
            t0 = time.perf_counter()
            evaluate(protocol(scheme, 0, args.bootstraps), path, Path(tmp) / f"np_{scheme}",
                     n_jobs=args.jobs, progress=False)
            timings[f"{scheme}_evaluate_without_permutations_s"] = time.perf_counter() - t0
    perm_time = sum(timings[f"{s}_evaluate_s"] - timings[f"{s}_evaluate_without_permutations_s"]
                    for s in ("binary", "3class"))
    per_perm = perm_time / max(args.permutations, 1)
    out = {
        "benchmark": "evaluation: binary + 3-class LOSO nested CV + bootstraps + permutations + ablations",
        "learner": LEARNERS[LEARNER],
        "subjects": args.subjects, "groups": GROUPS, "jobs": args.jobs,
        "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
        "permutations": args.permutations, "bootstraps": args.bootstraps,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "spec_total_s": round(spec_total, 2),
        "seconds_per_permutation_both_tasks": round(per_perm, 4),
        "extrapolated_total_s_at_1000_permutations": round(spec_total + per_perm * (1000 - args.permutations), 1),
        "target_s": 60, "results": summary,
        "load_average_at_end": os.getloadavg(),
        "python": platform.python_version(), "platform": platform.platform(),
    }
    print(json.dumps(out, indent=2))
    res_dir = ROOT / "benchmarks" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / f"bench_evaluation_{LEARNER}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
