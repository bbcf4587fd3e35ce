"""What the synthetic participants say: planted content effects and their transcripts.

Each demo recording is an interview: a fixed-voice interviewer asks a question before
every second answer, and the participant answers with everyday phrases
(:data:`cdrscreen.demo.voice.PHRASES`). Four class-dependent content effects
(:data:`CONTENT_EFFECTS`) change *what* is said, and therefore the audio too:

- ``filler_rate``: filled pauses (``uh``, ``um``) per 100 words, inserted between words;
- ``repetition_rate``: immediate word repetitions (``I I went``) per 100 words;
- ``diversity``: lexical diversity, the participant's type-token ratio relative to that
  of the same answers as written. While the running TTR is above ``diversity`` times the
  running TTR of the written answers, content words are replaced by the first word of the same kind
  the participant said (perseveration; before any: ``thing``, ``do``, ``nice``, i.e.
  empty speech; ``there`` for adverbs and quantifiers); from the second answer on, the first answer is
  said again instead of a new one when that brings the TTR closer to the target
  (perseveration);
- ``latency_s``: mean silence between the end of a question and the answer (each
  latency log-normal around it, CV 0.2).

Counts follow the rates by error diffusion (the running count is the rate times the
running number of words, rounded), so a 16 s clip with ~35 words carries its planted
rate up to half an event. The transcript of every recording is written from the same text
espeak-ng speaks (CHAT with ``&-uh`` and ``w [/] w`` markers, and the same lines as a
Praat TextGrid), timed by the planted segment table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cdrscreen.demo.voice import PHRASES, SpeechTrack, VoiceParams, synthesize

#: Planted content effects: mean per CDR class, within-class SD, clip range, unit.
CONTENT_EFFECTS: dict[str, dict[str, Any]] = {
    "filler_rate": {"means": {0.5: 3.0, 1.0: 8.0, 2.0: 13.0}, "sd": 4.0, "clip": (0.0, 25.0),
                    "unit": "filled pauses (uh, um) per 100 words"},
    "repetition_rate": {"means": {0.5: 2.0, 1.0: 6.0, 2.0: 10.0}, "sd": 3.5, "clip": (0.0, 20.0),
                        "unit": "immediate word repetitions per 100 words"},
    "diversity": {"means": {0.5: 0.8, 1.0: 0.7, 2.0: 0.6}, "sd": 0.07, "clip": (0.4, 1.0),
                  "unit": "target type-token ratio of the participant's words"},
    "latency_s": {"means": {0.5: 0.6, 1.0: 1.1, 2.0: 1.6}, "sd": 0.4, "clip": (0.2, 3.5),
                  "unit": "mean response latency after a question, seconds"},
}

#: Interviewer questions (spoken with :data:`INTERVIEWER_VOICE`).
QUESTIONS: tuple[str, ...] = (
    "What did you do last week?",
    "Can you tell me about your family?",
    "What do you like to do in the evening?",
    "Where did you live when you were young?",
    "How do you spend a normal day?",
    "What did you have for lunch today?",
    "Tell me about your home.",
    "What was your work?",
)
INTERVIEWER_VOICE = VoiceParams(voice="en-gb+m3", rate_wpm=165.0, pitch=45.0, pitch_sd=0.0, amplitude=0.6)
#: Silence between the end of an answer and the next question (not class-dependent).
QUESTION_GAP_S = 0.5

#: Content nouns of :data:`PHRASES` that lexical-diversity planting may replace.
NOUNS = frozenset(
    "market daughter apples loaf bread garden roses tree morning newspaper teacher years grandson "
    "afternoon river radio evening weather week bus town centre sister sea holidays dinner dog park "
    "doctor water cat school door glasses husband kitchen table mountains summer soup days".split()
)
#: Verbs, adjectives and adverbs/quantifiers of :data:`PHRASES` that lexical-diversity
#: planting may replace.
VERBS = frozenset(
    "went bought has read used work visits lived like listen take lives cooked walk said drink had "
    "remember forget put built enjoy making rained".split()
)
ADJECTIVES = frozenset("small young cold red old big short".split())
ADVERBS = frozenset("usually sometimes twice far here more many some every all sixteen".split())
#: Words that replace a content word when the participant has said none of its kind yet.
GENERIC = {"noun": "thing", "verb": "do", "adjective": "nice", "adverb": "there"}
_FILLERS = ("uh", "um")


def _category(word: str) -> str | None:
    w = word.lower()
    for cat, words in (("noun", NOUNS), ("verb", VERBS), ("adjective", ADJECTIVES), ("adverb", ADVERBS)):
        if w in words:
            return cat
    return None


@dataclass(frozen=True)
class ContentParams:
    """One participant's planted content effects (see :data:`CONTENT_EFFECTS`)."""

    filler_rate: float = 0.0
    repetition_rate: float = 0.0
    diversity: float = 1.0
    latency_s: float = 0.8

    def to_dict(self) -> dict[str, float]:
        """Plain dict of the parameters."""
        return asdict(self)


def draw_content(cdr: float, seed: int) -> ContentParams:
    """Draw a participant's content parameters for CDR class ``cdr`` (own random stream)."""
    rng = np.random.default_rng([seed, 19])
    vals = {}
    for name, e in CONTENT_EFFECTS.items():
        lo, hi = e["clip"]
        vals[name] = float(np.clip(rng.normal(e["means"][cdr], e["sd"]), lo, hi))
    return ContentParams(**vals)


class _Planter:
    """Error-diffusion counters so that realised counts follow the planted rates."""

    def __init__(self, p: ContentParams, rng: np.random.Generator) -> None:
        self.p, self.rng = p, rng
        self.words = self.fill = self.rep = 0
        self.types: set[str] = set()
        #: content words said so far by category, in order (perseveration reuses the first)
        self.seen: dict[str, list[str]] = {k: [] for k in GENERIC}
        self.first: list[str] | None = None  # the first answer, as said
        self.nat_types: set[str] = set()  # the answers as written (no planted content)
        self.nat_words = 0

    def _ttr_after(self, raw: list[str]) -> float:
        said = [w.lower() for w in raw if w != ","]
        return len(self.types | set(said)) / (self.words + len(said))

    def _types_after(self, raw: list[str]) -> int:
        return len(self.types | {w.lower() for w in raw if w != ","})

    def _empty_speech(self, raw: list[str], target: float) -> list[str]:
        """Replace content words while the running TTR is above ``target``.

        A replacement must lower the number of word types, except that a generic word
        (``thing``, ``do``, ``nice``) may be brought in when two or more types are still
        to be removed (its next uses will lower it).
        """
        out = list(raw)
        n = self.words + sum(1 for w in raw if w != ",")
        for i, w in enumerate(raw):
            cat = _category(w)
            excess = self._types_after(out) - target * n
            if cat is None or excess <= 0.5:
                continue
            earlier = [x for x in self.seen[cat] if x != w.lower()]
            earlier += [x.lower() for x in out[:i] if _category(x) == cat and x.lower() != w.lower()]
            trial = list(out)
            trial[i] = earlier[0] if earlier else GENERIC[cat]
            if self._types_after(trial) < self._types_after(out) or excess >= 2:
                out = trial
        return out

    def answer(self, phrase: str) -> tuple[str, str, int]:
        """Return (spoken text, CHAT text, words) of one answer."""
        written = phrase.rstrip(".?!").replace(",", " ,").split()
        plain = [w.lower() for w in written if w != ","]
        self.nat_types |= set(plain)
        self.nat_words += len(plain)
        target = self.p.diversity
        raw = self._empty_speech(written, target)
        if self.first is not None:  # perseveration: the first answer again, if closer to the target
            if abs(self._ttr_after(self.first) - target) < abs(self._ttr_after(raw) - target):
                raw = list(self.first)
        else:
            self.first = list(raw)
        words = [w for w in raw if w != ","]
        for w in words:
            self.types.add(w.lower())
            cat = _category(w)
            if cat is not None and w.lower() not in self.seen[cat]:
                self.seen[cat].append(w.lower())
        self.words += len(words)
        n_fill = int(np.floor(self.p.filler_rate / 100 * self.words + 0.5)) - self.fill
        n_rep = int(np.floor(self.p.repetition_rate / 100 * self.words + 0.5)) - self.rep
        self.fill += max(n_fill, 0)
        self.rep += max(n_rep, 0)
        slots = [i for i, w in enumerate(raw) if w != ","]
        fill_at = self.rng.choice(slots, size=max(n_fill, 0), replace=True) if n_fill > 0 else []
        rep_at = set(self.rng.choice(slots, size=min(max(n_rep, 0), len(slots)), replace=False).tolist()) \
            if n_rep > 0 else set()
        spoken: list[str] = []
        chat: list[str] = []
        for i, w in enumerate(raw):
            if w == ",":
                spoken[-1:] = [spoken[-1] + ","] if spoken else []
                chat.append(",")
                continue
            for _ in range(int(np.sum(np.asarray(fill_at) == i))):
                f = _FILLERS[int(self.rng.integers(len(_FILLERS)))]
                spoken.append(f)
                chat.append(f"&-{f}")
            if i in rep_at:
                spoken.append(w)
                chat += [w, "[/]"]
            spoken.append(w)
            chat.append(w)
        return " ".join(spoken) + ".", " ".join(chat) + " .", len(words)


def dialogue_track(duration_s: float, params: VoiceParams, content: ContentParams, *, seed: int = 0,
                   sr: int = 16000, lead_in_s: float = 0.4) -> SpeechTrack:
    """Interview audio: questions, then answers with planted content, latencies and pauses.

    Segment kinds: ``speech`` (the participant), ``other`` (the interviewer),
    ``latency`` (question end to answer start), ``pause`` (between two answers, or
    answer to question), ``silence`` (lead-in and tail). The ``transcript`` column holds
    each utterance's CHAT main line; ``text`` is what espeak-ng spoke.
    """
    rng = np.random.default_rng([seed, 29])
    n_total = int(round(duration_s * sr))
    order = rng.permutation(len(PHRASES))
    q_order = rng.permutation(len(QUESTIONS))
    planter = _Planter(content, rng)
    pieces: list[np.ndarray] = [np.zeros(int(lead_in_s * sr), np.float32)]
    pos = len(pieces[0])
    rows: list[dict[str, object]] = [{"start": 0.0, "end": pos / sr, "kind": "silence", "text": "",
                                      "pitch": np.nan, "words": 0, "transcript": ""}] if pos else []

    def add(kind: str, y: np.ndarray, text: str = "", pitch: float = np.nan, words: int = 0,
            chat: str = "") -> bool:
        nonlocal pos
        if pos + len(y) > n_total:
            return False
        rows.append({"start": pos / sr, "end": (pos + len(y)) / sr, "kind": kind, "text": text,
                     "pitch": pitch, "words": words, "transcript": chat})
        pieces.append(y.astype(np.float32))
        pos += len(y)
        return True

    def gap(kind: str, seconds: float) -> bool:
        return add(kind, np.zeros(max(int(round(seconds * sr)), 1), np.float32))

    k = 0
    while True:
        if k % 2 == 0:  # a question before every second answer
            q = QUESTIONS[q_order[(k // 2) % len(q_order)]]
            y = synthesize(q, INTERVIEWER_VOICE.voice, INTERVIEWER_VOICE.rate_wpm, INTERVIEWER_VOICE.pitch, sr)
            y = y / max(float(np.abs(y).max()), 1e-6) * INTERVIEWER_VOICE.amplitude
            if k and not gap("pause", QUESTION_GAP_S):
                break
            if not add("other", y, q, INTERVIEWER_VOICE.pitch, len(q.split()), q.rstrip("?") + " ?"):
                break
            lat = content.latency_s * float(rng.lognormal(-0.5 * np.log(1.04), np.sqrt(np.log(1.04))))
            if not gap("latency", lat):
                break
        elif not gap("pause", float(rng.lognormal(np.log(params.pause_mean_s) - 0.5 * np.log(1.25),
                                                  np.sqrt(np.log(1.25))))):
            break
        spoken, chat, n_words = planter.answer(PHRASES[order[k % len(order)]])
        pitch = float(np.clip(rng.normal(params.pitch, params.pitch_sd), 0, 99))
        y = synthesize(spoken, params.voice, params.rate_wpm, pitch, sr)
        y = y / max(float(np.abs(y).max()), 1e-6) * params.amplitude
        if not add("speech", y, spoken, pitch, len(spoken.rstrip(".").split()), chat):
            break
        k += 1
    while rows and rows[-1]["kind"] in ("pause", "latency", "other"):  # nothing answered after them
        last = rows.pop()
        pieces.pop()
        pos = int(round(float(last["start"]) * sr))  # type: ignore[arg-type]
    if pos < n_total:
        rows.append({"start": pos / sr, "end": n_total / sr, "kind": "silence", "text": "", "pitch": np.nan,
                     "words": 0, "transcript": ""})
    audio = np.concatenate(pieces)
    audio = np.pad(audio, (0, max(n_total - len(audio), 0)))[:n_total]
    seg = pd.DataFrame(rows, columns=["start", "end", "kind", "text", "pitch", "words", "transcript"])
    return SpeechTrack(audio=audio.astype(np.float32), sr=sr, segments=seg)


def utterance_table(segments: pd.DataFrame) -> pd.DataFrame:
    """Transcript utterances (``speaker, start, end, text, mor``) of a dialogue's segment table."""
    seg = segments[segments.kind.isin(["speech", "other"])]
    return pd.DataFrame({
        "speaker": np.where(seg.kind == "speech", "PAR", "INV"),
        "start": seg.start.round(3).to_numpy(), "end": seg.end.round(3).to_numpy(),
        "text": seg.transcript.to_numpy(), "mor": "",
    })


def content_summary(segments: pd.DataFrame) -> dict[str, float]:
    """Realised content statistics of a dialogue (what the transcript must show)."""
    par = segments[segments.kind == "speech"]
    chat = " ".join(par.transcript)
    toks = chat.split()
    n_fill = sum(t.startswith("&-") for t in toks)
    n_rep = sum(t == "[/]" for t in toks)
    words = [t for t in toks if not t.startswith("&-") and t not in ("[/]", ".", ",")] if toks else []
    n_words = len(words) - n_rep
    lat = segments[segments.kind == "latency"]
    return {
        "words": float(n_words),
        "fillers_per100": 100.0 * n_fill / n_words if n_words else float("nan"),
        "repetitions_per100": 100.0 * n_rep / n_words if n_words else float("nan"),
        "latency_median_s": float((lat.end - lat.start).median()) if len(lat) else float("nan"),
    }


def write_transcripts(stem: Path, track: SpeechTrack) -> dict[str, Path]:
    """Write ``<stem>.cha`` and ``<stem>.TextGrid`` for one recording; return their paths."""
    from cdrscreen.transcripts import write_chat, write_textgrid

    table = utterance_table(track.segments)
    cha, tg = stem.with_suffix(".cha"), stem.with_suffix(".TextGrid")
    write_chat(cha, table, corpus="cdrscreen-demo")
    write_textgrid(tg, table, xmax=round(track.duration, 3))
    return {"chat": cha, "textgrid": tg}
