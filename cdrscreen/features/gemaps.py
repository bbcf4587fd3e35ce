"""GeMAPS / eGeMAPS functionals (``gemaps__*``, ``egemaps__*``) with the openSMILE Python package.

``GeMAPSv01b`` gives 62 functionals of 18 low-level descriptors, ``eGeMAPSv02`` gives 88
of 25 (Eyben et al. 2016). Values are exactly what ``opensmile.Smile(feature_set=...,
feature_level=Functionals).process_signal(signal, sr)`` returns for the signal passed
in; :class:`~cdrscreen.features.audio_input.SpeechExtractor` decides which signal that is
(the whole recording, or the patient's segments concatenated in time order).

Sample rate: the extractors pass openSMILE the recording at its own rate, so a file's
values equal ``Smile.process_file`` on it (published GeMAPS values are computed so);
``opensmile_sr=16000`` resamples first instead (the behaviour before speech cache
version 3, which moves 48 kHz values by a median 15-17 %).
"""

from __future__ import annotations

import functools
import threading
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from cdrscreen.features.audio_input import Prepared, SpeechExtractor, SpeechParams
from cdrscreen.media.audio import resample

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


class OpenSmileParams(SpeechParams):
    """Settings of the ``gemaps`` / ``egemaps`` groups (spec ``groups.<name>``; audio settings too)."""

    opensmile_sr: int | None = Field(
        None, ge=1000,
        description="Sample rate openSMILE sees; null keeps the file's own rate (as Smile.process_file).",
    )


class _OpenSmileExtractor(SpeechExtractor):
    """openSMILE functionals of the recording at its own sample rate (not registered itself).

    Parameters
    ----------
    opensmile_sr : int, optional
        Sample rate of the signal openSMILE sees. ``None`` (default) keeps the file's
        own rate, so the values equal ``opensmile.Smile.process_file`` on the original
        file; e.g. ``16000`` resamples first, as cdrscreen did before speech cache
        version 3.
    **kwargs
        See :class:`~cdrscreen.features.audio_input.SpeechExtractor`.
    """

    group: ClassVar[str]
    needs_native = True
    Params = OpenSmileParams
    key_features: ClassVar[tuple[tuple[str, str], ...]] = (
        ("F0semitoneFrom27.5Hz_sma3nz_amean", "pitch (F0) mean, semitones"),
        ("F0semitoneFrom27.5Hz_sma3nz_stddevNorm", "pitch variability (F0 CV)"),
        ("loudness_sma3_amean", "loudness mean"),
        ("jitterLocal_sma3nz_amean", "jitter"),
        ("shimmerLocaldB_sma3nz_amean", "shimmer (dB)"),
        ("HNRdBACF_sma3nz_amean", "harmonics-to-noise ratio (dB)"),
    )

    def __init__(self, opensmile_sr: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if opensmile_sr is not None and int(opensmile_sr) <= 0:
            raise ValueError(f"opensmile_sr must be positive, got {opensmile_sr}")
        self.opensmile_sr = None if opensmile_sr is None else int(opensmile_sr)

    def feature_names(self) -> list[str]:
        return feature_names(self.group)

    def compute(self, prep: Prepared) -> dict[str, float]:
        x, sr = prep.analysed_signal(native=True)
        if self.opensmile_sr is not None and sr != self.opensmile_sr:
            x, sr = resample(x, sr, self.opensmile_sr), self.opensmile_sr
        return gemaps_features(x, sr, self.group)


class GeMAPSExtractor(_OpenSmileExtractor):
    """openSMILE GeMAPSv01b functionals, 62 features (``gemaps__``).

    The whole recording, or the patient's segments concatenated, is passed to openSMILE
    at the recording's own sample rate (see :class:`_OpenSmileExtractor`).
    """

    name = "gemaps"
    prefix = "gemaps"
    group = "gemaps"


class EGeMAPSExtractor(_OpenSmileExtractor):
    """openSMILE eGeMAPSv02 functionals, 88 features (``egemaps__``)."""

    name = "egemaps"
    prefix = "egemaps"
    group = "egemaps"


__all__ = ["FEATURE_SETS", "N_FEATURES", "EGeMAPSExtractor", "GeMAPSExtractor", "OpenSmileParams", "feature_names", "gemaps_features"]
