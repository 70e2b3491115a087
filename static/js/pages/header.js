// What every signed-in page shows at its top: the connection's state, the signed-out banner and the unread bell.

import { UnreadCount } from "../unread.js";

const LABELS = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  offline: "offline",
  "signed-out": "signed out",
  paused: "paused (too many tabs)",
};

export function listen(connection) {
  const indicator = document.getElementById("live-indicator");
  connection.on("state", (state) => {
    if (indicator) {
      indicator.dataset.state = state;
      indicator.querySelector(".label").textContent = LABELS[state];
    }
    if (state === "signed-out") {
      const banner = document.getElementById("signed-out");
      if (banner) banner.hidden = false;
    }
  });

  const badge = document.getElementById("unread-badge");
  if (!badge) return;
  const unread = new UnreadCount();
  const show = () => {
    if (typeof unread.count !== "number") return;
    badge.firstChild.textContent = String(unread.count);
    badge.classList.toggle("empty", unread.count === 0);
    // For the parts of a page that follow the count too (the notification centre's "Mark all as read").
    document.dispatchEvent(new CustomEvent("live:unread", { detail: { count: unread.count } }));
  };
  connection.on("hello", (frame) => unread.reset(frame) && show());
  connection.on("notification", (frame) => unread.apply(frame) && show());
  connection.on("unread", (frame) => unread.apply(frame) && show());
}
