// The staff inbox in the admin (support/admin.py): it subscribes with `chat.inbox` once the socket says hello, and
// on `chat.inbox_opened` (every new socket: what changed while none was open) or `chat.inbox_changed` it fetches
// the rows as JSON and rebuilds them as the template renders them, every value as text. Loaded by
// templates/admin/support/conversation/inbox.html.

import { coalesced } from "../coalesced.js";
import { element, safeHref, timeElement } from "../dom.js";
import { connection } from "../live.js";

if (connection) listen(connection);

export function listen(connection) {
  const table = document.getElementById("support-inbox");
  if (!table) return;
  const refresh = refresher(table);
  connection.on("hello", () => connection.send({ type: "chat.inbox" }));
  connection.on("chat.inbox_opened", () => {
    table.dataset.live = "subscribed"; // from now on every change reaches this page (and tests wait for it)
    refresh();
  });
  connection.on("state", (state) => {
    if (state !== "live") table.dataset.live = state;
  });
  connection.on("chat.inbox_changed", (frame) => refresh(frame.order));
}

// At most one fetch at a time: changes during one are covered by a single fetch after it, however many.
function refresher(table) {
  const changed = new Set();
  const run = coalesced(async () => {
    const marked = new Set(changed);
    changed.clear();
    const rows = await fetchRows(table.dataset.rowsUrl);
    if (rows) render(table, rows, marked);
  });
  return function refresh(orderId) {
    if (orderId !== undefined) changed.add(String(orderId));
    return run();
  };
}

async function fetchRows(rowsUrl) {
  const url = new URL(rowsUrl, window.location.href);
  url.search = window.location.search; // the same filter as the page
  try {
    const response = await fetch(url, {
      credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return await response.json();
  } catch (error) {
    // Signed out, say (the admin's login page is not JSON): the next change or socket tries again.
    console.warn("support inbox: could not fetch the rows:", error.message);
    return null;
  }
}

function render(table, inbox, marked) {
  const summary = document.getElementById("inbox-summary");
  if (summary) summary.textContent = String(inbox.summary);
  const rows = Array.isArray(inbox.rows) ? inbox.rows : [];
  table.tBodies[0].replaceChildren(...rows.map((row) => rowElement(row, marked.has(String(row.order?.id)))));
}

function rowElement(row, changed) {
  const last = row.last_message;
  const classes = [row.awaiting_reply ? "inbox-awaiting" : "", changed ? "live-changed" : ""].filter(Boolean);
  const order = element("a", { text: row.order?.number ?? "", attrs: { href: safeHref(row.order?.url) } });
  const author = last ? `${last.author?.name ?? ""} (${last.author?.is_staff ? "staff" : "customer"})` : "—";
  return element("tr", { className: classes.join(" "), attrs: { "data-order-id": row.order?.id ?? "" } }, [
    element("th", { className: "inbox-order", attrs: { scope: "row" } }, [order]),
    element("td", { className: "inbox-customer", text: row.customer ?? "" }),
    element("td", { className: "inbox-excerpt", text: last?.excerpt || "—" }),
    element("td", { className: "inbox-author", text: author }),
    element("td", { className: "inbox-when" }, [last ? timeElement(last.created_at) : "—"]),
    element("td", { className: "inbox-status" }, status(row, last)),
    element("td", { className: `inbox-unread${row.unread ? " inbox-has-unread" : ""}`, text: Number(row.unread) || 0 }),
  ]);
}

function status(row, last) {
  if (row.awaiting_reply) return ["Awaiting reply since ", timeElement(row.waiting_since)];
  return [last ? "Answered" : "Notes only"];
}
