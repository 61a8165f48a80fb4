"""Chromium's native WebSocket against plain channels and the Phoenix socket."""
import json
import time

from support import STEP_TIMEOUT_S, publish


# A tiny promise-based client written in the page: open, collect messages, close.
HELPERS = r"""
window.openSocket = (url) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url);
  const inbox = [], waiters = [];
  ws.onmessage = (e) => { const v = JSON.parse(e.data); const w = waiters.shift(); w ? w(v) : inbox.push(v); };
  ws.next = () => new Promise((res, rej) => {
    if (inbox.length) return res(inbox.shift());
    waiters.push(res);
    setTimeout(() => rej(new Error("no message within 5 s")), 5000);
  });
  ws.onopen = () => resolve(ws);
  ws.onerror = () => reject(new Error("connection failed"));
});
true
"""


def test_native_websocket_plain_channels(browser, base_url, http_url, examples_url):
    browser.navigate(f"{http_url}/")
    assert browser.evaluate(HELPERS) is True
    result = browser.evaluate(
        f"""(async () => {{
            const greet = await openSocket("{examples_url}/greet/chromium");
            greet.send(JSON.stringify({{name: "Alice"}}));
            const greeting = await greet.next();
            greet.close();
            const a = await openSocket("{base_url}/chat/browser-room?user=a");
            const aJoined = await a.next();
            const b = await openSocket("{base_url}/chat/browser-room?user=b");
            await b.next(); await a.next();
            a.send(JSON.stringify({{body: "from the browser"}}));
            const atB = await b.next();
            const atA = await a.next();
            a.send("not json");
            const error = await a.next();
            a.close(); b.close();
            return {{greeting, aJoined, atB, atA, error}};
        }})()"""
    )
    assert result == {
        "greeting": {"greeting": "Hello, Alice", "from": "chromium"},
        "aJoined": {"type": "joined", "user": "a"},
        "atB": {"type": "message", "user": "a", "body": "from the browser"},
        "atA": {"type": "message", "user": "a", "body": "from the browser"},
        "error": {"type": "error", "reason": "invalid JSON"},
    }


def test_native_websocket_phoenix_v2(browser, base_url, http_url):
    browser.navigate(f"{http_url}/")
    assert browser.evaluate(HELPERS) is True
    result = browser.evaluate(
        f"""(async () => {{
            const ws = await openSocket("{base_url}/socket/websocket?vsn=2.0.0");
            ws.send(JSON.stringify(["1", "1", "room:chromium", "phx_join", {{user: "web"}}]));
            const joined = await ws.next();
            ws.send(JSON.stringify(["1", "2", "room:chromium", "new_msg", {{body: "hey"}}]));
            const frames = [await ws.next(), await ws.next()];
            ws.close();
            return {{joined, frames}};
        }})()"""
    )
    assert result["joined"] == ["1", "1", "room:chromium", "phx_reply", {"status": "ok", "response": {}}]
    canon = lambda frame: json.dumps(frame, sort_keys=True)
    assert sorted(map(canon, result["frames"])) == sorted(map(canon, [
        [None, None, "room:chromium", "new_msg", {"user": "web", "body": "hey"}],
        ["1", "2", "room:chromium", "phx_reply", {"status": "ok", "response": {}}],
    ]))


def test_listen_only_browser_websocket_stays_connected_on_a_quiet_topic(browser, base_url, http_url):
    """A browser's WebSocket cannot send pings: on a topic quieter than the 60 s idle timeout the
    server pings it (every 25 s of silence), Chromium answers, and it stays connected and keeps
    receiving for 3 minutes, with the server's default settings (issue 18, item 5)."""
    topic = f"public:quiet-{time.monotonic_ns()}"

    browser.navigate(f"{http_url}/")
    assert browser.evaluate(
        f"""new Promise((resolve, reject) => {{
            const ws = new WebSocket("{base_url}/ws/{topic}");
            window.quiet = {{ws, received: [], closed: null}};
            ws.onmessage = (e) => window.quiet.received.push(JSON.parse(e.data));
            ws.onclose = (e) => {{ window.quiet.closed = {{code: e.code, reason: e.reason}}; }};
            ws.onopen = () => resolve(true);
            ws.onerror = () => reject(new Error("connection failed"));
        }})"""
    ) is True
    # Publishes 70 s apart (more than the idle timeout); the page sends nothing at all.
    started = time.monotonic()
    for n, at in enumerate([1, 71, 141, 181]):
        time.sleep(max(0.0, started + at - time.monotonic()))
        publish(http_url, topic, "e", {"n": n})
    browser.wait_for("window.quiet.received.length === 4 || window.quiet.closed !== null", timeout=STEP_TIMEOUT_S)
    state = browser.evaluate("({received: window.quiet.received, closed: window.quiet.closed, open: window.quiet.ws.readyState === 1})")
    assert state == {"received": [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}], "closed": None, "open": True}
    browser.evaluate("window.quiet.ws.close(); true")
