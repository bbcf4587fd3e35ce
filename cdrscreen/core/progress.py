"""Progress bars (rich) that stay quiet when output is not a terminal or in CI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CDRSCREEN_NO_PROGRESS")


def track(
    items: Iterable[T], *, description: str = "", total: int | None = None, disable: bool = False
) -> Iterator[T]:
    """Iterate over ``items`` with a rich progress bar (on a terminal only)."""
    if disable or not progress_enabled():
        yield from items
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as prog:
        yield from prog.track(items, total=total, description=description)
