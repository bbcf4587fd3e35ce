"""Baseline: backbone + linear classifier trained with cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_backbone.models import Backbone
from fer_backbone.tasks.base import Task


class BaselineTask(Task):
    """Plain cross-entropy on the given labels (soft labels if the batch has ``soft``).

    Parameters
    ----------
    backbone : Backbone
    num_classes, num_train : int
    use_soft_labels : bool
        Train on ``batch["soft"]`` (e.g. FERPlus vote distributions) when present.
    """

    name = "baseline"

    def __init__(self, backbone: Backbone, num_classes: int, num_train: int = 0,
                 use_soft_labels: bool = True) -> None:
        super().__init__(num_classes, num_train)
        self.backbone = backbone
        self.fc = nn.Linear(backbone.num_features, num_classes)
        self.use_soft_labels = use_soft_labels

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features."""
        return self.backbone(images)

    def embed_and_predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding and logits sharing one backbone pass."""
        e = self.embed(images)
        return e, self.fc(e)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.fc(self.embed(images))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-entropy loss of one batch."""
        logits = self.predict(batch["image"])
        target = batch["soft"] if (self.use_soft_labels and "soft" in batch) else batch["label"]
        ce = F.cross_entropy(logits.float(), target)
        return {"loss": ce, "ce": ce.detach(), "logits": logits.detach()}
