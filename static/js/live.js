// Live notifications on every page of a signed-in user: one connection (connection.js, no DOM) that the page
// modules (pages/) listen to. Protocol: docs/protocol.md. No build step, no dependencies.
// Only what every page shows listens here; a page of one app loads its own module, which imports `connection`.

import { LiveConnection } from "./connection.js";
import * as header from "./pages/header.js";
import * as notificationCentre from "./pages/notification-centre.js";
import * as toasts from "./pages/toasts.js";

const liveUrl = document.querySelector('meta[name="live-url"]')?.content;
// Null on a page with no live URL (signed out): page modules then have nothing to listen to.
export const connection = liveUrl ? start(liveUrl) : null;

function start(path) {
  const url = new URL(path, window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  const visible = () => document.visibilityState === "visible";
  const connection = new LiveConnection({
    url: url.href,
    // The page rendered everything up to this seq: resuming after it, nothing between render and connect is missed.
    lastSeq: Number(document.querySelector('meta[name="live-last-seq"]')?.content || 0),
    // Signed for this session a moment ago: the first connect skips the session lookup (docs/protocol.md).
    ticket: document.querySelector('meta[name="live-ticket"]')?.content || "",
    isOnline: () => navigator.onLine,
    // A hidden tab has not shown what it received: it acknowledges that once it is looked at.
    isVisible: visible,
  });
  for (const page of [header, toasts, notificationCentre]) page.listen(connection);
  // Too much was missed to replay: the page itself is the fresh state.
  connection.on("reset", () => window.location.reload());
  connection.on("error", (frame) => console.warn("live notifications:", frame.code, frame.detail));

  // Deferred module scripts all run before DOMContentLoaded: the page's own modules listen from the first frame.
  document.addEventListener("DOMContentLoaded", () => connection.connect(), { once: true });
  document.addEventListener("visibilitychange", () => {
    if (!visible()) return;
    connection.pageShown();
    connection.reconnectNow({ visible: true });
  });
  window.addEventListener("online", () => connection.reconnectNow({ visible: visible() }));
  window.addEventListener("offline", () => connection.drop());
  return connection;
}
