"""Praat TextGrid transcripts (long and short text formats, UTF-8 or UTF-16).

One interval tier per speaker, named by its role (``PAR``/``participant``/``patient``,
``INV``/``interviewer``, or a name mapped with ``speakers=``); an optional tier
``<speaker> %mor`` (e.g. ``PAR %mor``) holds the ``%mor`` line of the speaker's interval
with the same start and end. Every non-empty interval is one utterance; its text follows
the CHAT main-line conventions (plain text is fine). Point tiers and tiers whose name is
not a speaker are refused (one line naming the tier), so a forgotten mapping does not
silently drop speech.

The file is read as the sequence of its values (strings, numbers, ``<exists>``), which
is what the long and the short format have in common; labels such as ``xmin =`` or
``intervals [3]:`` are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from cdrscreen.transcripts.model import (
    Transcript,
    TranscriptError,
    check_times,
    decode_text,
    make_table,
    read_bytes,
    role,
)

_TOKEN = re.compile(
    r'"(?P<str>(?:[^"]|"")*)"'
    r"|(?P<flag><exists>|<absent>)"
    r"|\[[^\]\n]*\]"  # item [1], intervals [3]: indices, skipped
    r"|(?P<num>(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))"
    r"|!(?P<comment>[^\n]*)"
)


def _tokens(text: str) -> list[tuple[str, object, int]]:
    out: list[tuple[str, object, int]] = []
    for m in _TOKEN.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m.group("str") is not None:
            out.append(("str", m.group("str").replace('""', '"'), line))
        elif m.group("flag") is not None:
            out.append(("flag", m.group("flag"), line))
        elif m.group("num") is not None:
            out.append(("num", float(m.group("num")), line))
    return out


class _Stream:
    def __init__(self, path: Path, toks: list[tuple[str, object, int]]) -> None:
        self.path, self.toks, self.i = path, toks, 0

    @property
    def line(self) -> int:
        return self.toks[min(self.i, len(self.toks) - 1)][2] if self.toks else 1

    def take(self, kind: str, what: str) -> object:
        if self.i >= len(self.toks):
            raise TranscriptError(self.path, f"TextGrid ends early (expected {what})", self.line)
        k, v, line = self.toks[self.i]
        if k != kind:
            raise TranscriptError(self.path, f"expected {what}, got {v!r}", line)
        self.i += 1
        return v


def read_textgrid(path: str | Path, *, speakers: Mapping[str, str] | None = None) -> Transcript:
    """Read a Praat TextGrid into a :class:`Transcript` (see the module docstring)."""
    path = Path(path)
    text = decode_text(path, read_bytes(path))
    s = _Stream(path, _tokens(text))
    if s.take("str", '"ooTextFile"') != "ooTextFile":
        raise TranscriptError(path, 'not a Praat text file (first value must be "ooTextFile")', 1)
    if s.take("str", '"TextGrid"') != "TextGrid":
        raise TranscriptError(path, 'not a TextGrid (object class must be "TextGrid")', s.line)
    s.take("num", "xmin")
    s.take("num", "xmax")
    if s.take("flag", "<exists>") != "<exists>":
        raise TranscriptError(path, "TextGrid has no tiers", s.line)
    n_tiers = int(s.take("num", "number of tiers"))  # type: ignore[arg-type]
    rows: list[dict[str, object]] = []
    mor: dict[tuple[str, float, float], tuple[str, int]] = {}
    for _ in range(n_tiers):
        cls = s.take("str", "tier class")
        tier_line = s.line
        name = str(s.take("str", "tier name"))
        s.take("num", "tier xmin")
        s.take("num", "tier xmax")
        n = int(s.take("num", "number of intervals"))  # type: ignore[arg-type]
        if cls != "IntervalTier":
            raise TranscriptError(path, f"tier '{name}' is a {cls}; transcripts need interval tiers", tier_line)
        is_mor = name.strip().endswith("%mor")
        spk = role(name.strip().removesuffix("%mor").strip(), speakers)
        if spk is None:
            raise TranscriptError(path, f"unknown tier '{name}': not a speaker (name tiers PAR/participant or "
                                        "INV/interviewer, '<speaker> %mor' for morphology, or map the name "
                                        "with speakers=)", tier_line)
        for _ in range(n):
            line = s.line
            t0 = float(s.take("num", "interval xmin"))  # type: ignore[arg-type]
            t1 = float(s.take("num", "interval xmax"))  # type: ignore[arg-type]
            label = str(s.take("str", "interval text")).strip()
            if not label:
                continue
            if is_mor:
                mor[(spk, round(t0, 6), round(t1, 6))] = (label, line)
            else:
                rows.append({"speaker": spk, "start": t0, "end": t1, "text": " ".join(label.split()),
                             "mor": "", "line": line})
    for r in rows:
        r["mor"] = mor.pop((str(r["speaker"]), round(float(r["start"]), 6), round(float(r["end"]), 6)),
                           ("", 0))[0]
    if mor:
        (spk, t0, t1), (_, line) = next(iter(mor.items()))
        raise TranscriptError(path, f"%mor interval {t0:g}-{t1:g} s of {spk} matches no {spk} interval "
                                    "with the same start and end", line)
    rows.sort(key=lambda r: (float(r["start"]), int(r["line"])))  # type: ignore[arg-type]
    table = make_table(rows)
    check_times(path, table)
    return Transcript(path=str(path), format="textgrid", utterances=table)
