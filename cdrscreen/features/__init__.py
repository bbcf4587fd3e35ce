"""Feature groups. Each module holds pure functions plus one extractor object.

Extractors are looked up by name with :func:`get_extractor`; the import is lazy so that
``cdrscreen`` works with only some extras installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from cdrscreen.core.errors import CdrscreenError, MissingDependencyError
from cdrscreen.features.base import Extractor, run_extractors

#: name -> ("module:Class", extra that provides its dependencies)
REGISTRY: dict[str, tuple[str, str]] = {
    "pupil": ("cdrscreen.features.pupil:PupilExtractor", "video"),
    "headpose": ("cdrscreen.features.headpose:HeadPoseExtractor", "video"),
    "mfcc": ("cdrscreen.features.speech:MFCCExtractor", "audio"),
    "gemaps": ("cdrscreen.features.speech:GeMAPSExtractor", "audio"),
    "egemaps": ("cdrscreen.features.speech:EGeMAPSExtractor", "audio"),
    "timing": ("cdrscreen.features.speech:TimingExtractor", "audio"),
    "expr": ("cdrscreen.features.expression:ExpressionExtractor", "embed"),
    "expressivity": ("cdrscreen.features.expressivity:ExpressivityExtractor", "video"),
}


def get_extractor(name: str, **params: Any) -> Extractor:
    """Instantiate the extractor registered as ``name`` with ``params``."""
    if name not in REGISTRY:
        import difflib

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
    return getattr(mod, cls_name)(**params)


__all__ = ["REGISTRY", "Extractor", "get_extractor", "run_extractors"]
