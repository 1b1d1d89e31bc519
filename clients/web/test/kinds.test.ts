import assert from "node:assert/strict";
import { test } from "node:test";
import { hex, unhex } from "../src/bytes.js";
import { canonicalMap } from "../src/codec.js";
import { KINDS, decodeContent, encodeContent } from "../src/kinds.js";
import { fromJson, load, toJson } from "./util.js";

test("kinds.json: every body decodes to its content and encodes to its exact bytes", () => {
  for (const v of load("kinds.json").vectors) {
    const c = decodeContent(v.kind, unhex(v.hex));
    assert.deepEqual(toJson(canonicalMap(c, KINDS[v.kind]!)), v.content, v.name);
    assert.equal(hex(encodeContent(v.kind, fromJson(v.content) as Record<string, unknown>)), v.hex, v.name);
  }
});
