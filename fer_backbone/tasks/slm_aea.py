"""Soft Label Mining + Average Expression Anchoring (Ming et al., ACCV 2022).

SLM: every training sample ``i`` owns label logits ``m_i`` (initialised to ``init_logit``
on its given class and to the value elsewhere that makes ``softmax(m_i)`` put
``init_confidence`` on that class). The network is trained with ``CE(z, softmax(m))``.
After each network step the label logits take their own gradient step (``label_lr``,
default 200, on a batch mean) on

    r_u(t) * CE(m, softmax(z).detach()) + r_d(t) * CE(m, y)

so labels drift towards the network's beliefs (``r_u`` rising) while the pull towards the
given label fades (``r_d`` decaying). The gradient of a soft-target CE w.r.t. logits is
``softmax(m) - target``, so the update is closed-form (see :func:`label_logit_update`).

Ramps (``t`` = epoch / (epochs - 1) in [0, 1]; ``ramp_alpha`` = 1.6, ``ramp_beta`` = 7)::

    r_u(t) = exp(-beta * (1 - t) ** alpha)      rises   exp(-7) -> 1
    r_d(t) = exp(-beta * t ** alpha)            decays  1 -> exp(-7)

(the published schedule names only alpha and beta and the directions; this exponential
form is our reading of it, documented in docs/fer-methods.md).

AEA: ``f <- f + w * mean(f)`` with learnable ``w`` (init 1) before the classifier. At
evaluation the mean is a running mean (``anchor_eval="running"``, default) or, as in the
public code, the evaluation batch's mean (``anchor_eval="batch"``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fer_backbone.models import Backbone, ExpressionAnchor
from fer_backbone.tasks.base import Task


def ramps(epoch: int, num_epochs: int, alpha: float = 1.6, beta: float = 7.0) -> tuple[float, float]:
    """``(r_u, r_d)`` at 0-based ``epoch`` of ``num_epochs`` (see module docstring)."""
    t = epoch / (num_epochs - 1) if num_epochs > 1 else 1.0
    t = min(max(t, 0.0), 1.0)
    return math.exp(-beta * (1.0 - t) ** alpha), math.exp(-beta * t**alpha)


def init_label_logits(labels: torch.Tensor, num_classes: int, init_logit: float = 5.0,
                      init_confidence: float = 0.97) -> torch.Tensor:
    """Label logits ``(N, K)``: ``init_logit`` on the label, ``log(c / (K - 1))`` elsewhere.

    ``c = e^init_logit * (1 - q) / q`` with ``q = init_confidence``, so that
    ``softmax`` gives ``q`` on the label and ``(1 - q) / (K - 1)`` on each other class.
    """
    c = math.exp(init_logit) * (1.0 - init_confidence) / init_confidence
    m = torch.full((len(labels), num_classes), math.log(c / (num_classes - 1)))
    m[torch.arange(len(labels)), labels] = init_logit
    return m


def label_logit_update(m: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, r_u: float,
                       r_d: float, lr: float) -> torch.Tensor:
    """One gradient step on ``mean_i [r_u CE(m_i, p_i) + r_d CE(m_i, y_i)]``.

    Parameters
    ----------
    m : tensor (B, K)
        Current label logits of the batch's samples.
    probs : tensor (B, K)
        The network's (detached) class probabilities.
    labels : tensor (B,)
        Given labels.
    r_u, r_d, lr : float

    Returns
    -------
    tensor (B, K)
        ``m - lr * grad``, ``grad = (r_u (softmax(m) - p) + r_d (softmax(m) - onehot(y))) / B``.
    """
    s = torch.softmax(m, dim=1)
    onehot = F.one_hot(labels, m.shape[1]).to(m.dtype)
    grad = (r_u * (s - probs) + r_d * (s - onehot)) / m.shape[0]
    return m - lr * grad


class SLMAEATask(Task):
    """SLM + AEA as a task.

    Parameters
    ----------
    backbone : Backbone
    num_classes, num_train : int
    train_labels : sequence of int, optional
        Given labels of the training set, to initialise the label logits up front. If
        omitted, each sample's logits are initialised the first time it is seen.
    label_lr : float
        Step size of the label-logit update (200).
    init_logit, init_confidence : float
        Label-logit initialisation (5, 0.97).
    ramp_alpha, ramp_beta : float
        Ramp shape (1.6, 7).
    use_slm, use_aea : bool
        Switch either component off (ablations; both off = baseline).
    anchor_eval : {"running", "batch"}
    anchor_momentum : float
    """

    name = "slm_aea"
    after_step_keys = ("index", "label", "logits")
    per_sample_buffers = ("label_logits", "initialised", "given_labels")

    def __init__(self, backbone: Backbone, num_classes: int, num_train: int = 0,
                 train_labels: list[int] | None = None, label_lr: float = 200.0,
                 init_logit: float = 5.0, init_confidence: float = 0.97, ramp_alpha: float = 1.6,
                 ramp_beta: float = 7.0, use_slm: bool = True, use_aea: bool = True,
                 anchor_eval: str = "running", anchor_momentum: float = 0.1) -> None:
        super().__init__(num_classes, num_train)
        self.backbone = backbone
        d = backbone.num_features
        self.anchor = ExpressionAnchor(d, momentum=anchor_momentum, eval_mode=anchor_eval) if use_aea else None
        self.fc = nn.Linear(d, num_classes)
        self.label_lr, self.init_logit, self.init_confidence = label_lr, init_logit, init_confidence
        self.ramp_alpha, self.ramp_beta, self.use_slm = ramp_alpha, ramp_beta, use_slm
        n = max(num_train, 1)
        self.register_buffer("label_logits", torch.zeros(n, num_classes))
        self.register_buffer("initialised", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("given_labels", torch.full((n,), -1, dtype=torch.long))
        if train_labels is not None:
            y = torch.as_tensor(list(train_labels), dtype=torch.long)
            self.label_logits[: len(y)] = init_label_logits(y, num_classes, init_logit, init_confidence)
            self.initialised[: len(y)] = True
            self.given_labels[: len(y)] = y
        self.r_u, self.r_d = ramps(0, 2, ramp_alpha, ramp_beta)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Anchored features (running mean at evaluation by default)."""
        f = self.backbone(images)
        return self.anchor(f) if self.anchor is not None else f

    def embed_and_predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding and logits sharing one backbone pass."""
        e = self.embed(images)
        return e, self.fc(e)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.fc(self.embed(images))

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Set the ramps for this epoch."""
        self.r_u, self.r_d = ramps(epoch, num_epochs, self.ramp_alpha, self.ramp_beta)

    def _init_fresh(self, labels: torch.Tensor, index: torch.Tensor) -> None:
        fresh = ~self.initialised[index]
        if fresh.any():
            self.label_logits[index[fresh]] = init_label_logits(
                labels[fresh].cpu(), self.num_classes, self.init_logit, self.init_confidence
            ).to(self.label_logits)
            self.initialised[index[fresh]] = True
            self.given_labels[index[fresh]] = labels[fresh]

    def _soft_targets(self, labels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        self._init_fresh(labels, index)
        return torch.softmax(self.label_logits[index], dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """CE against the mined soft labels (or the given labels without SLM)."""
        logits = self.predict(batch["image"])
        if self.use_slm:
            target = self._soft_targets(batch["label"], batch["index"])
        else:
            target = batch["label"]
        ce = F.cross_entropy(logits.float(), target)
        return {"loss": ce, "ce": ce.detach(), "logits": logits.detach(),
                "r_u": torch.tensor(self.r_u), "r_d": torch.tensor(self.r_d)}

    @torch.no_grad()
    def after_optimizer_step(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> None:
        """Update the batch's label logits with their own step."""
        if not self.use_slm:
            return
        idx = batch["index"]
        self._init_fresh(batch["label"], idx)  # samples first seen by another process (DDP)
        probs = torch.softmax(out["logits"].float(), dim=1)
        self.label_logits[idx] = label_logit_update(self.label_logits[idx], probs, batch["label"],
                                                    self.r_u, self.r_d, self.label_lr)

    def epoch_metrics(self) -> dict[str, float]:
        """Fraction of seen samples whose mined label (argmax) differs from the given one."""
        if not self.use_slm or not bool(self.initialised.any()):
            return {}
        seen = self.initialised
        mined = self.label_logits[seen].argmax(1)
        return {"mined_label_changed_fraction": float((mined != self.given_labels[seen]).float().mean())}
