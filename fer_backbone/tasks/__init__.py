"""FER methods as task objects; :func:`build_task` looks one up by name."""

from __future__ import annotations

import importlib
from typing import Any

from cdrscreen.core.errors import ConfigError
from fer_backbone.tasks.base import Task

#: name -> "module:Class" (imported lazily)
TASKS: dict[str, str] = {
    "baseline": "fer_backbone.tasks.baseline:BaselineTask",
    "scn": "fer_backbone.tasks.scn:SCNTask",
    "slm_aea": "fer_backbone.tasks.slm_aea:SLMAEATask",
    "semi_supervised": "fer_backbone.tasks.semi_supervised:SemiSupervisedTask",
}


def get_task_class(name: str) -> type[Task]:
    """Return the task class registered as ``name``."""
    if name not in TASKS:
        raise ConfigError(f"unknown FER task '{name}'; available: {', '.join(TASKS)}")
    mod, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def build_task(name: str, *, backbone: dict[str, Any], num_classes: int, num_train: int,
               **params: Any) -> Task:
    """Instantiate task ``name`` (see :meth:`Task.from_config`)."""
    cls = get_task_class(name)
    try:
        return cls.from_config(backbone=backbone, num_classes=num_classes, num_train=num_train, **params)
    except TypeError as err:
        raise ConfigError(f"task '{name}': bad parameters ({err})") from None


__all__ = ["TASKS", "Task", "build_task", "get_task_class"]
