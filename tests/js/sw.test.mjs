// The service worker's click handling, without a browser (a system notification cannot be clicked headless):
// node --test tests/js/. static/js/sw.js runs as it would in a worker, against a stand-in `self`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import vm from "node:vm";

const SOURCE = readFileSync(new URL("../../static/js/sw.js", import.meta.url), "utf8");
const ORIGIN = "https://shop.example";

function worker({ tabs = [] } = {}) {
  const listeners = {};
  const calls = { focused: [], opened: [], shown: [] };
  const self = {
    location: new URL(`${ORIGIN}/sw.js`),
    addEventListener: (type, listener) => (listeners[type] = listener),
    skipWaiting: () => {},
    // Through JSON: the worker's objects come from another realm, which deepEqual tells apart.
    registration: {
      showNotification: async (title, options) => calls.shown.push(JSON.parse(JSON.stringify({ title, options }))),
    },
    clients: {
      claim: async () => {},
      matchAll: async () => tabs.map((url) => ({ url, focus: async () => calls.focused.push(url) })),
      openWindow: async (url) => calls.opened.push(url),
    },
  };
  vm.runInNewContext(SOURCE, { self, URL, console });
  const dispatch = async (type, event) => {
    let done;
    listeners[type]({ ...event, waitUntil: (promise) => (done = promise) });
    await done;
  };
  return { calls, dispatch };
}

function click(url) {
  let closed = false;
  return { notification: { data: { url }, close: () => (closed = true) }, closed: () => closed };
}

test("a click focuses the tab already showing the notification's page", async () => {
  const { calls, dispatch } = worker({ tabs: [`${ORIGIN}/`, `${ORIGIN}/orders/7/`] });
  const event = click(`${ORIGIN}/orders/7/`);

  await dispatch("notificationclick", event);

  assert.deepEqual(calls.focused, [`${ORIGIN}/orders/7/`]);
  assert.deepEqual(calls.opened, []);
  assert.equal(event.closed(), true);
});

test("a click with no tab on that page opens it", async () => {
  const { calls, dispatch } = worker({ tabs: [`${ORIGIN}/`] });

  await dispatch("notificationclick", click(`${ORIGIN}/orders/7/`));

  assert.deepEqual(calls.opened, [`${ORIGIN}/orders/7/`]);
  assert.deepEqual(calls.focused, []);
});

for (const url of ["https://evil.example/orders/7/", "//evil.example/", "javascript:alert(1)", undefined]) {
  test(`a click never leaves the site: ${url} opens the notification centre`, async () => {
    const { calls, dispatch } = worker({ tabs: ["https://evil.example/orders/7/"] });

    await dispatch("notificationclick", click(url));

    assert.deepEqual(calls.opened, [`${ORIGIN}/notifications/`]);
    assert.deepEqual(calls.focused, []);
  });
}

test("a push shows its title, body with the tracking number, icon, tag and the page to open", async () => {
  const { calls, dispatch } = worker();
  const message = {
    title: "Order SO-1 has shipped", body: "On its way.", url: "/orders/1/", tag: "notification-4",
    icon: "/static/icons/notification-192.png", tracking: { carrier: "DHL", number: "JD01", url: "https://www.dhl.com/" },
  };

  await dispatch("push", { data: { json: () => message } });

  assert.deepEqual(calls.shown, [{
    title: "Order SO-1 has shipped",
    options: {
      body: "On its way.\nDHL JD01", icon: `${ORIGIN}/static/icons/notification-192.png`, tag: "notification-4",
      data: { url: `${ORIGIN}/orders/1/` },
    },
  }]);
});

test("a push with no data or unreadable data still shows a notification", async () => {
  for (const data of [null, { json: () => { throw new SyntaxError("not json"); } }]) {
    const { calls, dispatch } = worker();

    await dispatch("push", { data });

    assert.equal(calls.shown.length, 1);
    assert.equal(calls.shown[0].title, "Shop");
    assert.equal(calls.shown[0].options.data.url, `${ORIGIN}/notifications/`);
  }
});
