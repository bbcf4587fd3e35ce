"""Train and export the demo's small expression model (SCN under synthetic label noise).

:func:`train_expression_model` runs, in one call and resumably:

1. :func:`~cdrscreen.demo.expression_set.build_expression_set`: the SYNTHETIC expression
   images (warped expressions on real photographs; test photographs never seen in training).
2. ``fer_backbone``'s one training loop with the SCN task (:func:`demo_recipe`: a tiny timm
   backbone, ``test_resnet``, at 48 x 48 px, a few epochs on the CPU), after flipping
   ``noise_rate`` (default 20 %) of the training labels to another class, as the SCN
   paper's synthetic-noise experiments do. Model selection uses the (noisy) validation
   split; the clean test set is evaluated once, with the selected weights.
3. Export as an ONNX embedder (``fer_backbone.export``) whose metadata names the classes,
   the input and the template face crop the images were cut with.

It reports the clean test accuracy and the **relabel precision**: of the training labels
SCN changed, the fraction changed to the true (pre-noise) class. Both are measured on
synthetic images and are pipeline checks, not FER results. Needs the ``train`` extra.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from cdrscreen.core.errors import MissingDependencyError
from cdrscreen.core.io import file_sha256, write_json
from cdrscreen.demo.expression_set import CROP, ExpressionSetConfig, build_expression_set

#: Name of the exported embedder (in its metadata).
MODEL_NAME = "demo-synthetic-expressions-scn"


@dataclasses.dataclass(frozen=True)
class ExpressionModelConfig:
    """Training settings of the demo expression model."""

    backbone: str = "test_resnet"
    epochs: int = 16
    batch_size: int = 16
    lr: float = 2e-3
    noise_rate: float = 0.2
    relabel_epoch: int = 9
    threads: int = 1
    seed: int = 0


def demo_recipe(data_dir: str | Path, cfg: ExpressionModelConfig, input_size: int) -> dict[str, Any]:
    """Return the ``fer_backbone`` recipe (a mapping) the demo trains with."""
    data_dir = Path(data_dir)
    return {
        "name": "scn_demo_synthetic_expressions",
        "description": ("SCN on the demo's SYNTHETIC expression images (warped real photographs) with "
                        f"{cfg.noise_rate:.0%} synthetic label noise; a pipeline check, not a FER benchmark"),
        "data": {"format": "image_folder", "train_path": str(data_dir / "train"),
                 "test_path": str(data_dir / "test"), "image_size": input_size, "val_fraction": 0.15,
                 "split_seed": cfg.seed, "noise_rate": cfg.noise_rate, "noise_seed": cfg.seed},
        "model": {"backbone": cfg.backbone},
        "task": {"name": "scn", "params": {"relabel_epoch": cfg.relabel_epoch}},
        "train": {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "weight_decay": 1e-4,
                  "scheduler": "cosine", "threads": cfg.threads, "device": "cpu", "selection": "val",
                  "noise_std": 0.02, "seed": cfg.seed},
    }


def relabel_stats(task_state: dict[str, Any], train_images: list[Path], noisy: np.ndarray,
                  class_names: list[str]) -> dict[str, float]:
    """How SCN's relabelling compares with the clean labels (the folder each image came from).

    Returns
    -------
    dict
        ``relabelled`` (count), ``relabel_precision`` (fraction of relabels that restore the
        clean class; NaN without relabels), ``noisy_labels`` (count of flipped training
        labels), ``noisy_fixed_fraction`` (of those, fraction relabelled to the clean class),
        ``clean_broken`` (clean labels relabelled to a wrong class).
    """
    relabels = np.asarray(task_state["relabels"].cpu().numpy() if hasattr(task_state["relabels"], "cpu")
                          else task_state["relabels"])[: len(noisy)]
    clean = np.array([class_names.index(Path(p).parent.name) for p in train_images])
    changed = relabels >= 0
    correct = changed & (relabels == clean)
    flipped = noisy != clean
    return {
        "relabelled": int(changed.sum()),
        "relabel_precision": float(correct.sum() / changed.sum()) if changed.any() else float("nan"),
        "noisy_labels": int(flipped.sum()),
        "noisy_fixed_fraction": float((correct & flipped).sum() / flipped.sum()) if flipped.any() else float("nan"),
        "clean_broken": int((changed & ~flipped & (relabels != clean)).sum()),
    }


def train_expression_model(out_dir: str | Path, *, set_config: ExpressionSetConfig | None = None,
                           config: ExpressionModelConfig | None = None, n_jobs: int = 2,
                           force: bool = False) -> dict[str, Any]:
    """Build the synthetic expression set, train SCN on it, export the embedder.

    Parameters
    ----------
    out_dir : path
        Writes ``expression_set/``, ``run/`` (the ``fer_backbone`` run folder),
        ``expression_model.onnx`` and ``expression_model.json`` (the summary returned).
    set_config, config : optional
        Settings of the image set and of the training.
    n_jobs : int
        Worker processes for rendering the image set.
    force : bool
        Retrain even if a finished model with the same settings exists.

    Returns
    -------
    dict
        Timings, the noise report, clean test accuracy and per-class recall, relabel
        statistics, the ONNX path and its SHA-256.
    """
    import json

    out = Path(out_dir)
    set_config = set_config or ExpressionSetConfig()
    config = config or ExpressionModelConfig(seed=set_config.seed)
    summary_path = out / "expression_model.json"
    onnx_path = out / "expression_model.onnx"
    settings = {"set": dataclasses.asdict(set_config), "model": dataclasses.asdict(config)}
    if not force and summary_path.exists() and onnx_path.exists():
        try:
            done = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            done = {}
        if done.get("settings") == json.loads(json.dumps(settings)) and done.get("onnx_sha256") == file_sha256(onnx_path):
            return {**done, "onnx": str(onnx_path)}  # the folder may have moved
    try:
        import torch

        from fer_backbone.build import build_data, run_supervised
        from fer_backbone.config import Recipe
        from fer_backbone.export import export_onnx, load_trained, parity
    except ImportError as err:
        raise MissingDependencyError("training the demo's expression model", "train", err) from None

    t0 = time.perf_counter()
    info = build_expression_set(out / "expression_set", set_config, n_jobs=n_jobs, force=force)
    t_set = time.perf_counter() - t0

    t1 = time.perf_counter()
    marker = out / "settings.json"  # a run folder left by other settings is not resumed
    if force or (marker.exists() and json.loads(marker.read_text()) != json.loads(json.dumps(settings))):
        shutil.rmtree(out / "run", ignore_errors=True)
    write_json(marker, settings)
    recipe = Recipe.model_validate(demo_recipe(out / "expression_set", config, set_config.input_size))
    run_dir = out / "run"
    res = run_supervised(recipe, run_dir, resume=not force)
    t_train = time.perf_counter() - t1

    t2 = time.perf_counter()
    task, meta = load_trained(run_dir)
    export_onnx(task, onnx_path, input_size=set_config.input_size, mean=meta["mean"], std=meta["std"],
                class_names=list(meta["class_names"]),
                extra={"task": meta["task"], "backbone": meta["backbone"]["name"], "recipe": recipe.name,
                       "trained_on": "SYNTHETIC demo expression images (not a FER benchmark)"},
                contract={"name": MODEL_NAME, "domain": "facial_expression", "crop": CROP,
                          "embedding": f"pooled {meta['backbone']['name']} feature (input of the SCN classifier)"})
    x = np.random.default_rng(0).random((4, 3, set_config.input_size, set_config.input_size), dtype=np.float32)
    par = parity(task, onnx_path, x, meta["mean"], meta["std"])
    t_export = time.perf_counter() - t2

    bundle = build_data(recipe.data)  # deterministic: the same split and noise as training
    last = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    relabel = relabel_stats(last["task"], list(bundle.train.images), np.asarray(bundle.train.labels),
                            list(bundle.class_names))
    test = res.test_metrics or {}
    conf = np.asarray(test.get("confusion", []), float)
    recall = {c: float(conf[i, i] / conf[i].sum()) if conf.size and conf[i].sum() else float("nan")
              for i, c in enumerate(bundle.class_names)}
    summary = {
        "synthetic": ("trained and tested on SYNTHETIC expression images rendered from real photographs; "
                      "a pipeline check of the demo, not a facial-expression-recognition result"),
        "settings": settings, "classes": list(bundle.class_names),
        "n_train": len(bundle.train), "n_val": len(bundle.val),
        "n_test": int(test.get("n", 0)), "test_photos": len(info["test_photos"]),
        "noise": dataclasses.asdict(bundle.noise) if bundle.noise else None,
        "best_epoch": res.best_epoch,
        "val_accuracy_noisy_labels": (res.val_metrics or {}).get("accuracy"),
        "test_accuracy": test.get("accuracy"), "test_macro_f1": test.get("macro_f1"),
        "test_recall": recall, "test_confusion": test.get("confusion"),
        **relabel,
        "onnx": str(onnx_path), "onnx_sha256": file_sha256(onnx_path), "export_parity": par,
        "seconds": {"image_set": round(t_set, 1), "train": round(t_train, 1), "export": round(t_export, 1)},
    }
    write_json(summary_path, summary)
    return summary
