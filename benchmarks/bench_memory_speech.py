"""Peak memory of ``cdrscreen extract`` on long recordings: the speech groups.

A real-voice clip (alsa-utils' seven spoken channel names under /usr/share/sounds/alsa,
48 kHz, with a short pause after each) is looped into WAV files of 1, 10 and 60 minutes,
at 16 kHz and at 48 kHz, in a temporary folder (never kept). For each file,
``cdrscreen extract`` runs in a fresh child process with the speech groups
(``--features mfcc,gemaps,timing``: the speech groups of ``cdrscreen extract`` that need
no transcript; and ``mfcc,timing``, without openSMILE), a one-row manifest and an empty cache, and the benchmark records its peak
resident memory (``ru_maxrss`` of that child from ``os.wait4``), its CPU seconds (user +
system) and wall seconds. A 1-minute run first fills the numba cache (not recorded).

Reported per rate: peak RSS at 1/10/60 minutes, the ratio 60-minute / 1-minute (target
<= 1.15) and the 60-minute figure against 700 MB, and CPU seconds per audio minute (the
slope between the 1- and 60-minute runs). ``--src PATH`` runs a second source tree of
cdrscreen the same way (e.g. a checkout from before streaming) for comparison;
``--minutes`` changes the lengths. The 1-minute load average is saved before and after
every run. Results go to ``benchmarks/results/bench_memory_speech.json`` (earlier runs are kept
under ``history``).

Usage: ``python benchmarks/bench_memory_speech.py [--minutes 1 10 60] [--rates 16000 48000]
[--src OTHER_CHECKOUT --src-minutes 1 10]``
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ALSA = Path("/usr/share/sounds/alsa")
FEATURES = "mfcc,gemaps,timing"


def voice_clip(sr: int) -> np.ndarray:
    """The alsa-utils voice clips (not the noise one), each followed by 0.7 s of near-silence, at ``sr``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    rng = np.random.default_rng(0)
    parts = []
    for path in sorted(ALSA.glob("*.wav")):
        if path.stem == "Noise":
            continue
        x, rate = sf.read(path, dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        if rate != sr:
            x = resample_poly(x, sr, rate).astype(np.float32)
        parts += [x, (1e-4 * rng.standard_normal(int(0.7 * sr))).astype(np.float32)]
    if not parts:
        raise SystemExit(f"no voice clips under {ALSA} (Debian package alsa-utils)")
    return np.concatenate(parts)


def write_looped(path: Path, clip: np.ndarray, sr: int, minutes: float) -> None:
    """Write ``clip`` looped to ``minutes`` as 16-bit PCM WAV, a clip at a time."""
    import soundfile as sf

    n = int(round(minutes * 60 * sr))
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as fh:
        done = 0
        while done < n:
            part = clip[: n - done]
            fh.write(part)
            done += part.size


def run_extract(wav: Path, work: Path, src: Path, features: str = FEATURES) -> dict:
    """Run ``cdrscreen extract`` on a one-row manifest in a child process; its peak RSS and CPU."""
    manifest = work / "study.csv"
    manifest.write_text(f"subject,session,audio,cdr\nS01,1,{wav},0.5\n", encoding="utf-8")
    cache = Path(tempfile.mkdtemp(dir=work, prefix="cache-"))
    env = dict(os.environ, PYTHONPATH=str(src), CDRSCREEN_NO_PROGRESS="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "cdrscreen", "extract", str(manifest), "--features", features,
           "--out", str(work / "features.parquet"), "--cache", str(cache), "--no-progress"]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(work / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        text = (work / "stderr.txt").read_text(errors="replace")[-2000:]
        raise SystemExit(f"extract failed ({proc.returncode}): {text}")
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "wall_s": round(wall, 2), "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}


def measure(src: Path, minutes: list[float], rates: list[int], work: Path, label: str,
            features: list[str]) -> dict:
    out: dict = {}
    for sr in rates:
        clip = voice_clip(sr)
        warm = work / f"warm_{sr}.wav"
        write_looped(warm, clip, sr, 1)
        run_extract(warm, work, src)  # numba cache, first imports
        warm.unlink()
        runs: dict = {fs: {} for fs in features}
        for m in minutes:
            wav = work / f"voice_{sr}_{m:g}min.wav"
            write_looped(wav, clip, sr, m)
            for fs in features:
                r = run_extract(wav, work, src, fs)
                r["audio_min"] = m
                runs[fs][f"{m:g}"] = r
                print(f"[{label}] {fs} {sr} Hz {m:g} min: peak {r['peak_rss_mb']} MB, {r['cpu_s']} CPU-s, "
                      f"{r['wall_s']} s wall (load {r['load_before']} -> {r['load_after']})", flush=True)
            wav.unlink()
        out[str(sr)] = {fs: summarise(rows, minutes) for fs, rows in runs.items()}
    return out


def summarise(rows: dict, minutes: list[float]) -> dict:
    """Ratio and slopes between the shortest and the longest recording."""
    lo, hi = f"{min(minutes):g}", f"{max(minutes):g}"
    return {
        "peak_rss_ratio_max_over_min": round(rows[hi]["peak_rss_mb"] / rows[lo]["peak_rss_mb"], 3),
        "rss_growth_mb_per_audio_min": round(
            (rows[hi]["peak_rss_mb"] - rows[lo]["peak_rss_mb"]) / (max(minutes) - min(minutes)), 3),
        "cpu_s_per_audio_min": round((rows[hi]["cpu_s"] - rows[lo]["cpu_s"]) / (max(minutes) - min(minutes)), 3),
        "runs": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    ap.add_argument("--rates", type=int, nargs="+", default=[16000, 48000])
    ap.add_argument("--features", nargs="+", default=[FEATURES, "mfcc,timing"],
                    help="feature sets, each measured on every file")
    ap.add_argument("--src", type=Path, default=None, help="another cdrscreen source tree to measure the same way")
    ap.add_argument("--src-minutes", type=float, nargs="+", default=[1, 10])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_memory_speech.json")
    args = ap.parse_args()
    result = {
        "what": "peak RSS and CPU of `cdrscreen extract --features ...` on looped real voice",
        "features": args.features,
        "targets": {"peak_rss_60min_mb": 700, "ratio_60_over_1": 1.15},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    with tempfile.TemporaryDirectory(prefix="bench-mem-speech-") as tmp:
        work = Path(tmp)
        result["this_tree"] = measure(ROOT, args.minutes, args.rates, work, "this tree", args.features)
        if args.src is not None:
            result["other_tree"] = {"src": str(args.src),
                                    **measure(args.src, args.src_minutes, args.rates, work, "other tree", args.features)}
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():  # earlier measurements are kept under "history", oldest first
        old = json.loads(args.out.read_text(encoding="utf-8"))
        result["history"] = old.pop("history", []) + [old]
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(args.out)
    print(json.dumps({sr: {fs: {k: v for k, v in d.items() if k != "runs"} for fs, d in sets.items()}
                      for sr, sets in result["this_tree"].items()}, indent=2))


if __name__ == "__main__":
    main()
