"""Visual pipeline speed: per-frame face/iris/head-pose tracking on a demo-like video.

Measures, in one run on at most 2 CPU cores:

* ``decode``: PyAV decoding alone (frames per second);
* ``track``: :func:`cdrscreen.tracking.face.track_video` (MediaPipe face mesh with iris in
  video/tracking mode, background decoding, per-frame table), stride 1, 2 and 3;
* ``jobs2``: throughput of ``cdrscreen extract --jobs 2`` style work, two videos tracked
  at once in two worker processes (frames of both videos per wall-clock second);
* ``track_max_faces1``: the same with ``max_faces=1`` (never switches to multi-face tracking);
* ``naive``: the baseline - ``FaceMesh(static_image_mode=True, max_num_faces=1)`` (face
  detection on every frame), frames decoded in the same thread, the same per-frame
  geometry, no caching (single-face, i.e. the cheaper static variant);
* the effect of ``--stride`` on every pupil/headpose feature (relative change vs stride 1).

``--bound`` measures only the headline ratio of tracking to its bare loop instead: on one
real-face clip (default 640x360 at 30 fps, 16 s = 480 frames, rendered from a real face
photograph with planted head motion), alternating for ``--rounds`` rounds, the *bare
loop* (PyAV decoding in a background thread + MediaPipe FaceMesh with iris refinement in
video mode, one face, nothing else) and :func:`cdrscreen.tracking.face.track_video`
(everything ``cdrscreen extract --features pupil,headpose`` computes per frame), each as
frames per CPU-second of this process (``time.process_time``: all threads). The result is
the median over rounds of track / bare (target >= 0.9), written to
``benchmarks/results/bench_visual_bound.json`` with the load average of every round.

The machine may be shared: besides wall-clock speed, the CPU time this process used is
recorded (``cpu_fps`` = frames per CPU-second, summed over its threads), and the load
average before and after is saved with the results. Speeds are reported as frames per second, as a ratio to the video's own frame rate
(real-time factor), and as a ratio to the naive baseline. Results go to
``benchmarks/results/bench_visual.json``.

Usage: ``python benchmarks/bench_visual.py [--seconds 20] [--fps 30] [--size 640x480]``,
``python benchmarks/bench_visual.py --bound [--rounds 5]`` (defaults then 16 s, 30 fps, 640x360)
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

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("CDRSCREEN_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def limit_cores(n: int = 2) -> int:
    """Pin this process to at most ``n`` cores; return how many it may use."""
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, cores)
        return len(cores)
    return os.cpu_count() or 1


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def naive_track(path: Path) -> tuple[int, float, float]:
    """Baseline: static-image-mode face mesh on every frame; returns (frames, wall s, cpu s)."""
    import mediapipe as mp

    from cdrscreen.media.video import iter_frames
    from cdrscreen.tracking.face import frame_features

    t0, c0 = time.perf_counter(), _cpu()
    n = 0
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                         refine_landmarks=True) as mesh:
        for fr in iter_frames(path):
            h, w = fr.rgb.shape[:2]
            res = mesh.process(fr.rgb)
            if res.multi_face_landmarks:
                p = np.array([(q.x * w, q.y * h, q.z * w) for q in res.multi_face_landmarks[0].landmark])
                frame_features(p, w, h)
            n += 1
    return n, time.perf_counter() - t0, _cpu() - c0


def bare_loop(path: Path) -> tuple[int, float]:
    """The bound: background PyAV decoding + FaceMesh (iris, video mode, one face); (frames, CPU s)."""
    import mediapipe as mp

    from cdrscreen.core.native import quiet_native_stderr
    from cdrscreen.media.video import iter_frames
    from cdrscreen.tracking.face import TrackConfig, _prefetch

    cfg = TrackConfig()
    c0 = time.process_time()
    n = 0
    with quiet_native_stderr():
        mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=1, refine_landmarks=True,
            min_detection_confidence=cfg.min_detection_confidence,
            min_tracking_confidence=cfg.min_tracking_confidence)
    with mesh:
        for fr in _prefetch(iter_frames(path)):
            mesh.process(fr.rgb)
            n += 1
    return n, time.process_time() - c0


def bound(args: argparse.Namespace) -> None:
    """Track vs bare loop, frames per CPU-second, alternating rounds (see module docstring)."""
    from cdrscreen.demo.cohort import make_clip
    from cdrscreen.tracking import face

    w, h = (int(x) for x in args.size.split("x"))
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "real_face.mp4"
        make_clip(video, duration_s=args.seconds, fps=args.fps, size=(w, h), speech=False, cdr=1.0, seed=3)
        bare_loop(video)  # warm-up: model loads, caches
        timed_track(video, 1)
        for i in range(args.rounds):
            load = os.getloadavg()[0]
            nb, cb = bare_loop(video)
            tr, _, ct = timed_track(video, 1)
            nt = len(tr.table)
            rounds.append({"bare_fps_cpu": nb / cb, "track_fps_cpu": nt / ct, "ratio": (nt / ct) / (nb / cb),
                           "bare_ms_cpu": cb / nb * 1e3, "track_ms_cpu": ct / nt * 1e3,
                           "frames": nt, "loadavg_before_after": [load, os.getloadavg()[0]]})
            r = rounds[-1]
            print(f"round {i + 1}: bare {r['bare_fps_cpu']:.1f}, track {r['track_fps_cpu']:.1f} frames per "
                  f"CPU-second, ratio {r['ratio']:.3f} (load {load:.1f})", flush=True)
        success = float(tr.table["success"].mean())
        face._MEMO.clear()
    ratios = [r["ratio"] for r in rounds]
    res = {"video": {"seconds": args.seconds, "fps": args.fps, "size": [w, h], "frames": rounds[0]["frames"],
                     "face": "astronaut (make_clip seed 3)", "success_fraction": success},
           "rounds": rounds, "median_ratio": float(np.median(ratios)), "min_ratio": float(min(ratios)),
           "max_ratio": float(max(ratios)),
           "median_overhead_ms_cpu": float(np.median([r["track_ms_cpu"] - r["bare_ms_cpu"] for r in rounds])),
           "target": "track >= 0.9 x bare frames per CPU-second", "meets_target": float(np.median(ratios)) >= 0.9,
           "machine": platform.processor() or platform.machine(), "cores": limit_cores(2)}
    out = args.out if args.out is not None else ROOT / "benchmarks" / "results" / "bench_visual_bound.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print(f"median track / bare = {res['median_ratio']:.3f} (min {res['min_ratio']:.3f}, max {res['max_ratio']:.3f}); "
          f"wrote {out}")


def timed_track(path: Path, stride: int, max_faces: int = 2):  # noqa: ANN201
    from cdrscreen.tracking import face

    face._MEMO.clear()
    t0, c0 = time.perf_counter(), _cpu()
    track = face.track_video(path, stride=stride, max_faces=max_faces)
    return track, time.perf_counter() - t0, _cpu() - c0


def _track_frames(path: str) -> int:
    from cdrscreen.tracking import face

    face._MEMO.clear()  # measure tracking, not the in-process memo
    return len(face.track_video(path).table)


def two_jobs_fps(path: Path) -> float:
    """Frames per second when two copies are tracked by two worker processes at once."""
    import shutil

    from joblib import Parallel, delayed

    copies = [path.with_name(f"copy{i}.mp4") for i in range(2)]
    for c in copies:
        shutil.copy(path, c)
    par = Parallel(n_jobs=2)
    par(delayed(_track_frames)(str(c)) for c in copies)  # start and warm the workers
    t0 = time.perf_counter()
    n = sum(par(delayed(_track_frames)(str(c)) for c in copies))
    return n / (time.perf_counter() - t0)


def decode_fps(path: Path) -> float:
    from cdrscreen.media.video import iter_frames

    t0 = time.perf_counter()
    n = sum(1 for _ in iter_frames(path))
    return n / (time.perf_counter() - t0)


def stride_effect(tracks: dict[int, object]) -> dict[str, dict[str, float]]:
    """Relative change of every feature at stride k vs stride 1: |f_k - f_1| / (|f_1| + 1e-9)."""
    from cdrscreen.features.headpose import HeadPoseExtractor
    from cdrscreen.features.pupil import PupilExtractor

    feats = {}
    for k, tr in tracks.items():
        f = {f"pupil__{a}": b for a, b in PupilExtractor(stride=k).features_from_track(tr).items()}
        f |= {f"headpose__{a}": b for a, b in HeadPoseExtractor(stride=k).features_from_track(tr).items()}
        feats[k] = f
    out = {}
    for k in sorted(tracks):
        if k == 1:
            continue
        out[f"stride{k}"] = {
            name: float(abs(v - feats[1][name]) / (abs(feats[1][name]) + 1e-9))
            for name, v in feats[k].items() if np.isfinite(v) and np.isfinite(feats[1][name])
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--bound", action="store_true", help="only track vs the bare decode + mesh loop")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cores = limit_cores(2)
    if args.bound:
        args.seconds = 16.0 if args.seconds is None else args.seconds
        args.size = args.size or "640x360"
        bound(args)
        return
    args.seconds = 20.0 if args.seconds is None else args.seconds
    args.size = args.size or "640x480"
    args.out = args.out or ROOT / "benchmarks" / "results" / "bench_visual.json"
    w, h = (int(x) for x in args.size.split("x"))

    from cdrscreen.demo.cohort import make_clip

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "demo_clip.mp4"
        print(f"rendering a {args.seconds:g} s {w}x{h} @ {args.fps:g} fps demo clip ...", flush=True)
        make_clip(video, duration_s=args.seconds, fps=args.fps, size=(w, h), speech=False,
                  occlusion_s=1.0, cdr=1.0, seed=3)
        load_before = os.getloadavg()
        timed_track(video, 1)  # warm-up: model load, caches
        dec = decode_fps(video)
        tracks, speed, cpu_speed = {}, {}, {}
        for k in (1, 2, 3):
            tr, dt, cpu = timed_track(video, k)
            tracks[k] = tr
            n_video_frames = int(tr.table["frame"].max()) + 1
            speed[k] = n_video_frames / dt  # video frames consumed per second
            cpu_speed[k] = n_video_frames / cpu
        tr1, dt1, cpu1 = timed_track(video, 1, max_faces=1)
        mf1 = (len(tr1.table) / dt1, len(tr1.table) / cpu1)
        jobs2 = two_jobs_fps(video)
        n_naive, dt_naive, cpu_naive = naive_track(video)
        naive = n_naive / dt_naive
        naive_cpu = n_naive / cpu_naive
        load_after = os.getloadavg()
        effect = stride_effect(tracks)
        success = float(tracks[1].table["success"].mean())

    res = {
        "video": {"seconds": args.seconds, "fps": args.fps, "size": [w, h], "frames": n_naive,
                  "success_fraction": success},
        "cores": cores, "machine": platform.processor() or platform.machine(),
        "decode_fps": dec,
        "naive_static_fps": naive,
        "naive_static_cpu_fps": naive_cpu,
        "loadavg_before_after": [load_before, load_after],
        "naive_realtime_factor": naive / args.fps,
        "track": {
            f"stride{k}": {"video_fps": v, "realtime_factor": v / args.fps, "speedup_vs_naive": v / naive,
                           "cpu_fps": cpu_speed[k], "cpu_speedup_vs_naive": cpu_speed[k] / naive_cpu}
            for k, v in speed.items()
        },
        "track_max_faces1": {"video_fps": mf1[0], "realtime_factor": mf1[0] / args.fps,
                             "speedup_vs_naive": mf1[0] / naive, "cpu_fps": mf1[1],
                             "cpu_speedup_vs_naive": mf1[1] / naive_cpu},
        "jobs2": {"video_fps": jobs2, "realtime_factor": jobs2 / args.fps, "speedup_vs_naive": jobs2 / naive},
        "stride_effect_median_rel_change": {k: float(np.median(list(v.values()))) for k, v in effect.items()},
        "stride_effect_per_feature": effect,
        "target": ">= 4x real time at 30 fps on 2 cores (stride 1)",
        "meets_target": speed[1] / args.fps >= 4.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print(f"cores: {cores}   video: {n_naive} frames {w}x{h} @ {args.fps:g} fps   "
          f"load average before/after: {load_before[0]:.1f}/{load_after[0]:.1f}")
    print(f"decode only:                {dec:7.1f} fps")
    print(f"naive (static mode, 1 proc):{naive:7.1f} fps = {naive / args.fps:4.2f}x real time "
          f"({naive_cpu:.1f} frames per CPU-second)")
    for k, v in speed.items():
        print(f"track_video stride {k}:       {v:7.1f} fps = {v / args.fps:4.2f}x real time, "
              f"{v / naive:4.2f}x naive ({cpu_speed[k]:.1f} frames per CPU-second)")
    print(f"track_video max_faces=1:    {mf1[0]:7.1f} fps = {mf1[0] / args.fps:4.2f}x real time, "
          f"{mf1[0] / naive:4.2f}x naive ({mf1[1]:.1f} frames per CPU-second)")
    print(f"2 videos in 2 worker processes:{jobs2:6.1f} fps = {jobs2 / args.fps:4.2f}x real time, "
          f"{jobs2 / naive:4.2f}x naive")
    for k, v in res["stride_effect_median_rel_change"].items():
        print(f"{k}: median relative change of features vs stride 1 = {v:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
