// The demo page: ticker, online count, chat rooms and notifications over one switchboard.js socket.
// Everything a user typed reaches the page through textContent only, never as HTML.
import { Socket } from "/switchboard.js";

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

// Online now: counts may arrive out of order; keep the one with the highest seq since our join.
const online = socket.channel("online");
let onlineSeq = 0;
online.on("session-count", ({ count, seq }) => {
  if (seq <= onlineSeq) return;
  onlineSeq = seq;
  $("online-count").textContent = String(count);
});
online.join().receive("ok", () => {
  onlineSeq = 0;
});

// Chat rooms: room:<name>; join with {user}, push new_msg {body}.
const chatLog = $("chat-log");
const nameInput = $("chat-name");
const roomInput = $("chat-room");
nameInput.value = localStorage.getItem("switchboard-demo:name") || `guest-${userId.slice(0, 4)}`;
roomInput.value = localStorage.getItem("switchboard-demo:room") || "lobby";
let room = null;

function joinRoom() {
  const name = nameInput.value.trim();
  const roomName = roomInput.value.trim();
  if (!name || !roomName) return;
  localStorage.setItem("switchboard-demo:name", name);
  localStorage.setItem("switchboard-demo:room", roomName);
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
window.demo = { socket, userId, channels: { ticker, online, inbox }, room: () => room };
