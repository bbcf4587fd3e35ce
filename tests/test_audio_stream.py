"""Audio in blocks: every block computation against the whole-signal one it replaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cdrscreen.core.io import PARQUET_ROWS_PER_GROUP, write_parquet
from cdrscreen.features.audio_input import SignalStats, clipped_fraction
from cdrscreen.features.vad import FrameEnergy, frame_level_db
from cdrscreen.media.audio import load_audio, resample
from cdrscreen.media.audio_stream import (
    AudioSignal,
    decode_to_file,
    decoded,
    forget_decoded,
    resample_blocks,
)
from tests.fixtures_speech import SR, looped_voice, write_wav


def _file_signal(tmp_path, x: np.ndarray, sr: int) -> AudioSignal:
    path = tmp_path / "x.f32"
    np.asarray(x, dtype="<f4").tofile(path)
    return AudioSignal(sr, path=path)


@pytest.mark.parametrize("orig_sr", [48000, 44100, 22050, 8000])
def test_block_resampling_is_sample_exact(tmp_path, orig_sr):
    x = (0.1 * np.random.default_rng(orig_sr).standard_normal(3 * orig_sr + 17)).astype(np.float32)
    ref = resample(x, orig_sr, SR)
    got = np.concatenate(list(resample_blocks(_file_signal(tmp_path, x, orig_sr), SR, size=4099)))
    np.testing.assert_array_equal(got, ref)


def test_decoded_file_equals_load_audio(tmp_path, speech_media):
    for kind in ("wav", "mp4", "mkv"):
        sig = decode_to_file(speech_media[kind], tmp_path / f"{kind}.f32")
        ref, sr = load_audio(speech_media[kind], None, memo=False)
        assert sig.sr == sr
        np.testing.assert_array_equal(sig.to_array(), ref)


def test_decoded_is_kept_once_and_removed(tmp_path, speech_media):
    native, x = decoded(speech_media["wav"], SR)
    folder = native.path.parent
    assert native is x and folder.is_dir()
    assert decoded(speech_media["wav"], SR)[0].path == native.path  # decoded once
    forget_decoded()
    assert not folder.exists()


@pytest.mark.parametrize("block", [1, 7, 160, 4096])
def test_frame_energy_in_blocks_equals_whole_signal(block):
    rng = np.random.default_rng(block)
    for n in (0, 399, 1601, 20001):
        x = (0.1 * rng.standard_normal(n)).astype(np.float32)
        fe = FrameEnergy(400, 160, n)
        for i in range(0, n, block):
            fe.feed(x[i : i + block])
        np.testing.assert_array_equal(fe.finish(), frame_level_db(x, 400, 160))


def test_signal_stats_equal_whole_signal_measures():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(2, 500))
        x = (0.3 * rng.standard_normal(n)).astype(np.float32)
        if trial % 2:
            x = np.clip(x, -0.4, 0.4)  # flat tops
        if trial % 3 == 0:
            x[-3:] = x[-1]  # a plateau at the very end
        for block in (1, 3, 64):
            st = SignalStats()
            for i in range(0, n, block):
                st.feed(x[i : i + block])
            assert st.clipped_fraction() == clipped_fraction(x)
            assert st.mean() == pytest.approx(float(np.mean(x, dtype=np.float64)), abs=1e-12)


def test_band_passed_level_in_blocks_equals_sosfiltfilt(tmp_path):
    from scipy.signal import butter, sosfiltfilt

    from cdrscreen.features.timing import sosfiltfilt_level_db

    sos = butter(4, (300, 3000), btype="band", fs=SR, output="sos")
    x = (0.1 * np.random.default_rng(1).standard_normal(200_001)).astype(np.float32)
    ref = frame_level_db(sosfiltfilt(sos, x.astype(np.float64)), 800, 160)
    got = sosfiltfilt_level_db(_file_signal(tmp_path, x, SR), sos, 800, 160, tmp_path)
    np.testing.assert_array_equal(got, ref)
    assert not (tmp_path / "filtfilt.f64").exists()


def test_mfcc_in_blocks_matches_librosa_on_the_whole_signal(tmp_path):
    """Blocks reproduce librosa's frames; only BLAS's float32 summation order may differ.

    The mel filterbank product is a matrix product whose rounding depends on how many
    frames it is given (librosa's own result for a frame moves by 1 float32 ulp with the
    signal's length), so the block result is compared at that level.
    """
    from cdrscreen.features.mfcc import iter_mfcc_blocks, mfcc_matrix

    t = np.arange(SR * 25) / SR
    rng = np.random.default_rng(2)
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
         + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    ref = mfcc_matrix(x, SR)
    blocks = list(iter_mfcc_blocks(_file_signal(tmp_path, x, SR), folder=tmp_path, frames_per_block=499))
    assert [f0 for f0, _ in blocks] == sorted({f0 for f0, _ in blocks}) and blocks[0][0] == 0
    got = np.concatenate([b for _, b in blocks], axis=1)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)
    assert not (tmp_path / "mel.f32").exists()


@pytest.mark.slow
def test_speech_groups_from_disk_equal_the_in_memory_signal(tmp_path, alsa_clips, monkeypatch):
    """A 50 s recording at 48 kHz: openSMILE's ring buffer (2^21 samples) wraps, MFCC in blocks."""
    import soundfile as sf

    from cdrscreen.features import get_extractor, mfcc

    monkeypatch.setattr(mfcc, "FRAMES_PER_BLOCK", 1000)

    x = looped_voice(alsa_clips, 50)
    wav = tmp_path / "long48k.wav"
    sf.write(str(wav), x, 48000, subtype="FLOAT")
    try:
        for group in ("timing", "gemaps", "mfcc"):
            ex = get_extractor(group)
            on_disk = ex.process_file(wav).iloc[0]
            in_memory = ex.process_signal(x, 48000, file=str(wav)).iloc[0]
            if group == "mfcc":
                np.testing.assert_allclose(on_disk.to_numpy(float), in_memory.to_numpy(float), rtol=1e-4, atol=1e-4)
            else:
                pd.testing.assert_series_equal(on_disk, in_memory, rtol=1e-12)
    finally:
        forget_decoded()


def test_long_table_written_by_row_groups_reads_back_the_same(tmp_path):
    n = 3 * PARQUET_ROWS_PER_GROUP + 5
    index = pd.MultiIndex.from_arrays([["f.wav"] * n, np.arange(n), np.arange(n) * 0.01],
                                      names=["file", "frame", "time"])
    df = pd.DataFrame({"level_db": np.linspace(-60, 0, n), "speech": np.arange(n) % 3 == 0}, index=index)
    df.attrs = {"group": "timing", "signal": "frames"}
    write_parquet(tmp_path / "a.parquet", df)
    back = pd.read_parquet(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs == df.attrs
    # a column whose first group holds only None: written whole instead
    odd = pd.DataFrame({"note": [None] * PARQUET_ROWS_PER_GROUP + ["x"] * 10})
    write_parquet(tmp_path / "b.parquet", odd)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b.parquet"), odd)


def test_wav_written_for_the_tests_is_read_exactly(tmp_path, speech_signal):
    wav = write_wav(tmp_path / "s.wav", speech_signal)
    native, x = decoded(wav, SR)
    try:
        np.testing.assert_array_equal(x.to_array(), load_audio(wav, SR, memo=False)[0])
    finally:
        forget_decoded()


def test_threads_keep_their_own_decoded_recording(tmp_path, speech_signal):
    import threading

    a = write_wav(tmp_path / "a.wav", speech_signal)
    b = write_wav(tmp_path / "b.wav", speech_signal[::-1].copy())
    seen = {}

    def work(name, path):
        native, _ = decoded(path, SR)
        seen[name] = native.path
        barrier.wait()  # both decoded: neither may have removed the other's files
        seen[name + "_ok"] = native.path.is_file() and np.array_equal(native.to_array(), load_audio(path, None, memo=False)[0])

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=work, args=(n, p)) for n, p in (("a", a), ("b", b))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen["a"] != seen["b"] and seen["a_ok"] and seen["b_ok"]
    finally:
        forget_decoded()
    assert not seen["a"].exists() and not seen["b"].exists()
