// The shop's service worker, served at /sw.js (notifications/views.py): shows a pushed notification
// (notifications/push.py builds the message) and, on a click, focuses the tab showing its page or opens it.
// Only pages of this site are ever opened, whatever a message says.

const FALLBACK_URL = "/notifications/";

// A URL of this site for `url`, or the notification centre.
function sameOriginUrl(url) {
  try {
    const resolved = new URL(url, self.location.origin);
    if (resolved.origin === self.location.origin) return resolved.href;
  } catch {
    // not a URL at all
  }
  return new URL(FALLBACK_URL, self.location.origin).href;
}

// What the system notification shows for a push message's JSON (anything unreadable still shows something:
// a push the user asked for must never pass silently).
function notificationFrom(message) {
  const tracking = message?.tracking;
  const trackingLine = tracking?.number ? `\n${[tracking.carrier, tracking.number].filter(Boolean).join(" ")}` : "";
  return {
    title: typeof message?.title === "string" && message.title ? message.title : "Shop",
    options: {
      body: (typeof message?.body === "string" ? message.body : "") + trackingLine,
      icon: typeof message?.icon === "string" ? sameOriginUrl(message.icon) : undefined,
      tag: typeof message?.tag === "string" ? message.tag : undefined,
      data: { url: sameOriginUrl(message?.url ?? FALLBACK_URL) },
    },
  };
}

function pushedMessage(data) {
  try {
    return data ? data.json() : null;
  } catch {
    return null;
  }
}

self.addEventListener("push", (event) => {
  const { title, options } = notificationFrom(pushedMessage(event.data));
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = sameOriginUrl(event.notification.data?.url ?? FALLBACK_URL);
  event.waitUntil(
    (async () => {
      const tabs = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = tabs.find((tab) => tab.url === url);
      if (open) return open.focus();
      return self.clients.openWindow(url);
    })(),
  );
});

// A new worker takes over at once: it only shows notifications, so no page depends on the old one.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
