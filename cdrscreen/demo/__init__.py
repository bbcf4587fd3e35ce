"""Synthetic demo cohort: real photographed faces and synthetic speech with planted effects.

Everything made here is SYNTHETIC, for checking the pipeline end to end; it is never
evidence about dementia. Main entry points:

- :func:`render_face_video` - one mp4 of a real face photo animated with planted head
  pose, iris offsets, blinks, occlusion, lighting and noise; returns the ground truth.
- :class:`Trajectories` / :class:`GroundTruth` - the planted per-frame parameters
  (sign conventions in :mod:`cdrscreen.demo.trajectories`).
- :func:`load_face` / :class:`FaceSource` - built-in face photographs.
- :func:`build_cohort` - the whole demo cohort (videos, manifest, ground truth);
  :func:`make_clip` - one short clip of a synthetic subject.
- :func:`speech_track` / :class:`VoiceParams` - espeak-ng speech with planted pauses.
"""

from cdrscreen.demo.cohort import CLASS_EFFECTS, build_cohort, class_counts, draw_cohort, make_clip
from cdrscreen.demo.faces import BUILTIN_FACES, FaceSource, load_face
from cdrscreen.demo.motion import MotionParams, make_trajectories
from cdrscreen.demo.render import FaceAnimator, render_face_video, render_frames
from cdrscreen.demo.trajectories import GroundTruth, Trajectories, rotation_matrix
from cdrscreen.demo.voice import SpeechTrack, VoiceParams, speech_track, synthesize

__all__ = [
    "CLASS_EFFECTS", "MotionParams", "SpeechTrack", "VoiceParams", "build_cohort", "class_counts",
    "draw_cohort", "make_clip", "make_trajectories", "speech_track", "synthesize",
    "BUILTIN_FACES", "FaceAnimator", "FaceSource", "GroundTruth", "Trajectories",
    "load_face", "render_face_video", "render_frames", "rotation_matrix",
]
