"""Transcripts: CHAT, Praat TextGrid, CSV/TSV, SRT and WebVTT read into one utterance table.

>>> from cdrscreen.transcripts import read_transcript
>>> t = read_transcript("S01.cha")                      # doctest: +SKIP
>>> t.utterances.columns.tolist()                       # doctest: +SKIP
['speaker', 'start', 'end', 'text', 'mor', 'line']

The format is chosen by suffix (``.cha``; ``.textgrid``; ``.csv``; ``.tsv``; ``.srt``;
``.vtt``). Speakers are roles: ``PAR`` (participant; also read from ``participant``,
``patient``, ``subject``) and ``INV`` (interviewer; also ``interviewer``,
``investigator``, ``examiner``, ``clinician``); ``speakers={"Spk1": "PAR"}`` maps other
labels. A malformed file raises :class:`TranscriptError`: one line naming the file, the
line and the problem. See ``docs/features-language.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cdrscreen.transcripts.model import ROLE_ALIASES, Transcript, TranscriptError, check_speaker
from cdrscreen.transcripts.write import (
    chat_text,
    csv_text,
    textgrid_text,
    write_chat,
    write_csv,
    write_textgrid,
)

#: Transcript file suffixes and their reader.
SUFFIXES = (".cha", ".textgrid", ".csv", ".tsv", ".srt", ".vtt")


def read_transcript(
    path: str | os.PathLike[str],
    *,
    speakers: Mapping[str, str] | None = None,
    speaker: str | None = None,
) -> Transcript:
    """Read any supported transcript file.

    Parameters
    ----------
    path : path-like
    speakers : mapping, optional
        Speaker labels of the file and the role each plays (``{"Spk1": "PAR"}``).
    speaker : str, optional
        The analysed speaker; when given, a transcript without any utterance of theirs is
        refused.

    Raises
    ------
    TranscriptError
        Unknown format, or a malformed file (one line: file, line, problem).
    """
    from cdrscreen.transcripts.chat import read_chat
    from cdrscreen.transcripts.tabular import read_subtitles, read_table
    from cdrscreen.transcripts.textgrid import read_textgrid

    path = Path(path)
    suffix = path.suffix.lower()
    readers = {".cha": read_chat, ".textgrid": read_textgrid, ".csv": read_table, ".tsv": read_table,
               ".txt": read_table, ".srt": read_subtitles, ".vtt": read_subtitles}
    if suffix not in readers:
        raise TranscriptError(path, f"unsupported transcript format '{suffix}' (use {', '.join(SUFFIXES)})")
    t = readers[suffix](path, speakers=speakers)
    if speaker is not None:
        check_speaker(path, t.utterances, speaker)
    return t


__all__ = [
    "ROLE_ALIASES", "SUFFIXES", "Transcript", "TranscriptError", "chat_text", "csv_text", "read_transcript",
    "textgrid_text", "write_chat", "write_csv", "write_textgrid",
]
