"""Write an utterance table as CHAT, Praat TextGrid (long format) or CSV.

Used by the demo cohort and the tests; the three files of one table read back to the
same utterances with :func:`cdrscreen.transcripts.read_transcript`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence

import pandas as pd

from cdrscreen.core.io import write_text

_NAMES = {"PAR": "Participant", "INV": "Investigator"}


def chat_text(table: pd.DataFrame, *, languages: Sequence[str] = ("eng",), corpus: str = "cdrscreen") -> str:
    """CHAT text of an utterance table (columns ``speaker, start, end, text`` and optional ``mor``)."""
    spk = list(dict.fromkeys(table.speaker))
    lines = ["@UTF8", "@Begin", f"@Languages:\t{', '.join(languages)}",
             "@Participants:\t" + ", ".join(f"{s} {_NAMES.get(s, 'Unidentified')}" for s in spk)]
    lang = languages[0] if languages else "eng"
    lines += [f"@ID:\t{lang}|{corpus}|{s}|||||{_NAMES.get(s, 'Unidentified')}|||" for s in spk]
    for r in table.itertuples():
        bullet = ""
        if not (math.isnan(r.start) or math.isnan(r.end)):
            bullet = f" \x15{int(round(r.start * 1000))}_{int(round(r.end * 1000))}\x15"
        lines.append(f"*{r.speaker}:\t{r.text}{bullet}")
        mor = getattr(r, "mor", "")
        if isinstance(mor, str) and mor.strip():
            lines.append(f"%mor:\t{mor}")
    lines.append("@End")
    return "\n".join(lines) + "\n"


def _q(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def textgrid_text(table: pd.DataFrame, xmax: float | None = None) -> str:
    """Long-format TextGrid of a timed utterance table: one tier per speaker (+ ``<spk> %mor``)."""
    if table[["start", "end"]].isna().any().any():
        raise ValueError("a TextGrid needs start and end times for every utterance")
    xmax = float(table.end.max()) if xmax is None else float(xmax)
    tiers: list[tuple[str, list[tuple[float, float, str]]]] = []
    for spk in dict.fromkeys(table.speaker):
        g = table[table.speaker == spk].sort_values("start")
        tiers.append((spk, [(r.start, r.end, r.text) for r in g.itertuples()]))
        if "mor" in g and (g.mor.str.strip() != "").any():
            tiers.append((f"{spk} %mor", [(r.start, r.end, r.mor) for r in g.itertuples()]))
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax:.6g}",
           "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for k, (name, ivs) in enumerate(tiers, start=1):
        filled: list[tuple[float, float, str]] = []  # Praat tiers cover xmin..xmax without gaps
        t = 0.0
        for a, b, txt in ivs:
            if a > t + 1e-9:
                filled.append((t, a, ""))
            filled.append((a, b, txt))
            t = b
        if t < xmax - 1e-9:
            filled.append((t, xmax, ""))
        out += [f"    item [{k}]:", '        class = "IntervalTier"', f"        name = {_q(name)}",
                "        xmin = 0", f"        xmax = {xmax:.6g}", f"        intervals: size = {len(filled)}"]
        for j, (a, b, txt) in enumerate(filled, start=1):
            out += [f"        intervals [{j}]:", f"            xmin = {a:.6g}", f"            xmax = {b:.6g}",
                    f"            text = {_q(txt)}"]
    return "\n".join(out) + "\n"


def csv_text(table: pd.DataFrame) -> str:
    """CSV text (``start,end,speaker,text,mor``) of an utterance table."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["start", "end", "speaker", "text", "mor"])
    for r in table.itertuples():
        t = ["" if math.isnan(x) else f"{x:.6g}" for x in (r.start, r.end)]
        w.writerow([*t, r.speaker, r.text, getattr(r, "mor", "") or ""])
    return buf.getvalue()


def write_chat(path: str | os.PathLike[str], table: pd.DataFrame, **kwargs: object) -> None:
    """Write :func:`chat_text` atomically."""
    write_text(path, chat_text(table, **kwargs))  # type: ignore[arg-type]


def write_textgrid(path: str | os.PathLike[str], table: pd.DataFrame, xmax: float | None = None) -> None:
    """Write :func:`textgrid_text` atomically."""
    write_text(path, textgrid_text(table, xmax))


def write_csv(path: str | os.PathLike[str], table: pd.DataFrame) -> None:
    """Write :func:`csv_text` atomically."""
    write_text(path, csv_text(table))
