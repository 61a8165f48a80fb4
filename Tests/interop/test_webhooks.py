"""Presence lifecycle webhooks (config `webhooks`), against the real binary and local receivers:
signed bodies, the events of a topic in order, namespace and type filters, retries with the same
ids after failures, a receiver that never answers (the queue stays bounded: drops counted in
`switchboard_webhook_events_dropped_total`), and with three nodes on a real redis-server each
cluster event POSTed once, a killed node's members announced once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from config_server import run, server, write_config
from conftest import _free_port
from support import STEP_TIMEOUT_S, run_bounded, wait_until
from test_presence import Phx
from test_presence_cluster import NodeProcess, Redis

KEY = "webhook-test-key"
SECRET = "whsec-0123456789"


class Receiver:
    """A local HTTP receiver. `answers` is the status of each request in turn (then 200);
    `hang` keeps every request unanswered until the receiver stops."""

    def __init__(self, answers: list[int] | None = None, hang: bool = False) -> None:
        self.answers = list(answers or [])
        self.hang = hang
        self.requests: list[dict] = []  # {"time", "headers", "body", "status"}
        self.stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.answers.pop(0) if receiver.answers else 200
                receiver.requests.append({"time": time.monotonic(), "headers": dict(self.headers), "body": body, "status": status, "path": self.path})
                if receiver.hang:
                    receiver.stopping.wait(30)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.http.shutdown()
        self.http.server_close()

    def delivered(self) -> list[dict]:
        """The events of the requests answered 2xx, in arrival order."""
        return [e for r in self.requests if 200 <= r["status"] < 300 for e in json.loads(r["body"])["events"]]


def summary(events: list[dict]) -> list[tuple]:
    return [(e["type"], e["topic"], e["key"]) for e in events]


def presence_users(port: int, topic: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/topics/{urllib.parse.quote(topic, safe='')}/presence?count=1", headers={"Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
        return json.loads(response.read())["connections"]


def metric(port: int, name: str) -> float:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def config(*webhooks: dict) -> dict:
    return {"api_key": KEY, "namespaces": {"lobby:*": {"presence": True}, "other:*": {"presence": True}, "plain:*": {}}, "webhooks": list(webhooks)}


@pytest.fixture
def directory() -> Path:
    return Path(tempfile.mkdtemp(prefix="switchboard-webhooks-"))


def test_print_config_shows_webhooks_without_their_secrets_and_bad_ones_stop_the_server(directory):
    hook = {"url": "https://hooks.example.test/p", "secret": SECRET, "namespaces": ["lobby:"], "events": ["member.left", "member.joined"]}
    result = run(["--config", str(write_config(directory, config(hook))), "--print-config"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["webhooks"] == [
        {"url": hook["url"], "secret": "(set)", "namespaces": ["lobby:*"], "events": ["member.joined", "member.left"], "queue_size": 10000, "timeout_seconds": 5}
    ]
    assert SECRET not in result.stdout
    bad = run(["--config", str(write_config(directory, config({"url": "hooks.example.test", "secret": SECRET})))])
    assert bad.returncode == 78
    assert "webhooks[0].url: expected an http:// or https:// URL" in bad.stderr


def test_signed_events_in_order_filtered_by_namespace_and_type(directory):
    with Receiver() as lobby_hooks, Receiver() as join_hooks:
        hooks = config({"url": lobby_hooks.url, "secret": SECRET, "namespaces": ["lobby:*"]}, {"url": join_hooks.url, "secret": "other-secret", "events": ["member.joined"]})
        with server(["--config", str(write_config(directory, hooks))]) as srv:
            ws = f"ws://127.0.0.1:{srv.port}"
            topic, elsewhere = f"lobby:{time.monotonic_ns()}", f"other:{time.monotonic_ns()}"
            started = time.time()

            async def scenario():
                async def connections(expected: int, where: str = topic) -> None:
                    await wait_until(lambda: presence_users(srv.port, where) == expected, f"{expected} connections in {where}")

                ana1 = await Phx.connect(ws, "ana")
                await ana1.join(topic)
                bob = await Phx.connect(ws, "bob")
                await bob.join(topic)
                ana2 = await Phx.connect(ws, "ana")  # a second tab: no event
                await ana2.join(topic)
                await connections(3)
                carl = await Phx.connect(ws, "carl")
                await carl.join(elsewhere)
                plain = await Phx.connect(ws, "dora")
                await plain.join(f"plain:{time.monotonic_ns()}")  # no presence: no events
                await ana1.close()
                await connections(2)
                await ana2.close()
                await connections(1)
                await bob.close()
                await connections(0)
                await carl.close()
                await connections(0, elsewhere)
                await plain.close()
                await wait_until(lambda: len(lobby_hooks.delivered()) == 6 and len(join_hooks.delivered()) == 3, "the events delivered")

            run_bounded(scenario())
            assert summary(lobby_hooks.delivered()) == [
                ("topic.occupied", topic, None),
                ("member.joined", topic, "ana"),
                ("member.joined", topic, "bob"),
                ("member.left", topic, "ana"),
                ("member.left", topic, "bob"),
                ("topic.vacated", topic, None),
            ]
            assert summary(join_hooks.delivered()) == [("member.joined", topic, "ana"), ("member.joined", topic, "bob"), ("member.joined", elsewhere, "carl")]
            time.sleep(0.3)  # nothing more arrives
            assert len(lobby_hooks.requests) == len([r for r in lobby_hooks.requests if r["status"] == 200])
            assert len(lobby_hooks.delivered()) == 6 and len(join_hooks.delivered()) == 3

            for receiver, secret in ((lobby_hooks, SECRET), (join_hooks, "other-secret")):
                for request in receiver.requests:
                    expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
                    assert request["headers"]["X-Switchboard-Signature"] == expected
                    assert request["headers"]["Content-Type"] == "application/json"
                    assert request["path"] == "/hook"
                events = receiver.delivered()
                assert len({e["id"] for e in events}) == len(events), "ids are unique"
                for event in events:
                    assert set(event) == {"id", "type", "topic", "key", "time"}
                    assert isinstance(event["id"], str) and event["id"]
                    assert started * 1000 - 1000 <= event["time"] <= time.time() * 1000 + 1000
            times = [e["time"] for e in lobby_hooks.delivered()]
            assert times == sorted(times)


def test_a_failing_receiver_gets_every_event_with_the_same_ids(directory):
    with Receiver(answers=[500, 503]) as hooks:
        with server(["--config", str(write_config(directory, config({"url": hooks.url, "secret": SECRET})))]) as srv:
            topic = f"lobby:{time.monotonic_ns()}"

            async def scenario():
                ana = await Phx.connect(f"ws://127.0.0.1:{srv.port}", "ana")
                await ana.join(topic)
                await wait_until(lambda: len(hooks.delivered()) == 2, "both events delivered after two failures", timeout=10)
                await ana.close()

            run_bounded(scenario())
            first, second, third = hooks.requests[:3]
            assert (first["status"], second["status"], third["status"]) == (500, 503, 200)
            assert second["time"] - first["time"] < 2.0, "the first retry comes within 2 s"
            assert third["time"] - first["time"] < 5.0
            # A retry carries the events it failed with, under the same ids, first and unchanged.
            failed = json.loads(first["body"])["events"]
            for retry in (second, third):
                assert json.loads(retry["body"])["events"][: len(failed)] == failed
            assert summary(hooks.delivered()) == [("topic.occupied", topic, None), ("member.joined", topic, "ana")]
            assert metric(srv.port, "switchboard_webhook_posts_failed_total") == 2


def test_a_receiver_that_never_answers_keeps_the_queue_bounded(directory):
    users = 40
    with Receiver(hang=True) as hooks:
        hook = {"url": hooks.url, "secret": SECRET, "queue_size": 20, "timeout_seconds": 1}
        with server(["--config", str(write_config(directory, config(hook)))]) as srv:
            topic = f"lobby:{time.monotonic_ns()}"

            async def scenario():
                clients = []
                for i in range(users):
                    client = await Phx.connect(f"ws://127.0.0.1:{srv.port}", f"user{i}")
                    await client.join(topic)
                    clients.append(client)
                for client in clients:
                    await client.close()
                await wait_until(lambda: presence_users(srv.port, topic) == 0, "everyone gone")

            run_bounded(scenario())
            # 1 occupied + 40 joined + 40 left + 1 vacated; the queue keeps the first 20.
            assert metric(srv.port, "switchboard_webhook_events_dropped_total") == 2 * users + 2 - 20
            assert "webhook queue full" in srv.log_path.read_text()
            # The receiver only ever saw the queued events, and the server keeps serving.
            seen = {e["id"] for r in hooks.requests for e in json.loads(r["body"])["events"]}
            assert 0 < len(seen) <= 20
            assert presence_users(srv.port, topic) == 0


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_three_nodes_post_each_cluster_event_once():
    directory = Path(tempfile.mkdtemp(prefix="switchboard-webhooks-"))
    with Receiver() as hooks:
        cfg = write_config(directory, {**config({"url": hooks.url, "secret": SECRET}), "presence_lease_seconds": 2})
        redis = Redis()
        nodes = [NodeProcess(cfg, redis, f"node{i}") for i in range(3)]
        try:
            redis.start()
            for node in nodes:
                node.start()
            topic = f"lobby:{time.monotonic_ns()}"

            async def scenario():
                async def connections(expected: int) -> None:
                    await wait_until(lambda: all(presence_users(n.port, topic) == expected for n in nodes if n.process.poll() is None), f"{expected} connections everywhere")

                # ana on node0, then a second tab on node1: one member.joined in the cluster.
                ana0 = await Phx.connect(nodes[0].ws, "ana")
                await ana0.join(topic)
                await connections(1)
                ana1 = await Phx.connect(nodes[1].ws, "ana")
                await ana1.join(topic)
                await connections(2)
                await ana0.close()
                await connections(1)
                await ana1.close()  # her last connection: one member.left, one topic.vacated
                await connections(0)
                # bob only on node2, which is killed: the live nodes announce his leave once.
                bob = await Phx.connect(nodes[2].ws, "bob")
                await bob.join(topic)
                await wait_until(lambda: presence_users(nodes[0].port, topic) == 1, "bob seen on node0")
                nodes[2].kill(signal.SIGKILL)
                await connections(0)
                await wait_until(lambda: len(hooks.delivered()) == 8, "every cluster event", timeout=10)
                await asyncio.sleep(1.0)  # a duplicate from another node would arrive by now

            run_bounded(scenario(), timeout=60)
            assert summary(hooks.delivered()) == [
                ("topic.occupied", topic, None),
                ("member.joined", topic, "ana"),
                ("member.left", topic, "ana"),
                ("topic.vacated", topic, None),
                ("topic.occupied", topic, None),
                ("member.joined", topic, "bob"),
                ("member.left", topic, "bob"),
                ("topic.vacated", topic, None),
            ]
        finally:
            for node in nodes:
                node.stop()
            redis.kill()
