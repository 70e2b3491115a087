// Live notifications: one WebSocket per tab, resumed by seq, never trusted as markup.
// Protocol: docs/protocol.md. No build step, no dependencies.

import { UnreadCount, markedRead } from "./unread.js";

const STOP_CODES = new Set([4401, 4403]); // not logged in / session ended: retrying cannot help
// Replaced: the user opened more sockets than the server allows and this tab's was the oldest. Retrying would
// only close another tab's, so this one waits until it is looked at again.
const REPLACED_CODE = 4409;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30000;
const PING_EVERY_MS = 25000;
const PONG_DEADLINE_MS = 10000;
const TOAST_MS = 8000;

const liveUrl = document.querySelector('meta[name="live-url"]')?.content;

const state = {
  lastSeq: Number(document.querySelector('meta[name="live-last-seq"]')?.content || 0),
  socket: null,
  attempt: 0,
  retryTimer: null,
  pingTimer: null,
  pongTimer: null,
  stopped: false,
  paused: false,
};
const unread = new UnreadCount();

// --- Connection ------------------------------------------------------------------------

function socketUrl() {
  const url = new URL(liveUrl, window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("after", String(state.lastSeq));
  return url.href;
}

function connect() {
  if (state.stopped || state.socket) return;
  clearTimeout(state.retryTimer);
  setIndicator(state.attempt ? "reconnecting" : "connecting");
  const socket = new WebSocket(socketUrl());
  state.socket = socket;
  socket.addEventListener("open", () => {
    setIndicator("live");
    startPinging();
  });
  socket.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    handleFrame(frame);
  });
  socket.addEventListener("close", (event) => {
    if (state.socket !== socket) return;
    state.socket = null;
    stopPinging();
    if (STOP_CODES.has(event.code)) {
      signedOut();
      return;
    }
    if (event.code === REPLACED_CODE) {
      paused();
      return;
    }
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  if (state.stopped || state.paused) return;
  setIndicator(navigator.onLine ? "reconnecting" : "offline");
  // Exponential backoff with full jitter, so a fleet of tabs does not reconnect in lockstep.
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** state.attempt);
  state.attempt += 1;
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(connect, Math.random() * ceiling);
}

function reconnectNow() {
  if (state.stopped || state.socket) return;
  if (state.paused && document.visibilityState !== "visible") return;
  state.paused = false;
  state.attempt = 0;
  connect();
}

function dropSocket() {
  // The network is gone: the old socket may linger half-open, so let it go and start afresh.
  const socket = state.socket;
  if (!socket) return;
  state.socket = null;
  stopPinging();
  socket.close();
  setIndicator("offline");
}

function startPinging() {
  stopPinging();
  state.pingTimer = setInterval(() => {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return;
    state.socket.send(JSON.stringify({ type: "ping" }));
    clearTimeout(state.pongTimer);
    state.pongTimer = setTimeout(() => {
      dropSocket();
      scheduleReconnect();
    }, PONG_DEADLINE_MS);
  }, PING_EVERY_MS);
}

function stopPinging() {
  clearInterval(state.pingTimer);
  clearTimeout(state.pongTimer);
}

function send(message) {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return false;
  state.socket.send(JSON.stringify(message));
  return true;
}

function paused() {
  state.paused = true;
  clearTimeout(state.retryTimer);
  setIndicator("paused");
}

function signedOut() {
  state.stopped = true;
  clearTimeout(state.retryTimer);
  setIndicator("signed-out");
  const banner = document.getElementById("signed-out");
  if (banner) banner.hidden = false;
}

// --- Frames -----------------------------------------------------------------------------

function handleFrame(frame) {
  switch (frame.type) {
    case "hello":
      // Only a socket the server fully set up resets the backoff: one accepted and closed
      // at once (e.g. 4013 while Redis is down) keeps backing off instead of hammering.
      state.attempt = 0;
      if (unread.reset(frame)) setUnread(unread.count);
      break;
    case "notification":
      if (typeof frame.seq !== "number" || frame.seq <= state.lastSeq) return; // seen already
      state.lastSeq = frame.seq;
      if (unread.apply(frame)) setUnread(unread.count);
      if (document.visibilityState === "visible") showToast(frame);
      updateOrderPages(frame.order, frame.created_at, frame.message);
      addToNotificationCentre(frame);
      break;
    case "unread":
      if (unread.apply(frame)) setUnread(unread.count);
      markReadInCentre(frame);
      break;
    case "reset":
      // Too much was missed to replay: the page itself is the fresh state.
      window.location.reload();
      break;
    case "order_changed":
      updateAdmin(frame);
      break;
    case "pong":
      clearTimeout(state.pongTimer);
      break;
    case "error":
      console.warn("live notifications:", frame.code, frame.detail);
      break;
  }
}

// --- What the page shows (always as text, never as HTML) ------------------------------------

function element(tag, { className, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child);
  return node;
}

function safeHref(url) {
  // Only same-site paths: a payload can never smuggle in a javascript: or foreign link.
  return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : "#";
}

function messageNote(message, className) {
  // Staff's message to the customer, when there is one (the payload never holds internal notes).
  return typeof message === "string" && message ? [element("p", { className, text: message })] : [];
}

function safeToken(value) {
  return String(value).replace(/[^a-z_]/g, "");
}

// Dates as the templates render them ("j M Y, H:i" in the site's time zone), so live items match.
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DATE_OPTIONS = {
  day: "numeric", month: "numeric", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
};
const DATE_PARTS = (() => {
  const timeZone = document.querySelector('meta[name="live-time-zone"]')?.content || undefined;
  try {
    return new Intl.DateTimeFormat("en-GB", { ...DATE_OPTIONS, timeZone });
  } catch {
    return new Intl.DateTimeFormat("en-GB", DATE_OPTIONS); // an unknown zone: the browser's own
  }
})();

function formatDate(when) {
  const part = Object.fromEntries(DATE_PARTS.formatToParts(when).map(({ type, value }) => [type, value]));
  return `${Number(part.day)} ${MONTHS[Number(part.month) - 1]} ${part.year}, ${part.hour}:${part.minute}`;
}

function timeElement(isoString) {
  // When it happened (a replayed change keeps its own time), not when the frame arrived.
  let when = new Date(isoString);
  if (Number.isNaN(when.getTime())) when = new Date();
  return element("time", { text: formatDate(when), attrs: { datetime: when.toISOString() } });
}

function setIndicator(stateName) {
  const indicator = document.getElementById("live-indicator");
  if (!indicator) return;
  const labels = {
    connecting: "connecting…",
    live: "live",
    reconnecting: "reconnecting…",
    offline: "offline",
    "signed-out": "signed out",
    paused: "paused (too many tabs)",
  };
  indicator.dataset.state = stateName;
  indicator.querySelector(".label").textContent = labels[stateName];
}

function setUnread(count) {
  const badge = document.getElementById("unread-badge");
  if (!badge || typeof count !== "number") return;
  badge.firstChild.textContent = String(count);
  badge.classList.toggle("empty", count === 0);
}

function showToast(frame) {
  const area = document.getElementById("toasts");
  if (!area) return;
  const close = element("button", { className: "toast-close", text: "×", attrs: { type: "button", "aria-label": "Dismiss" } });
  const toast = element("div", { className: "toast" }, [
    element("a", { className: "toast-title", text: frame.title, attrs: { href: safeHref(frame.url) } }),
    element("p", { className: "toast-body", text: frame.body }),
    ...messageNote(frame.message, "toast-note note"),
    close,
  ]);
  const dismiss = () => toast.remove();
  close.addEventListener("click", dismiss);
  let timer = setTimeout(dismiss, TOAST_MS);
  toast.addEventListener("mouseenter", () => clearTimeout(timer));
  toast.addEventListener("mouseleave", () => (timer = setTimeout(dismiss, TOAST_MS)));
  area.append(toast);
}

function statusBadge(badge, order) {
  badge.className = `status status-${safeToken(order.status)}`;
  badge.textContent = order.status_label;
}

function isNewer(node, order) {
  // The page rendered the order at data-version: news of that version or older is already shown.
  const shown = Number(node.dataset.version);
  if (typeof order.version !== "number" || Number.isNaN(shown)) return true;
  if (order.version <= shown) return false;
  node.dataset.version = String(order.version);
  return true;
}

function updateOrderPages(order, createdAt, message) {
  if (!order) return;
  // The order page: status badge and a new step in the timeline.
  const detail = document.getElementById("order-status");
  if (detail && detail.dataset.orderId === String(order.id) && isNewer(detail, order)) {
    statusBadge(detail, order);
    const timeline = document.getElementById("order-timeline");
    if (timeline) {
      const badge = element("span");
      statusBadge(badge, order);
      timeline.append(
        element("li", { className: "live-added", attrs: { "data-status": safeToken(order.status) } }, [
          badge,
          " ",
          timeElement(createdAt),
          ...messageNote(message, "note"),
        ]),
      );
    }
  }
  // My orders: the row's status changes in place.
  const row = document.querySelector(`tr[data-order-id="${CSS.escape(String(order.id))}"]`);
  const cell = row?.querySelector('[data-role="status"] .status');
  if (cell && isNewer(row, order)) {
    statusBadge(cell, order);
    row.classList.add("live-changed");
  }
}

function addToNotificationCentre(frame) {
  const list = document.getElementById("notification-list");
  if (!list) return;
  // Without a socket the form is posted like the rendered ones: same action, same CSRF token.
  const markAll = document.querySelector('form[data-live-action="mark_all_read"]');
  const token = markAll?.querySelector('input[name="csrfmiddlewaretoken"]')?.value;
  const attrs = { method: "post", action: markAll?.getAttribute("action") || "", "data-live-action": "mark_read" };
  const form = element("form", { attrs }, [
    ...(token ? [element("input", { attrs: { type: "hidden", name: "csrfmiddlewaretoken", value: token } })] : []),
    element("input", { attrs: { type: "hidden", name: "seq", value: frame.seq } }),
    element("button", { className: "link-button", text: "Mark as read", attrs: { type: "submit" } }),
  ]);
  list.prepend(
    element("li", { className: "notification unread live-added", attrs: liveItemAttrs(frame) }, [
      element("a", { className: "title", text: frame.title, attrs: { href: safeHref(frame.url) } }),
      element("p", { className: "body", text: frame.body }),
      ...messageNote(frame.message, "note"),
      timeElement(frame.created_at),
      form,
    ]),
  );
  document.querySelector(".notification-list + .empty")?.remove();
}

function liveItemAttrs(frame) {
  const attrs = { "data-seq": frame.seq };
  if (typeof frame.unread_version === "number") attrs["data-unread-version"] = frame.unread_version;
  return attrs;
}

function markReadInCentre(frame) {
  for (const item of document.querySelectorAll(".notification.unread")) {
    const version = item.dataset.unreadVersion;
    if (!markedRead(frame, { seq: Number(item.dataset.seq), version: version ? Number(version) : null })) continue;
    item.classList.remove("unread");
    item.querySelector('form[data-live-action="mark_read"]')?.remove();
  }
}

// Mark-read buttons work as plain forms; with a live socket they go over it instead.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-live-action]");
  if (!form) return;
  const action = form.dataset.liveAction;
  const message = action === "mark_all_read" ? { type: "mark_all_read" } : { type: "mark_read", seq: Number(form.elements.seq?.value) };
  if (send(message)) event.preventDefault();
});

// --- Staff: the Django admin ------------------------------------------------------------------

function updateAdmin(frame) {
  const order = frame.order;
  const who = frame.actor || "the system";
  // Change list: mark the changed row and update its status cell.
  const checkbox = document.querySelector(`#result_list input.action-select[value="${CSS.escape(String(order.id))}"]`);
  const row = checkbox?.closest("tr");
  if (row) {
    const cell = row.querySelector("td.field-status");
    if (cell) cell.textContent = order.status_label;
    row.classList.add("live-changed");
    row.title = `Changed by ${who} to ${order.status_label}`;
  }
  // Change form: someone else changed the order that is open here.
  const loaded = document.querySelector('input[name="loaded_version"]');
  const path = window.location.pathname.match(/\/orders\/order\/(\d+)\/change\/$/);
  if (loaded && path && path[1] === String(order.id) && order.version > Number(loaded.value)) {
    showAdminBanner(`Order ${order.number} was changed by ${who} (now ${order.status_label}). `);
  }
}

function showAdminBanner(text) {
  let banner = document.getElementById("live-changed-banner");
  if (!banner) {
    banner = element("ul", { className: "messagelist", attrs: { id: "live-changed-banner" } });
    document.getElementById("content")?.prepend(banner);
  }
  const reload = element("a", { text: "Reload", attrs: { href: window.location.pathname } });
  banner.replaceChildren(element("li", { className: "warning" }, [text, reload]));
}

// --- Start ---------------------------------------------------------------------------------------

if (liveUrl) {
  connect();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") reconnectNow();
  });
  window.addEventListener("online", reconnectNow);
  window.addEventListener("offline", dropSocket);
}
