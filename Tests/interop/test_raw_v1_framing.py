"""V1 (vsn 1.0.0) framing over a raw `websockets` connection (spec §4.1, §3, §2.3, §20.11-12).

Server frames must be JSON objects with exactly the keys topic, event, payload, ref (never
join_ref), refs must be echoed verbatim with their JSON type, and an unsupported vsn must be
refused with HTTP 403 before the upgrade.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from support import STEP_TIMEOUT_S, RawConn, assert_json_equal, assert_same_frames, run_bounded

V1_KEYS = {"topic", "event", "payload", "ref"}


def reply(topic, ref, status="ok", response=None):
    return {"topic": topic, "event": "phx_reply", "payload": {"status": status, "response": response or {}}, "ref": ref}


def push(topic, event, payload):
    return {"topic": topic, "event": event, "payload": payload, "ref": None}


def assert_v1_shape(conn: RawConn) -> None:
    for text, frame in zip(conn.raw, conn.received, strict=True):
        assert isinstance(frame, dict), f"V1 frame is not a JSON object: {text}"
        assert set(frame) == V1_KEYS, f"V1 frame keys {sorted(frame)} != {sorted(V1_KEYS)}: {text}"


@pytest.mark.parametrize("query", ["", "?vsn=1.0.0"], ids=["no-vsn", "vsn-1.0.0"])
def test_v1_frames_have_exactly_four_keys_and_refs_keep_their_type(socket_url, query):
    room = f"room:raw-v1-{uuid.uuid4().hex[:8]}"

    async def scenario():
        ann = await RawConn.open(socket_url + query, v2=False)
        bob = await RawConn.open(socket_url + "?vsn=2.0.0", v2=True)
        try:
            # Heartbeat with an integer ref, a string ref and a null ref (realtime-py style).
            await ann.send({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": 7})
            assert_json_equal(await ann.recv("heartbeat reply, ref 7"), reply("phoenix", 7))
            await ann.send({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "h2"})
            assert_json_equal(await ann.recv("heartbeat reply, ref h2"), reply("phoenix", "h2"))
            await ann.send({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": None})
            assert_json_equal(await ann.recv("heartbeat reply, ref null"), reply("phoenix", None))

            # Join with an integer ref and no join_ref key at all (phxsocket / chunnel style).
            await ann.send({"topic": room, "event": "phx_join", "payload": {"user": "ann"}, "ref": 1})
            assert_json_equal(await ann.recv("join reply"), reply(room, 1))

            # A V2 peer joins: ann (V1) gets user_joined as a V1 object.
            await bob.send(["1", "1", room, "phx_join", {"user": "bob"}])
            assert_json_equal(await bob.recv("bob's join reply"), ["1", "1", room, "phx_reply", {"status": "ok", "response": {}}])
            assert_json_equal(await ann.recv("user_joined"), push(room, "user_joined", {"user": "bob"}))

            # Push with an integer ref: reply echoes 2 (an integer); the broadcast has ref null.
            await ann.send({"topic": room, "event": "new_msg", "payload": {"body": "hello"}, "ref": 2})
            assert_same_frames(
                await ann.recv_n(2, "new_msg reply and broadcast"),
                [reply(room, 2), push(room, "new_msg", {"user": "ann", "body": "hello"})],
            )
            assert_json_equal(await bob.recv("broadcast at the V2 peer"), [None, None, room, "new_msg", {"user": "ann", "body": "hello"}])

            # Error reply, integer ref.
            await ann.send({"topic": room, "event": "new_msg", "payload": {}, "ref": 3})
            assert_json_equal(await ann.recv("error reply"), reply(room, 3, "error", {"reason": "body is required"}))

            # Nothing else is pending for ann.
            assert await ann.sync() == []

            # Leave with an integer ref: reply (ref 4), then phx_close. Phoenix stamps the channel
            # with the join's join_ref, falling back to the join's ref (Channel.Server.join:
            # `join_ref: join_ref || ref`), so phx_close carries ref 1 (the integer join ref).
            await ann.send({"topic": room, "event": "phx_leave", "payload": {}, "ref": 4})
            frames = await ann.recv_n(2, "leave reply and phx_close")
            assert_json_equal(frames[0], reply(room, 4), "leave reply (first)")
            assert_json_equal(frames[1], {"topic": room, "event": "phx_close", "payload": {}, "ref": 1}, "phx_close (second)")
            assert_json_equal(await bob.recv("user_left at the V2 peer"), [None, None, room, "user_left", {"user": "ann"}])

            # After the leave the topic is not joined any more.
            await ann.send({"topic": room, "event": "new_msg", "payload": {"body": "late"}, "ref": 5})
            assert_json_equal(await ann.recv("unmatched topic reply"), reply(room, 5, "error", {"reason": "unmatched topic"}))

            # Unroutable topic, integer ref.
            await ann.send({"topic": "nope:1", "event": "phx_join", "payload": {}, "ref": 6})
            assert_json_equal(await ann.recv("unmatched topic join reply"), reply("nope:1", 6, "error", {"reason": "unmatched topic"}))

            # A V1 client that does send join_ref (realtime-py style): phx_close carries it as ref.
            await ann.send({"topic": room, "event": "phx_join", "payload": {"user": "ann"}, "ref": "8", "join_ref": "8"})
            assert_json_equal(await ann.recv("second join reply"), reply(room, "8"))
            assert_json_equal(await bob.recv("user_joined again"), [None, None, room, "user_joined", {"user": "ann"}])
            await ann.send({"topic": room, "event": "phx_leave", "payload": {}, "ref": "9", "join_ref": "8"})
            frames = await ann.recv_n(2, "second leave reply and phx_close")
            assert_json_equal(frames[0], reply(room, "9"), "second leave reply")
            assert_json_equal(frames[1], {"topic": room, "event": "phx_close", "payload": {}, "ref": "8"}, "second phx_close")

            assert await ann.sync() == []
            assert_v1_shape(ann)
        finally:
            await ann.close()
            await bob.close()

    run_bounded(scenario())


def test_v1_ticker_broadcasts_are_four_key_objects(socket_url):
    async def scenario():
        conn = await RawConn.open(socket_url + "?vsn=1.0.0", v2=False)
        try:
            await conn.send({"topic": "ticker", "event": "phx_join", "payload": {}, "ref": 10})
            assert_json_equal(await conn.recv("ticker join reply"), reply("ticker", 10))
            first = await conn.recv("first tick", timeout=3.0)
            second = await conn.recv("second tick", timeout=3.0)
            count = first["payload"].get("count")
            assert isinstance(count, int) and not isinstance(count, bool) and count >= 1, first
            assert_json_equal(first, push("ticker", "tick", {"count": count}))
            assert_json_equal(second, push("ticker", "tick", {"count": count + 1}))
            assert_v1_shape(conn)
        finally:
            await conn.close()

    run_bounded(scenario())


async def _raw_upgrade_status(host: str, port: int, path: str) -> tuple[str, dict[str, str]]:
    """Sends a WebSocket upgrade request by hand and returns the status line and headers."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), STEP_TIMEOUT_S)
    try:
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "\r\n"
            ).encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT_S)
    finally:
        writer.close()
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


@pytest.mark.parametrize("vsn", ["2.1.0", "123.1.1", "2", "2.0"])
def test_unsupported_vsn_is_refused_with_403_before_upgrade(switchboard_server, socket_url, vsn):
    async def scenario():
        # As a WebSocket client sees it.
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(f"{socket_url}?vsn={vsn}", open_timeout=STEP_TIMEOUT_S):
                pass
        assert refused.value.response.status_code == 403

        # On the wire: a plain HTTP 403, no 101 and no Upgrade / Sec-WebSocket-Accept headers.
        status, headers = await _raw_upgrade_status("127.0.0.1", switchboard_server.port, f"/socket/websocket?vsn={vsn}")
        assert status.split(" ")[:2] == ["HTTP/1.1", "403"], status
        assert "upgrade" not in headers and "sec-websocket-accept" not in headers, headers

    run_bounded(scenario())


@pytest.mark.parametrize("vsn", ["1.0.0", "1.0.3"])
def test_supported_v1_vsn_is_accepted(socket_url, vsn):
    async def scenario():
        conn = await RawConn.open(f"{socket_url}?vsn={vsn}", v2=False)
        try:
            assert await conn.sync() == []
            assert_v1_shape(conn)
        finally:
            await conn.close()

    run_bounded(scenario())
