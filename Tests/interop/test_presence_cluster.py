"""Presence across nodes: three `switchboard` processes on one real `redis-server` (started here,
on a free port, no persistence), clients on every node, the HTTP API of every node.

What must hold (issue 14): every node's API and every subscriber agree on the members within 1 s
of the last join reply; no join or leave is seen twice; a node killed with SIGKILL has its members
removed everywhere within the lease (`presence_lease_seconds`, 2 s here); a node stopped with
SIGTERM has them removed at once (it says bye); a restarted node leaves no zombies; after a Redis
restart, members are neither lost nor duplicated within 10 s of Redis answering again.

Each measured delay is printed (pytest -s shows it); BENCHMARKS.md has the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config_server import binary, clean_environment, write_config
from conftest import STARTUP_TIMEOUT_S, _accepts_connections, _die_with_parent, _free_port, _stop
from support import run_bounded
from test_presence import Phx

KEY = "presence-cluster-key"
LEASE_S = 2
CONFIG = {"api_key": KEY, "presence_lease_seconds": LEASE_S, "namespaces": {"lobby:*": {"presence": True}}}

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (scripts/test-setup installs it)")


class Redis:
    """A `redis-server` on a fixed port that can be killed and started again on that port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.answers():
            assert self.process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.02)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


class NodeProcess:
    """One `switchboard --config … --redis …` process."""

    def __init__(self, config: Path, redis: Redis, name: str) -> None:
        self.config, self.redis, self.name = config, redis, name
        self.port = _free_port()
        self.log = Path(tempfile.mkdtemp(prefix="switchboard-cluster-")) / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> NodeProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [binary(), "--config", str(self.config), "--redis", self.redis.url, "--host", "127.0.0.1", "--port", str(self.port)],
                env=clean_environment(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _accepts_connections(self.port):
            assert self.process.poll() is None, f"{self.name} exited at start:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{self.name} did not listen:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.05)
        return self

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def kill(self, sig: int) -> None:
        assert self.process is not None and self.process.poll() is None, f"{self.name} died early:\n{self.log.read_text()[-3000:]}"
        self.process.send_signal(sig)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process:
            _stop(self.process)

    async def presence(self, topic: str) -> dict:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(
                f"http://127.0.0.1:{self.port}/api/topics/{urllib.parse.quote(topic, safe='')}/presence",
                headers={"Authorization": f"Bearer {KEY}"},
            )
        assert response.status_code == 200, response.text
        return response.json()


@contextlib.contextmanager
def cluster(count: int = 3, lease: int = LEASE_S) -> Iterator[tuple[Redis, list[NodeProcess]]]:
    directory = Path(tempfile.mkdtemp(prefix="switchboard-cluster-"))
    config = write_config(directory, {**CONFIG, "presence_lease_seconds": lease})
    redis = Redis()
    nodes = [NodeProcess(config, redis, f"node{i}") for i in range(count)]
    try:
        redis.start()
        for node in nodes:
            node.start()
        yield redis, nodes
    finally:
        for node in nodes:
            node.stop()
        redis.kill()


class Reading:
    """Keeps reading every client's frames in the background (each into its `received`)."""

    def __init__(self, clients: list[Phx]) -> None:
        self.tasks = [asyncio.create_task(self.read(c)) for c in clients]

    @staticmethod
    async def read(client: Phx) -> None:
        with contextlib.suppress(Exception):
            while True:
                await client.recv("anything", 3600)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def converge(condition, what: str, timeout: float) -> float:
    """Seconds until the async `condition` holds (checked every 20 ms); fails after `timeout`."""
    start = time.monotonic()
    while not await condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def agree(nodes: list[NodeProcess], clients: list[Phx], topic: str, users: dict[str, int]) -> bool:
    """Every node's API lists exactly `users` (key → connections), and every client's replayed
    presence has exactly those keys with those many metas."""
    for node in nodes:
        listed = await node.presence(topic)
        if {k: len(v["metas"]) for k, v in listed["presences"].items()} != users:
            return False
        if (listed["users"], listed["connections"]) != (len(users), sum(users.values())):
            return False
    return all({k: len(v) for k, v in c.replay(topic).items()} == users for c in clients)


def joins_and_leaves(client: Phx, topic: str) -> tuple[Counter, Counter]:
    """How often each (key, phx_ref) arrived in the state or in a diff's joins, and in leaves."""
    joins: Counter = Counter()
    leaves: Counter = Counter()
    for f in client.received:
        if f[2] != topic:
            continue
        if f[3] == "presence_state":
            joins.update((k, m["phx_ref"]) for k, v in f[4].items() for m in v["metas"])
        elif f[3] == "presence_diff":
            joins.update((k, m["phx_ref"]) for k, v in f[4]["joins"].items() for m in v["metas"])
            leaves.update((k, m["phx_ref"]) for k, v in f[4]["leaves"].items() for m in v["metas"])
    return joins, leaves


async def populate(nodes: list[NodeProcess], count: int) -> tuple[str, list[Phx], Reading, dict[str, int]]:
    """A new topic with members u0…u<count-1> spread over the nodes (u<i> on node i % nodes),
    read in the background, once every node and member agrees on them."""
    topic = f"lobby:{time.monotonic_ns()}"
    members = []
    for i in range(count):
        member = await Phx.connect(nodes[i % len(nodes)].ws, f"u{i}")
        await member.join(topic)
        members.append(member)
    reading = Reading(members)
    expected = {f"u{i}": 1 for i in range(count)}
    took = await converge(lambda: agree(nodes, members, topic, expected), f"{count} members on {len(nodes)} nodes", 1.0)
    print(f"\n{count} members on {len(nodes)} nodes agree {took * 1000:.0f} ms after the last join reply")
    return topic, members, reading, expected


def test_three_nodes_agree_within_a_second_without_duplicates_and_leaves_propagate():
    async def scenario():
        with cluster(3) as (_, nodes):
            topic, members, reading, expected = await populate(nodes, 10)

            # A second tab of u0's on another node: one more meta, not another user.
            tab = await Phx.connect(nodes[1].ws, "u0")
            await tab.join(topic)
            reading.tasks.append(asyncio.create_task(Reading.read(tab)))
            await converge(lambda: agree(nodes, members, topic, {**expected, "u0": 2}), "u0's second tab", 1.0)
            await tab.close()
            await converge(lambda: agree(nodes, members, topic, expected), "u0's second tab gone", 1.0)

            # One member per node leaves.
            for leaving in (members[0], members[1], members[2]):
                await leaving.close()
            staying = members[3:]
            after = {k: 1 for k in expected if k not in ("u0", "u1", "u2")}
            took = await converge(lambda: agree(nodes, staying, topic, after), "three leaves", 1.0)
            print(f"leaves on 3 nodes seen everywhere: {took * 1000:.0f} ms")
            await asyncio.sleep(0.3)  # anything duplicated would arrive by now
            await reading.stop()
            for member in staying:
                joins, leaves = joins_and_leaves(member, topic)
                assert max(joins.values()) == 1, f"a join seen twice: {[j for j, n in joins.items() if n > 1]}"
                assert max(leaves.values()) == 1, f"a leave seen twice: {[j for j, n in leaves.items() if n > 1]}"
                assert {k for k, _ in joins} == set(expected), "every member's join arrived"
                assert {k for k, _ in leaves} == {"u0", "u1", "u2"}, "exactly the three leaves arrived"
                assert all(f[0] is None for f in member.received if f[3] == "presence_diff")
            for member in staying:
                await member.close()
            await converge(lambda: agree(nodes, [], topic, {}), "an empty topic everywhere", 1.0)

    run_bounded(scenario(), timeout=60)


def test_a_killed_node_is_removed_within_the_lease_a_stopped_one_at_once_and_a_restart_leaves_no_zombies():
    async def scenario():
        with cluster(3) as (_, nodes):
            topic, members, reading, expected = await populate(nodes, 9)

            # SIGKILL node2: nobody tells the others; its lease runs out.
            nodes[2].kill(signal.SIGKILL)
            killed_at = time.monotonic()
            survivors, live = nodes[:2], [m for i, m in enumerate(members) if i % 3 != 2]
            after_kill = {f"u{i}": 1 for i in range(9) if i % 3 != 2}
            # Removed after LEASE_S of silence, noticed at the next heartbeat (1 s).
            took = await converge(lambda: agree(survivors, live, topic, after_kill), "node2's members removed", LEASE_S + 2.5)
            print(f"\nSIGKILLed node's members removed after {took:.2f} s (lease {LEASE_S} s)")
            assert time.monotonic() - killed_at >= LEASE_S - 0.5, "removed before the lease ran out"

            # node2 starts again (a new process: a new node id) and its users come back.
            nodes[2].start()
            back = [await Phx.connect(nodes[2].ws, f"u{i}") for i in (2, 5, 8)]
            for member in back:
                await member.join(topic)
            reading.tasks += [asyncio.create_task(Reading.read(m)) for m in back]
            await converge(lambda: agree(nodes, live + back, topic, expected), "node2's users back, once each", 1.5)

            # SIGTERM node1: it says bye, so its members go at once, well before the lease.
            nodes[1].kill(signal.SIGTERM)
            stopped_at = time.monotonic()
            remaining = [nodes[0], nodes[2]]
            clients = [m for i, m in enumerate(members) if i % 3 == 0] + back
            after_stop = {f"u{i}": 1 for i in range(9) if i % 3 != 1}
            await converge(lambda: agree(remaining, clients, topic, after_stop), "node1's members removed", LEASE_S + 2.5)
            took = time.monotonic() - stopped_at
            print(f"SIGTERMed node's members removed after {took:.2f} s (process exit included)")
            assert took < LEASE_S, "a stopping node's members waited for its lease"

            # No zombies later either (the first node2's lease has long run out: nothing comes back).
            await asyncio.sleep(LEASE_S + 1.0)
            assert await agree(remaining, clients, topic, after_stop)
            await reading.stop()
            for client in clients:
                joins, leaves = joins_and_leaves(client, topic)
                assert max(leaves.values()) == 1, f"a leave seen twice: {[j for j, n in leaves.items() if n > 1]}"
                assert max(joins.values()) == 1, f"a join seen twice: {[j for j, n in joins.items() if n > 1]}"

    run_bounded(scenario(), timeout=90)


def test_after_a_redis_restart_members_are_neither_lost_nor_duplicated():
    # The nodes reconnect on their own backoff (up to 5 s apart); each has a whole lease from a
    # node's reconnect to be heard again, so the lease here is longer than that spread.
    lease = 5

    async def scenario():
        with cluster(3, lease=lease) as (redis, nodes):
            topic, members, reading, expected = await populate(nodes, 6)

            redis.kill()
            # During the outage, longer than the lease: u0 leaves (node0), u6 joins (node1).
            await members[0].close()
            newcomer = await Phx.connect(nodes[1].ws, "u6")
            await newcomer.join(topic)
            reading.tasks.append(asyncio.create_task(Reading.read(newcomer)))
            await asyncio.sleep(lease + 1.5)
            # Cut off, nodes expire nobody: each still shows the members it knew of.
            for node in nodes:
                assert set((await node.presence(topic))["presences"]) >= {"u1", "u2", "u3", "u4", "u5"}

            redis.start()
            answered_at = time.monotonic()
            clients = members[1:] + [newcomer]
            after = {f"u{i}": 1 for i in range(1, 7)}
            took = await converge(lambda: agree(nodes, clients, topic, after), "the cluster after the Redis restart", 10.0)
            print(f"\nconverged {took:.2f} s after Redis answered again")
            await asyncio.sleep(lease + 1.0)  # and it stays so (no late removals)
            assert await agree(nodes, clients, topic, after)
            assert time.monotonic() - answered_at < 30
            await reading.stop()
            for client in clients:
                joins, leaves = joins_and_leaves(client, topic)
                assert max(joins.values()) == 1, f"a join seen twice: {[j for j, n in joins.items() if n > 1]}"
                # Only u0 left (during the outage); nobody else flapped.
                assert {k for k, _ in leaves} <= {"u0"}, f"leaves of members who never left: {leaves}"

    run_bounded(scenario(), timeout=90)
