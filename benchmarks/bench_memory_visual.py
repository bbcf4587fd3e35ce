"""Peak memory of visual extraction against the length of the recording (1, 10, 60 minutes).

A short demo clip (a real face photograph animated by :func:`cdrscreen.demo.cohort.make_clip`,
``--size`` at ``--fps``, no audio) is rendered once and looped by stream copy (PyAV, no
re-encoding) into temporary videos of each length in ``--minutes``. For each, a fresh
process runs ``cdrscreen extract`` (the CLI, default spec: the visual groups ``pupil``,
``headpose``; one worker; a fresh cache; signals written) on a one-recording manifest, and
its peak resident memory (``ru_maxrss`` of the child), CPU seconds and wall seconds are
recorded. The headline number is the peak RSS of the longest recording relative to the
shortest (target: at most 1.15, and at most 700 MB).

Nothing is committed but the result, ``benchmarks/results/bench_memory_visual.json`` (under
``--key`` when given; the file's other entries are kept); the looped videos live in a
temporary folder. The 60-minute point takes about 10-20 CPU
minutes at 320x240.

Usage: ``python benchmarks/bench_memory_visual.py [--minutes 1,10,60] [--size 320x240] [--fps 25] [--key NAME] [--code TEXT]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CHILD = """
import resource, subprocess, sys, json, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "maxrss_mb": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "wall_s": time.perf_counter() - t0}))
"""


def loop_video(src: Path, dst: Path, minutes: float) -> float:
    """Write ``src`` repeated (stream copy) until ``minutes`` long; return the seconds written."""
    import av

    with av.open(str(src)) as inp:
        ist = inp.streams.video[0]
        packets = [p for p in inp.demux(ist) if p.size]
        tb = ist.time_base
        dur = max(p.pts + (p.duration or 0) for p in packets)  # in time_base units
        with av.open(str(dst), "w") as out:
            ost = out.add_stream_from_template(ist)
            n_loops = int(-(-minutes * 60 // float(dur * tb)))
            for k in range(n_loops):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts = p.pts + k * dur, p.dts + k * dur
                    q.duration, q.time_base, q.is_keyframe = p.duration, tb, p.is_keyframe
                    q.stream = ost
                    out.mux(q)
    return float(n_loops * dur * tb)


def measure(video: Path, tmp: Path) -> dict:
    """Peak RSS, CPU and wall of ``cdrscreen extract`` on one video in a fresh process."""
    man = tmp / f"{video.stem}.csv"
    man.write_text(f"subject,session,video,cdr\nS1,1,{video},1\n")
    cache = tmp / f"cache_{video.stem}"
    cmd = [sys.executable, "-m", "cdrscreen", "extract", str(man), "--out", str(tmp / f"{video.stem}.parquet"),
           "--cache", str(cache), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    load = os.getloadavg()[0]
    res = subprocess.run([sys.executable, "-c", _CHILD, *cmd], capture_output=True, text=True, env=env, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["rc"] != 0:
        raise SystemExit(f"extract failed on {video}:\n{res.stderr[-2000:]}")
    out["loadavg_before_after"] = [load, os.getloadavg()[0]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="1,10,60")
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--clip-seconds", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_memory_visual.json")
    ap.add_argument("--key", default=None,
                    help="write the result under this key of --out, keeping the file's other entries "
                         "(default: the result replaces the file's top-level entries, other keys kept)")
    ap.add_argument("--code", default="", help="what code was measured (e.g. a commit), recorded with the result")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    minutes = [float(m) for m in args.minutes.split(",")]
    from cdrscreen.demo.cohort import make_clip

    runs = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        clip = tmp / "clip.mp4"
        make_clip(clip, duration_s=args.clip_seconds, fps=args.fps, size=(w, h), speech=False, cdr=1.0, seed=3)
        for m in minutes:
            video = tmp / f"loop_{m:g}min.mp4"
            seconds = loop_video(clip, video, m)
            r = measure(video, tmp)
            r.update(minutes=m, video_seconds=seconds, frames=int(round(seconds * args.fps)))
            runs.append(r)
            print(f"{m:5g} min ({r['frames']} frames): peak RSS {r['maxrss_mb']:.0f} MB, "
                  f"{r['cpu_s']:.0f} CPU-s, {r['wall_s']:.0f} s wall, load {r['loadavg_before_after']}", flush=True)
            video.unlink()
    base, last = runs[0], runs[-1]
    per_min = ((last["maxrss_mb"] - base["maxrss_mb"]) / (last["minutes"] - base["minutes"])
               if len(runs) > 1 else float("nan"))
    res = {
        "command": "cdrscreen extract MANIFEST --out OUT --cache FRESH --no-progress (default spec: pupil, headpose)",
        "video": {"size": [w, h], "fps": args.fps, "looped_clip_seconds": args.clip_seconds},
        "runs": runs,
        "ratio_longest_to_shortest": last["maxrss_mb"] / base["maxrss_mb"],
        "mb_per_minute": per_min,
        "target": "peak RSS of the longest <= 700 MB and <= 1.15 x the shortest",
        "meets_target": last["maxrss_mb"] <= 700 and last["maxrss_mb"] <= 1.15 * base["maxrss_mb"],
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "code": args.code,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.key:
        doc[args.key] = res
    else:
        doc.update(res)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"longest / shortest peak RSS: {res['ratio_longest_to_shortest']:.3f} ({per_min:+.2f} MB per minute); "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
