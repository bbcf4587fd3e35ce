"""Training throughput: our loop vs a plain loop written the way the original SCN code trains.

Same model (SCN on a timm ResNet-18: importance head, weighted logits, rank
regularisation), same images (scikit-learn digits resized to ``--size``), same batch size,
same device, one epoch each (first batches included in both).

* reference: per-sample PIL/torchvision transforms in the Dataset (ToPILImage, Resize,
  random flip / Gaussian noise on numpy, ToTensor, Normalize, RandomErasing), shuffled
  DataLoader, fp32, contiguous NCHW, a ``.item()`` sync per batch for the running loss
  and accuracy (as the original train loop does).
* ours: :func:`fer_backbone.train.fit` with the SCN task: images resized once and kept
  uint8, flip/noise/erasing batch-wise on the device, AMP + channels_last on CUDA.

    python benchmarks/bench_fer_throughput.py [--size 64] [--n 640] [--device auto]

Writes benchmarks/results/fer_throughput_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CDRSCREEN_NO_PROGRESS", "1")

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fer_backbone.config import TrainConfig
from fer_backbone.data import FERDataset, load_digits_samples
from fer_backbone.tasks import build_task
from fer_backbone.tasks.scn import rank_regularization
from fer_backbone.train import fit, resolve_device

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class RefDataset(Dataset):
    """The original code's dataset style: numpy augmentation + torchvision per-sample transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.tf = transforms.Compose([
            transforms.ToPILImage(), transforms.Resize((size, size)), transforms.ToTensor(),
            transforms.Normalize(MEAN, STD), transforms.RandomErasing(scale=(0.02, 0.25)),
        ])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = np.repeat(self.images[i][:, :, None], 3, axis=2)
        if np.random.rand() > 0.5:  # noqa: NPY002 - as in the original
            img = img[:, ::-1].copy() if np.random.rand() > 0.5 else np.clip(  # noqa: NPY002
                img + np.random.normal(0, 30**0.5, img.shape), 0, 255).astype(np.uint8)  # noqa: NPY002
        return self.tf(img), int(self.labels[i]), i


def reference_loop(task, ds, batch_size: int, device: torch.device, lr: float) -> float:
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0, pin_memory=device.type == "cuda")
    opt = torch.optim.Adam(task.parameters(), lr=lr, weight_decay=1e-4)
    task.to(device).train()
    running_loss, correct_sum, n, t0 = 0.0, 0, 0, time.perf_counter()
    for imgs, targets, _ in loader:
        imgs, targets = imgs.to(device), targets.to(device)
        opt.zero_grad()
        x = task.backbone(imgs)
        alpha = task.importance(x)
        outputs = alpha * task.fc(x)
        rr, _, _ = rank_regularization(alpha, 0.7, 0.07)
        loss = F.cross_entropy(outputs, targets) + rr
        loss.backward()
        opt.step()
        running_loss += loss.item()
        correct_sum += int(torch.eq(outputs.argmax(1), targets).sum())
        n += len(targets)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n", type=int, default=640)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    s = load_digits_samples()
    s = s.subset(np.arange(args.n) % len(s))
    torch.manual_seed(0)
    ref_task = build_task("scn", backbone={"name": args.backbone}, num_classes=10, num_train=len(s))
    init = {k: v.clone() for k, v in ref_task.state_dict().items()}
    ref_ips = reference_loop(ref_task, RefDataset(s.images, s.labels, args.size), args.batch, device, 1e-3)

    ours = build_task("scn", backbone={"name": args.backbone}, num_classes=10, num_train=len(s))
    ours.load_state_dict(init)
    cfg = TrainConfig(epochs=1, batch_size=args.batch, lr=1e-3, scheduler="none", selection="last",
                      noise_std=0.0215, erase_p=0.5, device=str(device), threads=args.threads,
                      deterministic=False)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = fit(ours, FERDataset(s, args.size, train=True), cfg, tmp, resume=False)
        wall = time.perf_counter() - t0
    out = {"device": str(device), "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
           "threads": args.threads, "backbone": args.backbone, "size": args.size, "images": args.n,
           "batch": args.batch, "reference_images_per_s": ref_ips, "ours_images_per_s": res.images_per_second,
           "ours_wall_incl_checkpoint_s": wall, "speedup": res.images_per_second / ref_ips,
           "ours_amp": device.type == "cuda", "ours_channels_last": device.type == "cuda"}
    path = args.out or Path(__file__).parent / "results" / f"fer_throughput_{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
