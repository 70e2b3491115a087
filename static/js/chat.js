// One order's support conversation without the DOM: what the page shows (through an injected view) from the chat
// frames of the live connection, and what it sends (docs/protocol.md, "Support conversations").
// static/js/pages/order-chat.js gives it the page's view; tests/js/chat.test.mjs a recording one.

// What a message may hold after trimming, in characters (code points), as support/models.py says.
export const BODY_MAX_LENGTH = 2000;
// A `chat.typing` goes at most this often while the user types.
export const TYPING_EVERY_MS = 2000;
// When a `chat.typing` says nothing of its expiry.
export const TYPING_EXPIRES_S = 5;
// After the socket's own flood limit dropped a message, the sends still unanswered go again this much later.
export const FLOODED_RETRY_MS = 2000;
const FLOODED_WORDS = "Too many messages at once: the ones not sent yet go again in a moment.";

// The words beside the composer for the error codes the chat can answer with (the server's detail otherwise).
export const ERROR_WORDS = {
  rate_limited: "Too many messages at once: wait a moment and send it again.",
  empty_body: "Write a message first.",
  body_too_long: `A message is at most ${BODY_MAX_LENGTH.toLocaleString("en-GB")} characters.`,
  invalid_body: "A message is plain text: it cannot hold control characters.",
  unknown_order: "This conversation is not available to you.",
  not_allowed: "Only staff can write internal notes.",
  client_id_reused: "That message could not be sent again: please write it anew.",
  too_many_conversations: "Too many conversations are open in this tab: close one and reload this page.",
};
// Answers to frames the page sends on its own (a read receipt), not to anything the user did.
const QUIET_CODES = new Set(["invalid_seq"]);

// The body as the server will store it (support/rules.py, message_body_clean), or why it cannot be sent.
export function bodyProblem(text) {
  const body = text.replace(/\r\n?/g, "\n").trim();
  if (!body) return { code: "empty_body" };
  if ([...body].length > BODY_MAX_LENGTH) return { code: "body_too_long" };
  return { body };
}

export function errorWords(frame) {
  return ERROR_WORDS[frame.code] || (typeof frame.detail === "string" && frame.detail) || "Something went wrong.";
}

// `view` shows what this decides: showMessage(message, {own}), showPending(pending), dropPending(clientId),
// clear(), showTruncated(), showSeen(seq | null), showTyping(text | null), showPresence(text | null),
// showError(text | null), restoreDraft(body). `staff`: the viewer writes for the shop (the admin's widget).
// `shown`: the messages the page rendered ({seq, isStaff, internal}), up to `lastSeq`.
export class Conversation {
  constructor({ connection, order, staff, view, lastSeq = 0, shown = [], timers = globalThis,
                now = () => Date.now(), randomUUID = () => globalThis.crypto.randomUUID() }) {
    this.connection = connection;
    this.order = order;
    this.staff = staff;
    this.view = view;
    this.timers = timers;
    this.now = now;
    this.randomUUID = randomUUID;
    this.lastSeq = lastSeq; // the highest seq of this conversation the page has (its `after` on chat.open)
    this.messages = new Map(shown.map((message) => [message.seq, message]));
    this.pending = new Map(); // client_id → {client_id, body, internal}: sent, no chat.sent yet
    this.otherReadSeq = 0; // how far the other side has read
    this.seenSeq = null; // the own message "Seen" is under
    this.readSentSeq = 0;
    this.readWanted = 0; // the highest message of the other side that was on screen
    this.typingSentAt = -Infinity;
    this.typingTimer = null;
    this.gapAllowed = false;
    this.retryTimer = null;
    this.floodShown = false;
  }

  // Listen to the connection; open the conversation on every new socket (a socket forgets what it watched).
  start() {
    const mine = (handler) => (frame) => {
      if (frame.order === this.order) handler.call(this, frame);
    };
    this.connection.on("hello", () => this.open());
    this.connection.on("chat.opened", mine(this.opened));
    this.connection.on("chat.message", mine(this.received));
    this.connection.on("chat.sent", mine(this.sent));
    this.connection.on("chat.read", mine(this.readBy));
    this.connection.on("chat.typing", mine(this.typing));
    this.connection.on("chat.presence", mine(this.presence));
    this.connection.on("error", (frame) => this.refused(frame));
    if (this.connection.state === "live") this.open();
  }

  // After the last seq the page has; then the sends that were never acknowledged, with their client_id, so a
  // send whose answer was lost is stored once (the server finds it by its client_id).
  open() {
    if (!this.connection.send({ type: "chat.open", order: this.order, after: this.lastSeq })) return;
    this.resendPending();
    if (this.readWanted > this.readSentSeq) this.shownOnScreen(this.readWanted);
  }

  resendPending() {
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const pending of this.pending.values()) this.connection.send(this.sendFrame(pending));
  }

  opened(frame) {
    if (frame.reset || frame.truncated) {
      // Reset: the page's seqs mean nothing now. Truncated: what follows leaves a hole after what is shown.
      this.messages.clear();
      this.lastSeq = 0;
      this.seenSeq = null;
      this.view.clear();
      this.gapAllowed = frame.truncated;
      if (frame.truncated) this.view.showTruncated();
    }
    const read = frame.read && typeof frame.read === "object" ? frame.read : {};
    this.markRead(this.staff ? read.customer : read.staff);
    if (frame.presence && typeof frame.presence === "object") this.presence(frame.presence);
  }

  received(frame) {
    const message = frame.message;
    if (!message || typeof message.seq !== "number" || message.seq <= this.lastSeq) return; // had it already
    if (typeof frame.previous_seq === "number" && frame.previous_seq > this.lastSeq && !this.gapAllowed) {
      // One is missing (docs/protocol.md): the server sends everything after the last seq again, in order.
      this.connection.send({ type: "chat.open", order: this.order, after: this.lastSeq });
      return;
    }
    this.gapAllowed = false;
    this.lastSeq = message.seq;
    this.add(message);
  }

  sent(frame) {
    const pending = this.pending.get(frame.client_id);
    if (!pending) return;
    this.pending.delete(frame.client_id);
    this.view.dropPending(frame.client_id);
    if (this.floodShown && !this.pending.size) {
      this.floodShown = false;
      this.view.showError(null);
    }
    const message = frame.message;
    if (!message || typeof message.seq !== "number") return;
    // On a socket that watches the conversation, chat.sent takes the message's place in its sequence.
    this.lastSeq = Math.max(this.lastSeq, message.seq);
    if (!this.messages.has(message.seq)) this.add(message);
  }

  add(message) {
    const isStaff = message.author?.is_staff === true;
    const internal = message.internal === true;
    if (internal && !this.staff) return; // never on the customer's page, whoever's socket it reached
    this.messages.set(message.seq, { seq: message.seq, isStaff, internal });
    if (isStaff !== this.staff) this.stopTyping();
    this.view.showMessage(message, { own: isStaff === this.staff });
    this.showSeen();
  }

  readBy(frame) {
    if (frame.reader?.is_staff !== this.staff) this.markRead(frame.seq);
  }

  markRead(seq) {
    if (typeof seq !== "number" || seq <= this.otherReadSeq) return; // marks only move on; frames may cross
    this.otherReadSeq = seq;
    this.showSeen();
  }

  // "Seen" under the last of the viewer's side's messages that the other side has read (a note is never read).
  showSeen() {
    let seen = null;
    for (const message of this.messages.values()) {
      if (message.isStaff !== this.staff || message.internal || message.seq > this.otherReadSeq) continue;
      if (seen === null || message.seq > seen) seen = message.seq;
    }
    if (seen === this.seenSeq) return;
    this.seenSeq = seen;
    this.view.showSeen(seen);
  }

  typing(frame) {
    const author = frame.author;
    if (!author || author.is_staff === this.staff || typeof author.name !== "string") return;
    const seconds = typeof frame.expires_in === "number" && frame.expires_in > 0 ? frame.expires_in : TYPING_EXPIRES_S;
    this.timers.clearTimeout(this.typingTimer);
    this.typingTimer = this.timers.setTimeout(() => this.stopTyping(), seconds * 1000);
    this.view.showTyping(`${author.name} is typing…`);
  }

  stopTyping() {
    if (this.typingTimer === null) return;
    this.timers.clearTimeout(this.typingTimer);
    this.typingTimer = null;
    this.view.showTyping(null);
  }

  presence({ customer_online: customerOnline, staff_viewing: staffViewing }) {
    if (this.staff) {
      if (typeof customerOnline === "boolean") this.view.showPresence(customerOnline ? "Customer online" : "Customer offline");
    } else if (typeof staffViewing === "boolean") {
      this.view.showPresence(staffViewing ? "A member of our team is viewing this conversation" : null);
    }
  }

  refused(frame) {
    // A server without `chat.typing` answers it so: the page carries on without typing (issue 18).
    if (frame.code === "unknown_type") return;
    const pending = this.pending.get(frame.client_id);
    if (frame.order !== this.order) {
      // The socket's own flood limit names no order; what it dropped may be a send, which goes again later
      // (a send the server did store is not stored twice: its client_id finds it).
      if (frame.code === "rate_limited" && this.pending.size) {
        this.view.showError(FLOODED_WORDS);
        this.floodShown = true;
        if (this.retryTimer === null) this.retryTimer = this.timers.setTimeout(() => this.resendPending(), FLOODED_RETRY_MS);
      }
      return;
    }
    if (QUIET_CODES.has(frame.code)) return;
    if (pending) {
      // Refused, so never retried: its text goes back to the composer to be sent again or changed.
      this.pending.delete(frame.client_id);
      this.view.dropPending(frame.client_id);
      this.view.restoreDraft(pending.body);
    }
    this.view.showError(errorWords(frame));
  }

  // The user's message: pending until its chat.sent (retried on the next socket if that never comes).
  send(text, { internal = false } = {}) {
    const checked = bodyProblem(text);
    if (!checked.body) {
      this.view.showError(ERROR_WORDS[checked.code]);
      return false;
    }
    const pending = { client_id: this.randomUUID(), body: checked.body, internal: this.staff && internal };
    this.pending.set(pending.client_id, pending);
    this.view.showError(null);
    this.view.showPending(pending);
    this.connection.send(this.sendFrame(pending));
    return true;
  }

  sendFrame({ client_id: clientId, body, internal }) {
    const frame = { type: "chat.send", order: this.order, body, client_id: clientId };
    if (internal) frame.internal = true;
    return frame;
  }

  // The user typed in the composer: the other side hears it, at most once per TYPING_EVERY_MS.
  typed() {
    if (this.now() - this.typingSentAt < TYPING_EVERY_MS) return;
    if (this.connection.send({ type: "chat.typing", order: this.order })) this.typingSentAt = this.now();
  }

  // A message of the other side was on screen while the tab was visible: read up to it.
  shownOnScreen(seq) {
    this.readWanted = Math.max(this.readWanted, seq);
    if (this.readWanted <= this.readSentSeq) return;
    if (this.connection.send({ type: "chat.read", order: this.order, seq: this.readWanted })) {
      this.readSentSeq = this.readWanted; // else the next socket's open() sends it
    }
  }
}
