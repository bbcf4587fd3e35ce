"""The one training loop for every FER task.

:func:`fit` drives any :class:`~fer_backbone.tasks.base.Task` (see its module docstring
for the step protocol): AMP on GPU (bf16, or fp16 with a grad scaler), channels_last,
optional ``torch.compile``, batch augmentation on the device, a checkpoint after every
epoch (atomic; a run killed at any point resumes from the last finished epoch and, on
CPU with ``deterministic=True``, reproduces the uninterrupted run), a progress bar with
the loss components, and one ``metrics.csv`` row per epoch.

Model selection uses a validation split of the training data (``selection="val"``); the
test set, if given, is evaluated once at the end with the selected weights.
``selection="test"`` reproduces the original SCN code's practice of picking the epoch by
test accuracy (optimistic; kept only for comparison), ``"last"`` keeps the final epoch.

Launched by ``torchrun`` (``WORLD_SIZE > 1``) the same loop trains data-parallel (DDP):
``batch_size`` stays the global batch, each process takes its slice of every batch, and
only rank 0 evaluates and writes the run folder (:mod:`fer_backbone.distributed`).

Output folder::

    checkpoints/last.pt   full state (task, optimizer, scheduler, scaler, RNG, epoch)
    checkpoints/best.pt   selected task weights + metadata (input of export/evaluate)
    metrics.csv           one row per epoch
    summary.json          selected epoch, validation and test metrics, timing
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cdrscreen.core.errors import ConfigError
from cdrscreen.core.io import write_json
from fer_backbone.augment import BatchAugment, prepare_batch
from fer_backbone.config import IMAGENET_MEAN, IMAGENET_STD, TrainConfig
from fer_backbone.evaluate import evaluate
from fer_backbone.tasks.base import Task


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns (also written to ``summary.json``)."""

    out_dir: Path
    best_epoch: int
    val_metrics: dict[str, Any] | None
    test_metrics: dict[str, Any] | None
    history: list[dict[str, Any]]
    images_per_second: float


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; make CPU (and cuDNN) kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - legacy global state used by libraries
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = True


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` if available else ``cpu``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype_for(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Return the autocast dtype, or None for full precision (``auto``: on for CUDA only)."""
    on = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    if not on:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def _optimizer(task: Task, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = task.optimizer_parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.min_lr)
    return None


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict[str, Any]:
    st = {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
          "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def make_loader(dataset: Dataset, batch_size: int, *, sampler: Sampler | None = None,
                num_workers: int = 0, seed: int = 0, drop_last: bool = False,
                persistent: bool = False, prefetch_factor: int = 2) -> DataLoader:
    """Build a DataLoader with seeded workers (``pin_memory`` on CUDA).

    ``persistent`` keeps the worker processes alive between epochs (the training loop's
    loaders); ``prefetch_factor`` batches are loaded ahead by each worker.
    """
    g = torch.Generator().manual_seed(seed)
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"persistent_workers": persistent, "prefetch_factor": prefetch_factor}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
                      num_workers=num_workers, drop_last=drop_last, generator=g,
                      pin_memory=torch.cuda.is_available(), **extra)


def _progress(loader: DataLoader, desc: str, total: int) -> Any:
    from cdrscreen.core.progress import progress_enabled

    if not progress_enabled():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def fit(task: Task, train_data: Dataset, cfg: TrainConfig, out_dir: str | Path, *,
        val_data: Dataset | None = None, test_data: Dataset | None = None,
        sampler: Sampler | None = None, resume: bool = True, class_names: list[str] | None = None,
        mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
        metadata: dict[str, Any] | None = None) -> FitResult:
    """Train ``task`` with the one loop (one process, or every process of a torchrun launch).

    Parameters
    ----------
    task : Task
    train_data : Dataset
        Yields dicts (see :mod:`fer_backbone.tasks.base`); ``index`` must be the position in
        this data set for tasks with per-sample state.
    cfg : TrainConfig
    out_dir : path
        Run folder (checkpoints, ``metrics.csv``, ``summary.json``); written by rank 0 only.
    val_data, test_data : Dataset, optional
        Validation (model selection) and test (evaluated once, at the end) sets.
    sampler : Sampler, optional
        Training order; default :class:`~fer_backbone.data.EpochRandomSampler`. If it has
        ``set_epoch`` it is called every epoch (resumable order).
    resume : bool
        Continue from ``checkpoints/last.pt`` if present.
    class_names : list of str, optional
        Stored in ``best.pt`` for export.
    mean, std : tuple of float
        Normalisation applied on the device (stored for export).
    metadata : dict, optional
        Extra JSON-able facts stored in ``best.pt`` (e.g. the protocol, the backbone spec).

    Returns
    -------
    FitResult
        The same on every rank (rank 0's metrics and selected epoch).
    """
    from fer_backbone import distributed as dist

    dist.preflight(task, cfg.batch_size, cfg.device, cfg.sync_batchnorm)
    prev_threads = torch.get_num_threads()
    ctx = dist.setup(cfg.device)
    try:
        return _fit(ctx, task, train_data, cfg, Path(out_dir), val_data=val_data, test_data=test_data,
                    sampler=sampler, resume=resume, class_names=class_names, mean=mean, std=std,
                    metadata=metadata)
    finally:
        ctx.close()
        torch.set_num_threads(prev_threads)


def _fit(ctx: Any, task: Task, train_data: Dataset, cfg: TrainConfig, out_dir: Path, *,
         val_data: Dataset | None, test_data: Dataset | None, sampler: Sampler | None, resume: bool,
         class_names: list[str] | None, mean: tuple[float, ...], std: tuple[float, ...],
         metadata: dict[str, Any] | None) -> FitResult:
    from fer_backbone import distributed as dist
    from fer_backbone.data.sampler import EpochRandomSampler, SeededSampler

    main = ctx.is_main  # rank 0 (or the only process): evaluates, writes files, shows progress
    ckpt_dir = out_dir / "checkpoints"
    if main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_dir.glob(".*.tmp"):  # a save interrupted by kill -9
            stale.unlink()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed, cfg.deterministic)
    device = ctx.device
    amp_dtype = amp_dtype_for(cfg, device)
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")
    if cfg.selection == "val" and val_data is None:
        raise ValueError("selection='val' needs val_data")
    if cfg.selection == "test" and test_data is None:
        raise ValueError("selection='test' needs test_data")

    task.to(device)
    if channels_last:
        task.to(memory_format=torch.channels_last)
    model = dist.wrap(task, ctx, cfg.sync_batchnorm)  # the task itself, or the task in DDP
    opt = _optimizer(task, cfg)
    sched = _scheduler(opt, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    step_fn = torch.compile(model) if cfg.compile else model
    augment = BatchAugment(flip=cfg.flip, noise_std=cfg.noise_std, erase_p=cfg.erase_p,
                           flip_noise=cfg.flip_noise)
    sampler = sampler or EpochRandomSampler(len(train_data), seed=cfg.seed)
    if getattr(train_data, "accepts_seeded_index", False):  # per-item seeds: exact with any workers
        sampler = SeededSampler(sampler, seed=cfg.seed)
    local_bs = dist.local_batch_size(cfg.batch_size, ctx.world_size)
    shard = None
    if ctx.enabled:  # rank r takes its slice of every single-process (global) batch
        sampler = dist.ShardSampler(sampler, cfg.batch_size, ctx.rank, ctx.world_size)
        if len(sampler) == 0:
            raise ConfigError(f"the training sampler yields {len(sampler.base)} samples per epoch, fewer than "
                              f"one global batch (train.batch_size={cfg.batch_size})")
        shard = (ctx.rank * local_bs, cfg.batch_size)
    loader = make_loader(train_data, local_bs, sampler=sampler, num_workers=cfg.num_workers,
                         seed=cfg.seed + ctx.rank,
                         drop_last=not ctx.enabled and len(train_data) > cfg.batch_size,
                         persistent=True, prefetch_factor=cfg.prefetch_factor)
    ebs = cfg.eval_batch_size or cfg.batch_size
    eval_loaders: dict[int, DataLoader] = {}  # built once, workers kept (validation every epoch)

    def ev(ds: Dataset) -> dict[str, Any]:
        if id(ds) not in eval_loaders:
            eval_loaders[id(ds)] = make_loader(ds, ebs, num_workers=cfg.num_workers, persistent=True,
                                               prefetch_factor=cfg.prefetch_factor)
        return evaluate(task, eval_loaders[id(ds)], device, mean, std, channels_last, amp_dtype)

    start_epoch, best_score, best_epoch, history = 0, -math.inf, -1, []
    last = ckpt_dir / "last.pt"
    st = torch.load(last, map_location="cpu", weights_only=False) if main and resume and last.exists() else None
    st = ctx.broadcast(st)  # every rank resumes from rank 0's last.pt
    if st is not None:
        task.load_state_dict(st["task"])
        task.load_extra_state(st.get("task_extra", {}))
        opt.load_state_dict(st["optimizer"])
        if sched is not None and st.get("scheduler") is not None:
            sched.load_state_dict(st["scheduler"])
        scaler.load_state_dict(st["scaler"])
        _set_rng_state(st["rng"])
        if st.get("loader_rng") is not None:
            loader.generator.set_state(st["loader_rng"])
        start_epoch, best_score, best_epoch = st["epoch"] + 1, st["best_score"], st["best_epoch"]
        history = st["history"]
    del st

    steps_per_epoch = len(loader) if cfg.max_steps_per_epoch is None else min(len(loader), cfg.max_steps_per_epoch)
    task.set_steps_per_epoch(steps_per_epoch)
    csv_path = out_dir / "metrics.csv"
    if main:
        _rewrite_csv(csv_path, history)
    seen_images, train_time = 0, 0.0
    for epoch in range(start_epoch, cfg.epochs):
        task.train()
        task.on_epoch_start(epoch, cfg.epochs)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        torch.manual_seed(cfg.seed * 1000 + epoch + 1_000_003 * ctx.rank)  # loader crops, dropout
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + epoch)  # batch augmentation
        sums: dict[str, torch.Tensor] = {}  # on the device: read every log_every steps only
        bad = torch.zeros((), dtype=torch.bool, device=device)
        n_steps = steps_per_epoch
        bar = _progress(loader, f"epoch {epoch + 1}/{cfg.epochs}", n_steps) if main else None
        t0 = time.perf_counter()
        checked = 0
        for step, raw in enumerate(loader):
            if step >= n_steps:
                break
            batch = prepare_batch(raw, device, mean, std, augment=augment,
                                  augment_keys=tuple(cfg.augment_keys), channels_last=channels_last,
                                  generator=gen, shard=shard)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                out = step_fn(batch)
            loss = out["loss"]
            bad |= ~torch.isfinite(loss.detach())  # no host sync; read every log_every steps
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            task.after_optimizer_step(*dist.gather_batch(batch, out, task.after_step_keys, ctx))
            seen_images += int(next(iter(raw.values())).shape[0])
            for k, v in out.items():
                if isinstance(v, torch.Tensor) and v.ndim == 0:
                    v = v.detach().float()
                    sums[k] = sums[k] + v if k in sums else v.clone()
            if (step + 1) % cfg.log_every == 0 or step + 1 == n_steps:
                _check_finite(bad, epoch, checked, step)
                checked = step + 1
                if bar is not None:
                    bar.update(step + 1 - bar.n)
                    bar.set_postfix({k: f"{float(v) / (step + 1):.4f}" for k, v in sums.items()})
        _check_finite(bad, epoch, checked, n_steps - 1)
        sums = {k: float(v) for k, v in sums.items()}
        if bar is not None:
            bar.close()
        dt = time.perf_counter() - t0
        train_time += dt
        sums = ctx.mean(sums)  # logged losses: mean over ranks
        dist.sync_buffers(task, task.per_sample_buffers, ctx)  # average BN/anchor stats; check tables
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"]}
        row.update({f"train_{k}": v / max(n_steps, 1) for k, v in sums.items()})
        row.update(task.epoch_metrics())
        row["train_seconds"] = round(dt, 3)
        if sched is not None:
            sched.step()
        score = _evaluate_epoch(row, cfg, epoch, ev, val_data, test_data) if main else None
        row, score = ctx.broadcast((row, score))  # every rank agrees on the selected epoch
        history.append(row)
        if score is not None and score > best_score:
            best_score, best_epoch = score, epoch + 1
            if main:
                _atomic_save({"task": task.state_dict(), "epoch": epoch + 1, "class_names": class_names,
                              "mean": tuple(mean), "std": tuple(std), "metadata": metadata or {}},
                             ckpt_dir / "best.pt")
        if main:
            _rewrite_csv(csv_path, history)
            _atomic_save({
                "task": task.state_dict(), "task_extra": task.extra_state(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None, "scaler": scaler.state_dict(),
                "rng": _rng_state(), "loader_rng": loader.generator.get_state(),
                "sampler": sampler.state_dict() if hasattr(sampler, "state_dict") else None, "epoch": epoch, "best_score": best_score, "best_epoch": best_epoch,
                "history": history,
            }, last)

    best = torch.load(ckpt_dir / "best.pt", map_location="cpu", weights_only=False)["task"] if main else None
    task.load_state_dict(ctx.broadcast(best))
    val_metrics = ev(val_data) if main and val_data is not None else None
    test_metrics = ev(test_data) if main and test_data is not None else None
    val_metrics, test_metrics = ctx.broadcast((val_metrics, test_metrics))
    ips = seen_images * ctx.world_size / train_time if train_time > 0 else float("nan")
    summary = {"best_epoch": best_epoch, "selection": cfg.selection, "select_metric": cfg.select_metric,
               "val": val_metrics, "test": test_metrics, "epochs": cfg.epochs,
               "train_images_per_second_this_session": ips, "device": str(device),
               "amp": str(amp_dtype) if amp_dtype else None, "channels_last": channels_last,
               "world_size": ctx.world_size}
    if main:
        write_json(out_dir / "summary.json", summary)
    return FitResult(out_dir, best_epoch, val_metrics, test_metrics, history, ips)


def _check_finite(bad: torch.Tensor, epoch: int, first: int, last: int) -> None:
    """Raise if a loss since step ``first`` was not finite (one host read per call)."""
    if bool(bad):
        where = f"step {last + 1}" if first >= last else f"steps {first + 1}-{last + 1}"
        raise FloatingPointError(f"non-finite loss at epoch {epoch + 1}, {where}")


def _evaluate_epoch(row: dict[str, Any], cfg: TrainConfig, epoch: int, ev: Any, val_data: Dataset | None,
                    test_data: Dataset | None) -> float | None:
    """Add validation (and, for ``selection="test"``, test) metrics to ``row``; return the selection score."""
    score = None
    if val_data is not None:
        vm = ev(val_data)
        row.update({f"val_{k}": vm[k] for k in ("accuracy", "mean_class_accuracy", "macro_f1")})
        if cfg.selection == "val":
            score = vm[cfg.select_metric]
    if cfg.selection == "test":
        tm = ev(test_data)
        row.update({f"test_{k}": tm[k] for k in ("accuracy", "mean_class_accuracy", "macro_f1")})
        score = tm[cfg.select_metric]
    if cfg.selection == "last":
        score = float(epoch)
    return score


def _rewrite_csv(path: Path, history: list[dict[str, Any]]) -> None:
    if not history:
        if path.exists():
            path.unlink()
        return
    cols: list[str] = []
    for r in history:
        cols += [k for k in r if k not in cols]
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


def history_to_json(history: list[dict[str, Any]]) -> str:
    """Format the per-epoch history as JSON text."""
    return json.dumps(history, indent=1)
