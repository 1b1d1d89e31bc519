"""Reports of end-to-end encrypted messages, verified by message franking (issue 14.3,
SPEC.md 18.7, E2E.md 17), against a real server on SQLite and PostgreSQL with the consent
defaults.

The clients here are raw: the ``e2e`` body stands for the sender-key ciphertext (the server
never reads it); the franking key and plaintext stay on the clients until a report reveals
them. A true report verifies and names its sender; every forgery (another plaintext, another
key, another seq or conversation, a message never sent) is refused with ``REPORT_REFUSED``
and stores nothing; a stranger gets ``NOT_FOUND``; the operator lists and resolves reports."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from pathlib import Path
from typing import Any

from chatclient import Client, Message
from chatclient.errors import ChatClientError
from chatclient.events import Undecryptable
from chatproto import frames as F
from chatproto import franking, kinds
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import Raw

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
CONSENT = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
"""The server's defaults, written out (the suite's settings open them up otherwise)."""


def settings(tmp_path: Path, db: str) -> Any:
    return make_settings(tmp_path, store={"db": db}, limits=FAST, consent=CONSENT)


_cmids = itertools.count(1)


async def user(url: str, handle: str) -> Raw:
    r = await Raw.open(url)
    await r.register(handle)
    return r


async def direct(a: Raw, b: Raw) -> int:
    """A direct conversation of ``a`` and ``b``, accepted by ``b`` (the consent defaults)."""
    conv: F.Conv = await a.request(
        F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]), F.Conv
    )
    hello = kinds.encode_content(kinds.Text(text="hello"))[1]
    await a.request(
        F.Send(id=a.next_id(), conv=conv.info.conv, cmid="hi", kind="text", body=hello), F.Ack
    )
    ok = await b.request(F.AnswerRequest(id=b.next_id(), conv=conv.info.conv, answer="accept"))
    assert not isinstance(ok, F.Error), ok
    return conv.info.conv


def plaintext(text: str) -> bytes:
    return franking.encode_plaintext("text", kinds.encode_content(kinds.Text(text=text))[1])


async def send_franked(c: Raw, conv: int, pt: bytes, key: bytes) -> F.Ack:
    """Send an ``e2e`` message whose (stand-in) ciphertext hides ``pt`` and ``key``."""
    ack: F.Ack = await c.request(
        F.Send(
            id=c.next_id(),
            conv=conv,
            cmid=f"f{next(_cmids)}",
            kind="e2e",
            body=os.urandom(96),
            fc=franking.commit(key, pt),
        ),
        F.Ack,
    )
    return ack


async def report(c: Raw, conv: int, seq: int, pt: bytes, key: bytes) -> F.ServerFrame:
    reply: F.ServerFrame = await c.request(
        F.Report(id=c.next_id(), conv=conv, seq=seq, plaintext=pt, fk=key, reason="abuse")
    )
    return reply


def refused(reply: F.ServerFrame) -> bool:
    return isinstance(reply, F.Error) and reply.code == ErrorCode.REPORT_REFUSED


async def admin(db: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatd",
        "admin",
        "reports",
        *args,
        "--db",
        db,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_a_true_report_verifies_and_forgeries_are_refused(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, carol = [await user(server.url, h) for h in ("alice", "bob", "carol")]
        conv = await direct(alice, bob)
        other = await direct(carol, bob)
        pt, key = plaintext("send me your password"), franking.new_key()
        sent = await send_franked(alice, conv, pt, key)
        mine = await send_franked(bob, conv, plaintext("no"), franking.new_key())
        unfranked: F.Ack = await alice.request(
            F.Send(id=alice.next_id(), conv=conv, cmid="plain", kind="e2e", body=b"\x01ct"),
            F.Ack,
        )

        # Forgeries first: none of them is stored (the operator sees only the true report).
        assert refused(await report(bob, conv, sent.seq, plaintext("send me money"), key))
        assert refused(await report(bob, conv, sent.seq, pt, franking.new_key()))
        assert refused(await report(bob, conv, mine.seq, pt, key))  # another seq (and sender)
        assert refused(await report(bob, other, sent.seq, pt, key))  # another conversation
        assert refused(await report(bob, conv, unfranked.seq, pt, key))  # sent without franking
        assert refused(await report(bob, conv, sent.seq + 100, pt, key))  # never sent
        # A stranger to the conversation cannot report in it: NOT_FOUND, as for no conversation.
        stranger = await report(carol, conv, sent.seq, pt, key)
        assert isinstance(stranger, F.Error) and stranger.code == ErrorCode.NOT_FOUND, stranger

        true = await report(bob, conv, sent.seq, pt, key)
        assert isinstance(true, F.Reported), true
        assert true.sender == alice.account
        # Bob resending alice's commitment as his own is attributed to bob, never to alice.
        copied = await send_franked(bob, conv, pt, key)
        assert (await report(alice, conv, copied.seq, pt, key)).sender == bob.account  # type: ignore[union-attr]

        code, out = await admin(db)
        assert code == 0, out
        assert out.count("#") == 2, out
        assert f"#{true.report} conv {conv} seq {sent.seq} sender {alice.account}" in out
        assert "'send me your password'" in out and "send me money" not in out
        code, out = await admin(db, "resolve", str(true.report), "--note", "warned")
        assert code == 0 and f"resolved report {true.report}" in out, out
        code, out = await admin(db)
        assert f"#{true.report} " not in out
        code, out = await admin(db, "--all")
        assert "resolved: warned" in out
        code, out = await admin(db, "resolve", str(true.report))
        assert code == 1 and "no open report" in out
        for r in (alice, bob, carol):
            await r.close()


def _database_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("chatd.db"))


async def test_the_store_holds_no_plaintext_of_unreported_messages(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    secret_text, reported_text = "the unreported plaintext 7f3a9c", "the reported plaintext 51be"
    pt, key = plaintext(secret_text), franking.new_key()
    async with run_server(settings(tmp_path, str(path))) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        conv = await direct(alice, bob)
        await send_franked(alice, conv, pt, key)
        other_pt, other_key = plaintext(reported_text), franking.new_key()
        sent = await send_franked(alice, conv, other_pt, other_key)
        assert isinstance(await report(bob, conv, sent.seq, other_pt, other_key), F.Reported)
        for r in (alice, bob):
            await r.close()
    stored = await asyncio.to_thread(_database_bytes, tmp_path)
    # The scan sees what is stored: the reported plaintext is (for the operator).
    assert reported_text.encode() in stored
    # Of the unreported message, neither the plaintext nor the franking key is stored; its
    # commitment is (receivers check it, SPEC.md 18.7), and it reveals nothing without the key.
    for needle in (secret_text.encode(), key):
        assert needle not in stored
    assert franking.commit(key, pt) in stored


async def _received(c: Client, conv: int, text: str, timeout: float = 10.0) -> Message:
    """The ``Message`` event of ``text`` in ``conv`` at ``c`` (other events are dropped)."""
    async with asyncio.timeout(timeout):
        async for ev in c.events():
            if isinstance(ev, Message) and ev.conv == conv and ev.body and ev.kind == "text":
                content = ev.content
                if isinstance(content, kinds.Text) and content.text == text:
                    return ev
    raise AssertionError("the event stream ended")


async def test_the_sdk_franks_what_it_sends_and_reports_what_it_received(
    db: str, tmp_path: Path
) -> None:
    async with (
        run_server(settings(tmp_path, db)) as server,
        Client(server.url) as alice,
        Client(server.url) as bob,
    ):
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        conv = await alice.direct(bob.account)
        await alice.send_text(conv, "hello bob")
        await _received(bob, conv, "hello bob")  # a request's first message still arrives
        await bob.contacts.accept(conv)
        ack = await alice.send_text(conv, "a threat")
        got = await _received(bob, conv, "a threat")
        assert got.seq == ack.seq and got.sender == alice.account

        reported = await bob.report(conv, ack.seq, "threat")
        assert reported.sender == alice.account
        code, out = await admin(db)
        assert code == 0 and f"seq {ack.seq} sender {alice.account}" in out, out
        assert "text: 'a threat'" in out


async def test_a_banned_member_cannot_come_back_until_unbanned(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, dave = [await user(server.url, h) for h in ("alice", "bob", "dave")]
        await direct(alice, bob)  # bob accepted alice: she may add him directly
        group: F.Conv = await alice.request(
            F.CreateConv(id=alice.next_id(), kind="group", title="club", members=[bob.account]),
            F.Conv,
        )
        conv = group.info.conv
        # dave is a stranger: he gets an invitation, and accepts it.
        await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=dave.account), F.Ok)
        await dave.request(F.AnswerRequest(id=dave.next_id(), conv=conv, answer="accept"), F.Ok)
        for banned in (bob, dave):
            await alice.request(
                F.Remove(id=alice.next_id(), conv=conv, account=banned.account, ban=True), F.Ok
            )
            again = await alice.request(
                F.Invite(id=alice.next_id(), conv=conv, account=banned.account)
            )
            assert isinstance(again, F.Error) and again.code == ErrorCode.FORBIDDEN, again
            body = kinds.encode_content(kinds.Text(text="let me in"))[1]
            sent = await banned.request(
                F.Send(id=banned.next_id(), conv=conv, cmid="back", kind="text", body=body)
            )
            assert isinstance(sent, F.Error) and sent.code == ErrorCode.NOT_FOUND, sent
            # Not an admin of it (not even a member): cannot lift its own ban.
            own = await banned.request(
                F.Unban(id=banned.next_id(), conv=conv, account=banned.account)
            )
            assert isinstance(own, F.Error), own
        await alice.request(F.Unban(id=alice.next_id(), conv=conv, account=bob.account), F.Ok)
        await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=bob.account), F.Ok)
        members: F.Members = await alice.request(
            F.ListMembers(id=alice.next_id(), conv=conv), F.Members
        )
        assert {m.account for m in members.members} == {alice.account, bob.account}
        for r in (alice, bob, dave):
            await r.close()


async def _event_at(c: Client, conv: int, seq: int, timeout: float = 10.0) -> Any:
    """The ``Message`` or ``Undecryptable`` event of message ``seq`` of ``conv`` at ``c``."""
    async with asyncio.timeout(timeout):
        async for ev in c.events():
            if isinstance(ev, Message | Undecryptable) and ev.conv == conv and ev.seq == seq:
                return ev
    raise AssertionError("the event stream ended")


async def test_a_receiver_refuses_a_message_whose_commitment_does_not_open(
    db: str, tmp_path: Path
) -> None:
    """E2E.md 17: ``deliver`` carries ``fc`` and the SDK shows a franked message only when its
    franking key opens it. A sender that sends a wrong commitment (or none) beside a franking
    key would make its message unreportable: the receiver refuses to show it instead, live and
    from history; an honest message after it is shown, carries ``fc`` and its report verifies."""
    async with (
        run_server(settings(tmp_path, db)) as server,
        Client(server.url) as alice,
        Client(server.url) as bob,
    ):
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        conv = await alice.direct(bob.account)
        await alice.send_text(conv, "hello bob")
        await _received(bob, conv, "hello bob")
        await bob.contacts.accept(conv)

        # Alice's client turns malicious: the commitment it sends is not the one it franked.
        core = alice._conn.core
        honest = core.prepare
        forged: list[bytes | None] = [os.urandom(32), None]

        def prepare(cmid: str, kind: str, body: bytes, to: Any, fc: bytes | None) -> Any:
            return honest(cmid, kind, body, to, forged.pop(0) if forged else fc)

        core.prepare = prepare  # type: ignore[method-assign]
        for text in ("an unreportable threat", "another one, without fc"):
            ack = await alice.send_text(conv, text)
            got = await _event_at(bob, conv, ack.seq)
            assert isinstance(got, Undecryptable), got
            assert "franking commitment" in got.reason
            # Not shown from history either, and not reportable.
            again = await bob.message(conv, ack.seq)
            assert isinstance(again, Undecryptable), again
            try:
                await bob.report(conv, ack.seq, "threat")
            except ChatClientError as exc:  # nothing was shown: nothing to report
                assert "cannot be reported" in str(exc), exc
            else:
                raise AssertionError("a message never shown was reported")
        assert not forged

        ack = await alice.send_text(conv, "an honest threat")
        got = await _event_at(bob, conv, ack.seq)
        assert isinstance(got, Message) and got.text == "an honest threat", got
        assert got.fc is not None and len(got.fc) == 32
        reported = await bob.report(conv, ack.seq, "threat")
        assert reported.sender == alice.account
