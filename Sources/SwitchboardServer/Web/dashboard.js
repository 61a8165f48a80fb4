// The dashboard: joins `switchboard:dashboard` with the API key and draws the `stats` the server
// publishes every second. Charts are drawn on <canvas> here (no libraries); every string from the
// server reaches the page through textContent only, never as HTML.
import { Socket } from "/switchboard.js";

const TOPIC = "switchboard:dashboard";
const KEY_STORAGE = "switchboard-dashboard:key";
const WINDOW_MS = 60_000;
const $ = (id) => document.getElementById(id);

/** Samples of the last 60 s: {time, connections, rates}. */
let history = [];
let socket = null;
let lastErrorsShown = null;

const connectionSeries = [
  { name: "total", color: "--series-1", value: (s) => s.connections.total },
  { name: "WebSocket", color: "--series-2", value: (s) => s.connections.websocket },
  { name: "SSE", color: "--series-3", value: (s) => s.connections.sse },
  { name: "long-poll", color: "--series-4", value: (s) => s.connections.longpoll },
];
const rateSeries = [
  { name: "deliveries/s", color: "--series-1", value: (s) => s.rates.deliveries },
  { name: "messages in/s", color: "--series-2", value: (s) => s.rates.messagesIn },
  { name: "broadcasts/s", color: "--series-3", value: (s) => s.rates.broadcasts },
];

// MARK: Formatting

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

function formatCount(value) {
  return Number.isFinite(value) ? integer.format(value) : "–";
}

function formatRate(value) {
  if (!Number.isFinite(value)) return "–";
  return value < 10 ? oneDecimal.format(value) : integer.format(value);
}

/** Axis labels: 1.5k, 2M. */
function formatAxis(value) {
  if (value >= 1e6) return `${oneDecimal.format(value / 1e6)}M`;
  if (value >= 1e3) return `${oneDecimal.format(value / 1e3)}k`;
  return oneDecimal.format(value);
}

function formatTime(ms) {
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}

function setText(id, text) {
  const element = $(id);
  if (element.textContent !== text) element.textContent = text;
}

// MARK: Charts

function cssColor(variable) {
  return getComputedStyle(document.documentElement).getPropertyValue(variable).trim() || "#888";
}

/** The smallest 1, 2 or 5 × 10ⁿ at or above `value` (and at least `floor`). */
function niceCeiling(value, floor) {
  const target = Math.max(value, floor);
  const magnitude = 10 ** Math.floor(Math.log10(target));
  for (const step of [1, 2, 5, 10]) {
    if (step * magnitude >= target) return step * magnitude;
  }
  return 10 * magnitude;
}

function drawChart(canvas, series, { floor }) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0 || height === 0) return;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);

  const pad = { left: 48, right: 12, top: 8, bottom: 22 };
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  const now = history.length ? history[history.length - 1].time : Date.now();
  const start = now - WINDOW_MS;
  let max = 0;
  for (const sample of history) for (const s of series) max = Math.max(max, s.value(sample) || 0);
  const top = niceCeiling(max, floor);
  const x = (time) => pad.left + ((time - start) / WINDOW_MS) * plotWidth;
  const y = (value) => pad.top + plotHeight - (value / top) * plotHeight;

  // Grid and axes.
  const muted = cssColor("--muted");
  g.font = "11px system-ui, sans-serif";
  g.lineWidth = 1;
  g.strokeStyle = cssColor("--line");
  g.fillStyle = muted;
  g.textAlign = "right";
  g.textBaseline = "middle";
  // Round steps: 5 of them for a top of 1 or 5 × 10ⁿ (0.2, 1), 4 for 2 × 10ⁿ (0.5).
  const steps = Math.round(top / 10 ** Math.floor(Math.log10(top))) === 2 ? 4 : 5;
  for (let i = 0; i <= steps; i++) {
    const value = (top / steps) * i;
    const lineY = Math.round(y(value)) + 0.5;
    g.beginPath();
    g.moveTo(pad.left, lineY);
    g.lineTo(width - pad.right, lineY);
    g.stroke();
    g.fillText(formatAxis(value), pad.left - 8, lineY);
  }
  g.textBaseline = "top";
  for (const [offset, label] of [[60, "−60 s"], [30, "−30 s"], [0, "now"]]) {
    g.textAlign = offset === 60 ? "left" : offset === 0 ? "right" : "center";
    g.fillText(label, x(now - offset * 1000), height - pad.bottom + 6);
  }

  // Series: the first one filled lightly, all as lines; drawn back to front.
  const points = history.filter((sample) => sample.time >= start - 1000);
  for (let index = series.length - 1; index >= 0; index--) {
    const s = series[index];
    if (points.length === 0) continue;
    const color = cssColor(s.color);
    g.beginPath();
    points.forEach((sample, i) => {
      const px = Math.max(pad.left, x(sample.time));
      const py = y(s.value(sample) || 0);
      if (i === 0) g.moveTo(px, py);
      else g.lineTo(px, py);
    });
    g.strokeStyle = color;
    g.lineWidth = index === 0 ? 2.5 : 1.75;
    g.lineJoin = "round";
    g.stroke();
    if (index === 0 && points.length > 1) {
      g.lineTo(Math.max(pad.left, x(points[points.length - 1].time)), y(0));
      g.lineTo(Math.max(pad.left, x(points[0].time)), y(0));
      g.closePath();
      g.globalAlpha = 0.1;
      g.fillStyle = color;
      g.fill();
      g.globalAlpha = 1;
    }
  }
}

function renderLegend(listId, series, format) {
  const list = $(listId);
  const latest = history[history.length - 1];
  if (list.children.length !== series.length) {
    list.replaceChildren(
      ...series.map((s) => {
        const item = document.createElement("li");
        item.style.setProperty("--swatch", `var(${s.color})`);
        item.append(document.createTextNode(s.name), document.createElement("b"));
        return item;
      }),
    );
  }
  series.forEach((s, i) => {
    const value = list.children[i].querySelector("b");
    const text = latest ? format(s.value(latest)) : "–";
    if (value.textContent !== text) value.textContent = text;
  });
}

function drawCharts() {
  drawChart($("connections-chart"), connectionSeries, { floor: 5 });
  drawChart($("rates-chart"), rateSeries, { floor: 5 });
}

// MARK: Tables

function renderTopics(stats) {
  const body = $("topics-body");
  const topics = stats.topTopics ?? [];
  const max = Math.max(1, ...topics.map((t) => t.subscribers));
  body.replaceChildren(
    ...topics.map(({ topic, subscribers, users, connections }) => {
      const row = document.createElement("tr");
      const name = document.createElement("td");
      name.className = "topic";
      name.textContent = topic;
      name.title = topic;
      const count = document.createElement("td");
      count.className = "num";
      count.textContent = formatCount(subscribers);
      // Topics with presence: users online (and their connections); others: a dash.
      const online = document.createElement("td");
      online.className = "num online";
      online.textContent = users === undefined ? "–" : formatCount(users);
      if (users !== undefined) online.title = `${formatCount(users)} users on ${formatCount(connections)} connections`;
      const barCell = document.createElement("td");
      barCell.className = "bar-cell";
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${(subscribers / max) * 100}%`;
      barCell.append(bar);
      row.append(name, count, online, barCell);
      return row;
    }),
  );
  $("topics-empty").hidden = topics.length > 0;
  const total = stats.topics ?? topics.length;
  setText("topic-count", total > topics.length ? `top ${topics.length} of ${formatCount(total)}` : "");
}

function renderErrors(stats) {
  const errors = stats.recentErrors ?? [];
  const signature = `${stats.errors}:${errors.length}`;
  const badge = $("error-count");
  badge.dataset.count = String(stats.errors ?? 0);
  setText("error-count", formatCount(stats.errors ?? 0));
  $("errors-empty").hidden = errors.length > 0;
  if (signature === lastErrorsShown) return;
  lastErrorsShown = signature;
  $("errors-list").replaceChildren(
    ...errors.map(({ time, level, label, message }) => {
      const item = document.createElement("li");
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = formatTime(time);
      const badgeSpan = document.createElement("span");
      badgeSpan.className = "level";
      badgeSpan.dataset.level = level;
      badgeSpan.textContent = level;
      const text = document.createElement("span");
      text.className = "message";
      text.textContent = label ? `${label}: ${message}` : message;
      item.append(when, badgeSpan, text);
      return item;
    }),
  );
}

// MARK: Stats

function showStats(stats) {
  history.push({ time: stats.time, connections: stats.connections, rates: stats.rates });
  const cutoff = stats.time - WINDOW_MS - 2000;
  while (history.length && history[0].time < cutoff) history.shift();

  setText("node-id", stats.node ?? "–");
  setText("conn-total", formatCount(stats.connections.total));
  setText("conn-websocket", formatCount(stats.connections.websocket));
  setText("conn-sse", formatCount(stats.connections.sse));
  setText("conn-longpoll", formatCount(stats.connections.longpoll));
  setText("rate-messages", formatRate(stats.rates.messagesIn));
  setText("rate-broadcasts", formatRate(stats.rates.broadcasts));
  setText("rate-deliveries", formatRate(stats.rates.deliveries));
  setText("total-messages", formatCount(stats.totals.messagesIn));
  setText("total-broadcasts", formatCount(stats.totals.broadcasts));
  setText("total-deliveries", formatCount(stats.totals.deliveries));
  setText("total-joins", formatCount(stats.totals.joins));
  setText("total-slow", formatCount(stats.totals.slowConsumerDisconnects));
  renderLegend("connections-legend", connectionSeries, formatCount);
  renderLegend("rates-legend", rateSeries, formatRate);
  renderTopics(stats);
  renderErrors(stats);
  drawCharts();
  document.body.dataset.updated = String(stats.time);
}

// MARK: Connecting

function setStatus(text, state) {
  const status = $("status");
  status.textContent = text;
  status.dataset.state = state;
}

function setKeyStatus(text, tone = "") {
  const line = $("key-status");
  line.textContent = text;
  line.className = `status-line ${tone}`;
}

function showKeyForm(message, tone) {
  $("dashboard").hidden = true;
  $("key-card").hidden = false;
  $("sign-out").hidden = true;
  setKeyStatus(message ?? "", tone);
  $("key-input").focus();
}

function stop() {
  if (socket) socket.disconnect();
  socket = null;
  setStatus("not connected", "closed");
}

function start(key) {
  stop();
  history = [];
  lastErrorsShown = null;
  setKeyStatus("Checking the key…");
  $("key-submit").disabled = true;
  const current = new Socket("/socket");
  socket = current;
  current.onOpen(() => setStatus("connected", "open"));
  current.onClose(() => current === socket && setStatus("reconnecting…", "connecting"));
  current.connect();
  setStatus("connecting…", "connecting");

  const channel = current.channel(TOPIC, { key });
  channel.on("stats", (stats) => current === socket && showStats(stats));
  channel
    .join()
    .receive("ok", () => {
      if (current !== socket) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      $("key-submit").disabled = false;
      $("key-input").value = "";
      $("key-card").hidden = true;
      $("dashboard").hidden = false;
      $("sign-out").hidden = false;
      setKeyStatus("");
      requestAnimationFrame(drawCharts);
    })
    .receive("error", (response) => {
      if (current !== socket) return;
      sessionStorage.removeItem(KEY_STORAGE);
      stop();
      $("key-submit").disabled = false;
      const reason = response && typeof response.reason === "string" ? response.reason : "refused";
      showKeyForm(`The server refused this key (${reason}).`, "bad");
    })
    .receive("timeout", () => {
      if (current !== socket) return;
      $("key-submit").disabled = false;
      setKeyStatus("No answer from the server yet; still trying…", "bad");
    });
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (key) start(key);
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  stop();
  showKeyForm("Key forgotten.");
});

window.addEventListener("resize", () => requestAnimationFrame(drawCharts));

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) start(saved);
else showKeyForm();
