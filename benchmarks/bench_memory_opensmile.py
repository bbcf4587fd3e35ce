"""Where openSMILE's memory grows with the recording's length (GeMAPS / eGeMAPS functionals).

Runs ``cdrscreen.features.gemaps._run_stream`` (the streamed path of the ``gemaps`` /
``egemaps`` groups) in a fresh child process per case on alsa-utils' real-voice clips
looped to 2 and 10 minutes at 16 kHz, and records, in that child, the resident memory
sampled every 0.25 s while openSMILE runs (``VmRSS``), the peak (``VmHWM``) and the CPU
seconds. Growth per audio minute is the slope between the two lengths.

Variants (``--variants``): ``base`` runs openSMILE's own sizing of the levels before the
functionals (``shared/BufferMode.conf.inc``: growing, non-ring levels of 1000 frames,
doubled as they fill; ``_run_stream`` without ``n_samples``, cdrscreen before it sized
them); ``sized`` is what the ``gemaps`` / ``egemaps`` groups run: ``_run_stream(...,
n_samples=n)``, which sizes those levels for the signal up front
(``gemaps.level_frames``: the number of 10-ms frames plus 100). The functionals' values
are compared between the variants (``values_equal_to_base``).

What grows (openSMILE 3.0 in opensmile-python 2.6, read from ``printLevelStats`` and its
data-memory code): of GeMAPSv01b's 49 data-memory levels, 44 are ring buffers of 5-150
frames (frames, spectra, pitch candidates and the LLD chain); the 5 levels read by the
``frameMode = full`` functionals (22 LLD values) keep every 10-ms frame, each frame
costing its values plus two 64-byte time-meta records (the level's and its matrix's);
at the end of the input each of the 7 functionals components reading them copies its
whole input level (values plus a 64-byte time-meta record per frame). About 0.73 kB per
frame while the audio runs and 0.61 kB more at the end: 8 MB per audio minute, 7 levels
and 10 readers for eGeMAPSv02.

Usage: ``python benchmarks/bench_memory_opensmile.py [--groups gemaps egemaps] [--minutes 2 10]``
Results go to ``benchmarks/results/bench_memory_opensmile.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SR = 16000

CHILD = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/benchmarks")
import numpy as np
from bench_memory_speech import voice_clip
import cdrscreen.features.gemaps as g
group, minutes, variant = sys.argv[2], float(sys.argv[3]), sys.argv[4]
sr = %(sr)d
clip = voice_clip(sr)
n = int(minutes * 60 * sr)

def blocks():
    done = 0
    while done < n:
        b = clip[: n - done]
        done += len(b)
        yield b

smile, _ = g._smile(group)

def vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

rss0 = vm("VmRSS")
trace, stop = [], []
def sample():
    while not stop:
        trace.append(vm("VmRSS"))
        time.sleep(0.25)
th = threading.Thread(target=sample, daemon=True)
th.start()
c0 = time.process_time()
v = g._run_stream(group, blocks(), sr, n_samples=n if variant == "sized" else None)
cpu = time.process_time() - c0
stop.append(1)
th.join()
print(json.dumps({"rss_before_mb": rss0, "rss_max_during_run_mb": max(trace), "peak_mb": vm("VmHWM"),
                  "cpu_s": cpu, "values_sum": float(np.nansum(v)), "values": [float(x) for x in v]}))
"""


def run_case(group: str, minutes: float, variant: str) -> dict:
    """Run one case in a child process and return its measurements."""
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, "-c", CHILD % {"sr": SR}, str(ROOT), group, str(minutes), variant],
        check=True, capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"),
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(group=group, minutes=minutes, variant=variant, load_1min=load)
    res["growth_during_run_mb"] = res["rss_max_during_run_mb"] - res["rss_before_mb"]
    res["growth_peak_mb"] = res["peak_mb"] - res["rss_before_mb"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", nargs="+", default=["gemaps", "egemaps"])
    ap.add_argument("--minutes", nargs=2, type=float, default=[2.0, 10.0])
    ap.add_argument("--variants", nargs="+", default=["base", "sized"], choices=["base", "sized"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_memory_opensmile.json")
    args = ap.parse_args()
    rows, summary = [], []
    for group in args.groups:
        for variant in args.variants:
            pair = [run_case(group, m, variant) for m in args.minutes]
            for r in pair:
                print(f"{group:8s} {variant:9s} {r['minutes']:5.1f} min: +{r['growth_during_run_mb']:.1f} MB during "
                      f"the run, +{r['growth_peak_mb']:.1f} MB peak, {r['cpu_s']:.1f} CPU-s "
                      f"(load {r['load_1min']:.1f})", flush=True)
                rows.append({k: v for k, v in r.items() if k != "values"})
            dm = pair[1]["minutes"] - pair[0]["minutes"]
            summary.append({
                "group": group, "variant": variant,
                "run_mb_per_audio_min": (pair[1]["growth_during_run_mb"] - pair[0]["growth_during_run_mb"]) / dm,
                "peak_mb_per_audio_min": (pair[1]["growth_peak_mb"] - pair[0]["growth_peak_mb"]) / dm,
                "values_equal_to_base": None,
                "_values": [p["values"] for p in pair],
            })
    for s in summary:
        base = next(b for b in summary if b["group"] == s["group"] and b["variant"] == "base")
        s["values_equal_to_base"] = bool(np.array_equal(np.array(s["_values"]), np.array(base["_values"]), equal_nan=True))
    for s in summary:
        del s["_values"]
        print(f"{s['group']:8s} {s['variant']:9s}: {s['run_mb_per_audio_min']:.1f} MB per audio minute during the run, "
              f"{s['peak_mb_per_audio_min']:.1f} at the peak; values equal to base: {s['values_equal_to_base']}")
    result = {"sr": SR, "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "rows": rows, "summary": summary}
    if args.out.exists():  # earlier measurements are kept under "history", oldest first
        old = json.loads(args.out.read_text(encoding="utf-8"))
        result["history"] = old.pop("history", []) + [old]
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_out, args.out)


if __name__ == "__main__":
    main()
