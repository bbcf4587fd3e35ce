"""Check a study manifest (and optionally a protocol) without extracting anything: every row, every media file, and which subjects the protocol's label scheme includes."""

# ruff: noqa: B008  (typer declares options as argument defaults)
from __future__ import annotations

from pathlib import Path

import typer

NAME = "check"


def command(
    manifest: Path = typer.Argument(..., help="Study manifest (.csv, .tsv or .yaml)."),
    protocol: Path | None = typer.Option(
        None, "--protocol", "-p", help="Evaluation protocol: also check its label scheme against the manifest."),
    decimal: str = typer.Option(".", "--decimal", help="Decimal mark of numbers in a CSV manifest: '.' or ','."),
    media: bool = typer.Option(True, "--media/--no-media", help="Open every media file (quick probe)."),
) -> None:
    """Check a study manifest without extracting: rows, media files, label scheme."""
    from rich.console import Console

    from cdrscreen.study import Study

    con = Console(soft_wrap=True, highlight=False)
    study = Study.from_file(manifest, check_media=media, decimal=decimal)
    frame = study.to_frame()
    n_sub = len(study.subjects)
    by_cdr = frame.reset_index().groupby("cdr")["subject"].nunique()
    con.print(f"{manifest}: {len(study)} recording(s) of {n_sub} subject(s); media "
              + ("checked (every file opens)" if media else "not opened (--no-media)"))
    con.print("subjects per CDR: " + ", ".join(f"CDR {c:g}: {n}" for c, n in by_cdr.items()))
    n_audio = int(frame["audio"].notna().sum()) if "audio" in frame else 0
    if n_audio:
        con.print(f"separate audio files: {n_audio} (speech features read these, not the video's track)")
    if protocol is None:
        con.print("ok")
        return
    from cdrscreen.evaluation.protocol import load_protocol

    proto = load_protocol(protocol)
    mapping = proto.labels.class_map()
    cdr_of = frame.reset_index().groupby("subject")["cdr"].first()
    classes: dict[str, list[str]] = {}
    left: dict[str, list[str]] = {}
    for subj, cdr in cdr_of.items():
        c = mapping.get(float(cdr))
        if c is None:
            left.setdefault(f"CDR {cdr:g} is not in label scheme '{proto.labels.scheme}'", []).append(str(subj))
        else:
            classes.setdefault(c, []).append(str(subj))
    con.print(f"protocol {proto.name}: label scheme '{proto.labels.scheme}' ("
              + ", ".join(f"CDR {k:g} -> {v}" for k, v in mapping.items()) + ")")
    for c in proto.labels.classes():
        con.print(f"  class {c}: {len(classes.get(c, []))} subject(s)")
    for reason, subs in left.items():
        con.print(f"[yellow]note:[/] {len(subs)} subject(s) left out, {reason}: {', '.join(subs)}")
    present = [c for c in proto.labels.classes() if len(classes.get(c, [])) > 0]
    small = [c for c in present if len(classes[c]) < 2]
    from cdrscreen.core.errors import InputError

    if len(present) < 2:
        raise InputError(manifest, f"label scheme '{proto.labels.scheme}' leaves fewer than 2 classes "
                                   f"({', '.join(present) or 'none'}); choose another scheme")
    if small:
        raise InputError(manifest, f"class(es) {', '.join(small)} of scheme '{proto.labels.scheme}' have fewer "
                                   "than 2 subjects; leave-one-subject-out needs at least 2 per class")
    con.print("ok")
