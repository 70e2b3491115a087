// Live notifications on every page of a signed-in user: one connection (connection.js, no DOM) that the page
// modules (pages/) listen to. Protocol: docs/protocol.md. No build step, no dependencies.

import { LiveConnection } from "./connection.js";
import * as admin from "./pages/admin.js";
import * as header from "./pages/header.js";
import * as myOrders from "./pages/my-orders.js";
import * as notificationCentre from "./pages/notification-centre.js";
import * as orderPage from "./pages/order-page.js";
import * as toasts from "./pages/toasts.js";

const liveUrl = document.querySelector('meta[name="live-url"]')?.content;
if (liveUrl) start(liveUrl);

function start(path) {
  const url = new URL(path, window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  const visible = () => document.visibilityState === "visible";
  const connection = new LiveConnection({
    url: url.href,
    // The page rendered everything up to this seq: resuming after it, nothing between render and connect is missed.
    lastSeq: Number(document.querySelector('meta[name="live-last-seq"]')?.content || 0),
    isOnline: () => navigator.onLine,
    // A hidden tab has not shown what it received: it acknowledges that once it is looked at.
    isVisible: visible,
  });
  for (const page of [header, toasts, orderPage, myOrders, notificationCentre, admin]) page.listen(connection);
  // Too much was missed to replay: the page itself is the fresh state.
  connection.on("reset", () => window.location.reload());
  connection.on("error", (frame) => console.warn("live notifications:", frame.code, frame.detail));

  connection.connect();
  document.addEventListener("visibilitychange", () => {
    if (!visible()) return;
    connection.pageShown();
    connection.reconnectNow({ visible: true });
  });
  window.addEventListener("online", () => connection.reconnectNow({ visible: visible() }));
  window.addEventListener("offline", () => connection.drop());
}
