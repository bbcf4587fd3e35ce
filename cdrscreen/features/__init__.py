"""Feature groups: one module per group, each with pure functions and one extractor object.

* :mod:`~cdrscreen.features.base`: the :class:`Extractor` contract, the
  :class:`TrackedExtractor` base of the visual groups, and the one study runner
  (:func:`run_study`, :func:`run_extractors`);
* :mod:`~cdrscreen.features.registry`: group name -> extractor class (:func:`get_extractor`);
* one module per group: :mod:`~cdrscreen.features.pupil`, :mod:`~cdrscreen.features.headpose`,
  :mod:`~cdrscreen.features.expression` (visual, on the shared face track of
  :mod:`cdrscreen.tracking`), :mod:`~cdrscreen.features.mfcc`, :mod:`~cdrscreen.features.gemaps`
  (``gemaps`` and ``egemaps``), :mod:`~cdrscreen.features.timing` (speech, on the shared
  audio preparation of :mod:`~cdrscreen.features.audio_input` and the voice-activity
  detector of :mod:`~cdrscreen.features.vad`), :mod:`~cdrscreen.features.language`
  (speech content, from the transcripts read by :mod:`cdrscreen.transcripts`);
* helpers: :mod:`~cdrscreen.features.segments` (speaker segments),
  :mod:`~cdrscreen.features.quality` (quality columns).

Group modules are imported lazily by the registry, so that ``cdrscreen`` works with only
some extras installed.
"""

from __future__ import annotations

from cdrscreen.features.base import Extractor, TrackedExtractor, run_extractors, run_study
from cdrscreen.features.registry import REGISTRY, get_extractor, register

__all__ = ["REGISTRY", "Extractor", "TrackedExtractor", "get_extractor", "register", "run_extractors", "run_study"]
