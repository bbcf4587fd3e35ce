"""How much head pitch leaks into the texture eye signal, against the renderer's true iris.

For ``ind_rot_v`` of every validation face (head pitch ±8° at 0.6 Hz, eye ±0.25
eye-opening heights at 1.7 Hz; 320x240), this script computes where the renderer really
draws each iris (the painted disc's centre carried through the warp's triangle, not the
``iris_*`` columns of the ground truth, which sit at MediaPipe's iris depth) and fits, by
least squares, each eye signal on the planted eye offset (``/eye``: degrees per
eye-opening height) and on sin(planted pitch) (``/sin``: degrees per unit sin(pitch), the
leak). Rows:

* MediaPipe's iris landmark against the true iris (px per eye-opening height and per unit
  sin(pitch)): what the iris estimate itself gets wrong;
* :func:`~cdrscreen.features.eye_texture.eye_in_texture` with the true iris in place of
  the landmark, without, with an uncalibrated and with the calibrated parallax
  correction: what the reference gets wrong;
* the same with the default circle-fitted iris and with MediaPipe's landmark.

Usage: ``python benchmarks/eye_texture_leak.py``; writes
``benchmarks/results/eye_texture_leak.json`` and prints a markdown table.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
from scipy.spatial import Delaunay  # noqa: E402

from cdrscreen.demo.faces import load_face  # noqa: E402
from cdrscreen.demo.planted import VALIDATION_FACES, co_movement_cases  # noqa: E402
from cdrscreen.demo.render import FaceAnimator  # noqa: E402
from cdrscreen.features.eye_texture import EyeTextureParams, eye_in_texture  # noqa: E402
from cdrscreen.tracking.face import track_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "true iris, no parallax correction": ("true", EyeTextureParams(iris_from="mesh", parallax=False)),
    "true iris, uncalibrated correction": ("true", EyeTextureParams(iris_from="mesh", calibrate=False)),
    "true iris, calibrated correction": ("true", EyeTextureParams(iris_from="mesh")),
    "circle iris (default)": ("mesh", EyeTextureParams()),
    "MediaPipe iris": ("mesh", EyeTextureParams(iris_from="mesh")),
}


def true_iris(face: str, case: object, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """Image position (n, 2 eyes, 2) where the renderer draws each iris centre."""
    anim = FaceAnimator(load_face(face, size))
    tri = Delaunay(anim._src2d)
    traj = case.trajectories()
    out = np.zeros((traj.n_frames, 2, 2))
    for i in range(traj.n_frames):
        xy, _, _ = anim.head_points(traj.yaw[i], traj.pitch[i], traj.roll[i], traj.tx[i], traj.ty[i])
        dst = np.vstack([xy[:anim._n_head], anim._border])
        for k, e in enumerate(anim.eyes):
            c = e.centre + e.u * (traj.iris_dx[i] * e.width) + e.v * (traj.iris_dy[i] * e.height)
            s = int(tri.find_simplex(c))
            t = tri.transform[s]
            b = t[:2] @ (c - t[2])
            out[i, k] = np.r_[b, 1 - b.sum()] @ dst[tri.simplices[s]]
    return out


def _fit(y: np.ndarray, eye: np.ndarray, sin_pitch: np.ndarray) -> tuple[float, float]:
    x = np.c_[eye, sin_pitch, np.ones_like(eye)]
    ok = np.isfinite(y)
    c = np.linalg.lstsq(x[ok], y[ok], rcond=None)[0]
    return float(c[0]), float(c[1])


def run(tmp: Path) -> list[dict]:
    rows = []
    for face in VALIDATION_FACES:
        case = {c.name: c for c in co_movement_cases(face)}["ind_rot_v"]
        path = tmp / f"ind_rot_v_{face.replace(':', '')}.mp4"
        case.render(path)
        tr = track_video(path)
        truth = true_iris(face, case)
        up = -case.motion["iris_dy"]
        sin_p = np.sin(np.radians(case.motion["pitch"]))
        lm = np.array(tr.landmarks, float)
        row: dict = {"face": face}
        for k, idx in enumerate((468, 473)):  # MediaPipe's iris against the true one, px (image y down)
            row[f"mediapipe_err_eye{k}"] = _fit(lm[:, idx, 1] - truth[:, k, 1], -up, sin_p)
        with_truth = lm.copy()
        with_truth[:, 468, :2], with_truth[:, 473, :2] = truth[:, 0], truth[:, 1]
        for name, (src, params) in VARIANTS.items():
            e = eye_in_texture(path, tr.table, with_truth if src == "true" else lm, params=params)
            row[name] = _fit(e["eye_pitch"].to_numpy(float), up, sin_p)
            row[f"{name} gain"] = e.attrs.get("parallax_gain")
        rows.append(row)
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(Path(tmp))
    out = ROOT / "benchmarks" / "results" / "eye_texture_leak.json"
    out.write_text(json.dumps({"rows": rows, "loadavg": os.getloadavg()}, indent=1))
    print("| signal | " + " | ".join(r["face"] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for k in (0, 1):
        print(f"| MediaPipe iris error, eye {k} (px per height / per unit sin(pitch)) | "
              + " | ".join(f"{r[f'mediapipe_err_eye{k}'][0]:+.2f} / {r[f'mediapipe_err_eye{k}'][1]:+.2f}"
                           for r in rows) + " |")
    for name in VARIANTS:
        print(f"| {name} (° per height / per unit sin(pitch)) | "
              + " | ".join(f"{r[name][0]:+.1f} / {r[name][1]:+.1f}" for r in rows) + " |")


if __name__ == "__main__":
    main()
