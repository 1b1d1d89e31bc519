"""``chatd wallet mint`` and ``chatd wallet statement`` on a running server's database."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from chatproto import frames as F
from conftest import make_settings, run_server
from paykit import Clients, audit, group, intent, pay_frame

from chatd.cli import main


async def test_mint_then_statement_with_the_running_balance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path)
    db = settings.store.db
    async with run_server(settings) as server:
        clients = Clients(server.url)
        try:
            alice = await clients.registered("alice")
            bob = await clients.registered("bob")
            # Minted while the server runs (its own connection to the same file).
            assert (
                main(["wallet", "mint", "@alice", "100.00", "USD", "--note", "top-up", "--db", db])
                == 0
            )
            assert "minted 100.00 USD to @alice (account 1)" in capsys.readouterr().out
            # The spellings chat accepts: a lower-case code, a handle in capitals.
            assert main(["wallet", "mint", "@Alice", "0.50", "usd", "--db", db]) == 0
            assert "minted 0.50 USD to @alice (account 1)" in capsys.readouterr().out
            conv = await group(alice, bob)
            await alice.request(pay_frame(alice, intent(alice, bob.account, 1250, conv)), F.Posted)
            balance = await alice.request(F.GetBalance(id=alice.next_id()), F.Balances)
            assert balance.balances == [F.BalanceInfo(currency="USD", amount=8800)]
        finally:
            await clients.aclose()
    for argv, error in (
        (["wallet", "mint", "@nobody", "1", "USD"], "no account"),
        (["wallet", "mint", "@alice", "1.005", "USD"], "USD has 2 decimals"),
        (["wallet", "mint", "@alice", "-1", "USD"], "not an amount"),
        (["wallet", "mint", "@alice", "1", "XYZ"], "not an ISO 4217"),
        (["wallet", "mint", "@alice", "1", "AUD"], "not accepted by this server"),
    ):
        assert main([*argv, "--db", db]) == 1
        assert error in capsys.readouterr().err
    assert main(["wallet", "statement", "@alice", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "entry",
        "posted_at",
        "type",
        "ref",
        "counterparty",
        "conv",
        "currency",
        "amount",
        "balance",
    ]
    assert [line.split()[2] for line in lines[1:]] == ["mint", "mint", "transfer"]
    assert lines[1].split()[-2:] == ["100.00", "100.00"]
    assert lines[3].split()[-2:] == ["-12.50", "88.00"]
    assert lines[3].split()[4] == "@bob"  # a handle, not an account number
    assert main(["wallet", "statement", "1", "--csv", "--db", db]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["type"], r["counterparty"], r["amount"], r["balance"]) for r in rows] == [
        ("mint", "issuance", "100.00", "100.00"),
        ("mint", "issuance", "0.50", "100.50"),
        ("transfer", "@bob", "-12.50", "88.00"),
    ]
    assert main(["wallet", "statement", "@bob", "--currency", "eur", "--db", db]) == 0
    assert "(no entries)" in capsys.readouterr().out
    assert audit(Path(db)).ok
    assert main(["wallet", "audit", "--json", "--db", db]) == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["ok"], found["transfers"], found["sums"]) == (True, 3, {"USD": 0})
    assert main(["wallet", "audit", "--db", db]) == 0
    assert capsys.readouterr().out.startswith("ok: 3 transfers")
    broken = sqlite3.connect(db)  # a wallet whose balance is not the sum of its entries
    broken.execute("UPDATE wallets SET balance = balance + 1 WHERE account = 1")
    broken.commit()
    broken.close()
    assert main(["wallet", "audit", "--db", db]) == 1
    assert capsys.readouterr().out.startswith("FAILED")
