// chatd's service worker (SPEC.md 21): shows a notification for a Web Push, and nothing else.
// A push says only that something new is waiting ({"t":"new"}, or {"t":"new","conv":id} when
// the user allowed it): never who wrote or what. So the notification says "New message"; a click
// focuses (or opens) the app, which syncs. No fetch handler, no cache: the app is not offline-
// first, and this worker never sees a message, a key or the socket.
// Served at /sw.js (scope /) with no-cache and the app's Content-Security-Policy; a service
// worker cannot carry Subresource Integrity, so it is kept this small and plain (not bundled).
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let conv = 0;
  try {
    const data = event.data ? event.data.json() : null;
    if (data && data.t === "new" && Number.isSafeInteger(data.conv) && data.conv > 0) conv = data.conv;
  } catch {
    // Not a chatd payload: still say only that something is new.
  }
  event.waitUntil(
    self.registration.showNotification("New message", {
      tag: "chatd-new", // one notification at a time: a newer push replaces it
      icon: "/favicon.svg",
      data: { conv },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const w of windows) if ("focus" in w) return w.focus();
      return self.clients.openWindow("/");
    })(),
  );
});
