"""Phase 2 of Yu et al. (ABAW6 2024): a temporal encoder over frozen per-frame features.

The phase-1 student is frozen and turns every frame of a video into a feature vector
(:func:`extract_features`); :class:`TemporalClassifier` trains a
:class:`~fer_backbone.models.temporal.TemporalEncoder` on windows of those features and
predicts every frame. Sequences come from Aff-Wild2-style per-frame annotation files
(:func:`read_affwild2_sequences`) or any arrays.

Conventions: a sequence's labels are ``(T,)`` ints with ``-1`` for unannotated frames; a
frame without a face has a NaN feature row (or ``has_face`` False). Such frames are never
attended to, but they still get a prediction inferred from their neighbours, and annotated
ones take part in the loss (the ABAW metric scores every annotated frame, detector misses
included).

The encoder trains on features, not images, so it has its own short loop here (AdamW,
cosine schedule, per-frame cross-entropy); the image training loop is not involved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cdrscreen.core.errors import CdrscreenError, InputError
from fer_backbone.config import (  # noqa: F401 - re-exported
    AnnotationConfig,
    EncoderConfig,
    Recipe,
    SmoothingConfig,
    TemporalConfig,
)
from fer_backbone.data.readers import read_affwild2_labels
from fer_backbone.models.temporal import TemporalEncoder
from fer_backbone.smoothing import macro_f1, majority_vote, smooth_probabilities

AFFWILD2_CLASSES = ["neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise", "other"]


@dataclasses.dataclass
class FrameSequence:
    """One video's frames and per-frame labels.

    Attributes
    ----------
    name : str
        Video name.
    labels : numpy.ndarray of int64, shape (T,)
        Class per frame, ``-1`` = unannotated.
    frames : list of (Path or None)
        Image of each frame; None when no face crop exists for that frame.
    """

    name: str
    labels: np.ndarray
    frames: list[Path | None]

    @property
    def has_face(self) -> np.ndarray:
        """Bool ``(T,)``: frames with a face crop."""
        return np.array([f is not None for f in self.frames], dtype=bool)


def read_affwild2_sequences(
    annotations_dir: str | Path, frames_root: str | Path | None = None, image_ext: str = ".jpg"
) -> list[FrameSequence]:
    """Read Aff-Wild2 EXPR annotations as whole per-video sequences.

    Parameters
    ----------
    annotations_dir : path
        Folder of ``<video>.txt``: a class-name header line, then one label per frame
        (frame ``i`` on line ``i + 1``), ``-1`` for unannotated frames.
    frames_root : path, optional
        ``cropped_aligned/``; frame ``i`` of ``<video>`` is ``<video>/{i:05d}<image_ext>``.
        Frames whose crop is absent (no face detected) get ``None``. Without a root every
        frame's image is ``None``.
    image_ext : str
        Image file extension.

    Returns
    -------
    list of FrameSequence
        Sorted by video name; every frame is kept (unlike per-frame readers, nothing is
        skipped, so positions in time stay true).
    """
    root = Path(annotations_dir)
    if not root.is_dir():
        raise InputError(root, "Aff-Wild2 annotation folder not found")
    files = sorted(root.glob("*.txt"))
    if not files:
        raise InputError(root, "no <video>.txt annotation files")
    out = []
    for f in files:
        labels = read_affwild2_labels(f)
        frames: list[Path | None] = []
        for i in range(1, len(labels) + 1):
            p = None if frames_root is None else Path(frames_root) / f.stem / f"{i:05d}{image_ext}"
            frames.append(p if p is not None and p.exists() else None)
        out.append(FrameSequence(f.stem, labels, frames))
    return out


def freeze(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode with gradients off (the frozen phase-1 student)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def extract_features(
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor | Sequence[torch.Tensor | None],
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-frame features of one clip from a frozen embedder.

    Parameters
    ----------
    embed : callable
        ``(B, 3, H, W) float -> (B, D)``, e.g. a frozen task's ``embed`` method; it gets
        images already preprocessed the way it was trained.
    images : tensor ``(T, 3, H, W)`` or sequence of (tensor ``(3, H, W)`` or None)
        Frames in temporal order; None marks a frame without a face.
    batch_size : int
        Frames per forward pass.

    Returns
    -------
    numpy.ndarray of float32, shape (T, D)
        NaN rows for frames without a face.
    """
    items = list(images) if not isinstance(images, torch.Tensor) else list(images.unbind(0))
    present = [i for i, im in enumerate(items) if im is not None]
    if not present:
        raise CdrscreenError("extract_features: the clip has no frame with a face")
    chunks = []
    for s in range(0, len(present), batch_size):
        batch = torch.stack([items[i] for i in present[s : s + batch_size]])
        chunks.append(embed(batch).float().cpu())
    feats = torch.cat(chunks).numpy()
    out = np.full((len(items), feats.shape[1]), np.nan, dtype=np.float32)
    out[present] = feats
    return out


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start frames of windows covering ``length`` frames; the last window ends at the end."""
    if window < 1 or stride < 1:
        raise CdrscreenError(f"window ({window}) and stride ({stride}) must be positive")
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return np.asarray(starts, dtype=np.int64)


def _cut(feats: np.ndarray, start: int, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seg = feats[start : start + window]
    n = seg.shape[0]
    x = np.zeros((window, feats.shape[1]), dtype=np.float32)
    x[:n] = np.nan_to_num(seg)
    pad = np.ones(window, dtype=bool)
    pad[:n] = False
    miss = np.zeros(window, dtype=bool)
    miss[:n] = np.isnan(seg).any(axis=1)
    return x, pad, miss


def _check_sequences(features: Sequence[np.ndarray], labels: Sequence[np.ndarray] | None) -> None:
    if len(features) == 0:
        raise CdrscreenError("no sequences given")
    dims = {np.asarray(f).shape[1] if np.asarray(f).ndim == 2 else -1 for f in features}
    if len(dims) != 1 or -1 in dims:
        raise CdrscreenError(f"every sequence must be a (frames, dim) array with one common dim, got dims {sorted(dims)}")
    if labels is not None:
        if len(labels) != len(features):
            raise CdrscreenError(f"{len(features)} feature sequences but {len(labels)} label sequences")
        for i, (f, y) in enumerate(zip(features, labels, strict=True)):
            if len(y) != len(f):
                raise CdrscreenError(f"sequence {i}: {len(f)} feature rows but {len(y)} labels")


class TemporalClassifier:
    """Train and apply a temporal encoder on per-frame feature sequences.

    Parameters
    ----------
    num_classes : int
        Number of expression classes.
    window, stride : int
        Window length and stride in frames, for training and inference (at inference,
        a frame covered by several windows gets the mean of their probabilities).
    causal : bool
        Causal attention (online use).
    d_model, nhead, num_layers, dim_feedforward, dropout, positional
        Encoder size (see :class:`~fer_backbone.models.temporal.TemporalEncoder`).
    epochs, batch_size, lr, weight_decay : training
        AdamW with a per-step cosine schedule to 0.
    class_weight : {None, "balanced"}
        Per-class loss weights (inverse frequency of annotated frames) for imbalanced data.
    seed : int
        Seeds initialisation and window order.
    device : str
        Torch device.

    Attributes
    ----------
    model_ : TemporalEncoder
    history_ : list of float
        Mean training loss per epoch.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        window: int = 32,
        stride: int = 16,
        causal: bool = False,
        d_model: int = 128,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        positional: str = "sinusoidal",
        epochs: int = 20,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        class_weight: str | None = None,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.num_classes = num_classes
        self.window = window
        self.stride = stride
        self.causal = causal
        self.d_model = d_model
        self.nhead = nhead
        self.num_layers = num_layers
        self.dim_feedforward = dim_feedforward
        self.dropout = dropout
        self.positional = positional
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.seed = seed
        self.device = device

    def _build(self, in_dim: int) -> TemporalEncoder:
        return TemporalEncoder(
            in_dim, self.num_classes, d_model=self.d_model, nhead=self.nhead,
            num_layers=self.num_layers, dim_feedforward=self.dim_feedforward, dropout=self.dropout,
            max_len=self.window, causal=self.causal, positional=self.positional,
        )

    def fit(self, features: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> TemporalClassifier:
        """Train on sequences of per-frame features ``(T_i, D)`` and labels ``(T_i,)``."""
        _check_sequences(features, labels)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        xs, pads, misses, ys = [], [], [], []
        for f, y in zip(features, labels, strict=True):
            f = np.asarray(f, dtype=np.float32)
            y = np.asarray(y, dtype=np.int64)
            if y.max(initial=-1) >= self.num_classes or y.min(initial=0) < -1:
                raise CdrscreenError(f"labels must lie in -1..{self.num_classes - 1}")
            for s in window_starts(len(f), self.window, self.stride):
                x, pad, miss = _cut(f, int(s), self.window)
                yy = np.full(self.window, -1, dtype=np.int64)
                seg = y[s : s + self.window]
                yy[: len(seg)] = seg
                xs.append(x), pads.append(pad), misses.append(miss), ys.append(yy)
        x_all = torch.from_numpy(np.stack(xs))
        pad_all, miss_all = torch.from_numpy(np.stack(pads)), torch.from_numpy(np.stack(misses))
        y_all = torch.from_numpy(np.stack(ys))
        if not (y_all >= 0).any():
            raise CdrscreenError("no annotated frame in the training sequences")
        weight = None
        if self.class_weight == "balanced":
            counts = torch.bincount(y_all[y_all >= 0], minlength=self.num_classes).float()
            weight = torch.where(counts > 0, counts.sum() / (self.num_classes * counts.clamp(min=1)), 0.0)
        elif self.class_weight is not None:
            raise CdrscreenError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        dev = torch.device(self.device)
        model = self._build(x_all.shape[-1]).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        n = len(x_all)
        steps_per_epoch = math.ceil(n / self.batch_size)
        total = max(self.epochs * steps_per_epoch, 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        loss_fn = nn.CrossEntropyLoss(weight=None if weight is None else weight.to(dev), ignore_index=-1)
        self.history_ = []
        for _ in range(self.epochs):
            model.train()
            order = rng.permutation(n)
            tot, cnt = 0.0, 0
            for b in range(0, n, self.batch_size):
                idx = torch.from_numpy(order[b : b + self.batch_size])
                yb = y_all[idx].to(dev)
                if not (yb >= 0).any():
                    continue
                logits = model(x_all[idx].to(dev), pad_all[idx].to(dev), miss_all[idx].to(dev))
                loss = loss_fn(logits.reshape(-1, self.num_classes), yb.reshape(-1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                tot, cnt = tot + float(loss.detach()), cnt + 1
            self.history_.append(tot / max(cnt, 1))
        self.model_ = model.eval()
        self.in_dim_ = int(x_all.shape[-1])
        return self

    @torch.no_grad()
    def predict_proba(self, features: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-frame class probabilities ``(T_i, K)`` of each sequence."""
        if not hasattr(self, "model_"):
            raise CdrscreenError("TemporalClassifier: call fit (or load) before predicting")
        _check_sequences(features, None)
        dev = torch.device(self.device)
        out = []
        for f in features:
            f = np.asarray(f, dtype=np.float32)
            if f.shape[1] != self.in_dim_:
                raise CdrscreenError(f"features have dim {f.shape[1]}, the model was trained on {self.in_dim_}")
            acc = np.zeros((len(f), self.num_classes))
            hits = np.zeros(len(f))
            starts = window_starts(len(f), self.window, self.stride)
            cut = [_cut(f, int(s), self.window) for s in starts]
            x = torch.from_numpy(np.stack([c[0] for c in cut])).to(dev)
            pad = torch.from_numpy(np.stack([c[1] for c in cut])).to(dev)
            miss = torch.from_numpy(np.stack([c[2] for c in cut])).to(dev)
            prob = torch.softmax(self.model_(x, pad, miss), dim=-1).cpu().numpy()
            for j, s in enumerate(starts):
                n = min(self.window, len(f) - int(s))
                acc[s : s + n] += prob[j, :n]
                hits[s : s + n] += 1
            out.append(acc / hits[:, None])
        return out

    def predict(self, features: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-frame class ids ``(T_i,)`` of each sequence (argmax of :meth:`predict_proba`)."""
        return [p.argmax(axis=1) for p in self.predict_proba(features)]

    def save(self, path: str | Path) -> None:
        """Write parameters and weights to one ``.pt`` file (atomic)."""
        import inspect

        from cdrscreen.core.io import atomic_path

        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        params = {k: getattr(self, k) for k in names}
        with atomic_path(path) as tmp:
            torch.save({"params": params, "in_dim": self.in_dim_, "state": self.model_.state_dict()}, tmp)

    @classmethod
    def load(cls, path: str | Path) -> TemporalClassifier:
        """Load a classifier written by :meth:`save`."""
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise InputError(path, "temporal model file not found") from None
        except Exception as err:  # noqa: BLE001 - any unreadable file is one clear error
            raise InputError(path, f"cannot read temporal model ({err})") from None
        params = dict(blob["params"])
        k = params.pop("num_classes")
        obj = cls(k, **params)
        obj.model_ = obj._build(int(blob["in_dim"]))
        obj.model_.load_state_dict(blob["state"])
        obj.model_.to(torch.device(obj.device)).eval()
        obj.in_dim_ = int(blob["in_dim"])
        return obj


# ------------------------------------------------------------------------------- recipes
def smooth_labels(probs: np.ndarray, cfg: SmoothingConfig) -> np.ndarray:
    """Frame labels after the configured post-processing (frames with NaN rows stay -1)."""
    ok = np.isfinite(probs).all(axis=1)
    if cfg.method == "vote":
        raw = np.where(ok, np.nan_to_num(probs, nan=-1.0).argmax(axis=1), -1)
        return majority_vote(raw, cfg.window, mode=cfg.mode, n_classes=probs.shape[1], fill_missing=True)
    sp = smooth_probabilities(probs, cfg.window, method=cfg.method)
    has = np.isfinite(sp).all(axis=1)
    return np.where(has, np.nan_to_num(sp, nan=-1.0).argmax(axis=1), -1)


def _embedder(student: str | Path) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module, dict]:
    from fer_backbone.export import load_trained

    task, info = load_trained(student)
    freeze(task)
    return task.embed, task, info


def _load_frames(paths: list[Path | None], size: int, resize: int | None, mean, std) -> list[torch.Tensor | None]:
    from fer_backbone.data.dataset import load_image, resize_crop

    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    out: list[torch.Tensor | None] = []
    for p in paths:
        if p is None:
            out.append(None)
            continue
        img = resize_crop(load_image(p), size, resize, train=False).float().div(255.0)
        out.append((img - m) / s)
    return out


def sequence_features(seqs: list[FrameSequence], embed: Callable[[torch.Tensor], torch.Tensor],
                      info: dict, batch_size: int = 128) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frozen per-frame features and the frozen network's own per-frame probabilities.

    ``info`` is the checkpoint information of :func:`fer_backbone.export.load_trained`
    (input size, resize, normalisation); probabilities come from ``info["_task"].predict``
    when present, else are NaN.
    """
    feats, probs = [], []
    size, resize = int(info["image_size"]), info.get("resize")
    for q in seqs:
        frames = _load_frames(q.frames, size, resize, info["mean"], info["std"])
        present = [i for i, f in enumerate(frames) if f is not None]
        if not present:
            raise InputError(q.name, "no frame of this video has a face crop")
        f = extract_features(embed, frames, batch_size=batch_size)
        p = np.full((len(frames), info["num_classes"]), np.nan)
        task = info.get("_task")
        if task is not None:
            with torch.no_grad():
                ok = np.flatnonzero(np.isfinite(f).all(axis=1))
                for s in range(0, len(ok), batch_size):
                    idx = ok[s : s + batch_size]
                    x = torch.stack([frames[i] for i in idx])
                    p[idx] = torch.softmax(task.predict(x).float(), dim=1).numpy()
        feats.append(f)
        probs.append(p)
    return feats, probs


def run_temporal_recipe(recipe: Recipe, out_dir: str | Path) -> dict:
    """Phase 2 end to end: freeze the student, extract features, train, evaluate, save.

    Writes ``temporal.pt`` (the :class:`TemporalClassifier`) and ``results.json`` (validation
    macro-F1 of the frozen per-frame network, the encoder, and the encoder + smoothing).
    """
    from cdrscreen.core.io import write_json

    if recipe.temporal is None:
        raise CdrscreenError(f"recipe '{recipe.name}' has no 'temporal:' section")
    cfg = recipe.temporal
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    embed, task, info = _embedder(cfg.student)
    info = dict(info, _task=task)
    a = cfg.annotations
    tr = read_affwild2_sequences(a.train, a.frames_root, a.image_ext)
    va = read_affwild2_sequences(a.val, a.frames_root, a.image_ext)
    f_tr, _ = sequence_features(tr, embed, info, cfg.batch_size)
    f_va, p_va = sequence_features(va, embed, info, cfg.batch_size)
    k = int(info["num_classes"])
    clf = TemporalClassifier(k, **cfg.encoder.model_dump())
    clf.fit(f_tr, [q.labels for q in tr])
    clf.save(out / "temporal.pt")
    pred = clf.predict_proba(f_va)
    y = np.concatenate([q.labels for q in va])
    per_frame = np.concatenate([np.where(np.isfinite(p).all(1), np.nan_to_num(p, nan=-1).argmax(1), -1) for p in p_va])
    res = {
        "recipe": recipe.model_dump(mode="json", include={"name", "description", "temporal"}),
        "n_train_videos": len(tr), "n_val_videos": len(va), "n_val_annotated_frames": int((y >= 0).sum()),
        "val_macro_f1": {
            "per_frame": macro_f1(y, per_frame, k),
            "temporal": macro_f1(y, np.concatenate([p.argmax(1) for p in pred]), k),
            "temporal+smoothing": macro_f1(y, np.concatenate([smooth_labels(p, cfg.smoothing) for p in pred]), k),
        },
        "train_loss": clf.history_,
    }
    write_json(out / "results.json", res)
    return res
