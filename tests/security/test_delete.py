"""Deleting a message for everyone (issue 14.3, SPEC.md 18.9) against a real server on SQLite and
PostgreSQL with the consent defaults.

What must hold: the body is gone from the database (the SQLite file's bytes; PostgreSQL's table),
the seq stays (no hole for sync or fetch), every member is told; only the sender, the owner or an
admin may (an admin not the owner's or another admin's), whatever a member tries a thousand
times; a stranger gets the NOT_FOUND of a missing conversation; a removed admin cannot delete,
even with the removal racing the delete; a report of the message, filed before or after, still
verifies. The clients are raw: an ``e2e`` body stands for the ciphertext."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path
from typing import Any

import asyncpg
from chatproto import frames as F
from chatproto import franking, kinds
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import Raw

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
CONSENT = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
"""The server's defaults, written out (the suite's settings open them up otherwise)."""

_cmids = itertools.count(1)


def settings(tmp_path: Path, db: str) -> Any:
    return make_settings(tmp_path, store={"db": db}, limits=FAST, consent=CONSENT)


async def user(url: str, handle: str) -> Raw:
    r = await Raw.open(url)
    await r.register(handle)
    return r


async def befriend(owner: Raw, other: Raw) -> None:
    """``other`` accepts ``owner``'s direct conversation: ``owner`` may then add it directly."""
    conv: F.Conv = await owner.request(
        F.CreateConv(id=owner.next_id(), kind="direct", members=[other.account]), F.Conv
    )
    await send(owner, conv.info.conv, b"hi")
    await other.request(
        F.AnswerRequest(id=other.next_id(), conv=conv.info.conv, answer="accept"), F.Ok
    )


async def group(owner: Raw, members: list[Raw], admins: tuple[Raw, ...] = ()) -> int:
    for m in members:
        await befriend(owner, m)
    made: F.Conv = await owner.request(
        F.CreateConv(
            id=owner.next_id(), kind="group", title="club", members=[m.account for m in members]
        ),
        F.Conv,
    )
    conv = made.info.conv
    assert made.info.member_count == len(members) + 1
    for a in admins:
        await owner.request(
            F.SetRole(id=owner.next_id(), conv=conv, account=a.account, role="admin"), F.Ok
        )
    return conv


async def send(c: Raw, conv: int, body: bytes, fc: bytes | None = None) -> F.Ack:
    ack: F.Ack = await c.request(
        F.Send(id=c.next_id(), conv=conv, cmid=f"m{next(_cmids)}", kind="e2e", body=body, fc=fc),
        F.Ack,
    )
    return ack


async def delete(c: Raw, conv: int, seq: int) -> F.ServerFrame:
    reply: F.ServerFrame = await c.request(F.DeleteMessage(id=c.next_id(), conv=conv, seq=seq))
    return reply


def code(reply: F.ServerFrame) -> int:
    """The error code of ``reply`` (0: ``ok``)."""
    if isinstance(reply, F.Ok):
        return 0
    assert isinstance(reply, F.Error), reply
    return int(reply.code)


async def history(c: Raw, conv: int) -> list[F.Message]:
    page: F.Messages = await c.request(F.Fetch(id=c.next_id(), conv=conv, limit=500), F.Messages)
    return page.messages


async def told(r: Raw, conv: int, target: int) -> kinds.SystemEvent:
    """The ``deleted`` system message of ``target`` as ``r`` receives it live."""
    async with asyncio.timeout(10):
        while True:
            m = await r.expect(F.Deliver, conv=conv)
            if m.kind == "system":
                event = kinds.decode_content("system", m.body)
                assert isinstance(event, kinds.SystemEvent)
                if event.event == "deleted" and event.target == target:
                    return event


def plaintext(text: str) -> bytes:
    return franking.encode_plaintext("text", kinds.encode_content(kinds.Text(text=text))[1])


def _database_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("chatd.db"))


async def test_an_admin_deletes_for_everyone_and_the_body_is_gone(db: str, tmp_path: Path) -> None:
    # Bodies that fit in a page and bodies that spill over to overflow pages, both erased.
    small, large = os.urandom(200), os.urandom(20_000)
    pt, key = plaintext("a threat to report"), franking.new_key()
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, carol, dave = [await user(server.url, h) for h in ("ann", "bob", "cat", "dan")]
        conv = await group(alice, [bob, carol, dave], admins=(bob,))
        kept = await send(carol, conv, os.urandom(64))
        sent = [await send(carol, conv, body, franking.commit(key, pt)) for body in (small, large)]
        # A report filed before the deletion keeps what it revealed.
        early = await dave.request(
            F.Report(id=dave.next_id(), conv=conv, seq=sent[0].seq, plaintext=pt, fk=key),
            F.Reported,
        )
        for m in sent:
            assert code(await delete(bob, conv, m.seq)) == 0
        # Every member is told, the deleter's own connection first (before its ok).
        for r in (alice, bob, carol, dave):
            for m in sent:
                event = await told(r, conv, m.seq)
                assert (event.actor, event.account) == (bob.account, carol.account)
        # History and sync return the tombstone in the same seq: no hole, no body.
        rows = await history(dave, conv)
        seqs = [m.seq for m in rows]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        by_seq = {m.seq: m for m in rows}
        for m in sent:
            tomb = by_seq[m.seq]
            assert (tomb.kind, tomb.sender, tomb.ts) == ("deleted", carol.account, m.ts)
            gone = kinds.decode_content("deleted", tomb.body)
            assert isinstance(gone, kinds.Deleted) and gone.by == bob.account and gone.at > 0
            assert tomb.fc == franking.commit(key, pt)  # still reportable
        assert by_seq[kept.seq].kind == "e2e"
        synced = await dave.request(F.Sync(id=dave.next_id(), conv=conv, after=sent[0].seq - 1))
        replayed = await dave.expect(F.Deliver, conv=conv, seq=sent[0].seq)
        assert replayed.kind == "deleted" and replayed.body == by_seq[sent[0].seq].body
        assert not isinstance(synced, F.Error)
        # A second deletion changes nothing and tells nobody again.
        last = rows[-1].seq
        assert code(await delete(alice, conv, sent[0].seq)) == 0
        assert (await history(dave, conv))[-1].seq == last
        # A report after the deletion still verifies (the commitment outlives the body), and
        # the one filed before is unchanged.
        late = await alice.request(
            F.Report(id=alice.next_id(), conv=conv, seq=sent[1].seq, plaintext=pt, fk=key),
            F.Reported,
        )
        assert late.sender == carol.account and early.sender == carol.account
        if not db.endswith(".db"):
            conn = await asyncpg.connect(db)
            try:
                for body in (small, large):
                    found = await conn.fetchval(
                        "SELECT count(*) FROM messages WHERE position($1::bytea in body) > 0",
                        body[:64],
                    )
                    assert found == 0
                reports = await conn.fetchval("SELECT count(*) FROM reports")
                assert reports == 2
            finally:
                await conn.close()
        for r in (alice, bob, carol, dave):
            await r.close()
    if db.endswith(".db"):
        stored = await asyncio.to_thread(_database_bytes, tmp_path)
        assert small[:64] not in stored and small[-64:] not in stored
        for i in range(0, len(large) - 64, 4096):
            assert large[i : i + 64] not in stored
        assert pt in stored  # the reports' evidence (the scan does see what is stored)


async def test_who_may_delete(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, ben, carol, dave, eve = [
            await user(server.url, h) for h in ("ann", "bob", "ben", "cat", "dan", "eve")
        ]
        conv = await group(alice, [bob, ben, carol, dave], admins=(bob, ben))
        own, by_bob, by_ben, by_carol, by_dave = [
            await send(r, conv, os.urandom(32)) for r in (alice, bob, ben, carol, dave)
        ]
        forbidden = int(ErrorCode.FORBIDDEN)
        assert code(await delete(carol, conv, by_dave.seq)) == forbidden  # a member: not others'
        assert code(await delete(carol, conv, own.seq)) == forbidden
        assert code(await delete(bob, conv, own.seq)) == forbidden  # an admin: not the owner's
        assert code(await delete(bob, conv, by_ben.seq)) == forbidden  # nor another admin's
        assert code(await delete(carol, conv, by_carol.seq)) == 0  # the sender: its own
        assert code(await delete(bob, conv, by_dave.seq)) == 0  # an admin: a member's
        assert code(await delete(alice, conv, by_ben.seq)) == 0  # the owner: anyone's
        assert code(await delete(bob, conv, by_bob.seq)) == 0
        assert code(await delete(dave, conv, 1)) == int(ErrorCode.INVALID)  # a system message
        assert code(await delete(alice, conv, 10_000)) == int(ErrorCode.NOT_FOUND)
        # A stranger learns nothing: the very answer of a conversation that does not exist.
        stranger, missing = await delete(eve, conv, own.seq), await delete(eve, 9_999, 1)
        assert isinstance(stranger, F.Error) and isinstance(missing, F.Error)
        assert (
            (stranger.code, stranger.msg)
            == (missing.code, missing.msg)
            == (
                ErrorCode.NOT_FOUND,
                stranger.msg,
            )
        )
        # A member joined later cannot touch (or probe) what was before its join.
        await befriend(alice, eve)
        await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=eve.account), F.Ok)
        await alice.request(
            F.SetRole(id=alice.next_id(), conv=conv, account=eve.account, role="admin"), F.Ok
        )
        assert code(await delete(eve, conv, own.seq)) == int(ErrorCode.NOT_FOUND)
        # A direct conversation: each deletes its own, never the other's.
        direct: F.Conv = await carol.request(
            F.CreateConv(id=carol.next_id(), kind="direct", members=[alice.account]), F.Conv
        )
        mine = await send(carol, direct.info.conv, b"x")
        assert code(await delete(alice, direct.info.conv, mine.seq)) == forbidden
        assert code(await delete(carol, direct.info.conv, mine.seq)) == 0
        kinds_now = {m.seq: m.kind for m in await history(alice, conv)}
        assert kinds_now[own.seq] == "e2e" and kinds_now[by_dave.seq] == "deleted"
        for r in (alice, bob, ben, carol, dave, eve):
            await r.close()


async def test_a_member_deleting_others_messages_a_thousand_times(tmp_path: Path) -> None:
    db = str(tmp_path / "chatd.db")
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, mallory = [await user(server.url, h) for h in ("ann", "bob", "mal")]
        conv = await group(alice, [bob, mallory], admins=(bob,))
        sent = [await send(r, conv, os.urandom(48)) for r in (alice, bob, alice, bob)]
        before = await history(alice, conv)
        # Pipelined: a thousand requests in flight at once, every seq of the conversation.
        seqs = [m.seq for m in before]
        frames = [
            F.DeleteMessage(id=mallory.next_id(), conv=conv, seq=seqs[i % len(seqs)])
            for i in range(1000)
        ]
        for f in frames:
            await mallory.send_frame(f)
        codes: dict[int, int] = {}
        for f in frames:
            reply = await mallory._reply(f.id, timeout=30)
            codes[code(reply)] = codes.get(code(reply), 0) + 1
        assert set(codes) <= {int(ErrorCode.FORBIDDEN), int(ErrorCode.INVALID)}, codes
        assert codes[int(ErrorCode.FORBIDDEN)] >= 1000 * len(sent) // len(seqs) - 4
        after = await history(alice, conv)
        assert [(m.seq, m.kind, m.body) for m in after] == [(m.seq, m.kind, m.body) for m in before]
        # And the server still serves everyone.
        assert code(await delete(bob, conv, sent[0].seq)) == int(ErrorCode.FORBIDDEN)
        assert code(await delete(alice, conv, sent[1].seq)) == 0
        for r in (alice, bob, mallory):
            await r.close()


async def test_a_removed_member_cannot_delete(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, carol = [await user(server.url, h) for h in ("ann", "bob", "cat")]
        conv = await group(alice, [bob, carol], admins=(bob,))
        by_carol = await send(carol, conv, os.urandom(32))
        by_bob = await send(bob, conv, os.urandom(32))
        for removed in (bob, carol):
            await alice.request(
                F.Remove(id=alice.next_id(), conv=conv, account=removed.account), F.Ok
            )
        for r, seq in ((bob, by_carol.seq), (bob, by_bob.seq), (carol, by_carol.seq)):
            assert code(await delete(r, conv, seq)) == int(ErrorCode.NOT_FOUND)
        kinds_now = {m.seq: m.kind for m in await history(alice, conv)}
        assert kinds_now[by_carol.seq] == kinds_now[by_bob.seq] == "e2e"
        # The owner still may: a former member's message.
        assert code(await delete(alice, conv, by_carol.seq)) == 0
        for r in (alice, bob, carol):
            await r.close()


async def test_a_delete_racing_the_deleters_removal(db: str, tmp_path: Path) -> None:
    """The admin's delete and its removal sent at once, twenty times: the delete either commits
    before the removal (its ``deleted`` message comes before the ``removed`` one) or is refused
    with NOT_FOUND and the message is intact; never a deletion by someone no longer a member."""
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, carol = [await user(server.url, h) for h in ("ann", "bob", "cat")]
        conv = await group(alice, [bob, carol])
        outcomes = {"before": 0, "refused": 0}
        for _ in range(20):
            await alice.request(
                F.SetRole(id=alice.next_id(), conv=conv, account=bob.account, role="admin"), F.Ok
            )
            target = await send(carol, conv, os.urandom(32))
            removal = F.Remove(id=alice.next_id(), conv=conv, account=bob.account)
            deletion = F.DeleteMessage(id=bob.next_id(), conv=conv, seq=target.seq)
            await asyncio.gather(bob.send_frame(deletion), alice.send_frame(removal))
            removed, deleted = await alice._reply(removal.id), await bob._reply(deletion.id)
            assert isinstance(removed, F.Ok), removed
            rows = {m.seq: m for m in await history(alice, conv) if m.seq >= target.seq}
            events = {}
            for m in rows.values():
                if m.kind == "system":
                    ev = kinds.decode_content("system", m.body)
                    assert isinstance(ev, kinds.SystemEvent)
                    events[ev.event] = m.seq
            if code(deleted) == 0:
                assert rows[target.seq].kind == "deleted"
                assert events["deleted"] < events["removed"]
                outcomes["before"] += 1
            else:
                assert code(deleted) == int(ErrorCode.NOT_FOUND), deleted
                assert rows[target.seq].kind == "e2e" and "deleted" not in events
                outcomes["refused"] += 1
            await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=bob.account), F.Ok)
        assert sum(outcomes.values()) == 20
        for r in (alice, bob, carol):
            await r.close()
