"""A malicious server against transcript consistency (E2E.md 16): a real chatd whose stored
messages the test deletes, renumbers and swaps (through the server's own writer, so its seqs
stay consistent), as a server that drops, reorders or selectively delivers messages would. The
messages still decrypt (the server cannot forge them); what the members had seen, encrypted in
every message, shows the victim what it was not given, as a ``TranscriptWarning``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botkit import Inbox
from chatclient import Client, KeyStore, Message
from chatclient.events import Event, TranscriptWarning
from chatproto import kinds
from conftest import RunningServer

from chatd.store.sqlite import SQLiteStore, _Tx

MARKER = "MARKER-adv-transcript-9d41"


def store(server: RunningServer) -> SQLiteStore:
    assert server.app.services is not None
    s = server.app.services.deps.store
    assert isinstance(s, SQLiteStore)
    return s


async def tamper(server: RunningServer, fn: Callable[[_Tx], None]) -> None:
    """Run ``fn`` in the server's own write transaction (the attacker controls the server)."""
    await store(server)._write(fn)


def drop(conv: int, seq: int) -> Callable[[_Tx], None]:
    """Put a harmless server message (a rename to the same title) in the place of message
    ``seq``: the sequence stays gapless, the message is gone for whoever had not read it."""
    _, filler = kinds.encode_content(kinds.SystemEvent(event="renamed", actor=0, title="g"))

    def op(tx: _Tx) -> None:
        tx.db.execute(
            "UPDATE messages SET sender=0, device=0, cmid=NULL, kind='system', body=?"
            " WHERE conv_id=? AND seq=?",
            (filler, conv, seq),
        )

    return op


def swap(conv: int, a: int, b: int) -> Callable[[_Tx], None]:
    """Exchange the messages at seqs ``a`` and ``b``."""

    def op(tx: _Tx) -> None:
        tx.db.execute("UPDATE messages SET seq=? WHERE conv_id=? AND seq=?", (10**12, conv, a))
        tx.db.execute("UPDATE messages SET seq=? WHERE conv_id=? AND seq=?", (a, conv, b))
        tx.db.execute("UPDATE messages SET seq=? WHERE conv_id=? AND seq=?", (b, conv, 10**12))

    return op


def text(conv: int, body: str) -> Callable[[Event], bool]:
    return lambda ev: isinstance(ev, Message) and ev.conv == conv and ev.text == body


async def problems(inbox: Inbox, conv: int) -> list[tuple[str, int, int]]:
    """The transcript warnings of ``conv`` (each follows the message that showed it)."""

    def pred(ev: Event) -> bool:
        return isinstance(ev, TranscriptWarning) and ev.conv == conv

    first = await inbox.one(pred)
    await asyncio.sleep(0.2)
    inbox.pending += inbox.client.events_nowait()
    found = [first, *(ev for ev in inbox.pending if pred(ev))]
    return [(ev.problem, ev.device, ev.count) for ev in found]


@contextlib.asynccontextmanager
async def group(url: str, tmp_path: Path) -> Any:
    """alice, bob (a key store on disk: he goes away and comes back) and carol in a group."""
    async with contextlib.AsyncExitStack() as stack:
        alice = await stack.enter_async_context(Client(url, KeyStore.memory()))
        await alice.register("alice", "Alice")
        bob = await stack.enter_async_context(Client(url, KeyStore.open(tmp_path / "bob.keys")))
        await bob.register("bob", "Bob")
        carol = await stack.enter_async_context(Client(url, KeyStore.memory()))
        await carol.register("carol", "Carol")
        conv = (await alice.create("group", "g", [bob.account, carol.account])).conv
        yield conv, alice, bob, carol


async def back(url: str, tmp_path: Path) -> Client:
    return Client(url, KeyStore.open(tmp_path / "bob.keys"))


async def test_a_dropped_message_is_detected_by_the_member_it_was_dropped_for(
    server: RunningServer, tmp_path: Path
) -> None:
    async with group(server.url, tmp_path) as (conv, alice, bob, carol):
        ib, ic = Inbox(bob), Inbox(carol)
        await alice.send_text(conv, "m1")
        await ib.one(text(conv, "m1"))
        await ic.one(text(conv, "m1"))
        await bob.aclose()  # bob is away
        m2 = await alice.send_text(conv, f"m2 {MARKER}")
        await alice.send_text(conv, "m3")
        await ic.one(text(conv, "m3"))
        await ic.quiet(lambda ev: isinstance(ev, TranscriptWarning))  # carol got everything
        await tamper(server, drop(conv, m2.seq))
        async with await back(server.url, tmp_path) as bob2:
            ib2 = Inbox(bob2)
            await ib2.one(text(conv, "m3"))  # still readable: the server forges nothing
            found = await problems(ib2, conv)
            assert ("missing", alice.device, 1) in found
            assert ("iteration_gap", alice.device, 1) in found
            assert not any(
                isinstance(ev, Message) and ev.text and MARKER in ev.text for ev in ib2.pending
            )


async def test_reordered_messages_are_detected(server: RunningServer, tmp_path: Path) -> None:
    async with group(server.url, tmp_path) as (conv, alice, bob, _carol):
        ib = Inbox(bob)
        await alice.send_text(conv, "m1")
        await ib.one(text(conv, "m1"))
        await bob.aclose()
        m2 = await alice.send_text(conv, "m2")
        m3 = await alice.send_text(conv, "m3")
        await tamper(server, swap(conv, m2.seq, m3.seq))
        async with await back(server.url, tmp_path) as bob2:
            ib2 = Inbox(bob2)
            got = await ib2.take(lambda ev: isinstance(ev, Message) and ev.text in ("m2", "m3"), 2)
            assert [m.text for m in got] == ["m3", "m2"]  # both read, in the server's order
            found = {p for p, _, _ in await problems(ib2, conv)}
            assert {"missing", "reordered"} <= found


async def test_delivery_to_only_some_members_is_detected_from_what_the_others_saw(
    server: RunningServer, tmp_path: Path
) -> None:
    async with group(server.url, tmp_path) as (conv, alice, bob, carol):
        ib, ic = Inbox(bob), Inbox(carol)
        await alice.send_text(conv, "a1")
        await ib.one(text(conv, "a1"))
        await ic.one(text(conv, "a1"))
        await bob.aclose()
        a2 = await alice.send_text(conv, "a2 (carol only)")
        await ic.one(text(conv, "a2 (carol only)"))
        await carol.send_text(conv, "c1")
        await tamper(server, drop(conv, a2.seq))  # bob is never given a2
        async with await back(server.url, tmp_path) as bob2:
            ib2 = Inbox(bob2)
            await ib2.one(text(conv, "c1"))
            found = await problems(ib2, conv)
            assert ("unseen", alice.device, 1) in found  # carol had read a2: bob never got it
            await ib2.quiet(lambda ev: isinstance(ev, Message) and ev.text == "a2 (carol only)")


async def test_an_honest_server_gives_no_transcript_warning(
    server: RunningServer, tmp_path: Path
) -> None:
    async with group(server.url, tmp_path) as (conv, alice, bob, carol):
        ia, ib, ic = Inbox(alice), Inbox(bob), Inbox(carol)
        for i in range(3):
            await alice.send_text(conv, f"a{i}")
            await bob.send_text(conv, f"b{i}")
            await carol.send_text(conv, f"c{i}")
        for inbox, me in ((ia, "a"), (ib, "b"), (ic, "c")):
            for who in "abc":
                if who != me:
                    await inbox.one(text(conv, f"{who}2"))
        await bob.aclose()
        await alice.send_text(conv, "while bob is away")
        async with await back(server.url, tmp_path) as bob2:
            ib2 = Inbox(bob2)
            await ib2.one(text(conv, "while bob is away"))
            await ib2.quiet(lambda ev: isinstance(ev, TranscriptWarning))
        for inbox in (ia, ic):
            await inbox.quiet(lambda ev: isinstance(ev, TranscriptWarning))
