// My orders: a listed order's status changes in place, and an order placed elsewhere (another tab, a task) joins
// the list in its place, its row as a reload renders it. Loaded by templates/orders/order_list.html.

import { coalesced } from "../coalesced.js";
import { connection } from "../live.js";
import { ORDER_STATUS_CHANGED, isNewer, statusBadge } from "./order-status.js";

if (connection) listen(connection);

export function listen(connection) {
  const list = document.getElementById("my-orders");
  if (!list) return;
  connection.on("notification", ({ kind, order }) => {
    if (kind !== ORDER_STATUS_CHANGED || !order) return;
    const row = list.querySelector(`tr[data-order-id="${CSS.escape(String(order.id))}"]`);
    const cell = row?.querySelector('[data-role="status"] .status');
    if (!cell || !isNewer(row, order)) return;
    statusBadge(cell, order);
    row.classList.add("live-changed");
  });
  const refresh = coalesced(async () => {
    try {
      merge(list, await fetchThisPage());
    } catch (error) {
      console.warn("My orders: refreshing the list failed", error);
    }
  });
  // `order_placed` has no seq: on every hello the rows are read again, so one placed while this page rendered, or
  // while the socket was down, is listed too.
  connection.on("hello", refresh);
  connection.on("order_placed", refresh);
}

async function fetchThisPage() {
  const response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
  // Signed out meanwhile (a redirect to the login page) or an error: the list stays as it is.
  return response.ok && !response.redirected ? response.text() : null;
}

// What this page marks a row with when news changed it: marks that stay until a reload.
const LIVE_MARKS = ["live-changed", "live-added"];

// Takes the server's rendering of this page's list when it holds orders this one lacks; rows that news applied
// live since it rendered keep what they show.
export function merge(list, html) {
  if (!html) return;
  const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("my-orders");
  if (!fresh || fresh.dataset.page !== list.dataset.page) return;
  const shown = new Map([...list.querySelectorAll("tr[data-order-id]")].map((row) => [row.dataset.orderId, row]));
  const rows = [...fresh.querySelectorAll("tr[data-order-id]")];
  if (rows.every((row) => shown.has(row.dataset.orderId))) return;
  for (const row of rows) {
    const current = shown.get(row.dataset.orderId);
    if (!current) row.classList.add("live-added");
    else if (Number(current.dataset.version) > Number(row.dataset.version)) row.replaceWith(current);
    else for (const mark of LIVE_MARKS) if (current.classList.contains(mark)) row.classList.add(mark);
  }
  list.replaceChildren(...document.adoptNode(fresh).childNodes);
}
