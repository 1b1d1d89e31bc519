"""Login by challenge-response: replay refused, device linking needs an existing device."""

from __future__ import annotations

import asyncio

import pytest
from chatproto import auth
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from testkit import Raw
from websockets.exceptions import ConnectionClosed

from chatd.settings import Settings


async def test_login_with_device_key_after_register(server: RunningServer) -> None:
    a = await Raw.open(server.url)
    welcome = await a.register("alice")
    await a.close()
    again = await Raw.open(server.url)
    w = await again.login(welcome.device, a.key)
    assert (w.account, w.device, w.handle) == (welcome.account, welcome.device, "alice")
    await again.close()


async def test_captured_login_replayed_on_another_connection_fails(server: RunningServer) -> None:
    a = await Raw.open(server.url)
    welcome = await a.register("alice")
    await a.close()
    victim = await Raw.open(server.url)
    captured = F.Login(id=1, device=welcome.device, sig=victim.login_sig(a.key))
    attacker = await Raw.open(server.url)  # another connection: another nonce
    err = await attacker.request(captured, F.Error)
    assert err.code == ErrorCode.AUTH_FAILED
    ok = await victim.request(captured, F.Welcome)  # on its own connection it works, once
    assert ok.device == welcome.device
    again = await victim.request(F.Login(id=2, device=welcome.device, sig=captured.sig), F.Error)
    assert again.code == ErrorCode.ALREADY_AUTHENTICATED
    for r in (victim, attacker):
        await r.close()


async def test_signature_for_another_server_name_is_refused(server: RunningServer) -> None:
    a = await Raw.open(server.url)
    key = SigningKey.generate()
    sig = key.sign(auth.login_payload("evil.example", a.challenge.nonce, key.public_key))
    err = await a.request(
        F.Register(
            id=1, handle="mallory", name="M", device_key=key.public_key, device_name="x", sig=sig
        ),
        F.Error,
    )
    assert err.code == ErrorCode.AUTH_FAILED
    await a.close()


async def test_handle_is_unique(server: RunningServer) -> None:
    a = await Raw.open(server.url)
    await a.register("alice")
    b = await Raw.open(server.url)
    with pytest.raises(AssertionError, match=r"code=12"):
        await b.register("alice")
    await a.close()
    await b.close()


async def test_linking_a_device_needs_an_existing_devices_signature(server: RunningServer) -> None:
    a = await Raw.open(server.url)
    w = await a.register("alice")
    new_key = SigningKey.generate()
    n = await Raw.open(server.url)
    n.key = new_key
    forged = new_key.sign(
        auth.device_approval_payload(n.challenge.server, w.account, new_key.public_key)
    )
    bad = await n.request(
        F.LinkDevice(
            id=1,
            handle="alice",
            device_key=new_key.public_key,
            device_name="phone",
            approver=w.device,
            approval=forged,
            sig=n.login_sig(),
        ),
        F.Error,
    )
    assert bad.code == ErrorCode.AUTH_FAILED
    approval = a.key.sign(
        auth.device_approval_payload(n.challenge.server, w.account, new_key.public_key)
    )
    ok = await n.request(
        F.LinkDevice(
            id=2,
            handle="alice",
            device_key=new_key.public_key,
            device_name="phone",
            approver=w.device,
            approval=approval,
            sig=n.login_sig(),
        ),
        F.Welcome,
    )
    assert ok.account == w.account
    assert ok.device != w.device
    await a.close()
    await n.close()


async def test_frames_before_login_get_auth_required_and_connection_stays(
    server: RunningServer,
) -> None:
    a = await Raw.open(server.url)
    err = await a.request(F.ListConvs(id=7), F.Error)
    assert (err.re, err.code) == (7, ErrorCode.AUTH_REQUIRED)
    await a.register("alice")  # the same connection still works
    convs = await a.request(F.ListConvs(id=a.next_id()), F.Convs)
    assert convs.convs == []
    await a.close()


async def test_three_failed_logins_close_the_connection_with_policy_code(
    server: RunningServer,
) -> None:
    a = await Raw.open(server.url)
    for i in range(3):
        await a.send_frame(F.Login(id=i + 1, device=999, sig=b"\x00" * 64))
    assert await a.until_closed() == 1008


async def test_connection_that_never_authenticates_is_closed_at_the_deadline(
    tmp_path: object,
) -> None:
    settings: Settings = make_settings(tmp_path, limits={"auth_timeout": 0.3})  # type: ignore[arg-type]
    async with run_server(settings) as srv:
        a = await Raw.open(srv.url)
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionClosed):
            await a.recv(timeout=5)
        assert a.ws.close_code == 1008
        assert asyncio.get_running_loop().time() - started < 3
