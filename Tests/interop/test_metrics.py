"""`GET /metrics` of the standalone server: Prometheus text, behind the API key.

Checks the values move with real traffic: a WebSocket connection and join, an SSE stream, API
broadcasts reaching both (deliveries), and a refused join; and that a fresh server lists every
documented metric (at zero) and the process metrics before anything happened.
"""
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import websocket  # websocket-client

import config_server
from conftest import API_KEY
from support import STEP_TIMEOUT_S, publish


def scrape(http_url: str, key: str | None = API_KEY) -> tuple[int, str, str]:
    request = urllib.request.Request(f"{http_url}/metrics", headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def value(text: str, name: str) -> float:
    """The sample `name` (with its labels, e.g. `x{a="b"}`), 0 when absent."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_metrics(http_url: str, predicate, what: str) -> str:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    text = ""
    while time.monotonic() < deadline:
        _, _, text = scrape(http_url)
        if predicate(text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"metrics never showed {what}:\n{text}")


def test_metrics_need_the_api_key(http_url: str) -> None:
    status, _, _ = scrape(http_url, key=None)
    assert status == 401
    status, _, _ = scrape(http_url, key="wrong")
    assert status == 401
    status, content_type, _ = scrape(http_url)
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")


def test_metrics_follow_connections_joins_and_deliveries(http_url: str, socket_url: str) -> None:
    _, _, before = scrape(http_url)
    ws = websocket.create_connection(f"{socket_url}?vsn=2.0.0", timeout=STEP_TIMEOUT_S)
    stream = urllib.request.urlopen(f"{http_url}/events/public:metrics", timeout=STEP_TIMEOUT_S)
    try:
        ws.send(json.dumps(["1", "1", "public:metrics", "phx_join", {}]))
        assert json.loads(ws.recv())[3] == "phx_reply"
        ws.send(json.dumps(["2", "2", "notifications:someone-else", "phx_join", {}]))
        assert json.loads(ws.recv())[4]["status"] == "error"
        during = wait_metrics(
            http_url,
            lambda t: value(t, 'switchboard_connections{transport="websocket"}') >= 1 and value(t, 'switchboard_connections{transport="sse"}') >= 1,
            "a WebSocket and an SSE connection",
        )
        assert value(during, 'switchboard_joins_total{result="ok"}') >= value(before, 'switchboard_joins_total{result="ok"}') + 2
        assert value(during, 'switchboard_joins_total{result="refused"}') >= value(before, 'switchboard_joins_total{result="refused"}') + 1
        assert value(during, "switchboard_messages_in_total") >= value(before, "switchboard_messages_in_total") + 2
        # The two join replies went out as messages to one connection.
        assert value(during, "switchboard_messages_out_total") >= value(before, "switchboard_messages_out_total") + 2
        assert "switchboard_mailbox_queue_depth" in during
        deliveries = value(during, "switchboard_deliveries_total")
        for i in range(3):
            publish(http_url, "public:metrics", "m", {"i": i})
        frames = [json.loads(ws.recv()) for _ in range(3)]
        assert [f[4]["i"] for f in frames] == [0, 1, 2]
        after = wait_metrics(http_url, lambda t: value(t, "switchboard_deliveries_total") >= deliveries + 6, "6 more deliveries")
        assert value(after, "switchboard_delivery_seconds_count") > 0
    finally:
        ws.close()
        stream.close()
    wait_metrics(
        http_url,
        lambda t: value(t, 'switchboard_connections{transport="websocket"}') <= value(before, 'switchboard_connections{transport="websocket"}')
        and value(t, 'switchboard_connections{transport="sse"}') <= value(before, 'switchboard_connections{transport="sse"}'),
        "the connections closed again",
    )


def documented_metrics() -> list[str]:
    """The metric names the README's HTTP API table lists for `GET /metrics`."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `GET /metrics`"))
    names = re.findall(r"`((?:switchboard|process)_[a-z_]+)(?:\{[a-z_]+\})?`", row)
    assert len(names) >= 16, row
    return names


def test_a_fresh_server_lists_every_documented_metric() -> None:
    """Before any connection or publish (issue 18, item 3): nothing is created lazily."""
    with config_server.server(["--api-key", API_KEY]) as server:
        status, _, text = scrape(f"http://127.0.0.1:{server.port}")
    assert status == 200
    samples = {line.split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    families = {re.sub(r"\{.*\}$", "", name) for name in samples}
    for name in documented_metrics():
        base = name
        if name == "switchboard_delivery_seconds":
            base = "switchboard_delivery_seconds_count"
        assert base in families, f"{name} missing from a fresh server's /metrics:\n{text}"
    for transport in ("websocket", "sse", "longpoll"):
        assert f'switchboard_connections{{transport="{transport}"}}' in samples
    for result in ("ok", "refused"):
        assert f'switchboard_joins_total{{result="{result}"}}' in samples
    assert value(text, 'switchboard_connections{transport="websocket"}') == 0
    assert value(text, "switchboard_deliveries_total") == 0
    assert re.search(r'^switchboard_build_info\{version="\d+\.\d+\.\d+"\} 1$', text, re.MULTILINE)
    assert value(text, "process_resident_memory_bytes") > 1 << 20
    assert 0 < value(text, "process_open_fds") < value(text, "process_max_fds")
    assert abs(value(text, "process_start_time_seconds") - time.time()) < 120
    assert 0 < value(text, "process_cpu_seconds_total") < 120
