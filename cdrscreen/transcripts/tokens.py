"""Words and disfluency markers of one utterance (CHAT main-line conventions).

Every format's text is read with the same rules, so a CHAT file, a TextGrid and a CSV
holding the same text give the same counts. Plain text without markers is fine.

============================  ==========================================================
``&-uh``, ``&-um``, ``&-嗯``   filled pause (CHAT); also a plain word in the filler list
``<the boy> [/] the boy``      repetition: the retraced words (``<...>`` or the single
                               word before the marker) are not counted as words
``[//]``, ``[///]``, ``[/-]``  retracing (correction, reformulation, false start)
``word [x 3]``                 the word said 3 times: 2 repetitions, counted once
``xxx``, ``yyy``               unintelligible / phonetically transcribed word
``(.)``, ``(..)``, ``(...)``   pause markers (also timed ``(1.5)``)
``&=laughs``, ``&+fr``, ``&~`` events, fragments, non-words: not words
``0word``, ``www``             omitted word, untranscribed material: not words
``[: x]``, ``[* m]``, ``[= x]``, ``[+ x]``, ``[!]``, ``[?]``, ``[%c]``: annotations, ignored
``.``, ``?``, ``!``, ``+...``, ``+/.``, ``,``: terminators and punctuation, ignored
============================  ==========================================================

Words keep CHAT's own segmentation (whitespace): CHAT Mandarin is written with spaces
between words. ``@``-suffixes (``bingo@c``), ``(letters)`` of incomplete words and
``:``/``^`` prosody marks are removed; words are compared case-insensitively.
Unsegmented Chinese text (runs of Han characters) can be split by an optional segmenter
(``jieba``, which ships its dictionary).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

#: Default filled-pause words (English and Mandarin); a plain word in this list is a filler.
DEFAULT_FILLERS: tuple[str, ...] = ("uh", "um", "er", "erm", "hmm", "mm", "嗯", "呃", "额", "那个")

_TOKEN = re.compile(
    r"\[[^\]]*\]"  # [/], [//], [x 3], [: target], ...
    r"|<|>"
    r"|\(\.{1,3}\)|\((?:\d+:)?\d*\.?\d+\)"  # pause markers
    r"|[^\s<>\[\]]+"
)
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_PUNCT_ONLY = re.compile(r"^[\W_]+$", re.UNICODE)
_REPEAT = re.compile(r"^\[x\s*(\d+)\s*\]$")


@dataclass
class Tokens:
    """Counts of one utterance (or a sum of several).

    Attributes
    ----------
    words : list of str
        Words spoken as content: case-folded, without fillers, retraced material,
        unintelligible words, events, fragments, omissions and punctuation.
    fillers, repetitions, retracings, unintelligible, pauses : int
        Marker counts (see the module docstring).
    """

    words: list[str] = field(default_factory=list)
    fillers: int = 0
    repetitions: int = 0
    retracings: int = 0
    unintelligible: int = 0
    pauses: int = 0

    def __iadd__(self, other: Tokens) -> Tokens:
        self.words += other.words
        self.fillers += other.fillers
        self.repetitions += other.repetitions
        self.retracings += other.retracings
        self.unintelligible += other.unintelligible
        self.pauses += other.pauses
        return self


def clean_word(tok: str) -> str:
    """Return a word without CHAT form markers (``@c``), incomplete-word parentheses and prosody marks."""
    w = tok.split("@", 1)[0]
    w = w.replace("(", "").replace(")", "").replace("^", "").replace("ˈ", "").replace("ˌ", "")
    w = w.rstrip(":").replace(":", "") if not _HAN.search(w) else w
    w = w.strip(".,;!?\"'“”‘’„‡")
    return w.casefold()


def tokenize(
    text: str,
    *,
    fillers: Iterable[str] = DEFAULT_FILLERS,
    segmenter: Callable[[str], list[str]] | None = None,
) -> Tokens:
    """Words and marker counts of one utterance's text (see the module docstring).

    Parameters
    ----------
    text : str
        Main-line text (CHAT conventions; plain text is fine).
    fillers : iterable of str
        Plain words counted as filled pauses (compared case-insensitively).
    segmenter : callable, optional
        Splits a run of Han characters into words (e.g. ``jieba.lcut``); ``None`` keeps
        whitespace tokens as they are.
    """
    fill = {f.casefold() for f in fillers}
    # items: [kind, text] where kind is "w" (word), "f" (filler), "x" (unintelligible), "o" (other)
    items: list[list[str]] = []
    groups: list[int] = []  # start index of open <...> groups
    last_group: tuple[int, int] | None = None  # span of the group closed just before
    out = Tokens()
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if tok == "<":
            groups.append(len(items))
            last_group = None
            continue
        if tok == ">":
            if groups:
                last_group = (groups.pop(), len(items))
            continue
        if tok.startswith("["):
            inner = tok[1:-1].strip()
            scope = last_group if last_group is not None else (
                (len(items) - 1, len(items)) if items else None)
            rep = _REPEAT.match(tok)
            if inner in ("/", "//", "///", "/-", "/?"):
                if inner == "/":
                    out.repetitions += 1
                else:
                    out.retracings += 1
                if scope is not None:
                    for k in range(*scope):
                        items[k][0] = "r"  # retraced: not a word
            elif rep:
                out.repetitions += max(int(rep.group(1)) - 1, 0)
            continue  # other annotations do not change the words
        last_group = None
        if tok.startswith("(") and tok.endswith(")") and re.fullmatch(r"\((?:\.{1,3}|(?:\d+:)?\d*\.?\d+)\)", tok):
            out.pauses += 1
            continue
        if tok.startswith("&"):
            body = clean_word(tok.lstrip("&").removeprefix("-").removeprefix("+").removeprefix("~"))
            if tok.startswith("&-") or (tok[1:2] not in ("=", "+", "~") and body in fill):
                items.append(["f", body])
            continue  # events (&=), fragments (&+), non-words (&~)
        low = tok.casefold()
        if low in ("xxx", "yyy"):
            items.append(["x", low])
            continue
        if low == "www" or tok.startswith("+") or tok.startswith("0") or _PUNCT_ONLY.match(tok):
            continue
        w = clean_word(tok)
        if not w:
            continue
        parts = segmenter(w) if (segmenter is not None and _HAN.search(w)) else [w]
        for p in parts:
            p = p.strip()
            if p and not _PUNCT_ONLY.match(p):
                items.append(["f" if p in fill else "w", p])
    for kind, w in items:
        if kind == "w":
            out.words.append(w)
        elif kind == "f":
            out.fillers += 1
        elif kind == "x":
            out.unintelligible += 1
    return out


#: %mor part-of-speech classes (old MOR tags and the UD-style tags of newer CHAT files).
POS_CLASSES: dict[str, tuple[str, ...]] = {
    "noun": ("n", "noun", "propn"),
    "verb": ("v", "verb", "cop", "part"),
    "pronoun": ("pro", "pron"),
    "adjective": ("adj",),
    "adverb": ("adv",),
}
#: Tags counted in neither the open nor the closed class (communicators, interjections, unknown).
UNCLASSED = ("co", "intj", "on", "unk", "L2", "neo", "beg", "end", "cm", "bq", "eq", "punct", "x")
_MOR_TERMINATORS = re.compile(r"^(?:[.?!]|\+\S*|[,„‡]|cm\|cm)$")


@dataclass
class Morphology:
    """Part-of-speech counts and morphemes of ``%mor`` lines (clitics are items of their own).

    ``items`` counts the classified items (everything but :data:`UNCLASSED` tags);
    every classified item is open class (noun, verb, adjective, adverb) or closed class.
    """

    items: int = 0
    morphemes: int = 0
    pos: dict[str, int] = field(default_factory=lambda: {k: 0 for k in POS_CLASSES})
    open_class: int = 0
    closed_class: int = 0

    def __iadd__(self, other: Morphology) -> Morphology:
        self.items += other.items
        self.morphemes += other.morphemes
        for k in self.pos:
            self.pos[k] += other.pos[k]
        self.open_class += other.open_class
        self.closed_class += other.closed_class
        return self


def pos_class(tag: str) -> str | None:
    """Return the class of a %mor tag (``n:prop`` -> ``noun``), or None."""
    base = tag.split(":", 1)[0]
    for name, tags in POS_CLASSES.items():
        if base in tags:
            return name
    return None


def parse_mor(mor: str) -> Morphology:
    """Count one ``%mor`` line: part-of-speech classes and morphemes.

    Items tagged as communicators or interjections (:data:`UNCLASSED`, e.g. ``co|uh``)
    are skipped: they are neither morphemes of the utterance nor part of the rates.

    An item ``pos|stem-SUF1-SUF2`` is ``1 + number of '-' suffixes`` morphemes (``&``
    fusional marks are not counted, as in CLAN's MLU); ``#`` prefixes add one each;
    ``~`` and ``$`` clitics are separate items.
    """
    out = Morphology()
    for raw in mor.split():
        if _MOR_TERMINATORS.match(raw):
            continue
        for item in re.split(r"[~$]", raw):
            if "|" not in item:
                continue
            tag, _, rest = item.partition("|")
            prefixes = tag.count("#")
            tag = tag.split("#")[-1]
            if tag in ("cm", "bq", "eq", "punct"):
                continue
            if tag.split(":", 1)[0] in UNCLASSED:
                continue  # communicators (co|uh), interjections: neither counted nor rated
            stem = rest.split("=", 1)[0]
            out.items += 1
            out.morphemes += 1 + stem.count("-") + prefixes
            cls = pos_class(tag)
            if cls is not None:
                out.pos[cls] += 1
            if cls in ("noun", "verb", "adjective", "adverb"):
                out.open_class += 1
            else:
                out.closed_class += 1
    return out
