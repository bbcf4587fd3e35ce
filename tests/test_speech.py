"""Speech extractors: parity with openSMILE and librosa, timing recovery, masking, edge cases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdrscreen.features import get_extractor, run_extractors
from cdrscreen.features.audio_input import QUALITY_COLUMNS, feature_columns
from cdrscreen.features.gemaps import N_FEATURES, EGeMAPSExtractor, GeMAPSExtractor
from cdrscreen.features.mfcc import MFCCExtractor, column_names
from cdrscreen.features.timing import TimingExtractor, detect_speech, timing_features
from cdrscreen.media.audio import load_audio, resample
from tests.fixtures_speech import PHRASES, SR, espeak, looped_voice, mux_video, silence

#: Planted pauses must be recovered to within this many seconds (VAD frames are 10 ms).
PAUSE_TOLERANCE_S = 0.03
ALL = ("mfcc", "gemaps", "egemaps", "timing")


def _row(name: str, signal: np.ndarray, **kw) -> pd.Series:
    return get_extractor(name).process_signal(signal, SR, **kw).iloc[0]


# -- openSMILE parity ---------------------------------------------------------------------
@pytest.mark.parametrize(("name", "feature_set"), [("gemaps", "GeMAPSv01b"), ("egemaps", "eGeMAPSv02")])
def test_opensmile_from_video_track_equals_opensmile_on_decoded_signal(speech_media, name, feature_set):
    import opensmile

    smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                            feature_level=opensmile.FeatureLevel.Functionals)
    ours = get_extractor(name).process_file(speech_media["mp4"])
    x, sr = load_audio(speech_media["mp4"])
    ref = smile.process_signal(x, sr)
    assert ref.shape[1] == N_FEATURES[name]
    cols = [f"{name}__{c}" for c in ref.columns]
    assert feature_columns(ours) == cols
    np.testing.assert_allclose(ours[cols].to_numpy(float), ref.to_numpy(float), rtol=1e-6, atol=0)
    assert ours[f"{name}__quality_ok"].item() == 1.0
    assert ours[f"{name}__patient_only"].item() == 0.0


def test_gemaps_of_wav_equals_opensmile_reading_the_file(speech_media):
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02)
    ref = smile.process_file(str(speech_media["wav"]))
    ours = EGeMAPSExtractor().process_file(speech_media["wav"])
    np.testing.assert_allclose(ours.iloc[0, :88].to_numpy(float), ref.iloc[0].to_numpy(float), rtol=1e-6)


def test_egemaps_reduced_configuration_drops_only_unread_components():
    from cdrscreen.features import gemaps

    smile, _ = gemaps._smile("egemaps")
    main = Path(smile.config_path)
    assert main.name == "eGeMAPSv02.conf" and "cdrscreen-opensmile-config-" in str(main)
    text = "".join(p.read_text(encoding="utf-8") for p in (main.parents[2] / "gemaps" / "v01b").glob("*.egemaps.conf.inc"))
    funcconcat = next(line for line in main.read_text(encoding="utf-8").splitlines()
                      if line.startswith("reader.dmLevel") and "egemapsv02_leq" in line)
    for names in gemaps.EGEMAPS_UNUSED.values():
        for name in names:
            assert f"instance[{name}]" not in text
    # the two functionals dropped write levels that eGeMAPS' output never reads
    assert "gemapsv01b_functionalsMeanStddevVoiced" not in funcconcat
    assert "gemapsv01b_functionalsMeanSpectralUnvoiced" not in funcconcat


@pytest.mark.slow
def test_egemaps_streamed_equals_process_file_exactly_with_ring_wrap(tmp_path, alsa_clips):
    """45 s at 48 kHz (more than the 2^21-sample input ring): eGeMAPS values equal, bit for bit."""
    import opensmile
    import soundfile as sf

    x = looped_voice(alsa_clips, 45)
    assert x.size > 2**21
    wav = tmp_path / "long48k.wav"
    sf.write(str(wav), x, 48000, subtype="PCM_16")
    ref = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).process_file(str(wav))
    ours = EGeMAPSExtractor().process_file(wav)
    np.testing.assert_array_equal(ours.iloc[0, :88].to_numpy(float), ref.iloc[0].to_numpy(float))


@pytest.mark.parametrize(("name", "feature_set", "sr"), [("gemaps", "GeMAPSv01b", 16000), ("egemaps", "eGeMAPSv02", 48000)])
def test_sized_levels_give_the_same_values_bit_for_bit(alsa_clips, name, feature_set, sr):
    """12 s (1200 LLD frames, more than openSMILE's first 1000): levels sized for the signal
    up front, or too small (they grow), give exactly the values of ``Smile.process_signal``."""
    import opensmile

    from cdrscreen.features import gemaps

    x = looped_voice(alsa_clips, 12, sr=sr)
    ref = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                          feature_level=opensmile.FeatureLevel.Functionals).process_signal(x, sr)
    ref = ref.to_numpy(float).reshape(-1)
    assert np.isfinite(ref).all()
    for hint in (x.size, x.size // 2):
        ours = gemaps._run_stream(name, [x], sr, n_samples=hint)
        np.testing.assert_array_equal(ours, ref, err_msg=f"n_samples={hint}")


@pytest.mark.parametrize("sr", [16000, 48000])
def test_level_frames_bounds_the_lld_frames(alsa_clips, sr):
    import opensmile

    from cdrscreen.features.gemaps import _FRAME_MARGIN, level_frames

    x = looped_voice(alsa_clips, 12.34, sr=sr)
    lld = opensmile.Smile(feature_set=opensmile.FeatureSet.GeMAPSv01b,
                          feature_level=opensmile.FeatureLevel.LowLevelDescriptors).process_signal(x, sr)
    assert 1200 <= len(lld) <= level_frames(x.size, sr) - _FRAME_MARGIN
    assert level_frames(0, sr) == level_frames(sr, sr) == 1000  # never below openSMILE's own size
    assert level_frames(3600 * sr, sr) == 360000 + _FRAME_MARGIN
    with pytest.raises(ValueError, match="n_samples"):
        level_frames(-1, sr)


def test_analysed_sample_count_is_what_the_blocks_give(two_voice):
    from cdrscreen.features.gemaps import _analysed_samples

    tv = two_voice
    ext = GeMAPSExtractor()
    for segments in (None, tv.segments):
        prep = ext.prepare(tv.signal, SR, segments)
        native = prep.native if prep.native is not None else prep.x
        n = sum(b.size for b in prep.analysed_blocks(native=True))
        assert _analysed_samples(prep, native) == n
        assert (n == tv.signal.size) == (segments is None)


def test_real_human_speech_in_video_matches_opensmile(tmp_path, alsa_clips):
    import opensmile
    import soundfile as sf

    clips = [sf.read(str(p), dtype="float32")[0] for p in alsa_clips[:4]]
    x48 = np.concatenate([np.concatenate([c, np.zeros(24000, np.float32)]) for c in clips])
    video = mux_video(tmp_path / "human.mp4", x48, sr=48000)
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.GeMAPSv01b)
    # default: openSMILE sees the track at its own 48 kHz
    x, sr = load_audio(video, None)
    assert sr == 48000
    ref = smile.process_signal(x, sr)
    ours = GeMAPSExtractor().process_file(video)
    np.testing.assert_allclose(ours.iloc[0, :62].to_numpy(float), ref.iloc[0].to_numpy(float), rtol=1e-6)
    assert np.isfinite(ours.iloc[0, :62].to_numpy(float)).all()
    assert ours["gemaps__source_sr"].item() == 48000
    # the 16 kHz option: resampled first, as cdrscreen < 0.3 did
    x16, sr16 = load_audio(video)
    assert sr16 == SR
    ref16 = smile.process_signal(x16, sr16)
    ours16 = GeMAPSExtractor(opensmile_sr=SR).process_file(video)
    np.testing.assert_allclose(ours16.iloc[0, :62].to_numpy(float), ref16.iloc[0].to_numpy(float), rtol=1e-6)


# -- librosa parity -----------------------------------------------------------------------
def test_mfcc_equals_librosa_on_speech_frames(speech_media):
    import librosa
    from scipy.stats import kurtosis, skew

    x, sr = load_audio(speech_media["wav"])
    ours = MFCCExtractor().process_file(speech_media["wav"]).iloc[0]
    m = librosa.feature.mfcc(y=np.asarray(x), sr=sr, n_mfcc=13, n_fft=512, win_length=400,
                             hop_length=160, n_mels=40, fmin=0.0, fmax=sr / 2)
    full = np.vstack([m, librosa.feature.delta(m, width=9), librosa.feature.delta(m, width=9, order=2)])
    frames = detect_speech(x, sr).speech
    assert frames.size == full.shape[1] and 0.5 < frames.mean() < 0.95
    sel = full[:, frames].astype(np.float64)
    expected = np.stack([sel.mean(1), sel.std(1), *np.percentile(sel, [10, 50, 90], axis=1),
                         skew(sel, axis=1), kurtosis(sel, axis=1)], axis=1).reshape(-1)
    got = ours[[f"mfcc__{c}" for c in column_names(13)]].to_numpy(float)
    assert got.size == 13 * 3 * 7
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


# -- timing -------------------------------------------------------------------------------
@pytest.mark.parametrize("noise_db", [None, -50.0])
def test_planted_pauses_are_recovered(planted_pauses, noise_db):
    x, planted, _ = planted_pauses
    if noise_db is not None:
        x = x + np.float32(10 ** (noise_db / 20)) * np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
    row = _row("timing", x)
    assert row["timing__pause_count"] == len(planted)
    _, vad = timing_features(x, SR)
    from cdrscreen.features.timing import pauses

    got = pauses(vad, None, 0.25)
    np.testing.assert_allclose(got, planted, atol=PAUSE_TOLERANCE_S)
    assert row["timing__pause_mean_s"] == pytest.approx(np.mean(planted), abs=PAUSE_TOLERANCE_S)
    assert row["timing__pause_max_s"] == pytest.approx(max(planted), abs=PAUSE_TOLERANCE_S)
    assert row["timing__pause_total_s"] == pytest.approx(sum(planted), abs=len(planted) * PAUSE_TOLERANCE_S)
    expected_speech = len(x) / SR - sum(planted) - 0.6  # minus lead/tail silence
    assert row["timing__phonation_s"] == pytest.approx(expected_speech, abs=0.15)


def test_pauses_between_patient_segments_are_the_patients(planted_pauses):
    # a diarisation that splits the patient's answer at every pause: same pauses found
    x, planted, segs = planted_pauses
    row = _row("timing", x, segments=segs)
    assert row["timing__patient_only"] == 1.0
    assert row["timing__pause_count"] == len(planted)
    assert row["timing__pause_mean_s"] == pytest.approx(np.mean(planted), abs=PAUSE_TOLERANCE_S)
    # ... unless gaps are not to be joined into turns
    row = TimingExtractor(max_gap_s=0).process_signal(x, SR, segments=segs).iloc[0]
    assert row["timing__pause_count"] == 0


def test_speech_rate_tracks_espeak_rate():
    # PHRASES hold 57 syllables in total
    rates, counts = [], []
    for wpm in (110, 170, 230):
        x = np.concatenate([np.concatenate([espeak(p, speed=wpm), silence(0.4)]) for p in PHRASES])
        row = _row("timing", x)
        rates.append(row["timing__articulation_rate_syl_per_s"])
        counts.append(row["timing__syllable_count"])
    assert rates[0] < rates[1] < rates[2]
    assert rates[2] / rates[0] > 1.6  # espeak speeds differ by 2.1x
    assert all(abs(c - 57) <= 0.15 * 57 for c in counts), counts


# -- speaker masking ----------------------------------------------------------------------
def test_patient_masking_moves_features_towards_the_patient(two_voice):
    tv = two_voice
    f0 = "gemaps__F0semitoneFrom27.5Hz_sma3nz_amean"
    full, masked = _row("gemaps", tv.signal), _row("gemaps", tv.signal, segments=tv.segments)
    alone, itv = _row("gemaps", tv.patient_alone), _row("gemaps", tv.interviewer_alone)
    # the interviewer's high voice raises mean F0 of the whole recording; masking removes it
    assert alone[f0] < full[f0] < itv[f0]
    assert masked[f0] == pytest.approx(alone[f0], abs=0.1)
    assert (full["gemaps__patient_only"], masked["gemaps__patient_only"]) == (0.0, 1.0)
    assert masked["gemaps__speech_seconds"] < full["gemaps__speech_seconds"]

    t_full, t_mask = _row("timing", tv.signal), _row("timing", tv.signal, segments=tv.segments)
    t_alone = _row("timing", tv.patient_alone)
    # the slow patient lowers articulation rate once the fast interviewer is masked out
    assert t_mask["timing__articulation_rate_syl_per_s"] < t_full["timing__articulation_rate_syl_per_s"]
    # gaps between turns are pauses of the whole recording, not of the patient's speech
    assert t_full["timing__pause_count"] >= 5 and t_mask["timing__pause_count"] == 0
    assert t_mask["timing__phonation_s"] == pytest.approx(t_alone["timing__phonation_s"], abs=0.1)

    m_full, m_mask = _row("mfcc", tv.signal), _row("mfcc", tv.signal, segments=tv.segments)
    m_alone = _row("mfcc", tv.patient_alone)
    means = [f"mfcc__c{i:02d}_mean" for i in range(1, 14)]
    closer = np.abs(m_mask[means] - m_alone[means]) < np.abs(m_full[means] - m_alone[means])
    assert closer.sum() >= 10, closer


def test_segments_file_is_read_and_used(tmp_path, two_voice):
    tv = two_voice
    wav = tmp_path / "iv.wav"
    import soundfile as sf

    sf.write(str(wav), tv.signal, SR, subtype="FLOAT")
    csv = tmp_path / "iv.csv"
    tv.segments.replace({"patient": "P", "interviewer": "I"}).to_csv(csv, index=False)
    a = GeMAPSExtractor(patient="P").process_file(wav, segments=csv)
    b = GeMAPSExtractor().process_signal(tv.signal, SR, segments=tv.segments)
    np.testing.assert_allclose(a.iloc[0].to_numpy(float), b.iloc[0].to_numpy(float), rtol=1e-6)
    from cdrscreen.core.errors import InputError

    with pytest.raises(InputError, match="no segment has the patient's speaker label 'patient'"):
        GeMAPSExtractor().process_file(wav, segments=csv)


# -- documented edge cases ----------------------------------------------------------------
@pytest.fixture(scope="module")
def edge_rows(speech_signal):
    x = speech_signal
    cases = {
        "silent": np.zeros(2 * SR, np.float32),
        "short": espeak("hello")[: int(0.2 * SR)],
        "clipped": np.clip(6.0 * x, -1.0, 1.0),
        "dc": x + np.float32(0.2),
        "zero_mean": x - np.float32(np.mean(x, dtype=np.float64)),
        "noise": (0.01 * np.random.default_rng(1).standard_normal(2 * SR)).astype(np.float32),
    }
    out = {}
    for k, s in cases.items():
        out[k] = pd.concat([get_extractor(n).process_signal(s, SR) for n in ALL], axis=1).iloc[0]
    return out


@pytest.mark.parametrize("case", ["silent", "short", "noise"])
def test_no_usable_speech_gives_nan_and_flag(edge_rows, case):
    row = edge_rows[case]
    feats = feature_columns(row.to_frame().T)
    assert len(feats) == 273 + 62 + 88 + 15
    assert row[feats].isna().all()
    for n in ALL:
        assert row[f"{n}__quality_ok"] == 0.0
        assert row[f"{n}__speech_seconds"] < 1.0


def test_clipped_input_is_flagged_but_computed(edge_rows):
    row = edge_rows["clipped"]
    assert row["gemaps__clipped_fraction"] > 0.01
    assert row["gemaps__quality_ok"] == 0.0
    assert np.isfinite(row[feature_columns(row.to_frame().T)].drop(
        ["timing__speech_to_pause_ratio", "timing__pause_mean_s", "timing__pause_median_s",
         "timing__pause_std_s", "timing__pause_max_s"], errors="ignore").to_numpy(float)).all()
    assert edge_rows["zero_mean"]["gemaps__clipped_fraction"] == 0.0


def test_dc_offset_is_reported_and_removed(edge_rows):
    dc, ref = edge_rows["dc"], edge_rows["zero_mean"]
    assert dc["egemaps__dc_offset"] == pytest.approx(0.2, abs=0.002)
    assert dc["egemaps__quality_ok"] == 1.0
    feats = feature_columns(ref.to_frame().T)
    # equal up to the float32 rounding of the subtracted mean (~6e-8), which openSMILE's
    # formant tracker amplifies to <= 2 % in a few bandwidth statistics
    np.testing.assert_allclose(dc[feats].to_numpy(float), ref[feats].to_numpy(float), rtol=0.02, atol=1e-3)


def test_dc_offset_would_distort_features_if_kept(speech_signal):
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.GeMAPSv01b)
    x = speech_signal - np.float32(np.mean(speech_signal, dtype=np.float64))
    col = "hammarbergIndexUV_sma3nz_amean"
    raw_clean = smile.process_signal(x, SR)[col].item()
    raw_offset = smile.process_signal(x + np.float32(0.2), SR)[col].item()
    ours = GeMAPSExtractor().process_signal(x + np.float32(0.2), SR)[f"gemaps__{col}"].item()
    assert abs(raw_offset - raw_clean) > 5.0  # openSMILE alone is thrown off by the offset
    assert ours == pytest.approx(raw_clean, rel=0.02)


def test_signal_input_forms(speech_signal):
    ex = TimingExtractor()
    a = ex.process_signal(speech_signal, SR)
    b = ex.process_signal(np.stack([speech_signal, speech_signal]), SR)  # (channels, samples)
    c = ex.process_signal(resample(speech_signal, SR, 44100), 44100)
    pd.testing.assert_frame_equal(a, b)
    assert c["timing__phonation_s"].item() == pytest.approx(a["timing__phonation_s"].item(), abs=0.05)
    from cdrscreen.core.errors import InputError

    with pytest.raises(InputError, match="NaN"):
        ex.process_signal(np.full(SR, np.nan, np.float32), SR)


# -- extractor contract, cache, numba ---------------------------------------------------------
def test_registry_study_and_cache(tmp_path, speech_media, two_voice):
    from cdrscreen.cache import FeatureCache
    from cdrscreen.study import Study

    seg = tmp_path / "s2.csv"
    two_voice.segments.to_csv(seg, index=False)
    import soundfile as sf

    sf.write(str(tmp_path / "s2.wav"), two_voice.signal, SR, subtype="PCM_16")
    rows = [
        ("line 2", {"subject": "S1", "video": str(speech_media["mp4"]), "cdr": "0.5"}),
        ("line 3", {"subject": "S2", "audio": "s2.wav", "segments": "s2.csv", "cdr": "1"}),
    ]
    study = Study.from_rows(rows, base=tmp_path)
    exs = [get_extractor(n) for n in ALL]
    assert [type(e) for e in exs] == [MFCCExtractor, GeMAPSExtractor, EGeMAPSExtractor, TimingExtractor]
    assert exs[0].inputs(study.recordings[1])[1] == seg
    cache = FeatureCache(tmp_path / "cache")
    table = run_extractors(exs, study, cache=cache, progress=False)
    assert table.index.names == ["subject", "session", "file"] and len(table) == 2
    assert table.shape[1] == 273 + 62 + 88 + 15 + 4 * len(QUALITY_COLUMNS)
    assert table["timing__patient_only"].tolist() == [0.0, 1.0]
    entries = sorted((tmp_path / "cache").rglob("*.parquet"))
    assert len(entries) == 8
    again = run_extractors(exs, study, cache=cache, progress=False)
    pd.testing.assert_frame_equal(table, again)
    # a changed segments file is a different input: recomputed, not served from cache
    seg.write_text(seg.read_text().replace("patient", "patient ", 1))
    run_extractors(exs[-1:], study, cache=cache, progress=False)
    assert len(sorted((tmp_path / "cache").rglob("*.parquet"))) == 9


def test_numba_cache_dir_default_and_respected(tmp_path):
    code = ("import os, cdrscreen.features.mfcc, numba.core.config as c; "
            "print(os.environ['NUMBA_CACHE_DIR']); print(c.CACHE_DIR)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    default = str(tmp_path / ".cache" / "cdrscreen" / "numba")
    assert out.stdout.split() == [default, default]
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(tmp_path / "mine")] * 2


# -- the demo cohort's recordings -----------------------------------------------------------
def test_demo_speech_track_pauses_recovered():
    from cdrscreen.demo import VoiceParams, speech_track
    from cdrscreen.features.timing import pause_intervals

    track = speech_track(20.0, VoiceParams(rate_wpm=150, pause_mean_s=0.8), seed=3, sr=SR)
    seg = track.segments
    planted = seg[(seg.kind == "pause") & (seg.end - seg.start >= 0.3)][["start", "end"]].to_numpy()
    assert len(planted) >= 4
    _, vad = timing_features(track.audio, SR)
    found = pause_intervals(vad, None, 0.25)
    for s, e in planted:
        i = int(np.argmin(np.abs(found[:, 0] - s)))
        assert found[i] == pytest.approx([s, e], abs=PAUSE_TOLERANCE_S), (s, e, found)


def test_demo_face_video_egemaps_parity(tmp_path):
    import opensmile

    from cdrscreen.demo import make_clip

    # a demo clip opens with the interviewer's question: 6 s hold the first answer too
    video = tmp_path / "talk.mp4"
    make_clip(video, duration_s=6.0, size=(160, 120), fps=10.0, face="astronaut")
    ours = EGeMAPSExtractor().process_file(video)
    assert ours["egemaps__quality_ok"].item() == 1.0
    x, sr = load_audio(video, None)
    ref = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).process_signal(x, sr)
    np.testing.assert_allclose(ours.iloc[0, :88].to_numpy(float), ref.iloc[0].to_numpy(float), rtol=1e-6)


def test_cli_extracts_all_speech_groups(tmp_path, speech_media, two_voice, capsys):
    import soundfile as sf

    from cdrscreen.cli import main

    sf.write(str(tmp_path / "iv.wav"), two_voice.signal, SR, subtype="PCM_16")
    two_voice.segments.to_csv(tmp_path / "iv.csv", index=False)
    (tmp_path / "study.csv").write_text(
        f"subject,video,audio,segments,cdr\nS1,{speech_media['mp4']},,,0.5\nS2,,iv.wav,iv.csv,1\n"
    )
    out = tmp_path / "f.parquet"
    code = main(["extract", str(tmp_path / "study.csv"), "--features", "mfcc,gemaps,egemaps,timing",
                 "--out", str(out), "--cache", str(tmp_path / "c"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    df = pd.read_parquet(out)
    assert len(df) == 2
    for g, n in (("mfcc", 273), ("gemaps", 62), ("egemaps", 88), ("timing", 15)):
        assert len([c for c in feature_columns(df) if c.startswith(f"{g}__")]) == n
        assert df[f"{g}__patient_only"].tolist() == [0.0, 1.0]
        assert df[f"{g}__quality_ok"].tolist() == [1.0, 1.0]
