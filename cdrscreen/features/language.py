"""Speech content: linguistic features of a recording's transcript.

What a participant says, from a transcript the user provides (CHAT, Praat TextGrid,
CSV/TSV, SRT, WebVTT; see :mod:`cdrscreen.transcripts`). Every column is defined in
``docs/features-language.md``. Word and marker rules: :mod:`cdrscreen.transcripts.tokens`.

Amount and rate
    ``utterances`` (participant utterances with at least one word), ``tokens`` (words),
    ``speech_s`` (summed duration of the participant's timed utterances),
    ``words_per_min`` (tokens per minute of ``speech_s``), ``mlu_words`` (tokens per
    utterance), ``mlu_morphemes`` (``%mor`` morphemes per utterance with ``%mor``).
Lexical diversity (on the participant's tokens, case-folded)
    ``ttr`` = V / N; ``mattr``: mean TTR of every window of ``mattr_window`` consecutive
    tokens (Covington & McFall 2010; the TTR of all tokens when there are fewer);
    ``brunet_w`` = N ** (V ** -0.165) (Brunét 1978; lower = richer);
    ``honore_r`` = 100 ln N / (1 - V1 / V) with V1 the words said once (Honoré 1979;
    NaN when every word is said once).
Disfluency (per 100 tokens)
    ``fillers_per100``, ``repetitions_per100``, ``retracings_per100``,
    ``unintelligible_per100``, ``pauses_per100`` (pause markers).
Syntax and semantics (``%mor``; NaN without it)
    ``noun_rate``, ``verb_rate``, ``pronoun_rate``, ``adjective_rate``, ``adverb_rate``
    (fractions of the participant's ``%mor`` items), ``open_closed_ratio``,
    ``pronoun_noun_ratio``.
Interaction (timed transcripts)
    ``latency_median_s``, ``latency_iqr_s``: from the end of each interviewer turn to the
    start of the participant turn that follows it (a turn is a run of consecutive
    utterances of one speaker; negative when the participant starts before the
    interviewer ends); ``responses`` (how many); ``inv_words_per_par_word``.
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from cdrscreen.core.config import StrictModel
from cdrscreen.core.errors import CdrscreenError, InputError, MissingDependencyError
from cdrscreen.features.base import Extractor
from cdrscreen.study import Recording
from cdrscreen.transcripts import Transcript, read_transcript
from cdrscreen.transcripts.model import canonical_role
from cdrscreen.transcripts.tokens import (
    DEFAULT_FILLERS,
    POS_CLASSES,
    Morphology,
    Tokens,
    parse_mor,
    tokenize,
)

#: Names (without prefix) of the language features, in output order.
LANGUAGE_FEATURES: tuple[str, ...] = (
    "utterances", "tokens", "speech_s", "words_per_min", "mlu_words", "mlu_morphemes",
    "ttr", "mattr", "brunet_w", "honore_r",
    "fillers_per100", "repetitions_per100", "retracings_per100", "unintelligible_per100", "pauses_per100",
    "noun_rate", "verb_rate", "pronoun_rate", "adjective_rate", "adverb_rate", "open_closed_ratio",
    "pronoun_noun_ratio",
    "latency_median_s", "latency_iqr_s", "responses", "inv_words_per_par_word",
)

#: Default MATTR window (tokens).
MATTR_WINDOW = 50
#: Brunét's constant.
BRUNET_A = 0.165
NAN = float("nan")


# -- lexical diversity ------------------------------------------------------------------
def ttr(words: Sequence[str]) -> float:
    """Type-token ratio V / N (NaN without words)."""
    return len(set(words)) / len(words) if words else NAN


def mattr(words: Sequence[str], window: int = MATTR_WINDOW) -> float:
    """Moving-average TTR: mean TTR over every window of ``window`` consecutive words.

    With fewer than ``window`` words, the TTR of all of them.
    """
    if window < 1:
        raise CdrscreenError(f"MATTR window must be >= 1, got {window}")
    n = len(words)
    if n == 0:
        return NAN
    if n <= window:
        return ttr(words)
    counts = Counter(words[:window])
    total = len(counts)
    for i in range(window, n):
        out_w, in_w = words[i - window], words[i]
        counts[out_w] -= 1
        if counts[out_w] == 0:
            del counts[out_w]
        counts[in_w] += 1
        total += len(counts)
    return total / ((n - window + 1) * window)


def brunet_w(words: Sequence[str], a: float = BRUNET_A) -> float:
    """Brunét's index W = N ** (V ** -a) (lower means richer vocabulary)."""
    if not words:
        return NAN
    return float(len(words) ** (len(set(words)) ** -a))


def honore_r(words: Sequence[str]) -> float:
    """Honoré's statistic R = 100 ln N / (1 - V1 / V); NaN when every word occurs once."""
    if not words:
        return NAN
    c = Counter(words)
    v, v1 = len(c), sum(1 for k in c.values() if k == 1)
    if v1 == v:
        return NAN
    return float(100.0 * math.log(len(words)) / (1.0 - v1 / v))


# -- interaction -------------------------------------------------------------------------
def turns(table: pd.DataFrame) -> list[tuple[str, float, float]]:
    """Merge consecutive timed utterances of one speaker (time order) into turns ``(speaker, start, end)``."""
    t = table.dropna(subset=["start", "end"]).sort_values(["start", "line"])
    out: list[tuple[str, float, float]] = []
    for r in t.itertuples():
        if out and out[-1][0] == r.speaker:
            out[-1] = (r.speaker, out[-1][1], max(out[-1][2], r.end))
        else:
            out.append((r.speaker, r.start, r.end))
    return out


def response_latencies(table: pd.DataFrame, speaker: str = "PAR", interviewer: str = "INV") -> np.ndarray:
    """Seconds from the end of each interviewer turn to the start of the next turn, when the participant's."""
    tr = turns(table)
    return np.array([b[1] - a[2] for a, b in zip(tr[:-1], tr[1:], strict=False)
                     if a[0] == interviewer and b[0] == speaker], dtype=float)


# -- the whole group -------------------------------------------------------------------------
def language_features(
    transcript: Transcript,
    *,
    speaker: str = "PAR",
    interviewer: str = "INV",
    fillers: Sequence[str] = DEFAULT_FILLERS,
    mattr_window: int = MATTR_WINDOW,
    segmenter: Callable[[str], list[str]] | None = None,
) -> dict[str, float]:
    """Every feature of :data:`LANGUAGE_FEATURES` for one transcript (see the module docstring)."""
    spk, inv = canonical_role(speaker), canonical_role(interviewer)
    table = transcript.utterances
    par = table[table.speaker == spk]
    tok = Tokens()
    mor = Morphology()
    n_utt = n_mor_utt = 0
    for r in par.itertuples():
        t = tokenize(r.text, fillers=fillers, segmenter=segmenter)
        tok += t
        n_utt += bool(t.words)
        if r.mor.strip():
            m = parse_mor(r.mor)
            mor += m
            n_mor_utt += bool(m.items)
    words = tok.words
    n = len(words)
    per100 = (lambda k: 100.0 * k / n) if n else (lambda k: NAN)
    timed = bool(len(par)) and bool(par.start.notna().all())
    speech_s = float((par.end - par.start).sum()) if timed else NAN
    out: dict[str, float] = {
        "utterances": float(n_utt), "tokens": float(n), "speech_s": speech_s,
        "words_per_min": n / (speech_s / 60.0) if timed and speech_s > 0 else NAN,
        "mlu_words": n / n_utt if n_utt else NAN,
        "mlu_morphemes": mor.morphemes / n_mor_utt if n_mor_utt else NAN,
        "ttr": ttr(words), "mattr": mattr(words, mattr_window), "brunet_w": brunet_w(words),
        "honore_r": honore_r(words),
        "fillers_per100": per100(tok.fillers), "repetitions_per100": per100(tok.repetitions),
        "retracings_per100": per100(tok.retracings), "unintelligible_per100": per100(tok.unintelligible),
        "pauses_per100": per100(tok.pauses),
    }
    for k in POS_CLASSES:
        out[f"{k}_rate"] = mor.pos[k] / mor.items if mor.items else NAN
    out["open_closed_ratio"] = mor.open_class / mor.closed_class if mor.closed_class else NAN
    out["pronoun_noun_ratio"] = mor.pos["pronoun"] / mor.pos["noun"] if mor.pos["noun"] else NAN
    lat = response_latencies(table, spk, inv) if transcript.timed else np.zeros(0)
    out["latency_median_s"] = float(np.median(lat)) if lat.size else NAN
    out["latency_iqr_s"] = float(np.subtract(*np.percentile(lat, [75, 25]))) if lat.size else NAN
    out["responses"] = float(lat.size) if transcript.timed else NAN
    inv_words = sum(len(tokenize(x, fillers=fillers, segmenter=segmenter).words)
                    for x in table.loc[table.speaker == inv, "text"])
    out["inv_words_per_par_word"] = inv_words / n if n else NAN
    return {k: out[k] for k in LANGUAGE_FEATURES}


@functools.lru_cache(maxsize=1)
def jieba_segmenter() -> Callable[[str], list[str]]:
    """``jieba.lcut`` (precise mode) with jieba's start-up messages silenced."""
    try:
        import jieba
    except ImportError as err:
        raise MissingDependencyError("segmenter='jieba'", "chinese", err) from None
    import logging

    jieba.setLogLevel(logging.ERROR)
    return jieba.lcut  # type: ignore[no-any-return]


def sentence_embedding(texts: Sequence[str], model_dir: str | os.PathLike[str]) -> np.ndarray:
    """Mean sentence embedding of ``texts`` from a local sentence-transformers model folder.

    Nothing is downloaded: the folder must hold the model (``modules.json``,
    ``config.json``, weights).
    """
    path = Path(model_dir)
    if not path.is_dir():
        raise InputError(path, "embedding model folder not found (give a local sentence-transformers model)")
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise InputError(path, "is not a sentence-transformers model folder (no modules.json or config.json)")
    model = _load_st(str(path.resolve()))
    emb = model.encode([t for t in texts if t.strip()] or [""], convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(emb, dtype=float).mean(axis=0)


@functools.lru_cache(maxsize=2)
def _load_st(path: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise MissingDependencyError("sentence embeddings (embedding_model=...)", "sentences", err) from None
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # no weight-loading progress bars in extraction output
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(path, device="cpu", local_files_only=True)
    except Exception as err:  # noqa: BLE001 - any loader failure is a bad model folder
        raise InputError(path, f"cannot load the sentence-transformers model ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else ''})") from None


class LanguageParams(StrictModel):
    """Settings of the ``language`` group (spec section ``groups.language``)."""

    speaker: str = Field("PAR", description="Analysed speaker (PAR; participant/patient mean the same).")
    interviewer: str = Field("INV", description="Speaker whose turns response latency is measured from.")
    fillers: list[str] | None = Field(None, description="Plain words counted as filled pauses (default: "
                                                        "uh um er erm hmm mm 嗯 呃 额 那个).")
    mattr_window: int = Field(MATTR_WINDOW, ge=1, description="MATTR window, words.")
    segmenter: Literal["jieba"] | None = Field(None, description="Split unsegmented Chinese with jieba.")
    speakers: dict[str, str] | None = Field(None, description="Extra speaker labels -> role, e.g. {Spk1: PAR}.")
    embedding_model: str | None = Field(None, description="Local sentence-transformers model folder.")


class LanguageExtractor(Extractor):
    """Linguistic features of each recording's transcript (manifest column ``transcript``).

    Parameters
    ----------
    speaker : str, default "PAR"
        The analysed speaker (``PAR``; ``participant`` and ``patient``, the RTTM label the
        speech features use, name the same role).
    interviewer : str, default "INV"
        Whose turns the response latency is measured from.
    fillers : sequence of str, optional
        Plain words counted as filled pauses (default :data:`DEFAULT_FILLERS`, English
        and Mandarin); CHAT ``&-uh`` markers count whatever the list.
    mattr_window : int, default 50
        MATTR window in tokens.
    segmenter : {None, "jieba"}
        Split unsegmented Chinese text into words with jieba (``chinese`` extra).
    speakers : mapping, optional
        Extra speaker labels and their role, e.g. ``{"Spk1": "PAR", "Spk2": "INV"}``.
    embedding_model : path, optional
        Local sentence-transformers model folder: adds ``emb_000...`` columns (mean
        embedding of the participant's utterances). Never downloaded.
    """

    name: ClassVar[str] = "language"
    prefix: ClassVar[str] = "language"
    version: ClassVar[int] = 1
    Params = LanguageParams
    key_features: ClassVar[tuple[tuple[str, str], ...]] = (
        ("mattr", "lexical diversity (MATTR)"),
        ("fillers_per100", "filled pauses per 100 words"),
        ("latency_median_s", "response latency (s, median)"),
        ("pronoun_noun_ratio", "pronoun-to-noun ratio"),
    )

    def __init__(
        self,
        *,
        speaker: str = "PAR",
        interviewer: str = "INV",
        fillers: Sequence[str] | None = None,
        mattr_window: int = MATTR_WINDOW,
        segmenter: str | None = None,
        speakers: Mapping[str, str] | None = None,
        embedding_model: str | os.PathLike[str] | None = None,
    ) -> None:
        if segmenter not in (None, "jieba"):
            raise CdrscreenError(f"segmenter must be None or 'jieba', got {segmenter!r}")
        if mattr_window < 1:
            raise CdrscreenError(f"mattr_window must be >= 1, got {mattr_window}")
        self.speaker = canonical_role(speaker)
        self.interviewer = canonical_role(interviewer)
        self.fillers = list(DEFAULT_FILLERS if fillers is None else fillers)
        self.mattr_window = int(mattr_window)
        self.segmenter = segmenter
        self.speakers = dict(speakers) if speakers else None
        self.embedding_model = str(embedding_model) if embedding_model is not None else None

    def inputs(self, rec: Recording) -> list[Path | None]:
        """Return the transcript: it decides the output (the model folder is in the configuration)."""
        return [rec.transcript]

    def process_recording(self, rec: Recording) -> pd.DataFrame:
        """Features of a manifest row's transcript."""
        if rec.transcript is None:
            raise InputError(f"{rec.subject}/{rec.session}", "recording has no transcript (manifest column "
                                                            "'transcript') for the language features")
        return self.process_file(rec.transcript)

    def process_file(self, path: str | os.PathLike[str], **_: Any) -> pd.DataFrame:
        """Features of one transcript file: a one-row DataFrame indexed by ``file``."""
        t = read_transcript(path, speakers=self.speakers, speaker=self.speaker)
        seg = jieba_segmenter() if self.segmenter == "jieba" else None
        feats = language_features(t, speaker=self.speaker, interviewer=self.interviewer, fillers=self.fillers,
                                  mattr_window=self.mattr_window, segmenter=seg)
        if self.embedding_model is not None:
            par = t.speaker(self.speaker)
            texts = [" ".join(tokenize(x, fillers=self.fillers, segmenter=seg).words) for x in par.text]
            emb = sentence_embedding(texts, self.embedding_model)
            feats.update({f"emb_{i:03d}": float(v) for i, v in enumerate(emb)})
        row = {f"{self.prefix}__{k}": v for k, v in feats.items()}
        return pd.DataFrame([row], index=pd.Index([str(path)], name="file"))
