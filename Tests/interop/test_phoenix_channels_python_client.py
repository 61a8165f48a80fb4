"""`phoenix-channels-python-client` 0.4.1 against the demo server, in V1 and V2 mode.

What this client can and cannot do (read from its source, 0.4.1):
- `subscribe_to_topic(topic, handler)` always joins with payload `{}` (no join params), so a
  `room:*` join is the demo's "anonymous" user.
- It has no push API. Pushes here go through the client's own public protocol handler
  (`get_protocol_handler().send_message(client.connection, make_message(...))`) with the
  subscription's join_ref; replies then come back through the client's normal routing and reach
  the topic's message handler as `phx_reply` messages.
- V2 mode drops every frame whose join_ref is not the subscription's, including null: it never
  sees fast-lane broadcasts (`new_msg`, `user_joined`, `user_left`, `tick`) nor the
  `unmatched topic` join reply (join_ref null, as in Phoenix). V1 mode sees everything.

Each test also records the raw frames the client received and sent (by wrapping its protocol
handler's parse/serialize methods) so that assertions are on the exact wire frames as well as on
what the client's API delivered.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from phoenix_channels_python_client import PHXChannelsClient, PhoenixChannelsProtocolVersion
from phoenix_channels_python_client.exceptions import PHXTopicError
from phoenix_channels_python_client.utils import make_message

from support import (
    STEP_TIMEOUT_S,
    RawConn,
    assert_json_equal,
    assert_same_frames,
    drain,
    next_item,
    run_bounded,
    take,
)

V1 = PhoenixChannelsProtocolVersion.V1
V2 = PhoenixChannelsProtocolVersion.V2
MODES = [pytest.param(V1, id="V1"), pytest.param(V2, id="V2")]


class Tap:
    """Records the exact frames a PHXChannelsClient receives and sends."""

    def __init__(self, client: PHXChannelsClient) -> None:
        self.received: list[Any] = []
        self.sent: list[Any] = []
        handler = client.get_protocol_handler()
        parse, serialize = handler.parse_message, handler.serialize_message

        def parse_message(raw):
            self.received.append(json.loads(raw))
            return parse(raw)

        def serialize_message(message):
            text = serialize(message)
            self.sent.append(json.loads(text))
            return text

        handler.parse_message = parse_message
        handler.serialize_message = serialize_message

    def received_on(self, topic: str, v2: bool) -> list[Any]:
        return [f for f in self.received if (f[2] if v2 else f["topic"]) == topic]

    def sent_on(self, topic: str, v2: bool) -> list[Any]:
        return [f for f in self.sent if (f[2] if v2 else f["topic"]) == topic]


def new_client(socket_url: str, mode, query: str = "", **options) -> tuple[PHXChannelsClient, Tap]:
    options.setdefault("auto_reconnect", False)
    options.setdefault("join_timeout_s", STEP_TIMEOUT_S)
    options.setdefault("leave_timeout_s", STEP_TIMEOUT_S)
    client = PHXChannelsClient(socket_url + query, "interop-key", protocol_version=mode, **options)
    return client, Tap(client)


def as_tuple(message) -> tuple:
    """What the client's API delivered: (topic, event, payload, ref, join_ref)."""
    return (message.topic, str(message.event), dict(message.payload), message.ref, message.join_ref)


def recorder() -> tuple[asyncio.Queue, Any]:
    queue: asyncio.Queue = asyncio.Queue()

    async def handler(message) -> None:
        queue.put_nowait(as_tuple(message))

    return queue, handler


async def client_push(client: PHXChannelsClient, topic: str, event: str, payload: dict, ref: str) -> None:
    """Pushes through the client's own serializer and connection (the client has no push API)."""
    subscription = client.get_current_subscriptions()[topic]
    message = make_message(event=event, topic=topic, ref=ref, payload=payload, join_ref=subscription.join_ref)
    await client.get_protocol_handler().send_message(client.connection, message)


def v1_frame(topic, event, payload, ref=None):
    return {"topic": topic, "event": event, "payload": payload, "ref": ref}


def v1_reply(topic, ref, status="ok", response=None):
    return v1_frame(topic, "phx_reply", {"status": status, "response": response or {}}, ref)


def v2_reply(join_ref, ref, topic, status="ok", response=None):
    return [join_ref, ref, topic, "phx_reply", {"status": status, "response": response or {}}]


# --------------------------------------------------------------------------------------------
# V1 mode: connect, join, push with reply, broadcasts (user_joined / new_msg / user_left), leave
# --------------------------------------------------------------------------------------------


def test_v1_room_join_push_reply_broadcasts_and_leave(socket_url):
    room = f"room:phx-v1-{uuid.uuid4().hex[:8]}"

    async def scenario():
        client, tap = new_client(socket_url, V1)
        bob = await RawConn.open(socket_url + "?vsn=2.0.0", v2=True)
        carol = await RawConn.open(socket_url + "?vsn=1.0.0", v2=False)
        try:
            async with client:
                inbox, handler = recorder()
                await asyncio.wait_for(client.subscribe_to_topic(room, handler), STEP_TIMEOUT_S)
                assert client.is_topic_joined(room)
                join_ref = client.get_current_subscriptions()[room].join_ref
                # V1: the client sends no join_ref; the join reply echoes its ref.
                assert_json_equal(tap.sent_on(room, v2=False), [v1_frame(room, "phx_join", {}, join_ref)])
                assert_json_equal(tap.received_on(room, v2=False), [v1_reply(room, join_ref)])

                # bob (raw V2) joins: the client receives the user_joined broadcast.
                await bob.send(["1", "1", room, "phx_join", {"user": "bob"}])
                assert_json_equal(await bob.recv("bob's join reply"), v2_reply("1", "1", room))
                assert await next_item(inbox, "user_joined for bob") == (room, "user_joined", {"user": "bob"}, None, None)

                # The client pushes new_msg: it gets the reply and the broadcast (sender included).
                await client_push(client, room, "new_msg", {"body": "hi from v1"}, "p1")
                got = await take(inbox, 2, "new_msg reply and broadcast")
                assert sorted(got, key=repr) == sorted(
                    [
                        (room, "phx_reply", {"status": "ok", "response": {}}, "p1", None),
                        (room, "new_msg", {"user": "anonymous", "body": "hi from v1"}, None, None),
                    ],
                    key=repr,
                )
                assert_json_equal(await bob.recv("broadcast at bob"), [None, None, room, "new_msg", {"user": "anonymous", "body": "hi from v1"}])

                # Error reply to a push.
                await client_push(client, room, "new_msg", {}, "p2")
                assert await next_item(inbox, "error reply") == (
                    room, "phx_reply", {"status": "error", "response": {"reason": "body is required"}}, "p2", None,
                )

                # A broadcast caused by another socket.
                await bob.send(["1", "2", room, "new_msg", {"body": "hi from bob"}])
                assert await next_item(inbox, "bob's message") == (room, "new_msg", {"user": "bob", "body": "hi from bob"}, None, None)

                # carol joins and disconnects without leaving: user_joined, then user_left.
                await carol.send({"topic": room, "event": "phx_join", "payload": {"user": "carol"}, "ref": "c1"})
                assert_json_equal(await carol.recv("carol's join reply"), v1_reply(room, "c1"))
                assert await next_item(inbox, "user_joined for carol") == (room, "user_joined", {"user": "carol"}, None, None)
                await carol.close()
                assert await next_item(inbox, "user_left for carol") == (room, "user_left", {"user": "carol"}, None, None)

                # bob's own frames: reply and broadcast for his push, user_joined/left for carol.
                bob_frames = await bob.recv_n(4, "bob's remaining frames")
                assert_same_frames(
                    bob_frames,
                    [
                        v2_reply("1", "2", room),
                        [None, None, room, "new_msg", {"user": "bob", "body": "hi from bob"}],
                        [None, None, room, "user_joined", {"user": "carol"}],
                        [None, None, room, "user_left", {"user": "carol"}],
                    ],
                )

                # Leave: the client waits for the ok reply; bob sees user_left for the client.
                received_before_leave = len(tap.received)
                await asyncio.wait_for(client.unsubscribe_from_topic(room), STEP_TIMEOUT_S)
                assert room not in client.get_current_subscriptions()
                assert_json_equal(await bob.recv("user_left for the client"), [None, None, room, "user_left", {"user": "anonymous"}])
                leave = tap.sent_on(room, v2=False)[-1]
                assert leave["event"] == "phx_leave" and leave["payload"] == {} and isinstance(leave["ref"], str)
                # Wait (bounded) for the phx_close that follows the reply; its ref is the join ref.
                await wait_for_frames(tap, received_before_leave + 2)
                assert_json_equal(
                    tap.received[received_before_leave:],
                    [v1_reply(room, leave["ref"]), v1_frame(room, "phx_close", {}, join_ref)],
                    "frames after phx_leave",
                )
                assert drain(inbox) == []
                for frame in tap.received:
                    assert set(frame) == {"topic", "event", "payload", "ref"}, frame
        finally:
            await bob.close()
            await carol.close()

    run_bounded(scenario())


async def wait_for_frames(tap: Tap, count: int, timeout: float = STEP_TIMEOUT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(tap.received) < count:
        if loop.time() >= deadline:
            raise AssertionError(f"timed out waiting for {count} received frames; got {tap.received}")
        await asyncio.sleep(0.01)


def test_v1_ticker_broadcasts_reach_the_message_and_event_handlers(socket_url):
    async def scenario():
        client, _tap = new_client(socket_url, V1)
        async with client:
            inbox, handler = recorder()
            ticks: asyncio.Queue = asyncio.Queue()

            async def on_tick(payload):
                ticks.put_nowait(payload)

            await asyncio.wait_for(client.subscribe_to_topic("ticker", handler), STEP_TIMEOUT_S)
            client.add_event_handler("ticker", "tick", on_tick)
            first = await next_item(inbox, "first tick", timeout=3.0)
            second = await next_item(inbox, "second tick", timeout=3.0)
            count = first[2].get("count")
            assert isinstance(count, int) and count >= 1, first
            assert first == ("ticker", "tick", {"count": count}, None, None)
            assert second == ("ticker", "tick", {"count": count + 1}, None, None)
            # The event-specific handler got the payloads of the ticks it was registered for.
            tick_payloads = await take(ticks, 2, "tick payloads at the event handler", timeout=3.0)
            assert tick_payloads[-1]["count"] >= count + 1
            assert all(set(p) == {"count"} for p in tick_payloads), tick_payloads
            await asyncio.wait_for(client.unsubscribe_from_topic("ticker"), STEP_TIMEOUT_S)

    run_bounded(scenario())


# --------------------------------------------------------------------------------------------
# V2 mode: connect, join, push with reply (broadcasts are invisible to this client), leave
# --------------------------------------------------------------------------------------------


def test_v2_room_join_push_reply_and_leave(socket_url):
    room = f"room:phx-v2-{uuid.uuid4().hex[:8]}"

    async def scenario():
        client, tap = new_client(socket_url, V2)
        # A raw V1 observer in the room shows the client's join, message and leave took effect.
        watcher = await RawConn.open(socket_url, v2=False)
        try:
            await watcher.send({"topic": room, "event": "phx_join", "payload": {"user": "watcher"}, "ref": "w1"})
            assert_json_equal(await watcher.recv("watcher's join reply"), v1_reply(room, "w1"))

            async with client:
                inbox, handler = recorder()
                await asyncio.wait_for(client.subscribe_to_topic(room, handler), STEP_TIMEOUT_S)
                assert client.is_topic_joined(room)
                jr = client.get_current_subscriptions()[room].join_ref
                assert_json_equal(tap.sent_on(room, v2=True), [[jr, jr, room, "phx_join", {}]])
                assert_json_equal(tap.received_on(room, v2=True), [v2_reply(jr, jr, room)])
                assert_json_equal(await watcher.recv("user_joined"), v1_frame(room, "user_joined", {"user": "anonymous"}))

                # Push with reply: the reply carries the channel's join_ref, so the client delivers it.
                await client_push(client, room, "new_msg", {"body": "hi from v2"}, "p1")
                assert await next_item(inbox, "new_msg reply") == (room, "phx_reply", {"status": "ok", "response": {}}, "p1", jr)
                assert_json_equal(await watcher.recv("broadcast at the watcher"), v1_frame(room, "new_msg", {"user": "anonymous", "body": "hi from v2"}))

                await client_push(client, room, "new_msg", {"body": ""}, "p2")
                assert await next_item(inbox, "error reply") == (
                    room, "phx_reply", {"status": "error", "response": {"reason": "body is required"}}, "p2", jr,
                )

                # A push to this client alone carries the channel's join_ref: the client sees it.
                await client_push(client, room, "ping", {"n": 1}, "p3")
                got = await take(inbox, 2, "pong push and ping reply")
                assert got == [
                    (room, "pong", {"n": 1}, None, jr),
                    (room, "phx_reply", {"status": "ok", "response": {}}, "p3", jr),
                ], got

                # On the wire the client also got its own broadcast, with join_ref null (fast lane),
                # which it drops by design.
                assert_same_frames(
                    tap.received_on(room, v2=True),
                    [
                        v2_reply(jr, jr, room),
                        v2_reply(jr, "p1", room),
                        [None, None, room, "new_msg", {"user": "anonymous", "body": "hi from v2"}],
                        v2_reply(jr, "p2", room, "error", {"reason": "body is required"}),
                        [jr, None, room, "pong", {"n": 1}],
                        v2_reply(jr, "p3", room),
                    ],
                )

                # Leave.
                received_before_leave = len(tap.received)
                await asyncio.wait_for(client.unsubscribe_from_topic(room), STEP_TIMEOUT_S)
                assert room not in client.get_current_subscriptions()
                assert_json_equal(await watcher.recv("user_left"), v1_frame(room, "user_left", {"user": "anonymous"}))
                leave = tap.sent_on(room, v2=True)[-1]
                assert leave[0] == jr and leave[2:] == [room, "phx_leave", {}], leave
                await wait_for_frames(tap, received_before_leave + 2)
                assert_json_equal(
                    tap.received[received_before_leave:],
                    [v2_reply(jr, leave[1], room), [jr, jr, room, "phx_close", {}]],
                    "frames after phx_leave",
                )
                assert drain(inbox) == []
                for frame in tap.received:
                    assert isinstance(frame, list) and len(frame) == 5, frame
            assert await watcher.sync() == []
        finally:
            await watcher.close()

    run_bounded(scenario())


# --------------------------------------------------------------------------------------------
# Both modes: join refused by the channel, heartbeat
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_join_refused_by_channel_and_allowed_for_owner(socket_url, mode):
    v2 = mode == V2
    user = f"u{uuid.uuid4().hex[:8]}"
    other = f"notifications:{user}-other"
    own = f"notifications:{user}"

    async def scenario():
        client, tap = new_client(socket_url, mode, f"?user_id={user}")
        async with client:
            with pytest.raises(PHXTopicError) as refused:
                await asyncio.wait_for(client.subscribe_to_topic(other), STEP_TIMEOUT_S)
            assert str(refused.value) == "unauthorized"
            assert other not in client.get_current_subscriptions()
            (join,) = tap.sent_on(other, v2)
            if v2:
                jr = join[0]
                assert join == [jr, jr, other, "phx_join", {}]
                assert_json_equal(tap.received_on(other, v2), [v2_reply(jr, jr, other, "error", {"reason": "unauthorized"})])
            else:
                assert_json_equal(tap.received_on(other, v2), [v1_reply(other, join["ref"], "error", {"reason": "unauthorized"})])

            # The socket's own notifications topic is allowed (connect param user_id).
            inbox, handler = recorder()
            await asyncio.wait_for(client.subscribe_to_topic(own, handler), STEP_TIMEOUT_S)
            assert client.is_topic_joined(own)
            await asyncio.wait_for(client.unsubscribe_from_topic(own), STEP_TIMEOUT_S)
            assert drain(inbox) == []

    run_bounded(scenario())


def test_v1_join_of_unmatched_topic_is_refused(socket_url):
    async def scenario():
        client, tap = new_client(socket_url, V1)
        async with client:
            with pytest.raises(PHXTopicError) as refused:
                await asyncio.wait_for(client.subscribe_to_topic("nope:1"), STEP_TIMEOUT_S)
            assert str(refused.value) == "unmatched topic"
            (join,) = tap.sent_on("nope:1", v2=False)
            assert_json_equal(tap.received_on("nope:1", v2=False), [v1_reply("nope:1", join["ref"], "error", {"reason": "unmatched topic"})])

    run_bounded(scenario())


def test_v2_join_of_unmatched_topic_reply_has_null_join_ref(socket_url):
    """Phoenix answers an unroutable join with join_ref null (spec §4.3 #7); this client drops
    frames whose join_ref is not its own, so the refusal surfaces as a join timeout."""

    async def scenario():
        client, tap = new_client(socket_url, V2, join_timeout_s=1.0)
        async with client:
            with pytest.raises(PHXTopicError) as refused:
                await asyncio.wait_for(client.subscribe_to_topic("nope:2"), STEP_TIMEOUT_S)
            assert "Timed out" in str(refused.value)
            (join,) = tap.sent_on("nope:2", v2=True)
            assert_json_equal(tap.received_on("nope:2", v2=True), [v2_reply(None, join[1], "nope:2", "error", {"reason": "unmatched topic"})])

    run_bounded(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_heartbeat_is_acknowledged(socket_url, mode):
    v2 = mode == V2

    async def scenario():
        acks: asyncio.Queue = asyncio.Queue()
        client, tap = new_client(socket_url, mode, heartbeat_interval_s=0.2, on_heartbeat_ack=lambda: acks.put_nowait(True))
        async with client:
            await next_item(acks, "first heartbeat ack")
            await next_item(acks, "second heartbeat ack")
            heartbeats = tap.sent_on("phoenix", v2)
            replies = tap.received_on("phoenix", v2)
            assert len(heartbeats) >= 2 and len(replies) >= 2
            for sent, got in zip(heartbeats, replies):
                if v2:
                    assert sent == [None, sent[1], "phoenix", "heartbeat", {}]
                    assert_json_equal(got, v2_reply(None, sent[1], "phoenix"))
                else:
                    assert sent == v1_frame("phoenix", "heartbeat", {}, sent["ref"])
                    assert_json_equal(got, v1_reply("phoenix", sent["ref"]))

    run_bounded(scenario())
