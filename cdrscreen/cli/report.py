"""(placeholder until its issue lands)."""

from __future__ import annotations

from cdrscreen.errors import CdrscreenError

NAME = "report"


def command() -> None:
    raise CdrscreenError("'cdrscreen report' is not available yet in this version")
