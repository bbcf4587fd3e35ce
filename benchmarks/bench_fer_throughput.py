"""Fair training-throughput comparison: the official SCN training loop vs ours, same data.

Both loops train the same network (SCN head on a ResNet-18, identical initial weights) for
the same epochs on the same fake RAF-DB folder of real-size JPEG files (``--image-px``,
100 px like RAF-DB's aligned images), each with its own data loading. Throughput is
measured in steady state: the first ``--warmup-epochs`` epochs (worker start-up, cuDNN
autotuning, page cache) are excluded. Also measured in the same process: the device's
ResNet-18 forward+backward+Adam peak on synthetic in-memory tensors (no data loading), the
ceiling both loops are compared against.

The reference loop reproduces ``src/train.py`` of kaiwang960112/Self-Cure-Network
setting by setting (written here, not copied; checked point by point):

==========================  ====================================================================
official ``src/train.py``   reference loop here
==========================  ====================================================================
``RafDataSet``              :class:`OfficialRafDataSet`: ``list_patition_label.txt`` read with
                            pandas (``sep=' '``, no header), ``train*`` rows, label - 1, path
                            ``Image/aligned/<stem>_aligned.jpg``
``cv2.imread`` + BGR->RGB   the same (the official code decodes with OpenCV, not PIL)
``basic_aug``               ``random.uniform(0, 1) > 0.5`` then ``random.randint(0, 1)`` picks
                            ``flip_image`` (``cv2.flip(img, 1)``) or ``add_gaussian_noise``
                            (``np.random.normal(0, 30 ** 0.5)``, clip, uint8), as
                            ``src/image_utils.py``
``data_transforms``         ``ToPILImage``, ``Resize((224, 224))`` (``--size``), ``ToTensor``,
                            ``Normalize`` (ImageNet), ``RandomErasing(scale=(0.02, 0.25))``
``DataLoader``              ``batch_size=64``, ``num_workers=4``, ``shuffle=True``,
                            ``pin_memory=True``; workers re-created every epoch
``Res18Feature``            ResNet-18 pooled features, ``alpha = sigmoid(Linear(512, 1))``,
                            ``out = alpha * fc(x)`` (our SCN task's modules, so both loops
                            start from identical weights; torchvision and timm ResNet-18 are
                            the same architecture)
rank regularisation         ``torch.topk`` high/low groups (``beta=0.7``), ``diff = low - high +
                            margin_1`` (0.15), ``if diff > 0`` (a host sync, as there)
loss / optimiser            ``CrossEntropyLoss(outputs, targets) + RR_loss``; ``Adam(params,
                            weight_decay=1e-4)`` (lr 1e-3: the official code passes no lr);
                            ``ExponentialLR(0.9)`` per epoch; fp32, NCHW
bookkeeping                 ``running_loss += loss``, ``correct_sum += correct_num`` (tensors)
relabelling                 from epoch 10 (inactive in both loops in a short run)
==========================  ====================================================================

Ours: :func:`fer_backbone.train.fit` with the SCN task on :func:`read_rafdb` +
:class:`FERDataset` (decode + resize in ``cores - 1`` persistent workers, uint8 to the
device, flip-or-noise / erasing batched on the device, AMP bf16 + channels_last +
``cudnn.benchmark`` on CUDA, no per-step host syncs).

    python benchmarks/bench_fer_throughput.py [--n 12000] [--size 224] [--epochs 2] [--device auto]

Writes ``benchmarks/results/fer_throughput_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CDRSCREEN_NO_PROGRESS", "1")

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fer_backbone.config import TrainConfig
from fer_backbone.data import FERDataset, load_digits_samples, read_rafdb
from fer_backbone.tasks import build_task
from fer_backbone.train import fit, resolve_device

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def make_fake_rafdb(root: Path, n: int, px: int = 100, seed: int = 0) -> Path:
    """A RAF-DB basic folder of ``n`` training JPEGs (``px`` x ``px``, colour, real digits upscaled)."""
    from PIL import Image

    lab = root / "EmoLabel" / "list_patition_label.txt"
    if lab.exists() and len(lab.read_text().splitlines()) == n:
        return root
    (root / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
    lab.parent.mkdir(parents=True, exist_ok=True)
    s = load_digits_samples()
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        j = int(rng.integers(len(s)))
        g = np.asarray(Image.fromarray(s.images[j]).resize((px, px), Image.BILINEAR), dtype=np.float32)
        tint = rng.uniform(0.4, 1.0, size=3)
        rgb = np.clip(g[:, :, None] * tint + rng.normal(0, 8, (px, px, 3)), 0, 255).astype(np.uint8)
        name = f"train_{i + 1:05d}"
        Image.fromarray(rgb).save(root / "Image" / "aligned" / f"{name}_aligned.jpg", quality=90)
        lines.append(f"{name}.jpg {int(s.labels[j]) % 7 + 1}")
    lab.write_text("\n".join(lines) + "\n")
    return root


class OfficialRafDataSet(Dataset):
    """``RafDataSet`` of the official SCN ``src/train.py`` (train phase, ``basic_aug=True``)."""

    def __init__(self, raf_path: Path, size: int) -> None:
        import pandas as pd
        from torchvision import transforms

        df = pd.read_csv(raf_path / "EmoLabel" / "list_patition_label.txt", sep=" ", header=None)
        d = df[df[0].str.startswith("train")]
        self.label = d.iloc[:, 1].values - 1
        self.file_paths = [str(raf_path / "Image" / "aligned" / (f.split(".")[0] + "_aligned.jpg"))
                           for f in d.iloc[:, 0].values]
        self.transform = transforms.Compose([
            transforms.ToPILImage(), transforms.Resize((size, size)), transforms.ToTensor(),
            transforms.Normalize(mean=MEAN, std=STD), transforms.RandomErasing(scale=(0.02, 0.25))])

    def __len__(self) -> int:
        return len(self.file_paths)

    def __getitem__(self, idx: int):
        import cv2

        image = cv2.imread(self.file_paths[idx])[:, :, ::-1]  # BGR -> RGB
        if random.uniform(0, 1) > 0.5:  # noqa: S311 - as the official code
            if random.randint(0, 1) == 0:  # noqa: S311
                image = cv2.flip(image, 1)
            else:
                noisy = image + np.random.normal(0.0, 30**0.5, image.shape)  # noqa: NPY002
                image = np.clip(noisy, 0, 255).astype(np.uint8)
        return self.transform(image), self.label[idx], idx


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class CpuMeter:
    """CPU seconds of this process and its children (loader workers) over a window."""

    def __init__(self) -> None:
        import psutil

        self.p = psutil.Process()

    def _now(self) -> float:
        total = sum(self.p.cpu_times()[:2])
        for c in self.p.children(recursive=True):
            try:
                total += sum(c.cpu_times()[:2])
            except Exception:  # noqa: BLE001 - a worker that just exited
                pass
        return total

    def start(self) -> None:
        self.t_cpu, self.t_wall = self._now(), time.perf_counter()

    def cores(self) -> float:
        return (self._now() - self.t_cpu) / max(time.perf_counter() - self.t_wall, 1e-9)


def reference_loop(task, root: Path, size: int, epochs: int, warmup: int, batch: int, workers: int,
                   device: torch.device, max_steps: int | None) -> dict:
    """The official SCN training loop (see the module docstring); steady-state images/s."""
    ds = OfficialRafDataSet(root, size)
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=True, pin_memory=True)
    net = task.to(device)
    optimizer = torch.optim.Adam(net.parameters(), weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    margin_1, beta = 0.15, 0.7
    meter, n_img, secs, cores = CpuMeter(), 0, 0.0, []
    for epoch in range(epochs):
        net.train()
        running_loss, correct_sum = 0.0, 0
        _sync(device)
        meter.start()
        t0 = time.perf_counter()
        seen = 0
        for step, (imgs, targets, _) in enumerate(loader):
            if max_steps is not None and step >= max_steps:
                break
            batch_sz = imgs.size(0)
            tops = int(batch_sz * beta)
            optimizer.zero_grad()
            imgs = imgs.to(device)
            feats = net.backbone(imgs)
            attention_weights = net.importance(feats)
            outputs = attention_weights * net.fc(feats)
            _, top_idx = torch.topk(attention_weights.squeeze(), tops)
            _, down_idx = torch.topk(attention_weights.squeeze(), batch_sz - tops, largest=False)
            high_mean = torch.mean(attention_weights[top_idx])
            low_mean = torch.mean(attention_weights[down_idx])
            diff = low_mean - high_mean + margin_1
            rr_loss = diff if diff > 0 else 0.0
            targets = targets.to(device)
            loss = criterion(outputs, targets) + rr_loss
            loss.backward()
            optimizer.step()
            running_loss += loss
            correct_sum += torch.eq(torch.max(outputs, 1)[1], targets).sum()
            seen += batch_sz
        _sync(device)
        dt = time.perf_counter() - t0
        scheduler.step()
        if epoch >= warmup:
            n_img, secs = n_img + seen, secs + dt
            cores.append(meter.cores())
    return {"images_per_s": n_img / secs, "cpu_cores_busy": float(np.mean(cores)), "workers": workers,
            "measured_images": n_img, "measured_seconds": secs}


def ours(task, root: Path, size: int, epochs: int, warmup: int, batch: int, device: torch.device,
         max_steps: int | None, workers: int | None, threads: int) -> dict:
    """Our loop (fit) on the same folder; steady-state images/s from the per-epoch timings."""
    train = read_rafdb(root, "train")
    kw = {} if workers is None else {"num_workers": workers}
    cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=1e-3, weight_decay=1e-4, scheduler="exponential",
                      gamma=0.9, noise_std=0.0215, erase_p=0.5, selection="last", device=str(device),
                      threads=threads, max_steps_per_epoch=max_steps, **kw)
    meter = CpuMeter()
    with tempfile.TemporaryDirectory() as tmp:
        meter.start()
        res = fit(task, FERDataset(train, size, train=True), cfg, tmp, resume=False)
        cores_all = meter.cores()
    steps = min(len(train) // batch, max_steps or 10**9)
    rows = res.history[warmup:]
    secs = sum(r["train_seconds"] for r in rows)
    return {"images_per_s": steps * batch * len(rows) / secs, "cpu_cores_busy_whole_run": cores_all,
            "workers": cfg.num_workers, "amp": device.type == "cuda", "channels_last": device.type == "cuda",
            "cudnn_benchmark": not cfg.deterministic, "measured_images": steps * batch * len(rows),
            "measured_seconds": secs}


def synthetic_peak(task, size: int, batch: int, device: torch.device, steps: int, amp: bool) -> dict:
    """Forward+backward+Adam of the same network on in-memory tensors: the device's ceiling."""
    net = task.to(device).train()
    cl = device.type == "cuda"
    if cl:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, size, size, device=device)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,), device=device)
    dt = torch.bfloat16 if device.type == "cuda" else torch.float32

    def step() -> None:
        with torch.autocast(device.type, dtype=dt, enabled=amp):
            loss = F.cross_entropy(net.fc(net.backbone(x)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return {"images_per_s": steps * batch / (time.perf_counter() - t0), "amp": amp, "channels_last": cl,
            "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12000, help="training JPEGs in the fake RAF-DB folder")
    ap.add_argument("--image-px", type=int, default=100, help="side of the JPEG files (RAF-DB aligned: 100)")
    ap.add_argument("--size", type=int, default=224, help="network input side")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--warmup-epochs", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=None, help="cap steps per epoch (CPU runs)")
    ap.add_argument("--ref-workers", type=int, default=4, help="the official code's num_workers")
    ap.add_argument("--our-workers", type=int, default=None, help="default: TrainConfig's (cores - 1)")
    ap.add_argument("--peak-steps", type=int, default=20)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data", type=Path, default=None, help="folder for the fake RAF-DB (kept for reruns)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_fake_rafdb(args.data or Path(tmp) / "raf", args.n, args.image_px)
        torch.manual_seed(0)
        task = build_task("scn", backbone={"name": args.backbone}, num_classes=7, num_train=args.n,
                          margin_1=0.15)
        init = {k: v.clone() for k, v in task.state_dict().items()}
        peak_fp32 = synthetic_peak(task, args.size, args.batch, device, args.peak_steps, amp=False)
        peak_amp = synthetic_peak(task, args.size, args.batch, device, args.peak_steps, amp=True) \
            if device.type == "cuda" else None
        task.load_state_dict(init)
        ref = reference_loop(task, root, args.size, args.epochs, args.warmup_epochs, args.batch,
                             args.ref_workers, device, args.max_steps)
        task = build_task("scn", backbone={"name": args.backbone}, num_classes=7, num_train=args.n, margin_1=0.15)
        task.load_state_dict(init)
        our = ours(task, root, args.size, args.epochs, args.warmup_epochs, args.batch, device, args.max_steps,
                   args.our_workers, threads)
    peak = peak_amp or peak_fp32
    out = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "cpu_cores_available": len(os.sched_getaffinity(0)), "torch_threads": threads,
        "loadavg_at_end": os.getloadavg(), "torch": torch.__version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "synthetic_peak_fp32": peak_fp32, "synthetic_peak_amp": peak_amp,
        "reference_official_scn": ref, "ours": our,
        "speedup_vs_reference": our["images_per_s"] / ref["images_per_s"],
        "ours_fraction_of_peak": our["images_per_s"] / peak["images_per_s"],
        "reference_fraction_of_peak": ref["images_per_s"] / peak["images_per_s"],
        "targets_gpu": {"speedup_vs_reference": 3.0, "fraction_of_peak": 0.7},
    }
    path = args.out or Path(__file__).parent / "results" / f"fer_throughput_{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
