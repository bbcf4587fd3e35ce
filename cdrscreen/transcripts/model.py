"""The one transcript table every reader returns, and the checks every format shares.

A :class:`Transcript` holds one row per utterance with columns ``speaker`` (a role such
as ``PAR`` or ``INV``), ``start`` and ``end`` (seconds, NaN when the transcript is not
timed), ``text`` (the main line, CHAT conventions), ``mor`` (the ``%mor`` tier, empty
when absent) and ``line`` (where the utterance starts in the file, for messages).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cdrscreen.core.errors import InputError

COLUMNS = ("speaker", "start", "end", "text", "mor", "line")

#: Speaker labels read as the participant (``PAR``) or the interviewer (``INV``).
#: Compared case-insensitively; the RTTM label ``patient`` of the speech features is one.
ROLE_ALIASES: dict[str, str] = {
    "par": "PAR", "participant": "PAR", "patient": "PAR", "subject": "PAR",
    "inv": "INV", "interviewer": "INV", "investigator": "INV", "examiner": "INV", "clinician": "INV",
}


class TranscriptError(InputError):
    """A transcript file is malformed; the message names the file, the line and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(path, f"line {line}: {problem}" if line is not None else problem)


def role(label: str, speakers: Mapping[str, str] | None = None) -> str | None:
    """Role of a speaker label: a user mapping first, then :data:`ROLE_ALIASES`; None if unknown."""
    lab = label.strip().casefold()
    for k, v in (speakers or {}).items():
        if k.strip().casefold() == lab:
            return canonical_role(v)
    return ROLE_ALIASES.get(lab)


def canonical_role(name: str) -> str:
    """``PAR`` for ``participant``/``patient``/..., ``INV`` for ``interviewer``/...; else upper-case."""
    return ROLE_ALIASES.get(name.strip().casefold(), name.strip().upper())


def decode_text(path: Path, data: bytes) -> str:
    """Decode a transcript (UTF-8, or UTF-16 with a byte-order mark as Praat writes it).

    Raises
    ------
    TranscriptError
        Naming the line of the first byte that is not valid text.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as err:
            line = data[: err.start].decode("utf-16", "replace").count("\n") + 1
            raise TranscriptError(path, "is not valid UTF-16 text (undecodable bytes)", line) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise TranscriptError(path, f"is not UTF-8 text (undecodable byte 0x{data[err.start]:02x}); "
                                    "save the transcript as UTF-8", line) from None


def read_bytes(path: Path) -> bytes:
    """Read a transcript file; one-line errors for missing, folder, unreadable or empty files."""
    if not path.exists():
        raise TranscriptError(path, "transcript file not found")
    if path.is_dir():
        raise TranscriptError(path, "is a folder, expected a transcript file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TranscriptError(path, f"cannot be read ({err.strerror})") from None
    if not data.strip():
        raise TranscriptError(path, "transcript file is empty")
    return data


@dataclass
class Transcript:
    """Utterances of one recording, whatever the file format.

    Attributes
    ----------
    path : str
        Source file.
    format : str
        ``chat``, ``textgrid``, ``csv``, ``tsv``, ``srt`` or ``vtt``.
    utterances : pandas.DataFrame
        Columns ``speaker, start, end, text, mor, line`` (see the module docstring),
        in file order.
    languages : list of str
        Languages the file declares (CHAT ``@Languages``), else empty.
    """

    path: str
    format: str
    utterances: pd.DataFrame
    languages: list[str] = field(default_factory=list)

    @property
    def timed(self) -> bool:
        """Whether every utterance has a start and an end time."""
        u = self.utterances
        return bool(len(u)) and bool(u.start.notna().all() and u.end.notna().all())

    def speaker(self, name: str) -> pd.DataFrame:
        """Utterances of one role (``PAR``, ``INV``, or any label in the file)."""
        return self.utterances[self.utterances.speaker == canonical_role(name)]


def make_table(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Build the utterance table (column order and dtypes fixed)."""
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["start"] = pd.to_numeric(df["start"], errors="coerce").astype(float)
    df["end"] = pd.to_numeric(df["end"], errors="coerce").astype(float)
    df["text"] = df["text"].fillna("").astype(str)
    df["mor"] = df["mor"].fillna("").astype(str)
    df["line"] = df["line"].astype(int)
    return df


def check_times(path: Path, table: pd.DataFrame) -> None:
    """Refuse reversed times and overlapping utterances of one speaker (one line, first problem)."""
    for r in table.itertuples():
        if math.isnan(r.start) != math.isnan(r.end):
            raise TranscriptError(path, "utterance has a start time but no end time (or the reverse)", r.line)
        if not math.isnan(r.start) and (r.start < 0 or r.end <= r.start):
            raise TranscriptError(path, f"reversed or empty time span {r.start:g}-{r.end:g} s "
                                        "(end must be after start)", r.line)
    timed = table.dropna(subset=["start"])
    for spk, g in timed.groupby("speaker", sort=False):
        g = g.sort_values(["start", "line"])
        prev = None
        for r in g.itertuples():
            if prev is not None and r.start < prev.end - 1e-9:
                raise TranscriptError(path, f"utterance of {spk} at {r.start:g}-{r.end:g} s overlaps the one "
                                            f"at {prev.start:g}-{prev.end:g} s (line {prev.line})", r.line)
            prev = r


def check_speaker(path: Path, table: pd.DataFrame, speaker: str) -> None:
    """Refuse a transcript with no utterance of the analysed speaker."""
    spk = canonical_role(speaker)
    rows = table[(table.speaker == spk) & (table.text.str.strip() != "")]
    if rows.empty:
        have = ", ".join(dict.fromkeys(table.speaker)) or "none"
        raise TranscriptError(path, f"no utterances of the analysed speaker {spk} (speakers in the file: {have})")
