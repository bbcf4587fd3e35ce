"""Silence native (C++) log lines that bypass Python, e.g. MediaPipe/TFLite start-up chatter.

MediaPipe's graph prints ``INFO: Created TensorFlow Lite XNNPACK delegate`` and absl
``W0000 ...`` warnings straight to file descriptor 2 when a graph is created and first
run; environment variables such as ``GLOG_minloglevel`` do not reach them. Users see them
as scary noise in every worker. :func:`quiet_native_stderr` points fd 2 at ``/dev/null``
for the duration of a block. Python exceptions are unaffected (they are raised, not
printed). Set ``CDRSCREEN_NATIVE_LOGS=1`` to see the native logs when debugging.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_lock = threading.RLock()


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Redirect the process's fd 2 to /dev/null inside the block (no-op if disabled)."""
    if os.environ.get("CDRSCREEN_NATIVE_LOGS"):
        yield
        return
    with _lock:
        try:
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - a closed/replaced stderr must not break work
            pass
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


#: Native log lines that are start-up chatter, not problems (MediaPipe / TFLite / absl).
NOISE_PREFIXES: tuple[bytes, ...] = (
    b"INFO: Created TensorFlow Lite",
    b"WARNING: All log messages before absl::InitializeLog()",
    b"W0000 ",
    b"I0000 ",
)
_filter_installed = False


def is_native_noise(line: bytes) -> bool:
    """Whether a stderr line is known start-up chatter.

    Two native writers can interleave, so a TFLite ``INFO: `` tag may precede an absl
    ``W0000`` line on the same line; the tag is looked through.
    """
    if line.startswith(NOISE_PREFIXES):
        return True
    return line.startswith(b"INFO: ") and line[6:].startswith(NOISE_PREFIXES)


def filter_native_stderr() -> None:
    """In a worker process, drop known native start-up chatter from fd 2 for good.

    fd 2 is replaced by a pipe; a daemon thread forwards every line except those that
    start with one of :data:`NOISE_PREFIXES` to the original stderr. Graph threads log
    asynchronously, so a block-scoped redirect cannot catch them; this can. Meant for
    joblib workers (no progress bars there); idempotent per process.
    """
    global _filter_installed
    if _filter_installed or os.environ.get("CDRSCREEN_NATIVE_LOGS"):
        return
    _filter_installed = True
    try:
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
    real = os.dup(2)
    r, w = os.pipe()
    os.dup2(w, 2)
    os.close(w)

    def pump() -> None:
        with os.fdopen(r, "rb", buffering=0) as src:
            buf = b""
            while chunk := src.read(4096):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                out = b"".join(ln + b"\n" for ln in lines if not is_native_noise(ln))
                if out:
                    os.write(real, out)
            if buf and not is_native_noise(buf):
                os.write(real, buf)

    threading.Thread(target=pump, name="native-stderr-filter", daemon=True).start()
