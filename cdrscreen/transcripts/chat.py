r"""CHAT (CLAN, TalkBank/DementiaBank) transcripts.

Read: ``@`` headers (``@Languages``, ``@Participants``), main tiers ``*PAR:`` / ``*INV:``
(any code declared in ``@Participants``), tab-indented continuation lines, the ``%mor``
dependent tier, and time bullets (``\x15start_end\x15`` in milliseconds) at the end of
a main tier. Other dependent tiers (``%gra``, ``%com``, ...) are accepted and ignored.

Problems raise :class:`~cdrscreen.transcripts.model.TranscriptError` naming the line:
a line that is none of the above, a main tier whose speaker is not declared (or, in a
file without ``@Participants``, is not a known role), an unknown dependent tier, a
dependent tier before any main tier, a malformed time bullet.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path

from cdrscreen.transcripts.model import (
    Transcript,
    TranscriptError,
    canonical_role,
    check_times,
    decode_text,
    make_table,
    read_bytes,
    role,
)

#: Dependent tiers of the CHAT manual; user tiers start with ``%x``.
KNOWN_DEPENDENT = frozenset(
    "act add alt cod coh com def eng err exp fac flo gls gpx gra grt int lan mod mor ort par pho "
    "ret sin sit spa tim trn wor".split()
)
_MAIN = re.compile(r"^\*([^:\s]+):\s?(.*)$")
_DEP = re.compile(r"^%([^:\s]+):\s?(.*)$")
_BULLET = re.compile(r"[\x15\u00b7](\d+)_(\d+)[\x15\u00b7]")
_BROKEN_BULLET = re.compile(r"[\x15\u00b7]")


def read_chat(path: str | Path, *, speakers: Mapping[str, str] | None = None) -> Transcript:
    """Read a CHAT ``.cha`` file into a :class:`Transcript`.

    Parameters
    ----------
    path : path-like
    speakers : mapping, optional
        Extra speaker codes and the role they play, e.g. ``{"SUB": "PAR"}``.
    """
    path = Path(path)
    text = decode_text(path, read_bytes(path))
    # logical lines: a line starting with a tab continues the previous one
    logical: list[tuple[int, str]] = []
    for i, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith("\t") and logical:
            n, prev = logical[-1]
            logical[-1] = (n, prev + " " + raw.strip())
        elif raw.strip():
            logical.append((i, raw.rstrip()))
    declared: dict[str, str] | None = None
    languages: list[str] = []
    rows: list[dict[str, object]] = []
    for n, line in logical:
        if line.startswith("@"):
            key, _, val = line[1:].partition(":")
            key = key.strip()
            if key == "Participants":
                declared = {}
                for part in val.split(","):
                    words = part.split()
                    if words:
                        declared[words[0]] = " ".join(words[1:])
            elif key == "Languages":
                languages = [x.strip() for x in re.split(r"[,\s]+", val) if x.strip()]
            continue
        m = _MAIN.match(line)
        if m:
            code, body = m.group(1), m.group(2)
            spk = _speaker(path, n, code, declared, speakers)
            start = end = float("nan")
            b = _BULLET.search(body)
            if b:
                start, end = int(b.group(1)) / 1000.0, int(b.group(2)) / 1000.0
                body = (body[: b.start()] + " " + body[b.end():]).strip()
            if _BROKEN_BULLET.search(body):
                raise TranscriptError(path, "malformed time bullet (expected \\x15START_END\\x15 in "
                                            "milliseconds at the end of the main tier)", n)
            rows.append({"speaker": spk, "start": start, "end": end, "text": body.strip(), "mor": "",
                         "line": n})
            continue
        d = _DEP.match(line)
        if d:
            tier, body = d.group(1), d.group(2)
            if tier not in KNOWN_DEPENDENT and not tier.startswith("x"):
                hint = difflib.get_close_matches(tier, sorted(KNOWN_DEPENDENT), n=1)
                extra = f" (did you mean %{hint[0]}?)" if hint else " (user tiers start with %x)"
                raise TranscriptError(path, f"unknown dependent tier %{tier}{extra}", n)
            if not rows:
                raise TranscriptError(path, f"dependent tier %{tier} before any main tier (*SPEAKER:)", n)
            if tier == "mor":
                rows[-1]["mor"] = body.strip()
            continue
        raise TranscriptError(path, "not a CHAT line (expected @Header:, *SPEAKER:, %tier: or a "
                                    f"tab-indented continuation), got {line[:40]!r}", n)
    table = make_table(rows)
    check_times(path, table)
    return Transcript(path=str(path), format="chat", utterances=table, languages=languages)


def _speaker(path: Path, n: int, code: str, declared: dict[str, str] | None,
             speakers: Mapping[str, str] | None) -> str:
    mapped = role(code, speakers) if speakers else None
    if mapped is not None:
        return mapped
    if declared is not None:
        if code not in declared:
            hint = difflib.get_close_matches(code, list(declared), n=1)
            extra = f" (did you mean *{hint[0]}?)" if hint else ""
            raise TranscriptError(path, f"unknown tier *{code}: speaker not declared in @Participants "
                                        f"({', '.join(declared) or 'none'}){extra}", n)
        return canonical_role(code)
    r = role(code)
    if r is None:
        raise TranscriptError(path, f"unknown tier *{code}: no @Participants header declares it and it is "
                                    "not a known role (PAR, INV)", n)
    return r
