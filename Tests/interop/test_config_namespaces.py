"""Namespaces from a config file, against the real binary: unknown namespaces refused on every
transport (Phoenix join, plain /ws, SSE, HTTP API 422), join rules (anyone, authenticated, token,
owner), client publishing allowed or refused per namespace (Phoenix and plain /ws clients), a
built-in behaviour (chat) under another prefix, and the origin allow-list."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
import websockets

from config_server import server, write_config
from support import STEP_TIMEOUT_S, run_bounded

SECRET = "interop-namespace-secret-0123456789"
API_KEY = "ns-key"
CONFIG = {
    "api_key": API_KEY,
    "allowed_origins": ["https://app.example.test", "//localhost"],
    "jwt": {"secret": SECRET},
    "namespaces": {
        "chat:*": {"channel": "chat", "publish": True},
        "feed:*": {"publish": True},
        "news:*": {},
        "inbox:": {"join": "owner"},
        "members:*": {"join": "authenticated", "publish": True},
        "vip:*": {"join": "token"},
        "status": {"presence": True, "history": {"size": 10, "ttl": 60}},
    },
}


def token(sub: str, **claims) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 300, **claims}, SECRET, algorithm="HS256")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def ns_server(tmp_path_factory) -> Iterator:
    directory: Path = tmp_path_factory.mktemp("ns")
    with server(["--config", str(write_config(directory, CONFIG))]) as srv:
        yield srv


@pytest.fixture(scope="module")
def ws_url(ns_server) -> str:
    return f"ws://127.0.0.1:{ns_server.port}"


@pytest.fixture(scope="module")
def http_base(ns_server) -> str:
    return f"http://127.0.0.1:{ns_server.port}"


def api_post(base: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/api/broadcast", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Phx:
    """A minimal Phoenix V2 client over `websockets`: numbered refs, frames read in order."""

    def __init__(self, ws):
        self.ws = ws
        self.ref = 0

    async def send(self, topic: str, event: str, payload: dict, join_ref: str | None = None) -> str:
        self.ref += 1
        ref = str(self.ref)
        await self.ws.send(json.dumps([join_ref if join_ref is not None else ref if event == "phx_join" else None, ref, topic, event, payload]))
        return ref

    async def recv(self) -> list:
        return json.loads(await asyncio.wait_for(self.ws.recv(), STEP_TIMEOUT_S))

    async def reply(self, ref: str) -> dict:
        """The reply to `ref` (other frames before it are skipped)."""
        while True:
            frame = await self.recv()
            if frame[3] == "phx_reply" and frame[1] == ref:
                return frame[4]

    async def join(self, topic: str, payload: dict | None = None) -> dict:
        return await self.reply(await self.send(topic, "phx_join", payload or {}))

    async def next_event(self, event: str) -> list:
        while True:
            frame = await self.recv()
            if frame[3] == event:
                return frame


def connect(ws_url: str, params: str = ""):
    return websockets.connect(f"{ws_url}/socket/websocket?vsn=2.0.0{params}", open_timeout=STEP_TIMEOUT_S)


async def quiet(ws, seconds: float = 0.3) -> None:
    try:
        frame = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected frame {frame!r}")


# --- Unknown namespaces -------------------------------------------------------------------------


def test_unknown_namespace_join_is_refused(ws_url):
    async def scenario():
        async with connect(ws_url) as ws:
            phx = Phx(ws)
            assert await phx.join("nowhere:1") == {"status": "error", "response": {"reason": "unknown namespace"}}
            # The bare prefix is not in `chat:*` either; an exact namespace is only that topic.
            assert await phx.join("chat") == {"status": "error", "response": {"reason": "unknown namespace"}}
            assert await phx.join("status:x") == {"status": "error", "response": {"reason": "unknown namespace"}}
            joined = await phx.join("status")  # history on: the reply carries the stream's position
            assert joined["status"] == "ok" and joined["response"]["position"]["offset"] == 0

    run_bounded(scenario())


def test_unknown_namespace_on_plain_websocket_and_sse_is_403(ws_url, http_base):
    async def scenario():
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(f"{ws_url}/ws/nowhere:1", open_timeout=STEP_TIMEOUT_S)
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body) == {"error": "unknown namespace"}
        async with httpx.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
            response = await http.get(f"{http_base}/events", params={"topics": "nowhere:1"})
            assert response.status_code == 403
            assert response.json() == {"error": "unknown namespace", "topic": "nowhere:1"}

    run_bounded(scenario())


def test_http_api_refuses_unknown_namespace_with_422(http_base):
    assert api_post(http_base, {"topic": "nowhere:1", "event": "e", "payload": {}}) == (
        422, {"error": {"code": "unknown_namespace", "message": "topic nowhere:1 is in no namespace"}})
    # A batch is refused whole when one topic is unknown.
    status, body = api_post(http_base, {"messages": [{"topic": "news:1", "event": "e"}, {"topic": "nowhere:2", "event": "e"}]})
    assert (status, body["error"]["code"]) == (422, "unknown_namespace")
    assert api_post(http_base, {"topic": "news:1", "event": "e", "payload": {}}) == (202, {"published": 1})


# --- Publishing ---------------------------------------------------------------------------------


def test_generic_namespace_rebroadcasts_client_events_when_publish_is_allowed(ws_url):
    topic = unique("feed:")

    async def scenario():
        async with connect(ws_url) as a, connect(ws_url) as b:
            pa, pb = Phx(a), Phx(b)
            assert (await pa.join(topic))["status"] == "ok"
            assert (await pb.join(topic))["status"] == "ok"
            ref = await pa.send(topic, "update", {"n": 1}, join_ref="1")
            # The sender gets its ok reply and the broadcast; the other member gets the broadcast.
            frames = [await pa.recv(), await pa.recv()]
            assert sorted(frames, key=lambda f: f[3]) == [
                ["1", ref, topic, "phx_reply", {"status": "ok", "response": {}}],
                [None, None, topic, "update", {"n": 1}],
            ]
            assert await pb.recv() == [None, None, topic, "update", {"n": 1}]
            # Reserved events are refused.
            ref = await pa.send(topic, "phx_custom", {}, join_ref="1")
            assert await pa.reply(ref) == {"status": "error", "response": {"reason": "event phx_custom is reserved"}}

    run_bounded(scenario())


def test_read_only_namespace_refuses_client_events(ws_url, http_base):
    topic = unique("news:")

    async def scenario():
        async with connect(ws_url) as a:
            pa = Phx(a)
            assert (await pa.join(topic))["status"] == "ok"
            ref = await pa.send(topic, "update", {"n": 1}, join_ref="1")
            assert await pa.reply(ref) == {"status": "error", "response": {"reason": f"read only: only the server publishes to {topic}"}}
            await quiet(a)
            # The server (HTTP API) publishes.
            assert (await asyncio.to_thread(api_post, http_base, {"topic": topic, "event": "headline", "payload": {"t": "x"}}))[0] == 202
            assert await pa.recv() == [None, None, topic, "headline", {"t": "x"}]

    run_bounded(scenario())


def test_plain_websocket_publishes_where_the_namespace_allows(ws_url):
    topic = unique("feed:")

    async def scenario():
        async with websockets.connect(f"{ws_url}/ws/{topic}") as raw, websockets.connect(f"{ws_url}/ws/{topic}?format=envelope") as env, connect(ws_url) as phx_ws:
            phx = Phx(phx_ws)
            assert (await phx.join(topic))["status"] == "ok"
            await asyncio.sleep(0.2)  # plain subscriptions happen right after the upgrade
            await raw.send(json.dumps({"price": 1}))
            assert json.loads(await asyncio.wait_for(raw.recv(), STEP_TIMEOUT_S)) == {"price": 1}  # sender included
            assert json.loads(await asyncio.wait_for(env.recv(), STEP_TIMEOUT_S)) == {"event": "message", "payload": {"price": 1}}
            assert await phx.recv() == [None, None, topic, "message", {"price": 1}]
            # An envelope names the event.
            await env.send(json.dumps({"event": "quote", "payload": {"p": 2}}))
            assert json.loads(await asyncio.wait_for(raw.recv(), STEP_TIMEOUT_S)) == {"p": 2}
            assert await phx.recv() == [None, None, topic, "quote", {"p": 2}]
            # Not a JSON object: an error to the sender only.
            await raw.send("[1, 2]")
            error = json.loads(await asyncio.wait_for(raw.recv(), STEP_TIMEOUT_S))
            assert error["error"]["code"] == "invalid_message", error
            await quiet(phx_ws)

    run_bounded(scenario())


def test_plain_websocket_is_read_only_elsewhere(ws_url):
    topic = unique("news:")

    async def scenario():
        async with websockets.connect(f"{ws_url}/ws/{topic}") as raw:
            await raw.send(json.dumps({"p": 1}))
            error = json.loads(await asyncio.wait_for(raw.recv(), STEP_TIMEOUT_S))
            assert error["error"]["code"] == "read_only", error

    run_bounded(scenario())


def test_chat_behaviour_under_its_own_prefix(ws_url):
    topic = unique("chat:")

    async def scenario():
        async with connect(ws_url) as a, connect(ws_url) as b:
            pa, pb = Phx(a), Phx(b)
            assert (await pa.join(topic, {"user": "ann"}))["status"] == "ok"
            assert (await pb.join(topic, {"user": "bob"}))["status"] == "ok"
            assert await pa.next_event("user_joined") == [None, None, topic, "user_joined", {"user": "bob"}]
            ref = await pb.send(topic, "new_msg", {"body": "hi"}, join_ref="1")
            assert await pa.next_event("new_msg") == [None, None, topic, "new_msg", {"user": "bob", "body": "hi"}]
            assert await pb.reply(ref) == {"status": "ok", "response": {}}

    run_bounded(scenario())


# --- Join rules ---------------------------------------------------------------------------------


def test_owner_rule(ws_url):
    async def scenario():
        async with connect(ws_url, f"&token={token('alice')}") as ws:
            phx = Phx(ws)
            assert await phx.join("inbox:alice") == {"status": "ok", "response": {}}
            assert await phx.join("inbox:bob") == {"status": "error", "response": {"reason": "unauthorized"}}
        # Anonymous, and a user_id param is not an identity when tokens are verified.
        async with connect(ws_url, "&user_id=alice") as ws:
            assert await Phx(ws).join("inbox:alice") == {"status": "error", "response": {"reason": "unauthorized"}}

    run_bounded(scenario())


def test_authenticated_rule(ws_url):
    async def scenario():
        async with connect(ws_url) as ws:
            assert await Phx(ws).join("members:1") == {"status": "error", "response": {"reason": "unauthorized: a valid token is required"}}
        async with connect(ws_url, f"&token={token('carol')}") as ws:
            assert await Phx(ws).join("members:1") == {"status": "ok", "response": {}}

    run_bounded(scenario())


def test_token_rule_and_topics_claim(ws_url):
    async def scenario():
        async with connect(ws_url, f"&token={token('dave')}") as ws:
            # No channels claim: the token rule refuses.
            assert await Phx(ws).join("vip:a") == {"status": "error", "response": {"reason": "topic not allowed by token"}}
        async with connect(ws_url, f"&token={token('erin', channels=['vip:a', 'feed:*'])}") as ws:
            phx = Phx(ws)
            assert await phx.join("vip:a") == {"status": "ok", "response": {}}
            assert await phx.join("vip:b") == {"status": "error", "response": {"reason": "topic not allowed by token"}}
            # The claim restricts every namespace: news:* is open to anyone, but not listed.
            assert await phx.join("news:1") == {"status": "error", "response": {"reason": "topic not allowed by token"}}
            assert await phx.join(unique("feed:")) == {"status": "ok", "response": {}}

    run_bounded(scenario())


# --- Origins ------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin,allowed", [
    ("https://app.example.test", True),
    ("http://localhost:3000", True),
    ("https://evil.example.test", False),
    ("http://app.example.test", False),  # the scheme is part of the pattern
])
def test_configured_origin_allow_list(ws_url, origin, allowed):
    async def scenario():
        for path in ("/socket/websocket?vsn=2.0.0", "/ws/news:1"):
            if allowed:
                async with websockets.connect(f"{ws_url}{path}", origin=origin, open_timeout=STEP_TIMEOUT_S):
                    pass
            else:
                with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                    await websockets.connect(f"{ws_url}{path}", origin=origin, open_timeout=STEP_TIMEOUT_S)
                assert refused.value.response.status_code == 403, path

    run_bounded(scenario())


@pytest.mark.parametrize("origin,allowed", [
    ("http://localhost:8080", True),
    ("http://127.0.0.1:5173", True),
    ("https://evil.example.test", False),
])
def test_default_origins_of_the_demo_server(base_url, origin, allowed):
    async def scenario():
        if allowed:
            async with websockets.connect(f"{base_url}/socket/websocket?vsn=2.0.0", origin=origin, open_timeout=STEP_TIMEOUT_S):
                pass
        else:
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                await websockets.connect(f"{base_url}/socket/websocket?vsn=2.0.0", origin=origin, open_timeout=STEP_TIMEOUT_S)
            assert refused.value.response.status_code == 403
            assert json.loads(refused.value.response.body) == {"error": "origin not allowed"}

    run_bounded(scenario())
