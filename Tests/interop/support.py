"""Helpers shared by the interop tests (no pytest fixtures here; see conftest.py).

Every wait in this suite is bounded: `run_bounded` caps a whole test, and each helper below
takes its own (shorter) timeout so that a failure says what was being waited for.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import websockets

# Upper bound for a whole test scenario (seconds).
TEST_TIMEOUT_S = 25.0
# Upper bound for one expected frame / callback (seconds).
STEP_TIMEOUT_S = 5.0


def run_bounded(coro: Coroutine[Any, Any, Any], timeout: float = TEST_TIMEOUT_S) -> Any:
    """Runs `coro` on a fresh event loop, failing the test if it takes longer than `timeout`."""

    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(coro, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"scenario did not finish within {timeout} s") from exc

    return asyncio.run(bounded())


def canon(value: Any) -> str:
    """Type-exact canonical JSON text (so 7 != 7.0 != "7" != True, and key order is ignored)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def assert_json_equal(actual: Any, expected: Any, what: str = "frame") -> None:
    assert canon(actual) == canon(expected), f"{what}:\n  got      {canon(actual)}\n  expected {canon(expected)}"


def assert_same_frames(actual: list[Any], expected: list[Any], what: str = "frames") -> None:
    """Exact comparison of two lists of frames, ignoring their order (for frames whose relative
    order the protocol does not define, e.g. a reply and the broadcast the same push caused)."""
    got = sorted(canon(f) for f in actual)
    want = sorted(canon(f) for f in expected)
    assert got == want, f"{what}:\n  got      {got}\n  expected {want}"


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT_S) -> None:
    """Bounded polling for a condition that a client library sets asynchronously."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def next_item(queue: asyncio.Queue, what: str, timeout: float = STEP_TIMEOUT_S) -> Any:
    try:
        return await asyncio.wait_for(queue.get(), timeout)
    except TimeoutError as exc:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from exc


async def take(queue: asyncio.Queue, count: int, what: str, timeout: float = STEP_TIMEOUT_S) -> list[Any]:
    return [await next_item(queue, f"{what} (item {i + 1} of {count})", timeout) for i in range(count)]


def drain(queue: asyncio.Queue) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


class RawConn:
    """A raw `websockets` connection speaking JSON text frames (V1 objects or V2 arrays).

    Every received frame is kept in `received` (decoded) and `raw` (the exact text)."""

    def __init__(self, ws: websockets.ClientConnection, v2: bool) -> None:
        self.ws = ws
        self.v2 = v2
        self.received: list[Any] = []
        self.raw: list[str | bytes] = []
        self._hb = 0

    @classmethod
    async def open(cls, url: str, v2: bool) -> RawConn:
        ws = await asyncio.wait_for(websockets.connect(url, open_timeout=STEP_TIMEOUT_S), STEP_TIMEOUT_S)
        return cls(ws, v2)

    async def close(self) -> None:
        await asyncio.wait_for(self.ws.close(), STEP_TIMEOUT_S)

    async def send(self, frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, what: str = "a frame", timeout: float = STEP_TIMEOUT_S) -> Any:
        try:
            text = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError as exc:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}; received so far: {self.raw}"
            ) from exc
        assert isinstance(text, str), f"expected a text frame, got binary {text!r}"
        frame = json.loads(text)
        self.raw.append(text)
        self.received.append(frame)
        return frame

    async def recv_n(self, count: int, what: str = "frames", timeout: float = STEP_TIMEOUT_S) -> list[Any]:
        return [await self.recv(f"{what} ({i + 1} of {count})", timeout) for i in range(count)]

    async def recv_until(
        self, predicate: Callable[[Any], bool], what: str, timeout: float = STEP_TIMEOUT_S
    ) -> list[Any]:
        """All frames up to and including the first one matching `predicate`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        frames = []
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; got {frames}")
            frame = await self.recv(what, remaining)
            frames.append(frame)
            if predicate(frame):
                return frames

    async def sync(self, timeout: float = STEP_TIMEOUT_S) -> list[Any]:
        """Sends a heartbeat with a fresh ref and returns every frame received before its reply.

        The server processes a connection's frames in order, so anything this connection's
        earlier frames caused for itself has been written by then (no "sleep long enough")."""
        self._hb += 1
        ref = f"sync-{self._hb}"
        if self.v2:
            await self.send([None, ref, "phoenix", "heartbeat", {}])
            expected = [None, ref, "phoenix", "phx_reply", {"status": "ok", "response": {}}]
            frames = await self.recv_until(lambda f: isinstance(f, list) and f[1] == ref, f"heartbeat reply {ref}", timeout)
        else:
            await self.send({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": ref})
            expected = {"topic": "phoenix", "event": "phx_reply", "payload": {"status": "ok", "response": {}}, "ref": ref}
            frames = await self.recv_until(lambda f: isinstance(f, dict) and f.get("ref") == ref, f"heartbeat reply {ref}", timeout)
        assert_json_equal(frames[-1], expected, "heartbeat reply")
        return frames[:-1]


async def gather_bounded(*aws: Awaitable[Any], timeout: float = STEP_TIMEOUT_S) -> list[Any]:
    return await asyncio.wait_for(asyncio.gather(*aws), timeout)


def publish(http_url: str, topic: str, event: str, payload: Any) -> None:
    """One message through the HTTP API (`POST /api/broadcast`, the suite's API key)."""
    from conftest import API_KEY

    request = urllib.request.Request(
        f"{http_url}/api/broadcast", method="POST",
        data=json.dumps({"topic": topic, "event": event, "payload": payload}).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
        assert response.status in (200, 202)


def keep_alive_connection(port: int) -> socket.socket:
    """A raw connection that has had one answered request (`GET /health`) and stays open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT_S)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data
