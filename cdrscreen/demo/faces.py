"""Real face photographs that ship inside installed packages, prepared for animation.

A :class:`FaceSource` is a still photograph resized and cropped to the output frame
size, plus MediaPipe FaceMesh's 478 landmarks (with iris refinement) found on it once.
The renderer (:mod:`cdrscreen.demo.render`) animates that still: it rotates the 3-D
landmarks and warps the texture, and it repaints the eye openings so that the iris can
move inside them.

Built-in photographs (no download; all are real photographs of people):

``astronaut``
    scikit-image ``data.astronaut()`` (Eileen Collins, NASA, public domain), colour.
``grace_hopper``
    matplotlib ``sample_data/grace_hopper.jpg`` (US Navy, public domain), colour.
``lfw:<i>``
    face ``i`` (0-99) of scikit-image's ``lfw_subset`` (25 x 25 grey crops from Labeled
    Faces in the Wild), upscaled and padded onto a plain background. Blurry; a few of
    them are not found by MediaPipe at all (:func:`load_face` then raises).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from cdrscreen.core.errors import CdrscreenError

#: Built-in colour photographs usable as demo faces.
BUILTIN_FACES: tuple[str, ...] = ("astronaut", "grace_hopper")

# MediaPipe FaceMesh landmark indices (canonical face model topology).
#: Eye-opening polygons, outer corner first, along the upper lid then back along the lower
#: lid. "right" is the subject's right eye (image left in an unmirrored photo).
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
#: Upper-lid part of each polygon (corner to corner, inclusive).
EYE_UPPER_LEN = 9
#: Iris landmarks: centre first, then 4 points on the iris rim.
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)
#: Face outline (silhouette) landmarks in order around the face.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21,
             54, 103, 67, 109)
NOSE_TIP = 1
#: Landmarks of the mouth used to open the jaw with the speech envelope.
LOWER_FACE = (14, 87, 178, 88, 95, 317, 402, 318, 324, 17, 84, 181, 91, 146, 314, 405, 321,
              375, 200, 199, 175, 152, 148, 176, 149, 377, 400, 378, 18, 83, 313, 201, 421,
              208, 428, 171, 396, 140, 369, 32, 262)


@dataclass(frozen=True, eq=False)
class FaceSource:
    """A prepared still face: texture at output size plus its 3-D landmarks.

    Attributes
    ----------
    name : str
        Where the photograph came from (e.g. ``"astronaut"``, ``"lfw:12"``).
    image : ndarray, shape (H, W, 3), uint8
        RGB texture, already cropped and scaled to the output frame size.
    landmarks : ndarray, shape (478, 3), float64
        FaceMesh landmarks in texture pixels: x right, y down, z depth in the same
        pixel scale (smaller z = closer to the camera, MediaPipe's convention).
    """

    name: str
    image: np.ndarray
    landmarks: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the texture, i.e. of the frames rendered from it."""
        return (self.image.shape[1], self.image.shape[0])

    @property
    def face_width(self) -> float:
        """Face width in pixels (extent of the face-oval landmarks)."""
        oval = self.landmarks[list(FACE_OVAL), 0]
        return float(oval.max() - oval.min())


def _photo(name: str) -> np.ndarray:
    """RGB uint8 photograph for a built-in face name."""
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[..., :3])
    if name == "grace_hopper":
        import matplotlib.cbook as cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(bgr[..., ::-1])
    if name.startswith("lfw:"):
        from skimage import data

        idx = int(name.split(":", 1)[1])
        if not 0 <= idx < 100:
            raise CdrscreenError(f"face '{name}': lfw index must be 0-99 (the 100 faces of lfw_subset)")
        grey = (data.lfw_subset()[idx] * 255).astype(np.uint8)
        big = cv2.resize(grey, (240, 240), interpolation=cv2.INTER_CUBIC)
        canvas = np.full((480, 400), int(np.median(grey[:, :3])), np.uint8)
        canvas[100:340, 80:320] = big
        canvas = cv2.GaussianBlur(canvas, (0, 0), 1.0)
        rgb = cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB).astype(np.float32)
        rgb *= np.array([1.05, 0.97, 0.88], np.float32)  # warm tint: grey skin looks ill
        return np.clip(rgb, 0, 255).astype(np.uint8)
    raise CdrscreenError(f"unknown demo face '{name}' (use one of {', '.join(BUILTIN_FACES)} or lfw:<0-99>)")


def detect_landmarks(image: np.ndarray) -> np.ndarray | None:
    """Run MediaPipe FaceMesh (static image, iris refinement) on an RGB image.

    Returns
    -------
    ndarray of shape (478, 3) in pixels (z scaled like x), or None if no face is found.
    """
    import mediapipe as mp

    from cdrscreen.core.native import quiet_native_stderr

    h, w = image.shape[:2]
    with quiet_native_stderr(), mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1, min_detection_confidence=0.5
    ) as fm:
        res = fm.process(np.ascontiguousarray(image))
    if not res.multi_face_landmarks:
        return None
    lm = np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark])
    return lm


#: Landmarks found by :func:`preload_photos` (name -> landmarks, or None when no face).
_PRELOADED: dict[str, np.ndarray | None] = {}


def preload_photos(names: list[str]) -> dict[str, bool]:
    """Find the landmarks of many built-in photographs in one FaceMesh session.

    Starting MediaPipe costs about a second per call, so preparing dozens of photographs
    one by one is slow; afterwards :func:`load_face` uses the stored landmarks. Returns
    ``{name: whether a face was found}``.
    """
    import mediapipe as mp

    from cdrscreen.core.native import quiet_native_stderr

    todo = [n for n in names if n not in _PRELOADED]
    if todo:
        with quiet_native_stderr(), mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, refine_landmarks=True, max_num_faces=1, min_detection_confidence=0.5
        ) as fm:
            for name in todo:
                img = _photo(name)
                h, w = img.shape[:2]
                res = fm.process(np.ascontiguousarray(img))
                _PRELOADED[name] = (None if not res.multi_face_landmarks else np.array(
                    [[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark]))
    return {n: _PRELOADED[n] is not None for n in names}


@functools.lru_cache(maxsize=16)
def _photo_landmarks(name: str) -> tuple[np.ndarray, np.ndarray]:
    img = _photo(name)
    lm = _PRELOADED[name] if name in _PRELOADED else detect_landmarks(img)
    if lm is None:
        raise CdrscreenError(f"face '{name}': MediaPipe finds no face in this photograph; pick another")
    img.setflags(write=False)
    lm.setflags(write=False)
    return img, lm


def load_face(
    name: str,
    size: tuple[int, int] = (320, 240),
    *,
    face_height: float = 0.62,
    centre: tuple[float, float] = (0.5, 0.47),
    mirror: bool = False,
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> FaceSource:
    """Prepare a built-in photograph as a :class:`FaceSource` of the given frame size.

    Parameters
    ----------
    name : str
        ``"astronaut"``, ``"grace_hopper"`` or ``"lfw:<i>"``.
    size : (int, int)
        Output ``(width, height)`` in pixels.
    face_height : float
        Height of the landmark mesh (forehead to chin) as a fraction of the frame height.
    centre : (float, float)
        Where the mesh centre lands, as fractions of ``(width, height)``.
    mirror : bool
        Flip left-right (another apparent identity). Landmark indices are kept as they
        are, so after mirroring ``RIGHT_EYE`` names the eye on the image right; the
        renderer treats both eyes alike, so this does not matter for animation.
    tint : (float, float, float)
        Per-channel RGB gain (skin tone / white-balance variation).

    Returns
    -------
    FaceSource
    """
    w, h = int(size[0]), int(size[1])
    if w < 64 or h < 64:
        raise CdrscreenError(f"frame size {w}x{h} is too small for a face (need >= 64 x 64)")
    img, lm = _photo_landmarks(name)
    mesh = lm[:468]
    scale = face_height * h / float(np.ptp(mesh[:, 1]))
    cx, cy = mesh[:, 0].mean(), mesh[:, 1].mean()
    tx, ty = centre[0] * w - scale * cx, centre[1] * h - scale * cy
    m = np.array([[scale, 0.0, tx], [0.0, scale, ty]])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    tex = cv2.warpAffine(img, m, (w, h), flags=interp, borderMode=cv2.BORDER_REFLECT_101)
    out = np.empty_like(lm)
    out[:, 0] = lm[:, 0] * scale + tx
    out[:, 1] = lm[:, 1] * scale + ty
    out[:, 2] = lm[:, 2] * scale
    if mirror:
        tex = tex[:, ::-1]
        out[:, 0] = (w - 1) - out[:, 0]
    if tint != (1.0, 1.0, 1.0):
        tex = np.clip(tex.astype(np.float32) * np.asarray(tint, np.float32), 0, 255).astype(np.uint8)
    tex = np.ascontiguousarray(tex)
    tex.setflags(write=False)
    suffix = "/mirror" if mirror else ""
    return FaceSource(name=name + suffix, image=tex, landmarks=out)
