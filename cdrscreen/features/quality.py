"""Which columns of a feature table are quality/provenance measures, not features.

Every extractor adds a few columns that describe the *recording* rather than the person:
how much of the video had a tracked face, how many seconds of speech were analysed,
whether the audio clipped, how many frames a correlation used, its p-value. They belong in
reports (``cdrscreen report`` shows them) but, as classifier inputs, they invite confounds
(recording length, microphone, site) to pass for clinical signal. The evaluation therefore
leaves them out of the model inputs unless a protocol says ``features.quality: include``.

This module has no heavy imports: the evaluation uses it without the feature extras.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

#: Glob patterns over a column's name after its ``group__`` prefix.
QUALITY_PATTERNS: tuple[str, ...] = (
    # visual groups (pupil, headpose)
    "valid", "tracked_fraction", "usable_fraction", "n_segments", "segment_seconds",
    "stft_windows", "stft_bin_hz", "corr_*_n", "corr_*_p", "img_corr_*_n", "img_corr_*_p",
    "band_windows", "iris_radius_eye_widths", "saccade_threshold_*",
    # speech groups (mfcc, gemaps, egemaps, timing)
    "quality_ok", "speech_seconds", "patient_only", "clipped_fraction", "dc_offset", "analysed_s",
    "source_sr", "quality_*",
    # expression embeddings
    "n_frames", "valid_fraction",
)


def is_quality_column(column: str) -> bool:
    """Whether ``group__name`` is a quality/provenance column (see :data:`QUALITY_PATTERNS`)."""
    name = str(column).split("__", 1)[-1]
    return any(fnmatchcase(name, pat) for pat in QUALITY_PATTERNS)


def split_quality(columns: list[str]) -> tuple[list[str], list[str]]:
    """Split ``columns`` into (features, quality columns), keeping their order."""
    feats = [c for c in columns if not is_quality_column(c)]
    qual = [c for c in columns if is_quality_column(c)]
    return feats, qual
