// The badge's last-writer-wins rule, without a browser: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { UnreadCount, markedRead } from "../../static/js/unread.js";

function permutations(items) {
  if (items.length <= 1) return [items];
  return items.flatMap((item, index) =>
    permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [item, ...rest]),
  );
}

test("a mark-read and a new notification crossing on the wire still end on the newer count", () => {
  // Version 5: seq 3 marked read (2 left). Version 6: seq 4 arrives (3 unread). Delivered the wrong way round.
  const markRead = { type: "unread", unread: 2, unread_version: 5, read_seqs: [3] };
  const notification = { type: "notification", seq: 4, unread: 3, unread_version: 6 };
  const badge = new UnreadCount();
  badge.reset({ type: "hello", unread: 3, unread_version: 4 });

  assert.equal(badge.apply(notification), true);
  assert.equal(badge.apply(markRead), false);
  assert.equal(badge.count, 3);
});

test("every delivery order of a set of frames ends on the count of the highest version", () => {
  const frames = [
    { type: "unread", unread: 0, unread_version: 7, read_seqs: null },
    { type: "notification", seq: 9, unread: 1, unread_version: 8 },
    { type: "unread", unread: 4, unread_version: 5, read_seqs: [2] },
    { type: "notification", seq: 8, unread: 5, unread_version: 6 },
  ];
  for (const order of permutations(frames)) {
    const badge = new UnreadCount();
    badge.reset({ type: "hello", unread: 5, unread_version: 4 });
    for (const frame of order) badge.apply(frame);
    assert.deepEqual([badge.count, badge.version], [1, 8], JSON.stringify(order));
  }
});

test("hello replaces whatever an earlier socket showed", () => {
  const badge = new UnreadCount();
  badge.apply({ type: "unread", unread: 9, unread_version: 40, read_seqs: null });
  assert.equal(badge.reset({ type: "hello", unread: 2, unread_version: 40 }), true);
  assert.equal(badge.count, 2);
});

test("a frame with the version already shown changes nothing", () => {
  const badge = new UnreadCount();
  badge.reset({ type: "hello", unread: 2, unread_version: 3 });
  assert.equal(badge.apply({ type: "notification", seq: 2, unread: 2, unread_version: 3 }), false);
});

test("a frame without a count is ignored and one without a version (an older server) is applied", () => {
  const badge = new UnreadCount();
  badge.reset({ type: "hello", unread: 2, unread_version: 3 });
  assert.equal(badge.apply({ type: "unread" }), false);
  assert.equal(badge.apply({ type: "unread", unread: 1, read_seqs: [1] }), true);
  assert.equal(badge.count, 1);
});

const ITEMS = [
  // [item, marked by "seqs 3 and 5", marked by "all read at version 6"]
  [{ seq: 3, version: null }, true, true],
  [{ seq: 5, version: 9 }, true, false],
  [{ seq: 4, version: null }, false, true],
  [{ seq: 6, version: 6 }, false, true],
  [{ seq: 7, version: 5 }, false, true],
  [{ seq: 8, version: 7 }, false, false], // arrived after the "all read", though delivered before its frame
];

test("an unread frame marks read its seqs, or for all read what came before its version", () => {
  const seqs = { type: "unread", unread: 1, unread_version: 6, read_seqs: [3, 5] };
  const all = { type: "unread", unread: 1, unread_version: 6, read_seqs: null };
  for (const [item, bySeqs, byAll] of ITEMS) {
    assert.equal(markedRead(seqs, item), bySeqs, JSON.stringify(item));
    assert.equal(markedRead(all, item), byAll, JSON.stringify(item));
  }
});
