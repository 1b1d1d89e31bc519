"""Web Push to offline devices (issue 18.4, SPEC.md 21), against a real server and a push service
that implements RFC 8030's receiving side on loopback (``pushkit``): it checks each push's VAPID
JWT (signature, audience, expiry) and decrypts it with the subscription's private key.

What a user would notice: an offline device is told once for a burst, and only that something
is new (never who wrote or what: a marker in the messages never appears, decrypted or not); an
online device is not pushed; a subscription its push service says is gone is deleted; a stranger
cannot buzz a phone more than its cap; two nodes push once; and no client can make the server
send a request anywhere but a push service (SSRF).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from chatclient import Client
from chatproto import frames as F
from chatproto import kinds
from chatproto import push as payload
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from pushkit import Subscription, TestPushService
from redisd import RedisServer
from testkit import Raw

from chatd.services.push import _PublicOnly, new_vapid_pem

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
CONSENT = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
MARKER = "MARKER-7f3a9c-push"


@pytest.fixture
async def pushsvc() -> AsyncIterator[TestPushService]:
    svc = TestPushService()
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


def settings(tmp_path: Path, db: str, svc: TestPushService, **push: Any) -> Any:
    key = tmp_path / "vapid.pem"
    if not key.exists():
        key.write_bytes(new_vapid_pem()[0])
    values: dict[str, Any] = {
        "vapid_private_key_file": str(key),
        "subject": "mailto:ops@chatd.test",
        "insecure_endpoints": [svc.origin],
        "coalesce": 0.3,
        "interval": 30.0,
    }
    values.update(push)
    return make_settings(tmp_path, store={"db": db}, limits=FAST, consent=CONSENT, push=values)


async def user(url: str, handle: str) -> Raw:
    r = await Raw.open(url)
    await r.register(handle)
    return r


async def direct(a: Raw, b: Raw, accept: bool = True) -> int:
    """A direct conversation of ``a`` and ``b`` (accepted by ``b`` unless ``accept`` is False)."""
    conv: F.Conv = await a.request(
        F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]), F.Conv
    )
    if accept:
        await send(a, conv.info.conv, "hello")
        ok = await b.request(F.AnswerRequest(id=b.next_id(), conv=conv.info.conv, answer="accept"))
        assert isinstance(ok, F.Ok), ok
    return conv.info.conv


_n = iter(range(1, 1_000_000))


async def send(c: Raw, conv: int, text: str) -> F.Ack:
    body = kinds.encode_content(kinds.Text(text=text))[1]
    ack: F.Ack = await c.request(
        F.Send(id=c.next_id(), conv=conv, cmid=f"m{next(_n)}", kind="text", body=body), F.Ack
    )
    return ack


async def subscribe(c: Raw, sub: Subscription, show_conv: bool = False) -> F.PushConfig:
    got: F.PushConfig = await c.request(
        F.SetPush(
            id=c.next_id(),
            endpoint=sub.endpoint,
            p256dh=sub.p256dh,
            auth=sub.auth,
            show_conv=show_conv,
        ),
        F.PushConfig,
    )
    return got


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def offline(srv: RunningServer, c: Raw) -> None:
    """Close ``c`` and wait until its account is offline as the server sees it."""
    await c.close()
    presence = srv.app.services.deps.presence  # type: ignore[union-attr]

    async def gone() -> bool:
        return not await presence.online([c.account])

    await until(gone)


def pushes(srv: RunningServer, outcome: str) -> float:
    return srv.app.metrics.pushes.labels(outcome=outcome)._value.get()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- what arrives, and when


async def test_an_offline_device_gets_one_push_for_a_burst_with_no_sender_and_no_text(
    tmp_path: Path, db: str, pushsvc: TestPushService
) -> None:
    async with run_server(settings(tmp_path, db, pushsvc)) as srv:
        alice, bob = await user(srv.url, "alice"), await user(srv.url, "bob")
        conv = await direct(alice, bob)
        sub = pushsvc.subscribe()
        config = await subscribe(bob, sub)
        assert config.endpoint == sub.endpoint and len(config.vapid_key) == 65
        await offline(srv, bob)
        for i in range(6):
            await send(alice, conv, f"{MARKER} {i} from alice")
        (push,) = await pushsvc.wait_for(sub, 1)
        await asyncio.sleep(2.0)  # coalesce 0.3 s, window 30 s: a second push would be a bug
        assert len(pushsvc.of(sub)) == 1, pushsvc.of(sub)
        assert pushsvc.rejected == []
        # What it says: something is new. Not who, not what, not where (show_conv off).
        assert payload.decode(push.plaintext) is None
        assert json.loads(push.plaintext) == {"t": "new"}
        assert len(push.plaintext) == 64
        for secret in (MARKER.encode(), b"alice"):  # the payload == {"t":"new"}: no sender id
            assert secret not in push.plaintext and secret not in push.body
        assert push.vapid_key == config.vapid_key  # signed by this server's VAPID key
        assert push.headers.get("Topic") == "chatd" and int(push.headers["TTL"]) > 0
        assert pushes(srv, "sent") == 1

        # Back online, then away again: the window ended with the connection, the next message
        # is pushed at once; with show_conv it names the conversation (and still nothing else).
        again = await Raw.open(srv.url)
        await again.login(bob.device, bob.key)
        await subscribe(again, sub, show_conv=True)
        await offline(srv, again)
        await send(alice, conv, f"{MARKER} later")
        second = (await pushsvc.wait_for(sub, 2))[1]
        assert payload.decode(second.plaintext) == conv
        assert MARKER.encode() not in second.plaintext and b"alice" not in second.plaintext
        assert len(second.plaintext) == 64  # the same size as one that names nothing


async def test_an_online_account_gets_no_push(tmp_path: Path, pushsvc: TestPushService) -> None:
    async with run_server(settings(tmp_path, str(tmp_path / "c.db"), pushsvc)) as srv:
        alice, bob = await user(srv.url, "alice"), await user(srv.url, "bob")
        conv = await direct(alice, bob)
        sub = pushsvc.subscribe()
        await subscribe(bob, sub)
        for i in range(3):
            await send(alice, conv, f"{MARKER} {i}")
        await bob.expect(F.Deliver, seq=4)  # bob reads them live
        await asyncio.sleep(2.0)
        assert pushsvc.of(sub) == [] and pushsvc.requests == []
        # The same subscription is pushed once bob is gone (the setup can push).
        await offline(srv, bob)
        await send(alice, conv, "now?")
        await pushsvc.wait_for(sub, 1)


async def test_own_messages_are_not_pushed_to_the_senders_other_devices(
    tmp_path: Path, pushsvc: TestPushService
) -> None:
    async with run_server(settings(tmp_path, str(tmp_path / "c.db"), pushsvc)) as srv:
        alice, bob = await user(srv.url, "alice"), await user(srv.url, "bob")
        conv = await direct(alice, bob)
        sub = pushsvc.subscribe()
        await subscribe(alice, sub)
        await send(alice, conv, "mine")
        await offline(srv, alice)  # offline now; its own message is not news to it
        bob_sub = pushsvc.subscribe()
        await subscribe(bob, bob_sub)
        await offline(srv, bob)
        writer = await Raw.open(srv.url)
        await writer.login(alice.device, alice.key)
        await send(writer, conv, "also mine")
        await pushsvc.wait_for(bob_sub, 1)
        await asyncio.sleep(1.0)
        assert pushsvc.of(sub) == []


# ---------------------------------------------------------------------- the push service answers


async def test_a_gone_subscription_is_deleted(
    tmp_path: Path, db: str, pushsvc: TestPushService
) -> None:
    async with run_server(settings(tmp_path, db, pushsvc)) as srv:
        alice, bob = await user(srv.url, "alice"), await user(srv.url, "bob")
        conv = await direct(alice, bob)
        sub = pushsvc.subscribe()
        pushsvc.answers[sub.token] = [(410, {})]
        await subscribe(bob, sub)
        await offline(srv, bob)
        await send(alice, conv, "anyone?")
        store = srv.app.services.deps.store  # type: ignore[union-attr]

        async def deleted() -> bool:
            return await store.push_of(bob.device) is None

        await until(deleted)
        again = await Raw.open(srv.url)
        await again.login(bob.device, bob.key)
        config = await again.request(F.GetPush(id=again.next_id()), F.PushConfig)
        assert config.endpoint == ""
        assert pushsvc.requests == [(sub.token, 410)] and pushes(srv, "gone") == 1


async def test_5xx_and_429_are_retried_honouring_retry_after(
    tmp_path: Path, pushsvc: TestPushService
) -> None:
    async with run_server(settings(tmp_path, str(tmp_path / "c.db"), pushsvc)) as srv:
        alice, bob = await user(srv.url, "alice"), await user(srv.url, "bob")
        conv = await direct(alice, bob)
        sub = pushsvc.subscribe()
        pushsvc.answers[sub.token] = [(503, {"Retry-After": "1"}), (429, {"Retry-After": "1"})]
        await subscribe(bob, sub)
        await offline(srv, bob)
        await send(alice, conv, "hello?")
        (push,) = await pushsvc.wait_for(sub, 1)
        assert [s for _, s in pushsvc.requests] == [503, 429, 201]
        assert payload.decode(push.plaintext) is None

        async def counted() -> bool:  # the answer reaches the server after the push arrived
            return pushes(srv, "sent") == 1

        await until(counted)
        assert pushes(srv, "retried") == 2
        assert await srv.app.services.deps.store.push_of(bob.device) is not None  # type: ignore[union-attr]


async def test_a_redirect_is_never_followed(tmp_path: Path, pushsvc: TestPushService) -> None:
    victim = TestPushService()  # another loopback service: what a redirect would reach
    await victim.start()
    try:
        target = victim.subscribe()
        async with run_server(settings(tmp_path, str(tmp_path / "c.db"), pushsvc)) as srv:
            alice, bob = await user(srv.url, "alice"), await user(srv.url, "bob")
            conv = await direct(alice, bob)
            sub = pushsvc.subscribe()
            pushsvc.answers[sub.token] = [(307, {"Location": target.endpoint})]
            await subscribe(bob, sub)
            await offline(srv, bob)
            await send(alice, conv, "hello?")

            async def failed() -> bool:
                return pushes(srv, "failed") == 1

            await until(failed)
            assert victim.requests == [] and pushsvc.requests == [(sub.token, 307)]
    finally:
        await victim.stop()


# ---------------------------------------------------------------------- strangers, limits, SSRF


async def test_strangers_cannot_push_past_the_cap(tmp_path: Path, pushsvc: TestPushService) -> None:
    """Message requests from many strangers (consent defaults: each a request) buzz a phone at
    most once per window and ``max_per_hour`` times in all."""
    cfg = settings(
        tmp_path, str(tmp_path / "c.db"), pushsvc, coalesce=0.05, interval=0.2, max_per_hour=3
    )
    async with run_server(cfg) as srv:
        bob = await user(srv.url, "bob")
        sub = pushsvc.subscribe()
        await subscribe(bob, sub)
        await offline(srv, bob)
        strangers = [await user(srv.url, f"spam{i}") for i in range(4)]
        convs = [await direct(s, bob, accept=False) for s in strangers]
        started = time.monotonic()
        while time.monotonic() - started < 3.0:  # 15 windows of 0.2 s
            for s, conv in zip(strangers, convs, strict=True):
                await send(s, conv, f"{MARKER} buy now")
            await asyncio.sleep(0.05)
        await pushsvc.wait_for(sub, 1)
        await asyncio.sleep(1.0)
        got = pushsvc.of(sub)
        assert 1 <= len(got) <= 3, len(got)
        assert pushes(srv, "limited") >= 1  # the cap refused some
        for p in got:
            assert MARKER.encode() not in p.plaintext and payload.decode(p.plaintext) is None


BAD_ENDPOINTS = [
    "http://127.0.0.1:6379/",  # Redis on loopback (not the configured test origin)
    "http://fcm.googleapis.com/fcm/send/x",  # not https
    "https://127.0.0.1/x",
    "https://10.0.0.7/x",
    "https://[::1]/x",
    "https://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
    "https://2130706433/x",  # 127.0.0.1 as one number
    "https://0x7f.1/x",
    "https://127.1/x",
    "https://localhost/x",
    "https://fcm.googleapis.com:8443/x",  # another port
    "https://user:pw@fcm.googleapis.com/x",
    "https://metadata.google.internal/computeMetadata/v1/",  # a name not on the allow-list
    "https://fcm.googleapis.com.evil.example/x",
    "https://evilfcm.googleapis.com.example/x",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "https://fcm.googleapis.com/x#frag",
    "https://fcm.googleapis.com/ x",
]


async def test_only_push_services_can_be_registered(
    tmp_path: Path, pushsvc: TestPushService
) -> None:
    """A thousand tries at making the server send somewhere else: each is ``PUSH_REFUSED``,
    nothing is stored, nothing is contacted, and the connection stays."""
    victim = TestPushService()
    await victim.start()
    try:
        async with run_server(settings(tmp_path, str(tmp_path / "c.db"), pushsvc)) as srv:
            mallory = await user(srv.url, "mallory")
            sub = pushsvc.subscribe()
            endpoints = [*BAD_ENDPOINTS, victim.subscribe().endpoint]
            for i in range(1000):
                endpoint = endpoints[i % len(endpoints)]
                reply = await mallory.request(
                    F.SetPush(
                        id=mallory.next_id(), endpoint=endpoint, p256dh=sub.p256dh, auth=sub.auth
                    )
                )
                assert isinstance(reply, F.Error), (endpoint, reply)
                assert reply.code == ErrorCode.PUSH_REFUSED, (endpoint, reply)
            # A key that is not on the curve is refused too (it could never be encrypted to).
            bad_key = b"\x04" + b"\x01" * 64
            reply = await mallory.request(
                F.SetPush(
                    id=mallory.next_id(), endpoint=sub.endpoint, p256dh=bad_key, auth=sub.auth
                )
            )
            assert isinstance(reply, F.Error) and reply.code == ErrorCode.INVALID
            config = await mallory.request(F.GetPush(id=mallory.next_id()), F.PushConfig)
            assert config.endpoint == ""
            assert victim.requests == []
    finally:
        await victim.stop()


async def test_a_push_service_name_that_resolves_to_a_private_address_is_not_connected_to() -> None:
    """DNS rebinding: an allowed name that resolves to loopback (here: ``localhost``) is refused
    when the push is sent, whatever the allow-list says."""
    resolver = _PublicOnly()
    try:
        with pytest.raises(OSError, match="not public"):
            await resolver.resolve("localhost", 443)
    finally:
        await resolver.close()


async def test_push_off_without_a_vapid_key(tmp_path: Path, pushsvc: TestPushService) -> None:
    async with run_server(make_settings(tmp_path, limits=FAST)) as srv:
        bob = await user(srv.url, "bob")
        config = await bob.request(F.GetPush(id=bob.next_id()), F.PushConfig)
        assert config.vapid_key == b""
        sub = pushsvc.subscribe()
        reply = await bob.request(
            F.SetPush(id=bob.next_id(), endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth)
        )
        assert isinstance(reply, F.Error) and reply.code == ErrorCode.UNAVAILABLE
        assert isinstance(await bob.request(F.ClearPush(id=bob.next_id())), F.Ok)


async def test_the_sdk_registers_replaces_and_unregisters(
    tmp_path: Path, pushsvc: TestPushService
) -> None:
    """``Client.register_push`` with the base64url keys a browser's ``toJSON()`` gives; a new
    one replaces the old (one per device); ``unregister_push`` deletes it; an offline SDK user
    is then pushed at the subscription it has, only."""
    cfg = settings(tmp_path, str(tmp_path / "c.db"), pushsvc)
    async with run_server(cfg) as srv, Client(srv.url) as alice:
        await alice.register("alice", "Alice")
        first, second, third = (pushsvc.subscribe() for _ in range(3))
        async with Client(srv.url) as bob:
            await bob.register("bob", "Bob")
            conv = await alice.direct(await alice.lookup("@bob"))
            assert await bob.direct(alice.account) == conv  # accepts the request
            await bob.register_push(first.endpoint, first.p256dh, first.auth)
            config = await bob.register_push(second.endpoint, b64(second.p256dh), b64(second.auth))
            assert config.endpoint == second.endpoint and len(config.vapid_key) == 65
            assert (await bob.push_config()).endpoint == second.endpoint
            await bob.unregister_push()
            assert (await bob.push_config()).endpoint == ""
            await bob.register_push(third.endpoint, third.p256dh, third.auth, show_conv=True)
            bob_account = bob.account
        presence = srv.app.services.deps.presence  # type: ignore[union-attr]

        async def bob_gone() -> bool:
            return not await presence.online([bob_account])

        await until(bob_gone)
        await alice.send_text(conv, f"{MARKER} for bob")
        (push,) = await pushsvc.wait_for(third, 1)
        assert payload.decode(push.plaintext) == conv
        assert MARKER.encode() not in push.plaintext
        await asyncio.sleep(1.0)
        assert pushsvc.of(first) == [] and pushsvc.of(second) == []


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---------------------------------------------------------------------- two nodes


async def test_two_nodes_push_once(
    tmp_path: Path, pg_dsn: str, redis_server: RedisServer, pushsvc: TestPushService
) -> None:
    """Two nodes on one PostgreSQL and one Redis: messages committed on both nodes for an
    account offline everywhere give ONE push; an account online on the other node gets none."""
    base = settings(tmp_path, pg_dsn, pushsvc)
    one = make_settings(
        tmp_path,
        store={"db": pg_dsn},
        limits=FAST,
        consent=CONSENT,
        broker={"url": redis_server.url},
        server={"node_id": "n1"},
        push={**_push_flags(base)},
    )
    two = make_settings(
        tmp_path,
        store={"db": pg_dsn},
        limits=FAST,
        consent=CONSENT,
        broker={"url": redis_server.url},
        server={"node_id": "n2"},
        push={**_push_flags(base)},
    )
    async with run_server(one) as n1, run_server(two) as n2:
        alice, carol = await user(n1.url, "alice"), await user(n2.url, "carol")
        bob = await user(n2.url, "bob")
        g: F.Conv = await alice.request(
            F.CreateConv(id=alice.next_id(), kind="group", title="g", members=[]), F.Conv
        )
        conv = g.info.conv
        for who in (bob, carol):  # invitations (consent defaults), accepted
            await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=who.account))
            ok = await who.request(F.AnswerRequest(id=who.next_id(), conv=conv, answer="accept"))
            assert isinstance(ok, F.Ok), ok
        sub = pushsvc.subscribe()
        await subscribe(bob, sub)
        # bob online on node 2: node 1's commits push nothing (presence in Redis).
        await send(alice, conv, "while you are here")
        await bob.expect(F.Deliver, timeout=10.0)
        await asyncio.sleep(1.5)
        assert pushsvc.requests == []
        await offline(n2, bob)

        async def gone_on_n1() -> bool:
            return not await n1.app.services.deps.presence.online([bob.account])  # type: ignore[union-attr]

        await until(gone_on_n1)
        # Now both nodes commit messages for him, at once.

        async def burst(c: Raw, name: str) -> None:
            for i in range(4):
                await send(c, conv, f"{MARKER} {name}{i}")

        await asyncio.gather(burst(alice, "a"), burst(carol, "c"))
        (push,) = await pushsvc.wait_for(sub, 1)
        await asyncio.sleep(2.0)
        assert len(pushsvc.of(sub)) == 1, pushsvc.requests
        assert MARKER.encode() not in push.plaintext
        assert pushes(n1, "sent") + pushes(n2, "sent") == 1
        assert pushes(n1, "limited") + pushes(n2, "limited") >= 1  # the other node was refused


def _push_flags(s: Any) -> dict[str, Any]:
    p = s.push
    return {
        "vapid_private_key": p.vapid_private_key,
        "subject": p.subject,
        "insecure_endpoints": list(p.insecure_endpoints),
        "coalesce": p.coalesce,
        "interval": p.interval,
    }
