// The demo page: ticker, who is online, chat rooms and notifications over one switchboard.js socket.
// Everything a user typed reaches the page through textContent only, never as HTML.
import { Presence, Socket } from "/switchboard.js";

const $ = (id) => document.getElementById(id);

/** Appends `<li class=…>` made of text pieces (strings, or [className, text] for a span). */
function addLine(list, className, ...pieces) {
  const item = document.createElement("li");
  if (className) item.className = className;
  for (const piece of pieces) {
    if (Array.isArray(piece)) {
      const span = document.createElement("span");
      span.className = piece[0];
      span.textContent = piece[1];
      item.append(span);
    } else {
      item.append(document.createTextNode(piece));
    }
  }
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(item);
  while (list.children.length > 200) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
  return item;
}

function setStatus(element, text, tone = "") {
  element.textContent = text;
  element.className = `status-line ${tone}`;
}

// Who this browser is: a random id, kept in localStorage (a private window is another user).
function storedUserId() {
  const key = "switchboard-demo:user-id";
  let id = localStorage.getItem(key);
  if (!id || !/^[a-z0-9]{1,64}$/.test(id)) {
    id = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(36).padStart(2, "0")).join("").slice(0, 6);
    localStorage.setItem(key, id);
  }
  return id;
}

const userId = storedUserId();
$("user-id").textContent = userId;

const socket = new Socket("/socket", { params: { user_id: userId } });
const status = $("status");
socket.onOpen(() => {
  status.textContent = "connected";
  status.dataset.state = "open";
});
socket.onClose(() => {
  status.textContent = "reconnecting…";
  status.dataset.state = "connecting";
});
socket.connect();

// Ticker: the same number in every tab.
const ticker = socket.channel("ticker");
ticker.on("tick", ({ count }) => {
  $("ticker-value").textContent = String(count);
});
ticker.join();

// The chat form's values, remembered per browser.
const nameInput = $("chat-name");
const roomInput = $("chat-room");
nameInput.value = localStorage.getItem("switchboard-demo:name") || `guest-${userId.slice(0, 4)}`;
roomInput.value = localStorage.getItem("switchboard-demo:room") || "lobby";

// What this tab tells the others about itself: the meta of its presence on `online` (the server
// tracks every joined tab under its user id and adds online_at and transport).
let presenceMeta = { name: nameInput.value.trim(), room: roomInput.value.trim() };

// Online now: counts may arrive out of order; keep the one with the highest seq since our join.
// The join payload is read on every (re)join, so a rejoin announces the current name and room.
const online = socket.channel("online", () => ({ presence_meta: presenceMeta }));
let onlineSeq = 0;
online.on("session-count", ({ count, seq }) => {
  if (seq <= onlineSeq) return;
  onlineSeq = seq;
  $("online-count").textContent = String(count);
});
online.join().receive("ok", () => {
  onlineSeq = 0;
});

// Who is online (one line per user, whatever the number of tabs), and who is in this tab's room:
// room:* topics have no presence, so the room's members are the online users with a tab whose
// meta names that room.
const presence = new Presence(online);
presence.onSync(showPresence);

/** The name a user goes by: the one of their latest tab that gave one, else their id. */
function displayName(key, metas) {
  for (let i = metas.length - 1; i >= 0; i -= 1) {
    const name = metas[i]?.name;
    if (typeof name === "string" && name.trim()) return name.trim().slice(0, 64);
  }
  return key;
}

/** Fills a list with one `<li>` per person ({key, metas}), sorted by name. */
function showPeople(list, people) {
  const items = people
    .map(({ key, metas }) => ({ key, name: displayName(key, metas), tabs: metas.length }))
    .sort((x, y) => x.name.localeCompare(y.name) || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0))
    .map(({ key, name, tabs }) => {
      const item = document.createElement("li");
      item.textContent = name;
      item.dataset.user = key;
      item.dataset.tabs = String(tabs);
      item.title = `user ${key}, ${tabs} ${tabs === 1 ? "tab" : "tabs"}`;
      if (key === userId) item.classList.add("me");
      return item;
    });
  list.replaceChildren(...items);
}

function showPresence() {
  const everyone = presence.list((key, entry) => ({ key, metas: Array.isArray(entry.metas) ? entry.metas : [] }));
  showPeople($("online-names"), everyone);
  $("online-users").textContent = String(everyone.length);
  $("online-users").dataset.count = String(everyone.length);
  const here = everyone
    .map(({ key, metas }) => ({ key, metas: metas.filter((meta) => meta?.room === presenceMeta.room) }))
    .filter(({ metas }) => metas.length > 0);
  showPeople($("room-members"), here);
}

/** Announces a new name or room to the others (a join in progress or to come sends it anyway). */
function setPresenceMeta(meta) {
  if (meta.name === presenceMeta.name && meta.room === presenceMeta.room) return;
  presenceMeta = meta;
  if (online.state === "joined" || online.state === "joining") online.push("presence_update", { meta });
  showPresence();
}

// Chat rooms: room:<name>; join with {user}, push new_msg {body}.
const chatLog = $("chat-log");
let room = null;

function joinRoom() {
  const name = nameInput.value.trim();
  const roomName = roomInput.value.trim();
  if (!name || !roomName) return;
  localStorage.setItem("switchboard-demo:name", name);
  localStorage.setItem("switchboard-demo:room", roomName);
  setPresenceMeta({ name, room: roomName });
  if (room) room.leave();
  chatLog.replaceChildren();
  const topic = `room:${roomName}`;
  $("chat-topic").textContent = topic;
  const channel = socket.channel(topic, { user: name });
  room = channel;
  channel.on("new_msg", ({ user, body }) => {
    addLine(chatLog, user === name ? "msg mine" : "msg", ["who", String(user)], String(body));
  });
  channel.on("user_joined", ({ user }) => addLine(chatLog, "notice", `${user} has joined`));
  channel.on("user_left", ({ user }) => addLine(chatLog, "notice", `${user} has left`));
  channel
    .join()
    .receive("ok", () => addLine(chatLog, "notice", `You are in ${topic} as ${name}`))
    .receive("error", ({ reason }) => addLine(chatLog, "notice", `Could not join ${topic}: ${reason}`));
}

$("chat-join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  joinRoom();
});
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("chat-input");
  const body = input.value.trim();
  if (!body || !room) return;
  room
    .push("new_msg", { body })
    .receive("ok", () => {
      input.value = "";
    })
    .receive("error", ({ reason }) => addLine(chatLog, "notice", `Not sent: ${reason}`))
    .receive("timeout", () => addLine(chatLog, "notice", "Not sent: no answer from the server"));
});
joinRoom();

// Notifications: notifications:<own id> only; push notify {to, body} to reach another user.
const notifyLog = $("notify-log");
const unread = $("notify-unread");
let unreadCount = 0;
function showUnread() {
  unread.textContent = String(unreadCount);
  unread.dataset.count = String(unreadCount);
}
$("notify-topic").textContent = `notifications:${userId}`;
const inbox = socket.channel(`notifications:${userId}`);
inbox.on("notification", ({ from, body }) => {
  unreadCount += 1;
  showUnread();
  addLine(notifyLog, "msg unread", ["who", from ? `from ${from}` : "from the HTTP API"], String(body ?? ""));
});
inbox.join();

$("notify-clear").addEventListener("click", () => {
  unreadCount = 0;
  showUnread();
  for (const item of notifyLog.querySelectorAll(".unread")) item.classList.remove("unread");
});

const notifyStatus = $("notify-status");
$("notify-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const to = $("notify-to").value.trim();
  const body = $("notify-body").value.trim();
  if (!to || !body) return;
  inbox
    .push("notify", { to, body })
    .receive("ok", () => {
      setStatus(notifyStatus, `Sent to ${to}.`, "good");
      $("notify-body").value = "";
    })
    .receive("error", ({ reason }) => setStatus(notifyStatus, `Not sent: ${reason}`, "bad"))
    .receive("timeout", () => setStatus(notifyStatus, "Not sent: no answer from the server", "bad"));
});

// The server refuses a join of someone else's notifications: show it.
$("notify-peek").addEventListener("click", () => {
  const result = $("notify-peek-result");
  const other = $("notify-to").value.trim() || "someone-else";
  const topic = `notifications:${other}`;
  const peek = socket.channel(topic);
  peek
    .join()
    .receive("ok", () => {
      setStatus(result, `Joined ${topic} (it is your own).`, "good");
      peek.leave();
    })
    .receive("error", ({ reason }) => setStatus(result, `Join ${topic} refused by the server: ${reason}`, "bad"))
    .receive("timeout", () => setStatus(result, `Join ${topic}: no answer`, "bad"));
});

$("notify-curl").textContent =
  `curl -H "Authorization: Bearer $SWITCHBOARD_API_KEY" ` +
  `-d '{"topic":"notifications:${userId}","event":"notification","payload":{"body":"hi"}}' ` +
  `${location.protocol}//${location.host}/api/broadcast`;

// For the console (and the browser tests).
window.demo = { socket, userId, presence, channels: { ticker, online, inbox }, room: () => room };
