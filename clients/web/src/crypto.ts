// The only module that touches WebCrypto and @noble/post-quantum (E2E.md section 2).
// Private keys are CryptoKey objects (non-extractable unless a caller imports raw test values);
// public keys, signatures and symmetric chain keys cross the rest of the code as bytes. With a
// passphrase (sealing, below), each private key is also kept wrapped under the passphrase's key,
// so that the store writes only sealed bytes: the key in use stays non-extractable.
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { type Bytes, concat, ctEqual, unhex } from "./bytes.js";

const subtle = globalThis.crypto.subtle;

export class CryptoError extends Error {}
export class DecryptError extends CryptoError {}
export class ReplayError extends DecryptError {}
export class InvalidKeyError extends CryptoError {}
export class SignatureError extends CryptoError {}
export class UntrustedKeyError extends CryptoError {}

const buf = (b: Bytes): ArrayBuffer => b.slice().buffer as ArrayBuffer;

// PKCS#8 wrappers of a raw 32-byte private key (RFC 8410): WebCrypto imports no raw private key.
const ED_PKCS8 = unhex("302e020100300506032b657004220420");
const X_PKCS8 = unhex("302e020100300506032b656e04220420");

// --- Ed25519 ------------------------------------------------------------------------------

export interface SigningKey {
  readonly privateKey: CryptoKey;
  readonly publicKey: Bytes;
}

export async function ed25519Generate(extractable = false): Promise<SigningKey> {
  const kp = (await subtle.generateKey({ name: "Ed25519" }, extractable || !!sealing, ["sign", "verify"])) as CryptoKeyPair;
  const privateKey = extractable ? kp.privateKey : await held(kp.privateKey, "Ed25519", ["sign"]);
  return { privateKey, publicKey: new Uint8Array(await subtle.exportKey("raw", kp.publicKey)) };
}

/** A signing key from its 32-byte seed (test vectors, and seeds moved between devices). */
export async function ed25519FromSeed(seed: Bytes, extractable = false): Promise<SigningKey> {
  if (seed.length !== 32) throw new InvalidKeyError("an Ed25519 seed is 32 bytes");
  const probe = await subtle.importKey("pkcs8", buf(concat(ED_PKCS8, seed)), { name: "Ed25519" }, true, ["sign"]);
  const jwk = await subtle.exportKey("jwk", probe);
  const publicKey = b64url(jwk.x!);
  const privateKey = extractable ? probe : sealing ? await held(probe, "Ed25519", ["sign"]) : await subtle.importKey("pkcs8", buf(concat(ED_PKCS8, seed)), { name: "Ed25519" }, false, ["sign"]);
  return { privateKey, publicKey };
}

export async function ed25519Seed(key: CryptoKey): Promise<Bytes> {
  const jwk = await subtle.exportKey("jwk", key);
  return b64url(jwk.d!);
}

export async function sign(key: SigningKey | CryptoKey, message: Bytes): Promise<Bytes> {
  const k = key instanceof CryptoKey ? key : key.privateKey;
  return new Uint8Array(await subtle.sign({ name: "Ed25519" }, k, buf(message)));
}

// Imported verification keys, by their bytes: a sender key's signing key verifies every message.
const verifiers = new Map<string, Promise<CryptoKey>>();

function verifier(publicKey: Bytes): Promise<CryptoKey> {
  const id = String.fromCharCode(...publicKey);
  let k = verifiers.get(id);
  if (!k) {
    if (verifiers.size > 1000) verifiers.clear();
    k = subtle.importKey("raw", buf(publicKey), { name: "Ed25519" }, false, ["verify"]);
    k.catch(() => verifiers.delete(id));
    verifiers.set(id, k);
  }
  return k;
}

export async function verify(publicKey: Bytes, signature: Bytes, message: Bytes): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return await subtle.verify({ name: "Ed25519" }, await verifier(publicKey), buf(signature), buf(message));
  } catch {
    return false;
  }
}

export async function mustVerify(publicKey: Bytes, signature: Bytes, message: Bytes, what = "signature"): Promise<void> {
  if (!(await verify(publicKey, signature, message))) throw new SignatureError(`${what} does not verify`);
}

export async function isValidEd25519(publicKey: Bytes): Promise<boolean> {
  if (publicKey.length !== 32) return false;
  try {
    await subtle.importKey("raw", buf(publicKey), { name: "Ed25519" }, false, ["verify"]);
    return true;
  } catch {
    return false;
  }
}

// --- X25519 -------------------------------------------------------------------------------

export interface XKeyPair {
  readonly privateKey: CryptoKey;
  readonly publicKey: Bytes;
}

export async function x25519Generate(extractable = false): Promise<XKeyPair> {
  const kp = (await subtle.generateKey({ name: "X25519" }, extractable || !!sealing, ["deriveBits"])) as CryptoKeyPair;
  const privateKey = extractable ? kp.privateKey : await held(kp.privateKey, "X25519", ["deriveBits"]);
  return { privateKey, publicKey: new Uint8Array(await subtle.exportKey("raw", kp.publicKey)) };
}

export async function x25519FromRaw(priv: Bytes): Promise<XKeyPair> {
  if (priv.length !== 32) throw new InvalidKeyError("an X25519 private key is 32 bytes");
  const k = await subtle.importKey("pkcs8", buf(concat(X_PKCS8, priv)), { name: "X25519" }, true, ["deriveBits"]);
  const jwk = await subtle.exportKey("jwk", k);
  return { privateKey: k, publicKey: b64url(jwk.x!) };
}

const SMALL_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].map(unhex);

/** E2E.md 2: 32 bytes, canonical (bit 255 clear, below 2^255 - 19), not of small order. */
export function checkX25519Public(pub: Bytes): void {
  if (pub.length !== 32) throw new InvalidKeyError("an X25519 public key is 32 bytes");
  const masked = pub.slice();
  masked[31] = masked[31]! & 0x7f;
  if (SMALL_ORDER.some((s) => ctEqual(s, masked))) throw new InvalidKeyError("X25519 public key of small order");
  // canonical: little-endian value < p = 2^255 - 19 (bit 255 clear included)
  if (pub[31]! & 0x80) throw new InvalidKeyError("non-canonical X25519 public key");
  let allFF = pub[31] === 0x7f;
  for (let i = 30; i >= 1 && allFF; i--) if (pub[i] !== 0xff) allFF = false;
  if (allFF && pub[0]! >= 0xed) throw new InvalidKeyError("non-canonical X25519 public key");
}

export async function x25519(priv: CryptoKey, pub: Bytes): Promise<Bytes> {
  checkX25519Public(pub);
  const pk = await subtle.importKey("raw", buf(pub), { name: "X25519" }, true, []);
  let out: Bytes;
  try {
    out = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: pk }, priv, 256));
  } catch {
    throw new InvalidKeyError("X25519 with this public key gives an all-zero secret");
  }
  if (out.every((x) => x === 0)) throw new InvalidKeyError("X25519 all-zero secret");
  return out;
}

// --- hashes, MAC, KDF, AEAD ---------------------------------------------------------------

export async function sha256(data: Bytes): Promise<Bytes> {
  return new Uint8Array(await subtle.digest("SHA-256", buf(data)));
}

export async function sha512(data: Bytes): Promise<Bytes> {
  return new Uint8Array(await subtle.digest("SHA-512", buf(data)));
}

/** HMAC-SHA256 of several messages under one key (a chain step: one import, two MACs). */
export async function hmacSha256Many(key: Bytes, data: Bytes[]): Promise<Bytes[]> {
  const k = await subtle.importKey("raw", buf(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return Promise.all(data.map(async (d) => new Uint8Array(await subtle.sign("HMAC", k, buf(d)))));
}

export async function hmacSha256(key: Bytes, data: Bytes): Promise<Bytes> {
  const k = await subtle.importKey("raw", buf(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, buf(data)));
}

/** HKDF-SHA256 (RFC 5869); an empty salt means 32 zero bytes, as in the RFC. */
export async function hkdf(ikm: Bytes, salt: Bytes, info: Bytes, length: number): Promise<Bytes> {
  const k = await subtle.importKey("raw", buf(ikm), "HKDF", false, ["deriveBits"]);
  const s = salt.length ? salt : new Uint8Array(32);
  return new Uint8Array(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: buf(s), info: buf(info) }, k, length * 8));
}

export async function aesGcmEncrypt(key: Bytes, nonce: Bytes, plaintext: Bytes, aad: Bytes): Promise<Bytes> {
  if (key.length !== 32 || nonce.length !== 12) throw new InvalidKeyError("AES-256-GCM takes a 32-byte key and a 12-byte nonce");
  const k = await subtle.importKey("raw", buf(key), "AES-GCM", false, ["encrypt"]);
  return new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv: buf(nonce), additionalData: buf(aad) }, k, buf(plaintext)));
}

export async function aesGcmDecrypt(key: Bytes, nonce: Bytes, ciphertext: Bytes, aad: Bytes): Promise<Bytes> {
  if (key.length !== 32 || nonce.length !== 12) throw new InvalidKeyError("AES-256-GCM takes a 32-byte key and a 12-byte nonce");
  if (ciphertext.length < 16) throw new DecryptError("ciphertext shorter than the GCM tag");
  const k = await subtle.importKey("raw", buf(key), "AES-GCM", false, ["decrypt"]);
  try {
    return new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: buf(nonce), additionalData: buf(aad) }, k, buf(ciphertext)));
  } catch {
    throw new DecryptError("ciphertext does not authenticate");
  }
}

// --- sealing under a passphrase (E2E.md 10) ---------------------------------------------------

/** PBKDF2-HMAC-SHA256 work factor (OWASP's 2023 figure for it): the key of a passphrase. */
export const PBKDF2_ITERATIONS = 600_000;

/** The key the device's secrets are sealed under (null: no passphrase). Non-extractable. */
let sealing: CryptoKey | null = null;

/** A private key wrapped (PKCS#8, AES-256-GCM) under the sealing key: what the store writes. */
export interface WrappedKey { $key: "Ed25519" | "X25519"; usages: KeyUsage[]; iv: Bytes; wrapped: Bytes }

const wrappedOf = new WeakMap<CryptoKey, WrappedKey>();

/** The sealing key of `passphrase` (PBKDF2-SHA256 with `salt`): AES-256-GCM, non-extractable. */
export async function passphraseKey(passphrase: string, salt: Bytes, iterations = PBKDF2_ITERATIONS): Promise<CryptoKey> {
  const base = await subtle.importKey("raw", buf(new TextEncoder().encode(passphrase.normalize("NFKC"))), "PBKDF2", false, ["deriveKey"]);
  return subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt: buf(salt), iterations }, base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt", "wrapKey", "unwrapKey"]);
}

/** From now on, private keys are made wrappable and the store seals what it writes. */
export function setSealingKey(key: CryptoKey | null): void {
  sealing = key;
}

export function isSealing(): boolean {
  return sealing !== null;
}

/** The key the code holds: a non-extractable copy of `k` (made extractable only to be wrapped
 * inside WebCrypto: its bytes never reach this page's code), its wrapped form kept beside it. */
async function held(k: CryptoKey, alg: "Ed25519" | "X25519", usages: KeyUsage[]): Promise<CryptoKey> {
  if (!sealing) return k;
  const iv = randomSeed(12);
  const wrapped = new Uint8Array(await subtle.wrapKey("pkcs8", k, sealing, { name: "AES-GCM", iv: buf(iv) }));
  return unwrapKey({ $key: alg, usages, iv, wrapped });
}

/** The wrapped form of a private key made while sealing (the store writes this, not the key). */
export function wrappedKey(k: CryptoKey): WrappedKey {
  const w = wrappedOf.get(k);
  if (!w) throw new CryptoError("a private key made before the passphrase was set cannot be sealed");
  return w;
}

/** A sealed private key back as a non-extractable CryptoKey. */
export async function unwrapKey(w: WrappedKey): Promise<CryptoKey> {
  if (!sealing) throw new CryptoError("locked: the passphrase has not been entered");
  const k = await subtle.unwrapKey("pkcs8", buf(w.wrapped), sealing, { name: "AES-GCM", iv: buf(w.iv) }, { name: w.$key }, false, w.usages);
  wrappedOf.set(k, w);
  return k;
}

/** AES-256-GCM under the sealing key (`aad`: what the bytes are, e.g. the store's key). */
export async function seal(data: Bytes, aad: Bytes): Promise<{ iv: Bytes; ct: Bytes }> {
  if (!sealing) throw new CryptoError("locked: the passphrase has not been entered");
  const iv = randomSeed(12);
  return { iv, ct: new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv: buf(iv), additionalData: buf(aad) }, sealing, buf(data))) };
}

export async function unseal(s: { iv: Bytes; ct: Bytes }, aad: Bytes, key: CryptoKey | null = sealing): Promise<Bytes> {
  if (!key) throw new CryptoError("locked: the passphrase has not been entered");
  try {
    return new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: buf(s.iv), additionalData: buf(aad) }, key, buf(s.ct)));
  } catch {
    throw new DecryptError("sealed data does not open with this passphrase");
  }
}

// --- ML-KEM-768 (FIPS 203) ----------------------------------------------------------------

export const MLKEM_PUBLIC_BYTES = 1184;
export const MLKEM_CT_BYTES = 1088;

export function mlkemPublic(seed: Bytes): Bytes {
  if (seed.length !== 64) throw new InvalidKeyError("an ML-KEM-768 seed is 64 bytes");
  return ml_kem768.keygen(seed).publicKey;
}

export function mlkemEncapsulate(publicKey: Bytes): { ciphertext: Bytes; secret: Bytes } {
  if (publicKey.length !== MLKEM_PUBLIC_BYTES) throw new InvalidKeyError("an ML-KEM-768 public key is 1184 bytes");
  const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey);
  return { ciphertext: cipherText, secret: sharedSecret };
}

export function mlkemDecapsulate(seed: Bytes, ciphertext: Bytes): Bytes {
  if (seed.length !== 64) throw new InvalidKeyError("an ML-KEM-768 seed is 64 bytes");
  if (ciphertext.length !== MLKEM_CT_BYTES) throw new DecryptError("an ML-KEM-768 ciphertext is 1088 bytes");
  return ml_kem768.decapsulate(ciphertext, ml_kem768.keygen(seed).secretKey);
}

// --- helpers --------------------------------------------------------------------------------

function b64url(s: string): Bytes {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) out[i] = b.charCodeAt(i);
  return out;
}

export function randomSeed(n: number): Bytes {
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return b;
}
