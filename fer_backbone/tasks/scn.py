"""Self-Cure Network (Wang et al., CVPR 2020).

Pooled features ``x`` -> importance ``alpha = sigmoid(w_a^T x)``; the classifier's logits
are multiplied by ``alpha`` (weighted-logit cross-entropy). A rank regularisation pushes
the mean importance of the top ``beta`` fraction of the batch at least ``margin_1`` above
the rest. From ``relabel_epoch`` on, a sample whose top predicted probability beats the
probability of its current label by more than ``margin_2`` gets the predicted class as
its new label, permanently (kept in a per-sample table that is checkpointed).

Options where the paper and the public code differ:

* ``relabel_scope="low"`` (paper): only the low-importance group of the batch is
  relabelled; ``"all"`` (public code) relabels every sample of the batch.
* ``gamma=None`` (public code): ``L = L_RR + L_WCE``; a float ``gamma`` gives the paper's
  ``gamma * L_RR + (1 - gamma) * L_WCE`` (paper: 0.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_backbone.models import Backbone, ImportanceHead
from fer_backbone.tasks.base import Task


def rank_regularization(alpha: torch.Tensor, beta: float, margin: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SCN rank-regularisation loss.

    Parameters
    ----------
    alpha : tensor (B,) or (B, 1)
        Importance weights.
    beta : float
        Fraction of the batch in the high-importance group (``int(B * beta)`` samples).
    margin : float
        ``delta_1``.

    Returns
    -------
    loss : tensor ()
        ``max(0, margin - (mean_high - mean_low))``; 0 if either group is empty.
    high_idx, low_idx : tensor of int64
        Batch positions of the two groups (high sorted by decreasing alpha).
    """
    a = alpha.reshape(-1)
    b = a.numel()
    n_high = int(b * beta)
    order = torch.argsort(a, descending=True)
    high, low = order[:n_high], order[n_high:]
    if n_high == 0 or n_high == b:
        return a.sum() * 0.0, high, low
    diff = margin - (a[high].mean() - a[low].mean())
    return F.relu(diff), high, low


def relabel_rule(probs: torch.Tensor, labels: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SCN relabelling: where ``p_max - p_label > margin`` the label becomes ``argmax p``.

    Returns
    -------
    new_labels : tensor (B,)
    changed : bool tensor (B,)
    """
    p_max, pred = probs.max(dim=1)
    p_lab = probs.gather(1, labels.view(-1, 1)).squeeze(1)
    change = (p_max - p_lab) > margin
    return torch.where(change, pred, labels), change & (pred != labels)


class SCNTask(Task):
    """Self-Cure Network as a task.

    Parameters
    ----------
    backbone : Backbone
    num_classes, num_train : int
    beta : float
        High-importance fraction (0.7).
    margin_1 : float
        Rank-regularisation margin ``delta_1`` (0.15 for batch 1024 in the paper; 0.07 is
        recommended for batch 64).
    margin_2 : float
        Relabel margin ``delta_2`` (0.2).
    relabel_epoch : int
        First epoch (1-based) with relabelling (10); 0 or a value above the run's epochs
        disables it.
    relabel_scope : {"low", "all"}
    gamma : float, optional
        See module docstring.
    """

    name = "scn"
    after_step_keys = ("index", "logits", "target", "low_group")
    per_sample_buffers = ("relabels",)

    def __init__(self, backbone: Backbone, num_classes: int, num_train: int = 0, beta: float = 0.7,
                 margin_1: float = 0.07, margin_2: float = 0.2, relabel_epoch: int = 10,
                 relabel_scope: str = "low", gamma: float | None = None) -> None:
        super().__init__(num_classes, num_train)
        if relabel_scope not in ("low", "all"):
            raise ValueError(f"relabel_scope must be 'low' or 'all', got {relabel_scope!r}")
        self.backbone = backbone
        self.fc = nn.Linear(backbone.num_features, num_classes)
        self.importance = ImportanceHead(backbone.num_features)
        self.beta, self.margin_1, self.margin_2 = beta, margin_1, margin_2
        self.relabel_epoch, self.relabel_scope, self.gamma = relabel_epoch, relabel_scope, gamma
        # -1 = keep the data set's label; otherwise the relabelled class.
        self.register_buffer("relabels", torch.full((max(num_train, 1),), -1, dtype=torch.long))
        self._relabel_active = False
        self._changed_this_epoch = 0

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.importance(x)
        return alpha * self.fc(x), alpha

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features."""
        return self.backbone(images)

    def embed_and_predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding and logits sharing one backbone pass."""
        e = self.embed(images)
        return e, self._heads(e)[0]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Importance-weighted logits (argmax equals that of the unweighted logits)."""
        return self._heads(self.embed(images))[0]

    def current_labels(self, labels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Return the labels after any relabelling so far."""
        r = self.relabels[index]
        return torch.where(r >= 0, r, labels)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weighted-logit CE + rank regularisation for one batch."""
        x = self.embed(batch["image"])
        logits, alpha = self._heads(x)
        target = self.current_labels(batch["label"], batch["index"])
        wce = F.cross_entropy(logits.float(), target)
        rr, high, low = rank_regularization(alpha.float(), self.beta, self.margin_1)
        loss = rr + wce if self.gamma is None else self.gamma * rr + (1 - self.gamma) * wce
        low_mask = torch.zeros_like(target, dtype=torch.bool)
        low_mask[low] = True
        return {"loss": loss, "wce": wce.detach(), "rr": rr.detach(),
                "alpha_mean": alpha.detach().mean(), "logits": logits.detach(),
                "target": target, "low_group": low_mask}

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Switch relabelling on from ``relabel_epoch`` (1-based)."""
        self._relabel_active = self.relabel_epoch > 0 and epoch + 1 >= self.relabel_epoch
        self._changed_this_epoch = 0

    @torch.no_grad()
    def after_optimizer_step(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> None:
        """Relabel (write into the per-sample table) once relabelling is active."""
        if not self._relabel_active:
            return
        probs = torch.softmax(out["logits"].float(), dim=1)
        new, changed = relabel_rule(probs, out["target"], self.margin_2)
        if self.relabel_scope == "low":
            changed = changed & out["low_group"]
        idx = batch["index"][changed]
        self.relabels[idx] = new[changed]
        self._changed_this_epoch = self._changed_this_epoch + changed.sum()  # a tensor: no host sync

    def epoch_metrics(self) -> dict[str, float]:
        """Relabels made this epoch and the fraction of samples relabelled so far."""
        return {"relabeled": float(self._changed_this_epoch),
                "relabeled_fraction": float((self.relabels >= 0).float().mean())}
