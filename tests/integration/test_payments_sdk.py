"""Payments through the SDK: pay with a memo, red packets, requests, retries across a dropped
connection; every member's client verifies the receipts it shows, and a forged one becomes a
security warning, never a payment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest
from chatclient import Client, KeyStore, Message
from chatclient.errors import RequestError
from chatclient.events import Event, SecurityWarning
from chatclient.payments import memo_matches
from chatproto import kinds
from chatproto.errors import ErrorCode, ProtocolError
from conftest import RunningServer, make_settings, run_server
from paykit import audit, balances, mint
from testkit import http_get


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with run_server(make_settings(tmp_path)) as s:
        yield s


class Inbox:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.pending: list[Event] = []

    async def take(self, pred: Callable[[Event], bool], timeout: float = 8.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            self.pending += self.client.events_nowait()
            for i, ev in enumerate(self.pending):
                if pred(ev):
                    return self.pending.pop(i)
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching event in {self.pending!r}")
            await asyncio.sleep(0.01)


def receipt_event(type: str) -> Callable[[Event], bool]:
    return lambda ev: (
        isinstance(ev, Message)
        and isinstance(ev.content, kinds.PaymentReceipt)
        and ev.content.type == type
    )


async def users(server: RunningServer, tmp_path: Path, *handles: str) -> list[Client]:
    out = []
    for h in handles:
        c = Client(server.url, KeyStore.open(tmp_path / f"{h}.key"))
        await c.__aenter__()
        await c.register(h, h.title())
        out.append(c)
    return out


async def test_pay_with_a_memo_every_member_verifies_the_receipt_and_reads_the_memo(
    server: RunningServer, tmp_path: Path
) -> None:
    db = Path(server.app.settings.store.db)
    alice, bob, carol = await users(server, tmp_path, "alice", "bob", "carol")
    try:
        conv = (await alice.create("group", "G", [bob.account, carol.account])).conv
        await mint(db, alice.account, 10_000)
        receipt = await alice.pay(conv, bob.account, "12.50", "USD", "lunch 🍜")
        assert (receipt.receipt.amount, receipt.amount, receipt.replay) == (
            1250,
            "12.50 USD",
            False,
        )
        assert await alice.balance() == {"USD": 8750}
        assert await bob.balance("USD") == {"USD": 1250}
        for member in (bob, carol):
            inbox = Inbox(member)
            got = await inbox.take(receipt_event("transfer"))
            assert isinstance(got, Message) and isinstance(got.content, kinds.PaymentReceipt)
            assert got.seq == receipt.seq and got.content.ref == receipt.receipt.ref
            memo = await inbox.take(
                lambda ev: isinstance(ev, Message) and ev.kind == "payment.transfer"
            )
            assert isinstance(memo, Message) and isinstance(memo.content, kinds.PaymentTransfer)
            assert memo.content.memo == "lunch 🍜"
            assert memo_matches(memo.content, got.content)
            assert not memo_matches(replace_memo(memo.content, "dinner"), got.content)
        entries, more = await alice.payment_history()
        assert [e.type for e in entries] == ["transfer", "mint"] and not more
        with pytest.raises(RequestError) as err:
            await alice.pay(conv, bob.account, "1000.00", "USD")
        assert err.value.code == ErrorCode.INSUFFICIENT_FUNDS
        with pytest.raises(TypeError):
            await alice.pay(conv, bob.account, 12.5, "USD")  # type: ignore[arg-type]
        assert audit(db).ok
    finally:
        for c in (alice, bob, carol):
            await c.__aexit__(None, None, None)


def replace_memo(note: kinds.PaymentTransfer, memo: str) -> kinds.PaymentTransfer:
    return msgspec.structs.replace(note, memo=memo)


async def test_a_forged_receipt_is_a_security_warning_not_a_payment(
    server: RunningServer, tmp_path: Path
) -> None:
    db = Path(server.app.settings.store.db)
    alice, bob = await users(server, tmp_path, "alice", "bob")
    try:
        conv = await alice.direct(bob.account)
        await mint(db, alice.account, 500)
        receipt = await alice.pay(conv, bob.account, 300, "USD")
        got = await Inbox(bob).take(receipt_event("transfer"))
        assert isinstance(got, Message) and isinstance(got.content, kinds.PaymentReceipt)
        forged = msgspec.structs.replace(got.content, amount=30_000)
        _, body = kinds.encode_content(forged)
        fake = replace(got, body=body, content=forged)
        warning = bob.payments.checked(fake)
        assert isinstance(warning, SecurityWarning)
        elsewhere = replace(got, conv=got.conv + 1)  # replayed into another conversation
        assert isinstance(bob.payments.checked(elsewhere), SecurityWarning)
        # A genuine receipt's bytes re-sent by a member are no payment (the e2e layer refuses a
        # server-only inner kind too; this is the SDK's own check).
        echoed = bob.payments.checked(replace(got, sender=alice.account, device=alice.device))
        assert isinstance(echoed, SecurityWarning) and "not by the server" in echoed.reason
        with pytest.raises(ProtocolError):
            await alice.send(conv, got.content)
        assert bob.payments.checked(got) is got
        assert receipt.receipt == got.content
    finally:
        for c in (alice, bob):
            await c.__aexit__(None, None, None)


async def test_red_packets_and_requests_through_the_sdk(
    server: RunningServer, tmp_path: Path
) -> None:
    db = Path(server.app.settings.store.db)
    alice, bob, carol = await users(server, tmp_path, "alice", "bob", "carol")
    try:
        conv = (await alice.create("group", "G", [bob.account, carol.account])).conv
        await mint(db, alice.account, 10_000)
        made = await alice.red_packet(conv, "10.00", "USD", 3, "happy new year", split="equal")
        assert (made.receipt.type, made.receipt.shares) == ("red_packet", 3)
        pid = made.receipt.ref
        b = await bob.claim(pid)
        c = await carol.claim(pid)
        assert {b.receipt.amount, c.receipt.amount} == {334, 333}
        assert (await bob.claim(pid)).replay
        asked = await carol.request(conv, "2.00", "USD", "for the cake", payer=bob.account)
        paid = await bob.payments.pay_request(asked.receipt)
        assert paid.receipt.request_id == asked.receipt.ref
        note = await Inbox(bob).take(
            lambda ev: isinstance(ev, Message) and ev.kind == "payment.request"
        )
        assert isinstance(note, Message) and isinstance(note.content, kinds.PaymentRequest)
        assert note.content.memo == "for the cake"
        assert balances(db, carol.account) == {"USD": 333 + 200}
        assert audit(db).ok
        # Operators see the postings by type; the repeated claim counts as a replay.
        port = server.app.port
        assert port is not None
        _, metrics = await http_get(port, "/metrics")
        counted = {
            line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("chatd_payments_total{")
        }
        assert counted == {
            'replay="false",type="red_packet"': 1.0,
            'replay="false",type="claim"': 2.0,
            'replay="true",type="claim"': 1.0,
            'replay="false",type="request"': 1.0,
            'replay="false",type="transfer"': 1.0,
        }
    finally:
        for x in (alice, bob, carol):
            await x.__aexit__(None, None, None)


async def test_a_payment_interrupted_by_a_dropped_connection_is_retried_and_applied_once(
    server: RunningServer, tmp_path: Path
) -> None:
    db = Path(server.app.settings.store.db)
    alice, bob = await users(server, tmp_path, "alice", "bob")
    try:
        conv = await alice.direct(bob.account)
        await mint(db, alice.account, 1_000)
        for i in range(5):
            paying = asyncio.create_task(
                alice.pay(conv, bob.account, 100, "USD", transfer_id=f"t{i}")
            )
            await asyncio.sleep(0.001 * i)
            await alice.drop_connection()
            receipt = await asyncio.wait_for(paying, 20)
            assert receipt.receipt.ref == f"t{i}"
        assert balances(db, bob.account) == {"USD": 500}
        page = await bob.fetch(conv, limit=100)
        refs = [
            kinds.decode_content(m.kind, m.body).ref
            for m in page.messages
            if m.kind == "payment.receipt"
        ]  # type: ignore[union-attr]
        assert refs == [f"t{i}" for i in range(5)]
        assert audit(db).ok
    finally:
        for c in (alice, bob):
            await c.__aexit__(None, None, None)


async def test_the_payment_key_is_pinned_across_restarts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with run_server(settings) as server:
        (alice,) = await users(server, tmp_path, "alice")
        first = alice.payments.key
        await alice.__aexit__(None, None, None)
    async with (
        run_server(settings) as server,  # the same database: the same key
        Client(server.url, KeyStore.open(tmp_path / "alice.key")) as again,
    ):
        assert first is not None
        assert again.payments.key == first
