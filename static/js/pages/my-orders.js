// My orders: a listed order's status changes in place, and its row is marked.
// Loaded by templates/orders/order_list.html.

import { connection } from "../live.js";
import { ORDER_STATUS_CHANGED, isNewer, statusBadge } from "./order-status.js";

if (connection) listen(connection);

export function listen(connection) {
  if (!document.querySelector("tr[data-order-id]")) return;
  connection.on("notification", ({ kind, order }) => {
    if (kind !== ORDER_STATUS_CHANGED || !order) return;
    const row = document.querySelector(`tr[data-order-id="${CSS.escape(String(order.id))}"]`);
    const cell = row?.querySelector('[data-role="status"] .status');
    if (!cell || !isNewer(row, order)) return;
    statusBadge(cell, order);
    row.classList.add("live-changed");
  });
}
