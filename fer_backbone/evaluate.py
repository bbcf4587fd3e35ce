"""Evaluation: accuracy, mean class accuracy, macro-F1 and the confusion matrix."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from fer_backbone.augment import prepare_batch
from fer_backbone.tasks.base import Task


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, mean class accuracy (mean recall over classes present), macro-F1 and confusion matrix.

    Returns
    -------
    dict
        ``accuracy``, ``mean_class_accuracy``, ``macro_f1`` (floats), ``confusion``
        (list of lists, rows = true class) and ``n``.
    """
    from sklearn.metrics import confusion_matrix, f1_score

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = np.arange(num_classes)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(axis=1)
    present = support > 0
    recall = np.diag(cm)[present] / support[present]
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "mean_class_accuracy": float(recall.mean()) if present.any() else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels[present], average="macro", zero_division=0)),
        "confusion": cm.tolist(),
        "n": int(len(y_true)),
    }


@torch.no_grad()
def predict(task: Task, loader: Iterable[dict[str, torch.Tensor]], device: torch.device,
            mean: tuple[float, ...], std: tuple[float, ...], channels_last: bool = False,
            amp_dtype: torch.dtype | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every batch in ``loader`` (task in eval mode, no augmentation)."""
    was_training = task.training
    task.eval()
    logits, labels = [], []
    for batch in loader:
        b = prepare_batch(batch, device, mean, std, channels_last=channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            z = task.predict(b["image"])
        logits.append(z.float().cpu())
        labels.append(b["label"].cpu())
    task.train(was_training)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def evaluate(task: Task, loader: Iterable[dict[str, torch.Tensor]], device: torch.device,
             mean: tuple[float, ...], std: tuple[float, ...], channels_last: bool = False,
             amp_dtype: torch.dtype | None = None) -> dict:
    """:func:`classification_metrics` of ``task`` on ``loader``."""
    z, y = predict(task, loader, device, mean, std, channels_last, amp_dtype)
    return classification_metrics(y, z.argmax(1), task.num_classes)
