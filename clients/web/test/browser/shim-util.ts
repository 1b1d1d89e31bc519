// test/util.ts for the browser run: the vectors come from window.VECTORS (put there by the
// test that loads this bundle), not from the file system.
import { hex, unhex } from "../../src/bytes.js";

// biome-ignore lint: JSON
export function load(name: string): any {
  const v = (globalThis as unknown as { VECTORS: Record<string, unknown> }).VECTORS[name];
  if (v === undefined) throw new Error(`vector file ${name} not loaded`);
  return v;
}

export function fromJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromJson);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 1 && typeof o["$bytes"] === "string") return unhex(o["$bytes"]);
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, fromJson(x)]));
  }
  return v;
}

export function toJson(v: unknown): unknown {
  if (v instanceof Uint8Array) return { $bytes: hex(v) };
  if (Array.isArray(v)) return v.map(toJson);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  return v;
}
