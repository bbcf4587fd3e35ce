"""Does the model-free expressivity group read eye-in-head motion as expression? Measured.

MediaPipe's face mesh moves with the iris. This benchmark renders real face photos
(scikit-image ``astronaut``, matplotlib ``grace_hopper``) as videos with the demo renderer
under four planted conditions, tracks them as ``cdrscreen extract`` does, and computes the
per-frame region displacements of :mod:`cdrscreen.features.expressivity` with and without
the gaze regression (``remove_gaze``):

``still``
    nothing moves (tracking noise floor);
``iris``
    head and face still, only the irises move (smooth gaze shifts and saccades of up to
    +-0.3 eye widths horizontally and +-0.25 opening heights vertically);
``head``
    head turns, nods and shifts (yaw +-12 deg, pitch +-8 deg, 10 px), face and eyes still;
``mouth``
    jaw drops (mouth opening up to 4 % of the face height, 1-s episodes), nothing else.

For each condition and region it records the mean displacement and the fraction of frames
above the activity threshold, and the ratio of the iris-only displacement to the mouth
(real expression) displacement. Results go to ``benchmarks/results/expressivity_iris.json``.

Usage: ``python benchmarks/bench_expressivity_iris.py [--seconds 8] [--fps 25]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402


def conditions(n: int, fps: float, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Planted trajectories per condition (arrays of length ``n``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps

    def steps(amp: float) -> np.ndarray:  # saccade-like: piecewise constant, 0.4-1.2 s fixations
        out, i = np.zeros(n), 0
        while i < n:
            k = int(rng.uniform(0.4, 1.2) * fps)
            out[i : i + k] = rng.uniform(-amp, amp)
            i += k
        return out

    gaze_x = 0.5 * steps(0.3) + 0.5 * 0.3 * np.sin(2 * np.pi * 0.3 * t)
    gaze_y = 0.5 * steps(0.25) + 0.5 * 0.25 * np.sin(2 * np.pi * 0.21 * t + 1)
    mouth = np.zeros(n)
    for s in range(int(0.5 * fps), n - int(1.2 * fps), int(2.0 * fps)):
        k = int(1.0 * fps)
        mouth[s : s + k] = 0.04 * np.sin(np.linspace(0, np.pi, k))
    return {
        "still": {},
        "iris": {"iris_dx": gaze_x, "iris_dy": gaze_y},
        "head": {"yaw": 12 * np.sin(2 * np.pi * 0.25 * t), "pitch": 8 * np.sin(2 * np.pi * 0.17 * t + 0.5),
                 "tx": 10 * np.sin(2 * np.pi * 0.11 * t)},
        "mouth": {"mouth_open": mouth},
    }


def main() -> None:
    """Render, track, measure; write the results JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--faces", default="astronaut,grace_hopper")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "expressivity_iris.json")
    args = ap.parse_args()

    from cdrscreen.demo.render import render_face_video
    from cdrscreen.demo.trajectories import Trajectories
    from cdrscreen.features.expressivity import REGIONS, ExpressivityExtractor, expressivity_signals
    from cdrscreen.tracking.face import track_video

    n = int(args.seconds * args.fps)
    thr = ExpressivityExtractor().active_iod
    load0 = os.getloadavg()
    t0 = time.time()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for face in args.faces.split(","):
            for cond, traj in conditions(n, args.fps, seed=0).items():
                video = Path(tmp) / f"{face}_{cond}.mp4"
                render_face_video(video, face, Trajectories.constant(n, **traj), fps=args.fps, size=(480, 360))
                track = track_video(video)
                row = {}
                for rg in (True, False):
                    disp, valid = expressivity_signals(track, remove_gaze=rg)
                    key = "gaze_removed" if rg else "raw"
                    row[key] = {r: {"mean": float(np.nanmean(d)), "active": float(np.nanmean(d > thr))}
                                for r, d in disp.items()}
                row["valid_fraction"] = float(valid.mean())
                results[f"{face}/{cond}"] = row
    summary = {}
    for key in ("gaze_removed", "raw"):
        summary[key] = {}
        for r in REGIONS:
            def m(c: str, r: str = r, key: str = key) -> float:
                return float(np.mean([results[f"{f}/{c}"][key][r]["mean"] for f in args.faces.split(",")]))
            summary[key][r] = {c: round(m(c), 4) for c in ("still", "iris", "head", "mouth")}
            summary[key][r]["iris_over_still"] = round(m("iris") / m("still"), 2)
    out = {"what": __doc__.splitlines()[0], "seconds": args.seconds, "fps": args.fps, "active_iod": thr,
           "summary_mean_displacement_iod": summary, "per_video": results,
           "wall_s": round(time.time() - t0, 1), "loadavg_before": load0, "loadavg_after": os.getloadavg(),
           "machine": platform.platform()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
