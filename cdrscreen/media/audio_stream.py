"""Audio in blocks: a decoded recording kept on disk, read back a block at a time.

An hour of 48 kHz audio is 690 MB as float32; the speech groups never hold it in
memory. :func:`decode_to_signal` decodes the first audio stream of a file (audio or video
container) with PyAV frame by frame, mixes each frame to mono and appends it to a raw
float32 file in a temporary folder; :class:`AudioSignal` reads such a file (or an
in-memory array) back in blocks; :func:`resample_signal` resamples it block by block.

Every block operation reproduces the whole-signal one exactly:

* decoding writes the same samples :func:`cdrscreen.media.audio.load_audio` returns with
  ``sr=None``, after the same checks (truncation, undecodable codec, no samples, NaN);
* :func:`resample_signal` gives, sample for sample, what
  :func:`cdrscreen.media.audio.resample` (:func:`scipy.signal.resample_poly`, Kaiser
  ``beta=5``) gives on the whole signal: each block of output samples is computed by
  :func:`scipy.signal.upfirdn` over the input samples its filter reaches, starting on
  the polyphase grid, so every output sample is the same sum of the same products.

>>> from cdrscreen.media.audio_stream import decoded
>>> native, x = decoded("interview.mp4", 16000)  # doctest: +SKIP
>>> for start, block in x.blocks():  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from cdrscreen.core.errors import InputError

#: Samples per block when a signal is read back (about 4 s at 16 kHz).
BLOCK = 1 << 16


class AudioSignal:
    """A mono float32 signal at one rate, held in memory or in a raw float32 file.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    array : ndarray, optional
        The samples, in memory.
    path : path-like, optional
        Raw little-endian float32 file holding the samples (instead of ``array``).
    dc : float, default 0.0
        Offset subtracted from every sample read (``x - float32(dc)``, in float32, as
        the whole-signal code does); 0 reads the samples unchanged.
    """

    def __init__(self, sr: int, *, array: np.ndarray | None = None, path: str | os.PathLike[str] | None = None,
                 dc: float = 0.0) -> None:
        if (array is None) == (path is None):
            raise ValueError("give exactly one of array and path")
        self.sr = int(sr)
        self.array = None if array is None else np.asarray(array, dtype=np.float32)
        self.path = None if path is None else Path(path)
        self.n = int(self.array.size if self.array is not None else self.path.stat().st_size // 4)
        self.dc = float(dc)

    def __len__(self) -> int:
        return self.n

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n / self.sr

    def with_dc(self, dc: float) -> AudioSignal:
        """Return the same samples with ``dc`` subtracted on reading."""
        if self.array is not None:
            return AudioSignal(self.sr, array=self.array, dc=dc)
        return AudioSignal(self.sr, path=self.path, dc=dc)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return samples ``start:stop`` (clipped to the signal) as float32."""
        start, stop = max(0, int(start)), min(self.n, int(stop))
        if stop <= start:
            return np.zeros(0, np.float32)
        if self.array is not None:
            out = self.array[start:stop]
        else:
            with open(self.path, "rb") as fh:
                fh.seek(4 * start)
                out = np.fromfile(fh, dtype="<f4", count=stop - start).astype(np.float32, copy=False)
        if self.dc != 0.0:
            out = (out - np.float32(self.dc)).astype(np.float32)
        return out

    def blocks(self, size: int = BLOCK, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(position, samples)`` blocks of at most ``size`` samples covering ``start:stop``."""
        stop = self.n if stop is None else min(self.n, int(stop))
        for pos in range(max(0, int(start)), stop, size):
            yield pos, self.read(pos, min(stop, pos + size))

    def to_array(self) -> np.ndarray:
        """Return the whole signal in memory (for short signals and tests)."""
        return self.read(0, self.n)


def as_signal(x: np.ndarray | AudioSignal, sr: int) -> AudioSignal:
    """Wrap an array as an :class:`AudioSignal` (a signal is returned as is)."""
    return x if isinstance(x, AudioSignal) else AudioSignal(sr, array=np.asarray(x, dtype=np.float32))


# -- resampling in blocks -------------------------------------------------------------
def _poly_plan(orig_sr: int, sr: int, n: int) -> tuple[int, int, np.ndarray, int, int]:
    """``(up, down, h, n_out, n_pre_remove)`` exactly as :func:`scipy.signal.resample_poly` sets them up."""
    from scipy.signal import firwin
    from scipy.signal._upfirdn import _output_len

    frac = Fraction(int(sr), int(orig_sr))
    up, down = frac.numerator, frac.denominator
    n_out = n * up
    n_out = n_out // down + bool(n_out % down)
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)).astype(np.float32)
    h *= up
    n_pre_pad = down - half_len % down
    n_post_pad = 0
    n_pre_remove = (half_len + n_pre_pad) // down
    while _output_len(h.shape[0] + n_pre_pad + n_post_pad, n, up, down) < n_out + n_pre_remove:
        n_post_pad += 1
    h = np.concatenate([np.zeros(n_pre_pad, np.float32), h, np.zeros(n_post_pad, np.float32)])
    return up, down, h, n_out, n_pre_remove


def resample_blocks(x: AudioSignal, sr: int, size: int = BLOCK) -> Iterator[np.ndarray]:
    """Yield ``x`` resampled to ``sr`` in consecutive blocks of ``size`` output samples.

    Concatenated, the blocks equal :func:`cdrscreen.media.audio.resample` of the whole
    signal exactly (see the module docstring).
    """
    from scipy.signal import upfirdn

    n = len(x)
    if x.sr == sr:
        for _, b in x.blocks(size):
            yield b
        return
    up, down, h, n_out, pre = _poly_plan(x.sr, sr, n)
    taps = len(h)
    for o0 in range(0, n_out, size):
        o1 = min(n_out, o0 + size)
        m0, m1 = o0 + pre, o1 + pre
        lo = max(0, (m0 * down - (taps - 1)) // up)
        lo -= lo % down  # start on the polyphase grid
        hi = min(n, (m1 - 1) * down // up + 1)
        ys = upfirdn(h, x.read(lo, hi), up, down)
        s = m0 - lo * up // down
        yield ys[s : s + (o1 - o0)].astype(np.float32, copy=False)


def resample_signal(x: AudioSignal, sr: int, folder: str | os.PathLike[str] | None = None) -> AudioSignal:
    """``x`` at ``sr``: in memory for an in-memory ``x``, else in a raw file in ``folder``."""
    if x.sr == sr and x.dc == 0.0:
        return x
    if x.array is not None or folder is None:
        return AudioSignal(sr, array=np.concatenate(list(resample_blocks(x, sr))) if len(x) else np.zeros(0, np.float32),
                           dc=0.0)
    path = Path(folder) / f"x{int(sr)}.f32"
    with open(path, "wb") as fh:
        for b in resample_blocks(x, sr):
            b.astype("<f4", copy=False).tofile(fh)
    return AudioSignal(sr, path=path)


# -- decoding to disk -----------------------------------------------------------------
def decode_to_file(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> AudioSignal:
    """Decode the first audio stream of ``path`` to mono float32 samples in the raw file ``out``.

    The samples equal ``load_audio(path, None)``; the same problems raise the same
    :class:`~cdrscreen.core.errors.InputError`.
    """
    from cdrscreen.media.audio import iter_decoded

    out = Path(out)
    sr = None
    with open(out, "wb") as fh:
        for native_sr, chunk in iter_decoded(Path(path)):
            sr = native_sr
            if not np.all(np.isfinite(chunk)):
                raise InputError(path, "audio contains NaN or infinite samples")
            chunk.astype("<f4", copy=False).tofile(fh)
    assert sr is not None  # iter_decoded raises when nothing decodes
    return AudioSignal(sr, path=out)


class DecodedAudio:
    """A recording decoded to a temporary folder: its native-rate signal and resampled copies.

    The folder is removed by :meth:`close` (also when the object is collected or the
    interpreter exits).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cdrscreen-audio-"))
        self._finalizer = _register_cleanup(self.folder)
        try:
            self.native = decode_to_file(path, self.folder / "native.f32")
        except BaseException:
            self.close()
            raise
        self._at: dict[int, AudioSignal] = {}

    def at(self, sr: int | None) -> AudioSignal:
        """Return the recording at ``sr`` (``None``: its own rate), resampled once and kept on disk."""
        if sr is None or int(sr) == self.native.sr:
            return self.native
        if int(sr) not in self._at:
            self._at[int(sr)] = resample_signal(self.native, int(sr), self.folder)
        return self._at[int(sr)]

    def close(self) -> None:
        """Delete the temporary folder."""
        self._finalizer()


_cleanup_lock = threading.Lock()
_folders: set[Path] = set()


def _register_cleanup(folder: Path):  # noqa: ANN202 - a callable that removes the folder once
    with _cleanup_lock:
        _folders.add(folder)

    def remove() -> None:
        with _cleanup_lock:
            if folder not in _folders:
                return
            _folders.discard(folder)
        shutil.rmtree(folder, ignore_errors=True)

    return remove


@atexit.register
def _remove_all() -> None:
    for folder in list(_folders):
        shutil.rmtree(folder, ignore_errors=True)
    _folders.clear()


_memo_lock = threading.Lock()
_memo: dict[int, tuple[tuple, DecodedAudio]] = {}  # per thread: (file key, its decoded audio)


def decoded(path: str | os.PathLike[str], sr: int | None = None) -> tuple[AudioSignal, AudioSignal]:
    """Return ``(native, at_sr)`` signals of ``path``, decoded once to disk.

    Each thread keeps the last recording it decoded (on disk, not in memory), so the
    speech groups of one recording decode it once; decoding another recording in the same
    thread deletes it (another thread's recording is never touched).
    """
    p = Path(path)
    from cdrscreen.media.audio import _check_file

    _check_file(p)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    me = threading.get_ident()
    with _memo_lock:
        held = _memo.get(me)
    if held is not None and held[0] == key:
        d = held[1]
    else:
        if held is not None:
            held[1].close()
        d = DecodedAudio(p)
        with _memo_lock:
            _memo[me] = (key, d)
    return d.native, d.at(sr)


def forget_decoded() -> None:
    """Delete the decoded recordings kept by :func:`decoded` (every thread's)."""
    with _memo_lock:
        held = list(_memo.values())
        _memo.clear()
    for _, d in held:
        d.close()


__all__ = ["BLOCK", "AudioSignal", "DecodedAudio", "as_signal", "decode_to_file", "decoded", "forget_decoded",
           "resample_blocks", "resample_signal"]
