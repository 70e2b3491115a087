// The live connection: one WebSocket, resumed by seq (docs/protocol.md). No DOM and no page knowledge: pages listen
// to its events; the socket, the timers and the randomness are injected, so tests/js/connection.test.mjs drives it.

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30000;
export const PING_EVERY_MS = 25000;
export const PONG_DEADLINE_MS = 10000;
// Receipts (`ack`) go at most once per this interval, each saying everything shown so far.
export const ACK_INTERVAL_MS = 1000;
// Not logged in / session ended: retrying cannot help.
export const STOP_CODES = new Set([4401, 4403]);
// Replaced: the user opened more sockets than the server allows and this tab's was the oldest. Retrying would
// only close another tab's, so this one waits until it is looked at again.
export const REPLACED_CODE = 4409;
// The server is restarting (1012, a deploy's drain: shop/drain.py) or going away (4001): its successor or another
// process is there, so come back from the first backoff step, still jittered, however many tries came before.
export const RESTART_CODES = new Set([1012, 4001]);
// Every other frame type reaches the pages as it is, so a new kind's frames need no change here; `pong` is this
// module's business, and "state" its own event.
export const OWN_TYPES = new Set(["pong", "state"]);
// A connect ticket older than this is not sent: the server's are good for a minute (NOTIFICATION_SOCKET_TICKET_MAX_AGE),
// and without one the session cookie alone signs the socket in, at the cost of a session lookup.
export const TICKET_FRESH_MS = 45000;

const OPEN = 1; // WebSocket.OPEN, a constant of the protocol whichever class is injected

// The highest delay of retry number `attempt` (0 first): full jitter picks uniformly below it.
export function backoffCeiling(attempt) {
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

// Events: "state" (detail: one of connecting, live, reconnecting, offline, signed-out, paused) and one per frame
// type the server sends (detail: the frame). `notification` events come once each, in seq order.
// A notification handed to the pages while the tab is visible has been shown: the server gets an `ack` for it (a
// hidden tab's wait until `pageShown()`, when the tab is looked at).
export class LiveConnection extends EventTarget {
  constructor({ url, lastSeq = 0, ticket = "", WebSocket = globalThis.WebSocket, timers = globalThis,
                random = Math.random, now = () => Date.now(), isOnline = () => true, isVisible = () => true }) {
    super();
    this.url = url;
    this.lastSeq = lastSeq;
    this.now = now;
    this.ticket = "";
    this.ticketAt = 0;
    this.keepTicket(ticket);
    this.state = null;
    this.WebSocket = WebSocket;
    this.timers = timers;
    this.random = random;
    this.isOnline = isOnline;
    this.isVisible = isVisible;
    this.socket = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stopped = false;
    this.paused = false;
    this.helloLastSeq = null;
    this.gapResumedFrom = null;
    this.receivedSeq = 0; // the highest seq handed to the pages
    this.shownSeq = 0; // … of those, while the tab was visible
    this.ackedSeq = 0; // the highest seq acknowledged on the current socket
    this.confirmedSeq = 0; // … that the server has surely read: a pong came back for a ping sent after it
    this.pingCoversSeq = 0;
    this.ackTimer = null;
  }

  // `listener(detail)` for every event of `type`; returns the function that stops it.
  on(type, listener) {
    const wrapped = (event) => listener(event.detail);
    this.addEventListener(type, wrapped);
    return () => this.removeEventListener(type, wrapped);
  }

  resumeUrl() {
    const url = new URL(this.url);
    url.searchParams.set("after", String(this.lastSeq));
    if (this.ticket && this.now() - this.ticketAt < TICKET_FRESH_MS) url.searchParams.set("ticket", this.ticket);
    return url.href;
  }

  // The page's ticket, then the one each `hello` and `pong` brings: the next connect's (docs/protocol.md).
  keepTicket(ticket) {
    if (typeof ticket !== "string" || !ticket) return;
    this.ticket = ticket;
    this.ticketAt = this.now();
  }

  connect() {
    if (this.stopped || this.socket) return;
    this.timers.clearTimeout(this.retryTimer);
    this.setState(this.attempt ? "reconnecting" : "connecting");
    const socket = new this.WebSocket(this.resumeUrl());
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      this.setState("live");
      this.startPinging();
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return; // a socket let go of: what it still says is resumed on the next
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame === "object") this.receive(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopPinging();
      if (STOP_CODES.has(event.code)) {
        this.stop();
        return;
      }
      if (event.code === REPLACED_CODE) {
        this.pause();
        return;
      }
      if (RESTART_CODES.has(event.code)) this.attempt = 0;
      this.scheduleReconnect();
    });
  }

  // Now rather than after the backoff: the tab was shown (`visible`) or the network came back. A paused tab
  // resumes only when it is visible, where the user is looking.
  reconnectNow({ visible = true } = {}) {
    if (this.stopped || this.socket) return;
    if (this.paused && !visible) return;
    this.paused = false;
    this.attempt = 0;
    this.connect();
  }

  // The network is gone: the old socket may linger half-open, so let it go and start afresh.
  drop() {
    if (!this.letGo()) return;
    this.setState("offline");
  }

  send(message) {
    if (!this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  receive(frame) {
    switch (frame.type) {
      case "hello":
        // Only a socket the server fully set up resets the backoff: one accepted and closed
        // at once (e.g. 4013 while Redis is down) keeps backing off instead of hammering.
        this.attempt = 0;
        this.keepTicket(frame.ticket);
        this.helloLastSeq = typeof frame.last_seq === "number" ? frame.last_seq : null;
        // A new socket: an ack the old one may have lost goes again on this one.
        this.ackedSeq = this.confirmedSeq;
        this.sendAck();
        break;
      case "notification":
        if (!this.inSequence(frame)) return;
        break;
      case "reset":
        // What was missed cannot be replayed: the page refetches, and this socket carries on from hello's seq.
        if (this.helloLastSeq !== null) this.lastSeq = this.helloLastSeq;
        this.gapResumedFrom = null;
        break;
      case "pong":
        this.keepTicket(frame.ticket);
        this.timers.clearTimeout(this.pongTimer);
        this.confirmedSeq = Math.max(this.confirmedSeq, this.pingCoversSeq);
        return;
    }
    if (typeof frame.type === "string" && !OWN_TYPES.has(frame.type)) this.emit(frame.type, frame);
    if (frame.type === "notification") {
      this.receivedSeq = frame.seq;
      this.pageShown();
    }
  }

  // The tab is being looked at: what reached its pages has been shown (live.js calls this on `visibilitychange`).
  pageShown() {
    if (!this.isVisible() || this.receivedSeq <= this.shownSeq) return;
    this.shownSeq = this.receivedSeq;
    this.sendAck();
  }

  // One `ack` of everything shown, then none for ACK_INTERVAL_MS: what is shown meanwhile goes in the next one.
  sendAck() {
    if (this.ackTimer !== null || this.shownSeq <= this.ackedSeq) return;
    if (!this.send({ type: "ack", seq: this.shownSeq })) return; // no socket: the next one's hello sends it
    this.ackedSeq = this.shownSeq;
    this.ackTimer = this.timers.setTimeout(() => {
      this.ackTimer = null;
      this.sendAck();
    }, ACK_INTERVAL_MS);
  }

  // Whether a notification is the next one: older or repeated seqs are dropped; after a gap the socket is resumed
  // from the last seq delivered, so the server replays what is missing. Once: a gap the replay cannot fill is a seq
  // the server no longer has, and waiting for it would hold up every later one.
  inSequence(frame) {
    if (typeof frame.seq !== "number" || frame.seq <= this.lastSeq) return false;
    if (frame.seq > this.lastSeq + 1 && this.gapResumedFrom !== this.lastSeq) {
      this.gapResumedFrom = this.lastSeq;
      this.letGo();
      this.scheduleReconnect();
      return false;
    }
    this.lastSeq = frame.seq;
    return true;
  }

  letGo() {
    const socket = this.socket;
    if (!socket) return false;
    this.socket = null;
    this.stopPinging();
    socket.close();
    return true;
  }

  scheduleReconnect() {
    if (this.stopped || this.paused) return;
    this.setState(this.isOnline() ? "reconnecting" : "offline");
    // Exponential backoff with full jitter, so a fleet of tabs does not reconnect in lockstep.
    const ceiling = backoffCeiling(this.attempt);
    this.attempt += 1;
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = this.timers.setTimeout(() => this.connect(), this.random() * ceiling);
  }

  startPinging() {
    this.stopPinging();
    this.pingTimer = this.timers.setInterval(() => {
      if (!this.send({ type: "ping", ticket: true })) return; // its pong brings a fresh ticket
      this.pingCoversSeq = this.ackedSeq; // its pong says the server read every ack before it
      this.timers.clearTimeout(this.pongTimer);
      this.pongTimer = this.timers.setTimeout(() => {
        this.drop();
        this.scheduleReconnect();
      }, PONG_DEADLINE_MS);
    }, PING_EVERY_MS);
  }

  stopPinging() {
    this.timers.clearInterval(this.pingTimer);
    this.timers.clearTimeout(this.pongTimer);
  }

  pause() {
    this.paused = true;
    this.timers.clearTimeout(this.retryTimer);
    this.setState("paused");
  }

  stop() {
    this.stopped = true;
    this.timers.clearTimeout(this.retryTimer);
    this.setState("signed-out");
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.emit("state", state);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
