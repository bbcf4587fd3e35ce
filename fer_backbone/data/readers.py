"""Readers for the on-disk layouts of the common FER data sets.

Each reader returns :class:`~fer_backbone.data.samples.Samples` and raises
:class:`~cdrscreen.core.errors.InputError` (file + problem, one line) on a malformed layout.

======================  ====================================================================
data set                layout read
======================  ====================================================================
RAF-DB (basic)          ``EmoLabel/list_patition_label.txt`` (``train_00001.jpg 5``, labels
                        1..7) + ``Image/aligned/train_00001_aligned.jpg``
FERPlus                 ``fer2013new.csv`` (Usage, Image name, 10 vote columns) + images in
                        ``FER2013Train`` / ``FER2013Valid`` / ``FER2013Test``
AffectNet               ``training.csv`` (header ``subDirectory_filePath,face_x,...,expression,
                        valence,arousal``) / ``validation.csv`` (same columns, no header) +
                        an image root
Aff-Wild2 (EXPR)        one ``<video>.txt`` per video (header line, then one label per frame,
                        ``-1`` = not annotated) + ``cropped_aligned/<video>/00001.jpg``
image folder            ``root/<class>/<image>``
======================  ====================================================================
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cdrscreen.core.errors import InputError
from fer_backbone.data.samples import (
    AFFECTNET_CLASSES,
    AFFWILD2_CLASSES,
    FERPLUS_CLASSES,
    RAFDB_CLASSES,
    Samples,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputError(path, f"{what} not found")
    return path


def check_images_exist(images: list[Path], listed_in: Path) -> None:
    """Raise one :class:`InputError` naming the first missing image and how many are missing."""
    import os

    missing = [p for p in images if not os.path.exists(p)]
    if missing:
        raise InputError(missing[0], f"image listed in {listed_in.name} not found "
                                     f"({len(missing)} of {len(images)} missing)")


# -- RAF-DB ---------------------------------------------------------------------------
def read_rafdb(root: str | Path, split: str = "train", aligned: bool = True) -> Samples:
    """RAF-DB basic emotions.

    Parameters
    ----------
    root : path
        Folder holding ``EmoLabel/`` and ``Image/``.
    split : {"train", "test"}
    aligned : bool
        Use ``Image/aligned/<stem>_aligned.jpg`` (default) or ``Image/original/<name>``.
    """
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"RAF-DB split must be 'train' or 'test', got {split!r}")
    lab = _need(root / "EmoLabel" / "list_patition_label.txt", "RAF-DB label list")
    images, labels = [], []
    for ln, line in enumerate(lab.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= 7:
            raise InputError(lab, f"line {ln}: expected '<image> <label 1..7>', got {line!r}")
        name, y = parts[0], int(parts[1]) - 1
        if not name.startswith(split + "_"):
            continue
        stem = Path(name).stem
        img = root / "Image" / "aligned" / f"{stem}_aligned.jpg" if aligned else root / "Image" / "original" / name
        images.append(img)
        labels.append(y)
    if not images:
        raise InputError(lab, f"no '{split}_*' entries")
    check_images_exist(images, lab)
    return Samples(images, np.array(labels), list(RAFDB_CLASSES))


# -- FERPlus --------------------------------------------------------------------------
_FERPLUS_FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
_FERPLUS_SPLITS = {"train": "Training", "valid": "PublicTest", "test": "PrivateTest"}


FERPLUS_MODES = ("majority", "crossentropy", "probability")


def ferplus_distribution(votes: list[float] | np.ndarray, mode: str) -> np.ndarray | None:
    """Microsoft's FERPlus label processing of one row's 10 vote counts.

    Follows ``FERPlusReader._process_data`` and ``load_folders`` in microsoft/FERPlus
    ``src/ferplus.py``: votes of 1 are outliers (set to 0); ``majority`` keeps the top class
    if it holds more than half of the votes; ``crossentropy`` / ``probability`` integrate the
    top-voted classes (ties together) until 75 % of the votes or 3 classes, stopping at
    ``unknown`` / ``NF``, and drop the row if the integrated classes hold at most half of the
    votes or number more than 3. A row whose result is ``unknown`` / ``NF`` is dropped.

    Returns
    -------
    ndarray (8,) or None
        The target distribution over the 8 emotions (one-hot for ``majority``), or None
        when the reference code drops the row.
    """
    raw = [0.0 if float(v) < 1.0 + np.finfo(float).eps else float(v) for v in votes]
    size, total = len(raw), sum(raw)
    emotion = [0.0] * size
    if mode == "majority":
        top = max(raw)
        if not top > 0.5 * total:
            return None
        emotion[int(np.argmax(raw))] = top
    else:
        part, count, valid = 0.0, 0, True
        while part < 0.75 * total and count < 3 and valid:
            top = max(raw)
            for i in range(size):
                if raw[i] == top:
                    emotion[i], raw[i] = top, 0.0
                    part += emotion[i]
                    count += 1
                    if i >= 8:  # unknown / not a face tie with the current maximum
                        valid = False
                        if sum(emotion) > top:  # emotions came first: drop the unknown/NF share
                            emotion[i] = 0.0
                            count -= 1
                        break
        if sum(emotion) <= 0.5 * total or count > 3:
            return None
    if sum(emotion) <= 0 or int(np.argmax(emotion)) >= 8:
        return None
    emo = np.array(emotion[:8])
    return emo / emo.sum()


def read_ferplus(csv_path: str | Path, images_root: str | Path | None = None, split: str = "train",
                 mode: str = "majority") -> Samples:
    """FERPlus from its vote-count CSV (``fer2013new.csv``), as Microsoft's reference reader.

    Each row holds 10 annotators' votes over 8 emotions + ``unknown`` + ``NF`` (not a
    face); rows without an image name are not part of FERPlus. Targets follow
    :func:`ferplus_distribution`. The validation (``FER2013Valid``) and test
    (``FER2013Test``) splits always use ``majority``, as the reference ``train.py`` does, so
    the test set is the standard one whatever the training mode.

    Parameters
    ----------
    csv_path : path
    images_root : path, optional
        Folder with ``FER2013Train/``, ``FER2013Valid/``, ``FER2013Test/`` (default: the
        CSV's folder).
    split : {"train", "valid", "test"}
    mode : {"majority", "crossentropy", "probability"}
        Training targets: ``majority`` a hard label; ``crossentropy`` the distribution
        (``soft``, trained with soft-target cross-entropy); ``probability`` a one-hot label
        drawn from the distribution every time the image is read. ``labels`` is always
        the distribution's argmax.

    Raises
    ------
    InputError
        Missing/malformed CSV, no usable rows, or listed images missing (count and first path).
    """
    csv_path = _need(Path(csv_path), "FERPlus vote CSV")
    images_root = Path(images_root) if images_root is not None else csv_path.parent
    if split not in _FERPLUS_SPLITS:
        raise ValueError(f"FERPlus split must be one of {list(_FERPLUS_SPLITS)}, got {split!r}")
    if mode not in FERPLUS_MODES:
        raise ValueError(f"FERPlus mode must be one of {', '.join(FERPLUS_MODES)}, got {mode!r}")
    if split != "train":
        mode = "majority"  # microsoft/FERPlus src/train.py: test_and_val_params use "majority"
    usage = _FERPLUS_SPLITS[split]
    images, labels, soft = [], [], []
    with csv_path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0][:2] != ["Usage", "Image name"] or len(rows[0]) != 12:
        raise InputError(csv_path, "expected header 'Usage,Image name,neutral,...,unknown,NF' (12 columns)")
    for ln, row in enumerate(rows[1:], 2):
        if len(row) != 12:
            raise InputError(csv_path, f"line {ln}: expected 12 columns, got {len(row)}")
        if row[0] != usage or not row[1].strip():
            continue
        try:
            votes = [float(v) for v in row[2:]]
        except ValueError:
            raise InputError(csv_path, f"line {ln}: non-numeric vote count") from None
        dist = ferplus_distribution(votes, mode)
        if dist is None:
            continue
        images.append(images_root / _FERPLUS_FOLDERS[usage] / row[1].strip())
        labels.append(int(np.argmax(dist)))
        soft.append(dist)
    if not images:
        raise InputError(csv_path, f"no usable '{usage}' rows in mode '{mode}'")
    check_images_exist(images, csv_path)
    return Samples(images, np.array(labels), list(FERPLUS_CLASSES),
                   soft=np.array(soft, dtype=np.float32) if mode != "majority" else None,
                   sample_soft_label=mode == "probability")


# -- AffectNet ------------------------------------------------------------------------
AFFECTNET_COLUMNS = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                     "facial_landmarks", "expression", "valence", "arousal"]


def read_affectnet(csv_path: str | Path, images_root: str | Path, num_classes: int = 7,
                   max_per_class: int | None = None, seed: int = 0, crop_face: bool = False) -> Samples:
    """AffectNet (manually annotated part) from ``training.csv`` or ``validation.csv``.

    ``training.csv`` starts with the header ``subDirectory_filePath,face_x,face_y,face_width,
    face_height,facial_landmarks,expression,valence,arousal``; the official
    ``validation.csv`` (the usual test set) has the same columns and no header. Both are read.

    Parameters
    ----------
    csv_path : path
    images_root : path
        Folder that ``subDirectory_filePath`` is relative to.
    num_classes : {7, 8}
        8 keeps ``contempt``; 7 drops it. Codes 8-10 (none, uncertain, no face) are dropped.
    max_per_class : int, optional
        Seeded random subsample of at most this many images per class (the usual balanced
        subsample of the huge, imbalanced training set; the validation set has 500 per class).
    seed : int
    crop_face : bool
        Crop each image to its face box (``face_x, face_y, face_width, face_height``) before
        resizing. The released ``Manually_Annotated_Images`` are already cropped around the
        face, so the default reads them whole.

    Raises
    ------
    InputError
        Missing/malformed CSV, bad values (line named), or listed images missing (count and
        first path).
    """
    csv_path = _need(Path(csv_path), "AffectNet CSV")
    images_root = Path(images_root)
    if num_classes not in (7, 8):
        raise ValueError(f"AffectNet has 7 or 8 classes, got {num_classes}")
    with csv_path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise InputError(csv_path, "empty AffectNet CSV")
    if "subDirectory_filePath" in rows[0]:
        header, body, first = rows[0], rows[1:], 2
        if "expression" not in header:
            raise InputError(csv_path, "header has 'subDirectory_filePath' but no 'expression' column")
    else:  # validation.csv: no header, the official column order
        if len(rows[0]) != len(AFFECTNET_COLUMNS):
            raise InputError(csv_path, f"expected a header with 'subDirectory_filePath' and 'expression', or "
                                       f"{len(AFFECTNET_COLUMNS)} headerless columns "
                                       f"({','.join(AFFECTNET_COLUMNS)}); got {len(rows[0])} columns")
        header, body, first = AFFECTNET_COLUMNS, rows, 1
    col = {name: header.index(name) for name in header}
    ci, ce = col["subDirectory_filePath"], col["expression"]
    box_cols = [col.get(k) for k in ("face_x", "face_y", "face_width", "face_height")]
    if crop_face and None in box_cols:
        raise InputError(csv_path, "crop_face needs the face_x, face_y, face_width, face_height columns")
    images, labels, boxes = [], [], []
    for ln, row in enumerate(body, first):
        if not row:
            continue
        try:
            y = int(row[ce])
        except (ValueError, IndexError):
            raise InputError(csv_path, f"line {ln}: bad 'expression' value") from None
        if y < 0 or y >= num_classes:
            continue
        if crop_face:
            try:
                box = [int(float(row[c])) for c in box_cols]
            except (ValueError, IndexError):
                raise InputError(csv_path, f"line {ln}: bad face box") from None
            if box[2] <= 0 or box[3] <= 0:
                raise InputError(csv_path, f"line {ln}: face box {box} has no area")
            boxes.append(box)
        images.append(images_root / row[ci])
        labels.append(y)
    labels_a = np.array(labels, dtype=np.int64)
    keep = np.arange(len(labels_a))
    if max_per_class is not None:
        rng = np.random.default_rng(seed)
        keep = np.sort(np.concatenate([
            rng.permutation(np.flatnonzero(labels_a == c))[:max_per_class] for c in range(num_classes)
        ]))
    if len(keep) == 0:
        raise InputError(csv_path, "no rows with an expression code in range")
    kept = [images[i] for i in keep]
    check_images_exist(kept, csv_path)
    return Samples(kept, labels_a[keep], list(AFFECTNET_CLASSES[:num_classes]),
                   boxes=np.array(boxes, dtype=np.int64)[keep] if crop_face else None)


# -- Aff-Wild2 ------------------------------------------------------------------------
def read_affwild2_labels(path: Path, n_classes: int | None = None) -> np.ndarray:
    """Per-frame labels of one Aff-Wild2 EXPR file (element ``i - 1`` = frame ``i``, -1 = none).

    Line 1 is the class-name header; line ``i + 1`` holds frame ``i``'s label. A blank line
    inside the file is an unlabeled frame (positions in time stay true); trailing blank lines
    are ignored. ``n_classes`` defaults to the number of names in the header.
    """
    lines = path.read_text().splitlines()
    if not lines or "," not in lines[0]:
        raise InputError(path, "first line must be the class-name header (Neutral,Anger,...)")
    k = n_classes if n_classes is not None else len([c for c in lines[0].split(",") if c.strip()])
    body = lines[1:]
    while body and not body[-1].strip():
        body.pop()
    labels = np.full(len(body), -1, dtype=np.int64)
    for i, line in enumerate(body, 1):
        s = line.strip()
        if not s:
            continue
        try:
            y = int(s)
        except ValueError:
            raise InputError(path, f"line {i + 1}: expected an integer label, got {s!r}") from None
        if not -1 <= y < k:
            raise InputError(path, f"line {i + 1}: label {y} out of range -1..{k - 1}")
        labels[i - 1] = y
    return labels


def read_affwild2(annotations_dir: str | Path, frames_root: str | Path,
                  skip_missing_frames: bool = True) -> Samples:
    """Aff-Wild2 expression annotations (ABAW EXPR track).

    Parameters
    ----------
    annotations_dir : path
        A folder of ``<video>.txt`` files (e.g. ``EXPR_Classification_Challenge/Train_Set``);
        line 1 is the class-name header, line ``i + 1`` the label of frame ``i`` (1-based),
        ``-1`` marks frames without a label, which are skipped.
    frames_root : path
        ``cropped_aligned/``; frame ``i`` of ``<video>`` is ``<video>/{i:05d}.jpg``.
    skip_missing_frames : bool
        Skip annotated frames whose image is absent (the face detector missed them);
        otherwise raise.

    Returns
    -------
    Samples
        With ``groups`` = video name and ``frames`` = 1-based frame number.
    """
    annotations_dir = _need(Path(annotations_dir), "Aff-Wild2 annotation folder")
    frames_root = Path(frames_root)
    files = sorted(annotations_dir.glob("*.txt"))
    if not files:
        raise InputError(annotations_dir, "no <video>.txt annotation files")
    images, labels, groups, frames = [], [], [], []
    for f in files:
        video = f.stem
        per_frame = read_affwild2_labels(f, len(AFFWILD2_CLASSES))
        for i, y in enumerate(per_frame.tolist(), 1):
            if y == -1:
                continue
            img = frames_root / video / f"{i:05d}.jpg"
            if not img.exists():
                if skip_missing_frames:
                    continue
                raise InputError(img, "annotated frame image not found")
            images.append(img)
            labels.append(y)
            groups.append(video)
            frames.append(i)
    if not images:
        raise InputError(annotations_dir, "no annotated frames with images")
    return Samples(images, np.array(labels), list(AFFWILD2_CLASSES), groups=np.array(groups),
                   frames=np.array(frames, dtype=np.int64))


# -- image folder ---------------------------------------------------------------------
def read_image_folder(root: str | Path, class_names: list[str] | None = None) -> Samples:
    """``root/<class>/<image>``; classes are the sub-folder names (sorted) or ``class_names``."""
    root = _need(Path(root), "image folder")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    names = list(class_names) if class_names is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise InputError(root / unknown[0], "sub-folder is not one of the configured class names")
    images, labels = [], []
    for c, name in enumerate(names):
        d = root / name
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                images.append(p)
                labels.append(c)
    if not images:
        raise InputError(root, "no images in <class>/ sub-folders")
    return Samples(images, np.array(labels), names)
