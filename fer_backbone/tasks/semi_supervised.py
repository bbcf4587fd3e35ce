"""Semi-supervised teacher/student with debiased feedback (Yu et al., ABAW6 2024, phase 1).

Teacher T and student S share the architecture, not the weights. Per step (one batch of
class-balanced labeled images ``image``/``label`` plus unlabeled weak/strong views
``unlabeled_weak``/``unlabeled_strong``):

1. T predicts the labeled images and both unlabeled views.
2. Pseudo-labels ``y_hat`` for the unlabeled images come from T (hard argmax or soft
   probabilities; optionally only above a confidence threshold).
3. S is updated with its own optimizer on ``L_u = CE(y_hat, S(x_u))`` (eq. 1).
4. Feedback coefficient ``f`` (eq. 6): ``eta_S * grad_S CE_labeled(S_new) . grad_S L_u(S_old)``.
   ``feedback="first_order"`` (default) uses the Taylor estimate
   ``f = CE_labeled(S_old) - CE_labeled(S_new)`` (a first-order expansion of the labeled loss
   around the new weights gives ``CE_old - CE_new ~= eta_S * g_l(new) . g_u(old)`` for a plain
   SGD step, so the ``eta_S`` factor is already inside the difference);
   ``feedback="exact"`` computes the two gradients and their dot product times the student's
   current learning rate; ``feedback="none"`` drops the term (the ablation).
   ``feedback_baseline="moving_average"`` (default, as google-research
   ``meta_pseudo_labels/training_utils.py``: ``moving_dot_product`` updated by
   ``m <- m - 0.01 (m - f)`` before use) subtracts a moving average of ``f`` from ``f``, a
   variance-reducing baseline; ``"none"`` uses the raw ``f``. google-research creates ``m``
   with TensorFlow's default (Glorot-uniform) initialiser; here it starts at 0.
5. T's loss, returned to the training loop as ``"loss"`` (eq. 2):
   ``L_T = L_s + lambda_c * L_c + f * CE(y_hat, T(x_u))`` with ``L_s`` the supervised CE on the
   balanced labeled batch (eq. 3), ``L_c`` the consistency CE between T's prediction on the
   weak view (target, no gradient) and on the strong view (eq. 4), and the feedback term (eq. 5).
   ``f > 0`` (the student's step on the pseudo-labels lowered its labeled loss) reinforces
   the pseudo-labels; ``f < 0`` pushes T away from them.

The loop's optimizer and schedule update T (the paper: lr 1e-2, cosine); S has its own
SGD optimizer and a per-epoch cosine schedule (the paper: lr 1e-3, cosine), both stepped
inside :meth:`SemiSupervisedTask.forward`. Predictions and embeddings come from S, which
is the network phase 2 freezes.

Logged per step: ``ce_teacher``, ``consistency``, ``feedback``, ``feedback_loss``,
``student_ce_unlabeled``, ``student_ce_labeled``, ``mask_rate``; per epoch: the
pseudo-label class histogram (``pseudo_frac_<k>``) and its total-variation distance from
uniform (``pseudo_tv_uniform``), which shows whether the pseudo-labels are debiased.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from cdrscreen.core.errors import ConfigError
from fer_backbone.config import Recipe, SemiConfig, StrongConfig, WeakConfig  # noqa: F401 - re-exported
from fer_backbone.tasks.base import Task


class Classifier(nn.Module):
    """A backbone (``images -> (B, D)``, attribute ``num_features``) and a linear head."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(int(backbone.num_features), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.fc(self.backbone(x))


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample CE of ``logits`` against hard (``(B,)`` long) or soft (``(B, K)``) targets."""
    if target.ndim == 1:
        return F.cross_entropy(logits, target, reduction="none")
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1)


def feedback_first_order(ce_labeled_old: torch.Tensor | float, ce_labeled_new: torch.Tensor | float) -> float:
    """First-order Meta-Pseudo-Labels feedback ``CE_labeled(S_old) - CE_labeled(S_new)``.

    Positive when the student's step on the pseudo-labels lowered its loss on labeled data.
    """
    return float(ce_labeled_old) - float(ce_labeled_new)


def feedback_exact(grad_labeled_new: Sequence[torch.Tensor], grad_unlabeled_old: Sequence[torch.Tensor],
                   student_lr: float) -> float:
    """Eq. 6: ``eta_S * <grad CE_labeled(S_new), grad L_u(S_old)>`` over all student parameters."""
    dot = sum(float((a.float() * b.float()).sum()) for a, b in zip(grad_labeled_new, grad_unlabeled_old, strict=True))
    return float(student_lr) * dot


class SemiSupervisedTask(Task):
    """Teacher/student training with debiased feedback; the loop trains the teacher.

    Parameters
    ----------
    teacher_backbone, student_backbone : nn.Module
        Two networks of the same architecture (independent weights), each mapping images to
        pooled features and exposing ``num_features``.
    num_classes, num_train : int
    student_lr : float
        Student's peak learning rate (paper: 1e-3; the teacher's, 1e-2, is the loop's ``lr``).
    student_min_lr : float
        End of the student's cosine schedule.
    student_momentum, student_weight_decay : float
        Student SGD settings.
    consistency_weight : float
        ``lambda_c`` (paper: 1).
    feedback : {"first_order", "exact", "none"}
        How ``f`` is computed (see the module docstring); ``"none"`` is the ablation.
    feedback_weight : float
        Multiplies ``f`` (paper: 1).
    pseudo_labels : {"hard", "soft"}
        Student targets: T's argmax or T's probabilities (sharpened by ``temperature``).
    pseudo_label_view : {"strong", "weak"}
        Which unlabeled view T labels for S (the student always trains on the strong view).
        Meta Pseudo Labels uses the strong view so that the feedback's CE(y_hat, T(x)) and the
        student's loss concern the same input.
    temperature : float
        Sharpening of soft targets (consistency and soft pseudo-labels).
    threshold : float
        Confidence threshold on T's weak-view probability: samples below it get no
        consistency loss and no pseudo-label (0 keeps all, as Meta Pseudo Labels does).
    predict_with : {"student", "teacher"}
        Network used by :meth:`predict` / :meth:`embed`.
    student_wait_epochs : int
        During the first epochs the student is not updated and ``f = 0`` (the teacher learns
        from labels and consistency first); Meta Pseudo Labels' public code has the same
        "student wait steps". Not in the paper (0 = off).
    consistency_rampup_epochs : int
        ``lambda_c`` rises linearly from 0 over these epochs (UDA practice; 0 = off).
    feedback_baseline : {"moving_average", "none"}
        Subtract a moving average of ``f`` (google-research Meta Pseudo Labels) or not.
    feedback_baseline_rate : float
        Update rate of that moving average (google-research: 0.01).
    """

    name = "semi_supervised"
    # The student takes its own optimizer step inside forward() on this process's batch;
    # splitting that step over processes is not implemented.
    supports_ddp = False

    def __init__(
        self,
        teacher_backbone: nn.Module,
        student_backbone: nn.Module,
        num_classes: int,
        num_train: int = 0,
        *,
        student_lr: float = 1e-3,
        student_min_lr: float = 0.0,
        student_momentum: float = 0.9,
        student_weight_decay: float = 0.0,
        consistency_weight: float = 1.0,
        feedback: Literal["first_order", "exact", "none"] = "first_order",
        feedback_weight: float = 1.0,
        pseudo_labels: Literal["hard", "soft"] = "hard",
        pseudo_label_view: Literal["strong", "weak"] = "strong",
        temperature: float = 1.0,
        threshold: float = 0.0,
        predict_with: Literal["student", "teacher"] = "student",
        student_wait_epochs: int = 0,
        consistency_rampup_epochs: int = 0,
        feedback_baseline: Literal["moving_average", "none"] = "moving_average",
        feedback_baseline_rate: float = 0.01,
    ) -> None:
        super().__init__(num_classes, num_train)
        if feedback not in ("first_order", "exact", "none"):
            raise ConfigError(f"semi_supervised: feedback must be first_order, exact or none, got {feedback!r}")
        if pseudo_labels not in ("hard", "soft"):
            raise ConfigError(f"semi_supervised: pseudo_labels must be hard or soft, got {pseudo_labels!r}")
        if pseudo_label_view not in ("strong", "weak"):
            raise ConfigError(f"semi_supervised: pseudo_label_view must be strong or weak, got {pseudo_label_view!r}")
        if feedback_baseline not in ("moving_average", "none"):
            raise ConfigError(f"semi_supervised: feedback_baseline must be moving_average or none, "
                              f"got {feedback_baseline!r}")
        if predict_with not in ("student", "teacher"):
            raise ConfigError(f"semi_supervised: predict_with must be student or teacher, got {predict_with!r}")
        self.teacher = Classifier(teacher_backbone, num_classes)
        self.student = Classifier(student_backbone, num_classes)
        self.student_lr, self.student_min_lr = float(student_lr), float(student_min_lr)
        self.consistency_weight, self.feedback, self.feedback_weight = consistency_weight, feedback, feedback_weight
        self.pseudo_labels, self.pseudo_label_view = pseudo_labels, pseudo_label_view
        self.temperature, self.threshold, self.predict_with = temperature, threshold, predict_with
        self.student_opt = torch.optim.SGD(self.student.parameters(), lr=self.student_lr,
                                           momentum=student_momentum, weight_decay=student_weight_decay)
        self.student_wait_epochs, self.consistency_rampup_epochs = student_wait_epochs, consistency_rampup_epochs
        self._hist = np.zeros(num_classes)
        self._student_active, self._lambda_c = student_wait_epochs <= 0, float(consistency_weight)
        self.feedback_baseline, self.feedback_baseline_rate = feedback_baseline, float(feedback_baseline_rate)
        self._feedback_avg = 0.0

    @classmethod
    def from_config(cls, *, backbone: dict[str, Any], num_classes: int, num_train: int, **params: Any) -> Task:
        """Two backbones from one spec (a checkpoint, if given, initialises both)."""
        from fer_backbone.models import Backbone

        return cls(Backbone(**backbone), Backbone(**backbone), num_classes=num_classes, num_train=num_train, **params)

    # -- the loop's interface ----------------------------------------------------------
    def optimizer_parameters(self) -> list[nn.Parameter]:
        """Return the teacher's parameters (the student is updated inside :meth:`forward`)."""
        return [p for p in self.teacher.parameters() if p.requires_grad]

    def _net(self) -> Classifier:
        return self.student if self.predict_with == "student" else self.teacher

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits of the student (or teacher, see ``predict_with``)."""
        return self._net()(images)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features of the student (or teacher)."""
        return self._net().backbone(images)

    def embed_and_predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding and logits in one backbone pass."""
        net = self._net()
        e = net.backbone(images)
        return e, net.fc(e)

    def student_lr_at(self, epoch: int, num_epochs: int) -> float:
        """Student cosine schedule (per epoch, like the loop's ``cosine`` scheduler)."""
        t = min(epoch, num_epochs) / max(num_epochs, 1)
        return self.student_min_lr + 0.5 * (self.student_lr - self.student_min_lr) * (1 + math.cos(math.pi * t))

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Set the student's learning rate, the wait and ramp state; reset the histogram."""
        for g in self.student_opt.param_groups:
            g["lr"] = self.student_lr_at(epoch, num_epochs)
        self._student_active = epoch >= self.student_wait_epochs
        ramp = min(1.0, epoch / self.consistency_rampup_epochs) if self.consistency_rampup_epochs > 0 else 1.0
        self._lambda_c = self.consistency_weight * ramp
        self._hist = np.zeros(self.num_classes)

    def epoch_metrics(self) -> dict[str, float]:
        """Pseudo-label class histogram of the epoch and its distance from uniform."""
        total = self._hist.sum()
        if total <= 0:
            return {}
        frac = self._hist / total
        out = {f"pseudo_frac_{k}": float(v) for k, v in enumerate(frac)}
        out["pseudo_tv_uniform"] = float(0.5 * np.abs(frac - 1.0 / self.num_classes).sum())
        return out

    def extra_state(self) -> dict[str, Any]:
        """Return the student's optimizer state and the running histogram."""
        return {"student_opt": self.student_opt.state_dict(), "hist": self._hist.tolist(),
                "feedback_avg": self._feedback_avg}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""
        if "student_opt" in state:
            self.student_opt.load_state_dict(state["student_opt"])
        if "hist" in state:
            self._hist = np.asarray(state["hist"], dtype=float)
        self._feedback_avg = float(state.get("feedback_avg", 0.0))

    def baselined_feedback(self, f: float) -> float:
        """``f`` minus the moving average of ``f`` (updated with this ``f`` first), or ``f``.

        google-research ``meta_pseudo_labels/training_utils.py``:
        ``moving_dot_product -= 0.01 * (moving_dot_product - dot_product)``, then
        ``dot_product - moving_dot_product`` is used.
        """
        if self.feedback_baseline == "none":
            return f
        self._feedback_avg -= self.feedback_baseline_rate * (self._feedback_avg - f)
        return f - self._feedback_avg

    # -- one step ------------------------------------------------------------------------
    def _student_update(self, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor,
                        target: torch.Tensor, mask: torch.Tensor) -> tuple[float, float, float]:
        """Step S on the pseudo-labels; return (L_u, CE_labeled(S_new), f)."""
        params = [p for p in self.student.parameters() if p.requires_grad]
        # CE_labeled before and after the step are measured on the same batch (x_l alone), so
        # batch-norm statistics do not differ between the two and bias f
        with torch.no_grad():
            ce_old = F.cross_entropy(self.student(x_l).float(), y_l)
        with torch.enable_grad():
            per = soft_cross_entropy(self.student(x_u).float(), target)
            l_u = (per * mask).sum() / mask.sum().clamp(min=1.0)
            self.student_opt.zero_grad(set_to_none=True)
            l_u.backward()
        g_u = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
        lr = float(self.student_opt.param_groups[0]["lr"])
        self.student_opt.step()
        if self.feedback == "exact":
            with torch.enable_grad():
                ce_new_t = F.cross_entropy(self.student(x_l).float(), y_l)
                g_l = torch.autograd.grad(ce_new_t, params, allow_unused=True)
            g_l = [torch.zeros_like(p) if g is None else g for g, p in zip(g_l, params, strict=True)]
            ce_new = float(ce_new_t.detach())
            f = feedback_exact(g_l, g_u, lr)
        else:
            with torch.no_grad():
                ce_new = float(F.cross_entropy(self.student(x_l).float(), y_l))
            f = feedback_first_order(ce_old, ce_new) if self.feedback == "first_order" else 0.0
        self.student_opt.zero_grad(set_to_none=True)
        return float(l_u.detach()), ce_new, f

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One alternating step: student update inside, teacher loss returned."""
        for key in ("image", "label", "unlabeled_weak", "unlabeled_strong"):
            if key not in batch:
                raise ConfigError(
                    f"semi_supervised: batch lacks '{key}'; wrap the training set in SemiSupervisedDataset"
                )
        x_l, y_l = batch["image"], batch["label"]
        x_w, x_s = batch["unlabeled_weak"], batch["unlabeled_strong"]
        n_l, n_u = x_l.shape[0], x_w.shape[0]
        t_all = self.teacher(torch.cat([x_l, x_w, x_s])).float()
        t_l, t_w, t_s = t_all[:n_l], t_all[n_l : n_l + n_u], t_all[n_l + n_u :]
        ce_teacher = F.cross_entropy(t_l, y_l)

        p_w = torch.softmax(t_w.detach() / self.temperature, dim=1)
        conf = torch.softmax(t_w.detach(), dim=1).max(dim=1).values
        mask = (conf >= self.threshold).float()
        if self.pseudo_labels == "hard":
            cons_target: torch.Tensor = p_w.argmax(dim=1)
        else:
            cons_target = p_w
        consistency = (soft_cross_entropy(t_s, cons_target) * mask).sum() / mask.sum().clamp(min=1.0)

        src = t_s if self.pseudo_label_view == "strong" else t_w
        p_src = torch.softmax(src.detach() / self.temperature, dim=1)
        hard = p_src.argmax(dim=1)
        target = hard if self.pseudo_labels == "hard" else p_src
        self._hist += np.bincount(hard[mask > 0].cpu().numpy(), minlength=self.num_classes)[: self.num_classes]

        if self._student_active:
            l_u, ce_new, f_raw = self._student_update(x_l, y_l, x_s, target, mask)
        else:
            l_u, ce_new, f_raw = float("nan"), float("nan"), 0.0
        f = self.baselined_feedback(f_raw) if self._student_active and self.feedback != "none" else f_raw
        f_eff = self.feedback_weight * f
        fb_ce = (soft_cross_entropy(t_s, target) * mask).sum() / mask.sum().clamp(min=1.0)
        feedback_loss = f_eff * fb_ce
        loss = ce_teacher + self._lambda_c * consistency + feedback_loss
        dev = loss.device
        out = {
            "loss": loss,
            "ce_teacher": ce_teacher.detach(),
            "consistency": consistency.detach(),
            "feedback": torch.tensor(f, device=dev),
            "feedback_raw": torch.tensor(f_raw, device=dev),
            "feedback_loss": feedback_loss.detach(),
            "mask_rate": mask.mean(),
        }
        if self._student_active:  # absent while the student waits
            out["student_ce_unlabeled"] = torch.tensor(l_u, device=dev)
            out["student_ce_labeled"] = torch.tensor(ce_new, device=dev)
        return out


class StudentFinetuneTask(Task):
    """The student of a :class:`SemiSupervisedTask`, fine-tuned on labeled data with plain CE.

    Meta Pseudo Labels fine-tunes the student on the labeled data after the teacher/student
    phase (the paper, Sec. 3; google-research ``meta_pseudo_labels`` and the public PyTorch
    port both do it). The module shares the student's weights: training it updates the
    semi-supervised task's student in place.
    """

    name = "student_finetune"
    supports_ddp = False

    def __init__(self, semi: SemiSupervisedTask) -> None:
        super().__init__(semi.num_classes, semi.num_train)
        self.student = semi.student

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-entropy of the student on the labeled batch."""
        logits = self.student(batch["image"])
        ce = F.cross_entropy(logits.float(), batch["label"])
        return {"loss": ce, "ce": ce.detach(), "logits": logits.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits of the student."""
        return self.student(images)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features of the student."""
        return self.student.backbone(images)


# ---------------------------------------------------------------------------------- data
def weak_augment(flip: bool = True, jitter: float = 0.4, translate: float = 0.125) -> Callable[[torch.Tensor], torch.Tensor]:
    """Weak view (paper: flip, colour jitter): flip, brightness/contrast/saturation jitter, shift.

    Works on uint8 ``(3, H, W)`` tensors at the network's input size.
    """
    from torchvision.transforms import v2 as T

    ops: list[Any] = []
    if flip:
        ops.append(T.RandomHorizontalFlip())
    if jitter > 0:
        ops.append(T.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
    if translate > 0:
        ops.append(T.RandomAffine(degrees=0, translate=(translate, translate)))
    return T.Compose(ops) if ops else (lambda x: x)


def strong_augment(weak: Callable[[torch.Tensor], torch.Tensor], num_ops: int = 2, magnitude: int = 10,
                   erase_p: float = 0.5) -> Callable[[torch.Tensor], torch.Tensor]:
    """Strong view (paper: RandAugment): the weak view, RandAugment, then random erasing."""
    from torchvision.transforms import v2 as T

    ra = T.RandAugment(num_ops=num_ops, magnitude=magnitude)
    erase = T.RandomErasing(p=erase_p, value=0) if erase_p > 0 else None

    def apply(x: torch.Tensor) -> torch.Tensor:
        x = ra(weak(x))
        return erase(x) if erase is not None else x

    return apply


class SemiSupervisedDataset(Dataset):
    """Pair each labeled item with a random unlabeled image in a weak and a strong view.

    Items are the labeled data set's dicts plus ``unlabeled_weak`` and ``unlabeled_strong``
    (uint8 ``(3, S, S)``, normalised by the training loop like ``image``). The unlabeled
    image and the views are drawn with torch's generator seeded per item by the loop's
    :class:`~fer_backbone.data.SeededSampler`, so a run is reproducible and resumable with
    any number of loader workers; with the class-balanced sampler over the labeled set the
    labeled half of each batch is class-balanced, as in the paper.

    Parameters
    ----------
    labeled : Dataset
        E.g. :class:`~fer_backbone.data.FERDataset` (items with ``image``, ``label``, ``index``).
    unlabeled : FERDataset-like
        Anything with ``__len__`` and ``raw_image(i) -> uint8 (3, H, W)``; labels, if any, are
        never read.
    image_size : int
        Unlabeled images are resized to this side before augmentation.
    weak, strong : callable
        uint8 ``(3, S, S)`` -> uint8 ``(3, S, S)`` augmentations.
    """

    def __init__(self, labeled: Dataset, unlabeled: Any, image_size: int,
                 weak: Callable[[torch.Tensor], torch.Tensor],
                 strong: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if len(unlabeled) == 0:
            raise ConfigError("semi_supervised: the unlabeled set is empty")
        self.labeled, self.unlabeled = labeled, unlabeled
        self.image_size, self.weak, self.strong = image_size, weak, strong

    def __len__(self) -> int:
        return len(self.labeled)

    #: Takes ``(index, seed)`` pairs (:class:`~fer_backbone.data.SeededSampler`).
    accepts_seeded_index = True

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        from fer_backbone.data import split_key
        from fer_backbone.data.dataset import seeded_call

        i, seed = split_key(key)
        return seeded_call(seed, lambda: self._item(i))

    def _item(self, i: int) -> dict[str, torch.Tensor]:
        from torchvision.transforms.v2 import functional as TF

        item = dict(self.labeled[i])
        j = int(torch.randint(len(self.unlabeled), (1,)))
        img = TF.resize(self.unlabeled.raw_image(j), [self.image_size, self.image_size], antialias=True)
        item["unlabeled_weak"] = self.weak(img)
        item["unlabeled_strong"] = self.strong(img)
        return item


# ------------------------------------------------------------------------------- recipes
class UnlabeledImages:
    """Every image under a folder (recursively); labels are neither needed nor read."""

    def __init__(self, root: str | Path) -> None:
        from cdrscreen.core.errors import InputError
        from fer_backbone.data.readers import IMAGE_SUFFIXES

        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, "unlabeled image folder not found")
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise InputError(self.root, "no images (jpg/png/bmp/webp) under the unlabeled folder")

    def __len__(self) -> int:
        return len(self.paths)

    def raw_image(self, i: int) -> torch.Tensor:
        """Image ``i`` as uint8 ``(3, H, W)``."""
        from fer_backbone.data.dataset import load_image

        return load_image(self.paths[i])


def run_semi_recipe(recipe: Recipe, out_dir: str | Path, *, resume: bool = True) -> Any:
    """Train a validated recipe with a ``semi:`` section with the one loop; return its ``FitResult``.

    The labeled training split goes through the class-balanced sampler (as in the paper);
    each labeled item carries a weak and a strong view of a random unlabeled image.
    """
    from torchvision.transforms.v2 import functional as TF

    from cdrscreen.core.io import write_json
    from fer_backbone.build import backbone_spec, build_data
    from fer_backbone.data import ClassBalancedSampler, FERDataset
    from fer_backbone.tasks import build_task
    from fer_backbone.train import fit

    proto, semi = recipe, recipe.semi
    if semi is None:
        raise ConfigError(f"recipe '{recipe.name}' has no 'semi:' section")
    from fer_backbone.distributed import check_task, env_world_size

    if env_world_size() > 1:
        check_task(SemiSupervisedTask)
    d = proto.data
    bundle = build_data(d)
    train = bundle.train
    if semi.labels_per_class is not None:
        rng = np.random.default_rng(d.split_seed)
        keep = np.concatenate([
            rng.choice(np.flatnonzero(train.labels == c), min(semi.labels_per_class, int((train.labels == c).sum())),
                       replace=False) for c in range(len(bundle.class_names)) if (train.labels == c).any()
        ])
        unlabeled: Any = FERDataset(train.subset(np.setdiff1d(np.arange(len(train)), keep)), d.image_size)
        train = train.subset(np.sort(keep))
    else:
        unlabeled = UnlabeledImages(semi.unlabeled_path)
    size = d.image_size
    weak = weak_augment(semi.weak.flip, semi.weak.jitter, semi.weak.translate)
    strong = strong_augment(weak, semi.strong.num_ops, semi.strong.magnitude, semi.strong.erase_p)
    labeled = FERDataset(train, size, d.resize, train=True,
                         transform=lambda im: weak(TF.resize(im, [size, size], antialias=True)))
    data = SemiSupervisedDataset(labeled, unlabeled, size, weak, strong)
    spec = backbone_spec(proto)
    task = build_task("semi_supervised", backbone=spec, num_classes=len(bundle.class_names),
                      num_train=len(train), **proto.task.params)
    val = FERDataset(bundle.val, size, d.resize)
    test = FERDataset(bundle.test, size, d.resize) if bundle.test is not None else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "run.json", {"recipe": proto.model_dump(mode="json"),
                                      "semi": semi.model_dump(mode="json"),
                                      "n_train_labeled": len(train), "n_unlabeled": len(unlabeled),
                                      "n_val": len(bundle.val),
                                      "n_test": len(bundle.test) if bundle.test is not None else 0})
    metadata = {"task": "semi_supervised", "task_params": proto.task.params, "backbone": spec,
                "image_size": size, "resize": d.resize, "recipe_name": proto.name,
                "num_train": len(train), "num_classes": len(bundle.class_names),
                "semi": semi.model_dump(mode="json")}
    res = fit(task, data, proto.train, out_dir, val_data=val, test_data=test,
              sampler=ClassBalancedSampler(train.labels, num_samples=semi.samples_per_epoch or len(unlabeled),
                                           seed=proto.train.seed), resume=resume,
              class_names=bundle.class_names, mean=d.mean, std=d.std, metadata=metadata)
    if semi.finetune_epochs == 0:
        return res
    return finetune_student(task, FERDataset(train, size, d.resize, train=True), proto.train, semi, out_dir,
                            val=val, test=test, class_names=bundle.class_names, mean=d.mean, std=d.std,
                            metadata=metadata, resume=resume)


def finetune_student(task: SemiSupervisedTask, labeled: Dataset, train_cfg: Any, semi: SemiConfig,
                     out_dir: Path, *, val: Dataset | None, test: Dataset | None, class_names: list[str],
                     mean: tuple[float, ...], std: tuple[float, ...], metadata: dict[str, Any],
                     resume: bool = True) -> Any:
    """Fine-tune the (selected) student on the labeled set; the run's ``best.pt`` becomes the result.

    The fine-tuning run lives in ``out_dir/finetune`` (its own checkpoints and metrics,
    resumable); the selected fine-tuned student is written back into the semi-supervised
    task and saved as ``out_dir/checkpoints/best.pt`` (what ``evaluate`` and ``export``
    read), with ``metadata["finetune_epochs"]``. Returns the fine-tuning ``FitResult``.
    """
    from fer_backbone.data import ClassBalancedSampler
    from fer_backbone.train import _atomic_save, fit

    cfg = train_cfg.model_copy(update={"epochs": semi.finetune_epochs, "optimizer": "sgd",
                                       "lr": semi.finetune_lr or task.student_lr, "scheduler": "none",
                                       "weight_decay": semi.finetune_weight_decay})
    ft = StudentFinetuneTask(task)
    res = fit(ft, labeled, cfg, out_dir / "finetune", val_data=val, test_data=test,
              sampler=ClassBalancedSampler(labeled.samples.labels, seed=cfg.seed), resume=resume,
              class_names=class_names, mean=mean, std=std, metadata=metadata)
    meta = dict(metadata, finetune_epochs=semi.finetune_epochs, finetune_best_epoch=res.best_epoch)
    _atomic_save({"task": task.state_dict(), "epoch": res.best_epoch, "class_names": class_names,
                  "mean": tuple(mean), "std": tuple(std), "metadata": meta}, out_dir / "checkpoints" / "best.pt")
    return res
