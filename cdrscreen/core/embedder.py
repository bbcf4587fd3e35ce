"""The embedder contract: what an exported expression model declares, and the face crop it expects.

An *embedder* is an ONNX file with one input and two outputs:

``input``
    float32, ``(B, 3, S, S)``, RGB in ``[0, 1]`` (channel order and range are the same for
    every embedder; a model that works on grayscale converts inside the graph).
``embedding``
    ``(B, D)`` float32: the feature vector the model declares in ``embedding``.
``probs``
    ``(B, K)`` float32: class probabilities (softmax), classes in ``class_names`` order.

Its ``metadata_props`` hold one JSON object under :data:`METADATA_KEY`, validated by
:class:`EmbedderMeta` (format version 2). The fields that decide how ``cdrscreen`` feeds the
model are the input size, the colour the network sees, the normalisation (applied inside
the graph, listed for the record) and the **face-crop recipe** the training data was made
with (:class:`TemplateCrop`, :class:`BoxCrop` or :class:`ImageCrop`). :func:`crop_face`
makes that crop from a video frame and its 478 MediaPipe landmarks, so the crop at
extraction time is the crop the model was trained on. ``domain`` says whether the classes are
facial expressions; ``cdrscreen``'s ``expr`` group refuses any other embedder unless told
otherwise.

Format version 1 files (written before the contract) are read with :func:`parse_metadata`:
their crop is the eyes-and-mouth template that ``cdrscreen`` used then
(:data:`DEFAULT_TEMPLATE`), their domain is inferred from the class names
(:func:`infer_domain`).

This module needs only numpy and pydantic (OpenCV for :func:`crop_face`); both
``fer_backbone`` (export) and ``cdrscreen`` (extraction) import it.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from cdrscreen.core.config import FrozenModel, read_yaml, validate
from cdrscreen.core.errors import CdrscreenError

METADATA_KEY = "cdrscreen_embedder"
FORMAT_VERSION = 2

#: Landmark groups (478-point MediaPipe mesh) whose mean gives a template keypoint.
#: ``eye_image_left`` is the subject's right eye (outer 33, inner 133), ``eye_image_right``
#: the subject's left eye (inner 362, outer 263); ``mouth`` averages the corners (61, 291)
#: and the inner lips (13, 14); ``nose_tip`` is landmark 1.
KEYPOINTS: dict[str, tuple[int, ...]] = {
    "eye_image_left": (33, 133),
    "eye_image_right": (362, 263),
    "mouth": (61, 291, 13, 14),
    "nose_tip": (1,),
}

#: Words accepted as facial-expression class names by :func:`infer_domain`.
EXPRESSION_WORDS = frozenset({
    "neutral", "anger", "angry", "disgust", "disgusted", "fear", "fearful", "happy", "happiness",
    "sad", "sadness", "surprise", "surprised", "contempt", "other", "smile", "smiling",
})

#: BT.601 luma weights (R, G, B), as OpenCV's ``COLOR_RGB2GRAY``.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


class TemplateCrop(FrozenModel):
    """Similarity alignment: keypoints mapped by least squares to fixed positions.

    ``points`` maps a :data:`KEYPOINTS` name to its ``(x, y)`` position as fractions of
    the square crop's side (x to the right, y down). Rotation, uniform scale and translation
    are fitted (Umeyama); the rest of the face follows.
    """

    kind: Literal["template"] = "template"
    points: dict[Literal["eye_image_left", "eye_image_right", "mouth", "nose_tip"],
                 tuple[float, float]]
    border: Literal["replicate", "constant"] = "replicate"


class BoxCrop(FrozenModel):
    """Axis-aligned box around the face, no rotation (as a face detector's box is used).

    The reference box is the bounding box of the 468 face-mesh landmarks (iris excluded).
    Its centre moves by ``shift`` (fractions of the reference side) and its side is
    ``scale`` times the reference side (``max(w, h)`` when ``square``), then ``margin``
    (fraction of that side) is added on every edge. Pixels outside the frame repeat the
    border. The box is resized to the input size with bilinear interpolation (OpenCV's
    ``resize`` pixel convention).
    """

    kind: Literal["box"] = "box"
    scale: float = Field(1.0, gt=0)
    shift: tuple[float, float] = (0.0, 0.0)
    square: bool = True
    margin: float = Field(0.0, ge=0, lt=1)
    border: Literal["replicate", "constant"] = "replicate"


class ImageCrop(FrozenModel):
    """The whole image, resized (models trained on non-face images, such as the digits recipes)."""

    kind: Literal["image"] = "image"


Crop = Annotated[TemplateCrop | BoxCrop | ImageCrop, Field(discriminator="kind")]

#: The eyes-and-mouth alignment cdrscreen used before the contract (and the default crop of
#: ``fer_backbone`` models trained on crops made by :func:`crop_face`).
DEFAULT_TEMPLATE = TemplateCrop(points={"eye_image_left": (0.30, 0.40), "eye_image_right": (0.70, 0.40),
                                        "mouth": (0.50, 0.78)})


class EmbedderMeta(FrozenModel):
    """Metadata every embedder carries (JSON under :data:`METADATA_KEY`).

    Attributes
    ----------
    format_version : 2
    name : str
        Short model name (e.g. ``fer2013-mini-xception``).
    domain : {"facial_expression", "other"}
        Whether ``class_names`` are facial expressions (``expr`` refuses ``other``).
    class_names : list of str
        Output classes, in ``probs`` order.
    input_size : int
        Side of the square input.
    input_colour : {"rgb", "gray"}
        What the network sees; ``gray`` models convert the RGB input with ``gray_weights``
        inside the graph.
    mean, std : tuple of 3 floats
        Per-channel normalisation ``(x - mean) / std`` of the ``[0, 1]`` input, applied
        inside the graph (listed for the record; callers never apply it).
    crop : TemplateCrop, BoxCrop or ImageCrop
        How the training images were cut out of their photos; :func:`crop_face` reproduces it.
    embedding : str
        What the ``embedding`` output is.
    embedding_dim : int
    source : dict
        Provenance (task, backbone, recipe, imported file and its hash, ...).
    """

    format_version: Literal[2] = FORMAT_VERSION
    name: str
    domain: Literal["facial_expression", "other"]
    class_names: list[str] = Field(min_length=1)
    input_size: int = Field(ge=8)
    input_colour: Literal["rgb", "gray"] = "rgb"
    gray_weights: tuple[float, float, float] | None = None
    layout: Literal["NCHW"] = "NCHW"
    input_range: tuple[float, float] = (0.0, 1.0)
    normalisation_in_graph: Literal[True] = True
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop: Crop
    embedding: str
    embedding_dim: int = Field(ge=1)
    source: dict[str, Any] = Field(default_factory=dict)


class _CropFile(FrozenModel):
    crop: Crop


def load_crop(path: str | os.PathLike[str]) -> TemplateCrop | BoxCrop | ImageCrop:
    """Read a crop recipe from YAML (a mapping with ``kind: template|box|image`` and its fields)."""
    return validate(_CropFile, {"crop": read_yaml(path, "crop recipe file")}, str(path)).crop


def infer_domain(class_names: list[str]) -> Literal["facial_expression", "other"]:
    """``"facial_expression"`` when every class name is an expression word (see :data:`EXPRESSION_WORDS`)."""
    names = [str(c).strip().lower() for c in class_names]
    ok = len(names) >= 2 and all(n in EXPRESSION_WORDS for n in names)
    return "facial_expression" if ok else "other"


def _upgrade_v1(meta: dict[str, Any]) -> dict[str, Any]:
    """Format-1 metadata (before the contract) -> format 2 (template crop, inferred domain)."""
    known = {"input_size", "mean", "std", "class_names", "embedding_dim", "layout", "input_range",
             "normalisation_in_graph"}
    out = {k: v for k, v in meta.items() if k in known}
    out.update(format_version=2, name=str(meta.get("protocol") or meta.get("task") or "fer_backbone"),
               domain=infer_domain(list(meta.get("class_names", []))), input_colour="rgb",
               crop=DEFAULT_TEMPLATE.model_dump(), embedding="penultimate backbone feature (format 1 export)",
               source={k: v for k, v in meta.items() if k not in known and k not in ("format_version", "color_order")})
    return out


def parse_metadata(raw: str | dict[str, Any], source: str) -> EmbedderMeta:
    """Validate embedder metadata (JSON text or mapping); format 1 is upgraded.

    Raises
    ------
    cdrscreen.core.errors.ConfigError
        One line naming ``source`` and the invalid field(s).
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as err:
            raise CdrscreenError(f"{source}: embedder metadata is not JSON ({err.msg})") from None
    if not isinstance(raw, dict):
        raise CdrscreenError(f"{source}: embedder metadata is not a JSON object")
    if int(raw.get("format_version", 1)) == 1:
        raw = _upgrade_v1(raw)
    return validate(EmbedderMeta, raw, f"{source} (embedder metadata)")


# --- the crop --------------------------------------------------------------------------

def keypoints(landmarks: np.ndarray, names: list[str]) -> np.ndarray:
    """``(len(names), 2)`` image positions of named :data:`KEYPOINTS` from 478 landmarks."""
    p = np.asarray(landmarks, dtype=np.float64)[:, :2]
    return np.stack([p[list(KEYPOINTS[n])].mean(0) for n in names])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Umeyama's closed form; returns the ``2 x 3`` matrix for :func:`cv2.warpAffine`.
    """
    src = np.asarray(src, float)
    dst = np.asarray(dst, float)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var = (s**2).sum() / len(src)
    scale = float((sig * sign).sum() / var) if var > 0 else 1.0
    t = md - scale * rot @ ms
    return np.hstack([scale * rot, t[:, None]])


def face_box(landmarks: np.ndarray, recipe: BoxCrop) -> tuple[float, float, float, float]:
    """``(x0, y0, width, height)`` in pixels of the box :class:`BoxCrop` cuts."""
    p = np.asarray(landmarks, dtype=np.float64)[:468, :2]
    lo, hi = p.min(0), p.max(0)
    w, h = hi - lo
    ref = float(max(w, h))
    cx, cy = (lo + hi) / 2 + np.asarray(recipe.shift) * ref
    bw, bh = (ref, ref) if recipe.square else (float(w), float(h))
    bw, bh = bw * recipe.scale, bh * recipe.scale
    bw, bh = bw * (1 + 2 * recipe.margin), bh * (1 + 2 * recipe.margin)
    return float(cx - bw / 2), float(cy - bh / 2), float(bw), float(bh)


def crop_matrix(landmarks: np.ndarray, recipe: TemplateCrop | BoxCrop, size: int) -> np.ndarray:
    """``2 x 3`` matrix mapping frame pixels to crop pixels for ``recipe`` at ``size``."""
    if isinstance(recipe, TemplateCrop):
        names = list(recipe.points)
        dst = np.array([recipe.points[n] for n in names], float) * size
        return similarity_transform(keypoints(landmarks, names), dst)
    x0, y0, bw, bh = face_box(landmarks, recipe)
    sx, sy = bw / size, bh / size
    # inverse map of cv2.resize: src = x0 + (u + 0.5) * sx - 0.5
    inv = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
    a = np.vstack([inv, [0, 0, 1]])
    return np.linalg.inv(a)[:2]


def crop_face(rgb: np.ndarray, landmarks: np.ndarray | None, recipe: TemplateCrop | BoxCrop | ImageCrop,
              size: int) -> np.ndarray:
    """Cut the face out of a frame as ``recipe`` says: ``(size, size, 3)`` uint8.

    Parameters
    ----------
    rgb : ndarray (H, W, 3) uint8
    landmarks : ndarray (478, 2 or 3) or None
        MediaPipe face-mesh landmarks in pixels (not needed for :class:`ImageCrop`).
    recipe : TemplateCrop, BoxCrop or ImageCrop
    size : int
    """
    import cv2

    if isinstance(recipe, ImageCrop):
        return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    if landmarks is None:
        raise CdrscreenError(f"a '{recipe.kind}' face crop needs the face's landmarks")
    m = crop_matrix(landmarks, recipe, size)
    border = cv2.BORDER_REPLICATE if recipe.border == "replicate" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)
