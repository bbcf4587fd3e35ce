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

``--study`` measures instead the permutation test of the shipped binary SVM protocol
(``cdr_binary_loso``, its ``svm_early`` model: RBF-SVM, gamma=scale, C in [0.1, 1, 10]
tuned by a subject-grouped inner CV, LOSO outer) with 1,000 permutations at 40 and 100
subjects, each as ``cdrscreen evaluate --jobs 2`` in a fresh process (wall time, CPU time
of the process tree, peak RSS of the process tree), against scikit-learn's
``permutation_test_score`` over the equivalent pipeline (``GridSearchCV`` inside, explicit
LOSO splits; run with fewer permutations and extrapolated linearly), in one run::

    python benchmarks/bench_evaluation.py --study --jobs 2

and writes benchmarks/results/bench_evaluation_permutations.json.
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
    """Cached-feature-like table: ``n_subjects`` subjects, CDR 0.5/1/2 = 45/40/15 %, 5 groups."""
    rng = np.random.default_rng(seed)
    n05, n1 = round(0.45 * n_subjects), round(0.40 * n_subjects)  # 45/40/15 % at every size
    cdr = np.array([0.5] * n05 + [1.0] * n1 + [2.0] * (n_subjects - n05 - n1))
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
TARGET = 1000  #: permutations the --study figures are given for (measured, or extrapolated linearly)


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


def _watch(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``cmd``; wall time, CPU seconds and peak RSS (MB) of its whole process tree."""
    import subprocess

    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(proc.pid)
    cpu: dict[int, float] = {}
    peak_sum = peak_one = 0.0
    while proc.poll() is None:
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            break
        total = 0.0
        for p in procs:
            try:
                rss = p.memory_info().rss / 2**20
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system  # own time only: reaped workers are sampled themselves
            except psutil.Error:
                continue
            total += rss
            peak_one = max(peak_one, rss)
        peak_sum = max(peak_sum, total)
        time.sleep(0.1)
    out = proc.communicate()[0]
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(sum(cpu.values()), 1), "peak_rss_tree_mb": round(peak_sum, 1),
            "peak_rss_largest_process_mb": round(peak_one, 1), "output": out}


def _shipped_svm(n_perm: int) -> dict:
    """The shipped cdr_binary_loso protocol, its SVM model only, with ``n_perm`` permutations."""
    import yaml

    from cdrscreen.evaluation.protocol import load_protocol

    proto = load_protocol("cdr_binary_loso").model_dump(mode="json")
    proto["models"] = [m for m in proto["models"] if m["name"] == "svm_early"]
    proto["statistics"]["n_permutations"] = n_perm
    return yaml.safe_load(yaml.safe_dump(proto))


def sklearn_child(features: str, n_perm: int, jobs: int) -> None:
    """``permutation_test_score`` over the scikit-learn equivalent of the shipped SVM model (prints JSON)."""
    from sklearn.model_selection import (
        GridSearchCV,
        GroupKFold,
        LeaveOneGroupOut,
        permutation_test_score,
    )

    from cdrscreen.evaluation.data import load_dataset
    from cdrscreen.evaluation.protocol import load_protocol
    from cdrscreen.models import make_early_fusion

    proto = load_protocol(_shipped_svm(0))
    data = load_dataset(proto, features)
    spec = proto.models[0]
    pipe = make_early_fusion(data.groups, "svm", spec.params, seed=proto.seed)
    search = GridSearchCV(pipe, {"clf__C": list(spec.grid["C"])}, scoring="balanced_accuracy",
                          cv=GroupKFold(proto.cv.inner_splits, shuffle=True, random_state=proto.seed))
    # explicit LOSO splits: with groups=subjects it would permute only within subjects
    splits = list(LeaveOneGroupOut().split(data.X, data.y, data.subjects))
    t0, c0 = time.perf_counter(), time.process_time()
    score, null, p = permutation_test_score(search, data.X, data.y, cv=splits, n_permutations=n_perm, n_jobs=jobs,
                                            random_state=0, scoring="accuracy",
                                            params={"groups": data.subjects})
    print(json.dumps({"score": float(score), "p_value": float(p), "n_null": len(null),
                      "wall_s_in_call": time.perf_counter() - t0, "cpu_s_before_call": c0}))


def study(args: argparse.Namespace) -> None:
    """Permutation-test cost of the shipped SVM protocol: cdrscreen vs permutation_test_score."""
    import yaml

    env = dict(os.environ, CDRSCREEN_NO_PROGRESS="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    rows = []
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.study_subjects:
            feats = Path(tmp) / f"features_{n}.parquet"
            cohort(n).to_parquet(feats)
            for n_perm in sorted({args.permutations, *args.flat_check}):
                if n_perm != args.permutations and n != max(args.study_subjects):
                    continue  # the memory-vs-permutations check runs at the largest size only
                proto = Path(tmp) / f"proto_{n_perm}.yaml"
                proto.write_text(yaml.safe_dump(_shipped_svm(n_perm)))
                load0 = os.getloadavg()
                m = _watch([sys.executable, "-m", "cdrscreen", "evaluate", str(proto), "--features", str(feats),
                            "--out", str(Path(tmp) / f"run_{n}_{n_perm}"), "--jobs", str(args.jobs)], env)
                metrics = json.loads((Path(tmp) / f"run_{n}_{n_perm}" / "metrics.json").read_text())
                perm = metrics["models"]["svm_early"]["permutation"]
                m.pop("output")
                row = {"tool": "cdrscreen evaluate", "subjects": n, "permutations": n_perm, **m,
                       "p_value": perm["p_value"], "auc_p_value": perm.get("auc_p_value"),
                       "load_average_before": load0, "load_average_after": os.getloadavg()}
                print(json.dumps(row), flush=True)
                rows.append(row)
            load0 = os.getloadavg()
            n_sk = args.sklearn_permutations
            m = _watch([sys.executable, str(Path(__file__).resolve()), "--sklearn-child", str(feats),
                        "--permutations", str(n_sk), "--jobs", str(args.jobs)], env)
            out = json.loads(m.pop("output").strip().splitlines()[-1])
            # the observed score is one more run of the same work: n_sk + 1 runs, 1,001 at 1,000
            runs, target = n_sk + 1, TARGET + 1
            start_wall = m["wall_s"] - out["wall_s_in_call"]
            start_cpu = out["cpu_s_before_call"]
            row = {"tool": "sklearn permutation_test_score", "subjects": n, "permutations": n_sk, **m,
                   "p_value": out["p_value"], "wall_s_in_call": round(out["wall_s_in_call"], 2),
                   "extrapolated_wall_s_at_1000": round(start_wall + out["wall_s_in_call"] / runs * target, 1),
                   "extrapolated_cpu_s_at_1000": round(start_cpu + (m["cpu_s"] - start_cpu) / runs * target, 1),
                   "load_average_before": load0, "load_average_after": os.getloadavg()}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.permutations < TARGET:  # cdrscreen: slope between two permutation counts, extended to 1,000
        for n in args.study_subjects:
            mine = sorted((r for r in rows if r["tool"] == "cdrscreen evaluate" and r["subjects"] == n),
                          key=lambda r: r["permutations"])
            if len(mine) >= 2:
                a, b = mine[0], mine[-1]
                for k in ("wall_s", "cpu_s"):
                    slope = (b[k] - a[k]) / (b["permutations"] - a["permutations"])
                    b[f"extrapolated_{k}_at_1000"] = round(b[k] + slope * (TARGET - b["permutations"]), 1)
    if args.include_rows:  # rows of an earlier invocation (JSON lines in its log)
        lines = Path(args.include_rows).read_text().splitlines()
        rows = [json.loads(x) for x in lines if x.startswith('{"tool"')] + rows
    ratios = {}
    for n in sorted({r["subjects"] for r in rows}):
        ours = max((r for r in rows if r["tool"] == "cdrscreen evaluate" and r["subjects"] == n),
                   key=lambda r: r["permutations"])
        sk = next(r for r in rows if r["tool"] != "cdrscreen evaluate" and r["subjects"] == n)
        wall = ours.get("extrapolated_wall_s_at_1000", ours["wall_s"])
        cpu = ours.get("extrapolated_cpu_s_at_1000", ours["cpu_s"])
        ratios[str(n)] = {"cdrscreen_wall_s_at_1000": wall, "cdrscreen_cpu_s_at_1000": cpu,
                          "cdrscreen_measured_permutations": ours["permutations"],
                          "wall_sklearn_over_cdrscreen": round(sk["extrapolated_wall_s_at_1000"] / wall, 1),
                          "cpu_sklearn_over_cdrscreen": round(sk["extrapolated_cpu_s_at_1000"] / cpu, 1)}
    out = {
        "benchmark": "permutation test of the shipped cdr_binary_loso SVM model (svm_early), fresh processes",
        "jobs": args.jobs, "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
        "groups": GROUPS, "targets": {"wall_s_100_subjects_1000_permutations": 300, "peak_rss_mb": 500},
        "notes": ("peak RSS: sum over the process tree (main + joblib workers), sampled every 0.1 s; "
                  "sklearn side: permutation_test_score(GridSearchCV(pipeline), cv=explicit LOSO splits, "
                  "scoring='accuracy' per one-subject fold), run with fewer permutations and extrapolated "
                  "linearly: start-up + (time of the call / (n + 1)) x 1,001; the CPU of its workers' "
                  "start-up is counted as permutation work (slightly pessimistic for scikit-learn); "
                  "cdrscreen run with fewer than 1,000 permutations: extended linearly from two permutation "
                  "counts (extrapolated_*_at_1000)"),
        "rows": rows, "ratios": ratios,
        "python": platform.python_version(), "platform": platform.platform(),
    }
    print(json.dumps(out, indent=2))
    res_dir = ROOT / "benchmarks" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / args.out_name).write_text(json.dumps(out, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--bootstraps", type=int, default=1000)
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--learner", choices=sorted(LEARNERS), default="svm",
                    help="svm: RBF-SVM, C tuned; ridge: closed-form ridge, alpha tuned (batched permutations)")
    ap.add_argument("--study", action="store_true",
                    help="permutation test of the shipped SVM protocol vs permutation_test_score (see module doc)")
    ap.add_argument("--study-subjects", type=int, nargs="+", default=[40, 100])
    ap.add_argument("--flat-check", type=int, nargs="*", default=[100],
                    help="--study: also run these permutation counts at the largest size (memory vs permutations)")
    ap.add_argument("--sklearn-permutations", type=int, default=5)
    ap.add_argument("--out-name", default="bench_evaluation_permutations.json", help=argparse.SUPPRESS)
    ap.add_argument("--include-rows", help="--study: also report the rows of an earlier run's log (JSON lines)")
    ap.add_argument("--sklearn-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sklearn_child:
        sklearn_child(args.sklearn_child, args.permutations, args.jobs)
        return
    if args.study:
        study(args)
        return
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
