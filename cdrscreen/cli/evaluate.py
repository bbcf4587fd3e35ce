"""(placeholder until its issue lands)."""

from __future__ import annotations

from cdrscreen.errors import CdrscreenError

NAME = "evaluate"


def command() -> None:
    raise CdrscreenError("'cdrscreen evaluate' is not available yet in this version")
