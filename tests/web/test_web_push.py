"""Web Push in the browser (SPEC.md 21), as far as headless Chromium on a machine with no route
to a browser push service can go.

What runs for real: chatd serves ``/sw.js`` (no-cache, the app's CSP with ``worker-src 'self'``);
the Notifications switch fetches the server's VAPID key, asks for the permission, registers the
service worker (scope ``/``) and asks Chromium's PushManager to subscribe. That subscription
needs Google's push service (FCM), which cannot be reached from here: the page then says so, the
switch stays off and the server stores nothing; where it does succeed the server must hold the
browser's endpoint. Then a push is handed to the service worker through the DevTools protocol
(``ServiceWorker.deliverPushMessage``, what a push service's delivery triggers) carrying the
plaintext chatd really sent: chatd pushes an offline device at a loopback push service
(``pushkit``), which decrypts it; the worker shows one notification, "New message", and nothing of
the message or its sender.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chatproto import frames as F
from chatproto import kinds
from conftest import RunningServer, make_settings, run_server
from playwright.async_api import Browser, expect
from pushkit import TestPushService
from testkit import Raw

from chatd.services.push import new_vapid_pem

from .conftest import open_app, register

MARKER = "MARKER-web-push-41d"


@pytest.fixture
async def pushsvc() -> AsyncIterator[TestPushService]:
    svc = TestPushService()
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.fixture
async def chatd_push(tmp_path: Path, pushsvc: TestPushService) -> AsyncIterator[RunningServer]:
    key = tmp_path / "vapid.pem"
    key.write_bytes(new_vapid_pem()[0])
    push = {
        "vapid_private_key_file": str(key),
        "subject": "mailto:ops@chatd.test",
        "insecure_endpoints": [pushsvc.origin],
        "coalesce": 0.2,
    }
    async with run_server(make_settings(tmp_path, push=push)) as s:
        yield s


async def get(server: RunningServer, path: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.app.port}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    return int(lines[0].split()[1]), headers, body


async def test_the_service_worker_is_served_under_the_apps_policy(
    chatd_push: RunningServer,
) -> None:
    status, headers, body = await get(chatd_push, "/sw.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert headers["cache-control"] == "no-cache"  # a fixed name: revalidated, never stale
    csp = headers["content-security-policy"]
    assert "worker-src 'self'" in csp and "script-src 'self';" in csp and "http" not in csp
    assert (
        b"showNotification" in body and b'addEventListener("fetch"' not in body
    )  # no fetch handler, no cache


async def test_the_notifications_switch_and_the_service_worker(
    chatd_push: RunningServer, browser: Browser, pushsvc: TestPushService
) -> None:
    origin = chatd_push.http
    page = await open_app(browser, chatd_push)
    await page.context.grant_permissions(["notifications"], origin=origin)
    await register(page, "wendy")
    await page.get_by_text("Notifications", exact=True).click()
    switch = page.get_by_label("Notify me of new messages when this tab is closed")
    await expect(switch).to_be_enabled()  # the server has a VAPID key; the browser can push
    await expect(switch).not_to_be_checked()
    cdp = await page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda e: registrations.extend(e["registrations"]),
    )
    await cdp.send("ServiceWorker.enable")
    await switch.click()  # controlled: it shows "on" only once the server holds the subscription
    status = page.locator("details:has(summary:text-is('Notifications')) .status")
    # The answer, whichever it is (not the empty note before the click took effect).
    await expect(status).to_have_text(re.compile(r"could not subscribe|^On"))
    scope = await page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == origin + "/"
    store = chatd_push.app.services.deps.store  # type: ignore[union-attr]
    stored = await store.push_of(1)  # wendy's device, the server's first
    said = await status.inner_text()
    if "could not subscribe at its push service" in said:  # no push service here (expected)
        await expect(switch).not_to_be_checked()
        assert stored is None
    else:  # a browser that could subscribe: the server holds exactly its subscription
        assert said.startswith("On"), said
        await expect(switch).to_be_checked()
        endpoint = await page.evaluate(
            "navigator.serviceWorker.ready.then(r => r.pushManager.getSubscription())"
            ".then(s => s && s.endpoint)"
        )
        assert stored is not None and stored.endpoint == endpoint
    assert page.errors == []  # type: ignore[attr-defined]

    # What chatd really pushes for an offline device (decrypted by the loopback push service)...
    sub = pushsvc.subscribe()
    alice, bob = await Raw.open(chatd_push.url), await Raw.open(chatd_push.url)
    await alice.register("alice")
    await bob.register("bob")
    conv: F.Conv = await alice.request(
        F.CreateConv(id=alice.next_id(), kind="direct", members=[bob.account]), F.Conv
    )
    await bob.request(
        F.SetPush(
            id=bob.next_id(),
            endpoint=sub.endpoint,
            p256dh=sub.p256dh,
            auth=sub.auth,
            show_conv=True,
        ),
        F.PushConfig,
    )
    await bob.close()
    deadline = time.monotonic() + 20
    presence = chatd_push.app.services.deps.presence  # type: ignore[union-attr]
    while await presence.online([bob.account]):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    body = kinds.encode_content(kinds.Text(text=f"{MARKER} from alice"))[1]
    await alice.request(
        F.Send(id=alice.next_id(), conv=conv.info.conv, cmid="w1", kind="text", body=body), F.Ack
    )
    (push,) = await pushsvc.wait_for(sub, 1)
    # ... handed to the page's service worker as its push service would deliver it.
    deadline = time.monotonic() + 20
    while not registrations:
        assert time.monotonic() < deadline, "no service worker registration reported"
        await asyncio.sleep(0.05)
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": origin,
            "registrationId": registrations[-1]["registrationId"],
            "data": push.plaintext.decode(),
        },
    )
    shown: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while not shown:
        assert time.monotonic() < deadline, "the service worker showed no notification"
        shown = await page.evaluate(
            "navigator.serviceWorker.ready.then(r => r.getNotifications())"
            ".then(ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag, data: n.data})))"
        )
        await asyncio.sleep(0.1)
    assert shown == [
        {"title": "New message", "body": "", "tag": "chatd-new", "data": {"conv": conv.info.conv}}
    ]
    assert MARKER not in repr(shown) and "alice" not in repr(shown)
