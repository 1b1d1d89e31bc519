// Web Push in the page (SPEC.md 21): the service worker, the browser's push subscription and the
// server's copy of it. The settings switch is `PushToggle`; the worker itself is app/sw.js.
import { useState } from "preact/hooks";
import { ServerError, type Client } from "../src/client.js";

export const SW_URL = "/sw.js";

/** The browser can subscribe to pushes (service workers, PushManager and notifications). */
export function pushSupported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** The service worker's registration (registered on first use; scope `/`). */
export async function registration(): Promise<ServiceWorkerRegistration> {
  await navigator.serviceWorker.register(SW_URL, { scope: "/", type: "classic" });
  return navigator.serviceWorker.ready;
}

function same(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.length) return false;
  const x = new Uint8Array(a);
  return x.every((v, i) => v === b[i]);
}

/** What the server has for this device: its VAPID key (empty: push is off) and our endpoint. */
export async function pushConfig(client: Client): Promise<{ key: Uint8Array; endpoint: string; showConv: boolean }> {
  const c = await client.call({ t: "get_push" });
  return { key: c["vapid_key"] as Uint8Array, endpoint: (c["endpoint"] as string) ?? "", showConv: !!c["show_conv"] };
}

/** Subscribe this browser (asking for the notification permission) and give the server the
 * subscription. Throws with a sentence for the user when it cannot. */
export async function enablePush(client: Client, showConv: boolean): Promise<void> {
  const { key } = await pushConfig(client);
  if (!key.length) throw new Error("This server does not send notifications.");
  if ((await Notification.requestPermission()) !== "granted") throw new Error("Notifications are blocked for this site in the browser's settings.");
  const reg = await registration();
  let sub = await reg.pushManager.getSubscription();
  if (sub && !same(sub.options.applicationServerKey, key)) {
    await sub.unsubscribe(); // made for another server key: useless now
    sub = null;
  }
  try {
    sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: new Uint8Array(key) });
  } catch (err) {
    throw new Error(`This browser could not subscribe at its push service: ${(err as Error).message}`);
  }
  const p256dh = sub.getKey("p256dh");
  const auth = sub.getKey("auth");
  if (!p256dh || !auth) throw new Error("This browser's push subscription has no encryption keys.");
  try {
    await client.call({ t: "set_push", endpoint: sub.endpoint, p256dh: new Uint8Array(p256dh), auth: new Uint8Array(auth), show_conv: showConv });
  } catch (err) {
    if (err instanceof ServerError && err.code === 26) throw new Error("This server does not send to this browser's push service.");
    throw err;
  }
}

/** Forget the subscription, on the server and in the browser. */
export async function disablePush(client: Client): Promise<void> {
  await client.call({ t: "clear_push" });
  const reg = "serviceWorker" in navigator ? await navigator.serviceWorker.getRegistration("/") : undefined;
  const sub = await reg?.pushManager.getSubscription();
  await sub?.unsubscribe();
}

/** Settings: "Notify me when this tab is closed", and whether a notification may say which chat. */
export function PushToggle({ client }: { client: Client }) {
  const [state, setState] = useState<{ on: boolean; showConv: boolean; available: boolean } | null>(null);
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const load = async () => {
    try {
      const c = await pushConfig(client);
      setState({ on: c.endpoint !== "", showConv: c.showConv, available: c.key.length > 0 && pushSupported() });
      if (!pushSupported()) setNote("This browser cannot receive notifications.");
      else if (!c.key.length) setNote("This server does not send notifications.");
    } catch (err) {
      setNote((err as Error).message);
    }
  };
  const change = async (on: boolean, showConv: boolean) => {
    setBusy(true);
    setNote(on ? "Asking the browser…" : "");
    try {
      if (on) await enablePush(client, showConv);
      else await disablePush(client);
      setState({ on, showConv, available: true });
      setNote(on ? "On: a notification says only “New message”." : "Off.");
    } catch (err) {
      setState((s) => s && { ...s, on: false });
      setNote((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <details onToggle={(e) => (e.currentTarget as HTMLDetailsElement).open && void load()}>
      <summary>Notifications</summary>
      {state && (
        <>
          <label class="check">
            <input type="checkbox" checked={state.on} disabled={busy || !state.available} onChange={(e) => void change(e.currentTarget.checked, state.showConv)} />{" "}
            Notify me of new messages when this tab is closed
          </label>
          <label class="check">
            <input type="checkbox" checked={state.showConv} disabled={busy || !state.on} onChange={(e) => void change(true, e.currentTarget.checked)} /> Let a
            notification open its chat (the server then names the chat to this browser; never who wrote or what)
          </label>
        </>
      )}
      <p class="status" aria-live="polite">{note}</p>
    </details>
  );
}
