import assert from "node:assert/strict";
import { test } from "node:test";
import { newCmid } from "../src/bytes.js";

test("cmids are unique and sort in the order they were made on the server's clock (SPEC.md 7.3)", () => {
  const times = [0, 1, 2, 1_765_000_000_000, 1_765_000_000_001, 2 ** 48 - 1];
  const made = times.map((ms) => newCmid(ms));
  for (const c of made) assert.match(c, /^[0-9a-f]{32}$/);
  assert.deepEqual([...made].sort(), made);
  const same = [newCmid(5), newCmid(5)];
  assert.notEqual(same[0], same[1]);
  assert.equal(made[3]?.slice(0, 12), (1_765_000_000_000).toString(16).padStart(12, "0"));
});

test("without the server's time a cmid is random, and says nothing of this device's clock", () => {
  const made = Array.from({ length: 200 }, () => newCmid(null));
  for (const c of made) assert.match(c, /^[0-9a-f]{32}$/);
  assert.equal(new Set(made).size, made.length);
  const now = Date.now().toString(16).padStart(12, "0");
  assert.ok(!made.some((c) => c.startsWith(now.slice(0, 8))));
});
