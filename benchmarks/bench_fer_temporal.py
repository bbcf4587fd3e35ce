"""Temporal benchmark: sequences of real digit images with planted label persistence.

Stands in for Aff-Wild2 (no video expression data exists offline). Each "video" is a run
of segments whose label persists for several frames (length 5 + geometric, mean ~20);
class 0 is over-represented (like "neutral"); each frame is a real handwritten digit of
the segment's class drawn from a pool, corrupted afresh (Gaussian noise, a random occluding
block) so that single frames are ambiguous; 5% of frames have "no face" (no image).

Pipeline, as in Yu et al. phase 2:

1. a per-frame CNN is trained (the one loop, baseline task) on corrupted digits of pool A
   and then frozen;
2. its features/probabilities are extracted for every frame of the sequences built from
   pool B (temporal training) and pool C (test); pools are disjoint images;
3. compared by frame-level macro-F1 over the 10 classes on the test sequences:
   per-frame argmax; + sliding-window majority vote; + probability smoothing; the
   Transformer temporal encoder (non-causal and causal); temporal encoder + vote.
   The vote window is chosen on the pool-B sequences (never on the test sequences).

Writes ``benchmarks/results/fer_temporal.json``.
Usage: ``python benchmarks/bench_fer_temporal.py [--seeds 3]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_fer_semi import MEAN, SIZE, STD, SmallCNN  # noqa: E402

from fer_backbone.config import TrainConfig  # noqa: E402
from fer_backbone.data import FERDataset, load_digits_samples  # noqa: E402
from fer_backbone.data.samples import Samples  # noqa: E402
from fer_backbone.smoothing import macro_f1, majority_vote, smooth_probabilities  # noqa: E402
from fer_backbone.tasks.baseline import BaselineTask  # noqa: E402
from fer_backbone.temporal import TemporalClassifier, extract_features, freeze  # noqa: E402
from fer_backbone.train import fit  # noqa: E402

K = 10


def corrupt(img: np.ndarray, rng: np.random.Generator, noise: float, occlude_p: float) -> np.ndarray:
    x = img.astype(np.float32) + rng.normal(0, noise, img.shape)
    if rng.random() < occlude_p:
        r, c = rng.integers(0, 5, size=2)
        x[r : r + 4, c : c + 4] = rng.uniform(0, 255)
    return np.clip(x, 0, 255).astype(np.uint8)


def make_sequences(images, labels, n_seq, length, rng, noise, occlude_p, missing_p=0.05):
    by_class = [np.flatnonzero(labels == c) for c in range(K)]
    prior = np.r_[0.3, np.full(K - 1, 0.7 / (K - 1))]
    seqs = []
    for _ in range(n_seq):
        y = []
        while len(y) < length:
            y += [int(rng.choice(K, p=prior))] * int(5 + rng.geometric(1 / 15))
        y = np.asarray(y[:length])
        frames = [corrupt(images[rng.choice(by_class[c])], rng, noise, occlude_p) for c in y]
        has_face = rng.random(length) >= missing_p
        seqs.append((y, frames, has_face))
    return seqs


def to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    x = torch.from_numpy(np.stack(frames))[:, None].float().div(255.0).expand(-1, 3, -1, -1)
    x = TF.resize(x, [SIZE, SIZE], antialias=True)
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x - m) / s


@torch.no_grad()
def frame_outputs(task: BaselineTask, seq) -> tuple[np.ndarray, np.ndarray]:
    """Frozen per-frame features (NaN rows without a face) and probabilities."""
    y, frames, has_face = seq
    x = to_tensor(frames)
    items = [x[i] if has_face[i] else None for i in range(len(y))]
    feats = extract_features(task.embed, items, batch_size=256)
    probs = np.full((len(y), K), np.nan)
    ok = np.isfinite(feats).all(1)
    probs[ok] = torch.softmax(task.fc(torch.from_numpy(feats[ok])), 1).numpy()
    return feats, probs


def argmax_or_missing(p: np.ndarray) -> np.ndarray:
    ok = np.isfinite(p).all(1)
    return np.where(ok, np.nan_to_num(p, nan=-1).argmax(1), -1)


def one_seed(seed: int, args, tmp: Path) -> dict:
    rng = np.random.default_rng(seed)
    s = load_digits_samples()
    perm = rng.permutation(len(s))
    a, b, c = np.split(perm, [int(0.4 * len(s)), int(0.7 * len(s))])
    imgs, labs = s.images, s.labels
    # 1. per-frame model on corrupted pool-A digits (3 corrupted copies each)
    reps = np.repeat(a, 3)
    train_imgs = np.stack([corrupt(imgs[i], rng, args.noise, args.occlude) for i in reps])
    frame_train = Samples(train_imgs, labs[reps], [str(k) for k in range(K)])
    torch.manual_seed(seed)
    task = BaselineTask(SmallCNN(16), num_classes=K)
    cfg = TrainConfig(epochs=args.frame_epochs, batch_size=64, optimizer="sgd", lr=0.03, weight_decay=5e-4,
                      scheduler="cosine", flip=False, selection="last", device="cpu", threads=1, seed=seed)
    t0 = time.perf_counter()
    fit(task, FERDataset(frame_train, SIZE, train=True), cfg, tmp / f"frame_{seed}", resume=False)
    freeze(task)
    t_frame = time.perf_counter() - t0
    # 2. sequences and frozen per-frame outputs
    tr = make_sequences(imgs[b], labs[b], args.train_seqs, args.length, rng, args.noise, args.occlude)
    te = make_sequences(imgs[c], labs[c], args.test_seqs, args.length, rng, args.noise, args.occlude)
    tr_out = [frame_outputs(task, q) for q in tr]
    te_out = [frame_outputs(task, q) for q in te]
    y_tr = [q[0] for q in tr]
    y_te = np.concatenate([q[0] for q in te])

    def f1_of(preds: list[np.ndarray], truth: np.ndarray = y_te) -> float:
        return macro_f1(truth, np.concatenate(preds), K)

    # vote window chosen on the training sequences with the per-frame predictions
    windows = [1, 3, 5, 9, 15, 21]
    y_tr_all = np.concatenate(y_tr)
    f1_tr = {w: macro_f1(y_tr_all, np.concatenate([majority_vote(argmax_or_missing(p), w, n_classes=K,
                                                                 fill_missing=True) for _, p in tr_out]), K)
             for w in windows}
    w = max(f1_tr, key=f1_tr.get)
    res = {"seed": seed, "vote_window": w, "frame_model_seconds": t_frame}
    per_frame = [argmax_or_missing(p) for _, p in te_out]
    res["per_frame"] = f1_of(per_frame)
    res["per_frame_accuracy_faces"] = float(np.mean(np.concatenate(per_frame)[np.concatenate([q[2] for q in te])]
                                                   == y_te[np.concatenate([q[2] for q in te])]))
    res["per_frame+vote"] = f1_of([majority_vote(p, w, n_classes=K, fill_missing=True) for p in per_frame])
    res["per_frame+prob_smoothing"] = f1_of([argmax_or_missing(smooth_probabilities(p, w, method="mean"))
                                             for _, p in te_out])
    for name, causal in (("temporal", False), ("temporal_causal", True)):
        t0 = time.perf_counter()
        clf = TemporalClassifier(K, window=args.window, stride=args.window // 2, causal=causal, d_model=64,
                                 nhead=4, num_layers=2, dim_feedforward=128, dropout=0.1,
                                 epochs=args.temporal_epochs, batch_size=16, lr=1e-3, seed=seed)
        clf.fit([f for f, _ in tr_out], y_tr)
        pred = clf.predict([f for f, _ in te_out])
        res[f"{name}_seconds"] = time.perf_counter() - t0
        res[name] = f1_of(pred)
        res[f"{name}+vote"] = f1_of([majority_vote(p, w, n_classes=K) for p in pred])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--noise", type=float, default=70.0, help="pixel noise std (0..255)")
    ap.add_argument("--occlude", type=float, default=0.5, help="probability of an occluding block")
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--train-seqs", type=int, default=40)
    ap.add_argument("--test-seqs", type=int, default=20)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--frame-epochs", type=int, default=6)
    ap.add_argument("--temporal-epochs", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            r = one_seed(seed, args, Path(tmp))
            rows.append(r)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
    keys = ["per_frame", "per_frame+vote", "per_frame+prob_smoothing", "temporal", "temporal+vote",
            "temporal_causal", "temporal_causal+vote"]
    summary = {k: {"mean": float(np.mean([r[k] for r in rows])),
                   "std": float(np.std([r[k] for r in rows], ddof=1)) if len(rows) > 1 else 0.0} for k in keys}
    print(f"\nframe-level macro-F1 on test sequences, {args.seeds} seeds (mean ± std)")
    for k in keys:
        print(f"{k:26s} {summary[k]['mean']:.3f} ± {summary[k]['std']:.3f}")
    out = ROOT / "benchmarks" / "results" / "fer_temporal.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "rows": rows, "summary": summary}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
