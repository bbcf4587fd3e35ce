"""Demo cohort cost: per-frame render and encode time, and the default cohort's wall time.

Usage: python benchmarks/bench_demo.py [--cohort] [--jobs 2]

Prints the numbers and writes benchmarks/results/demo.json. The render loop runs in one
process with OpenCV single-threaded; the cohort build uses joblib over subjects. CPU
time (process time) is reported beside wall time because other processes on a shared
machine distort wall times; the load average is recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", action="store_true", help="also build the default 24-subject cohort")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--frames", type=int, default=250)
    args = ap.parse_args()

    import cv2

    from cdrscreen.demo import FaceAnimator, Trajectories, build_cohort, load_face
    from cdrscreen.demo.encode import write_mp4

    cv2.setNumThreads(1)
    n = args.frames
    t = np.arange(n) / 25.0
    traj = Trajectories.constant(n, yaw=8 * np.sin(t), pitch=4 * np.sin(0.7 * t), iris_dx=0.2 * np.sin(6 * t),
                                 iris_dy=0.2 * np.sin(4 * t), closure=(np.sin(2 * t) > 0.97).astype(float),
                                 noise_sigma=2.0)
    face = load_face("astronaut", (320, 240))
    anim = FaceAnimator(face, seed=0)
    list(anim.render(Trajectories.constant(5)))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    frames = [f for f, _, _ in anim.render(traj)]
    render_ms = (time.perf_counter() - t0) / n * 1000
    render_cpu_ms = (time.process_time() - c0) / n * 1000
    with tempfile.TemporaryDirectory() as tmp:
        audio = np.zeros(int(n / 25 * 16000), np.float32)
        t0, c0 = time.perf_counter(), time.process_time()
        write_mp4(Path(tmp) / "x.mp4", frames, fps=25, audio=audio)
        encode_ms = (time.perf_counter() - t0) / n * 1000
        encode_cpu_ms = (time.process_time() - c0) / n * 1000
        res = {"frame_size": [320, 240], "frames": n, "render_ms_per_frame": round(render_ms, 2),
               "encode_ms_per_frame": round(encode_ms, 2),
               "render_cpu_ms_per_frame": round(render_cpu_ms, 2),
               "encode_cpu_ms_per_frame": round(encode_cpu_ms, 2),
               "realtime_factor_one_core_wall": round(1000 / 25 / (render_ms + encode_ms), 2),
               "realtime_factor_one_core_cpu": round(1000 / 25 / (render_cpu_ms + encode_cpu_ms), 2),
               "loadavg_1min": os.getloadavg()[0], "cpu_count": os.cpu_count()}
        if args.cohort:
            t0 = time.perf_counter()
            build_cohort(Path(tmp) / "cohort", n_subjects=24, seed=0, n_jobs=args.jobs, force=True)
            res["cohort_24x16s_wall_s"] = round(time.perf_counter() - t0, 1)
            bt = json.loads((Path(tmp) / "cohort" / "build_time.json").read_text())
            res["cohort_cpu_s_per_frame"] = bt["render_encode_cpu_s_per_frame"]
            res["cohort_cpu_s_total"] = round(bt["render_encode_cpu_s_per_frame"] * bt["n_frames_rendered"], 1)
            res["cohort_n_jobs"] = args.jobs
            res["loadavg_1min_after"] = os.getloadavg()[0]
    print(json.dumps(res, indent=2))
    out = Path(__file__).parent / "results" / "demo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
