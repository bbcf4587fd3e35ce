"""Iris depth from the iris landmarks or from the eye-contour surface: vertical co-movement.

The ``head`` eye-in-head signal (:mod:`cdrscreen.features.gaze`) cuts the ray through
the iris with a head-fixed plane at the iris depth; an error of ``d`` mm in that depth
reads ``d * sin(pitch)`` mm of false eye motion. This script renders ``ind_rot_v``,
``co_rot_v``, ``co_trans_v`` and the vertical still-head case of every validation face
(320x240, as ``benchmarks/validate_visual.py``) and reports the ``headpose`` vertical
correlations with ``eye_in_head="head"`` for three depths taken from the tracked mesh
(median over frames, both eyes): ``iris`` (the iris landmarks, the default),
``lids`` (:func:`~cdrscreen.features.gaze.iris_depth_mm` with ``depth_from="lids"``:
the eye-contour surface at the iris) and ``lid_mid`` (mean of the upper and lower lid
midpoints 159/145, 386/374). The extractor takes its depth from
:func:`cdrscreen.features.gaze.eye_in_head`; the script patches that function with the
depth fixed to each source in turn. It also reports how the per-frame contour depth at
the iris moves with the iris (SD over frames and the correlation with the iris's
vertical position in the head), and, on ``ind_rot_v``, where a fixed depth swept from 8 mm
in front of to 2 mm behind the iris landmarks' depth puts the zero of ``corr_pos_v_r``.

Usage: ``python benchmarks/iris_depth_sources.py``; writes
``benchmarks/results/iris_depth_sources.json`` and prints a markdown table.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from unittest import mock

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

from cdrscreen.demo.planted import VALIDATION_FACES, co_movement_cases, still_head_cases  # noqa: E402
from cdrscreen.features import gaze  # noqa: E402
from cdrscreen.features.headpose import HeadPoseExtractor  # noqa: E402
from cdrscreen.tracking.face import track_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STATS = ("corr_pos_v_r", "corr_pos_v_rho", "corr_vel_v_r", "corr_vel_v_rho")


def depths(tr: object) -> dict[str, float]:
    """The three depth sources (mm) of a track."""
    a = (tr.table, tr.landmarks, tr.width, tr.height)
    mid = [gaze._head_points(*a, [u, d])[..., 2].mean(axis=1) for u, d in ((159, 145), (386, 374))]
    return {"iris": gaze.iris_depth_mm(*a), "lids": gaze.iris_depth_mm(*a, depth_from="lids"),
            "lid_mid": float(np.nanmedian(np.concatenate(mid)))}


def stability(tr: object) -> dict[str, float]:
    """Per-frame contour depth at the iris: SD over frames and correlation with the iris's head y."""
    a = (tr.table, tr.landmarks, tr.width, tr.height)
    zs, ys = [], []
    for centre, contour in zip(gaze.IRIS_CENTRES, gaze.EYE_CONTOURS, strict=True):
        pts = gaze._head_points(*a, [centre, *contour])
        w = 1.0 / np.maximum(np.sum((pts[:, 1:, :2] - pts[:, :1, :2]) ** 2, axis=-1), 1e-6)
        zs.append(np.sum(w * pts[:, 1:, 2], axis=1) / w.sum(axis=1))
        ys.append(pts[:, 0, 1])
    z, y = np.mean(zs, axis=0), np.mean(ys, axis=0)
    return {"lids_sd_mm": float(np.std(z)), "r_lids_depth_iris_y": float(np.corrcoef(z, y)[0, 1])}


def _r(path: Path, depth: float) -> dict[str, float]:
    with mock.patch.object(gaze, "eye_in_head", functools.partial(gaze.eye_in_head, depth_mm=depth)):
        hp = HeadPoseExtractor(eye_in_head="head").process_file(path).iloc[0]
    return {k: float(hp[f"headpose__{k}"]) for k in STATS}


def zero_offset(path: Path, depth: float) -> float:
    """Offset (mm, < 0: in front) from ``depth`` where ``corr_pos_v_r`` crosses 0 (linear interpolation)."""
    off = np.arange(-8.0, 2.01, 0.5)
    r = np.array([_r(path, depth + o)["corr_pos_v_r"] for o in off])
    k = np.flatnonzero(np.diff(np.sign(r)) != 0)
    if not k.size:
        return float("nan")
    i = k[-1]
    return float(off[i] - r[i] * (off[i + 1] - off[i]) / (r[i + 1] - r[i]))


def run(tmp: Path) -> list[dict]:
    out = []
    for face in VALIDATION_FACES:
        cases = {c.name: c for c in co_movement_cases(face)}
        sel = [cases["ind_rot_v"], cases["co_rot_v"], cases["co_trans_v"]]
        sel += [c for c in still_head_cases((face,)) if c.truth["axis"] == "v"]
        for case in sel:
            p = tmp / f"{case.name}_{face.replace(':', '')}.mp4"
            case.render(p)
            tr = track_video(p)
            row = {"face": face, "case": case.name, "depth_mm": depths(tr), **stability(tr)}
            for src, d in row["depth_mm"].items():
                row[src] = _r(p, d)
            if case.name == "ind_rot_v":
                row["zero_r_offset_mm"] = zero_offset(p, row["depth_mm"]["iris"])
            out.append(row)
    return out


def table(rows: list[dict]) -> str:
    def cell(v: dict) -> str:
        m = max((abs(x) for x in v.values() if np.isfinite(x)), default=float("nan"))
        return "NaN" if not np.isfinite(m) else f"{v['corr_pos_v_r']:+.2f} ({m:.2f})"

    lines = ["| face | case | depth iris / lids / lid_mid (mm) | iris r (max) | lids r (max) | lid_mid r (max) | "
             "contour depth SD (mm) | r(contour depth, iris y) |", "|---|---|---|---|---|---|---|---|"]
    for e in rows:
        d = e["depth_mm"]
        lines.append(f"| {e['face']} | {e['case']} | {d['iris']:.1f} / {d['lids']:.1f} / {d['lid_mid']:.1f} | "
                     f"{cell(e['iris'])} | {cell(e['lids'])} | {cell(e['lid_mid'])} | {e['lids_sd_mm']:.1f} | "
                     f"{e['r_lids_depth_iris_y']:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(Path(tmp))
    res = {"rows": rows, "loadavg": os.getloadavg()}
    out = ROOT / "benchmarks" / "results" / "iris_depth_sources.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".json.part")
    part.write_text(json.dumps(res, indent=1))
    part.replace(out)
    print(table(rows))
    for e in rows:
        if "zero_r_offset_mm" in e:
            print(f"{e['face']} ind_rot_v: r = 0 at {e['zero_r_offset_mm']:+.1f} mm from the iris landmarks' depth")


if __name__ == "__main__":
    main()
