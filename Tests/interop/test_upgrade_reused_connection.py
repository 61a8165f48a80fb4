"""A WebSocket upgrade is honoured on any request of a kept-alive connection, not only the first
(issue 18, item 7): reverse proxies that keep upstream connections alive send upgrades that way.
Before, `GET /health` then an upgrade on the same connection got 404."""
from __future__ import annotations

import json

import websocket  # websocket-client

from support import keep_alive_connection, publish, read_until_closed


def test_phoenix_upgrade_after_a_plain_request(switchboard_server) -> None:
    port = switchboard_server.port
    sock = keep_alive_connection(port)  # GET /health answered, connection kept
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0", socket=sock, timeout=5)
    try:
        ws.send(json.dumps([None, "1", "phoenix", "heartbeat", {}]))
        assert json.loads(ws.recv()) == [None, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}]
        ws.send(json.dumps(["2", "2", "public:reused", "phx_join", {}]))
        assert json.loads(ws.recv())[4]["status"] == "ok"
        publish(f"http://127.0.0.1:{port}", "public:reused", "hello", {"n": 1})
        assert json.loads(ws.recv()) == [None, None, "public:reused", "hello", {"n": 1}]
    finally:
        ws.close()


def test_plain_upgrade_after_two_plain_requests(switchboard_server) -> None:
    port = switchboard_server.port
    sock = keep_alive_connection(port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/public:reused-plain", socket=sock, timeout=5)
    try:
        publish(f"http://127.0.0.1:{port}", "public:reused-plain", "e", {"plain": True})
        assert json.loads(ws.recv()) == {"plain": True}
    finally:
        ws.close()


def test_refused_and_unknown_upgrades_on_a_reused_connection(switchboard_server) -> None:
    port = switchboard_server.port
    upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    for path, status, body in [
        ("/socket/websocket?vsn=9.0.0", b"403", b'{"error":"unsupported vsn"}'),
        ("/ws/nowhere:1", b"403", b'{"error":"unknown topic nowhere:1"}'),
        ("/no/such/path", b"404", b'{"error":"no WebSocket endpoint at this path"}'),
    ]:
        sock = keep_alive_connection(port)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n".encode())
        answer = read_until_closed(sock, 5)
        assert answer.startswith(b"HTTP/1.1 " + status), (path, answer)
        assert body in answer, (path, answer)
        sock.close()
