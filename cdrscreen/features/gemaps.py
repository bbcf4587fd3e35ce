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

Memory: the signal is written to openSMILE in blocks through a ring buffer, and the
levels openSMILE keeps whole for its whole-recording functionals are sized for the
signal up front (:func:`level_frames`); they still cost about 8 MB (GeMAPS) or 11 MB
(eGeMAPS) per audio minute (``docs/features-speech.md``).
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from cdrscreen.features.audio_input import Prepared, SpeechExtractor, SpeechParams
from cdrscreen.media.audio_stream import AudioSignal, as_signal, resample_blocks
from cdrscreen.resources import resource_path

#: Our feature-group name -> openSMILE feature set.
FEATURE_SETS: dict[str, str] = {"gemaps": "GeMAPSv01b", "egemaps": "eGeMAPSv02"}
N_FEATURES: dict[str, int] = {"gemaps": 62, "egemaps": 88}
#: Samples per write to openSMILE's external source (its ring holds 2^21).
_WRITE_SAMPLES = 1 << 14
#: Frame step (s) of the LLD levels that feed the whole-recording functionals.
_LLD_STEP_S = 0.01
#: Frames added to the estimated count when the levels before the functionals are sized.
_FRAME_MARGIN = 100
#: openSMILE's own size of those levels (``shared/BufferMode.conf.inc``), doubled as they fill.
_DEFAULT_LEVEL_FRAMES = 1000


#: Components of the GeMAPSv01b configuration that eGeMAPSv02 includes but whose output
#: its ``func`` level never reads: two full-recording functionals and the three smoothers
#: that feed only them (each smoother's output is a growing level that keeps every frame).
EGEMAPS_UNUSED: dict[str, tuple[str, ...]] = {
    "lld": ("gemapsv01b_smoNoF0andLoudnNz", "gemapsv01b_smoSpectralZ", "gemapsv01b_smoSpectralNz"),
    "func": ("gemapsv01b_functionalsMeanSpectralUV", "gemapsv01b_functionalsMVRVoiced"),
}


def _egemaps_config(root: Path, out: Path) -> Path:
    """Write eGeMAPSv02 without :data:`EGEMAPS_UNUSED` under ``out``; return its main file.

    Generated from the installed opensmile-python configuration (``root``) at run time:
    the folders it includes are copied, and the copy of each GeMAPSv01b part has the
    ``instance[...]`` lines of the unused components commented out. The functionals are
    unchanged, value for value; openSMILE no longer keeps three levels of every frame.
    """
    for sub in ("shared", "gemaps/v01b", "egemaps/v02"):
        shutil.copytree(root / sub, out / sub)
    gemaps = out / "gemaps" / "v01b"
    for part, names in EGEMAPS_UNUSED.items():
        text = (gemaps / f"GeMAPSv01b_core.{part}.conf.inc").read_text(encoding="utf-8")
        for name in names:
            pattern = re.compile(r"^instance\[" + re.escape(name) + r"\]\.type\s*=.*$", re.M)
            text, n = pattern.subn(f";; not used by eGeMAPSv02: {name}", text)
            if n != 1:
                raise RuntimeError(f"openSMILE configuration changed: {n} instances of {name}")
        (gemaps / f"GeMAPSv01b_core.{part}.egemaps.conf.inc").write_text(text, encoding="utf-8")
    main = out / "egemaps" / "v02" / "eGeMAPSv02.conf"
    text = main.read_text(encoding="utf-8")
    for part in EGEMAPS_UNUSED:
        include = f"GeMAPSv01b_core.{part}.conf.inc}}"
        if text.count(include) != 1:
            raise RuntimeError(f"openSMILE configuration changed: eGeMAPSv02.conf includes {include!r} "
                               f"{text.count(include)} times")
        text = text.replace(include, f"GeMAPSv01b_core.{part}.egemaps.conf.inc}}")
    main.write_text(text, encoding="utf-8")
    return main


def _remove_if_owner(folder: Path, pid: int) -> None:
    """Remove ``folder`` at exit, in the process that made it only (not in forked workers)."""
    if os.getpid() == pid:
        shutil.rmtree(folder, ignore_errors=True)


@functools.cache
def _smile(group: str):  # noqa: ANN202 - opensmile.Smile, plus its lock
    import opensmile

    feature_set: Any = getattr(opensmile.FeatureSet, FEATURE_SETS[group])
    if group == "egemaps":
        plain = opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals)
        folder = Path(tempfile.mkdtemp(prefix="cdrscreen-opensmile-config-"))
        atexit.register(_remove_if_owner, folder, os.getpid())
        feature_set = str(_egemaps_config(Path(plain.default_config_root), folder))
    smile = opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals)
    if group == "egemaps" and list(smile.feature_names) != list(plain.feature_names):
        raise RuntimeError("the reduced eGeMAPSv02 configuration names different features")
    return smile, threading.Lock()


def feature_names(group: str) -> list[str]:
    """Return openSMILE's feature names of ``group`` (``"gemaps"`` or ``"egemaps"``)."""
    return list(_smile(group)[0].feature_names)


def _int16(block: np.ndarray) -> bytes:
    """16-bit PCM bytes of a float block, converted as ``Smile.process_signal`` converts."""
    b = np.array(block, dtype=np.float32)
    b *= 32768
    return bytes(b.astype(np.int16))


def level_frames(n_samples: int, sr: int) -> int:
    """Return the frames to reserve in each level before the functionals for ``n_samples`` at ``sr``.

    An upper bound of the number of 10-ms LLD frames of the signal plus a margin, and
    never less than openSMILE's own starting size (1000 frames).
    """
    if n_samples < 0 or sr <= 0:
        raise ValueError(f"n_samples must be >= 0 and sr > 0, got {n_samples} and {sr}")
    frames = -(-int(n_samples) // max(1, int(_LLD_STEP_S * sr)))  # a step rounded down: more frames
    return max(_DEFAULT_LEVEL_FRAMES, frames + _FRAME_MARGIN)


def _buffer_mode_conf(folder: Path, frames: int) -> Path:
    """Write openSMILE's ``bufferModeConf`` include with a first size of ``frames`` and return it.

    The same buffer mode as opensmile-python's ``shared/BufferMode.conf.inc`` (a level
    that keeps every frame and doubles when full), sized for the whole signal up front.
    """
    path = folder / "BufferModeSized.conf.inc"
    path.write_text(
        f"writer.levelconf.growDyn = 1\nwriter.levelconf.isRb = 0\nwriter.levelconf.nT = {int(frames)}\n",
        encoding="utf-8",
    )
    return path


def _run_stream(group: str, blocks: Iterable[np.ndarray], sr: int, n_samples: int | None = None) -> np.ndarray:
    """Return the openSMILE functionals of the signal made of ``blocks``, written while openSMILE runs.

    The same openSMILE configuration, options and sample conversion as
    ``Smile.process_signal`` (opensmile-python 2.6), with two differences that change
    memory only: the external source's ``wave`` level is a ring buffer
    (``resources/opensmile/``) instead of a level holding the whole signal, and the signal
    is written in blocks from this thread while ``smile_run`` (which releases the GIL)
    processes it in another.

    ``n_samples`` (the signal's length, if known) sizes the levels that feed the
    whole-recording functionals for the whole signal up front (:func:`level_frames`)
    instead of 1000 frames doubled as they fill, which leaves up to half of the last
    doubling unused; these levels keep every frame either way (openSMILE's ``frameMode =
    full`` functionals read them at the end), and a level that turns out too small still
    doubles, so the values do not depend on it.
    """
    from opensmile.core.config import config as smile_config

    smile, _ = _smile(group)
    options = smile._options()
    options["source"] = str(resource_path("opensmile", "external_wave_input_stream.conf.inc"))
    options["sampleRate"] = int(sr)
    options["nBits"] = 16
    if n_samples is None:
        return _run_engine(smile, smile_config, options, blocks)
    with tempfile.TemporaryDirectory(prefix="cdrscreen-opensmile-levels-") as folder:
        options["bufferModeConf"] = str(_buffer_mode_conf(Path(folder), level_frames(n_samples, sr)))
        return _run_engine(smile, smile_config, options, blocks)


def _run_engine(smile: Any, smile_config: Any, options: dict[str, Any], blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Run openSMILE with ``options`` on ``blocks`` (see :func:`_run_stream`); return the functionals."""
    engine = smile._smile(options=options)
    y: list[np.ndarray] = []
    starts: list[float] = []
    ends: list[float] = []
    engine.external_sink_set_callback_ex(smile_config.EXTERNAL_OUTPUT_COMPONENT, smile._sink_callback(y, starts, ends))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            engine.run()
        except BaseException as err:  # noqa: BLE001 - re-raised in the calling thread
            failure.append(err)

    worker = threading.Thread(target=run, name="opensmile", daemon=True)
    worker.start()
    source = smile_config.EXTERNAL_SOURCE_COMPONENT
    try:
        for block in blocks:
            for i in range(0, len(block), _WRITE_SAMPLES):
                data = _int16(block[i : i + _WRITE_SAMPLES])
                while not engine.external_audio_source_write_data(source, data):
                    if not worker.is_alive():
                        raise RuntimeError(f"openSMILE stopped before the signal was written: {failure[:1]}")
                    time.sleep(0.0005)
    finally:
        engine.external_audio_source_set_eoi(source)
        worker.join()
        engine.free()
    if failure:
        raise failure[0]
    if not y:
        return np.full(len(smile.feature_names), np.nan)
    return np.asarray(y[0], dtype=float).reshape(-1)


def gemaps_features(x: np.ndarray | AudioSignal, sr: int, group: str) -> dict[str, float]:
    """Compute openSMILE functionals of the mono signal ``x`` for ``group``.

    The signal is written to openSMILE in blocks (an
    :class:`~cdrscreen.media.audio_stream.AudioSignal` is read from disk a block at a
    time), so memory does not grow with its length; the values are those of
    ``opensmile.Smile(feature_set=..., feature_level=Functionals).process_signal(x, sr)``.
    """
    smile, lock = _smile(group)
    sig = as_signal(x, sr)
    with lock:
        values = _run_stream(group, (b for _, b in sig.blocks()), sr, n_samples=len(sig))
    return dict(zip(smile.feature_names, values.tolist(), strict=True))


def _analysed_samples(prep: Prepared, x: AudioSignal) -> int:
    """Return the number of samples ``prep.analysed_blocks`` yields from ``x`` (whole signal or intervals)."""
    if prep.intervals is None:
        return len(x)
    n = 0
    for s, e in prep.intervals:
        start, stop = max(0, int(round(s * x.sr))), min(len(x), int(round(e * x.sr)))
        n += max(0, stop - start)
    return n


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
        native = prep.native if prep.native is not None else prep.x
        sr = native.sr
        smile, lock = _smile(self.group)
        n = _analysed_samples(prep, native)
        if self.opensmile_sr is None or sr == self.opensmile_sr:
            with lock:
                values = _run_stream(self.group, prep.analysed_blocks(native=True), sr, n_samples=n)
        else:  # resample the analysed signal as one signal, as before, but in blocks
            with tempfile.TemporaryDirectory(prefix="cdrscreen-opensmile-") as folder:
                cut = Path(folder) / "analysed.f32"
                with open(cut, "wb") as fh:
                    for block in prep.analysed_blocks(native=True):
                        block.astype("<f4", copy=False).tofile(fh)
                sig = AudioSignal(sr, path=cut)
                n_out = -(-n * self.opensmile_sr // sr)
                with lock:
                    values = _run_stream(self.group, resample_blocks(sig, self.opensmile_sr), self.opensmile_sr,
                                         n_samples=n_out)
        return dict(zip(smile.feature_names, values.tolist(), strict=True))


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
