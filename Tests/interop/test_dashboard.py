"""The dashboard at `/dashboard`: the page in headless Chromium (key form, a wrong key refused,
live connection counts, deliveries per second, the busiest topics, recent warnings) and the
`switchboard:dashboard` topic over a raw WebSocket (refused without the key, read only).

Saves a screenshot to artifacts/dashboard.png (gitignored).
"""
from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
import websocket  # websocket-client

from conftest import API_KEY

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TOPIC = "switchboard:dashboard"
STEP_TIMEOUT_S = 10.0


# --- Raw clients ---------------------------------------------------------------------------------


class PhoenixClient:
    """A V2 JSON Phoenix client on websocket-client, with bounded reads."""

    def __init__(self, socket_url: str):
        self.ws = websocket.create_connection(f"{socket_url}?vsn=2.0.0", timeout=STEP_TIMEOUT_S)
        self.ref = 0

    def send(self, join_ref, topic: str, event: str, payload: dict) -> str:
        self.ref += 1
        ref = str(self.ref)
        self.ws.send(json.dumps([join_ref, ref, topic, event, payload]))
        return ref

    def join(self, topic: str, payload: dict) -> tuple[str, dict]:
        """Joins with join_ref = ref (as phoenix.js does); returns the join ref and the reply."""
        ref = self.send(str(self.ref + 1), topic, "phx_join", payload)
        return ref, self.reply(ref)

    def next(self, predicate, what: str, timeout: float = STEP_TIMEOUT_S) -> list:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout} s")
            self.ws.settimeout(remaining)
            message = json.loads(self.ws.recv())
            if predicate(message):
                return message

    def reply(self, ref: str) -> dict:
        return self.next(lambda m: m[1] == ref and m[3] == "phx_reply", f"reply to {ref}")[4]

    def close(self) -> None:
        self.ws.close()


def open_event_stream(http_url: str, topic: str) -> http.client.HTTPResponse:
    """An SSE client of `topic`; once the response head is in, the topic is subscribed. The
    stream stays open while the returned response is referenced and not closed."""
    parsed = urllib.parse.urlsplit(http_url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=STEP_TIMEOUT_S)
    connection.request("GET", f"/events?{urllib.parse.urlencode({'topics': topic})}", headers={"Accept": "text/event-stream"})
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    return response


def publish(http_url: str, topic: str, event: str, payload: dict) -> None:
    request = urllib.request.Request(
        f"{http_url}/api/broadcast",
        method="POST",
        data=json.dumps({"topic": topic, "event": event, "payload": payload}).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 202


class Publisher(threading.Thread):
    """Publishes to `topic` through the HTTP API about `per_second` times a second until stopped."""

    def __init__(self, http_url: str, topic: str, per_second: int):
        super().__init__(daemon=True)
        self.http_url, self.topic, self.interval = http_url, topic, 1 / per_second
        self.stopping = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                publish(self.http_url, self.topic, "tick", {"n": self.sent})
                self.sent += 1
        except BaseException as error:  # noqa: BLE001 -- reported by stop()
            self.error = error

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
        assert self.error is None, f"publishing failed: {self.error!r}"


# --- The topic -----------------------------------------------------------------------------------


def test_joining_the_dashboard_topic_needs_the_api_key(socket_url):
    client = PhoenixClient(socket_url)
    try:
        for payload in ({}, {"key": ""}, {"key": "wrong"}, {"key": API_KEY + "x"}, {"key": API_KEY[:-1]}, {"key": 42}):
            _, reply = client.join(TOPIC, payload)
            assert reply == {"status": "error", "response": {"reason": "unauthorized"}}, payload

        join_ref, reply = client.join(TOPIC, {"key": API_KEY})
        assert reply == {"status": "ok", "response": {"interval_ms": 1000}}
        stats = client.next(lambda m: m[2] == TOPIC and m[3] == "stats", "stats push", timeout=5)[4]
        assert set(stats) >= {"time", "node", "connections", "rates", "totals", "topTopics", "recentErrors", "errors", "topics"}
        assert set(stats["connections"]) == {"websocket", "sse", "longpoll", "total"}
        assert stats["connections"]["websocket"] >= 1  # this client
        assert stats["connections"]["total"] == sum(stats["connections"][k] for k in ("websocket", "sse", "longpoll"))
        assert set(stats["rates"]) == {"messagesIn", "broadcasts", "deliveries"}
        # Internal hub entries are not topics: not the dashboard's own topic, nor socket ids.
        assert all(not t["topic"].startswith(("switchboard:", "user_socket:")) for t in stats["topTopics"])

        # Read only: a push is answered with an error, and the channel stays joined.
        ref = client.send(join_ref, TOPIC, "stats", {"connections": {}})
        assert client.reply(ref) == {"status": "error", "response": {"reason": f"read only: the server publishes to {TOPIC}"}}
        client.next(lambda m: m[2] == TOPIC and m[3] == "stats", "stats after the refused push", timeout=5)
    finally:
        client.close()


def test_dashboard_page_is_served_without_external_resources(http_url):
    with urllib.request.urlopen(f"{http_url}/dashboard", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        page = response.read().decode()
    assert '<script type="module" src="/dashboard.js"></script>' in page
    for attribute in ("src=\"http", "href=\"http", "src=\"//", "href=\"//"):
        assert attribute not in page
    with urllib.request.urlopen(f"{http_url}/dashboard.js", timeout=5) as response:
        script = response.read().decode()
    assert "innerHTML" not in script and "http://" not in script and "https://" not in script


# --- The page ------------------------------------------------------------------------------------


def number(page, element_id: str) -> float:
    value = page.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")
    return float(value.replace(",", "")) if value not in ("", "–") else float("nan")


def submit_key(page, key: str) -> None:
    page.evaluate(
        f"""(() => {{
            document.getElementById('key-input').value = {json.dumps(key)};
            document.getElementById('key-form').requestSubmit();
            return true;
        }})()"""
    )


def snapshot(page) -> dict:
    """What the page shows now (for failure messages)."""
    return page.evaluate(
        "({updated: document.body.dataset.updated, status: document.getElementById('status').textContent,"
        " ws: document.getElementById('conn-websocket').textContent, sse: document.getElementById('conn-sse').textContent,"
        " deliveries: document.getElementById('rate-deliveries').textContent,"
        " topics: [...document.querySelectorAll('#topics-body tr')].map(tr => tr.textContent)})"
    )


def updated(page) -> int:
    return int(page.evaluate("document.body.dataset.updated || '0'"))


def wait_for_update(page, after: int) -> int:
    """Waits for a stats message newer than `after` (a time in ms) and returns its time."""
    page.wait_for(f"Number(document.body.dataset.updated || 0) > {after}", timeout=5)
    return updated(page)


def test_dashboard_page(browser, http_url, socket_url):
    page = browser.open_page(f"{http_url}/dashboard")
    page.set_viewport(1280, 1100)

    # No key yet: the form, no data.
    page.wait_for("!document.getElementById('key-card').hidden && document.getElementById('dashboard').hidden")

    # A wrong key is refused by the server, and not kept.
    submit_key(page, "not-the-key")
    page.wait_for("document.getElementById('key-status').textContent !== '' && document.getElementById('key-status').textContent !== 'Checking the key…'")
    assert page.evaluate("document.getElementById('key-status').textContent") == "The server refused this key (unauthorized)."
    assert page.evaluate("document.getElementById('dashboard').hidden") is True
    assert page.evaluate("sessionStorage.getItem('switchboard-dashboard:key')") is None

    # The right key: live data every second, kept in sessionStorage (a reload goes straight in).
    submit_key(page, API_KEY)
    page.wait_for("!document.getElementById('dashboard').hidden && document.getElementById('key-card').hidden")
    first = wait_for_update(page, 0)
    assert page.evaluate("sessionStorage.getItem('switchboard-dashboard:key')") == API_KEY
    page.load(f"{http_url}/dashboard")
    page.wait_for("!document.getElementById('dashboard').hidden")
    last = wait_for_update(page, first)
    assert page.evaluate("document.getElementById('status').dataset.state") == "open"

    base_ws, base_sse = number(page, "conn-websocket"), number(page, "conn-sse")
    assert base_ws >= 1  # the page's own socket

    topic = f"public:dashboard-{secrets.token_hex(3)}"
    with ExitStack() as clients:
        # Three WebSocket clients and two SSE clients on one topic.
        for _ in range(3):
            client = PhoenixClient(socket_url)
            clients.callback(client.close)
            _, reply = client.join(topic, {})
            assert reply == {"status": "ok", "response": {}}
            _, reply = client.join("online", {})  # a topic with presence: each one tracked
            assert reply["status"] == "ok"
        for _ in range(2):
            clients.callback(open_event_stream(http_url, topic).close)

        # Presence counts beside the subscribers: every subscriber of `online` is tracked (as an
        # anonymous user of its own), so its connections are its subscribers; no presence: a dash.
        page.wait_for(
            "[...document.querySelectorAll('#topics-body tr')].some(tr => tr.children[0].textContent === 'online'"
            " && Number(tr.children[2].textContent) >= 3"
            " && tr.children[2].title.endsWith(` on ${tr.children[1].textContent} connections`))",
            timeout=5,
        )
        page.wait_for(
            "[...document.querySelectorAll('#topics-body tr')].some(tr => tr.children[0].textContent === "
            f"{json.dumps(topic)} && tr.children[2].textContent === '–')",
            timeout=5,
        )

        try:
            page.wait_for(
                f"Number(document.getElementById('conn-websocket').textContent) >= {base_ws + 3}"
                f" && Number(document.getElementById('conn-sse').textContent) >= {base_sse + 2}",
                timeout=5,
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; the page shows {snapshot(page)}") from None
        assert number(page, "conn-total") >= base_ws + base_sse + 5

        # The topic is the busiest one, with its five subscribers.
        page.wait_for(
            "[...document.querySelectorAll('#topics-body tr')].some(tr => tr.children[0].textContent === "
            f"{json.dumps(topic)} && tr.children[1].textContent === '5')",
            timeout=5,
        )
        assert page.evaluate("document.querySelector('#topics-body tr td').textContent") == topic

        # Publishing 20 messages a second to 5 subscribers: about 100 deliveries a second.
        publisher = Publisher(http_url, topic, per_second=20)
        publisher.start()
        try:
            page.wait_for("Number(document.getElementById('rate-deliveries').textContent.replace(/,/g, '')) >= 40", timeout=8)
            page.wait_for("Number(document.getElementById('rate-broadcasts').textContent.replace(/,/g, '')) >= 8", timeout=5)
            # Let the charts draw a few seconds of traffic, then check that they show something.
            last = updated(page)
            for _ in range(4):
                last = wait_for_update(page, last)
            assert page.evaluate(
                """(() => {
                    const c = document.getElementById('rates-chart');
                    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let painted = 0;
                    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
                    return c.width > 0 && painted > 500;
                })()"""
            )
            legend = page.evaluate("[...document.querySelectorAll('#rates-legend li')].map(li => li.textContent)")
            assert [item.split("/s")[0] + "/s" for item in legend] == ["deliveries/s", "messages in/s", "broadcasts/s"]
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(ARTIFACTS / "dashboard.png")
        finally:
            publisher.stop()
        assert publisher.sent >= 20

        # Publishing stopped: the rate falls back.
        page.wait_for("Number(document.getElementById('rate-deliveries').textContent.replace(/,/g, '')) < 10", timeout=8)

    # The clients are gone: the counts come back down and the topic leaves the table.
    page.wait_for(
        f"Number(document.getElementById('conn-websocket').textContent) <= {base_ws}"
        f" && Number(document.getElementById('conn-sse').textContent) <= {base_sse}",
        timeout=8,
    )
    page.wait_for(
        f"![...document.querySelectorAll('#topics-body tr')].some(tr => tr.children[0].textContent === {json.dumps(topic)})",
        timeout=5,
    )

    # "Forget key" leaves the topic and shows the form again.
    page.evaluate("document.getElementById('sign-out').click(), true")
    page.wait_for("!document.getElementById('key-card').hidden && sessionStorage.getItem('switchboard-dashboard:key') === null")
    browser.close_page(page)


def test_dashboard_shows_recent_warnings(browser, tmp_path):
    """A server whose config logs a warning at start (a `token` namespace without a JWT key) shows
    it under recent errors; the dashboard topic also works with a config's catch-all route."""
    config_server = pytest.importorskip("config_server", reason="needs the config-file support (config_server.py)")
    config = config_server.write_config(tmp_path, {"api_key": "config-key", "namespaces": {"vip:*": {"join": "token"}, "feed:*": {}}})
    with config_server.server(["--config", str(config)]) as handle:
        page = browser.open_page(f"http://127.0.0.1:{handle.port}/dashboard")
        page.wait_for("!document.getElementById('key-card').hidden")
        submit_key(page, "config-key")
        page.wait_for("!document.getElementById('dashboard').hidden")
        wait_for_update(page, 0)
        items = page.evaluate("[...document.querySelectorAll('#errors-list li')].map(li => [li.querySelector('.level').textContent, li.querySelector('.message').textContent])")
        assert any(
            level == "warning" and "namespace vip:* joins need token, but no JWT key is configured" in message
            for level, message in items
        ), items
        assert page.evaluate("document.getElementById('error-count').textContent") == str(len(items))
        browser.close_page(page)
