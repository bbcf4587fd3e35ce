"""Express the ``fer`` package's face box on the face mesh (the importer's ``BoxCrop``).

``fer`` cuts faces from OpenCV's Haar-cascade box (made square, widened by 10 px on every
side). cdrscreen has MediaPipe landmarks instead of a Haar box, so the importer declares the
box as a function of the mesh's bounding box. This script measures, on the real photos of
``tests/data/fer2013_keras_reference.npz`` (made by ``scripts/make_fer2013_reference.py``,
which saved the Haar boxes), the Haar box's side and centre relative to the mesh box, and
compares the model's probabilities on the mesh-derived crop with those on ``fer``'s own crop.

    python scripts/calibrate_fer2013_box.py [--onnx fer2013.onnx]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REF = Path(__file__).resolve().parents[1] / "tests" / "data" / "fer2013_keras_reference.npz"


def main() -> None:
    """Print the measured box parameters (and the probability differences with ``--onnx``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, help="an imported fer2013 embedder, to compare crops")
    args = ap.parse_args()

    from cdrscreen.core.embedder import crop_face, face_box
    from cdrscreen.demo.faces import _photo, detect_landmarks
    from fer_backbone.importers.fer2013 import CROP

    ref = np.load(REF)
    rows = []
    for i, name in enumerate(ref["names"]):
        if name.startswith("lfw"):
            continue
        base = name.removesuffix("_flip")
        rgb = _photo(base)
        if name.endswith("_flip"):
            rgb = np.ascontiguousarray(rgb[:, ::-1])
        lm = detect_landmarks(rgb)
        p = lm[:468, :2]
        lo, hi = p.min(0), p.max(0)
        side = float((hi - lo).max())
        x, y, w, h = (float(v) for v in ref["haar_boxes"][i])
        s = max(w, h)
        rows.append({"name": str(name), "scale": s / side,
                     "shift_x": (x + w / 2 - (lo[0] + hi[0]) / 2) / side,
                     "shift_y": (y + h / 2 - (lo[1] + hi[1]) / 2) / side, "margin": 10.0 / s,
                     "mesh_box": [round(float(v), 1) for v in face_box(lm, CROP)]})
        if args.onnx:
            import onnxruntime as ort

            sess = ort.InferenceSession(str(args.onnx), providers=["CPUExecutionProvider"])
            c = crop_face(rgb, lm, CROP, 64).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
            probs = sess.run(["probs"], {"input": c})[0][0]
            rows[-1]["max_abs_prob_diff_vs_fer_crop"] = float(np.abs(probs - ref["probs"][i]).max())
            rows[-1]["same_top_class"] = bool(probs.argmax() == ref["probs"][i].argmax())
    for r in rows:
        print(json.dumps(r))
    print(json.dumps({k: round(float(np.mean([r[k] for r in rows])), 3)
                      for k in ("scale", "shift_x", "shift_y", "margin")}))


if __name__ == "__main__":
    main()
