"""Graceful shutdown of the standalone server (SIGTERM, as a process manager sends it).

A server of its own (the shared one must live on): a Phoenix WebSocket client, an SSE stream and
a waiting long-poll are connected; after SIGTERM the WebSocket gets close 1012 ("reconnect"), the
stream a last `switchboard:close` event with 1012, the poll an immediate `{"status":410}` (its
session is gone, so phoenix.js reconnects), and the process exits with status 0 within a few
seconds (a waiting poll does not hold it for its 10 s window).
"""
import json
import os
import signal
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import websocket  # websocket-client

from conftest import DEFAULT_BIN, _start, _stop
from support import STEP_TIMEOUT_S

EXIT_WITHIN_S = 5.0


def test_sigterm_tells_every_client_to_reconnect_and_exits_zero() -> None:
    binary = os.environ.get("SWITCHBOARD_BIN", DEFAULT_BIN)
    server = _start(binary, Path(tempfile.mkdtemp(prefix="switchboard-shutdown-")), 0)
    base = f"127.0.0.1:{server.port}"
    try:
        ws = websocket.create_connection(f"ws://{base}/socket/websocket?vsn=2.0.0", timeout=STEP_TIMEOUT_S)
        ws.send(json.dumps(["1", "1", "public:shutdown", "phx_join", {}]))
        assert json.loads(ws.recv())[4]["status"] == "ok"

        stream = urllib.request.urlopen(f"http://{base}/events/public:shutdown", timeout=STEP_TIMEOUT_S)
        assert stream.readline() == b"retry: 2000\n"

        opened = json.loads(urllib.request.urlopen(f"http://{base}/socket/longpoll?vsn=2.0.0", timeout=STEP_TIMEOUT_S).read())
        token = opened["token"]
        poll_answer: dict = {}

        def poll() -> None:
            started = time.monotonic()
            body = urllib.request.urlopen(f"http://{base}/socket/longpoll?vsn=2.0.0&token={token}", timeout=15).read()
            poll_answer["body"] = json.loads(body)
            poll_answer["seconds"] = time.monotonic() - started

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.3)  # the poll is parked on the server (no message for it)

        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)

        op, data = ws.recv_data(control_frame=True)
        while op != websocket.ABNF.OPCODE_CLOSE:
            op, data = ws.recv_data(control_frame=True)
        assert int.from_bytes(data[:2], "big") == 1012
        assert data[2:] == b"server restarting"

        rest = stream.read().decode()
        assert "event: switchboard:close\ndata: " in rest
        last = json.loads(rest.split("event: switchboard:close\ndata: ")[1].split("\n")[0])
        assert last == {"code": 1012, "reason": "server restarting"}

        poller.join(EXIT_WITHIN_S)
        assert not poller.is_alive(), "the parked poll was not answered at shutdown"
        assert poll_answer["body"] == {"status": 410}

        assert server.process.wait(EXIT_WITHIN_S) == 0
        assert time.monotonic() - started < EXIT_WITHIN_S
    finally:
        _stop(server.process)
