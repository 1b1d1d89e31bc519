"""A browser's keys sealed under a passphrase (E2E.md 10): chosen at registration, every value
the page writes to IndexedDB is sealed (private keys wrapped inside WebCrypto, the rest under
AES-256-GCM), nothing opens after a reload until the passphrase is entered, a wrong one is
refused, and the right one gives back a device that reads and writes as before."""

from __future__ import annotations

from conftest import RunningServer
from playwright.async_api import Browser, Page, expect

from .conftest import open_app, register

PASSPHRASE = "correct horse battery"
MARKER = "sealed-marker-41c7"

RAW_STORE = """async () => {
  const db = await new Promise((ok) => { const r = indexedDB.open('chatd'); r.onsuccess = () => ok(r.result); });
  const tx = db.transaction('kv');
  const get = (q) => new Promise((ok) => { q.onsuccess = () => ok(q.result); });
  const [keys, values] = await Promise.all([get(tx.objectStore('kv').getAllKeys()), get(tx.objectStore('kv').getAll())]);
  db.close();
  const text = (v) => v instanceof Uint8Array ? new TextDecoder().decode(v)
    : v && typeof v === 'object' ? Object.values(v).map(text).join(' ') : String(v);
  return keys.map((k, i) => ({
    key: k,
    sealed: !!values[i] && values[i].$sealed === 1 && Object.keys(values[i]).sort().join() === '$sealed,ct,iv',
    cryptoKey: values[i] instanceof CryptoKey || (values[i] && typeof values[i] === 'object'
      && JSON.stringify(Object.values(values[i]).map((x) => x instanceof CryptoKey)).includes('true')),
    text: text(values[i]),
  }));
}"""


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Message", exact=True).fill(text)
    await page.keyboard.press("Enter")


async def test_keys_sealed_under_a_passphrase_open_only_with_it(
    chatd: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd)
    bob = await open_app(browser, chatd)
    await alice.get_by_label("Passphrase (optional)").fill(PASSPHRASE)
    await register(alice, "alice")
    await register(bob, "bob")
    await alice.get_by_label("New chat with").fill("bob")
    await alice.get_by_role("button", name="Start chat").click()
    await send(alice, f"hello {MARKER}")
    await bob.get_by_role("button", name="@alice").click()
    await expect(bob.get_by_label("Messages")).to_contain_text(f"hello {MARKER}")
    await send(bob, "reply one")
    await expect(alice.get_by_label("Messages")).to_contain_text("reply one")

    # At rest: the seal record in clear, every other value sealed; no CryptoKey, no plaintext.
    rows = await alice.evaluate(RAW_STORE)
    assert {r["key"] for r in rows} >= {"seal", "identity", "prekeys", "master", "convs"}
    assert [r["key"] for r in rows if not r["sealed"] and r["key"] != "seal"] == []
    assert [r["key"] for r in rows if r["cryptoKey"]] == []
    assert [r["key"] for r in rows if MARKER in r["text"] or "reply one" in r["text"]] == []
    # Without a passphrase (bob), the store holds the keys as non-extractable CryptoKeys.
    bob_rows = await bob.evaluate(RAW_STORE)
    assert not any(r["sealed"] for r in bob_rows) and "seal" not in {r["key"] for r in bob_rows}

    # A reload asks for the passphrase before anything: a wrong one is refused.
    await alice.reload()
    unlock = alice.get_by_role("form", name="Unlock")
    await expect(unlock).to_be_visible()
    await expect(alice.get_by_role("navigation", name="Conversations")).to_have_count(0)
    await unlock.get_by_label("Passphrase").fill("wrong horse battery")
    await unlock.get_by_role("button", name="Unlock").click()
    await expect(unlock.get_by_role("alert")).to_have_text("Wrong passphrase.")
    await unlock.get_by_label("Passphrase").fill(PASSPHRASE)
    await unlock.get_by_role("button", name="Unlock").click()
    await alice.get_by_role("navigation", name="Conversations").wait_for()

    # The unsealed device logs in, reads its history and keeps writing and reading.
    await alice.get_by_role("button", name="@bob").click()
    await expect(alice.get_by_label("Messages")).to_contain_text("reply one")
    await send(alice, "after unlock")
    await expect(bob.get_by_label("Messages")).to_contain_text("after unlock")
    await send(bob, "welcome back")
    await expect(alice.get_by_label("Messages")).to_contain_text("welcome back")
    rows = await alice.evaluate(RAW_STORE)
    assert [r["key"] for r in rows if not r["sealed"] and r["key"] != "seal"] == []
    assert await alice.evaluate("chatd.warnings") == []
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_a_linked_browser_is_sealed_under_its_own_passphrase(
    chatd: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd)
    bob = await open_app(browser, chatd)
    await register(alice, "alice")
    await register(bob, "bob")
    await alice.get_by_label("New chat with").fill("bob")
    await alice.get_by_role("button", name="Start chat").click()
    await send(alice, "from the first device")

    laptop = await open_app(browser, chatd)
    await laptop.get_by_label("Passphrase for this browser (optional)").fill(PASSPHRASE)
    await laptop.get_by_role("button", name="Link this browser").click()
    key = await laptop.get_by_label("This browser's key", exact=True).inner_text()
    await alice.get_by_text("Approve a new device").click()
    await alice.get_by_label("New device's key").fill(key)
    await alice.get_by_role("button", name="Approve").click()
    code = await alice.get_by_label("Pairing code", exact=True).inner_text()
    await laptop.get_by_label("Pairing code").fill(code)
    await laptop.get_by_role("button", name="Link", exact=True).click()
    await laptop.get_by_role("navigation", name="Conversations").wait_for()
    await expect(alice.get_by_text("Listed: this account has 2 devices.")).to_be_visible()
    rows = await laptop.evaluate(RAW_STORE)
    assert {"seal", "identity", "prekeys"} <= {r["key"] for r in rows}
    assert [r["key"] for r in rows if not r["sealed"] and r["key"] != "seal"] == []

    await laptop.reload()
    unlock = laptop.get_by_role("form", name="Unlock")
    await unlock.get_by_label("Passphrase").fill(PASSPHRASE)
    await unlock.get_by_role("button", name="Unlock").click()
    await laptop.get_by_role("navigation", name="Conversations").wait_for()
    await bob.get_by_role("button", name="@alice").click()
    await send(bob, "to both of your devices")
    await laptop.get_by_role("button", name="@bob").click()
    await expect(laptop.get_by_label("Messages")).to_contain_text("to both of your devices")
    await send(laptop, "from the sealed laptop")
    await expect(bob.get_by_label("Messages")).to_contain_text("from the sealed laptop")
    await expect(alice.get_by_label("Messages")).to_contain_text("from the sealed laptop")
    for page in (alice, bob, laptop):
        assert page.errors == []  # type: ignore[attr-defined]
