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
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from cdrscreen.features.audio_input import Prepared, SpeechExtractor, SpeechParams
from cdrscreen.media.audio_stream import AudioSignal


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

    hop, win, n_fft = _frame_params(sr)
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


def _frame_params(sr: int) -> tuple[int, int, int]:
    hop = round(0.010 * sr)
    win = round(0.025 * sr)
    n_fft = max(512, 1 << int(np.ceil(np.log2(win))))
    return hop, win, n_fft


#: Frames of one block of :func:`iter_mfcc_blocks` (about 40 s at a 10 ms hop).
FRAMES_PER_BLOCK = 4096
_TOP_DB = 80.0
_AMIN = 1e-10
_DELTA_HALF = 4  # librosa.feature.delta(width=9) reaches 4 frames either side


def iter_mfcc_blocks(
    x: AudioSignal, n_mfcc: int = 13, n_mels: int = 40, folder: str | os.PathLike[str] | None = None,
    frames_per_block: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_frame, block)`` of the matrix :func:`mfcc_matrix` returns, block by block.

    Columns ``first_frame : first_frame + block.shape[1]`` of ``mfcc_matrix(x)``, computed
    from the signal in blocks: the mel power spectrogram of hop-aligned blocks (each with
    the ``n_fft / 2`` samples either side its centred frames reach, zeros outside the
    signal as librosa pads) is written to a float32 file in ``folder`` while its
    maximum is tracked; then librosa's ``power_to_db`` (with the 80 dB floor below the
    *whole* spectrogram's maximum), the DCT and the deltas (each block with the 4 frames
    either side ``width=9`` reaches, and librosa's polynomial fit at the signal's two
    ends) are applied block by block. Signals of fewer than 9 frames use
    :func:`mfcc_matrix` directly.
    """
    import librosa
    import scipy.fft

    frames_per_block = FRAMES_PER_BLOCK if frames_per_block is None else int(frames_per_block)
    sr = x.sr
    hop, win, n_fft = _frame_params(sr)
    n_frames = 1 + len(x) // hop
    if n_frames < 2 * frames_per_block or folder is None:
        m = mfcc_matrix(x.to_array(), sr, n_mfcc=n_mfcc, n_mels=n_mels)
        for f0 in range(0, m.shape[1], frames_per_block):
            yield f0, m[:, f0 : f0 + frames_per_block]
        return
    half = n_fft // 2
    path = Path(folder) / "mel.f32"
    gmax = None
    with open(path, "wb") as fh:
        for f0 in range(0, n_frames, frames_per_block):
            f1 = min(n_frames, f0 + frames_per_block)
            a, b = f0 * hop - half, (f1 - 1) * hop + half  # samples the frames reach
            seg = x.read(a, b)
            lead = max(0, -a)
            seg = np.concatenate([np.zeros(lead, np.float32), seg, np.zeros((b - a) - lead - seg.size, np.float32)])
            S = librosa.feature.melspectrogram(
                y=seg, sr=sr, n_fft=n_fft, hop_length=hop, win_length=win, center=False,
                n_mels=n_mels, fmin=0.0, fmax=sr / 2,
            )
            log_spec = 10.0 * np.log10(np.maximum(_AMIN, S))
            log_spec -= 10.0 * np.log10(np.maximum(_AMIN, 1.0))
            bmax = log_spec.max()
            gmax = bmax if gmax is None else max(gmax, bmax)
            np.ascontiguousarray(S.T, dtype="<f4").tofile(fh)
    floor = gmax - _TOP_DB

    def coefficients(g0: int, g1: int) -> np.ndarray:
        with open(path, "rb") as fh:
            fh.seek(4 * n_mels * g0)
            S = np.fromfile(fh, dtype="<f4", count=n_mels * (g1 - g0)).reshape(g1 - g0, n_mels).T
        log_spec = 10.0 * np.log10(np.maximum(_AMIN, S))
        log_spec -= 10.0 * np.log10(np.maximum(_AMIN, 1.0))
        log_spec = np.maximum(log_spec, floor)
        return scipy.fft.dct(log_spec, axis=-2, type=2, norm="ortho")[..., :n_mfcc, :]

    try:
        starts = list(range(0, n_frames, frames_per_block))
        if len(starts) > 1 and n_frames - starts[-1] < 2 * _DELTA_HALF + 1:
            starts.pop()  # the last block must hold the 9 frames of librosa's end fit
        bounds = [*starts, n_frames]
        for f0, f1 in zip(bounds[:-1], bounds[1:], strict=True):
            g0, g1 = max(0, f0 - _DELTA_HALF), min(n_frames, f1 + _DELTA_HALF)
            m = coefficients(g0, g1)
            d1 = librosa.feature.delta(m, width=9, order=1)
            d2 = librosa.feature.delta(m, width=9, order=2)
            full = np.vstack([m, d1, d2])
            yield f0, full[:, f0 - g0 : f1 - g0]
    finally:
        path.unlink(missing_ok=True)


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


def mfcc_features(
    x: np.ndarray | AudioSignal, sr: int, frames: np.ndarray | None, n_mfcc: int = 13
) -> dict[str, float]:
    """MFCC functionals over the frames selected by boolean mask ``frames`` (None: all).

    An :class:`~cdrscreen.media.audio_stream.AudioSignal` is processed in blocks
    (:func:`iter_mfcc_blocks`): the selected frames of each coefficient go to a
    temporary file, and each coefficient's functionals are computed from its file, so
    memory holds one coefficient's frames at a time.
    """
    if not isinstance(x, AudioSignal):
        mat = mfcc_matrix(x, sr, n_mfcc=n_mfcc)
        if frames is not None:
            sel = np.zeros(mat.shape[1], dtype=bool)
            k = min(sel.size, len(frames))
            sel[:k] = np.asarray(frames[:k], dtype=bool)
            mat = mat[:, sel]
        return dict(zip(column_names(n_mfcc), functionals(mat).tolist(), strict=True))
    n_rows = 3 * n_mfcc
    with tempfile.TemporaryDirectory(prefix="cdrscreen-mfcc-") as folder:
        rows = [Path(folder) / f"row{i:02d}.f32" for i in range(n_rows)]
        handles = [open(r, "wb") for r in rows]  # noqa: SIM115 - closed below
        try:
            for f0, block in iter_mfcc_blocks(x, n_mfcc=n_mfcc, folder=folder):
                if frames is not None:
                    sel = np.zeros(block.shape[1], dtype=bool)
                    part = np.asarray(frames[f0 : f0 + block.shape[1]], dtype=bool)
                    sel[: part.size] = part
                    block = block[:, sel]
                for fh, row in zip(handles, block, strict=True):
                    np.ascontiguousarray(row, dtype=block.dtype).tofile(fh)
                dtype = block.dtype
        finally:
            for fh in handles:
                fh.close()
        out = np.concatenate([functionals(np.fromfile(r, dtype=dtype)[None, :]) for r in rows])
    return dict(zip(column_names(n_mfcc), out.tolist(), strict=True))


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
        return mfcc_features(prep.signal(), prep.sr, prep.vad.speech, n_mfcc=self.n_mfcc)


__all__ = [
    "FRAMES_PER_BLOCK",
    "FUNCTIONALS",
    "MFCCExtractor",
    "column_names",
    "ensure_numba_cache",
    "functionals",
    "iter_mfcc_blocks",
    "mfcc_features",
    "mfcc_matrix",
]
