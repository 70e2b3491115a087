// My orders: a listed order's status changes in place, and its row is marked.

import { isNewer, statusBadge } from "./order-status.js";

export function listen(connection) {
  if (!document.querySelector("tr[data-order-id]")) return;
  connection.on("notification", ({ order }) => {
    if (!order) return;
    const row = document.querySelector(`tr[data-order-id="${CSS.escape(String(order.id))}"]`);
    const cell = row?.querySelector('[data-role="status"] .status');
    if (!cell || !isNewer(row, order)) return;
    statusBadge(cell, order);
    row.classList.add("live-changed");
  });
}
