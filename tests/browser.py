"""Render a local page in headless Chromium over the DevTools protocol (tests only).

`render(url)` starts Chromium with a fresh profile, loads the page, and returns what the page
reported (console errors, uncaught exceptions, failed loads), the state of every <img>, every
resource URL it fetched, and a full-page PNG screenshot. Driving the DevTools protocol (with the
`websocket-client` package) rather than parsing `--enable-logging` output: the answers are
structured, and Chromium's own stderr noise (dbus, GPU) cannot be mistaken for a page error.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

IMAGES_JS = """Array.from(document.images).map(i => {
  const r = i.getBoundingClientRect(), s = getComputedStyle(i);
  return {src: i.getAttribute('src'), complete: i.complete, naturalWidth: i.naturalWidth,
          naturalHeight: i.naturalHeight, width: r.width, height: r.height,
          shown: s.display !== 'none' && s.visibility !== 'hidden' && parseFloat(s.opacity) > 0};
})"""


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome executable on PATH, or None."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclasses.dataclass
class Rendered:
    errors: list[str]  # console errors, uncaught exceptions, failed loads
    images: list[dict]  # IMAGES_JS per <img>
    resources: list[str]  # every URL requested: the document, then what it loads
    text: str  # document.body.innerText
    png: bytes  # full-page screenshot


class _Cdp:
    """A minimal DevTools protocol client: numbered calls, events kept in arrival order."""

    def __init__(self, ws_url: str, timeout: float):
        import websocket  # websocket-client, a dev dependency

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        n = next(self.ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str):
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return out["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a)) for a in p["args"]))
            elif method == "Runtime.exceptionThrown":
                out.append("exception: " + p["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                entry = p["entry"]
                out.append(f"log: {entry.get('text', '')} {entry.get('url', '')}".strip())
        return out


def _port(profile: pathlib.Path, proc: subprocess.Popen, timeout: float) -> int:
    """The DevTools port Chromium picked (--remote-debugging-port=0 writes it to the profile)."""
    deadline = time.monotonic() + timeout
    path = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} before listening")
        lines = path.read_text().split() if path.is_file() else []
        if len(lines) >= 2:
            return int(lines[0])
        time.sleep(0.1)
    raise TimeoutError(f"chromium did not open its DevTools port within {timeout} s")


def _close(proc: subprocess.Popen) -> None:
    """Ends the Chromium process group started by `render`: SIGTERM, then SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue


def render(url: str, chromium: str, width: int = 1280, timeout: float = 60.0) -> Rendered:
    """Loads `url` in a fresh headless Chromium and reports on it (see `Rendered`)."""
    # Chromium's helper processes may still write the profile as it closes: ignore what is left.
    with tempfile.TemporaryDirectory(
        prefix="jgnas-chromium-", ignore_cleanup_errors=True
    ) as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--no-default-browser-check", "--disable-extensions",
               "--remote-debugging-port=0", f"--user-data-dir={profile}",
               f"--window-size={width},900", "about:blank"]  # fmt: skip
        # Its own process group, so that closing ends its helper processes too (and only those).
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        try:
            port = _port(pathlib.Path(profile), proc, timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                page = next(t for t in json.load(r) if t.get("type") == "page")
            cdp = _Cdp(page["webSocketDebuggerUrl"], timeout)
            for domain in ("Runtime", "Log", "Network", "Page"):
                cdp.call(f"{domain}.enable")
            nav = cdp.call("Page.navigate", url=url)
            if nav.get("errorText"):
                raise RuntimeError(f"{url}: {nav['errorText']}")
            cdp.wait("Page.loadEventFired", timeout)
            images = cdp.evaluate(IMAGES_JS)
            text = cdp.evaluate("document.body.innerText")
            size = cdp.call("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                            clip=clip)  # fmt: skip
            errors = cdp.errors()
            resources = [e["params"]["request"]["url"] for e in cdp.events
                         if e.get("method") == "Network.requestWillBeSent"]  # fmt: skip
            cdp.ws.close()
        finally:
            _close(proc)
    return Rendered(errors, images, resources, text, base64.b64decode(shot["data"]))
