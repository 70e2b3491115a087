// An order's conversation without a browser: a fake connection, a view that records, fake timers. node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { BODY_MAX_LENGTH, Conversation, FLOODED_RETRY_MS, TYPING_EVERY_MS } from "../../static/js/chat.js";

const ORDER = 7;

// What static/js/connection.js offers a page module: on(type, listener), send(frame) and its state.
class FakeConnection {
  constructor() {
    this.state = "connecting";
    this.open = false;
    this.sent = [];
    this.listeners = new Map();
  }

  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(listener);
  }

  send(frame) {
    if (!this.open) return false;
    this.sent.push(frame);
    return true;
  }

  // A new socket: open, then its hello.
  hello() {
    this.open = true;
    this.state = "live";
    this.deliver({ type: "hello", last_seq: 0 });
  }

  lose() {
    this.open = false;
    this.state = "reconnecting";
  }

  deliver(frame) {
    for (const listener of this.listeners.get(frame.type) || []) listener(frame);
  }

  take() {
    const sent = this.sent;
    this.sent = [];
    return sent;
  }
}

class RecordingView {
  constructor() {
    this.calls = [];
    for (const name of ["showMessage", "showPending", "dropPending", "clear", "showTruncated", "showSeen",
                        "showTyping", "showPresence", "showError", "restoreDraft"]) {
      this[name] = (...args) => this.calls.push([name, ...args]);
    }
  }

  take(name) {
    const found = this.calls.filter(([called]) => called === name).map(([, ...args]) => args);
    this.calls = this.calls.filter(([called]) => called !== name);
    return found;
  }

  shownSeqs() {
    return this.take("showMessage").map(([message]) => message.seq);
  }
}

class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.nextId = 1;
  }

  setTimeout(callback, delay) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + delay, callback });
    return id;
  }

  clearTimeout(id) {
    this.timers.delete(id);
  }

  advance(ms) {
    this.now += ms;
    for (const [id, timer] of [...this.timers]) {
      if (timer.at > this.now) continue;
      this.timers.delete(id);
      timer.callback();
    }
  }
}

function setUp({ staff = false, lastSeq = 0, shown = [] } = {}) {
  const connection = new FakeConnection();
  const view = new RecordingView();
  const clock = new FakeClock();
  let uuids = 0;
  const conversation = new Conversation({
    connection, order: ORDER, staff, view, lastSeq, shown, timers: clock, now: () => clock.now,
    randomUUID: () => `00000000-0000-4000-8000-${String(++uuids).padStart(12, "0")}`,
  });
  conversation.start();
  return { connection, view, clock, conversation };
}

function message(seq, { staff = false, internal = false, body = `message ${seq}` } = {}) {
  const author = { name: staff ? "Anna" : "Ada Lovelace", is_staff: staff };
  return { seq, body, author, created_at: "2026-12-07T16:00:00+00:00", internal };
}

function delivered(seq, options = {}, previousSeq = seq - 1) {
  return { type: "chat.message", order: ORDER, previous_seq: previousSeq, message: message(seq, options) };
}

function opened(fields = {}) {
  return { type: "chat.opened", order: ORDER, last_seq: 0, reset: false, truncated: false,
           read: { customer: 0, staff: 0 }, ...fields };
}

test("each new socket opens the conversation after the last seq the page has", () => {
  const { connection, view } = setUp({ lastSeq: 3 });
  connection.hello();
  assert.deepEqual(connection.take(), [{ type: "chat.open", order: ORDER, after: 3 }]);
  connection.deliver(opened({ last_seq: 5 }));
  connection.deliver(delivered(4));
  connection.deliver(delivered(5));
  assert.deepEqual(view.shownSeqs(), [4, 5]);

  connection.lose();
  connection.hello();
  assert.deepEqual(connection.take(), [{ type: "chat.open", order: ORDER, after: 5 }]);
});

test("a message already shown, by seq, is not shown again", () => {
  const { connection, view } = setUp({ lastSeq: 2, shown: [{ seq: 1, isStaff: false }, { seq: 2, isStaff: true }] });
  connection.hello();
  for (const seq of [2, 3, 3, 1, 4]) connection.deliver(delivered(seq));
  assert.deepEqual(view.shownSeqs(), [3, 4]);
});

test("a message after a gap is not shown: the conversation is opened again after the last seq shown", () => {
  const { connection, view } = setUp();
  connection.hello();
  connection.take();
  connection.deliver(delivered(1));
  connection.deliver(delivered(3, {}, 2));
  assert.deepEqual(view.shownSeqs(), [1]);
  assert.deepEqual(connection.take(), [{ type: "chat.open", order: ORDER, after: 1 }]);
  // A customer's previous_seq skips the notes: no gap there.
  connection.deliver(delivered(2));
  connection.deliver(delivered(5, {}, 2));
  assert.deepEqual(view.shownSeqs(), [2, 5]);
  assert.deepEqual(connection.take(), []);
});

test("a reset drops what the page showed and starts again from seq 0", () => {
  const { connection, view } = setUp({ lastSeq: 9, shown: [{ seq: 9, isStaff: false }] });
  connection.hello();
  connection.deliver(opened({ reset: true, last_seq: 2 }));
  connection.deliver(delivered(1));
  connection.deliver(delivered(2));
  assert.equal(view.take("clear").length, 1);
  assert.deepEqual(view.shownSeqs(), [1, 2]);
});

test("a truncated backlog says older messages are left out, and its first message is shown despite the gap", () => {
  const { connection, view } = setUp({ lastSeq: 1, shown: [{ seq: 1, isStaff: false }] });
  connection.hello();
  connection.take();
  connection.deliver(opened({ truncated: true, last_seq: 300 }));
  connection.deliver(delivered(101));
  connection.deliver(delivered(102));
  assert.equal(view.take("clear").length, 1);
  assert.equal(view.take("showTruncated").length, 1);
  assert.deepEqual(view.shownSeqs(), [101, 102]);
  assert.deepEqual(connection.take(), []);
});

test("frames of another order are not this conversation's", () => {
  const { connection, view } = setUp();
  connection.hello();
  connection.deliver({ ...delivered(1), order: ORDER + 1 });
  connection.deliver({ type: "chat.typing", order: ORDER + 1, author: { name: "Anna", is_staff: true } });
  assert.deepEqual(view.calls, []);
});

test("a sent message is pending until its chat.sent, which shows it in its place", () => {
  const { connection, view, conversation } = setUp();
  connection.hello();
  connection.take();
  assert.equal(conversation.send("  Where is my parcel?\r\n"), true);
  const [[pending]] = view.take("showPending");
  assert.equal(pending.body, "Where is my parcel?");
  assert.deepEqual(connection.take(), [
    { type: "chat.send", order: ORDER, body: "Where is my parcel?", client_id: pending.client_id },
  ]);
  connection.deliver({ type: "chat.sent", order: ORDER, client_id: pending.client_id, message: message(1) });
  assert.deepEqual(view.take("dropPending"), [[pending.client_id]]);
  assert.deepEqual(view.take("showMessage"), [[message(1), { own: true }]]);
  // Its live copy, if the socket were sent one too, is the same seq.
  connection.deliver(delivered(1));
  assert.deepEqual(view.shownSeqs(), []);
});

test("a send never acknowledged goes again on the next socket with the same client_id, after the open", () => {
  const { connection, view, conversation } = setUp();
  connection.hello();
  connection.take();
  conversation.send("first");
  connection.lose();
  conversation.send("second, while offline");
  const [first, second] = view.take("showPending").map(([pending]) => pending);
  connection.take();

  connection.hello();
  assert.deepEqual(connection.take(), [
    { type: "chat.open", order: ORDER, after: 0 },
    { type: "chat.send", order: ORDER, body: "first", client_id: first.client_id },
    { type: "chat.send", order: ORDER, body: "second, while offline", client_id: second.client_id },
  ]);
  // The first was stored before the socket was lost: the backlog has it, and its retry's ack finds it.
  connection.deliver(opened({ last_seq: 1 }));
  connection.deliver(delivered(1));
  connection.deliver({ type: "chat.sent", order: ORDER, client_id: first.client_id, message: message(1) });
  connection.deliver({ type: "chat.sent", order: ORDER, client_id: second.client_id, message: message(2) });
  assert.deepEqual(view.shownSeqs(), [1, 2]);
  assert.deepEqual(view.take("dropPending"), [[first.client_id], [second.client_id]]);

  connection.lose();
  connection.hello();
  assert.deepEqual(connection.take(), [{ type: "chat.open", order: ORDER, after: 2 }]);
});

test("a body that cannot be sent is refused beside the composer, and nothing is sent", () => {
  const { connection, view, conversation } = setUp();
  connection.hello();
  connection.take();
  assert.equal(conversation.send(" \n\t "), false);
  assert.equal(conversation.send("😀".repeat(BODY_MAX_LENGTH + 1)), false);
  assert.deepEqual(view.take("showError"), [["Write a message first."], ["A message is at most 2,000 characters."]]);
  assert.deepEqual(connection.take(), []);
  // Characters, not UTF-16 units: 2,000 emoji are 2,000 characters.
  assert.equal(conversation.send("😀".repeat(BODY_MAX_LENGTH)), true);
});

test("a refused send is no longer pending: its text goes back to the composer and the reason is shown in words", () => {
  const { connection, view, conversation } = setUp();
  connection.hello();
  conversation.send("one too many");
  const [[pending]] = view.take("showPending");
  view.take("showError");
  connection.deliver({ type: "error", code: "rate_limited", detail: "Too many messages…", order: ORDER,
                       client_id: pending.client_id });
  assert.deepEqual(view.take("dropPending"), [[pending.client_id]]);
  assert.deepEqual(view.take("restoreDraft"), [["one too many"]]);
  assert.deepEqual(view.take("showError"), [["Too many messages at once: wait a moment and send it again."]]);
  connection.lose();
  connection.take();
  connection.hello();
  assert.deepEqual(connection.take(), [{ type: "chat.open", order: ORDER, after: 0 }]);
});

test("sends the socket's flood limit may have dropped go again a moment later, stored once by their client_id", () => {
  const { connection, view, clock, conversation } = setUp();
  connection.hello();
  conversation.send("one");
  conversation.send("two");
  const [one, two] = view.take("showPending").map(([pending]) => pending);
  connection.deliver({ type: "chat.sent", order: ORDER, client_id: one.client_id, message: message(1) });
  connection.deliver({ type: "error", code: "rate_limited", detail: "Too many messages; slow down." });
  connection.deliver({ type: "error", code: "rate_limited", detail: "Too many messages; slow down." });
  assert.deepEqual(view.take("showError").slice(-1), [
    ["Too many messages at once: the ones not sent yet go again in a moment."],
  ]);
  connection.take();
  clock.advance(FLOODED_RETRY_MS);
  assert.deepEqual(connection.take(), [{ type: "chat.send", order: ORDER, body: "two", client_id: two.client_id }]);
  connection.deliver({ type: "chat.sent", order: ORDER, client_id: two.client_id, message: message(2) });
  assert.deepEqual(view.take("showError"), [[null]]);
  assert.deepEqual(view.shownSeqs(), [1, 2]);
});

test("an error of an unknown code shows the server's detail; one of another order or of chat.typing, nothing", () => {
  const { connection, view } = setUp();
  connection.hello();
  connection.deliver({ type: "error", code: "unknown_type", detail: "Unknown message type." });
  connection.deliver({ type: "error", code: "invalid_body", detail: "…", order: ORDER + 1 });
  connection.deliver({ type: "error", code: "invalid_seq", detail: "…", order: ORDER });
  assert.deepEqual(view.calls, []);
  connection.deliver({ type: "error", code: "something_new", detail: "Something new went wrong.", order: ORDER });
  assert.deepEqual(view.take("showError"), [["Something new went wrong."]]);
});

test("the customer's page never shows an internal note, and a customer cannot send one", () => {
  const { connection, view, conversation } = setUp();
  connection.hello();
  connection.take();
  connection.deliver(delivered(1, { staff: true, internal: true }));
  connection.deliver(delivered(2, { staff: true }));
  assert.deepEqual(view.shownSeqs(), [2]);
  conversation.send("hello", { internal: true });
  assert.equal(connection.take()[0].internal, undefined);
});

test("staff see notes as notes and send one with internal: true", () => {
  const { connection, view, conversation } = setUp({ staff: true });
  connection.hello();
  connection.take();
  connection.deliver(delivered(1, { staff: true, internal: true }));
  assert.deepEqual(view.take("showMessage"), [[message(1, { staff: true, internal: true }), { own: true }]]);
  conversation.send("Refund approved by Bob", { internal: true });
  assert.equal(connection.take()[0].internal, true);
});

test("Seen goes under the last own message the other side has read, from chat.opened and then chat.read", () => {
  const shown = [{ seq: 1, isStaff: false }, { seq: 2, isStaff: true }, { seq: 3, isStaff: false }];
  const { connection, view } = setUp({ lastSeq: 3, shown });
  connection.hello();
  connection.deliver(opened({ last_seq: 3, read: { customer: 3, staff: 2 } }));
  assert.deepEqual(view.take("showSeen"), [[1]]);
  // The customer's own mark, a staff mark that goes back, and one that moves on.
  connection.deliver({ type: "chat.read", order: ORDER, seq: 3, reader: { name: "Ada", is_staff: false } });
  connection.deliver({ type: "chat.read", order: ORDER, seq: 1, reader: { name: "Anna", is_staff: true } });
  assert.deepEqual(view.take("showSeen"), []);
  connection.deliver({ type: "chat.read", order: ORDER, seq: 3, reader: { name: "Anna", is_staff: true } });
  assert.deepEqual(view.take("showSeen"), [[3]]);
});

test("staff's Seen is the customer's mark, under the last staff message that is not a note", () => {
  const { connection, view } = setUp({ staff: true });
  connection.hello();
  connection.deliver(delivered(1, { staff: true }));
  connection.deliver(delivered(2, { staff: true, internal: true }));
  connection.deliver({ type: "chat.read", order: ORDER, seq: 2, reader: { name: "Anna", is_staff: true } });
  assert.deepEqual(view.take("showSeen"), []);
  connection.deliver({ type: "chat.read", order: ORDER, seq: 1, reader: { name: "Ada", is_staff: false } });
  assert.deepEqual(view.take("showSeen"), [[1]]);
});

test("a message of the other side on screen is read once, up to the highest; offline, on the next socket", () => {
  const { connection, conversation } = setUp();
  connection.hello();
  connection.take();
  conversation.shownOnScreen(2);
  conversation.shownOnScreen(2);
  conversation.shownOnScreen(1);
  assert.deepEqual(connection.take(), [{ type: "chat.read", order: ORDER, seq: 2 }]);
  connection.lose();
  conversation.shownOnScreen(4);
  connection.hello();
  assert.deepEqual(connection.take(), [
    { type: "chat.open", order: ORDER, after: 0 },
    { type: "chat.read", order: ORDER, seq: 4 },
  ]);
});

test("typing goes at most every 2 s while the user types", () => {
  const { connection, clock, conversation } = setUp();
  connection.hello();
  connection.take();
  for (let ms = 0; ms <= 5000; ms += 250) {
    conversation.typed();
    clock.advance(250);
  }
  const times = [0, TYPING_EVERY_MS, 2 * TYPING_EVERY_MS];
  assert.deepEqual(connection.take(), times.map(() => ({ type: "chat.typing", order: ORDER })));
});

test("the other side typing is shown until expires_in passes without another, or their message arrives", () => {
  const { connection, view, clock } = setUp();
  connection.hello();
  const typing = { type: "chat.typing", order: ORDER, author: { name: "Anna", is_staff: true }, expires_in: 5 };
  connection.deliver(typing);
  clock.advance(4000);
  connection.deliver(typing);
  clock.advance(4000);
  assert.deepEqual(view.take("showTyping"), [["Anna is typing…"], ["Anna is typing…"]]);
  clock.advance(1000);
  assert.deepEqual(view.take("showTyping"), [[null]]);

  connection.deliver(typing);
  connection.deliver(delivered(1, { staff: true }));
  assert.deepEqual(view.take("showTyping"), [["Anna is typing…"], [null]]);
  clock.advance(10_000);
  assert.deepEqual(view.take("showTyping"), []);
  // The viewer's own side typing (another tab of theirs) is not news.
  connection.deliver({ ...typing, author: { name: "Ada", is_staff: false } });
  assert.deepEqual(view.take("showTyping"), []);
});

test("presence: the customer sees staff viewing, staff see the customer online; absent, nothing", () => {
  const customerSide = setUp();
  customerSide.connection.hello();
  customerSide.connection.deliver(opened());
  customerSide.connection.deliver({ type: "chat.presence", order: ORDER, customer_online: true, staff_viewing: true });
  customerSide.connection.deliver({ type: "chat.presence", order: ORDER, customer_online: true, staff_viewing: false });
  assert.deepEqual(customerSide.view.take("showPresence"), [
    ["A member of our team is viewing this conversation"],
    [null],
  ]);

  const staffSide = setUp({ staff: true });
  staffSide.connection.hello();
  staffSide.connection.deliver(opened({ presence: { customer_online: false, staff_viewing: true } }));
  staffSide.connection.deliver({ type: "chat.presence", order: ORDER, customer_online: true, staff_viewing: true });
  assert.deepEqual(staffSide.view.take("showPresence"), [["Customer offline"], ["Customer online"]]);
});
