/**
 * switchboard.js — a small Phoenix Channels client for the browser.
 *
 * It speaks the Phoenix V2 JSON wire format (`vsn=2.0.0`: every frame is the array
 * `[join_ref, ref, topic, event, payload]`), so it works against Switchboard and against any
 * Phoenix server. No dependencies, no build step: import it as an ES module.
 *
 * ```js
 * import { Socket } from "/switchboard.js";
 *
 * const socket = new Socket("/socket", { params: { user_id: "42" } });
 * socket.connect();
 * const room = socket.channel("room:lobby", { user: "ann" });
 * room.on("new_msg", ({ user, body }) => console.log(user, body));
 * room.join()
 *   .receive("ok", () => room.push("new_msg", { body: "hi" }))
 *   .receive("error", ({ reason }) => console.warn("refused:", reason));
 * ```
 *
 * Behaviour, in short:
 * - Heartbeat: `[null, ref, "phoenix", "heartbeat", {}]` every `heartbeatIntervalMs` (30 s); if
 *   the previous one is still unanswered when the next is due, the connection is considered dead:
 *   it is closed (1000, "heartbeat timeout") and a reconnect is scheduled.
 * - Reconnect: after any close the app did not ask for (except a close with code 1000 sent by the
 *   server, which means "do not come back"), with exponential backoff and jitter
 *   (`reconnectAfterMs`). When the socket opens again, every channel that was joined is joined
 *   again with a new join ref.
 * - A channel that crashed on the server (`phx_error`) or whose join timed out is rejoined with
 *   backoff (`rejoinAfterMs`). A join the server refuses (`error` reply) is final: the channel
 *   closes and the app decides what to do (phoenix.js retries refused joins forever).
 * - Frames that carry another join ref than the channel's current one are stale and dropped.
 * - In topics with history, a channel keeps the position of the last message it received and
 *   rejoins with it (`recover`), so nothing is missed across reconnects; the join's `ok` callback
 *   runs again on every rejoin with the server's response (`recovered: true | false`).
 * - `new Presence(channel)` keeps the topic's presence list from the server's `presence_state` and
 *   `presence_diff` events (see the class).
 *
 * @module switchboard
 */

/** The wire format version this client speaks. */
export const VSN = "2.0.0";

const OPEN = 1; // WebSocket.OPEN, also for transports that are not the browser's WebSocket

/**
 * Makes a backoff function: `tries` (1, 2, 3, …) → delay in ms, doubling from `baseMs` up to
 * `maxMs`, each delay drawn at random from its upper half so that many clients dropped at once do
 * not all come back at the same moment.
 * @param {number} baseMs delay before the first retry (before jitter)
 * @param {number} maxMs largest delay (before jitter)
 * @returns {(tries: number) => number}
 */
export function exponentialBackoff(baseMs, maxMs) {
  return (tries) => {
    const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, tries - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  };
}

/** A set of callbacks; `add` returns the function that removes the callback again. */
class Hooks {
  constructor() {
    /** @type {Set<Function>} */
    this.callbacks = new Set();
  }

  add(callback) {
    this.callbacks.add(callback);
    return () => this.callbacks.delete(callback);
  }

  call(...args) {
    for (const callback of [...this.callbacks]) {
      try {
        callback(...args);
      } catch (error) {
        console.error("switchboard.js: a callback threw", error);
      }
    }
  }
}

/**
 * One message sent to the server that expects a reply (`phx_reply` with the same ref).
 * Register what to do with `receive(status, callback)`; statuses are the server's (`"ok"`,
 * `"error"`, or any other string a channel replies with) plus `"timeout"`, fired locally when no
 * reply came within the push's timeout.
 */
export class Push {
  /**
   * @param {Channel} channel
   * @param {string} event
   * @param {object} payload
   * @param {number} timeoutMs
   */
  constructor(channel, event, payload, timeoutMs) {
    this.channel = channel;
    this.event = event;
    this.payload = payload;
    this.timeoutMs = timeoutMs;
    /** @type {string | null} the ref of the frame last sent */
    this.ref = null;
    /** @type {{status: string, response: object} | null} */
    this.reply = null;
    /** @type {{status: string, callback: (response: object) => void}[]} */
    this.handlers = [];
    this.timer = null;
  }

  /**
   * Calls `callback(response)` when the reply has this status (at once if it already has).
   * Callbacks stay registered: a channel's join push calls them again on every rejoin.
   * @param {string} status `"ok"`, `"error"`, `"timeout"` or any status the server uses
   * @param {(response: object) => void} callback
   * @returns {Push} this push, to chain `receive` calls
   */
  receive(status, callback) {
    if (this.reply && this.reply.status === status) callback(this.reply.response);
    this.handlers.push({ status, callback });
    return this;
  }

  /** Starts waiting for the reply: it times out `timeoutMs` from now unless one arrives. */
  startTimer() {
    clearTimeout(this.timer);
    this.reply = null;
    this.timer = setTimeout(() => this.settle("timeout", {}), this.timeoutMs);
  }

  /** Writes the frame with a fresh ref (or `ref`) and the channel's current join ref. */
  send(ref = this.channel.socket.makeRef()) {
    const socket = this.channel.socket;
    if (this.ref !== null) socket.pending.delete(this.ref);
    this.ref = ref;
    socket.pending.set(ref, this);
    socket.send([this.channel.joinRef, ref, this.channel.topic, this.event, this.payload]);
  }

  /** Records the outcome once and calls the handlers registered for its status. */
  settle(status, response) {
    if (this.reply) return;
    clearTimeout(this.timer);
    if (this.ref !== null) this.channel.socket.pending.delete(this.ref);
    this.reply = { status, response };
    for (const handler of this.handlers) {
      if (handler.status !== status) continue;
      try {
        handler.callback(response);
      } catch (error) {
        console.error("switchboard.js: a receive callback threw", error);
      }
    }
  }

  /** Stops waiting without settling (the frame it belongs to no longer matters). */
  cancel() {
    clearTimeout(this.timer);
    if (this.ref !== null) this.channel.socket.pending.delete(this.ref);
  }
}

/**
 * One topic joined over a socket. Create it with `socket.channel(topic, params)`, listen with
 * `on(event, callback)`, then `join()`. `state` is one of `closed`, `joining`, `joined`,
 * `leaving`, `errored` (waiting to rejoin).
 */
export class Channel {
  /**
   * @param {string} topic
   * @param {object | (() => object)} params join payload (a function is called on every join)
   * @param {Socket} socket
   */
  constructor(topic, params, socket) {
    this.topic = topic;
    this.params = params;
    this.socket = socket;
    this.state = "closed";
    /** @type {string | null} the ref of the current join; frames for older joins are dropped */
    this.joinRef = null;
    this.joinRequested = false;
    this.bindings = [];
    this.bindingRef = 0;
    /** @type {Push[]} pushes made before the channel was joined, sent once it is */
    this.buffer = [];
    this.rejoinTimer = null;
    this.rejoinTries = 0;
    this.closeHooks = new Hooks();
    this.errorHooks = new Hooks();
    /**
     * In a topic with history: the position (`{epoch, offset}`) of the last message received, or
     * the one the last join reply gave. Every rejoin sends it as `recover`, so the server replays
     * what was missed (`recovered: true` in the reply) or says it cannot (`recovered: false`).
     * @type {{epoch: string, offset: number} | null}
     */
    this.position = null;
    this.joinPush = new Push(this, "phx_join", {}, socket.timeoutMs);
    // Registered before any handler of the app, so the state is right when those run.
    this.joinPush
      .receive("ok", (response) => {
        // recovered: true: the replayed messages that follow move the position; otherwise the
        // reply's position is where this join starts.
        const position = response?.position;
        if (position && typeof position.epoch === "string" && Number.isInteger(position.offset) && response.recovered !== true) {
          this.position = { epoch: position.epoch, offset: position.offset };
        }
        this.state = "joined";
        this.rejoinTries = 0;
        const buffered = this.buffer;
        this.buffer = [];
        for (const push of buffered) push.send();
      })
      .receive("error", (response) => this.closeLocally({ reason: "join refused", response }))
      .receive("timeout", () => {
        // Tell the server to drop the join it may still answer, then try again later.
        this.socket.send([this.joinRef, this.socket.makeRef(), this.topic, "phx_leave", {}]);
        this.state = "errored";
        this.scheduleRejoin();
      });
  }

  /**
   * Joins the topic (now if the socket is open, else as soon as it opens). Call it once per
   * channel; the channel rejoins by itself after reconnects.
   * @param {number} [timeoutMs] how long to wait for the server's reply
   * @returns {Push} the join push: `.receive("ok" | "error" | "timeout", callback)`
   */
  join(timeoutMs = this.socket.timeoutMs) {
    if (this.joinRequested) throw new Error(`join() called twice on ${this.topic}; make a new channel to join again`);
    this.joinRequested = true;
    this.joinPush.timeoutMs = timeoutMs;
    this.state = "joining";
    this.rejoin();
    return this.joinPush;
  }

  /**
   * Leaves the topic. The channel is closed when the server acknowledges (or at once when the
   * socket is not connected); a left channel is never rejoined.
   * @param {number} [timeoutMs]
   * @returns {Push} `.receive("ok" | "timeout", callback)`
   */
  leave(timeoutMs = this.socket.timeoutMs) {
    clearTimeout(this.rejoinTimer);
    this.joinPush.cancel();
    const push = new Push(this, "phx_leave", {}, timeoutMs);
    const done = () => this.closeLocally({ reason: "left" });
    push.receive("ok", done).receive("timeout", done);
    const wasOnServer = this.state === "joined" || this.state === "joining";
    this.state = "leaving";
    if (wasOnServer && this.socket.isConnected()) {
      push.startTimer();
      push.send();
    } else {
      push.settle("ok", {});
    }
    return push;
  }

  /**
   * Sends an event to the channel; buffered until the channel is joined.
   * @param {string} event
   * @param {object} [payload]
   * @param {number} [timeoutMs]
   * @returns {Push} `.receive("ok" | "error" | "timeout", callback)`
   */
  push(event, payload = {}, timeoutMs = this.socket.timeoutMs) {
    if (!this.joinRequested) throw new Error(`push "${event}" to ${this.topic} before join()`);
    const push = new Push(this, event, payload, timeoutMs);
    push.startTimer();
    if (this.state === "joined" && this.socket.isConnected()) {
      push.send();
    } else {
      this.buffer.push(push);
      push.receive("timeout", () => {
        this.buffer = this.buffer.filter((p) => p !== push);
      });
    }
    return push;
  }

  /**
   * Calls `callback(payload, ref, joinRef)` for every `event` the server sends on this topic.
   * @param {string} event
   * @param {(payload: object, ref: string | null, joinRef: string | null) => void} callback
   * @returns {number} a ref for `off(event, ref)`
   */
  on(event, callback) {
    const ref = ++this.bindingRef;
    this.bindings.push({ event, ref, callback });
    return ref;
  }

  /**
   * Removes the callbacks for `event` (only the one `on` returned `ref` for, if given).
   * @param {string} event
   * @param {number} [ref]
   */
  off(event, ref) {
    this.bindings = this.bindings.filter((b) => !(b.event === event && (ref === undefined || b.ref === ref)));
  }

  /**
   * Calls `callback(info)` when the channel closes for good (left, refused, or closed by the server).
   * @returns {() => void} removes the callback
   */
  onClose(callback) {
    return this.closeHooks.add(callback);
  }

  /**
   * Calls `callback(info)` when the channel errors (crashed on the server, or the connection
   * was lost); it rejoins by itself afterwards.
   * @returns {() => void} removes the callback
   */
  onError(callback) {
    return this.errorHooks.add(callback);
  }

  // Internal: called by the socket.

  rejoin() {
    clearTimeout(this.rejoinTimer);
    if (!this.socket.isConnected()) return; // the socket rejoins us when it opens
    this.state = "joining";
    this.joinRef = this.socket.makeRef();
    const params = typeof this.params === "function" ? this.params() : this.params;
    this.joinPush.payload = this.position && params?.recover === undefined ? { ...params, recover: this.position } : params;
    this.joinPush.startTimer();
    this.joinPush.send(this.joinRef);
  }

  scheduleRejoin() {
    clearTimeout(this.rejoinTimer);
    this.rejoinTries += 1;
    this.rejoinTimer = setTimeout(() => {
      if (this.state === "errored") this.rejoin();
    }, this.socket.rejoinAfterMs(this.rejoinTries));
  }

  socketOpened() {
    if (this.state === "joining" || this.state === "errored") {
      this.rejoinTries = 0;
      this.rejoin();
    }
  }

  socketClosed(notify) {
    clearTimeout(this.rejoinTimer);
    if (this.state === "leaving") return this.closeLocally({ reason: "left" });
    if (this.state === "joined" || this.state === "joining") {
      this.joinPush.cancel();
      this.state = "errored";
      if (notify) this.errorHooks.call({ reason: "connection lost" });
    }
  }

  /** A broadcast of a topic with history carries its position as its ref, `<epoch>:<offset>`. */
  advancePosition(ref) {
    const colon = ref.lastIndexOf(":");
    const offset = Number(ref.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(offset)) return;
    const epoch = ref.slice(0, colon);
    if (this.position && this.position.epoch === epoch && this.position.offset >= offset) return;
    this.position = { epoch, offset };
  }

  dispatch(joinRef, ref, event, payload) {
    if (this.joinRef === null) return; // never joined: whatever arrives is for another channel of the topic
    if (joinRef !== null && joinRef !== this.joinRef) return; // an older join instance's frame
    switch (event) {
      case "phx_reply":
        return; // replies are routed to their push by ref
      case "phx_close":
        return this.closeLocally({ reason: "closed by the server" });
      case "phx_error":
        if (this.state !== "joined" && this.state !== "joining") return;
        this.joinPush.cancel();
        this.state = "errored";
        this.errorHooks.call(payload ?? {});
        return this.scheduleRejoin();
      default:
        if (joinRef === null && typeof ref === "string") this.advancePosition(ref);
        for (const binding of this.bindings) {
          if (binding.event !== event) continue;
          try {
            binding.callback(payload, ref, joinRef);
          } catch (error) {
            console.error(`switchboard.js: a callback for "${event}" on ${this.topic} threw`, error);
          }
        }
    }
  }

  closeLocally(info) {
    if (this.state === "closed" && !this.socket.channels.includes(this)) return;
    clearTimeout(this.rejoinTimer);
    this.joinPush.cancel();
    this.state = "closed";
    this.socket.remove(this);
    this.closeHooks.call(info);
  }
}

/**
 * One connection to a Phoenix socket endpoint, shared by any number of channels.
 */
export class Socket {
  /**
   * @param {string} endPoint the socket's mount path or URL: `"/socket"` (same host as the page),
   *   `"ws://host:4000/socket"`; `/websocket` is appended unless already there.
   * @param {object} [options]
   * @param {object | (() => object)} [options.params] connect params, sent in the query string
   *   (a function is called on every connect, e.g. to read a fresh token)
   * @param {number} [options.heartbeatIntervalMs] 30 000; 0 turns heartbeats off
   * @param {number} [options.timeoutMs] default reply timeout of joins and pushes, 10 000
   * @param {(tries: number) => number} [options.reconnectAfterMs] delay before reconnect attempt
   *   `tries` (1, 2, …); default: from 100 ms doubling to 10 s, with jitter
   * @param {(tries: number) => number} [options.rejoinAfterMs] delay before rejoining a channel
   *   that errored; default: from 1 s doubling to 10 s, with jitter
   * @param {(kind: string, message: string, data?: unknown) => void} [options.logger]
   * @param {new (url: string) => WebSocket} [options.transport] the WebSocket constructor to use
   */
  constructor(endPoint, options = {}) {
    this.endPoint = endPoint;
    this.params = options.params ?? {};
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 30_000;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.reconnectAfterMs = options.reconnectAfterMs ?? exponentialBackoff(100, 10_000);
    this.rejoinAfterMs = options.rejoinAfterMs ?? exponentialBackoff(1_000, 10_000);
    this.logger = options.logger ?? null;
    this.transport = options.transport ?? globalThis.WebSocket;
    /** @type {Channel[]} */
    this.channels = [];
    /** @type {Map<string, Push>} pushes waiting for their reply, by ref */
    this.pending = new Map();
    this.conn = null;
    this.lastRef = 0;
    this.wantConnected = false;
    this.heartbeatTimer = null;
    this.heartbeatRef = null;
    this.reconnectTimer = null;
    this.reconnectTries = 0;
    this.hooks = { open: new Hooks(), close: new Hooks(), error: new Hooks(), message: new Hooks() };
  }

  /** The WebSocket URL, with the connect params and `vsn`. */
  endPointURL() {
    const base = globalThis.location ? globalThis.location.href : undefined;
    const url = new URL(this.endPoint, base);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    if (!url.pathname.endsWith("/websocket")) url.pathname = url.pathname.replace(/\/$/, "") + "/websocket";
    const params = typeof this.params === "function" ? this.params() : this.params;
    for (const [key, value] of Object.entries(params ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    url.searchParams.set("vsn", VSN);
    return url.toString();
  }

  /** Opens the connection (and keeps reconnecting after drops until `disconnect()`). */
  connect() {
    this.wantConnected = true;
    clearTimeout(this.reconnectTimer);
    if (this.conn) return;
    const conn = new this.transport(this.endPointURL());
    this.conn = conn;
    this.log("transport", "connecting", this.endPoint);
    conn.onopen = () => conn === this.conn && this.handleOpen();
    conn.onclose = (event) => conn === this.conn && this.connectionLost(event, this.wantConnected && event.code !== 1000);
    conn.onerror = (error) => conn === this.conn && this.hooks.error.call(error);
    conn.onmessage = (event) => conn === this.conn && this.handleMessage(event.data);
  }

  /**
   * Closes the connection and stops reconnecting. Channels keep their state: `connect()` again
   * rejoins the ones that were joined.
   * @param {number} [code]
   * @param {string} [reason]
   */
  disconnect(code = 1000, reason = "client disconnect") {
    this.wantConnected = false;
    clearTimeout(this.reconnectTimer);
    this.reconnectTries = 0;
    const conn = this.conn;
    if (!conn) return;
    this.connectionLost({ code, reason, wasClean: true }, false, true); // first: forgets `conn`, so its own close event is ignored
    conn.close(code, reason);
  }

  /**
   * Creates a channel for `topic` (call `join()` on it).
   * @param {string} topic
   * @param {object | (() => object)} [params] join payload
   * @returns {Channel}
   */
  channel(topic, params = {}) {
    const channel = new Channel(topic, params, this);
    this.channels.push(channel);
    return channel;
  }

  /** @returns {boolean} whether the connection is open */
  isConnected() {
    return this.conn !== null && this.conn.readyState === OPEN;
  }

  /** @returns {"connecting" | "open" | "closing" | "closed"} */
  connectionState() {
    if (!this.conn) return "closed";
    return ["connecting", "open", "closing", "closed"][this.conn.readyState] ?? "closed";
  }

  /**
   * Calls `callback()` every time the connection opens.
   * @returns {() => void} removes the callback
   */
  onOpen(callback) {
    return this.hooks.open.add(callback);
  }

  /**
   * Calls `callback(event)` every time the connection closes (`event.code`, `event.reason`).
   * @returns {() => void} removes the callback
   */
  onClose(callback) {
    return this.hooks.close.add(callback);
  }

  /**
   * Calls `callback(error)` on a transport error (a close follows).
   * @returns {() => void} removes the callback
   */
  onError(callback) {
    return this.hooks.error.add(callback);
  }

  /**
   * Calls `callback({joinRef, ref, topic, event, payload})` for every frame received.
   * @returns {() => void} removes the callback
   */
  onMessage(callback) {
    return this.hooks.message.add(callback);
  }

  /** A new message ref, unique on this socket. */
  makeRef() {
    this.lastRef += 1;
    return String(this.lastRef);
  }

  /**
   * Writes a frame if the connection is open (else drops it: its push will time out).
   * @param {[string | null, string | null, string, string, object]} frame
   * @returns {boolean} whether it was written
   */
  send(frame) {
    if (!this.isConnected()) {
      this.log("push", `not connected, dropped ${frame[2]} ${frame[3]}`);
      return false;
    }
    this.log("push", `${frame[2]} ${frame[3]} (${frame[1]})`, frame[4]);
    this.conn.send(JSON.stringify(frame));
    return true;
  }

  // Internal.

  remove(channel) {
    this.channels = this.channels.filter((c) => c !== channel);
  }

  log(kind, message, data) {
    if (this.logger) this.logger(kind, message, data);
  }

  handleOpen() {
    this.log("transport", "connected");
    this.reconnectTries = 0;
    this.heartbeatRef = null;
    clearInterval(this.heartbeatTimer);
    if (this.heartbeatIntervalMs > 0) this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatIntervalMs);
    for (const channel of [...this.channels]) channel.socketOpened();
    this.hooks.open.call();
  }

  heartbeat() {
    if (!this.isConnected()) return;
    if (this.heartbeatRef !== null) {
      // The previous heartbeat is still unanswered: the connection is dead even if the
      // browser has not noticed yet.
      this.log("transport", "heartbeat timeout");
      const conn = this.conn;
      this.connectionLost({ code: 1000, reason: "heartbeat timeout", wasClean: false }, this.wantConnected);
      conn.close(1000, "heartbeat timeout");
      return;
    }
    this.heartbeatRef = this.makeRef();
    this.send([null, this.heartbeatRef, "phoenix", "heartbeat", {}]);
  }

  /**
   * The connection is gone: channels wait to rejoin (their `onError` hooks run unless the app
   * disconnected), and a reconnect is scheduled if wanted.
   */
  connectionLost(event, reconnect, byApp = false) {
    this.log("transport", `closed (${event.code} ${event.reason ?? ""})`);
    this.conn = null;
    this.heartbeatRef = null;
    clearInterval(this.heartbeatTimer);
    for (const channel of [...this.channels]) channel.socketClosed(!byApp);
    this.hooks.close.call(event);
    if (!reconnect) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTries += 1;
    this.reconnectTimer = setTimeout(() => {
      if (this.wantConnected) this.connect();
    }, this.reconnectAfterMs(this.reconnectTries));
  }

  handleMessage(data) {
    if (typeof data !== "string") return this.log("receive", "binary frame ignored (JSON only)");
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return this.log("receive", "frame is not JSON", data);
    }
    if (!Array.isArray(frame) || frame.length < 5) return this.log("receive", "frame is not a V2 array", data);
    const [joinRef, ref, topic, event, payload] = frame;
    this.log("receive", `${topic} ${event} (${ref})`, payload);
    if (ref !== null && ref === this.heartbeatRef) this.heartbeatRef = null;
    this.hooks.message.call({ joinRef, ref, topic, event, payload });
    if (event === "phx_reply" && ref !== null) {
      const push = this.pending.get(ref);
      if (push && push.channel.topic === topic) push.settle(payload?.status ?? "error", payload?.response ?? {});
    }
    for (const channel of [...this.channels]) {
      if (channel.topic === topic) channel.dispatch(joinRef, ref, event, payload);
    }
  }
}

/**
 * Who is on a topic, kept in step with the server's presence events: a `presence_state` snapshot
 * (sent after every join) and `presence_diff` changes, both `key → {metas: [...]}` where every
 * meta carries a `phx_ref`. Keys are arbitrary strings (`"__proto__"` included): the state is a
 * prototype-less object. It only listens with `channel.on`, so it works with any server that
 * speaks the Phoenix presence format.
 *
 * ```js
 * const presence = new Presence(channel);
 * presence.onJoin((key, previous, joined) => { if (!previous) console.log(key, "arrived"); });
 * presence.onLeave((key, remaining, left) => { if (remaining.metas.length === 0) console.log(key, "is gone"); });
 * presence.onSync(() => render(presence.list((key, { metas }) => ({ key, tabs: metas.length }))));
 * channel.join();
 * ```
 *
 * Diffs that arrive before the snapshot of the channel's current join (after the first join and
 * after every rejoin) are held back and applied, in order, right after that snapshot.
 */
export class Presence {
  /**
   * @param {Channel} channel the channel (joined or not yet) whose presence events to follow
   * @param {object} [opts]
   * @param {{state?: string, diff?: string}} [opts.events] event names, by default
   *   `presence_state` and `presence_diff`
   */
  constructor(channel, opts = {}) {
    this.channel = channel;
    /** The current presences: `key → {metas: [...], ...}`, without a prototype. */
    this.state = Object.create(null);
    /** @type {string | null} the join ref of the channel when the last snapshot arrived */
    this.syncedJoinRef = null;
    /** @type {{joinRef: string | null, diff: object}[]} diffs waiting for the current join's snapshot */
    this.pendingDiffs = [];
    this.joinHooks = new Hooks();
    this.leaveHooks = new Hooks();
    this.syncHooks = new Hooks();
    const onJoin = (...args) => this.joinHooks.call(...args);
    const onLeave = (...args) => this.leaveHooks.call(...args);
    const stateEvent = opts.events?.state ?? "presence_state";
    const diffEvent = opts.events?.diff ?? "presence_diff";

    channel.on(stateEvent, (snapshot) => {
      const joinRef = this.currentJoinRef();
      this.syncedJoinRef = joinRef;
      this.state = Presence.syncState(this.state, snapshot, onJoin, onLeave);
      // Only diffs received during this join follow the snapshot; older ones it already covers.
      const pending = this.pendingDiffs.filter((entry) => entry.joinRef === joinRef);
      this.pendingDiffs = [];
      for (const { diff } of pending) this.state = Presence.syncDiff(this.state, diff, onJoin, onLeave);
      this.syncHooks.call();
    });
    channel.on(diffEvent, (diff) => {
      if (this.inPendingSyncState()) {
        this.pendingDiffs.push({ joinRef: this.currentJoinRef(), diff });
        return;
      }
      this.state = Presence.syncDiff(this.state, diff, onJoin, onLeave);
      this.syncHooks.call();
    });
  }

  /**
   * Calls `callback(key, previous, joined)` for every key in a join: `previous` is the key's
   * entry before (`undefined` if the key is new), `joined` the entry with the metas that joined.
   * @returns {() => void} removes the callback
   */
  onJoin(callback) {
    return this.joinHooks.add(callback);
  }

  /**
   * Calls `callback(key, remaining, left)` for every key in a leave: `remaining` is the key's
   * entry without the metas that left (`remaining.metas` is empty when the key is gone), `left`
   * the entry with the metas that left.
   * @returns {() => void} removes the callback
   */
  onLeave(callback) {
    return this.leaveHooks.add(callback);
  }

  /**
   * Calls `callback()` after every snapshot and every diff applied (the time to redraw).
   * @returns {() => void} removes the callback
   */
  onSync(callback) {
    return this.syncHooks.add(callback);
  }

  /**
   * The presences as a list, one item per key: `chooser(key, entry)`, by default the entry
   * (`{metas: [...]}`) itself.
   * @template T
   * @param {(key: string, entry: {metas: object[]}) => T} [chooser]
   * @returns {T[]}
   */
  list(chooser) {
    return Presence.list(this.state, chooser);
  }

  /** @returns {boolean} whether the snapshot of the channel's current join is still awaited */
  inPendingSyncState() {
    return this.syncedJoinRef === null || this.syncedJoinRef !== this.currentJoinRef();
  }

  /** The channel's current join ref (a property here, a method in phoenix.js). */
  currentJoinRef() {
    const ref = this.channel.joinRef;
    return typeof ref === "function" ? ref.call(this.channel) : ref ?? null;
  }

  /**
   * Applies a snapshot: keys and metas (compared by `phx_ref`) that are not in `snapshot` leave,
   * those that are new join; `onJoin`/`onLeave` are called as for a diff.
   * @param {object} state the current presences (not modified)
   * @param {object} snapshot the `presence_state` payload
   * @param {(key: string, previous: object | undefined, joined: object) => void} [onJoin]
   * @param {(key: string, remaining: object, left: object) => void} [onLeave]
   * @returns {object} the new presences (prototype-less)
   */
  static syncState(state, snapshot, onJoin, onLeave) {
    const joins = Object.create(null);
    const leaves = Object.create(null);
    const incoming = snapshot ?? {};
    state = state ?? {};
    for (const key of Object.keys(state)) {
      if (!Object.prototype.hasOwnProperty.call(incoming, key)) leaves[key] = state[key];
    }
    for (const key of Object.keys(incoming)) {
      const entry = incoming[key];
      if (!Object.prototype.hasOwnProperty.call(state, key)) {
        joins[key] = entry;
        continue;
      }
      const known = state[key];
      const newRefs = refsOf(entry);
      const knownRefs = refsOf(known);
      const joined = metasOf(entry).filter((meta) => !knownRefs.has(meta?.phx_ref));
      const left = metasOf(known).filter((meta) => !newRefs.has(meta?.phx_ref));
      if (joined.length > 0) joins[key] = { ...entry, metas: joined };
      if (left.length > 0) leaves[key] = { ...known, metas: left };
    }
    return Presence.syncDiff(state, { joins, leaves }, onJoin, onLeave);
  }

  /**
   * Applies a diff: first the joins (a key's known metas whose `phx_ref` is not in the join are
   * kept, before the joined ones), then the leaves (metas removed by `phx_ref`; a key without
   * metas is removed). An update is a join and a leave of the same key in one diff.
   * @param {object} state the current presences (not modified)
   * @param {{joins?: object, leaves?: object}} diff the `presence_diff` payload
   * @param {(key: string, previous: object | undefined, joined: object) => void} [onJoin]
   * @param {(key: string, remaining: object, left: object) => void} [onLeave]
   * @returns {object} the new presences (prototype-less)
   */
  static syncDiff(state, diff, onJoin, onLeave) {
    const next = copyPresences(state);
    const joins = diff?.joins ?? {};
    const leaves = diff?.leaves ?? {};
    for (const key of Object.keys(joins)) {
      const joined = joins[key];
      const previous = Object.prototype.hasOwnProperty.call(next, key) ? next[key] : undefined;
      const joinedRefs = refsOf(joined);
      const kept = previous ? metasOf(previous).filter((meta) => !joinedRefs.has(meta?.phx_ref)) : [];
      next[key] = { ...joined, metas: [...kept, ...metasOf(joined)] };
      if (onJoin) onJoin(key, previous, joined);
    }
    for (const key of Object.keys(leaves)) {
      if (!Object.prototype.hasOwnProperty.call(next, key)) continue;
      const left = leaves[key];
      const leftRefs = refsOf(left);
      const remaining = { ...next[key], metas: metasOf(next[key]).filter((meta) => !leftRefs.has(meta?.phx_ref)) };
      if (remaining.metas.length === 0) delete next[key];
      else next[key] = remaining;
      if (onLeave) onLeave(key, remaining, left);
    }
    return next;
  }

  /**
   * One item per key of `presences`: `chooser(key, entry)`, by default the entry itself.
   * @template T
   * @param {object} presences
   * @param {(key: string, entry: {metas: object[]}) => T} [chooser]
   * @returns {T[]}
   */
  static list(presences, chooser = (key, entry) => entry) {
    return Object.keys(presences).map((key) => chooser(key, presences[key]));
  }
}

/** An entry's metas (an empty list for an entry without a `metas` array). */
function metasOf(entry) {
  return Array.isArray(entry?.metas) ? entry.metas : [];
}

/** The set of `phx_ref`s of an entry's metas. */
function refsOf(entry) {
  return new Set(metasOf(entry).map((meta) => meta?.phx_ref));
}

/** A prototype-less copy of `presences` (entries copied one level, so the original stays as it was). */
function copyPresences(presences) {
  const copy = Object.create(null);
  for (const key of Object.keys(presences ?? {})) copy[key] = { ...presences[key], metas: [...metasOf(presences[key])] };
  return copy;
}
