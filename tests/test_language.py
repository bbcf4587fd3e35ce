"""Language features: hand-counted samples, an independent lexical-diversity reference,
exact response latencies, a Mandarin sample, and the demo's planted content effects."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdrscreen.features.language import (
    LANGUAGE_FEATURES,
    LanguageExtractor,
    brunet_w,
    honore_r,
    language_features,
    mattr,
    ttr,
)
from cdrscreen.transcripts import read_transcript

DATA = Path(__file__).parent / "data" / "transcripts"


def test_chat_textgrid_and_csv_give_identical_features():
    ex = LanguageExtractor()
    rows = [ex.process_file(DATA / f) for f in ("picture.cha", "picture.TextGrid", "picture.csv")]
    a = rows[0].iloc[0]
    for r in rows[1:]:
        b = r.iloc[0]
        assert list(a.index) == list(b.index) == [f"language__{k}" for k in LANGUAGE_FEATURES]
        assert all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)), (a, b)


def test_hand_counted_picture_description():
    f = language_features(read_transcript(DATA / "picture.cha"))
    # PAR words: 6 + 8 + 6 + 4 + 6 (retraced "<he is> [/]", "<the girl> [//]", fillers, xxx, "[x 2]" not words)
    assert f["tokens"] == 30 and f["utterances"] == 5 and f["mlu_words"] == 6
    assert f["speech_s"] == pytest.approx(2.2 + 3.2 + 3.2 + 2.6 + 2.55)
    assert f["words_per_min"] == pytest.approx(30 / 13.75 * 60)
    assert f["fillers_per100"] == pytest.approx(10)  # &-uh, &-um, plain "uh"
    assert f["repetitions_per100"] == pytest.approx(100 * 2 / 30)  # [/] and [x 2]
    assert f["retracings_per100"] == f["unintelligible_per100"] == pytest.approx(100 / 30)
    assert f["pauses_per100"] == pytest.approx(100 * 2 / 30)
    assert f["ttr"] == pytest.approx(21 / 30)  # "the" x6, "is" x4, "on" x2, 18 words once
    assert f["honore_r"] == pytest.approx(100 * math.log(30) / (1 - 18 / 21))
    # %mor: 30 classified items (co|uh skipped), 35 morphemes in 5 utterances
    assert f["mlu_morphemes"] == pytest.approx(7.0)
    assert f["noun_rate"] == pytest.approx(8 / 30) and f["verb_rate"] == pytest.approx(4 / 30)
    assert f["pronoun_rate"] == pytest.approx(3 / 30) and f["adjective_rate"] == 0
    assert f["open_closed_ratio"] == pytest.approx(12 / 18) and f["pronoun_noun_ratio"] == pytest.approx(3 / 8)
    # INV turns end at 2.0, 8.8, 17.6; PAR turns start 2.5, 9.8, 17.35 (an overlap: -0.25 s)
    assert f["latency_median_s"] == pytest.approx(0.5) and f["responses"] == 3
    assert f["latency_iqr_s"] == pytest.approx(np.subtract(*np.percentile([0.5, 1.0, -0.25], [75, 25])))
    assert f["inv_words_per_par_word"] == pytest.approx(11 / 30)


def test_lexical_diversity_equals_lexicalrichness():
    lr_mod = pytest.importorskip("lexicalrichness")
    from cdrscreen.demo.voice import PHRASES
    from cdrscreen.transcripts.tokens import tokenize

    rng = np.random.default_rng(0)
    for trial in range(5):
        text = " ".join(PHRASES[i] for i in rng.choice(len(PHRASES), size=8 + 3 * trial))
        words = tokenize(text).words
        lex = lr_mod.LexicalRichness(" ".join(words))
        assert lex.wordlist == words
        assert ttr(words) == pytest.approx(lex.ttr, abs=1e-12)
        for window in (10, 25, 50):
            assert mattr(words, window) == pytest.approx(lex.mattr(window_size=window), abs=1e-12)
        # lexicalrichness has no Brunet or Honore: the textbook formulas on its own counts
        counts = Counter(lex.wordlist)
        v1 = sum(1 for c in counts.values() if c == 1)
        assert brunet_w(words) == pytest.approx(lex.words ** (lex.terms ** -0.165), rel=1e-12)
        assert honore_r(words) == pytest.approx(100 * math.log(lex.words) / (1 - v1 / lex.terms), rel=1e-12)
    assert mattr(["a", "b"], 50) == ttr(["a", "b"]) == 1.0  # fewer words than the window: the TTR
    assert math.isnan(honore_r(["a", "b"]))  # every word once: undefined


def test_response_latency_exact_on_planted_gaps(tmp_path):
    rng = np.random.default_rng(3)
    gaps = np.round(rng.uniform(0.1, 3.0, 9), 3)
    rows, t = ["start,end,speaker,text"], 0.0
    for g in gaps:
        q = float(rng.uniform(0.8, 2.0))
        rows.append(f"{t:.3f},{t + q:.3f},INV,what else ?")
        t += q + g
        a = float(rng.uniform(1.0, 3.0))
        rows.append(f"{t:.3f},{t + a:.3f},PAR,the cookie jar .")
        rows.append(f"{t + a + 0.2:.3f},{t + a + 1.0:.3f},PAR,and the stool .")  # same turn
        t += a + 1.0 + float(rng.uniform(0.3, 1.0))
    p = tmp_path / "gaps.csv"
    p.write_text("\n".join(rows) + "\n")
    f = language_features(read_transcript(p))
    assert f["responses"] == len(gaps)
    assert abs(f["latency_median_s"] - np.median(gaps)) < 0.01
    assert abs(f["latency_iqr_s"] - np.subtract(*np.percentile(gaps, [75, 25]))) < 0.01


def test_mandarin_sample_documented_counts():
    f = language_features(read_transcript(DATA / "mandarin.cha"))
    # words: 我 去 了 公园 | 我 跟 女儿 一起 散步 很 舒服 | 我们 买 了 菜 | 我今天很高兴 (unsegmented: one token)
    assert f["tokens"] == 16 and f["utterances"] == 4
    assert f["fillers_per100"] == pytest.approx(100 * 3 / 16)  # &-嗯, 呃, 那个
    assert f["repetitions_per100"] == f["unintelligible_per100"] == f["pauses_per100"] == pytest.approx(100 / 16)
    assert math.isnan(f["noun_rate"]) and math.isnan(f["latency_median_s"])  # no %mor, untimed
    assert f["inv_words_per_par_word"] == pytest.approx(8 / 16)
    pytest.importorskip("jieba")
    seg = LanguageExtractor(segmenter="jieba").process_file(DATA / "mandarin.cha")
    assert seg["language__tokens"].iloc[0] == 19  # 我今天很高兴 -> 我 / 今天 / 很 / 高兴


def test_extractor_options_and_errors(tmp_path):
    from cdrscreen.core.errors import CdrscreenError, InputError

    with pytest.raises(CdrscreenError, match="segmenter"):
        LanguageExtractor(segmenter="spacy")
    cfg = LanguageExtractor(mattr_window=20, speaker="patient").get_config()
    assert cfg["speaker"] == "PAR" and cfg["mattr_window"] == 20
    fillers = LanguageExtractor(fillers=["stool"]).process_file(DATA / "picture.cha").iloc[0]
    # &-uh, &-um always; "stool" now a filler, plain "uh" now a word
    assert fillers["language__fillers_per100"] == pytest.approx(100 * 3 / 30) and fillers["language__tokens"] == 30
    inv = LanguageExtractor(speaker="INV", interviewer="PAR").process_file(DATA / "picture.cha").iloc[0]
    assert inv["language__tokens"] == 11 and inv["language__responses"] == 2  # PAR -> INV turn changes
    with pytest.raises(InputError, match="embedding model folder not found"):
        LanguageExtractor(embedding_model=tmp_path / "none").process_file(DATA / "picture.cha")


def test_demo_dialogue_recovers_planted_content():
    """Planted fillers, repetitions, lexical diversity and latency are read back from the transcripts."""
    from scipy.stats import spearmanr

    from cdrscreen.demo.cohort import draw_cohort
    from cdrscreen.demo.content import dialogue_track, utterance_table
    from cdrscreen.demo.voice import espeak_available
    from cdrscreen.transcripts.model import Transcript, make_table

    if not espeak_available():
        pytest.skip("needs espeak-ng")
    rows = []
    for s in draw_cohort(12, seed=0):
        tr = dialogue_track(16.0, s.voice, s.content, seed=s.seed)
        u = utterance_table(tr.segments).assign(line=lambda d: np.arange(1, len(d) + 1))
        f = language_features(Transcript("demo", "chat", make_table(u.to_dict("records"))))
        rows.append({**s.content.to_dict(), **f})
    df = pd.DataFrame(rows)
    for planted, measured in (("filler_rate", "fillers_per100"), ("repetition_rate", "repetitions_per100"),
                              ("diversity", "ttr"), ("latency_s", "latency_median_s")):
        rho = spearmanr(df[planted], df[measured])[0]
        assert rho >= 0.8, (planted, measured, rho)


@pytest.mark.slow
def test_sentence_embeddings_from_a_local_model_folder(tmp_path):
    """A tiny randomly initialised BERT saved as a sentence-transformers folder: never downloaded."""
    pytest.importorskip("sentence_transformers")
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from cdrscreen.transcripts.tokens import tokenize

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"the boy is on stool he taking a cookie".split()]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(tmp_path / "bert")
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "bert")
    st = SentenceTransformer(modules=[models.Transformer(str(tmp_path / "bert")), models.Pooling(16)])
    st.save(str(tmp_path / "st"))

    row = LanguageExtractor(embedding_model=tmp_path / "st").process_file(DATA / "picture.cha").iloc[0]
    emb = row.filter(like="language__emb_").to_numpy(float)
    assert emb.shape == (16,) and np.isfinite(emb).all()
    par = read_transcript(DATA / "picture.cha").speaker("PAR")
    texts = [" ".join(tokenize(t).words) for t in par.text]
    want = st.encode(texts, convert_to_numpy=True).mean(axis=0)
    np.testing.assert_allclose(emb, want, rtol=1e-5, atol=1e-6)
    assert row["language__tokens"] == 30  # the rest of the group is unchanged


@pytest.mark.slow
def test_demo_cohort_writes_transcripts_of_what_was_spoken(tmp_path):
    """The cohort's manifest names a CHAT transcript per recording, matching the planted segments."""
    from cdrscreen.demo import build_cohort
    from cdrscreen.demo.voice import espeak_available
    from cdrscreen.study import Study

    if not espeak_available():
        pytest.skip("needs espeak-ng")
    manifest = build_cohort(tmp_path / "c", n_subjects=3, seed=4, duration_s=9.0, size=(160, 120), n_jobs=1)
    root = manifest.parent
    n_par = 0
    for rec in Study.from_file(manifest):
        assert rec.transcript == root / "transcripts" / f"{rec.subject}.cha"
        cha = read_transcript(rec.transcript).utterances
        tg = read_transcript(rec.transcript.with_suffix(".TextGrid")).utterances
        seg = pd.read_csv(root / "ground_truth" / f"{rec.subject}.speech.csv").fillna("")
        said = seg[seg.kind.isin(["speech", "other"])]
        assert list(cha.text) == list(tg.text) == list(said.transcript)
        assert list(cha.speaker) == ["PAR" if k == "speech" else "INV" for k in said.kind]
        np.testing.assert_allclose(cha.start, said.start, atol=5e-4)
        n_par += int((cha.speaker == "PAR").sum())
    assert n_par >= 3
    subj = pd.read_csv(root / "ground_truth" / "subjects.csv")
    for c in ("content_filler_rate", "content_diversity", "content_latency_s", "content_words"):
        assert subj[c].notna().all(), c
