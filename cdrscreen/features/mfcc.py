"""MFCC statistics with librosa (``mfcc__*``): coefficients, deltas and delta-deltas, with functionals.

Rate: the extractor computes MFCCs at its ``sr``, 16 kHz by default, whatever the file's
own rate (44.1/48 kHz audio is resampled first), so the mel bands span 0-8 kHz for every
recording. Unlike GeMAPS/eGeMAPS, which follow the file's rate, this keeps recordings of
different rates comparable.

Frames: 25 ms Hann window (``win_length = 0.025 * sr``) in a ``n_fft = 512`` FFT (at
16 kHz), 10 ms hop, centred frames (librosa's default ``center=True``), ``n_mels = 40``
mel bands from 0 Hz to ``sr / 2``, ``n_mfcc = 13`` coefficients (DCT-II, ortho, as in
:func:`librosa.feature.mfcc`). Deltas and delta-deltas use
:func:`librosa.feature.delta` (``width = 9``) over the *whole* signal, so they are
continuous across the selection below.

Functionals are taken over the selected frames only (the speech frames of the energy
VAD in :mod:`cdrscreen.features.timing`, inside the patient's segments when given):
``mean``, ``std``, ``p10``, ``p50``, ``p90``, ``skew`` and ``kurtosis`` (Fisher, biased
estimators as in :func:`scipy.stats.skew`/:func:`scipy.stats.kurtosis`). Column names:
``c01_mean`` ... (coefficients), ``d01_mean`` ... (deltas), ``dd01_mean`` ... (delta-deltas).

librosa's numba kernels are compiled on first use (~15-25 s). This module points
``NUMBA_CACHE_DIR`` at a persistent folder (``~/.cache/cdrscreen/numba`` unless the
variable is already set) *before* librosa is imported, so the compilation happens once
per environment instead of once per process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from cdrscreen.features.audio_input import Prepared, SpeechExtractor, SpeechParams


def ensure_numba_cache() -> str:
    """Set ``NUMBA_CACHE_DIR`` to a persistent folder unless the user already set it.

    Returns the folder in use. When numba is already imported its configuration is
    reloaded so the setting still applies to functions compiled from now on.
    """
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = str(Path.home() / ".cache" / "cdrscreen" / "numba")
    folder = os.environ["NUMBA_CACHE_DIR"]
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # numba falls back to compiling in memory
    if "numba" in sys.modules:
        try:
            from numba.core import config

            config.reload_config()
        except Exception:  # noqa: BLE001 - best effort; caching is an optimisation
            pass
    return folder


ensure_numba_cache()

#: Functionals computed per coefficient, in column order.
FUNCTIONALS: tuple[str, ...] = ("mean", "std", "p10", "p50", "p90", "skew", "kurtosis")


def mfcc_matrix(x: np.ndarray, sr: int, n_mfcc: int = 13, n_mels: int = 40) -> np.ndarray:
    """MFCC, delta and delta-delta matrix of shape ``(3 * n_mfcc, 1 + len(x) // hop)``."""
    import librosa

    hop = round(0.010 * sr)
    win = round(0.025 * sr)
    n_fft = max(512, 1 << int(np.ceil(np.log2(win))))
    m = librosa.feature.mfcc(
        y=np.ascontiguousarray(x, dtype=np.float32), sr=sr, n_mfcc=n_mfcc, n_fft=n_fft,
        win_length=win, hop_length=hop, n_mels=n_mels, fmin=0.0, fmax=sr / 2,
    )
    if m.shape[1] < 9:  # librosa.feature.delta needs at least `width` frames
        pad = np.full_like(m, np.nan)
        return np.vstack([m, pad, pad])
    d1 = librosa.feature.delta(m, width=9, order=1)
    d2 = librosa.feature.delta(m, width=9, order=2)
    return np.vstack([m, d1, d2])


def column_names(n_mfcc: int = 13) -> list[str]:
    """Feature names (without prefix) in output order."""
    rows = [f"{k}{i:02d}" for k in ("c", "d", "dd") for i in range(1, n_mfcc + 1)]
    return [f"{r}_{f}" for r in rows for f in FUNCTIONALS]


def functionals(mat: np.ndarray) -> np.ndarray:
    """Per-row functionals (:data:`FUNCTIONALS`) of ``mat`` (rows x frames); NaN if no frames."""
    from scipy.stats import kurtosis, skew

    n_rows = mat.shape[0]
    if mat.shape[1] == 0:
        return np.full(n_rows * len(FUNCTIONALS), np.nan)
    mat = np.asarray(mat, dtype=np.float64)
    p10, p50, p90 = np.percentile(mat, [10, 50, 90], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols = [
            mat.mean(axis=1), mat.std(axis=1), p10, p50, p90,
            skew(mat, axis=1), kurtosis(mat, axis=1),
        ]
    return np.stack(cols, axis=1).reshape(-1)


def mfcc_features(x: np.ndarray, sr: int, frames: np.ndarray | None, n_mfcc: int = 13) -> dict[str, float]:
    """MFCC functionals over the frames selected by boolean mask ``frames`` (None: all)."""
    mat = mfcc_matrix(x, sr, n_mfcc=n_mfcc)
    if frames is not None:
        sel = np.zeros(mat.shape[1], dtype=bool)
        k = min(sel.size, len(frames))
        sel[:k] = np.asarray(frames[:k], dtype=bool)
        mat = mat[:, sel]
    return dict(zip(column_names(n_mfcc), functionals(mat).tolist(), strict=True))


class MFCCParams(SpeechParams):
    """Settings of the ``mfcc`` group (spec section ``groups.mfcc``; audio settings too)."""

    n_mfcc: int = Field(13, ge=1, le=40, description="MFCC coefficients (of 40 mel bands).")


class MFCCExtractor(SpeechExtractor):
    """MFCC, delta and delta-delta functionals over speech frames (``mfcc__``).

    Parameters
    ----------
    n_mfcc : int, default 13
    **kwargs
        See :class:`SpeechExtractor`.
    """

    name = "mfcc"
    prefix = "mfcc"
    Params = MFCCParams

    def __init__(self, n_mfcc: int = 13, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_mfcc = n_mfcc

    def feature_names(self) -> list[str]:
        """``c01_mean`` ... ``dd13_kurtosis``."""
        return column_names(self.n_mfcc)

    def compute(self, prep: Prepared) -> dict[str, float]:
        """MFCC functionals over the VAD speech frames inside the analysed intervals."""
        return mfcc_features(prep.x, prep.sr, prep.vad.speech, n_mfcc=self.n_mfcc)


__all__ = [
    "FUNCTIONALS",
    "MFCCExtractor",
    "column_names",
    "ensure_numba_cache",
    "functionals",
    "mfcc_features",
    "mfcc_matrix",
]
