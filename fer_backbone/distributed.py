"""Multi-process data-parallel training (PyTorch DDP) for :func:`fer_backbone.train.fit`.

``torchrun --nproc_per_node N -m fer_backbone train RECIPE --out RUN`` starts ``N``
processes; each finds its place from the environment torchrun sets (``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``) and :func:`setup` joins the process group (NCCL on CUDA, one
GPU per process chosen by ``LOCAL_RANK``; gloo on CPU). Without those variables (or with
``WORLD_SIZE=1``) everything here is a no-op and training is the single-process loop.

What keeps an ``N``-process run the same optimisation as one process (see
``docs/fer-distributed.md``):

* ``train.batch_size`` is the **global** batch; each process takes ``batch_size / N``
  (:func:`local_batch_size`).
* :class:`ShardSampler` cuts every global batch of the single-process order into ``N``
  consecutive slices, so the ``N`` processes together see exactly the single-process
  batches.
* Gradients are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`; batch
  augmentation draws the random numbers of the whole global batch and keeps the process's
  slice (:func:`fer_backbone.augment.prepare_batch`, ``shard=``).
* A task's per-sample state (SCN relabels, SLM label logits; ``Task.per_sample_buffers``)
  is updated from the gathered global batch on every process (:func:`gather_batch`), so
  these tables stay identical everywhere. Other floating-point buffers (BatchNorm running
  statistics, the AEA running mean) are averaged over processes at the end of every epoch
  (:func:`sync_buffers`, which also checks that the per-sample tables agree).
* Only rank 0 evaluates, writes files and shows progress; results reach the other ranks by
  :meth:`DistContext.broadcast`.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Sampler

from cdrscreen.core.errors import ConfigError


def env_world_size() -> int:
    """Return the number of processes announced by the launcher (``WORLD_SIZE``; 1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def env_rank() -> int:
    """Return this process's global rank (``RANK``; 0 without a launcher)."""
    return int(os.environ.get("RANK", "0") or 0)


def is_main_process() -> bool:
    """Whether this process writes files and logs (rank 0, or no launcher)."""
    return env_rank() == 0


def local_batch_size(global_batch: int, world_size: int) -> int:
    """Per-process batch for a global batch split over ``world_size`` processes.

    Raises
    ------
    ConfigError
        If ``global_batch`` is not a multiple of ``world_size``.

    Examples
    --------
    >>> local_batch_size(64, 4)
    16
    """
    if global_batch % world_size:
        raise ConfigError(f"train.batch_size={global_batch} is the global batch and must be divisible "
                          f"by the number of processes ({world_size})")
    return global_batch // world_size


@dataclasses.dataclass
class DistContext:
    """Where this process stands in a (possibly one-process) run.

    Attributes
    ----------
    world_size, rank, local_rank : int
    device : torch.device
        The device this process trains on (``cuda:LOCAL_RANK`` under torchrun on GPUs).
    owns_group : bool
        Whether :func:`setup` created the process group (and :meth:`close` destroys it).
    """

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that evaluates, writes files and shows progress."""
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Return rank 0's ``obj`` on every rank (pickled; identity with one process)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0, device=self._comm_device())
        return box[0]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average a dict of numbers over ranks (same keys on every rank)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self._comm_device())
        torch.distributed.all_reduce(t)
        avg = {k: float(v) / self.world_size for k, v in zip(keys, t.tolist(), strict=True)}
        return {k: avg[k] for k in values}

    def barrier(self) -> None:
        """Wait for every rank (no-op with one process)."""
        if self.enabled:
            torch.distributed.barrier()

    def close(self) -> None:
        """Destroy the process group if :func:`setup` created it."""
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.owns_group = False

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def setup(device_name: str = "auto", timeout_minutes: float = 30.0) -> DistContext:
    """Join the process group announced by the environment; pick this process's device.

    Parameters
    ----------
    device_name : str
        ``TrainConfig.device``: ``auto`` (CUDA if available), ``cuda``, ``cpu``, ...
        Under a multi-process launch on CUDA each process uses ``cuda:LOCAL_RANK``.
    timeout_minutes : float
        Collective timeout (rank 0 evaluates while the others wait).

    Returns
    -------
    DistContext
    """
    from fer_backbone.train import resolve_device

    device = resolve_device(device_name)
    world = env_world_size()
    if world <= 1:
        return DistContext(device=device)
    rank, local_rank = env_rank(), int(os.environ.get("LOCAL_RANK", "0") or 0)
    if device.type == "cuda":
        if device.index is None:
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA "
                                  "device(s) are visible: start at most one process per GPU")
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = False
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
        owns = True
    if torch.distributed.get_world_size() != world:
        raise ConfigError(f"WORLD_SIZE={world} but the process group has {torch.distributed.get_world_size()} ranks")
    return DistContext(world, rank, local_rank, device, owns)


class ShardSampler(Sampler[int]):
    """Yield this rank's slice of every global batch of a single-process sampler.

    The wrapped sampler's order (e.g. :class:`~fer_backbone.data.EpochRandomSampler`,
    seeded by seed and epoch, hence identical on every rank) is cut into global batches of
    ``global_batch`` indices; an incomplete last batch is dropped, as the single-process
    loop does whenever the data set holds more than one batch. Rank ``r`` yields positions
    ``[r * b, (r + 1) * b)`` of each global batch, ``b = global_batch / world_size``; read in
    rank order, the ranks' local batches concatenate to the single-process batch.

    Parameters
    ----------
    base : Sampler
        Single-process order; ``set_epoch`` is forwarded to it.
    global_batch : int
    rank, world_size : int

    Examples
    --------
    >>> r0 = list(ShardSampler(range(10), 4, 0, 2))
    >>> r1 = list(ShardSampler(range(10), 4, 1, 2))
    >>> r0, r1
    ([0, 1, 4, 5], [2, 3, 6, 7])
    """

    def __init__(self, base: Sampler[int] | Sequence[int], global_batch: int, rank: int, world_size: int) -> None:
        self.base = base
        self.global_batch = int(global_batch)
        self.local = local_batch_size(self.global_batch, world_size)
        self.rank = int(rank)
        self.world_size = int(world_size)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler."""
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return (len(self.base) // self.global_batch) * self.local

    def __iter__(self) -> Iterator[int]:
        order = list(iter(self.base))
        lo = self.rank * self.local
        for start in range(0, len(order) - self.global_batch + 1, self.global_batch):
            yield from order[start + lo : start + lo + self.local]


def check_task(task: nn.Module | type) -> None:
    """Raise a one-line :class:`ConfigError` if ``task`` cannot train with several processes."""
    if not getattr(task, "supports_ddp", True):
        name = getattr(task, "name", type(task).__name__)
        raise ConfigError(f"task '{name}' does not support multi-process (torchrun/DDP) training: "
                          "run it with one process")


def preflight(task: nn.Module, global_batch: int, device_name: str, sync_batchnorm: bool) -> None:
    """Check a multi-process launch before joining the process group (one-line errors).

    Raises
    ------
    ConfigError
        The global batch is not divisible by ``WORLD_SIZE``; the task does not support DDP;
        ``sync_batchnorm`` is requested on a non-CUDA device.
    """
    world = env_world_size()
    if world <= 1:
        return
    local_batch_size(global_batch, world)
    check_task(task)
    if sync_batchnorm:
        from fer_backbone.train import resolve_device

        if resolve_device(device_name).type != "cuda":
            raise ConfigError("train.sync_batchnorm needs CUDA devices (PyTorch's SyncBatchNorm has no CPU "
                              "implementation); set it to false for CPU/gloo runs")


def wrap(task: nn.Module, ctx: DistContext, sync_batchnorm: bool = False) -> nn.Module:
    """Return the module the loop calls for a training step: ``task``, or ``task`` in DDP.

    Buffers are synchronised at construction only (``forward_sync_buffers=False``): per-sample tables
    are kept identical by the gathered updates and the other buffers are averaged per epoch.
    ``sync_batchnorm`` converts BatchNorm layers (in place; state-dict keys unchanged) so
    their batch statistics cover the global batch; CUDA only.
    """
    if not ctx.enabled:
        return task
    check_task(task)
    if sync_batchnorm:
        nn.SyncBatchNorm.convert_sync_batchnorm(task)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(task, device_ids=ids, forward_sync_buffers=False)


def gather_batch(batch: dict[str, Any], out: dict[str, Any], keys: Sequence[str],
                 ctx: DistContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """Gather ``keys`` of ``batch`` and ``out`` over the global batch, in rank order.

    Used before ``Task.after_optimizer_step`` so that per-sample state is updated from the
    whole global batch on every rank. With one process (or no keys) returns the inputs.
    """
    if not ctx.enabled or not keys:
        return batch, out

    def cat(t: torch.Tensor) -> torch.Tensor:
        src = t.detach().contiguous()
        is_bool = src.dtype == torch.bool
        if is_bool:
            src = src.to(torch.uint8)
        parts = [torch.empty_like(src) for _ in range(ctx.world_size)]
        torch.distributed.all_gather(parts, src)
        res = torch.cat(parts)
        return res.bool() if is_bool else res

    pick = lambda d: {k: cat(d[k]) for k in keys if isinstance(d.get(k), torch.Tensor)}  # noqa: E731
    return pick(batch), pick(out)


def sync_buffers(task: nn.Module, per_sample: Sequence[str], ctx: DistContext) -> None:
    """Average statistics buffers over ranks; check that the per-sample buffers agree.

    Without SyncBatchNorm each rank's BatchNorm running statistics (and the AEA running
    mean) follow its own share of the data; their average is what rank 0 evaluates and
    saves. Averaging running means is exact (they are linear in the batch means); running
    variances miss the spread between ranks' means. The per-sample buffers (``per_sample``,
    e.g. SCN relabels, SLM label logits) are updated from the gathered global batch and must
    be identical everywhere; a weighted checksum is compared across ranks.

    Raises
    ------
    RuntimeError
        If a per-sample buffer differs between ranks (a task that updates it from local data).
    """
    if not ctx.enabled:
        return
    checks, names = [], []
    for name, buf in task.named_buffers():
        if name in per_sample:
            flat = buf.detach().double().flatten()
            checks.append((flat * torch.linspace(1.0, 2.0, flat.numel(), dtype=torch.float64,
                                                 device=flat.device)).sum())
            names.append(name)
        elif buf.is_floating_point():
            torch.distributed.all_reduce(buf)
            buf.div_(ctx.world_size)
    if checks:
        hi = torch.stack(checks)
        lo = hi.clone()
        torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
        torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
        bad = [n for n, a, b in zip(names, hi.tolist(), lo.tolist(), strict=True) if a != b]
        if bad:
            raise RuntimeError(f"per-sample state {', '.join(bad)} differs between processes "
                               f"(rank {ctx.rank}): the task must update it from the gathered batch")
