// The unread count, last writer wins (docs/protocol.md): `unread` and `notification` frames from different
// server processes can cross, so a count is shown only when its `unread_version` is newer than the one shown.
// No DOM and no socket here: static/js/pages/ applies the result, tests/js/unread.test.mjs tests it with node.

export class UnreadCount {
  constructor() {
    this.count = null;
    this.version = -1;
  }

  // `hello`: the state when this socket opened, newer than anything an earlier socket delivered.
  reset(frame) {
    this.version = -1;
    return this.apply(frame);
  }

  // A `notification` or `unread` frame: true when its count is newer and is now the one to show.
  apply(frame) {
    if (typeof frame.unread !== "number") return false;
    if (typeof frame.unread_version !== "number") {
      this.count = frame.unread; // a server from before versions (a rolling deploy): as it always was
      return true;
    }
    if (frame.unread_version <= this.version) return false;
    this.count = frame.unread;
    this.version = frame.unread_version;
    return true;
  }
}

// Whether an `unread` frame marks a notification-centre item read. `item.version` is the `unread_version` of the
// frame that added it live (null for one the page rendered): "all read" at version v covers what came before v.
export function markedRead(frame, item) {
  if (Array.isArray(frame.read_seqs)) return frame.read_seqs.includes(item.seq);
  if (frame.read_seqs !== null && frame.read_seqs !== undefined) return false;
  return item.version === null || typeof frame.unread_version !== "number" || item.version <= frame.unread_version;
}
