"""Facial-expression features from an embedder (onnxruntime only), as a timeline.

Per tracked frame (the shared MediaPipe face track of :mod:`cdrscreen.tracking.face`), the
face is cut out exactly as the embedder's metadata says (the embedder contract,
:mod:`cdrscreen.core.embedder`: an eyes-and-mouth template alignment, or a box rule on the
face mesh for models trained on detector boxes such as the imported FER2013 model), resized
to its input size and run through the ONNX embedder. This module never imports torch.

Only facial-expression embedders are accepted (metadata ``domain: facial_expression``); a model
trained on anything else (e.g. the digits recipes) is refused with one line unless
``allow_non_expression=True`` (``cdrscreen extract --allow-non-expression``).

Timeline, as Yu et al. (ABAW6 2024) post-process predictions: the most probable class of
every embedded frame (the *raw* label) is smoothed by a sliding-window majority vote
(:func:`cdrscreen.tracking.smoothing.majority_vote`, torch-free, the code ``fer_backbone`` uses; ``window`` = ``smooth_s`` seconds
of embedded frames, centred; frames without a face do not vote and stay unlabelled). Runs of
one smoothed label are *episodes*. Both labels are kept in the per-frame table
(:func:`embed_track`).

Pooled per-video columns (prefix ``expr__``; ``<c>`` = class name from the embedder's
metadata, ``<i>`` = embedding dimension, zero-padded):

``n_frames``, ``valid_fraction``
    Embedded frames and the fraction of them with a tracked face.
``emb_mean_<i>``, ``emb_std_<i>``
    Mean and standard deviation of the embedding over valid frames.
``prob_mean_<c>``
    Mean class probability.
``hist_<c>``
    Fraction of labelled frames whose smoothed label is ``c``.
``transition_rate``
    Changes of the smoothed label between consecutive labelled frames, per minute.
``transition_rate_raw``
    The same on the raw (unsmoothed) labels, per minute (flicker of the classifier included).
``episodes_<c>``, ``episode_rate_<c>``, ``episode_mean_s_<c>``
    Episodes of class ``c`` (runs of the smoothed label): count, count per minute, mean
    duration in seconds (NaN when there is none).
``expressivity``
    Mean of ``1 - p(neutral)`` (NaN if the embedder has no ``neutral`` class).
``entropy_mean``
    Mean entropy (nats) of the class distribution: low = confident expressions.
``emb_dispersion``
    Mean Euclidean distance of the frame embeddings from their mean (how much the face
    changes in embedding space).

Rates are per minute of embedded video (from the first to one step past the last embedded
frame). The embedder is given as ``ExpressionExtractor(embedder=PATH)`` (``cdrscreen extract
--embedder PATH``), else by the environment variable ``CDRSCREEN_EXPR_EMBEDDER``; without one
the extractor raises a one-line error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.core.embedder import METADATA_KEY, EmbedderMeta, crop_face, parse_metadata
from cdrscreen.core.errors import CdrscreenError, InputError, MissingDependencyError
from cdrscreen.features.base import TrackedExtractor
from cdrscreen.tracking.face import FaceTrack

ENV_VAR = "CDRSCREEN_EXPR_EMBEDDER"


class Embedder:
    """An embedder (ONNX file with the contract's metadata) run with onnxruntime.

    Parameters
    ----------
    path : path
        ONNX file written by ``cdrscreen-fer export`` or ``cdrscreen-fer import``.
    threads : int
        onnxruntime intra-op threads.

    Attributes
    ----------
    contract : cdrscreen.core.embedder.EmbedderMeta
        The validated metadata (crop recipe, classes, input size, ...).
    meta : dict
        The same as a plain mapping.
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
        self.contract: EmbedderMeta = parse_metadata(props[METADATA_KEY], str(path))
        self.meta: dict[str, Any] = self.contract.model_dump(mode="json")
        self.path = path

    @property
    def input_size(self) -> int:
        """Side of the square input crop."""
        return int(self.contract.input_size)

    @property
    def class_names(self) -> list[str]:
        """Classes of ``probs``."""
        return list(self.contract.class_names)

    def require_expression(self, allow_other: bool = False) -> None:
        """Raise one line unless the embedder's classes are facial expressions (or ``allow_other``)."""
        if self.contract.domain == "facial_expression" or allow_other:
            return
        shown = ", ".join(self.class_names[:5]) + (", ..." if len(self.class_names) > 5 else "")
        raise InputError(
            self.path, f"embedder '{self.contract.name}' is not a facial-expression model (classes {shown}); "
            "feature group 'expr' needs one, e.g. 'cdrscreen-fer import fer2013 --out fer2013.onnx' "
            "(or pass --allow-non-expression to use this one anyway)")

    def crop(self, rgb: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        """Cut the face as this embedder expects (its metadata's crop recipe and input size)."""
        return crop_face(rgb, landmarks, self.contract.crop, self.input_size)

    def __call__(self, crops: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings ``(N, D)`` and probabilities ``(N, K)`` of uint8 RGB crops ``(N, S, S, 3)``."""
        crops = np.asarray(crops)
        d, k = int(self.contract.embedding_dim), len(self.class_names)
        if len(crops) == 0:
            return np.zeros((0, d), np.float32), np.zeros((0, k), np.float32)
        embs, probs = [], []
        for i in range(0, len(crops), batch_size):
            x = crops[i : i + batch_size].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
            e, p = self.session.run(["embedding", "probs"], {"input": np.ascontiguousarray(x)})
            embs.append(e)
            probs.append(p)
        return np.concatenate(embs), np.concatenate(probs)


def window_frames(smooth_s: float, rate: float) -> int:
    """Odd majority-vote window (>= 1 frame) closest to ``smooth_s`` seconds at ``rate`` frames/s."""
    n = max(int(round(smooth_s * rate)), 1)
    return n if n % 2 else n + 1


def episodes(labels: np.ndarray, step: float) -> list[tuple[int, int, float]]:
    """Return the runs of one label as ``(label, first index, duration in s)``, unlabelled (-1) runs skipped."""
    lab = np.asarray(labels)
    if lab.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:], lab.size]
    return [(int(lab[a]), int(a), float((b - a) * step)) for a, b in zip(starts, ends, strict=True) if lab[a] >= 0]


def _changes(labels: np.ndarray) -> int:
    seq = labels[labels >= 0]
    return int((seq[1:] != seq[:-1]).sum()) if seq.size > 1 else 0


def timeline_labels(probs: np.ndarray, valid: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw labels (argmax, -1 without a face) and their sliding-window majority vote (``window`` frames)."""
    from cdrscreen.tracking.smoothing import majority_vote

    p = np.asarray(probs, dtype=np.float64)
    ok = np.asarray(valid, bool) & ~np.isnan(p).any(1) if p.size else np.asarray(valid, bool)
    raw = np.where(ok, np.argmax(np.nan_to_num(p, nan=-1.0), axis=1), -1) if p.size else np.full(len(ok), -1)
    raw = raw.astype(np.int64)
    return raw, majority_vote(raw, window, mode="centered", n_classes=max(p.shape[1], 1))


def pool_features(emb: np.ndarray, probs: np.ndarray, valid: np.ndarray, times: np.ndarray,
                  class_names: list[str], window: int = 1) -> dict[str, float]:
    """Per-video features (without prefix) from per-frame embeddings and probabilities.

    Parameters
    ----------
    emb : ndarray (N, D)
    probs : ndarray (N, K)
    valid : bool ndarray (N,)
        Frames with a tracked face (rows of ``emb``/``probs`` elsewhere are ignored).
    times : ndarray (N,)
        Seconds, evenly spaced (one embedded frame every ``step`` seconds).
    class_names : list of str
    window : int
        Majority-vote window in frames (1 = no smoothing).
    """
    n, d = emb.shape
    valid = np.asarray(valid, bool)
    out: dict[str, float] = {"n_frames": float(n), "valid_fraction": float(valid.mean()) if n else 0.0}
    e, p = emb[valid], probs[valid]
    t = np.asarray(times, float)
    nan = float("nan")
    width = len(str(d - 1))
    mean = e.mean(0) if len(e) else np.full(d, nan)
    std = e.std(0) if len(e) else np.full(d, nan)
    for i in range(d):
        out[f"emb_mean_{i:0{width}d}"] = float(mean[i])
    for i in range(d):
        out[f"emb_std_{i:0{width}d}"] = float(std[i])
    raw, smooth = timeline_labels(probs, valid, window)
    step = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    minutes = (t[-1] - t[0] + step) / 60.0 if t.size > 1 else 0.0
    labelled = smooth >= 0
    runs = episodes(smooth, step)
    for c, name in enumerate(class_names):
        out[f"prob_mean_{name}"] = float(p[:, c].mean()) if len(p) else nan
        out[f"hist_{name}"] = float((smooth[labelled] == c).mean()) if labelled.any() else nan
    for c, name in enumerate(class_names):
        durs = [dur for lab, _, dur in runs if lab == c]
        out[f"episodes_{name}"] = float(len(durs)) if labelled.any() else nan
        out[f"episode_rate_{name}"] = len(durs) / minutes if minutes > 0 and labelled.any() else nan
        out[f"episode_mean_s_{name}"] = float(np.mean(durs)) if durs else nan
    out["transition_rate"] = _changes(smooth) / minutes if minutes > 0 and labelled.any() else nan
    out["transition_rate_raw"] = _changes(raw) / minutes if minutes > 0 and labelled.any() else nan
    out["expressivity"] = (float((1.0 - p[:, class_names.index("neutral")]).mean())
                           if "neutral" in class_names and len(p) else nan)
    out["entropy_mean"] = float((-(p * np.log(np.clip(p, 1e-12, 1))).sum(1)).mean()) if len(p) else nan
    out["emb_dispersion"] = float(np.linalg.norm(e - mean, axis=1).mean()) if len(e) else nan
    return out


def embed_track(track: FaceTrack, embedder: Embedder, every: int = 5,
                batch_size: int = 32, smooth_s: float = 1.0) -> pd.DataFrame:
    """Per-frame expression track: the embedder's face crop of every ``every``-th tracked row.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(file, frame, time)`` with ``success``, ``confidence``, ``label_raw`` /
        ``expression_raw`` (most probable class; -1 / "none" without a face), ``label`` /
        ``expression`` (after the majority vote over ``smooth_s`` seconds), ``prob_<c>`` and
        ``emb_<i>`` columns (NaN where no face was tracked). ``attrs["smoothing_window"]``
        is the vote window in embedded frames.
    """
    from cdrscreen.media.video import iter_frames

    table = track.table
    rows = np.arange(0, len(table), max(int(every), 1))
    want = {int(table["frame"].iloc[r]): r for r in rows if bool(table["success"].iloc[r])}
    size = embedder.input_size
    crops: list[np.ndarray] = []
    got: list[int] = []
    embs, probs_parts = [], []

    def run_batch() -> None:  # crops are embedded a batch at a time: memory stays one batch
        e, p = embedder(np.stack(crops), batch_size)
        embs.append(e)
        probs_parts.append(p)
        crops.clear()

    if want:
        last = max(want)
        for fr in iter_frames(track.path, stride=track.config.stride):
            if fr.index in want:
                r = want[fr.index]
                crops.append(embedder.crop(fr.rgb, np.asarray(track.landmarks[r])))
                got.append(r)
                if len(crops) == batch_size:
                    run_batch()
            if fr.index >= last:
                break
    if crops:
        run_batch()
    if embs:
        emb, probs = np.concatenate(embs), np.concatenate(probs_parts)
    else:
        emb, probs = embedder(np.zeros((0, size, size, 3), np.uint8), batch_size)
    d, k = emb.shape[1], probs.shape[1]
    e_all = np.full((len(rows), d), np.nan, np.float32)
    p_all = np.full((len(rows), k), np.nan, np.float32)
    pos = {r: i for i, r in enumerate(rows)}
    for j, r in enumerate(got):
        e_all[pos[r]], p_all[pos[r]] = emb[j], probs[j]
    sub = table.iloc[rows]
    ok = ~np.isnan(p_all[:, 0]) if k else np.zeros(len(rows), bool)
    window = window_frames(smooth_s, track.track_fps / max(int(every), 1))
    raw, smooth = timeline_labels(p_all, ok, window)
    names = np.asarray([*embedder.class_names, "none"], dtype=object)
    width = len(str(d - 1))
    df = pd.DataFrame({"file": str(track.path), "frame": sub["frame"].to_numpy(), "time": sub["time"].to_numpy(),
                       "success": ok, "confidence": np.where(ok, sub["confidence"].to_numpy(), 0.0),
                       "label_raw": raw, "expression_raw": names[raw], "label": smooth,
                       "expression": names[smooth]})
    df = pd.concat([df, pd.DataFrame(p_all, columns=[f"prob_{c}" for c in embedder.class_names]),
                    pd.DataFrame(e_all, columns=[f"emb_{i:0{width}d}" for i in range(d)])], axis=1)
    df = df.set_index(["file", "frame", "time"])
    df.attrs["smoothing_window"] = window
    return df


class ExpressionParams(StrictModel):
    """Settings of the ``expr`` group (spec section ``groups.expr``)."""

    embedder: str | None = Field(None, description="ONNX embedder from 'cdrscreen-fer import' or "
                                 f"'cdrscreen-fer export' (default ${ENV_VAR}).")
    allow_non_expression: bool = Field(False, description="Accept an embedder whose classes are not facial "
                                       "expressions (e.g. a digits model).")
    every: int = Field(5, ge=1, description="Embed every every-th tracked frame.")
    smooth_s: float = Field(1.0, ge=0, description="Majority-vote window of the expression timeline, seconds.")
    batch_size: int = Field(32, ge=1, description="Crops per onnxruntime call.")
    threads: int = Field(1, ge=1, description="onnxruntime threads.")


class ExpressionExtractor(TrackedExtractor):
    """Expression features of a video from an expression embedder (columns ``expr__*``).

    Parameters
    ----------
    embedder : path, optional
        ONNX embedder (``cdrscreen-fer export`` / ``cdrscreen-fer import``); default
        ``$CDRSCREEN_EXPR_EMBEDDER``.
    allow_non_expression : bool, default False
        Accept an embedder whose metadata does not declare facial-expression classes.
    every : int, default 5
        Embed every ``every``-th tracked frame (CPU cost is per embedded frame).
    smooth_s : float, default 1.0
        Majority-vote window in seconds (rounded to an odd number of embedded frames).
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
    Signals: ``frames``, the per-frame expression timeline of :func:`embed_track` without the
    embedding columns (``success``, ``confidence``, ``label_raw``, ``expression_raw``,
    ``label``, ``expression``, ``prob_<c>``).
    """

    name: ClassVar[str] = "expr"
    prefix: ClassVar[str] = "expr"
    version: ClassVar[int] = 2  # 2: embedder's own crop recipe, smoothed timeline, episodes, rates per minute
    Params = ExpressionParams
    signal_names: ClassVar[tuple[str, ...]] = ("frames",)

    def __init__(self, embedder: str | os.PathLike[str] | None = None, allow_non_expression: bool = False,
                 every: int = 5, smooth_s: float = 1.0, stride: int = 1, max_faces: int = 2,
                 batch_size: int = 32, threads: int = 1, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.embedder = embedder
        self.allow_non_expression = allow_non_expression
        self.every = every
        self.smooth_s = smooth_s
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
                f"feature group 'expr' needs an expression embedder: pass --embedder PATH (Python: "
                f"embedder=PATH) or set {ENV_VAR}=PATH; get one with 'cdrscreen-fer import fer2013' "
                "or 'cdrscreen-fer export'")
        path = Path(p)
        if not path.is_file():
            raise InputError(path, "expression embedder (ONNX) not found")
        return path

    def load_embedder(self) -> Embedder:
        """Open the embedder and check that it is a facial-expression model (one-line error if not)."""
        emb = Embedder(self.embedder_path(), threads=self.threads)
        emb.require_expression(self.allow_non_expression)
        return emb

    def check(self) -> None:
        """Fail early (before any recording) on a missing or unsuitable embedder."""
        self.load_embedder()

    def get_config(self) -> dict[str, Any]:
        """Return the configuration incl. the embedder's content hash (not its path), without batching/threads."""
        from cdrscreen.core.io import file_sha256

        cfg = super().get_config()
        for k in ("embedder", "batch_size", "threads", "allow_non_expression"):
            cfg.pop(k, None)
        cfg["embedder_sha256"] = file_sha256(self.embedder_path())
        return cfg

    def frame_table(self, path: str | os.PathLike[str]) -> pd.DataFrame:
        """Per-frame expression track of a video (see :func:`embed_track`)."""
        return embed_track(self.track(path), self.load_embedder(), self.every, self.batch_size, self.smooth_s)

    def compute(self, track: FaceTrack) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
        """Pooled features of one video's track, and its per-frame expression timeline."""
        emb = self.load_embedder()
        df = embed_track(track, emb, self.every, self.batch_size, self.smooth_s)
        ecols = [c for c in df.columns if c.startswith("emb_")]
        pcols = [f"prob_{c}" for c in emb.class_names]
        valid = df["success"].to_numpy(bool)
        times = df.index.get_level_values("time").to_numpy(float)
        e = np.nan_to_num(df[ecols].to_numpy(np.float32))
        p = np.nan_to_num(df[pcols].to_numpy(np.float32))
        frames = df.drop(columns=ecols).reset_index().drop(columns="file")
        feats = pool_features(e, p, valid, times, emb.class_names, window=int(df.attrs["smoothing_window"]))
        return feats, {"frames": frames}
