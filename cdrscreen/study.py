"""Study manifest: who was recorded, where the media are, and their CDR rating.

A researcher describes a study in one CSV or YAML file, one row per recording::

    subject,session,video,audio,segments,cdr,age,sex,mmse
    S01,1,videos/S01.mp4,,,0.5,72,F,26
    S02,baseline,videos/S02.mp4,audio/S02.wav,segments/S02.rttm,1,80,M,21

Relative paths are resolved against the manifest's folder. Every problem (missing or
unreadable file, unknown CDR value, duplicate subject+session, bad covariate, unknown
column) is collected and reported together, one line each naming the row and the
field, before any work starts.
"""

from __future__ import annotations

import csv
import difflib
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdrscreen.core.errors import InputError, ManifestError

#: Clinical Dementia Rating global scores accepted in a manifest.
CDR_VALUES: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)

#: Columns a manifest may contain (``cov_*`` columns are accepted as extra covariates).
KNOWN_COLUMNS: tuple[str, ...] = (
    "subject", "session", "video", "audio", "segments", "transcript", "cdr", "age", "sex", "mmse",
)
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v"}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a"}

_SEX = {"f": "F", "female": "F", "w": "F", "m": "M", "male": "M", "o": "other",
        "other": "other", "x": "other"}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


class Recording(BaseModel):
    """One recording (subject × session) of a study.

    Attributes
    ----------
    subject : str
        Subject identifier; the unit of every cross-validation split.
    session : str
        Session or visit label (``"1"`` if the manifest has none).
    video, audio, segments : Path or None
        Absolute media paths. ``audio`` defaults to the video's audio track when absent;
        ``segments`` is an optional speaker-segments file (RTTM or CSV).
    transcript : Path or None
        Optional transcript (CHAT, TextGrid, CSV/TSV, SRT, WebVTT) for the language features.
    cdr : float
        Global CDR (0, 0.5, 1, 2 or 3).
    age, sex, mmse : optional covariates.
    covariates : dict
        Extra ``cov_*`` columns, name without the prefix.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = Field(min_length=1)
    session: str = "1"
    video: Path | None = None
    audio: Path | None = None
    segments: Path | None = None
    transcript: Path | None = None
    cdr: float
    age: float | None = Field(default=None, ge=0, le=120)
    sex: Literal["F", "M", "other"] | None = None
    mmse: float | None = Field(default=None, ge=0, le=30)
    covariates: dict[str, Any] = Field(default_factory=dict)

    @field_validator("subject", "session", mode="before")
    @classmethod
    def _str_id(cls, v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v).strip() if v is not None else v

    @field_validator("cdr", mode="before")
    @classmethod
    def _cdr(cls, v: Any) -> float:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"CDR must be one of 0, 0.5, 1, 2, 3, got {v!r}") from None
        if f not in CDR_VALUES:
            raise ValueError(f"CDR must be one of 0, 0.5, 1, 2, 3, got {v!r}")
        return f

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, v: Any) -> Any:
        if _blank(v):
            return None
        s = _SEX.get(str(v).strip().lower())
        if s is None:
            raise ValueError(f"sex must be F, M or other, got {v!r}")
        return s

    @property
    def key(self) -> tuple[str, str]:
        """``(subject, session)``."""
        return (self.subject, self.session)

    @property
    def media(self) -> Path:
        """The main media file: the video, else the audio."""
        return self.video if self.video is not None else self.audio  # type: ignore[return-value]

    @property
    def audio_source(self) -> Path | None:
        """Where speech is read from: the separate audio file, else the video's track."""
        return self.audio if self.audio is not None else self.video


class Study(BaseModel):
    """A validated study manifest: a list of :class:`Recording` plus its source path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Path | None = None
    recordings: list[Recording]

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, check_media: bool = True, decimal: str = ".") -> Study:
        """Read and validate a manifest (CSV, TSV or YAML).

        Parameters
        ----------
        path : path-like
            The manifest file.
        check_media : bool, default True
            Also check that every referenced media file exists, is non-empty and can be
            opened by the decoder (one quick probe per file).
        decimal : {".", ","}
            Decimal mark of numbers in a CSV manifest. A decimal comma (``0,5``) is
            refused with a hint unless ``decimal=","``, which reads ``0,5`` as 0.5
            (the separator must then be ``;`` or a tab, as European Excel writes it).

        Raises
        ------
        ManifestError
            Listing every problem found, one line each.
        """
        path = Path(path)
        if not path.exists():
            raise InputError(path, "manifest file not found")
        if path.is_dir():
            raise InputError(path, "is a folder, expected a manifest file (.csv, .tsv or .yaml)")
        if decimal not in (".", ","):
            raise InputError(path, f"decimal mark must be '.' or ',', got {decimal!r}")
        rows = _read_rows(path, decimal)
        return cls.from_rows(rows, base=path.parent, source=path, check_media=check_media)

    @classmethod
    def from_rows(
        cls,
        rows: list[tuple[str, dict[str, Any]]],
        *,
        base: Path,
        source: Path | None = None,
        check_media: bool = True,
    ) -> Study:
        """Validate ``(row label, mapping)`` pairs; see :meth:`from_file`."""
        label = source if source is not None else Path("<manifest>")
        problems: list[str] = []
        if not rows:
            raise ManifestError(label, ["no recordings (the manifest has no data rows)"])
        cols = set().union(*(r.keys() for _, r in rows))
        for c in sorted(cols):
            if c in KNOWN_COLUMNS or c.startswith("cov_"):
                continue
            hint = difflib.get_close_matches(c, KNOWN_COLUMNS, n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else " (extra covariates must start with 'cov_')"
            problems.append(f"unknown column '{c}'{extra}")
        for required in ("subject", "cdr"):
            if required not in cols:
                problems.append(f"missing required column '{required}'")
        if "video" not in cols and "audio" not in cols:
            problems.append("missing column 'video' (or 'audio' for audio-only studies)")
        if problems:
            raise ManifestError(label, problems)

        recordings: list[Recording] = []
        seen: dict[tuple[str, str], str] = {}
        for where, raw in rows:
            data: dict[str, Any] = {}
            covs: dict[str, Any] = {}
            for k, v in raw.items():
                if _blank(v):
                    continue
                if k.startswith("cov_"):
                    covs[k[4:]] = v
                else:
                    data[k] = v.strip() if isinstance(v, str) else v
            row_problems: list[str] = []
            for field in ("video", "audio", "segments", "transcript"):
                if field in data:
                    p = Path(str(data[field])).expanduser()
                    try:
                        data[field] = p if p.is_absolute() else (base / p).resolve()
                    except (RuntimeError, OSError):  # a symbolic-link loop (Python < 3.13 raises)
                        data[field] = base / p
            if "video" not in data and "audio" not in data:
                row_problems.append("field 'video': empty (give a video or an audio file)")
            try:
                rec = Recording(**data, covariates=covs)
            except ValidationError as err:
                for e in err.errors():
                    fld = ".".join(str(x) for x in e["loc"]) or "row"
                    msg = e["msg"].removeprefix("Value error, ")
                    if e["type"] == "missing":
                        msg = "empty (required)"
                    got = data.get(fld)
                    if e["type"] not in ("value_error", "missing") and got is not None:
                        msg += f", got {got!r}"
                    row_problems.append(f"field '{fld}': {msg}")
                rec = None
            if check_media:
                row_problems += _check_media(data)
            if rec is not None:
                if rec.key in seen:
                    row_problems.append(
                        f"field 'session': duplicate subject+session "
                        f"({rec.subject}, {rec.session}), first seen at {seen[rec.key]}"
                    )
                else:
                    seen[rec.key] = where
                if not row_problems:
                    recordings.append(rec)
            problems += [f"{where}: {p}" for p in row_problems]
        if problems:
            raise ManifestError(label, problems)
        return cls(source=source, recordings=recordings)

    # -- access ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Recording]:  # type: ignore[override]
        return iter(self.recordings)

    def __len__(self) -> int:
        return len(self.recordings)

    @property
    def subjects(self) -> list[str]:
        """Distinct subject ids in manifest order."""
        return list(dict.fromkeys(r.subject for r in self.recordings))

    def to_frame(self) -> pd.DataFrame:
        """One row per recording, indexed by (subject, session)."""
        rows = []
        for r in self.recordings:
            d = r.model_dump(exclude={"covariates"})
            d.update({f"cov_{k}": v for k, v in r.covariates.items()})
            rows.append(d)
        return pd.DataFrame(rows).set_index(["subject", "session"])

    def labels(self) -> pd.Series:
        """CDR per recording, indexed by (subject, session)."""
        return self.to_frame()["cdr"]


#: Manifest columns holding numbers (a decimal comma is checked in these).
NUMERIC_COLUMNS = ("cdr", "age", "mmse")
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*$")


def _read_rows(path: Path, decimal: str = ".") -> list[tuple[str, dict[str, Any]]]:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "is not UTF-8 text; save the manifest as UTF-8 CSV or YAML") from None
    except OSError as err:
        raise InputError(path, f"cannot be read ({err.strerror})") from None
    if suffix in (".yaml", ".yml"):
        from cdrscreen.core.config import load_yaml_text

        data = load_yaml_text(text, str(path))  # a duplicate key is refused, not silently overwritten
        if isinstance(data, dict) and "recordings" in data:
            data = data["recordings"]
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise InputError(path, "YAML manifest must be a list of recordings (or a mapping with key 'recordings')")
        return [(f"entry {i + 1}", {str(k).strip().lower(): v for k, v in d.items()})
                for i, d in enumerate(data)]
    if suffix in (".csv", ".tsv", ".txt"):
        # lines starting with '#' are comments; line numbers stay those of the file
        numbered = [(i + 1, line) for i, line in enumerate(text.splitlines())
                    if line.strip() and not line.lstrip().startswith("#")]
        if not numbered:
            raise InputError(path, "is empty (expected a header line and one row per recording)")
        sep = "\t" if suffix == ".tsv" else _separator(numbered[0][1])
        if decimal == "," and sep == ",":
            raise InputError(path, "--decimal , needs a ';'- or tab-separated file (with ',' as separator a "
                                   "decimal comma cannot be told from a field boundary)")
        lines = [(n, next(csv.reader([line], delimiter=sep))) for n, line in numbered]
        header = [h.strip().lower() for h in lines[0][1]]
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise InputError(path, f"header repeats column(s) {', '.join(dup)}")
        out, bad = [], []
        for lineno, cells in lines[1:]:
            if len(cells) != len(header):
                hint = ""
                if sep == "," and any(_DECIMAL_COMMA.match(f"{a},{b}") for a, b in zip(cells, cells[1:], strict=False)):
                    hint = (" (decimal commas in a comma-separated file? save it with ';' as separator and "
                            "pass --decimal ,)")
                bad.append(f"line {lineno}: has {len(cells)} fields, header has {len(header)}{hint}")
                continue
            row = dict(zip(header, cells, strict=True))
            for col in [c for c in row if c in NUMERIC_COLUMNS or c.startswith("cov_")]:
                v = row[col]
                if isinstance(v, str) and _DECIMAL_COMMA.match(v):
                    if decimal == ",":
                        row[col] = v.strip().replace(",", ".")
                    elif col in NUMERIC_COLUMNS:
                        bad.append(f"line {lineno}: field '{col}': {v.strip()!r} has a decimal comma; pass "
                                   "--decimal , to read it as a number, or save the file with decimal points")
            out.append((f"line {lineno}", row))
        if bad:
            raise ManifestError(path, bad)
        return out
    raise InputError(path, f"unsupported manifest format '{suffix}' (use .csv, .tsv or .yaml)")


def _separator(header: str) -> str:
    """Return the field separator of a CSV header line: ',', ';' or tab, whichever occurs most."""
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] else ","


def _check_media(data: dict[str, Any]) -> list[str]:
    problems = []
    for field in ("video", "audio", "segments", "transcript"):
        p = data.get(field)
        if not isinstance(p, Path):
            continue
        try:
            str(p).encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"field '{field}': path is not valid UTF-8 (feature tables store file paths as "
                            f"UTF-8 text; rename the file or folder): {p}")
            continue
        if not p.exists():
            problems.append(f"field '{field}': file not found: {p}")
        elif p.is_dir():
            problems.append(f"field '{field}': is a folder, not a file: {p}")
        elif not os.access(p, os.R_OK):
            problems.append(f"field '{field}': file is not readable (permissions): {p}")
        elif p.stat().st_size == 0:
            problems.append(f"field '{field}': file is empty (0 bytes): {p}")
        elif field in ("video", "audio"):
            why = probe_media(p, need_video=(field == "video"))
            if why:
                problems.append(f"field '{field}': {why}: {p}")
    return problems


def probe_media(path: Path, *, need_video: bool) -> str | None:
    """Return why ``path`` cannot serve as a video (or audio) file, or ``None`` if it can."""
    import av

    from cdrscreen.media.video import not_a_video

    try:
        with av.open(str(path)) as container:
            if need_video:
                return not_a_video(container)
            if not container.streams.audio:
                return "has no audio stream"
    except Exception as err:  # noqa: BLE001 - anything the decoder raises means "unreadable"
        return f"cannot be decoded ({type(err).__name__})"
    return None
