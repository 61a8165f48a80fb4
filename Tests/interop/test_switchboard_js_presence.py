"""switchboard.js's `Presence` in headless Chromium.

Against the real server: tabs in isolated browser contexts (other users) join the built-in
`online` topic (presence on: every joined connection is tracked under its `user_id` connect param,
with meta = the join's `presence_meta` plus `online_at` and `transport`) and see each other join,
update and leave, a user with two tabs once with two metas, and keys such as `__proto__`.
In the page, with scripted frames: diffs before the snapshot of the current join are held back
(and those of an earlier join dropped), custom event names, and the static helpers.
Last, the demo page: names in `online-names`, the current chat room's people in `room-members`.
"""
from __future__ import annotations

import json
import secrets
import time
import urllib.request

from conftest import API_KEY
from test_switchboard_js import PRELUDE as LIBRARY_PRELUDE

# `openTab(userId, meta)`: a socket joined to `online` whose Presence records every callback in
# `tab.events` (after LIBRARY_PRELUDE: the library as `sb`, and `until(fn)`, a bounded poll).
TABS = r"""
(() => {
  const names = (entry) => (entry ? entry.metas.map((m) => m.name) : null);
  window.openTab = (userId, meta) => {
    const socket = new sb.Socket("/socket", {params: {user_id: userId}});
    const channel = socket.channel("online", {presence_meta: meta});
    const presence = new sb.Presence(channel);
    const tab = {socket, channel, presence, events: [], syncs: 0, lastMetas: {}};
    presence.onJoin((key, current, joined) => {
      tab.events.push(["join", key, names(current), names(joined)]);
      tab.lastMetas[key] = joined.metas[joined.metas.length - 1];
    });
    presence.onLeave((key, remaining, left) => tab.events.push(["leave", key, names(remaining), names(left)]));
    presence.onSync(() => { tab.syncs += 1; });
    tab.keys = () => presence.list((key) => key).sort();
    tab.names = () => Object.fromEntries(presence.list((key, entry) => [key, entry.metas.map((m) => m.name)]));
    tab.of = (key) => tab.events.filter((e) => e[1] === key);
    socket.connect();
    tab.joined = new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject));
    window.tab = tab;
    return true;
  };
  return true;
})()
"""


def prelude(page) -> None:
    assert page.evaluate(LIBRARY_PRELUDE) is True
    assert page.evaluate(TABS) is True


def api(http_url: str, path: str) -> dict:
    request = urllib.request.Request(f"{http_url}{path}", headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def online_users(http_url: str) -> dict:
    return api(http_url, "/api/topics/online/presence")["presences"]


def wait_for_nobody_online(http_url: str, timeout: float = 10.0) -> None:
    """Tabs of earlier tests may still be leaving `online`; the tests below list it exactly."""
    deadline = time.monotonic() + timeout
    while online_users(http_url):
        assert time.monotonic() < deadline, f"still online: {sorted(online_users(http_url))}"
        time.sleep(0.05)


def open_tab(browser, http_url: str, user_id: str, meta: dict):
    """A tab in a browser context of its own, joined to `online` as `user_id` with `meta`."""
    page = browser.open_page(f"{http_url}/health")
    prelude(page)
    assert page.evaluate(f"openTab({json.dumps(user_id)}, {json.dumps(meta)})") is True
    page.evaluate("tab.joined.then(() => true)", timeout=10)
    return page


def js(value) -> str:
    return json.dumps(value)


def test_two_users_see_each_other_join_update_and_leave(browser, http_url):
    wait_for_nobody_online(http_url)
    ann, bob = f"ann-{secrets.token_hex(3)}", f"bob-{secrets.token_hex(3)}"
    a = open_tab(browser, http_url, ann, {"name": "Ann"})
    a.wait_for(f"tab.keys().join() === {js(ann)}")
    b = open_tab(browser, http_url, bob, {"name": "Bob"})

    # Each sees the other: one onJoin for the other's key, new (no current entry), with its meta.
    a.wait_for(f"tab.keys().join() === {js(','.join(sorted([ann, bob])))}")
    b.wait_for(f"tab.keys().join() === {js(','.join(sorted([ann, bob])))}")
    assert a.evaluate(f"tab.of({js(bob)})") == [["join", bob, None, ["Bob"]]]
    assert b.evaluate(f"tab.of({js(ann)})") == [["join", ann, None, ["Ann"]]]
    # The tab's own key: a join first seen as new (the server may announce it in the snapshot,
    # the diff, or both; a join repeating known phx_refs changes nothing).
    assert a.evaluate(f"tab.of({js(ann)})")[0] == ["join", ann, None, ["Ann"]]
    assert a.evaluate("tab.names()") == {ann: ["Ann"], bob: ["Bob"]}
    assert b.evaluate("tab.names()") == {ann: ["Ann"], bob: ["Bob"]}
    meta = a.evaluate(f"tab.lastMetas[{js(bob)}]")
    assert set(meta) == {"name", "online_at", "transport", "phx_ref"}
    assert meta["name"] == "Bob" and meta["transport"] == "websocket"
    assert isinstance(meta["online_at"], int) and abs(meta["online_at"] / 1000 - time.time()) < 60
    assert isinstance(meta["phx_ref"], str) and meta["phx_ref"]
    # list(): one {metas} entry per key by default, the chooser's items otherwise.
    listed = b.evaluate("tab.presence.list()")
    assert sorted(len(entry["metas"]) for entry in listed) == [1, 1]
    assert sorted(m["name"] for entry in listed for m in entry["metas"]) == ["Ann", "Bob"]
    assert a.evaluate("tab.syncs") >= 2 and b.evaluate("tab.syncs") >= 1
    # The state is prototype-less; the server's view is the same.
    assert a.evaluate("Object.getPrototypeOf(tab.presence.state) === null") is True
    assert sorted(online_users(http_url)) == sorted([ann, bob])

    # presence_update: the server sends one diff with bob in joins (new meta) and leaves (old
    # one); joins are applied first, so bob never disappears.
    syncs = a.evaluate("tab.syncs")
    before = len(a.evaluate("tab.events"))
    assert b.evaluate("new Promise((r) => tab.channel.push('presence_update', {meta: {name: 'Bobby'}}).receive('ok', () => r(true)))") is True
    a.wait_for(f"tab.syncs > {syncs}")
    assert a.evaluate("tab.events")[before:] == [
        ["join", bob, ["Bob"], ["Bobby"]],
        ["leave", bob, ["Bobby"], ["Bob"]],
    ]
    assert a.evaluate(f"tab.lastMetas[{js(bob)}].phx_ref_prev") == meta["phx_ref"]
    assert a.evaluate("tab.names()") == {ann: ["Ann"], bob: ["Bobby"]}
    assert a.evaluate("tab.syncs") == syncs + 1  # one diff, one sync

    # Bob closes his tab: Ann sees him leave (no metas remain) and the list shrinks.
    before = len(a.evaluate("tab.events"))
    browser.close_page(b)
    a.wait_for(f"tab.keys().join() === {js(ann)}")
    assert a.evaluate("tab.events")[before:] == [["leave", bob, [], ["Bobby"]]]
    assert a.evaluate("tab.presence.list((key, entry) => [key, entry.metas.length])") == [[ann, 1]]
    browser.close_page(a)


def test_a_user_with_two_tabs_is_listed_once_and_leaves_with_the_last_tab(browser, http_url):
    wait_for_nobody_online(http_url)
    ann, bob = f"ann-{secrets.token_hex(3)}", f"bob-{secrets.token_hex(3)}"
    a = open_tab(browser, http_url, ann, {"name": "Ann"})
    a.wait_for(f"tab.keys().join() === {js(ann)}")
    b1 = open_tab(browser, http_url, bob, {"name": "Bob", "device": "laptop"})
    a.wait_for("tab.keys().length === 2")
    b2 = open_tab(browser, http_url, bob, {"name": "Bob", "device": "phone"})
    a.wait_for(f"(tab.presence.state[{js(bob)}]?.metas.length ?? 0) === 2")
    b1.wait_for(f"(tab.presence.state[{js(bob)}]?.metas.length ?? 0) === 2")
    for page in (a, b1, b2):
        page.wait_for("tab.keys().length === 2 && tab.presence.list().every((e) => e.metas.length >= 1)")
        devices = page.evaluate("tab.presence.list((key, e) => [key, e.metas.map((m) => m.device ?? null)])")
        assert sorted(devices) == sorted([[ann, [None]], [bob, ["laptop", "phone"]]])
    assert a.evaluate(f"tab.of({js(bob)})") == [["join", bob, None, ["Bob"]], ["join", bob, ["Bob"], ["Bob"]]]
    assert len(online_users(http_url)[bob]["metas"]) == 2

    # One of bob's tabs leaves the channel: he is still here, with one meta.
    before = len(a.evaluate("tab.events"))
    assert b2.evaluate("new Promise((r) => tab.channel.leave().receive('ok', () => r(true)))") is True
    a.wait_for(f"tab.presence.state[{js(bob)}]?.metas.length === 1")
    assert a.evaluate("tab.events")[before:] == [["leave", bob, ["Bob"], ["Bob"]]]
    assert a.evaluate(f"tab.presence.state[{js(bob)}].metas[0].device") == "laptop"
    assert a.evaluate("tab.keys()") == sorted([ann, bob])

    # The last one closes: bob is gone.
    browser.close_page(b1)
    a.wait_for(f"tab.keys().join() === {js(ann)}")
    assert a.evaluate("tab.events")[before + 1:] == [["leave", bob, [], ["Bob"]]]
    browser.close_page(b2)
    browser.close_page(a)


def test_keys_like_proto_and_constructor_over_the_server(browser, http_url):
    """The server takes any user id; keys that name Object.prototype members are ordinary keys."""
    wait_for_nobody_online(http_url)
    a = open_tab(browser, http_url, "__proto__", {"name": "Proto"})
    a.wait_for("tab.keys().join() === '__proto__'")
    b = open_tab(browser, http_url, "constructor", {"name": "Ctor"})
    c = open_tab(browser, http_url, "toString", {"name": "Str"})
    expected = {"__proto__": ["Proto"], "constructor": ["Ctor"], "toString": ["Str"]}
    for page in (a, b, c):
        page.wait_for("tab.keys().length === 3")
        assert page.evaluate("tab.names()") == expected
        assert page.evaluate("Object.keys(tab.presence.state).sort()") == ["__proto__", "constructor", "toString"]
    assert c.evaluate("tab.of('__proto__')") == [["join", "__proto__", None, ["Proto"]]]
    assert a.evaluate("tab.of('constructor')") == [["join", "constructor", None, ["Ctor"]]]
    # Nothing leaked into Object.prototype.
    assert a.evaluate("({}).metas === undefined && typeof ({}).toString === 'function' && Object.getPrototypeOf({}) === Object.prototype") is True
    browser.close_page(b)
    a.wait_for("tab.keys().join() === '__proto__,toString'")
    assert a.evaluate("tab.of('constructor')")[-1] == ["leave", "constructor", [], ["Ctor"]]
    browser.close_page(a)
    c.wait_for("tab.keys().join() === 'toString'")
    assert c.evaluate("tab.of('__proto__')")[-1] == ["leave", "__proto__", [], ["Proto"]]
    browser.close_page(c)


# A transport the page scripts: it records what the socket sends, and `deliver(frame)` plays the
# server. Each `new` is one connection (a reconnect makes another).
FAKE_SERVER = r"""
class Scripted {
  static made = [];
  constructor(url) {
    this.readyState = 0; this.sent = [];
    Scripted.made.push(this);
    setTimeout(() => { this.readyState = 1; this.onopen?.(); }, 0);
  }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code, reason) { this.readyState = 3; setTimeout(() => this.onclose?.({code, reason}), 0); }
  deliver(frame) { this.onmessage?.({data: JSON.stringify(frame)}); }
  drop() { this.readyState = 3; this.onclose?.({code: 1006, reason: "dropped"}); }
}
const conn = () => Scripted.made[Scripted.made.length - 1];
const refs = (entry) => entry.metas.map((m) => m.phx_ref);
const record = (presence) => {
  const log = [];
  presence.onJoin((key, current, joined) => log.push(["join", key, current ? refs(current) : null, refs(joined)]));
  presence.onLeave((key, remaining, left) => log.push(["leave", key, refs(remaining), refs(left)]));
  presence.onSync(() => log.push(["sync", presence.list((key, entry) => key + ":" + refs(entry).join("+"))]));
  return log;
};
// The join ref of the phx_join sent over connection number `n` (1, 2, …).
const joinOn = async (n) => {
  const frame = await until(() => Scripted.made.length === n && conn().sent.find((f) => f[3] === "phx_join"), `the join over connection ${n}`);
  return frame[0];
};
"""


def test_diffs_before_the_snapshot_of_the_current_join_are_held_back(browser, http_url):
    page = browser.open_page(f"{http_url}/health")
    prelude(page)
    result = page.evaluate(
        "(async () => {" + FAKE_SERVER + r"""
          const socket = new sb.Socket("ws://example.invalid/socket", {
            transport: Scripted, heartbeatIntervalMs: 0, reconnectAfterMs: () => 10, rejoinAfterMs: () => 10,
          });
          const topic = "room:scripted";
          const channel = socket.channel(topic);
          const presence = new sb.Presence(channel);
          const log = record(presence);
          const steps = {};
          channel.join();
          socket.connect();

          // Join 1: reply, then a diff before the snapshot: held back.
          const j1 = await joinOn(1);
          conn().deliver([j1, j1, topic, "phx_reply", {status: "ok", response: {}}]);
          conn().deliver([null, null, topic, "presence_diff", {joins: {u2: {metas: [{phx_ref: "r2"}]}}, leaves: {}}]);
          steps.beforeState = {pending: presence.inPendingSyncState(), list: presence.list(), log: [...log]};
          // The snapshot: applied, then the held-back diff, then one sync.
          conn().deliver([j1, null, topic, "presence_state", {u1: {metas: [{phx_ref: "r1"}]}}]);
          steps.afterState = {pending: presence.inPendingSyncState(), log: log.splice(0)};
          // Synced: a diff applies at once (joins first, then leaves).
          conn().deliver([null, null, topic, "presence_diff", {
            joins: {u1: {metas: [{phx_ref: "r1b"}]}}, leaves: {u1: {metas: [{phx_ref: "r1"}]}, u9: {metas: [{phx_ref: "x"}]}},
          }]);
          steps.update = log.splice(0);

          // The connection drops; join 2 gets a new join ref: diffs wait for its snapshot again.
          conn().drop();
          const j2 = await joinOn(2);
          conn().deliver([j2, j2, topic, "phx_reply", {status: "ok", response: {}}]);
          conn().deliver([null, null, topic, "presence_diff", {joins: {u3: {metas: [{phx_ref: "r3"}]}}, leaves: {}}]);
          // A frame of join 1 arriving late is dropped by the channel.
          conn().deliver([j1, null, topic, "presence_state", {}]);
          steps.beforeState2 = {pending: presence.inPendingSyncState(), newJoinRef: j2 !== j1, log: log.splice(0)};
          // Its snapshot: u1 (its update) and u2 are gone, u5 is new; then u3 from the held diff.
          conn().deliver([j2, null, topic, "presence_state", {u1: {metas: [{phx_ref: "r1b"}]}, u5: {metas: [{phx_ref: "r5"}]}}]);
          steps.afterState2 = log.splice(0);

          // Join 3 gets a diff but the connection drops before its snapshot: join 4's snapshot
          // covers what happened meanwhile, so join 3's held diff is dropped, not applied after it.
          conn().drop();
          const j3 = await joinOn(3);
          conn().deliver([j3, j3, topic, "phx_reply", {status: "ok", response: {}}]);
          conn().deliver([null, null, topic, "presence_diff", {joins: {ghost: {metas: [{phx_ref: "g"}]}}, leaves: {}}]);
          conn().drop();
          const j4 = await joinOn(4);
          conn().deliver([j4, j4, topic, "phx_reply", {status: "ok", response: {}}]);
          steps.beforeState4 = {pending: presence.inPendingSyncState(), log: log.splice(0)};
          conn().deliver([j4, null, topic, "presence_state", {u5: {metas: [{phx_ref: "r5"}]}}]);
          steps.afterState4 = log.splice(0);
          socket.disconnect();
          return steps;
        })()"""
    )
    assert result["beforeState"] == {"pending": True, "list": [], "log": []}
    assert result["afterState"] == {
        "pending": False,
        "log": [["join", "u1", None, ["r1"]], ["join", "u2", None, ["r2"]], ["sync", ["u1:r1", "u2:r2"]]],
    }
    assert result["update"] == [
        ["join", "u1", ["r1"], ["r1b"]],
        ["leave", "u1", ["r1b"], ["r1"]],  # u9 is unknown: no callback
        ["sync", ["u1:r1b", "u2:r2"]],
    ]
    assert result["beforeState2"] == {"pending": True, "newJoinRef": True, "log": []}
    assert result["afterState2"] == [
        ["join", "u5", None, ["r5"]],
        ["leave", "u2", [], ["r2"]],
        ["join", "u3", None, ["r3"]],
        ["sync", ["u1:r1b", "u5:r5", "u3:r3"]],
    ]
    assert result["beforeState4"] == {"pending": True, "log": []}
    assert result["afterState4"] == [
        ["leave", "u1", [], ["r1b"]],
        ["leave", "u3", [], ["r3"]],
        ["sync", ["u5:r5"]],
    ]


def test_custom_event_names_and_a_phoenix_js_style_channel(browser, http_url):
    """Only `channel.on` is used: a channel with `joinRef()` as a method (phoenix.js) works too."""
    page = browser.open_page(f"{http_url}/health")
    prelude(page)
    result = page.evaluate(
        r"""(() => {
          const bindings = [];
          let ref = "7";
          const channel = {on: (event, cb) => bindings.push([event, cb]), joinRef: () => ref};
          const emit = (event, payload) => { for (const [e, cb] of bindings) if (e === event) cb(payload, null, null); };
          const presence = new sb.Presence(channel, {events: {state: "snap", diff: "delta"}});
          let syncs = 0;
          presence.onSync(() => { syncs += 1; });
          const out = {events: bindings.map(([e]) => e)};
          emit("presence_state", {ignored: {metas: [{phx_ref: "i"}]}});
          emit("delta", {joins: {b: {metas: [{phx_ref: "b1"}]}}, leaves: {}});
          out.held = [presence.list().length, syncs, presence.inPendingSyncState()];
          emit("snap", {a: {metas: [{phx_ref: "a1"}], user: {label: "kept"}}});
          out.synced = [presence.list((key, e) => [key, e.metas.length, e.user?.label ?? null]), syncs, presence.inPendingSyncState()];
          ref = "8";  // rejoined
          out.afterRejoin = presence.inPendingSyncState();
          // A callback removed is not called again; a throwing one does not stop the others.
          const calls = [];
          const remove = presence.onJoin(() => calls.push("removed"));
          presence.onJoin(() => { throw new Error("app bug"); });
          presence.onJoin((key) => calls.push(key));
          remove();
          emit("snap", {a: {metas: [{phx_ref: "a1"}]}, c: {metas: [{phx_ref: "c1"}]}});
          out.calls = calls;
          out.final = [presence.list((key) => key), syncs];
          return out;
        })()"""
    )
    assert result["events"] == ["snap", "delta"]
    assert result["held"] == [0, 0, True]
    assert result["synced"] == [[["a", 1, "kept"], ["b", 1, None]], 1, False]
    assert result["afterRejoin"] is True
    assert result["calls"] == ["c"]  # b left; a unchanged; c joined
    assert result["final"] == [["a", "c"], 2]


def test_static_sync_state_sync_diff_and_list(browser, http_url):
    page = browser.open_page(f"{http_url}/health")
    prelude(page)
    result = page.evaluate(
        r"""(() => {
          const {Presence} = sb;
          const calls = [];
          const refs = (entry) => entry.metas.map((m) => m.phx_ref);
          const onJoin = (key, current, joined) => calls.push(["join", key, current ? refs(current) : null, refs(joined)]);
          const onLeave = (key, remaining, left) => calls.push(["leave", key, refs(remaining), refs(left)]);
          const view = (state) => Presence.list(state, (key, e) => [key, refs(e)]);
          const out = {};
          // From JSON, as the server sends it: "__proto__" is an own key there.
          const snapshot = JSON.parse('{"__proto__": {"metas": [{"phx_ref": "p1"}]}, "constructor": {"metas": [{"phx_ref": "c1"}]},' +
                                      ' "hasOwnProperty": {"metas": [{"phx_ref": "h1"}, {"phx_ref": "h2"}]}}');
          const empty = Object.create(null);
          let state = Presence.syncState(empty, snapshot, onJoin, onLeave);
          out.first = {view: view(state), calls: calls.splice(0), proto: Object.getPrototypeOf(state), emptyUntouched: Object.keys(empty).length};
          // A diff: a duplicate join is not doubled; metas leave by phx_ref; an empty key goes.
          const before = JSON.stringify(view(state));
          const diff = JSON.parse('{"joins": {"__proto__": {"metas": [{"phx_ref": "p1"}, {"phx_ref": "p2"}]}, "toString": {"metas": [{"phx_ref": "t1"}]}},' +
                                  ' "leaves": {"constructor": {"metas": [{"phx_ref": "c1"}]}, "hasOwnProperty": {"metas": [{"phx_ref": "h1"}]}}}');
          const next = Presence.syncDiff(state, diff, onJoin, onLeave);
          out.diff = {view: view(next), calls: calls.splice(0), inputUntouched: JSON.stringify(view(state)) === before};
          // A snapshot replaces: by phx_ref per key, what is missing leaves, what is new joins.
          // (JSON.parse: in an object literal, "__proto__": … would set the prototype instead.)
          const replaced = Presence.syncState(next, JSON.parse('{"__proto__": {"metas": [{"phx_ref": "p2"}, {"phx_ref": "p3"}]}, "valueOf": {"metas": [{"phx_ref": "v1"}]}}'), onJoin, onLeave);
          out.replace = {view: view(replaced), calls: calls.splice(0)};
          // An update (same key in joins and leaves): known metas first, the new one after.
          const updated = Presence.syncDiff(replaced, JSON.parse('{"joins": {"__proto__": {"metas": [{"phx_ref": "p4", "phx_ref_prev": "p2"}]}}, "leaves": {"__proto__": {"metas": [{"phx_ref": "p2"}]}}}'));
          out.update = view(updated);
          // Callbacks are optional; list's default chooser gives the entries.
          out.defaultList = Presence.list(updated);
          out.noPollution = ({}).metas === undefined && ({}).phx_ref === undefined && typeof ({}).toString === "function";
          return out;
        })()"""
    )
    assert result["first"] == {
        "view": [["__proto__", ["p1"]], ["constructor", ["c1"]], ["hasOwnProperty", ["h1", "h2"]]],
        "calls": [["join", "__proto__", None, ["p1"]], ["join", "constructor", None, ["c1"]], ["join", "hasOwnProperty", None, ["h1", "h2"]]],
        "proto": None,
        "emptyUntouched": 0,
    }
    assert result["diff"] == {
        "view": [["__proto__", ["p1", "p2"]], ["hasOwnProperty", ["h2"]], ["toString", ["t1"]]],
        "calls": [
            ["join", "__proto__", ["p1"], ["p1", "p2"]],
            ["join", "toString", None, ["t1"]],
            ["leave", "constructor", [], ["c1"]],
            ["leave", "hasOwnProperty", ["h2"], ["h1"]],
        ],
        "inputUntouched": True,
    }
    assert result["replace"] == {
        "view": [["__proto__", ["p2", "p3"]], ["valueOf", ["v1"]]],
        "calls": [
            ["join", "__proto__", ["p1", "p2"], ["p3"]],
            ["join", "valueOf", None, ["v1"]],
            ["leave", "hasOwnProperty", [], ["h2"]],
            ["leave", "toString", [], ["t1"]],
            ["leave", "__proto__", ["p2", "p3"], ["p1"]],
        ],
    }
    assert result["update"] == [["__proto__", ["p3", "p4"]], ["valueOf", ["v1"]]]
    assert result["defaultList"] == [
        {"metas": [{"phx_ref": "p3"}, {"phx_ref": "p4", "phx_ref_prev": "p2"}]},
        {"metas": [{"phx_ref": "v1"}]},
    ]
    assert result["noPollution"] is True


# The demo page (served at /).


def people(page, list_id: str) -> list[list[str]]:
    """[name, user id, tabs] per `<li>` of a people list, in page order."""
    return page.evaluate(
        f"[...document.getElementById({js(list_id)}).children].map((li) => [li.textContent, li.dataset.user, li.dataset.tabs])"
    )


def demo_ready(page) -> None:
    page.wait_for(
        "window.demo && demo.socket.isConnected() && demo.channels.online.state === 'joined'"
        " && !demo.presence.inPendingSyncState() && demo.room() && demo.room().state === 'joined'",
        timeout=10,
    )


def join_room(page, name: str, room: str) -> None:
    page.evaluate(
        f"""(() => {{
            document.getElementById('chat-name').value = {js(name)};
            document.getElementById('chat-room').value = {js(room)};
            document.getElementById('chat-join-form').requestSubmit();
            return true;
        }})()"""
    )
    page.wait_for(f"demo.room().topic === {js('room:' + room)} && demo.room().state === 'joined'")


def test_demo_page_lists_online_names_and_room_members(browser, http_url):
    wait_for_nobody_online(http_url)
    room, other = f"p-{secrets.token_hex(3)}", f"q-{secrets.token_hex(3)}"
    a = browser.open_page(f"{http_url}/", isolated=False)  # a second tab of this user opens below
    b = browser.open_page(f"{http_url}/")
    demo_ready(a)
    demo_ready(b)
    id_a, id_b = a.evaluate("demo.userId"), b.evaluate("demo.userId")
    assert id_a != id_b
    join_room(a, "Ann <b>&amp;</b>", room)
    join_room(b, "Bob", room)

    both = sorted([["Ann <b>&amp;</b>", id_a, "1"], ["Bob", id_b, "1"]])
    for page in (a, b):
        page.wait_for(f"JSON.stringify([...document.querySelectorAll('#room-members li')].map((li) => li.textContent).sort()) === {js(json.dumps(sorted(['Ann <b>&amp;</b>', 'Bob']), separators=(',', ':')))}")
        page.wait_for("document.getElementById('online-count').textContent === '2'")
        assert people(page, "online-names") == both
        assert people(page, "room-members") == both
        assert page.evaluate("document.getElementById('online-users').textContent") == "2"
        # The name is text: no <b> element was made from it.
        assert page.evaluate("document.querySelectorAll('#online-names b, #room-members b').length") == 0
    assert a.evaluate("document.querySelector('#online-names li.me').dataset.user") == id_a
    assert {key: [m["name"] for m in entry["metas"]] for key, entry in online_users(http_url).items()} == {
        id_a: ["Ann <b>&amp;</b>"], id_b: ["Bob"],
    }

    # Bob moves to another room (presence_update): each room lists its own people; both online.
    join_room(b, "Bob", other)
    a.wait_for("document.querySelectorAll('#room-members li').length === 1")
    b.wait_for(f"document.querySelector('#room-members li')?.dataset.user === {js(id_b)} && document.querySelectorAll('#room-members li').length === 1")
    assert people(a, "room-members") == [["Ann <b>&amp;</b>", id_a, "1"]]
    assert people(b, "room-members") == [["Bob", id_b, "1"]]
    assert people(a, "online-names") == both and people(b, "online-names") == both
    assert online_users(http_url)[id_b]["metas"][0]["room"] == other

    # A second tab of Ann's (same browser context: same stored user id) joins Bob's room: Ann is
    # listed once online, with two tabs, and in both rooms.
    a2 = browser.open_page(f"{http_url}/", isolated=False)
    demo_ready(a2)
    assert a2.evaluate("demo.userId") == id_a
    join_room(a2, "Ann <b>&amp;</b>", other)
    b.wait_for("document.querySelectorAll('#room-members li').length === 2")
    two_tabs = sorted([["Ann <b>&amp;</b>", id_a, "2"], ["Bob", id_b, "1"]])
    for page in (a, a2, b):
        page.wait_for(f"document.querySelector('#online-names li[data-user={js(id_a)}]')?.dataset.tabs === '2'")
        assert people(page, "online-names") == two_tabs
    assert people(b, "room-members") == sorted([["Ann <b>&amp;</b>", id_a, "1"], ["Bob", id_b, "1"]])
    assert people(a2, "room-members") == people(b, "room-members")
    assert people(a, "room-members") == [["Ann <b>&amp;</b>", id_a, "1"]]

    # Ann's second tab closes: she is still online (one tab), and no longer in Bob's room.
    browser.close_page(a2)
    b.wait_for("document.querySelectorAll('#room-members li').length === 1")
    assert people(b, "room-members") == [["Bob", id_b, "1"]]
    assert people(b, "online-names") == both

    # Bob closes his tab: Ann is alone.
    browser.close_page(b)
    a.wait_for("document.querySelectorAll('#online-names li').length === 1")
    assert people(a, "online-names") == [["Ann <b>&amp;</b>", id_a, "1"]]
    assert people(a, "room-members") == [["Ann <b>&amp;</b>", id_a, "1"]]
    a.wait_for("document.getElementById('online-count').textContent === '1'")
    browser.close_page(a)
