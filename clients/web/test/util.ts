import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { hex, unhex } from "../src/bytes.js";

const here = dirname(fileURLToPath(import.meta.url));
export const VECTORS = join(here, "..", "..", "..", "protocol", "vectors");

// biome-ignore lint: JSON
export function load(name: string): any {
  return JSON.parse(readFileSync(join(VECTORS, name), "utf8"));
}

/** The vectors' JSON form -> values ({"$bytes": hex} -> Uint8Array). */
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
