"""Turn a :class:`~fer_backbone.config.Recipe` into data sets, a task and a training run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from cdrscreen.core.errors import ConfigError
from fer_backbone.config import DataConfig, Recipe
from fer_backbone.data import (
    ClassBalancedSampler,
    FERDataset,
    NoiseReport,
    Samples,
    digits_train_test,
    inject_label_noise,
    read_affectnet,
    read_affwild2,
    read_ferplus,
    read_image_folder,
    read_rafdb,
    train_val_split,
)


@dataclasses.dataclass
class DataBundle:
    """Training, validation (from training data) and test samples, plus the noise report."""

    train: Samples
    val: Samples
    test: Samples | None
    class_names: list[str]
    noise: NoiseReport | None


def _req(cfg: DataConfig, field: str) -> Path:
    v = getattr(cfg, field)
    if v is None:
        raise ConfigError(f"data.format '{cfg.format}' needs data.{field}")
    return Path(v)


def read_splits(cfg: DataConfig) -> tuple[Samples, Samples | None, Samples | None]:
    """Read the data set's official training, validation (if it has one) and test samples."""
    f = cfg.format
    if f == "digits":
        train, test = digits_train_test(cfg.digits_test_fraction, cfg.split_seed)
        return train, None, test
    if f == "rafdb":
        root = _req(cfg, "root")
        return read_rafdb(root, "train"), None, read_rafdb(root, "test")
    if f == "ferplus":
        csv_path = _req(cfg, "train_path")
        imgs = Path(cfg.images_root) if cfg.images_root is not None else csv_path.parent
        read = lambda split: read_ferplus(csv_path, imgs, split, cfg.ferplus_mode)  # noqa: E731
        # FER2013Valid is the validation split when its folder is there (Microsoft's train.py)
        return read("train"), (read("valid") if (imgs / "FER2013Valid").is_dir() else None), read("test")
    if f == "affectnet":
        imgs = _req(cfg, "images_root")
        train = read_affectnet(_req(cfg, "train_path"), imgs, cfg.affectnet_classes, cfg.max_per_class,
                               cfg.split_seed, crop_face=cfg.affectnet_crop_face)
        test = (read_affectnet(cfg.test_path, imgs, cfg.affectnet_classes, crop_face=cfg.affectnet_crop_face)
                if cfg.test_path else None)
        return train, None, test
    if f == "affwild2":
        frames = _req(cfg, "images_root")
        train = read_affwild2(_req(cfg, "train_path"), frames)
        test = read_affwild2(cfg.test_path, frames) if cfg.test_path else None
        return train, None, test
    train = read_image_folder(_req(cfg, "train_path"))
    test = read_image_folder(cfg.test_path, train.class_names) if cfg.test_path else None
    return train, None, test


def build_data(cfg: DataConfig) -> DataBundle:
    """Read, optionally subsample, inject label noise, and take the validation set.

    The validation set is the data set's official one when it has one (FERPlus
    ``FER2013Valid``), else ``val_fraction`` of the training data. Noise is injected into
    the whole training set *before* that split, so model selection sees the same noisy
    labels a user would have; the test set (and an official validation set) stay clean.
    """
    train, official_val, test = read_splits(cfg)
    if cfg.train_limit is not None:
        train = train.subset(range(min(cfg.train_limit, len(train))))
    noise = None
    if cfg.noise_rate > 0:
        noisy, noise = inject_label_noise(train.labels, cfg.noise_rate, train.num_classes, cfg.noise_seed)
        train = train.with_labels(noisy)
    if official_val is not None:
        return DataBundle(train, official_val, test, train.class_names, noise)
    tr, va = train_val_split(train, cfg.val_fraction, cfg.split_seed)
    return DataBundle(tr, va, test, train.class_names, noise)


def datasets(bundle: DataBundle, cfg: DataConfig) -> tuple[FERDataset, FERDataset, FERDataset | None]:
    """Torch data sets (training with random crops, the others centre-cropped).

    With ``data.cache_dir`` the image files are decoded and resized once into memory-mapped
    uint8 caches (:mod:`fer_backbone.data.cache`), built here on first use.
    """
    def mk(s: Samples, train: bool) -> FERDataset:
        cache = None
        if cfg.cache_dir is not None and not isinstance(s.images, np.ndarray):
            from fer_backbone.data.cache import build_shrunk_cache

            cache = build_shrunk_cache(s, cfg.resize or cfg.image_size, cfg.cache_dir)
        return FERDataset(s, cfg.image_size, cfg.resize, train=train, cache=cache)

    return mk(bundle.train, True), mk(bundle.val, False), (mk(bundle.test, False) if bundle.test is not None else None)


def task_params(recipe: Recipe, bundle: DataBundle) -> dict[str, Any]:
    """Task parameters from the recipe, plus ``train_labels`` for tasks that take them."""
    params = dict(recipe.task.params)
    import inspect

    from fer_backbone.tasks import get_task_class

    cls = get_task_class(recipe.task.name)
    if "train_labels" in inspect.signature(cls.__init__).parameters and "train_labels" not in params:
        params["train_labels"] = bundle.train.labels.tolist()
    return params


def backbone_spec(recipe: Recipe) -> dict[str, Any]:
    """Keyword arguments of :class:`~fer_backbone.models.Backbone`."""
    m = recipe.model
    return {"name": m.backbone, "checkpoint": str(m.checkpoint) if m.checkpoint else None,
            "drop_rate": m.drop_rate}


def run_recipe(recipe: Recipe, out_dir: str | Path, *, resume: bool = True) -> Any:
    """Run a validated recipe with the runner its :attr:`~fer_backbone.config.Recipe.kind` names.

    ``supervised`` and ``semi`` return the :class:`~fer_backbone.train.FitResult`;
    ``temporal`` returns the results mapping of :func:`fer_backbone.temporal.run_temporal_recipe`.
    """
    if recipe.kind == "temporal":
        from fer_backbone.temporal import run_temporal_recipe

        return run_temporal_recipe(recipe, out_dir)
    if recipe.kind == "semi":
        from fer_backbone.tasks.semi_supervised import run_semi_recipe

        return run_semi_recipe(recipe, out_dir, resume=resume)
    return run_supervised(recipe, out_dir, resume=resume)


def run_supervised(recipe: Recipe, out_dir: str | Path, *, resume: bool = True) -> Any:
    """Train a supervised recipe end to end; return the :class:`~fer_backbone.train.FitResult`."""
    if recipe.kind != "supervised":
        raise ConfigError(f"recipe '{recipe.name}' is a {recipe.kind} recipe: run it with run_recipe")
    from cdrscreen.core.io import write_json
    from fer_backbone.distributed import is_main_process
    from fer_backbone.tasks import build_task
    from fer_backbone.train import fit, seed_everything

    out_dir = Path(out_dir)
    seed_everything(recipe.train.seed, recipe.train.deterministic)
    bundle = build_data(recipe.data)
    train_ds, val_ds, test_ds = datasets(bundle, recipe.data)
    spec = backbone_spec(recipe)
    task = build_task(recipe.task.name, backbone=spec, num_classes=len(bundle.class_names),
                      num_train=len(bundle.train), **task_params(recipe, bundle))
    info = {"recipe": recipe.model_dump(mode="json"),
            "n_train": len(bundle.train), "n_val": len(bundle.val),
            "n_test": len(bundle.test) if bundle.test is not None else 0,
            "noise": dataclasses.asdict(bundle.noise) if bundle.noise else None}
    rep = getattr(task, "backbone", None)
    rep = getattr(rep, "load_report", None)
    if rep is not None:
        info["checkpoint_report"] = rep.summary()
    if is_main_process():  # under torchrun only rank 0 writes
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "run.json", info)
    sampler = None
    if recipe.data.sampler == "balanced":
        sampler = ClassBalancedSampler(bundle.train.labels, seed=recipe.train.seed)
    test_for_fit = test_ds if recipe.train.selection != "val" or test_ds is not None else None
    metadata = {"task": recipe.task.name, "task_params": recipe.task.params, "backbone": spec,
                "image_size": recipe.data.image_size, "resize": recipe.data.resize,
                "recipe_name": recipe.name, "num_train": len(bundle.train),
                "num_classes": len(bundle.class_names)}
    return fit(task, train_ds, recipe.train, out_dir, val_data=val_ds, test_data=test_for_fit,
               sampler=sampler, resume=resume, class_names=bundle.class_names,
               mean=recipe.data.mean, std=recipe.data.std, metadata=metadata)
