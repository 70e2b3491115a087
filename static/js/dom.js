// What the page modules build with: elements whose every value is text, never HTML, and links that stay on the site.

export function element(tag, { className, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child);
  return node;
}

// A path on this site: one "/" then anything but a second "/" or a "\" (browsers read "//host" and "/\host" as
// another host), and no control characters (browsers drop tabs and newlines, so "/<tab>/host" is "//host").
// The server refuses any other url when it records a notification (notifications/frames.py, SAME_SITE_PATH).
const SAME_SITE_PATH = /^\/(?![/\\])[^\x00-\x1f\x7f]*$/;

export function safeHref(url) {
  // Only same-site paths: a payload can never smuggle in a javascript: or foreign link.
  return typeof url === "string" && SAME_SITE_PATH.test(url) ? url : "#";
}

export function httpsHref(url) {
  // A carrier's page the server built (orders/carriers.py): https only, so no javascript: or data: link gets in.
  try {
    return new URL(url).protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

export function safeToken(value) {
  return String(value).replace(/[^a-z_]/g, "");
}

export function messageNote(message, className) {
  // Staff's message to the customer, when there is one (the payload never holds internal notes).
  return typeof message === "string" && message ? [element("p", { className, text: message })] : [];
}

// Dates as the templates render them ("j M Y, H:i" in the site's time zone), so live items match.
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DATE_OPTIONS = {
  day: "numeric", month: "numeric", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
};
const DATE_PARTS = (() => {
  // No document under `node --test`, where the browser-free helpers here are tested.
  const timeZone = globalThis.document?.querySelector('meta[name="live-time-zone"]')?.content || undefined;
  try {
    return new Intl.DateTimeFormat("en-GB", { ...DATE_OPTIONS, timeZone });
  } catch {
    return new Intl.DateTimeFormat("en-GB", DATE_OPTIONS); // an unknown zone: the browser's own
  }
})();

function formatDate(when) {
  const part = Object.fromEntries(DATE_PARTS.formatToParts(when).map(({ type, value }) => [type, value]));
  return `${Number(part.day)} ${MONTHS[Number(part.month) - 1]} ${part.year}, ${part.hour}:${part.minute}`;
}

export function timeElement(isoString) {
  // When it happened (a replayed change keeps its own time), not when the frame arrived.
  let when = new Date(isoString);
  if (Number.isNaN(when.getTime())) when = new Date();
  return element("time", { text: formatDate(when), attrs: { datetime: when.toISOString() } });
}
