"""A small SYNTHETIC face-expression image set, built offline from real face photographs.

Used only to train the demo's expression model (:mod:`cdrscreen.demo.expression_model`);
it is **not** a facial-expression-recognition benchmark and its accuracies say nothing
about how a model does on real expressions.

How it is made (all seeded):

- **Photographs.** scikit-image's ``lfw_subset`` faces (those MediaPipe finds a face in),
  ``astronaut`` and matplotlib's ``grace_hopper``. The LFW photographs are split into
  training and test photographs (``test_fraction``, seeded); ``astronaut`` and
  ``grace_hopper`` (the demo cohort's faces) are training photographs only, with
  ``cohort_weight`` times the images of an LFW photograph each (the model is made for the
  demo's faces), so the test set holds photographs the model never saw.
- **Variants.** Each photograph is prepared several times (:func:`~cdrscreen.demo.faces.load_face`
  at the demo cohort's 320 x 240 frame size), with random mirroring, skin tint, face size
  and position.
- **Expressions.** Each image gets a class from :data:`~cdrscreen.demo.expressions.EXPRESSIONS`
  (balanced) at a random intensity in ``intensity`` (neutral: none, plus up to 0.1 of one
  random control), rendered by :class:`~cdrscreen.demo.render.FaceAnimator` with a random
  head pose (yaw within +-10 deg, pitch +-7, roll +-4), gaze, partial blink, speech-like jaw
  opening (up to 3.5 % of the face height), lighting gain and pixel noise, as in the demo
  cohort's videos.
- **Crop.** The face is cut out with the template crop that the exported embedder declares
  (:data:`CROP`: eye centres and mouth centre to fixed positions of a square), at
  ``input_size``, from the rendered landmark positions, and saved as PNG in an image-folder
  layout (``train/<class>/*.png``, ``test/<class>/*.png``) that ``fer_backbone``'s
  ``image_folder`` reader takes.

``set.json`` records the settings, the photographs of each split and the counts; a second
call with the same settings reuses the folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.core.io import write_json
from cdrscreen.demo.expressions import CONTROLS, EXPRESSIONS, expression_controls
from cdrscreen.demo.faces import FaceSource

#: Classes of the demo expression set, in label order.
CLASSES: tuple[str, ...] = tuple(EXPRESSIONS)
#: Bump when the generator changes the images.
SET_VERSION = 1
#: Template crop (fractions of the square side): image-left eye centre, image-right eye
#: centre, mouth centre. The same recipe goes into the exported embedder's metadata.
CROP: dict[str, Any] = {"kind": "template",
                        "points": {"eye_image_left": (0.30, 0.40), "eye_image_right": (0.70, 0.40),
                                   "mouth": (0.50, 0.78)}}


@dataclass(frozen=True)
class ExpressionSetConfig:
    """Settings of the synthetic expression set (see the module docstring)."""

    n_train_per_class: int = 250
    n_test_per_class: int = 50
    input_size: int = 48
    variants_per_photo: int = 3
    cohort_weight: float = 8.0
    test_fraction: float = 0.25
    intensity: tuple[float, float] = (0.55, 1.0)
    frame_size: tuple[int, int] = (320, 240)
    seed: int = 0

    def key(self) -> str:
        """Hash of the settings and generator version (the folder is reused when it matches)."""
        blob = json.dumps({**asdict(self), "version": SET_VERSION, "classes": CLASSES}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def template_crop(rgb: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Cut the :data:`CROP` template crop (``size`` x ``size`` RGB) from a frame and its landmarks.

    The same alignment as :func:`cdrscreen.core.embedder.crop_face` with this recipe, except
    that the eyes are named by their image side (a mirrored still keeps MediaPipe's landmark
    indices, so its landmark-33 eye is on the image right; a tracker run on the rendered
    frame would name them by side).
    """
    import cv2

    from cdrscreen.core.embedder import keypoints, similarity_transform

    names = list(CROP["points"])
    src = keypoints(landmarks, names)
    if src[0, 0] > src[1, 0]:
        src[[0, 1]] = src[[1, 0]]
    dst = np.array([CROP["points"][n] for n in names], float) * size
    m = similarity_transform(src, dst)
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def usable_photos() -> list[str]:
    """Photographs MediaPipe finds a face in: ``astronaut``, ``grace_hopper`` and ``lfw:<i>``."""
    from cdrscreen.demo.faces import preload_photos

    found = preload_photos(["astronaut", "grace_hopper"] + [f"lfw:{i}" for i in range(100)])
    return [name for name, ok in found.items() if ok]


def split_photos(photos: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of the LFW photographs; ``astronaut``/``grace_hopper`` always train."""
    lfw = [p for p in photos if p.startswith("lfw:")]
    rng = np.random.default_rng([seed, 101])
    n_test = int(round(test_fraction * len(lfw)))
    test = sorted(rng.permutation(lfw)[:n_test].tolist(), key=lambda s: int(s.split(":")[1]))
    train = [p for p in photos if p not in test]
    return train, test


def _variants(photo: str, n_variants: int, cfg: ExpressionSetConfig, seed: int) -> list[FaceSource]:
    """Prepare copies of one photograph: mirrored every other time, random tint, size, position."""
    from cdrscreen.demo.faces import load_face

    rng = np.random.default_rng([cfg.seed, seed, 1])
    return [load_face(photo, cfg.frame_size, face_height=float(rng.uniform(0.52, 0.7)),
                      centre=(float(rng.uniform(0.44, 0.56)), float(rng.uniform(0.43, 0.51))),
                      mirror=bool((v + seed) % 2),
                      tint=tuple(float(x) for x in np.clip(rng.normal(1.0, 0.05, 3), 0.85, 1.15)))
            for v in range(n_variants)]


def _render_photo(faces: list[FaceSource], labels: list[int], cfg: ExpressionSetConfig,
                  seed: int) -> list[tuple[int, np.ndarray]]:
    """Render ``len(labels)`` expression crops of one photograph, spread over its prepared variants."""
    import cv2

    from cdrscreen.demo.render import FaceAnimator
    from cdrscreen.demo.trajectories import Trajectories

    cv2.setNumThreads(1)
    rng = np.random.default_rng([cfg.seed, seed])
    out: list[tuple[int, np.ndarray]] = []
    chunks = np.array_split(np.asarray(labels, int), len(faces))
    for face, chunk in zip(faces, chunks, strict=True):
        if len(chunk) == 0:
            continue
        n = len(chunk)
        ctrl = {c: np.zeros(n) for c in CONTROLS}
        mouth = rng.uniform(0, 0.035, n) * (rng.random(n) < 0.6)
        for i, y in enumerate(chunk):
            name = CLASSES[int(y)]
            if name == "neutral":
                ctrl[CONTROLS[int(rng.integers(len(CONTROLS)))]][i] = rng.uniform(0, 0.1)
                continue
            for k, val in expression_controls(name, rng.uniform(*cfg.intensity)).items():
                if k == "mouth_open":
                    mouth[i] = max(mouth[i], val)
                else:
                    ctrl[k][i] = val
        traj = Trajectories.constant(
            n, yaw=rng.uniform(-10, 10, n), pitch=rng.uniform(-7, 7, n), roll=rng.uniform(-4, 4, n),
            tx=rng.uniform(-6, 6, n), ty=rng.uniform(-4, 4, n), iris_dx=rng.uniform(-0.2, 0.2, n),
            iris_dy=rng.uniform(-0.25, 0.25, n), closure=rng.uniform(0, 0.4, n) * (rng.random(n) < 0.2),
            gain=rng.uniform(0.92, 1.08, n), mouth_open=mouth, **ctrl)
        sigma = rng.uniform(1, 3, n)  # pixel noise, added to the crop (cheaper than a noise bank per variant)
        anim = FaceAnimator(face, seed=int(rng.integers(0, 2**31 - 1)))
        expr = np.stack([getattr(traj, c) for c in CONTROLS], axis=1)
        for i, (frame, _info, _rot) in enumerate(anim.render(traj)):
            xy, _z, _r = anim.head_points(traj.yaw[i], traj.pitch[i], traj.roll[i], traj.tx[i], traj.ty[i],
                                          traj.mouth_open[i], expr[i])
            crop = template_crop(frame, xy[:468], cfg.input_size).astype(np.float32)
            crop += rng.normal(0, sigma[i], crop.shape).astype(np.float32)
            out.append((int(chunk[i]), np.clip(crop + 0.5, 0, 255).astype(np.uint8)))
    return out


def _assign(photos: list[str], n_per_class: int, rng: np.random.Generator,
            weight: dict[str, float] | None = None) -> dict[str, list[int]]:
    """Balanced labels (shuffled) spread over the photographs in proportion to their ``weight`` (default 1)."""
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES)), n_per_class))
    w = np.array([(weight or {}).get(p, 1.0) for p in photos], float)
    cuts = np.round(np.cumsum(w) / w.sum() * len(labels)).astype(int)
    parts = np.split(labels, cuts[:-1])
    return {p: part.tolist() for p, part in zip(photos, parts, strict=True)}


def build_expression_set(out_dir: str | Path, cfg: ExpressionSetConfig | None = None, *,
                         n_jobs: int = 1, force: bool = False) -> dict[str, Any]:
    """Build (or reuse) the synthetic expression set in ``out_dir``; return ``set.json``'s content.

    Parameters
    ----------
    out_dir : path
        Folder for ``train/<class>/``, ``test/<class>/`` and ``set.json``.
    cfg : ExpressionSetConfig, optional
    n_jobs : int
        Worker processes (one task per photograph); the output does not depend on it.
    force : bool
        Rebuild even if the folder holds a set with the same settings.
    """
    import cv2
    from joblib import Parallel, delayed

    from cdrscreen.core.io import atomic_path

    cfg = cfg or ExpressionSetConfig()
    root = Path(out_dir)
    info_path = root / "set.json"
    key = cfg.key()
    if not force and info_path.exists():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("key") == key:
            return info
    for split in ("train", "test"):
        if (root / split).exists():
            shutil.rmtree(root / split)
    photos = usable_photos()
    train_p, test_p = split_photos(photos, cfg.test_fraction, cfg.seed)
    if not train_p or not test_p:
        raise CdrscreenError("expression set: too few usable face photographs for a train/test split")
    rng = np.random.default_rng([cfg.seed, 202])
    cohort = {"astronaut": cfg.cohort_weight, "grace_hopper": cfg.cohort_weight}
    plan = [("train", p, lab) for p, lab in _assign(train_p, cfg.n_train_per_class, rng, cohort).items()]
    plan += [("test", p, lab) for p, lab in _assign(test_p, cfg.n_test_per_class, rng).items()]
    faces = [_variants(p, min(cfg.variants_per_photo, max(len(lab), 1)), cfg, j)
             for j, (_s, p, lab) in enumerate(plan)]
    tasks = [(f, lab, cfg, j) for j, (f, (_s, _p, lab)) in enumerate(zip(faces, plan, strict=True))]
    results = (Parallel(n_jobs=n_jobs)(delayed(_render_photo)(*t) for t in tasks) if n_jobs > 1
               else [_render_photo(*t) for t in tasks])
    counts = {s: {c: 0 for c in CLASSES} for s in ("train", "test")}
    for (split, photo, _lab), crops in zip(plan, results, strict=True):
        stem = photo.replace(":", "")
        for k, (y, crop) in enumerate(crops):
            name = CLASSES[y]
            path = root / split / name / f"{stem}_{k:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                ok, buf = cv2.imencode(".png", np.ascontiguousarray(crop[..., ::-1]))
                Path(tmp).write_bytes(buf.tobytes())
            counts[split][name] += 1
    info = {
        "synthetic": ("SYNTHETIC expression images rendered by cdrscreen.demo from real photographs; "
                      "made to train the demo's expression model, NOT a facial-expression benchmark"),
        "key": key, "config": asdict(cfg), "version": SET_VERSION, "classes": list(CLASSES),
        "crop": CROP, "train_photos": train_p, "test_photos": test_p, "counts": counts,
    }
    write_json(info_path, info)
    return info
