"""Generated media shared by the test suite (session-scoped, written under a tmp folder).

- ``face_video``: a 3-second 320x240 25-fps mp4 (H.264 + AAC speech) of a real face
  photo with planted head/eye motion and blinks; ``face_video_truth`` is its
  :class:`cdrscreen.demo.GroundTruth` (also saved beside it as ``face.frames.csv`` /
  ``face.json``).
- ``speech_wav``: a 6-second 16-kHz mono wav of espeak-ng speech with planted pauses;
  ``speech_wav_track`` is its :class:`cdrscreen.demo.SpeechTrack` (segments also in
  ``speech.segments.csv``).
- ``demo_cohort_small``: the manifest of a 6-subject x 3-second demo cohort (2 per CDR
  class); ground truth under ``ground_truth/`` beside it.

All are synthetic; they need ``espeak-ng`` on PATH.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _face_clip(tmp_path_factory: pytest.TempPathFactory):
    from cdrscreen.demo import make_clip

    root = tmp_path_factory.mktemp("media")
    path = root / "face.mp4"
    gt = make_clip(path, duration_s=3.0, cdr=1.0, seed=0, size=(320, 240), fps=25.0, face="astronaut")
    gt.save(root / "face")
    return path, gt


@pytest.fixture(scope="session")
def face_video(_face_clip) -> Path:
    """Path of a 3-s face video with audio (see module docstring)."""
    return _face_clip[0]


@pytest.fixture(scope="session")
def face_video_truth(_face_clip):
    """Planted ground truth of ``face_video``."""
    return _face_clip[1]


@pytest.fixture(scope="session")
def _speech(tmp_path_factory: pytest.TempPathFactory):
    import soundfile as sf

    from cdrscreen.demo import VoiceParams, speech_track

    root = tmp_path_factory.mktemp("speech")
    track = speech_track(6.0, VoiceParams(voice="en-us+f3", rate_wpm=170, pause_mean_s=0.5), seed=0, sr=16000)
    path = root / "speech.wav"
    sf.write(path, track.audio, track.sr, subtype="PCM_16")
    track.segments.to_csv(root / "speech.segments.csv", index=False)
    return path, track


@pytest.fixture(scope="session")
def speech_wav(_speech) -> Path:
    """Path of a 6-s espeak-ng speech wav (16 kHz mono)."""
    return _speech[0]


@pytest.fixture(scope="session")
def speech_wav_track(_speech):
    """The :class:`SpeechTrack` (audio + planted segments) of ``speech_wav``."""
    return _speech[1]


@pytest.fixture(scope="session")
def demo_cohort_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 6-subject x 3-s synthetic demo cohort."""
    from cdrscreen.demo import build_cohort

    root = tmp_path_factory.mktemp("cohort")
    return build_cohort(root / "cohort", n_subjects=6, seed=0, duration_s=3.0, n_jobs=2)
