import assert from "node:assert/strict";
import { test } from "node:test";
import { hex, unhex } from "../src/bytes.js";
import { rawDecode } from "../src/codec.js";
import * as F from "../src/e2e/franking.js";
import { load } from "./util.js";

const v = load("franking.json");

test("franking.json: commitments and tags of accepted reports", async () => {
  const secret = unhex(v.secret);
  for (const a of v.accepted) {
    const plaintext = unhex(a.plaintext);
    const fc = await F.commit(unhex(a.key), plaintext);
    assert.equal(hex(fc), a.commitment, a.name);
    assert.ok(await F.opens(fc, unhex(a.key), plaintext), a.name);
    assert.equal(hex(await F.tag(secret, fc, a.sender, a.conv, a.seq, a.ts)), a.tag, a.name);
    if (plaintext.length) {
      // The franked plaintext is exactly what this library encodes for its kind and body.
      const m = rawDecode(plaintext) as { kind: string; body: Uint8Array };
      assert.equal(hex(F.franked(m.kind, m.body)), a.plaintext, a.name);
    }
  }
});

test("franking.json: refused reports do not give the stored tag", async () => {
  const secret = unhex(v.secret);
  for (const r of v.refused) {
    let ok = false;
    try {
      const fc = await F.commit(unhex(r.key), unhex(r.plaintext));
      ok = hex(await F.tag(secret, fc, r.sender, r.conv, r.seq, r.ts)) === r.tag;
    } catch {
      ok = false; // a key of the wrong length
    }
    assert.equal(ok, false, r.name);
  }
});
