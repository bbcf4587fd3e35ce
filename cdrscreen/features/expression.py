"""Facial-expression features from an exported ``fer_backbone`` embedder (onnxruntime only).

Per tracked frame (the shared MediaPipe face track of :mod:`cdrscreen.tracking.face`),
the face is aligned by a similarity transform that maps the two eye centres and the
mouth centre of the 478-landmark mesh to fixed positions of a square crop
(:data:`TEMPLATE`, fractions of the side), resized to the embedder's input size, and run
through the ONNX embedder exported by ``cdrscreen-fer export``. This module never imports
torch.

Pooled per-video columns (prefix ``expr__``; ``<c>`` = class name from the embedder's
metadata, ``<i>`` = embedding dimension, zero-padded):

``n_frames``, ``valid_fraction``
    Embedded frames and the fraction of them with a tracked face.
``emb_mean_<i>``, ``emb_std_<i>``
    Mean and standard deviation of the embedding over valid frames.
``prob_mean_<c>``
    Mean class probability.
``hist_<c>``
    Fraction of valid frames whose most probable class is ``c`` (expression histogram).
``transition_rate``
    Changes of the most probable class between consecutive valid embedded frames, per second.
``expressivity``
    Mean of ``1 - p(neutral)`` (NaN if the embedder has no ``neutral`` class).
``entropy_mean``
    Mean entropy (nats) of the class distribution: low = confident expressions.
``emb_dispersion``
    Mean Euclidean distance of the frame embeddings from their mean (how much the face
    changes in embedding space).

The embedder is given as ``ExpressionExtractor(embedder=PATH)`` or by the environment
variable ``CDRSCREEN_EXPR_EMBEDDER``; without one the extractor raises a one-line error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.core.errors import CdrscreenError, InputError, MissingDependencyError
from cdrscreen.features.base import TrackedExtractor
from cdrscreen.tracking.face import EYE_L_CORNERS, EYE_R_CORNERS, FaceTrack

ENV_VAR = "CDRSCREEN_EXPR_EMBEDDER"
METADATA_KEY = "cdrscreen_embedder"
#: Mouth landmarks (corners 61, 291; inner lips 13, 14) averaged into the mouth centre.
MOUTH = (61, 291, 13, 14)
#: Template positions (x, y as fractions of the crop side) of the image-left eye centre,
#: the image-right eye centre and the mouth centre.
TEMPLATE = np.array([[0.30, 0.40], [0.70, 0.40], [0.50, 0.78]])


def _keypoints(landmarks: np.ndarray) -> np.ndarray:
    p = np.asarray(landmarks, dtype=np.float64)[:, :2]
    eye_a = p[list(EYE_R_CORNERS)].mean(0)
    eye_b = p[list(EYE_L_CORNERS)].mean(0)
    mouth = p[list(MOUTH)].mean(0)
    return np.stack([eye_a, eye_b, mouth])


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


def align_face(rgb: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Aligned square face crop ``(size, size, 3)`` uint8 from a frame and its 478 landmarks."""
    import cv2

    m = similarity_transform(_keypoints(landmarks), TEMPLATE * size)
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class Embedder:
    """An exported expression embedder run with onnxruntime.

    Parameters
    ----------
    path : path
        ONNX file written by ``cdrscreen-fer export``.
    threads : int
        onnxruntime intra-op threads.

    Attributes
    ----------
    meta : dict
        ``input_size``, ``class_names``, ``embedding_dim``, ... (see ``fer_backbone.export``).
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise MissingDependencyError("expression features", "embed", err) from None
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "expression embedder (ONNX) not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types
            raise InputError(path, f"cannot load ONNX model ({type(err).__name__})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise InputError(path, f"ONNX model lacks '{METADATA_KEY}' metadata (not exported by cdrscreen-fer)")
        self.meta: dict[str, Any] = json.loads(props[METADATA_KEY])
        self.path = path

    @property
    def input_size(self) -> int:
        """Side of the square input crop."""
        return int(self.meta["input_size"])

    @property
    def class_names(self) -> list[str]:
        """Expression classes of ``probs``."""
        return list(self.meta["class_names"])

    def __call__(self, crops: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings ``(N, D)`` and probabilities ``(N, K)`` of uint8 RGB crops ``(N, S, S, 3)``."""
        crops = np.asarray(crops)
        d, k = int(self.meta["embedding_dim"]), len(self.class_names)
        if len(crops) == 0:
            return np.zeros((0, d), np.float32), np.zeros((0, k), np.float32)
        embs, probs = [], []
        for i in range(0, len(crops), batch_size):
            x = crops[i : i + batch_size].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
            e, p = self.session.run(["embedding", "probs"], {"input": np.ascontiguousarray(x)})
            embs.append(e)
            probs.append(p)
        return np.concatenate(embs), np.concatenate(probs)


def pool_features(emb: np.ndarray, probs: np.ndarray, valid: np.ndarray, times: np.ndarray,
                  class_names: list[str]) -> dict[str, float]:
    """Per-video features (without prefix) from per-frame embeddings and probabilities.

    Parameters
    ----------
    emb : ndarray (N, D)
    probs : ndarray (N, K)
    valid : bool ndarray (N,)
        Frames with a tracked face (rows of ``emb``/``probs`` elsewhere are ignored).
    times : ndarray (N,)
        Seconds.
    class_names : list of str
    """
    n, d = emb.shape
    out: dict[str, float] = {"n_frames": float(n), "valid_fraction": float(valid.mean()) if n else 0.0}
    e, p, t = emb[valid], probs[valid], np.asarray(times, float)[valid]
    nan = float("nan")
    width = len(str(d - 1))
    mean = e.mean(0) if len(e) else np.full(d, nan)
    std = e.std(0) if len(e) else np.full(d, nan)
    for i in range(d):
        out[f"emb_mean_{i:0{width}d}"] = float(mean[i])
    for i in range(d):
        out[f"emb_std_{i:0{width}d}"] = float(std[i])
    top = p.argmax(1) if len(p) else np.zeros(0, int)
    for c, name in enumerate(class_names):
        out[f"prob_mean_{name}"] = float(p[:, c].mean()) if len(p) else nan
        out[f"hist_{name}"] = float((top == c).mean()) if len(p) else nan
    duration = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    out["transition_rate"] = float((np.diff(top) != 0).sum() / duration) if duration > 0 else nan
    out["expressivity"] = (float((1.0 - p[:, class_names.index("neutral")]).mean())
                           if "neutral" in class_names and len(p) else nan)
    out["entropy_mean"] = float((-(p * np.log(np.clip(p, 1e-12, 1))).sum(1)).mean()) if len(p) else nan
    out["emb_dispersion"] = float(np.linalg.norm(e - mean, axis=1).mean()) if len(e) else nan
    return out


def embed_track(track: FaceTrack, embedder: Embedder, every: int = 5,
                batch_size: int = 32) -> pd.DataFrame:
    """Per-frame expression track: aligned crops of every ``every``-th tracked row -> embedder.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(file, frame, time)`` with ``success``, ``confidence``, ``prob_<c>``
        and ``emb_<i>`` columns (NaN where no face was tracked).
    """
    from cdrscreen.media.video import iter_frames

    table = track.table
    rows = np.arange(0, len(table), max(int(every), 1))
    want = {int(table["frame"].iloc[r]): r for r in rows if bool(table["success"].iloc[r])}
    size = embedder.input_size
    crops, got = [], []
    if want:
        last = max(want)
        for fr in iter_frames(track.path, stride=track.config.stride):
            if fr.index in want:
                r = want[fr.index]
                crops.append(align_face(fr.rgb, track.landmarks[r], size))
                got.append(r)
            if fr.index >= last:
                break
    emb, probs = embedder(np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8), batch_size)
    d, k = emb.shape[1], probs.shape[1]
    e_all = np.full((len(rows), d), np.nan, np.float32)
    p_all = np.full((len(rows), k), np.nan, np.float32)
    pos = {r: i for i, r in enumerate(rows)}
    for j, r in enumerate(got):
        e_all[pos[r]], p_all[pos[r]] = emb[j], probs[j]
    sub = table.iloc[rows]
    ok = ~np.isnan(p_all[:, 0]) if k else np.zeros(len(rows), bool)
    width = len(str(d - 1))
    df = pd.DataFrame({"file": str(track.path), "frame": sub["frame"].to_numpy(), "time": sub["time"].to_numpy(),
                       "success": ok, "confidence": np.where(ok, sub["confidence"].to_numpy(), 0.0)})
    df = pd.concat([df, pd.DataFrame(p_all, columns=[f"prob_{c}" for c in embedder.class_names]),
                    pd.DataFrame(e_all, columns=[f"emb_{i:0{width}d}" for i in range(d)])], axis=1)
    return df.set_index(["file", "frame", "time"])


class ExpressionParams(StrictModel):
    """Settings of the ``expr`` group (spec section ``groups.expr``)."""

    embedder: str | None = Field(None, description=f"ONNX embedder from 'cdrscreen-fer export' (default ${ENV_VAR}).")
    every: int = Field(5, ge=1, description="Embed every every-th tracked frame.")
    batch_size: int = Field(32, ge=1, description="Crops per onnxruntime call.")
    threads: int = Field(1, ge=1, description="onnxruntime threads.")


class ExpressionExtractor(TrackedExtractor):
    """Expression-embedding features of a video (columns ``expr__*``).

    Parameters
    ----------
    embedder : path, optional
        ONNX embedder from ``cdrscreen-fer export``; default ``$CDRSCREEN_EXPR_EMBEDDER``.
    every : int, default 5
        Embed every ``every``-th tracked frame (CPU cost is per embedded frame).
    stride : int, default 1
        Track every ``stride``-th frame (shared with ``pupil``/``headpose``).
    max_faces : int, default 2
    batch_size : int, default 32
    threads : int, default 1
        onnxruntime threads.
    cache_dir : path, optional
        Where the shared face track is cached.

    Notes
    -----
    Signals: ``frames``, the per-frame expression track of :func:`embed_track` without the
    embedding columns (``success``, ``confidence``, ``prob_<c>``).
    """

    name: ClassVar[str] = "expr"
    prefix: ClassVar[str] = "expr"
    version: ClassVar[int] = 1
    Params = ExpressionParams
    signal_names: ClassVar[tuple[str, ...]] = ("frames",)

    def __init__(self, embedder: str | os.PathLike[str] | None = None, every: int = 5, stride: int = 1,
                 max_faces: int = 2, batch_size: int = 32, threads: int = 1,
                 cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.embedder = embedder
        self.every = every
        self.stride = stride
        self.max_faces = max_faces
        self.batch_size = batch_size
        self.threads = threads
        self.cache_dir = cache_dir

    def embedder_path(self) -> Path:
        """Return the embedder file (parameter, else ``$CDRSCREEN_EXPR_EMBEDDER``); one-line error if none."""
        p = self.embedder if self.embedder is not None else os.environ.get(ENV_VAR)
        if not p:
            raise CdrscreenError(
                f"feature group 'expr' needs an expression embedder: export one with 'cdrscreen-fer export' "
                f"and pass embedder=PATH or set {ENV_VAR}=PATH")
        path = Path(p)
        if not path.is_file():
            raise InputError(path, "expression embedder (ONNX) not found")
        return path

    def get_config(self) -> dict[str, Any]:
        """Return the configuration incl. the embedder's content hash (not its path), without batching/threads."""
        from cdrscreen.core.io import file_sha256

        cfg = super().get_config()
        for k in ("embedder", "batch_size", "threads"):
            cfg.pop(k, None)
        cfg["embedder_sha256"] = file_sha256(self.embedder_path())
        return cfg

    def frame_table(self, path: str | os.PathLike[str]) -> pd.DataFrame:
        """Per-frame expression track of a video (see :func:`embed_track`)."""
        emb = Embedder(self.embedder_path(), threads=self.threads)
        return embed_track(self.track(path), emb, self.every, self.batch_size)

    def compute(self, track: FaceTrack) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        """Pooled features of one video's track, and its per-frame expression probabilities."""
        emb = Embedder(self.embedder_path(), threads=self.threads)
        df = embed_track(track, emb, self.every, self.batch_size)
        ecols = [c for c in df.columns if c.startswith("emb_")]
        pcols = [f"prob_{c}" for c in emb.class_names]
        valid = df["success"].to_numpy(bool)
        times = df.index.get_level_values("time").to_numpy(float)
        e = np.nan_to_num(df[ecols].to_numpy(np.float32))
        p = np.nan_to_num(df[pcols].to_numpy(np.float32))
        frames = df.drop(columns=ecols).reset_index().drop(columns="file")
        return pool_features(e, p, valid, times, emb.class_names), {"frames": frames}
