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
