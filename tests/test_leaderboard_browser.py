"""The leaderboard page opened in a real headless Chromium, driven over the DevTools protocol.

Needs Debian's `chromium` package (apt-get install -y chromium); skipped without it. The DevTools client below is
standard library only: an HTTP upgrade to a websocket, then JSON commands and events.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.parse

import pytest

from harness.leaderboard import build_all

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    not CHROMIUM, reason="Chromium not installed (Debian: apt-get install -y chromium): the leaderboard page is "
                         "checked in a real headless browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--window-size=1280,2000", "--hide-scrollbars"]


class DevTools:
    """A websocket to one page target: call(method, **params) -> result; events are kept in self.events."""

    def __init__(self, ws_url: str, timeout: float = 30.0):
        u = urllib.parse.urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.decode(errors="replace"))
        self.next_id, self.events = 0, []

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("DevTools connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, payload: bytes, opcode: int = 0x1) -> None:
        n, mask = len(payload), os.urandom(4)      # client frames must be masked
        size = bytes([0x80 | n]) if n < 126 else (bytes([0x80 | 126]) + struct.pack(">H", n) if n < 1 << 16
                                                   else bytes([0x80 | 127]) + struct.pack(">Q", n))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode]) + size + mask + masked)

    def _recv(self) -> dict:
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the websocket")
            if opcode == 0x9:
                self._send(data, 0xA)
                continue
            message += data
            if b0 & 0x80:
                return json.loads(message)

    def call(self, method: str, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}).encode())
        while True:
            msg = self._recv()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.events:
                if msg.get("method") == event:
                    return msg
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {timeout}s")
            self.events.append(self._recv())

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")


@pytest.fixture()
def browser(tmp_path):
    """A headless Chromium with a fresh profile; yields a DevTools connection to its blank page."""
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start its DevTools server (exit code {proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        import urllib.request

        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        dt = DevTools(page["webSocketDebuggerUrl"])
        yield dt
        dt.sock.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)        # the browser and the helpers it started, nothing else
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_page_renders_sorts_and_logs_no_errors(browser, tmp_path):
    from PIL import Image

    from leaderboard_store import make_store

    store = make_store(tmp_path / "results")
    build_all(store, tmp_path / "out", ["consistency", "post_training", "training_curves"], include_reported=True)
    page = (tmp_path / "out" / "index.html").resolve()
    for domain in ("Runtime", "Log", "Page", "Network"):
        browser.call(f"{domain}.enable")
    browser.call("Page.navigate", url=page.as_uri())
    browser.wait_for("Page.loadEventFired")

    dom = browser.evaluate("""(() => ({
        tables: Array.from(document.querySelectorAll('table.lb')).map(t => t.id),
        rows: document.querySelectorAll('table.lb tbody tr').length,
        reported: document.querySelectorAll('tr.reported').length,
        plots: Array.from(document.querySelectorAll('img.plot')).map(i => i.complete && i.naturalWidth > 0),
        headers: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
    }))()""")
    assert dom["tables"] == ["table-consistency", "table-post_training", "table-training_curves"]
    assert dom["rows"] > 10 and dom["reported"] >= 6
    assert len(dom["plots"]) == 6 and all(dom["plots"]), dom["plots"]      # 2 scatter; 2 scatter + bars; curves
    assert "Training curves" in dom["headers"]

    # the inline script sorts: click Overall twice, ascending then descending, blanks last
    sort = """(() => { const t = document.getElementById('table-consistency');
        const th = Array.from(t.querySelectorAll('th.sortable')).find(h => h.textContent === 'Overall');
        th.click();
        const col = parseInt(th.getAttribute('data-i'), 10);
        return Array.from(t.tBodies[0].rows).map(r => r.cells[col].getAttribute('data-v')); })()"""
    ascending = [v for v in browser.evaluate(sort) if v]
    assert ascending == sorted(ascending, key=float) and len(ascending) >= 5
    descending = browser.evaluate(sort)
    assert [v for v in descending if v] == ascending[::-1] and descending[-1] == ""

    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    img = Image.open(io.BytesIO(shot)).convert("RGB")
    assert img.size[0] >= 1000 and len(img.getcolors(maxcolors=1 << 20) or [0, 0]) > 1, "blank screenshot"
    (tmp_path / "out" / "screenshot.png").write_bytes(shot)

    time.sleep(0.2)         # let late console messages arrive
    browser.evaluate("1")
    assert errors(browser.events) == []
    urls = {e["params"]["request"]["url"].split(":", 1)[0] for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"}
    assert urls <= {"file", "data"}, urls                  # self-contained: nothing fetched from anywhere

    # the listener does catch errors: a page that logs one and throws one
    browser.events.clear()
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>console.error('logged'); notDefined();</script>")
    browser.call("Page.navigate", url=bad.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    browser.evaluate("1")
    assert len(errors(browser.events)) >= 2


def errors(events: list[dict]) -> list[dict]:
    """Uncaught exceptions, console.error/assert, and browser log entries at level error (failed loads...)."""
    return [e for e in events if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
