// The web app: Preact components over the client core (src/client.ts). Everything shown here
// was decrypted in this page; the server only ever relays ciphertext.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { Client, ServerError, type Conv, type Msg } from "../src/client.js";
import { decodeContent } from "../src/kinds.js";
import { formatMoney, parseAmount } from "../src/money.js";
import { Store, WrongPassphrase } from "../src/store.js";
import { hex, unhex } from "../src/bytes.js";
import qrcode from "qrcode-generator";
import { PushToggle } from "./push.js";

/** A QR code of `data` as an image (data: URL: allowed by the page's CSP, no script). */
function QR({ data, label }: { data: string; label: string }) {
  const q = qrcode(0, "M");
  q.addData(data);
  q.make();
  const svg = q.createSvgTag({ cellSize: 4, margin: 2, scalable: true });
  return <img class="qr" alt={label} src={`data:image/svg+xml;utf8,${encodeURIComponent(svg)}`} />;
}

function LinkDevice({ client }: { client: Client }) {
  const [key, setKey] = useState("");
  const [passphrase, setPassphrase] = useState("");
  const [code, setCode] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <section class="card" aria-label="Link this browser">
      <h2>Already have an account?</h2>
      {!key ? (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setError("");
            try {
              // Sealed from this browser's first key on (E2E.md 10), as at registration.
              if (passphrase && !(await STORE!.sealed())) await STORE!.setPassphrase(passphrase);
              setKey(hex(await client.prepareLink()));
            } catch (err) {
              setError((err as Error).message);
            }
          }}
        >
          <label>
            Passphrase for this browser (optional)
            <input type="password" minLength={8} autocomplete="new-password" value={passphrase} onInput={(e) => setPassphrase(e.currentTarget.value)} />
          </label>
          <button type="submit">Link this browser</button>
          {error && <p role="alert" class="error">{error}</p>}
        </form>
      ) : (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            try {
              await client.link(code, "web");
            } catch (err) {
              setError((err as Error).message);
              setBusy(false);
            }
          }}
        >
          <p>On a device of your account, approve this browser's key (compare it there):</p>
          <code class="key" aria-label="This browser's key">{key}</code>
          <QR data={key} label="This browser's key as a QR code" />
          <label>
            Pairing code
            <input value={code} onInput={(e) => setCode(e.currentTarget.value)} />
          </label>
          <button type="submit" disabled={busy}>{busy ? "Linking…" : "Link"}</button>
          {error && <p role="alert" class="error">{error}</p>}
        </form>
      )}
    </section>
  );
}

function ApproveDevice({ client }: { client: Client }) {
  const [key, setKey] = useState("");
  const [code, setCode] = useState("");
  const [error, setError] = useState("");
  return (
    <details>
      <summary>Approve a new device</summary>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setError("");
          try {
            setCode(await client.approveDevice(unhex(key.trim().toLowerCase())));
          } catch (err) {
            setError((err as Error).message);
          }
        }}
      >
        <label>
          New device's key
          <input value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        </label>
        <button type="submit">Approve</button>
      </form>
      {code && (
        <div>
          <p>Enter this on the new device:</p>
          <code class="key" aria-label="Pairing code">{code}</code>
          <QR data={code} label="Pairing code as a QR code" />
          <p aria-live="polite">{client.listedDevices() > 1 ? `Listed: this account has ${client.listedDevices()} devices.` : "Waiting for the new device…"}</p>
        </div>
      )}
      {error && <p role="alert" class="error">{error}</p>}
    </details>
  );
}

declare global {
  interface Window {
    chatd?: Client;
  }
}

function useClient(client: Client): number {
  const [n, setN] = useState(0);
  useEffect(() => {
    let queued = false;
    return client.onChange(() => {
      if (queued) return;
      queued = true;
      // A timer, not requestAnimationFrame: a page that gets no frames (a background tab, a
      // throttled headless page) must still re-render once it is looked at.
      setTimeout(() => {
        queued = false;
        setN((x) => x + 1);
      }, 16);
    });
  }, [client]);
  return n;
}

let STORE: Store | null = null;

function Register({ client }: { client: Client }) {
  const [handle, setHandle] = useState("");
  const [name, setName] = useState("");
  const [passphrase, setPassphrase] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      // Sealed from the first key on (E2E.md 10): nothing is written in clear before it.
      if (passphrase && !(await STORE!.sealed())) await STORE!.setPassphrase(passphrase);
      await client.register(handle.trim().toLowerCase(), name.trim() || handle.trim());
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };
  return (
    <form class="card register" onSubmit={submit} aria-label="Create an account">
      <h1>chatd</h1>
      <p>Messages are encrypted in this browser. Your keys never leave it.</p>
      <label>
        Handle
        <input name="handle" required minLength={3} maxLength={32} pattern="[a-z0-9][a-z0-9_.]*" autocomplete="username" value={handle} onInput={(e) => setHandle(e.currentTarget.value)} />
      </label>
      <label>
        Display name
        <input name="name" maxLength={64} value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      <label>
        Passphrase (optional)
        <input type="password" name="passphrase" minLength={8} autocomplete="new-password" value={passphrase} onInput={(e) => setPassphrase(e.currentTarget.value)} />
      </label>
      <p class="hint">With a passphrase, this browser keeps your keys and messages sealed under it, and asks for it whenever chatd opens. It cannot be recovered.</p>
      <button type="submit" disabled={busy}>{busy ? "Making keys…" : "Create account"}</button>
      {error && <p role="alert" class="error">{error}</p>}
    </form>
  );
}

/** This browser's keys are sealed under a passphrase: nothing is read before it is entered. */
function Unlock({ store, done }: { store: Store; done: () => void }) {
  const [passphrase, setPassphrase] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="card register"
      aria-label="Unlock"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError("");
        try {
          await store.unlock(passphrase);
          done();
        } catch (err) {
          setError(err instanceof WrongPassphrase ? "Wrong passphrase." : (err as Error).message);
          setBusy(false);
        }
      }}
    >
      <h1>chatd</h1>
      <p>Your keys in this browser are sealed under your passphrase.</p>
      <label>
        Passphrase
        <input type="password" name="passphrase" required autocomplete="current-password" value={passphrase} onInput={(e) => setPassphrase(e.currentTarget.value)} />
      </label>
      <button type="submit" disabled={busy}>{busy ? "Unlocking…" : "Unlock"}</button>
      {error && <p role="alert" class="error">{error}</p>}
    </form>
  );
}

/** A server error as the user should read it. */
function explain(err: unknown): string {
  if (err instanceof ServerError && err.code === 24) return "They have to accept an invitation first: invite them to the group once it exists.";
  return (err as Error).message;
}

const PAGE = 20;

/** Message requests and group invitations (SPEC.md 18.3), a page at a time. */
function Requests({ client, onOpen }: { client: Client; onOpen: (conv: number) => void }) {
  const [shown, setShown] = useState(PAGE);
  const [note, setNote] = useState("");
  const all = [...client.requests.values()].sort((a, b) => b["at"] - a["at"] || b["conv"] - a["conv"]);
  const waiting = [...client.awaitingAdd.values()];
  if (!all.length && !waiting.length) return null;
  const answer = (conv: number, what: "accept" | "delete" | "block", who: string) => async () => {
    if (what === "block" && !confirm(`Block @${who}? They will not be able to message you or add you to groups.`)) return;
    setNote("");
    try {
      await client.answerRequest(conv, what);
      setNote(what === "accept" ? `Accepted @${who}.` : what === "delete" ? "Deleted." : `Blocked @${who}.`);
      if (what === "accept" && client.convs.has(conv)) {
        onOpen(conv);
        setTimeout(() => document.getElementById("composer")?.focus(), 50); // reply next
      }
    } catch (err) {
      setNote(explain(err));
    }
  };
  return (
    <section class="requests" aria-labelledby="requests-h">
      <h2 id="requests-h">
        Requests <span class="badge" aria-label={`${all.length} pending`}>{all.length}</span>
      </h2>
      <ul aria-label="Message requests and invitations">
        {all.slice(0, shown).map((r) => {
          const who = r["handle"] as string;
          const direct = r["kind"] === "direct";
          return (
            <li key={r["conv"]} class="request">
              {direct ? (
                <button class="link" onClick={() => onOpen(r["conv"])}>
                  @{who} wants to message you
                </button>
              ) : (
                <span>
                  @{who} invites you to {r["kind"] === "channel" ? "the channel" : "the group"} “{r["title"] || "Group"}”
                </span>
              )}
              <span class="buttons" role="group" aria-label={`Answer @${who}`}>
                <button class="small" aria-label={`Accept ${direct ? "request" : "invitation"} from @${who}`} onClick={answer(r["conv"], "accept", who)}>
                  Accept
                </button>
                <button class="small secondary" aria-label={`Delete ${direct ? "request" : "invitation"} from @${who}`} onClick={answer(r["conv"], "delete", who)}>
                  Delete
                </button>
                <button class="small danger" aria-label={`Block @${who}`} onClick={answer(r["conv"], "block", who)}>
                  Block
                </button>
              </span>
            </li>
          );
        })}
        {waiting.map((r) => (
          <li key={`w${r["conv"]}`} class="request">
            Accepted “{r["title"] || "Group"}”: you join when @{r["handle"]} or another admin adds you.
          </li>
        ))}
      </ul>
      {all.length > shown && (
        <button class="small secondary" onClick={() => setShown(shown + PAGE)}>
          Show {Math.min(PAGE, all.length - shown)} more requests
        </button>
      )}
      <p class="status" aria-live="polite">{note}</p>
    </section>
  );
}

const SETTINGS: [key: "add_me" | "presence" | "last_seen", label: string][] = [
  ["add_me", "Who can add me to chats and groups"],
  ["presence", "Who can see when I'm online"],
  ["last_seen", "Who can see my last seen"],
];

/** Privacy settings (SPEC.md 18.1): everyone, my contacts, or nobody. */
function Privacy({ client }: { client: Client }) {
  const [values, setValues] = useState<Record<string, string> | null>(null);
  const [note, setNote] = useState("");
  const load = async () => {
    try {
      const p = await client.getPrivacy();
      setValues({ add_me: p["add_me"], presence: p["presence"], last_seen: p["last_seen"] });
    } catch (err) {
      setNote(explain(err));
    }
  };
  const change = async (key: string, value: string) => {
    setNote("");
    try {
      const p = await client.setPrivacy({ [key]: value });
      setValues({ add_me: p["add_me"], presence: p["presence"], last_seen: p["last_seen"] });
      setNote("Saved.");
    } catch (err) {
      setNote(explain(err));
    }
  };
  return (
    <details onToggle={(e) => (e.currentTarget as HTMLDetailsElement).open && void load()}>
      <summary>Privacy</summary>
      {values &&
        SETTINGS.map(([key, label]) => (
          <label key={key}>
            {label}
            <select value={values[key]} onChange={(e) => void change(key, e.currentTarget.value)}>
              <option value="everyone">Everyone</option>
              <option value="contacts">My contacts</option>
              <option value="nobody">Nobody</option>
            </select>
          </label>
        ))}
      <p class="hint">Anyone else's chat arrives as a request, and their groups as invitations. Contacts are people whose request you accepted or whom you messaged first.</p>
      <p class="status" aria-live="polite">{note}</p>
    </details>
  );
}

function BlockButton({ client, account, handle }: { client: Client; account: number; handle: string }) {
  const [note, setNote] = useState("");
  const blocked = client.blocked.has(account);
  const toggle = async () => {
    if (!blocked && !confirm(`Block @${handle}? They will not be able to message you, add you or see when you are online.`)) return;
    setNote("");
    try {
      await (blocked ? client.unblock(account) : client.block(account));
    } catch (err) {
      setNote(explain(err));
    }
  };
  return (
    <>
      <button class={blocked ? "secondary" : "danger"} title={blocked ? `Unblock @${handle}` : `Block @${handle}`} onClick={() => void toggle()}>
        {blocked ? "Unblock" : "Block"}
      </button>
      {note && <span role="alert" class="error">{note}</span>}
    </>
  );
}

/** Contacts and blocked accounts (SPEC.md 18.1), a server page at a time (11.5): start a chat
 * with a contact, block or unblock. */
function Contacts({ client, onOpen }: { client: Client; onOpen: (conv: number) => void }) {
  const [which, setWhich] = useState<"contacts" | "blocked">("contacts");
  const [rows, setRows] = useState<number[] | null>(null);
  const [more, setMore] = useState(false);
  const [note, setNote] = useState("");
  const load = async (w: "contacts" | "blocked", after: number, before: number[]) => {
    try {
      const p = await client.contactsPage(w, after, client.contactsPageSize);
      setRows([...before, ...p.accounts]);
      setMore(p.more);
    } catch (err) {
      setNote(explain(err));
    }
  };
  const show = (w: "contacts" | "blocked") => {
    setWhich(w);
    setNote("");
    setRows(null);
    void load(w, 0, []);
  };
  const name = (a: number) => (client.handles.get(a) ? `@${client.handles.get(a)}` : `#${a}`);
  const act = (a: number, what: "message" | "block" | "unblock") => async () => {
    if (what === "block" && !confirm(`Block ${name(a)}? They will not be able to message you, add you or see when you are online.`)) return;
    setNote("");
    try {
      if (what === "message") return onOpen(await client.directWith(a));
      await (what === "block" ? client.block(a) : client.unblock(a));
      setRows((rows ?? []).filter((x) => x !== a)); // a blocked account is no longer a contact
      setNote(what === "block" ? `Blocked ${name(a)}.` : `Unblocked ${name(a)}.`);
    } catch (err) {
      setNote(explain(err));
    }
  };
  return (
    <details onToggle={(e) => (e.currentTarget as HTMLDetailsElement).open && show(which)}>
      <summary>Contacts</summary>
      <div role="group" aria-label="Show" class="buttons">
        <button class={`small ${which === "contacts" ? "" : "secondary"}`} aria-pressed={which === "contacts"} onClick={() => show("contacts")}>
          My contacts
        </button>
        <button class={`small ${which === "blocked" ? "" : "secondary"}`} aria-pressed={which === "blocked"} onClick={() => show("blocked")}>
          Blocked
        </button>
      </div>
      {rows === null ? (
        <p class="status">Loading…</p>
      ) : (
        <ul aria-label={which === "contacts" ? "Contacts" : "Blocked accounts"}>
          {rows.map((a) => (
            <li key={a} class="request">
              <span>{name(a)}</span>
              <span class="buttons">
                {which === "contacts" ? (
                  <>
                    <button class="small" aria-label={`Message ${name(a)}`} onClick={act(a, "message")}>
                      Message
                    </button>
                    <button class="small danger" aria-label={`Block ${name(a)}`} onClick={act(a, "block")}>
                      Block
                    </button>
                  </>
                ) : (
                  <button class="small secondary" aria-label={`Unblock ${name(a)}`} onClick={act(a, "unblock")}>
                    Unblock
                  </button>
                )}
              </span>
            </li>
          ))}
          {!rows.length && <li class="hint">{which === "contacts" ? "No contacts yet: people whose request you accepted, or whom you messaged first." : "Nobody is blocked."}</li>}
        </ul>
      )}
      {more && rows && (
        <button class="small secondary" onClick={() => void load(which, rows[rows.length - 1] ?? 0, rows)}>
          Show more
        </button>
      )}
      <p class="status" aria-live="polite">{note}</p>
    </details>
  );
}

let HANDLES: Map<number, string> = new Map();

function text(m: Msg): string {
  const c = m.content as Record<string, unknown> | null;
  if (m.error && !c) return `⚠ ${m.error}`;
  if (!c) return `(${m.kind})`;
  switch (m.kind) {
    case "text":
      return c["text"] as string;
    case "system": {
      const ev = c["event"];
      if (ev === "deleted") return `— message #${c["target"]} deleted for everyone`;
      return `— ${ev}${c["title"] ? `: ${c["title"]}` : ""}`;
    }
    case "payment.receipt":
      return `${m.error ? "⚠ " : "✔ "}${c["type"]} ${formatMoney(c["amount"] as number, c["currency"] as string)}${m.error ? ` (${m.error})` : " (receipt verified)"}`;
    case "forward": {
      let inner = `(${c["kind"]})`;
      try {
        inner = text({ ...m, kind: c["kind"] as string, content: decodeContent(c["kind"] as string, c["body"] as Uint8Array) });
      } catch {
        /* an inner kind this page cannot read */
      }
      return `↪ forwarded from ${HANDLES.get(c["sender"] as number) ? `@${HANDLES.get(c["sender"] as number)}` : `#${c["sender"]}`}: ${inner}`;
    }
    case "share":
      return `⇗ ${c["title"]}${c["text"] ? ` — ${c["text"]}` : ""}${c["link"] ? ` (${c["link"]})` : ""}`;
    case "miniapp.invoke":
      return `▶ ${c["app"]}.${c["action"]}`;
    case "payment.request":
      return `asks for ${formatMoney(c["amount"] as number, c["currency"] as string)}${c["memo"] ? `: ${c["memo"]}` : ""}`;
    case "payment.transfer":
      return `paid ${formatMoney(c["amount"] as number, c["currency"] as string)} ${c["memo"] ?? ""}`;
    case "reaction":
      return `${c["emoji"]} to #${c["target"]}`;
    default:
      return `(${m.kind})`;
  }
}

const HIDDEN = new Set(["reaction", "edit", "delete", "receipt"]);

function edited(conv: Conv, m: Msg): { text?: string; deleted: boolean; by?: number } {
  let out: { text?: string; deleted: boolean; by?: number } = { deleted: false };
  const tomb = m.kind === "deleted" ? (m.content as Record<string, unknown> | null) : null;
  if (tomb) return { deleted: true, by: tomb["by"] as number }; // erased by the server (SPEC.md 18.9)
  for (const x of conv.messages) {
    const c = x.content as Record<string, unknown> | null;
    if (!c || c["target"] !== m.seq) continue;
    // The server's `deleted` system message: its sender, the owner or an admin deleted it.
    if (x.kind === "system" && c["event"] === "deleted") out = { ...out, deleted: true, by: c["actor"] as number };
    if (x.sender !== m.sender) continue;
    if (x.kind === "edit") out = { ...out, text: c["text"] as string };
    if (x.kind === "delete") out = { ...out, deleted: true };
  }
  return out;
}

function Attachment({ client, att }: { client: Client; att: Record<string, unknown> }) {
  const [url, setUrl] = useState("");
  const [error, setError] = useState("");
  useEffect(() => {
    client.attachmentUrl(att).then(setUrl, (e) => setError((e as Error).message));
  }, [att["blob"]]);
  const name = (att["name"] as string) || "file";
  if (error) return <span class="error">⚠ {name}: {error}</span>;
  if (!url) return <span>{name}…</span>;
  if ((att["media_type"] as string).startsWith("image/")) return <img class="photo" src={url} alt={name} />;
  return (
    <a href={url} download={name}>
      {name} ({Math.ceil((att["size"] as number) / 1024)} KB)
    </a>
  );
}

function ReceiptActions({ client, conv, r }: { client: Client; conv: Conv; r: Record<string, unknown> }) {
  const me = client.id!.account;
  const [done, setDone] = useState("");
  if (done) return <span class="status">{done}</span>;
  const money = formatMoney(r["amount"] as number, r["currency"] as string);
  const act = (f: () => Promise<unknown>, ok: string) => () => void f().then(() => setDone(ok), (e) => setDone(`⚠ ${(e as Error).message}`));
  if (r["type"] === "request" && r["to"] !== me && (r["from"] === 0 || r["from"] === me) && client.requestOpen(conv.conv, r["ref"] as string)) {
    const who = client.handles.get(r["to"] as number) ?? `#${r["to"]}`;
    return (
      <button
        class="small"
        onClick={() => confirm(`Pay ${money} to @${who}?`) && act(() => client.pay(conv.conv, r["to"] as number, r["amount"] as number, r["currency"] as string, "", r["ref"] as string), "paid")()}
      >
        Pay request
      </button>
    );
  }
  if (r["type"] === "red_packet") {
    return (
      <button class="small" onClick={act(() => client.claim(r["ref"] as string), "claimed")}>
        Claim
      </button>
    );
  }
  return null;
}

function Wallet({ client }: { client: Client }) {
  const [rows, setRows] = useState<string[] | null>(null);
  const load = async () => {
    const b = await client.balances();
    const h = await client.history();
    setRows([
      ...b.map((x) => `Balance: ${formatMoney(x.amount, x.currency)}`),
      ...h.slice(0, 10).map((e) => `${e["type"]} ${formatMoney(e["amount"], e["currency"])} → ${formatMoney(e["balance"], e["currency"])}`),
    ]);
  };
  return (
    <details onToggle={(e) => (e.currentTarget as HTMLDetailsElement).open && void load()}>
      <summary>Wallet</summary>
      <button class="small" onClick={() => void load()}>
        Refresh
      </button>
      <ul aria-label="Wallet">{(rows ?? []).map((r, i) => <li key={i}>{r}</li>)}</ul>
    </details>
  );
}

function Card({ client, conv, m }: { client: Client; conv: Conv; m: Msg }) {
  const c = m.content as Record<string, unknown>;
  const [app, setApp] = useState("");
  const [paid, setPaid] = useState("");
  useEffect(() => {
    client.botProfile(m.sender).then((p) => setApp((p["manifest"] as Record<string, string> | undefined)?.["name"] ?? ""), () => {});
  }, [m.sender]);
  const order = c["order"] as Record<string, unknown> | undefined;
  return (
    <div class="card-msg" aria-label={`Card ${(c["title"] as string) || ""}`}>
      {c["title"] ? <strong>{c["title"] as string}</strong> : null}
      {c["text"] ? <p>{c["text"] as string}</p> : null}
      {c["error"] ? <p class="error">{c["error"] as string}</p> : null}
      {c["image"] ? <span class="status">image: {c["image"] as string}</span> : null}
      <div class="buttons">
        {((c["buttons"] as Record<string, unknown>[]) ?? []).map((b, i) => (
          <button
            key={i}
            class="small"
            disabled={!app && !b["app"]}
            onClick={() => void client.invoke(conv.conv, (b["bot"] as number) || m.sender, (b["app"] as string) || app, b["action"] as string, (b["params"] as Record<string, unknown>) ?? {})}
          >
            {b["title"] as string}
          </button>
        ))}
        {order && (
          <button
            class="small"
            disabled={!!paid}
            onClick={() => {
              const money = formatMoney(order["amount"] as number, order["currency"] as string);
              if (!confirm(`Pay ${money} to @${client.handles.get(m.sender) ?? m.sender}?`)) return;
              void client.pay(conv.conv, m.sender, order["amount"] as number, order["currency"] as string, "", order["request_id"] as string).then(() => setPaid("paid"), (e) => setPaid(`⚠ ${(e as Error).message}`));
            }}
          >
            {paid || `Pay order (${formatMoney(order["amount"] as number, order["currency"] as string)})`}
          </button>
        )}
      </div>
    </div>
  );
}

/** A link the page may open: http(s) only (a shared `javascript:` or `data:` link is shown as
 * text, never followed). */
function safeLink(link: string): string | null {
  try {
    const u = new URL(link);
    return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
  } catch {
    return null;
  }
}

/** A shared card (SPEC.md 16.6): a link, an image reference, or a mini-app card that opens its
 * action in the direct conversation with its bot. */
function ShareCard({ client, m, onOpen }: { client: Client; m: Msg; onOpen: (conv: number) => void }) {
  const c = m.content as Record<string, unknown>;
  const [note, setNote] = useState("");
  const link = c["link"] as string;
  const href = link ? safeLink(link) : null;
  const app = !!(c["bot"] && c["app"] && c["action"]);
  const botName = client.handles.get(c["bot"] as number);
  return (
    <div class="card-msg share" aria-label={`Shared: ${c["title"] as string}`}>
      <strong>{c["title"] as string}</strong>
      {c["text"] ? <p>{c["text"] as string}</p> : null}
      {link ? (
        href ? (
          <a href={href} target="_blank" rel="noopener noreferrer nofollow">
            {link}
          </a>
        ) : (
          <span class="status">{link}</span>
        )
      ) : null}
      {c["image"] ? <span class="status">image: {c["image"] as string}</span> : null}
      {app && (
        <button
          class="small"
          onClick={() => {
            setNote("");
            client.openShare(c).then(onOpen, (e) => setNote(explain(e)));
          }}
        >
          Open {botName ? `@${botName}` : "mini-app"}: {c["action"] as string}
        </button>
      )}
      {note && <span role="alert" class="error">{note}</span>}
    </div>
  );
}

/** Conversations a card can go to: all but those where this account may not post. */
function targets(client: Client, except = 0): Conv[] {
  return [...client.convs.values()].filter((c) => c.conv !== except && !client.isRequest(c.conv) && !(c.kind === "channel" && c.role === "member"));
}

function convName(client: Client, c: Conv): string {
  return c.kind === "direct" ? `@${c.members.find((x) => x.account !== client.id?.account)?.handle ?? "…"}` : c.title || "Group";
}

/** Share a link card into this conversation. */
function ShareLink({ client, conv, onError }: { client: Client; conv: Conv; onError: (s: string) => void }) {
  const [title, setTitle] = useState("");
  const [link, setLink] = useState("");
  const [body, setBody] = useState("");
  return (
    <form
      aria-label="Share a link"
      onSubmit={(e) => {
        e.preventDefault();
        const l = link.trim();
        if (l && !safeLink(l)) return onError("A link starts with https:// or http://");
        const t = title.trim() || l;
        if (!t) return onError("A card needs a title or a link");
        void client.share(conv.conv, { title: t.slice(0, 256), link: l, text: body.trim() }).then(() => {
          setTitle("");
          setLink("");
          setBody("");
        }, (err) => onError(explain(err)));
      }}
    >
      <label>
        Card title
        <input maxLength={256} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
      </label>
      <label>
        Link
        <input type="url" maxLength={256} placeholder="https://" value={link} onInput={(e) => setLink(e.currentTarget.value)} />
      </label>
      <label>
        Card text
        <input maxLength={16000} value={body} onInput={(e) => setBody(e.currentTarget.value)} />
      </label>
      <button type="submit">Share link</button>
    </form>
  );
}

function BotActions({ client, conv, bot }: { client: Client; conv: Conv; bot: number }) {
  const [manifest, setManifest] = useState<Record<string, unknown> | null>(null);
  useEffect(() => {
    client.botProfile(bot).then((p) => setManifest((p["manifest"] as Record<string, unknown>) ?? null), () => {});
  }, [bot]);
  if (!manifest) return null;
  const actions = ((manifest["actions"] as Record<string, unknown>[]) ?? []).filter((a) => ((a["params"] as Record<string, unknown>[]) ?? []).every((p) => p["required"] === false));
  return (
    <div class="bot-actions" role="group" aria-label="Mini-app">
      {actions.map((a) => (
        <button key={a["name"] as string} class="small" onClick={() => void client.invoke(conv.conv, bot, manifest["name"] as string, a["name"] as string)}>
          {(manifest["icon"] as string) || "▶"} {a["title"] as string}
        </button>
      ))}
      {actions.length > 0 && <ShareApp client={client} conv={conv} bot={bot} manifest={manifest} actions={actions} />}
    </div>
  );
}

/** Share this bot's mini-app as a card (SPEC.md 16.6) into another conversation. */
function ShareApp({ client, conv, bot, manifest, actions }: { client: Client; conv: Conv; bot: number; manifest: Record<string, unknown>; actions: Record<string, unknown>[] }) {
  const to = targets(client, conv.conv);
  const [target, setTarget] = useState(to[0]?.conv ?? 0);
  const [action, setAction] = useState(actions[0]!["name"] as string);
  const [note, setNote] = useState("");
  if (!to.length) return null;
  return (
    <form
      class="share-app"
      onSubmit={(e) => {
        e.preventDefault();
        const a = actions.find((x) => x["name"] === action)!;
        const title = (manifest["title"] as string) || `@${client.handles.get(bot) ?? bot}`;
        const dest = target || to[0]!.conv;
        setNote("");
        client.share(dest, { title, text: a["title"] as string, bot, app: manifest["name"] as string, action }).then(
          () => setNote(`Shared to ${convName(client, client.convs.get(dest)!)}.`),
          (err) => setNote(explain(err)),
        );
      }}
    >
      <label>
        Share action
        <select value={action} onChange={(e) => setAction(e.currentTarget.value)}>
          {actions.map((a) => (
            <option key={a["name"] as string} value={a["name"] as string}>
              {a["title"] as string}
            </option>
          ))}
        </select>
      </label>
      <label>
        Share to
        <select value={target} onChange={(e) => setTarget(Number(e.currentTarget.value))}>
          {to.map((c) => (
            <option key={c.conv} value={c.conv}>
              {convName(client, c)}
            </option>
          ))}
        </select>
      </label>
      <button type="submit" class="small">
        Share mini-app
      </button>
      <span class="status" aria-live="polite">{note}</span>
    </form>
  );
}

function Forward({ client, conv, m, done }: { client: Client; conv: Conv; m: Msg; done: () => void }) {
  const list = targets(client, conv.conv);
  const [to, setTo] = useState(list[0]?.conv ?? 0);
  const name = (c: Conv) => convName(client, c);
  return (
    <form
      class="forward"
      onSubmit={(e) => {
        e.preventDefault();
        if (to) void client.forward(conv.conv, m, to).then(done);
      }}
    >
      <label>
        Forward to
        <select value={to} onChange={(e) => setTo(Number(e.currentTarget.value))}>
          {list.map((c) => (
            <option key={c.conv} value={c.conv}>
              {name(c)}
            </option>
          ))}
        </select>
      </label>
      <button type="submit" class="small">
        Forward
      </button>
    </form>
  );
}

/** Report a message to the operator (SPEC.md 18.7): the server checks the franking opening and
 * names who really sent it. */
function Report({ client, conv, m }: { client: Client; conv: Conv; m: Msg }) {
  const [note, setNote] = useState("");
  if (note) return <span class="status" role="status">{note}</span>;
  return (
    <button
      class="tiny"
      aria-label={`Report message ${m.seq}`}
      title="Report to the server's operator"
      onClick={() => {
        const reason = prompt("Report this message? The server's operator will read it. Reason (optional):", "");
        if (reason === null) return;
        client.report(conv.conv, m.seq, reason.trim()).then(
          (r) => setNote(`Reported: the server confirmed @${client.handles.get(r.sender) ?? `#${r.sender}`} sent it.`),
          (e) => setNote(`⚠ not reported: ${explain(e)}`),
        );
      }}
    >
      ⚑
    </button>
  );
}

function Message({ client, conv, m, onReply, onOpen }: { client: Client; conv: Conv; m: Msg; onReply: (seq: number) => void; onOpen: (conv: number) => void }) {
  const [forwarding, setForwarding] = useState(false);
  if (HIDDEN.has(m.kind)) return null;
  const mine = m.sender === client.id?.account;
  const who = m.sender === 0 ? "server" : client.handles.get(m.sender) ?? `#${m.sender}`;
  let status = "";
  if (mine) status = m.error ? "failed" : m.pending ? "sending" : conv.peerRead >= m.seq ? "read" : conv.peerDelivered >= m.seq ? "delivered" : "sent";
  const reactions = conv.messages.filter((r) => r.kind === "reaction" && (r.content as Record<string, unknown> | null)?.["target"] === m.seq);
  const change = edited(conv, m);
  const target = m.replyTo ? conv.messages.find((x) => x.seq === m.replyTo) : undefined;
  const canAct = (m.kind === "text" || m.kind === "attachment" || m.kind === "share") && !m.pending && !change.deleted;
  return (
    <li class={`msg ${mine ? "mine" : ""} ${m.kind === "system" ? "system" : ""}`} data-seq={m.seq}>
      {m.kind !== "system" && <span class="who">{who}</span>}
      {m.replyTo ? <span class="reply">↪ {target ? text(target).slice(0, 60) : `#${m.replyTo}`}</span> : null}
      <span class="body">
        {change.deleted ? (
          change.by && change.by !== m.sender ? `message deleted by @${client.handles.get(change.by) ?? change.by}` : "message deleted"
        ) : m.kind === "attachment" && m.content ? (
          <Attachment client={client} att={m.content as Record<string, unknown>} />
        ) : m.kind === "miniapp.result" && m.content ? (
          <Card client={client} conv={conv} m={m} />
        ) : m.kind === "share" && m.content ? (
          <ShareCard client={client} m={m} onOpen={onOpen} />
        ) : (
          change.text ?? text(m)
        )}
      </span>
      {change.text !== undefined && !change.deleted && <span class="status">(edited)</span>}
      {!m.e2e && m.kind !== "system" && m.kind !== "payment.receipt" && <span class="warn" title="not end-to-end encrypted">unencrypted</span>}
      {reactions.length > 0 && <span class="reactions">{reactions.map((r) => (r.content as Record<string, string>)["emoji"]).join(" ")}</span>}
      {status && <span class={`status ${status}`} aria-label={`status: ${status}`}>{status === "read" ? "✓✓ read" : status === "delivered" ? "✓✓" : status === "sent" ? "✓" : status}</span>}
      {forwarding && <Forward client={client} conv={conv} m={m} done={() => setForwarding(false)} />}
      {m.kind === "payment.receipt" && !m.error && <ReceiptActions client={client} conv={conv} r={m.content as Record<string, unknown>} />}
      {!mine && m.reportable && !change.deleted && <Report client={client} conv={conv} m={m} />}
      {canAct && (
        <span class="actions">
          <button class="tiny" aria-label={`Reply to message ${m.seq}`} onClick={() => onReply(m.seq)}>
            ↩
          </button>
          <button class="tiny" aria-label={`Forward message ${m.seq}`} onClick={() => setForwarding(!forwarding)}>
            ⤳
          </button>
          <button class="tiny" aria-label={`React ❤ to message ${m.seq}`} onClick={() => void client.sendContent(conv.conv, "reaction", { target: m.seq, emoji: "❤" })}>
            ❤
          </button>
          {mine && m.kind === "text" && (
            <button
              class="tiny"
              aria-label={`Edit message ${m.seq}`}
              onClick={() => {
                const t = prompt("Edit message", change.text ?? text(m));
                if (t !== null && t.trim()) void client.sendContent(conv.conv, "edit", { target: m.seq, text: t.trim() });
              }}
            >
              ✎
            </button>
          )}
          {mine && (
            <button class="tiny" aria-label={`Delete message ${m.seq}`} onClick={() => confirm("Delete this message for everyone?") && void client.deleteForEveryone(conv.conv, m.seq)}>
              ✕
            </button>
          )}
        </span>
      )}
    </li>
  );
}

function ConversationView({ client, conv, onBack, onOpen }: { client: Client; conv: Conv; onBack: () => void; onOpen: (conv: number) => void }) {
  const [draft, setDraft] = useState("");
  const [invite, setInvite] = useState("");
  const [safety, setSafety] = useState("");
  const [scan, setScan] = useState("");
  const [scanned, setScanned] = useState("");
  const [compare, setCompare] = useState("");
  const [payAmount, setPayAmount] = useState("");
  const [requestAmount, setRequestAmount] = useState("");
  const [requestMemo, setRequestMemo] = useState("");
  const [packetAmount, setPacketAmount] = useState("");
  const [packetShares, setPacketShares] = useState("2");
  const [note, setNote] = useState("");
  const [info, setInfo] = useState("");
  const [replyTo, setReplyTo] = useState<number | null>(null);
  const list = useRef<HTMLOListElement>(null);
  const lastTyping = useRef(0);
  useEffect(() => {
    list.current?.scrollTo(0, list.current.scrollHeight);
    if (document.visibilityState === "visible") client.markRead(conv.conv);
  });
  const others = conv.members.filter((m) => m.account !== client.id?.account);
  const other = conv.kind === "direct" ? others[0] : undefined;
  const request = client.requests.get(conv.conv);
  const blocked = !!other && client.blocked.has(other.account);
  // The requester's side: nothing of the other has come back yet (18.2: no receipts, no typing,
  // no presence from someone who has not accepted).
  const awaiting = !!other && !request && !blocked && !conv.peerDelivered && !conv.peerRead && !conv.messages.some((m) => m.sender === other.account);
  const invited = [...(client.invited.get(conv.conv) ?? [])];
  const send = async (e?: Event) => {
    e?.preventDefault();
    const t = draft.trim();
    if (!t) return;
    setDraft("");
    setReplyTo(null);
    client.typing(conv.conv, false);
    try {
      await client.sendText(conv.conv, t, replyTo ?? undefined);
    } catch (err) {
      setNote((err as Error).message);
    }
  };
  const typing = [...conv.typing].map((a) => client.handles.get(a) ?? `#${a}`);
  const showSafety = async () => {
    const other = others[0];
    if (!other) return;
    const n = await client.safetyNumber(other.account);
    setSafety(n.match(/.{5}/g)!.join(" "));
    setScan(await client.scannable(other.account));
  };
  const pay = async () => {
    const other = others[0];
    if (!other) return;
    try {
      const minor = parseAmount(payAmount.trim(), "USD");
      if (!confirm(`Send ${formatMoney(minor, "USD")} to @${other.handle}?`)) return;
      await client.pay(conv.conv, other.account, minor, "USD");
      setPayAmount("");
    } catch (err) {
      setNote((err as Error).message);
    }
  };
  return (
    <section class="conv" aria-label={`Conversation ${conv.title || others.map((m) => m.handle).join(", ")}`}>
      <header>
        <button class="back small" aria-label="Back to conversations" onClick={onBack}>
          ←
        </button>
        <h2>{conv.kind === "direct" ? `@${others[0]?.handle ?? "…"}` : conv.title || "Group"}</h2>
        <span class="members">{conv.members.map((m) => (client.online.has(m.account) ? `● ${m.handle}` : m.handle)).join(", ")}</span>
        {conv.kind === "direct" && !request && (
          <button onClick={() => void showSafety()} aria-label="Show safety number">
            Safety number
          </button>
        )}
        {conv.kind === "direct" && other && !request && <BlockButton client={client} account={other.account} handle={other.handle} />}
      </header>
      {request && (
        <div class="banner" role="region" aria-label="Message request">
          <p>
            <strong>@{request["handle"]}</strong> wants to message you. You are not contacts: they do not know you have seen this, and see nothing of you until you accept.
          </p>
          <span class="buttons">
            {(["accept", "delete", "block"] as const).map((what) => (
              <button
                key={what}
                class={`small ${what === "accept" ? "" : what === "delete" ? "secondary" : "danger"}`}
                onClick={async () => {
                  if (what === "block" && !confirm(`Block @${request["handle"]}?`)) return;
                  try {
                    await client.answerRequest(conv.conv, what);
                    if (what !== "accept") onBack();
                    else setTimeout(() => document.getElementById("composer")?.focus(), 50); // reply next
                  } catch (err) {
                    setNote(explain(err));
                  }
                }}
              >
                {what === "accept" ? "Accept" : what === "delete" ? "Delete" : "Block"}
              </button>
            ))}
          </span>
        </div>
      )}
      {awaiting && (
        <p class="banner" role="status">
          Waiting for @{other!.handle} to accept. If you are not their contact, this chat is a message request: until they accept it, you see nothing of them (not when they are online, no receipts, no typing).
        </p>
      )}
      {safety && (
        <div class="safety" role="region" aria-label="Safety number">
          <code aria-label="Safety number digits">{safety}</code>
          {scan && <QR data={scan} label="Safety number QR code" />}
          <form
            onSubmit={async (e) => {
              e.preventDefault();
              setCompare((await client.compareScanned(others[0]!.account, scanned).catch(() => false)) ? "They match: verified." : "They do not match!");
            }}
          >
            <label>
              Their code (scanned)
              <input value={scanned} onInput={(e) => setScanned(e.currentTarget.value)} />
            </label>
            <button type="submit">Compare</button>
            <span aria-live="polite">{compare}</span>
          </form>
          <label>
            <input type="checkbox" checked={client.isVerified(others[0]!.account)} onChange={(e) => void client.setVerified(others[0]!.account, e.currentTarget.checked)} /> Verified
          </label>
        </div>
      )}
      {conv.kind === "direct" && others[0]?.access && <BotActions client={client} conv={conv} bot={others[0].account} />}
      <ol class="messages" ref={list} aria-live="polite" aria-label="Messages">
        {conv.messages.map((m) => (
          <Message key={`${m.seq}:${m.cmid ?? ""}`} client={client} conv={conv} m={m} onOpen={onOpen} onReply={(seq) => {
            setReplyTo(seq);
            document.getElementById("composer")?.focus();
          }} />
        ))}
      </ol>
      <p class="typing" aria-live="polite">{typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : ""}</p>
      {note && <p role="alert" class="error">{note}</p>}
      {replyTo !== null && (
        <p class="replying">
          Replying to #{replyTo}{" "}
          <button class="tiny" aria-label="Cancel reply" onClick={() => setReplyTo(null)}>
            ✕
          </button>
        </p>
      )}
      {info && <p role="status" class="status">{info}</p>}
      {request ? (
        <p class="typing">Accept the request to reply.</p>
      ) : blocked ? (
        <p class="typing">You blocked @{other!.handle}. Unblock them to write here.</p>
      ) : conv.kind === "channel" && conv.role === "member" ? (
        <p class="typing">Only the channel's owner and admins post here.</p>
      ) : (
      <form class="composer" onSubmit={send}>
        <label class="sr" for="composer">
          Message
        </label>
        <textarea
          id="composer"
          rows={1}
          value={draft}
          placeholder="Message"
          onInput={(e) => {
            setDraft(e.currentTarget.value);
            if (Date.now() - lastTyping.current > 3000) {
              lastTyping.current = Date.now();
              client.typing(conv.conv, true);
            }
          }}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) void send(e);
          }}
        />
        <label class="attach" title="Attach a file">
          +<span class="sr">Attach a file</span>
          <input
            type="file"
            class="sr"
            aria-label="Attach a file"
            onChange={async (e) => {
              const f = e.currentTarget.files?.[0];
              e.currentTarget.value = "";
              if (!f) return;
              try {
                await client.sendFile(conv.conv, new Uint8Array(await f.arrayBuffer()), f.name, f.type);
              } catch (err) {
                setNote((err as Error).message);
              }
            }}
          />
        </label>
        <button type="submit">Send</button>
      </form>
      )}
      <details>
        <summary>More</summary>
        {!request && !blocked && !(conv.kind === "channel" && conv.role === "member") && <ShareLink client={client} conv={conv} onError={setNote} />}
        {conv.kind !== "direct" && (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              const who = invite.trim().replace(/^@/, "");
              void client.invite(conv.conv, who).then(
                (r) => {
                  setInvite("");
                  setInfo(r === "invited" ? `@${who} was invited: they join once they accept.` : `@${who} was added.`);
                },
                (err) => setNote(explain(err)),
              );
            }}
          >
            <label>
              Add member
              <input value={invite} onInput={(e) => setInvite(e.currentTarget.value)} />
            </label>
            <button type="submit">Add</button>
          </form>
        )}
        {invited.length > 0 && (
          <div role="group" aria-label="Invited, not joined yet">
            <p class="hint">Invited, not joined yet: added as soon as they accept (or when you next open chatd, if it is closed then).</p>
            <ul>
              {invited.map((a) => (
                <li key={a}>
                  @{client.handles.get(a) ?? a}{" "}
                  <button
                    class="small"
                    onClick={() =>
                      void client.invite(conv.conv, client.handles.get(a) ?? "").then(
                        (r) => setInfo(r === "added" ? `@${client.handles.get(a)} was added.` : `@${client.handles.get(a)} has not accepted yet.`),
                        (err) => setNote(explain(err)),
                      )
                    }
                  >
                    Add @{client.handles.get(a) ?? a} again
                  </button>
                </li>
              ))}
            </ul>
          </div>
        )}
        {conv.kind !== "channel" && (
          <form
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const minor = parseAmount(requestAmount.trim(), "USD");
                const from = conv.kind === "direct" ? others[0]?.account ?? 0 : 0;
                await client.requestPayment(conv.conv, from, minor, "USD", requestMemo.trim());
                setRequestAmount("");
                setRequestMemo("");
              } catch (err) {
                setNote((err as Error).message);
              }
            }}
          >
            <label>
              Request (USD)
              <input inputMode="decimal" value={requestAmount} onInput={(e) => setRequestAmount(e.currentTarget.value)} />
            </label>
            <label>
              For what
              <input value={requestMemo} onInput={(e) => setRequestMemo(e.currentTarget.value)} />
            </label>
            <button type="submit">Request</button>
          </form>
        )}
        {conv.kind === "group" && (
          <form
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const minor = parseAmount(packetAmount.trim(), "USD");
                const n = Number(packetShares);
                if (!confirm(`Send a red packet of ${formatMoney(minor, "USD")} in ${n} shares?`)) return;
                await client.redPacket(conv.conv, minor, "USD", n);
                setPacketAmount("");
              } catch (err) {
                setNote((err as Error).message);
              }
            }}
          >
            <label>
              Red packet (USD)
              <input inputMode="decimal" value={packetAmount} onInput={(e) => setPacketAmount(e.currentTarget.value)} />
            </label>
            <label>
              Shares
              <input inputMode="numeric" value={packetShares} onInput={(e) => setPacketShares(e.currentTarget.value)} />
            </label>
            <button type="submit">Send red packet</button>
          </form>
        )}
        {conv.kind === "direct" && (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void pay();
            }}
          >
            <label>
              Pay (USD)
              <input inputMode="decimal" value={payAmount} onInput={(e) => setPayAmount(e.currentTarget.value)} />
            </label>
            <button type="submit">Pay</button>
          </form>
        )}
      </details>
    </section>
  );
}

function Main({ client }: { client: Client }) {
  const [open, setOpen] = useState<number | null>(null);
  const [peer, setPeer] = useState("");
  const [title, setTitle] = useState("");
  const [members, setMembers] = useState("");
  const [channel, setChannel] = useState(false);
  const [error, setError] = useState("");
  const convs = [...client.convs.values()].filter((c) => !client.isRequest(c.conv)).sort((a, b) => b.lastSeq - a.lastSeq || b.conv - a.conv);
  const current = open !== null ? client.convs.get(open) : undefined;
  const label = (c: Conv) => (c.kind === "direct" ? `@${c.members.find((m) => m.account !== client.id?.account)?.handle ?? "…"}` : `${c.kind === "channel" ? "# " : ""}${c.title || "Group"}`);
  const act = (f: () => Promise<number>) => async (e: Event) => {
    e.preventDefault();
    setError("");
    try {
      setOpen(await f());
    } catch (err) {
      setError(explain(err));
    }
  };
  return (
    <div class={`layout ${current ? "has-conv" : ""}`}>
      <nav aria-label="Conversations">
        <header>
          <strong>@{client.id?.handle}</strong> <span class={`dot ${client.status}`} aria-label={`connection: ${client.status}`} />
        </header>
        <Requests client={client} onOpen={setOpen} />
        <ul class="convs" aria-label="Chats">
          {convs.map((c) => {
            const n = client.unread(c);
            return (
              <li key={c.conv}>
                <button class={c.conv === open ? "active" : ""} aria-current={c.conv === open ? "true" : undefined} onClick={() => setOpen(c.conv)}>
                  <span class="title">{label(c)}</span>
                  {n > 0 && (
                    <span class="badge" aria-label={`${n} unread`}>
                      {n}
                    </span>
                  )}
                </button>
              </li>
            );
          })}
        </ul>
        <form onSubmit={act(() => client.createDirect(peer.trim().toLowerCase()))}>
          <label>
            New chat with
            <input value={peer} placeholder="handle" onInput={(e) => setPeer(e.currentTarget.value)} />
          </label>
          <button type="submit">Start chat</button>
        </form>
        <form onSubmit={act(() => client.createGroup(title.trim(), members.split(/[\s,]+/).filter(Boolean), channel ? "channel" : "group"))}>
          <label>
            Group title
            <input value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
          </label>
          <label>
            Members
            <input value={members} placeholder="handles, comma separated" onInput={(e) => setMembers(e.currentTarget.value)} />
          </label>
          <label class="check">
            <input type="checkbox" checked={channel} onChange={(e) => setChannel(e.currentTarget.checked)} /> Channel (only admins post)
          </label>
          <button type="submit">Create group</button>
        </form>
        {error && <p role="alert" class="error">{error}</p>}
        <Contacts client={client} onOpen={setOpen} />
        <Privacy client={client} />
        <PushToggle client={client} />
        <ApproveDevice client={client} />
        <Wallet client={client} />
      </nav>
      {current ? (
        <ConversationView key={current.conv} client={client} conv={current} onBack={() => setOpen(null)} onOpen={setOpen} />
      ) : (
        <section class="empty">
          <p>Pick a conversation, or start one.</p>
        </section>
      )}
    </div>
  );
}

function App({ client, ready }: { client: Client; ready: boolean }) {
  useClient(client);
  HANDLES = client.handles;
  if (!ready) return <p class="splash">Connecting…</p>;
  return client.id ? (
    <Main client={client} />
  ) : (
    <>
      <Register client={client} />
      <LinkDevice client={client} />
    </>
  );
}

async function start(): Promise<void> {
  const root = document.getElementById("app")!;
  // One tab per browser profile drives the device: two would advance the same ratchets and
  // sender keys from one IndexedDB at once. Another tab waits, and takes over when it closes.
  if (navigator.locks) {
    await new Promise<void>((resolve) => {
      let waiting = true;
      void navigator.locks.request("chatd-device", { ifAvailable: true }, (lock) => {
        if (lock) {
          waiting = false;
          resolve();
          return new Promise<void>(() => {}); // held for the page's life
        }
        root.setAttribute("aria-busy", "false");
        render(<p class="splash" role="status">chatd is open in another tab of this browser. It continues here when that tab is closed.</p>, root);
        void navigator.locks.request("chatd-device", () => {
          if (waiting) resolve();
          return new Promise<void>(() => {});
        });
        return undefined;
      });
    });
  }
  const store = await Store.open();
  STORE = store;
  if (await store.sealed()) {
    root.setAttribute("aria-busy", "false");
    await new Promise<void>((resolve) => render(<Unlock store={store} done={resolve} />, root));
  }
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const client = new Client(store, url);
  window.chatd = client;
  render(<App client={client} ready={false} />, root);
  root.setAttribute("aria-busy", "false");
  try {
    await client.login();
  } catch (e) {
    console.warn(e);
  }
  render(<App client={client} ready />, root);
}

void start();
