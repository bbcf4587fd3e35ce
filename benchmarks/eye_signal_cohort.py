"""Does each eye-in-head signal recover the demo cohort's planted vertical coupling?

Builds the 12-subject demo cohort of ``docs/demo-cohort.md``
(``build_cohort(n_subjects=12, seed=0, duration_s=8)``, 4 subjects per CDR class) in a
temporary folder and extracts ``headpose`` with ``eye_in_head`` = ``corners``, ``head``
and ``texture``. For each it reports Pearson r across subjects between
``headpose__corr_pos_v_r`` and the planted ``planted_r_vertical`` (and the horizontal
pair), the class means per CDR, and the CPU seconds of the extraction (tracking
included; the track is shared between the three through the cache).

Usage: ``python benchmarks/eye_signal_cohort.py``; writes
``benchmarks/results/eye_signal_cohort.json`` and prints one line per signal.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cdrscreen.demo.cohort import build_cohort  # noqa: E402
from cdrscreen.features.headpose import HeadPoseExtractor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = ("corners", "head", "texture")


def run(root: Path) -> dict:
    manifest = pd.read_csv(build_cohort(root, n_subjects=12, seed=0, duration_s=8))
    truth = pd.read_csv(root / "ground_truth" / "subjects.csv").set_index("subject")
    out: dict = {"n_subjects": int(len(manifest)),
                 "planted_class_means_v": truth.groupby("cdr")["planted_r_vertical"].mean().round(3).to_dict()}
    cache = root / "cache"
    for mode in SIGNALS:
        ex = HeadPoseExtractor(eye_in_head=mode, cache_dir=cache)
        c0 = time.process_time()
        rows = [{"subject": r["subject"], **ex.process_file(root / r["video"]).iloc[0][
            ["headpose__corr_pos_v_r", "headpose__corr_pos_h_r"]].to_dict()} for _, r in manifest.iterrows()]
        cpu = time.process_time() - c0
        g = pd.DataFrame(rows).groupby("subject").mean().join(truth[["cdr", "planted_r_vertical", "planted_r_horizontal"]])
        out[mode] = {
            "r_vertical": float(np.corrcoef(g["headpose__corr_pos_v_r"], g["planted_r_vertical"])[0, 1]),
            "r_horizontal": float(np.corrcoef(g["headpose__corr_pos_h_r"], g["planted_r_horizontal"])[0, 1]),
            "class_means_v": g.groupby("cdr")["headpose__corr_pos_v_r"].mean().round(3).to_dict(),
            "cpu_s": cpu,
        }
    out["loadavg"] = os.getloadavg()
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        res = run(Path(tmp))
    path = ROOT / "benchmarks" / "results" / "eye_signal_cohort.json"
    path.write_text(json.dumps(res, indent=1, default=float))
    print("planted class means (vertical)", res["planted_class_means_v"])
    for mode in SIGNALS:
        e = res[mode]
        print(f"{mode}: r(corr_pos_v_r, planted) {e['r_vertical']:+.2f}, r(corr_pos_h_r, planted) "
              f"{e['r_horizontal']:+.2f}, class means {e['class_means_v']}, {e['cpu_s']:.1f} CPU-s")


if __name__ == "__main__":
    main()
