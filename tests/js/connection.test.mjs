// The live connection without a browser: a fake WebSocket, fake timers and fake randomness. node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ACK_INTERVAL_MS,
  BACKOFF_BASE_MS,
  BACKOFF_CAP_MS,
  LiveConnection,
  PING_EVERY_MS,
  PONG_DEADLINE_MS,
  RESTART_CODES,
  TICKET_FRESH_MS,
  backoffCeiling,
} from "../../static/js/connection.js";

const URL_BASE = "ws://shop.test/ws/notifications/";

// The timers the module is given: time moves only when a test says so.
class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.nextId = 1;
  }

  setTimeout(callback, delay) {
    return this.add(callback, delay, null);
  }

  setInterval(callback, delay) {
    return this.add(callback, delay, delay);
  }

  clearTimeout(id) {
    this.timers.delete(id);
  }

  clearInterval(id) {
    this.timers.delete(id);
  }

  add(callback, delay, every) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + delay, delay, callback, every });
    return id;
  }

  // The delays of the one-shot timers still to fire (the retry, a pong deadline).
  pendingTimeouts() {
    return [...this.timers.values()].filter((timer) => timer.every === null).map((timer) => timer.delay);
  }

  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort(([, a], [, b]) => a.at - b.at)[0];
      if (!due) break;
      const [id, timer] = due;
      this.now = timer.at;
      if (timer.every === null) this.timers.delete(id);
      else timer.at += timer.every;
      timer.callback();
    }
    this.now = end;
  }
}

// A WebSocket the test plays the server of; every one the module opens is in `sockets`.
function fakeWebSocketClass() {
  const sockets = [];
  class FakeWebSocket extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedByClient = false;
      sockets.push(this);
    }

    send(text) {
      this.sent.push(JSON.parse(text));
    }

    close() {
      this.closedByClient = true;
      this.serverClose(1005); // at once, so a module that still listened to a socket it let go of would show it
    }

    open() {
      this.readyState = 1;
      this.dispatchEvent(new Event("open"));
    }

    frame(frame) {
      const data = typeof frame === "string" ? frame : JSON.stringify(frame);
      this.dispatchEvent(new MessageEvent("message", { data }));
    }

    serverClose(code) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.dispatchEvent(Object.assign(new Event("close"), { code }));
    }
  }
  return { FakeWebSocket, sockets };
}

function harness({ lastSeq = 42, ticket = "", random = () => 0.5, online = true, isVisible = () => true } = {}) {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const connection = new LiveConnection({
    url: URL_BASE, lastSeq, ticket, WebSocket: FakeWebSocket, timers: clock, random, now: () => clock.now,
    isOnline: () => online, isVisible,
  });
  const events = { state: [], notification: [], hello: [], unread: [], reset: [], order_changed: [], error: [] };
  for (const type of Object.keys(events)) connection.on(type, (detail) => events[type].push(detail));
  const seqs = () => events.notification.map((frame) => frame.seq);
  const latest = () => sockets.at(-1);
  // The server's side of a handshake: accepted, then hello.
  const accept = (hello = {}) => {
    latest().open();
    latest().frame({ type: "hello", user_id: 7, last_seq: lastSeq, unread: 0, unread_version: 1, ...hello });
  };
  return { clock, connection, sockets, events, seqs, latest, accept };
}

function notification(seq) {
  return { type: "notification", seq, title: `#${seq}`, unread: 1, unread_version: seq };
}

function after(socket) {
  return new URL(socket.url).searchParams.get("after");
}

test("the first socket resumes after the seq the page was rendered with, and goes live when opened", () => {
  const { connection, sockets, events, accept } = harness({ lastSeq: 42 });
  connection.connect();
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].url, `${URL_BASE}?after=42`);
  assert.deepEqual(events.state, ["connecting"]);
  accept();
  assert.deepEqual(events.state, ["connecting", "live"]);
  assert.equal(events.hello.length, 1);
});

function ticketOf(socket) {
  return new URL(socket.url).searchParams.get("ticket");
}

test("the page's connect ticket goes with the first socket; a page without one connects by its cookie alone", () => {
  const withTicket = harness({ ticket: "page-ticket" });
  withTicket.connection.connect();
  assert.equal(ticketOf(withTicket.latest()), "page-ticket");
  assert.equal(after(withTicket.latest()), "42");

  const without = harness();
  without.connection.connect();
  assert.equal(ticketOf(without.latest()), null);
});

test("the ticket of the last hello or pong goes with the next socket", () => {
  const { clock, connection, latest, accept } = harness({ ticket: "page-ticket" });
  connection.connect();
  accept({ ticket: "hello-ticket" });
  latest().serverClose(1006);
  clock.advance(BACKOFF_BASE_MS);
  assert.equal(ticketOf(latest()), "hello-ticket");

  accept({ ticket: "second-hello-ticket" });
  clock.advance(PING_EVERY_MS);
  latest().frame({ type: "pong", ticket: "pong-ticket" });
  latest().serverClose(1006);
  clock.advance(BACKOFF_BASE_MS);
  assert.equal(ticketOf(latest()), "pong-ticket");
});

test("a ticket older than TICKET_FRESH_MS stays home: the socket connects by its cookie alone", () => {
  const { clock, connection, latest } = harness({ ticket: "page-ticket" });
  clock.advance(TICKET_FRESH_MS); // the page sat in a background tab before its first connect
  connection.connect();
  assert.equal(ticketOf(latest()), null);
  assert.equal(after(latest()), "42");
});

test("the backoff ceiling doubles from the base to the cap", () => {
  const ceilings = Array.from({ length: 9 }, (_, attempt) => backoffCeiling(attempt));
  assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(BACKOFF_BASE_MS, 500);
  assert.equal(BACKOFF_CAP_MS, 30000);
});

test("each retry waits a full-jitter delay in [0, min(cap, base * 2^n)] and not a millisecond less", () => {
  const draws = [0, 0.999999, 0.25, 0.5, 0.75, 0.999999, 0, 0.5, 0.999999];
  let draw = 0;
  const { clock, connection, sockets, latest } = harness({ random: () => draws[draw++] });
  connection.connect();
  for (let attempt = 0; attempt < draws.length; attempt++) {
    latest().open(); // accepted and closed before its hello (e.g. 4013 while Redis is down): keeps backing off
    latest().serverClose(4013);
    const [delay] = clock.pendingTimeouts();
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
    assert.equal(delay, draws[attempt] * ceiling, `attempt ${attempt}`);
    assert.ok(delay >= 0 && delay <= ceiling, `attempt ${attempt}: ${delay} outside [0, ${ceiling}]`);
    const before = sockets.length;
    if (delay >= 1) {
      clock.advance(delay - 1);
      assert.equal(sockets.length, before, `attempt ${attempt}: reconnected before its delay`);
    }
    clock.advance(1);
    assert.equal(sockets.length, before + 1, `attempt ${attempt}: not reconnected after its delay`);
  }
});

test("a hello resets the backoff: the next drop retries within the base delay", () => {
  const { clock, connection, latest, accept } = harness({ random: () => 1 });
  connection.connect();
  for (let attempt = 0; attempt < 4; attempt++) {
    latest().serverClose(1006);
    clock.advance(clock.pendingTimeouts()[0]);
  }
  accept();
  latest().serverClose(1006);
  assert.deepEqual(clock.pendingTimeouts(), [BACKOFF_BASE_MS]);
});

test("a reconnect resumes after the last seq delivered", () => {
  const { clock, connection, latest, accept, seqs } = harness({ lastSeq: 42 });
  connection.connect();
  accept();
  latest().frame(notification(43));
  latest().frame(notification(44));
  latest().serverClose(4001); // a deploy: this server is going away
  clock.advance(BACKOFF_BASE_MS);
  assert.equal(after(latest()), "44");
  assert.deepEqual(seqs(), [43, 44]);
});

test("a 1012 (the server restarting) reconnects within the first backoff step, jittered, and resumes", () => {
  for (const random of [0.1, 0.7]) {
    const { clock, connection, sockets, latest, accept, seqs } = harness({ lastSeq: 42, random: () => random });
    connection.connect();
    accept();
    latest().frame(notification(43));
    latest().serverClose(1012); // a deploy's drain
    const retries = clock.pendingTimeouts().filter((ms) => ms !== ACK_INTERVAL_MS); // 43's ack pauses the next one
    assert.deepEqual(retries, [random * BACKOFF_BASE_MS]); // full jitter under the first step
    clock.advance(random * BACKOFF_BASE_MS);
    assert.equal(sockets.length, 2);
    assert.equal(after(latest()), "43");
    accept({ last_seq: 44 });
    latest().frame(notification(44)); // what the old socket had no time to send, replayed by the new process
    assert.deepEqual(seqs(), [43, 44]);
  }
});

test("a restart close comes back from the first backoff step even after failed tries", () => {
  assert.deepEqual([...RESTART_CODES].sort(), [1012, 4001]);
  for (const code of RESTART_CODES) {
    const { clock, connection, latest } = harness({ random: () => 1 });
    connection.connect();
    for (let failed = 0; failed < 4; failed += 1) {
      latest().serverClose(1006); // refused while the old process drained and the new one started
      clock.advance(BACKOFF_CAP_MS);
    }
    latest().open(); // accepted, and closed by the drain before its hello
    latest().serverClose(code);
    assert.deepEqual(clock.pendingTimeouts(), [BACKOFF_BASE_MS], `code ${code}`);
  }
});

test("a repeated or older seq is dropped, and a frame without a seq never reaches the pages", () => {
  const { connection, latest, accept, seqs } = harness({ lastSeq: 42 });
  connection.connect();
  accept();
  for (const seq of [43, 43, 41, 42, 44, 44]) latest().frame(notification(seq));
  latest().frame({ type: "notification", seq: "45", title: "a string seq" });
  latest().frame({ type: "notification", title: "no seq" });
  assert.deepEqual(seqs(), [43, 44]);
  assert.equal(connection.lastSeq, 44);
});

test("a gap resumes from the last seq delivered, and the replay fills it in order", () => {
  const { clock, connection, sockets, latest, accept, seqs, events } = harness({ lastSeq: 42 });
  connection.connect();
  accept();
  const first = latest();
  first.frame(notification(43));
  first.frame(notification(46)); // 44 and 45 went missing
  assert.deepEqual(seqs(), [43]);
  assert.equal(first.closedByClient, true);
  assert.equal(events.state.at(-1), "reconnecting");
  first.frame(notification(47)); // what the socket let go of still says is not delivered
  assert.deepEqual(seqs(), [43]);

  clock.advance(BACKOFF_BASE_MS);
  assert.equal(sockets.length, 2);
  assert.equal(after(latest()), "43");
  accept({ last_seq: 47 });
  for (const seq of [44, 45, 46, 47]) latest().frame(notification(seq));
  assert.deepEqual(seqs(), [43, 44, 45, 46, 47]);
});

test("a gap the resumed socket cannot fill either is a seq the server no longer has: it is skipped", () => {
  const { clock, connection, sockets, latest, accept, seqs } = harness({ lastSeq: 42 });
  connection.connect();
  accept();
  latest().frame(notification(44));
  clock.advance(BACKOFF_BASE_MS);
  accept({ last_seq: 44 });
  latest().frame(notification(44)); // the replay has no 43 either
  assert.deepEqual(seqs(), [44]);
  assert.equal(sockets.length, 2);

  latest().frame(notification(46)); // a new gap, after a seq delivered: resumed again
  assert.deepEqual(seqs(), [44]);
  assert.equal(latest().closedByClient, true);
  clock.advance(BACKOFF_BASE_MS);
  assert.equal(sockets.length, 3);
  assert.equal(after(latest()), "44");
});

test("a reset reaches the pages and the socket carries on from hello's seq without a gap resume", () => {
  const { clock, connection, sockets, latest, accept, seqs, events } = harness({ lastSeq: 42 });
  connection.connect();
  accept({ last_seq: 900 });
  latest().frame({ type: "reset" });
  assert.equal(events.reset.length, 1);
  latest().frame(notification(901));
  assert.deepEqual(seqs(), [901]);
  assert.equal(sockets.length, 1);
  latest().serverClose(4012);
  clock.advance(BACKOFF_BASE_MS);
  assert.equal(after(latest()), "901");
});

for (const code of [4401, 4403]) {
  test(`a ${code} close stops retrying: no backoff, no reconnect when shown or back online`, () => {
    const { clock, connection, sockets, latest, accept, events } = harness();
    connection.connect();
    accept();
    latest().serverClose(code);
    assert.equal(events.state.at(-1), "signed-out");
    assert.deepEqual(clock.pendingTimeouts(), []);
    connection.reconnectNow({ visible: true });
    connection.reconnectNow({ visible: false });
    connection.connect();
    clock.advance(10 * BACKOFF_CAP_MS);
    assert.equal(sockets.length, 1);
    assert.equal(events.state.at(-1), "signed-out");
  });
}

test("a 4409 close pauses: no retry, none when the network returns to a hidden tab, one when it is shown", () => {
  const { clock, connection, sockets, latest, accept, events } = harness();
  connection.connect();
  accept();
  latest().serverClose(4409);
  assert.equal(events.state.at(-1), "paused");
  clock.advance(10 * BACKOFF_CAP_MS);
  connection.reconnectNow({ visible: false }); // "online" in a tab nobody looks at
  assert.equal(sockets.length, 1);

  connection.reconnectNow({ visible: true });
  assert.equal(sockets.length, 2);
  assert.equal(events.state.at(-1), "connecting");
  accept();
  assert.equal(events.state.at(-1), "live");
});

test("every other close code reconnects with backoff", () => {
  for (const code of [1000, 1006, 4001, 4009, 4011, 4012, 4013, 4429]) {
    const { clock, connection, sockets, latest, accept, events } = harness({ random: () => 1 });
    connection.connect();
    accept();
    latest().serverClose(code);
    assert.equal(events.state.at(-1), "reconnecting", `code ${code}`);
    assert.deepEqual(clock.pendingTimeouts(), [BACKOFF_BASE_MS], `code ${code}`);
    clock.advance(BACKOFF_BASE_MS);
    assert.equal(sockets.length, 2, `code ${code}`);
  }
});

test("a drop while the browser is offline shows offline, and coming back online reconnects at once", () => {
  const online = { value: true };
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const connection = new LiveConnection({
    url: URL_BASE, lastSeq: 3, WebSocket: FakeWebSocket, timers: clock, random: () => 0.5,
    isOnline: () => online.value,
  });
  const states = [];
  connection.on("state", (state) => states.push(state));
  connection.connect();
  sockets[0].open();

  online.value = false;
  connection.drop(); // the browser's "offline" event
  assert.equal(sockets[0].closedByClient, true);
  assert.deepEqual(states, ["connecting", "live", "offline"]);
  connection.drop();
  assert.equal(sockets.length, 1);

  online.value = true;
  connection.reconnectNow({ visible: false }); // "online": not paused, so hidden or not it reconnects
  assert.equal(sockets.length, 2);
  assert.equal(after(sockets[1]), "3");
  assert.deepEqual(states, ["connecting", "live", "offline", "connecting"]);
});

test("a close while offline waits for the network with backoff and says offline", () => {
  const { connection, latest, accept, events, clock } = harness({ online: false });
  connection.connect();
  accept();
  latest().serverClose(1006);
  assert.equal(events.state.at(-1), "offline");
  assert.equal(clock.pendingTimeouts().length, 1);
});

test("a ping every 25 s; a pong in time keeps the socket, none within 10 s drops it and reconnects", () => {
  const { clock, connection, sockets, latest, accept, events } = harness();
  connection.connect();
  accept();
  clock.advance(PING_EVERY_MS);
  assert.deepEqual(latest().sent, [{ type: "ping", ticket: true }]);
  latest().frame({ type: "pong" });
  clock.advance(PONG_DEADLINE_MS);
  assert.equal(latest().closedByClient, false);

  clock.advance(PING_EVERY_MS - PONG_DEADLINE_MS);
  assert.equal(latest().sent.length, 2);
  clock.advance(PONG_DEADLINE_MS);
  assert.equal(sockets[0].closedByClient, true);
  assert.equal(events.state.at(-1), "reconnecting");
  clock.advance(BACKOFF_BASE_MS);
  assert.equal(sockets.length, 2);
  clock.advance(PING_EVERY_MS); // the old socket's ping timer is gone: nothing is sent on it
  assert.equal(sockets[0].sent.length, 2);
});

test("send goes over an open socket only, so a page can fall back to its form", () => {
  const { connection, latest } = harness();
  assert.equal(connection.send({ type: "mark_all_read" }), false);
  connection.connect();
  assert.equal(connection.send({ type: "mark_all_read" }), false); // still connecting
  latest().open();
  assert.equal(connection.send({ type: "mark_read", seq: 4 }), true);
  assert.deepEqual(latest().sent, [{ type: "mark_read", seq: 4 }]);
});

test("every frame type the server sends reaches the pages as it is, a new kind's too; pong, state and junk do not", () => {
  const { connection, latest, accept, events } = harness();
  const everything = [];
  connection.connect();
  accept();
  const unread = { type: "unread", unread: 0, unread_version: 9, read_seqs: null };
  const changed = { type: "order_changed", order: { id: 1 }, customer_id: 2, actor: null };
  const error = { type: "error", code: "rate_limited", detail: "slow down" };
  const answered = { type: "support_answered", order: 3 };
  const heard = [];
  connection.on("support_answered", (detail) => heard.push(detail));
  for (const type of ["state", "pong"]) connection.on(type, (detail) => everything.push([type, detail]));
  for (const frame of [unread, changed, error, answered, { type: "pong" }, { type: "state" }]) latest().frame(frame);
  for (const junk of ["not json", "null", "[1]", "7", '{"type": 7}']) latest().frame(junk);
  assert.deepEqual(events.unread, [unread]);
  assert.deepEqual(events.order_changed, [changed]);
  assert.deepEqual(events.error, [error]);
  assert.deepEqual(heard, [answered]);
  assert.deepEqual(everything, []);
});

test("a listener can stop listening", () => {
  const { connection, latest, accept } = harness();
  const heard = [];
  const stop = connection.on("notification", (frame) => heard.push(frame.seq));
  connection.connect();
  accept();
  latest().frame(notification(43));
  stop();
  latest().frame(notification(44));
  assert.deepEqual(heard, [43]);
});

// --- Delivery receipts (`ack`) ---------------------------------------------------------------------------------

function acks(socket) {
  return socket.sent.filter((message) => message.type === "ack").map((message) => message.seq);
}

test("a notification shown in a visible tab is acknowledged at once, after the pages had it", () => {
  const { connection, latest, accept, events } = harness({ lastSeq: 42 });
  let pagesHadIt = null;
  connection.on("notification", () => (pagesHadIt = acks(latest()).length === 0));
  connection.connect();
  accept();
  assert.deepEqual(acks(latest()), []); // the seq the page was rendered with is not a notification shown
  latest().frame(notification(43));
  assert.deepEqual(acks(latest()), [43]);
  assert.equal(pagesHadIt, true);
  assert.equal(events.notification.length, 1);
});

test("acks are coalesced: at most one per interval, the next one cumulative", () => {
  const { clock, connection, latest, accept } = harness({ lastSeq: 42 });
  connection.connect();
  accept();
  for (const seq of [43, 44, 45]) latest().frame(notification(seq));
  assert.deepEqual(acks(latest()), [43]);
  clock.advance(ACK_INTERVAL_MS - 1);
  latest().frame(notification(46));
  assert.deepEqual(acks(latest()), [43]);
  clock.advance(1);
  assert.deepEqual(acks(latest()), [43, 46]);
  clock.advance(ACK_INTERVAL_MS * 5); // nothing new shown: nothing sent
  assert.deepEqual(acks(latest()), [43, 46]);
  latest().frame(notification(47));
  assert.deepEqual(acks(latest()), [43, 46, 47]);
});

test("a replayed backlog is acknowledged like live notifications: the first at once, the rest in one", () => {
  const { clock, connection, latest, accept } = harness({ lastSeq: 42 });
  connection.connect();
  accept({ last_seq: 50 });
  for (let seq = 43; seq <= 50; seq++) latest().frame(notification(seq));
  clock.advance(ACK_INTERVAL_MS);
  assert.deepEqual(acks(latest()), [43, 50]);
});

test("a hidden tab acknowledges nothing until it is shown, then everything it received", () => {
  let visible = false;
  const { clock, connection, latest, accept, seqs } = harness({ lastSeq: 42, isVisible: () => visible });
  connection.connect();
  accept();
  latest().frame(notification(43));
  latest().frame(notification(44));
  assert.deepEqual(seqs(), [43, 44]); // the pages still get them
  connection.pageShown(); // a visibilitychange that did not make it visible
  clock.advance(ACK_INTERVAL_MS * 3);
  assert.deepEqual(acks(latest()), []);
  visible = true;
  connection.pageShown();
  assert.deepEqual(acks(latest()), [44]);
  connection.pageShown(); // shown again, nothing new
  clock.advance(ACK_INTERVAL_MS);
  assert.deepEqual(acks(latest()), [44]);
});

test("an ack shown while there is no socket goes on the next socket once it says hello", () => {
  const { clock, connection, latest, accept } = harness({ lastSeq: 42 });
  connection.connect();
  accept();
  const first = latest();
  first.frame(notification(43));
  first.frame(notification(44)); // held back by the interval
  first.serverClose(1006);
  clock.advance(ACK_INTERVAL_MS); // the interval ends with no socket open
  assert.deepEqual(acks(first), [43]);
  clock.advance(BACKOFF_BASE_MS);
  assert.equal(after(latest()), "44");
  latest().open();
  assert.deepEqual(acks(latest()), []); // not before hello: the server takes no message until then
  accept({ last_seq: 44 });
  assert.deepEqual(acks(latest()), [44]);
});

test("an ack no pong has confirmed is sent again on the next socket; a confirmed one is not", () => {
  const { clock, connection, latest, accept } = harness({ lastSeq: 42 });
  connection.connect();
  accept();
  latest().frame(notification(43)); // acked, then the socket drops before any pong
  latest().serverClose(1006);
  clock.advance(BACKOFF_BASE_MS);
  accept({ last_seq: 43 });
  clock.advance(ACK_INTERVAL_MS); // the interval of the first ack
  assert.deepEqual(acks(latest()), [43]); // the old socket may have lost it

  clock.advance(PING_EVERY_MS); // a ping after that ack…
  latest().frame({ type: "pong" }); // …answered: the server has read the ack
  latest().serverClose(1006);
  clock.advance(BACKOFF_BASE_MS);
  accept({ last_seq: 43 });
  clock.advance(ACK_INTERVAL_MS);
  assert.deepEqual(acks(latest()), []);
});

test("a pong for a ping sent before an ack does not confirm it", () => {
  const { clock, connection, latest, accept } = harness({ lastSeq: 42 });
  connection.connect();
  accept();
  clock.advance(PING_EVERY_MS); // ping
  latest().frame(notification(43)); // ack after the ping
  latest().frame({ type: "pong" });
  latest().serverClose(1006);
  clock.advance(BACKOFF_BASE_MS);
  accept({ last_seq: 43 });
  clock.advance(ACK_INTERVAL_MS);
  assert.deepEqual(acks(latest()), [43]);
});
