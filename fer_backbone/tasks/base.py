"""The task contract: an FER training method as a small ``nn.Module``.

The one training loop (:func:`fer_backbone.train.fit`) drives every method through this
interface and never branches on which method it runs.

Batches
-------
Batches are dicts of tensors, already on the task's device. The loop converts every
``uint8`` tensor of shape ``(B, 3, H, W)`` to float, normalises it with the run's mean/std
(and applies the configured batch augmentation to the keys listed in
``TrainConfig.augment_keys``, default ``["image"]``) before calling the task. Keys used so far:

``image``  float tensor ``(B, 3, H, W)``, normalised.
``label``  long tensor ``(B,)``: the (possibly noisy) training label.
``index``  long tensor ``(B,)``: the sample's position in the training set (SLM's per-sample
           label logits and SCN's relabel table are keyed by it).
``soft``   float tensor ``(B, K)``: label distribution, when the data set has one.
``unlabeled_weak`` / ``unlabeled_strong``  weak / strong views of unlabeled images
           (semi-supervised task).

Step protocol (what the loop does with a task, per batch)
---------------------------------------------------------
1. ``out = task(batch)`` under autocast; ``out["loss"]`` is back-propagated, the loop's
   optimizer (over :meth:`Task.optimizer_parameters`) steps.
2. ``task.after_optimizer_step(batch, out)``: anything the task updates itself.
3. Every 0-dim tensor in ``out`` is averaged over the epoch and logged (progress bar,
   ``metrics.csv``); other entries are for the task's own use in step 2.

Before training: ``task.set_steps_per_epoch(n)``. Per epoch: ``task.on_epoch_start(epoch, num_epochs)`` first (0-based epoch), then
``task.epoch_metrics()`` is merged into the epoch's logged row. Checkpoints store
``task.state_dict()`` (parameters *and* buffers, e.g. SLM label logits, SCN relabels) plus
``task.extra_state()`` for non-tensor or optimizer state a task owns.

Multi-process training (DDP, :mod:`fer_backbone.distributed`)
-------------------------------------------------------------
Each process runs ``forward`` on its slice of the global batch. ``after_optimizer_step``
then receives the *global* batch, gathered from every process, restricted to the keys in
``Task.after_step_keys`` (from both ``batch`` and ``out``), so per-sample state listed in
``Task.per_sample_buffers`` is updated identically everywhere. A task whose step cannot be
split this way sets ``supports_ddp = False`` and a multi-process run stops with one line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn


class Task(nn.Module, ABC):
    """Base class of FER methods (baseline, scn, slm_aea, semi_supervised).

    Subclasses hold their model(s) as submodules, return ``{"loss": ..., **components}``
    from :meth:`forward` (one training step), and predict class logits in :meth:`predict`.
    Anything a task updates itself (SLM's label logits, a student network in
    teacher/student training) is excluded from :meth:`optimizer_parameters`.

    Parameters
    ----------
    num_classes : int
        ``K``.
    num_train : int
        Size of the training set (the range of ``batch["index"]``); tasks with per-sample
        state size it by this.
    """

    name: ClassVar[str]
    #: Whether the task can be trained by several processes (DDP).
    supports_ddp: ClassVar[bool] = True
    #: Keys of ``batch`` / ``out`` that :meth:`after_optimizer_step` reads (gathered under DDP).
    after_step_keys: ClassVar[tuple[str, ...]] = ()
    #: Buffers indexed by ``batch["index"]``, kept identical across processes by that update
    #: (never averaged across processes).
    per_sample_buffers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, num_classes: int, num_train: int = 0) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.num_train = int(num_train)

    @classmethod
    def from_config(cls, *, backbone: dict[str, Any], num_classes: int, num_train: int,
                    **params: Any) -> Task:
        """Build the task from a backbone spec (``Backbone`` keyword arguments) and params.

        The default builds one :class:`~fer_backbone.models.Backbone`; tasks needing more
        networks (teacher + student) override this.
        """
        from fer_backbone.models import Backbone

        return cls(Backbone(**backbone), num_classes=num_classes, num_train=num_train, **params)

    @abstractmethod
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One training step's losses; ``"loss"`` is what the loop back-propagates."""

    @abstractmethod
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, K)`` for evaluation (no batch-dependent statistics)."""

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embedding ``(B, D)`` used by the exported expression embedder."""
        raise NotImplementedError

    def embed_and_predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding and class logits in one pass (override to share the backbone pass)."""
        return self.embed(images), self.predict(images)

    def optimizer_parameters(self) -> list[dict[str, Any]] | list[nn.Parameter]:
        """Parameters (or param groups) the loop's optimizer updates."""
        return [p for p in self.parameters() if p.requires_grad]

    def set_steps_per_epoch(self, steps: int) -> None:
        """Optimizer steps per epoch, told once before training (per-iteration schedules)."""

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Prepare epoch-dependent schedules (ramps, relabel start); ``epoch`` is 0-based."""

    def after_optimizer_step(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> None:
        """Update task-owned state after the loop's optimizer step (e.g. SLM label-logit update)."""

    def epoch_metrics(self) -> dict[str, float]:
        """Extra per-epoch numbers to log (e.g. how many labels were changed)."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Checkpointed state outside ``state_dict()`` (e.g. an internal optimizer)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""
