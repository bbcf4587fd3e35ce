"""Semi-supervised benchmark on scikit-learn digits (real handwritten images).

A few labels per class, the rest of the training split unlabeled (labels never read).
Methods, same network, data, steps and seeds, all driven by the one training loop:

* ``supervised``      baseline task on the labeled images only (class-balanced sampler)
* ``ts_feedback``     teacher/student with the first-order debiased feedback, minus its
  moving average (the default, as google-research Meta Pseudo Labels)
* ``ts_feedback_raw`` the same feedback without the moving-average baseline
* ``ts_no_feedback``  the same without the feedback term (the ablation)

Every teacher/student run is then fine-tuned on the labeled images (``--finetune-epochs``,
Meta Pseudo Labels' last stage); the student is evaluated before (``accuracy``) and after
(``accuracy_finetuned``).
* ``ts_feedback_exact`` (optional, ``--methods``) the exact gradient dot product of eq. 6

The network is a 4-layer CNN on 16x16 upsampled digits (CPU budget). Model selection is
"last epoch" for every method (no validation set is carved out of a handful of labels, and
the test set is never used for selection). Prints a table and writes
``benchmarks/results/fer_semi.json``.

Usage: ``python benchmarks/bench_fer_semi.py [--seeds 3] [--per-class 5] [--epochs 10]``
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
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_backbone.config import TrainConfig  # noqa: E402
from fer_backbone.data import ClassBalancedSampler, FERDataset, digits_train_test  # noqa: E402
from fer_backbone.evaluate import evaluate  # noqa: E402
from fer_backbone.tasks.baseline import BaselineTask  # noqa: E402
from fer_backbone.tasks.semi_supervised import (  # noqa: E402
    SemiSupervisedDataset,
    SemiSupervisedTask,
    StudentFinetuneTask,
    strong_augment,
    weak_augment,
)
from fer_backbone.train import fit, make_loader  # noqa: E402

SIZE = 16
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class SmallCNN(nn.Module):
    """Four 3x3 conv layers with BatchNorm, global average pooling -> 64-d features."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()

        def block(i: int, o: int) -> list[nn.Module]:
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        self.net = nn.Sequential(*block(3, width), *block(width, width), nn.MaxPool2d(2),
                                 *block(width, 2 * width), nn.MaxPool2d(2), *block(2 * width, 2 * width),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = 2 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def split(per_class: int, seed: int):
    train, test = digits_train_test(0.3, seed=0)
    rng = np.random.default_rng(seed)
    lab = np.concatenate([rng.choice(np.flatnonzero(train.labels == c), per_class, replace=False)
                          for c in range(10)])
    unl = np.setdiff1d(np.arange(len(train)), lab)
    return train.subset(np.sort(lab)), train.subset(unl), test


def run(method: str, seed: int, per_class: int, epochs: int, steps: int, batch: int, out: Path,
        wait: int = 2, width: int = 16, threshold: float = 0.0, finetune_epochs: int = 3) -> dict:
    labeled, unlabeled, test = split(per_class, seed)
    torch.manual_seed(seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch, optimizer="sgd", lr=0.03, momentum=0.9,
                      weight_decay=5e-4, scheduler="cosine", flip=False, noise_std=0.05,
                      selection="last", device="cpu", threads=1, seed=seed, num_workers=0, deterministic=True)
    sampler = ClassBalancedSampler(labeled.labels, num_samples=steps * batch, seed=seed)
    from torchvision.transforms.v2 import functional as TF

    weak = weak_augment(flip=False, jitter=0.3, translate=0.125)
    # labeled images get the same weak augmentation as the unlabeled weak view
    lab_ds = FERDataset(labeled, SIZE, train=True,
                        transform=lambda im: weak(TF.resize(im, [SIZE, SIZE], antialias=True)))
    if method == "supervised":
        task = BaselineTask(SmallCNN(width), num_classes=10)
        data = lab_ds
    else:
        task = SemiSupervisedTask(SmallCNN(width), SmallCNN(width), num_classes=10, student_lr=0.03,
                                  student_momentum=0.9, student_weight_decay=5e-4,
                                  feedback={"ts_feedback": "first_order", "ts_feedback_raw": "first_order",
                                            "ts_feedback_exact": "exact"}.get(method, "none"),
                                  feedback_baseline="none" if method == "ts_feedback_raw" else "moving_average",
                                  pseudo_label_view="weak", student_wait_epochs=wait,
                                  consistency_rampup_epochs=wait, threshold=threshold)
        data = SemiSupervisedDataset(lab_ds, FERDataset(unlabeled, SIZE), SIZE, weak,
                                     strong_augment(weak, num_ops=2, magnitude=5, erase_p=0.25))
    t0 = time.perf_counter()
    res = fit(task, data, cfg, out / f"{method}_{seed}", sampler=sampler, resume=False)
    secs = time.perf_counter() - t0
    loader = make_loader(FERDataset(test, SIZE), 256)
    m = evaluate(task, loader, torch.device("cpu"), MEAN, STD)
    row = {"method": method, "seed": seed, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
           "seconds": secs}
    if method != "supervised":
        task.predict_with = "teacher"
        mt = evaluate(task, loader, torch.device("cpu"), MEAN, STD)
        row.update({"teacher_accuracy": mt["accuracy"], "teacher_macro_f1": mt["macro_f1"]})
        last = res.history[-1]
        row["pseudo_tv_uniform_last_epoch"] = last.get("pseudo_tv_uniform")
        row["feedback_mean_last_epoch"] = last.get("train_feedback")
        row["feedback_raw_mean_last_epoch"] = last.get("train_feedback_raw")
        task.predict_with = "student"
        if finetune_epochs > 0:  # Meta Pseudo Labels' last stage: the student on the labels alone
            ft_cfg = cfg.model_copy(update={"epochs": finetune_epochs, "lr": 0.01, "scheduler": "none",
                                            "weight_decay": 0.0})
            t1 = time.perf_counter()
            fit(StudentFinetuneTask(task), lab_ds, ft_cfg, out / f"{method}_{seed}_ft", resume=False,
                sampler=ClassBalancedSampler(labeled.labels, num_samples=10 * batch, seed=seed))
            mf = evaluate(task, loader, torch.device("cpu"), MEAN, STD)
            row.update({"accuracy_finetuned": mf["accuracy"], "macro_f1_finetuned": mf["macro_f1"],
                        "finetune_seconds": time.perf_counter() - t1})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=1, help="seed 0 was used for pilot runs")
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps-per-epoch", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--methods", default="supervised,ts_feedback,ts_feedback_raw,ts_no_feedback")
    ap.add_argument("--finetune-epochs", type=int, default=3, help="student fine-tuning (10 batches per epoch)")
    ap.add_argument("--wait", type=int, default=1, help="student wait / consistency ramp epochs")
    ap.add_argument("--threshold", type=float, default=0.0)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fer_semi.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in args.methods.split(","):
                r = run(method, seed, args.per_class, args.epochs, args.steps_per_epoch, args.batch, Path(tmp),
                        wait=args.wait, width=args.width, threshold=args.threshold,
                        finetune_epochs=args.finetune_epochs)
                rows.append(r)
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    summary = {}
    for method in args.methods.split(","):
        rs = [r for r in rows if r["method"] == method]
        s = {}
        for key in ("accuracy", "macro_f1", "accuracy_finetuned", "macro_f1_finetuned", "teacher_accuracy",
                    "teacher_macro_f1", "seconds"):
            vals = [r[key] for r in rs if key in r]
            if vals:
                s[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0}
        summary[method] = s
    print(f"\n{args.per_class} labels/class, {args.epochs * args.steps_per_epoch} steps x batch {args.batch}, "
          f"{args.seeds} seeds (test accuracy / macro-F1 of the deployed network, mean ± std)")
    for method, s in summary.items():
        line = f"{method:16s} acc {s['accuracy']['mean']:.3f} ± {s['accuracy']['std']:.3f}   " \
               f"F1 {s['macro_f1']['mean']:.3f} ± {s['macro_f1']['std']:.3f}"
        if "accuracy_finetuned" in s:
            line += f"   fine-tuned acc {s['accuracy_finetuned']['mean']:.3f} ± {s['accuracy_finetuned']['std']:.3f}"
        if "teacher_accuracy" in s:
            line += f"   (teacher acc {s['teacher_accuracy']['mean']:.3f} ± {s['teacher_accuracy']['std']:.3f})"
        print(line + f"   {s['seconds']['mean']:.0f} s/run")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import os

    load = os.getloadavg()
    out.write_text(json.dumps({"config": vars(args), "torch": torch.__version__, "loadavg_at_end": load,
                               "rows": rows, "summary": summary}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
