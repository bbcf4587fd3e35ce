"""Export a trained task as an expression embedder that runs without the training stack.

The ONNX graph takes ``input``: float32 RGB in ``[0, 1]``, NCHW, square ``input_size``
(normalisation is applied inside the graph) and returns ``embedding`` ``(B, D)`` and
``probs`` ``(B, K)``. The model's ``metadata_props`` hold ``cdrscreen_embedder``, a JSON
object validated by :class:`cdrscreen.core.embedder.EmbedderMeta` (the embedder contract:
class names and domain, input size and colour, normalisation, face-crop recipe, what the
embedding is, provenance). :mod:`cdrscreen.features.expression` reads it with onnxruntime only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cdrscreen.core.embedder import (
    DEFAULT_TEMPLATE,
    METADATA_KEY,
    EmbedderMeta,
    infer_domain,
    parse_metadata,
)
from cdrscreen.core.errors import InputError
from fer_backbone.tasks.base import Task

__all__ = ["METADATA_KEY", "Embedder", "export_onnx", "load_trained", "parity", "read_metadata"]


class Embedder(nn.Module):
    """``[0, 1]`` RGB images -> (embedding, class probabilities); normalisation inside."""

    def __init__(self, task: Task, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.task = task
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding ``(B, D)`` and probabilities ``(B, K)``."""
        x = (x - self.mean) / self.std
        emb, logits = self.task.embed_and_predict(x)
        return emb, torch.softmax(logits, dim=1)


def load_trained(checkpoint: str | Path) -> tuple[Task, dict[str, Any]]:
    """Rebuild a task from a run's ``best.pt`` (or the run folder); return it in eval mode + info."""
    from fer_backbone.tasks import build_task

    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoints" / "best.pt"
    if not path.is_file():
        raise InputError(path, "trained checkpoint not found (expected a run folder or its checkpoints/best.pt)")
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
        md = st["metadata"]
        spec = dict(md["backbone"], checkpoint=None)
        task = build_task(md["task"], backbone=spec, num_classes=md["num_classes"],
                          num_train=md["num_train"], **md.get("task_params", {}))
        task.load_state_dict(st["task"])
    except (KeyError, RuntimeError, EOFError) as err:
        raise InputError(path, f"not a fer_backbone checkpoint ({type(err).__name__}: {err})") from None
    task.eval()
    info = {"class_names": st.get("class_names"), "mean": tuple(st["mean"]), "std": tuple(st["std"]),
            "epoch": st.get("epoch"), **md}
    return task, info


def export_onnx(task: Task, out_path: str | Path, *, input_size: int, mean: tuple[float, ...],
                std: tuple[float, ...], class_names: list[str], extra: dict[str, Any] | None = None,
                opset: int = 17, contract: dict[str, Any] | None = None) -> Path:
    """Export ``task`` as an ONNX embedder with metadata; return the path.

    Parameters
    ----------
    task : Task
        In eval mode (batch-independent prediction).
    out_path : path
    input_size : int
    mean, std : tuple of float
    class_names : list of str
    extra : dict, optional
        Provenance (task name, backbone spec, recipe), stored under ``source``.
    opset : int
    contract : dict, optional
        Embedder-contract fields (:class:`~cdrscreen.core.embedder.EmbedderMeta`) that
        override the defaults: ``name`` (recipe name), ``domain`` (inferred from the class
        names), ``crop`` (cdrscreen's eyes-and-mouth template), ``input_colour`` (``rgb``),
        ``embedding`` (the backbone's pooled feature). Invalid fields raise one line.
    """
    import onnx

    from cdrscreen.core.config import validate

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    emb = Embedder(task, mean, std).eval()
    x = torch.rand(2, 3, input_size, input_size)
    with torch.no_grad():
        d = int(emb(x)[0].shape[1])
    ex = extra or {}
    fields = {"name": str(ex.get("recipe") or ex.get("protocol") or "fer_backbone"), "domain": infer_domain(list(class_names)),
              "crop": DEFAULT_TEMPLATE.model_dump(), "input_colour": "rgb",
              "embedding": "pooled backbone feature (input of the classifier)", **(contract or {})}
    meta = validate(EmbedderMeta, {**fields, "input_size": int(input_size), "mean": list(mean), "std": list(std),
                                   "class_names": list(class_names), "embedding_dim": d,
                                   "source": dict(extra or {})}, f"{out_path} (embedder metadata)")
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    torch.onnx.export(emb, (x,), str(tmp), input_names=["input"], output_names=["embedding", "probs"],
                      dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}, "probs": {0: "batch"}},
                      opset_version=opset, dynamo=False)
    model = onnx.load(str(tmp))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.model_dump_json()
    onnx.save(model, str(tmp))
    tmp.replace(out_path)
    return out_path


def run_contract(run: str | Path, crop_file: str | Path | None = None) -> dict[str, Any]:
    """Embedder-contract fields of a training run: the crop its images were made with.

    The crop comes from ``crop_file`` (YAML, a :class:`~cdrscreen.core.embedder.TemplateCrop`
    or :class:`~cdrscreen.core.embedder.BoxCrop` mapping) when given; else the recipe's data
    format decides: ``digits`` -> the whole image, every face format -> cdrscreen's
    eyes-and-mouth template (the crop :func:`cdrscreen.core.embedder.crop_face` makes; use
    ``crop_file`` when the training faces were cut another way).
    """
    from cdrscreen.core.embedder import ImageCrop, load_crop

    if crop_file is not None:
        return {"crop": load_crop(crop_file).model_dump()}
    run = Path(run)
    run_dir = run if run.is_dir() else run.parent.parent
    fmt = None
    info = run_dir / "run.json"
    if info.is_file():
        import json

        run_info = json.loads(info.read_text())
        recipe = run_info.get("recipe", run_info.get("protocol")) or {}
        fmt = (recipe.get("data") or {}).get("format")
    return {"crop": (ImageCrop() if fmt == "digits" else DEFAULT_TEMPLATE).model_dump()}


def read_metadata(onnx_path: str | Path) -> dict[str, Any]:
    """Read the embedder metadata of an exported model (onnxruntime only), validated and upgraded to format 2."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    props = sess.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise InputError(onnx_path, f"ONNX model has no '{METADATA_KEY}' metadata (not a fer_backbone embedder)")
    return parse_metadata(props[METADATA_KEY], str(onnx_path)).model_dump(mode="json")


def parity(task: Task, onnx_path: str | Path, images01: np.ndarray, mean: tuple[float, ...],
           std: tuple[float, ...]) -> dict[str, float]:
    """Max absolute differences between torch and onnxruntime outputs on ``images01``."""
    import onnxruntime as ort

    emb = Embedder(task, mean, std).eval()
    with torch.no_grad():
        te, tp = emb(torch.from_numpy(images01.astype(np.float32)))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    oe, op = sess.run(["embedding", "probs"], {"input": images01.astype(np.float32)})
    return {"embedding": float(np.abs(te.numpy() - oe).max()), "probs": float(np.abs(tp.numpy() - op).max())}
