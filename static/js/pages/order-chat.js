// An order's support conversation on the page (templates/support/conversation.html): the customer's order page
// and the order's admin change page. What to show and send is static/js/chat.js's; this module only draws it,
// every value as text, and tells it what the user did and saw.

import { Conversation } from "../chat.js";
import { element, timeElement } from "../dom.js";
import { connection } from "../live.js";

const root = document.getElementById("order-chat");
if (connection && root) start(connection, root);

export function start(connection, root) {
  const staff = root.dataset.staff === "true";
  const list = root.querySelector(".chat-messages");
  const composer = root.querySelector(".chat-composer");
  const textarea = composer.querySelector("textarea");
  const internalBox = staff ? composer.querySelector('input[name="chat-internal"]') : null;
  const errorLine = root.querySelector(".chat-error");
  const items = new Map(); // seq → <li>, of the messages shown
  for (const item of list.querySelectorAll("li[data-seq]")) items.set(Number(item.dataset.seq), item);

  const view = pageView({ root, list, items, staff, textarea, errorLine });
  const conversation = new Conversation({
    connection,
    order: Number(root.dataset.orderId),
    staff,
    view,
    lastSeq: Number(root.dataset.lastSeq || 0),
    shown: [...items.values()].map((item) => ({
      seq: Number(item.dataset.seq),
      isStaff: item.dataset.staff === "true",
      internal: item.dataset.internal === "true",
    })),
  });
  view.watchReading((seq) => conversation.shownOnScreen(seq));
  conversation.start();

  composer.hidden = false;
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!conversation.send(textarea.value, { internal: internalBox?.checked === true })) return;
    textarea.value = "";
    if (internalBox) internalBox.checked = false;
    textarea.focus();
  });
  textarea.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter is a new line; not while an input method is composing a character.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    composer.requestSubmit();
  });
  textarea.addEventListener("input", () => {
    if (textarea.value.trim()) conversation.typed();
  });
  list.scrollTop = list.scrollHeight;
}

function pageView({ root, list, items, staff, textarea, errorLine }) {
  const typingLine = root.querySelector(".chat-typing");
  const presenceLine = root.querySelector(".chat-presence");
  const empty = root.querySelector(".chat-empty");
  const pendingItems = new Map(); // client_id → <li>
  let observer = null;
  let onRead = null;
  const onScreen = new Set(); // seqs of the other side's messages in view

  const readVisible = () => {
    if (document.visibilityState !== "visible" || !onScreen.size) return;
    onRead(Math.max(...onScreen));
  };
  const observe = (item) => {
    if (observer && item.dataset.staff !== String(staff)) observer.observe(item);
  };
  const stickToBottom = (change) => {
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    change();
    if (atBottom) list.scrollTop = list.scrollHeight;
  };
  const say = (line, text) => {
    line.textContent = text ?? "";
    line.hidden = !text;
  };

  return {
    watchReading(callback) {
      onRead = callback;
      // "Read" is seen, not received: in view (the list scrolls, and so does the page) while the tab is visible.
      observer = new IntersectionObserver((entries) => {
        for (const entry of entries) {
          const seq = Number(entry.target.dataset.seq);
          if (entry.isIntersecting) onScreen.add(seq);
          else onScreen.delete(seq);
        }
        readVisible();
      }, { threshold: 0.5 });
      for (const item of items.values()) observe(item);
      document.addEventListener("visibilitychange", readVisible);
    },

    showMessage(message, { own }) {
      const item = messageItem(message, { own });
      items.set(message.seq, item);
      // In seq order, before the messages still being sent.
      const next = [...items.keys()].filter((seq) => seq > message.seq).sort((a, b) => a - b)[0];
      stickToBottom(() => list.insertBefore(item, next !== undefined ? items.get(next) : list.querySelector(".pending")));
      empty.hidden = true;
      observe(item);
    },

    showPending(pending) {
      const item = messageItem(
        { body: pending.body, author: { name: "You", is_staff: staff }, internal: pending.internal },
        { own: true },
      );
      item.classList.add("pending");
      item.append(element("p", { className: "chat-status", text: "Sending…" }));
      pendingItems.set(pending.client_id, item);
      stickToBottom(() => list.append(item));
      empty.hidden = true;
    },

    dropPending(clientId) {
      pendingItems.get(clientId)?.remove();
      pendingItems.delete(clientId);
    },

    clear() {
      for (const item of items.values()) {
        observer?.unobserve(item);
        item.remove();
      }
      items.clear();
      onScreen.clear();
      root.querySelector(".chat-truncated")?.remove();
    },

    showTruncated() {
      list.before(element("p", { className: "chat-truncated", text: "Earlier messages are not shown." }));
    },

    showSeen(seq) {
      for (const old of list.querySelectorAll(".chat-seen")) old.remove();
      if (seq !== null) items.get(seq)?.append(element("p", { className: "chat-seen", text: "Seen" }));
    },

    showTyping: (text) => say(typingLine, text),
    showPresence: (text) => say(presenceLine, text),
    showError: (text) => say(errorLine, text),

    restoreDraft(body) {
      if (!textarea.value.trim()) textarea.value = body;
    },
  };
}

// One message as templates/support/conversation.html renders it.
function messageItem(message, { own }) {
  const isStaff = message.author?.is_staff === true;
  const classes = ["chat-message", isStaff ? "from-staff" : "from-customer", own ? "own" : "other"];
  if (message.internal) classes.push("internal");
  const attrs = { "data-staff": String(isStaff), "data-internal": String(message.internal === true) };
  if (typeof message.seq === "number") attrs["data-seq"] = message.seq;
  return element("li", { className: classes.join(" "), attrs }, [
    ...(message.internal ? [element("p", { className: "chat-label", text: "Internal note" })] : []),
    element("p", { className: "chat-meta" }, [
      element("span", { className: "chat-author", text: message.author?.name ?? "" }),
      ...(message.created_at ? [" ", timeElement(message.created_at)] : []),
    ]),
    element("p", { className: "chat-body", text: message.body }),
  ]);
}
