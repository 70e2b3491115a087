// The order page: its status badge changes and its timeline gets a step for each change of this order.
// Loaded by templates/orders/order_detail.html.

import { element, messageNote, safeToken, timeElement } from "../dom.js";
import { connection } from "../live.js";
import { ORDER_STATUS_CHANGED, isNewer, statusBadge } from "./order-status.js";
import { showTracking } from "./order-tracking.js";

if (connection) listen(connection);

export function listen(connection) {
  const detail = document.getElementById("order-status");
  if (!detail) return;
  connection.on("notification", ({ kind, order, created_at: createdAt, message, tracking, changed_by: changedBy }) => {
    if (kind !== ORDER_STATUS_CHANGED || !order || detail.dataset.orderId !== String(order.id) || !isNewer(detail, order)) return;
    statusBadge(detail, order);
    showTracking(tracking);
    // Only an order awaiting payment can be cancelled by its customer (orders/services.py).
    const cancel = document.getElementById("order-cancel");
    if (cancel && order.status !== "pending_payment") cancel.hidden = true;
    const timeline = document.getElementById("order-timeline");
    if (!timeline) return;
    const badge = element("span");
    statusBadge(badge, order);
    timeline.append(
      element("li", { className: "live-added", attrs: { "data-status": safeToken(order.status) } }, [
        badge,
        " ",
        timeElement(createdAt),
        // As the page renders it after a reload (templates/orders/order_detail.html); a server too old to say, nothing.
        ...(typeof changedBy?.label === "string" ? [" ", element("span", { className: "who", text: `by ${changedBy.label}` })] : []),
        ...messageNote(message, "note"),
      ]),
    );
  });
}
