"""GeMAPS / eGeMAPS functionals (``gemaps__*``, ``egemaps__*``) with the openSMILE Python package.

``GeMAPSv01b`` gives 62 functionals of 18 low-level descriptors, ``eGeMAPSv02`` gives 88
of 25 (Eyben et al. 2016). Values are exactly what ``opensmile.Smile(feature_set=...,
feature_level=Functionals).process_signal(signal, sr)`` returns for the signal passed
in; :class:`~cdrscreen.features.audio_input.SpeechExtractor` decides which signal that is
(the whole recording, or the patient's segments concatenated in time order).
"""

from __future__ import annotations

import functools
import threading
from typing import ClassVar

import numpy as np

from cdrscreen.features.audio_input import Prepared, SpeechExtractor

#: Our feature-group name -> openSMILE feature set.
FEATURE_SETS: dict[str, str] = {"gemaps": "GeMAPSv01b", "egemaps": "eGeMAPSv02"}
N_FEATURES: dict[str, int] = {"gemaps": 62, "egemaps": 88}


@functools.cache
def _smile(group: str):  # noqa: ANN202 - opensmile.Smile, plus its lock
    import opensmile

    smile = opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, FEATURE_SETS[group]),
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    return smile, threading.Lock()


def feature_names(group: str) -> list[str]:
    """Return openSMILE's feature names of ``group`` (``"gemaps"`` or ``"egemaps"``)."""
    return list(_smile(group)[0].feature_names)


def gemaps_features(x: np.ndarray, sr: int, group: str) -> dict[str, float]:
    """Compute openSMILE functionals of the mono signal ``x`` for ``group``."""
    smile, lock = _smile(group)
    with lock:
        df = smile.process_signal(np.ascontiguousarray(x, dtype=np.float32), sr)
    return {k: float(v) for k, v in df.iloc[0].items()}


class _OpenSmileExtractor(SpeechExtractor):
    """openSMILE functionals of the prepared signal (not registered itself)."""

    group: ClassVar[str]
    key_features: ClassVar[tuple[tuple[str, str], ...]] = (
        ("F0semitoneFrom27.5Hz_sma3nz_amean", "pitch (F0) mean, semitones"),
        ("F0semitoneFrom27.5Hz_sma3nz_stddevNorm", "pitch variability (F0 CV)"),
        ("loudness_sma3_amean", "loudness mean"),
        ("jitterLocal_sma3nz_amean", "jitter"),
        ("shimmerLocaldB_sma3nz_amean", "shimmer (dB)"),
        ("HNRdBACF_sma3nz_amean", "harmonics-to-noise ratio (dB)"),
    )

    def feature_names(self) -> list[str]:
        return feature_names(self.group)

    def compute(self, prep: Prepared) -> dict[str, float]:
        return gemaps_features(prep.analysed_signal(), prep.sr, self.group)


class GeMAPSExtractor(_OpenSmileExtractor):
    """openSMILE GeMAPSv01b functionals, 62 features (``gemaps__``).

    The whole recording, or the patient's segments concatenated, is passed to openSMILE.
    """

    name = "gemaps"
    prefix = "gemaps"
    group = "gemaps"


class EGeMAPSExtractor(_OpenSmileExtractor):
    """openSMILE eGeMAPSv02 functionals, 88 features (``egemaps__``)."""

    name = "egemaps"
    prefix = "egemaps"
    group = "egemaps"


__all__ = ["FEATURE_SETS", "N_FEATURES", "EGeMAPSExtractor", "GeMAPSExtractor", "feature_names", "gemaps_features"]
