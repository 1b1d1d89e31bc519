// node:assert/strict, the part the vector tests use, for the browser run.
function fail(message: string, detail?: string): never {
  throw new Error(detail ? `${detail}: ${message}` : message);
}
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return a.length === b.length && a.every((x, i) => x === b[i]);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
    const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}
type Check = ((e: unknown) => boolean) | (new (...a: never[]) => unknown) | undefined;
function matches(e: unknown, check: Check): boolean {
  if (!check) return true;
  if (check.prototype !== undefined && e instanceof (check as new (...a: never[]) => unknown)) return true;
  if (check === Error) return e instanceof Error;
  return check.prototype === undefined && (check as (e: unknown) => boolean)(e) === true;
}
const assert = {
  equal(a: unknown, b: unknown, m?: string) {
    if (a !== b) fail(`${String(a).slice(0, 80)} !== ${String(b).slice(0, 80)}`, m);
  },
  deepEqual(a: unknown, b: unknown, m?: string) {
    if (!same(a, b)) fail(`not deep-equal: ${JSON.stringify(a)?.slice(0, 200)} / ${JSON.stringify(b)?.slice(0, 200)}`, m);
  },
  ok(v: unknown, m?: string) {
    if (!v) fail("not ok", m);
  },
  throws(f: () => unknown, check?: Check, m?: string) {
    try {
      f();
    } catch (e) {
      if (!matches(e, check)) fail(`threw the wrong error: ${(e as Error).message}`, m);
      return;
    }
    fail("did not throw", m);
  },
  async rejects(p: Promise<unknown>, check?: Check, m?: string) {
    try {
      await p;
    } catch (e) {
      if (!matches(e, check)) fail(`rejected with the wrong error: ${(e as Error).message}`, m);
      return;
    }
    fail("did not reject", m);
  },
};
export default assert;
