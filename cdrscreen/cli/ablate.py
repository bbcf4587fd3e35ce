"""(placeholder until its issue lands)."""

from __future__ import annotations

from cdrscreen.errors import CdrscreenError

NAME = "ablate"


def command() -> None:
    raise CdrscreenError("'cdrscreen ablate' is not available yet in this version")
