"""Show versions, and which optional parts (video, audio, embedder, training, cluster) are available and why not."""

from __future__ import annotations

import importlib
import platform
import shutil

import typer
from rich.console import Console
from rich.table import Table

NAME = "info"

#: part -> (extra, modules it needs)
PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "manifest + evaluation": ("core", ("numpy", "pandas", "sklearn", "scipy", "pydantic", "pyarrow", "av")),
    "visual features (face/iris, pupil, head pose)": ("video", ("mediapipe", "cv2")),
    "speech features (MFCC, GeMAPS, timing)": ("audio", ("opensmile", "librosa", "soundfile")),
    "expression embedder (ONNX)": ("embed", ("onnxruntime",)),
    "FER training (fer_backbone)": ("train", ("torch", "torchvision", "timm", "onnx")),
    "extraction and evaluation on a Dask cluster (--scheduler)": ("cluster", ("dask", "distributed")),
    "Chinese word segmentation (language features)": ("chinese", ("jieba",)),
    "transcript sentence embeddings (language features)": ("sentences", ("sentence_transformers",)),
}
SYSTEM_TOOLS = {"espeak-ng": "demo cohort voices", "chromium": "report screenshots in tests"}


def _version(mod: str) -> tuple[str | None, str | None]:
    try:
        m = importlib.import_module(mod)
    except Exception as err:  # noqa: BLE001 - report why, whatever it is
        return None, f"{type(err).__name__}: {err}".splitlines()[0][:120]
    return str(getattr(m, "__version__", "?")), None


def collect() -> dict[str, object]:
    """Versions and availability as a JSON-serialisable dict."""
    from cdrscreen import __version__

    parts = {}
    for part, (extra, mods) in PARTS.items():
        info = {m: _version(m) for m in mods}
        missing = {m: why for m, (v, why) in info.items() if v is None}
        parts[part] = {
            "extra": extra,
            "available": not missing,
            "versions": {m: v for m, (v, _) in info.items() if v is not None},
            "why_not": missing,
        }
    gpu = None
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        pass
    return {
        "cdrscreen": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "parts": parts,
        "system_tools": {t: shutil.which(t) for t in SYSTEM_TOOLS},
        "gpu": gpu,
    }


def command(
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """Show versions and which optional parts are available (and why not)."""
    data = collect()
    if json_out:
        import json

        typer.echo(json.dumps(data, indent=2))
        return
    con = Console()
    con.print(f"cdrscreen {data['cdrscreen']} on Python {data['python']} ({data['platform']})")
    table = Table("part", "extra", "status", "versions / reason")
    for part, d in data["parts"].items():  # type: ignore[union-attr]
        if d["available"]:
            table.add_row(part, d["extra"], "[green]available", ", ".join(f"{k} {v}" for k, v in d["versions"].items()))
        else:
            why = "; ".join(f"{k}: {v}" for k, v in d["why_not"].items())
            hint = f"pip install 'cdrscreen[{d['extra']}]'"
            table.add_row(part, d["extra"], "[red]missing", f"{why} -> {hint}")
    con.print(table)
    for tool, path in data["system_tools"].items():  # type: ignore[union-attr]
        con.print(f"{tool}: {path or 'not found'} ({SYSTEM_TOOLS[tool]})")
    con.print(f"GPU: {data['gpu'] or 'none (CPU only)'}")
