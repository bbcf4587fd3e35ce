"""Feature-group registry: one place that maps a group name to its extractor class.

The import of a group's module is lazy, so that ``cdrscreen`` works with only some extras
installed; a group whose extra is missing raises a one-line
:class:`~cdrscreen.core.errors.MissingDependencyError` naming the extra.

A new group is one module with an :class:`~cdrscreen.features.base.Extractor` subclass and
one line in :data:`REGISTRY` (or a call to :func:`register`, e.g. from a test or a plug-in).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from cdrscreen.core.errors import CdrscreenError, MissingDependencyError
from cdrscreen.features.base import Extractor

#: name -> ("module:Class", extra that provides its dependencies)
REGISTRY: dict[str, tuple[str, str]] = {
    "pupil": ("cdrscreen.features.pupil:PupilExtractor", "video"),
    "headpose": ("cdrscreen.features.headpose:HeadPoseExtractor", "video"),
    "mfcc": ("cdrscreen.features.mfcc:MFCCExtractor", "audio"),
    "gemaps": ("cdrscreen.features.gemaps:GeMAPSExtractor", "audio"),
    "egemaps": ("cdrscreen.features.gemaps:EGeMAPSExtractor", "audio"),
    "timing": ("cdrscreen.features.timing:TimingExtractor", "audio"),
    "expr": ("cdrscreen.features.expression:ExpressionExtractor", "embed"),
    "expressivity": ("cdrscreen.features.expressivity:ExpressivityExtractor", "video"),
    "language": ("cdrscreen.features.language:LanguageExtractor", "all"),
}


def register(name: str, target: str, extra: str = "") -> None:
    """Register feature group ``name`` as ``"module:Class"`` (``extra``: the pip extra it needs)."""
    REGISTRY[name] = (target, extra)


def extractor_class(name: str) -> type[Extractor]:
    """Return the extractor class registered as ``name`` (imported on first use)."""
    if name not in REGISTRY:
        hint = difflib.get_close_matches(name, REGISTRY, n=1)
        extra = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise CdrscreenError(
            f"unknown feature group '{name}'{extra}; available: {', '.join(REGISTRY)}"
        )
    target, extra = REGISTRY[name]
    mod_name, cls_name = target.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as err:
        raise MissingDependencyError(f"feature group '{name}'", extra, err) from None
    return getattr(mod, cls_name)


def get_extractor(name: str, **params: Any) -> Extractor:
    """Instantiate the extractor registered as ``name`` with ``params``."""
    return extractor_class(name)(**params)


__all__ = ["REGISTRY", "extractor_class", "get_extractor", "register"]
