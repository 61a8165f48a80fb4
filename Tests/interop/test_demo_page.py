"""The demo page at `/` in headless Chromium: two users in two isolated tabs see the same ticker,
the online count, each other's chat messages, and only their own notifications.

Saves a screenshot of the page to artifacts/demo-page.png (gitignored).
"""
from __future__ import annotations

import json
import secrets
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import API_KEY

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def api(http_url: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{http_url}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"{}")


def wait_until(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: still {value!r} after {timeout} s")
        time.sleep(0.05)


def text(page, element_id: str) -> str:
    return page.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")


def fill_and_submit(page, form_id: str, values: dict[str, str]) -> None:
    """Types values into inputs (by id) and submits the form the way a click on its button does."""
    page.evaluate(
        f"""(() => {{
            for (const [id, value] of Object.entries({json.dumps(values)})) document.getElementById(id).value = value;
            document.getElementById({json.dumps(form_id)}).requestSubmit();
            return true;
        }})()"""
    )


def log_lines(page, list_id: str) -> list[str]:
    return page.evaluate(f"[...document.getElementById({json.dumps(list_id)}).children].map(li => li.textContent)")


def names(page, list_id: str) -> list[str]:
    """The names in a people list (`online-names`, `room-members`), in page order."""
    return page.evaluate(f"[...document.getElementById({json.dumps(list_id)}).children].map(li => li.textContent)")


def send_like_curl(command: str) -> dict:
    """Runs the page's curl command as a shell would (with curl if installed, else the same
    request through urllib: -d posts the body as application/x-www-form-urlencoded)."""
    argv = shlex.split(command.replace("$SWITCHBOARD_API_KEY", API_KEY))
    assert len(argv) == 6 and argv[0] == "curl" and argv[1] == "-H" and argv[3] == "-d", argv
    if shutil.which("curl"):
        done = subprocess.run(argv + ["--silent", "--show-error", "--max-time", "5"], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done
        return json.loads(done.stdout)
    name, value = argv[2].split(": ", 1)
    request = urllib.request.Request(
        argv[5], data=argv[4].encode(), headers={name: value, "Content-Type": "application/x-www-form-urlencoded"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def ready(page) -> None:
    page.wait_for(
        "window.demo && demo.socket.isConnected()"
        " && demo.channels.ticker.state === 'joined' && demo.channels.online.state === 'joined'"
        " && demo.channels.inbox.state === 'joined' && demo.room() && demo.room().state === 'joined'",
        timeout=10,
    )


def test_web_assets_are_served_with_types_and_cache_headers(http_url):
    expected = {
        "/": "text/html; charset=utf-8",
        "/switchboard.js": "text/javascript; charset=utf-8",
        "/demo.js": "text/javascript; charset=utf-8",
        "/demo.css": "text/css; charset=utf-8",
    }
    for path, content_type in expected.items():
        with urllib.request.urlopen(f"{http_url}{path}", timeout=5) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == content_type
            assert response.headers["Cache-Control"] == "no-cache"
            etag = response.headers["ETag"]
            body = response.read()
        assert etag and body
        # Revalidation: the same ETag answers 304 with no body.
        request = urllib.request.Request(f"{http_url}{path}", headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as not_modified:
            urllib.request.urlopen(request, timeout=5)
        assert not_modified.value.code == 304
    with urllib.request.urlopen(f"{http_url}/", timeout=5) as response:
        page = response.read().decode()
    assert '<script type="module" src="/demo.js"></script>' in page
    # No external resources: every src/href is local (or a data: URL).
    for attribute in ("src=\"http", "href=\"http", "src=\"//", "href=\"//"):
        assert attribute not in page


def test_demo_page_two_users(browser, http_url):
    a = browser.open_page(f"{http_url}/")
    a.set_viewport(1280, 1180)
    b = browser.open_page(f"{http_url}/")
    ready(a)
    ready(b)
    id_a, id_b = a.evaluate("demo.userId"), b.evaluate("demo.userId")
    assert id_a and id_b and id_a != id_b, "isolated tabs are two users with their own stored ids"
    assert text(a, "user-id") == id_a and text(a, "notify-topic") == f"notifications:{id_a}"

    # Ticker: the same number in both tabs (within one tick), and it counts up.
    for page in (a, b):
        page.wait_for("/^[0-9]+$/.test(document.getElementById('ticker-value').textContent)")
    tick_a, tick_b = int(text(a, "ticker-value")), int(text(b, "ticker-value"))
    assert abs(tick_a - tick_b) <= 1
    a.wait_for(f"Number(document.getElementById('ticker-value').textContent) > {tick_a}", timeout=5)

    # Online now: 2 in both tabs, as the server counts them.
    for page in (a, b):
        page.wait_for("document.getElementById('online-count').textContent === '2'")
    assert api(http_url, "GET", "/api/topics/online")["subscribers"] == 2

    # Chat: both in a fresh room; A's message reaches B, and A sees B arrive.
    room = f"demo-{secrets.token_hex(3)}"
    fill_and_submit(a, "chat-join-form", {"chat-name": "Ann", "chat-room": room})
    a.wait_for(f"demo.room().topic === 'room:{room}' && demo.room().state === 'joined'")
    fill_and_submit(b, "chat-join-form", {"chat-name": "Bob", "chat-room": room})
    b.wait_for(f"demo.room().topic === 'room:{room}' && demo.room().state === 'joined'")
    assert text(a, "chat-topic") == f"room:{room}"
    a.wait_for("[...document.querySelectorAll('#chat-log li')].some(li => li.textContent === 'Bob has joined')")
    # Who is online and who is in the room, by name, from the `online` topic's presence.
    for page in (a, b):
        page.wait_for("[...document.querySelectorAll('#room-members li')].map(li => li.textContent).join() === 'Ann,Bob'")
        assert names(page, "online-names") == ["Ann", "Bob"]
        assert text(page, "online-users") == "2"
    fill_and_submit(a, "chat-form", {"chat-input": "hello from Ann"})
    b.wait_for("[...document.querySelectorAll('#chat-log li')].some(li => li.textContent === 'Annhello from Ann')")
    a.wait_for("[...document.querySelectorAll('#chat-log li.mine')].some(li => li.textContent === 'Annhello from Ann')")
    # User text is text, never markup.
    fill_and_submit(b, "chat-form", {"chat-input": "<img src=x onerror=alert(1)><b>bold</b>"})
    a.wait_for("[...document.querySelectorAll('#chat-log li')].some(li => li.textContent.endsWith('<b>bold</b>'))")
    assert a.evaluate("document.querySelectorAll('#chat-log img, #chat-log b').length") == 0

    # Notifications: A sends to B; only B gets it (unread 1), A stays at 0.
    fill_and_submit(a, "notify-form", {"notify-to": id_b, "notify-body": "ping from Ann"})
    a.wait_for(f"document.getElementById('notify-status').textContent === 'Sent to {id_b}.'")
    b.wait_for("document.getElementById('notify-unread').textContent === '1'")
    assert log_lines(b, "notify-log") == [f"from {id_a}ping from Ann"]
    assert text(a, "notify-unread") == "0" and log_lines(a, "notify-log") == []

    # A may not listen to B's notifications: the server refuses the join.
    a.evaluate("document.getElementById('notify-peek').click(), true")
    a.wait_for("document.getElementById('notify-peek-result').textContent !== ''")
    assert text(a, "notify-peek-result") == f"Join notifications:{id_b} refused by the server: unauthorized"

    # The curl command shown on B's page reaches B (and only B) through the HTTP API.
    command = text(b, "notify-curl")
    assert command == (
        "curl -H \"Authorization: Bearer $SWITCHBOARD_API_KEY\" "
        f"-d '{{\"topic\":\"notifications:{id_b}\",\"event\":\"notification\",\"payload\":{{\"body\":\"hi\"}}}}' "
        f"{http_url}/api/broadcast"
    )
    assert send_like_curl(command) == {"published": 1}
    b.wait_for("document.getElementById('notify-unread').textContent === '2'")
    assert log_lines(b, "notify-log")[-1] == "from the HTTP APIhi"
    # A's own curl command reaches A: A's inbox works, and it never got B's notifications.
    assert send_like_curl(text(a, "notify-curl")) == {"published": 1}
    a.wait_for("document.getElementById('notify-unread').textContent === '1'")
    assert log_lines(a, "notify-log") == ["from the HTTP APIhi"]
    assert text(b, "notify-unread") == "2"

    ARTIFACTS.mkdir(exist_ok=True)
    a.evaluate("window.scrollTo(0, 0), true")
    a.screenshot(ARTIFACTS / "demo-page.png")
    assert (ARTIFACTS / "demo-page.png").stat().st_size > 10_000

    # Closing B's tab: A's online count drops to 1 and A's room says Bob left.
    browser.close_page(b)
    a.wait_for("document.getElementById('online-count').textContent === '1'")
    a.wait_for("[...document.querySelectorAll('#chat-log li')].some(li => li.textContent === 'Bob has left')")
    a.wait_for("document.querySelectorAll('#online-names li').length === 1")
    assert names(a, "online-names") == ["Ann"] and names(a, "room-members") == ["Ann"]
    wait_until(lambda: api(http_url, "GET", "/api/topics/online")["subscribers"] == 1, what="server's online count")
    browser.close_page(a)


def test_online_count_is_exact_after_concurrent_joins_and_disconnects(socket_url, http_url):
    """20 sockets join `online` at once, then 10 of them drop at once: every client ends up showing
    the server's count (the highest `seq` wins, whatever order the broadcasts arrived in)."""
    import asyncio

    import websockets

    from support import run_bounded

    async def member(index: int, shown: dict[int, int], stop: asyncio.Event) -> None:
        async with websockets.connect(f"{socket_url}?vsn=2.0.0") as ws:
            await ws.send(json.dumps(["1", "1", "online", "phx_join", {}]))
            best = 0
            while True:
                receive = asyncio.ensure_future(ws.recv())
                stopped = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({receive, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if stopped in done:
                    receive.cancel()
                    return
                stopped.cancel()
                _, _, _, event, payload = json.loads(receive.result())
                if event == "session-count" and payload["seq"] > best:
                    best = payload["seq"]
                    shown[index] = payload["count"]

    async def scenario() -> None:
        # Tabs closed by earlier tests may still be leaving; start from an empty topic.
        wait_until(lambda: api(http_url, "GET", "/api/topics/online")["subscribers"] == 0, what="no one online")
        baseline = 0
        shown: dict[int, int] = {}
        stops = [asyncio.Event() for _ in range(20)]
        tasks = [asyncio.create_task(member(i, shown, stops[i])) for i in range(20)]

        async def settle(members: range, count: int) -> None:
            deadline = asyncio.get_running_loop().time() + 10
            while not all(shown.get(i) == count for i in members):
                assert asyncio.get_running_loop().time() < deadline, f"expected {count} everywhere, shown {shown}"
                await asyncio.sleep(0.02)

        await settle(range(20), baseline + 20)
        assert api(http_url, "GET", "/api/topics/online")["subscribers"] == baseline + 20
        for stop in stops[10:]:
            stop.set()
        await asyncio.gather(*tasks[10:])
        await settle(range(10), baseline + 10)
        assert api(http_url, "GET", "/api/topics/online")["subscribers"] == baseline + 10
        for stop in stops[:10]:
            stop.set()
        await asyncio.gather(*tasks[:10])

    run_bounded(scenario())
