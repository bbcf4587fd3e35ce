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

Ramps, as the authors' code (``models/slm.py``, functions ``ramp_u`` / ``ramp_d``, called
with ``num_iter = steps_per_epoch * epoch + i`` after the network step of iteration ``i``):
with ``e = num_iter / steps_per_epoch`` (epochs, fractional), ``alpha`` = 1.6 and ``beta`` = 7
an *absolute* epoch::

    e <= beta:  r_u = exp(-(alpha - e / beta) ** 2),  r_d = 1
    e >  beta:  r_u = 1,                              r_d = exp(-(alpha - beta / e) ** 2)

updated every iteration (:func:`official_ramps`, ``ramp_schedule="official"``, default).
``ramp_schedule="time_scaled"`` (opt-in, for runs much shorter than the paper's 40 epochs)
feeds the same functions ``e * ramp_reference_epochs / epochs``, so the ramps keep the shape
they have over the authors' 40-epoch schedule (:func:`time_scaled_ramps`).

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


def official_ramps(num_iter: int, steps_per_epoch: int, alpha: float = 1.6,
                   beta: float = 7.0) -> tuple[float, float]:
    """``(r_u, r_d)`` at global iteration ``num_iter`` (0-based), as the authors' code.

    Follows ``ramp_u(e, ns, alpha, beta)`` and ``ramp_d(...)`` of ``models/slm.py`` in
    HaipengMing/SLM-AEA (``e`` = iteration, ``ns`` = iterations per epoch): the switch is at
    ``num_iter <= beta * steps_per_epoch`` and the epoch count is ``(num_iter / ns)``.
    """
    e, ns = float(num_iter), float(steps_per_epoch)
    if e <= beta * ns:
        return math.exp(-((alpha - (e / ns) / beta) ** 2)), 1.0
    return 1.0, math.exp(-((alpha - beta / (e / ns)) ** 2))


def time_scaled_ramps(num_iter: int, steps_per_epoch: int, num_epochs: int, alpha: float = 1.6,
                      beta: float = 7.0, reference_epochs: float = 40.0) -> tuple[float, float]:
    """:func:`official_ramps` with time stretched so ``num_epochs`` span ``reference_epochs``.

    Our option, not the authors': at ``num_epochs == reference_epochs`` it equals the
    official ramps; for an 8-epoch run ``beta = 7`` falls at epoch 1.4 instead of 7.
    """
    scale = reference_epochs / float(num_epochs)
    e = float(num_iter) / float(steps_per_epoch) * scale
    if e <= beta:
        return math.exp(-((alpha - e / beta) ** 2)), 1.0
    return 1.0, math.exp(-((alpha - beta / e) ** 2))


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
        Ramp shape (1.6) and switch epoch (7), as the authors' ``--alpha`` / ``--beta``.
    ramp_schedule : {"official", "time_scaled"}
        ``official`` (default): the authors' per-iteration ramps with ``beta`` an absolute
        epoch; ``time_scaled``: the same functions on a time axis stretched so the run spans
        ``ramp_reference_epochs`` (see :func:`time_scaled_ramps`).
    ramp_reference_epochs : float
        Length of the authors' schedule (40) for ``time_scaled``.
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
                 ramp_beta: float = 7.0, ramp_schedule: str = "official",
                 ramp_reference_epochs: float = 40.0, use_slm: bool = True, use_aea: bool = True,
                 anchor_eval: str = "running", anchor_momentum: float = 0.1) -> None:
        super().__init__(num_classes, num_train)
        if ramp_schedule not in ("official", "time_scaled"):
            raise ValueError(f"ramp_schedule must be 'official' or 'time_scaled', got {ramp_schedule!r}")
        self.backbone = backbone
        d = backbone.num_features
        self.anchor = ExpressionAnchor(d, momentum=anchor_momentum, eval_mode=anchor_eval) if use_aea else None
        self.fc = nn.Linear(d, num_classes)
        self.label_lr, self.init_logit, self.init_confidence = label_lr, init_logit, init_confidence
        self.ramp_alpha, self.ramp_beta, self.use_slm = ramp_alpha, ramp_beta, use_slm
        self.ramp_schedule, self.ramp_reference_epochs = ramp_schedule, float(ramp_reference_epochs)
        n = max(num_train, 1)
        self.register_buffer("label_logits", torch.zeros(n, num_classes))
        self.register_buffer("initialised", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("given_labels", torch.full((n,), -1, dtype=torch.long))
        if train_labels is not None:
            y = torch.as_tensor(list(train_labels), dtype=torch.long)
            self.label_logits[: len(y)] = init_label_logits(y, num_classes, init_logit, init_confidence)
            self.initialised[: len(y)] = True
            self.given_labels[: len(y)] = y
        self._all_initialised = train_labels is not None and len(train_labels) >= n
        self._epoch, self._num_epochs, self._step, self._steps_per_epoch = 0, 1, 0, 1
        self.r_u, self.r_d = self.ramp_values(0)

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

    def ramp_values(self, num_iter: int) -> tuple[float, float]:
        """``(r_u, r_d)`` at global iteration ``num_iter`` under this task's ramp schedule."""
        if self.ramp_schedule == "official":
            return official_ramps(num_iter, self._steps_per_epoch, self.ramp_alpha, self.ramp_beta)
        return time_scaled_ramps(num_iter, self._steps_per_epoch, self._num_epochs, self.ramp_alpha,
                                 self.ramp_beta, self.ramp_reference_epochs)

    def set_steps_per_epoch(self, steps: int) -> None:
        """Set the iterations per epoch (the ramps' time unit); the loop calls it before training."""
        self._steps_per_epoch = max(int(steps), 1)

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Restart the iteration counter of this epoch (ramps are evaluated per iteration)."""
        self._epoch, self._num_epochs, self._step = epoch, num_epochs, 0
        self.r_u, self.r_d = self.ramp_values(self._steps_per_epoch * epoch)

    def _init_fresh(self, labels: torch.Tensor, index: torch.Tensor) -> None:
        if self._all_initialised:  # given train_labels: nothing to do, and no host sync
            return
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
        return {"loss": ce, "ce": ce.detach(), "logits": logits.detach()}

    @torch.no_grad()
    def after_optimizer_step(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> None:
        """Update the batch's label logits with their own step."""
        if not self.use_slm:
            return
        # models/slm.py: num_iter = num_steps * epoch + i, computed after the network step
        self.r_u, self.r_d = self.ramp_values(self._steps_per_epoch * self._epoch + self._step)
        self._step += 1
        idx = batch["index"]
        self._init_fresh(batch["label"], idx)  # samples first seen by another process (DDP)
        probs = torch.softmax(out["logits"].float(), dim=1)
        self.label_logits[idx] = label_logit_update(self.label_logits[idx], probs, batch["label"],
                                                    self.r_u, self.r_d, self.label_lr)

    def epoch_metrics(self) -> dict[str, float]:
        """Ramp values of the epoch's last iteration; fraction of mined labels != given ones."""
        if not self.use_slm or not bool(self.initialised.any()):
            return {}
        seen = self.initialised
        mined = self.label_logits[seen].argmax(1)
        return {"r_u": self.r_u, "r_d": self.r_d,
                "mined_label_changed_fraction": float((mined != self.given_labels[seen]).float().mean())}
