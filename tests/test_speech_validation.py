"""Speech measures validated on real human voice: the alsa-utils clips with planted pauses.

Truth: the clips are trimmed to their annotated words (:func:`annotate_words`) and joined
by planted silences of 0.4-1.6 s, so each planted pause starts where a word (mostly a
weak final /t/ or /f/) ends. Syllables: the words spoken, syllabified by dictionary
(:data:`ALSA_SYLLABLES`, 18 in total). See ``docs/validation-speech.md``.
"""

from __future__ import annotations

import numpy as np
import pytest

from cdrscreen.features import get_extractor
from cdrscreen.features.timing import detect_speech, syllable_nuclei, timing_features, timing_tables
from tests.fixtures_speech import ALSA_SYLLABLES, SR, real_voice, silence, write_wav

#: Each planted pause in real speech must be measured within this many seconds.
REAL_PAUSE_TOLERANCE_S = 0.1
#: Relative tolerance of the syllable count on the real clips.
SYLLABLE_TOLERANCE = 0.15
NOISE_LEVELS = [None, -60.0]


@pytest.fixture(scope="module", params=NOISE_LEVELS, ids=["clean", "noise-60dB"])
def voice(request, alsa_clips):
    return real_voice(alsa_clips, noise_db=request.param)


def _gaps(words: np.ndarray) -> np.ndarray:
    return np.stack([words[:-1, 1], words[1:, 0]], axis=1)


def test_real_voice_planted_pauses_each_within_tolerance(voice):
    pauses = timing_tables(voice.signal, voice.sr)["pauses"]
    assert list(pauses.columns) == ["start", "end", "duration"]
    for a, b in voice.planted:
        hit = pauses[(pauses.end > a) & (pauses.start < b)]
        assert len(hit) == 1, (a, b, pauses)
        assert hit.start.item() == pytest.approx(a, abs=REAL_PAUSE_TOLERANCE_S)
        assert hit.end.item() == pytest.approx(b, abs=REAL_PAUSE_TOLERANCE_S)
        assert hit.duration.item() == pytest.approx(b - a, abs=REAL_PAUSE_TOLERANCE_S)


def test_real_voice_pauses_are_true_gaps_and_long_gaps_are_all_found(voice):
    pauses = timing_tables(voice.signal, voice.sr)["pauses"][["start", "end"]].to_numpy()
    gaps = _gaps(voice.words)
    # every detected pause is a gap between two annotated words, at the right place
    for s, e in pauses:
        err = np.abs(gaps - [s, e]).max(axis=1)
        assert err.min() <= REAL_PAUSE_TOLERANCE_S, (s, e)
    # every gap of at least 0.3 s (planted, or between the two words of a clip) is found
    for g in gaps[gaps[:, 1] - gaps[:, 0] >= 0.3]:
        assert np.abs(pauses - g).max(axis=1).min() <= REAL_PAUSE_TOLERANCE_S, g


def test_real_voice_features_from_the_extractor(voice):
    row = get_extractor("timing").process_signal(voice.signal, voice.sr).iloc[0]
    assert row["timing__quality_ok"] == 1.0 and row["timing__quality_no_speech"] == 0.0
    assert row["timing__pause_max_s"] == pytest.approx(max(voice.planted[:, 1] - voice.planted[:, 0]),
                                                       abs=REAL_PAUSE_TOLERANCE_S)
    speech = float(np.sum(voice.words[:, 1] - voice.words[:, 0]))
    # phonation within 10 % of the annotated word time (word-internal closures are speech)
    assert row["timing__phonation_s"] == pytest.approx(speech, rel=0.1)
    assert abs(row["timing__syllable_count"] - voice.syllables) <= SYLLABLE_TOLERANCE * voice.syllables


def test_real_voice_syllables_per_clip(alsa_clips):
    import soundfile as sf

    from cdrscreen.media.audio import resample

    counts, truth = [], []
    for p in alsa_clips:
        if p.stem not in ALSA_SYLLABLES:
            continue
        x, sr = sf.read(str(p), dtype="float32")
        x = np.concatenate([silence(0.5), resample(x, sr, SR), silence(0.5)])
        counts.append(syllable_nuclei(x, SR, detect_speech(x, SR)).size)
        truth.append(ALSA_SYLLABLES[p.stem][1])
    assert len(counts) == 8
    assert abs(sum(counts) - sum(truth)) <= SYLLABLE_TOLERANCE * sum(truth), (counts, truth)
    assert max(abs(c - t) for c, t in zip(counts, truth, strict=True)) <= 1, (counts, truth)


# -- no speech: NaN and flags, never numbers ---------------------------------------------------
@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_no_speech_gives_zero_speech_nan_and_flags(kind):
    x = silence(3.0)
    if kind == "noise":
        x = (0.01 * np.random.default_rng(1).standard_normal(x.size)).astype(np.float32)
    feats, vad = timing_features(x, SR)
    assert not vad.speech.any()
    assert feats["phonation_s"] == 0.0 and feats["analysed_s"] == pytest.approx(3.0)
    others = {k: v for k, v in feats.items() if k not in ("phonation_s", "analysed_s")}
    assert all(np.isnan(v) for v in others.values()), others
    tables = timing_tables(x, SR)
    assert tables["pauses"].empty and tables["speech_segments"].empty
    for name in ("timing", "mfcc", "gemaps"):
        row = get_extractor(name).process_signal(x, SR).iloc[0]
        assert row[f"{name}__speech_seconds"] == 0.0
        assert row[f"{name}__quality_no_speech"] == 1.0 and row[f"{name}__quality_ok"] == 0.0
        assert row[f"{name}__quality_audio_s"] == pytest.approx(3.0)
        feats = row[[c for c in row.index if not c.split("__")[1].startswith("quality_")
                     and c.split("__")[1] not in ("speech_seconds", "patient_only", "clipped_fraction",
                                                  "dc_offset", "source_sr")]]
        assert feats.isna().all(), name


def test_low_sample_rate_is_flagged(alsa_clips):
    rv = real_voice(alsa_clips, sr=8000)
    row = get_extractor("timing").process_signal(rv.signal, 8000).iloc[0]
    assert row["timing__quality_low_sr"] == 1.0 and row["timing__source_sr"] == 8000
    assert row["timing__quality_no_speech"] == 0.0 and row["timing__quality_ok"] == 0.0
    assert row["timing__quality_audio_s"] == pytest.approx(len(rv.signal) / 8000, abs=1e-3)
    ok = get_extractor("timing").process_signal(real_voice(alsa_clips).signal, SR).iloc[0]
    assert ok["timing__quality_low_sr"] == 0.0


# -- tables behind the features ---------------------------------------------------------------
def test_pause_and_speech_tables_tile_the_speech_span(alsa_clips):
    rv = real_voice(alsa_clips)
    t = timing_tables(rv.signal, rv.sr)
    feats, _ = timing_features(rv.signal, rv.sr)
    p, s = t["pauses"], t["speech_segments"]
    assert len(p) == feats["pause_count"] and p.duration.sum() == pytest.approx(feats["pause_total_s"])
    assert s.duration.sum() == pytest.approx(feats["phonation_s"], abs=0.01 * len(s))
    assert (s.duration > 0).all() and (p.duration >= 0.25 - 1e-9).all()
    # consecutive speech segments are separated by exactly the pauses (no gap < 0.25 s left)
    between = np.stack([s.end.to_numpy()[:-1], s.start.to_numpy()[1:]], axis=1)
    np.testing.assert_allclose(between, p[["start", "end"]].to_numpy(), atol=1e-9)


# -- openSMILE at the file's own rate ---------------------------------------------------------
@pytest.mark.parametrize(("group", "feature_set"), [("gemaps", "GeMAPSv01b"), ("egemaps", "eGeMAPSv02")])
def test_opensmile_of_48khz_file_equals_process_file(tmp_path, alsa_clips, group, feature_set):
    import opensmile
    import soundfile as sf

    clips = [sf.read(str(p), dtype="float32")[0] for p in alsa_clips[:4]]
    x48 = np.concatenate([np.concatenate([c, np.zeros(24000, np.float32)]) for c in clips])
    wav = write_wav(tmp_path / "voice48k.wav", x48, sr=48000)
    ref = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set)).process_file(str(wav))
    ours = get_extractor(group).process_file(wav)
    cols = [f"{group}__{c}" for c in ref.columns]
    np.testing.assert_allclose(ours[cols].to_numpy(float), ref.to_numpy(float), rtol=1e-6, atol=0)
    assert ours[f"{group}__source_sr"].item() == 48000 and ours[f"{group}__quality_ok"].item() == 1.0
    # resampling to 16 kHz first (the option) gives different numbers: why it is not the default
    ours16 = get_extractor(group, opensmile_sr=16000).process_file(wav)
    a, b = ours16[cols].to_numpy(float)[0], ref.to_numpy(float)[0]
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-9)
    assert np.median(rel) > 0.01


def test_extract_cli_gives_native_rate_opensmile_and_warning_columns(tmp_path, alsa_clips, capsys):
    """The whole CLI path (manifest -> extract -> table) keeps the file's own rate for openSMILE."""
    import opensmile
    import pandas as pd
    import soundfile as sf

    from cdrscreen.cli import main

    clips = [sf.read(str(p), dtype="float32")[0] for p in alsa_clips[:4]]
    write_wav(tmp_path / "v48.wav", np.concatenate([np.concatenate([c, np.zeros(24000, np.float32)]) for c in clips]),
              sr=48000)
    write_wav(tmp_path / "quiet.wav", silence(2.0))
    (tmp_path / "study.csv").write_text("subject,audio,cdr\nS1,v48.wav,1\nS2,quiet.wav,0.5\n")
    out = tmp_path / "features.parquet"
    code = main(["extract", str(tmp_path / "study.csv"), "--features", "egemaps,timing", "--out", str(out),
                 "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_parquet(out)
    ref = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).process_file(str(tmp_path / "v48.wav"))
    got = table[[f"egemaps__{c}" for c in ref.columns]].to_numpy(float)[0]
    np.testing.assert_allclose(got, ref.to_numpy(float)[0], rtol=1e-6, atol=0)
    assert table["egemaps__source_sr"].tolist() == [48000.0, 16000.0]
    for g in ("egemaps", "timing"):
        assert table[f"{g}__quality_no_speech"].tolist() == [0.0, 1.0]
        assert table[f"{g}__quality_low_sr"].tolist() == [0.0, 0.0]
        np.testing.assert_allclose(table[f"{g}__quality_audio_s"], [len(clips) * 0.5 + sum(len(c) for c in clips) / 48000,
                                                                     2.0], atol=1e-3)
    # the per-pause and per-speech-segment table lands in signals/ beside the table
    from cdrscreen.core.signals import read_signal, signal_path, signals_root

    subject, session, file = table.index[0]
    seg = read_signal(signal_path(signals_root(out), subject, session, file, "timing", "segments")).reset_index()
    row = table.iloc[0]
    pauses, speech = seg[seg.kind == "pause"], seg[seg.kind == "speech"]
    assert len(pauses) == row["timing__pause_count"] >= 3  # the planted 0.4/0.6/0.8 s (plus word gaps)
    assert pauses.duration.sum() == pytest.approx(row["timing__pause_total_s"])
    assert speech.duration.sum() == pytest.approx(row["timing__phonation_s"], abs=0.01 * len(speech))
    np.testing.assert_allclose(pauses.end - pauses.start, pauses.duration)
    # the 16 kHz option from the command line
    out16 = tmp_path / "f16.parquet"
    code = main(["extract", str(tmp_path / "study.csv"), "--features", "egemaps", "--out", str(out16),
                 "--cache", str(tmp_path / "cache"), "--no-progress", "--set", "groups.egemaps.opensmile_sr=16000"])
    assert code == 0, capsys.readouterr().err
    t16 = pd.read_parquet(out16)
    assert not np.allclose(t16[[f"egemaps__{c}" for c in ref.columns]].to_numpy(float)[0], ref.to_numpy(float)[0],
                           rtol=1e-3)


def test_speech_warnings_from_quality_columns(alsa_clips):
    import pandas as pd

    from cdrscreen.features.audio_input import speech_warnings

    quiet = get_extractor("timing").process_signal(silence(2.0), SR)
    phone = pd.concat([get_extractor(g).process_signal(real_voice(alsa_clips, sr=8000).signal, 8000)
                       for g in ("timing", "mfcc")], axis=1)
    fine = get_extractor("timing").process_signal(real_voice(alsa_clips).signal, SR)
    assert speech_warnings(quiet.iloc[0]) == ["no speech found"]
    assert speech_warnings(phone.iloc[0]) == ["audio sample rate 8000 Hz is below 16 kHz"]  # once, not per group
    assert speech_warnings(fine.iloc[0]) == []
    assert speech_warnings(pd.Series({"pupil__valid": 1.0})) == []


def test_min_pause_is_an_extractor_setting(alsa_clips):
    rv = real_voice(alsa_clips)
    row = get_extractor("timing", min_pause_s=0.5).process_signal(rv.signal, rv.sr).iloc[0]
    long = rv.planted[rv.planted[:, 1] - rv.planted[:, 0] >= 0.5]
    assert row["timing__pause_count"] == len(long) == 6  # the 0.4 s pause and the word gaps are bridged
    assert row["timing__pause_total_s"] == pytest.approx(float(np.sum(long[:, 1] - long[:, 0])),
                                                         abs=len(long) * REAL_PAUSE_TOLERANCE_S)
    default = get_extractor("timing").process_signal(rv.signal, rv.sr).iloc[0]
    assert default["timing__pause_count"] > row["timing__pause_count"]
