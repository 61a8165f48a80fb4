"""Chromium's native EventSource against the Server-Sent Events endpoint (`/events`).

The page is served by the switchboard itself (`/health`), so `new EventSource('/events?…')` is a
same-origin request. Events are recorded in the page (`window.log`) and read back with bounded
`wait_for` polls; DevTools' Network domain shows the headers of each EventSource request, so the
`Last-Event-ID` Chromium sends when it reconnects can be checked too.
"""
from __future__ import annotations

import json
import socket
import time
import urllib.parse
import urllib.request
import uuid


from conftest import API_KEY

STEP_TIMEOUT_S = 5.0
# EventSource waits the server's `retry: 2000` before reconnecting.
RECONNECT_TIMEOUT_S = 10.0

RECORDER = r"""
window.openEventSource = (url, names) => {
  window.log = [];
  window.opens = 0;
  const es = new EventSource(url);
  es.onopen = () => { window.opens++; log.push({type: "open"}); };
  es.onerror = () => log.push({type: "error", readyState: es.readyState});
  es.onmessage = (e) => log.push({type: "message", id: e.lastEventId, data: e.data});
  for (const name of names) {
    es.addEventListener(name, (e) => log.push({type: e.type, id: e.lastEventId, data: JSON.parse(e.data)}));
  }
  window.es = es;
  return true;
};
true
"""


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def api_post(http_url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{http_url}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
        assert response.status in (200, 202)
        return json.loads(response.read())


def broadcast(http_url: str, topic: str, event: str, payload: dict) -> None:
    assert api_post(http_url, "/api/broadcast", {"topic": topic, "event": event, "payload": payload}) == {"published": 1}


class StreamKeeper:
    """A second, raw SSE subscriber that keeps the topic subscribed on the node while the browser
    reconnects (so event positions keep counting instead of starting again on an empty topic)."""

    def __init__(self, port: int, topic: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT_S)
        self.sock.sendall(f"GET /events?topics={urllib.parse.quote(topic)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        received = b""
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while b"retry: 2000\n\n" not in received:
            assert time.monotonic() < deadline, f"the keeper's stream did not open: {received!r}"
            chunk = self.sock.recv(4096)
            assert chunk, f"the keeper's stream ended: {received!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received

    def close(self) -> None:
        self.sock.close()


def page_log(page, kind: str | None = None) -> list:
    entries = page.evaluate("window.log")
    return [e for e in entries if kind is None or e["type"] == kind]


def eventsource_requests(page, path_prefix: str) -> list[dict]:
    """The requests DevTools reported so far whose path starts with `path_prefix`, oldest first:
    {"url", "headers"}, the headers as sent on the wire (Network.requestWillBeSentExtraInfo;
    the renderer-side request of requestWillBeSent lacks those the loader adds, Last-Event-ID
    among them)."""
    urls: dict[str, str] = {}
    order: list[str] = []
    wire: dict[str, dict] = {}
    for event in page.events:
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            if urllib.parse.urlsplit(params["request"]["url"]).path.startswith(path_prefix):
                urls[params["requestId"]] = params["request"]["url"]
                order.append(params["requestId"])
        elif event.get("method") == "Network.requestWillBeSentExtraInfo":
            wire[params["requestId"]] = params["headers"]
    return [{"url": urls[request_id], "headers": wire.get(request_id, {})} for request_id in order]


def header(request: dict, name: str) -> str | None:
    for key, value in request["headers"].items():
        if key.lower() == name.lower():
            return value
    return None


def test_eventsource_receives_broadcasts_and_reconnects_after_a_server_disconnect(browser, http_url, switchboard_server):
    topic = unique("public:es-")
    user = unique("es")
    page = browser
    page.load(f"{http_url}/health")
    page.call("Network.enable")
    assert page.evaluate(RECORDER) is True
    keeper = StreamKeeper(switchboard_server.port, topic)
    try:
        url = f"/events?topics={urllib.parse.quote(topic)}&user_id={user}"
        assert page.evaluate(f"openEventSource({json.dumps(url)}, ['price', 'switchboard:close'])") is True
        page.wait_for("window.opens === 1", timeout=STEP_TIMEOUT_S)

        broadcast(http_url, topic, "price", {"sym": "SWB", "p": 1})
        page.wait_for("log.some(e => e.type === 'price')", timeout=STEP_TIMEOUT_S)
        assert page_log(page, "price") == [{"type": "price", "id": f"{topic}:1", "data": {"sym": "SWB", "p": 1}}]

        # The server ends the stream (every connection of user_socket:<user>): a last
        # switchboard:close event, then the browser reconnects by itself.
        assert api_post(http_url, "/api/disconnect", {"user": user}) == {}
        page.wait_for("log.some(e => e.type === 'switchboard:close')", timeout=STEP_TIMEOUT_S)
        page.wait_for("window.opens === 2", timeout=RECONNECT_TIMEOUT_S)
        entries = page_log(page)
        close_index = next(i for i, e in enumerate(entries) if e["type"] == "switchboard:close")
        # The close event has no id of its own: lastEventId stays the last id seen.
        assert entries[close_index] == {"type": "switchboard:close", "id": f"{topic}:1", "data": {"code": 1001, "reason": "disconnected"}}
        # Then the stream's end (an error while CONNECTING, i.e. "will reconnect"), then the new open.
        assert entries[close_index + 1:] == [{"type": "error", "readyState": 0}, {"type": "open"}], entries

        broadcast(http_url, topic, "price", {"sym": "SWB", "p": 2})
        page.wait_for("log.filter(e => e.type === 'price').length === 2", timeout=STEP_TIMEOUT_S)
        assert page_log(page, "price")[1] == {"type": "price", "id": f"{topic}:2", "data": {"sym": "SWB", "p": 2}}
        assert page_log(page, "message") == [], "every event is named; nothing reaches onmessage"

        # What Chromium sent: the first request without Last-Event-ID, the reconnect with the last id.
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            page.evaluate("1")  # collects the DevTools events that arrived meanwhile
            requests = eventsource_requests(page, "/events")
            if len(requests) == 2 and all(r["headers"] for r in requests) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(requests) == 2 and all(r["headers"] for r in requests), requests
        assert header(requests[0], "Last-Event-ID") is None, requests[0]["headers"]
        assert header(requests[1], "Last-Event-ID") == f"{topic}:1", requests[1]["headers"]
        assert header(requests[1], "Accept") == "text/event-stream", requests[1]["headers"]
    finally:
        page.evaluate("window.es && window.es.close(), true")
        keeper.close()
        page.call("Network.disable")


def test_eventsource_on_many_topics(browser, http_url):
    first, second = unique("public:es1-"), unique("public:es2-")
    page = browser
    page.load(f"{http_url}/health")
    assert page.evaluate(RECORDER) is True
    try:
        url = f"/events/{urllib.parse.quote(first, safe='')}?topics={urllib.parse.quote(second)}"
        assert page.evaluate(f"openEventSource({json.dumps(url)}, ['a', 'b'])") is True
        page.wait_for("window.opens === 1", timeout=STEP_TIMEOUT_S)
        broadcast(http_url, first, "a", {"n": 1})
        broadcast(http_url, second, "b", {"n": 2})
        broadcast(http_url, first, "b", {"n": 3})
        page.wait_for("log.length === 4", timeout=STEP_TIMEOUT_S)
        assert page_log(page) == [
            {"type": "open"},
            {"type": "a", "id": f"{first}:1", "data": {"n": 1}},
            {"type": "b", "id": f"{second}:1", "data": {"n": 2}},
            {"type": "b", "id": f"{first}:2", "data": {"n": 3}},
        ]
    finally:
        page.evaluate("window.es && window.es.close(), true")


def test_eventsource_refused_topic_fails_without_reconnecting(browser, http_url):
    page = browser
    page.load(f"{http_url}/health")
    assert page.evaluate(RECORDER) is True
    try:
        assert page.evaluate("openEventSource('/events?topics=notifications:5&user_id=6', [])") is True
        # A 403 is fatal for EventSource: one error with readyState CLOSED (2), never an open.
        page.wait_for("log.length > 0", timeout=STEP_TIMEOUT_S)
        assert page_log(page) == [{"type": "error", "readyState": 2}]
        assert page.evaluate("window.es.readyState") == 2
    finally:
        page.evaluate("window.es && window.es.close(), true")
