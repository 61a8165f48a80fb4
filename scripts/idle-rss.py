#!/usr/bin/env python3
"""Measures the server's resident memory per idle Phoenix WebSocket connection.

Starts the `switchboard` binary, opens N connections (vsn 2.0.0), each joined to its own
`notifications:<i>` topic (one channel per connection), and reads the server's RSS from /proc
at 0, N/10 and N connections. Reports the marginal cost per connection between N/10 and N
(start-up and warm-up allocations excluded) and the plain average over 0..N.

    scripts/idle-rss.py --bin .build/release/switchboard --connections 10000

Bounded: connects at most N sockets on 127.0.0.1, gives up after --timeout seconds, and always
stops the server it started.
"""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import websockets


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_one(port, i, sockets):
    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&user_id={i}",
        ping_interval=None, max_queue=None, open_timeout=30,
    )
    topic = f"notifications:{i}"
    await ws.send(json.dumps(["1", "1", topic, "phx_join", {}]))
    reply = json.loads(await ws.recv())
    assert reply[3] == "phx_reply" and reply[4]["status"] == "ok", reply
    sockets.append(ws)


async def open_many(port, start, count, sockets, batch=250):
    for b in range(start, start + count, batch):
        await asyncio.gather(*(open_one(port, i, sockets) for i in range(b, min(b + batch, start + count))))


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=".build/release/switchboard")
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    n = args.connections
    port = free_port()
    server = subprocess.Popen([args.bin, "--port", str(port), "--log-level", "warning"])
    sockets = []
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("server did not start")
                time.sleep(0.1)
        await asyncio.sleep(1)
        r0 = rss_kib(server.pid)
        tenth = max(1, n // 10)
        await asyncio.wait_for(open_many(port, 0, tenth, sockets), args.timeout)
        await asyncio.sleep(2)
        r1 = rss_kib(server.pid)
        await asyncio.wait_for(open_many(port, tenth, n - tenth, sockets), args.timeout)
        await asyncio.sleep(3)
        r2 = rss_kib(server.pid)
        marginal = (r2 - r1) * 1024 / (n - tenth)
        average = (r2 - r0) * 1024 / n
        print(f"connections={n} rss_start_kib={r0} rss_at_{tenth}_kib={r1} rss_at_{n}_kib={r2}")
        print(f"marginal_bytes_per_connection={marginal:.0f} average_bytes_per_connection={average:.0f}")
    finally:
        for ws in sockets:
            ws.transport.abort()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    asyncio.run(main())
