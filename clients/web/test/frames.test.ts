import assert from "node:assert/strict";
import { test } from "node:test";
import { hex, unhex } from "../src/bytes.js";
import { ProtocolError, canonical, decodeClient, decodeServer, encode } from "../src/codec.js";
import type { Frame } from "../src/codec.js";
import { fromJson, load, toJson } from "./util.js";

const dec = (dir: string, h: string) => (dir === "client" ? decodeClient(unhex(h)) : decodeServer(unhex(h)));

test("frames.json: every frame decodes to its JSON form and encodes to its exact bytes", () => {
  for (const v of load("frames.json").vectors) {
    assert.deepEqual(toJson(canonical(dec(v.direction, v.hex))), v.decoded, v.name);
    assert.equal(hex(encode(fromJson(v.decoded) as Frame)), v.hex, v.name);
  }
});

test("decode_only.json: other valid encodings decode, and re-encode canonically", () => {
  for (const v of load("decode_only.json").vectors) {
    const f = dec(v.direction, v.hex);
    assert.deepEqual(toJson(canonical(f)), v.decoded, v.name);
    assert.equal(hex(encode(f)), hex(encode(fromJson(v.decoded) as Frame)), v.name);
  }
});

test("invalid.json: every frame is refused with its error code", () => {
  for (const v of load("invalid.json").vectors) {
    assert.throws(() => dec(v.direction, v.hex), (e: unknown) => e instanceof ProtocolError && e.code === v.code, v.name);
  }
});
