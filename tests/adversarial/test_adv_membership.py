"""A malicious server against verified membership (E2E.md 15): a real chatd whose database the
test rewrites from inside (through its own writer, so seqs stay gapless) and whose routing it
uses, as an operator who controls the server would. The clients are the real SDK. Each test
shows what the attacker tried, what the clients did (refused, warned, kept encrypting to the
signed members only), and, with a marker scan, that the attacker's accounts and the server's
files never held a plaintext.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from botkit import Inbox
from chatclient import Client, KeyStore, Message
from chatclient.e2e import NS_OUT
from chatclient.errors import RequestError
from chatclient.events import Event, MembershipChanged, SecurityWarning, Undecryptable
from chatclient.members import UnverifiedMembership
from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e import membership as ML
from chatproto.e2e.payload import E2E_KIND
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode
from conftest import RunningServer

from chatd.services.conversations import ConversationService
from chatd.session import Services
from chatd.store.base import MembershipChange
from chatd.store.sqlite import SQLiteStore, _Tx

MARKER = "MARKER-adv-membership-51c2"


# ---------------------------------------------------------------------- the attacker's tools


def services(server: RunningServer) -> Services:
    assert server.app.services is not None
    return server.app.services


def store(server: RunningServer) -> SQLiteStore:
    s = services(server).deps.store
    assert isinstance(s, SQLiteStore)
    return s


async def tamper(
    server: RunningServer, fn: Callable[[_Tx], MembershipChange | None]
) -> MembershipChange | None:
    """Run ``fn`` in the server's own write transaction, then route and publish what it says
    changed, exactly as a real membership change is (the attacker controls the server)."""
    change = await store(server)._write(fn)
    if change is not None:
        await ConversationService._apply(services(server).conversations, change)
    return change


def add_member(
    conv: int,
    account: int,
    *,
    actor: int,
    entry: tuple[bytes, bytes] = (b"", b""),
    log: bool = True,
) -> Callable[[_Tx], MembershipChange | None]:
    """A member row for ``account`` and a ``joined`` message, signed by nobody unless
    ``entry`` (body, sig) is given; with ``log``, the entry is stored in the log too."""

    def op(tx: _Tx) -> MembershipChange | None:
        body, sig = entry
        m = tx.system_message(
            conv,
            1,
            kinds.SystemEvent(event="joined", actor=actor, account=account, entry=body, sig=sig),
        )
        if body and log:
            e = ML.decode_entry(body)
            tx.db.execute(
                "INSERT INTO member_log (conv_id, epoch, seq, hash, group_id, body, sig)"
                " VALUES (?,?,?,?,?,?,?)",
                (conv, e.epoch, m.seq, ML.entry_hash(body, sig), e.group, body, sig),
            )
        tx.db.execute(
            "INSERT INTO members (conv_id, account_id, role, joined_seq, access)"
            " VALUES (?,?,?,?,?)",
            (conv, account, "member", m.seq, "all"),
        )
        return MembershipChange(conv, m, added=(account,))

    return op


def warnings_of(conv: int) -> Callable[[Event], bool]:
    return lambda ev: isinstance(ev, SecurityWarning) and ev.conv == conv


def text(conv: int, body: str) -> Callable[[Event], bool]:
    return lambda ev: isinstance(ev, Message) and ev.conv == conv and ev.text == body


def recipients(client: Client, conv: int) -> set[int]:
    """The devices this client gave its current (main) sender key for ``conv``."""
    raw = client.keystore.get(NS_OUT, str(conv))
    assert raw is not None
    return {device for _, device in msgspec.msgpack.decode(raw)["holders"]}


def no_marker(*blobs: bytes) -> None:
    for blob in blobs:
        assert MARKER.encode() not in blob


def keystore_bytes(client: Client) -> bytes:
    return b"".join(
        k.encode() + v
        for ns in ("e2e.plain", "e2e.in", "e2e.out")
        for k, v in client.keystore.items(ns)
    )


def server_files(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("chatd.db*")))


async def mallory_sends(mallory: Client, conv: int, members: list[int], body: str) -> F.Ack:
    """What a modified client does: encrypt to whatever members it likes, send as ``e2e``."""
    sealed = await mallory.e2e.encrypt(
        conv, "text", kinds.encode_content(kinds.Text(text=body))[1], members
    )
    return await mallory.send_raw(conv, E2E_KIND, sealed)


@contextlib.asynccontextmanager
async def users(url: str, *handles: str) -> Any:
    async with contextlib.AsyncExitStack() as stack:
        out = []
        for h in handles:
            c = await stack.enter_async_context(Client(url, KeyStore.memory()))
            await c.register(h, h.title())
            out.append(c)
        yield out


# ---------------------------------------------------------------------- attacks


async def test_ghost_member_in_a_group_gets_no_key_and_is_reported(
    server: RunningServer, tmp_path: Path
) -> None:
    async with users(server.url, "alice", "bob", "mallory") as (alice, bob, mallory):
        conv = (await alice.create("group", "g", [bob.account])).conv
        ia, ib, im = Inbox(alice), Inbox(bob), Inbox(mallory)
        await alice.send_text(conv, "before")
        await ib.one(text(conv, "before"))
        # The server adds mallory: a member row and a "joined" message nobody signed.
        await tamper(server, add_member(conv, mallory.account, actor=alice.account))
        assert mallory.account in {m.account for m in (await alice.conversation(conv)).members}
        w = await ia.one(warnings_of(conv))
        assert "no member signed" in w.reason
        await ib.one(warnings_of(conv))
        await alice.send_text(conv, f"secret {MARKER}")
        await ib.one(text(conv, f"secret {MARKER}"))
        # Mallory's device was given nothing; what it received does not open.
        assert mallory.device not in recipients(alice, conv)
        got = await im.one(lambda ev: isinstance(ev, Undecryptable) and ev.conv == conv, timeout=15)
        assert got.sender == alice.account
        # Mallory, with a modified client, sends to the group: refused as a non-member's.
        await mallory_sends(mallory, conv, [alice.account, bob.account, mallory.account], "hi")
        bad = await ib.one(
            lambda ev: isinstance(ev, Undecryptable) and ev.sender == mallory.account
        )
        assert "not a verified member" in bad.reason
        await ib.one(lambda ev: isinstance(ev, SecurityWarning) and ev.account == mallory.account)
        no_marker(keystore_bytes(mallory), *(repr(e).encode() for e in im.pending))
        no_marker(server_files(tmp_path))


async def test_third_member_in_a_direct_conversation_is_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    async with users(server.url, "alice", "bob", "mallory") as (alice, bob, mallory):
        conv = await alice.direct(bob.account)
        ia, ib, im = Inbox(alice), Inbox(bob), Inbox(mallory)
        await alice.send_text(conv, "hello")
        await ib.one(text(conv, "hello"))
        # A signed entry adding mallory (alice's own device key, stolen by nobody: the server
        # cannot make one, so the strongest attacker here is a member's device) is refused too.
        state = alice.members.state(conv)
        assert state is not None and state.kind == "direct"
        entry = ML.Entry(
            group=state.group,
            epoch=2,
            prev=state.head,
            actor=alice.account,
            device=alice.device,
            op="add",
            account=mallory.account,
        )
        body, sig = ML.sign_entry(entry, alice.keystore.seed)
        await tamper(
            server,
            add_member(conv, mallory.account, actor=alice.account, entry=(body, sig), log=False),
        )
        w = await ib.one(warnings_of(conv))
        assert "fixed at creation" in w.reason
        await bob.send_text(conv, f"for alice {MARKER}")
        await ia.one(text(conv, f"for alice {MARKER}"))
        assert mallory.device not in recipients(bob, conv)
        assert (await bob.members.verified(conv))[0].accounts == tuple(
            sorted((alice.account, bob.account))
        )
        await im.one(lambda ev: isinstance(ev, Undecryptable) and ev.conv == conv, timeout=15)
        no_marker(keystore_bytes(mallory), *(repr(e).encode() for e in im.pending))
        no_marker(server_files(tmp_path))


async def test_forged_removal_is_ignored_and_reported(server: RunningServer) -> None:
    async with users(server.url, "alice", "bob", "carol") as (alice, bob, carol):
        conv = (await alice.create("group", "g", [bob.account, carol.account])).conv
        ia, ic = Inbox(alice), Inbox(carol)
        await alice.send_text(conv, "one")
        await ic.one(text(conv, "one"))

        def forged_remove(tx: _Tx) -> MembershipChange:
            m = tx.system_message(
                conv,
                1,
                kinds.SystemEvent(event="removed", actor=alice.account, account=carol.account),
            )
            tx.db.execute(
                "DELETE FROM members WHERE conv_id=? AND account_id=?", (conv, carol.account)
            )
            return MembershipChange(conv, m, removed=(carol.account,))

        await tamper(server, forged_remove)
        w = await ia.one(warnings_of(conv))
        assert "no member signed" in w.reason
        await ia.quiet(lambda ev: isinstance(ev, MembershipChanged) and ev.op == "remove")
        # Carol stays a verified member: the next key still goes to her device (the server can
        # withhold the messages from her, not decide who may read them).
        await alice.send_text(conv, "two")
        assert carol.device in recipients(alice, conv)
        state = alice.members.state(conv)
        assert state is not None and carol.account in state.accounts


async def test_entry_signed_without_the_right_role_is_refused(server: RunningServer) -> None:
    async with users(server.url, "alice", "bob", "mallory") as (alice, bob, mallory):
        conv = (await alice.create("group", "g", [bob.account])).conv
        ia = Inbox(alice)
        state = alice.members.state(conv)
        assert state is not None
        # Bob is a plain member: his device signs an add (the server colludes and stores it).
        entry = ML.Entry(
            group=state.group,
            epoch=2,
            prev=state.head,
            actor=bob.account,
            device=bob.device,
            op="add",
            account=mallory.account,
        )
        body, sig = ML.sign_entry(entry, bob.keystore.seed)
        await tamper(
            server, add_member(conv, mallory.account, actor=bob.account, entry=(body, sig))
        )
        w = await ia.one(warnings_of(conv))
        assert "owner or an admin" in w.reason
        with pytest.raises(UnverifiedMembership):
            await alice.members.verified(conv)  # the stored log does not replay either
        with pytest.raises(UnverifiedMembership):
            await alice.send_text(conv, "not sent: the log does not verify")
        assert alice.members.state(conv) == state


async def test_replayed_or_altered_entry_is_refused(server: RunningServer) -> None:
    async with users(server.url, "alice", "bob", "carol", "dave") as (alice, bob, carol, dave):
        conv = (await alice.create("group", "g", [bob.account])).conv
        await alice.invite(conv, carol.account)
        log = await alice._call(F.GetMemberLog(id=alice._next_id(), conv=conv), F.MemberLog)
        assert [e.epoch for e in log.entries] == [1, 2]
        # The add replayed as the next entry: it does not follow the head.
        state = alice.members.state(conv)
        assert state is not None and state.epoch == 2
        again = log.entries[1]
        with pytest.raises(ML.MembershipError, match="does not follow"):
            ML.apply(state, ML.decode_entry(again.body), again.body, again.sig, 99)
        # One byte of the stored first entry rewritten: a member who verifies the log from the
        # start (dave, added after it) refuses it, and so refuses to send.
        first = log.entries[0]
        altered = first.body[:-1] + bytes([first.body[-1] ^ 1])

        def rewrite(tx: _Tx) -> None:
            tx.db.execute(
                "UPDATE member_log SET body=? WHERE conv_id=? AND epoch=1", (altered, conv)
            )

        await tamper(server, rewrite)
        await alice.invite(conv, dave.account)  # alice verified entry 1 before: not again
        with pytest.raises(UnverifiedMembership):
            await dave.members.verified(conv)
        with pytest.raises(UnverifiedMembership):
            await dave.send_text(conv, "not sent: the log does not verify")


async def test_server_refuses_entries_it_can_check(server: RunningServer) -> None:
    async with users(server.url, "alice", "bob", "carol") as (alice, bob, carol):
        conv = (await alice.create("group", "g", [bob.account])).conv
        state = alice.members.state(conv)
        assert state is not None
        entry = ML.next_entry(state, alice.account, alice.device, "add", account=carol.account)
        body, good = ML.sign_entry(entry, alice.keystore.seed)
        _, other = ML.sign_entry(entry, SigningKey.generate().seed)
        cases = [
            (F.SignedEntry(body=body, sig=other), ErrorCode.INVALID),  # not this device's key
            (None, ErrorCode.INVALID),  # unsigned change of a signed conversation
        ]
        for signed, code in cases:
            with pytest.raises(RequestError) as info:
                await alice._call(
                    F.Invite(id=alice._next_id(), conv=conv, account=carol.account, entry=signed),
                    F.Ok,
                )
            assert info.value.code == code, info.value
        # Another change than the request names (remove for an invite).
        wrong = ML.Entry(
            group=state.group,
            epoch=2,
            prev=state.head,
            actor=alice.account,
            device=alice.device,
            op="remove",
            account=bob.account,
        )
        wbody, wsig = ML.sign_entry(wrong, alice.keystore.seed)
        with pytest.raises(RequestError) as info:
            await alice._call(
                F.Invite(
                    id=alice._next_id(),
                    conv=conv,
                    account=carol.account,
                    entry=F.SignedEntry(body=wbody, sig=wsig),
                ),
                F.Ok,
            )
        assert info.value.code == ErrorCode.INVALID
        # A stale head: bob's role change lands first, the add signed before it conflicts.
        await alice.set_role(conv, bob.account, "admin")
        with pytest.raises(RequestError) as info:
            await alice._call(
                F.Invite(
                    id=alice._next_id(),
                    conv=conv,
                    account=carol.account,
                    entry=F.SignedEntry(body=body, sig=good),
                ),
                F.Ok,
            )
        assert info.value.code == ErrorCode.CONFLICT
        # And the SDK signs on the fresh head by itself.
        await alice.invite(conv, carol.account)
        assert (await carol.members.verified(conv))[0].accounts == tuple(
            sorted((alice.account, bob.account, carol.account))
        )
