"""A headless Chromium (Debian package `chromium`) driven over the DevTools protocol.

`Browser.evaluate(js)` runs an async JavaScript expression in a page and returns its value, so a
test can use the browser's own WebSocket / EventSource implementations against our server.
`Browser.open_page(url)` opens another tab, by default in a fresh browser context (its own
cookies and localStorage: another user); `Page.wait_for(js)` polls an expression with a deadline.
"""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket  # websocket-client

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """One page (tab) over its own DevTools connection."""

    def __init__(self, debugger_url: str, timeout: float = 20.0, target_id: str | None = None):
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.target_id = target_id
        self.cdp = websocket.create_connection(debugger_url, timeout=timeout, suppress_origin=True)

    def call(self, method: str, params: dict | None = None, timeout: float = 20.0) -> dict:
        message_id = next(self.ids)
        self.cdp.settimeout(timeout)
        self.cdp.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        while True:
            reply = json.loads(self.cdp.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            if "method" in reply:
                self.events.append(reply)

    def navigate(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})
        time.sleep(0.3)

    def load(self, url: str, timeout: float = 20.0) -> None:
        """Navigates and waits for the page's load event (not a fixed delay)."""
        self.call("Page.enable")
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{url} did not load within {timeout} s")
            self.cdp.settimeout(remaining)
            message = json.loads(self.cdp.recv())
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str, timeout: float = 20.0):
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "timeout": int(timeout * 1000)},
            timeout=timeout + 5,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0, interval: float = 0.05):
        """Evaluates `expression` until it is truthy and returns that value; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"still {value!r} after {timeout} s: {expression}")
            time.sleep(interval)

    def set_viewport(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        import base64

        params: dict = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))


class Browser(Page):
    def __init__(self, binary: str, timeout: float = 20.0):
        self.profile = tempfile.mkdtemp(prefix="switchboard-chromium-")
        self.process = subprocess.Popen(
            [
                binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--remote-allow-origins=*",
                # Tabs in the background keep their timers and sockets running at full speed.
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}", "about:blank",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        self.timeout = timeout
        self.pages: list[Page] = []
        self.browser_cdp: Page | None = None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=timeout) as response:
            pages = [t for t in json.loads(response.read()) if t.get("type") == "page"]
        super().__init__(pages[0]["webSocketDebuggerUrl"], timeout=timeout)

    def _browser_session(self) -> Page:
        """The browser-wide DevTools connection (targets and browser contexts)."""
        if self.browser_cdp is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/version", timeout=self.timeout) as response:
                url = json.loads(response.read())["webSocketDebuggerUrl"]
            self.browser_cdp = Page(url, timeout=self.timeout)
        return self.browser_cdp

    def open_page(self, url: str, isolated: bool = True) -> Page:
        """Opens `url` in a new tab and waits for it to load. `isolated`: in a browser context of
        its own (separate localStorage and cookies, like another person's browser)."""
        session = self._browser_session()
        params: dict = {"url": "about:blank"}
        if isolated:
            params["browserContextId"] = session.call("Target.createBrowserContext")["browserContextId"]
        target_id = session.call("Target.createTarget", params)["targetId"]
        page = Page(f"ws://127.0.0.1:{self.port}/devtools/page/{target_id}", timeout=self.timeout, target_id=target_id)
        page.context_id = params.get("browserContextId")
        self.pages.append(page)
        page.load(url)
        return page

    def close_page(self, page: Page) -> None:
        """Closes a tab opened with `open_page` (its sockets close as when a user closes it)."""
        if page in self.pages:
            self.pages.remove(page)
        try:
            page.cdp.close()
        finally:
            session = self._browser_session()
            session.call("Target.closeTarget", {"targetId": page.target_id})
            if getattr(page, "context_id", None):
                session.call("Target.disposeBrowserContext", {"browserContextId": page.context_id})

    def close(self) -> None:
        try:
            for page in list(getattr(self, "pages", [])):
                try:
                    self.close_page(page)
                except Exception:  # noqa: BLE001 -- the browser is going away anyway
                    pass
            if getattr(self, "browser_cdp", None):
                self.browser_cdp.cdp.close()
            if getattr(self, "cdp", None):
                self.cdp.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
