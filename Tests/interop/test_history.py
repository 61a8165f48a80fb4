"""History and recovery (namespace option `history`), over real sockets, one node (memory).

A server with `feed:*` (history: 50 kept, 60 s, at most 20 replayed; clients may publish),
`short:*` (3 kept, 2 s) and `plain:*` (no history). Clients: raw `websockets` (V2 and V1), a
long-poll session, phoenix-channels-python-client 0.4.1 (a third-party client must not break on
broadcasts whose ref is a position), and the HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from phoenix_channels_python_client import PHXChannelsClient, PhoenixChannelsProtocolVersion

from config_server import server, write_config
from support import STEP_TIMEOUT_S, run_bounded
from test_longpoll import LongPoll
from test_presence import Phx

KEY = "history-test-key"
CONFIG = {
    "api_key": KEY,
    "namespaces": {
        "feed:*": {"history": {"size": 50, "ttl": 60, "max_recover": 20}, "publish": True},
        "short:*": {"history": {"size": 3, "ttl": 2}},
        "plain:*": {},
    },
}


@pytest.fixture(scope="module")
def history_server(tmp_path_factory) -> Iterator:
    with server(["--config", str(write_config(tmp_path_factory.mktemp("history"), CONFIG))]) as srv:
        yield srv


@pytest.fixture(scope="module")
def ws_base(history_server) -> str:
    return f"ws://127.0.0.1:{history_server.port}"


@pytest.fixture(scope="module")
def http_base(history_server) -> str:
    return f"http://127.0.0.1:{history_server.port}"


def call(http_base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{http_base}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def publish(http_base: str, topic: str, count: int, start: int = 1, **extra) -> None:
    messages = [{"topic": topic, "event": "msg", "payload": {"i": i}, **extra} for i in range(start, start + count)]
    status, body = call(http_base, "POST", "/api/broadcast", {"messages": messages})
    assert (status, body) == (202, {"published": count})


def history(http_base: str, topic: str, query: str = "") -> tuple[int, Any]:
    return call(http_base, "GET", f"/api/topics/{urllib.parse.quote(topic, safe='')}/history{query}")


def messages_of(client: Phx, topic: str) -> list[tuple[Any, Any]]:
    """(ref, payload) of every `msg` broadcast the client received on `topic`."""
    return [(f[1], f[4]) for f in client.received if f[2] == topic and f[3] == "msg"]


async def until_count(client: Phx, topic: str, count: int) -> None:
    await client.until(lambda: len(messages_of(client, topic)) >= count, f"{count} messages on {topic}")


def test_reconnect_with_the_last_position_gets_exactly_what_was_missed_then_live(ws_base, http_base):
    async def scenario():
        topic = f"feed:{time.monotonic_ns()}"
        first = await Phx.connect(ws_base, "ana")
        _, reply = await first.join(topic)
        assert reply["status"] == "ok" and set(reply["response"]) == {"position"}
        epoch = reply["response"]["position"]["epoch"]
        assert isinstance(epoch, str) and epoch and reply["response"]["position"]["offset"] == 0
        publish(http_base, topic, 3)
        await until_count(first, topic, 3)
        assert messages_of(first, topic) == [(f"{epoch}:{i}", {"i": i}) for i in (1, 2, 3)]
        raw = next(r for r in first.raw if '"msg"' in r)
        assert raw == f'[null,"{epoch}:1","{topic}","msg",{{"i":1}}]'
        await first.close()

        publish(http_base, topic, 5, start=4)  # missed while away
        back = await Phx.connect(ws_base, "ana")
        _, reply = await back.join(topic, {"recover": {"epoch": epoch, "offset": 3}, "other": "ignored"})
        assert reply == {"status": "ok", "response": {"recovered": True, "position": {"epoch": epoch, "offset": 8}}}
        publish(http_base, topic, 1, start=9)
        await until_count(back, topic, 6)
        assert messages_of(back, topic) == [(f"{epoch}:{i}", {"i": i}) for i in range(4, 10)]
        # The replay comes right after the join reply, before anything else.
        after_reply = back.received[back.received.index(next(f for f in back.received if f[3] == "phx_reply")) + 1 :]
        assert [f[4]["i"] for f in after_reply[:5]] == [4, 5, 6, 7, 8]

        # V1 clients get the position as their ref too.
        v1 = await Phx.connect(ws_base, "bo", v2=False)
        await v1.send({"topic": topic, "event": "phx_join", "payload": {"recover": {"epoch": epoch, "offset": 8}}, "ref": "j1"})
        joined = await v1.recv("V1 join reply")
        assert joined == {"topic": topic, "event": "phx_reply", "payload": {"status": "ok", "response": {"recovered": True, "position": {"epoch": epoch, "offset": 9}}}, "ref": "j1"}
        replayed = await v1.recv("the replayed message")
        assert replayed == {"topic": topic, "event": "msg", "payload": {"i": 9}, "ref": f"{epoch}:9"}
        await back.close()
        await v1.close()

    run_bounded(scenario())


def test_recovery_that_cannot_be_exact_says_so_and_sends_nothing_old(ws_base, http_base):
    async def scenario():
        topic = f"feed:{time.monotonic_ns()}"
        epoch = history(http_base, topic)[1]["epoch"]
        publish(http_base, topic, 25)  # feed keeps 50 but replays at most 20
        cases = [
            ({"epoch": "another-epoch", "offset": 20}, "another epoch"),
            ({"epoch": epoch, "offset": 4}, "21 missed > max_recover 20"),
            ({"epoch": epoch, "offset": 26}, "from the future"),
            ({"epoch": epoch}, "no offset"),
            ("e:1", "not an object"),
        ]
        for recover, why in cases:
            client = await Phx.connect(ws_base, "x")
            _, reply = await client.join(topic, {"recover": recover})
            assert reply == {"status": "ok", "response": {"recovered": False, "position": {"epoch": epoch, "offset": 25}}}, why
            await client.sync()
            assert messages_of(client, topic) == [], why
            await client.close()
        # Exactly max_recover missed still recovers.
        client = await Phx.connect(ws_base, "x")
        _, reply = await client.join(topic, {"recover": {"epoch": epoch, "offset": 5}})
        assert reply["response"]["recovered"] is True
        await until_count(client, topic, 20)
        assert [p["i"] for _, p in messages_of(client, topic)] == list(range(6, 26))
        await client.close()

        # Trimmed by size (3 kept) and by age (2 s).
        short = f"short:{time.monotonic_ns()}"
        s = await Phx.connect(ws_base, "s")
        short_epoch = (await s.join(short))[1]["response"]["position"]["epoch"]
        publish(http_base, short, 5)
        late = await Phx.connect(ws_base, "s")
        assert (await late.join(short, {"recover": {"epoch": short_epoch, "offset": 1}}))[1]["response"]["recovered"] is False, "2 and 3 were trimmed"
        ok = await Phx.connect(ws_base, "s")
        assert (await ok.join(short, {"recover": {"epoch": short_epoch, "offset": 2}}))[1]["response"]["recovered"] is True
        await asyncio.sleep(2.2)
        aged = await Phx.connect(ws_base, "s")
        assert (await aged.join(short, {"recover": {"epoch": short_epoch, "offset": 2}}))[1]["response"]["recovered"] is False, "older than the TTL"
        assert history(http_base, short)[1]["messages"] == [], "an expired message is never returned"
        for c in (s, late, ok, aged):
            await c.close()

    run_bounded(scenario())


def test_a_publisher_racing_the_recovery_leaves_no_gap_and_no_duplicate(ws_base, http_base):
    async def scenario():
        topic = f"feed:{time.monotonic_ns()}"
        epoch = history(http_base, topic)[1]["epoch"]
        total = 40
        publisher = threading.Thread(target=lambda: [publish(http_base, topic, 1, start=i) or time.sleep(0.005) for i in range(1, total + 1)])
        publisher.start()
        clients = []
        for _ in range(6):
            await asyncio.sleep(0.02)
            client = await Phx.connect(ws_base, "r")
            _, reply = await client.join(topic, {"recover": {"epoch": epoch, "offset": 0}})
            # Up to 20 missed: recovered; more (the publisher got ahead): honest false.
            clients.append((client, reply["response"]["recovered"], reply["response"]["position"]["offset"]))
        await asyncio.to_thread(publisher.join, 30)
        for client, recovered, offset in clients:
            if recovered:
                await until_count(client, topic, total)
                assert [p["i"] for _, p in messages_of(client, topic)] == list(range(1, total + 1))
            else:
                await client.until(lambda c=client: any(p["i"] == total for _, p in messages_of(c, topic)), "the last message")
                assert [p["i"] for _, p in messages_of(client, topic)] == list(range(offset + 1, total + 1))
            await client.close()
        assert any(recovered for _, recovered, _ in clients)

    run_bounded(scenario())


def test_history_api_since_limit_reverse_and_errors(ws_base, http_base):
    topic = f"feed:{time.monotonic_ns()}"
    status, empty = history(http_base, topic)
    assert status == 200 and empty["topic"] == topic and empty["offset"] == 0 and empty["messages"] == []
    epoch = empty["epoch"]
    publish(http_base, topic, 5)
    publish(http_base, topic, 1, start=100, history=False)  # ephemeral: live only, no offset
    status, body = history(http_base, topic)
    assert status == 200 and (body["epoch"], body["offset"]) == (epoch, 5)
    assert [(m["offset"], m["event"], m["payload"]) for m in body["messages"]] == [(i, "msg", {"i": i}) for i in range(1, 6)]
    assert all(abs(m["time"] / 1000 - time.time()) < 60 for m in body["messages"])
    assert [m["offset"] for m in history(http_base, topic, f"?since={epoch}:2")[1]["messages"]] == [3, 4, 5]
    assert [m["offset"] for m in history(http_base, topic, f"?since={epoch}:2&limit=2")[1]["messages"]] == [3, 4]
    assert [m["offset"] for m in history(http_base, topic, "?reverse=true&limit=2")[1]["messages"]] == [5, 4]
    status, body = history(http_base, topic, "?since=other:2")
    assert status == 409 and body["error"]["code"] == "epoch_mismatch"
    assert history(http_base, topic, "?since=nonsense")[0] == 400
    assert history(http_base, topic, "?limit=-1")[0] == 400
    status, body = history(http_base, f"plain:{time.monotonic_ns()}")
    assert status == 404 and body["error"]["code"] == "no_history"
    status, body = call(http_base, "POST", "/api/broadcast", {"topic": topic, "event": "msg", "payload": {}, "history": "no"})
    assert status == 422 and "history must be true or false" in body["error"]["message"]


def test_longpoll_sessions_recover_like_websocket_joins(ws_base, http_base):
    async def scenario():
        topic = f"feed:{time.monotonic_ns()}"
        epoch = history(http_base, topic)[1]["epoch"]
        publish(http_base, topic, 4)
        async with httpx.AsyncClient(timeout=httpx.Timeout(STEP_TIMEOUT_S)) as http:
            poll = LongPoll(http, f"{http_base}/socket/longpoll", params=[("vsn", "2.0.0")])
            await poll.open()
            assert await poll.post(["1", "1", topic, "phx_join", {"recover": {"epoch": epoch, "offset": 1}}]) == {"status": 200}
            frames = await poll.collect(4, "the join reply and three replayed messages")
            assert frames[0] == ["1", "1", topic, "phx_reply", {"status": "ok", "response": {"recovered": True, "position": {"epoch": epoch, "offset": 4}}}]
            assert frames[1:] == [[None, f"{epoch}:{i}", topic, "msg", {"i": i}] for i in (2, 3, 4)]

    run_bounded(scenario())


def test_third_party_clients_take_broadcasts_whose_ref_is_a_position(ws_base, http_base):
    async def scenario():
        topic = f"feed:{time.monotonic_ns()}"
        # V1 only: in V2 this client drops every broadcast (it requires a broadcast's join_ref to be
        # its join's, and broadcasts carry null, as Phoenix sends them), with or without history.
        for mode in (PhoenixChannelsProtocolVersion.V1,):
            received: asyncio.Queue = asyncio.Queue()

            async def handler(message) -> None:
                received.put_nowait((str(message.event), dict(message.payload), message.ref))

            async with PHXChannelsClient(f"{ws_base}/socket/websocket", KEY, protocol_version=mode, auto_reconnect=False) as client:
                await asyncio.wait_for(client.subscribe_to_topic(topic, handler), STEP_TIMEOUT_S)
                publish(http_base, topic, 2, start=1)
                got = [await asyncio.wait_for(received.get(), STEP_TIMEOUT_S) for _ in range(2)]
                assert [(e, p) for e, p, _ in got] == [("msg", {"i": 1}), ("msg", {"i": 2})], mode
                assert all(isinstance(ref, str) and ":" in ref for _, _, ref in got), got
                await asyncio.wait_for(client.unsubscribe_from_topic(topic), STEP_TIMEOUT_S)

    run_bounded(scenario())


def post_with_key(http_base: str, body: Any, key: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(f"{http_base}/api/broadcast", method="POST", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_an_idempotent_publish_retried_is_delivered_once_and_answered_the_same(ws_base, http_base):
    async def scenario():
        topic = f"feed:{time.monotonic_ns()}"
        client = await Phx.connect(ws_base, "i")
        await client.join(topic)
        body = {"topic": topic, "event": "msg", "payload": {"i": 1}}
        key = f"order-{time.monotonic_ns()}"
        answers = [post_with_key(http_base, body, key) for _ in range(3)]
        assert answers == [(202, {"published": 1})] * 3
        # Concurrent retries of another key: still one delivery.
        second = {"topic": topic, "event": "msg", "payload": {"i": 2}}
        other = f"order-{time.monotonic_ns()}"
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(post_with_key(http_base, second, other))) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert results == [(202, {"published": 1})] * 5
        # A failed publish is remembered too; the same key with another body is refused.
        bad = {"topic": topic, "event": "phx_join", "payload": {}}
        refused = post_with_key(http_base, bad, "bad-key")
        assert refused[0] == 422 and post_with_key(http_base, bad, "bad-key") == refused
        status, error = post_with_key(http_base, {**body, "payload": {"i": 99}}, key)
        assert status == 422 and error["error"]["code"] == "idempotency_key_reused"
        status, error = post_with_key(http_base, body, "bad key with spaces")
        assert status == 400 and "Idempotency-Key" in error["error"]["message"]
        # Without a key, every publish is delivered.
        assert post_with_key(http_base, {**body, "payload": {"i": 3}}, None) == (202, {"published": 1})
        await until_count(client, topic, 3)
        await client.sync()
        assert [p["i"] for _, p in messages_of(client, topic)] == [1, 2, 3]
        assert history(http_base, topic)[1]["offset"] == 3
        await client.close()

    run_bounded(scenario())


def test_plain_websocket_subscribers_resume_with_since(ws_base, http_base):
    import websockets

    async def frames(ws, count: int) -> list[Any]:
        return [json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT_S)) for _ in range(count)]

    async def scenario():
        topic = f"feed:{time.monotonic_ns()}"
        epoch = history(http_base, topic)[1]["epoch"]
        publish(http_base, topic, 5)
        url = f"{ws_base}/ws/{topic}"
        async with websockets.connect(f"{url}?since={epoch}:2") as ws:
            publish(http_base, topic, 1, start=6)
            assert await frames(ws, 4) == [{"i": 3}, {"i": 4}, {"i": 5}, {"i": 6}]
        encoded = f"{ws_base}/ws/{urllib.parse.quote(topic, safe='')}"  # the `:` percent-encoded: the same topic
        async with websockets.connect(f"{encoded}?since={epoch}:4&format=envelope") as ws:
            assert await frames(ws, 2) == [{"event": "msg", "payload": {"i": 5}}, {"event": "msg", "payload": {"i": 6}}]
        async with websockets.connect(f"{url}?since=another:2") as ws:
            publish(http_base, topic, 1, start=7)
            assert await frames(ws, 2) == [{"recovered": False, "epoch": epoch, "offset": 6}, {"i": 7}]
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(f"{url}?since=nonsense")
        assert refused.value.response.status_code == 400

    run_bounded(scenario())
