"""Post-processing of per-frame expression predictions, and frame-level macro-F1.

The functions live in :mod:`cdrscreen.tracking.smoothing` (numpy only, no torch), so that
the clinical features can use them without the training stack; this module re-exports
them for the FER training code. See that module for the sliding-window majority vote
(Yu et al., ABAW6 2024, section 3.5), probability smoothing and the timeline helpers.
"""

from __future__ import annotations

from cdrscreen.tracking.smoothing import (
    MISSING,
    expression_timeline,
    macro_f1,
    majority_vote,
    smooth_probabilities,
    timeline_segments,
    timeline_summary,
)

__all__ = [
    "MISSING",
    "expression_timeline",
    "macro_f1",
    "majority_vote",
    "smooth_probabilities",
    "timeline_segments",
    "timeline_summary",
]
