// An order's status as the order page and My orders show it, and whether news of it is newer than what they show.

import { safeToken } from "../dom.js";

// The one kind of notification these pages act on; others (a support reply, say) may carry an `order` too.
export const ORDER_STATUS_CHANGED = "order.status_changed";

export function statusBadge(badge, order) {
  badge.className = `status status-${safeToken(order.status)}`;
  badge.textContent = order.status_label;
}

export function isNewer(node, order) {
  // The page rendered the order at data-version: news of that version or older is already shown.
  const shown = Number(node.dataset.version);
  if (typeof order.version !== "number" || Number.isNaN(shown)) return true;
  if (order.version <= shown) return false;
  node.dataset.version = String(order.version);
  return true;
}
