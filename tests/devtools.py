"""Headless Chromium for tests, driven over the DevTools protocol with the standard library only.

The browser is started with ``--remote-debugging-pipe``: it reads protocol messages (JSON, each
ended by a NUL byte) from file descriptor 3 and writes replies and events to descriptor 4. Bash
moves the two pipe ends onto those numbers for the exec (no ``preexec_fn``, which is unsafe in a
process with threads, as a test process with torch loaded is). No driver binary, no package
from PyPI, no network port.

    with Chromium(find_chromium(), tmp_path / "profile") as browser:
        page = browser.new_page(1280, 900)
        page.goto(path.as_uri())
        page.evaluate("document.title"); page.click("th"); png = page.screenshot()
        assert page.errors() == []

:func:`decode_png` turns a screenshot into pixel rows (8-bit, non-interlaced PNGs as Chromium
writes them) so a test can check it is not blank without an imaging library.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any, Callable

#: Executables tried in order; ``RESTBENCH_CHROMIUM`` names one explicitly.
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Flags for a quiet, network-free headless browser that also runs as root in a container.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check",
    "--hide-scrollbars", "--mute-audio",
)


def find_chromium() -> str | None:
    """The Chromium executable: ``$RESTBENCH_CHROMIUM`` or the first of :data:`NAMES` on PATH."""
    explicit = os.environ.get("RESTBENCH_CHROMIUM")
    if explicit:
        return explicit
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """The browser failed, closed, answered with an error or did not answer in time."""


class Chromium:
    """One headless browser process and its DevTools pipe (a context manager)."""

    def __init__(self, executable: str, profile_dir: str | os.PathLike, timeout: float = 20.0) -> None:
        bash = shutil.which("bash")
        if bash is None:
            raise BrowserError("bash is needed to hand the DevTools pipe to the browser")
        self.timeout = timeout
        self.events: list[dict] = []
        self._buffer = b""
        self._next_id = 0
        profile = Path(profile_dir)
        profile.mkdir(parents=True, exist_ok=False)  # a new, empty profile every time
        self.log_path = profile.with_name(profile.name + ".log")
        commands_r, self._commands = os.pipe()  # we write, the browser reads (its fd 3)
        self._replies, replies_w = os.pipe()  # the browser writes (its fd 4), we read
        # above 9 so they never sit on 3 or 4 themselves; close-on-exec so only bash's copies go on
        child_r = fcntl.fcntl(commands_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(replies_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(commands_r)
        os.close(replies_w)
        script = f'exec "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-'
        args = [executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([bash, "-c", script, "chromium", *args], pass_fds=(child_r, child_w),
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        os.close(child_r)
        os.close(child_w)
        try:
            self.version = self.call("Browser.getVersion")["product"]
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ protocol

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._commands, data):]
        except OSError as exc:
            raise BrowserError(f"{method}: the browser closed its pipe ({exc}){self._log_tail()}") from None
        return self._next_id

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise BrowserError(f"the browser exited (status {self.process.poll()}){self._log_tail()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Send a command and return its result; events that arrive meanwhile go to :attr:`events`."""
        number = self.send(method, params, session)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                message = self._receive(deadline)
            except TimeoutError:
                raise BrowserError(f"{method}: no answer in {timeout or self.timeout:g} s") from None
            if message.get("id") == number:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')} {message['error'].get('data', '')}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, match: Callable[[dict], bool], start: int = 0, timeout: float | None = None) -> dict:
        """The first event from index ``start`` of :attr:`events` on that ``match`` accepts."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = start
        while True:
            for event in self.events[seen:]:
                if match(event):
                    return event
            seen = len(self.events)
            try:
                message = self._receive(deadline)
            except TimeoutError:
                raise BrowserError(f"no matching event in {timeout or self.timeout:g} s") from None
            if "method" in message:
                self.events.append(message)

    def new_page(self, width: int = 1280, height: int = 900) -> "Page":
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        return page

    # ------------------------------------------------------------------ lifetime

    def _log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return f"; browser log: ...{text[-800:]}" if text else ""

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("Browser.close")
                self.process.wait(timeout=10)
            except (BrowserError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:  # did not close: end it and its helpers (its own session)
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait(timeout=10)
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One tab, attached in flat mode: every command carries its session id."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser, self.session = browser, session

    def call(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        return self.browser.call(method, params, self.session, timeout)

    def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        mark = len(self.browser.events)
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        self.browser.wait_for(lambda e: e.get("sessionId") == self.session and e["method"] == "Page.loadEventFired",
                              start=mark)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression; a thrown exception is a :class:`BrowserError`."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression}: {(details.get('exception') or {}).get('description') or details.get('text')}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of the element, scrolled into view."""
        x, y = self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) throw new Error("no element matches " + {json.dumps(selector)});
            el.scrollIntoView({{block: "center", inline: "center"}});
            const r = el.getBoundingClientRect();
            const x = r.left + r.width / 2, y = r.top + r.height / 2;
            const hit = document.elementFromPoint(x, y);
            if (!hit || !(hit === el || el.contains(hit))) throw new Error("something covers " + {json.dumps(selector)});
            return [x, y];
        }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, **extra})

    def screenshot(self) -> bytes:
        """The viewport as PNG bytes."""
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])

    def errors(self) -> list[str]:
        """What the page logged as an error so far: uncaught exceptions, console.error/assert,
        and browser log entries of level error (failed loads, blocked resources, CSP)."""
        out = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                out.append(f"exception: {(details.get('exception') or {}).get('description') or details.get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                words = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
                out.append(f"console.{params['type']}: {' '.join(words)}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                out.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        return out


def decode_png(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """``(width, height, bytes per pixel, rows)`` of an 8-bit, non-interlaced PNG (grey, grey +
    alpha, RGB or RGBA), every filter undone; anything else is a ``ValueError``."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, header, idat = 8, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            raise ValueError(f"PNG chunk {kind!r}: bad CRC")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or interlace or colour not in (0, 2, 4, 6):
        raise ValueError(f"unsupported PNG: bit depth {depth}, colour type {colour}, interlace {interlace}")
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    if len(raw) != height * (stride + 1):
        raise ValueError("PNG data has the wrong length")
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:  # Up
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:  # Average
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif kind == 4:  # Paeth
            for i in range(stride):
                a, b = (line[i - bpp] if i >= bpp else 0), prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        elif kind != 0:
            raise ValueError(f"PNG row {y}: unknown filter {kind}")
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows
