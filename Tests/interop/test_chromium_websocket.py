"""Chromium's native WebSocket against plain channels and the Phoenix socket."""
import json


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


def test_native_websocket_plain_channels(browser, base_url, http_url):
    browser.navigate(f"{http_url}/")
    assert browser.evaluate(HELPERS) is True
    result = browser.evaluate(
        f"""(async () => {{
            const greet = await openSocket("{base_url}/greet/chromium");
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
