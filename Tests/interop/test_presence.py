"""Presence in the standalone server (namespace option `presence`), over real sockets.

A server with a config file: `lobby:*` (presence true, clients may publish), `count:*`
(presence count), `grace:*` (presence true, presence_grace 1 s), `realtime:*` (Supabase
behaviour with presence: clients track themselves), `plain:*` (no presence). JWT is off, so the
`user_id` connect param names the user.

Clients: raw `websockets` (V2 arrays, V1 objects), long-poll and SSE sessions scripted with
httpx, and Supabase's realtime-py 2.34.1 (which renames `phx_ref` to `presence_ref`).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from realtime import AsyncRealtimeClient

from config_server import server, write_config
from support import STEP_TIMEOUT_S, RawConn, run_bounded, wait_until
from test_longpoll import LongPoll

KEY = "presence-test-key"
CONFIG = {
    "api_key": KEY,
    "namespaces": {
        "lobby:*": {"presence": True, "publish": True},
        "count:*": {"presence": "count"},
        "grace:*": {"presence": True, "presence_grace": 1},
        "realtime:*": {"channel": "realtime", "presence": True},
        "plain:*": {},
    },
}


@pytest.fixture(scope="module")
def presence_server(tmp_path_factory) -> Iterator:
    with server(["--config", str(write_config(tmp_path_factory.mktemp("presence"), CONFIG))]) as srv:
        yield srv


@pytest.fixture(scope="module")
def ws_base(presence_server) -> str:
    return f"ws://127.0.0.1:{presence_server.port}"


@pytest.fixture(scope="module")
def http_base(presence_server) -> str:
    return f"http://127.0.0.1:{presence_server.port}"


def api(http_base: str, path: str) -> Any:
    request = urllib.request.Request(f"{http_base}{path}", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
        assert response.status == 200
        return json.loads(response.read())


def presence_api(http_base: str, topic: str, count: bool = False) -> Any:
    return api(http_base, f"/api/topics/{urllib.parse.quote(topic, safe='')}/presence" + ("?count=1" if count else ""))


class Phx(RawConn):
    """A V2 raw client that also replays presence as phoenix.js does (joins before leaves, by phx_ref)."""

    refs = 0

    @classmethod
    async def connect(cls, ws_base: str, user: str | None = None, v2: bool = True) -> "Phx":
        query = {"vsn": "2.0.0" if v2 else "1.0.0"}
        if user is not None:
            query["user_id"] = user
        return await cls.open(f"{ws_base}/socket/websocket?{urllib.parse.urlencode(query)}", v2)

    def next_ref(self) -> str:
        Phx.refs += 1
        return str(Phx.refs)

    async def join(self, topic: str, payload: dict | None = None) -> tuple[str, dict]:
        ref = self.next_ref()
        await self.send([ref, ref, topic, "phx_join", payload or {}])
        frames = await self.recv_until(lambda f: f[3] == "phx_reply" and f[1] == ref, f"join reply for {topic}")
        return ref, frames[-1][4]

    async def push(self, topic: str, join_ref: str, event: str, payload: dict) -> dict:
        ref = self.next_ref()
        await self.send([join_ref, ref, topic, event, payload])
        frames = await self.recv_until(lambda f: f[3] == "phx_reply" and f[1] == ref, f"reply to {event}")
        return frames[-1][4]

    async def pump(self, seconds: float) -> None:
        """Reads whatever arrives for `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            try:
                await self.recv("anything", remaining)
            except AssertionError:
                return

    async def until(self, predicate, what: str, timeout: float = STEP_TIMEOUT_S) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {self.raw}")
            try:
                await self.recv(what, min(remaining, 0.2))
            except AssertionError:
                pass

    def frames(self, topic: str, event: str) -> list[list]:
        return [f for f in self.received if f[2] == topic and f[3] == event]

    def replay(self, topic: str) -> dict[str, set[str]]:
        state: dict[str, set[str]] = {}
        for f in self.received:
            if f[2] != topic:
                continue
            if f[3] == "presence_state":
                state = {k: {m["phx_ref"] for m in v["metas"]} for k, v in f[4].items()}
            elif f[3] == "presence_diff":
                for k, v in f[4]["joins"].items():
                    state.setdefault(k, set()).update(m["phx_ref"] for m in v["metas"])
                for k, v in f[4]["leaves"].items():
                    state.get(k, set()).difference_update(m["phx_ref"] for m in v["metas"])
                    if k in state and not state[k]:
                        del state[k]
        return state


def test_state_after_join_reply_then_diffs_multi_tab_update_and_disconnect(ws_base, http_base):
    async def scenario():
        topic = f"lobby:{time.monotonic_ns()}"
        ana = await Phx.connect(ws_base, "ana")
        ref, reply = await ana.join(topic, {"presence_meta": {"device": "web"}})
        assert reply == {"status": "ok", "response": {}}
        # The first frame after the join reply is presence_state, pushed with the join's join_ref.
        state = await ana.recv("presence_state")
        assert state[:4] == [ref, None, topic, "presence_state"], state
        await ana.until(lambda: "ana" in ana.replay(topic), "ana in her own presence")

        bob1 = await Phx.connect(ws_base, "bob")
        bob_ref, _ = await bob1.join(topic, {"presence_meta": {"device": "phone"}})
        bob2 = await Phx.connect(ws_base, "bob", v2=False)  # a second tab of bob's, V1
        await bob2.send({"topic": topic, "event": "phx_join", "payload": {}, "ref": "j"})
        await ana.until(lambda: len(ana.replay(topic).get("bob", ())) == 2, "bob's two tabs")
        diffs = ana.frames(topic, "presence_diff")
        assert all(d[0] is None and d[1] is None for d in diffs)
        assert all(set(d[4]) == {"joins", "leaves"} for d in diffs)
        raw_diff = next(r for r in ana.raw if '"presence_diff"' in r and '"bob"' in r)
        assert raw_diff.startswith(f'[null,null,"{topic}","presence_diff",{{"joins":{{"bob":{{"metas":[{{'), raw_diff
        metas = [m for d in diffs for m in d[4]["joins"].get("bob", {}).get("metas", [])]
        assert {m["transport"] for m in metas} == {"websocket"}
        assert any(m.get("device") == "phone" for m in metas)
        assert all(isinstance(m["online_at"], int) and abs(m["online_at"] / 1000 - time.time()) < 60 for m in metas)
        assert all(isinstance(m["phx_ref"], str) and m["phx_ref"] for m in metas)

        listed = presence_api(http_base, topic)
        assert (listed["topic"], listed["users"], listed["connections"]) == (topic, 2, 3)
        assert sorted(listed["presences"]) == ["ana", "bob"] and len(listed["presences"]["bob"]["metas"]) == 2
        assert presence_api(http_base, topic, count=True) == {"topic": topic, "users": 2, "connections": 3}
        topics = {t["topic"]: t for t in api(http_base, "/api/topics")["topics"]}
        assert (topics[topic]["subscribers"], topics[topic]["users"], topics[topic]["connections"]) == (3, 2, 3)
        one = api(http_base, f"/api/topics/{urllib.parse.quote(topic, safe='')}")
        assert (one["users"], one["connections"]) == (2, 3)

        # presence_update: one diff with bob in joins (new ref, phx_ref_prev) and in leaves (old meta).
        before = len(ana.frames(topic, "presence_diff"))
        old = next(m for d in diffs for m in d[4]["joins"].get("bob", {}).get("metas", []) if m.get("device") == "phone")
        assert await bob1.push(topic, bob_ref, "presence_update", {"meta": {"device": "phone", "status": "away"}}) == {"status": "ok", "response": {}}
        await ana.until(lambda: len(ana.frames(topic, "presence_diff")) > before, "the update's diff")
        update = ana.frames(topic, "presence_diff")[before][4]
        [new] = update["joins"]["bob"]["metas"]
        assert new["status"] == "away" and new["phx_ref_prev"] == old["phx_ref"] and new["phx_ref"] != old["phx_ref"]
        assert new["online_at"] == old["online_at"] and new["transport"] == "websocket"
        assert update["leaves"]["bob"]["metas"] == [old]
        assert len(ana.replay(topic)["bob"]) == 2
        assert (await bob1.push(topic, bob_ref, "presence_update", {"meta": 3}))["status"] == "error"

        # Bob's tabs close: his key stays until the last one goes.
        await bob1.close()
        await ana.until(lambda: len(ana.replay(topic).get("bob", ())) == 1, "one tab of bob's left")
        await bob2.close()
        await ana.until(lambda: "bob" not in ana.replay(topic), "bob gone")
        await wait_until(lambda: presence_api(http_base, topic)["users"] == 1, "the API shows ana alone")
        await ana.close()
        await wait_until(lambda: presence_api(http_base, topic) == {"topic": topic, "users": 0, "connections": 0, "presences": {}}, "empty topic")

    run_bounded(scenario())


def test_rejoin_gets_a_fresh_state_and_bad_metas_are_refused(ws_base, http_base):
    async def scenario():
        topic = f"lobby:{time.monotonic_ns()}"
        carl = await Phx.connect(ws_base, "carl")
        first, _ = await carl.join(topic)
        second, _ = await carl.join(topic)  # a rejoin of the same topic
        await carl.until(lambda: len(carl.frames(topic, "presence_state")) == 2, "two snapshots")
        assert [f[0] for f in carl.frames(topic, "presence_state")] == [first, second]
        await wait_until(lambda: presence_api(http_base, topic)["connections"] == 1, "one meta after the rejoin")

        dora = await Phx.connect(ws_base, "dora")
        _, refused = await dora.join(topic, {"presence_meta": {"blob": "x" * 5000}})
        assert refused == {"status": "error", "response": {"reason": "meta too large"}}
        _, refused = await dora.join(topic, {"presence_meta": ["not", "an", "object"]})
        assert refused == {"status": "error", "response": {"reason": "presence_meta must be an object"}}
        _, accepted = await dora.join(topic, {"presence_meta": {"blob": "x" * 3500, "key": "__proto__", "name": "Zoë 🚀"}})
        assert accepted["status"] == "ok"
        await carl.until(lambda: "dora" in carl.replay(topic), "dora's join")
        metas = presence_api(http_base, topic)["presences"]["dora"]["metas"]
        assert metas[0]["name"] == "Zoë 🚀" and len(metas[0]["blob"]) == 3500
        await carl.close()
        await dora.close()

    run_bounded(scenario())


def test_count_only_namespace_sends_presence_count_and_never_lists(ws_base, http_base):
    async def scenario():
        topic = f"count:{time.monotonic_ns()}"
        watcher = await Phx.connect(ws_base, "watcher")
        joined_at = time.monotonic()
        await watcher.join(topic)
        await watcher.until(lambda: watcher.frames(topic, "presence_count"), "the first presence_count")
        assert time.monotonic() - joined_at < 1.0
        others = [await Phx.connect(ws_base, f"u{i % 3}") for i in range(6)]
        for other in others:
            await other.join(topic)
        await watcher.until(lambda: watcher.frames(topic, "presence_count")[-1][4] == {"users": 4, "connections": 7}, "4 users, 7 connections")
        counts = watcher.frames(topic, "presence_count")
        assert all(c[0] is None for c in counts[1:])  # broadcasts after the joiner's own
        for a, b in zip(counts, counts[1:]):
            assert a[4] != b[4], "a count is sent only when it changed"
        await watcher.pump(1.2)
        assert len(watcher.frames(topic, "presence_count")) == len(counts), "nothing changed, nothing sent"
        assert not watcher.frames(topic, "presence_state") and not watcher.frames(topic, "presence_diff")
        assert presence_api(http_base, topic)["users"] == 4 and len(presence_api(http_base, topic)["presences"]) == 4
        for other in others:
            await other.close()
        await watcher.until(lambda: watcher.frames(topic, "presence_count")[-1][4] == {"users": 1, "connections": 1}, "only the watcher")
        await watcher.close()

    run_bounded(scenario())


def test_grace_period_hides_a_reload_and_delays_a_real_leave(ws_base, http_base):
    async def scenario():
        topic = f"grace:{time.monotonic_ns()}"
        watcher = await Phx.connect(ws_base, "watcher")
        await watcher.join(topic)
        tab = await Phx.connect(ws_base, "eve")
        await tab.join(topic)
        await watcher.until(lambda: "eve" in watcher.replay(topic), "eve joined")
        await tab.close()
        reloaded = await Phx.connect(ws_base, "eve")
        await reloaded.join(topic)
        await watcher.until(lambda: presence_api(http_base, topic)["connections"] == 2 and len(watcher.replay(topic)["eve"]) == 1, "the reload")
        await watcher.pump(0.3)
        # eve was never absent: no diff left her without a join in the same diff.
        for diff in watcher.frames(topic, "presence_diff"):
            assert not ("eve" in diff[4]["leaves"] and "eve" not in diff[4]["joins"]), diff
        closed = time.monotonic()
        await reloaded.close()
        await watcher.until(lambda: "eve" not in watcher.replay(topic), "eve's real leave", timeout=5)
        assert time.monotonic() - closed >= 0.9
        await watcher.close()

    run_bounded(scenario())


def test_sse_and_longpoll_subscribers_are_presences_and_go_when_they_close(ws_base, http_base):
    async def scenario():
        topic = f"lobby:{time.monotonic_ns()}"
        watcher = await Phx.connect(ws_base, "watcher")
        await watcher.join(topic)
        async with httpx.AsyncClient(timeout=httpx.Timeout(STEP_TIMEOUT_S)) as http:
            url = f"{http_base}/events?{urllib.parse.urlencode({'topics': topic, 'user_id': 'sam'})}"
            async with http.stream("GET", url) as stream:
                assert stream.status_code == 200
                await watcher.until(lambda: "sam" in watcher.replay(topic), "the SSE subscriber's presence")
                [meta] = presence_api(http_base, topic)["presences"]["sam"]["metas"]
                assert meta["transport"] == "sse"
                # The stream itself receives presence too.
                lines = stream.aiter_lines()
                seen = ""
                deadline = time.monotonic() + STEP_TIMEOUT_S
                while "presence" not in seen and time.monotonic() < deadline:
                    seen += await asyncio.wait_for(lines.__anext__(), STEP_TIMEOUT_S) + "\n"
                assert "event: presence_" in seen
            closed = time.monotonic()
            await watcher.until(lambda: "sam" not in watcher.replay(topic), "the SSE subscriber's leave", timeout=6)
            assert time.monotonic() - closed < 5

            poll = LongPoll(http, f"{http_base}/socket/longpoll", params=[("vsn", "2.0.0"), ("user_id", "lp")])
            await poll.open()
            assert await poll.post(["1", "1", topic, "phx_join", {}]) == {"status": 200}
            frames = await poll.collect(2, "join reply and presence_state")
            assert frames[0][3] == "phx_reply" and frames[1][3] == "presence_state" and frames[1][0] == "1"
            await watcher.until(lambda: "lp" in watcher.replay(topic), "the long-poll presence")
            assert presence_api(http_base, topic)["presences"]["lp"]["metas"][0]["transport"] == "longpoll"
            assert await poll.post(["1", "2", topic, "phx_leave", {}]) == {"status": 200}
            await watcher.until(lambda: "lp" not in watcher.replay(topic), "the long-poll leave")

            # A long-poll client that goes away mid-poll (its waiting GET's connection closes):
            # its session, and so its presence, ends within 5 s, not 1.5 poll windows later.
            gone = LongPoll(http, f"{http_base}/socket/longpoll", params=[("vsn", "2.0.0"), ("user_id", "lp-gone")])
            await gone.open()
            assert await gone.post(["1", "1", topic, "phx_join", {}]) == {"status": 200}
            await watcher.until(lambda: "lp-gone" in watcher.replay(topic), "the second long-poll presence")
            while True:  # take what is there, until a poll waits
                try:
                    assert (await gone.get(timeout=0.5))["status"] in (200, 204)
                except TimeoutError:
                    break  # cancelled: httpx closes the waiting request's connection
            abandoned = time.monotonic()
            await watcher.until(lambda: "lp-gone" not in watcher.replay(topic), "the abandoned session's leave", timeout=6)
            assert time.monotonic() - abandoned < 5
        await watcher.close()

    run_bounded(scenario())


def test_namespace_without_presence_sends_no_presence(ws_base):
    async def scenario():
        topic = f"plain:{time.monotonic_ns()}"
        a = await Phx.connect(ws_base, "a")
        b = await Phx.connect(ws_base, "b")
        await a.join(topic)
        await b.join(topic)
        await a.pump(0.3)
        assert not [f for f in a.received if f[3].startswith("presence")]
        await a.close()
        await b.close()

    run_bounded(scenario())


def test_realtime_py_clients_track_each_other_and_see_state_after_rejoin(ws_base, http_base):
    """Two Supabase realtime-py clients on one channel: each tracks itself, each sees the other's
    join and leave (with `presence_ref`), and a rejoin gets the current state."""

    async def scenario():
        name = f"room{time.monotonic_ns()}"
        clients, channels, joins, leaves = [], [], [], []
        for who in ("ana", "bob"):
            client = AsyncRealtimeClient(f"{ws_base}/socket", token="anon", auto_reconnect=False, max_retries=1, timeout=int(STEP_TIMEOUT_S))
            await asyncio.wait_for(client.connect(), STEP_TIMEOUT_S)
            channel = client.channel(name, {"config": {"presence": {"key": who}}})
            joined, left = [], []
            channel.on_presence_join(lambda key, current, new, joined=joined: joined.append((key, new)))
            channel.on_presence_leave(lambda key, current, gone, left=left: left.append((key, gone)))
            subscribed = asyncio.Event()
            await channel.subscribe(lambda status, error, subscribed=subscribed: subscribed.set() if status.name == "SUBSCRIBED" else None)
            await asyncio.wait_for(subscribed.wait(), STEP_TIMEOUT_S)
            clients.append(client)
            channels.append(channel)
            joins.append(joined)
            leaves.append(left)
        await channels[0].track({"user": "ana", "online": True})
        await channels[1].track({"user": "bob"})
        await wait_until(lambda: {k for k, _ in joins[0]} >= {"ana", "bob"} and {k for k, _ in joins[1]} >= {"ana", "bob"}, "both see both")
        state = channels[0].presence_state()
        assert set(state) == {"ana", "bob"}
        assert state["bob"][0]["user"] == "bob" and isinstance(state["bob"][0]["presence_ref"], str)
        listed = presence_api(http_base, f"realtime:{name}")
        assert (listed["users"], listed["connections"]) == (2, 2)

        await channels[1].untrack()
        await wait_until(lambda: any(k == "bob" for k, _ in leaves[0]), "ana sees bob leave")
        assert set(channels[0].presence_state()) == {"ana"}
        await channels[1].track({"user": "bob", "again": True})
        await wait_until(lambda: "bob" in channels[0].presence_state(), "bob back")

        # Bob's client goes away: ana sees him leave.
        await asyncio.wait_for(clients[1].close(), STEP_TIMEOUT_S)
        await wait_until(lambda: set(channels[0].presence_state()) == {"ana"}, "bob's disconnect")

        # A third client joining later gets the current state (ana) without tracking.
        late = AsyncRealtimeClient(f"{ws_base}/socket", token="anon", auto_reconnect=False, max_retries=1, timeout=int(STEP_TIMEOUT_S))
        await asyncio.wait_for(late.connect(), STEP_TIMEOUT_S)
        channel = late.channel(name)
        synced = asyncio.Event()
        channel.on_presence_sync(lambda: synced.set())
        subscribed = asyncio.Event()
        await channel.subscribe(lambda status, error: subscribed.set() if status.name == "SUBSCRIBED" else None)
        await asyncio.wait_for(subscribed.wait(), STEP_TIMEOUT_S)
        await asyncio.wait_for(synced.wait(), STEP_TIMEOUT_S)
        assert set(channel.presence_state()) == {"ana"}
        for client in (clients[0], late):
            await asyncio.wait_for(client.close(), STEP_TIMEOUT_S)

    run_bounded(scenario())
