// Staff in the Django admin: another's change marks the order's row in the change list, and an open change form
// of that order warns that saving it would be refused. The only module that knows the admin's (stock) markup.
// Loaded by the orders' admin templates (templates/admin/orders/order/).

import { element } from "../dom.js";
import { connection } from "../live.js";

if (connection) listen(connection);

const CHANGE_FORM_PATH = /\/orders\/order\/(\d+)\/change\/$/;

export function listen(connection) {
  const changeList = document.getElementById("result_list");
  const loaded = document.querySelector('input[name="loaded_version"]');
  if (!changeList && !loaded) return;
  connection.on("order_changed", (frame) => {
    const order = frame.order;
    if (!order) return;
    const who = frame.actor || "the system";
    if (changeList) markRow(changeList, order, who);
    const path = window.location.pathname.match(CHANGE_FORM_PATH);
    if (loaded && path && path[1] === String(order.id) && order.version > Number(loaded.value)) {
      showBanner(`Order ${order.number} was changed by ${who} (now ${order.status_label}). `);
    }
  });
}

function markRow(changeList, order, who) {
  const checkbox = changeList.querySelector(`input.action-select[value="${CSS.escape(String(order.id))}"]`);
  const row = checkbox?.closest("tr");
  if (!row) return;
  const cell = row.querySelector("td.field-status");
  if (cell) cell.textContent = order.status_label;
  row.classList.add("live-changed");
  row.title = `Changed by ${who} to ${order.status_label}`;
}

function showBanner(text) {
  let banner = document.getElementById("live-changed-banner");
  if (!banner) {
    banner = element("ul", { className: "messagelist", attrs: { id: "live-changed-banner" } });
    document.getElementById("content")?.prepend(banner);
  }
  const reload = element("a", { text: "Reload", attrs: { href: window.location.pathname } });
  banner.replaceChildren(element("li", { className: "warning" }, [text, reload]));
}
