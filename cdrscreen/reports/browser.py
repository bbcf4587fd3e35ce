"""Drive a headless Chromium through the DevTools protocol: load a report, check it, print it.

Used to check reports the way a reader sees them (every figure decoded, nothing wider
than its container, at 1280 px and at A4 print width), to take screenshots, and to
print a report to PDF with Chromium's own print engine.

Needs a Chromium/Chrome binary (Debian: ``apt-get install chromium``) and the
``websocket-client`` package (``dev`` extra). Chromium runs with a throw-away
profile and no network services; the report is opened from a ``file://`` URL.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from cdrscreen.core.errors import CdrscreenError, MissingDependencyError

#: Binaries tried in order (``CDRSCREEN_CHROMIUM`` overrides).
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: A4 width in CSS pixels (210 mm at 96 px/inch).
A4_WIDTH_PX = 794

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--remote-allow-origins=*",
)

#: JavaScript run in the page: images that failed to decode and elements that overflow.
CHECK_JS = r"""
(() => {
  const imgs = Array.from(document.images).map(i => ({
    alt: i.alt, ok: i.complete && i.naturalWidth > 0, naturalWidth: i.naturalWidth,
    shownWidth: Math.round(i.getBoundingClientRect().width)}));
  const describe = el => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    if (el.className && typeof el.className === 'string') s += '.' + el.className.trim().split(/\s+/).join('.');
    return s;
  };
  const overflows = [];
  const vw = document.documentElement.clientWidth;
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden') continue;
    const text = (el.innerText || el.alt || '').slice(0, 60);
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && cs.display !== 'inline') {
      overflows.push({el: describe(el), why: 'content wider than box', scrollWidth: el.scrollWidth,
                      clientWidth: el.clientWidth, text});
      continue;
    }
    const p = el.parentElement;
    if (p && p !== document.body && p !== document.documentElement) {
      const pr = p.getBoundingClientRect();
      if (r.right > pr.right + 1 || r.left < pr.left - 1) {
        overflows.push({el: describe(el), why: 'outside parent ' + describe(p),
                        right: Math.round(r.right), parentRight: Math.round(pr.right), text});
        continue;
      }
    }
    if (r.right > vw + 1) {
      overflows.push({el: describe(el), why: 'beyond viewport', right: Math.round(r.right), vw, text});
    }
  }
  const de = document.documentElement;
  return {images: imgs, overflows, pageScrollWidth: de.scrollWidth, viewportWidth: vw,
          pageHeight: Math.max(de.scrollHeight, document.body.scrollHeight),
          title: document.title};
})()
"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    env = os.environ.get("CDRSCREEN_CHROMIUM")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """A headless Chromium session (use as a context manager).

    Parameters
    ----------
    binary : str, optional
        Chromium executable; found with :func:`find_chromium` when omitted.
    timeout : float
        Seconds to wait for start-up, page loads and commands.
    """

    def __init__(self, binary: str | None = None, timeout: float = 60.0) -> None:
        self.binary = binary
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._profile: str | None = None
        self._next_id = 0
        self._session: str | None = None
        self._events: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Launch Chromium and open one page."""
        try:
            import websocket
        except ImportError as err:
            raise MissingDependencyError("checking reports in a browser", "dev", err) from None
        binary = self.binary or find_chromium()
        if binary is None:
            raise CdrscreenError(
                "no Chromium found: install it (Debian: apt-get install chromium) "
                "or set CDRSCREEN_CHROMIUM to its path"
            )
        self._profile = tempfile.mkdtemp(prefix="cdrscreen-chromium-")
        args = [binary, *FLAGS, f"--user-data-dir={self._profile}",
                "--remote-debugging-port=0", "about:blank"]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
                self.close()
                raise CdrscreenError(f"{binary}: exited at start-up: {err.strip()[-300:]}")
            if time.monotonic() > deadline:
                self.close()
                raise CdrscreenError(f"{binary}: no DevTools port after {self.timeout:.0f} s")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=self.timeout,
                                               suppress_origin=True)
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def close(self) -> None:
        """Close the page and stop Chromium; remove its profile folder."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._call("Browser.close")
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # ----------------------------------------------------------------- protocol
    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self._ws.send(json.dumps(msg))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CdrscreenError(f"Chromium {method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)
        raise CdrscreenError(f"Chromium {method}: no answer after {self.timeout:.0f} s")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a DevTools command to the page and return its result."""
        return self._call(method, session=self._session, **params)

    def _wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev.get("method") == method:
                    return self._events.pop(i)
            if time.monotonic() > deadline:
                raise CdrscreenError(f"Chromium: no {method} after {self.timeout:.0f} s")
            msg = json.loads(self._ws.recv())
            if "method" in msg:
                self._events.append(msg)

    # ----------------------------------------------------------------- actions
    def open(self, html: str | os.PathLike[str], width: int = 1280, height: int = 900,
             media: str = "screen") -> dict[str, Any]:
        """Load a local HTML file at a viewport width; return :data:`CHECK_JS`'s findings."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.send("Emulation.setEmulatedMedia", media=media)
        self._events.clear()
        self.send("Page.navigate", url=Path(html).resolve().as_uri())
        self._wait_event("Page.loadEventFired")
        return self.evaluate(CHECK_JS)

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its (JSON) value."""
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            raise CdrscreenError(f"Chromium: script failed: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def screenshot(self, path: str | os.PathLike[str], full_page: bool = True) -> Path:
        """Save a PNG screenshot of the current page (whole page by default)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            m = self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"],
                                "height": min(size["height"], 16000), "scale": 1})
        data = self.send("Page.captureScreenshot", **params)["data"]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out

    def print_pdf(self, path: str | os.PathLike[str]) -> Path:
        """Print the current page to an A4 PDF (the report's print style sheet applies)."""
        data = self.send("Page.printToPDF", printBackground=True, preferCSSPageSize=True,
                         paperWidth=8.27, paperHeight=11.69)["data"]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out


def html_to_pdf(html: str | os.PathLike[str], pdf: str | os.PathLike[str] | None = None,
                binary: str | None = None) -> Path:
    """Print a report HTML file to an A4 PDF beside it (or at ``pdf``) with headless Chromium."""
    html = Path(html)
    out = Path(pdf) if pdf is not None else html.with_suffix(".pdf")
    with Browser(binary) as b:
        b.open(html, width=A4_WIDTH_PX, media="print")
        b.print_pdf(out)
    return out
