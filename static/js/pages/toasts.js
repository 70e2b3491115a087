// A toast for each new notification while the tab is looked at.

import { element, messageNote, safeHref } from "../dom.js";

const TOAST_MS = 8000;

export function listen(connection) {
  const area = document.getElementById("toasts");
  if (!area) return;
  connection.on("notification", (frame) => {
    if (document.visibilityState === "visible") area.append(toast(frame));
  });
}

function toast(frame) {
  const closeAttrs = { type: "button", "aria-label": "Dismiss" };
  const close = element("button", { className: "toast-close", text: "×", attrs: closeAttrs });
  const node = element("div", { className: "toast" }, [
    element("a", { className: "toast-title", text: frame.title, attrs: { href: safeHref(frame.url) } }),
    element("p", { className: "toast-body", text: frame.body }),
    ...messageNote(frame.message, "toast-note note"),
    close,
  ]);
  const dismiss = () => node.remove();
  close.addEventListener("click", dismiss);
  let timer = setTimeout(dismiss, TOAST_MS);
  node.addEventListener("mouseenter", () => clearTimeout(timer));
  node.addEventListener("mouseleave", () => (timer = setTimeout(dismiss, TOAST_MS)));
  return node;
}
