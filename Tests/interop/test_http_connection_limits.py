"""HTTP connections cannot hold a server (issue 18, item 4): a restart ends within a bound whatever
clients remain, and a request head must arrive within the request-head timeout.

Before: a keep-alive connection kept the process alive after SIGTERM (SIGKILL needed), a request on
it after SIGTERM was still served (a new SSE stream, a long-poll session), and a client stuck
half-way through its headers held its descriptor for ever.
"""
from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from pathlib import Path

from conftest import DEFAULT_BIN, _start, _stop
from support import keep_alive_connection, read_until_closed

EXIT_WITHIN_S = 5.0
HEAD_TIMEOUT_S = 30.0


def test_sigterm_ends_every_http_connection_and_refuses_new_work() -> None:
    binary = os.environ.get("SWITCHBOARD_BIN", DEFAULT_BIN)
    server = _start(binary, Path(tempfile.mkdtemp(prefix="switchboard-limits-")), 0)
    port = server.port
    try:
        idle = keep_alive_connection(port)
        half_head = socket.create_connection(("127.0.0.1", port), timeout=5)
        half_head.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)  # sends nothing at all
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        upgrade = f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        later = {
            "sse": b"GET /events/public:x HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
            "websocket": f"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n".encode(),
            "plain": f"GET /ws/public:x HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n".encode(),
            "longpoll": b"GET /socket/longpoll?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n\r\n",
        }
        reused = {name: keep_alive_connection(port) for name in later}

        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # Requests sent before the server has seen the signal are rightly served; these go after.
        time.sleep(0.5)
        for name, request in later.items():
            try:
                reused[name].sendall(request)
            except (BrokenPipeError, ConnectionResetError):
                pass  # already closed by the server: as good as a refusal
        for name, sock in reused.items():
            answer = read_until_closed(sock, EXIT_WITHIN_S)
            # Either refused (503, connection: close) or closed unanswered; never served.
            assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), f"{name} after SIGTERM got {answer[:200]!r}"
            if answer:
                assert b"server shutting down" in answer and b"connection: close" in answer.lower()
        for name, sock in (("idle keep-alive", idle), ("half-sent head", half_head), ("silent", silent)):
            assert read_until_closed(sock, EXIT_WITHIN_S) == b"", f"{name} connection got an answer"
        assert server.process.wait(EXIT_WITHIN_S) == 0
        assert time.monotonic() - started < EXIT_WITHIN_S
    finally:
        _stop(server.process)


def test_request_head_timeout_closes_slow_and_idle_connections(switchboard_server) -> None:
    port = switchboard_server.port
    idle = keep_alive_connection(port)
    half_head = socket.create_connection(("127.0.0.1", port), timeout=5)
    half_head.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    answer = read_until_closed(half_head, HEAD_TIMEOUT_S + 10)
    waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"request head not complete within 30 s" in answer
    assert HEAD_TIMEOUT_S - 1 < waited < HEAD_TIMEOUT_S + 5, waited
    # The idle keep-alive connection (its last answer came before) is closed at the same bound.
    assert read_until_closed(idle, 5) == b""
    # A connection that keeps sending requests is not affected.
    busy = keep_alive_connection(port)
    busy.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert busy.recv(4096).startswith(b"HTTP/1.1 200")
    busy.close()
