"""switchboard.js (served at /switchboard.js) driven in headless Chromium against the real server:
joins accepted and refused, pushes and their replies, leave, heartbeats, heartbeat timeout,
reconnect with rejoin after the server drops the connection."""
from __future__ import annotations

import json
import re
import secrets
import urllib.request
from pathlib import Path

import pytest

from conftest import API_KEY

# Loaded into a same-origin page: the library, plus `until(fn)`, a bounded poll.
PRELUDE = r"""
(async () => {
  window.sb = await import("/switchboard.js");
  window.until = async (fn, what = "condition", ms = 8000) => {
    const deadline = performance.now() + ms;
    for (;;) {
      const value = fn();
      if (value) return value;
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  // A push's outcome as a value: {status, response}.
  window.outcome = (push) => new Promise((resolve) => {
    for (const status of ["ok", "error", "timeout"]) push.receive(status, (response) => resolve({status, response}));
  });
  return true;
})()
"""


@pytest.fixture(scope="module")
def page(browser, http_url):
    page = browser.open_page(f"{http_url}/health")
    assert page.evaluate(PRELUDE) is True
    return page


def api(http_url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{http_url}{path}", method="POST", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"{}")


def test_join_push_reply_broadcast_and_leave(page):
    result = page.evaluate(
        r"""(async () => {
          const socket = new sb.Socket("/socket", {params: {user_id: "js-basic"}});
          const opened = new Promise((r) => socket.onOpen(r));
          socket.connect();
          const room = socket.channel("room:js-basic", {user: "js"});
          const messages = [];
          room.on("new_msg", (payload) => messages.push(payload));
          const join = await outcome(room.join());
          const state = room.state;
          await opened;
          const sent = await outcome(room.push("new_msg", {body: "hello"}));
          await until(() => messages.length === 1, "the broadcast");
          const refused = await outcome(room.push("new_msg", {}));
          const unknown = await outcome(room.push("no_such_event", {}));
          // No reply (realtime broadcast without ack): the push times out locally.
          const realtime = socket.channel("realtime:js-basic", {config: {broadcast: {ack: false}}});
          await outcome(realtime.join());
          const silent = await outcome(realtime.push("broadcast", {type: "broadcast", event: "e", payload: {}}, 300));
          let closed = null;
          room.onClose((info) => { closed = info; });
          const left = await outcome(room.leave());
          const afterLeave = {state: room.state, closed, channels: socket.channels.map((c) => c.topic)};
          socket.disconnect();
          return {join, state, sent, messages, refused, unknown, silent, left, afterLeave, url: socket.endPointURL()};
        })()"""
    )
    assert result["join"] == {"status": "ok", "response": {}}
    assert result["state"] == "joined"
    assert result["sent"] == {"status": "ok", "response": {}}
    assert result["messages"] == [{"user": "js", "body": "hello"}]
    assert result["refused"] == {"status": "error", "response": {"reason": "body is required"}}
    assert result["unknown"] == {"status": "error", "response": {"reason": "unknown event"}}
    assert result["silent"] == {"status": "timeout", "response": {}}
    assert result["left"] == {"status": "ok", "response": {}}
    assert result["afterLeave"] == {"state": "closed", "closed": {"reason": "left"}, "channels": ["realtime:js-basic"]}
    assert result["url"].endswith("/socket/websocket?user_id=js-basic&vsn=2.0.0")


def test_refused_joins_are_errors_and_close_the_channel(page):
    result = page.evaluate(
        r"""(async () => {
          const socket = new sb.Socket("/socket", {params: {user_id: "js-owner"}});
          socket.connect();
          const own = socket.channel("notifications:js-owner");
          const other = socket.channel("notifications:someone-else");
          let closed = null;
          other.onClose((info) => { closed = info; });
          const unknown = socket.channel("nope:1");
          const results = {
            own: await outcome(own.join()),
            other: await outcome(other.join()),
            unknown: await outcome(unknown.join()),
          };
          results.states = [own.state, other.state, unknown.state];
          results.closed = closed;
          results.topics = socket.channels.map((c) => c.topic);
          // A push before join() is a programming error, reported at once.
          try { socket.channel("room:x").push("new_msg", {}); results.threw = false; } catch { results.threw = true; }
          socket.disconnect();
          return results;
        })()"""
    )
    assert result["own"] == {"status": "ok", "response": {}}
    assert result["other"] == {"status": "error", "response": {"reason": "unauthorized"}}
    assert result["unknown"] == {"status": "error", "response": {"reason": "unmatched topic"}}
    assert result["states"] == ["joined", "closed", "closed"]
    assert result["closed"] == {"reason": "join refused", "response": {"reason": "unauthorized"}}
    assert result["topics"] == ["notifications:js-owner"]  # refused channels are forgotten
    assert result["threw"] is True


def test_pushes_before_the_join_reply_are_buffered_then_sent(page):
    result = page.evaluate(
        r"""(async () => {
          const socket = new sb.Socket("/socket");
          const room = socket.channel("room:js-buffer", {user: "early"});
          const messages = [];
          room.on("new_msg", (payload) => messages.push(payload.body));
          room.join();
          const first = outcome(room.push("new_msg", {body: "one"}));
          const second = outcome(room.push("new_msg", {body: "two"}));
          socket.connect();  // joined, then the buffered pushes go out in order
          const replies = [await first, await second];
          await until(() => messages.length === 2, "both broadcasts");
          socket.disconnect();
          return {replies, messages};
        })()"""
    )
    assert result["replies"] == [{"status": "ok", "response": {}}] * 2
    assert result["messages"] == ["one", "two"]


def test_heartbeats_are_answered_and_keep_the_socket_open(page):
    result = page.evaluate(
        r"""(async () => {
          const socket = new sb.Socket("/socket", {heartbeatIntervalMs: 100});
          const replies = [];
          let closes = 0;
          socket.onClose(() => { closes += 1; });
          socket.onMessage((m) => { if (m.topic === "phoenix") replies.push(m); });
          socket.connect();
          await until(() => replies.length >= 5, "five heartbeat replies");
          const connected = socket.isConnected();
          socket.disconnect();
          return {replies: replies.slice(0, 2), connected, closes};
        })()"""
    )
    assert result["connected"] is True
    assert result["closes"] == 1  # only the disconnect() at the end
    for reply in result["replies"]:
        assert reply["event"] == "phx_reply" and reply["joinRef"] is None
        assert reply["payload"] == {"status": "ok", "response": {}}


def test_unanswered_heartbeat_closes_and_reconnects(page):
    # A transport that opens and accepts frames but never answers: the heartbeat times out.
    result = page.evaluate(
        r"""(async () => {
          class Silent {
            static made = [];
            constructor(url) {
              this.url = url; this.readyState = 0; this.sent = []; this.closedWith = null;
              Silent.made.push(this);
              setTimeout(() => { this.readyState = 1; this.onopen?.(); }, 0);
            }
            send(data) { this.sent.push(JSON.parse(data)); }
            close(code, reason) {
              this.closedWith = {code, reason}; this.readyState = 3;
              setTimeout(() => this.onclose?.({code, reason}), 0);
            }
          }
          const closes = [];
          const socket = new sb.Socket("ws://example.invalid/socket", {
            transport: Silent, heartbeatIntervalMs: 50, reconnectAfterMs: () => 10,
          });
          socket.onClose((event) => closes.push({code: event.code, reason: event.reason}));
          socket.connect();
          await until(() => Silent.made.length >= 2 && Silent.made[1].readyState === 1, "a reconnect");
          socket.disconnect();
          const made = Silent.made.length;
          await new Promise((r) => setTimeout(r, 200));  // 20 reconnect delays: none may happen
          return {
            url: Silent.made[0].url, first: Silent.made[0].sent, closedWith: Silent.made[0].closedWith,
            closes, madeAfterDisconnect: Silent.made.length - made, state: socket.connectionState(),
          };
        })()"""
    )
    assert result["url"] == "ws://example.invalid/socket/websocket?vsn=2.0.0"
    assert result["first"] == [[None, "1", "phoenix", "heartbeat", {}]]
    assert result["closedWith"] == {"code": 1000, "reason": "heartbeat timeout"}
    assert result["closes"][0] == {"code": 1000, "reason": "heartbeat timeout"}
    assert result["closes"][-1] == {"code": 1000, "reason": "client disconnect"}
    assert result["madeAfterDisconnect"] == 0
    assert result["state"] == "closed"


def test_backoff_doubles_with_jitter(page):
    delays = page.evaluate(
        "(() => { const f = sb.exponentialBackoff(100, 1000);"
        " return [1, 2, 3, 4, 5, 6].map((t) => Array.from({length: 50}, () => f(t))); })()"
    )
    for tries, samples in enumerate(delays, start=1):
        ceiling = min(1000, 100 * 2 ** (tries - 1))
        assert all(ceiling / 2 <= d <= ceiling for d in samples), (tries, samples)
        assert len(set(samples)) > 1, "jitter: not every client waits the same"


def test_reconnect_and_rejoin_after_the_server_disconnects(page, http_url):
    user = f"js-{secrets.token_hex(4)}"
    page.evaluate(
        f"""(async () => {{
          const socket = new sb.Socket("/socket", {{params: {{user_id: "{user}"}}, reconnectAfterMs: () => 50}});
          const log = {{opens: 0, closes: [], errors: 0, notifications: [], joins: 0, channelErrors: []}};
          socket.onOpen(() => {{ log.opens += 1; }});
          socket.onClose((e) => log.closes.push(e.code));
          const inbox = socket.channel("notifications:{user}");
          inbox.on("notification", (payload) => log.notifications.push(payload));
          inbox.onError((info) => log.channelErrors.push(info));
          inbox.join().receive("ok", () => {{ log.joins += 1; }});
          socket.connect();
          await until(() => log.joins === 1, "the first join");
          window.reconnecting = {{socket, inbox, log, firstJoinRef: inbox.joinRef}};
          return true;
        }})()"""
    )
    assert api(http_url, "/api/disconnect", {"user": user}) == {}
    page.wait_for("reconnecting.log.joins === 2 && reconnecting.inbox.state === 'joined'")
    assert api(http_url, "/api/broadcast", {"topic": f"notifications:{user}", "event": "notification", "payload": {"body": "after"}}) == {"published": 1}
    page.wait_for("reconnecting.log.notifications.length === 1")
    result = page.evaluate(
        "(() => { const r = reconnecting; r.socket.disconnect();"
        " return {...r.log, rejoinedWithNewRef: r.inbox.joinRef !== r.firstJoinRef, state: r.inbox.state}; })()"
    )
    assert result["opens"] == 2
    assert result["closes"][0] == 1001  # the server's "disconnected"
    assert result["closes"][1:] == [1000]  # the disconnect() above: no channel error for it
    assert result["channelErrors"] == [{"reason": "connection lost"}]
    assert result["state"] == "errored"  # waits to rejoin on the next connect()
    assert result["rejoinedWithNewRef"] is True
    assert result["notifications"] == [{"body": "after"}]


def test_history_topics_recover_what_was_missed_while_the_connection_was_cut(page, http_url):
    user = f"js-{secrets.token_hex(4)}"
    topic = f"feed:js-{secrets.token_hex(4)}"  # the demo's feed:* keeps history

    def publish(first: int, count: int) -> None:
        messages = [{"topic": topic, "event": "item", "payload": {"i": i}} for i in range(first, first + count)]
        assert api(http_url, "/api/broadcast", {"messages": messages}) == {"published": count}

    page.evaluate(
        f"""(async () => {{
          const socket = new sb.Socket("/socket", {{params: {{user_id: "{user}"}}, reconnectAfterMs: () => 700}});
          const log = {{items: [], refs: [], replies: [], sentJoins: []}};
          const feed = socket.channel("{topic}", {{hello: "kept"}});
          feed.on("item", (payload, ref) => {{ log.items.push(payload.i); log.refs.push(ref); }});
          feed.join().receive("ok", (response) => log.replies.push(response));
          const send = socket.send.bind(socket);
          socket.send = (frame) => {{ if (frame[3] === "phx_join") log.sentJoins.push(frame[4]); return send(frame); }};
          socket.connect();
          await until(() => log.replies.length === 1, "the first join");
          window.recovering = {{socket, feed, log}};
          return true;
        }})()"""
    )
    publish(1, 3)
    page.wait_for("recovering.log.items.length === 3")
    assert api(http_url, "/api/disconnect", {"user": user}) == {}
    page.wait_for("recovering.feed.state === 'errored'")
    publish(4, 4)  # while the socket waits 700 ms to reconnect
    page.wait_for("recovering.log.replies.length === 2 && recovering.log.items.length === 7", timeout=10)
    publish(8, 1)
    page.wait_for("recovering.log.items.length === 8")
    result = page.evaluate("(() => { const r = recovering; r.socket.disconnect(); return {...r.log, position: r.feed.position}; })()")
    epoch = result["replies"][0]["position"]["epoch"]
    assert result["replies"][0] == {"position": {"epoch": epoch, "offset": 0}}
    assert result["replies"][1] == {"recovered": True, "position": {"epoch": epoch, "offset": 7}}
    assert result["items"] == list(range(1, 9)), "every message once, in order"
    assert result["refs"] == [f"{epoch}:{i}" for i in range(1, 9)]
    assert result["sentJoins"] == [{"hello": "kept"}, {"hello": "kept", "recover": {"epoch": epoch, "offset": 3}}]
    assert result["position"] == {"epoch": epoch, "offset": 8}


def test_readme_example_runs_as_written(page):
    """The README's switchboard.js example, run as an inline module script of a page."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The demo page and switchboard.js", 1)[1]
    script = re.search(r'```html\n<script type="module">\n(.*?)</script>\n```', section, re.S).group(1)
    page.evaluate(
        """(() => {
          window.printed = [];
          const log = console.log;
          console.log = (...args) => { printed.push(args.join(" ")); log(...args); };
          const element = document.createElement("script");
          element.type = "module";
          element.textContent = %s;
          document.body.append(element);
          return true;
        })()""" % json.dumps(script)
    )
    page.wait_for("printed.includes('sent') && printed.includes('ann: hello')")
    assert page.evaluate("printed")[:1] == ["connected"]
