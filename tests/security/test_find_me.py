"""Issue 14.4, being found by handle: ``lookup`` answers only those the target's ``find_me``
setting lets in (SPEC.md 18). Everyone else, and an account the target blocked, gets the very
error an unregistered handle gets, so a hidden account cannot be told from a free handle. Against
a real server at chatd's own consent defaults, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import Raw

DEFAULTS = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
"""chatd's own defaults (tests/conftest.py opens them up for the other suites)."""
FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
"""The per-connection rate limit is not what these tests are about."""


def settings(tmp_path: Path, db: str) -> Any:
    return make_settings(tmp_path, store={"db": db}, limits=FAST, consent=DEFAULTS)


async def user(url: str, handle: str) -> Raw:
    r = await Raw.open(url)
    await r.register(handle)
    return r


async def lookup(c: Raw, handle: str) -> F.Account | F.Error:
    got: F.Account | F.Error = await c.request(F.Lookup(id=c.next_id(), handle=handle))
    return got


async def find_me(c: Raw, value: str) -> None:
    got: F.Privacy = await c.request(F.SetPrivacy(id=c.next_id(), find_me=value), F.Privacy)  # type: ignore[arg-type]
    assert got.find_me == value


def answer(err: F.Account | F.Error, handle: str) -> tuple[Any, str]:
    """The error's code and message with the looked-up handle taken out (the one difference an
    unknown handle's answer may have)."""
    assert isinstance(err, F.Error), err
    return err.code, err.msg.replace(handle, "HANDLE")


async def test_by_default_a_stranger_finds_an_account(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        got = await lookup(alice, "bob")
        assert isinstance(got, F.Account) and got.account == bob.account
        mine: F.Privacy = await bob.request(F.GetPrivacy(id=bob.next_id()), F.Privacy)
        assert mine.find_me == "everyone"
        await alice.close(), await bob.close()


async def test_nobody_looks_exactly_like_a_free_handle_a_thousand_times(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        await find_me(bob, "nobody")
        free = answer(await lookup(alice, "nosuch"), "nosuch")
        assert free[0] == ErrorCode.NOT_FOUND
        for _ in range(1000):
            assert answer(await lookup(alice, "bob"), "bob") == free
        own = await lookup(bob, "bob")  # the account itself always finds itself
        assert isinstance(own, F.Account) and own.account == bob.account
        await find_me(bob, "everyone")
        back = await lookup(alice, "bob")
        assert isinstance(back, F.Account) and back.account == bob.account
        await alice.close(), await bob.close()


async def test_contacts_lets_a_contact_find_and_not_a_stranger(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        carol = await user(server.url, "carol")
        await bob.request(
            F.CreateConv(id=bob.next_id(), kind="direct", members=[alice.account]), F.Conv
        )  # bob messaged alice first: she is his contact
        await find_me(bob, "contacts")
        found = await lookup(alice, "bob")
        assert isinstance(found, F.Account) and found.account == bob.account
        free = answer(await lookup(carol, "nosuch"), "nosuch")
        assert answer(await lookup(carol, "bob"), "bob") == free
        await alice.close(), await bob.close(), await carol.close()


async def test_a_blocked_account_never_finds_its_blocker(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        await bob.request(
            F.CreateConv(id=bob.next_id(), kind="direct", members=[alice.account]), F.Conv
        )
        await bob.request(F.Block(id=bob.next_id(), account=alice.account), F.Ok)
        mine: F.Privacy = await bob.request(F.GetPrivacy(id=bob.next_id()), F.Privacy)
        assert mine.find_me == "everyone"
        free = answer(await lookup(alice, "nosuch"), "nosuch")
        assert answer(await lookup(alice, "bob"), "bob") == free
        still = await lookup(bob, "alice")  # the blocker still finds the one it blocked
        assert isinstance(still, F.Account) and still.account == alice.account
        await bob.request(F.Unblock(id=bob.next_id(), account=alice.account), F.Ok)
        again = await lookup(alice, "bob")
        assert isinstance(again, F.Account) and again.account == bob.account
        await alice.close(), await bob.close()
