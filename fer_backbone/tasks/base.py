"""The task contract: an FER training method as a small ``nn.Module``.

The one training loop (:mod:`fer_backbone.train`) drives every method through this
interface and never branches on which method it runs.

Batches are dicts of tensors. Keys used so far:

``image``  float tensor ``(B, 3, H, W)``, normalised.
``label``  long tensor ``(B,)``: the (possibly noisy) training label.
``index``  long tensor ``(B,)``: the sample's position in the training set (SLM's per-sample
           label logits and SCN's relabel write-back are keyed by it).
``unlabeled_weak`` / ``unlabeled_strong``  weak / strong views of unlabeled images
           (semi-supervised task).
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
    """

    name: ClassVar[str]

    @abstractmethod
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One training step's losses; ``"loss"`` is what the loop back-propagates."""

    @abstractmethod
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, K)`` for evaluation (no batch-dependent statistics)."""

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embedding ``(B, D)`` used by the exported expression embedder."""
        raise NotImplementedError

    def optimizer_parameters(self) -> list[dict[str, Any]] | list[nn.Parameter]:
        """Parameters (or param groups) the loop's optimizer updates."""
        return [p for p in self.parameters() if p.requires_grad]

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook for epoch-dependent schedules (ramps, relabel start)."""

    def after_optimizer_step(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> None:
        """Hook run after the loop's optimizer step (e.g. SLM label-logit update)."""
