// The notification centre: new notifications at the top, read ones follow every tab, and its mark-read forms go
// over the socket when it is open.

import { markedRead } from "../unread.js";
import { element, messageNote, safeHref, timeElement } from "../dom.js";

export function listen(connection) {
  const list = document.getElementById("notification-list");
  if (!list) return;
  connection.on("notification", (frame) => addItem(list, frame));
  connection.on("unread", markRead);
  const markAll = document.querySelector('form[data-live-action="mark_all_read"]');
  document.addEventListener("live:unread", (event) => {
    if (markAll) markAll.hidden = event.detail.count === 0;
  });
  // Mark-read buttons work as plain forms; with a live socket they go over it instead.
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-live-action]");
    if (!form) return;
    const message = form.dataset.liveAction === "mark_all_read"
      ? { type: "mark_all_read" }
      : { type: "mark_read", seq: Number(form.elements.seq?.value) };
    if (connection.send(message)) event.preventDefault();
  });
}

function addItem(list, frame) {
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
    element("li", { className: "notification unread live-added", attrs: itemAttrs(frame) }, [
      element("a", { className: "title", text: frame.title, attrs: { href: safeHref(frame.url) } }),
      element("p", { className: "body", text: frame.body }),
      ...messageNote(frame.message, "note"),
      timeElement(frame.created_at),
      form,
    ]),
  );
  document.querySelector(".notification-list + .empty")?.remove();
}

function itemAttrs(frame) {
  const attrs = { "data-seq": frame.seq };
  if (typeof frame.unread_version === "number") attrs["data-unread-version"] = frame.unread_version;
  return attrs;
}

function markRead(frame) {
  for (const item of document.querySelectorAll(".notification.unread")) {
    const version = item.dataset.unreadVersion;
    if (!markedRead(frame, { seq: Number(item.dataset.seq), version: version ? Number(version) : null })) continue;
    item.classList.remove("unread");
    item.querySelector('form[data-live-action="mark_read"]')?.remove();
  }
}
