"""Server-Sent Events (`GET /events?topics=a,b`, `GET /events/<topic>`) with PyPI SSE clients.

- `httpx` + `httpx-sse` (async) for most scenarios, so they can run next to a raw `websockets`
  Phoenix client and a long-poll session on one event loop;
- `sseclient-py` over an httpx byte stream, which reports an event's own `id` (None when the event
  has no `id:` line; httpx-sse, like browsers, keeps the last id instead);
- the raw bytes of the stream for the wire format itself.

Each stream joins its topics before the response starts, so once the response head is in, the
topics are subscribed: a broadcast published after that must arrive (no "sleep long enough").
Topics are unique per test, so event ids (`<topic>:<position>`) count from 1.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from sseclient import SSEClient

from conftest import API_KEY
from support import STEP_TIMEOUT_S, RawConn, assert_json_equal, assert_same_frames, run_bounded
from test_longpoll import LongPoll, api_broadcast, api_disconnect, unique

STREAM_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
    "connection": "close",
}


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(STEP_TIMEOUT_S))


def assert_stream_head(response: httpx.Response) -> None:
    assert response.status_code == 200, f"HTTP {response.status_code} instead of a stream"
    for name, value in STREAM_HEADERS.items():
        assert response.headers.get(name) == value, f"{name}: {response.headers.get(name)!r}, expected {value!r} ({dict(response.headers)})"


class Stream:
    """An httpx-sse event source with bounded reads; events without data (the `retry:` block)
    are recorded but not returned, as a browser would not dispatch them."""

    def __init__(self, source) -> None:
        self.response: httpx.Response = source.response
        self._events = source.aiter_sse()
        self.all: list[ServerSentEvent] = []

    async def next(self, what: str = "an event", timeout: float = STEP_TIMEOUT_S) -> ServerSentEvent:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                event = await asyncio.wait_for(self._events.__anext__(), remaining)
            except TimeoutError as exc:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; got {[self.show(e) for e in self.all]}") from exc
            except StopAsyncIteration as exc:
                raise AssertionError(f"the stream ended while waiting for {what}; got {[self.show(e) for e in self.all]}") from exc
            self.all.append(event)
            if event.data:
                return event

    async def expect_end(self, timeout: float = STEP_TIMEOUT_S) -> None:
        """The server closes the stream: no further event, then the end."""
        try:
            event = await asyncio.wait_for(self._events.__anext__(), timeout)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise AssertionError(f"the stream did not end within {timeout} s") from exc
        raise AssertionError(f"expected the end of the stream, got {self.show(event)}")

    @staticmethod
    def show(event: ServerSentEvent) -> tuple:
        return (event.id, event.event, event.data, event.retry)


@asynccontextmanager
async def open_stream(http: httpx.AsyncClient, url: str, **kwargs: Any) -> AsyncIterator[Stream]:
    async with aconnect_sse(http, "GET", url, **kwargs) as source:
        assert_stream_head(source.response)
        stream = Stream(source)
        # Every stream starts with the reconnection delay hint.
        first = await asyncio.wait_for(stream._events.__anext__(), STEP_TIMEOUT_S)
        stream.all.append(first)
        assert (first.event, first.data, first.id, first.retry) == ("message", "", "", 2000), Stream.show(first)
        yield stream


def assert_event(event: ServerSentEvent, id: str | None, name: str, data: dict) -> None:
    """`id` None: the event carried no id of its own and httpx-sse kept the previous one, so it
    is not checked here (see the sseclient-py tests for events without id)."""
    if id is not None:
        assert event.id == id, f"id {event.id!r}, expected {id!r}"
    assert event.event == name, f"event {event.event!r}, expected {name!r}"
    assert "\n" not in event.data, f"the payload is one data line: {event.data!r}"
    assert_json_equal(json.loads(event.data), data, f"data of {name}")


async def subscriber_count(http: httpx.AsyncClient, http_url: str, topic: str) -> int:
    # From the list: GET /api/topics/{topic} does not percent-decode its parameter, and httpx
    # percent-encodes the colon of a topic in a path.
    response = await http.get(f"{http_url}/api/topics", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200, response.text
    return sum(t["subscribers"] for t in response.json()["topics"] if t["topic"] == topic)


async def wait_for_subscribers(http: httpx.AsyncClient, http_url: str, topic: str, count: int, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT_S
    while (current := await subscriber_count(http, http_url, topic)) != count:
        if loop.time() >= deadline:
            raise AssertionError(f"{what}: {topic} has {current} subscribers, expected {count}")
        await asyncio.sleep(0.02)


def events_url(http_url: str, *topics: str, **params: str) -> str:
    query = [("topics", ",".join(topics))] + list(params.items())
    return f"{http_url}/events?{urllib.parse.urlencode(query)}"


# --- API broadcasts ---------------------------------------------------------------------------


def test_api_broadcasts_arrive_as_events(http_url):
    topic = unique("public:sse-")

    async def scenario():
        async with http_client() as http, open_stream(http, events_url(http_url, topic)) as stream:
            await api_broadcast(http, http_url, topic, "score", {"home": 1, "away": 0})
            assert_event(await stream.next("first broadcast"), f"{topic}:1", "score", {"home": 1, "away": 0})
            await api_broadcast(http, http_url, topic, "score", {"home": 1, "away": 1})
            await api_broadcast(http, http_url, topic, "final", {"text": "draw, ünïcödé ✓", "nested": {"list": [1, 2.5, None, True]}})
            assert_event(await stream.next("second broadcast"), f"{topic}:2", "score", {"home": 1, "away": 1})
            assert_event(await stream.next("third broadcast"), f"{topic}:3", "final", {"text": "draw, ünïcödé ✓", "nested": {"list": [1, 2.5, None, True]}})

    run_bounded(scenario())


def test_wire_format_of_the_stream(http_url):
    """The exact bytes: the retry hint, then `id`, `event`, one `data` line and a blank line."""
    topic = unique("public:raw-")

    async def scenario():
        async with http_client() as http, http.stream("GET", f"{http_url}/events/{urllib.parse.quote(topic, safe='')}") as response:
            assert_stream_head(response)
            chunks = response.aiter_bytes()
            received = b""

            async def read_until(marker: bytes, what: str) -> None:
                nonlocal received
                while marker not in received:
                    try:
                        received += await asyncio.wait_for(chunks.__anext__(), STEP_TIMEOUT_S)
                    except TimeoutError as exc:
                        raise AssertionError(f"timed out waiting for {what}; got {received!r}") from exc

            await read_until(b"retry: 2000\n\n", "the retry hint")
            assert received == b"retry: 2000\n\n"
            await api_broadcast(http, http_url, topic, "tick", {"n": 1})
            expected = f"retry: 2000\n\nid: {topic}:1\nevent: tick\ndata: {{\"n\":1}}\n\n".encode()
            await read_until(b"data: {\"n\":1}\n\n", "the event")
            assert received == expected

    run_bounded(scenario())


def test_sseclient_py_reads_ids_and_pushes_without_id(http_url):
    """sseclient-py over an httpx stream. The `online` channel sends its member count as a push to
    the connection (not a topic broadcast): such events have no `id:` line. `online` tracks
    presence too: its snapshot, a push, comes first and has no id either; its diffs are topic
    broadcasts (with ids) and are not this test's subject."""
    topic = unique("public:sc-")
    url = events_url(http_url, "online", topic)

    with httpx.Client(timeout=httpx.Timeout(STEP_TIMEOUT_S)) as http, http.stream("GET", url) as response:
        assert_stream_head(response)
        events = SSEClient(response.iter_bytes()).events()  # each read waits at most STEP_TIMEOUT_S
        snapshot = next(events)
        assert (snapshot.id, snapshot.event) == (None, "presence_state"), str(snapshot)
        assert isinstance(json.loads(snapshot.data), dict)
        events = (event for event in events if event.event != "presence_diff")
        count = next(events)
        assert (count.id, count.event) == (None, "session-count"), str(count)
        data = json.loads(count.data)
        assert set(data) == {"count", "seq"} and isinstance(data["count"], int) and data["count"] >= 1 and isinstance(data["seq"], int), data
        for n in (1, 2):
            published = http.post(
                f"{http_url}/api/broadcast", json={"topic": topic, "event": "update", "payload": {"n": n}},
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
            assert published.status_code in (200, 202) and published.json() == {"published": 1}
            event = next(events)
            # (Another `online` member coming or going would show up here as a session-count.)
            while event.event == "session-count":
                assert event.id is None, str(event)
                event = next(events)
            assert (event.id, event.event, json.loads(event.data)) == (f"{topic}:{n}", "update", {"n": n}), str(event)


def test_many_topics_on_one_stream(http_url):
    a, b, c, d = (unique(f"public:{x}-") for x in "abcd")
    # `topics` comma-separated, repeated, and `topic`; a repeated topic is joined once.
    query = urllib.parse.urlencode([("topics", f"{a},{b}"), ("topic", c), ("topics", f"{d},{a}")])

    async def scenario():
        async with http_client() as http, open_stream(http, f"{http_url}/events?{query}") as stream:
            for topic in (a, b, c, d):
                assert await subscriber_count(http, http_url, topic) == 1, topic
            for index, topic in enumerate((a, b, c, d, a)):
                await api_broadcast(http, http_url, topic, "item", {"index": index})
            events = [await stream.next(f"event {i + 1} of 5") for i in range(5)]
            assert [(e.id, e.event, json.loads(e.data)) for e in events] == [
                (f"{a}:1", "item", {"index": 0}),
                (f"{b}:1", "item", {"index": 1}),
                (f"{c}:1", "item", {"index": 2}),
                (f"{d}:1", "item", {"index": 3}),
                (f"{a}:2", "item", {"index": 4}),
            ]

    run_bounded(scenario())


def test_closing_the_stream_leaves_its_topics(http_url):
    """The client going away (EventSource.close(), a closed tab) ends the session at once, not
    at the next write to the dead connection."""
    a, b = unique("public:ca-"), unique("public:cb-")

    async def scenario():
        async with http_client() as http:
            async with http_client() as reader, open_stream(reader, events_url(http_url, a, b)):
                assert (await subscriber_count(http, http_url, a), await subscriber_count(http, http_url, b)) == (1, 1)
            for topic in (a, b):
                await wait_for_subscribers(http, http_url, topic, 0, "after the client closed the stream")

    run_bounded(scenario())


def test_path_form_with_percent_encoded_topic(http_url):
    topic = unique("public:café/") + " x?y"
    path = urllib.parse.quote(topic, safe="")
    assert "%3A" in path and "%2F" in path and "%3F" in path

    async def scenario():
        async with http_client() as http, open_stream(http, f"{http_url}/events/{path}") as stream:
            await api_broadcast(http, http_url, topic, "hello", {"to": topic})
            assert_event(await stream.next("broadcast"), f"{topic}:1", "hello", {"to": topic})

    run_bounded(scenario())


def test_path_form_and_topics_param_together(http_url):
    first, second = unique("public:p1-"), unique("public:p2-")

    async def scenario():
        async with http_client() as http, open_stream(http, f"{http_url}/events/{urllib.parse.quote(first, safe='')}?topics={second}") as stream:
            await api_broadcast(http, http_url, second, "two", {})
            await api_broadcast(http, http_url, first, "one", {})
            assert_event(await stream.next("second topic"), f"{second}:1", "two", {})
            assert_event(await stream.next("first topic"), f"{first}:1", "one", {})

    run_bounded(scenario())


def test_token_header_param_and_last_event_id_are_accepted(http_url):
    """The demo does not check tokens; a reconnect's Last-Event-ID is accepted (nothing is
    replayed yet): the next event is the next broadcast."""
    topic = unique("public:tok-")

    async def scenario():
        async with http_client() as http:
            async with open_stream(http, events_url(http_url, topic, token="t0k3n")) as stream:
                await api_broadcast(http, http_url, topic, "e", {"n": 1})
                assert_event(await stream.next(), f"{topic}:1", "e", {"n": 1})
            headers = {"Authorization": "Bearer t0k3n", "Last-Event-ID": f"{topic}:1"}
            async with open_stream(http, events_url(http_url, topic), headers=headers) as stream:
                await api_broadcast(http, http_url, topic, "e", {"n": 2})
                event = await stream.next()
                assert (event.event, json.loads(event.data)) == ("e", {"n": 2}), Stream.show(event)

    run_bounded(scenario())


# --- Refusals ---------------------------------------------------------------------------------


def assert_json_refusal(response: httpx.Response, status: int, body: dict | None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("content-type") == "application/json; charset=utf-8", dict(response.headers)
    decoded = response.json()
    if body is not None:
        assert_json_equal(decoded, body, "refusal body")
    return decoded


def test_refused_topic_is_403_before_any_stream(http_url):
    allowed = unique("public:ok-")

    async def scenario():
        async with http_client() as http:
            response = await http.get(events_url(http_url, allowed, "notifications:5", user_id="6"))
            assert_json_refusal(response, 403, {"error": "unauthorized", "topic": "notifications:5"})
            # The topic that was joined before the refusal is left again.
            await wait_for_subscribers(http, http_url, allowed, 0, "after a refused request")
            # Without user_id at all, too.
            response = await http.get(f"{http_url}/events/notifications%3A5")
            assert_json_refusal(response, 403, {"error": "unauthorized", "topic": "notifications:5"})
            # The owner may: user_id == id.
            user = unique("u")
            async with open_stream(http, events_url(http_url, f"notifications:{user}", user_id=user)) as stream:
                await api_broadcast(http, http_url, f"notifications:{user}", "notification", {"body": "for you"})
                assert_event(await stream.next(), f"notifications:{user}:1", "notification", {"body": "for you"})

    run_bounded(scenario())


def test_no_topics_is_400(http_url):
    async def scenario():
        async with http_client() as http:
            for query in ("", "?topics=", "?topics=,,", "?topic=", "?user=x"):
                decoded = assert_json_refusal(await http.get(f"{http_url}/events{query}"), 400, None)
                assert set(decoded) == {"error"} and isinstance(decoded["error"], str) and decoded["error"], (query, decoded)

    run_bounded(scenario())


def test_unknown_topic_is_403(http_url):
    async def scenario():
        async with http_client() as http:
            assert_json_refusal(await http.get(events_url(http_url, "nope:1")), 403, {"error": "unmatched topic", "topic": "nope:1"})
            # One unknown topic among good ones refuses the whole request.
            good = unique("public:g-")
            assert_json_refusal(await http.get(events_url(http_url, good, "nope:1")), 403, {"error": "unmatched topic", "topic": "nope:1"})
            await wait_for_subscribers(http, http_url, good, 0, "after a refused request")

    run_bounded(scenario())


def test_other_methods_are_405(http_url):
    async def scenario():
        async with http_client() as http:
            for method in ("POST", "PUT", "DELETE"):
                response = await http.request(method, events_url(http_url, "ticker"))
                decoded = assert_json_refusal(response, 405, None)
                assert set(decoded) == {"error"}, decoded
                assert response.headers.get("allow") == "GET", dict(response.headers)

    run_bounded(scenario())


# --- Rooms and disconnects --------------------------------------------------------------------


def test_room_join_and_leave_seen_by_a_websocket_member(http_url, socket_url):
    topic = unique("room:sse-")

    async def scenario():
        member = await RawConn.open(f"{socket_url}?vsn=2.0.0", v2=True)
        try:
            await member.send(["1", "1", topic, "phx_join", {"user": "ws"}])
            assert_json_equal(await member.recv("join reply"), ["1", "1", topic, "phx_reply", {"status": "ok", "response": {}}])
            async with http_client() as http:
                async with open_stream(http, f"{http_url}/events/{urllib.parse.quote(topic, safe='')}?user=sse") as stream:
                    assert_json_equal(await member.recv("user_joined"), [None, None, topic, "user_joined", {"user": "sse"}])
                    await member.send(["1", "2", topic, "new_msg", {"body": "hi sse"}])
                    frames = await member.recv_n(2, "new_msg broadcast and reply")
                    assert_same_frames(frames, [
                        [None, None, topic, "new_msg", {"user": "ws", "body": "hi sse"}],
                        ["1", "2", topic, "phx_reply", {"status": "ok", "response": {}}],
                    ])
                    # user_joined (position 1) went to the others only; the SSE reader sees position 2.
                    assert_event(await stream.next("new_msg"), f"{topic}:2", "new_msg", {"user": "ws", "body": "hi sse"})
                assert_json_equal(await member.recv("user_left"), [None, None, topic, "user_left", {"user": "sse"}])
            assert await member.sync() == []
        finally:
            await member.close()

    run_bounded(scenario())


def test_disconnect_by_socket_id_ends_the_stream(http_url):
    topic = unique("public:dc-")
    user, other_user = unique("sse"), unique("sse-other")

    async def scenario():
        async with http_client() as http, http_client() as http2:
            async with open_stream(http, events_url(http_url, topic, user_id=user)) as stream, open_stream(http2, events_url(http_url, topic, user_id=other_user)) as other:
                await api_broadcast(http, http_url, topic, "before", {})
                assert_event(await stream.next(), f"{topic}:1", "before", {})
                assert_event(await other.next(), f"{topic}:1", "before", {})
                await api_disconnect(http, http_url, {"user": user})
                close = await stream.next("switchboard:close")
                assert_event(close, None, "switchboard:close", {"code": 1001, "reason": "disconnected"})
                await stream.expect_end()
                # The other user's stream goes on.
                await api_broadcast(http, http_url, topic, "after", {})
                assert_event(await other.next(), f"{topic}:2", "after", {})
                # The `socket_id` form of the API.
                await api_disconnect(http, http_url, {"socket_id": f"user_socket:{other_user}"})
                assert_event(await other.next("switchboard:close"), None, "switchboard:close", {"code": 1001, "reason": "disconnected"})
                await other.expect_end()
            await wait_for_subscribers(http, http_url, topic, 0, "after both disconnects")

    run_bounded(scenario())


def test_disconnect_event_has_no_id_line(http_url):
    """sseclient-py sees the close event's own id: none."""
    topic = unique("public:dcid-")
    user = unique("sc")

    with httpx.Client(timeout=httpx.Timeout(STEP_TIMEOUT_S)) as http, http.stream("GET", events_url(http_url, topic, user_id=user)) as response:
        assert_stream_head(response)
        events = SSEClient(response.iter_bytes()).events()
        response_api = http.post(f"{http_url}/api/disconnect", json={"user": user}, headers={"Authorization": f"Bearer {API_KEY}"})
        assert response_api.status_code in (200, 202)
        close = next(events)
        assert (close.id, close.event, json.loads(close.data)) == (None, "switchboard:close", {"code": 1001, "reason": "disconnected"}), str(close)
        assert next(events, None) is None, "the stream ends after switchboard:close"


# --- Every transport on one topic ---------------------------------------------------------------


def test_websocket_sse_and_longpoll_receive_the_same_broadcast(http_url, socket_url):
    topic = unique("public:mixed-")
    payload = {"price": 101.25, "sym": "SWB", "tags": ["a", "b"]}

    async def scenario():
        ws = await RawConn.open(f"{socket_url}?vsn=2.0.0", v2=True)
        try:
            await ws.send(["1", "1", topic, "phx_join", {}])
            assert_json_equal(await ws.recv("ws join reply"), ["1", "1", topic, "phx_reply", {"status": "ok", "response": {}}])
            async with http_client() as http, httpx.AsyncClient(timeout=httpx.Timeout(15.0)) as lp_http:
                lp = LongPoll(lp_http, f"{http_url}/socket/longpoll")
                await lp.open()
                await lp.join(topic, {})
                async with open_stream(http, events_url(http_url, topic)) as stream:
                    assert await subscriber_count(http, http_url, topic) == 3
                    await api_broadcast(http, http_url, topic, "quote", payload)
                    ws_frame, sse_event, lp_frames = await asyncio.gather(
                        ws.recv("ws broadcast"), stream.next("sse broadcast"), lp.collect(1, "long-poll broadcast")
                    )
                    assert_json_equal(ws_frame, [None, None, topic, "quote", payload], "WebSocket")
                    assert_event(sse_event, f"{topic}:1", "quote", payload)
                    assert_json_equal(lp_frames[0], [None, None, topic, "quote", payload], "long-poll")
            assert await ws.sync() == []
        finally:
            await ws.close()

    run_bounded(scenario())


@pytest.mark.skip(reason="the keep-alive comment comes every 15 s: too slow for this suite")
def test_keep_alive_comment():
    pass
