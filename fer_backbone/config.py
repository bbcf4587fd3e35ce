"""Recipe (protocol file) schema for FER training: data, model, task, training loop.

A protocol is a YAML file validated with pydantic (unknown keys are errors)::

    name: scn_rafdb
    data: {format: rafdb, root: /data/RAF-DB, image_size: 224, noise_rate: 0.0}
    model: {backbone: resnet18, checkpoint: /weights/ms_celeb_resnet18.pth}
    task: {name: scn, params: {margin_1: 0.07, relabel_epoch: 10}}
    train: {epochs: 70, batch_size: 64, lr: 0.001, scheduler: exponential, gamma: 0.9}

See ``docs/fer.md`` for every field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from cdrscreen.core.config import StrictModel, apply_overrides, format_validation_error, read_yaml
from cdrscreen.core.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_Strict = StrictModel


class DataConfig(_Strict):
    """Where the images are and how they are prepared (see :mod:`fer_backbone.data.readers`)."""

    format: Literal["digits", "rafdb", "ferplus", "affectnet", "affwild2", "image_folder"]
    root: Path | None = None
    train_path: Path | None = None
    test_path: Path | None = None
    images_root: Path | None = None
    ferplus_mode: Literal["majority", "argmax", "probability"] = "majority"
    affectnet_classes: Literal[7, 8] = 7
    max_per_class: int | None = Field(None, ge=1)
    train_limit: int | None = Field(None, ge=1, description="use only the first N training samples")
    image_size: int = Field(224, ge=8)
    resize: int | None = Field(None, ge=8)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    val_fraction: float = Field(0.1, gt=0, lt=1)
    split_seed: int = 0
    noise_rate: float = Field(0.0, ge=0, le=1)
    noise_seed: int = 0
    sampler: Literal["random", "balanced"] = "random"
    digits_test_fraction: float = Field(0.3, gt=0, lt=1)


class ModelConfig(_Strict):
    """A timm backbone (never downloaded) and an optional local checkpoint."""

    backbone: str = "resnet18"
    checkpoint: Path | None = None
    drop_rate: float = Field(0.0, ge=0, lt=1)


class TaskConfig(_Strict):
    """The method and its parameters (keyword arguments of the task class)."""

    name: str = "baseline"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """The training loop's settings (shared by every task)."""

    epochs: int = Field(70, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = 0.9
    scheduler: Literal["exponential", "cosine", "none"] = "exponential"
    gamma: float = Field(0.9, gt=0, le=1)
    min_lr: float = Field(0.0, ge=0)
    flip: bool = True
    noise_std: float = Field(0.0, ge=0)
    flip_noise: Literal["one_of", "independent"] = Field(
        "one_of", description="flip and noise both on: one of them per image with p 0.25 each (official SCN) "
                              "or each independently with p 0.5")
    erase_p: float = Field(0.0, ge=0, le=1)
    augment_keys: list[str] = Field(default_factory=lambda: ["image"])
    amp: Literal["auto", "on", "off"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False
    device: str = "auto"
    num_workers: int = Field(0, ge=0)
    seed: int = 0
    deterministic: bool = True
    threads: int | None = Field(None, ge=1)
    selection: Literal["val", "last", "test"] = "val"
    select_metric: Literal["accuracy", "mean_class_accuracy", "macro_f1"] = "accuracy"
    max_steps_per_epoch: int | None = Field(None, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    sync_batchnorm: bool = Field(False, description="multi-process CUDA runs: BatchNorm statistics over the global batch")


class Protocol(_Strict):
    """A complete FER training recipe."""

    name: str
    description: str = ""
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


def read_recipe(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a recipe file as a mapping and apply ``dotted.key=yaml_value`` overrides (no validation).

    Raises
    ------
    ConfigError
        One line naming the file: missing, not YAML, not a mapping, or a malformed override.
    """
    return apply_overrides(read_yaml(path, "recipe file"), overrides)


def config_error(path: str | Path, err: ValidationError, model: type[BaseModel] | None = None) -> ConfigError:
    """One-line :class:`ConfigError` naming the file and every invalid field of ``err``."""
    return ConfigError(format_validation_error(err, str(path), model or Protocol))


def load_protocol(path: str | Path, overrides: list[str] | None = None) -> Protocol:
    """Read and validate a protocol file; ``overrides`` are ``dotted.key=yaml_value`` strings.

    Raises
    ------
    ConfigError
        One line naming the file and the offending field(s).
    """
    raw = read_recipe(path, overrides)
    try:
        return Protocol.model_validate(raw)
    except ValidationError as err:
        raise config_error(path, err) from None
