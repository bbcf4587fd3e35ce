"""Peak memory of the visual features after tracking, on face tracks tiled to 1, 10 and 60 minutes.

Tracking an hour of video takes about 20 CPU minutes, and its memory was measured flat
(``bench_memory_visual.py``), so this harness skips it: a short real-face demo clip
(:func:`cdrscreen.demo.cohort.make_clip`) is tracked once, and its
:class:`~cdrscreen.tracking.face.FaceTrack` table and landmarks are tiled to each length in
``--minutes`` (``frame``/``time`` renumbered; the landmarks written to a ``.npy`` file and
memory-mapped, as a tracked video's are). For each length a fresh process runs the default
groups (``pupil``, ``headpose``) through the study runner's :func:`run_one` (compute, the
signals written to Parquet and kept in a fresh feature cache) and reports its peak resident
memory (``ru_maxrss``) after each step and its CPU seconds. ``headpose`` runs with
``eye_in_head="corners"``: the default eye signal (``texture``) decodes the video again,
and a tiled track has no video of its length; ``bench_memory_visual.py`` measures the
default on real looped videos.

Usage: ``python benchmarks/bench_memory_visual_tiled.py [--minutes 1,10,60] [--key NAME] [--code TEXT]``
(writes the ``tiled`` entry, or ``--key``, of ``benchmarks/results/bench_memory_visual.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_source(tmp: Path, seconds: float, fps: float) -> Path:
    """Render and track the demo clip; save its table and landmarks under ``tmp``."""
    import numpy as np

    from cdrscreen.demo.cohort import make_clip
    from cdrscreen.tracking.face import track_video

    clip = tmp / "clip.mp4"
    make_clip(clip, duration_s=seconds, fps=fps, size=(320, 240), speech=False, cdr=1.0, seed=3)
    tr = track_video(clip)
    tr.table.to_parquet(tmp / "table.parquet")
    np.save(tmp / "landmarks.npy", np.asarray(tr.landmarks))
    (tmp / "meta.json").write_text(json.dumps({"fps": tr.fps, "width": tr.width, "height": tr.height}))
    return clip


def tile(tmp: Path, minutes: float) -> tuple[Path, Path]:
    """Tile the source track to ``minutes`` of frames; return the table and landmark paths."""
    import numpy as np
    import pandas as pd

    meta = json.loads((tmp / "meta.json").read_text())
    t = pd.read_parquet(tmp / "table.parquet")
    lm = np.load(tmp / "landmarks.npy", mmap_mode="r")
    n = int(round(minutes * 60 * meta["fps"]))
    idx = np.arange(n) % len(t)
    out = t.iloc[idx].reset_index(drop=True)
    out["frame"] = np.arange(n, dtype=out["frame"].dtype)
    out["time"] = np.arange(n) / meta["fps"]
    tp, lp = tmp / f"table_{minutes:g}.npz", tmp / f"landmarks_{minutes:g}.npy"
    np.savez(tp, **{c: out[c].to_numpy() for c in out.columns})  # read back column by column
    big = np.lib.format.open_memmap(lp, mode="w+", dtype=lm.dtype, shape=(n, *lm.shape[1:]))
    for a in range(0, n, len(t)):
        b = min(n, a + len(t))
        big[a:b] = lm[: b - a]
    big.flush()
    del big
    return tp, lp


def child(tmp: Path, clip: Path, tp: Path, lp: Path) -> dict:
    """In this (fresh) process: run the default groups on the tiled track; peak RSS per step."""
    import resource
    import tracemalloc

    import numpy as np
    import pandas as pd

    from cdrscreen.cache import FeatureCache
    from cdrscreen.features.base import run_one
    from cdrscreen.features.registry import get_extractor
    from cdrscreen.study import Recording
    from cdrscreen.tracking.face import FaceTrack, TrackConfig

    def rss() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    meta = json.loads((tmp / "meta.json").read_text())
    steps = {"imports": rss()}
    with np.load(tp) as z:  # the table as tracking builds it (typed column arrays, not consolidated)
        table = pd.DataFrame({c: z[c] for c in z.files}, copy=False)
    track = FaceTrack(clip, meta["fps"], meta["width"], meta["height"], TrackConfig(),
                      table, np.load(lp, mmap_mode="r"))
    steps["track_loaded"] = rss()
    cache = FeatureCache(tmp / f"cache_{tp.stem}")
    rec = Recording(subject="S1", session="1", video=clip, cdr=1.0)
    c0 = time.process_time()
    tracemalloc.start()
    py_peaks = {}
    for name in ("pupil", "headpose"):
        ext = get_extractor(name, cache_dir=None, **({"eye_in_head": "corners"} if name == "headpose" else {}))
        ext.track = lambda path, _t=track: _t  # the tiled track instead of tracking the clip
        tracemalloc.reset_peak()
        run_one(ext, rec, cache, signals_dir=tmp / f"signals_{tp.stem}")
        py_peaks[name] = tracemalloc.get_traced_memory()[1] / 2**20
        steps[name] = rss()
    tracemalloc.stop()
    return {"frames": len(track.table), "maxrss_mb_after": steps, "tracemalloc_peak_mb": py_peaks,
            "cpu_s": time.process_time() - c0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="1,10,60")
    ap.add_argument("--clip-seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_memory_visual.json")
    ap.add_argument("--key", default="tiled", help="entry of --out written (the file's other entries are kept)")
    ap.add_argument("--code", default="", help="what code was measured (e.g. a commit), recorded with the result")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--prepare", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--tile", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*map(Path, args.child))))
        return
    if args.prepare:
        make_source(Path(args.prepare[0]), args.clip_seconds, float(args.prepare[1]))
        return
    if args.tile:
        tile(Path(args.tile[0]), float(args.tile[1]))
        return
    runs = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        # every step in its own process: this one stays small, so the children's peak RSS
        # (which starts from the parent's at fork) is their own
        me = [sys.executable, __file__, "--clip-seconds", str(args.clip_seconds)]
        subprocess.run([*me, "--prepare", str(tmp), str(args.fps)], check=True)
        clip = tmp / "clip.mp4"
        for m in (float(x) for x in args.minutes.split(",")):
            subprocess.run([*me, "--tile", str(tmp), str(m)], check=True)
            tp, lp = tmp / f"table_{m:g}.npz", tmp / f"landmarks_{m:g}.npy"
            load = os.getloadavg()[0]
            res = subprocess.run([sys.executable, __file__, "--child", str(tmp), str(clip), str(tp), str(lp)],
                                 capture_output=True, text=True, check=False)
            if res.returncode:
                raise SystemExit(f"{m:g} min failed:\n{res.stderr[-2000:]}")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            r.update(minutes=m, peak_mb=max(r["maxrss_mb_after"].values()),
                     loadavg_before_after=[load, os.getloadavg()[0]])
            runs.append(r)
            print(f"{m:5g} min ({r['frames']} frames): peak RSS {r['peak_mb']:.0f} MB {r['maxrss_mb_after']}, "
                  f"python peaks {r['tracemalloc_peak_mb']}, {r['cpu_s']:.0f} CPU-s, load {r['loadavg_before_after']}",
                  flush=True)
            lp.unlink()
    first, last = runs[0], runs[-1]
    tiled = {
        "what": "pupil+headpose run_one (compute, signals to Parquet, fresh feature cache) on a tracked "
                f"{args.clip_seconds:g} s 320x240 demo clip's FaceTrack tiled to each length; tracking skipped",
        "runs": runs, "ratio_longest_to_shortest": last["peak_mb"] / first["peak_mb"],
        "target": "peak RSS of the longest <= 700 MB and <= 1.15 x the shortest",
        "meets_target": last["peak_mb"] <= 700 and last["peak_mb"] <= 1.15 * first["peak_mb"],
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "code": args.code,
    }
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {}
    doc[args.key] = tiled
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"longest / shortest: {tiled['ratio_longest_to_shortest']:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
