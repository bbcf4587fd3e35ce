"""Speech pipeline speed: real-time factor (RTF) of the whole speech feature set.

A demo recording is built first: ``cdrscreen.demo.voice.speech_track`` (espeak-ng speech
with planted pauses plus two real human turns from alsa-utils as the interviewer), muxed
into an MP4 (H.264 video + AAC audio) with a speaker-segments CSV. Then, in one run on at
most 2 CPU cores:

* ``jit``: librosa's numba first-call cost, measured in fresh processes: once with an
  empty ``NUMBA_CACHE_DIR`` (what every process would pay without a persistent cache),
  once more with the now-filled cache (what users pay: cdrscreen sets a persistent
  ``~/.cache/cdrscreen/numba``), and the warm in-process call for comparison;
* ``warm``: after one warm-up pass, the median of ``--repeats`` passes of all four
  extractors (mfcc, gemaps, egemaps, timing) on the MP4, decoding the audio once per pass
  (as ``run_extractors`` does for one recording); per-group times and the decode time
  are reported too. RTF = wall seconds / recording seconds (target <= 0.02);
  ``cpu_s`` is the process CPU time of a pass, which a busy shared machine inflates less
  than wall time;
* ``threads2``: the same pass with the two openSMILE sets run in two threads (openSMILE's
  C core is called through ctypes, which releases the GIL), using both cores for one
  recording;
* ``study_jobs1`` / ``study_jobs2``: ``run_extractors`` over a study of ``--copies``
  copies of the recording (no cache) in one process and in two worker processes; the
  RTF here is wall seconds over the total audio seconds (throughput on 2 cores).

Results go to ``benchmarks/results/bench_speech.json``.

Usage: ``python benchmarks/bench_speech.py [--seconds 40] [--repeats 3] [--copies 4] [--skip-jit]``
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("CDRSCREEN_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

JIT_CODE = """
import time, numpy as np
t0 = time.perf_counter()
from cdrscreen.features.mfcc import mfcc_matrix
t1 = time.perf_counter()
x = np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32)
mfcc_matrix(x, 16000)
t2 = time.perf_counter()
mfcc_matrix(x, 16000)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def build_recording(folder: Path, seconds: float) -> tuple[Path, Path, float]:
    """Demo-style interview: MP4 with speech (+2 human interviewer turns) and segments CSV."""
    from cdrscreen.demo.encode import write_mp4
    from cdrscreen.demo.voice import VoiceParams, speech_track

    track = speech_track(seconds, VoiceParams(), seed=0, other_speaker_turns=2)
    n_frames = int(seconds * 10)
    frames = (np.full((96, 128, 3), (i * 3) % 255, np.uint8) for i in range(n_frames))
    video = folder / "interview.mp4"
    write_mp4(video, frames, fps=10, audio=track.audio, sr=track.sr)
    seg = track.segments
    seg = seg[seg.kind.isin(["speech", "other"])]
    rows = ["start,end,speaker"] + [
        f"{r.start:.4f},{r.end:.4f},{'patient' if r.kind == 'speech' else 'interviewer'}"
        for r in seg.itertuples()
    ]
    segments = folder / "interview.csv"
    segments.write_text("\n".join(rows) + "\n")
    return video, segments, track.duration


def jit_costs() -> dict[str, float]:
    """First-call costs in fresh processes, with an empty and with a filled numba cache."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        for label in ("empty_cache", "persistent_cache"):
            r = subprocess.run([sys.executable, "-c", JIT_CODE], env=env, capture_output=True,
                               text=True, check=True)
            imp, first, warm = (float(v) for v in r.stdout.split())
            out[f"{label}_import_s"] = imp
            out[f"{label}_first_call_s"] = first
            out["warm_call_s"] = warm
    return out


def one_pass(video: Path, segments: Path, exs: list, threads: bool) -> dict[str, float]:
    """All extractors on one recording; audio decoded once (memo cleared first)."""
    from cdrscreen.features.segments import read_segments
    from cdrscreen.media.audio import clear_memo, load_audio

    clear_memo()
    times: dict[str, float] = {}
    c0 = time.process_time()
    t0 = time.perf_counter()
    x, sr = load_audio(video)
    seg = read_segments(segments)
    times["decode"] = time.perf_counter() - t0
    times["decode_cpu_s"] = time.process_time() - c0

    def run(ex) -> tuple[str, float]:
        t, c = time.perf_counter(), time.process_time()
        ex.process_signal(x, sr, segments=seg, file=str(video))
        if not threads:  # process CPU time is per group only when groups run one at a time
            times[f"{ex.name}_cpu_s"] = time.process_time() - c
        return ex.name, time.perf_counter() - t

    if threads:
        smile = [e for e in exs if e.name in ("gemaps", "egemaps")]
        rest = [e for e in exs if e not in smile]
        with ThreadPoolExecutor(2) as pool:
            futs = [pool.submit(run, e) for e in smile]
            for e in rest:
                name, dt = run(e)
                times[name] = dt
            for f in futs:
                name, dt = f.result()
                times[name] = dt
    else:
        for e in exs:
            name, dt = run(e)
            times[name] = dt
    times["total"] = time.perf_counter() - t0
    times["cpu_s"] = time.process_time() - c0
    return times


def study_pass(videos: list[Path], segments: Path, exs: list, n_jobs: int) -> float:
    """Wall seconds of ``run_extractors`` over one recording per video (no cache)."""
    from cdrscreen.features import run_extractors
    from cdrscreen.study import Recording

    recs = [Recording(subject=f"S{i}", video=v, segments=segments, cdr=0.5) for i, v in enumerate(videos)]
    t0 = time.perf_counter()
    run_extractors(exs, recs, n_jobs=n_jobs, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--skip-jit", action="store_true", help="skip the (slow) empty-cache JIT measurement")
    args = ap.parse_args()

    from cdrscreen.features import get_extractor

    result: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m": os.getloadavg()[0]},
    }
    with tempfile.TemporaryDirectory() as tmp:
        video, segments, dur = build_recording(Path(tmp), args.seconds)
        result["recording"] = {"seconds": dur, "container": "mp4 (h264 + aac)", "segments": "csv"}
        print(f"recording: {dur:.1f} s, load average {os.getloadavg()[0]:.2f}")

        jit = {} if args.skip_jit else jit_costs()
        result["jit"] = jit
        if jit:
            print(f"librosa/numba first call: {jit['empty_cache_first_call_s']:.2f} s with an empty cache, "
              f"{jit['persistent_cache_first_call_s']:.2f} s with the persistent cache "
              f"(warm call {jit['warm_call_s'] * 1000:.1f} ms)")

        exs = [get_extractor(n) for n in ("mfcc", "gemaps", "egemaps", "timing")]
        one_pass(video, segments, exs, threads=False)  # warm-up
        for mode in ("sequential", "threads2"):
            runs = [one_pass(video, segments, exs, threads=(mode == "threads2")) for _ in range(args.repeats)]
            med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
            med["rtf"] = med["total"] / dur
            med["cpu_rtf"] = med["cpu_s"] / dur
            result[mode] = med
            parts = ", ".join(f"{k} {v:.3f}s" for k, v in med.items()
                              if k not in ("total", "rtf", "cpu_rtf") and not k.endswith("_cpu_s"))
            print(f"{mode}: total {med['total']:.3f} s for {dur:.1f} s -> RTF {med['rtf']:.4f} "
                  f"(CPU-time RTF {med['cpu_rtf']:.4f}; {parts})")
            cpu = {k[:-6]: v / dur for k, v in med.items() if k.endswith("_cpu_s") and k != "cpu_s"}
            if cpu:
                print("  CPU-time RTF per group: " + ", ".join(f"{k} {v:.4f}" for k, v in cpu.items()))

        import shutil

        videos = [video]
        for i in range(1, args.copies):
            videos.append(Path(tmp) / f"copy{i}.mp4")
            shutil.copyfile(video, videos[-1])
        total = dur * len(videos)
        for jobs in (1, 2):
            study_pass(videos[:2], segments, exs, jobs)  # warm-up (starts the worker pool)
            wall = float(np.median([study_pass(videos, segments, exs, jobs) for _ in range(args.repeats)]))
            result[f"study_jobs{jobs}"] = {"wall_s": wall, "audio_s": total, "rtf": wall / total}
            print(f"run_extractors n_jobs={jobs}: {wall:.2f} s for {total:.0f} s of audio -> RTF {wall / total:.4f}")
    result["target_rtf"] = 0.02
    out = ROOT / "benchmarks" / "results" / "bench_speech.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
