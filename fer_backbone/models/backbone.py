"""timm backbones built without downloads, plus local checkpoint loading with a key report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from cdrscreen.core.errors import InputError

_PREFIXES = ("module.", "backbone.", "model.", "encoder.", "base.", "features.")


@dataclasses.dataclass
class LoadReport:
    """Outcome of loading a checkpoint into a backbone.

    Attributes
    ----------
    path : str
    matched : list of str
        Backbone keys filled from the checkpoint.
    missing : list of str
        Backbone keys absent from the checkpoint (left at their initial values).
    unexpected : list of str
        Checkpoint keys with no counterpart (e.g. an old classifier ``fc.*``).
    mismatched : list of str
        Keys present in both with different shapes (not loaded).
    """

    path: str
    matched: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]

    def summary(self) -> str:
        """One line: counts and a few example keys."""
        ex = lambda ks: f" (e.g. {', '.join(ks[:3])})" if ks else ""  # noqa: E731
        return (f"{self.path}: matched {len(self.matched)} keys, missing {len(self.missing)}{ex(self.missing)}, "
                f"unexpected {len(self.unexpected)}{ex(self.unexpected)}, "
                f"shape-mismatched {len(self.mismatched)}{ex(self.mismatched)}")


def _extract_state_dict(obj: object) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            if key in obj and isinstance(obj[key], dict):
                return _extract_state_dict(obj[key])
        return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    raise TypeError("not a state dict")


def load_checkpoint_into(module: nn.Module, path: str | Path) -> LoadReport:
    """Load matching tensors from a local checkpoint into ``module``.

    Accepts a bare state dict or one nested under ``state_dict``/``model``; strips common
    prefixes (``module.``, ``backbone.``, ...) and skips shape mismatches (an old
    classifier). Raises :class:`InputError` (one line) if the file is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "backbone checkpoint not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
        src = _extract_state_dict(raw)
    except Exception as err:  # noqa: BLE001 - any unreadable file is one user error
        raise InputError(path, f"cannot read checkpoint ({type(err).__name__}: {err})") from None
    own = module.state_dict()
    cleaned: dict[str, torch.Tensor] = {}
    for k, v in src.items():
        key = k
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if key.startswith(p) and key not in own:
                    key, changed = key[len(p):], True
        cleaned[key] = v
    matched, mismatched = [], []
    new_state = {}
    for k, v in cleaned.items():
        if k in own:
            if tuple(own[k].shape) == tuple(v.shape):
                new_state[k] = v.to(own[k].dtype)
                matched.append(k)
            else:
                mismatched.append(k)
    module.load_state_dict(new_state, strict=False)
    missing = [k for k in own if k not in new_state]
    unexpected = [k for k in cleaned if k not in own]
    return LoadReport(str(path), matched, missing, unexpected, mismatched)


class Backbone(nn.Module):
    """A timm network without its classifier: images -> pooled features ``(B, D)``.

    Parameters
    ----------
    name : str
        timm model name (``resnet18``, ``resnet50``, ``test_resnet``, ...). Always built with
        ``pretrained=False``: nothing is downloaded.
    checkpoint : path, optional
        Local weights (e.g. MS-Celeb-1M ResNet-18); :attr:`load_report` tells what matched.
    drop_rate : float
        Dropout before the classifier, as timm applies it.

    Attributes
    ----------
    num_features : int
        ``D``.
    load_report : LoadReport or None
    """

    def __init__(self, name: str = "resnet18", checkpoint: str | Path | None = None,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        import timm

        try:
            self.net = timm.create_model(name, pretrained=False, num_classes=0, drop_rate=drop_rate)
        except RuntimeError as err:
            from cdrscreen.core.errors import ConfigError

            raise ConfigError(f"unknown timm backbone '{name}': {err}") from None
        self.name = name
        self.num_features = int(self.net.num_features)
        self.load_report = load_checkpoint_into(self.net, checkpoint) if checkpoint else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, D)``."""
        return self.net(x)
