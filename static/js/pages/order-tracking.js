// The order page's tracking link: shown when the order's news carries one (the `tracking` of docs/protocol.md).

import { element, httpsHref } from "../dom.js";

export function showTracking(tracking) {
  const detail = document.getElementById("order-tracking");
  if (!detail || !tracking || typeof tracking !== "object") return;
  const { carrier, number, url } = tracking;
  if (typeof carrier !== "string" || typeof number !== "string" || !number) return;
  const href = httpsHref(url);
  const link = href
    ? element("a", { className: "tracking-link", text: number, attrs: { href, target: "_blank", rel: "noopener noreferrer" } })
    : element("span", { className: "tracking-number", text: number });
  detail.replaceChildren(element("span", { className: "carrier", text: carrier }), " ", link);
  detail.hidden = false;
  const term = document.getElementById("order-tracking-term");
  if (term) term.hidden = false;
}
