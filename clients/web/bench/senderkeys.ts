// Sender-key encrypt/decrypt per message, in the page (bench/run.py loads this in Chromium).
import * as C from "../src/crypto.js";
import * as P from "../src/e2e/payload.js";
import * as SK from "../src/e2e/senderkeys.js";
import { encodeContent } from "../src/kinds.js";

async function bench(n: number, textBytes: number): Promise<{ encrypt_us: number; decrypt_us: number; bytes: number }> {
  let key = await SK.newSenderKey(42);
  let r = await SK.receiver(SK.distribution(key), 7, 9);
  const pt = P.encodePayload({ kind: "text", body: encodeContent("text", { text: "x".repeat(textBytes) }) });
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < 20; i++) [, key] = await SK.encrypt(key, pt, 7, 9); // warm-up
  r = await SK.receiver(SK.distribution(key), 7, 9);
  let t = performance.now();
  for (let i = 0; i < n; i++) {
    const [m, k] = await SK.encrypt(key, pt, 7, 9);
    msgs.push(m);
    key = k;
  }
  const enc = (performance.now() - t) / n;
  t = performance.now();
  for (const m of msgs) [, r] = await SK.decrypt(r, m);
  const dec = (performance.now() - t) / n;
  void C;
  return { encrypt_us: enc * 1000, decrypt_us: dec * 1000, bytes: msgs[0]!.length };
}

(globalThis as unknown as { bench: typeof bench }).bench = bench;
