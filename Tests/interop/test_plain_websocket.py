"""Plain WebSocket channels of the standalone server, with Python `websockets` and `websocket-client`.

- `/ws/<topic>`: each message published to the topic arrives as its payload exactly; `?format=envelope`
  wraps it; refused topics get 403 with a JSON reason before the upgrade; clients cannot publish.
- `/chat/<room>?user=`: plain JSON chat sharing its rooms with the Phoenix `room:<room>` topics.
- The README examples (served by `switchboard-examples`): `/greet/<user>` (Celerity greeting) and
  `POST /todos` → `/todos/socket`.
"""
import asyncio
import json
import urllib.error
import urllib.request
import uuid

import pytest
import websocket  # websocket-client
import websockets

from conftest import API_KEY
from support import STEP_TIMEOUT_S, run_bounded


def post(url: str, body: dict, key: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def recv_json(ws, what: str):
    return json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT_S))


async def nothing_within(ws, seconds: float = 0.3) -> None:
    try:
        frame = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected frame {frame!r}")


def test_topic_subscriber_gets_payloads_exactly_and_envelopes_on_request(base_url, http_url):
    topic = f"public:prices-{uuid.uuid4().hex[:6]}"

    async def scenario():
        async with websockets.connect(f"{base_url}/ws/{topic}") as raw, websockets.connect(f"{base_url}/ws/{topic}?format=envelope") as env:
            # Subscriptions happen right after the upgrade; wait until both are counted by the API.
            for _ in range(100):
                req = urllib.request.Request(f"{http_url}/api/topics/{topic}", headers={"Authorization": f"Bearer {API_KEY}"})
                with urllib.request.urlopen(req, timeout=STEP_TIMEOUT_S) as response:
                    if json.loads(response.read())["subscribers"] == 2:
                        break
                await asyncio.sleep(0.02)
            status = await asyncio.to_thread(post, f"{http_url}/api/broadcast", {"topic": topic, "event": "price", "payload": {"sym": "ABC", "p": 12.5}}, API_KEY)
            assert status == 202
            assert await recv_json(raw, "raw payload") == {"sym": "ABC", "p": 12.5}
            assert await recv_json(env, "envelope") == {"event": "price", "payload": {"sym": "ABC", "p": 12.5}}
            # Clients cannot publish into the topic: an error answer, and the connection stays open.
            await raw.send(json.dumps({"p": 1}))
            error = await recv_json(raw, "read-only error")
            assert error["error"]["code"] == "read_only"
            await nothing_within(env)

    run_bounded(scenario())


@pytest.mark.parametrize("path,reason", [("/ws/secret:stuff", "unknown topic secret:stuff"), ("/ws/notifications:9", "unauthorized")])
def test_refused_topics_get_403_with_a_json_reason(base_url, path, reason):
    async def scenario():
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(f"{base_url}{path}", open_timeout=STEP_TIMEOUT_S)
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body) == {"error": reason}

    run_bounded(scenario())


def test_own_notifications_topic_is_allowed(base_url, http_url):
    async def scenario():
        async with websockets.connect(f"{base_url}/ws/notifications:9?user_id=9") as ws:
            await asyncio.sleep(0.1)
            status = await asyncio.to_thread(post, f"{http_url}/api/broadcast", {"topic": "notifications:9", "event": "note", "payload": {"text": "hi 9"}}, API_KEY)
            assert status == 202
            assert await recv_json(ws, "notification") == {"text": "hi 9"}

    run_bounded(scenario())


def test_plain_chat_and_phoenix_room_are_the_same_room(base_url):
    room = f"r{uuid.uuid4().hex[:6]}"

    async def scenario():
        async with websockets.connect(f"{base_url}/chat/{room}?user=ann") as ann:
            assert await recv_json(ann, "own joined") == {"type": "joined", "user": "ann"}
            async with websockets.connect(f"{base_url}/socket/websocket?vsn=2.0.0") as phx:
                await phx.send(json.dumps(["1", "1", f"room:{room}", "phx_join", {"user": "phx"}]))
                assert json.loads(await phx.recv()) == ["1", "1", f"room:{room}", "phx_reply", {"status": "ok", "response": {}}]
                assert await recv_json(ann, "phoenix user joined") == {"type": "joined", "user": "phx"}
                async with websockets.connect(f"{base_url}/chat/{room}?user=bob") as bob:
                    assert await recv_json(bob, "bob joined (own)") == {"type": "joined", "user": "bob"}
                    assert await recv_json(ann, "bob joined") == {"type": "joined", "user": "bob"}
                    assert json.loads(await phx.recv()) == [None, None, f"room:{room}", "user_joined", {"user": "bob"}]
                    # Plain message: everyone in the room, sender included, each in its own format.
                    await ann.send(json.dumps({"body": "hello"}))
                    for ws in (ann, bob):
                        assert await recv_json(ws, "plain message") == {"type": "message", "user": "ann", "body": "hello"}
                    assert json.loads(await phx.recv()) == [None, None, f"room:{room}", "new_msg", {"user": "ann", "body": "hello"}]
                    # Phoenix message reaches the plain clients.
                    await phx.send(json.dumps(["1", "2", f"room:{room}", "new_msg", {"body": "yo"}]))
                    for ws in (ann, bob):
                        assert await recv_json(ws, "phoenix message") == {"type": "message", "user": "phx", "body": "yo"}
                    # Bad input: error to the sender only.
                    await bob.send("not json")
                    assert await recv_json(bob, "invalid json") == {"type": "error", "reason": "invalid JSON"}
                    await bob.send(json.dumps({"text": "no body"}))
                    assert await recv_json(bob, "missing body") == {"type": "error", "reason": "body is required"}
                # bob disconnected: left, for plain and Phoenix clients.
                assert await recv_json(ann, "bob left") == {"type": "left", "user": "bob"}
                frames = [json.loads(await phx.recv()) for _ in range(3)]
                assert frames[-1] == [None, None, f"room:{room}", "user_left", {"user": "bob"}], frames


    run_bounded(scenario())


def test_greeting_example_with_websocket_client(examples_url):
    ws = websocket.create_connection(f"{examples_url}/greet/carol", timeout=STEP_TIMEOUT_S)
    try:
        ws.send(json.dumps({"name": "Alice"}))
        assert json.loads(ws.recv()) == {"greeting": "Hello, Alice", "from": "carol"}
        ws.send(json.dumps({"nom": "Alice"}))
        error = json.loads(ws.recv())
        assert error["error"]["code"] == "invalid_message"
        ws.send(json.dumps({"name": "Bob"}))
        assert json.loads(ws.recv()) == {"greeting": "Hello, Bob", "from": "carol"}
        # ping/pong at the WebSocket level
        ws.ping(b"x")
        opcode, data = ws.recv_data_frame(True)[0], None
        assert opcode == websocket.ABNF.OPCODE_PONG
    finally:
        ws.close()


def test_todo_broadcast_from_a_post_route(examples_url, examples_http_url):
    async def scenario():
        async with websockets.connect(f"{examples_url}/todos/socket") as a, websockets.connect(f"{examples_url}/todos/socket") as b:
            await asyncio.sleep(0.1)
            status = await asyncio.to_thread(post, f"{examples_http_url}/todos", {"title": "buy milk"})
            assert status == 201
            first = await recv_json(a, "todo at a")
            assert first["title"] == "buy milk" and isinstance(first["id"], int)
            assert await recv_json(b, "todo at b") == first

    run_bounded(scenario())


def test_public_namespace_phoenix_and_plain_subscribers_get_the_same_broadcast(base_url, http_url):
    topic = f"public:mixed{uuid.uuid4().hex[:6]}"

    async def scenario():
        async with websockets.connect(f"{base_url}/socket/websocket?vsn=2.0.0") as phx, websockets.connect(f"{base_url}/ws/{topic}") as plain:
            await phx.send(json.dumps(["1", "1", topic, "phx_join", {}]))
            assert json.loads(await phx.recv()) == ["1", "1", topic, "phx_reply", {"status": "ok", "response": {}}]
            # Clients cannot publish into public:*.
            await phx.send(json.dumps(["1", "2", topic, "anything", {}]))
            assert json.loads(await phx.recv()) == ["1", "2", topic, "phx_reply", {"status": "error", "response": {"reason": f"read only: only the server publishes to {topic}"}}]
            for _ in range(100):
                req = urllib.request.Request(f"{http_url}/api/topics/{topic}", headers={"Authorization": f"Bearer {API_KEY}"})
                with urllib.request.urlopen(req, timeout=STEP_TIMEOUT_S) as response:
                    if json.loads(response.read())["subscribers"] == 2:
                        break
                await asyncio.sleep(0.02)
            status = await asyncio.to_thread(post, f"{http_url}/api/broadcast", {"topic": topic, "event": "tick", "payload": {"v": 1}}, API_KEY)
            assert status == 202
            assert json.loads(await phx.recv()) == [None, None, topic, "tick", {"v": 1}]
            assert await recv_json(plain, "plain") == {"v": 1}

    run_bounded(scenario())
