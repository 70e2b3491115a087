// What the page modules build links with, without a browser. node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { safeHref } from "../../static/js/dom.js";

test("a path on this site is kept as it is", () => {
  for (const url of ["/", "/orders/SO-000123/", "/support/?q=a//b#c", "/a\\b"]) assert.equal(safeHref(url), url);
});

test("any link that could leave the site becomes #", () => {
  const offSite = [
    "//evil.example/",
    "/\\evil.example/",
    "/\t/evil.example/",
    "/\n/evil.example/",
    " /orders/",
    "https://evil.example/",
    "javascript:alert(1)",
    "orders/",
    "",
  ];
  for (const url of offSite) assert.equal(safeHref(url), "#", JSON.stringify(url));
});

test("anything but a string becomes #", () => {
  for (const url of [undefined, null, 42, ["/orders/"], { toString: () => "/orders/" }]) {
    assert.equal(safeHref(url), "#");
  }
});
