// The device's persistent state: one IndexedDB object store of structured-clone values, so
// CryptoKeys are kept as they are (non-extractable private keys never become bytes).
//
// With a passphrase (optional, chosen at registration; E2E.md 10) every value is sealed before
// it is written: private keys as their wrapped form (crypto.ts: wrapped inside WebCrypto, the key
// in use stays non-extractable), then the whole value as msgpack under AES-256-GCM, the record's
// key as associated data (a sealed value cannot be moved to another key). Only the `seal` record
// (salt, work factor, a check value) is in clear; nothing is readable until the passphrase is
// entered again (`unlock`).
import { Decoder, Encoder } from "@msgpack/msgpack";
import { type Bytes, randomBytes, utf8 } from "./bytes.js";
import * as C from "./crypto.js";

interface Sealed { $sealed: 1; iv: Bytes; ct: Bytes }
interface SealRecord { salt: Bytes; iterations: number; check: { iv: Bytes; ct: Bytes } }

const SEAL = "seal";
const CHECK = utf8("chatd-web-seal-check-v1");
// The store's own msgpack (floats and any map allowed, unlike the protocol codec's).
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

export class WrongPassphrase extends Error {}

export class Store {
  private constructor(private readonly db: IDBDatabase) {}

  static open(name = "chatd"): Promise<Store> {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore("kv");
      req.onsuccess = () => resolve(new Store(req.result));
      req.onerror = () => reject(req.error);
    });
  }

  private run<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction("kv", mode, { durability: "strict" } as IDBTransactionOptions);
      const req = f(tx.objectStore("kv"));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  // ---------------------------------------------------------------- the passphrase

  /** Whether this browser's state is sealed under a passphrase (then `unlock` before anything). */
  async sealed(): Promise<boolean> {
    return (await this.run("readonly", (s) => s.get(SEAL))) !== undefined;
  }

  /** Seal everything written from now on under `passphrase` (at registration, on an empty store). */
  async setPassphrase(passphrase: string): Promise<void> {
    const salt = randomBytes(16);
    const key = await C.passphraseKey(passphrase, salt);
    C.setSealingKey(key);
    const rec: SealRecord = { salt, iterations: C.PBKDF2_ITERATIONS, check: await C.seal(CHECK, utf8(SEAL)) };
    await this.run("readwrite", (s) => s.put(rec, SEAL));
  }

  /** The passphrase again (each time the app opens); `WrongPassphrase` when it does not open. */
  async unlock(passphrase: string): Promise<void> {
    const rec = (await this.run("readonly", (s) => s.get(SEAL))) as SealRecord | undefined;
    if (!rec) return;
    const key = await C.passphraseKey(passphrase, rec.salt, rec.iterations);
    try {
      await C.unseal(rec.check, utf8(SEAL), key);
    } catch {
      throw new WrongPassphrase("wrong passphrase");
    }
    C.setSealingKey(key);
  }

  private async seal(key: string, value: unknown): Promise<unknown> {
    if (!C.isSealing() || value === undefined) return value;
    const { iv, ct } = await C.seal(encoder.encode(plain(value)), utf8(key));
    return { $sealed: 1, iv, ct } satisfies Sealed;
  }

  private async open<T>(key: string, value: unknown): Promise<T | undefined> {
    const v = value as Sealed | undefined;
    if (!v || typeof v !== "object" || v.$sealed !== 1) return value as T | undefined; // written before sealing
    return (await keys(decoder.decode(await C.unseal(v, utf8(key))))) as T;
  }

  // ---------------------------------------------------------------- values

  async get<T>(key: string): Promise<T | undefined> {
    return this.open<T>(key, await this.run("readonly", (s) => s.get(key)));
  }

  /** Write `value` under `key` (undefined: delete it). */
  async put(key: string, value: unknown): Promise<unknown> {
    const v = await this.seal(key, value);
    return this.run<unknown>("readwrite", (s) => (v === undefined ? s.delete(key) : s.put(v, key)) as IDBRequest<unknown>);
  }

  /** Several writes in one transaction: all or none (a ratchet step and what it carried);
   * an undefined value deletes its key. */
  async putMany(entries: [string, unknown][]): Promise<void> {
    // Sealed first: an IndexedDB transaction commits as soon as it waits for anything else.
    const sealed = await Promise.all(entries.map(async ([k, v]) => [k, await this.seal(k, v)] as const));
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction("kv", "readwrite", { durability: "strict" } as IDBTransactionOptions);
      const s = tx.objectStore("kv");
      for (const [k, v] of sealed) {
        if (v === undefined) s.delete(k);
        else s.put(v, k);
      }
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  del(key: string): Promise<unknown> {
    return this.run("readwrite", (s) => s.delete(key));
  }

  keys(prefix: string): Promise<string[]> {
    return this.run("readonly", (s) => s.getAllKeys(IDBKeyRange.bound(prefix, prefix + "\uffff")) as IDBRequest<string[]>);
  }
}

/** A value with its private keys replaced by their wrapped forms (what msgpack can hold). */
function plain(v: unknown): unknown {
  if (v instanceof CryptoKey) return C.wrappedKey(v);
  if (v instanceof Uint8Array || v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Set || v instanceof Map) throw new TypeError("the sealed store keeps no Set or Map");
  return Object.fromEntries(Object.entries(v as object).filter(([, x]) => x !== undefined).map(([k, x]) => [k, plain(x)]));
}

/** The inverse: wrapped private keys back as non-extractable CryptoKeys. */
async function keys(v: unknown): Promise<unknown> {
  if (v instanceof Uint8Array || v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return Promise.all(v.map(keys));
  const o = v as Record<string, unknown>;
  if (typeof o["$key"] === "string" && o["wrapped"] instanceof Uint8Array) return C.unwrapKey(o as unknown as C.WrappedKey);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) out[k] = await keys(x);
  return out;
}
