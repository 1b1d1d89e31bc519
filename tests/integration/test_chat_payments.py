"""Payments in the ``chat`` terminal client: the commands' parser and formatter, then two people
paying each other, asking, and sharing a red packet against a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path

import pytest
from chatclient.events import Message
from chatclient.tui import (
    AskPayment,
    Balance,
    ClaimPacket,
    Names,
    ParseError,
    Pay,
    RedPacket,
    Wallet,
    format_event,
    format_wallet,
    parse_command,
)
from chatproto import frames as F
from chatproto import kinds
from paykit import mint

from tests.conftest import make_settings, run_server
from tests.integration.test_chat_cli import Terminal, _register


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/pay @bob 12.50 USD", Pay("bob", "12.50", "USD")),
        ("/pay bob 12.50 usd lunch at noon", Pay("bob", "12.50", "USD", "lunch at noon")),
        ('/pay @bob 1000 JPY "for the tickets"', Pay("bob", "1000", "JPY", "for the tickets")),
        ("/request @alice 3 EUR cake", AskPayment("alice", "3", "EUR", "cake")),
        ("/balance", Balance()),
        ("/balance jpy", Balance("JPY")),
        ("/wallet", Wallet()),
        ("/wallet 5", Wallet(5)),
        ("/redpacket 88.88 CNY 8", RedPacket("88.88", "CNY", 8)),
        (
            "/redpacket 10 USD 3 equal happy new year",
            RedPacket("10", "USD", 3, "equal", "happy new year"),
        ),
        ("/claim", ClaimPacket()),
        ("/claim rp_1", ClaimPacket("rp_1")),
    ],
)
def test_parse_payment_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/pay @bob 12.505 USD", "USD has 2 decimals"),
        ("/pay @bob 12.5 JPX", "not a currency: JPX"),
        ("/pay @bob -1 USD", "not an amount"),
        ("/pay @bob 0 USD", "more than zero"),
        ("/pay @bob 1e3 USD", "not an amount"),
        ("/pay @bob 12.50", "usage: /pay"),
        ("/redpacket 10 USD zero", "usage: /redpacket"),
        ("/wallet 0", "usage: /wallet"),
    ],
)
def test_payment_command_errors(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_command(line)


def _names() -> Names:
    names = Names(me=1, my_handle="alice", handles={2: "bob", 3: "carol"})
    names.learn(F.ConvInfo(conv=10, kind="group", title="Team", last_seq=9, role="owner"))
    return names


def _receipt(**kw: object) -> str | None:
    base: dict[str, object] = {
        "type": "transfer",
        "ref": "t1",
        "payer": 1,
        "payee": 2,
        "amount": 1250,
        "currency": "USD",
        "conv": 10,
        "posted_at": 0,
        "sig": bytes(64),
    }
    base.update(kw)
    r = kinds.PaymentReceipt(**base)  # type: ignore[arg-type]
    kind, body = kinds.encode_content(r)
    line = format_event(Message(10, 7, 0, 0, 0, kind, body, r), _names(), UTC)
    return None if line is None else line.text


def test_format_receipts() -> None:
    assert _receipt() == "[Team] 00:00 $ alice paid bob 12.50 USD"
    assert _receipt(amount=5, currency="JPY", request_id="r1") == (
        "[Team] 00:00 $ alice paid bob 5 JPY (request r1)"
    )
    assert _receipt(
        type="red_packet", ref="rp", payee=0, amount=8888, currency="CNY", shares=8, split="random"
    ) == ("[Team] 00:00 $ alice dropped a red packet: 88.88 CNY in 8 shares (random); /claim rp")
    assert _receipt(type="claim", ref="rp", payer=0, payee=3, amount=111, shares=2) == (
        "[Team] 00:00 $ carol claimed 1.11 USD from red packet rp (share 2)"
    )
    assert _receipt(type="refund", ref="rp", payer=0, payee=1, amount=7) == (
        "[Team] 00:00 $ red packet rp expired: 0.07 USD back to alice"
    )
    assert _receipt(type="request", ref="r2", payer=0, payee=2, amount=300) == (
        "[Team] 00:00 $ bob asks anyone for 3.00 USD: /pay r2 (or /decline r2)"
    )
    note = kinds.PaymentTransfer(transfer_id="t1", amount=1250, currency="USD", memo="lunch")
    kind, body = kinds.encode_content(note)
    line = format_event(Message(10, 8, 0, 1, 1, kind, body, note), _names(), UTC)
    assert line is not None and line.text == "[Team] 00:00 alice (12.50 USD): lunch"


def test_format_wallet_oldest_first_with_the_running_balance() -> None:
    entries = [
        F.WalletEntry(
            entry=2,
            ref="t1",
            type="transfer",
            currency="USD",
            amount=-1250,
            balance=8750,
            counterparty=2,
            conv=10,
            posted_at=0,
        ),
        F.WalletEntry(
            entry=1,
            ref="mint:x",
            type="mint",
            currency="USD",
            amount=10_000,
            balance=10_000,
            counterparty=0,
            conv=0,
            posted_at=0,
        ),
    ]
    lines = [line.text for line in format_wallet(entries, _names(), UTC)]
    assert lines == [
        "  1970-01-01 00:00  +100.00 USD  mint from the system  = 100.00 USD",
        "  1970-01-01 00:00  -12.50 USD  transfer to bob  = 87.50 USD",
    ]


@pytest.fixture
async def server_db(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    settings = make_settings(tmp_path)
    async with run_server(settings) as server:
        yield server.url, Path(settings.store.db)


async def test_pay_ask_and_share_a_red_packet_in_the_terminal(
    server_db: tuple[str, Path], tmp_path: Path
) -> None:
    url, db = server_db
    keys = {h: tmp_path / f"{h}.key" for h in ("alice", "bob")}
    for handle, key in keys.items():
        await _register(url, key, handle, handle.title())
    alice = Terminal(url, keys["alice"]).start()
    bob = Terminal(url, keys["bob"]).start()
    try:
        await alice.wait_for("connected as @alice")
        await bob.wait_for("connected as @bob")
        await mint(db, 1, 10_000)  # alice is account 1
        alice.send("/balance", "/pay @bob 12.50 USD lunch at noon")
        await alice.wait_for(r"^  100\.00 USD$")
        await alice.wait_for(  # nothing moves, nothing is opened before /yes
            r"^pay @bob 12\.50 USD in your direct chat with @bob \(your balance: 100\.00 USD\)"
            r"\? /yes to confirm, /no to drop it$"
        )
        alice.send("/yes")
        await alice.wait_for(r"^paid @bob 12\.50 USD \(receipt #2 in \[@bob\]\)$")
        await bob.wait_for(r"^\[@alice\] \d\d:\d\d \$ alice paid bob 12\.50 USD$")
        await bob.wait_for(r"^\[@alice\] \d\d:\d\d alice \(12\.50 USD\): lunch at noon$")
        bob.send("/open @alice", "/request @alice 2.50 USD coffee", "/balance")
        await bob.wait_for(r"^  12\.50 USD$")
        await alice.wait_for(r"\$ bob asks alice for 2\.50 USD: /pay rq_\w+ \(or /decline rq_")
        await alice.wait_for(r"bob asks 2\.50 USD: coffee$")
        alice.send('/group "Team" @bob', "/redpacket! 10.00 USD 2 equal happy new year")
        await alice.wait_for(r"^red packet rp_\w+: 10\.00 USD in 2 shares$")
        await bob.wait_for(r"\$ alice dropped a red packet: 10\.00 USD in 2 shares \(equal\)")
        bob.expected_status = 1  # not enough USD: a script with a failed command exits 1
        bob.send("/open 2", "/claim", "/claim", "/pay @alice 1000 USD")
        await bob.wait_for(r"^you got 5\.00 USD from red packet rp_\w+$")
        await bob.wait_for(r"^you got 5\.00 USD from red packet rp_\w+ \(already claimed\)$")
        await bob.wait_for(r"in \[Team\] \(your balance: 17\.50 USD, not enough\)\? /yes")
        bob.send("/yes")
        await bob.wait_for(r"^error: INSUFFICIENT_FUNDS")
        bob.send("/wallet")
        await bob.wait_for(r"\+5\.00 USD  claim from the system  = 17\.50 USD$")
    finally:
        for t in (alice, bob):
            assert await t.close() == t.expected_status
    for t in (alice, bob):
        assert "Traceback" not in t.text
