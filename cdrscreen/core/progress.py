"""Progress bars (rich) that stay quiet when output is not a terminal or in CI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """Whether progress bars are shown (stderr is a terminal and CDRSCREEN_NO_PROGRESS is unset)."""
    return sys.stderr.isatty() and not os.environ.get("CDRSCREEN_NO_PROGRESS")


def track(
    items: Iterable[T], *, description: str = "", total: int | None = None, disable: bool = False,
    sizes: Sequence[float] | None = None, unit: str = "",
) -> Iterator[T]:
    """Iterate over ``items`` with a rich progress bar (on a terminal only).

    ``sizes`` gives the work each item stands for (e.g. the permutations or the seconds
    of media of a task): the bar, its count and its ETA then advance in those units,
    named by ``unit``, instead of one step per item.
    """
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
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as prog:
        if sizes is None:
            yield from prog.track(items, total=total, description=description)
            return
        task = prog.add_task(description, total=float(sum(sizes)))
        for item, size in zip(items, sizes, strict=False):
            prog.advance(task, float(size))
            yield item


def media_seconds(paths: Sequence[object]) -> list[float]:
    """Duration in seconds of each media file (container header; 1 s when unknown).

    Used as the work units of extraction progress, so that a one-hour interview weighs
    as much as sixty one-minute ones in the bar and its ETA.
    """
    import av

    out = []
    for p in paths:
        seconds = 0.0
        try:
            with av.open(str(p)) as c:
                if c.duration:
                    seconds = c.duration / 1_000_000
                else:
                    streams = list(c.streams.video) + list(c.streams.audio)
                    seconds = max((float(s.duration * s.time_base) for s in streams
                                   if s.duration and s.time_base), default=0.0)
        except Exception:  # noqa: BLE001, S110 - progress weights only; extraction reports the real error
            pass
        out.append(max(seconds, 1.0))
    return out
