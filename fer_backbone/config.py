"""The FER recipe schema: one pydantic model for every ``cdrscreen-fer`` recipe file.

A recipe is a YAML file validated with :func:`cdrscreen.core.config.load_config` (unknown
keys are errors, with the closest valid key suggested)::

    name: scn_rafdb
    data: {format: rafdb, root: /data/RAF-DB, image_size: 224, noise_rate: 0.0}
    model: {backbone: resnet18, checkpoint: /weights/ms_celeb_resnet18.pth}
    task: {name: scn, params: {margin_1: 0.07, relabel_epoch: 10}}
    train: {epochs: 70, batch_size: 64, lr: 0.001, scheduler: exponential, gamma: 0.9}
    semi: {...}        # optional: teacher/student pretraining (task.name: semi_supervised)
    temporal: {...}    # optional, alone: phase 2 (temporal encoder on a frozen network)

:attr:`Recipe.kind` (``supervised``, ``semi`` or ``temporal``) selects the runner
(:func:`fer_backbone.build.run_recipe`). "Protocol" is kept for the evaluation protocols of
``cdrscreen``; here the file is a *recipe*. See ``docs/fer.md`` for every field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from cdrscreen.core.config import StrictModel, apply_overrides, load_config, read_yaml

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_Strict = StrictModel


def default_num_workers() -> int:
    """DataLoader workers by default: the usable cores minus one (the training process)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(cores - 1, 0)


class DataConfig(_Strict):
    """Where the images are and how they are prepared (see :mod:`fer_backbone.data.readers`)."""

    format: Literal["digits", "rafdb", "ferplus", "affectnet", "affwild2", "image_folder"]
    root: Path | None = None
    train_path: Path | None = None
    test_path: Path | None = None
    images_root: Path | None = None
    ferplus_mode: Literal["majority", "crossentropy", "probability"] = Field(
        "majority", description="FERPlus training targets as Microsoft's reference reader (validation and "
                                "test always use majority)")
    affectnet_classes: Literal[7, 8] = 7
    affectnet_crop_face: bool = Field(False, description="crop AffectNet images to the CSV's face box")
    max_per_class: int | None = Field(None, ge=1)
    train_limit: int | None = Field(None, ge=1, description="use only the first N training samples")
    image_size: int = Field(224, ge=8)
    resize: int | None = Field(None, ge=8)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of the training data held out for model "
                                                              "selection, unless the data set has an official "
                                                              "validation split (FERPlus FER2013Valid)")
    split_seed: int = 0
    noise_rate: float = Field(0.0, ge=0, le=1)
    noise_seed: int = 0
    sampler: Literal["random", "balanced"] = "random"
    cache_dir: Path | None = Field(None, description="folder for pre-shrunk uint8 image caches (decode and "
                                                      "resize once, memory-mapped); none = decode every read")
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
    num_workers: int = Field(default_factory=default_num_workers, ge=0,
                             description="DataLoader worker processes (default: cores - 1; 0 = load in the "
                                         "training process)")
    prefetch_factor: int = Field(4, ge=1, description="batches each worker loads ahead")
    log_every: int = Field(50, ge=1, description="steps between host reads of the loss sums (NaN check, "
                                                 "progress bar)")
    seed: int = 0
    deterministic: bool = Field(False, description="deterministic kernels (cudnn.benchmark off); tests "
                                                   "and bit-exact resume on GPU need it")
    threads: int | None = Field(None, ge=1)
    selection: Literal["val", "last", "test"] = "val"
    select_metric: Literal["accuracy", "mean_class_accuracy", "macro_f1"] = "accuracy"
    max_steps_per_epoch: int | None = Field(None, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    sync_batchnorm: bool = Field(False, description="multi-process CUDA runs: BatchNorm statistics over the global batch")


class WeakConfig(_Strict):
    """Weak view: flip, colour jitter, translation (fraction of the side)."""

    flip: bool = True
    jitter: float = Field(0.4, ge=0)
    translate: float = Field(0.125, ge=0, lt=1)


class StrongConfig(_Strict):
    """Strong view: RandAugment on top of the weak view, then random erasing."""

    num_ops: int = Field(2, ge=0)
    magnitude: int = Field(10, ge=0, le=30)
    erase_p: float = Field(0.5, ge=0, le=1)


class SemiConfig(_Strict):
    """Where the unlabeled images come from, and how both views are made.

    ``unlabeled_path``: a folder of face images (searched recursively). ``labels_per_class``:
    keep only this many labeled images per class from the training split and use the rest
    of it, labels dropped, as unlabeled data (for controlled experiments such as digits).
    Exactly one of the two is required. ``samples_per_epoch``: class-balanced labeled draws
    per epoch (steps per epoch = this / batch size); by default one epoch pairs every
    unlabeled image once on average.
    """

    unlabeled_path: Path | None = None
    labels_per_class: int | None = Field(None, ge=1)
    samples_per_epoch: int | None = Field(None, ge=1, description="labeled draws per epoch "
                                          "(default: the number of unlabeled images)")
    weak: WeakConfig = Field(default_factory=WeakConfig)
    strong: StrongConfig = Field(default_factory=StrongConfig)
    finetune_epochs: int = Field(0, ge=0, description="after the teacher/student phase, fine-tune the student "
                                                      "on the labeled data for this many epochs (Meta Pseudo "
                                                      "Labels; 0 = off)")
    finetune_lr: float | None = Field(None, gt=0, description="SGD learning rate of the fine-tuning "
                                                              "(default: the student's)")
    finetune_weight_decay: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> SemiConfig:
        if (self.unlabeled_path is None) == (self.labels_per_class is None):
            raise ValueError("give exactly one of semi.unlabeled_path and semi.labels_per_class")
        return self


class AnnotationConfig(_Strict):
    """Aff-Wild2-style annotation folders and the face crops."""

    train: Path
    val: Path
    frames_root: Path
    image_ext: str = ".jpg"


class EncoderConfig(_Strict):
    """:class:`~fer_backbone.temporal.TemporalClassifier` parameters."""

    window: int = Field(64, ge=1)
    stride: int = Field(32, ge=1)
    causal: bool = False
    d_model: int = Field(256, ge=8)
    nhead: int = Field(4, ge=1)
    num_layers: int = Field(2, ge=1)
    dim_feedforward: int = Field(512, ge=8)
    dropout: float = Field(0.1, ge=0, lt=1)
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    class_weight: Literal["balanced"] | None = None
    seed: int = 0
    device: str = "cpu"


class SmoothingConfig(_Strict):
    """Post-processing of the encoder's frame predictions (see :mod:`fer_backbone.smoothing`)."""

    method: Literal["vote", "mean", "gaussian", "ema"] = "vote"
    window: int = Field(15, ge=1)
    mode: Literal["centered", "block"] = "centered"


class TemporalConfig(_Strict):
    """Phase 2: frozen phase-1 network, annotations, encoder, smoothing."""

    student: Path = Field(description="phase-1 run folder or its checkpoints/best.pt (frozen)")
    annotations: AnnotationConfig
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    smoothing: SmoothingConfig = Field(default_factory=SmoothingConfig)
    batch_size: int = Field(128, ge=1, description="frames per forward pass of the frozen network")


RecipeKind = Literal["supervised", "semi", "temporal"]


class Recipe(_Strict):
    """A complete FER recipe (one schema for supervised, semi-supervised and temporal runs)."""

    name: str
    description: str = ""
    data: DataConfig | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    semi: SemiConfig | None = None
    temporal: TemporalConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if self.temporal is not None:
            extra = sorted({"data", "model", "task", "train", "semi"} & self.model_fields_set)
            if extra:
                raise ValueError(f"a temporal recipe takes only name, description and temporal; "
                                 f"remove {', '.join(extra)}")
            return self
        if self.data is None:
            raise ValueError("missing key 'data' (only a temporal recipe goes without it)")
        if self.semi is not None and self.task.name != "semi_supervised":
            raise ValueError(f"a recipe with a semi section needs task.name semi_supervised, got {self.task.name!r}")
        if self.semi is None and self.task.name == "semi_supervised":
            raise ValueError("task semi_supervised needs a 'semi:' section")
        return self

    @property
    def kind(self) -> RecipeKind:
        """Which runner trains it: ``temporal``, ``semi`` or ``supervised``."""
        if self.temporal is not None:
            return "temporal"
        return "semi" if self.semi is not None else "supervised"


def read_recipe(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a recipe file as a mapping and apply ``dotted.key=yaml_value`` overrides (no validation).

    Raises
    ------
    ConfigError
        One line naming the file: missing, not YAML, not a mapping, or a malformed override.
    """
    return apply_overrides(read_yaml(path, "recipe file"), overrides)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe file; ``overrides`` are ``dotted.key=yaml_value`` strings.

    Raises
    ------
    ConfigError
        One line naming the file and the offending field(s), with close-match suggestions
        for misspelt keys (:func:`cdrscreen.core.config.format_validation_error`).
    """
    return load_config(Recipe, path, overrides, "recipe file")
