"""Supabase `realtime` 2.34.1 (PyPI; vsn 1.0.0, V1 objects) against the demo server.

Facts from the client's source (realtime/_async/client.py, channel.py, push.py, message.py):
- The URL given is the socket base; the client appends `/websocket` and adds
  `?apikey=<token>&vsn=1.0.0`.
- It heartbeats immediately on connect with `ref: null`, then every max(hb_interval, 15) s, and
  ignores the replies (there is no `phoenix` channel object to route them to).
- `client.channel(name)` always names the topic `realtime:<name>`; the demo server routes
  `realtime:*` to its Supabase-broadcast channel (Behaviours/RealtimeChannel.swift).
- Every server frame is validated against a fixed union of models (`ServerMessageAdapter`:
  phx_reply with status ok or error, phx_close, phx_error, broadcast, presence_state,
  presence_diff, postgres_changes, system, heartbeat); anything else is logged and dropped.

The `Tap` records, per client, every raw frame the client's receive loop reads together with the
result of realtime's own validator on it, and every message the client sends. Every test
asserts that realtime's validator rejected no frame.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from pydantic import ValidationError
from realtime import AsyncRealtimeClient
from realtime.message import ReplyMessage, ServerMessageAdapter
from realtime.types import ChannelStates, RealtimeSubscribeStates

from support import STEP_TIMEOUT_S, assert_json_equal, drain, next_item, run_bounded, wait_until

API_KEY = "interop-anon-key"


class Tap:
    def __init__(self) -> None:
        self.frames: list[tuple[Any, Any]] = []  # (decoded raw frame, realtime model or ValidationError)
        self.sent: list[Any] = []

    def on_topic(self, topic: str) -> list[Any]:
        return [raw for raw, _ in self.frames if raw.get("topic") == topic]

    def parsed_on_topic(self, topic: str) -> list[tuple[Any, Any]]:
        return [(raw, parsed) for raw, parsed in self.frames if raw.get("topic") == topic]

    def sent_on(self, topic: str) -> list[Any]:
        return [m for m in self.sent if m["topic"] == topic]

    def rejected(self) -> list[Any]:
        return [raw for raw, parsed in self.frames if isinstance(parsed, ValidationError)]


def new_client(base_url: str, token: str | None = API_KEY) -> tuple[AsyncRealtimeClient, Tap]:
    tap = Tap()
    client = AsyncRealtimeClient(
        f"{base_url}/socket", token=token, auto_reconnect=False, max_retries=1, timeout=int(STEP_TIMEOUT_S)
    )
    send = client.send

    async def recording_send(message):
        tap.sent.append(json.loads(message.model_dump_json()))
        await send(message)

    client.send = recording_send
    return client, tap


async def connect(client: AsyncRealtimeClient, tap: Tap) -> None:
    """Connects, tapping the new connection's `recv` before realtime starts its receive loop
    (`async for` over the websockets connection, which calls `recv` for every frame)."""
    on_connect = client._on_connect

    async def tapped_on_connect():
        ws = client._ws_connection
        assert ws is not None
        recv = ws.recv

        async def recording_recv(*args, **kwargs):
            raw = await recv(*args, **kwargs)
            try:
                parsed = ServerMessageAdapter.validate_json(raw)
            except ValidationError as exc:
                parsed = exc
            tap.frames.append((json.loads(raw), parsed))
            return raw

        ws.recv = recording_recv
        await on_connect()

    client._on_connect = tapped_on_connect
    await asyncio.wait_for(client.connect(), STEP_TIMEOUT_S)


async def shut_down(client: AsyncRealtimeClient) -> None:
    for channel in list(client.channels.values()):
        channel.rejoin_timer.reset()
        channel.join_push.destroy()
    await asyncio.wait_for(client.close(), STEP_TIMEOUT_S)


def v1_reply(topic, ref, status="ok", response=None):
    return {"topic": topic, "event": "phx_reply", "payload": {"status": status, "response": response or {}}, "ref": ref}


def joined_reply(topic: str, ref: str) -> dict:
    return v1_reply(topic, ref, "ok", {"postgres_changes": []})


def broadcast_frame(topic: str, event: str, payload: dict) -> dict:
    return {"topic": topic, "event": "broadcast", "payload": {"type": "broadcast", "event": event, "payload": payload}, "ref": None}


def channel_options(*, self_: bool = False, ack: bool = False, private: bool = False) -> dict:
    return {"config": {"broadcast": {"ack": ack, "self": self_}, "presence": {"key": "", "enabled": False}, "private": private}}


def status_recorder() -> tuple[asyncio.Queue, Any]:
    queue: asyncio.Queue = asyncio.Queue()

    def callback(status: RealtimeSubscribeStates, error: Exception | None) -> None:
        queue.put_nowait((status, None if error is None else str(error)))

    return queue, callback


def broadcast_recorder() -> tuple[asyncio.Queue, Any]:
    queue: asyncio.Queue = asyncio.Queue()
    return queue, lambda payload: queue.put_nowait(dict(payload))


def reply_recorder(push, queue: asyncio.Queue) -> None:
    push.receive("ok", lambda r: queue.put_nowait(("ok", r.model_dump()))).receive(
        "error", lambda r: queue.put_nowait(("error", r))
    )


def canon_sorted(frames: list[Any]) -> list[str]:
    return sorted(json.dumps(f, sort_keys=True) for f in frames)


# --------------------------------------------------------------------------------------------


def test_realtime_connects_to_socket_base_url_and_heartbeat_with_null_ref_is_answered(base_url):
    async def scenario():
        client, tap = new_client(base_url)
        assert client.endpoint_url() == f"{base_url}/socket/websocket?apikey={API_KEY}&vsn=1.0.0"
        try:
            await connect(client, tap)
            assert client.is_connected
            # The first heartbeat goes out at once, with ref null; the reply must echo null and
            # pass realtime's validation as a phx_reply with status ok.
            await wait_until(lambda: tap.on_topic("phoenix"), "the heartbeat reply")
            assert tap.sent[0] == {"event": "heartbeat", "payload": {}, "topic": "phoenix", "ref": None, "join_ref": None}
            (raw, parsed), = tap.parsed_on_topic("phoenix")
            assert_json_equal(raw, v1_reply("phoenix", None))
            assert isinstance(parsed, ReplyMessage), parsed
            assert parsed.ref is None and parsed.payload.status == "ok"
            assert tap.rejected() == []
        finally:
            await shut_down(client)

    run_bounded(scenario())


def test_realtime_join_ok_broadcast_push_reply_and_leave(base_url):
    name = f"chat-{uuid.uuid4().hex[:8]}"
    topic = f"realtime:{name}"

    async def scenario():
        a, tap_a = new_client(base_url)
        b, tap_b = new_client(base_url)
        try:
            await connect(a, tap_a)
            await connect(b, tap_b)

            # a: default options (broadcast self false, ack false); b: self true, ack true.
            chan_a = a.channel(name)
            chan_b = b.channel(name, channel_options(self_=True, ack=True))
            assert chan_a.topic == chan_b.topic == topic  # the client adds the realtime: prefix
            got_a, on_a = broadcast_recorder()
            got_b, on_b = broadcast_recorder()
            chan_a.on_broadcast("*", on_a)
            chan_b.on_broadcast("*", on_b)
            status_a, cb_a = status_recorder()
            status_b, cb_b = status_recorder()

            # Join ok: realtime validates the reply's postgres_changes list and reports SUBSCRIBED.
            await asyncio.wait_for(chan_a.subscribe(cb_a), STEP_TIMEOUT_S)
            await asyncio.wait_for(chan_b.subscribe(cb_b), STEP_TIMEOUT_S)
            assert await next_item(status_a, "a subscribed") == (RealtimeSubscribeStates.SUBSCRIBED, None)
            assert await next_item(status_b, "b subscribed") == (RealtimeSubscribeStates.SUBSCRIBED, None)
            assert chan_a.state == ChannelStates.JOINED and chan_b.state == ChannelStates.JOINED
            join_a, join_b = tap_a.sent_on(topic)[0], tap_b.sent_on(topic)[0]
            assert join_a == {
                "event": "phx_join",
                "payload": {
                    "config": {
                        "broadcast": {"ack": False, "self": False},
                        "presence": {"key": "", "enabled": False},
                        "private": False,
                        "postgres_changes": [],
                    },
                    "access_token": API_KEY,
                },
                "topic": topic,
                "ref": join_a["ref"],
                "join_ref": join_a["ref"],
            }
            assert tap_a.on_topic(topic) == [joined_reply(topic, join_a["ref"])]
            assert tap_b.on_topic(topic) == [joined_reply(topic, join_b["ref"])]

            # a broadcasts (self false, ack false): b gets it; a gets neither an echo nor a reply.
            await chan_a.send_broadcast("cursor", {"x": 1, "y": 2})
            # (realtime's BroadcastPayload model keeps event/payload/meta; the raw frames are checked below.)
            assert await next_item(got_b, "a's broadcast at b") == {"event": "cursor", "payload": {"x": 1, "y": 2}}
            sent_a = tap_a.sent_on(topic)[1]
            assert sent_a == {
                "event": "broadcast",
                "payload": {"type": "broadcast", "event": "cursor", "payload": {"x": 1, "y": 2}},
                "topic": topic,
                "ref": sent_a["ref"],
                "join_ref": join_a["ref"],
            }

            # b broadcasts (self true, ack true): a and b get it, and b's push is acknowledged ok.
            acks: asyncio.Queue = asyncio.Queue()
            reply_recorder(await chan_b.push("broadcast", {"type": "broadcast", "event": "shout", "payload": {"text": "hi"}}), acks)
            assert await next_item(acks, "ack for b's broadcast") == ("ok", {"postgres_changes": None})
            shout = {"event": "shout", "payload": {"text": "hi"}}
            assert await next_item(got_b, "b's own broadcast (self true)") == shout
            assert await next_item(got_a, "b's broadcast at a") == shout
            # a's own broadcast was published before b's: had it been echoed to a (or
            # acknowledged), that frame would have arrived before this one.
            assert drain(got_a) == []
            assert tap_a.on_topic(topic) == [joined_reply(topic, join_a["ref"]), broadcast_frame(topic, "shout", {"text": "hi"})]

            # An event the channel does not handle gets an error reply.
            reply_recorder(await chan_b.push("nonsense", {}), acks)
            assert await next_item(acks, "error reply") == ("error", {"reason": "unknown event"})
            ref_shout, ref_bad = tap_b.sent_on(topic)[1]["ref"], tap_b.sent_on(topic)[2]["ref"]
            frames_b = tap_b.on_topic(topic)
            assert frames_b[:2] == [joined_reply(topic, join_b["ref"]), broadcast_frame(topic, "cursor", {"x": 1, "y": 2})]
            # The reply to b's push and the broadcast it caused may come in either order.
            assert canon_sorted(frames_b[2:4]) == canon_sorted([v1_reply(topic, ref_shout), broadcast_frame(topic, "shout", {"text": "hi"})])
            assert frames_b[4:] == [v1_reply(topic, ref_bad, "error", {"reason": "unknown event"})]

            # a leaves: the ok reply closes the channel; phx_close (ref = a's join ref) follows.
            await asyncio.wait_for(chan_a.unsubscribe(), STEP_TIMEOUT_S)
            assert await next_item(status_a, "a closed") == (RealtimeSubscribeStates.CLOSED, None)
            assert chan_a.state == ChannelStates.CLOSED and topic not in a.channels
            leave = tap_a.sent_on(topic)[-1]
            assert leave == {"event": "phx_leave", "payload": {}, "topic": topic, "ref": leave["ref"], "join_ref": join_a["ref"]}
            await wait_until(lambda: len(tap_a.on_topic(topic)) >= 4, "a's leave reply and phx_close")
            assert tap_a.on_topic(topic)[2:] == [
                v1_reply(topic, leave["ref"]),
                {"topic": topic, "event": "phx_close", "payload": {}, "ref": join_a["ref"]},
            ]

            # Token refresh: realtime pushes `access_token` on every joined channel; like
            # Supabase's server, the channel accepts it without a reply.
            before_refresh = len(tap_b.on_topic(topic))
            await b.set_auth("rotated-token")
            refresh = tap_b.sent_on(topic)[-1]
            assert refresh == {"event": "access_token", "payload": {"access_token": "rotated-token"}, "topic": topic, "ref": refresh["ref"], "join_ref": join_b["ref"]}

            # After a's leave, b's broadcasts no longer reach a.
            reply_recorder(await chan_b.push("broadcast", {"type": "broadcast", "event": "after", "payload": {}}), acks)
            assert await next_item(acks, "ack after a left") == ("ok", {"postgres_changes": None})
            assert await next_item(got_b, "b's own last broadcast") == {"event": "after", "payload": {}}
            assert len(tap_a.on_topic(topic)) == 4 and drain(got_a) == []
            # b's frames are processed in order, so a reply to the token refresh would be here.
            after_ref = tap_b.sent_on(topic)[-1]["ref"]
            assert canon_sorted(tap_b.on_topic(topic)[before_refresh:]) == canon_sorted(
                [v1_reply(topic, after_ref), broadcast_frame(topic, "after", {})]
            )

            assert tap_a.rejected() == [] and tap_b.rejected() == []
        finally:
            await shut_down(a)
            await shut_down(b)

    run_bounded(scenario())


def test_realtime_join_refused_is_reported_as_channel_error_and_leave_closes_it(base_url):
    private_name = f"private-{uuid.uuid4().hex[:8]}"

    async def scenario():
        anon, tap = new_client(base_url, token=None)  # no apikey, so no access_token in joins
        authed, authed_tap = new_client(base_url)
        assert anon.endpoint_url() == f"{base_url}/socket/websocket?vsn=1.0.0"
        try:
            await connect(anon, tap)
            await connect(authed, authed_tap)
            cases = [
                # (channel name, options, topic, refusal reason)
                ("", None, "realtime:", "TopicNameRequired: a channel name is required"),
                (private_name, channel_options(private=True), f"realtime:{private_name}", "Unauthorized: private channels need an access token"),
            ]
            for name, options, topic, reason in cases:
                channel = anon.channel(name, options)
                assert channel.topic == topic
                statuses, callback = status_recorder()
                await asyncio.wait_for(channel.subscribe(callback), STEP_TIMEOUT_S)
                assert await next_item(statuses, f"subscribe status for {topic!r}") == (
                    RealtimeSubscribeStates.CHANNEL_ERROR, json.dumps({"reason": reason}),
                )
                assert channel.state == ChannelStates.ERRORED
                (join,) = tap.sent_on(topic)
                assert join["event"] == "phx_join" and join["ref"] == join["join_ref"] and "access_token" not in join["payload"]
                # Error reply only: no phx_close follows a refused join.
                assert tap.on_topic(topic) == [v1_reply(topic, join["ref"], "error", {"reason": reason})]

                # Leave before the 1 s rejoin timer fires: a leave for a topic that is not joined
                # is answered ok, which closes the channel on the client.
                await asyncio.wait_for(channel.unsubscribe(), STEP_TIMEOUT_S)
                assert await next_item(statuses, f"CLOSED for {topic!r}") == (RealtimeSubscribeStates.CLOSED, None)
                assert channel.state == ChannelStates.CLOSED and topic not in anon.channels
                leave = tap.sent_on(topic)[-1]
                assert leave["event"] == "phx_leave" and leave["payload"] == {}
                assert tap.on_topic(topic)[1:] == [v1_reply(topic, leave["ref"])]

            # The same private channel is accepted when the client has a token.
            channel = authed.channel(private_name, channel_options(private=True))
            statuses, callback = status_recorder()
            await asyncio.wait_for(channel.subscribe(callback), STEP_TIMEOUT_S)
            assert await next_item(statuses, "private channel with a token") == (RealtimeSubscribeStates.SUBSCRIBED, None)
            (join,) = authed_tap.sent_on(f"realtime:{private_name}")
            assert join["payload"]["access_token"] == API_KEY and join["payload"]["config"]["private"] is True
            assert authed_tap.on_topic(f"realtime:{private_name}") == [joined_reply(f"realtime:{private_name}", join["ref"])]

            assert tap.rejected() == [] and authed_tap.rejected() == []
        finally:
            await shut_down(anon)
            await shut_down(authed)

    run_bounded(scenario())
