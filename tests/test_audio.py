"""Audio loading: same samples from WAV and video containers, resampling, one-line errors."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf

from cdrscreen.core.errors import InputError
from cdrscreen.media.audio import DEFAULT_SR, clear_memo, load_audio, probe_audio, resample
from tests.fixtures_speech import SR, mux_video, write_wav


def test_wav_at_native_rate_is_sample_exact(speech_media):
    x, sr = load_audio(speech_media["wav"], SR, memo=False)
    ref, ref_sr = sf.read(str(speech_media["wav"]), dtype="float32")
    assert sr == ref_sr == SR
    assert x.dtype == np.float32 and x.ndim == 1
    np.testing.assert_array_equal(x, ref)


def test_pcm_in_mkv_equals_wav(speech_media):
    a, _ = load_audio(speech_media["wav"], memo=False)
    b, _ = load_audio(speech_media["mkv"], memo=False)
    np.testing.assert_array_equal(a, b)


def test_aac_track_of_mp4_is_close_to_source(speech_media, speech_signal):
    info = probe_audio(speech_media["mp4"])
    assert info.codec == "aac" and info.sample_rate == SR and info.channels == 1
    x, sr = load_audio(speech_media["mp4"], memo=False)
    # AAC adds encoder delay/padding (< 2 frames of 1024) and is lossy
    assert abs(len(x) - len(speech_signal)) <= 2048
    n = min(len(x), len(speech_signal))
    lag = int(np.argmax(np.correlate(x[:SR], speech_signal[:SR], "full"))) - (SR - 1)
    a = x[max(lag, 0) : n]
    b = speech_signal[: len(a)]
    assert np.corrcoef(a, b)[0, 1] > 0.98


def test_stereo_is_averaged_and_resampled(tmp_path):
    t = np.arange(48000 * 2) / 48000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.1 * np.sin(2 * np.pi * 440 * t)
    p = tmp_path / "st.wav"
    sf.write(str(p), np.stack([left, right], axis=1), 48000, subtype="FLOAT")
    x, sr = load_audio(p, memo=False)
    assert sr == DEFAULT_SR == 16000
    assert len(x) == 2 * 16000
    # amplitude (0.5 + 0.1) / 2 = 0.3, frequency preserved
    assert abs(np.sqrt(2) * x[1000:-1000].std() - 0.3) < 1e-3
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * sr / len(x) - 440) < 1.0


def test_resample_identity_and_flac(tmp_path, speech_signal):
    assert resample(speech_signal, SR, SR) is speech_signal
    p = tmp_path / "s.flac"
    sf.write(str(p), resample(speech_signal, SR, 22050), 22050, subtype="PCM_24")
    x, _ = load_audio(p, memo=False)
    assert abs(len(x) - len(speech_signal)) <= 1
    assert np.corrcoef(x[: len(speech_signal)], speech_signal[: len(x)])[0, 1] > 0.999


def test_memo_returns_read_only_cached_signal(speech_media):
    clear_memo()
    a, _ = load_audio(speech_media["wav"])
    b, _ = load_audio(speech_media["wav"])
    assert a is b and not a.flags.writeable
    c, _ = load_audio(speech_media["wav"], 8000)
    assert len(c) == len(a) // 2


@pytest.fixture()
def bad_files(tmp_path, speech_signal):
    ok = write_wav(tmp_path / "ok.wav", speech_signal[: 3 * SR])
    raw = ok.read_bytes()
    (tmp_path / "truncated.wav").write_bytes(raw[: len(raw) // 3])
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 100)
    codec = bytearray(raw)
    codec[20:22] = struct.pack("<H", 0x1234)  # unknown WAVE format tag
    (tmp_path / "codec.wav").write_bytes(bytes(codec))
    mux_video(tmp_path / "silent_film.mp4", None, seconds=1.0)
    mp4 = mux_video(tmp_path / "v.mp4", speech_signal[: 3 * SR]).read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(mp4[: len(mp4) // 2])
    mkv = mux_video(tmp_path / "v.mkv", speech_signal[: 3 * SR], audio_codec="pcm_s16le").read_bytes()
    (tmp_path / "truncated.mkv").write_bytes(mkv[: len(mkv) // 2])
    return tmp_path


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("missing.wav", "not found"),
        ("empty.wav", "empty (0 bytes)"),
        ("garbage.mp4", "cannot be opened"),
        ("codec.wav", "codec"),
        ("silent_film.mp4", "video has no audio track"),
        ("truncated.wav", "truncated"),
        ("truncated.mp4", "truncated"),
        ("truncated.mkv", "truncated"),
    ],
)
def test_bad_inputs_give_one_line_errors(bad_files, name, problem):
    path = bad_files / name
    with pytest.raises(InputError) as info:
        load_audio(path, memo=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    assert problem in msg


def test_native_rate_and_memoised_resampling(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(3)
    x48 = (0.1 * rng.standard_normal(48000)).astype(np.float32)
    path = tmp_path / "n48.wav"
    sf.write(str(path), x48, 48000, subtype="PCM_16")
    clear_memo()
    native, sr = load_audio(path, None)
    assert sr == 48000 and native.size == 48000
    np.testing.assert_array_equal(native, sf.read(str(path), dtype="float32")[0])
    # the 16 kHz signal is resampled from the memoised native decode: same as resampling it
    y, sr16 = load_audio(path, 16000)
    assert sr16 == 16000
    np.testing.assert_array_equal(y, resample(native, 48000, 16000))
    assert load_audio(path, None)[0] is native  # served from memory
