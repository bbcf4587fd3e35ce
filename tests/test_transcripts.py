"""Transcript readers: CHAT, TextGrid, CSV/TSV, SRT/WebVTT give one utterance table.

The shipped samples in ``tests/data/transcripts`` are written by hand (invented text, no
patient data); CHAT is checked against pylangacq's parse and TextGrid against praatio's.
Malformed files are checked through ``cdrscreen extract`` (one error line naming the
file, the line and the problem).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from cdrscreen.cli import main
from cdrscreen.transcripts import (
    TranscriptError,
    chat_text,
    csv_text,
    read_transcript,
    textgrid_text,
)
from cdrscreen.transcripts.tokens import DEFAULT_FILLERS, tokenize
from tests.fixtures_core import write_tiny_wav

DATA = Path(__file__).parent / "data" / "transcripts"


def _rows(t):
    return [(r.speaker, r.start, r.end, r.text, r.mor) for r in t.utterances.itertuples()]


def _same_rows(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x[0] == y[0] and x[3] == y[3] and x[4] == y[4], (x, y)
        for u, v in zip(x[1:3], y[1:3], strict=True):
            assert (math.isnan(u) and math.isnan(v)) or abs(u - v) < 1e-9, (x, y)


def test_three_formats_read_to_the_same_utterances():
    cha = read_transcript(DATA / "picture.cha", speaker="PAR")
    tg = read_transcript(DATA / "picture.TextGrid", speaker="PAR")
    csv_ = read_transcript(DATA / "picture.csv", speaker="PAR")
    assert [cha.format, tg.format, csv_.format] == ["chat", "textgrid", "csv"]
    assert cha.timed and cha.languages == ["eng"]
    assert list(cha.utterances.speaker) == ["INV", "PAR", "PAR", "INV", "PAR", "PAR", "INV", "PAR"]
    _same_rows(_rows(cha), _rows(tg))
    _same_rows(_rows(cha), _rows(csv_))
    assert cha.utterances.mor.str.len().gt(0).sum() == 5
    assert cha.utterances.start.iloc[-1] == pytest.approx(17.35)


def test_chat_reader_agrees_with_pylangacq():
    pylangacq = pytest.importorskip("pylangacq")
    for name in ("picture.cha", "mandarin.cha"):
        ours = read_transcript(DATA / name).utterances
        ref = pylangacq.read_chat(str(DATA / name)).utterances()
        assert [u.participant for u in ref] == list(ours.speaker)
        for u, r in zip(ref, ours.itertuples(), strict=True):
            marks = (None if math.isnan(r.start) else (round(r.start * 1000), round(r.end * 1000)))
            assert (tuple(u.time_marks) if u.time_marks else None) == marks
            # pylangacq keeps plain fillers and punctuation as words; ours leaves both out
            theirs = [t.word.casefold() for t in u.tokens
                      if any(c.isalnum() for c in t.word) and t.word not in DEFAULT_FILLERS]
            assert tokenize(r.text).words == theirs, r.text
            if r.mor:  # the %mor line reached the same utterance: same noun tags
                from cdrscreen.transcripts.tokens import parse_mor

                nouns = sum(1 for t in u.tokens if t.pos and t.pos.split(":")[0] == "n")
                assert nouns == parse_mor(r.mor).pos["noun"] > 0


def test_textgrid_reader_agrees_with_praatio(tmp_path):
    tg_mod = pytest.importorskip("praatio.textgrid")
    short = DATA / "picture.TextGrid"
    long_ = tmp_path / "long.TextGrid"
    long_.write_text(textgrid_text(read_transcript(short).utterances, xmax=20))
    utf16 = tmp_path / "utf16.TextGrid"  # Praat saves non-ASCII TextGrids as UTF-16 with a BOM
    utf16.write_bytes(short.read_text().replace("picture", "picture ü").encode("utf-16"))
    for path in (short, long_):
        ref = tg_mod.openTextgrid(str(path), includeEmptyIntervals=False)
        ours = read_transcript(path).utterances
        want = sorted((e.start, e.end, e.label) for n in ref.tierNames if not n.endswith("%mor")
                      for e in ref.getTier(n).entries)
        got = sorted(zip(ours.start, ours.end, ours.text, strict=True))
        assert len(want) == len(got) == 8
        for w, g in zip(want, got, strict=True):
            assert w[0] == pytest.approx(g[0]) and w[1] == pytest.approx(g[1]) and w[2] == g[2]
    assert "ü" in " ".join(read_transcript(utf16).utterances.text)


def test_writers_round_trip(tmp_path):
    t = read_transcript(DATA / "picture.cha").utterances
    for suffix, text in ((".cha", chat_text(t)), (".TextGrid", textgrid_text(t)), (".csv", csv_text(t))):
        p = tmp_path / f"x{suffix}"
        p.write_text(text)
        _same_rows(_rows(read_transcript(p)), _rows(read_transcript(DATA / "picture.cha")))


def test_subtitles_and_tsv(tmp_path):
    srt = tmp_path / "a.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:02,000\nInterviewer: how are you ?\n\n"
                   "2\n00:00:02,750 --> 00:00:05,100\nPAR: &-um I am fine .\n\n"
                   "3\n00:00:05,500 --> 00:00:06,000\n<i>thank you</i>\n")
    vtt = tmp_path / "a.vtt"
    vtt.write_text("WEBVTT\n\nq1\n00:00.000 --> 00:02.000\n<v INV>how are you ?\n\n"
                   "00:02.750 --> 00:05.100\n<v participant>&-um I am fine .\n\n"
                   "00:05.500 --> 00:06.000\nthank you\n")
    tsv = tmp_path / "a.tsv"
    tsv.write_text("start\tend\tspeaker\ttext\n0\t2\tINV\thow are you ?\n2.75\t5.1\tpatient\t&-um I am fine .\n"
                   "5.5\t6\tPAR\tthank you\n")
    rows = [_rows(read_transcript(p)) for p in (srt, vtt, tsv)]
    assert [r[0] for r in rows[0]] == ["INV", "PAR", "PAR"]
    assert rows[0][2][3] == "thank you"  # markup removed; no label: the participant
    _same_rows(rows[0], rows[1])
    _same_rows(rows[0], rows[2])


def test_speaker_mapping_and_untimed_rows(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("speaker,text\nSpk2,what is this ?\nSpk1,a cookie jar .\n")
    with pytest.raises(TranscriptError, match=r"line 2: unknown speaker 'Spk2'"):
        read_transcript(p)
    t = read_transcript(p, speakers={"Spk1": "participant", "Spk2": "INV"}, speaker="PAR")
    assert list(t.utterances.speaker) == ["INV", "PAR"] and not t.timed
    assert np.isnan(t.utterances.start).all()


# -- malformed transcripts through the CLI ----------------------------------------------------
BAD: dict[str, tuple[str, bytes, tuple[str, ...]]] = {
    "unknown_chat_tier": ("x.cha", b"@Begin\n@Participants:\tPAR Participant, INV Investigator\n"
                          b"*INV:\thello .\n*PRA:\tfine .\n@End\n",
                          ("line 4", "unknown tier *PRA", "did you mean *PAR")),
    "unknown_dependent_tier": ("x.cha", b"@Participants:\tPAR Participant\n*PAR:\tfine .\n%mro:\tadj|fine .\n",
                               ("line 3", "unknown dependent tier %mro", "did you mean %mor")),
    "unknown_textgrid_tier": ("x.TextGrid", (b'File type = "ooTextFile"\nObject class = "TextGrid"\n0\n2\n<exists>\n1\n'
                                             b'"IntervalTier"\n"words"\n0\n2\n1\n0\n2\n"fine"\n'),
                              ("line 8", "unknown tier 'words'")),
    "overlap": ("x.csv", b"start,end,speaker,text\n0,2,PAR,one two .\n1.5,3,PAR,three .\n",
                ("line 3", "overlaps", "(line 2)")),
    "reversed": ("x.csv", b"start,end,speaker,text\n0,2,PAR,one two .\n3,2.5,PAR,three .\n",
                 ("line 3", "reversed")),
    "reversed_chat_bullet": ("x.cha", b"@Participants:\tPAR Participant\n*PAR:\tfine . \x154000_3000\x15\n",
                             ("line 2", "reversed")),
    "empty_participant": ("x.cha", b"@Participants:\tPAR Participant, INV Investigator\n*INV:\thello ?\n",
                          ("no utterances of the analysed speaker PAR", "INV")),
    "undecodable": ("x.cha", b"@Participants:\tPAR Participant\n*PAR:\tfine .\n*PAR:\tcaf" + b"\xe9 .\n",
                    ("line 3", "not UTF-8")),
    "bad_time": ("x.csv", b"start,end,speaker,text\nzero,2,PAR,one .\n", ("line 2", "start time 'zero'")),
    "bad_cue": ("x.srt", b"1\n00:00:01 --> 00:00:02\nPAR: hi .\n", ("line 2", "malformed cue time")),
    "not_chat": ("x.cha", b"@Participants:\tPAR Participant\nPAR: fine .\n", ("line 2", "not a CHAT line")),
}


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return write_tiny_wav(tmp_path_factory.mktemp("wav") / "a.wav", seconds=0.5)


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_transcript_gives_one_line(case, tmp_path, wav, capsys):
    name, content, words = BAD[case]
    shutil.copy(wav, tmp_path / "a.wav")
    path = tmp_path / name
    path.write_bytes(content)
    (tmp_path / "study.csv").write_text(f"subject,audio,transcript,cdr\nS1,a.wav,{name},1\n")
    capsys.readouterr()
    code = main(["extract", str(tmp_path / "study.csv"), "--features", "language", "--out",
                 str(tmp_path / "f.parquet"), "--cache", str(tmp_path / "cache"), "--no-progress"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1, err
    assert "Traceback" not in err[0] and err[0].startswith("error: ")
    assert str(path) in err[0], err
    for w in words:
        assert w in err[0], (w, err[0])


def test_manifest_names_a_missing_transcript(tmp_path, wav, capsys):
    shutil.copy(wav, tmp_path / "a.wav")
    (tmp_path / "study.csv").write_text("subject,audio,transcript,cdr\nS1,a.wav,gone.cha,1\n")
    capsys.readouterr()
    code = main(["extract", str(tmp_path / "study.csv"), "--features", "language", "--out",
                 str(tmp_path / "f.parquet"), "--cache", str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "line 2: field 'transcript': file not found" in err and "gone.cha" in err


def test_language_settings_from_the_extraction_spec(tmp_path, wav, capsys):
    import pandas as pd

    from cdrscreen.features.language import mattr

    shutil.copy(wav, tmp_path / "a.wav")
    shutil.copy(DATA / "picture.cha", tmp_path / "p.cha")
    (tmp_path / "study.csv").write_text("subject,audio,transcript,cdr\nS1,a.wav,p.cha,1\n")
    args = ["extract", str(tmp_path / "study.csv"), "--features", "language", "--out", str(tmp_path / "f.parquet"),
            "--cache", str(tmp_path / "cache"), "--no-progress"]
    assert main([*args, "--set", "groups.language.mattr_window=10"]) == 0
    row = pd.read_parquet(tmp_path / "f.parquet").iloc[0]
    words = tokenize(" ".join(read_transcript(DATA / "picture.cha").speaker("PAR").text)).words
    assert row["language__mattr"] == pytest.approx(mattr(words, 10)) and row["language__mattr"] != row["language__ttr"]
    capsys.readouterr()
    assert main([*args, "--set", "groups.language.matr_window=10"]) == 2
    err = capsys.readouterr().err
    assert "matr_window" in err and "mattr_window" in err and len(err.strip().splitlines()) == 1
