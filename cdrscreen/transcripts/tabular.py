"""Transcripts as tables (CSV, TSV) or subtitles (SRT, WebVTT).

CSV/TSV: a header with ``speaker`` and ``text`` (required), ``start`` and ``end``
(seconds; both empty for an untimed row) and optionally ``mor`` (the ``%mor`` line);
column names are case-insensitive, extra columns are ignored.

SRT/WebVTT: each cue is one utterance with the cue's times. The speaker is a WebVTT
voice span (``<v PAR>text``) or a ``SPEAKER: text`` prefix (``PAR: ...``,
``Interviewer: ...``); a cue without either is taken as the participant's (subtitles of
a participant-only recording). Other markup tags (``<i>``, ``<c.x>``) are removed.
"""

from __future__ import annotations

import csv
import math
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

_UNKNOWN = ("unknown speaker '{}' (use PAR/participant or INV/interviewer, or map the label with "
            "speakers=)")


def _speaker(path: Path, label: str, line: int, speakers: Mapping[str, str] | None) -> str:
    r = role(label, speakers)
    if r is None:
        raise TranscriptError(path, _UNKNOWN.format(label), line)
    return r


def read_table(path: str | Path, *, speakers: Mapping[str, str] | None = None) -> Transcript:
    """Read a CSV (``.csv``) or tab-separated (``.tsv``) transcript."""
    path = Path(path)
    text = decode_text(path, read_bytes(path))
    fmt = "tsv" if path.suffix.lower() == ".tsv" else "csv"
    reader = csv.reader(text.splitlines(), dialect="excel-tab" if fmt == "tsv" else "excel")
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise TranscriptError(path, "transcript file is empty") from None
    missing = [c for c in ("speaker", "text") if c not in header]
    if missing:
        raise TranscriptError(path, f"header lacks column(s) {', '.join(missing)} (expected start, end, "
                                    "speaker, text[, mor])", 1)
    col = {c: header.index(c) for c in ("start", "end", "speaker", "text", "mor") if c in header}
    rows: list[dict[str, object]] = []
    for cells in reader:
        n = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise TranscriptError(path, f"has {len(cells)} fields, the header has {len(header)}", n)

        def get(c: str, cells: list[str] = cells) -> str:
            return cells[col[c]].strip() if c in col else ""

        times = []
        for c in ("start", "end"):
            v = get(c)
            try:
                t = float(v) if v else math.nan
            except ValueError:
                raise TranscriptError(path, f"{c} time {v!r} is not a number of seconds", n) from None
            if not math.isfinite(t) and v:
                raise TranscriptError(path, f"{c} time {v!r} is not a finite number of seconds", n)
            times.append(t)
        rows.append({"speaker": _speaker(path, get("speaker"), n, speakers), "start": times[0],
                     "end": times[1], "text": " ".join(get("text").split()), "mor": get("mor"), "line": n})
    table = make_table(rows)
    check_times(path, table)
    return Transcript(path=str(path), format=fmt, utterances=table)


_CUE_TIME = re.compile(
    r"^\s*(?P<a>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s*-->\s*(?P<b>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})(?:\s.*)?$"
)
_VOICE = re.compile(r"^<v(?:\.[\w.-]+)?\s+([^>]+)>")
_TAG = re.compile(r"</?[^>]*>")
_PREFIX = re.compile(r"^([^\s:：]{1,30})\s*[:：]\s+(.*)$")


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    secs = float(parts[-1])
    mins = int(parts[-2]) if len(parts) >= 2 else 0
    hours = int(parts[-3]) if len(parts) >= 3 else 0
    return hours * 3600 + mins * 60 + secs


def read_subtitles(path: str | Path, *, speakers: Mapping[str, str] | None = None) -> Transcript:
    """Read an SRT (``.srt``) or WebVTT (``.vtt``) file: one utterance per cue."""
    path = Path(path)
    text = decode_text(path, read_bytes(path))
    fmt = "vtt" if path.suffix.lower() == ".vtt" else "srt"
    lines = text.splitlines()
    if fmt == "vtt" and not lines[0].lstrip("\ufeff").startswith("WEBVTT"):
        raise TranscriptError(path, "a WebVTT file must start with 'WEBVTT'", 1)
    rows: list[dict[str, object]] = []
    i = 0
    while i < len(lines):
        m = _CUE_TIME.match(lines[i])
        if not m:
            if "-->" in lines[i]:
                raise TranscriptError(path, f"malformed cue time line {lines[i].strip()!r} (expected "
                                            "HH:MM:SS,mmm --> HH:MM:SS,mmm)", i + 1)
            i += 1
            continue
        n = i + 1
        start, end = _seconds(m.group("a")), _seconds(m.group("b"))
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip():
            body.append(lines[i].strip())
            i += 1
        cue = " ".join(body)
        label = None
        v = _VOICE.match(cue)
        if v:
            label, cue = v.group(1).strip(), cue[v.end():]
        cue = _TAG.sub("", cue).strip()
        if label is None:
            p = _PREFIX.match(cue)
            if p and role(p.group(1), speakers) is not None:
                label, cue = p.group(1), p.group(2)
        spk = _speaker(path, label, n, speakers) if label is not None else "PAR"
        rows.append({"speaker": spk, "start": start, "end": end, "text": " ".join(cue.split()), "mor": "",
                     "line": n})
    if not rows:
        raise TranscriptError(path, "no subtitle cues found (expected 'start --> end' lines)")
    table = make_table(rows)
    check_times(path, table)
    return Transcript(path=str(path), format=fmt, utterances=table)
