"""FER test data: tiny data sets in each supported on-disk layout, built from real digits.

The images are scikit-learn's handwritten digits (real scans), upscaled to 24 px and
written as JPEG/PNG files in the folder structure each reader expects. Labels are the
digit modulo the number of classes of the layout. Also: a tiny untrained embedder
exported to ONNX for the expression-feature tests.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

#: timm's smallest ResNet: keeps training tests to seconds on CPU.
TINY_BACKBONE = "test_resnet"


def digit_images(n: int, size: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real digit images as uint8 ``(n, size, size)`` and their digits."""
    from PIL import Image

    from fer_backbone.data import load_digits_samples

    s = load_digits_samples()
    idx = np.random.default_rng(seed).permutation(len(s))[:n]
    imgs = np.stack([np.asarray(Image.fromarray(s.images[i]).resize((size, size), Image.BILINEAR)) for i in idx])
    return imgs, s.labels[idx]


def _save(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).convert("RGB").save(path)


def make_rafdb(root: Path, n_train: int = 14, n_test: int = 7) -> Path:
    imgs, digits = digit_images(n_train + n_test)
    lines = []
    for i, (img, d) in enumerate(zip(imgs, digits, strict=True)):
        split, k = ("train", i + 1) if i < n_train else ("test", i - n_train + 1)
        name = f"{split}_{k:05d}.jpg"
        lines.append(f"{name} {d % 7 + 1}")
        _save(img, root / "Image" / "aligned" / f"{split}_{k:05d}_aligned.jpg")
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger",
                  "disgust", "fear", "contempt", "unknown", "NF"]
#: (usage, votes) rows of ``fer2013new.csv`` (columns: neutral, happiness, surprise, sadness,
#: anger, disgust, fear, contempt, unknown, NF) covering each branch of Microsoft's reference
#: processing (microsoft/FERPlus src/ferplus.py); expected outcomes in the comments.
FERPLUS_ROWS = [
    ("Training", [8, 2, 0, 0, 0, 0, 0, 0, 0, 0]),    # majority neutral; crossentropy one-hot (75 % reached)
    ("Training", [0, 0, 5, 5, 0, 0, 0, 0, 0, 0]),    # no majority; crossentropy 0.5/0.5
    ("Training", [1, 1, 0, 0, 6, 1, 1, 0, 0, 0]),    # single votes removed -> anger 6/6 in every mode
    ("Training", [0, 0, 0, 0, 0, 0, 0, 0, 7, 3]),    # unknown wins -> dropped
    ("Training", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),   # not a face -> dropped
    ("Training", [0, 4, 3, 0, 0, 0, 0, 3, 0, 0]),    # no majority; crossentropy 0.4/0.3/0.3
    ("Training", [2, 2, 2, 2, 2, 0, 0, 0, 0, 0]),    # five tied classes (> 3) -> dropped
    ("Training", [4, 0, 0, 0, 0, 0, 0, 0, 3, 3]),    # unknown stops integration at 4/10 <= 50 % -> dropped
    ("PublicTest", [0, 0, 0, 9, 1, 0, 0, 0, 0, 0]),  # valid: sadness
    ("PublicTest", [0, 0, 0, 0, 0, 0, 0, 6, 4, 0]),  # valid: contempt 6/10
    ("PrivateTest", [0, 0, 0, 0, 0, 0, 10, 0, 0, 0]),  # test: fear
    ("PrivateTest", [0, 5, 5, 0, 0, 0, 0, 0, 0, 0]),   # test: no majority -> dropped in every training mode
]


def make_ferplus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    imgs, _ = digit_images(len(FERPLUS_ROWS))
    folders = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
    with (root / "fer2013new.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FERPLUS_HEADER)
        for i, (usage, votes) in enumerate(FERPLUS_ROWS):
            name = f"fer{i:07d}.png"
            _save(imgs[i], root / folders[usage] / name)
            w.writerow([usage, name, *votes])
        w.writerow(["Training", "", 10, 0, 0, 0, 0, 0, 0, 0, 0, 0])  # no image name
    return root / "fer2013new.csv"


AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]


def make_affectnet(root: Path, n: int = 30, n_val: int = 8) -> Path:
    """``training.csv`` (with header) and ``validation.csv`` (headerless, as released).

    Images are 32 px with the digit pasted at (4, 6) in a 24 px face box: the box crop
    recovers the digit exactly.
    """
    root.mkdir(parents=True, exist_ok=True)
    imgs, digits = digit_images(n + n_val)
    landmarks = ";".join(str(v) for v in range(136))  # 68 (x, y) points, as in the released CSVs

    def write(name: str, rows: range, header: bool) -> None:
        with (root / name).open("w", newline="") as fh:
            w = csv.writer(fh)
            if header:
                w.writerow(AFFECTNET_HEADER)
            for i in rows:
                rel = f"{i % 3 + 1}/{i:04d}.jpg"
                canvas = np.zeros((32, 32), dtype=np.uint8)
                canvas[6:30, 4:28] = imgs[i]
                _save(canvas, root / "Manually_Annotated_Images" / rel)
                w.writerow([rel, 4, 6, 24, 24, landmarks, int(digits[i] % 11), 0.1, -0.2])  # codes 0..10

    write("training.csv", range(n), header=True)
    write("validation.csv", range(n, n + n_val), header=False)
    return root / "training.csv"


def make_affwild2(root: Path) -> tuple[Path, Path]:
    """Two videos: labels with -1 frames, and one annotated frame without an image."""
    imgs, _ = digit_images(12)
    ann = root / "EXPR" / "Train_Set"
    ann.mkdir(parents=True)
    header = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    videos = {"v1": [0, 0, -1, 4, 4, -1, 7], "v2": [5, -1, 6, 6, 2]}
    k = 0
    for v, labs in videos.items():
        (ann / f"{v}.txt").write_text(header + "\n" + "\n".join(map(str, labs)) + "\n")
        for i, _ in enumerate(labs, 1):
            if v == "v2" and i == 4:
                continue  # the detector missed this frame
            _save(imgs[k % len(imgs)], root / "cropped_aligned" / v / f"{i:05d}.jpg")
            k += 1
    return ann, root / "cropped_aligned"


def make_image_folder(root: Path, per_class: int = 4) -> Path:
    imgs, _ = digit_images(3 * per_class)
    for c, name in enumerate(["angry", "happy", "neutral"]):
        for j in range(per_class):
            _save(imgs[c * per_class + j], root / name / f"{j}.png")
    return root


@pytest.fixture(scope="session")
def fer_layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny data sets in every supported layout (see module docstring)."""
    root = tmp_path_factory.mktemp("fer_layouts")
    ann, frames = make_affwild2(root / "affwild2")
    return {
        "rafdb": make_rafdb(root / "rafdb"),
        "ferplus_csv": make_ferplus(root / "ferplus"),
        "affectnet_csv": make_affectnet(root / "affectnet"),
        "affectnet_images": root / "affectnet" / "Manually_Annotated_Images",
        "affwild2_ann": ann,
        "affwild2_frames": frames,
        "image_folder": make_image_folder(root / "folder"),
    }


@pytest.fixture(scope="session")
def fer_embedder_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained) tiny SLM-AEA embedder with RAF-DB class names, exported to ONNX."""
    import torch

    from fer_backbone.data.samples import RAFDB_CLASSES
    from fer_backbone.export import export_onnx
    from fer_backbone.tasks import build_task

    torch.manual_seed(0)
    task = build_task("slm_aea", backbone={"name": TINY_BACKBONE}, num_classes=7, num_train=4).eval()
    path = tmp_path_factory.mktemp("embedder") / "tiny.onnx"
    return export_onnx(task, path, input_size=48, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                       class_names=list(RAFDB_CLASSES), extra={"task": "slm_aea", "backbone": TINY_BACKBONE})
