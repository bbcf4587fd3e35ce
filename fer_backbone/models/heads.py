"""Heads on pooled features: SCN's importance weighting and SLM-AEA's expression anchoring."""

from __future__ import annotations

import torch
from torch import nn


class ImportanceHead(nn.Module):
    """SCN self-attention importance: ``alpha = sigmoid(w_a^T x + b)`` in ``(0, 1)``, shape ``(B, 1)``."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute importance weights ``(B, 1)``."""
        return torch.sigmoid(self.fc(x))


class ExpressionAnchor(nn.Module):
    """Average expression anchoring: ``f <- f + w * mean(f)``, ``w`` learnable (init 1).

    In training the mean is over the current batch, as published; a running mean of the
    batch means is kept like BatchNorm's running statistics.

    Parameters
    ----------
    dim : int
        Feature size.
    momentum : float
        Running-mean update ``r <- (1 - m) r + m * mean(f)``.
    eval_mode : {"running", "batch"}
        ``running`` (default) anchors evaluation inputs to the running mean, so a
        prediction does not depend on its batch-mates. ``batch`` reproduces the public code,
        which uses the evaluation batch's own mean.
    """

    def __init__(self, dim: int, momentum: float = 0.1, eval_mode: str = "running") -> None:
        super().__init__()
        if eval_mode not in ("running", "batch"):
            raise ValueError(f"eval_mode must be 'running' or 'batch', got {eval_mode!r}")
        self.weight = nn.Parameter(torch.ones(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        self.momentum = momentum
        self.eval_mode = eval_mode

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Anchored features, same shape as ``f`` ``(B, D)``."""
        if self.training or self.eval_mode == "batch":
            mean = f.mean(dim=0)
            if self.training:
                with torch.no_grad():  # first batch: m = 1 (no host sync: a tensor, not an int)
                    m = torch.where(self.num_batches_tracked == 0, 1.0, self.momentum)
                    self.running_mean.mul_(1 - m).add_(mean.detach().float() * m)
                    self.num_batches_tracked.add_(1)
        else:
            mean = self.running_mean.to(f.dtype)
        return f + self.weight * mean
