"""(placeholder until its issue lands)."""

from __future__ import annotations

from cdrscreen.errors import CdrscreenError

NAME = "extract"


def command() -> None:
    raise CdrscreenError("'cdrscreen extract' is not available yet in this version")
